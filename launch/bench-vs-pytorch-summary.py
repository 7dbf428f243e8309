#!/usr/bin/env python3
"""Summary of launch/bench-vs-pytorch.sh: per config, thread count and implementation, the
median ms/step over rounds (each round's own median over its timed steps), tokens/s, our
tokens/s divided by each one's ("ours x"), and the peak RSS (the largest of its runs).

Prints a Markdown table on stdout and writes every figure, each run's included, as JSON.
Usage: launch/bench-vs-pytorch-summary.py RECORDS JSON_OUT [--label L] [--blas B] [--steps N]
           [--warmup N] [--attention A] [--load-after "1.0 1.0 1.0"]
RECORDS has one run a line: CONFIG THREADS IMPL ROUND LOAD(a/b/c) RSS_KB PARAMETERS TOKENS MS,MS,...
"""
import argparse
import json
import os
import platform
import statistics as st
import sys

TORCH = ["eager", "compile"]


def order(impl):
    """ours first, then other builds of ours (--also), then PyTorch eager and compiled."""
    return (0 if impl == "ours" else 2 if impl in TORCH else 1, TORCH.index(impl) if impl in TORCH else 0, impl)


def read_records(path):
    runs = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            config, threads, impl, rnd, load, rss, params, tokens, ms = line.split()
            runs.append({"config": config, "threads": int(threads), "impl": impl, "round": int(rnd),
                         "load": [float(x) for x in load.split("/")], "peak_rss_kb": int(rss),
                         "parameters": int(params), "tokens_per_step": int(tokens), "ms_per_step": [float(x) for x in ms.split(",")]})
    return runs


def summarise(runs):
    groups = {}
    for r in runs:
        groups.setdefault((r["config"], r["threads"]), {}).setdefault(r["impl"], []).append(r)
    rows = []
    for (config, threads), by_impl in groups.items():
        for key in ("parameters", "tokens_per_step"):
            values = {r[key] for rs in by_impl.values() for r in rs}
            if len(values) > 1:
                sys.exit(f"bench-vs-pytorch-summary.py: {config} has different {key} {sorted(values)} "
                         "across implementations: the models or batches differ")
        medians = {impl: st.median(st.median(r["ms_per_step"]) for r in rs) for impl, rs in by_impl.items()}
        for impl in sorted(by_impl, key=order):
            rs = by_impl[impl]
            tokens = rs[0]["tokens_per_step"]
            ms = medians[impl]
            ours = medians.get("ours")
            rows.append({"config": config, "threads": threads, "impl": impl, "ms_per_step": ms,
                         "tokens_per_second": tokens / ms * 1e3, "ours_speedup": ours and ms / ours,
                         "peak_rss_mib": max(r["peak_rss_kb"] for r in rs) / 1024, "rounds": len(rs),
                         "parameters": rs[0]["parameters"], "tokens_per_step": tokens,
                         "load_median": st.median(r["load"][0] for r in rs)})
    return rows


def table(rows):
    lines = ["| config | threads | impl | ms/step | tokens/s | ours x | peak RSS MiB | rounds | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        speedup = f"{r['ours_speedup']:.2f}" if r["ours_speedup"] else "-"
        lines.append(f"| {r['config']} | {r['threads']} | {r['impl']} | {r['ms_per_step']:.{2 if r['ms_per_step'] < 10 else 1}f} | "
                     f"{r['tokens_per_second']:.0f} | {speedup} | {r['peak_rss_mib']:.0f} | {r['rounds']} | "
                     f"{r['load_median']:.1f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("records")
    p.add_argument("json_out")
    p.add_argument("--label", default="")
    p.add_argument("--blas", default="")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--attention", default="")
    p.add_argument("--load-after", default="")
    a = p.parse_args()
    runs = read_records(a.records)
    if not runs:
        sys.exit(f"bench-vs-pytorch-summary.py: {a.records} holds no runs")
    rows = summarise(runs)
    print(table(rows))
    out = {"label": a.label, "blas": a.blas, "steps": a.steps, "warmup": a.warmup, "torch_attention": a.attention,
           "cores": os.cpu_count(), "machine": platform.processor() or platform.machine(),
           "load_after": [float(x) for x in a.load_after.split()] if a.load_after else [],
           "results": rows, "runs": runs}
    tmp = a.json_out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, a.json_out)
    print(f"figures: {a.json_out}")


if __name__ == "__main__":
    main()
