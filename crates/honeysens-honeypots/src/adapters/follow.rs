//! Following a growing upstream JSON log, like `tail -F`, without losing or duplicating lines.
//!
//! The offset of the next unread line is kept in a small state file, written (atomically)
//! only after every event before it is acknowledged by the agent; a restart resumes there.
//! A line re-read after a crash gets the same `uid` (a hash of the file's identity, the line's
//! offset and its bytes), so a resend is stored once on the server.
//!
//! Rotation by rename (cowrie, logrotate `create`) is detected by the path's inode changing:
//! the old file is read to its end first, then the new one from offset 0. When the follower
//! was down during a rotation, the old file is found again by inode in the same directory.
//! Truncation in place (`copytruncate`) restarts at offset 0.

use super::{AdapterError, Format};
use crate::sink::EventSink;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How to follow one log file.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// The upstream format.
    pub format: Format,
    /// The log file (it may not exist yet).
    pub path: PathBuf,
    /// Where the offset is remembered; default `<path>.honeysens-offset`.
    pub state_file: PathBuf,
    /// How often to look for new lines and rotation.
    pub poll_interval: Duration,
    /// Longer lines are counted as malformed and skipped.
    pub max_line: usize,
    /// Replaces the events' `service` (`cowrie`/`opencanary`), e.g. with the sensor service
    /// name the agent passes in `HONEYSENS_SERVICE`.
    pub service: Option<String>,
}

impl FollowOptions {
    /// Defaults for `path`: state file beside it, 250 ms polling, 1 MiB lines.
    pub fn new(format: Format, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut state = path.clone().into_os_string();
        state.push(".honeysens-offset");
        FollowOptions {
            format,
            path,
            state_file: state.into(),
            poll_interval: Duration::from_millis(250),
            max_line: 1 << 20,
            service: None,
        }
    }
}

/// Counters of one [`follow`] run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FollowStats {
    /// Complete lines read.
    pub lines: u64,
    /// Events acknowledged by the agent.
    pub events: u64,
    /// Lines deliberately not mapped (`Ok(None)`).
    pub skipped: u64,
    /// Lines that could not be translated (logged and skipped).
    pub malformed: u64,
    /// Events the agent refused as invalid (logged and dropped).
    pub refused: u64,
    /// Rotations or truncations seen.
    pub rotations: u64,
}

/// Follows `path` with default [`FollowOptions`] until `shutdown` completes.
pub async fn follow(
    format: Format,
    path: impl Into<PathBuf>,
    sink: &EventSink,
    shutdown: impl Future<Output = ()>,
) -> Result<FollowStats, AdapterError> {
    follow_with(&FollowOptions::new(format, path), sink, shutdown).await
}

/// Most events delivered before the offset is saved.
const BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct State {
    dev: u64,
    ino: u64,
    offset: u64,
}

struct Open {
    file: tokio::fs::File,
    dev: u64,
    ino: u64,
    /// Offset of the first byte of `buf` (the next line to deliver).
    offset: u64,
    /// Bytes read but not yet delivered (at most a partial line once a batch is done).
    buf: Vec<u8>,
    /// Dropping the rest of an over-long line up to its newline.
    discarding: bool,
}

/// Follows the file in `opts` and sends every translated line through `sink` until
/// `shutdown` completes; returns the counters. Fails only when the sink is closed or the
/// state file cannot be written (nothing is lost either way: the offset is not advanced).
pub async fn follow_with(
    opts: &FollowOptions,
    sink: &EventSink,
    shutdown: impl Future<Output = ()>,
) -> Result<FollowStats, AdapterError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut stats = FollowStats::default();
    let mut cur = resume(opts).await?;
    loop {
        if cur.is_none() {
            cur = open_at(&opts.path, 0).await?;
        }
        let mut progressed = false;
        if let Some(c) = cur.as_mut() {
            progressed = read_more(c, &opts.path).await?;
            deliver(opts, c, sink, &mut stats, false).await?;
            if !progressed {
                match identity(&opts.path).await {
                    Some((dev, ino, _)) if (dev, ino) != (c.dev, c.ino) => {
                        // Rotated: the writer has moved on, so read what is left of the old
                        // file, take a last unterminated line as complete, then switch.
                        read_more(c, &opts.path).await?;
                        deliver(opts, c, sink, &mut stats, true).await?;
                        tracing::info!(path = %opts.path.display(), "log rotated; following the new file");
                        stats.rotations += 1;
                        cur = open_at(&opts.path, 0).await?;
                        if let Some(n) = cur.as_ref() {
                            save(opts, n).await?;
                        }
                        continue;
                    }
                    Some((_, _, len)) if len < c.offset + c.buf.len() as u64 => {
                        tracing::info!(path = %opts.path.display(), "log truncated; starting again at 0");
                        stats.rotations += 1;
                        c.file
                            .seek(std::io::SeekFrom::Start(0))
                            .await
                            .map_err(|e| io(&opts.path, e))?;
                        c.offset = 0;
                        c.buf.clear();
                        c.discarding = false;
                        save(opts, c).await?;
                        continue;
                    }
                    _ => {}
                }
            }
        }
        if progressed {
            // More may be waiting; look for shutdown without sleeping.
            if futures_util::FutureExt::now_or_never(&mut shutdown).is_some() {
                break;
            }
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(opts.poll_interval) => {}
        }
    }
    tracing::info!(?stats, path = %opts.path.display(), "stopped following");
    Ok(stats)
}

fn io(path: &Path, source: std::io::Error) -> AdapterError {
    AdapterError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `(dev, inode, length)` of `path`, `None` when it does not exist (between rotations).
async fn identity(path: &Path) -> Option<(u64, u64, u64)> {
    let m = tokio::fs::metadata(path).await.ok()?;
    Some((m.dev(), m.ino(), m.len()))
}

async fn open_at(path: &Path, offset: u64) -> Result<Option<Open>, AdapterError> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    let m = file.metadata().await.map_err(|e| io(path, e))?;
    // An offset beyond the end means the file was truncated while we were away.
    let offset = if offset > m.len() { 0 } else { offset };
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| io(path, e))?;
    Ok(Some(Open {
        file,
        dev: m.dev(),
        ino: m.ino(),
        offset,
        buf: Vec::new(),
        discarding: false,
    }))
}

/// Where to start: the saved file and offset when that file still exists (at `path`, or
/// renamed by a rotation in the same directory), else the start of `path`.
async fn resume(opts: &FollowOptions) -> Result<Option<Open>, AdapterError> {
    let raw = match tokio::fs::read(&opts.state_file).await {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return open_at(&opts.path, 0).await,
        Err(e) => return Err(io(&opts.state_file, e)),
    };
    let st: State =
        serde_json::from_slice(&raw).map_err(|_| AdapterError::State(opts.state_file.clone()))?;
    if let Some((dev, ino, _)) = identity(&opts.path).await
        && (dev, ino) == (st.dev, st.ino)
    {
        return open_at(&opts.path, st.offset).await;
    }
    let dir = match opts.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if let Ok(m) = entry.metadata().await
                && m.is_file()
                && (m.dev(), m.ino()) == (st.dev, st.ino)
            {
                tracing::info!(file = %entry.path().display(), "resuming in the rotated log");
                return open_at(&entry.path(), st.offset).await;
            }
        }
    }
    tracing::warn!(path = %opts.path.display(), "the file of the saved offset is gone; starting at the beginning of the current log");
    open_at(&opts.path, 0).await
}

/// Reads what is available (up to a few MiB); true when anything was read.
async fn read_more(c: &mut Open, path: &Path) -> Result<bool, AdapterError> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut any = false;
    while c.buf.len() < 4 << 20 {
        let n = c.file.read(&mut chunk).await.map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        c.buf.extend_from_slice(&chunk[..n]);
        any = true;
    }
    Ok(any)
}

/// Translates and delivers the complete lines in `c.buf` (all of it when `eof`), saving the
/// offset after each acknowledged batch.
async fn deliver(
    opts: &FollowOptions,
    c: &mut Open,
    sink: &EventSink,
    stats: &mut FollowStats,
    eof: bool,
) -> Result<(), AdapterError> {
    let mut start = 0usize;
    let mut batch = Vec::new();
    loop {
        let end = match c.buf[start..].iter().position(|&b| b == b'\n') {
            Some(i) => start + i + 1,
            None if eof && start < c.buf.len() => c.buf.len(),
            None => {
                if c.buf.len() - start > opts.max_line {
                    // No newline within the limit: drop what we have and the rest of the line.
                    stats.malformed += 1;
                    tracing::warn!(
                        offset = c.offset + start as u64,
                        "log line longer than {} bytes skipped",
                        opts.max_line
                    );
                    start = c.buf.len();
                    c.discarding = true;
                }
                break;
            }
        };
        let line_offset = c.offset + start as u64;
        let raw = &c.buf[start..end];
        start = end;
        if std::mem::take(&mut c.discarding) {
            continue;
        }
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t.trim(),
            Err(_) => {
                stats.lines += 1;
                stats.malformed += 1;
                tracing::warn!(offset = line_offset, "log line is not UTF-8; skipped");
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        stats.lines += 1;
        match opts.format.translate(text) {
            Ok(Some(mut ev)) => {
                ev.uid = Some(line_uid(opts.format, c.dev, c.ino, line_offset, raw));
                if let Some(s) = &opts.service {
                    ev.service = Some(s.clone());
                }
                batch.push(ev);
            }
            Ok(None) => stats.skipped += 1,
            Err(e) => {
                stats.malformed += 1;
                tracing::warn!(offset = line_offset, error = %e, format = %opts.format, "log line not translated; skipped");
            }
        }
        if batch.len() >= BATCH {
            send_batch(sink, std::mem::take(&mut batch), stats).await?;
            commit(opts, c, start).await?;
            start = 0;
        }
    }
    send_batch(sink, batch, stats).await?;
    if start > 0 {
        commit(opts, c, start).await?;
    }
    Ok(())
}

/// Drops the delivered `n` bytes from the buffer and saves the new offset.
async fn commit(opts: &FollowOptions, c: &mut Open, n: usize) -> Result<(), AdapterError> {
    c.buf.drain(..n);
    c.offset += n as u64;
    save(opts, c).await
}

async fn send_batch(
    sink: &EventSink,
    batch: Vec<honeysens_core::protocol::IntakeEvent>,
    stats: &mut FollowStats,
) -> Result<(), AdapterError> {
    if batch.is_empty() {
        return Ok(());
    }
    // All sends in flight at once: the sink pipelines them into one burst.
    let results = futures_util::future::join_all(batch.into_iter().map(|ev| sink.send(ev))).await;
    for r in results {
        match r {
            Ok(_) => stats.events += 1,
            Err(crate::Error::Refused { code, message }) => {
                stats.refused += 1;
                tracing::warn!(%code, %message, "the agent refused a translated event");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes the state file atomically (temporary file + rename).
async fn save(opts: &FollowOptions, c: &Open) -> Result<(), AdapterError> {
    let st = State {
        dev: c.dev,
        ino: c.ino,
        offset: c.offset,
    };
    let body =
        serde_json::to_vec(&st).map_err(|e| io(&opts.state_file, std::io::Error::other(e)))?;
    let mut tmp = opts.state_file.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, body)
        .await
        .map_err(|e| io(&tmp, e))?;
    tokio::fs::rename(&tmp, &opts.state_file)
        .await
        .map_err(|e| io(&opts.state_file, e))
}

/// The event uid of the line at `offset` of file `(dev, ino)`: the same line always gets the
/// same uid, so a line resent after a restart is stored once (UUIDv8 from SHA-256).
pub(crate) fn line_uid(format: Format, dev: u64, ino: u64, offset: u64, line: &[u8]) -> uuid::Uuid {
    let mut h = Sha256::new();
    h.update(b"honeysens-adapter\0");
    h.update(format.name().as_bytes());
    h.update(dev.to_be_bytes());
    h.update(ino.to_be_bytes());
    h.update(offset.to_be_bytes());
    h.update(line);
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
