#!/usr/bin/env bash
# Sending speed and memory against Postfix's smtp-sink, compared in the same run with Postfix's
# own smtp-source at the same number of connections and message size (SPEC "Speed").
#
#   [ITEMS=13] [CONC=4] [BIN=...] benches/send.sh [RECIPIENTS...]   (default: 10000 100000 1000000)
#
# For each list size: a fresh state file with that many subscribers, smtp-source sending as
# many messages of the same size over CONC connections, then `techshack send` (the whole
# command: issue parsing, snapshot, every delivery journaled in the ledger) under
# /usr/bin/time. Prints one table row per size: both rates and their ratio (target >= 0.85),
# the send's wall time and peak RSS, the state file's size; then ten million extrapolated from
# the largest size (time and state file linear in the list, memory flat), and the peak-memory
# ratio of the largest size to the smallest (target <= 1.5); last, the CPU time per message of
# each sender and of the sink while it served that sender, which show whether the two cores
# were the limit. 13 items make a message of
# about 20 KB. Needs smtp-sink and smtp-source (scripts/setup-test-deps installs Postfix).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000 1000000)
CONC=${CONC:-4}
SINK=/usr/sbin/smtp-sink
SOURCE=/usr/sbin/smtp-source
for b in "$SINK" "$SOURCE" /usr/bin/time; do
  [ -x "$b" ] || { echo "send.sh: $b is missing: run scripts/setup-test-deps" >&2; exit 1; }
done

# BIN=path/to/techshack measures that binary instead of building one.
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=$PWD/target/release/techshack
fi

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
config() {
  cat <<TOML
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
db = "state/$1.sqlite3"
TOML
}
export TECHSHACK_SECRET=benchmark-secret-0123456789abcdef

# The size of one real message, for smtp-source's -l.
config one > "$work/one.toml"
"$BIN" -q -c "$work/one.toml" subscribers add sample@example.net
"$BIN" -q -c "$work/one.toml" send bench --dry-run "$work/eml"
SIZE=$(stat -c %s "$work"/eml/*.eml)

now() { date +%s.%N; }
py() { python3 -c "print($1)"; }
# CPU seconds (user + system) the sink has used so far, from /proc.
sink_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$sink_pid/stat"; }
# Microseconds of CPU per message: us_per_msg SECONDS N.
us_per_msg() { py "f'{($1) * 1e6 / $2:.0f}'"; }

echo "concurrency=$CONC message=${SIZE}B"
printf '%10s %12s %12s %6s %10s %10s %12s\n' recipients smtp-source techshack ratio send-time peak-RSS state-file
rows=()
cpu=()
for N in "${SIZES[@]}"; do
  config "bench$N" > "$work/bench$N.toml"
  export TECHSHACK_CONFIG="$work/bench$N.toml"
  python3 - "$N" > "$work/subscribers.csv" <<'PY'
import sys
n = int(sys.argv[1])
w = sys.stdout.write
w("email,name\n")
for i in range(1, n + 1):
    w(f"reader{i:08d}@example.net,Reader {i}\n")
PY
  "$BIN" -q subscribers import "$work/subscribers.csv"

  t0=$(now)
  k0=$(sink_cpu)
  /usr/bin/time -f '%U %S' -o "$work/src-cpu" \
    "$SOURCE" -d -s "$CONC" -m "$N" -l "$SIZE" -f digest@example.org -t reader@example.net "127.0.0.1:$PORT"
  k1=$(sink_cpu)
  t1=$(now)
  src_rate=$(py "f'{$N / ($t1 - $t0):.0f}'")
  read -r u s < "$work/src-cpu"
  src_cpu=$(us_per_msg "$u + $s" "$N")
  src_sink_cpu=$(us_per_msg "$k1 - $k0" "$N")

  t0=$(now)
  k0=$(sink_cpu)
  /usr/bin/time -f '%M %U %S' -o "$work/rss" "$BIN" send bench 2> "$work/send.log" \
    || { cat "$work/send.log" >&2; exit 1; }
  k1=$(sink_cpu)
  t1=$(now)
  secs=$(py "f'{$t1 - $t0:.1f}'")
  ts_rate=$(py "f'{$N / ($t1 - $t0):.0f}'")
  read -r rss_kib u s <<< "$(tail -n 1 "$work/rss")"
  ts_cpu=$(us_per_msg "$u + $s" "$N")
  ts_sink_cpu=$(us_per_msg "$k1 - $k0" "$N")

  sent=$("$BIN" status bench | awk '$1 == "sent" {print $2}')
  total=$("$BIN" status bench | awk '$1 == "total" {print $2}')
  [ "$sent" = "$N" ] && [ "$total" = "$N" ] || {
    echo "send.sh: the ledger says sent $sent of $total, expected $N" >&2
    exit 1
  }
  db="$work/state/bench$N.sqlite3"
  state=$(( $(stat -c %s "$db") + $(stat -c %s "$db-wal" 2>/dev/null || echo 0) ))
  printf '%10s %8s msg/s %6s msg/s %6s %9ss %7s MiB %8s MiB\n' "$N" "$src_rate" "$ts_rate" \
    "$(py "f'{$ts_rate / $src_rate:.2f}'")" "$secs" "$(py "f'{$rss_kib / 1024:.1f}'")" \
    "$(py "f'{$state / 1048576:.1f}'")"
  cpu+=("$(printf '%10s %10s us %10s us %10s us %10s us' "$N" "$src_cpu" "$src_sink_cpu" "$ts_cpu" "$ts_sink_cpu")")
  rows+=("$N $secs $rss_kib $state")
  rm -f "$db" "$db-wal" "$db-shm"
done

read -r n0 _ rss0 _ <<< "${rows[0]}"
read -r nl secsl rssl statel <<< "${rows[-1]}"
echo "peak RSS at $nl recipients is $(py "f'{$rssl / $rss0:.2f}'")x the peak at $n0 (target <= 1.5)"
echo "ten million extrapolated from $nl: $(py "f'{$secsl * 1e7 / $nl / 60:.0f}'") min," \
  "state file $(py "f'{$statel * 1e7 / $nl / 1073741824:.1f}'") GiB, peak RSS about $(py "f'{$rssl / 1024:.0f}'") MiB"
echo "CPU per message (user + system), each sender and the sink while it ran:"
printf '%10s %13s %13s %13s %13s\n' recipients smtp-source its-sink techshack its-sink
printf '%s\n' "${cpu[@]}"
