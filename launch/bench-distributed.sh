#!/usr/bin/env bash
# bench-distributed.sh: how well data-parallel training scales, from real
# `gpt train` runs (the per-step records of their metrics.jsonl). Prints ratios and
# throughput; asserts nothing.
#
#   launch/bench-distributed.sh local   [options]   -np 2 vs -np 1 on this machine, 1 thread per rank:
#                                                   parallel efficiency = (throughput ratio) / 2
#   launch/bench-distributed.sh cluster [options]   2 test hosts (launch/testcluster.sh) with shaped links:
#                                                   overlap_comm on vs off, share of the allreduce hidden
#
# Options:
#   --model baby|gpt2-small|both   model shape (local: baby; cluster: both)
#                                  baby: 6 layers, 6 heads, 384 wide; gpt2-small: 12 layers, 12 heads, 768 wide
#   --batch B                      per-rank batch (local default 8; cluster default 4 baby, 1 gpt2-small); block 256
#   --steps N                      optimizer steps per run (default 6); the first is not timed
#   --repeat R                     runs of each kind, interleaved (default 3); medians are reported
#   --np N                         ranks on the cluster (default 2: one per test host)
#   --rate RATE                    cluster link rate, tc syntax (default 1gbit); "off" leaves links unshaped
#   --bucket-mb M                  gradient bucket size for overlap (default: the config's)
#   --set KEY=VALUE                one more config setting for every run, e.g. zero_stage=1 (repeatable)
#
# Environment: SWIFTGPT_BIN (gpt binary; default .build/release/gpt), BENCH_DATA
# (corpus .h5; default: Tiny Shakespeare prepared into BENCH_DIR), BENCH_DIR
# (work folder; default a fresh temporary one, removed afterwards).
# Other work on the machine skews the numbers: the load average is printed
# before each run; compare runs made under similar load.
set -euo pipefail

readonly script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly repo_dir=$(cd "$script_dir/.." && pwd)
readonly gpt=${SWIFTGPT_BIN:-$repo_dir/.build/release/gpt}

die() { echo "bench-distributed.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

# MARK: - Arguments

[[ $# -ge 1 ]] || usage 1
mode=$1
shift
case $mode in local|cluster) ;; -h|--help|help) usage 0 ;; *) die "unknown mode '$mode'; use local or cluster" ;; esac
model="" batch="" steps=6 repeat=3 np=2 rate=1gbit bucket_mb="" extra=()
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || die "$1 needs a value"
    case $1 in
        --model) model=$2 ;;
        --batch) batch=$2 ;;
        --steps) steps=$2 ;;
        --repeat) repeat=$2 ;;
        --np) np=$2 ;;
        --rate) rate=$2 ;;
        --bucket-mb) bucket_mb=$2 ;;
        --set) extra+=(--set "$2") ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift 2
done
[[ -z $model ]] && { [[ $mode == local ]] && model=baby || model=both; }
case $model in baby|gpt2-small|both) ;; *) die "--model must be baby, gpt2-small or both, not '$model'" ;; esac
for pair in "steps:$steps" "repeat:$repeat" "np:$np"; do
    [[ ${pair#*:} =~ ^[0-9]+$ && ${pair#*:} -ge 1 ]] || die "--${pair%%:*} must be a positive integer, not '${pair#*:}'"
done
(( steps >= 2 )) || die "--steps must be at least 2 (the first step is not timed)"
[[ -z $batch || $batch =~ ^[0-9]+$ ]] || die "--batch must be a positive integer, not '$batch'"
[[ -x $gpt ]] || die "$gpt is not built; run: swift build -c release --product gpt"
command -v mpirun >/dev/null || die "mpirun is missing: apt-get install -y openmpi-bin"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

work=${BENCH_DIR:-}
if [[ -z $work ]]; then
    work=$(mktemp -d /tmp/swiftgpt-bench.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/runs"

# MARK: - Corpus

data=${BENCH_DATA:-$work/shakespeare_char.h5}
if [[ ! -r $data ]]; then
    text=${SWIFTGPT_SHARED_DATASETS:-$repo_dir/../shared/datasets}/tinyshakespeare/input.txt
    [[ -r $text ]] || die "no corpus: set BENCH_DATA to a prepared .h5, or SWIFTGPT_SHARED_DATASETS to a folder with tinyshakespeare/input.txt"
    "$gpt" prepare --out "$data" "$text" >/dev/null
fi

# MARK: - Runs

# --set arguments of a model shape.
model_settings() {
    case $1 in
        baby) echo "--set n_layer=6 --set n_head=6 --set n_embd=384" ;;
        gpt2-small) echo "--set n_layer=12 --set n_head=12 --set n_embd=768" ;;
    esac
}

default_batch() {
    if [[ -n $batch ]]; then echo "$batch"; return; fi
    case $mode:$1 in
        local:*) echo 8 ;;
        cluster:baby) echo 4 ;;
        cluster:gpt2-small) echo 1 ;;
    esac
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# KEY of every "train" record of metrics.jsonl in DIR after the first step (which warms up), one a line.
step_values() {
    grep '"event":"train"' "$1/metrics.jsonl" | grep -v '"step":1,' \
        | sed -E "s/.*\"$2\":(-?[0-9.eE+-]+).*/\\1/"
}

load() { cut -d ' ' -f 1-3 /proc/loadavg; }

# Runs `gpt train` with LAUNCHER (a command prefix) and prints, over its steps after the first:
# median ms/step, fastest ms/step, median exposed communication ms, median communication-thread ms.
train() {
    local name=$1 launcher=$2 shape=$3 b=$4
    shift 4
    local out=$work/runs/$name
    rm -rf "$out"
    echo "  [$(date +%T) load $(load)] $name" >&2
    # shellcheck disable=SC2086
    if ! $launcher "$gpt" train --set dataset="$data" --set out_dir="$out" $(model_settings "$shape") \
        --set block_size=256 --set batch_size="$b" --set dropout=0 --set max_iters="$steps" \
        --set eval_interval=100000 --set eval_iters=1 --set sample_tokens=0 --set check_interval=0 \
        --set always_save_checkpoint=false --set log_interval=1 --set threads=1 \
        ${bucket_mb:+--set bucket_mb=$bucket_mb} "${extra[@]}" "$@" >"$out.log" 2>&1; then
        tail -n 20 "$out.log" >&2
        die "run $name failed (log above)"
    fi
    rm -f "$out"/*.h5  # the final checkpoint (up to 1 GB for gpt2-small) is not needed
    printf '%.1f %.1f %.1f %.1f\n' "$(step_values "$out" ms_per_step | median)" "$(step_values "$out" ms_per_step | sort -g | head -n 1)" \
        "$(step_values "$out" comm_exposed_ms | median)" "$(step_values "$out" comm_background_ms | median)"
}

# MARK: - local: -np 2 vs -np 1

# Prints "MEDIAN FASTEST" of the numbers on standard input.
median_and_min() { local v; v=$(cat); echo "$(median <<<"$v") $(sort -g <<<"$v" | head -n 1)"; }

bench_local() {
    local shape=$model
    [[ $shape == both ]] && shape=baby
    local b
    b=$(default_batch "$shape")
    echo "local: $shape GPT, block 256, batch $b per rank, 1 thread per rank (bound to a core), $steps steps ($((steps - 1)) timed), $repeat repeats; $(nproc) cores; load before: $(load)"
    local one="mpirun -np 1 --bind-to core --map-by core -x SWIFTGPT_THREADS=1 -x OPENBLAS_NUM_THREADS=1"
    local two="mpirun -np 2 --bind-to core --map-by core -x SWIFTGPT_THREADS=1 -x OPENBLAS_NUM_THREADS=1"
    local r res med best exp s1=() s2=() s2off=() b1=() b2=() b2off=() e2=() e2off=()
    for ((r = 1; r <= repeat; r++)); do
        res=$(train "np1-r$r" "$one" "$shape" "$b")
        read -r med best _ _ <<<"$res"
        s1+=("$med"); b1+=("$best")
        echo "    np 1: $med ms/step (fastest $best)" >&2
        res=$(train "np2-overlap-r$r" "$two" "$shape" "$b" --set overlap_comm=true)
        read -r med best exp _ <<<"$res"
        s2+=("$med"); b2+=("$best"); e2+=("$exp")
        echo "    np 2, overlap: $med ms/step (fastest $best), $exp ms exposed communication" >&2
        res=$(train "np2-blocking-r$r" "$two" "$shape" "$b" --set overlap_comm=false)
        read -r med best exp _ <<<"$res"
        s2off+=("$med"); b2off+=("$best"); e2off+=("$exp")
        echo "    np 2, no overlap: $med ms/step (fastest $best), $exp ms exposed communication" >&2
    done
    local t1 t2 t2off f1 f2 f2off
    t1=$(printf '%s\n' "${s1[@]}" | median); f1=$(printf '%s\n' "${b1[@]}" | sort -g | head -n 1)
    t2=$(printf '%s\n' "${s2[@]}" | median); f2=$(printf '%s\n' "${b2[@]}" | sort -g | head -n 1)
    t2off=$(printf '%s\n' "${s2off[@]}" | median); f2off=$(printf '%s\n' "${b2off[@]}" | sort -g | head -n 1)
    echo "step time (median of runs' medians / fastest step): np 1 $t1 / $f1 ms; np 2 overlap $t2 / $f2 ms; np 2 no overlap $t2off / $f2off ms"
    echo "exposed communication per step, np 2 (median): $(printf '%s\n' "${e2[@]}" | median) ms with overlap, $(printf '%s\n' "${e2off[@]}" | median) ms without"
    awk -v b="$b" -v t1="$t1" -v t2="$t2" -v t2off="$t2off" -v f1="$f1" -v f2="$f2" -v f2off="$f2off" 'BEGIN {
        tok = b * 256
        printf "throughput (median): np 1 %.0f tokens/s; np 2 %.0f tokens/s with overlap, %.0f without\n", tok / t1 * 1e3, 2 * tok / t2 * 1e3, 2 * tok / t2off * 1e3
        printf "parallel efficiency (throughput ratio / 2 = np 1 step time / np 2 step time):\n"
        printf "  median steps:  %.1f%% with overlap, %.1f%% without\n", 100 * t1 / t2, 100 * t1 / t2off
        printf "  fastest steps: %.1f%% with overlap, %.1f%% without\n", 100 * f1 / f2, 100 * f1 / f2off }'
    echo "load after: $(load)"
}

# MARK: - cluster: overlap on vs off over shaped links

bench_cluster() {
    local tc=$script_dir/testcluster.sh made=0
    [[ $(id -u) == 0 ]] || die "the test cluster needs root"
    if ! "$tc" status | grep -q '^swgpt-h1 '; then
        "$tc" down >/dev/null 2>&1 || true
        "$tc" up 2
        made=1
    fi
    if [[ $rate != off ]]; then
        "$tc" shape "$rate" 0
    fi
    local shapes=$model
    [[ $model == both ]] && shapes="baby gpt2-small"
    echo "cluster: 2 test hosts, $np rank(s), links $rate (bandwidth only: this kernel has no netem, so no latency), 1 thread per rank; load before: $(load)"
    local shape
    for shape in $shapes; do
        local b
        b=$(default_batch "$shape")
        echo "$shape GPT, block 256, batch $b per rank, $steps steps ($((steps - 1)) timed), $repeat repeats${bucket_mb:+, bucket_mb $bucket_mb}"
        local r res med best exp bg on_ms=() off_ms=() on_best=() off_best=() on_exp=() off_exp=() on_bg=()
        for ((r = 1; r <= repeat; r++)); do
            res=$(train "$shape-blocking-r$r" "$tc run -np $np --" "$shape" "$b" --set overlap_comm=false)
            read -r med best exp _ <<<"$res"
            off_ms+=("$med"); off_best+=("$best"); off_exp+=("$exp")
            echo "    no overlap: $med ms/step (fastest $best), $exp ms allreduce" >&2
            res=$(train "$shape-overlap-r$r" "$tc run -np $np --" "$shape" "$b" --set overlap_comm=true)
            read -r med best exp bg <<<"$res"
            on_ms+=("$med"); on_best+=("$best"); on_exp+=("$exp"); on_bg+=("$bg")
            echo "    overlap:    $med ms/step (fastest $best), $exp ms exposed, $bg ms busy on the communication thread" >&2
        done
        local a_ms a_exp b_ms b_exp a_best b_best bgm
        a_ms=$(printf '%s\n' "${off_ms[@]}" | median); a_exp=$(printf '%s\n' "${off_exp[@]}" | median)
        b_ms=$(printf '%s\n' "${on_ms[@]}" | median); b_exp=$(printf '%s\n' "${on_exp[@]}" | median)
        a_best=$(printf '%s\n' "${off_best[@]}" | sort -g | head -n 1); b_best=$(printf '%s\n' "${on_best[@]}" | sort -g | head -n 1)
        bgm=$(printf '%s\n' "${on_bg[@]}" | median)
        echo "  step time (median / fastest): $a_ms / $a_best ms without overlap (allreduce $a_exp ms), $b_ms / $b_best ms with overlap ($b_exp ms exposed, communication thread busy $bgm ms)"
        awk -v b="$b" -v np="$np" -v a="$a_ms" -v bb="$b_ms" -v ea="$a_exp" -v eb="$b_exp" -v fa="$a_best" -v fb="$b_best" 'BEGIN {
            tok = np * b * 256
            printf "  throughput (median): %.0f tokens/s without overlap, %.0f with\n", tok / a * 1e3, tok / bb * 1e3
            printf "  allreduce hidden by overlap: %.0f%% (1 - exposed with / allreduce without); step time with / without: %.2f (fastest steps: %.2f)\n",
                100 * (1 - eb / ea), bb / a, fb / fa }'
    done
    echo "load after: $(load)"
    if [[ $made == 1 ]]; then "$tc" down; elif [[ $rate != off ]]; then "$tc" shape off; fi
}

case $mode in
    local) bench_local ;;
    cluster) bench_cluster ;;
esac
