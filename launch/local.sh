#!/usr/bin/env bash
# local.sh: run N ranks on this machine, sharing its cores fairly.
#
#   launch/local.sh N gpt ARGS...        e.g. launch/local.sh 4 gpt train configs/shakespeare_char.toml
#   launch/local.sh N ./path/to/prog ARGS...
#
# Threads per rank = physical cores / N (at least 1), exported to every rank as
# SWIFTGPT_THREADS (the trainer's knob for OpenBLAS and its row-parallel loops)
# and as OPENBLAS_NUM_THREADS / OMP_NUM_THREADS. Each rank is bound to its own
# block of that many cores (--map-by slot:PE=T --bind-to core), so ranks do not
# fight over cores; with more ranks than cores the ranks are left unbound and
# Open MPI is told to oversubscribe.
#
# Environment:
#   SWIFTGPT_THREADS   threads per rank (default: cores / N)
#   SWIFTGPT_BIN       the binary `gpt` stands for (default: .build/release/gpt of this checkout)
#   MPIRUN_ARGS        extra mpirun options, split on spaces (e.g. "--report-bindings")
set -euo pipefail

readonly script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly repo_dir=$(cd "$script_dir/.." && pwd)

die() { echo "local.sh: $*" >&2; exit 1; }

if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ || $1 -lt 1 ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    die "usage: launch/local.sh N gpt ARGS...   (N ranks, at least 1)"
fi
np=$1
shift
command -v mpirun >/dev/null || die "mpirun not found; install Open MPI: apt-get install -y openmpi-bin libopenmpi-dev"

# MARK: - Program

program=$1
shift
if [[ $program == gpt ]]; then
    program=${SWIFTGPT_BIN:-$repo_dir/.build/release/gpt}
    [[ -x $program ]] || die "$program is not built; run: swift build -c release --product gpt"
fi

# MARK: - Cores and threads

# Physical cores available to us: Open MPI binds to cores, not hardware threads.
cores=$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l || true)
[[ $cores =~ ^[0-9]+$ && $cores -ge 1 ]] || cores=$(nproc)
logical=$(nproc)
(( cores > logical )) && cores=$logical  # a CPU affinity mask may allow fewer

if [[ -n ${SWIFTGPT_THREADS:-} ]]; then
    [[ $SWIFTGPT_THREADS =~ ^[0-9]+$ && $SWIFTGPT_THREADS -ge 1 ]] \
        || die "SWIFTGPT_THREADS must be a whole number of at least 1, not '$SWIFTGPT_THREADS'"
    threads=$SWIFTGPT_THREADS
else
    threads=$(( cores / np ))
    (( threads < 1 )) && threads=1
fi

placement=()
if (( np * threads > cores )); then
    # More threads than cores: binding would pile ranks onto the same cores.
    placement=(--oversubscribe --bind-to none)
elif (( threads > 1 )); then
    placement=(--map-by "slot:PE=$threads" --bind-to core)
else
    placement=(--map-by core --bind-to core)
fi

root_flag=()
[[ $(id -u) == 0 ]] && root_flag=(--allow-run-as-root)
extra=()
[[ -n ${MPIRUN_ARGS:-} ]] && read -r -a extra <<<"$MPIRUN_ARGS"

# MARK: - Launch

cmd=(mpirun "${root_flag[@]}" -np "$np" "${placement[@]}"
     -x "SWIFTGPT_THREADS=$threads" -x "OPENBLAS_NUM_THREADS=$threads" -x "OMP_NUM_THREADS=$threads"
     "${extra[@]}" "$program" "$@")
echo "local.sh: $np rank(s) x $threads thread(s) on $cores core(s): ${cmd[*]}" >&2
exec "${cmd[@]}"
