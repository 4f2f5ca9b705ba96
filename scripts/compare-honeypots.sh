#!/usr/bin/env bash
# Side-by-side SSH honeypot comparison under the same client load (issue: "ssh login
# attempts/s and RSS next to cowrie and OpenCanary"; recon under `nmap -p- -T5`).
#
# For each target: start it on a loopback port, measure idle RSS, run `ssh_load ssh` (russh
# clients making password attempts) COMPARE_RUNS times, sample the RSS and CPU time of the
# listening process and its children from /proc, then run one `nmap -p- -T5` against it and
# count the events it logged. Prints a Markdown table (medians over the runs).
#
#   scripts/compare-honeypots.sh                      # cowrie and OpenCanary
#   scripts/compare-honeypots.sh --target 'honeysens=target/debug/honeysens-honeypot ssh'
#   scripts/compare-honeypots.sh --only honeysens --target 'honeysens=…'   # just that one
#
# A --target NAME=COMMAND is started with HONEYSENS_LISTEN=127.0.0.1:<port> and
# HONEYSENS_INTAKE=unix:<dir>/intake.sock, where `ssh_load ack-sink` acknowledges every event
# like the agent would; its event count is the number of events acknowledged.
#
# Environment: COMPARE_VENVS (default /work/venvs; cowrie and opencanary are pip-installed
# there when absent), COMPARE_SECONDS (per run, default 15), COMPARE_CONNECTIONS (concurrent
# clients, default 32), COMPARE_ATTEMPTS_PER_CONNECTION (0 = keep the connection until the run
# ends; 1 = a new SSH handshake per attempt), COMPARE_RUNS (default 3), COMPARE_NMAP (1 = also run nmap, default 1),
# COMPARE_USER (unprivileged user for cowrie when run as root, default honeysens-bench).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENVS="${COMPARE_VENVS:-/work/venvs}"
SECS="${COMPARE_SECONDS:-15}"
CONN="${COMPARE_CONNECTIONS:-32}"
PER_CONN="${COMPARE_ATTEMPTS_PER_CONNECTION:-0}"
RUNS="${COMPARE_RUNS:-3}"
NMAP="${COMPARE_NMAP:-1}"
RUNUSER_NAME="${COMPARE_USER:-honeysens-bench}"
WORK="$(mktemp -d /tmp/compare-honeypots.XXXXXX)"
chmod 755 "$WORK"
PY=/usr/bin/python3; [ -x "$PY" ] || PY="$(command -v python3)"

targets=(cowrie opencanary)
declare -A custom_cmd=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target)
      name="${2%%=*}"; custom_cmd[$name]="${2#*=}"
      [[ " ${targets[*]} " == *" $name "* ]] || targets+=("$name")
      shift 2 ;;
    --only) IFS=, read -r -a targets <<< "$2"; shift 2 ;;
    *) echo "usage: $0 [--only a,b] [--target NAME=COMMAND]..." >&2; exit 2 ;;
  esac
done

echo "building ssh_load" >&2
(cd "$ROOT" && cargo build -q -p honeysens-benches --bin ssh_load)
LOAD="$ROOT/target/debug/ssh_load"
for t in ssh sshpass nmap ss; do command -v "$t" >/dev/null || { echo "missing $t (apt-get install -y openssh-client nmap iproute2)" >&2; exit 1; }; done

PGIDS=()
cleanup() {
  for g in "${PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  sleep 1
  for g in "${PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Runs "$@" in its own process group (so the whole tree can be stopped); sets LAST_PGID.
spawn() {
  local log="$1"; shift
  setsid "$@" >"$log" 2>&1 < /dev/null &
  LAST_PGID=$!
  PGIDS+=("$LAST_PGID")
}

free_port() { "$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 1 120); do
    ss -ltnH "sport = :$1" | grep -q LISTEN && return 0
    sleep 0.5
  done
  echo "nothing listens on port $1" >&2; return 1
}

listener_pid() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

# The pid and all its descendants.
tree() {
  local all; all=$(ps -e -o pid=,ppid=)
  local out="$1" frontier="$1" next
  while [ -n "$frontier" ]; do
    next=""
    for p in $frontier; do
      next="$next $(awk -v p="$p" '$2==p {print $1}' <<< "$all")"
    done
    frontier="$(echo $next)"; out="$out $frontier"
  done
  echo $out
}

# Sum of VmRSS (KiB) over the tree.
rss_kib() {
  local sum=0 r
  for p in $(tree "$1"); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    sum=$((sum + ${r:-0}))
  done
  echo "$sum"
}

# utime+stime (clock ticks) over the tree.
cpu_ticks() {
  local sum=0 t
  for p in $(tree "$1"); do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true)
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}

ensure_venv() {
  local name="$1"
  if [ ! -x "$VENVS/$name/bin/python" ]; then
    echo "installing $name into $VENVS/$name" >&2
    mkdir -p "$VENVS"
    # The system Python, so the unprivileged user running cowrie can execute it.
    "$PY" -m venv "$VENVS/$name"
    "$VENVS/$name/bin/pip" install -q "$name"
  fi
}

# start_<target> PORT: starts it listening for SSH on 127.0.0.1:PORT; sets EVENTS_CMD, a
# command printing how many events it has logged so far.
start_cowrie() {
  ensure_venv cowrie
  local d="$WORK/cowrie"; mkdir -p "$d/etc" "$d/var/log/cowrie" "$d/var/lib/cowrie" "$d/var/run"
  cat > "$d/etc/cowrie.cfg" <<CFG
[honeypot]
hostname = srv04
[ssh]
enabled = true
listen_endpoints = tcp:$1:interface=127.0.0.1
[telnet]
enabled = false
[output_jsonlog]
enabled = true
logfile = \${honeypot:log_path}/cowrie.json
CFG
  printf 'root:x:!root\nroot:x:123456\n' > "$d/etc/userdb.txt"
  # cowrie refuses to run as root.
  if [ "$(id -u)" = 0 ]; then
    id "$RUNUSER_NAME" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$RUNUSER_NAME"
    chown -R "$RUNUSER_NAME" "$d"
    spawn "$WORK/cowrie.out" env -C "$d" PATH="$VENVS/cowrie/bin:/usr/bin:/bin" COWRIE_STDOUT=yes \
      "$(command -v runuser)" -u "$RUNUSER_NAME" -- "$VENVS/cowrie/bin/cowrie" start
  else
    spawn "$WORK/cowrie.out" env -C "$d" PATH="$VENVS/cowrie/bin:/usr/bin:/bin" COWRIE_STDOUT=yes \
      "$VENVS/cowrie/bin/cowrie" start
  fi
  EVENTS_CMD="cat $d/var/log/cowrie/cowrie.json 2>/dev/null | wc -l"
}

start_opencanary() {
  ensure_venv opencanary
  local d="$WORK/opencanary"; mkdir -p "$d"
  "$VENVS/opencanary/bin/python" - "$1" "$d" <<'PYCFG'
import json, sys, importlib.resources as r
port, d = int(sys.argv[1]), sys.argv[2]
c = json.loads((r.files("opencanary") / "data" / "settings.json").read_text())
for k in list(c):
    if k.endswith(".enabled"):
        c[k] = False
c.update({"device.listen_addr": "127.0.0.1", "ssh.enabled": True, "ssh.port": port})
c["logger"]["kwargs"]["handlers"] = {"file": {"class": "logging.FileHandler", "filename": d + "/opencanary.json"}}
json.dump(c, open(d + "/opencanary.conf", "w"), indent=1)
PYCFG
  chmod -R a+rwX "$d"
  spawn "$WORK/opencanary.out" env -C "$d" PATH="$VENVS/opencanary/bin:/usr/bin:/bin" \
    "$VENVS/opencanary/bin/opencanaryd" --dev --uid=nobody --gid=nogroup
  EVENTS_CMD="cat $d/opencanary.json 2>/dev/null | grep -vc '\"logtype\": 100[0-9]' || true"
}

start_custom() {
  local name="$1" port="$2" d="$WORK/$1"; mkdir -p "$d"
  spawn "$WORK/$name-sink.out" "$LOAD" ack-sink "unix:$d/intake.sock" --count-file "$d/events"
  SINK_PGID="$LAST_PGID"
  for _ in $(seq 1 40); do [ -S "$d/intake.sock" ] && break; sleep 0.25; done
  spawn "$WORK/$name.out" env HONEYSENS_LISTEN="127.0.0.1:$port" HONEYSENS_INTAKE="unix:$d/intake.sock" \
    bash -c "exec ${custom_cmd[$name]}"
  EVENTS_CMD="cat $d/events 2>/dev/null || echo 0"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

rows=()
for name in "${targets[@]}"; do
  port=$(free_port)
  echo "== $name on 127.0.0.1:$port" >&2
  if [ -n "${custom_cmd[$name]:-}" ]; then start_custom "$name" "$port"; else "start_$name" "$port"; fi
  wait_port "$port"
  sleep 3
  pid=$(listener_pid "$port")
  # setsid may fork, so stop the group the listener really is in.
  pg=$(ps -o pgid= -p "$pid" | tr -d ' ')
  PGIDS+=("$pg")
  idle=$(rss_kib "$pid")
  rates=(); peaks=(); cpus=(); errs=()
  for run in $(seq 1 "$RUNS"); do
    peak=0; t0=$(cpu_ticks "$pid")
    "$LOAD" ssh --target "127.0.0.1:$port" --connections "$CONN" --seconds "$SECS" --attempts-per-connection "$PER_CONN" > "$WORK/load.out" 2>"$WORK/load.err" &
    lp=$!
    while kill -0 "$lp" 2>/dev/null; do
      r=$(rss_kib "$pid"); [ "$r" -gt "$peak" ] && peak=$r
      sleep 0.5
    done
    wait "$lp" || { echo "ssh_load failed:" >&2; cat "$WORK/load.err" >&2; }
    t1=$(cpu_ticks "$pid")
    head -1 "$WORK/load.out" >&2
    json=$(tail -1 "$WORK/load.out")
    rate=$("$PY" -c 'import json,sys; print(round(json.loads(sys.argv[1])["attempts_per_s"],1))' "$json")
    err=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["errors"])' "$json")
    attempts=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["attempts"])' "$json")
    # CPU milliseconds per 100 attempts.
    cpu=$("$PY" -c 'import sys,os; t=int(sys.argv[1]); a=int(sys.argv[2]); print(round(t*1000/os.sysconf("SC_CLK_TCK")/max(a,1)*100,1))' "$((t1 - t0))" "$attempts")
    rates+=("$rate"); peaks+=("$peak"); cpus+=("$cpu"); errs+=("$err")
    echo "   run $run: $rate attempts/s, peak RSS $((peak / 1024)) MiB, ${cpu} ms CPU per 100 attempts, $err errors" >&2
  done
  nmap_s="-"; nmap_ev="-"
  if [ "$NMAP" = 1 ]; then
    before=$(bash -c "$EVENTS_CMD")
    s0=$(date +%s.%N)
    nmap -n -Pn -p- -T5 127.0.0.1 >/dev/null 2>&1 || true
    s1=$(date +%s.%N)
    nmap_s=$("$PY" -c "print(round($s1-$s0,1))")
    sleep 2  # let the honeypot write what it saw
    after=$(bash -c "$EVENTS_CMD")
    nmap_ev=$((after - before))
  fi
  rows+=("| $name | $CONN | $(printf '%s\n' "${rates[@]}" | median) | $((idle / 1024)) | $(( $(printf '%s\n' "${peaks[@]}" | median | cut -d. -f1) / 1024 )) | $(printf '%s\n' "${cpus[@]}" | median) | $(printf '%s\n' "${errs[@]}" | median) | $nmap_s | $nmap_ev |")
  kill -TERM -- "-$LAST_PGID" "-$pg" 2>/dev/null || true
  [ -n "${SINK_PGID:-}" ] && kill -TERM -- "-$SINK_PGID" 2>/dev/null || true
  SINK_PGID=""
  sleep 2
done

echo
echo "SSH password attempts, ${CONN} concurrent russh clients (attempts per connection: ${PER_CONN/#0/unlimited}), ${SECS} s per run, median of ${RUNS} runs; $(nproc) CPUs, $(uname -r)"
echo
echo "| honeypot | clients | attempts/s | idle RSS MiB | peak RSS MiB | CPU ms / 100 attempts | errors | nmap -p- -T5 s | events logged during nmap |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
