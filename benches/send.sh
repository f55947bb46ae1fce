#!/usr/bin/env bash
# Sending speed against Postfix's smtp-sink, compared in the same run with Postfix's own
# smtp-source at the same number of connections and message size (SPEC "Speed").
#
#   [ITEMS=13] benches/send.sh [MESSAGES] [CONCURRENCY]   (13 items make a message of about 20 KB)
#
# Needs smtp-sink and smtp-source (scripts/setup-test-deps installs Postfix). Prints both
# rates, the ratio (target >= 0.6) and checks that the ledger recorded every delivery.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-10000}
CONC=${2:-4}
SINK=/usr/sbin/smtp-sink
SOURCE=/usr/sbin/smtp-source
for b in "$SINK" "$SOURCE"; do
  [ -x "$b" ] || { echo "send.sh: $b is missing: run scripts/setup-test-deps" >&2; exit 1; }
done

cargo build --release --quiet
BIN=$PWD/target/release/techshack

work=$(mktemp -d)
sink_pid=""
cleanup() {
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$SINK" -u nobody "127.0.0.1:$PORT" 1000 &
sink_pid=$!
sleep 0.5

# A site whose issue makes a message of about 20 KB.
mkdir -p "$work/issues"
today=$(date -u +%Y-%m-%d)
{
  printf -- '---\ntitle: "Benchmark issue"\ndate: %s\ndescription: Twenty kilobytes of digest\n---\n\n' "$today"
  for i in $(seq 1 "${ITEMS:-13}"); do
    printf '## [Article %d about queues and logs](https://example.com/articles/%d)\n\n' "$i" "$i"
    printf 'Notes on article %d: a log is an append-only sequence of records ordered by time; ' "$i"
    printf 'consumers read at their own pace and the broker keeps the data for a retention window, '
    printf 'so replays are cheap and backpressure is explicit. Partitioning spreads the load.\n\n'
  done
} > "$work/issues/bench.md"
cat > "$work/techshack.toml" <<TOML
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
url = "smtp://127.0.0.1:$PORT"
concurrency = $CONC
rate = 1000000
per_connection = 1000
timeout_secs = 30

[state]
db = "state/bench.sqlite3"
TOML
export TECHSHACK_CONFIG="$work/techshack.toml"
export TECHSHACK_SECRET=benchmark-secret-0123456789abcdef

{
  echo "email,name"
  for i in $(seq -w 1 "$N"); do echo "reader$i@example.net,Reader $i"; done
} > "$work/subscribers.csv"
"$BIN" -q subscribers import "$work/subscribers.csv"

# The size of one real message, for smtp-source's -l.
echo "email" > "$work/one.csv"
mkdir -p "$work/eml"
TECHSHACK_CONFIG_ONE="$work/one.toml"
sed "s#state/bench.sqlite3#state/one.sqlite3#" "$work/techshack.toml" > "$TECHSHACK_CONFIG_ONE"
"$BIN" -q -c "$TECHSHACK_CONFIG_ONE" subscribers add sample@example.net
"$BIN" -q -c "$TECHSHACK_CONFIG_ONE" send bench --dry-run "$work/eml"
SIZE=$(stat -c %s "$work"/eml/*.eml)

now() { date +%s.%N; }

t0=$(now)
"$SOURCE" -d -s "$CONC" -m "$N" -l "$SIZE" -f digest@example.org -t reader@example.net "127.0.0.1:$PORT"
t1=$(now)
src_rate=$(python3 -c "print(f'{$N / ($t1 - $t0):.0f}')")

t0=$(now)
"$BIN" send bench 2> "$work/send.log" || { cat "$work/send.log" >&2; exit 1; }
t1=$(now)
ts_rate=$(python3 -c "print(f'{$N / ($t1 - $t0):.0f}')")

sent=$("$BIN" status bench | awk '$1 == "sent" {print $2}')
total=$("$BIN" status bench | awk '$1 == "total" {print $2}')
[ "$sent" = "$N" ] && [ "$total" = "$N" ] || {
  echo "send.sh: the ledger says sent $sent of $total, expected $N" >&2
  exit 1
}

ratio=$(python3 -c "print(f'{$ts_rate / $src_rate:.2f}')")
echo "messages=$N concurrency=$CONC size=${SIZE}B"
echo "smtp-source -d: $src_rate msg/s"
echo "techshack send: $ts_rate msg/s (whole command: issue parsing, snapshot, ledger; sent $sent recorded)"
echo "ratio: $ratio (target >= 0.60)"
cat "$work/send.log"
