#!/usr/bin/env bash
# Load check of `techshack serve`: wrk against POST /unsubscribe (the RFC 8058 one-click
# request) on loopback, each request a different subscriber's token, so every request is a
# real unsubscribe write to SQLite until the list runs out, then idempotent repeats.
#
#   benches/serve.sh [SECONDS] [CONNECTIONS] [SUBSCRIBERS]
#
# Needs wrk (Debian package `wrk`). Prints wrk's report, then requests/s and p99 latency, and
# fails if any response was not 200.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
CONNS=${2:-32}
SUBS=${3:-20000}
command -v wrk >/dev/null || { echo "serve.sh: wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet
BIN=$PWD/target/release/techshack

work=$(mktemp -d)
srv_pid=""
cleanup() {
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export TECHSHACK_SECRET=bench-secret-0123456789abcdef0123456789
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/techshack.toml" <<TOML
[site]
title = "Bench Digest"
base_url = "https://example.org"

[email]
from = "Bench Digest <digest@example.org>"

[smtp]
url = "smtp://127.0.0.1:9"

[state]
db = "state.sqlite3"

[serve]
listen = "127.0.0.1:$PORT"
public_url = "https://example.org"
TOML
export TECHSHACK_CONFIG=$work/techshack.toml

# Subscribers and their tokens (the SPEC "Email" format, computed independently here).
python3 - "$work" "$SUBS" <<'PY'
import base64, hashlib, hmac, os, sys
work, n = sys.argv[1], int(sys.argv[2])
secret = os.environ["TECHSHACK_SECRET"].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
with open(f"{work}/subs.csv", "w") as csv, open(f"{work}/tokens.txt", "w") as toks:
    csv.write("email\n")
    for i in range(n):
        a = f"reader{i:06d}@example.net"
        csv.write(a + "\n")
        mac = hmac.new(secret, b"unsubscribe\0" + a.encode(), hashlib.sha256).digest()
        toks.write(f"{b64(a.encode())}.{b64(mac)}\n")
PY
"$BIN" -q subscribers import "$work/subs.csv"

cat > "$work/one-click.lua" <<LUA
local tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
local i = 0
local body = "List-Unsubscribe=One-Click"
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
function setup(thread)
  thread:set("offset", math.random(#tokens))
end
request = function()
  i = i + 1
  local t = tokens[((offset or 0) + i) % #tokens + 1]
  return wrk.format("POST", "/unsubscribe?token=" .. t, headers, body)
end
LUA

"$BIN" -q serve &
srv_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  python3 -c 'import time; time.sleep(0.1)'
done

out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$work/one-click.lua" "http://127.0.0.1:$PORT")
echo "$out"
done_count=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM subscribers WHERE status = ?", ("unsubscribed",)).fetchone()[0])' "$work/state.sqlite3")
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
echo "serve.sh: POST /unsubscribe: $rps requests/s, p99 $p99 ($CONNS connections, ${SECS}s); unsubscribed in the state file: $done_count of $SUBS"
if echo "$out" | grep -q "Non-2xx"; then
  echo "serve.sh: some responses were not 200" >&2
  exit 1
fi
