#!/usr/bin/env bash
# Reruns the measurements of docs/EX2.md (the lecture's EX2: a GPT that learns arithmetic).
#
#   launch/ex2-experiments.sh [addition] [ablations] [ood] [division] [calculator] [calculator_longer]
#                             [calculator3] [plots]
#   (default: all, in order)
#
# Runs go to $RUNS (default runs/ex2), figures to $PLOTS (default $RUNS), one thread per run
# unless THREADS is set. Alone on one core the addition run takes about 7 minutes, each
# ablation 3, each calculator run 10-20; docs/EX2.md's runs took 2-4 times that on a
# shared machine.
# Needs `swift build -c release`.
set -euo pipefail
cd "$(dirname "$0")/.."
GPT=${GPT:-.build/release/gpt}
RUNS=${RUNS:-runs/ex2}
THREADS=${THREADS:-1}
ABLATION_STEPS=${ABLATION_STEPS:-2000}
PLOTS=${PLOTS:-$RUNS}
mkdir -p "$RUNS"

train() {  # train NAME CONFIG [key=value ...]: a fresh run in $RUNS/NAME, its log in $RUNS/NAME.log
    local name=$1 config=$2; shift 2
    local sets=(--set "out_dir=$RUNS/$name" --set "threads=$THREADS")
    for kv in "$@"; do sets+=(--set "$kv"); done
    rm -rf "${RUNS:?}/$name"
    echo "== $name: gpt train $config ${*}"
    "$GPT" train "$config" "${sets[@]}" > "$RUNS/$name.log" 2>&1
    grep "test accuracy" "$RUNS/$name.log" | tail -n 1
}

addition() {  # 3-digit addition, reversed answer, masked prompt
    train addition configs/addition.toml
}

ablations() {  # the lecture's two hints at the same, smaller budget
    local short=(max_iters=$ABLATION_STEPS lr_decay_iters=$ABLATION_STEPS)
    train abl-reversed-masked configs/addition.toml "${short[@]}"
    train abl-plain-masked configs/addition.toml "${short[@]}" task_reverse=false
    train abl-reversed-unmasked configs/addition.toml "${short[@]}" task_mask_prompt=false
}

ood() {  # trained on 1..3 digits, tested on 4 and 5 (out of distribution)
    for d in 3 4 5; do
        echo "== $d-digit operands"
        "$GPT" eval "$RUNS/addition/latest.h5" --iters 2 --min-digits "$d" --max-digits "$d" --problems 1000 | grep -A5 "test accuracy"
    done
}

division() {  # the division-only task with worked steps: the format's first check, 2000 steps
    train division-traces configs/calculator.toml task_operators=/ max_iters=2000 lr_decay_iters=2000 eval_interval=250
}

calculator() {  # + - * / with and without worked steps
    train calculator-traces configs/calculator.toml task_traces=true
    train calculator-plain configs/calculator.toml task_traces=false
    for prompt in "12*34=" "87*96=" "87/6="; do
        "$GPT" sample "$RUNS/calculator-traces/latest.h5" --prompt "$prompt" --temperature 0 --tokens 40
        "$GPT" sample "$RUNS/calculator-plain/latest.h5" --prompt "$prompt" --temperature 0 --tokens 40
    done
}

calculator_longer() {  # the calculator with steps continued from step 5000 to 8000 at the final learning rate
    rm -rf "${RUNS:?}/calculator-longer"
    cp -r "$RUNS/calculator-traces" "$RUNS/calculator-longer"
    "$GPT" train configs/calculator.toml --set "out_dir=$RUNS/calculator-longer" --set "threads=$THREADS" \
        --set max_iters=8000 --resume > "$RUNS/calculator-longer.log" 2>&1
    grep "test accuracy" "$RUNS/calculator-longer.log" | tail -n 1
}

calculator3() {  # the calculator's + and - with operands of up to 3 digits (the calculator's model)
    train calculator3-add-sub configs/calculator.toml task_operators=+- task_max_digits=3 task_traces=false
}

plots() {  # the figures of docs/EX2.md (PLOTS=docs to replace them)
    "$GPT" plot --out "$PLOTS/ex2_addition.svg" --field accuracy \
        --title "3-digit addition (reversed, masked): held-out exact match" "$RUNS/addition:addition"
    "$GPT" plot --out "$PLOTS/ex2_addition_loss.svg" --train --title "3-digit addition: loss on the answer tokens" \
        "$RUNS/addition:addition"
    "$GPT" plot --out "$PLOTS/ex2_ablations_accuracy.svg" --field accuracy \
        --title "ablations, $ABLATION_STEPS steps: held-out exact match" "$RUNS/abl-reversed-masked:reversed, masked" \
        "$RUNS/abl-plain-masked:plain order, masked" "$RUNS/abl-reversed-unmasked:reversed, unmasked"
    "$GPT" plot --out "$PLOTS/ex2_calculator.svg" --field accuracy \
        --title "calculator (+ - * /, 1-2 digits): held-out exact match" \
        "$RUNS/calculator-traces:with worked steps" "$RUNS/calculator-plain:without"
    "$GPT" plot --out "$PLOTS/ex2_division.svg" --field accuracy \
        --title "division only, with worked steps: held-out exact match" "$RUNS/division-traces:division with steps"
    for op in mul div; do
        "$GPT" plot --out "$PLOTS/ex2_calculator_$op.svg" --field "accuracy_$op" \
            --title "calculator, $op: held-out exact match" "$RUNS/calculator-longer:with worked steps, to 8000" \
            "$RUNS/calculator-traces:with worked steps" "$RUNS/calculator-plain:without"
    done
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(addition ablations ood division calculator calculator_longer calculator3 plots)
for s in "${steps[@]}"; do "$s"; done
