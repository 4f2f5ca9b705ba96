//! Event intake: honeypot services send JSON lines to a Unix socket or a TCP port on the
//! service network; each line is validated, written to the spool and only then acknowledged.
//!
//! One line in: an event in the intake schema ([`IntakeEvent`]: the event schema without
//! `sensor_id`, with `uid` and `timestamp` optional). One line out per line in, in order:
//! `{"ok":true,"uid":"…"}` once the event is durable, or
//! `{"ok":false,"code":"…","message":"…"}` — the event was not taken (invalid, or the spool is
//! full). Writes from all connections are group-committed: one spool append (one fsync) per
//! burst, not per event.

use crate::spool::{Spool, SpoolError};
use honeysens_core::ids::SensorId;
pub use honeysens_core::protocol::{IntakeAck, IntakeEvent};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc, oneshot};

/// Longest intake line accepted (an event with details and packets).
pub const MAX_LINE: usize = 1024 * 1024;

/// Most events committed to the spool in one append.
const MAX_GROUP: usize = 512;

fn refused(code: &str, message: impl Into<String>) -> IntakeAck {
    IntakeAck {
        ok: false,
        uid: None,
        code: Some(code.to_owned()),
        message: Some(message.into()),
    }
}

type Commit = (Vec<u8>, oneshot::Sender<Result<(), String>>);

/// Accepts events from any number of connections and commits them to the spool in groups.
#[derive(Clone)]
pub struct Intake {
    sensor: SensorId,
    tx: mpsc::Sender<Commit>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("sensor", &self.sensor)
            .finish()
    }
}

impl Intake {
    /// Starts the committer task; `stored` is notified after each commit (the uploader waits
    /// on it).
    pub fn start(sensor: SensorId, spool: Arc<Spool>, stored: Arc<Notify>) -> Intake {
        let (tx, rx) = mpsc::channel::<Commit>(4 * MAX_GROUP);
        tokio::spawn(commit_loop(spool, rx, stored));
        Intake { sensor, tx }
    }

    /// Validates one line and makes it durable; the answer to send back.
    pub async fn submit(&self, line: &[u8]) -> IntakeAck {
        self.enqueue(line).await.wait().await
    }

    /// Validates one line and queues it for the next group commit, without waiting for it:
    /// a connection can go on reading while earlier lines are being written.
    async fn enqueue(&self, line: &[u8]) -> Pending {
        let parsed: IntakeEvent = match serde_json::from_slice(line) {
            Ok(e) => e,
            Err(e) => return Pending::Done(refused("event.malformed", e.to_string())),
        };
        let event = match parsed.into_event(self.sensor) {
            Ok(e) => e,
            Err(e) => return Pending::Done(refused(&e.code(), e.to_string())),
        };
        let uid = event.data.uid;
        let record = match serde_json::to_vec(&event) {
            Ok(r) => r,
            Err(e) => return Pending::Done(refused("event.malformed", e.to_string())),
        };
        let (done, wait) = oneshot::channel();
        if self.tx.send((record, done)).await.is_err() {
            return Pending::Done(stopping());
        }
        Pending::Commit(uid, wait)
    }

    /// Serves one connection: a line in, an answer line out, in order, until the peer closes.
    /// Reading and answering are decoupled, so a client that sends many lines before reading
    /// answers gets them committed in groups.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(&self, stream: S) {
        let (read, mut write) = tokio::io::split(stream);
        // Bounded: at most this many answers outstanding per connection (backpressure).
        let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(MAX_GROUP);
        let writer = tokio::spawn(async move {
            while let Some(p) = pending_rx.recv().await {
                let ack = p.wait().await;
                if write_ack(&mut write, &ack).await.is_err() {
                    return;
                }
            }
        });
        let mut reader = BufReader::new(read);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = match (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "intake connection failed");
                    break;
                }
            };
            if n == 0 {
                break;
            }
            let pending = if line.len() > MAX_LINE {
                // The rest of an overlong line cannot be resynchronised: answer and close.
                let ack = refused("event.too_large", "line longer than 1 MiB");
                let _ = pending_tx.send(Pending::Done(ack)).await;
                break;
            } else {
                let trimmed = line.trim_ascii();
                if trimmed.is_empty() {
                    continue;
                }
                self.enqueue(trimmed).await
            };
            if pending_tx.send(pending).await.is_err() {
                break;
            }
        }
        drop(pending_tx);
        let _ = writer.await;
    }
}

fn stopping() -> IntakeAck {
    refused("agent.stopping", "the agent is shutting down")
}

/// The answer to a line, now or once its group is committed.
enum Pending {
    Done(IntakeAck),
    Commit(uuid::Uuid, oneshot::Receiver<Result<(), String>>),
}

impl Pending {
    async fn wait(self) -> IntakeAck {
        match self {
            Pending::Done(ack) => ack,
            Pending::Commit(uid, wait) => match wait.await {
                Ok(Ok(())) => IntakeAck {
                    ok: true,
                    uid: Some(uid),
                    code: None,
                    message: None,
                },
                Ok(Err(code)) => refused(&code, "the event was not stored"),
                Err(_) => stopping(),
            },
        }
    }
}

async fn write_ack<W: AsyncWrite + Unpin>(w: &mut W, ack: &IntakeAck) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(ack).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    out.push(b'\n');
    w.write_all(&out).await?;
    w.flush().await
}

/// Drains the channel in groups: one spool append per group, then every waiter is answered.
async fn commit_loop(spool: Arc<Spool>, mut rx: mpsc::Receiver<Commit>, stored: Arc<Notify>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let (records, waiters): (Vec<Vec<u8>>, Vec<_>) = group.into_iter().unzip();
        let sp = spool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            sp.append_batch(&refs).map(|_| ())
        })
        .await;
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(SpoolError::Full)) => {
                tracing::warn!(events = waiters.len(), "spool full: events refused");
                Err("spool.full".to_owned())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "spool write failed: events refused");
                Err("spool.failed".to_owned())
            }
            Err(_) => Err("spool.failed".to_owned()),
        };
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
        if outcome.is_ok() {
            stored.notify_one();
        }
    }
}
