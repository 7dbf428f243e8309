#!/usr/bin/env python3
"""Time training steps of the reference PyTorch model, eager or under torch.compile.

The model is make_fixture.py's nanoGPT-style GPT (not a second definition);
the step is nanoGPT's train.py on CPU: a random batch, forward with the loss,
backward, gradient clipping to 1.0, AdamW (decay on tensors of 2 or more
dimensions), zero_grad; gradient_accumulation_steps micro-batches per step.
The shape comes from a run config (TOML) with every key set, as `gpt train`
writes it to <out_dir>/config.toml. Prints one JSON object on stdout:
  {"ms_per_step": [...timed steps...], "tokens_per_step": N, "parameters": N, "torch": VERSION, ...}

Usage: python3 bench_step.py --config RUN/config.toml --vocab-size 65 --threads 2 \
           [--compile] [--attention sdpa|manual] [--steps 5] [--warmup 2]
launch/bench-vs-pytorch.sh runs it next to `gpt train` on the same configs.
"""

import argparse
import json
import os
import sys
import time
import tomllib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixture import GPT, GPTConfig  # noqa: E402  (the one reference model)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a resolved run config (gpt train's <out_dir>/config.toml)")
    for name, default in [("vocab-size", 65), ("threads", 1), ("steps", 5), ("warmup", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (Inductor, CPU)")
    p.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa",
                   help="sdpa: F.scaled_dot_product_attention as nanoGPT on PyTorch 2; manual: written out")
    a = p.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.threads < 1:
        p.error("--steps and --threads must be at least 1, --warmup at least 0")
    if a.compile and a.warmup < 1:
        p.error("--compile needs --warmup of at least 1 (the first step compiles)")
    return a


SHAPE_KEYS = ["n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout", "bias",
              "tie_weights", "gradient_accumulation_steps"]


def read_shape(path):
    """The model and batch keys of a resolved run config; every one must be there."""
    with open(path, "rb") as f:
        c = tomllib.load(f)
    missing = [k for k in SHAPE_KEYS if k not in c]
    if missing:
        sys.exit(f"bench_step.py: {path} lacks {', '.join(missing)}: pass the config.toml that gpt train wrote")
    other = [k for k in ("norm", "position", "mlp") if c.get(k) not in (None, "layernorm", "learned", "gelu")]
    if other or c.get("qk_norm"):
        sys.exit(f"bench_step.py: {path} sets {', '.join(other or ['qk_norm'])}: the reference model is GPT-2's block only")
    return c


def optimizer(model):
    """nanoGPT's configure_optimizers: weight decay on matrices and embeddings only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    c = read_shape(a.config)
    config = GPTConfig(vocab_size=a.vocab_size, block_size=c["block_size"], n_layer=c["n_layer"],
                       n_head=c["n_head"], n_embd=c["n_embd"], dropout=c["dropout"], bias=c["bias"],
                       tie_weights=c["tie_weights"], flash=a.attention == "sdpa")
    model = GPT(config)
    model.train()
    opt = optimizer(model)
    run = torch.compile(model) if a.compile else model
    B, T, accum = c["batch_size"], c["block_size"], c["gradient_accumulation_steps"]

    def step():
        for _ in range(accum):
            x = torch.randint(a.vocab_size, (B, T))
            y = torch.randint(a.vocab_size, (B, T))
            _, loss = run(x, y)
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        start = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - start))
    parameters = sum(p.numel() for p in model.parameters())  # the tied wte/head counted once
    print(json.dumps({"ms_per_step": times, "tokens_per_step": B * T * accum, "parameters": parameters,
                      "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "compile": a.compile, "attention": a.attention}))


if __name__ == "__main__":
    main()
