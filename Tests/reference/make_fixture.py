#!/usr/bin/env python3
"""Build the GPT reference fixture that the Swift engine's tests must match.

An independent GPT-2 style model in PyTorch, written in the manner of
nanoGPT's model.py, and the training loop of nanoGPT's train.py (AdamW with
two parameter groups, gradient clipping, gradient accumulation, warmup +
cosine learning rate). Everything runs in float32, like the Swift engine,
with fixed seeds and deterministic kernels.

For each case in CASES it writes, under /<case name> of the HDF5 file:
  attributes          model config and training settings
  params/<name>       initial weights (float32, real shapes)
  inputs, targets     int32 (B,T); targets hold -1 (ignored) entries
  logits              float32 (B,T,V) at the initial weights
  loss                float32 (1,)
  grads/<name>        d loss / d parameter at the initial weights
  micro_inputs        int32 (steps, accum, B, T), one batch per micro-step
  micro_targets       int32 (steps, accum, B, T), with -1 entries
  lrs, grad_norms, losses   float32 (steps,), one value per optimizer step
  final_params/<name> weights after the training steps

Usage: python3 make_fixture.py [--out PATH]
See README.md next to this file for what the Swift tests compare.
"""

import argparse
import math
import os
import sys
import tempfile
from dataclasses import dataclass

import h5py
import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "GPTCoreTests", "Fixtures", "gpt_reference.h5")

LN_EPS = 1e-5

# MARK: - Configuration


@dataclass(frozen=True)
class GPTConfig:
    """The shape of the model, as nanoGPT's GPTConfig."""
    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    flash: bool = False  # attention by F.scaled_dot_product_attention, as nanoGPT on PyTorch 2 (benchmarks only)


@dataclass(frozen=True)
class TrainSettings:
    """The slice of nanoGPT's train.py defaults that the fixture exercises."""
    steps: int = 10
    grad_accum_steps: int = 2
    learning_rate: float = 1e-2
    min_lr: float = 1e-3
    warmup_iters: int = 2
    lr_decay_iters: int = 8
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0


@dataclass(frozen=True)
class Case:
    """One fixture case: a model shape, a batch shape, training settings and a seed."""
    name: str
    config: GPTConfig
    B: int
    T: int
    train: TrainSettings
    seed: int


CASES = [
    Case("case_bias_tied",
         GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16,
                   bias=True, tie_weights=True),
         B=3, T=8, train=TrainSettings(grad_clip=1.25), seed=1337),
    Case("case_nobias_untied",
         GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=4, n_embd=16,
                   bias=False, tie_weights=False),
         B=3, T=6, train=TrainSettings(grad_clip=2.2), seed=4242),
]

# MARK: - Model


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's cannot drop only the bias)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, LN_EPS)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, written out (no fused kernel; `flash` is for benchmarks only)."""

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.flash = config.flash
        self.dropout = config.dropout
        mask = torch.tril(torch.ones(config.block_size, config.block_size))
        self.register_buffer("mask", mask.view(1, 1, config.block_size, config.block_size),
                             persistent=False)

    def forward(self, x):
        B, T, C = x.size()
        hs = C // self.n_head
        # c_attn's output is [q | k | v]; within each, head h is the slice h*hs ..< (h+1)*hs.
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if self.flash:  # nanoGPT's fast path: the same function in one fused PyTorch kernel
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0,
                                               is_causal=True)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: 4x wide, tanh-approximated GELU."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """GPT-2 style decoder. Parameter names are nanoGPT's without `transformer.`."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        # Registration order is the flat-buffer order of the Swift ParameterLayout.
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, bias=config.bias)
        # Tied: the head reuses wte.weight, so there is no separate lm_head parameter.
        self.lm_head = None if config.tie_weights else nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def layout_names(self):
        return parameter_names(self.config)

    def forward(self, idx, targets=None):
        B, T = idx.size()
        assert T <= self.config.block_size
        pos = torch.arange(0, T, dtype=torch.long)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        head = self.wte.weight if self.lm_head is None else self.lm_head.weight
        logits = F.linear(x, head)  # (B, T, V)
        loss = None
        if targets is not None:
            # Mean over the targets that are not -1.
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


def parameter_names(config):
    """Names in the order of the Swift ParameterLayout (one flat buffer)."""
    names = ["wte.weight", "wpe.weight"]
    for l in range(config.n_layer):
        p = f"h.{l}."
        for module in ["ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"]:
            names.append(p + module + ".weight")
            if config.bias:
                names.append(p + module + ".bias")
    names.append("ln_f.weight")
    if config.bias:
        names.append("ln_f.bias")
    if not config.tie_weights:
        names.append("lm_head.weight")
    return names


def ordered_parameters(model):
    """(name, parameter) pairs in layout order; fails if the model disagrees with the layout."""
    named = dict(model.named_parameters())
    names = model.layout_names()
    if list(named) != names:
        raise RuntimeError(f"model parameters {list(named)} differ from the layout {names}")
    return [(n, named[n]) for n in names]


def init_weights(model, generator):
    """Random weights that exercise every path (deliberately not GPT-2's init).

    Matrices and embeddings ~ N(0, 0.2^2); norm weights (LayerNorm, RMSNorm,
    QK-norm) 1 + 0.1 N(0,1);
    biases 0.1 N(0,1). Drawn in layout order from one generator.
    """
    with torch.no_grad():
        for name, p in ordered_parameters(model):
            z = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            if ".ln_" in name or name.startswith("ln_") or name.endswith("_norm.weight"):
                if name.endswith(".weight"):
                    p.copy_(1.0 + 0.1 * z)
                else:
                    p.copy_(0.1 * z)
            elif p.dim() >= 2:
                p.copy_(0.2 * z)
            else:
                p.copy_(0.1 * z)

# MARK: - Training (nanoGPT train.py)


def configure_optimizers(model, weight_decay, learning_rate, betas, eps):
    """AdamW with decay on tensors of dim >= 2 only, as nanoGPT; single-tensor kernel."""
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    nodecay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": nodecay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps,
                             foreach=False, fused=False)


def get_lr(it, s):
    """nanoGPT's schedule: linear warmup, cosine decay, then min_lr."""
    if it < s.warmup_iters:
        return s.learning_rate * (it + 1) / (s.warmup_iters + 1)
    if it > s.lr_decay_iters:
        return s.min_lr
    decay_ratio = (it - s.warmup_iters) / (s.lr_decay_iters - s.warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return s.min_lr + coeff * (s.learning_rate - s.min_lr)


def train(model, micro_inputs, micro_targets, s):
    """Run s.steps optimizer steps exactly as nanoGPT's train.py (fp32, no scaler).

    Returns per-step lrs, total gradient norms before clipping, and losses
    (sum of the accum-scaled micro-step losses, i.e. their mean, taken
    before that step's update).
    """
    optimizer = configure_optimizers(model, s.weight_decay, s.learning_rate, (s.beta1, s.beta2), s.eps)
    lrs, norms, losses = [], [], []
    for it in range(s.steps):
        lr = get_lr(it, s)
        for group in optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        for micro in range(s.grad_accum_steps):
            _, loss = model(micro_inputs[it, micro], micro_targets[it, micro])
            loss = loss / s.grad_accum_steps
            total += loss.item()
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lrs.append(lr)
        norms.append(norm.item())
        losses.append(total)
    return lrs, norms, losses

# MARK: - Data


def single_batch(case, gen):
    """Inputs and targets for the forward/backward check, with hand-placed -1 targets."""
    V, B, T = case.config.vocab_size, case.B, case.T
    inputs = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    targets[1, : T // 2] = -1   # a prompt-masked row: its first half is ignored
    targets[0, 2] = -1          # a single hole inside a row
    targets[B - 1, T - 1] = -1  # the last position of the last row
    return inputs, targets


def micro_batches(case, gen):
    """(steps, accum, B, T) inputs and targets; each row has a random ignored prompt
    prefix and a few scattered -1 targets, never a micro-batch with nothing to predict."""
    V, B, T, s = case.config.vocab_size, case.B, case.T, case.train
    shape = (s.steps, s.grad_accum_steps, B, T)
    inputs = torch.randint(0, V, shape, generator=gen)
    targets = torch.randint(0, V, shape, generator=gen)
    prompt = torch.randint(0, T // 2 + 1, (s.steps, s.grad_accum_steps, B, 1), generator=gen)
    positions = torch.arange(T).view(1, 1, 1, T)
    holes = torch.rand(shape, generator=gen) < 0.1
    targets[(positions < prompt) | holes] = -1
    kept = (targets != -1).flatten(2).sum(-1)
    assert bool((kept > 0).all()), "a micro-batch has no target left; change the seed"
    assert bool((targets == -1).flatten(2).any(-1).all()), "a micro-batch has no -1 target; change the seed"
    return inputs, targets

# MARK: - Building one case


def build_case(case, model_class=GPT):
    """Everything the fixture stores for one case, as NumPy arrays."""
    torch.manual_seed(case.seed)
    gen = torch.Generator().manual_seed(case.seed)
    model = model_class(case.config)
    init_weights(model, gen)
    model.train()  # dropout is 0; train mode as in nanoGPT's loop
    out = {"params": {n: p.detach().numpy().copy() for n, p in ordered_parameters(model)},
           "names": model.layout_names()}

    inputs, targets = single_batch(case, gen)
    logits, loss = model(inputs, targets)
    loss.backward()
    out["inputs"] = inputs.numpy().astype(np.int32)
    out["targets"] = targets.numpy().astype(np.int32)
    out["logits"] = logits.detach().numpy().astype(np.float32)
    out["loss"] = np.array([loss.item()], dtype=np.float32)
    out["grads"] = {n: p.grad.detach().numpy().copy() for n, p in ordered_parameters(model)}
    model.zero_grad(set_to_none=True)

    micro_in, micro_tg = micro_batches(case, gen)
    lrs, norms, losses = train(model, micro_in, micro_tg, case.train)
    out["micro_inputs"] = micro_in.numpy().astype(np.int32)
    out["micro_targets"] = micro_tg.numpy().astype(np.int32)
    out["lrs"] = np.array(lrs, dtype=np.float32)
    out["grad_norms"] = np.array(norms, dtype=np.float32)
    out["losses"] = np.array(losses, dtype=np.float32)
    out["final_params"] = {n: p.detach().numpy().copy() for n, p in ordered_parameters(model)}

    # Both branches of clipping must be exercised: scaled down, and left alone.
    clipped = sum(1 for n in norms if n > case.train.grad_clip)
    if clipped < 3 or case.train.steps - clipped < 2:
        raise RuntimeError(f"{case.name}: {clipped} of {case.train.steps} steps clipped; choose a "
                           f"grad_clip with at least 3 norms above and 2 below it: {norms}")
    return out


def write_case(f, case, data, extra_ints=None, extra_floats=None):
    """One group per case; config and settings (and `extra_*`) as scalar attributes."""
    g = f.create_group(case.name)
    c, s = case.config, case.train
    ints = {"vocab_size": c.vocab_size, "block_size": c.block_size, "n_layer": c.n_layer,
            "n_head": c.n_head, "n_embd": c.n_embd, "bias": int(c.bias),
            "tie_weights": int(c.tie_weights), "B": case.B, "T": case.T,
            "steps": s.steps, "grad_accum_steps": s.grad_accum_steps,
            "warmup_iters": s.warmup_iters, "lr_decay_iters": s.lr_decay_iters, "seed": case.seed}
    floats = {"dropout": c.dropout, "learning_rate": s.learning_rate, "min_lr": s.min_lr,
              "weight_decay": s.weight_decay, "beta1": s.beta1, "beta2": s.beta2, "eps": s.eps,
              "grad_clip": s.grad_clip, "ln_eps": LN_EPS}
    ints.update(extra_ints or {})
    floats.update(extra_floats or {})
    for k, v in ints.items():
        g.attrs[k] = np.int64(v)
    for k, v in floats.items():
        g.attrs[k] = np.float64(v)
    names = data["names"]
    g.attrs["param_names"] = np.array([n.encode("ascii") for n in names])
    for sub in ["params", "grads", "final_params"]:
        sg = g.create_group(sub)
        for n in names:
            sg.create_dataset(n, data=data[sub][n].astype(np.float32))
    for key in ["inputs", "targets", "logits", "loss", "micro_inputs", "micro_targets",
                "lrs", "grad_norms", "losses"]:
        g.create_dataset(key, data=data[key])


DESCRIPTION = ("GPT reference fixture: forward, backward and AdamW training "
               "steps of a nanoGPT-style model in float32; see Tests/reference/README.md")


def main(argv, cases=CASES, default_out=DEFAULT_OUT, description=DESCRIPTION, build=build_case, write=write_case):
    """Writes `cases` (built by `build`, stored by `write`) to one HDF5 file, atomically."""
    parser = argparse.ArgumentParser(description="Write the GPT reference fixture (HDF5).")
    parser.add_argument("--out", default=default_out, help="output file (default: %(default)s)")
    args = parser.parse_args(argv)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        print(f"error: output directory {out_dir} does not exist; create it or pass another --out",
              file=sys.stderr)
        return 2

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    # Write beside the target and rename, so a failure never leaves a half-written fixture.
    fd, tmp = tempfile.mkstemp(suffix=".h5.tmp", dir=out_dir)
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["description"] = description
            f.attrs["cases"] = np.array([c.name.encode("ascii") for c in cases])
            for case in cases:
                data = build(case)
                write(f, case, data)
                print(f"{case.name}: loss {data['loss'][0]:.6f}  "
                      f"losses {np.array2string(data['losses'], precision=4)}\n"
                      f"  grad_norms {np.array2string(data['grad_norms'], precision=4)} "
                      f"(clip {case.train.grad_clip})\n"
                      f"  lrs {np.array2string(data['lrs'], precision=5)}")
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {os.path.relpath(args.out)} ({os.path.getsize(args.out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
