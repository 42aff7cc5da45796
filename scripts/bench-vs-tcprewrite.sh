#!/usr/bin/env bash
# dnatsim replay vs tcprewrite vs cp on the same IMIX capture of the seed scenario.
#
#   scripts/bench-vs-tcprewrite.sh [PACKETS] [RUNS]      (defaults: 1000000 packets, 9 runs)
#   TCPREWRITE=/path/to/tcprewrite scripts/bench-vs-tcprewrite.sh ...   (default: tcprewrite from PATH)
#   TMPDIR=/dev/shm scripts/bench-vs-tcprewrite.sh ...   (input and outputs in memory)
#   BEFORE=/path/to/older/dnatsim scripts/bench-vs-tcprewrite.sh ...   (adds that build's
#                                  equal-work rows, run in the same rounds, for a before/after)
#   FLOWS=0 scripts/bench-vs-tcprewrite.sh ...   (leaves out the many-flows table)
#
# The headline is equal work: cp, dnatsim with --no-bandwidth (every packet translated and
# written, so its output is as large as cp's and tcprewrite's) and tcprewrite. dnatsim with the
# seed's bandwidth package (which polices this 1 Gbps capture hard, so it writes much less) is a
# second table. Each tool runs RUNS times, alternating (warm page cache; a first, untimed round
# warms up), and the script prints wall, user and system time: median and min-max.
#
# Before every run, outside the timing, the tool's previous output is removed and `sync` writes
# back dirty pages: an existing output made dnatsim's system time swing (its temp file and the
# file it replaces coexist, so the kernel touches fresh pages; cp overwrites in place), and one
# tool's dirty pages must not throttle the next.
#
# The capture has 1,024 flows (gen's default). A second table repeats equal work on the same
# number of packets spread over 1,000,000 flows (`gen --flows 1000000`), where the flow table
# outgrows every cache (README, "Many flows").
#
# Needs tcprewrite (Debian package tcpreplay); without it the tcprewrite row is skipped. The
# header names the tcprewrite binary and version that ran; a TCPREWRITE that is set but not
# runnable is an error. The script never downloads anything.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-1000000}
runs=${2:-9}
work=$(mktemp -d "${TMPDIR:-/tmp}/dnatsim-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=target/release/dnatsim
rules=pcaps/seed/rules.toml
in="$work/imix.pcap"
mix=$("$bin" gen --rules "$rules" -o "$in" --mix imix --packets "$packets" --rate-mbps 1000 --seed 1 2>&1 |
    sed -n '/packets, .* IP bytes/,$p')
size=$(stat -c %s "$in")
many_flows=${FLOWS:-1000000}
in_many="$work/imix-many.pcap"
if [ "$many_flows" != 0 ]; then
    "$bin" gen --rules "$rules" -o "$in_many" --mix imix --packets "$packets" --rate-mbps 1000 \
        --seed 1 --flows "$many_flows" -q
fi
before=${BEFORE:-}
if [ -n "$before" ] && ! [ -x "$before" ]; then
    echo "BEFORE=$before is not an executable" >&2; exit 1
fi

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

declare -A wall user sys outsize
run() { # name output command...
    local name=$1 out=$2; shift 2
    local t0 t1 ut
    [ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is not installed" >&2; exit 1; }
    rm -f "$out"   # untimed, see the header
    sync
    t0=$(date +%s.%N)
    /usr/bin/time -o "$work/time" -f '%U %S' "$@" >/dev/null 2>&1
    ut=$(tail -n1 "$work/time")
    t1=$(date +%s.%N)
    wall[$name]+="$(echo "$t1 - $t0" | bc) "
    user[$name]+="${ut%% *} "
    sys[$name]+="${ut##* } "
    outsize[$name]=$(stat -c %s "$out")
}

tools=(cp dnatsim_eq dnatsim_eq_t1)
[ -n "$before" ] && tools+=(before_eq before_eq_t1)
[ "$have_tcprewrite" = 1 ] && tools+=(tcprewrite)
tools+=(dnatsim_policed)
if [ "$many_flows" != 0 ]; then
    tools+=(many_cp many_dnatsim_eq many_dnatsim_eq_t1)
    [ -n "$before" ] && tools+=(many_before_eq)
    [ "$have_tcprewrite" = 1 ] && tools+=(many_tcprewrite)
fi
for round in $(seq 0 "$runs"); do
    for tool in "${tools[@]}"; do
        out="$work/out.$tool"
        src=$in
        case $tool in many_*) src=$in_many ;; esac
        case ${tool#many_} in
            cp) cmd=(cp "$src" "$out") ;;
            dnatsim_eq) cmd=("$bin" replay "$src" --rules "$rules" --no-bandwidth -o "$out" -q) ;;
            dnatsim_eq_t1) cmd=("$bin" replay "$src" --rules "$rules" --no-bandwidth -o "$out" -q --threads 1) ;;
            before_eq) cmd=("$before" replay "$src" --rules "$rules" --no-bandwidth -o "$out" -q) ;;
            before_eq_t1) cmd=("$before" replay "$src" --rules "$rules" --no-bandwidth -o "$out" -q --threads 1) ;;
            tcprewrite) cmd=("$tcprewrite_path" --infile="$src" --outfile="$out" --dstipmap="$dstmap" --portmap=80:80,443:443,22:22 --fixcsum) ;;
            dnatsim_policed) cmd=("$bin" replay "$src" --rules "$rules" -o "$out" -q) ;;
        esac
        if [ "$round" = 0 ]; then rm -f "$out"; "${cmd[@]}" >/dev/null 2>&1; else run "$tool" "$out" "${cmd[@]}"; fi
    done
done

# median, min and max of the numbers in $1
stats() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {m = NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.3f %.3f %.3f", m, a[1], a[NR]}'; }
row() { # tool label
    local w u s
    read -r -a w <<<"$(echo "${wall[$1]}" | stats)"
    read -r -a u <<<"$(echo "${user[$1]}" | stats)"
    read -r -a s <<<"$(echo "${sys[$1]}" | stats)"
    printf '  %-34s %6.3f (%5.3f-%5.3f)  %5.2f (%4.2f-%4.2f)  %5.2f (%4.2f-%4.2f)  %5d MB\n' "$2" \
        "${w[0]}" "${w[1]}" "${w[2]}" "${u[0]}" "${u[1]}" "${u[2]}" "${s[0]}" "${s[1]}" "${s[2]}" \
        "$((outsize[$1] / 1000000))"
    med[$1]=${w[0]}; lo[$1]=${w[1]}; hi[$1]=${w[2]}
}
declare -A med lo hi
echo "input: $packets packets, $((size / 1000000)) MB, in ${TMPDIR:-/tmp}; $runs runs each, alternating; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "mix (dnatsim gen --mix imix --rate-mbps 1000 --seed 1: IP packets of 40/576/1500 bytes, 7:4:1):"
echo "$mix" | sed 's/^/  /'
if [ "$have_tcprewrite" = 1 ]; then echo "tcprewrite: $tcprewrite_path ($tcprewrite_version)"; else echo "tcprewrite: not found, skipped"; fi
echo "outputs removed before each run (untimed), then sync"
echo
echo "equal work                           wall s, median (min-max)   user s            system s          output"
row cp "cp"
row dnatsim_eq "dnatsim --no-bandwidth"
row dnatsim_eq_t1 "dnatsim --no-bandwidth --threads 1"
if [ -n "$before" ]; then
    row before_eq "before: dnatsim --no-bandwidth"
    row before_eq_t1 "before: ... --threads 1"
fi
[ "$have_tcprewrite" = 1 ] && row tcprewrite "tcprewrite"
echo
echo "with the bandwidth package (polices: less output)"
row dnatsim_policed "dnatsim (seed rules)"
if [ "$many_flows" != 0 ]; then
    echo
    echo "equal work, the same packets over $many_flows flows"
    row many_cp "cp"
    row many_dnatsim_eq "dnatsim --no-bandwidth"
    row many_dnatsim_eq_t1 "dnatsim --no-bandwidth --threads 1"
    [ -n "$before" ] && row many_before_eq "before: dnatsim --no-bandwidth"
    [ "$have_tcprewrite" = 1 ] && row many_tcprewrite "tcprewrite"
fi
echo
ratio() { echo "$1 / $2" | bc -l; }
printf 'dnatsim --no-bandwidth / cp, median:     %5.2fx\n' "$(ratio "${med[dnatsim_eq]}" "${med[cp]}")"
printf 'dnatsim --no-bandwidth, max / min:       %5.2fx\n' "$(ratio "${hi[dnatsim_eq]}" "${lo[dnatsim_eq]}")"
printf 'cp, max / min:                           %5.2fx\n' "$(ratio "${hi[cp]}" "${lo[cp]}")"
printf 'dnatsim --threads 1 / default, median:   %5.2fx\n' "$(ratio "${med[dnatsim_eq_t1]}" "${med[dnatsim_eq]}")"
if [ -n "$before" ]; then
    printf 'before / cp, median:                     %5.2fx\n' "$(ratio "${med[before_eq]}" "${med[cp]}")"
    printf 'before, max / min:                       %5.2fx\n' "$(ratio "${hi[before_eq]}" "${lo[before_eq]}")"
fi
if [ "$many_flows" != 0 ]; then
    printf 'many flows / 1,024 flows, dnatsim median: %5.2fx\n' "$(ratio "${med[many_dnatsim_eq]}" "${med[dnatsim_eq]}")"
    printf 'many flows, dnatsim / cp, median:        %5.2fx\n' "$(ratio "${med[many_dnatsim_eq]}" "${med[many_cp]}")"
fi
if [ "$have_tcprewrite" = 1 ]; then
    printf 'tcprewrite / cp, median:                 %5.2fx\n' "$(ratio "${med[tcprewrite]}" "${med[cp]}")"
    printf 'tcprewrite / dnatsim --no-bandwidth:     %5.2fx\n' "$(ratio "${med[tcprewrite]}" "${med[dnatsim_eq]}")"
fi
cmp -s "$work/out.dnatsim_eq" "$work/out.dnatsim_eq_t1" || { echo "threads 1 and 2 outputs differ" >&2; exit 1; }
for t in 1 2; do
    rss=$( { /usr/bin/time -f %M "$bin" replay "$in" --rules "$rules" --no-bandwidth -o "$work/out.rss" -q --threads "$t" >/dev/null; } 2>&1 | tail -1)
    printf 'peak RSS, dnatsim --no-bandwidth --threads %s: %4d MiB\n' "$t" "$((rss / 1024))"
done
