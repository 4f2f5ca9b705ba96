//! Durable, bounded on-disk event spool of the sensor agent.
//!
//! Honeypot services hand their events to the agent, which writes each one here *before*
//! acknowledging it and uploads them to the server later. The spool survives a process crash
//! (`kill -9`) and a server outage without dropping an acknowledged event, and does not hand
//! out again what the uploader has acknowledged with [`Spool::ack_through`].
//!
//! # On-disk format
//!
//! A spool directory (created with mode 0700) holds:
//!
//! * `<first seq, 20 digits>.seg`: append-only segment files. Each starts with the 8-byte
//!   magic `HSSPSEG1`, followed by records framed as
//!
//!   | bytes | field                                                        |
//!   |-------|--------------------------------------------------------------|
//!   | 4     | payload length, u32 little endian                            |
//!   | 4     | CRC32 (IEEE, `crc32fast`) over length, seq and payload, LE   |
//!   | 8     | seq, u64 little endian                                       |
//!   | n     | payload                                                      |
//!
//!   The seqs inside a segment are contiguous and start at the seq in the file name, so a
//!   sealed segment holds exactly the seqs from its name up to the next segment's name.
//!   Only the newest segment (the *active* one) is ever appended to; it is sealed (fsynced)
//!   and a new one is started once the next record would grow it past `segment_bytes`.
//! * `ack`: the ack cursor, 20 bytes: magic `HSSPACK1`, the highest acknowledged seq (u64 LE)
//!   and a CRC32 of both (u32 LE). It is replaced atomically: written to `ack.tmp`, fsynced,
//!   renamed over `ack`, and the directory fsynced.
//! * `lock`: held with an exclusive advisory lock while a [`Spool`] is open, so two agents
//!   never share a directory ([`SpoolError::Locked`]).
//!
//! # Guarantees
//!
//! * With [`FsyncPolicy::Always`] a record whose append returned `Ok` is on stable storage;
//!   with [`FsyncPolicy::Interval`] it is in the OS page cache at once (survives a process
//!   crash) and on stable storage within the interval (a power loss can lose that much).
//! * Records are handed out by [`Spool::peek`] in seq order; seqs increase monotonically across
//!   restarts and are never reused once their record is durable or acknowledged (the seq of a
//!   torn record cut off on open, which never reached stable storage, is assigned again).
//! * Delivery is at least once: a record appended but not yet acknowledged is returned again
//!   after a restart (the server dedups events by their uuid); a record at or below the
//!   durable ack cursor is never returned again.
//! * [`Spool::append_batch`] is all-or-nothing in memory: on an error nothing of the batch is
//!   visible and the files are rolled back. A crash in the middle of a batch can leave a prefix
//!   of it on disk; none of it had been acknowledged to the producer, so handing it out again is
//!   within the at-least-once contract.
//! * Recovery on [`Spool::open`] never fails because of a torn or garbled tail: the active
//!   segment is scanned and cut back to its last intact record (logged with `tracing::warn!`).
//!   Sealed segments are not parsed on open (their record counts follow from the file names);
//!   corruption inside one is found when [`Spool::peek`] reads it: the rest of that segment is
//!   skipped with a `tracing::error!`, counted in [`SpoolStats`], and reading goes on with the
//!   next segment.
//! * The segment files never take more than `max_bytes` together; what happens when they would
//!   is chosen by [`FullPolicy`].

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Record number: assigned by the spool on append, increasing by one per record, never reused
/// (it survives restarts). The first record of a new spool gets seq 1.
pub type Seq = u64;

const SEGMENT_MAGIC: &[u8; 8] = b"HSSPSEG1";
const SEGMENT_HEADER_LEN: u64 = 8;
const FRAME_HEADER_LEN: u64 = 16;
const ACK_MAGIC: &[u8; 8] = b"HSSPACK1";
const ACK_FILE: &str = "ack";
const ACK_TMP_FILE: &str = "ack.tmp";
const LOCK_FILE: &str = "lock";
const SEGMENT_EXT: &str = "seg";
const SEGMENT_NAME_DIGITS: usize = 20;
/// Smallest accepted `segment_bytes`.
pub const MIN_SEGMENT_BYTES: u64 = 256;
/// Largest accepted `segment_bytes` (record lengths are stored as u32).
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` before [`Spool::append_batch`] returns: one per batch (plus one per segment
    /// sealed on the way). Nothing acknowledged is lost, not even on power loss.
    Always,
    /// Fsync at most every this long: by the appending call once the interval has passed since
    /// the last sync, and otherwise by a background thread. A process crash loses nothing (the
    /// data is in the page cache), but a power loss or kernel crash can lose the records
    /// appended during the last interval. `Interval(Duration::ZERO)` behaves as `Always`.
    /// The ack cursor and segment rollovers are fsynced regardless.
    Interval(Duration),
}

/// What an append does when the segment files would exceed `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    /// The append fails with [`SpoolError::Full`] and writes nothing; nothing already
    /// acknowledged is lost. Counted in [`SpoolStats::rejected_appends`].
    RejectNew,
    /// The oldest segments are deleted, unacked records and all, until the new records fit
    /// (the newest data wins). Each drop is logged with `tracing::warn!` and counted in
    /// [`SpoolStats::dropped_records`] and [`SpoolStats::dropped_segments`].
    DropOldest,
}

/// Tuning of a [`Spool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Upper bound on the bytes of all segment files together (at least `segment_bytes`).
    pub max_bytes: u64,
    /// Target size of one segment file, between [`MIN_SEGMENT_BYTES`] and
    /// [`MAX_SEGMENT_BYTES`]; a record whose frame does not fit into an empty segment is
    /// refused with [`SpoolError::RecordTooLarge`].
    pub segment_bytes: u64,
    /// When appends reach stable storage.
    pub fsync: FsyncPolicy,
    /// What to do when the spool is full.
    pub when_full: FullPolicy,
}

impl Default for SpoolOptions {
    /// 256 MiB in 8 MiB segments, fsync on every append, reject new records when full.
    fn default() -> Self {
        SpoolOptions {
            max_bytes: 256 * 1024 * 1024,
            segment_bytes: 8 * 1024 * 1024,
            fsync: FsyncPolicy::Always,
            when_full: FullPolicy::RejectNew,
        }
    }
}

impl SpoolOptions {
    fn validate(&self) -> Result<(), SpoolError> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(SpoolError::InvalidOptions(format!(
                "segment_bytes must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            )));
        }
        if self.max_bytes < self.segment_bytes {
            return Err(SpoolError::InvalidOptions(format!(
                "max_bytes ({}) must be at least segment_bytes ({})",
                self.max_bytes, self.segment_bytes
            )));
        }
        Ok(())
    }

    /// Largest payload a single record may have with these options.
    pub fn max_record_bytes(&self) -> u64 {
        self.segment_bytes
            .saturating_sub(SEGMENT_HEADER_LEN + FRAME_HEADER_LEN)
    }
}

/// Counters and gauges of a [`Spool`]. Counters count since [`Spool::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SpoolStats {
    /// Unacknowledged records on disk (an upper bound while a segment with undiscovered
    /// corruption is still unread).
    pub depth: u64,
    /// Bytes of all segment files (what `max_bytes` limits).
    pub bytes_on_disk: u64,
    /// Number of segment files.
    pub segments: u64,
    /// Unacknowledged records deleted by [`FullPolicy::DropOldest`].
    pub dropped_records: u64,
    /// Segments deleted by [`FullPolicy::DropOldest`].
    pub dropped_segments: u64,
    /// Records refused with [`SpoolError::Full`].
    pub rejected_appends: u64,
    /// Segments in which [`Spool::peek`] found corruption and skipped the rest.
    pub corrupt_segments: u64,
    /// Records lost to such skipped corruption.
    pub corrupt_records: u64,
    /// Bytes cut off the torn tail of the active segment on open.
    pub truncated_tail_bytes: u64,
    /// Seq the next appended record will get.
    pub next_seq: Seq,
    /// Highest acknowledged seq (0 if none yet).
    pub acked_through: Seq,
}

/// Errors of the spool.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool is at `max_bytes` under [`FullPolicy::RejectNew`] (or the batch alone is larger
    /// than `max_bytes`); nothing of the call was written.
    #[error("spool is full")]
    Full,
    /// A record does not fit into an empty segment (see [`SpoolOptions::max_record_bytes`]);
    /// nothing of the call was written.
    #[error("record is larger than a spool segment allows")]
    RecordTooLarge,
    /// Another [`Spool`] (in this or another process) has the directory open.
    #[error("spool directory is locked by another spool")]
    Locked,
    /// The [`SpoolOptions`] are out of range.
    #[error("invalid spool options: {0}")]
    InvalidOptions(String),
    /// A file operation failed.
    #[error("spool i/o error: {0}")]
    Io(#[from] io::Error),
    /// The spool is in a state it cannot repair by itself (e.g. rolling back a failed append
    /// failed too); reopening it runs recovery.
    #[error("spool is corrupt: {0}")]
    Corrupt(String),
}

/// The durable event spool. `Send + Sync`; all methods take `&self` and serialise on an
/// internal mutex (they block on file I/O: call them from `spawn_blocking` in async code).
pub struct Spool {
    inner: Arc<Mutex<State>>,
    flusher: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.inner);
        f.debug_struct("Spool")
            .field("dir", &st.dir)
            .field("next_seq", &st.next_seq)
            .field("acked", &st.acked)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Seq of the first record (the file name).
    first: Seq,
    /// One past the seq of the last (readable) record.
    end: Seq,
    /// File size in bytes.
    len: u64,
    /// Bytes that can be read as records: `len`, or where corruption was found.
    readable: u64,
}

/// A read position: the record at `offset` in segment `seg_first` should have seq `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadPos {
    seg_first: Seq,
    offset: u64,
    seq: Seq,
}

struct State {
    dir: PathBuf,
    opts: SpoolOptions,
    _lock: File,
    /// Oldest first; never empty, the last one is the active segment.
    segments: VecDeque<Segment>,
    active: File,
    next_seq: Seq,
    acked: Seq,
    dirty: bool,
    last_sync: Instant,
    /// At or before the first unacked record.
    read: ReadPos,
    /// Positions just past each record returned by the last peek, to move `read` on ack.
    peeked: Vec<ReadPos>,
    broken: Option<String>,
    stats: SpoolStats,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn segment_path(dir: &Path, first: Seq) -> PathBuf {
    dir.join(format!(
        "{first:0width$}.{SEGMENT_EXT}",
        width = SEGMENT_NAME_DIGITS
    ))
}

fn parse_segment_name(name: &str) -> Option<Seq> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != SEGMENT_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn new_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Creates an empty segment (header only), fsyncs it and the directory.
fn create_segment(dir: &Path, first: Seq) -> io::Result<File> {
    let path = segment_path(dir, first);
    let mut f = new_file_options()
        .write(true)
        .create_new(true)
        .open(&path)?;
    f.write_all(SEGMENT_MAGIC)?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(f)
}

fn frame_crc(len: u32, seq: Seq, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn frame_len(payload_len: usize) -> u64 {
    FRAME_HEADER_LEN + payload_len as u64
}

fn encode_frame(buf: &mut Vec<u8>, seq: Seq, payload: &[u8]) -> Result<(), SpoolError> {
    let len = u32::try_from(payload.len()).map_err(|_| SpoolError::RecordTooLarge)?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&frame_crc(len, seq, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(())
}

enum FrameError {
    Corrupt(String),
    Io(io::Error),
}

/// Reads the frame at `offset` (the reader is positioned there), which must end at or before
/// `limit` and carry seq `expected`.
fn read_frame(
    r: &mut impl Read,
    offset: u64,
    limit: u64,
    expected: Seq,
) -> Result<(Vec<u8>, u64), FrameError> {
    if offset + FRAME_HEADER_LEN > limit {
        return Err(FrameError::Corrupt(format!(
            "incomplete frame header at offset {offset} ({} bytes left)",
            limit.saturating_sub(offset)
        )));
    }
    let mut hdr = [0u8; FRAME_HEADER_LEN as usize];
    r.read_exact(&mut hdr).map_err(FrameError::Io)?;
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let seq = u64::from_le_bytes([
        hdr[8], hdr[9], hdr[10], hdr[11], hdr[12], hdr[13], hdr[14], hdr[15],
    ]);
    let total = FRAME_HEADER_LEN + u64::from(len);
    if offset + total > limit {
        return Err(FrameError::Corrupt(format!(
            "frame at offset {offset} claims {len} payload bytes, beyond the end ({limit})"
        )));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).map_err(FrameError::Io)?;
    if frame_crc(len, seq, &payload) != crc {
        return Err(FrameError::Corrupt(format!(
            "checksum mismatch in frame at offset {offset}"
        )));
    }
    if seq != expected {
        return Err(FrameError::Corrupt(format!(
            "frame at offset {offset} has seq {seq}, expected {expected}"
        )));
    }
    Ok((payload, total))
}

/// Checks the segment magic; the reader is at offset 0.
fn read_magic(r: &mut impl Read, file_len: u64) -> Result<(), FrameError> {
    if file_len < SEGMENT_HEADER_LEN {
        return Err(FrameError::Corrupt("segment header is incomplete".into()));
    }
    let mut magic = [0u8; SEGMENT_HEADER_LEN as usize];
    r.read_exact(&mut magic).map_err(FrameError::Io)?;
    if &magic != SEGMENT_MAGIC {
        return Err(FrameError::Corrupt("bad segment magic".into()));
    }
    Ok(())
}

/// Scans a whole segment: returns the length of its intact prefix, the seq after its last
/// intact record and why the scan stopped early (if it did). `header_ok` is false when not even
/// the magic is intact.
struct Scan {
    valid_len: u64,
    end: Seq,
    header_ok: bool,
    problem: Option<String>,
}

fn scan_segment(path: &Path, first: Seq, file_len: u64) -> io::Result<Scan> {
    let mut r = BufReader::with_capacity(256 * 1024, File::open(path)?);
    match read_magic(&mut r, file_len) {
        Ok(()) => {}
        Err(FrameError::Io(e)) => return Err(e),
        Err(FrameError::Corrupt(why)) => {
            return Ok(Scan {
                valid_len: 0,
                end: first,
                header_ok: false,
                problem: Some(why),
            });
        }
    }
    let mut offset = SEGMENT_HEADER_LEN;
    let mut seq = first;
    while offset < file_len {
        match read_frame(&mut r, offset, file_len, seq) {
            Ok((_, n)) => {
                offset += n;
                seq += 1;
            }
            Err(FrameError::Io(e)) => return Err(e),
            Err(FrameError::Corrupt(why)) => {
                return Ok(Scan {
                    valid_len: offset,
                    end: seq,
                    header_ok: true,
                    problem: Some(why),
                });
            }
        }
    }
    Ok(Scan {
        valid_len: offset,
        end: seq,
        header_ok: true,
        problem: None,
    })
}

fn encode_ack(seq: Seq) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(ACK_MAGIC);
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&b[..16]);
    b[16..].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode_ack(b: &[u8]) -> Option<Seq> {
    if b.len() != 20 || &b[..8] != ACK_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
    if crc32fast::hash(&b[..16]) != crc {
        return None;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[8..16]);
    Some(u64::from_le_bytes(s))
}

fn write_ack(dir: &Path, seq: Seq) -> io::Result<()> {
    let tmp = dir.join(ACK_TMP_FILE);
    let mut f = new_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(&encode_ack(seq))?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(ACK_FILE))?;
    sync_dir(dir)
}

/// Reads the ack cursor; a missing file means nothing acked, an unreadable one is logged and
/// treated as nothing acked (everything on disk is handed out again; the server dedups).
fn read_ack(dir: &Path) -> io::Result<Seq> {
    match fs::read(dir.join(ACK_FILE)) {
        Ok(b) => match decode_ack(&b) {
            Some(s) => Ok(s),
            None => {
                tracing::error!(
                    dir = %dir.display(),
                    "spool ack cursor is corrupt; every record still on disk will be delivered again"
                );
                Ok(0)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

impl Spool {
    /// Opens (creating it with mode 0700 if needed) and recovers the spool in `dir`.
    ///
    /// Recovery scans only the active (newest) segment: a torn or garbled tail is cut off and
    /// logged; sealed segments that are fully acknowledged are deleted. Fails with
    /// [`SpoolError::Locked`] if another spool has `dir` open, with
    /// [`SpoolError::InvalidOptions`] for out-of-range options and with [`SpoolError::Io`]
    /// if the files cannot be read or written.
    pub fn open(dir: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
        opts.validate()?;
        create_dir(dir)?;
        let lock_file = new_file_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked),
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        match fs::remove_file(dir.join(ACK_TMP_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let acked = read_ack(dir)?;

        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(first) = parse_segment_name(name) {
                firsts.push((first, entry.metadata()?.len()));
            } else if name.ends_with(".seg") {
                tracing::warn!(dir = %dir.display(), file = name, "ignoring oddly named spool segment");
            }
        }
        firsts.sort_unstable();
        let mut segments: VecDeque<Segment> = VecDeque::with_capacity(firsts.len() + 1);
        for (i, &(first, len)) in firsts.iter().enumerate() {
            let end = firsts.get(i + 1).map_or(first, |n| n.0);
            segments.push_back(Segment {
                first,
                end,
                len,
                readable: len,
            });
        }

        let mut stats = SpoolStats::default();
        // Recover the active segment: cut a torn tail back to the last intact record.
        let mut active: Option<File> = None;
        let mut last_has_records = false;
        let mut last_header_ok = true;
        if let Some(last) = segments.back_mut() {
            let path = segment_path(dir, last.first);
            let scan = scan_segment(&path, last.first, last.len)?;
            if let Some(why) = &scan.problem {
                tracing::warn!(
                    segment = %path.display(),
                    kept_bytes = scan.valid_len,
                    cut_bytes = last.len - scan.valid_len,
                    reason = %why,
                    "spool: torn tail in active segment, truncating to the last intact record"
                );
                stats.truncated_tail_bytes = last.len - scan.valid_len;
            }
            last.end = scan.end;
            last_has_records = scan.end > last.first;
            last_header_ok = scan.header_ok;
            if scan.header_ok && scan.valid_len < last.len {
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(scan.valid_len)?;
                f.sync_all()?;
                last.len = scan.valid_len;
                last.readable = scan.valid_len;
                active = Some(f);
            }
        }
        let next_seq = segments
            .back()
            .map_or(1, |s| s.end)
            .max(acked.saturating_add(1))
            .max(1);
        let reuse_last = match segments.back() {
            Some(last) => last.end == next_seq && (last_has_records || last.first == next_seq),
            None => false,
        };
        let mut active = if reuse_last {
            let Some(last) = segments.back_mut() else {
                return Err(SpoolError::Corrupt("no active segment".into()));
            };
            let mut f = match active.take() {
                Some(f) => f,
                None => OpenOptions::new()
                    .write(true)
                    .open(segment_path(dir, last.first))?,
            };
            if !last_header_ok {
                // Empty segment with a torn or bad header: start it over.
                f.set_len(0)?;
                f.seek(SeekFrom::Start(0))?;
                f.write_all(SEGMENT_MAGIC)?;
                f.sync_all()?;
                last.len = SEGMENT_HEADER_LEN;
                last.readable = SEGMENT_HEADER_LEN;
            }
            f.seek(SeekFrom::Start(last.len))?;
            f
        } else {
            drop(active.take());
            if let Some(last) = segments.back()
                && !last_has_records
            {
                // An empty segment that does not start at next_seq: replace it.
                fs::remove_file(segment_path(dir, last.first))?;
                segments.pop_back();
            }
            let f = create_segment(dir, next_seq)?;
            segments.push_back(Segment {
                first: next_seq,
                end: next_seq,
                len: SEGMENT_HEADER_LEN,
                readable: SEGMENT_HEADER_LEN,
            });
            f
        };
        active.seek(SeekFrom::End(0))?;

        let front = segments
            .front()
            .copied()
            .ok_or_else(|| SpoolError::Corrupt("no active segment".into()))?;
        let mut state = State {
            dir: dir.to_path_buf(),
            opts,
            _lock: lock_file,
            segments,
            active,
            next_seq,
            acked,
            dirty: false,
            last_sync: Instant::now(),
            read: ReadPos {
                seg_first: front.first,
                offset: SEGMENT_HEADER_LEN,
                seq: front.first,
            },
            peeked: Vec::new(),
            broken: None,
            stats,
        };
        state.delete_acked_segments()?;

        let inner = Arc::new(Mutex::new(state));
        let flusher = match opts.fsync {
            FsyncPolicy::Interval(d) if !d.is_zero() => Some(spawn_flusher(&inner, d)?),
            _ => None,
        };
        Ok(Spool { inner, flusher })
    }

    /// Appends `records` as one unit and returns their seqs (consecutive, in order).
    ///
    /// All-or-nothing: if any record is too large ([`SpoolError::RecordTooLarge`]), the spool
    /// is full under [`FullPolicy::RejectNew`] ([`SpoolError::Full`]) or a write fails, nothing
    /// is appended. With [`FsyncPolicy::Always`] the batch costs one `fdatasync` (plus one per
    /// segment it fills up). A batch larger than a segment is spread over several segments.
    pub fn append_batch(&self, records: &[&[u8]]) -> Result<Vec<Seq>, SpoolError> {
        let mut st = lock(&self.inner);
        st.append_batch(records)
    }

    /// Appends one record; see [`Spool::append_batch`].
    pub fn append(&self, record: &[u8]) -> Result<Seq, SpoolError> {
        let seqs = self.append_batch(&[record])?;
        seqs.first()
            .copied()
            .ok_or_else(|| SpoolError::Corrupt("append returned no seq".into()))
    }

    /// Returns the oldest unacknowledged records in seq order, at most `max_records` of them
    /// and at most `max_bytes` of payload, except that one record is always returned if there
    /// is any (so a large record cannot block the spool). Does not consume them: the same
    /// records are returned again until [`Spool::ack_through`] acknowledges them.
    ///
    /// Corruption found inside a sealed segment skips the rest of that segment (logged with
    /// `tracing::error!`, counted in [`SpoolStats::corrupt_segments`]); reading goes on with
    /// the next segment.
    pub fn peek(
        &self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Seq, Vec<u8>)>, SpoolError> {
        let mut st = lock(&self.inner);
        st.peek(max_records, max_bytes)
    }

    /// Acknowledges every record up to and including `seq` (clamped to the last appended seq;
    /// a seq at or below the cursor is a no-op). The cursor is persisted atomically and
    /// durably before this returns; sealed segments holding only acknowledged records are
    /// deleted (the active segment stays and is reused).
    pub fn ack_through(&self, seq: Seq) -> Result<(), SpoolError> {
        let mut st = lock(&self.inner);
        st.ack_through(seq)
    }

    /// Forces appended records to stable storage now (useful with [`FsyncPolicy::Interval`]).
    pub fn flush(&self) -> Result<(), SpoolError> {
        let mut st = lock(&self.inner);
        st.sync_active()?;
        Ok(())
    }

    /// Current gauges and counters.
    pub fn stats(&self) -> SpoolStats {
        let st = lock(&self.inner);
        let mut s = st.stats;
        s.depth = st
            .segments
            .iter()
            .map(|seg| {
                seg.end
                    .saturating_sub(seg.first.max(st.acked.saturating_add(1)))
            })
            .sum();
        s.bytes_on_disk = st.total_bytes();
        s.segments = st.segments.len() as u64;
        s.next_seq = st.next_seq;
        s.acked_through = st.acked;
        s
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.flusher.take() {
            drop(stop);
            if handle.join().is_err() {
                tracing::warn!("spool fsync thread panicked");
            }
        }
        let mut st = lock(&self.inner);
        if let Err(e) = st.sync_active() {
            tracing::warn!(error = %e, "spool: final fsync failed");
        }
    }
}

fn spawn_flusher(
    inner: &Arc<Mutex<State>>,
    every: Duration,
) -> io::Result<(mpsc::Sender<()>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<()>();
    let weak: Weak<Mutex<State>> = Arc::downgrade(inner);
    let handle = std::thread::Builder::new()
        .name("spool-fsync".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                let Some(inner) = weak.upgrade() else { break };
                let mut st = lock(&inner);
                if let Err(e) = st.sync_active() {
                    tracing::warn!(error = %e, "spool: background fsync failed");
                }
            }
        })?;
    Ok((tx, handle))
}

/// Where an append stands, to roll back on failure.
struct Checkpoint {
    segments: usize,
    active_len: u64,
    next_seq: Seq,
}

impl State {
    fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    fn active_len(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.len)
    }

    fn sync_active(&mut self) -> io::Result<()> {
        if self.dirty {
            self.active.sync_data()?;
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Bytes the segment files grow by when `records` are appended, starting a new segment
    /// first if `fresh`.
    fn planned_growth(&self, records: &[&[u8]], fresh: bool) -> u64 {
        let seg_max = self.opts.segment_bytes;
        let mut growth = 0;
        let mut cur = if fresh {
            growth += SEGMENT_HEADER_LEN;
            SEGMENT_HEADER_LEN
        } else {
            self.active_len()
        };
        for r in records {
            let n = frame_len(r.len());
            if cur + n > seg_max && cur > SEGMENT_HEADER_LEN {
                growth += SEGMENT_HEADER_LEN;
                cur = SEGMENT_HEADER_LEN;
            }
            cur += n;
            growth += n;
        }
        growth
    }

    fn append_batch(&mut self, records: &[&[u8]]) -> Result<Vec<Seq>, SpoolError> {
        if let Some(why) = &self.broken {
            return Err(SpoolError::Corrupt(why.clone()));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let max_payload = self.opts.max_record_bytes();
        if records.iter().any(|r| r.len() as u64 > max_payload) {
            return Err(SpoolError::RecordTooLarge);
        }
        self.make_room(records)?;

        let cp = Checkpoint {
            segments: self.segments.len(),
            active_len: self.active_len(),
            next_seq: self.next_seq,
        };
        match self.write_records(records) {
            Ok(seqs) => Ok(seqs),
            Err(e) => {
                if let Err(rb) = self.rollback(&cp) {
                    let why = format!("append failed ({e}) and rolling it back failed ({rb})");
                    tracing::error!(dir = %self.dir.display(), "spool: {why}");
                    self.broken = Some(why);
                }
                Err(e.into())
            }
        }
    }

    /// Applies the [`FullPolicy`] until `records` fit into `max_bytes`.
    fn make_room(&mut self, records: &[&[u8]]) -> Result<(), SpoolError> {
        let max = self.opts.max_bytes;
        loop {
            if self.total_bytes() + self.planned_growth(records, false) <= max {
                return Ok(());
            }
            let n = records.len() as u64;
            match self.opts.when_full {
                FullPolicy::RejectNew => {
                    self.stats.rejected_appends += n;
                    return Err(SpoolError::Full);
                }
                FullPolicy::DropOldest => {
                    if self.segments.len() > 1 {
                        self.drop_oldest()?;
                    } else if self.active_len() > SEGMENT_HEADER_LEN
                        && self.planned_growth(records, true) <= max
                    {
                        // Only the active segment is left: seal it so that it can be dropped
                        // and the batch go into a fresh segment.
                        self.roll()?;
                    } else {
                        // The batch alone is larger than max_bytes.
                        self.stats.rejected_appends += n;
                        return Err(SpoolError::Full);
                    }
                }
            }
        }
    }

    fn drop_oldest(&mut self) -> io::Result<()> {
        let Some(seg) = self.segments.front().copied() else {
            return Ok(());
        };
        let path = segment_path(&self.dir, seg.first);
        fs::remove_file(&path)?;
        self.segments.pop_front();
        let unacked = seg
            .end
            .saturating_sub(seg.first.max(self.acked.saturating_add(1)));
        self.stats.dropped_records += unacked;
        self.stats.dropped_segments += 1;
        tracing::warn!(
            segment = %path.display(),
            first_seq = seg.first,
            end_seq = seg.end,
            dropped_records = unacked,
            total_dropped_records = self.stats.dropped_records,
            "spool full: dropped the oldest segment with unacknowledged records"
        );
        Ok(())
    }

    /// Seals the active segment (fsync) and starts a new one at `next_seq`.
    fn roll(&mut self) -> io::Result<()> {
        self.active.sync_data()?;
        self.dirty = false;
        self.last_sync = Instant::now();
        let first = self.next_seq;
        let f = create_segment(&self.dir, first)?;
        self.active = f;
        self.segments.push_back(Segment {
            first,
            end: first,
            len: SEGMENT_HEADER_LEN,
            readable: SEGMENT_HEADER_LEN,
        });
        Ok(())
    }

    fn flush_buf(&mut self, buf: &mut Vec<u8>, end: Seq) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.active.write_all(buf)?;
        self.dirty = true;
        if let Some(seg) = self.segments.back_mut() {
            seg.len += buf.len() as u64;
            seg.readable = seg.len;
            seg.end = end;
        }
        buf.clear();
        Ok(())
    }

    fn write_records(&mut self, records: &[&[u8]]) -> io::Result<Vec<Seq>> {
        let seg_max = self.opts.segment_bytes;
        let mut seqs = Vec::with_capacity(records.len());
        let mut buf = Vec::new();
        let mut seq = self.next_seq;
        for r in records {
            let n = frame_len(r.len());
            let cur = self.active_len() + buf.len() as u64;
            if cur + n > seg_max && cur > SEGMENT_HEADER_LEN {
                self.flush_buf(&mut buf, seq)?;
                self.next_seq = seq;
                self.roll()?;
            }
            encode_frame(&mut buf, seq, r).map_err(|_| io::Error::other("record too large"))?;
            seqs.push(seq);
            seq += 1;
        }
        self.flush_buf(&mut buf, seq)?;
        self.next_seq = seq;
        match self.opts.fsync {
            FsyncPolicy::Always => self.sync_active()?,
            FsyncPolicy::Interval(d) => {
                if self.last_sync.elapsed() >= d {
                    self.sync_active()?;
                }
            }
        }
        Ok(seqs)
    }

    fn rollback(&mut self, cp: &Checkpoint) -> io::Result<()> {
        while self.segments.len() > cp.segments {
            if let Some(seg) = self.segments.pop_back() {
                match fs::remove_file(segment_path(&self.dir, seg.first)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let Some(seg) = self.segments.back_mut() else {
            return Err(io::Error::other("no active segment left"));
        };
        let mut f = OpenOptions::new()
            .write(true)
            .open(segment_path(&self.dir, seg.first))?;
        f.set_len(cp.active_len)?;
        f.seek(SeekFrom::Start(cp.active_len))?;
        seg.len = cp.active_len;
        seg.readable = cp.active_len;
        seg.end = cp.next_seq;
        self.active = f;
        self.next_seq = cp.next_seq;
        self.peeked.clear();
        Ok(())
    }

    fn ack_through(&mut self, seq: Seq) -> Result<(), SpoolError> {
        let target = seq.min(self.next_seq.saturating_sub(1));
        if target > self.acked {
            write_ack(&self.dir, target)?;
            self.acked = target;
            if let Some(p) = self
                .peeked
                .iter()
                .find(|p| p.seq == target.saturating_add(1))
            {
                self.read = *p;
            }
        }
        self.delete_acked_segments()?;
        Ok(())
    }

    /// Deletes sealed segments whose records are all acknowledged.
    fn delete_acked_segments(&mut self) -> io::Result<()> {
        while self.segments.len() > 1 {
            let Some(seg) = self.segments.front().copied() else {
                break;
            };
            if seg.end > self.acked.saturating_add(1) {
                break;
            }
            fs::remove_file(segment_path(&self.dir, seg.first))?;
            self.segments.pop_front();
        }
        Ok(())
    }

    /// Index of the segment and position to start reading at.
    fn resolve_read(&self) -> (usize, ReadPos) {
        if let Some(i) = self
            .segments
            .iter()
            .position(|s| s.first == self.read.seg_first)
        {
            return (i, self.read);
        }
        let first = self.segments.front().map_or(self.next_seq, |s| s.first);
        (
            0,
            ReadPos {
                seg_first: first,
                offset: SEGMENT_HEADER_LEN,
                seq: first,
            },
        )
    }

    fn peek(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Seq, Vec<u8>)>, SpoolError> {
        self.peeked.clear();
        let mut out: Vec<(Seq, Vec<u8>)> = Vec::new();
        if max_records == 0 {
            return Ok(out);
        }
        let (mut idx, mut pos) = self.resolve_read();
        let mut bytes = 0usize;
        let mut found_unacked = false;
        'segments: while idx < self.segments.len() {
            let seg = self.segments[idx];
            if pos.seq < seg.end && pos.offset < seg.readable {
                let path = segment_path(&self.dir, seg.first);
                let mut r = BufReader::with_capacity(64 * 1024, File::open(&path)?);
                let header = if pos.offset == SEGMENT_HEADER_LEN {
                    read_magic(&mut r, seg.readable)
                } else {
                    r.seek(SeekFrom::Start(pos.offset))?;
                    Ok(())
                };
                match header {
                    Ok(()) => {}
                    Err(FrameError::Io(e)) => return Err(e.into()),
                    Err(FrameError::Corrupt(why)) => self.corrupt_at(idx, pos, &why),
                }
                while pos.seq < self.segments[idx].end && pos.offset < seg.readable {
                    match read_frame(&mut r, pos.offset, seg.readable, pos.seq) {
                        Ok((payload, n)) => {
                            let seq = pos.seq;
                            let after = ReadPos {
                                seg_first: seg.first,
                                offset: pos.offset + n,
                                seq: seq + 1,
                            };
                            if seq <= self.acked {
                                pos = after;
                                continue;
                            }
                            if !found_unacked {
                                self.read = pos;
                                found_unacked = true;
                            }
                            if !out.is_empty() && bytes + payload.len() > max_bytes {
                                break 'segments;
                            }
                            bytes += payload.len();
                            out.push((seq, payload));
                            self.peeked.push(after);
                            pos = after;
                            if out.len() >= max_records {
                                break 'segments;
                            }
                        }
                        Err(FrameError::Io(e)) => return Err(e.into()),
                        Err(FrameError::Corrupt(why)) => self.corrupt_at(idx, pos, &why),
                    }
                }
            }
            if pos.seq < self.segments[idx].end {
                // Records are missing: the segment ends early.
                self.corrupt_at(idx, pos, "segment ends before its last record");
            }
            if idx + 1 == self.segments.len() {
                if self.segments[idx].end < self.next_seq {
                    // Corruption in the active segment: seal it so that appends go on in a
                    // new segment and the damaged one is skipped like any other.
                    self.roll()?;
                } else {
                    break;
                }
            }
            idx += 1;
            pos = self.segment_start(idx);
        }
        if !found_unacked {
            // Everything before `pos` is acknowledged (or unreadable).
            self.read = pos;
        }
        Ok(out)
    }

    fn segment_start(&self, idx: usize) -> ReadPos {
        let first = self.segments.get(idx).map_or(self.next_seq, |s| s.first);
        ReadPos {
            seg_first: first,
            offset: SEGMENT_HEADER_LEN,
            seq: first,
        }
    }

    /// Records corruption found at `pos` in segment `idx`: the rest of it is unreadable.
    fn corrupt_at(&mut self, idx: usize, pos: ReadPos, why: &str) {
        let Some(seg) = self.segments.get_mut(idx) else {
            return;
        };
        let lost = seg.end.saturating_sub(pos.seq);
        tracing::error!(
            segment = %segment_path(&self.dir, seg.first).display(),
            offset = pos.offset,
            first_lost_seq = pos.seq,
            lost_records = lost,
            reason = why,
            "spool: corrupt segment, skipping the rest of it"
        );
        seg.readable = pos.offset.min(seg.readable);
        seg.end = pos.seq;
        self.stats.corrupt_segments += 1;
        self.stats.corrupt_records += lost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_and_crc_covers_seq() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 7, b"hello").unwrap();
        assert_eq!(buf.len() as u64, frame_len(5));
        let (p, n) = match read_frame(&mut &buf[..], 0, buf.len() as u64, 7) {
            Ok(v) => v,
            Err(_) => panic!("frame should decode"),
        };
        assert_eq!((p.as_slice(), n), (&b"hello"[..], buf.len() as u64));
        // Same bytes read as another seq: rejected.
        assert!(read_frame(&mut &buf[..], 0, buf.len() as u64, 8).is_err());
        // A flipped seq bit breaks the checksum.
        buf[8] ^= 1;
        assert!(read_frame(&mut &buf[..], 0, buf.len() as u64, 6).is_err());
    }

    #[test]
    fn ack_file_roundtrip_and_rejects_damage() {
        let b = encode_ack(123_456);
        assert_eq!(decode_ack(&b), Some(123_456));
        let mut bad = b;
        bad[9] ^= 0x40;
        assert_eq!(decode_ack(&bad), None);
        assert_eq!(decode_ack(&b[..19]), None);
    }

    #[test]
    fn segment_names() {
        let p = segment_path(Path::new("/x"), 42);
        assert_eq!(
            p.file_name().and_then(|n| n.to_str()),
            Some("00000000000000000042.seg")
        );
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.seg"), None);
    }

    #[test]
    fn options_are_validated() {
        let o = SpoolOptions {
            segment_bytes: 10,
            ..SpoolOptions::default()
        };
        assert!(matches!(o.validate(), Err(SpoolError::InvalidOptions(_))));
        let o = SpoolOptions {
            max_bytes: 1000,
            segment_bytes: 4096,
            ..SpoolOptions::default()
        };
        assert!(matches!(o.validate(), Err(SpoolError::InvalidOptions(_))));
        assert!(SpoolOptions::default().validate().is_ok());
    }
}
