#!/usr/bin/env bash
# The whole test suite: installs the tools the tests drive (scripts/test-deps.sh), starts
# PostgreSQL and MariaDB if needed (installing them on a fresh Debian machine), then
# formatting, lints and every test of the workspace against all three database backends,
# schemathesis against the running server's OpenAPI document, and a short fuzzing run of
# every parser that faces sensors and uploads.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh
service_env=$(scripts/services.sh)
eval "$service_env"
export HONEYSENS_TEST_POSTGRES_URL HONEYSENS_TEST_MYSQL_URL

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
scripts/schemathesis.sh
scripts/fuzz.sh
