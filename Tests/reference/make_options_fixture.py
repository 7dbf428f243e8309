#!/usr/bin/env python3
"""Build the fixture of the architecture options: RMSNorm, rotary positions,
SwiGLU and QK-norm, each written from its paper with torch ops.

  RMSNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * g, no mean, no bias.
  RoPE (Su et al. 2021, eq. 34): within each head, the pair (x_{2i}, x_{2i+1}) of
      q and of k at position m is multiplied, as a complex number, by
      exp(i m theta_i), theta_i = base^(-2i/d), d the head size.
  SwiGLU (Shazeer 2020, eq. 6): FFN(x) = (Swish_1(x W) * x V) W_2, with W and V
      stored as the two halves of `mlp.c_fc` and a hidden width of
      ceil(8C/3) rounded up to `swiglu_multiple`.
  QK-norm: an RMSNorm over each head of q and of k (one scale of head-size
      entries each, shared by the heads) before the dot product, then RoPE.

Same file layout and training steps as make_fixture.py (whose case machinery
it uses), written to Tests/GPTCoreTests/Fixtures/gpt_options.h5, with the
options as extra attributes of each case: rmsnorm, rope, swiglu, qk_norm (0/1),
swiglu_hidden, swiglu_multiple, rope_base.

Usage: python3 make_options_fixture.py [--out PATH]
"""

import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixture as base  # noqa: E402  (cases, batches, training loop, writer)
from make_fixture import LN_EPS, Case, LayerNorm, TrainSettings  # noqa: E402

OUT = os.path.join(HERE, "..", "GPTCoreTests", "Fixtures", "gpt_options.h5")

# MARK: - Configuration


@dataclass(frozen=True)
class OptionsConfig(base.GPTConfig):
    """GPTConfig plus the four options (defaults: GPT-2)."""
    rmsnorm: bool = False
    rope: bool = False
    rope_base: float = 10000.0
    swiglu: bool = False
    swiglu_multiple: int = 8
    qk_norm: bool = False

    @property
    def swiglu_hidden(self):
        h = math.ceil(8 * self.n_embd / 3)
        return math.ceil(h / self.swiglu_multiple) * self.swiglu_multiple


def shape(rmsnorm=False, rope=False, swiglu=False, qk_norm=False, bias=True, tie=True, n_head=2):
    return OptionsConfig(vocab_size=13, block_size=8, n_layer=2, n_head=n_head, n_embd=8, bias=bias,
                         tie_weights=tie, rmsnorm=rmsnorm, rope=rope, rope_base=50.0, swiglu=swiglu,
                         swiglu_multiple=4, qk_norm=qk_norm)


# Each option alone, then all four (the LLaMA-style block, without biases).
CASES = [
    Case("case_rmsnorm", shape(rmsnorm=True), B=3, T=8, train=TrainSettings(grad_clip=1.0), seed=101),
    Case("case_rope", shape(rope=True, tie=False), B=3, T=7, train=TrainSettings(grad_clip=1.3), seed=102),
    Case("case_swiglu", shape(swiglu=True, bias=False), B=3, T=8, train=TrainSettings(grad_clip=1.3), seed=103),
    Case("case_qk_norm", shape(qk_norm=True), B=3, T=8, train=TrainSettings(grad_clip=1.0), seed=104),
    Case("case_all", shape(rmsnorm=True, rope=True, swiglu=True, qk_norm=True, bias=False), B=3, T=8,
         train=TrainSettings(grad_clip=2.05), seed=105),
]

# MARK: - The options, from the papers


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain, no bias."""

    def __init__(self, ndim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + LN_EPS) * self.weight


def rotate(x, base_):
    """RoPE on x (B, nh, T, d): pairs (2i, 2i+1) as complex numbers times exp(i t theta_i)."""
    B, nh, T, d = x.shape
    theta = base_ ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), theta)           # (T, d/2)
    turn = torch.polar(torch.ones_like(angles), angles).to(torch.complex64)     # exp(i t theta)
    pairs = torch.view_as_complex(x.reshape(B, nh, T, d // 2, 2).contiguous())
    return torch.view_as_real(pairs * turn).reshape(B, nh, T, d)


def norm_layer(config, ndim):
    return RMSNorm(ndim) if config.rmsnorm else LayerNorm(ndim, bias=config.bias)


class Attention(nn.Module):
    """Causal self-attention with optional QK-norm and RoPE on q and k."""

    def __init__(self, config):
        super().__init__()
        C, hs = config.n_embd, config.n_embd // config.n_head
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)
        if config.qk_norm:
            self.q_norm = RMSNorm(hs)
            self.k_norm = RMSNorm(hs)
        self.c_proj = nn.Linear(C, C, bias=config.bias)
        self.config = config

    def forward(self, x):
        B, T, C = x.size()
        c = self.config
        q, k, v = (t.view(B, T, c.n_head, C // c.n_head).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        if c.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if c.rope:
            q, k = rotate(q, c.rope_base), rotate(k, c.rope_base)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """GELU (tanh) MLP 4C wide, or SwiGLU: c_proj(silu(x W) * x V) with c_fc = [W; V]."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        hidden = config.swiglu_hidden if config.swiglu else 4 * C
        self.c_fc = nn.Linear(C, 2 * hidden if config.swiglu else hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, C, bias=config.bias)
        self.swiglu = config.swiglu

    def forward(self, x):
        h = self.c_fc(x)
        if self.swiglu:
            gate, value = h.chunk(2, dim=-1)
            return self.c_proj(F.silu(gate) * value)
        return self.c_proj(F.gelu(h, approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = norm_layer(config, config.n_embd)
        self.attn = Attention(config)
        self.ln_2 = norm_layer(config, config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The decoder with the options; registration order is the Swift layout's."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        if not config.rope:
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = norm_layer(config, config.n_embd)
        self.lm_head = None if config.tie_weights else nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def layout_names(self):
        """The documented order of Sources/GPTCore/ParameterLayout.swift for these options."""
        c = self.config
        norm = ["weight"] if c.rmsnorm else (["weight", "bias"] if c.bias else ["weight"])
        lin = ["weight", "bias"] if c.bias else ["weight"]
        names = ["wte.weight"] + ([] if c.rope else ["wpe.weight"])
        for l in range(c.n_layer):
            p = f"h.{l}."
            names += [p + "ln_1." + s for s in norm] + [p + "attn.c_attn." + s for s in lin]
            names += [p + "attn.q_norm.weight", p + "attn.k_norm.weight"] if c.qk_norm else []
            names += [p + "attn.c_proj." + s for s in lin] + [p + "ln_2." + s for s in norm]
            names += [p + "mlp.c_fc." + s for s in lin] + [p + "mlp.c_proj." + s for s in lin]
        names += ["ln_f." + s for s in norm] + ([] if c.tie_weights else ["lm_head.weight"])
        return names

    def forward(self, idx, targets=None):
        B, T = idx.size()
        x = self.wte(idx)
        if not self.config.rope:
            x = x + self.wpe(torch.arange(T))
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight if self.lm_head is None else self.lm_head.weight)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


def build(case):
    return base.build_case(case, model_class=GPT)


def write(f, case, data):
    c = case.config
    ints = {"rmsnorm": int(c.rmsnorm), "rope": int(c.rope), "swiglu": int(c.swiglu), "qk_norm": int(c.qk_norm),
            "swiglu_hidden": c.swiglu_hidden, "swiglu_multiple": c.swiglu_multiple}
    base.write_case(f, case, data, extra_ints=ints, extra_floats={"rope_base": c.rope_base})


if __name__ == "__main__":
    sys.exit(base.main(sys.argv[1:], cases=CASES, default_out=OUT, build=build, write=write,
                       description="GPT reference fixture of the architecture options (RMSNorm, RoPE, SwiGLU, "
                                   "QK-norm): forward, backward and AdamW steps in float32; see "
                                   "Tests/reference/README.md"))
