#!/usr/bin/env bash
# bench-allreduce.sh: blocking allreduce time against message size and rank
# count on the network-namespace test cluster, and the latency and bandwidth
# of the ring model fitted to it (the inputs of the scaling model in
# docs/DISTRIBUTED.md). Prints a table; asserts nothing.
#
#   launch/bench-allreduce.sh [--rate 1gbit] [--ranks "2 4 8"] [--floats "1000 10000 100000 1000000 4000000"]
#   launch/bench-allreduce.sh --train [--rate 1gbit] [--ranks "1 2 4 8"]
#
# --train measures training steps instead: `gpt train` of a 4-layer, 128-wide model
# (0.80 M parameters, bucket_mb 1, batch 8 x 64 per rank, 12 steps) on each rank
# count, printing "ranks median-ms-per-step" lines for `launch/scaling-model.py --check`.
#
# Brings up 4 test hosts (launch/testcluster.sh; ranks fill them in blocks: 2 ranks
# on 2 hosts, 4 on 4, 8 as 2 per host), shapes every uplink to RATE ("off":
# unshaped), runs `gpt selftest comm --overlap --overlap-floats N` for each
# rank count and size (its "blocking" figure: the median of 5 allreduces, slowest
# rank), takes the cluster down, and fits
#
#   t(p, n) = 2 (p - 1) alpha + 2 (p - 1) / p * n / B        (n bytes, p ranks)
#
# by least squares. Environment: SWIFTGPT_BIN (default .build/release/gpt).
set -euo pipefail

readonly script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly repo_dir=$(cd "$script_dir/.." && pwd)
readonly gpt=${SWIFTGPT_BIN:-$repo_dir/.build/release/gpt}
rate=1gbit
ranks="2 4 8"
floats="1000 10000 100000 1000000 4000000"
train=0

die() { echo "bench-allreduce.sh: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --rate) rate=$2; shift 2 ;;
        --ranks) ranks=$2; shift 2 ;;
        --floats) floats=$2; shift 2 ;;
        --train) train=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[[ -x $gpt ]] || die "$gpt is not built; run: swift build -c release --product gpt"

"$script_dir/testcluster.sh" up 4 >/dev/null
trap '"$script_dir/testcluster.sh" down >/dev/null 2>&1 || true' EXIT
[[ $rate == off ]] || "$script_dir/testcluster.sh" shape "$rate" 0 2>/dev/null

# Median of the "ms_per_step" of a run's train records after step 2.
median_step_ms() {
    grep '"event":"train"' "$1/metrics.jsonl" | sed -n 's/.*"ms_per_step":\([0-9.]*\).*"step":\([0-9]*\).*/\2 \1/p' \
        | awk '$1 > 2 { print $2 }' | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f\n", v[int((NR + 1) / 2)] }'
}

if ((train)); then
    [[ $ranks == "2 4 8" ]] && ranks="1 2 4 8"
    work=$(mktemp -d)
    trap 'rm -rf "$work"; "$script_dir/testcluster.sh" down >/dev/null 2>&1 || true' EXIT
    "$gpt" prepare --out "$work/corpus.h5" "$repo_dir/../shared/datasets/tinyshakespeare/input.txt" >/dev/null
    for p in $ranks; do
        SWIFTGPT_BIN=$gpt "$script_dir/testcluster.sh" run -np "$p" -- gpt train --set dataset="$work/corpus.h5" \
            out_dir="$work/np$p" n_layer=4 n_head=4 n_embd=128 block_size=64 batch_size=8 dropout=0 max_iters=12 \
            log_interval=1 eval_interval=1000 eval_iters=1 sample_tokens=0 threads=1 bucket_mb=1 keep_checkpoints=0 \
            >"$work/np$p.log" 2>&1 || die "the $p-rank run failed: $(tail -n 5 "$work/np$p.log")"
        echo "$p $(median_step_ms "$work/np$p")   # load $(cut -d' ' -f1 /proc/loadavg)"
    done
    exit 0
fi

results=$(mktemp)
trap 'rm -f "$results"; "$script_dir/testcluster.sh" down >/dev/null 2>&1 || true' EXIT
echo "| ranks | floats | MB | blocking allreduce | load |"
echo "|---|---|---|---|---|"
for p in $ranks; do
    for n in $floats; do
        line=$(SWIFTGPT_BIN=$gpt "$script_dir/testcluster.sh" run -np "$p" -- gpt selftest comm --overlap --overlap-floats "$n" 2>&1 \
            | grep -o 'blocking [0-9.]* ms' | head -n 1) || true
        ms=${line//[^0-9.]/}
        [[ -n $ms ]] || die "no measurement for $p ranks, $n floats"
        echo "$p $((n * 4)) $ms" >>"$results"
        printf '| %d | %d | %.3f | %s ms | %s |\n' "$p" "$n" "$(awk -v b=$((n * 4)) 'BEGIN { print b / 1e6 }')" "$ms" \
            "$(cut -d' ' -f1 /proc/loadavg)"
    done
done

# Least squares for t = alpha * x1 + beta * x2, x1 = 2(p-1), x2 = 2(p-1)/p * bytes (t in seconds).
awk '{ p = $1; x1 = 2 * (p - 1); x2 = 2 * (p - 1) / p * $2; t = $3 / 1e3
       s11 += x1 * x1; s12 += x1 * x2; s22 += x2 * x2; s1t += x1 * t; s2t += x2 * t
       P[NR] = p; N[NR] = $2; T[NR] = t; X1[NR] = x1; X2[NR] = x2 }
     END { d = s11 * s22 - s12 * s12; a = (s1t * s22 - s2t * s12) / d; b = (s11 * s2t - s12 * s1t) / d
           printf "\nfit: alpha = %.1f us per message, B = %.1f MB/s (%.2f Gbit/s)\n", a * 1e6, 1e-6 / b, 8e-9 / b
           print "| ranks | MB | measured | model |"; print "|---|---|---|---|"
           for (i = 1; i <= NR; i++) printf "| %d | %.3f | %.2f ms | %.2f ms |\n", P[i], N[i] / 1e6, T[i] * 1e3, (a * X1[i] + b * X2[i]) * 1e3 }' \
    "$results"
