//! The connection from a honeypot to the sensor agent's intake.
//!
//! Events are written as JSON lines and each is acknowledged by the agent once it is durable in
//! the spool. The sink pipelines: whatever is queued while a write is in flight goes out in the
//! next burst. When the agent is unreachable (restarting), the sink reconnects with backoff and
//! resends the unacknowledged burst; each event has its `uid` fixed before the first attempt, so
//! a resend is stored once.

use crate::Error;
use honeysens_core::protocol::{IntakeAck, IntakeEvent};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// Where the agent's intake listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeAddr {
    /// The agent's Unix socket (`<state-dir>/intake.sock`).
    Unix(PathBuf),
    /// The agent's TCP intake on the service network.
    Tcp(String),
}

impl IntakeAddr {
    /// Parses `unix:<path>` or `tcp:<host:port>`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if let Some(p) = s.strip_prefix("unix:") {
            Ok(IntakeAddr::Unix(PathBuf::from(p)))
        } else if let Some(a) = s.strip_prefix("tcp:") {
            Ok(IntakeAddr::Tcp(a.to_owned()))
        } else {
            Err(Error::InvalidIntake(s.to_owned()))
        }
    }
}

type Pending = (Vec<u8>, oneshot::Sender<Result<uuid::Uuid, Error>>);

/// Most events written before their acknowledgements are read.
const BURST: usize = 256;

/// A cloneable handle that delivers events to the agent.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Pending>,
    /// Sends not yet answered, across clones (for a clean exit).
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl EventSink {
    /// Starts the background connection; it connects lazily and reconnects forever.
    pub fn connect(addr: IntakeAddr) -> Self {
        let (tx, rx) = mpsc::channel(4 * BURST);
        tokio::spawn(run(addr, rx));
        EventSink {
            tx,
            in_flight: Default::default(),
        }
    }

    /// A sink whose events land in the returned receiver, for tests and embedding.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<IntakeEvent>) {
        let (tx, mut rx) = mpsc::channel::<Pending>(capacity.max(1));
        let (out_tx, out_rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(async move {
            while let Some((line, done)) = rx.recv().await {
                let answer = match serde_json::from_slice::<IntakeEvent>(&line) {
                    Ok(ev) => {
                        let uid = ev.uid.unwrap_or_else(uuid::Uuid::now_v7);
                        if out_tx.send(ev).await.is_err() {
                            Err(Error::Closed)
                        } else {
                            Ok(uid)
                        }
                    }
                    Err(e) => Err(Error::Refused {
                        code: "event.malformed".into(),
                        message: e.to_string(),
                    }),
                };
                let _ = done.send(answer);
            }
        });
        (
            EventSink {
                tx,
                in_flight: Default::default(),
            },
            out_rx,
        )
    }

    /// Delivers one event; returns its uid once the agent has it on disk.
    pub async fn send(&self, event: IntakeEvent) -> Result<uuid::Uuid, Error> {
        // A guard, so a cancelled send is not counted forever.
        struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _guard = InFlight(&self.in_flight);
        self.send_inner(event).await
    }

    /// Whether no [`EventSink::send`] of this sink or its clones is waiting for an answer.
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 0
    }

    async fn send_inner(&self, mut event: IntakeEvent) -> Result<uuid::Uuid, Error> {
        event.uid.get_or_insert_with(uuid::Uuid::now_v7);
        let line = serde_json::to_vec(&event).map_err(|e| Error::Refused {
            code: "event.malformed".into(),
            message: e.to_string(),
        })?;
        let (done, wait) = oneshot::channel();
        self.tx
            .send((line, done))
            .await
            .map_err(|_| Error::Closed)?;
        wait.await.map_err(|_| Error::Closed)?
    }
}

async fn run(addr: IntakeAddr, mut rx: mpsc::Receiver<Pending>) {
    let mut backoff = Duration::from_millis(100);
    let mut conn: Option<Box<dyn Conn>> = None;
    while let Some(first) = rx.recv().await {
        let mut burst = vec![first];
        while burst.len() < BURST {
            match rx.try_recv() {
                Ok(p) => burst.push(p),
                Err(_) => break,
            }
        }
        loop {
            if conn.is_none() {
                match open(&addr).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "agent intake unreachable; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match exchange(c.as_mut(), &burst).await {
                Ok(acks) => {
                    backoff = Duration::from_millis(100);
                    for ((_, done), ack) in burst.drain(..).zip(acks) {
                        let answer = match (ack.ok, ack.uid) {
                            (true, Some(uid)) => Ok(uid),
                            _ => Err(Error::Refused {
                                code: ack.code.unwrap_or_else(|| "intake.refused".into()),
                                message: ack.message.unwrap_or_default(),
                            }),
                        };
                        let _ = done.send(answer);
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "agent intake connection lost; resending");
                    conn = None;
                }
            }
        }
    }
}

trait Conn: AsyncBufRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncBufRead + AsyncWrite + Unpin + Send> Conn for T {}

async fn open(addr: &IntakeAddr) -> std::io::Result<Box<dyn Conn>> {
    Ok(match addr {
        IntakeAddr::Unix(p) => Box::new(BufReader::new(tokio::net::UnixStream::connect(p).await?)),
        IntakeAddr::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await?;
            s.set_nodelay(true)?;
            Box::new(BufReader::new(s))
        }
    })
}

async fn exchange(c: &mut dyn Conn, burst: &[Pending]) -> std::io::Result<Vec<IntakeAck>> {
    let mut out = Vec::new();
    for (line, _) in burst {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    c.write_all(&out).await?;
    c.flush().await?;
    let mut acks = Vec::with_capacity(burst.len());
    let mut buf = String::new();
    while acks.len() < burst.len() {
        buf.clear();
        if c.read_line(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let ack: IntakeAck = serde_json::from_str(buf.trim_end())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        acks.push(ack);
    }
    Ok(acks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeysens_core::model::Protocol;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            IntakeAddr::parse("unix:/run/x.sock").unwrap(),
            IntakeAddr::Unix("/run/x.sock".into())
        );
        assert_eq!(
            IntakeAddr::parse("tcp:10.0.0.1:7777").unwrap(),
            IntakeAddr::Tcp("10.0.0.1:7777".into())
        );
        assert!(IntakeAddr::parse("10.0.0.1:7777").is_err());
    }

    #[tokio::test]
    async fn channel_sink_fixes_the_uid_before_delivery() {
        let (sink, mut rx) = EventSink::channel(4);
        let ev = IntakeEvent::new(
            "192.0.2.1".parse().unwrap(),
            Protocol::Tcp,
            "conn.attempt",
            "x",
        );
        let uid = sink.send(ev).await.unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(got.uid, Some(uid));
        assert_eq!(got.type_code, "conn.attempt");
    }
}
