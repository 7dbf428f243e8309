#!/usr/bin/env bash
# EX4's ablation: GPT-2's block against RMSNorm, RoPE, SwiGLU and QK-norm, each
# alone and all four together, on Tiny Shakespeare characters with the
# shakespeare_char_cpu shape (configs/shakespeare_char_cpu.toml), rng = counter,
# one thread per run, two runs at a time; then the summary table and the curves.
#
# Usage: launch/ablation-ex4.sh [steps] [seeds] [parallel]
#   steps     optimizer steps per run, also lr_decay_iters (default 1000)
#   seeds     space-separated seeds, one run per arm each (default "1337 1338 1339")
#   parallel  runs at a time (default 2)
# Runs go to runs/ex4/<arm>-s<seed>; an arm whose run already ended is skipped.
# Needs .build/release/gpt and data/shakespeare_char/shakespeare_char.h5
# (datasets/shakespeare_char/prepare.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${1:-1000}"
seeds="${2:-1337 1338 1339}"
parallel="${3:-2}"
gpt=.build/release/gpt
root=runs/ex4

declare -A arm=(
    [gpt2]=""
    [rmsnorm]="norm=rmsnorm"
    [rope]="position=rope"
    [swiglu]="mlp=swiglu"
    [qknorm]="qk_norm=true"
    [all4]="norm=rmsnorm position=rope mlp=swiglu qk_norm=true"
)
order="gpt2 rmsnorm rope swiglu qknorm all4"

# One line per run: name, then the overrides of its arm.
jobs() {
    for seed in $seeds; do
        for a in $order; do
            echo "$a-s$seed seed=$seed ${arm[$a]}" | sed "s/ *$//"
        done
    done
}

run_one() {
    local name="$1"; shift
    local dir="$root/$name"
    if grep -q '"event":"summary"' "$dir/metrics.jsonl" 2>/dev/null; then echo "$name: done before"; return; fi
    rm -rf "$dir"
    "$gpt" train configs/shakespeare_char_cpu.toml --set out_dir="$dir" max_iters="$steps" lr_decay_iters="$steps" \
        eval_interval=100 rng=counter threads=1 sample_tokens=0 log_interval=50 "$@" > "$root/$name.log" 2>&1
    echo "$name: $(tail -1 "$root/$name.log")"
}
export -f run_one
export gpt root steps

mkdir -p "$root"
jobs | xargs -P "$parallel" -L 1 bash -c 'run_one "$@"' _
python3 launch/ablation-ex4-summary.py "$root" $order
for a in $order; do args+=("$root/$a-s${seeds%% *}:$a"); done
"$gpt" plot --title "EX4: val loss, seed ${seeds%% *}" --out docs/ex4_val_seed${seeds%% *}.svg "${args[@]}"
# Every seed of GPT-2's block and of all four changes: the spread against the gap.
args=()
for a in gpt2 all4; do for s in $seeds; do args+=("$root/$a-s$s:$a s$s"); done; done
"$gpt" plot --title "EX4: val loss, GPT-2 block vs all four changes, every seed" --out docs/ex4_gpt2_vs_all4.svg "${args[@]}"
