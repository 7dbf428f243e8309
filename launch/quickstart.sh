#!/usr/bin/env bash
# The "hello world": install what is missing, build, prepare Tiny Shakespeare,
# train the CPU baby GPT (configs/shakespeare_char_cpu.toml), then sample.
#
#   launch/quickstart.sh [path/to/input.txt] [ranks]
#
# Without a path Tiny Shakespeare is downloaded. With ranks > 1 the run is
# data-parallel on this machine through launch/local.sh (mpirun).
set -euo pipefail
cd "$(dirname "$0")/.."
input="${1:-}"
ranks="${2:-1}"

launch/install-deps.sh
swift build -c release
datasets/shakespeare_char/prepare.sh ${input:+"$input"}
resume=()
if [[ -e runs/shakespeare_char_cpu/latest.h5 ]]; then
    echo "runs/shakespeare_char_cpu holds an earlier run: continuing it (--resume)"
    resume=(--resume)
fi
if [[ "$ranks" -gt 1 ]]; then
    launch/local.sh "$ranks" gpt train configs/shakespeare_char_cpu.toml "${resume[@]}"
else
    .build/release/gpt train configs/shakespeare_char_cpu.toml "${resume[@]}"
fi
echo
echo "=== a sample from runs/shakespeare_char_cpu/best.h5 ==="
.build/release/gpt sample runs/shakespeare_char_cpu/best.h5 --tokens 500
