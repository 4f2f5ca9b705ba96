//! The SSH honeypot against real clients: OpenSSH's `ssh` (with `sshpass` for passwords and
//! `ssh-keygen` keys) and a russh client.
//!
//! Needs `ssh`, `ssh-keygen` and `sshpass` (Debian: openssh-client, sshpass); skips without
//! them, fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{detail, free_port, require, wait_for};
use honeysens_core::protocol::IntakeEvent;
use honeysens_honeypots::Shutdown;
use honeysens_honeypots::sink::EventSink;
use honeysens_honeypots::ssh::{self, AcceptPolicy, SshConfig};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(60);

struct Server {
    port: u16,
    rx: mpsc::Receiver<IntakeEvent>,
    shutdown: Shutdown,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(accept: AcceptPolicy) -> Server {
    let dir = std::env::temp_dir().join(format!("hs-ssh-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut config = SshConfig::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
        dir.join("host_key"),
    );
    config.accept = accept;
    config.auth_rejection_time = Duration::from_millis(100);
    let (sink, rx) = EventSink::channel(256);
    let shutdown = Shutdown::new();
    tokio::spawn(ssh::run(config, sink, shutdown.clone()));
    // Poll until it listens.
    let deadline = tokio::time::Instant::now() + T;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ssh honeypot never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut server = Server {
        port,
        rx,
        shutdown,
        dir,
    };
    // The readiness probe itself is a connection without a version: drain its event.
    wait_for(&mut server.rx, T, |e| e.type_code == "conn.attempt")
        .await
        .expect("probe connection not reported");
    server
}

fn ssh_args(port: u16) -> Vec<String> {
    [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=30",
        "-p",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([port.to_string()])
    .collect()
}

async fn blocking(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_password_key_and_version_only_connections_are_recorded() {
    if !require(false, &["ssh", "sshpass", "ssh-keygen"]) {
        return;
    }
    let mut s = start(AcceptPolicy::Never).await;

    // Password attempt.
    let mut cmd = Command::new("sshpass");
    cmd.args(["-p", "S3cret! pw", "ssh", "-v"])
        .args(ssh_args(s.port))
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
            "root@127.0.0.1",
            "true",
        ]);
    let out = blocking(cmd).await;
    assert!(!out.status.success(), "the login must be refused");
    // Password stays on offer after a refusal, as with a real OpenSSH server, so brute-forcers
    // keep trying on the same connection (sshpass itself gives up after one prompt).
    let verbose = String::from_utf8_lossy(&out.stderr);
    let offers = verbose
        .lines()
        .filter(|l| l.contains("Authentications that can continue") && l.contains("password"))
        .count();
    assert!(
        offers >= 2,
        "password not offered after the refusal: {verbose}"
    );
    let ev = wait_for(&mut s.rx, T, |e| e.type_code == "ssh.login.failed")
        .await
        .expect("no ssh.login.failed");
    assert_eq!(detail(&ev, "user"), Some("root"));
    assert_eq!(detail(&ev, "password"), Some("S3cret! pw"));
    assert!(
        detail(&ev, "client").is_some_and(|c| c.starts_with("SSH-2.0-OpenSSH")),
        "{ev:?}"
    );
    assert_eq!(ev.source_ip.to_string(), "127.0.0.1");
    assert_eq!(ev.dest_port, Some(s.port));
    assert_eq!(ev.service.as_deref(), Some("ssh"));

    // Public-key attempt with a fresh key: the fingerprint is recorded.
    let key = s.dir.join("id_ed25519");
    let mut keygen = Command::new("ssh-keygen");
    keygen
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key);
    assert!(blocking(keygen).await.status.success());
    let mut fp = Command::new("ssh-keygen");
    fp.arg("-lf").arg(key.with_extension("pub"));
    let fp = String::from_utf8(blocking(fp).await.stdout).unwrap();
    let fingerprint = fp.split_whitespace().nth(1).unwrap().to_owned();
    let mut cmd = Command::new("ssh");
    cmd.args(ssh_args(s.port)).arg("-i").arg(&key).args([
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "PreferredAuthentications=publickey",
        "admin@127.0.0.1",
        "true",
    ]);
    assert!(!blocking(cmd).await.status.success());
    let ev = wait_for(&mut s.rx, T, |e| {
        e.type_code == "ssh.login.failed" && detail(e, "key").is_some()
    })
    .await
    .expect("no key attempt recorded");
    assert_eq!(detail(&ev, "user"), Some("admin"));
    assert_eq!(detail(&ev, "key"), Some(fingerprint.as_str()));

    // Version exchange only.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    tcp.write_all(b"SSH-2.0-Scanner_1.0\r\n").await.unwrap();
    let mut banner = vec![0u8; 64];
    let n = tokio::time::timeout(T, tcp.read(&mut banner))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&banner[..n]).starts_with("SSH-2.0-OpenSSH_9.2p1"),
        "server banner"
    );
    drop(tcp);
    let ev = wait_for(&mut s.rx, T, |e| e.type_code == "ssh.connect")
        .await
        .expect("no ssh.connect");
    assert_eq!(detail(&ev, "client"), Some("SSH-2.0-Scanner_1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_shell_in_accept_mode_records_each_command() {
    if !require(false, &["ssh", "sshpass"]) {
        return;
    }
    let mut s = start(AcceptPolicy::Credentials(vec![(
        "root".into(),
        "toor".into(),
    )]))
    .await;
    let port = s.port;
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("sshpass")
            .args(["-p", "toor", "ssh", "-tt"])
            .args(ssh_args(port))
            .args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
                "root@127.0.0.1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"whoami\nuname -a\nexit\n").unwrap();
        // Keep stdin open until the server ends the session (a closed stdin would end it).
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        out
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("root@srv01:~#"), "prompt: {stdout}");
    assert!(
        stdout.contains("Linux srv01 6.1.0"),
        "uname output: {stdout}"
    );
    let ok = wait_for(&mut s.rx, T, |e| e.type_code == "ssh.login.success")
        .await
        .expect("no ssh.login.success");
    assert_eq!(detail(&ok, "password"), Some("toor"));
    let mut commands = Vec::new();
    for _ in 0..3 {
        let ev = wait_for(&mut s.rx, T, |e| e.type_code == "ssh.command")
            .await
            .expect("missing ssh.command");
        commands.push(detail(&ev, "command").unwrap().to_owned());
    }
    assert_eq!(commands, ["whoami", "uname -a", "exit"]);
}

struct Client;

impl russh::client::Handler for Client {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn russh_client_is_let_in_after_the_configured_failures_and_exec_is_recorded() {
    let mut s = start(AcceptPolicy::AfterAttempts(1)).await;
    let config = Arc::new(russh::client::Config::default());
    let mut session = russh::client::connect(config, ("127.0.0.1", s.port), Client)
        .await
        .unwrap();
    let first = session
        .authenticate_password("pi", "raspberry")
        .await
        .unwrap();
    assert!(!first.success());
    let second = session.authenticate_password("pi", "123456").await.unwrap();
    assert!(second.success());
    let mut channel = session.channel_open_session().await.unwrap();
    channel.exec(true, "id").await.unwrap();
    let mut output = Vec::new();
    let mut status = None;
    while let Some(msg) = tokio::time::timeout(T, channel.wait()).await.unwrap() {
        match msg {
            russh::ChannelMsg::Data { data } => output.extend_from_slice(&data),
            russh::ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            russh::ChannelMsg::Close => break,
            _ => {}
        }
    }
    assert_eq!(status, Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output),
        "uid=1000(pi) gid=1000(pi) groups=1000(pi)\n"
    );
    let failed = wait_for(&mut s.rx, T, |e| e.type_code == "ssh.login.failed")
        .await
        .unwrap();
    assert_eq!(detail(&failed, "password"), Some("raspberry"));
    assert!(detail(&failed, "client").is_some_and(|c| c.starts_with("SSH-2.0-russh")));
    let ok = wait_for(&mut s.rx, T, |e| e.type_code == "ssh.login.success")
        .await
        .unwrap();
    assert_eq!(detail(&ok, "password"), Some("123456"));
    let cmd = wait_for(&mut s.rx, T, |e| e.type_code == "ssh.command")
        .await
        .unwrap();
    assert_eq!(detail(&cmd, "command"), Some("id"));
    assert_eq!(detail(&cmd, "user"), Some("pi"));
}
