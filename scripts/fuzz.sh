#!/usr/bin/env bash
# Builds every cargo-fuzz target (fuzz/) and runs each for FUZZ_SECONDS (default 20) starting
# from the committed seeds. A crash fails the script and leaves the input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z sanitizer flags; the machine's only toolchain is stable.
export RUSTC_BOOTSTRAP=1
secs="${FUZZ_SECONDS:-20}"
cargo fuzz build --dev
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${secs}s"
  cargo fuzz run --dev "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12
  test "${PIPESTATUS[0]}" -eq 0
done
