#!/usr/bin/env bash
# PostgreSQL's own insert ceiling for the events schema, without the store or any driver.
#
# Each transaction is one `INSERT … SELECT` of 1,000 rows the server generates itself, run by
# pgbench from 1, 2 and 4 sessions at once, so nothing is bound, encoded or sent: what remains
# is the server maintaining the table and its indexes and writing the WAL. Same migrations as
# the store; a scratch database `honeysens_ceiling` is created and dropped.
#
#   benches/ceiling/postgres.sh postgres://user:pw@127.0.0.1:5432/postgres [REPEATS]
#
# The URL's user needs CREATEDB (scripts/services.sh's test user has it). Prints a Markdown
# table: rows/s per source distribution and session count, median of the repetitions, each
# after a prefill of 200,000 rows (where store_ingest measures its batch-1000 phase).
set -euo pipefail
url="${1:?usage: $0 POSTGRES_URL [REPEATS]}"
repeats="${2:-3}"
base="${url%%\?*}"
base="${base%/*}"
db="$base/honeysens_ceiling"
migrations="$(dirname "$0")/../../crates/honeysens-store/migrations/postgres"
pgbench="$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"; psql "$base/postgres" -qc "DROP DATABASE IF EXISTS honeysens_ceiling" >/dev/null 2>&1 || true' EXIT

# Source keys as the store stores them (16 bytes), drawn as store_ingest draws them.
declare -A sources=(
  ["uniform 2^24"]="(random() * 16777215)::bigint"
  ["256 sources"]="(random() * 255)::bigint"
  ["16 sources"]="(random() * 15)::bigint"
  ["increasing"]="n"
  ["uniform 2^24, no source index"]="(random() * 16777215)::bigint"
)
order=("uniform 2^24" "256 sources" "16 sources" "increasing" "uniform 2^24, no source index")

setup() {
  psql "$base/postgres" -qc "DROP DATABASE IF EXISTS honeysens_ceiling" -c "CREATE DATABASE honeysens_ceiling" 2>/dev/null
  for f in "$migrations"/*.sql; do psql "$db" -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null; done
  psql "$db" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
INSERT INTO divisions (name, created_at) VALUES ('d', 0);
INSERT INTO sensors (name, location, division_id, config, auth_mode, created_at)
  SELECT 's' || i, 'x', 1, '{}', 'cert', 0 FROM generate_series(1, 20) i;
CREATE SEQUENCE gen;
SQL
}

script() {
  cat > "$work/insert.sql" <<SQL
INSERT INTO events (uid, sensor_id, division_id, service, ts, received_at, source_ip, source_key,
  source_port, dest_ip, dest_port, protocol, type_code, classification, severity, summary, status,
  comment, archived, details, packets, incident_id)
SELECT decode(lpad(to_hex(n), 32, '0'), 'hex'), 1 + n % 20, 1, 'ssh', 1700000000000000 + n * 1000,
  0, '10.1.2.3', decode(lpad(to_hex($1), 32, '0'), 'hex'), 40000 + n % 20000, '10.0.0.1', 22,
  'tcp', 'ssh.login', 'login_attempt', 'high',
  'SSH login attempt with user root and a password of eight chars', 'new', NULL, false, '[]',
  '[]', NULL
FROM (SELECT nextval('gen') AS n FROM generate_series(1, 1000)) g;
SQL
}

# rows/s of 80 transactions of 1,000 rows from $1 sessions into a fresh 200,000-row table.
measure() {
  local clients="$1"
  psql "$db" -qc "TRUNCATE events" >/dev/null
  "$pgbench" -n -f "$work/insert.sql" -c 4 -j 2 -t 50 "$db" >/dev/null 2>&1
  "$pgbench" -n -f "$work/insert.sql" -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" \
    -t "$(( 80 / clients ))" "$db" 2>/dev/null | awk '/^tps/ { printf "%d\n", $3 * 1000 }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)) }'; }

setup
echo "$(psql "$db" -Atc 'SELECT version()' | cut -d, -f1), shared_buffers=$(psql "$db" -Atc 'SHOW shared_buffers'), $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $repeats repetitions"
echo
echo "| Sources | 1 session | 2 sessions | 4 sessions |"
echo "|---|---|---|---|"
for name in "${order[@]}"; do
  script "${sources[$name]}"
  [[ "$name" == *"no source index" ]] && psql "$db" -qc "DROP INDEX IF EXISTS events_source"
  row="| $name |"
  for clients in 1 2 4; do
    rate="$(for _ in $(seq "$repeats"); do measure "$clients"; done | median)"
    row="$row $(echo "$rate" | sed -E ":a;s/([0-9])([0-9]{3})($|,)/\1,\2\3/;ta") |"
  done
  echo "$row"
done
