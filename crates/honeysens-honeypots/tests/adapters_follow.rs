//! The log follower: a growing file, rotation by rename (also while the follower is down),
//! truncation, malformed lines, and restarts that neither lose nor duplicate lines (the uid of
//! a line is the same on every read, so resends dedupe on the server).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use honeysens_core::protocol::IntakeEvent;
use honeysens_honeypots::adapters::{FollowOptions, FollowStats, Format, follow_with};
use honeysens_honeypots::sink::EventSink;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A real cowrie login line with its password replaced by `pw`, to tell lines apart.
fn line(pw: &str) -> String {
    format!(
        r#"{{"session":"e9401af441e0","protocol":"ssh","src_ip":"192.0.2.7","src_port":38400,"dst_ip":"127.0.0.1","dst_port":2224,"username":"root","password":"{pw}","eventid":"cowrie.login.failed","sensor":"vm","uuid":"74382076-e9ee-11f1-a0ed-02fc00000001","timestamp":"2026-11-26T23:33:45.962229Z","message":"login attempt [root/{pw}] failed"}}"#
    ) + "\n"
}

fn append(path: &Path, s: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(s.as_bytes()).unwrap();
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<FollowStats>,
    rx: mpsc::Receiver<IntakeEvent>,
}

fn start(opts: &FollowOptions) -> Running {
    let (sink, rx) = EventSink::channel(64);
    let (stop, stopped) = oneshot::channel::<()>();
    let opts = opts.clone();
    let task = tokio::spawn(async move {
        follow_with(&opts, &sink, async {
            let _ = stopped.await;
        })
        .await
        .unwrap()
    });
    Running { stop, task, rx }
}

impl Running {
    /// The passwords of the next `n` events, waiting generously (slow CI machines).
    async fn take(&mut self, n: usize) -> Vec<(String, uuid::Uuid)> {
        let mut out = Vec::new();
        while out.len() < n {
            let ev = tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} events arrived: {out:?}", out.len()))
                .unwrap();
            assert_eq!(ev.service.as_deref(), Some("ssh-cowrie"));
            let pw = ev
                .details
                .iter()
                .find_map(|d| d.data.strip_prefix("password: "))
                .unwrap()
                .to_owned();
            out.push((pw, ev.uid.unwrap()));
        }
        out
    }

    /// Nothing more arrives within a few poll intervals.
    async fn quiet(&mut self) {
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(800), self.rx.recv()).await
        {
            panic!("unexpected event {:?}", ev.details);
        }
    }

    async fn stop(self) -> FollowStats {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .unwrap()
            .unwrap()
    }
}

fn opts(dir: &Path) -> FollowOptions {
    let mut o = FollowOptions::new(Format::Cowrie, dir.join("cowrie.json"));
    o.poll_interval = Duration::from_millis(50);
    o.service = Some("ssh-cowrie".into());
    o
}

fn pws(got: &[(String, uuid::Uuid)]) -> Vec<&str> {
    got.iter().map(|(p, _)| p.as_str()).collect()
}

#[tokio::test]
async fn follows_growth_rotation_truncation_and_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    // The follower may start before the log exists.
    let mut r = start(&o);
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&o.path, &(line("a1") + &line("a2")));
    assert_eq!(pws(&r.take(2).await), ["a1", "a2"]);

    // A malformed line and a line written in two parts (no event until its newline).
    append(&o.path, "{\"eventid\": broken\n");
    let l3 = line("a3");
    append(&o.path, &l3[..40]);
    r.quiet().await;
    append(&o.path, &l3[40..]);
    assert_eq!(pws(&r.take(1).await), ["a3"]);

    // Rotation by rename: the tail of the old file comes first, then the new file.
    append(&o.path, &line("a4"));
    std::fs::rename(&o.path, dir.path().join("cowrie.json.1")).unwrap();
    append(&dir.path().join("cowrie.json.1"), &line("a5"));
    append(&o.path, &line("b1"));
    assert_eq!(pws(&r.take(3).await), ["a4", "a5", "b1"]);

    // Truncation in place (copytruncate).
    std::fs::write(&o.path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&o.path, &line("c1"));
    assert_eq!(pws(&r.take(1).await), ["c1"]);
    r.quiet().await;

    let stats = r.stop().await;
    assert_eq!(stats.events, 7, "{stats:?}");
    assert_eq!(stats.malformed, 1, "{stats:?}");
    assert!(stats.rotations >= 2, "{stats:?}");
}

#[tokio::test]
async fn restart_resumes_at_the_saved_offset_with_stable_uids() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    append(&o.path, &(line("1") + &line("2") + &line("3")));
    let mut r = start(&o);
    let first = r.take(3).await;
    r.quiet().await;
    r.stop().await;

    // Lines written while the follower is down, then a restart: only those arrive.
    append(&o.path, &(line("4") + &line("5")));
    let mut r = start(&o);
    assert_eq!(pws(&r.take(2).await), ["4", "5"]);
    r.quiet().await;
    r.stop().await;

    // Rotation while down: the rest of the renamed file, then the new one.
    append(&o.path, &line("6"));
    std::fs::rename(&o.path, dir.path().join("cowrie.json.2026-11-27")).unwrap();
    append(&o.path, &line("7"));
    let mut r = start(&o);
    assert_eq!(pws(&r.take(2).await), ["6", "7"]);
    r.quiet().await;
    r.stop().await;

    // Put the first file back and forget the offset: everything is read again, and each
    // re-read line has the uid it had the first time (the server stores it once).
    std::fs::rename(dir.path().join("cowrie.json.2026-11-27"), &o.path).unwrap();
    std::fs::remove_file(&o.state_file).unwrap();
    let mut r = start(&o);
    let again = r.take(3).await;
    assert_eq!(again, first, "same lines, same uids");
    r.take(3).await;
    r.quiet().await;
    r.stop().await;
}

#[tokio::test]
async fn corrupt_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    append(&o.path, &line("1"));
    std::fs::write(&o.state_file, "garbage").unwrap();
    let (sink, _rx) = EventSink::channel(4);
    let err = follow_with(&o, &sink, std::future::ready(()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}
