#!/usr/bin/env bash
# Runs schemathesis against the real server (fresh SQLite data directory, admin API token) and
# fails on any server error or answer that violates the served OpenAPI document.
# Expects the debug server binary to be built (scripts/test.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi

BIN=${CARGO_TARGET_DIR:-target}/debug/honeysens-server
cargo build --locked --quiet -p honeysens-server
DATA=$(mktemp -d)
PORT=${SCHEMATHESIS_PORT:-18443}
PW='schemathesis-admin-pw-1'
cleanup() {
    [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$DATA"
}
trap cleanup EXIT

export HONEYSENS_DATA_DIR=$DATA HONEYSENS_LISTEN=127.0.0.1:$PORT HONEYSENS_LOG=warn
echo "$PW" | "$BIN" user add --name admin --role admin --password-stdin >/dev/null
"$BIN" serve >"$DATA/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    "$BIN" healthcheck >/dev/null 2>&1 && break
    sleep 0.2
done
BASE=https://127.0.0.1:$PORT
CA=$DATA/ca.crt
TOKEN=$(curl -sf --cacert "$CA" -c "$DATA/cookies" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$PW\"}" "$BASE/api/auth/login" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["csrf_token"])' \
    | { read -r CSRF; curl -sf --cacert "$CA" -b "$DATA/cookies" -H "x-csrf-token: $CSRF" \
        -H 'content-type: application/json' -d '{"name":"schemathesis","scope":"admin"}' \
        "$BASE/api/tokens"; } \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# Login, logout, password change and token revocation are left out: they would end the session
# or revoke the token the run depends on (tests/management.rs and the role matrix cover them).
schemathesis run "$BASE/api/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --tls-verify "$CA" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /api/auth/login --exclude-path /api/auth/logout --exclude-path /api/auth/password \
    --exclude-operation-id revoke_token \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" \
    --suppress-health-check all \
    --seed 1 \
    --no-color || { echo "--- server log"; tail -50 "$DATA/server.log"; exit 1; }
