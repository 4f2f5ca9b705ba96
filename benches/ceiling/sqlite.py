#!/usr/bin/env python3
"""SQLite's own insert ceiling for the events schema, without the store or any driver.

Each batch is one `INSERT … SELECT` whose 1,000 rows SQLite generates itself (recursive CTE),
so nothing is bound, encoded or sent: what remains is SQLite maintaining the table and its
indexes, and writing the WAL. Same migrations and pragmas as the store (WAL, synchronous=NORMAL,
64 MiB cache); checkpoints do not run during the timed part, so this is a best case.

    python3 benches/ceiling/sqlite.py [DB_PATH] [REPEATS]

Prints a Markdown table, one row per source distribution (median of the repetitions). A
repetition times 20 transactions of 1,000 rows after a prefill of 200,000 rows, where
`store_ingest` measures its batch-1000 phase.
"""
import glob
import os
import sqlite3
import statistics
import sys
import time

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "../../crates/honeysens-store/migrations/sqlite/*.sql")
PREFILL, BATCH, BATCHES = 200_000, 1_000, 20

# The 16-byte source key of each generated event: uniformly random among 2^24 addresses (as
# store_ingest draws from 10.0.0.0/8), from a few active attackers, or ever increasing.
SOURCES = {
    "uniform 2^24": "abs(random()) % 16777216",
    "256 sources": "abs(random()) % 256",
    "16 sources": "abs(random()) % 16",
    "increasing": "n",
    "uniform 2^24, no source index": "abs(random()) % 16777216",
}

INSERT = """INSERT INTO events (uid, sensor_id, division_id, service, ts, received_at, source_ip,
  source_key, source_port, dest_ip, dest_port, protocol, type_code, classification, severity,
  summary, status, comment, archived, details, packets, incident_id)
  WITH RECURSIVE g(n) AS (SELECT ?1 UNION ALL SELECT n + 1 FROM g WHERE n < ?2)
  SELECT CAST(printf('%016d', n) AS BLOB), 1 + n % 20, 1, 'ssh', 1700000000000000 + n * 1000, 0,
  '10.1.2.3', CAST(printf('%016d', {key}) AS BLOB), 40000 + n % 20000, '10.0.0.1', 22, 'tcp',
  'ssh.login', 'login_attempt', 'high',
  'SSH login attempt with user root and a password of eight chars', 'new', NULL, 0, '[]', '[]',
  NULL FROM g"""


def run(path, name):
    for f in glob.glob(path + "*"):
        os.remove(f)
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=wal", "synchronous=1", "cache_size=-65536", "foreign_keys=on",
                   "wal_autocheckpoint=0"):
        db.execute("PRAGMA " + pragma)
    for m in sorted(glob.glob(MIGRATIONS)):
        db.executescript(open(m).read())
    if name.endswith("no source index"):
        db.execute("DROP INDEX events_source")
    db.execute("INSERT INTO divisions (name, created_at) VALUES ('d', 0)")
    db.executemany("INSERT INTO sensors (name, location, division_id, config, auth_mode, "
                   "created_at) VALUES (?, 'x', 1, '{}', 'cert', 0)",
                   [(f"s{i}",) for i in range(20)])
    sql = INSERT.format(key=SOURCES[name])
    n = 0

    def batch(k):
        nonlocal n
        db.execute("BEGIN")
        db.execute(sql, (n, n + k - 1))
        db.execute("COMMIT")
        n += k

    while n < PREFILL:
        batch(5_000)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    start = time.perf_counter()
    for _ in range(BATCHES):
        batch(BATCH)
    secs = time.perf_counter() - start
    wal = os.path.getsize(path + "-wal")
    db.close()
    for f in glob.glob(path + "*"):
        os.remove(f)
    return BATCH * BATCHES / secs, wal / (BATCH * BATCHES)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/honeysens-ceiling.db"
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(f"SQLite {sqlite3.sqlite_version}, {path}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
          f"{repeats} repetitions (distributions interleaved)\n")
    results = {name: [] for name in SOURCES}
    for _ in range(repeats):
        for name in SOURCES:
            results[name].append(run(path, name))
    print("| Sources | Rows/s (median) | min–max | WAL bytes/row |\n|---|---|---|---|")
    for name, runs in results.items():
        rates = sorted(r for r, _ in runs)
        print(f"| {name} | {statistics.median(rates):,.0f} | {rates[0]:,.0f}–{rates[-1]:,.0f} "
              f"| {statistics.median(w for _, w in runs):,.0f} |")


if __name__ == "__main__":
    main()
