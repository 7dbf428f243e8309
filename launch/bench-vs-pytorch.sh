#!/usr/bin/env bash
# bench-vs-pytorch.sh: our `gpt train` against the reference PyTorch model (Tests/reference,
# nanoGPT's model and train.py step) in eager mode and under torch.compile, on the same
# configs and thread counts, runs alternated (ours, eager, compile, ours, ...). Prints a table
# of ms/step, tokens/s, the ratio of our tokens/s to each, and the peak RSS of each process;
# writes the figures as JSON. Asserts nothing about speed.
#
#   launch/bench-vs-pytorch.sh [options]
#
# Options:
#   --configs LIST      comma-separated: baby (configs/shakespeare_char.toml: 6x384, block 256,
#                       batch 64, dropout 0.2), cpu (configs/shakespeare_char_cpu.toml: 4x128,
#                       block 64, batch 12), tiny (the cpu config at 2x32, block 16, batch 4),
#                       or paths of TOML run configs (default: cpu,baby)
#   --threads LIST      thread counts, comma-separated (default: 1,2)
#   --steps N           timed steps per run (default 5)
#   --warmup N          untimed steps before them (default 2; torch.compile compiles in the first)
#   --repeat R          rounds of alternated runs (default 3); medians over rounds are reported
#   --impls LIST        which to run, of ours,eager,compile (default: all three; without PyTorch: ours)
#   --attention KIND    PyTorch attention: sdpa (F.scaled_dot_product_attention, nanoGPT's path
#                       on PyTorch 2; default) or manual (written out, as the test fixtures)
#   --also NAME=BIN     also time another gpt binary (a baseline build, the BLIS build) as
#                       implementation NAME, alternated with the rest (repeatable)
#   --set KEY=VALUE     one more config setting for our runs (repeatable)
#   --label TEXT        a name for this measurement in the JSON (e.g. the BLAS build)
#   --json PATH         where the figures go (default: bench-vs-pytorch.json in the work folder)
#   --quick             smoke test: --configs tiny --threads 1 --steps 2 --warmup 1 --repeat 1
#                       --impls ours,eager (options after it still apply)
#
# Environment: SWIFTGPT_BIN (gpt binary; default .build/release/gpt), PYTHON (default python3),
# BENCH_DATA (corpus .h5; default: Tiny Shakespeare prepared into the work folder), BENCH_DIR
# (work folder; default a fresh temporary one, removed afterwards when --json is given).
# The machine's load average is printed before each run and stored in the JSON: compare runs
# made under similar load.
set -euo pipefail

readonly script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly repo_dir=$(cd "$script_dir/.." && pwd)
readonly gpt=${SWIFTGPT_BIN:-$repo_dir/.build/release/gpt}
readonly python=${PYTHON:-python3}
. "$script_dir/lib.sh"

# MARK: - Arguments

configs=cpu,baby threads=1,2 steps=5 warmup=2 repeat=3 impls="" attention=sdpa label="" json="" extra=() also=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage 0 ;;
        --quick) configs=tiny threads=1 steps=2 warmup=1 repeat=1 impls=ours,eager; shift; continue ;;
    esac
    [[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
    case $1 in
        --configs) configs=$2 ;;
        --threads) threads=$2 ;;
        --steps) steps=$2 ;;
        --warmup) warmup=$2 ;;
        --repeat) repeat=$2 ;;
        --impls) impls=$2 ;;
        --attention) attention=$2 ;;
        --set) extra+=(--set "$2") ;;
        --also) [[ $2 =~ ^[a-z][a-z0-9_-]*=.+ && ${2%%=*} != ours && ${2%%=*} != eager && ${2%%=*} != compile ]] \
                    || die "--also takes NAME=PATH with a new lower-case NAME, not '$2'"
                [[ -x ${2#*=} ]] || die "--also $2: ${2#*=} is not an executable"
                also+=("$2") ;;
        --label) label=$2 ;;
        --json) json=$2 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift 2
done
for pair in "steps:$steps" "repeat:$repeat"; do
    [[ ${pair#*:} =~ ^[0-9]+$ && ${pair#*:} -ge 1 ]] || die "--${pair%%:*} must be a positive integer, not '${pair#*:}'"
done
[[ $warmup =~ ^[0-9]+$ && $warmup -ge 1 ]] || die "--warmup must be at least 1 (the first step warms up and compiles), not '$warmup'"
[[ $threads =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--threads must be thread counts >= 1, comma-separated, e.g. 1,2, not '$threads'"
[[ $attention == sdpa || $attention == manual ]] || die "--attention must be sdpa or manual, not '$attention'"
[[ -x $gpt ]] || die "$gpt is not built; run: swift build -c release --product gpt"
have_torch=0
"$python" -c "import torch" 2>/dev/null && have_torch=1
if [[ -z $impls ]]; then
    impls=ours
    ((have_torch)) && impls=ours,eager,compile
    ((have_torch)) || note "PyTorch is not installed ($python -c 'import torch' fails): timing ours only"
fi
for pair in "${also[@]}"; do impls+=",${pair%%=*}"; done
# The gpt binary of implementation NAME ("ours" or an --also name).
binary_of() {
    local pair
    [[ $1 == ours ]] && { echo "$gpt"; return; }
    for pair in "${also[@]}"; do [[ ${pair%%=*} == "$1" ]] && echo "${pair#*=}"; done
}
for impl in ${impls//,/ }; do
    [[ -n $(binary_of "$impl") ]] && continue
    case $impl in
        ours) ;;
        eager|compile) ((have_torch)) || die "--impls $impl needs PyTorch: pip install torch (CPU wheel)" ;;
        *) die "--impls takes ours, eager and compile, not '$impl'" ;;
    esac
done
for name in ${configs//,/ }; do
    case $name in baby|cpu|tiny) ;; *) [[ -r $name ]] || die "--configs: '$name' is neither baby, cpu, tiny nor a readable TOML file" ;; esac
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (it measures peak RSS): apt-get install -y time"

work=${BENCH_DIR:-}
if [[ -z $work ]]; then
    work=$(mktemp -d /tmp/swiftgpt-vs-torch.XXXXXX)
    [[ -n $json ]] && trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/runs"
json=${json:-$work/bench-vs-pytorch.json}

# MARK: - Corpus and configs

data=${BENCH_DATA:-$work/shakespeare_char.h5}
if [[ ! -r $data ]]; then
    text=${SWIFTGPT_SHARED_DATASETS:-$repo_dir/../shared/datasets}/tinyshakespeare/input.txt
    [[ -r $text ]] || text=$repo_dir/data/shakespeare_char/input.txt
    [[ -r $text ]] || die "no corpus: set BENCH_DATA to a prepared .h5, or SWIFTGPT_SHARED_DATASETS to a folder with tinyshakespeare/input.txt"
    "$gpt" prepare --out "$data" "$text" >/dev/null
fi

# "TOML [--set ...]" of a config name.
config_args() {
    case $1 in
        baby) echo "$repo_dir/configs/shakespeare_char.toml" ;;
        cpu) echo "$repo_dir/configs/shakespeare_char_cpu.toml" ;;
        tiny) echo "$repo_dir/configs/shakespeare_char_cpu.toml --set n_layer=2 --set n_head=2 --set n_embd=32 --set block_size=16 --set batch_size=4" ;;
        *) echo "$1" ;;
    esac
}

load() { cut -d ' ' -f 1-3 /proc/loadavg; }

# MARK: - Runs

# One record per run on stdout: CONFIG THREADS IMPL ROUND LOAD RSS_KB PARAMETERS TOKENS MS,MS,...
run_ours() {
    local name=$1 n=$2 r=$3 impl=${4:-ours} out=$work/runs/$1-${4:-ours}-t$2-r$3
    rm -rf "$out"
    # shellcheck disable=SC2046
    if ! /usr/bin/time -f %M -o "$out.rss" "$(binary_of "$impl")" train $(config_args "$name") --set dataset="$data" \
        --set out_dir="$out" --set max_iters=$((warmup + steps)) --set eval_interval=100000 --set eval_iters=1 \
        --set sample_tokens=0 --set check_interval=0 --set always_save_checkpoint=false --set log_interval=1 \
        --set threads="$n" "${extra[@]}" >"$out.log" 2>&1; then
        tail -n 20 "$out.log" >&2
        die "our run ($impl) $name, $n threads failed (log above)"
    fi
    rm -f "$out"/*.h5
    local rest
    rest=$("$python" - "$out/metrics.jsonl" "$warmup" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
info = next(r for r in records if r["event"] == "info")
ms = [r["ms_per_step"] for r in records if r["event"] == "train" and r["step"] > int(sys.argv[2])]
print(info["parameters"], info["tokens_per_step"], ",".join(map(str, ms)) if ms else "")
EOF
)
    [[ $rest == *" "*" "?* ]] || die "our run $name, $n threads logged no timed steps (see $out.log)"
    echo "$name $n $impl $r $(load | tr ' ' /) $(tail -n 1 "$out.rss") $rest"
}

run_torch() {
    local name=$1 n=$2 impl=$3 r=$4 resolved=$work/runs/$1-ours-t$2-r1/config.toml out=$work/runs/$1-$3-t$2-r$4
    [[ -r $resolved ]] || die "internal: the resolved config of $name comes from our first run, which is missing"
    local compile=()
    [[ $impl == compile ]] && compile=(--compile)
    if ! OMP_NUM_THREADS=$n MKL_NUM_THREADS=$n /usr/bin/time -f %M -o "$out.rss" "$python" \
        "$repo_dir/Tests/reference/bench_step.py" --config "$resolved" --vocab-size "$vocab" --threads "$n" \
        --steps "$steps" --warmup "$warmup" --attention "$attention" "${compile[@]}" >"$out.json" 2>"$out.log"; then
        tail -n 20 "$out.log" >&2
        die "PyTorch run $name ($impl), $n threads failed (log above)"
    fi
    "$python" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["parameters"], d["tokens_per_step"], ",".join(map(str, d["ms_per_step"])))' \
        "$out.json" | { read -r rest; echo "$name $n $impl $r $(load | tr ' ' /) $(tail -n 1 "$out.rss") $rest"; }
}

vocab=$("$gpt" inspect "$data" | sed -nE 's/^corpus .*: vocab ([0-9]+) .*/\1/p' | head -n 1)
[[ -n $vocab ]] || die "gpt inspect $data printed no vocabulary size"
records=$work/records.txt
: >"$records"
echo "bench-vs-pytorch: configs $configs, threads $threads, $steps timed steps after $warmup warm-up, $repeat rounds, $impls; $(nproc) cores; load before: $(load)" >&2
for ((r = 1; r <= repeat; r++)); do
    for name in ${configs//,/ }; do
        for n in ${threads//,/ }; do
            for impl in ${impls//,/ }; do
                echo "  [$(date +%T) load $(load)] round $r: $name, $n thread(s), $impl" >&2
                if [[ -n $(binary_of "$impl") ]]; then run_ours "$name" "$n" "$r" "$impl"
                else
                    [[ -r $work/runs/$name-ours-t$n-r1/config.toml ]] || run_ours "$name" "$n" 1 >/dev/null
                    run_torch "$name" "$n" "$impl" "$r"
                fi | tee -a "$records" | awk '{ print "    " $0 }' >&2
            done
        done
    done
done

# MARK: - Table and JSON

blas=$(grep -h -m1 '"event":"info"' "$work"/runs/*-ours-*/metrics.jsonl | head -n 1 | sed -nE 's/.*"blas":"([^"]*)".*/\1/p')
"$python" "$script_dir/bench-vs-pytorch-summary.py" "$records" "$json" --label "$label" --blas "${blas:-}" \
    --steps "$steps" --warmup "$warmup" --attention "$attention" --load-after "$(load)"
