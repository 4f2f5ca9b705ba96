#!/usr/bin/env bash
# The recon catch-all under nmap (issue: "recon events and connections/s under nmap -p- -T5").
#
# Two network namespaces joined by a veth pair: the sensor runs `honeysens-honeypot recon`
# (packet capture plus the catch-all listener, every port redirected to it by nftables as the
# agent does), the attacker runs nmap against all 65535 ports — a SYN scan and a connect scan,
# each against a fresh recon process (defaults: 25 ports / 6 s quiet / 60 s mute). Reports the
# scan time, packets or connections per second, the events recon sent (acknowledged by
# `ssh_load ack-sink` like the agent would), and recon's peak RSS and CPU time.
#
#   scripts/bench-recon.sh [path/to/honeysens-honeypot]     # default target/release/…
# Needs root, nmap, nft, ip. Prints a Markdown table.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$ROOT/target/release/honeysens-honeypot}"
[ -x "$BIN" ] || { echo "build it first: cargo build --release -p honeysens-honeypot" >&2; exit 2; }
(cd "$ROOT" && cargo build -q -p honeysens-benches --bin ssh_load)
LOAD="$ROOT/target/debug/ssh_load"
TAG="rb$$"
S="hs-$TAG-s"; A="hs-$TAG-a"; WORK="$(mktemp -d)"
cleanup() {
  [ -n "${RECON:-}" ] && kill "$RECON" 2>/dev/null || true
  [ -n "${SINK:-}" ] && kill "$SINK" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$S"; ip netns add "$A"
ip link add "v$TAG" netns "$S" type veth peer name "w$TAG" netns "$A"
ip -n "$S" addr add 10.99.0.1/24 dev "v$TAG"; ip -n "$S" link set "v$TAG" up; ip -n "$S" link set lo up
ip -n "$A" addr add 10.99.0.2/24 dev "w$TAG"; ip -n "$A" link set "w$TAG" up; ip -n "$A" link set lo up
ip netns exec "$S" nft -f - <<'EOF'
table inet bench {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    iifname != "lo" meta l4proto tcp redirect to :4444
  }
}
EOF

rss_cpu() { # peak RSS (KiB) is VmHWM; CPU = utime+stime in ticks
  local pid=$1
  awk '/VmHWM/{print $2}' "/proc/$pid/status"
  awk '{print $14+$15}' "/proc/$pid/stat"
}

run_one() { # $1 = nmap scan type flag
  local count="$WORK/count" sock="$WORK/intake.sock"
  rm -f "$count" "$sock"
  "$LOAD" ack-sink "unix:$sock" --count-file "$count" >/dev/null 2>&1 & SINK=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  ip netns exec "$S" env HONEYSENS_INTAKE="unix:$sock" HONEYSENS_CATCHALL_PORT=4444 \
    "$BIN" recon >/dev/null 2>"$WORK/recon.log" & RECON=$!
  for _ in $(seq 100); do ip netns exec "$S" ss -ltn | grep -q ':4444 ' && break; sleep 0.05; done
  local start end
  start=$(date +%s.%N)
  ip netns exec "$A" nmap "$1" -p- -T5 -n -Pn 10.99.0.1 >/dev/null
  end=$(date +%s.%N)
  sleep 8   # quiet period (6 s) and delivery
  local hwm cpu
  { read -r hwm; read -r cpu; } < <(rss_cpu "$RECON")
  kill "$RECON"; wait "$RECON" 2>/dev/null || true; RECON=
  kill "$SINK"; wait "$SINK" 2>/dev/null || true; SINK=
  local events; events=$(cat "$count" 2>/dev/null || echo 0)
  awk -v t="$1" -v s="$start" -v e="$end" -v ev="$events" -v h="$hwm" -v c="$cpu" -v tck="$(getconf CLK_TCK)" \
    'BEGIN { printf "| %s | %.1f | %.0f | %s | %.1f | %d |\n", t, e - s, 65535 / (e - s), ev, h / 1024, c * 1000 / tck }' 
}

echo "| nmap | scan s | ports/s | events | recon peak RSS MiB | recon CPU ms |"
echo "|---|---|---|---|---|---|"
run_one -sS
run_one -sT
