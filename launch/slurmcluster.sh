#!/usr/bin/env bash
# slurmcluster.sh: a real Slurm cluster on this machine, on the test hosts of
# launch/testcluster.sh (network namespaces joined by a bridge), for testing
# launch/slurm.sbatch and multi-node jobs without a cluster.
#
#   launch/slurmcluster.sh up K      K test hosts (2..8), munge, slurmctld, one slurmd per host; waits until ready
#   launch/slurmcluster.sh env       prints `export SLURM_CONF=...` for sbatch, squeue, sinfo, scontrol
#   launch/slurmcluster.sh status    daemons, nodes and jobs
#   launch/slurmcluster.sh down      stops every daemon and job, removes the hosts and the state (safe to repeat)
#
# Layout (prefix SWGPT_NET_PREFIX, default 10.231.0; names SWGPT_CLUSTER_NAME, default swgpt;
# state SWGPT_SLURM_STATE, default /run/swgpt-slurm):
#
#   root namespace   munged (a Unix socket in the state directory: no network port)
#   swgpt-h0         slurmctld on 10.231.0.10:6817, slurmd "swgpt-h0" on 10.231.0.10:6818
#   swgpt-h1 ...     slurmd "swgpt-h1" on 10.231.0.11:6818 ...
#   partition "test" = every host, 4 CPUs each (oversubscribed: the hosts share this machine's cores)
#
# Each daemon runs inside its host's network namespace (so it can reach and be
# reached only on that host's address and loopback) and its own UTS namespace
# (so its host name is the node name). Jobs, their steps and srun run there too.
# Cgroups are not used (proctrack/linuxproc, task/none): namespaces share them.
# Needs root, and `launch/install-deps.sh --slurm` (slurmctld, slurmd, slurm-client, munge).
set -Eeuo pipefail

# MARK: - Settings

readonly script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly prefix=${SWGPT_NET_PREFIX:-10.231.0}
readonly name=${SWGPT_CLUSTER_NAME:-swgpt}
readonly state=${SWGPT_SLURM_STATE:-/run/$name-slurm}
readonly conf=$state/slurm.conf
readonly munge_socket=$state/munge/munge.socket
readonly cpus_per_node=4

# die, note, usage, dispatch
. "$script_dir/lib.sh"

need_tools() {
    [[ $(id -u) == 0 ]] || die "needs root (network namespaces and daemons): run it with sudo"
    local t
    for t in munged slurmctld slurmd sinfo sbatch; do
        command -v "$t" >/dev/null || die "$t is missing; install Slurm and munge: launch/install-deps.sh --slurm"
    done
}

host_ns() { echo "$name-h$1"; }
host_ip() { echo "$prefix.$((10 + $1))"; }

# Runs "$@" inside test host $1's network namespace, under its own UTS namespace named after the host.
# nsenter, not `ip netns exec`: the latter mounts a fresh /sys, which hides /sys/fs/cgroup, and slurmd
# refuses to start without its cgroup plugin even when no cgroup is used.
in_host() {
    local ns
    ns=$(host_ns "$1")
    shift
    nsenter --net="/run/netns/$ns" unshare --uts sh -c 'hostname "$1" && shift && exec "$@"' in_host "$ns" "$@"
}

# MARK: - up

cmd_up() {
    [[ $# == 1 && $1 =~ ^[0-9]+$ && $1 -ge 2 && $1 -le 8 ]] || die "usage: $0 up K   (K test hosts, 2..8)"
    local k=$1 i
    need_tools
    [[ ! -e $state ]] || die "a Slurm test cluster is already up ($state exists); take it down first: $0 down"
    "$script_dir/testcluster.sh" up "$k"
    trap 'up_failed' EXIT
    mkdir -p "$state/munge" "$state/ctld" "$state/spool"
    chmod 700 "$state/munge"
    write_conf "$k"
    start_munge
    in_host 0 slurmctld -f "$conf"
    local node
    for ((i = 0; i < k; i++)); do
        # Each node reads its own copy of slurm.conf, next to an mpi.conf that gives it a PMIx
        # directory of its own: the nodes share /tmp, where PMIx would otherwise collide.
        node=$(host_ns "$i")
        mkdir -p "$state/spool/$node" "$state/nodes/$node" "$state/tmp/$node"
        cp "$conf" "$state/nodes/$node/slurm.conf"
        echo "PMIxCliTmpDirBase=$state/tmp/$node" >"$state/nodes/$node/mpi.conf"
        in_host "$i" slurmd -f "$state/nodes/$node/slurm.conf" -N "$node"
    done
    wait_until_idle "$k"
    trap - EXIT
    note "up: partition test = $k node(s) ($(sinfo_nodes)); use: export SLURM_CONF=$conf"
}

# slurm.conf for K nodes, every path inside the state directory.
write_conf() {
    local k=$1 i
    {
        cat <<EOF
# Written by launch/slurmcluster.sh; removed by its \`down\`.
ClusterName=$name
SlurmctldHost=$(host_ns 0)($(host_ip 0))
SlurmctldPort=6817
SlurmdPort=6818
SrunPortRange=60001-60200
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool/%n
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd-%n.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=10
MessageTimeout=10
InactiveLimit=0
KillWait=2
MinJobAge=600
JobRequeue=1
EOF
        for ((i = 0; i < k; i++)); do
            echo "NodeName=$(host_ns "$i") NodeAddr=$(host_ip "$i") CPUs=$cpus_per_node State=UNKNOWN"
        done
        echo "PartitionName=test Nodes=$name-h[0-$((k - 1))] Default=YES MaxTime=INFINITE State=UP"
    } >"$conf"
}

start_munge() {
    local key=$state/munge/munge.key
    head -c 1024 /dev/urandom >"$key"
    chmod 600 "$key"
    munged --force --key-file="$key" --socket="$munge_socket" --pid-file="$state/munge/munged.pid" \
        --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"
    local tries
    for tries in $(seq 50); do
        [[ -S $munge_socket ]] && return 0
        sleep 0.1
    done
    die "munged did not start (see $state/munge/munged.log)"
}

sinfo_nodes() { SLURM_CONF=$conf sinfo -h -N -o "%N=%T" 2>/dev/null | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# Waits (30 s at most) until all K nodes are idle.
wait_until_idle() {
    local k=$1 tries idle
    for tries in $(seq 60); do
        idle=$(SLURM_CONF=$conf sinfo -h -N -t idle -o "%N" 2>/dev/null | sort -u | wc -l)
        [[ $idle == "$k" ]] && return 0
        sleep 0.5
    done
    die "the nodes did not become idle within 30 s: $(sinfo_nodes)"
}

# On a failed `up` (any error or `die`): the daemons' last log lines, then everything removed.
up_failed() {
    note "up failed; removing what was made"
    print_logs
    cmd_down >/dev/null 2>&1 || true
}

print_logs() {
    local f
    for f in "$state"/*.log "$state"/munge/munged.log; do
        [[ -r $f ]] && { echo "--- $f"; tail -n 15 "$f"; } >&2
    done
    return 0
}

# MARK: - down / env / status

cmd_down() {
    [[ $# == 0 ]] || die "usage: $0 down"
    [[ $(id -u) == 0 ]] || die "needs root: run it with sudo"
    local pidfile stopped=0
    # slurmd and slurmctld first (they live in the namespaces; testcluster.sh down kills whatever is left there).
    for pidfile in "$state"/slurmd-*.pid "$state"/slurmctld.pid "$state"/munge/munged.pid; do
        [[ -r $pidfile ]] || continue
        stop_pid "$(cat "$pidfile")" && stopped=$((stopped + 1))
    done
    "$script_dir/testcluster.sh" down
    rm -rf "$state"
    note "down: stopped $stopped daemon(s)"
}

# Sends TERM to pid $1, then KILL if it is still there after 3 s.
stop_pid() {
    local pid=$1 tries
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    kill "$pid" 2>/dev/null || true
    for tries in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

cmd_env() {
    [[ -r $conf ]] || die "no Slurm test cluster is up; start one: $0 up 2"
    echo "export SLURM_CONF=$conf"
}

cmd_status() {
    [[ -r $conf ]] || { echo "no Slurm test cluster (start one: $0 up 2)"; return; }
    local pidfile
    for pidfile in "$state"/munge/munged.pid "$state"/slurmctld.pid "$state"/slurmd-*.pid; do
        [[ -r $pidfile ]] || continue
        printf '%s pid %s: %s\n' "$(basename "$pidfile" .pid)" "$(cat "$pidfile")" \
            "$(kill -0 "$(cat "$pidfile")" 2>/dev/null && echo running || echo gone)"
    done
    SLURM_CONF=$conf sinfo -N -o "%N %T %C %O" || true
    SLURM_CONF=$conf squeue -o "%i %j %T %D %R %r" || true
}

# MARK: - Main

dispatch "up down env status" "$@"
