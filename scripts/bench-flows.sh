#!/usr/bin/env bash
# Replay at scale: the same number of packets with 1,024 and with 1,000,000 concurrent flows.
#
#   scripts/bench-flows.sh [RUNS]        (default 5 runs per row; build with cargo build --release)
#   BEFORE=/path/to/older/dnatsim scripts/bench-flows.sh   adds the same two rows for another
#                                                          build, run in the same session
#
# Runs every row once per round, RUNS rounds. Prints, per row, wall/user/system seconds as
# median (min-max) over the runs, the flows the table held and evicted, and peak RSS; then the
# many-flows/few-flows wall ratio, and the memory per flow. That one is measured apart, with
# the input streamed through a pipe: a mapped input's pages are handed back as the reader
# passes them, while the table grows, so the peak RSS of the rows above mixes the two (it
# under-counted the table by 40%).
# Every output is removed before its run, outside the timing, so no run pays for replacing the
# previous one's file. Outputs go to /dev/shm (memory) so the disk does not set the pace.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
BIN=target/release/dnatsim
RULES=pcaps/seed/rules.toml
PACKETS=2000000
WORK=$(mktemp -d /dev/shm/dnatsim-flows.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $PACKETS packets of 64-byte TCP (dnatsim gen --mix tcp64), --no-bandwidth, output in memory"
for flows in 1024 1000000; do
    "$BIN" gen -r "$RULES" -o "$WORK/f$flows.pcap" --mix tcp64 --packets "$PACKETS" --flows "$flows" -q
done

# median (min-max) of a column of numbers
stats() { sort -g | awk '{a[NR]=$1} END {printf "%.3f (%.3f-%.3f)", a[int((NR+1)/2)], a[1], a[NR]}'; }

# one NAME FLOWS EXTRA-ARGS...: one timed run of a row ($RUN_BIN, else this build), appended
# to that row's file of times.
one() {
    local name=$1 flows=$2; shift 2
    local bin=${RUN_BIN:-$BIN}
    rm -f "$WORK/out.pcap"
    # Wall time from the shell's microsecond clock (time's %e has 10 ms steps, 5% of the
    # few-flows row); user, system and peak RSS from /usr/bin/time.
    local t0=$EPOCHREALTIME
    /usr/bin/time -f "%U %S %M" -o "$WORK/one" \
        "$bin" replay "$WORK/f$flows.pcap" -r "$RULES" --no-bandwidth -q \
        -o "$WORK/out.pcap" --report "$WORK/r-$name.json" "$@"
    local t1=$EPOCHREALTIME
    echo "$(echo "$t1 - $t0" | bc -l) $(cat "$WORK/one")" >> "$WORK/times-$name"
}

# The rows, as NAME|FLOWS|BIN|EXTRA-ARGS.
ROWS=(
    "1,024 flows|1024||"
    "1,000,000 flows|1000000||"
    "1,000,000 flows, 1 thread|1000000||--threads 1"
    "1,000,000 flows, old 262,144|1000000||--max-flows 262144"
)
if [ -n "${BEFORE:-}" ]; then
    ROWS+=("before: 1,024 flows|1024|$BEFORE|" "before: 1,000,000 flows|1000000|$BEFORE|")
fi

# Round after round, each row once: a machine that turns noisy for a while (a shared host
# does) slows every row of those rounds alike, instead of the rows that happened to run then.
# Each round takes the rows in a new order, so that no row always follows the same one (a
# run after a million-flow run starts with that run's memory just handed back).
for _ in $(seq "$RUNS"); do
    mapfile -t order < <(printf '%s\n' "${ROWS[@]}" | shuf)
    for r in "${order[@]}"; do
        IFS='|' read -r name flows bin extra <<< "$r"
        # shellcheck disable=SC2086 # EXTRA-ARGS are words
        RUN_BIN=$bin one "$name" "$flows" $extra
    done
done

# summary NAME: the row's line, from its times and its last report.
summary() {
    local name=$1 times="$WORK/times-$1"
    local wall user sys rss
    wall=$(cut -d' ' -f1 "$times" | stats)
    user=$(cut -d' ' -f2 "$times" | stats)
    sys=$(cut -d' ' -f3 "$times" | stats)
    rss=$(cut -d' ' -f4 "$times" | sort -g | tail -1)
    local peak evicted
    peak=$(grep -A4 '"flows": {' "$WORK/r-$name.json" | grep '"peak"' | tr -dc 0-9)
    evicted=$(grep -A4 '"flows": {' "$WORK/r-$name.json" | grep '"evicted"' | tr -dc 0-9)
    printf '%-28s wall %s  user %s  sys %s  flows at once %9s  evicted %9s  peak RSS %7d KiB\n' \
        "$name" "$wall" "$user" "$sys" "$peak" "$evicted" "$rss"
    echo "$name ${wall%% *} $peak $rss" >> "$WORK/rows"
}

: > "$WORK/rows"
for r in "${ROWS[@]}"; do
    summary "${r%%|*}"
done

awk '
    $1 == "1,024" && $2 == "flows" {few = $3}
    $1 == "1,000,000" && $2 == "flows" && NF == 5 {many = $3}
    $1 == "before:" && $2 == "1,024" {bfew = $4}
    $1 == "before:" && $2 == "1,000,000" {bmany = $4}
    END {
        printf "many/few wall ratio (medians): %.2fx\n", many / few
        if (bfew > 0) printf "before: many/few wall ratio (medians): %.2fx\n", bmany / bfew
    }' "$WORK/rows"

# Memory per flow: peak RSS with the input streamed (nothing mapped; one thread, so no batches
# in flight), the many-flows run's over the few-flows run's, per flow more.
streamed_rss() {
    rm -f "$WORK/out.pcap"
    /usr/bin/time -f "%M" -o "$WORK/rss" sh -c \
        "cat '$WORK/f$1.pcap' | '$BIN' replay - -r '$RULES' --no-bandwidth -q --threads 1 -o '$WORK/out.pcap' --report '$WORK/r-stream-$1.json'"
    cat "$WORK/rss"
}
few_rss=$(streamed_rss 1024)
many_rss=$(streamed_rss 1000000)
flows_of() { grep -A4 '"flows": {' "$WORK/r-stream-$1.json" | grep '"peak"' | tr -dc 0-9; }
few_flows=$(flows_of 1024)
many_flows=$(flows_of 1000000)
echo "memory per flow: $(( (many_rss - few_rss) * 1024 / (many_flows - few_flows) )) bytes" \
    "(input streamed, one thread: ($many_rss - $few_rss KiB) / ($many_flows - $few_flows flows))"

# The same ratio round by round (each round ran both rows within a second or two).
round_ratios() {
    paste -d' ' <(cut -d' ' -f1 "$WORK/times-$2") <(cut -d' ' -f1 "$WORK/times-$1") |
        awk '{print $1 / $2}' | stats
}
echo "many/few wall ratio, round by round: median (min-max) $(round_ratios "1,024 flows" "1,000,000 flows")"
if [ -n "${BEFORE:-}" ]; then
    echo "before: round by round: median (min-max) $(round_ratios "before: 1,024 flows" "before: 1,000,000 flows")"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
