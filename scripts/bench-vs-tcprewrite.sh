#!/usr/bin/env bash
# dnatsim replay vs tcprewrite vs cp on the same IMIX capture of the seed scenario.
#
#   scripts/bench-vs-tcprewrite.sh [PACKETS] [RUNS]      (defaults: 1000000 packets, 5 runs)
#   TCPREWRITE=/path/to/tcprewrite scripts/bench-vs-tcprewrite.sh ...   (default: tcprewrite from PATH)
#
# Generates the capture with `dnatsim gen`, then runs cp, dnatsim (--threads 1 and 2) and
# tcprewrite alternately RUNS times each (warm page cache; the first round is a discarded
# warm-up), and prints the median wall time of each and the ratios. Needs tcprewrite
# (Debian package tcpreplay); without it the tcprewrite rows are skipped. The header names the
# tcprewrite binary and version that ran; a TCPREWRITE that is set but not runnable is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-1000000}
runs=${2:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/dnatsim-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=target/release/dnatsim
rules=pcaps/seed/rules.toml
in="$work/imix.pcap"
"$bin" gen --rules "$rules" -o "$in" --mix imix --packets "$packets" --rate-mbps 1000 --seed 1 2>/dev/null
size=$(stat -c %s "$in")

# tcprewrite's closest equivalent of the seed table: rewrite each EIP's destination to its
# server (it has no notion of per-port entries or replies), fix checksums.
dstmap="203.0.113.107/32:192.168.1.1/32,203.0.113.55/32:192.168.1.2/32,203.0.113.79/32:192.168.1.3/32,203.0.113.59/32:192.168.1.5/32"
have_tcprewrite=0
tcprewrite=${TCPREWRITE:-tcprewrite}
if tcprewrite_path=$(command -v "$tcprewrite"); then
    have_tcprewrite=1
    tcprewrite_version=$("$tcprewrite_path" -V 2>&1 | head -n1 || true)
elif [ -n "${TCPREWRITE:-}" ]; then
    echo "TCPREWRITE=$TCPREWRITE is not an executable" >&2; exit 1
fi

declare -A times
run() { # name command...
    local name=$1; shift
    local t0 t1
    # Untimed: write back the previous run's output first, so no run pays for another's dirty
    # pages (without this, whichever tool follows `cp` was throttled by the kernel's writeback).
    sync
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    times[$name]+="$(echo "$t1 - $t0" | bc) "
}

tools=(cp dnatsim_t1 dnatsim_t2)
[ "$have_tcprewrite" = 1 ] && tools+=(tcprewrite)
for round in $(seq 0 "$runs"); do
    for tool in "${tools[@]}"; do
        case $tool in
            cp) cmd=(cp "$in" "$work/out.cp") ;;
            dnatsim_t1) cmd=("$bin" replay "$in" --rules "$rules" -o "$work/out.dn1" -q --threads 1) ;;
            dnatsim_t2) cmd=("$bin" replay "$in" --rules "$rules" -o "$work/out.dn2" -q --threads 2) ;;
            tcprewrite) cmd=("$tcprewrite_path" --infile="$in" --outfile="$work/out.tcprw" --dstipmap="$dstmap" --portmap=80:80,443:443,22:22 --fixcsum) ;;
        esac
        if [ "$round" = 0 ]; then "${cmd[@]}" >/dev/null 2>&1; else run "$tool" "${cmd[@]}"; fi
    done
done
cmp -s "$work/out.dn1" "$work/out.dn2" || { echo "threads 1 and 2 outputs differ" >&2; exit 1; }

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "input: $packets packets, $((size / 1000000)) MB (IMIX), $runs runs each, medians; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if [ "$have_tcprewrite" = 1 ]; then echo "tcprewrite: $tcprewrite_path ($tcprewrite_version)"; else echo "tcprewrite: not found, skipped"; fi
declare -A med
for tool in "${tools[@]}"; do
    med[$tool]=$(echo "${times[$tool]}" | median)
    printf '  %-12s %7.3f s   %8.1f MB/s   %6.2f M packets/s\n' "$tool" "${med[$tool]}" \
        "$(echo "$size / ${med[$tool]} / 1000000" | bc -l)" "$(echo "$packets / ${med[$tool]} / 1000000" | bc -l)"
done
ratio() { echo "$1 / $2" | bc -l; }
printf 'dnatsim --threads 1 / cp:        %5.2fx\n' "$(ratio "${med[dnatsim_t1]}" "${med[cp]}")"
printf 'dnatsim --threads 2 / cp:        %5.2fx\n' "$(ratio "${med[dnatsim_t2]}" "${med[cp]}")"
printf 'speedup --threads 2 over 1:      %5.2fx\n' "$(ratio "${med[dnatsim_t1]}" "${med[dnatsim_t2]}")"
for t in 1 2; do
    rss=$( { /usr/bin/time -f %M "$bin" replay "$in" --rules "$rules" -o "$work/out.rss" -q --threads "$t" >/dev/null; } 2>&1 | tail -1)
    printf 'peak RSS, dnatsim --threads %s:  %5d MiB\n' "$t" "$((rss / 1024))"
done
if [ "$have_tcprewrite" = 1 ]; then
    printf 'tcprewrite / cp:                 %5.2fx\n' "$(ratio "${med[tcprewrite]}" "${med[cp]}")"
    best=${med[dnatsim_t1]}
    if (( $(echo "${med[dnatsim_t2]} < $best" | bc -l) )); then best=${med[dnatsim_t2]}; fi
    printf 'tcprewrite / dnatsim (best):     %5.2fx\n' "$(ratio "${med[tcprewrite]}" "$best")"
fi
