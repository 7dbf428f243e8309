#!/usr/bin/env python3
"""Record what PyTorch's random stream and nanoGPT's training loop produce,
for the tests of `rng = "torch"`.

Two fixtures, both JSON:

Tests/GPTCoreTests/Fixtures/torch_rng.json
  sequence   one seeded generator used by randint, uniform_ and normal_ in turn
             (both normal_ paths: the block-of-16 fill and the cached
             double-precision sampler), values as torch returns them
  init       for small models built as nanoGPT's model.py builds them
             (module order, tied head, the c_proj rescale) under
             torch.manual_seed: per tensor the first values, the sum and the
             sum of squares, and the randint values that follow the init

Tests/GPTTrainTests/Fixtures/nanogpt_run.json
  nanoGPT's train.py loop (get_batch with torch.randint, estimate_loss on
  the same stream, warmup + cosine lr, clipping, AdamW with its two groups)
  on Tiny Shakespeare with the shakespeare_char CPU model, for `steps` steps:
  the loss of every step and every evaluation.

Usage: python3 make_nanogpt_run.py path/to/tinyshakespeare/input.txt
Needs torch (CPU), numpy and h5py (make_fixture.py, whose blocks it uses). Runs in about 10 s.
"""

import json
import math
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_fixture import Block, GPTConfig, LayerNorm  # noqa: E402  (the blocks; only the GPT's module order differs)
RNG_OUT = os.path.join(HERE, "..", "GPTCoreTests", "Fixtures", "torch_rng.json")
RUN_OUT = os.path.join(HERE, "..", "GPTTrainTests", "Fixtures", "nanogpt_run.json")

# MARK: - The model, in nanoGPT's module order (the order decides the random draws)


class GPT(nn.Module):
    """nanoGPT's GPT: a `transformer` ModuleDict, then the tied `lm_head`, then the inits."""

    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            drop=nn.Dropout(c.dropout),
            h=nn.ModuleList([Block(c) for _ in range(c.n_layer)]),
            ln_f=LayerNorm(c.n_embd, c.bias),
        ))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        t = idx.size(1)  # (no crop: T == block_size in the fixtures)
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def swift_name(name):
    """nanoGPT's state_dict key -> the Swift ParameterLayout name."""
    return name[len("transformer."):] if name.startswith("transformer.") else name


# MARK: - Fixture 1: the generator and the model's initial weights


def rng_fixture():
    torch.manual_seed(42)
    seq = []

    def record(op, arg, values):
        seq.append({"op": op, "arg": arg, "values": [float(v) if op != "randint" else int(v) for v in values]})

    record("randint", [1000, 5], torch.randint(1000, (5,)).tolist())
    record("normal", [5, 0.0, 1.0], torch.empty(5).normal_(0.0, 1.0).tolist())     # caches one value
    record("normal", [3, 0.5, 2.0], torch.empty(3).normal_(0.5, 2.0).tolist())     # starts with the cached one
    record("uniform", [20, -0.25, 0.25], torch.empty(20).uniform_(-0.25, 0.25).tolist())
    record("normal", [32, 0.0, 0.02], torch.empty(32).normal_(0.0, 0.02).tolist())
    record("normal", [37, 1.0, 0.5], torch.empty(37).normal_(1.0, 0.5).tolist())   # recomputes the last 16
    record("randint", [(1 << 28) - 1, 3], torch.randint((1 << 28) - 1, (3,)).tolist())  # one word each
    record("randint", [1 << 28, 3], torch.randint(1 << 28, (3,)).tolist())              # two words each
    record("randint", [3_000_000_000, 2], torch.randint(3_000_000_000, (2,)).tolist())
    record("randint", [1_003_790, 4], torch.randint(1_003_790, (4,)).tolist())

    inits = []
    for bias in (False, True):
        c = GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, bias=bias)
        torch.manual_seed(1337)
        model = GPT(c)
        tensors = {}
        for name, p in model.named_parameters():
            v = p.detach().double().reshape(-1)
            tensors[swift_name(name)] = {"first": v[:6].tolist(), "sum": v.sum().item(),
                                         "sum_sq": (v * v).sum().item(), "count": v.numel()}
        inits.append({"config": dict(vocab_size=c.vocab_size, block_size=c.block_size, n_layer=c.n_layer,
                                     n_head=c.n_head, n_embd=c.n_embd, bias=c.bias), "seed": 1337, "tensors": tensors,
                      "next_randint_1000": torch.randint(1000, (4,)).tolist()})
    return {"torch": torch.__version__, "sequence": seq, "init": inits}


# MARK: - Fixture 2: nanoGPT's train.py loop on Tiny Shakespeare


def run_fixture(input_path):
    text = open(input_path, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    n = len(text)
    train_data = np.array([stoi[ch] for ch in text[: int(n * 0.9)]], dtype=np.uint16)
    val_data = np.array([stoi[ch] for ch in text[int(n * 0.9):]], dtype=np.uint16)

    s = dict(seed=1337, batch_size=12, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False,
             learning_rate=1e-3, max_iters=60, weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0,
             warmup_iters=20, lr_decay_iters=60, min_lr=1e-4, eval_interval=20, eval_iters=5,
             gradient_accumulation_steps=2)
    torch.manual_seed(s["seed"])
    c = GPTConfig(vocab_size=len(chars), block_size=s["block_size"], n_layer=s["n_layer"], n_head=s["n_head"],
                  n_embd=s["n_embd"], bias=s["bias"])
    model = GPT(c)

    def get_batch(split):
        data = train_data if split == "train" else val_data
        ix = torch.randint(len(data) - s["block_size"], (s["batch_size"],))
        x = torch.stack([torch.from_numpy(data[i:i + s["block_size"]].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + s["block_size"]].astype(np.int64)) for i in ix])
        return x, y

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": s["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=s["learning_rate"], betas=(s["beta1"], s["beta2"]))

    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ("train", "val"):
            out[split] = float(torch.tensor([model(*get_batch(split)).item() for _ in range(s["eval_iters"])]).mean())
        model.train()
        return out

    def get_lr(it):
        if it < s["warmup_iters"]:
            return s["learning_rate"] * (it + 1) / (s["warmup_iters"] + 1)
        if it > s["lr_decay_iters"]:
            return s["min_lr"]
        ratio = (it - s["warmup_iters"]) / (s["lr_decay_iters"] - s["warmup_iters"])
        return s["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (s["learning_rate"] - s["min_lr"])

    evals, losses = [], []
    X, Y = get_batch("train")
    it = 0
    while True:
        for g in optimizer.param_groups:
            g["lr"] = get_lr(it)
        if it % s["eval_interval"] == 0:
            e = estimate_loss()
            evals.append({"step": it, "train_loss": e["train"], "val_loss": e["val"]})
        if it == s["max_iters"]:
            break  # (train.py takes one more step here and then stops; nothing of it is recorded)
        total = 0.0
        for _ in range(s["gradient_accumulation_steps"]):
            loss = model(X, Y) / s["gradient_accumulation_steps"]
            X, Y = get_batch("train")
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(total)  # the mean over micro-steps, as the engine logs it
        it += 1
    return {"torch": torch.__version__, "settings": s, "evals": evals, "losses": losses}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_nanogpt_run.py path/to/tinyshakespeare/input.txt")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    write_json(RNG_OUT, rng_fixture())
    write_json(RUN_OUT, run_fixture(sys.argv[1]))


if __name__ == "__main__":
    main()
