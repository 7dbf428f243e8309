#!/usr/bin/env python3
"""Summary of launch/ablation-ex4.sh: per arm, over its seeds, the final and the best
val loss (mean ± sample std), tokens/s, and the change of the mean final val loss
against the first arm; a change "beats the seed spread" when it is larger than the
larger of the two arms' standard deviations.

Usage: launch/ablation-ex4-summary.py RUNS_ROOT ARM [ARM ...]   (runs are ARM-s<seed>)
"""
import glob
import json
import os
import statistics as st
import sys


def read(path):
    evals, summary = [], None
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            if e["event"] == "eval":
                evals.append(e)
            elif e["event"] == "summary":
                summary = e
    return evals, summary


def mean_std(xs):
    return st.mean(xs), (st.stdev(xs) if len(xs) > 1 else 0.0)


def main(root, arms):
    rows, base = [], None
    print("| arm | seeds | final val loss | best val loss | tokens/s | final vs gpt2 | beats the seed spread? |")
    print("|---|---|---|---|---|---|---|")
    for arm in arms:
        finals, bests, speeds = [], [], []
        for d in sorted(p for p in glob.glob(os.path.join(root, f"{arm}-s*")) if os.path.isdir(p)):
            evals, summary = read(os.path.join(d, "metrics.jsonl"))
            if summary is None or not evals:
                continue
            finals.append(evals[-1]["val_loss"])
            bests.append(min(e["val_loss"] for e in evals))
            speeds.append(summary["tokens_per_s"])
        if not finals:
            continue
        (fm, fs), (bm, bs), (sm, ss) = mean_std(finals), mean_std(bests), mean_std(speeds)
        if base is None:
            base = (fm, fs, sm)
            delta, verdict = "", "(baseline)"
        else:
            d = fm - base[0]
            spread = max(fs, base[1])
            delta = f"{d:+.4f} ({sm / base[2]:.2f}x speed)"
            ratio = abs(d) / spread if spread > 0 else float("inf")
            verdict = (f"yes ({ratio:.1f}x the spread)" if d < -spread else
                       f"no, worse ({ratio:.1f}x)" if d > spread else f"no ({ratio:.1f}x)")
        print(f"| {arm} | {len(finals)} | {fm:.4f} ± {fs:.4f} | {bm:.4f} ± {bs:.4f} | {sm:.0f} ± {ss:.0f} | {delta} | {verdict} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
