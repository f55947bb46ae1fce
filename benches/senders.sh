#!/usr/bin/env bash
# Cooperating senders on PostgreSQL: one `techshack send` against three at once on one issue.
#
#   [N=20000] [CONC=2] [DELAY_MS=20] [BIN=...] benches/senders.sh
#
# A throwaway PostgreSQL cluster (initdb into a temp folder, a free loopback port, as the
# `postgres` user when run as root: the way tests/suite/support/pg.rs starts one), two fresh
# databases of N subscribers each, and the aiosmtpd relay of tests/smtp/server.py answering each
# message's final dot after DELAY_MS, so the rate is bound by the relay's latency, not by the
# CPU. Each sender has the same `smtp.concurrency` (CONC) in both runs. Prints the wall time
# (from the start of the first sender to the end of the last), the rate and the ratio of the
# two rates (target: three senders >= 2.5x one), and checks that the relay got one copy per
# address and the ledger says sent for all.
#
# Measured on the 2-core development machine (shared with other builds), N=20000, DELAY_MS=20,
# release build; every run: 20,000 copies for 20,000 addresses, ledger all sent.
#   CONC=2 (load average about 2):  one sender 292.9 s, 68 msg/s; three senders 104.2 s,
#                                   192 msg/s (7000 + 7000 + 6000); ratio 2.81x
#   CONC=4 (load average about 8):  one sender 158.2 s, 126 msg/s; three senders 98.8 s,
#                                   202 msg/s (6000 + 7000 + 7000); ratio 1.60x
# At CONC=4 three senders would need 600 msg/s of the relay; on that loaded machine the CPU
# (the Python relay most of all) gave about 200 msg/s whatever the number of senders, so the
# run measured the machine, not the latency. CONC=2 keeps the three senders' 300 msg/s below
# that ceiling, which is what this benchmark is about.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-20000}
CONC=${CONC:-2}
DELAY_MS=${DELAY_MS:-20}
PY=$PWD/target/test-venv/bin/python
[ -x "$PY" ] || { echo "senders.sh: $PY is missing: run scripts/setup-test-deps" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PGBIN/initdb" ] || { echo "senders.sh: no PostgreSQL server: run scripts/setup-test-deps" >&2; exit 1; }

# BIN=path/to/techshack measures that binary instead of building one.
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=$PWD/target/release/techshack
fi

work=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  as_pg=(runuser -u postgres --)
  chown postgres: "$work"
fi
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  "${as_pg[@]}" "$PGBIN/pg_ctl" stop -m immediate -D "$work/data" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

"${as_pg[@]}" "$PGBIN/initdb" --auth=trust --no-sync --encoding=UTF8 --locale=C -U techshack \
  -D "$work/data" >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
CONF
PGPORT=$(free_port)
"${as_pg[@]}" "$PGBIN/pg_ctl" start -w -t 60 -o "-p $PGPORT" -D "$work/data" -l "$work/pg.log" >/dev/null

echo "{\"data_delay_ms\": $DELAY_MS}" > "$work/faults.json"
"$PY" tests/smtp/server.py --port-file "$work/relay.port" --log "$work/received.log" \
  --faults "$work/faults.json" &
relay_pid=$!
for _ in $(seq 100); do [ -s "$work/relay.port" ] && break; sleep 0.1; done
SMTP_PORT=$(cat "$work/relay.port")

mkdir -p "$work/site/issues"
yesterday=$(date -u -d yesterday +%Y-%m-%d)
printf -- '---\ntitle: "Benchmark issue"\ndate: %s\n---\n\n## [Queues](https://example.com/q)\n\nNotes on queues and logs.\n' \
  "$yesterday" > "$work/site/issues/bench.md"
"$PY" - "$N" > "$work/subscribers.csv" <<'PY'
import sys
n = int(sys.argv[1])
sys.stdout.write("email,name\n")
for i in range(n):
    sys.stdout.write(f"reader{i:06d}@example.net,Reader {i}\n")
PY
export TECHSHACK_SECRET=benchmark-secret-0123456789abcdef

# One database per run; prints the run's wall time in seconds.
run() {
  local senders=$1 db="s$1"
  "${as_pg[@]}" "$PGBIN/createdb" -h "$work" -p "$PGPORT" -U techshack "$db"
  cat > "$work/site/$db.toml" <<TOML
[site]
title = "Bench Digest"
base_url = "https://example.org"

[issues]
dir = "issues"

[email]
from = "Bench Digest <digest@example.org>"
unsubscribe_url = "https://example.org/unsubscribe?token={token}"
unsubscribe_mailto = "unsubscribe@example.org"

[smtp]
url = "smtp://127.0.0.1:$SMTP_PORT"
concurrency = $CONC
rate = 1000000
per_connection = 1000
timeout_secs = 30

[state]
url = "postgres://techshack@127.0.0.1:$PGPORT/$db"
TOML
  export TECHSHACK_CONFIG="$work/site/$db.toml"
  (cd "$work/site" && "$BIN" -q subscribers import "$work/subscribers.csv")
  : > "$work/received.log"
  local t0 t1 pids=()
  t0=$(date +%s.%N)
  for i in $(seq "$senders"); do
    (cd "$work/site" && "$BIN" send bench 2> "$work/send-$db-$i.log") &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || { cat "$work"/send-"$db"-*.log >&2; exit 1; }
  done
  t1=$(date +%s.%N)
  local sent got copies
  sent=$(cd "$work/site" && "$BIN" status bench | awk '$1 == "sent" {print $2}')
  got=$(sort -u "$work/received.log" | wc -l)
  copies=$(wc -l < "$work/received.log")
  if [ "$sent" != "$N" ] || [ "$got" != "$N" ] || [ "$copies" != "$N" ]; then
    echo "senders.sh: $senders sender(s): ledger sent $sent, relay got $copies copies for $got addresses, expected $N" >&2
    exit 1
  fi
  for i in $(seq "$senders"); do
    grep -o 'this run sent [0-9]*' "$work/send-$db-$i.log" | sed "s/^/  sender $i: /" >&2
  done
  python3 -c "print(f'{$t1 - $t0:.1f}')"
}

echo "N=$N concurrency=$CONC per sender, relay delay ${DELAY_MS} ms"
one=$(run 1)
three=$(run 3)
python3 - "$N" "$one" "$three" <<'PY'
import sys
n, one, three = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"one sender:    {one:.1f} s, {n / one:.0f} msg/s")
print(f"three senders: {three:.1f} s, {n / three:.0f} msg/s")
print(f"ratio:         {one / three:.2f}x (target >= 2.5)")
PY
