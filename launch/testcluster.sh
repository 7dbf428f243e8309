#!/usr/bin/env bash
# testcluster.sh: a cluster of K test hosts on this machine, made of Linux
# network namespaces joined by a bridge, so that MPI ranks on different test
# hosts really talk to each other over TCP.
#
#   launch/testcluster.sh up K                  make hosts swgpt-h0 .. swgpt-h{K-1}
#   launch/testcluster.sh run -np N -- gpt ARGS start N ranks spread over the hosts
#   launch/testcluster.sh mpirun MPIRUN-ARGS    mpirun with the cluster's settings (you give -np, --host)
#   launch/testcluster.sh shape 1gbit [0.2ms]   limit each host's uplink (and delay it, if netem exists)
#   launch/testcluster.sh shape off             remove the limits
#   launch/testcluster.sh cut h1 | restore h1   take one host's link down / up
#   launch/testcluster.sh status                hosts, addresses, links, limits, byte counters
#   launch/testcluster.sh down                  remove everything `up` made (safe to repeat)
#
# Layout (the prefix is SWGPT_NET_PREFIX, default 10.231.0; the names start with
# SWGPT_CLUSTER_NAME, default swgpt, so that two checkouts on one machine can
# each have a cluster: give each its own name and prefix):
#
#   root namespace: bridge swgpt-br0, 10.231.0.1/24 (mpirun runs here)
#     +-- veth swgpt-v0 <-> eth0 in namespace swgpt-h0, 10.231.0.10/24
#     +-- veth swgpt-v1 <-> eth0 in namespace swgpt-h1, 10.231.0.11/24
#     ...
#
# mpirun starts one Open MPI daemon per test host through launch/netns-rsh
# (in place of ssh); every rank runs inside its host's namespace with the
# host's name as its host name. MPI traffic is restricted to the bridge subnet
# and to the TCP transport (SWGPT_BTL, default "tcp,self"), so two ranks on
# different test hosts exchange data through their veths and the bridge.
# Needs root, iproute2 (ip, tc) and util-linux (unshare).
set -euo pipefail

# MARK: - Settings

readonly script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly repo_dir=$(cd "$script_dir/.." && pwd)
readonly prefix=${SWGPT_NET_PREFIX:-10.231.0}
readonly name=${SWGPT_CLUSTER_NAME:-swgpt}
[[ $name =~ ^[a-z][a-z0-9]{0,7}$ ]] || { echo "testcluster.sh: SWGPT_CLUSTER_NAME='$name' must be 1-8 lowercase letters or digits" >&2; exit 1; }
readonly bridge=$name-br0
readonly bridge_ip=$prefix.1
readonly subnet=$prefix.0/24
readonly state_dir=${SWGPT_CLUSTER_STATE:-/run/$name-testcluster}
readonly max_hosts=64

# die, note, usage, dispatch
. "$script_dir/lib.sh"

# MARK: - Requirements

need_root() {
    [[ $(id -u) == 0 ]] || die "needs root (network namespaces, bridges and veths): run it with sudo"
}

need_tools() {
    if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
        note "ip/tc missing; installing iproute2"
        apt-get install -y iproute2 >/dev/null || die "could not install iproute2: apt-get install -y iproute2"
    fi
    command -v unshare >/dev/null || die "unshare is missing: apt-get install -y util-linux"
    command -v hostname >/dev/null || die "hostname is missing: apt-get install -y hostname"
}

host_ns() { echo "$name-h$1"; }
host_ip() { echo "$prefix.$((10 + $1))"; }
host_veth() { echo "$name-v$1"; }

# Indices of the test hosts that exist now (from the namespaces, not the state file).
existing_hosts() {
    ip netns list 2>/dev/null | awk '{ print $1 }' | sed -n "s/^$name-h\\([0-9][0-9]*\\)\$/\\1/p" | sort -n
}

# Maps "h1", "swgpt-h1", "1" or "10.231.0.11" to the index 1 of an existing host.
host_index() {
    local arg=$1 index
    case $arg in
        "$name"-h[0-9]*) index=${arg#"$name"-h} ;;
        h[0-9]*) index=${arg#h} ;;
        "$prefix".*) index=$(( ${arg##*.} - 10 )) ;;
        *) index=$arg ;;
    esac
    [[ $index =~ ^[0-9]+$ ]] || die "'$arg' is not a test host; use h0, $name-h0, 0 or $(host_ip 0)"
    ip netns list | awk '{ print $1 }' | grep -qx "$(host_ns "$index")" \
        || die "test host $(host_ns "$index") does not exist; see: $0 status"
    echo "$index"
}

# MARK: - up / down

cmd_up() {
    [[ $# == 1 && $1 =~ ^[0-9]+$ && $1 -ge 1 && $1 -le $max_hosts ]] \
        || die "usage: $0 up K   (K test hosts, 1..$max_hosts)"
    local k=$1
    need_root
    need_tools
    if [[ -n $(existing_hosts) ]] || ip link show "$bridge" >/dev/null 2>&1; then
        die "a test cluster is already up ($0 status); take it down first: $0 down"
    fi
    # The subnet must be free: never take addresses another interface uses.
    if ip -o -4 addr show | awk '{ print $4 }' | grep -q "^${prefix//./\\.}\."; then
        die "addresses $subnet are already in use on this machine; choose another prefix: SWGPT_NET_PREFIX=10.232.0 $0 up $k"
    fi
    trap 'note "up failed; removing what was made"; cmd_down >/dev/null 2>&1 || true' ERR

    ip link add "$bridge" type bridge
    ip addr add "$bridge_ip/24" dev "$bridge"
    ip link set "$bridge" up

    mkdir -p "$state_dir"
    : >"$state_dir/hosts.new"
    local i ns veth
    for ((i = 0; i < k; i++)); do
        ns=$(host_ns "$i")
        veth=$(host_veth "$i")
        ip netns add "$ns"
        ip link add "$veth" type veth peer name "$veth-ns"
        ip link set "$veth-ns" netns "$ns"
        ip -n "$ns" link set "$veth-ns" name eth0
        ip -n "$ns" addr add "$(host_ip "$i")/24" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        ip link set "$veth" master "$bridge"
        ip link set "$veth" up
        echo "$ns $(host_ip "$i") $i" >>"$state_dir/hosts.new"
    done
    mv "$state_dir/hosts.new" "$state_dir/hosts"
    trap - ERR

    # Every host must reach the bridge and every other host.
    for ((i = 0; i < k; i++)); do
        wait_for_ping "$(host_ns "$i")" "$bridge_ip"
        wait_for_ping "$(host_ns "$i")" "$(host_ip $(( (i + 1) % k )))"
    done
    note "up: $k test host(s) on $bridge ($subnet): $(awk '{ printf "%s=%s ", $1, $2 }' "$state_dir/hosts")"
}

# Pings from namespace $1 to address $2 until it answers (links take a moment to come up).
wait_for_ping() {
    command -v ping >/dev/null || return 0  # no ping on this machine: trust the links
    local tries
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        if ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; then return 0; fi
        sleep 0.3
    done
    die "$1 cannot reach $2 (is a firewall filtering bridged traffic? see: nft list ruleset)"
}

cmd_down() {
    [[ $# == 0 ]] || die "usage: $0 down"
    need_root
    local i removed=0
    for i in $(existing_hosts); do
        ip netns pids "$(host_ns "$i")" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip link del "$(host_veth "$i")" 2>/dev/null || true
        ip netns del "$(host_ns "$i")" 2>/dev/null || true
        removed=$((removed + 1))
    done
    local bridge_note=""
    if ip link show "$bridge" >/dev/null 2>&1; then
        ip link del "$bridge"
        bridge_note=" and $bridge"
    fi
    rm -rf "$state_dir"
    note "down: removed $removed test host(s)$bridge_note"
}

# MARK: - run

cmd_run() {
    local np=""
    while [[ $# -gt 0 ]]; do
        case $1 in
            -np|-n|--np) [[ $# -ge 2 ]] || die "-np needs a number"; np=$2; shift 2 ;;
            --) shift; break ;;
            *) die "usage: $0 run -np N -- gpt ARGS...   (unexpected '$1')" ;;
        esac
    done
    [[ $np =~ ^[0-9]+$ && $np -ge 1 ]] || die "usage: $0 run -np N -- gpt ARGS...   (N ranks, at least 1)"
    [[ $# -ge 1 ]] || die "usage: $0 run -np N -- gpt ARGS...   (no program given)"
    need_root
    [[ -r $state_dir/hosts ]] || die "no test cluster is up; start one: $0 up 2"
    local k
    k=$(wc -l <"$state_dir/hosts")

    # `gpt` means this checkout's release build (SWIFTGPT_BIN overrides).
    local program=$1
    shift
    if [[ $program == gpt ]]; then
        program=${SWIFTGPT_BIN:-$repo_dir/.build/release/gpt}
        [[ -x $program ]] || die "$program is not built; run: swift build -c release --product gpt"
    fi

    # Ranks fill the hosts in blocks: ceil(N/K) slots per host, like nodes of a real cluster.
    local slots=$(( (np + k - 1) / k ))
    local hostfile=$state_dir/hostfile
    awk -v s="$slots" '{ print $2 " slots=" s }' "$state_dir/hosts" >"$hostfile"

    cluster_mpirun -np "$np" --hostfile "$hostfile" --map-by slot "$program" "$@"
}

# mpirun with the cluster's settings; the caller gives -np, the hosts (--hostfile or --host with the
# hosts' addresses) and the program. `gpt supervise --elastic --launcher "testcluster.sh mpirun"` uses it.
cmd_mpirun() {
    need_root
    [[ -r $state_dir/hosts ]] || die "no test cluster is up; start one: $0 up 2"
    [[ $# -ge 1 ]] || die "usage: $0 mpirun -np N --host ADDR:SLOTS,... PROGRAM ARGS..."
    # A word `gpt` is this checkout's release build (SWIFTGPT_BIN overrides), as in `run`.
    local words=() word
    for word in "$@"; do
        [[ $word == gpt ]] && word=${SWIFTGPT_BIN:-$repo_dir/.build/release/gpt}
        words+=("$word")
    done
    cluster_mpirun "${words[@]}"
}

cluster_mpirun() {
    local root_flag=()
    [[ $(id -u) == 0 ]] && root_flag=(--allow-run-as-root)
    # All test hosts share this machine's cores: no binding, oversubscription allowed.
    # TCP keepalives on mpirun's links to its daemons (2 s idle, 3 probes 1 s apart)
    # let mpirun notice a host that dropped off the network in seconds rather than
    # the kernel's retransmission timeout, so a job with a lost host ends.
    # The remote shell comes from the environment, so a caller's --mca plm_rsh_agent wins.
    export SWGPT_CLUSTER_STATE=$state_dir  # for netns-rsh
    export OMPI_MCA_plm_rsh_agent=${OMPI_MCA_plm_rsh_agent:-$script_dir/netns-rsh}
    exec mpirun "${root_flag[@]}" --oversubscribe --bind-to none \
        --mca plm_rsh_no_tree_spawn 1 \
        --mca btl "${SWGPT_BTL:-tcp,self}" \
        --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet" \
        --mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 3 \
        -x SWGPT_CLUSTER_STATE="$state_dir" -x SWIFTGPT_THREADS="${SWIFTGPT_THREADS:-1}" \
        -x OPENBLAS_NUM_THREADS="${SWIFTGPT_THREADS:-1}" -x OMP_NUM_THREADS="${SWIFTGPT_THREADS:-1}" \
        "$@"
}

# MARK: - shape / cut / restore

# Bits per second of a tc rate such as 1gbit, 100mbit, 500kbit, 8000bit.
rate_bits() {
    local rate=${1,,} number unit
    [[ $rate =~ ^([0-9]+(\.[0-9]+)?)([kmg]?)bit$ ]] || die "'$1' is not a rate; use e.g. 1gbit, 100mbit, 500kbit"
    number=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[3]}
    awk -v n="$number" -v u="$unit" 'BEGIN { m = u == "k" ? 1e3 : u == "m" ? 1e6 : u == "g" ? 1e9 : 1; printf "%.0f", n * m }'
}

netem_available() {
    local ns=$1
    if ip netns exec "$ns" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
        ip netns exec "$ns" tc qdisc del dev lo root 2>/dev/null || true
        return 0
    fi
    return 1
}

cmd_shape() {
    [[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 shape RATE [DELAY]   (e.g. shape 1gbit 0.2ms) or: $0 shape off"
    need_root
    local hosts
    hosts=$(existing_hosts)
    [[ -n $hosts ]] || die "no test cluster is up; start one: $0 up 2"
    local i ns
    if [[ $1 == off ]]; then
        for i in $hosts; do ip netns exec "$(host_ns "$i")" tc qdisc del dev eth0 root 2>/dev/null || true; done
        note "shape: limits removed"
        return
    fi
    local rate=$1 delay=${2:-0}
    local bits
    bits=$(rate_bits "$rate")
    [[ $delay =~ ^[0-9]+(\.[0-9]+)?(us|ms|s)?$ ]] || die "'$delay' is not a delay; use e.g. 0.2ms, 50us or 0"
    local want_delay=1
    [[ $delay =~ ^0+(\.0+)?(us|ms|s)?$ ]] && want_delay=0
    local first
    first=$(host_ns "$(echo "$hosts" | head -n 1)")
    if netem_available "$first"; then
        for i in $hosts; do
            ns=$(host_ns "$i")
            ip netns exec "$ns" tc qdisc replace dev eth0 root netem delay "$delay" rate "$rate" limit 100000
        done
        note "shape: every host's uplink limited to $rate with $delay one-way delay (netem)"
    else
        if [[ $want_delay == 1 ]]; then
            die "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM), so a delay cannot be added; for a bandwidth limit alone run: $0 shape $rate 0"
        fi
        # tbf: a bucket of 10 ms worth of traffic (at least 64 KiB) absorbs bursts.
        local burst=$(( bits / 8 / 100 ))
        (( burst < 65536 )) && burst=65536
        for i in $hosts; do
            ns=$(host_ns "$i")
            ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 100ms
        done
        note "shape: every host's uplink limited to $rate (tbf; no delay: netem is not in this kernel)"
    fi
}

cmd_cut() {
    [[ $# == 1 ]] || die "usage: $0 cut HOST   (e.g. cut h1)"
    need_root
    local i
    i=$(host_index "$1")
    ip link set "$(host_veth "$i")" down
    note "cut: $(host_ns "$i") ($(host_ip "$i")) is off the network"
}

cmd_restore() {
    [[ $# == 1 ]] || die "usage: $0 restore HOST   (e.g. restore h1)"
    need_root
    local i
    i=$(host_index "$1")
    ip link set "$(host_veth "$i")" up
    note "restore: $(host_ns "$i") ($(host_ip "$i")) is back on the network"
}

# MARK: - status

cmd_status() {
    [[ $# == 0 ]] || die "usage: $0 status"
    local hosts
    hosts=$(existing_hosts)
    if [[ -z $hosts ]] && ! ip link show "$bridge" >/dev/null 2>&1; then
        echo "no test cluster (start one: $0 up 2)"
        return
    fi
    echo "bridge $bridge $bridge_ip/24: $(cat /sys/class/net/$bridge/operstate 2>/dev/null || echo missing)"
    local i veth qdisc
    for i in $hosts; do
        veth=$(host_veth "$i")
        qdisc=$(ip netns exec "$(host_ns "$i")" tc qdisc show dev eth0 2>/dev/null | head -n 1)
        printf '%s %s link %s rx %s bytes tx %s bytes qdisc: %s\n' "$(host_ns "$i")" "$(host_ip "$i")" \
            "$(cat /sys/class/net/$veth/operstate 2>/dev/null || echo missing)" \
            "$(cat /sys/class/net/$veth/statistics/rx_bytes 2>/dev/null || echo ?)" \
            "$(cat /sys/class/net/$veth/statistics/tx_bytes 2>/dev/null || echo ?)" "${qdisc:-none}"
    done
}

# MARK: - Main

dispatch "up down run mpirun shape cut restore status" "$@"
