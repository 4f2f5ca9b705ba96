//! Upload: pushes spooled events to the server as soon as they arrive (batched within a short
//! window), in spool order, acknowledging them in the spool only after the server answered.
//!
//! - Accepted and duplicate events (a retry of an upload whose answer was lost) are done.
//! - Events the server rejects are appended with the reason to a dead-letter file
//!   (`dead-letter.jsonl`) and done: they never block the queue.
//! - While the server is unreachable: exponential backoff with jitter (0.5 s doubling to 60 s),
//!   nothing acknowledged, so the spool drains in order once the server is back.

use crate::spool::{Seq, Spool};
use honeysens_core::protocol::{EventUploadResult, Transport, TransportError};
use rand::RngExt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Most events per upload.
pub const MAX_BATCH_EVENTS: usize = 500;
/// Most bytes of events per upload (the server takes bodies up to 2 MiB).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Tunables of the upload loop.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// How long to wait after the first new event for more to join the batch.
    pub batch_window: Duration,
    /// First retry delay after a failure.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Where rejected events go.
    pub dead_letter: PathBuf,
}

/// Counters the agent reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Events the server accepted (or had already).
    pub delivered: u64,
    /// Events the server rejected (in the dead-letter file).
    pub rejected: u64,
    /// Failed upload attempts.
    pub failures: u64,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
}

/// Picks the transport in force for each attempt (it changes when the server moves or the
/// certificate is renewed).
pub type TransportSource = watch::Receiver<Arc<dyn Transport>>;

/// Runs the upload loop until `stop` turns true; then makes one last attempt to drain.
pub async fn run(
    spool: Arc<Spool>,
    transport: TransportSource,
    stored: Arc<Notify>,
    options: UploadOptions,
    stats: watch::Sender<UploadStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            // Last chance before exit; whatever is left stays spooled for the next start.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                drain_once(&spool, &transport, &options, &stats),
            )
            .await;
            return;
        }
        match drain_once(&spool, &transport, &options, &stats).await {
            Ok(true) => {
                failures = 0;
                continue;
            }
            Ok(false) => {
                failures = 0;
                // Nothing pending: wait for new events, then let a batch gather.
                tokio::select! {
                    _ = stored.notified() => {}
                    _ = stop.changed() => continue,
                    // Safety net: a notification can race with a peek that just missed it.
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(options.batch_window) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = backoff(&options, failures);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "event upload failed");
                stats.send_modify(|s| {
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// Exponential backoff with ±50 % jitter, so a fleet coming back does not arrive in step.
fn backoff(options: &UploadOptions, failures: u32) -> Duration {
    let base = options
        .backoff_min
        .saturating_mul(1u32 << failures.min(16).saturating_sub(1))
        .min(options.backoff_max);
    let factor = rand::rng().random_range(0.5..1.5);
    base.mul_f64(factor).min(options.backoff_max)
}

/// Uploads one batch; `Ok(true)` if there was something to send.
async fn drain_once(
    spool: &Arc<Spool>,
    transport: &TransportSource,
    options: &UploadOptions,
    stats: &watch::Sender<UploadStats>,
) -> Result<bool, TransportError> {
    let sp = spool.clone();
    let batch = tokio::task::spawn_blocking(move || sp.peek(MAX_BATCH_EVENTS, MAX_BATCH_BYTES))
        .await
        .map_err(|e| TransportError::Unavailable(e.to_string()))?
        .map_err(|e| TransportError::Unavailable(format!("spool: {e}")))?;
    let Some(&(last, _)) = batch.last() else {
        return Ok(false);
    };
    // Only well-formed JSON objects go on the wire: one bad record must not spoil the body.
    let mut events = Vec::with_capacity(batch.len());
    let mut local_rejects = Vec::new();
    for (seq, record) in batch {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&record).is_ok() {
            events.push((seq, record));
        } else {
            local_rejects.push((seq, record));
        }
    }
    let current = transport.borrow().clone();
    let result = if events.is_empty() {
        EventUploadResult::default()
    } else {
        let bodies: Vec<Vec<u8>> = events.iter().map(|(_, r)| r.clone()).collect();
        current.upload_events(&bodies).await?
    };
    let mut dead = Vec::new();
    for (_, record) in &local_rejects {
        dead.push(dead_letter_line(
            record,
            "event.malformed",
            "not a JSON object",
        ));
    }
    for r in &result.rejected {
        if let Some((_, record)) = events.get(r.index) {
            dead.push(dead_letter_line(record, &r.code, &r.message));
        }
    }
    if !dead.is_empty() {
        let path = options.dead_letter.clone();
        let lines = dead.clone();
        tokio::task::spawn_blocking(move || append_lines(&path, &lines))
            .await
            .map_err(|e| TransportError::Unavailable(e.to_string()))?
            .map_err(|e| TransportError::Unavailable(format!("dead-letter file: {e}")))?;
        tracing::warn!(
            events = dead.len(),
            "events rejected, kept in the dead-letter file"
        );
    }
    ack(spool, last).await?;
    let delivered = (result.accepted.len() + result.duplicates.len()) as u64;
    stats.send_modify(|s| {
        s.delivered += delivered;
        s.rejected += dead.len() as u64;
        s.last_error = None;
    });
    Ok(true)
}

async fn ack(spool: &Arc<Spool>, last: Seq) -> Result<(), TransportError> {
    let sp = spool.clone();
    tokio::task::spawn_blocking(move || sp.ack_through(last))
        .await
        .map_err(|e| TransportError::Unavailable(e.to_string()))?
        .map_err(|e| TransportError::Unavailable(format!("spool: {e}")))
}

fn dead_letter_line(record: &[u8], code: &str, message: &str) -> Vec<u8> {
    let event = serde_json::from_slice::<serde_json::Value>(record)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(record).into()));
    let mut line = serde_json::to_vec(&serde_json::json!({
        "rejected_at": honeysens_core::time::now(),
        "code": code,
        "message": message,
        "event": event,
    }))
    .unwrap_or_default();
    line.push(b'\n');
    line
}

/// Appends and fsyncs, so a rejected event is never lost between spool and dead-letter file.
fn append_lines(path: &std::path::Path, lines: &[Vec<u8>]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for l in lines {
        f.write_all(l)?;
    }
    f.sync_data()
}
