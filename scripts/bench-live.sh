#!/usr/bin/env bash
# dnatsim live as the gateway vs the Linux kernel as the gateway, in one run, on real TCP.
#
#   sudo scripts/bench-live.sh [SECONDS] [IO]    (defaults: 10 s per iperf3 run, IO mmsg)
#
# IO is dnatsim's AF_PACKET path: mmsg (recvmmsg/sendmmsg batches, the default) or pnet
# (pnet's datalink channel, a frame per system call). Topology: a client namespace, a gateway
# namespace and a server namespace joined by veth pairs (MTU 1500, offloads off), documentation
# addresses only (client 198.51.100.7, EIP 203.0.113.1 -> server 192.0.2.1, gateway inside
# 192.0.2.254). Nothing is sent outside these namespaces. Prints:
#   - uncapped (bandwidth package 100,000 Mbps): iperf3 TCP goodput through dnatsim and through
#     the kernel (ip_forward + the ruleset of `dnatsim export --format nft`), and the ratio;
#   - capped at 150 Mbps: the rate carried at the IP layer (IP bytes the receiver's interface
#     got, from 2 s into the run to 1 s before its end) client->server and, with iperf3 -R, server->client;
#   - ping RTT (median, p99) through dnatsim and through the kernel.
# Needs root, iproute2, iperf3, ping, nft, ethtool, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
io=${2:-mmsg}
[ "$(id -u)" = 0 ] || { echo "bench-live: needs root (network namespaces)" >&2; exit 1; }
for t in ip iperf3 ping nft ethtool python3 timeout; do
    command -v "$t" >/dev/null || { echo "bench-live: $t is not installed" >&2; exit 1; }
done

cargo build --release --quiet
bin=$PWD/target/release/dnatsim
tag=dnbench-$$
C=$tag-c G=$tag-g S=$tag-s
work=$(mktemp -d "${TMPDIR:-/tmp}/dnatsim-bench-live.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for n in "$C" "$G" "$S"; do ip netns del "$n" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

rules() { # $1 = bandwidth in Mbps, $2 = police or shape
    cat <<EOF
[gateway]
name = "bench"
# The uncapped runs use 100,000 Mbps, above what the cloud sells (alibaba allows 1-5,000).
profile = "permissive"
[bandwidth_package]
bandwidth_mbps = $1
mode = "${2:-police}"
public_ips = ["203.0.113.1"]
[[forward_entry]]
external_ip = "203.0.113.1"
external_port = "any"
ip_protocol = "any"
internal_ip = "192.0.2.1"
internal_port = "any"
EOF
}
rules 100000 > "$work/uncapped.toml"
rules 150 shape > "$work/capped.toml"
rules 150 police > "$work/policed.toml"

# --- topology -------------------------------------------------------------------------
for n in "$C" "$G" "$S"; do
    ip netns add "$n"
    ip -n "$n" link set lo up
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv4.ip_forward=0
done
ip link add c0 netns "$C" type veth peer name g0 netns "$G"
ip link add s0 netns "$S" type veth peer name g1 netns "$G"
for pair in "$C c0" "$G g0" "$G g1" "$S s0"; do
    set -- $pair
    ip -n "$1" link set "$2" mtu 1500 up
    ip netns exec "$1" ethtool -K "$2" rx off tx off tso off gso off gro off >/dev/null 2>&1 || true
done
ip -n "$C" addr add 198.51.100.7/24 dev c0
ip -n "$C" route add 203.0.113.0/24 dev c0
ip -n "$S" addr add 192.0.2.1/24 dev s0
ip -n "$S" route add default via 192.0.2.254

iperf3_server() {
    ip netns exec "$S" iperf3 -s -B 192.0.2.1 >/dev/null 2>&1 &
    pids+=($!)
    sleep 0.5
}

wait_ping() {
    for _ in $(seq 1 40); do
        ip netns exec "$C" ping -c 1 -W 1 203.0.113.1 >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    echo "bench-live: no ping through the gateway" >&2
    exit 1
}

goodput() { # extra iperf3 args; prints the receiver's Mbit/s
    ip netns exec "$C" timeout $((secs + 20)) iperf3 -c 203.0.113.1 -t "$secs" -J "$@" >"$work/iperf.json"
    python3 -c 'import json,sys; print("%.0f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$work/iperf.json"
}

rx_ip_bytes() { # ns dev: bytes received minus 14 bytes of Ethernet header per packet
    local b p
    b=$(ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_bytes")
    p=$(ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_packets")
    echo $((b - 14 * p))
}

carried() { # ns dev extra-iperf3-args: IP-layer Mbit/s the receiver got in the steady state
    # (from 2 s after the start to 1 s before the end, so TCP's start-up is not counted)
    local ns=$1 dev=$2; shift 2
    local b0 b1 t0 t1 job
    ip netns exec "$C" timeout $((secs + 20)) iperf3 -c 203.0.113.1 -t "$secs" "$@" >/dev/null &
    job=$!
    sleep 2
    b0=$(rx_ip_bytes "$ns" "$dev"); t0=$(date +%s.%N)
    sleep $((secs - 3))
    b1=$(rx_ip_bytes "$ns" "$dev"); t1=$(date +%s.%N)
    wait "$job"
    python3 -c 'import sys; b=int(sys.argv[2])-int(sys.argv[1]); t=float(sys.argv[4])-float(sys.argv[3]); print("%.1f" % (b*8/t/1e6))' "$b0" "$b1" "$t0" "$t1"
}

rtt() { # prints "median p99" in microseconds over 500 pings
    ip netns exec "$C" ping -c 500 -i 0.005 -q -W 1 203.0.113.1 >/dev/null 2>&1 || true
    ip netns exec "$C" ping -c 500 -i 0.005 -W 1 203.0.113.1 2>/dev/null |
        python3 -c '
import re, sys
v = sorted(float(m.group(1)) * 1000 for m in (re.search(r"time=([0-9.]+) ms", l) for l in sys.stdin) if m)
if not v: print("- -"); sys.exit()
print("%.0f %.0f %d" % (v[len(v) // 2], v[min(len(v) - 1, int(len(v) * 0.99))], len(v)))'
}

start_dnatsim() { # rules file
    ip netns exec "$G" "$bin" live -r "$1" --outside g0 --inside g1 --inside-ip 192.0.2.254 \
        --io "$io" --report "$work/report.json" >"$work/dnatsim.out" 2>"$work/dnatsim.err" &
    dn_pid=$!
    pids+=($dn_pid)
    wait_ping
}

stop_dnatsim() {
    kill -TERM "$dn_pid"
    wait "$dn_pid" || { echo "bench-live: dnatsim failed:" >&2; cat "$work/dnatsim.err" >&2; exit 1; }
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
echo "dnatsim $($bin --version | cut -d' ' -f2), AF_PACKET path: $io; iperf3 runs of $secs s; MTU 1500, offloads off"
echo

iperf3_server
# --- dnatsim, uncapped ----------------------------------------------------------------
start_dnatsim "$work/uncapped.toml"
dn_up=$(goodput)
dn_down=$(goodput -R)
read -r dn_med dn_p99 dn_n < <(rtt)
stop_dnatsim

# --- dnatsim, capped at 150 Mbps: shape, then police ----------------------------------
start_dnatsim "$work/capped.toml"
cap_up=$(carried "$S" s0)
cap_down=$(carried "$C" c0 -R)
cap_up_good=$(goodput)
cap_down_good=$(goodput -R)
stop_dnatsim
dropped=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["dropped"]["rate_limited"])' "$work/report.json")
start_dnatsim "$work/policed.toml"
pol_up=$(carried "$S" s0)
pol_down=$(carried "$C" c0 -R)
stop_dnatsim
pol_dropped=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["dropped"]["rate_limited"])' "$work/report.json")

# --- the kernel as the gateway: ip_forward + dnatsim's nft export --------------------------
"$bin" export --rules "$work/uncapped.toml" --format nft >"$work/dnat.nft"
ip -n "$G" addr add 203.0.113.1/32 dev g0
ip -n "$G" route add 198.51.100.0/24 dev g0
ip -n "$G" addr add 192.0.2.254/24 dev g1
ip netns exec "$G" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
ip netns exec "$G" nft -f "$work/dnat.nft"
# Neighbours learned while dnatsim was the gateway point at its MACs, which are the same
# interfaces' MACs; flush anyway so the kernel resolves afresh.
ip -n "$C" neigh flush dev c0
ip -n "$S" neigh flush dev s0
wait_ping
k_up=$(goodput)
k_down=$(goodput -R)
read -r k_med k_p99 k_n < <(rtt)

ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
printf '%-46s %12s %12s %8s\n' "" "dnatsim" "kernel" "ratio"
printf '%-46s %12s %12s %8s\n' "uncapped TCP goodput client->server (Mbit/s)" "$dn_up" "$k_up" "$(ratio "$dn_up" "$k_up")"
printf '%-46s %12s %12s %8s\n' "uncapped TCP goodput server->client (Mbit/s)" "$dn_down" "$k_down" "$(ratio "$dn_down" "$k_down")"
printf '%-46s %12s %12s %8s\n' "ping RTT median (us, $dn_n/$k_n replies)" "$dn_med" "$k_med" "$(ratio "$dn_med" "$k_med")"
printf '%-46s %12s %12s %8s\n' "ping RTT p99 (us)" "$dn_p99" "$k_p99" "$(ratio "$dn_p99" "$k_p99")"
echo
pct() { python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) / 1.5))" "$1"; }
echo "capped at 150 Mbps (dnatsim only; the kernel ruleset has no bandwidth package):"
echo "  mode = \"shape\" (defaults: burst 187,500 bytes, queue rate x 50 ms):"
printf '    %-44s %8s Mbit/s  (%s%% of 150)\n' "IP-layer rate carried client->server" "$cap_up" "$(pct "$cap_up")"
printf '    %-44s %8s Mbit/s  (%s%% of 150)\n' "IP-layer rate carried server->client (-R)" "$cap_down" "$(pct "$cap_down")"
printf '    %-44s %8s / %s Mbit/s\n' "iperf3 goodput client->server / -R" "$cap_up_good" "$cap_down_good"
printf '    %-44s %8s\n' "packets dropped by the package" "$dropped"
echo "  mode = \"police\" (the default; burst 187,500 bytes):"
printf '    %-44s %8s Mbit/s  (%s%% of 150)\n' "IP-layer rate carried client->server" "$pol_up" "$(pct "$pol_up")"
printf '    %-44s %8s Mbit/s  (%s%% of 150)\n' "IP-layer rate carried server->client (-R)" "$pol_down" "$(pct "$pol_down")"
printf '    %-44s %8s\n' "packets dropped by the package" "$pol_dropped"
