//! The durable event spool on real files: order and seqs across reopen, ack cursor, crash
//! (SIGKILL of a child process mid-stream), torn tails, mid-segment corruption, the full
//! policies, segment deletion and size limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_sensor::spool::{FsyncPolicy, FullPolicy, Seq, Spool, SpoolError, SpoolOptions};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "honeysens-spool-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        TempDir(p)
    }

    /// The spool directory (created by `Spool::open`).
    fn spool(&self) -> PathBuf {
        self.0.join("spool")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn opts(segment_bytes: u64, max_bytes: u64, when_full: FullPolicy) -> SpoolOptions {
    SpoolOptions {
        max_bytes,
        segment_bytes,
        fsync: FsyncPolicy::Always,
        when_full,
    }
}

fn small() -> SpoolOptions {
    opts(1024, 1 << 20, FullPolicy::RejectNew)
}

fn rec(i: u64) -> Vec<u8> {
    format!(
        "{{\"uuid\":\"event-{i:08}\",\"payload\":\"{}\"}}",
        "x".repeat((i % 7) as usize)
    )
    .into_bytes()
}

fn peek_all(s: &Spool) -> Vec<(Seq, Vec<u8>)> {
    s.peek(usize::MAX, usize::MAX).unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn append_n(s: &Spool, from: u64, n: u64) -> Vec<Seq> {
    (from..from + n)
        .map(|i| s.append(&rec(i)).unwrap())
        .collect()
}

#[test]
fn append_peek_ack_order_and_seq_survive_reopen() {
    let t = TempDir::new("order");
    let dir = t.spool();
    {
        let s = Spool::open(&dir, small()).unwrap();
        let seqs = append_n(&s, 0, 50);
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
        let batch: Vec<Vec<u8>> = (50..60).map(rec).collect();
        let refs: Vec<&[u8]> = batch.iter().map(|v| v.as_slice()).collect();
        assert_eq!(
            s.append_batch(&refs).unwrap(),
            (51..=60).collect::<Vec<_>>()
        );
        let got = s.peek(5, usize::MAX).unwrap();
        assert_eq!(
            got,
            (0..5).map(|i| (i + 1, rec(i))).collect::<Vec<_>>(),
            "oldest first"
        );
        // peek does not consume
        assert_eq!(s.peek(5, usize::MAX).unwrap(), got);
        s.ack_through(5).unwrap();
        assert_eq!(s.peek(1, usize::MAX).unwrap(), vec![(6, rec(5))]);
        // max_bytes bounds the payload, but one record always comes back
        let one = s.peek(100, 1).unwrap();
        assert_eq!(one.len(), 1);
        let two = s.peek(100, rec(5).len() + rec(6).len()).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(s.stats().depth, 55);
    }
    let s = Spool::open(&dir, small()).unwrap();
    let all = peek_all(&s);
    assert_eq!(all, (5..60).map(|i| (i + 1, rec(i))).collect::<Vec<_>>());
    assert_eq!(s.append(b"after reopen").unwrap(), 61, "seq continues");
    let st = s.stats();
    assert_eq!((st.depth, st.acked_through, st.next_seq), (56, 5, 62));
}

#[test]
fn acked_records_never_return_after_reopen_unacked_do() {
    let t = TempDir::new("acked");
    let dir = t.spool();
    {
        let s = Spool::open(&dir, small()).unwrap();
        append_n(&s, 0, 200);
        let first = s.peek(120, usize::MAX).unwrap();
        assert_eq!(first.len(), 120);
        s.ack_through(first.last().unwrap().0).unwrap();
    }
    {
        let s = Spool::open(&dir, small()).unwrap();
        let again = peek_all(&s);
        assert_eq!(again.first().map(|r| r.0), Some(121));
        assert_eq!(again.len(), 80);
        assert_eq!(
            again,
            (120..200).map(|i| (i + 1, rec(i))).collect::<Vec<_>>()
        );
        s.ack_through(200).unwrap();
        assert!(peek_all(&s).is_empty());
        assert_eq!(s.stats().depth, 0);
    }
    // Fully acked: nothing comes back, and seqs still continue.
    let s = Spool::open(&dir, small()).unwrap();
    assert!(peek_all(&s).is_empty());
    assert_eq!(s.append(b"next").unwrap(), 201);
    assert_eq!(peek_all(&s), vec![(201, b"next".to_vec())]);
}

#[test]
fn ack_beyond_the_end_is_clamped_and_old_acks_are_noops() {
    let t = TempDir::new("clamp");
    let s = Spool::open(&t.spool(), small()).unwrap();
    append_n(&s, 0, 3);
    s.ack_through(1_000).unwrap();
    assert_eq!(s.stats().acked_through, 3);
    s.ack_through(1).unwrap();
    assert_eq!(s.stats().acked_through, 3);
    assert_eq!(s.append(b"four").unwrap(), 4);
    assert_eq!(peek_all(&s), vec![(4, b"four".to_vec())]);
}

const CRASH_ENV: &str = "HONEYSENS_SPOOL_CRASH_DIR";

/// Helper mode for `sigkill_mid_stream_keeps_every_returned_append_exactly_once`: with the
/// env var set, appends records forever and reports each returned append on stdout.
#[test]
fn crash_helper_child() {
    let Some(dir) = std::env::var_os(CRASH_ENV) else {
        return;
    };
    let s = Spool::open(Path::new(&dir), opts(2048, 64 << 20, FullPolicy::RejectNew)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000u64 {
        let seq = s.append(&rec(i)).unwrap();
        writeln!(out, "APPENDED {seq}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_mid_stream_keeps_every_returned_append_exactly_once() {
    let t = TempDir::new("crash");
    let dir = t.spool();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_helper_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last_returned = 0u64;
    for line in lines.by_ref() {
        let line = line.unwrap();
        // libtest may print "test crash_helper_child ... " without a newline first.
        if let Some((_, seq)) = line.split_once("APPENDED ") {
            let seq: u64 = seq.trim().parse().unwrap();
            assert_eq!(seq, last_returned + 1);
            last_returned = seq;
            if last_returned >= 300 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    // Whatever the child printed before it died was returned to it, too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some((_, seq)) = line.split_once("APPENDED ") {
            last_returned = seq.trim().parse().unwrap();
        }
    }
    let _ = child.wait();
    assert!(last_returned >= 300);

    let s = Spool::open(&dir, opts(2048, 64 << 20, FullPolicy::RejectNew)).unwrap();
    let all = peek_all(&s);
    // Every returned append is there exactly once and in order; at most the one append in
    // flight at the kill is there too; nothing else.
    assert!(
        all.len() as u64 == last_returned || all.len() as u64 == last_returned + 1,
        "{} records after reopen, {last_returned} appends returned",
        all.len()
    );
    for (i, (seq, payload)) in all.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(payload, &rec(i as u64), "record {seq} intact");
    }
    assert!(segment_files(&dir).len() > 1, "the run crossed segments");
    // The spool goes on where it stopped.
    let next = s.append(b"after crash").unwrap();
    assert_eq!(next, all.len() as u64 + 1);
}

#[test]
fn torn_tail_is_truncated_on_open_and_intact_records_kept() {
    let t = TempDir::new("torn");
    let dir = t.spool();
    {
        let s = Spool::open(&dir, small()).unwrap();
        append_n(&s, 0, 10);
    }
    let seg = segment_files(&dir).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    {
        let s = Spool::open(&dir, small()).unwrap();
        assert_eq!(
            peek_all(&s),
            (0..9).map(|i| (i + 1, rec(i))).collect::<Vec<_>>()
        );
        assert!(s.stats().truncated_tail_bytes > 0);
        // The torn record's seq is reused: it was never returned to anyone.
        assert_eq!(s.append(b"new tail").unwrap(), 10);
    }
    let s = Spool::open(&dir, small()).unwrap();
    let all = peek_all(&s);
    assert_eq!(all.len(), 10);
    assert_eq!(all[9], (10, b"new tail".to_vec()));
    assert_eq!(s.stats().truncated_tail_bytes, 0);
}

#[test]
fn garbage_appended_to_the_tail_is_cut_off() {
    let t = TempDir::new("garbage");
    let dir = t.spool();
    {
        let s = Spool::open(&dir, small()).unwrap();
        append_n(&s, 0, 10);
    }
    let seg = segment_files(&dir).pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[
        0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ])
    .unwrap();
    drop(f);
    let s = Spool::open(&dir, small()).unwrap();
    assert_eq!(
        peek_all(&s),
        (0..10).map(|i| (i + 1, rec(i))).collect::<Vec<_>>()
    );
    assert_eq!(s.stats().truncated_tail_bytes, 19);
    assert_eq!(s.append(b"eleven").unwrap(), 11);
    assert_eq!(peek_all(&s).len(), 11);
}

#[test]
fn torn_header_of_a_fresh_segment_is_repaired() {
    let t = TempDir::new("tornhdr");
    let dir = t.spool();
    {
        let s = Spool::open(&dir, small()).unwrap();
        append_n(&s, 0, 3);
        s.ack_through(3).unwrap();
    }
    // As if a crash hit while the active segment was being created.
    let seg = segment_files(&dir).pop().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(3)
        .unwrap();
    let s = Spool::open(&dir, small()).unwrap();
    assert!(peek_all(&s).is_empty());
    assert_eq!(s.append(b"four").unwrap(), 4);
    drop(s);
    let s = Spool::open(&dir, small()).unwrap();
    assert_eq!(peek_all(&s), vec![(4, b"four".to_vec())]);
}

#[test]
fn corruption_inside_a_sealed_segment_skips_to_the_next_segment() {
    let t = TempDir::new("midcorrupt");
    let dir = t.spool();
    {
        let s = Spool::open(&dir, small()).unwrap();
        append_n(&s, 0, 100);
    }
    let segs = segment_files(&dir);
    assert!(segs.len() >= 3, "{segs:?}");
    let second_first: u64 = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let third_first: u64 = segs[2]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // Flip a payload byte of the third record of the second segment.
    let mut bytes = fs::read(&segs[1]).unwrap();
    let mut off = 8usize;
    for _ in 0..2 {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        off += 16 + len;
    }
    bytes[off + 16] ^= 0xff;
    fs::write(&segs[1], &bytes).unwrap();

    let s = Spool::open(&dir, small()).unwrap();
    let all = peek_all(&s);
    let seqs: Vec<Seq> = all.iter().map(|r| r.0).collect();
    let expected: Vec<Seq> = (1..second_first + 2).chain(third_first..=100).collect();
    assert_eq!(
        seqs, expected,
        "rest of the damaged segment skipped, later ones kept"
    );
    for (seq, p) in &all {
        assert_eq!(p, &rec(seq - 1));
    }
    let st = s.stats();
    assert_eq!(st.corrupt_segments, 1);
    assert_eq!(st.corrupt_records, third_first - (second_first + 2));
    assert_eq!(st.depth, expected.len() as u64);
    // Peeking again does not count it twice.
    assert_eq!(peek_all(&s).len(), expected.len());
    assert_eq!(s.stats().corrupt_segments, 1);
    s.ack_through(100).unwrap();
    assert_eq!(segment_files(&dir).len(), 1);
}

#[test]
fn full_reject_new_returns_full_and_keeps_everything() {
    let t = TempDir::new("reject");
    let dir = t.spool();
    let o = opts(512, 2048, FullPolicy::RejectNew);
    let s = Spool::open(&dir, o).unwrap();
    let mut accepted = 0u64;
    let err = loop {
        match s.append(&rec(accepted)) {
            Ok(seq) => {
                accepted += 1;
                assert_eq!(seq, accepted);
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, SpoolError::Full), "{err:?}");
    assert!(accepted > 10);
    let batch: Vec<&[u8]> = vec![b"a", b"b"];
    assert!(matches!(s.append_batch(&batch), Err(SpoolError::Full)));
    let st = s.stats();
    assert_eq!(st.rejected_appends, 3);
    assert!(st.bytes_on_disk <= 2048);
    assert_eq!(st.dropped_records, 0);
    assert_eq!(
        peek_all(&s),
        (0..accepted).map(|i| (i + 1, rec(i))).collect::<Vec<_>>()
    );
    // Acking frees room again.
    s.ack_through(accepted / 2).unwrap();
    assert_eq!(s.append(b"room again").unwrap(), accepted + 1);
    drop(s);
    let s = Spool::open(&dir, o).unwrap();
    assert_eq!(peek_all(&s).len() as u64, accepted - accepted / 2 + 1);
}

#[test]
fn full_drop_oldest_drops_whole_oldest_segments_and_keeps_newest() {
    let t = TempDir::new("dropold");
    let dir = t.spool();
    let o = opts(512, 2048, FullPolicy::DropOldest);
    let s = Spool::open(&dir, o).unwrap();
    let n = 500u64;
    for i in 0..n {
        assert_eq!(s.append(&rec(i)).unwrap(), i + 1);
        assert!(s.stats().bytes_on_disk <= 2048);
    }
    let st = s.stats();
    assert!(st.dropped_segments > 0);
    let all = peek_all(&s);
    assert_eq!(
        st.dropped_records + all.len() as u64,
        n,
        "every record kept or counted"
    );
    assert_eq!(st.depth, all.len() as u64);
    // What is left is the newest records, contiguous up to the last one.
    let first = all[0].0;
    assert_eq!(
        all,
        (first..=n)
            .map(|seq| (seq, rec(seq - 1)))
            .collect::<Vec<_>>()
    );
    // Whole segments were dropped: the oldest kept record starts a segment file.
    let oldest_file = segment_files(&dir)[0].clone();
    assert_eq!(
        oldest_file.file_stem().unwrap().to_str().unwrap(),
        format!("{first:020}")
    );
    drop(s);
    let s = Spool::open(&dir, o).unwrap();
    assert_eq!(peek_all(&s), all);
    assert_eq!(s.append(b"next").unwrap(), n + 1);
}

#[test]
fn drop_oldest_with_a_partly_acked_head_counts_only_unacked() {
    let t = TempDir::new("dropacked");
    let o = opts(512, 1024, FullPolicy::DropOldest);
    let s = Spool::open(&t.spool(), o).unwrap();
    append_n(&s, 0, 5);
    s.ack_through(2).unwrap();
    let mut i = 5;
    while s.stats().dropped_segments == 0 {
        s.append(&rec(i)).unwrap();
        i += 1;
    }
    let st = s.stats();
    let kept = peek_all(&s);
    assert_eq!(st.dropped_records + kept.len() as u64, i - 2);
    assert_eq!(kept.last().unwrap().0, i);
}

#[test]
fn drop_oldest_with_room_for_one_segment_only() {
    let t = TempDir::new("dropone");
    let s = Spool::open(&t.spool(), opts(512, 512, FullPolicy::DropOldest)).unwrap();
    for i in 0..100 {
        assert_eq!(s.append(&rec(i)).unwrap(), i + 1);
    }
    let st = s.stats();
    assert!(st.dropped_segments > 0);
    assert_eq!(st.segments, 1);
    let kept = peek_all(&s);
    assert_eq!(st.dropped_records + kept.len() as u64, 100);
    assert_eq!(kept.last().unwrap(), &(100, rec(99)));
    // A batch larger than the whole spool is refused even so.
    let big: Vec<Vec<u8>> = (0..40).map(rec).collect();
    let refs: Vec<&[u8]> = big.iter().map(|v| v.as_slice()).collect();
    assert!(matches!(s.append_batch(&refs), Err(SpoolError::Full)));
    assert_eq!(peek_all(&s), kept);
}

#[test]
fn fully_acked_segments_are_deleted() {
    let t = TempDir::new("delete");
    let dir = t.spool();
    let s = Spool::open(&dir, small()).unwrap();
    append_n(&s, 0, 200);
    let before = segment_files(&dir);
    assert!(before.len() > 5, "{}", before.len());
    let bytes_before = s.stats().bytes_on_disk;
    // Ack the first two segments exactly.
    let third_first: u64 = before[2]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    s.peek(1000, usize::MAX).unwrap();
    s.ack_through(third_first - 1).unwrap();
    assert_eq!(segment_files(&dir), before[2..].to_vec());
    assert!(s.stats().bytes_on_disk < bytes_before);
    // One short of a segment boundary keeps that segment.
    let fourth_first: u64 = before[3]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    s.ack_through(fourth_first - 2).unwrap();
    assert_eq!(segment_files(&dir), before[2..].to_vec());
    assert_eq!(s.peek(1, usize::MAX).unwrap()[0].0, fourth_first - 1);
    // Everything acked: only the active segment is left, header only after a roll.
    s.ack_through(200).unwrap();
    assert_eq!(segment_files(&dir), vec![before.last().unwrap().clone()]);
    assert_eq!(s.stats().segments, 1);
    assert_eq!(s.stats().depth, 0);
}

#[test]
fn record_too_large_is_refused_and_nothing_of_the_batch_written() {
    let t = TempDir::new("toolarge");
    let o = small();
    let s = Spool::open(&t.spool(), o).unwrap();
    let max = o.max_record_bytes() as usize;
    assert!(matches!(
        s.append(&vec![0u8; max + 1]),
        Err(SpoolError::RecordTooLarge)
    ));
    let big = vec![1u8; max + 1];
    assert!(matches!(
        s.append_batch(&[b"small", &big]),
        Err(SpoolError::RecordTooLarge)
    ));
    assert!(peek_all(&s).is_empty());
    // Exactly the maximum fits.
    assert_eq!(s.append(&vec![2u8; max]).unwrap(), 1);
    assert_eq!(peek_all(&s)[0].1.len(), max);
    // Empty records are fine too.
    assert_eq!(s.append(b"").unwrap(), 2);
}

#[test]
fn a_batch_larger_than_a_segment_spans_segments_and_reads_back() {
    let t = TempDir::new("bigbatch");
    let dir = t.spool();
    let s = Spool::open(&dir, small()).unwrap();
    let batch: Vec<Vec<u8>> = (0..300).map(rec).collect();
    let refs: Vec<&[u8]> = batch.iter().map(|v| v.as_slice()).collect();
    assert_eq!(
        s.append_batch(&refs).unwrap(),
        (1..=300).collect::<Vec<_>>()
    );
    assert!(segment_files(&dir).len() > 5);
    for f in segment_files(&dir) {
        assert!(fs::metadata(&f).unwrap().len() <= 1024);
    }
    drop(s);
    let s = Spool::open(&dir, small()).unwrap();
    assert_eq!(
        peek_all(&s),
        (0..300).map(|i| (i + 1, rec(i))).collect::<Vec<_>>()
    );
    assert_eq!(s.stats().depth, 300);
}

#[test]
fn interval_fsync_keeps_records_and_drop_does_not_hang() {
    let t = TempDir::new("interval");
    let dir = t.spool();
    let o = SpoolOptions {
        fsync: FsyncPolicy::Interval(Duration::from_millis(20)),
        ..small()
    };
    {
        let s = Spool::open(&dir, o).unwrap();
        append_n(&s, 0, 100);
        std::thread::sleep(Duration::from_millis(50));
        append_n(&s, 100, 5);
        s.flush().unwrap();
    }
    let s = Spool::open(&dir, o).unwrap();
    assert_eq!(peek_all(&s).len(), 105);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let t = TempDir::new("lock");
    let dir = t.spool();
    let s = Spool::open(&dir, small()).unwrap();
    assert!(matches!(
        Spool::open(&dir, small()),
        Err(SpoolError::Locked)
    ));
    drop(s);
    Spool::open(&dir, small()).unwrap();
}

#[test]
fn invalid_options_are_refused() {
    let t = TempDir::new("opts");
    assert!(matches!(
        Spool::open(&t.spool(), opts(16, 1 << 20, FullPolicy::RejectNew)),
        Err(SpoolError::InvalidOptions(_))
    ));
    assert!(matches!(
        Spool::open(&t.spool(), opts(4096, 1024, FullPolicy::RejectNew)),
        Err(SpoolError::InvalidOptions(_))
    ));
}

#[cfg(unix)]
#[test]
fn spool_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempDir::new("perms");
    let dir = t.spool();
    let s = Spool::open(&dir, small()).unwrap();
    s.append(b"secret").unwrap();
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in segment_files(&dir) {
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o077, 0);
    }
}

#[test]
fn concurrent_appenders_get_unique_ordered_seqs() {
    let t = TempDir::new("threads");
    let s = Arc::new(Spool::open(&t.spool(), small()).unwrap());
    let handles: Vec<_> = (0..4u64)
        .map(|th| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                (0..50u64)
                    .map(|i| s.append(&rec(th * 1000 + i)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<Seq> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<_>>());
    let peeked: Vec<Seq> = peek_all(&s).into_iter().map(|r| r.0).collect();
    assert_eq!(peeked, all);
}

/// Sanity at a realistic depth (no timing assertions): 100k records in 64 KiB segments,
/// reopened, drained in upload-sized batches.
#[test]
fn hundred_thousand_records_reopen_and_drain() {
    let t = TempDir::new("100k");
    let dir = t.spool();
    let o = SpoolOptions {
        max_bytes: 64 << 20,
        segment_bytes: 64 << 10,
        fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
        when_full: FullPolicy::RejectNew,
    };
    let n = 100_000u64;
    {
        let s = Spool::open(&dir, o).unwrap();
        let recs: Vec<Vec<u8>> = (0..n).map(rec).collect();
        for chunk in recs.chunks(500) {
            let refs: Vec<&[u8]> = chunk.iter().map(|v| v.as_slice()).collect();
            s.append_batch(&refs).unwrap();
        }
        assert_eq!(s.stats().depth, n);
    }
    let s = Spool::open(&dir, o).unwrap();
    assert_eq!(s.stats().depth, n);
    assert_eq!(s.stats().next_seq, n + 1);
    let mut expect = 1u64;
    loop {
        let batch = s.peek(1000, 256 << 10).unwrap();
        let Some(last) = batch.last().map(|r| r.0) else {
            break;
        };
        for (seq, p) in &batch {
            assert_eq!(*seq, expect);
            assert_eq!(p, &rec(seq - 1));
            expect += 1;
        }
        s.ack_through(last).unwrap();
    }
    assert_eq!(expect, n + 1);
    assert_eq!(s.stats().depth, 0);
    assert_eq!(segment_files(&dir).len(), 1);
}
