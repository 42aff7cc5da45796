#!/usr/bin/env bash
# Instruction counts (valgrind --tool=callgrind), which are repeatable on a shared machine:
# the figures of the README's "Performance" section.
#
#   scripts/profile.sh [PACKETS]      (default: 200000 packets end to end)
#
# 1. The translator: the translate benchmark's batch loop (`run_batch`: copy each frame into
#    the work buffer, translate it) on 64-byte TCP packets of established flows, instructions
#    per packet (collected inside run_batch only, over a fixed number of batches).
# 2. End to end: `dnatsim replay` of PACKETS generated 64-byte TCP packets, --threads 1
#    --no-bandwidth -o FILE, instructions per packet in total and in each part (inclusive
#    cost of each part's source files in the loop, divided by the packets).
# Needs valgrind (callgrind_annotate comes with it).
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-200000}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/dnatsim-profile.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bench=$(cargo bench --bench translate --no-run --message-format=json 2>/dev/null |
    grep -F '"kind":["bench"]' | grep -F '"name":"translate"' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1)
[ -x "$bench" ] || { echo "could not build the translate benchmark" >&2; exit 1; }

# Fixed work: the benchmark binds its flows outside run_batch, then runs exactly $batches
# batches (TRANSLATE_PROFILE_BATCHES), so the divisor is known rather than counted. Five
# processes, because each draws its own flow-map secret and with it how often keys collide
# (about +-1% here); the median is the figure to compare builds by.
batches=300
echo "== translator: translate/tcp_established_64B (callgrind, inside run_batch, $batches batches of 1024 packets, 5 processes)"
: >"$work/bench.txt"
for run in 1 2 3 4 5; do
    TRANSLATE_PROFILE_BATCHES=$batches valgrind --tool=callgrind \
        --callgrind-out-file="$work/bench.$run.out" --toggle-collect='*run_batch*' \
        "$bench" >/dev/null 2>&1
    total=$(sed -n 's/^summary: //p' "$work/bench.$run.out" | awk '{print $1}')
    [ "${total:-0}" -gt 0 ] || { echo "run_batch was not called" >&2; exit 1; }
    echo "$total / ($batches * 1024)" | bc -l >>"$work/bench.txt"
done
sort -g "$work/bench.txt" | awk '{a[NR] = $1} END {
    printf "  instructions per packet: median %.1f (%.1f-%.1f over 5 processes)\n", a[3], a[1], a[5]}'

echo "== end to end: dnatsim replay of $packets 64-byte TCP packets, --threads 1 --no-bandwidth"
echo "   (instructions per packet)"
bin=target/release/dnatsim
rules=pcaps/seed/rules.toml
"$bin" gen --rules "$rules" -o "$work/tcp64.pcap" --mix tcp64 --packets "$packets" --seed 1 2>/dev/null
valgrind --tool=callgrind --callgrind-out-file="$work/replay.out" \
    "$bin" replay "$work/tcp64.pcap" --rules "$rules" --threads 1 --no-bandwidth -q \
    -o "$work/out.pcap" >/dev/null 2>&1
callgrind_annotate --inclusive=yes --threshold=100 "$work/replay.out" >"$work/replay.txt" 2>/dev/null
callgrind_annotate --inclusive=no --threshold=100 "$work/replay.out" >"$work/self.txt" 2>/dev/null
total=$(sed -n 's/^summary: //p' "$work/replay.out" | awk '{print $1}')
printf '  %-56s %6.0f\n' "whole process" "$(echo "$total / $packets" | bc -l)"
# Each part is the inclusive cost of one source file's code where the compiler inlined it (the
# annotate lines "file:function"), divided by the packets; a part that is not found prints 0.
ir() { # file:function...   (inclusive; IR_FILE=self.txt for the function's own lines)
    local sum=0 x
    for x in "$@"; do
        sum=$(( sum + $(awk -v k="$x" '{n = $1; s = $0; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", s); sub(/ \[.*$/, "", s)
        if (s == k) {gsub(",", "", n); print n; exit}}' "$work/${IR_FILE:-replay.txt}" | grep . || echo 0) ))
    done
    echo "$sum"
}
part() { # label file:function...
    local label=$1; shift
    printf '  %-56s %6.0f\n' "$label" "$(echo "$(ir "$@") / $packets" | bc -l)"
}
# The in-order loop is one function with the translator's fast path, the reader and the writer
# inlined into it; a part is the code of its source files there. The translator's share is
# every file of the fast path (its own lines, the header views, link layers, checksums and the
# flow table); the benchmark's fixed-work figure above is the one to compare builds by.
r=dnatsim::pipeline::in_order
part "translator (the fast path's files, inlined in the loop)" \
    "src/nat/translate.rs:$r" "src/wire/header.rs:$r" "src/wire/ipv4.rs:$r" "src/wire/link.rs:$r" \
    "src/wire/checksum.rs:$r" "src/nat/flow.rs:$r" "src/nat/flowmap.rs:$r"
part "  of which: its own lines (src/nat/translate.rs)" "src/nat/translate.rs:$r"
part "  of which: checksums (src/wire/checksum.rs)" "src/wire/checksum.rs:$r"
part "  of which: flow lookup and refresh (flow.rs, flowmap.rs)" "src/nat/flow.rs:$r" "src/nat/flowmap.rs:$r"
part "writer (src/capture/writer.rs: record header + copy)" "src/capture/writer.rs:$r"
part "reader (src/capture/reader.rs)" "src/capture/reader.rs:$r"
IR_FILE=self.txt part "the loop itself (src/pipeline/mod.rs, its own lines)" "src/pipeline/mod.rs:$r"
part "sink: counters, package off (src/pipeline/sink.rs)" "src/pipeline/sink.rs:$r"
