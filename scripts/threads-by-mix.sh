#!/usr/bin/env bash
# dnatsim --threads 1 against --threads 2 on three mixes of the seed scenario: the README's
# per-mix thread table.
#
#   scripts/threads-by-mix.sh [PACKETS] [RUNS]      (defaults: 1000000 packets, 7 runs)
#   TMPDIR=/dev/shm scripts/threads-by-mix.sh ...    (input and output in memory)
#
# For each mix: generate the capture, then RUNS alternating runs of each thread count (after an
# untimed warm-up of each), with the seed's bandwidth package; the output is removed and `sync`
# run before every timed run, outside the timing. Prints the median wall time of each and the
# speedup, and the output's size.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-1000000}
runs=${2:-7}
work=$(mktemp -d "${TMPDIR:-/tmp}/dnatsim-threads.XXXXXX")
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
bin=target/release/dnatsim
rules=pcaps/seed/rules.toml

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "$packets packets, $runs alternating runs each, medians, in ${TMPDIR:-/tmp}; $(nproc) cores"
printf '  %-24s %10s %10s %8s %8s\n' "mix" "1 thread" "2 threads" "speedup" "output"
for m in "imix 1000" "tcp64 100" "imix 100"; do
    read -r mix rate <<<"$m"
    in="$work/in.pcap"
    "$bin" gen --rules "$rules" -o "$in" --mix "$mix" --packets "$packets" --rate-mbps "$rate" --seed 1 2>/dev/null
    declare -A t=([1]="" [2]="")
    for round in $(seq 0 "$runs"); do
        for n in 1 2; do
            rm -f "$work/out.pcap"
            sync
            t0=$(date +%s.%N)
            "$bin" replay "$in" --rules "$rules" -o "$work/out.pcap" -q --threads "$n" >/dev/null 2>&1
            t1=$(date +%s.%N)
            [ "$round" = 0 ] || t[$n]+="$(echo "$t1 - $t0" | bc) "
        done
    done
    m1=$(echo "${t[1]}" | median)
    m2=$(echo "${t[2]}" | median)
    printf '  %-24s %8.3f s %8.3f s %7.2fx %5d MB\n' "$mix at $rate Mbps" "$m1" "$m2" \
        "$(echo "$m1 / $m2" | bc -l)" "$(( $(stat -c %s "$work/out.pcap") / 1000000 ))"
done
