#!/usr/bin/env bash
# Import speed of `techshack subscribers import`: one fresh state file per size, each file
# with a name column and a few bad rows skipped (--skip-invalid), so the whole path runs
# (sniffing, UTF-8 check, line numbers, validation, the one transaction, the history rows).
#
#   benches/import.sh [ROWS...]          (default: 20000 200000 1000000)
#
# Target (issue 12): 1,000,000 rows in under 20 s on the 2-core reference machine, growing
# linearly: the seconds per 100,000 rows should stay about the same for every size.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(20000 200000 1000000)

cargo build --release --quiet
BIN=$PWD/target/release/techshack

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/techshack.toml" <<TOML
[site]
title = "Bench"
base_url = "https://example.org"
[state]
db = "state.sqlite3"
TOML

printf '%10s %10s %14s\n' rows seconds "s per 100k"
for n in "${SIZES[@]}"; do
  csv="$work/in-$n.csv"
  awk -v n="$n" 'BEGIN {
    print "email,name";
    for (i = 0; i < n; i++) {
      if (i % 100000 == 99999) print "not-an-address-" i ",Bad";
      else printf "reader%d@example%d.org,Reader %d\n", i, i % 97, i;
    }
  }' >"$csv"
  rm -f "$work/state.sqlite3"*
  start=$(date +%s.%N)
  "$BIN" -q --config "$work/techshack.toml" subscribers import --skip-invalid "$csv" 2>/dev/null
  end=$(date +%s.%N)
  count=$("$BIN" --config "$work/techshack.toml" subscribers list --status active | wc -l)
  want=$(( n - n / 100000 ))
  [ "$count" -eq "$want" ] || { echo "import.sh: $count active subscribers, expected $want" >&2; exit 1; }
  awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%10d %10.2f %14.2f\n", n, e - s, (e - s) * 100000 / n }'
done
