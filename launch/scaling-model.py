#!/usr/bin/env python3
"""scaling-model.py: step time, overlap and parallel efficiency of data-parallel
training predicted from an allreduce model and the backward time per bucket
(docs/DISTRIBUTED.md, "Scaling model"). Prints markdown tables; asserts nothing.

  launch/scaling-model.py                 predictions for the baby GPT and GPT-2-small at 2..512 nodes
  launch/scaling-model.py --check FILE    the model against measured test-cluster runs (lines: np ms_per_step)

Allreduce of m bytes over p ranks (ring): t(p, m) = 2 (p - 1) alpha + 2 (p - 1) / p * m / B.
Overlap: the gradient buffer is cut into buckets of bucket_mb; backward finishes them
one after another at an even pace (backward = 2/3 of forward + backward), and one
communication thread reduces them in order, each as soon as it is ready and the
previous one is done. Exposed = when the last bucket is reduced - when backward ends.
Step = compute + exposed; efficiency = compute / step.
"""
import math
import sys


def allreduce(p, m, alpha, bandwidth):
    """Seconds for a ring allreduce of m bytes over p ranks."""
    if p == 1:
        return 0.0
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * m / bandwidth


def step(p, grad_bytes, compute, alpha, bandwidth, bucket_mb, backward_share=2 / 3):
    """(step seconds, exposed seconds, allreduce seconds) with overlap."""
    bucket = bucket_mb * 2**20
    k = max(1, math.ceil(grad_bytes / bucket))
    backward = backward_share * compute
    start_backward = compute - backward  # forward first; the optimizer is folded into compute
    end = 0.0
    total = 0.0
    for i in range(k):
        size = min(bucket, grad_bytes - i * bucket)
        ready = start_backward + backward * (i + 1) / k
        t = allreduce(p, size, alpha, bandwidth)
        end = max(ready, end) + t
        total += t
    exposed = max(0.0, end - compute)
    return compute + exposed, exposed, total


# MARK: - Predictions

# A node: 32 cores at the per-core speed measured here (6 P tokens FLOPs; the baby GPT on one
# core: 6 * 10.75e6 * 2048 FLOPs in 1.5 s = 88 GFLOP/s), 16,384 tokens per node and step.
CORE_FLOPS = 88e9
NODE_CORES = 32
TOKENS = 16384
MODELS = [("baby GPT (6 x 384, 10.75 M)", 10.75e6), ("GPT-2-small (12 x 768, vocab 50257, 124 M)", 124.4e6)]
LINKS = [("10 Gbit/s", 10e9), ("100 Gbit/s", 100e9)]
# Per message: 50 us (MPI over TCP on Ethernet); bandwidth: 50 % of the link rate, as the fit
# on the 1 Gbit/s test cluster found (62 MB/s of 125).
ALPHA = 50e-6
LINK_EFFICIENCY = 0.5
BUCKET_MB = 4.0
NODES = [2, 8, 64, 512]


def predictions():
    for name, params in MODELS:
        compute = 6 * params * TOKENS / (CORE_FLOPS * NODE_CORES)
        grad = 4 * params
        print(f"\n**{name}**: {grad / 1e6:.0f} MB of gradients, compute {compute * 1e3:.0f} ms per step per node, "
              f"backward {compute * 2 / 3 * 1e3:.0f} ms, {math.ceil(grad / (BUCKET_MB * 2**20))} buckets of {BUCKET_MB:g} MiB\n")
        print("| link | nodes | allreduce (serial) | exposed with overlap | step | hidden | efficiency |")
        print("|---|---|---|---|---|---|---|")
        for link, bits in LINKS:
            bandwidth = bits / 8 * LINK_EFFICIENCY
            largest = 1
            for p in [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]:
                s, exposed, total = step(p, grad, compute, ALPHA, bandwidth, BUCKET_MB)
                if compute / s >= 0.9:
                    largest = p
                if p in NODES:
                    hidden = 1 - exposed / total if total > 0 else 1
                    print(f"| {link} | {p} | {total * 1e3:.0f} ms | {exposed * 1e3:.0f} ms | {s * 1e3:.0f} ms | "
                          f"{hidden * 100:.0f} % | {compute / s * 100:.0f} % |")
            s, exposed, total = step(512, grad, compute, ALPHA, bandwidth, 25.0)
            print(f"| {link} | 512, bucket_mb 25 | {total * 1e3:.0f} ms | {exposed * 1e3:.0f} ms | {s * 1e3:.0f} ms | "
                  f"{(1 - exposed / total) * 100:.0f} % | {compute / s * 100:.0f} % |")
            print(f"| {link} | largest with efficiency >= 90 % (bucket_mb {BUCKET_MB:g}) | | | | | {largest} nodes |")


# MARK: - Check against measured runs

def check(path):
    """The test cluster: alpha and B as fitted by bench-allreduce.sh; compute per rank from np 1,
    times the oversubscription (p ranks on 2 cores)."""
    alpha, bandwidth, cores = 12.0e-3, 62.3e6, 2
    runs = {int(a): float(b) / 1e3 for a, b in (line.split()[:2] for line in open(path) if line.strip())}
    params = 804096
    one = runs[1]
    print("| ranks | measured step | model step | model exposed | measured / model |")
    print("|---|---|---|---|---|")
    for p in sorted(runs):
        compute = one * max(1.0, p / cores)
        s, exposed, _ = step(p, 4 * params, compute, alpha, bandwidth, 1.0)
        print(f"| {p} | {runs[p] * 1e3:.0f} ms | {s * 1e3:.0f} ms | {exposed * 1e3:.0f} ms | {runs[p] / s:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    elif len(sys.argv) == 1:
        predictions()
    else:
        sys.exit("usage: launch/scaling-model.py [--check FILE]")
