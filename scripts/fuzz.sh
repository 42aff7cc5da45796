#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while and prints how many inputs it executed.
#
#   scripts/fuzz.sh TARGET SECONDS     e.g. scripts/fuzz.sh capture_reader 300
#
# Targets: capture_reader, translate, replay, rules_parser (see fuzz/README.md). New corpus
# entries go to fuzz/corpus/TARGET (ignored by git, except the seed-* files); a crash is
# saved under fuzz/artifacts/TARGET and the script exits non-zero.
set -euo pipefail

usage="usage: scripts/fuzz.sh TARGET SECONDS"
target=${1:?$usage}
seconds=${2:?$usage}
cd "$(dirname "$0")/../fuzz"

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
# No sanitizer (-s none): ASan needs nightly, the crate has one audited `unsafe` (the file
# map), and without ASan a run does several times more executions. With -s none, cargo-fuzz
# needs no -Z flag, so the stable toolchain builds the targets as it is.
# Debug assertions bring overflow checks: arithmetic that would wrap is a finding too.
flags=(-s none --debug-assertions)

mkdir -p "corpus/$target" "artifacts/$target"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One libFuzzer process; -timeout flags inputs that run longer than 10 s (a hang is a bug).
status=0
timeout $((seconds + 900)) cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
corpus=$(find "corpus/$target" -type f | wc -l)
echo "target=$target seconds=$seconds executions=${runs:-?} exec_per_s=${rate:-?} corpus=$corpus status=$status"
if [ "$status" -ne 0 ]; then
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -n 20 || true
    tail -n 30 "$log"
fi
exit "$status"
