#!/usr/bin/env bash
# Peak resident memory of dnatsim replay on a large capture: the README's "peak RSS" figures.
#
#   scripts/peak-rss.sh [PACKETS]      (default: 5600000 IMIX packets, about 2 GB)
#   TMPDIR=/dev/shm scripts/peak-rss.sh ...   (input and output in memory; needs the room)
#
# Generates the capture (the seed scenario, IMIX at 1 Gbps), then runs `dnatsim replay` with one
# and two threads under GNU time and prints the maximum resident set size of each. The reader
# maps the input and hands consumed pages back to the kernel, so RSS stays far below the input.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-5600000}
[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is not installed" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/dnatsim-rss.XXXXXX")
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
bin=target/release/dnatsim
rules=pcaps/seed/rules.toml
in="$work/big.pcap"
"$bin" gen --rules "$rules" -o "$in" --mix imix --packets "$packets" --rate-mbps 1000 --seed 1 2>/dev/null
echo "input: $packets packets, $(( $(stat -c %s "$in") / 1000000 )) MB, in ${TMPDIR:-/tmp}"
for n in 1 2; do
    rm -f "$work/out.pcap"
    /usr/bin/time -o "$work/time" -f %M "$bin" replay "$in" --rules "$rules" -o "$work/out.pcap" -q --threads "$n" >/dev/null 2>&1
    kb=$(tail -n1 "$work/time")
    printf 'peak RSS, --threads %s: %8d kB\n' "$n" "$kb"
done
