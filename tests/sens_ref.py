#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reference sensitivities for `nwc calib --sensitivity`, from PyTorch.

  sens_ref.py case NAME DIR
      write case NAME of tests/llama_ref.py (its tiny generated models:
      GQA, biases, q/k norms, a sliding window, tied heads) as a model
      directory DIR (F32 weights) and its tokens as DIR.u16.
  sens_ref.py check MODEL_DIR TOKENS.u16 STATS.safetensors [--ctx N]
                    [--tol X]
      run the model in float64 with autograd on the token file, cut as nwc
      cuts it (tests/llama_ref.py's windows), backpropagate each window's
      summed negative log-likelihood, and compare each linear weight's
      mean square output gradient per row (sum over all tokens / their
      number) with the "<weight>.G" tensor of STATS.  Exits 1 when one is
      missing, extra, or differs by more than --tol (relative, 2-norm).

The model is written here from transformers' definitions, as
tests/llama_ref.py's is, in torch for the gradients; only the file reading,
configs and windows come from tests/llama_ref.py.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402


class TorchModel:
    def __init__(self, m):
        self.m = m
        # weights that need gradients, so that the outputs keep theirs
        self.w = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                  for k, v in m.w.items()}
        self.lm = (self.w["model.embed_tokens.weight"] if m.tied
                   else self.w["lm_head.weight"])
        self.outs = {}          # weight name: output tensors of the window

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        y = y if b is None else y + b
        y.retain_grad()
        self.outs.setdefault(name + ".weight", []).append(y)
        return y

    def rms(self, x, name):
        var = (x * x).mean(dim=-1, keepdim=True)
        return self.w[name] * (x / torch.sqrt(var + self.m.eps))

    def nll(self, ids):
        m, n = self.m, len(ids)
        x = self.w["model.embed_tokens.weight"][torch.tensor(ids)]
        inv = 1.0 / m.theta ** (torch.arange(0, m.hd, 2, dtype=torch.float64) / m.hd)
        f = torch.outer(torch.arange(n, dtype=torch.float64), inv)
        cos, sin = torch.cat([f, f], -1).cos(), torch.cat([f, f], -1).sin()
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        masked = j > i
        if m.window:
            masked |= i - j >= m.window

        def rot(t):
            h = t.shape[-1] // 2
            return torch.cat([-t[..., h:], t[..., :h]], -1)

        for layer in range(m.layers):
            p = f"model.layers.{layer}."
            h = self.rms(x, p + "input_layernorm.weight")
            q = self.linear(h, p + "self_attn.q_proj").reshape(n, m.nh, m.hd)
            k = self.linear(h, p + "self_attn.k_proj").reshape(n, m.nkv, m.hd)
            v = self.linear(h, p + "self_attn.v_proj").reshape(n, m.nkv, m.hd)
            if m.qk_norm:
                q = self.rms(q, p + "self_attn.q_norm.weight")
                k = self.rms(k, p + "self_attn.k_norm.weight")
            q, k, v = (t.transpose(0, 1) for t in (q, k, v))
            q = q * cos + rot(q) * sin
            k = k * cos + rot(k) * sin
            k = k.repeat_interleave(m.nh // m.nkv, dim=0)
            v = v.repeat_interleave(m.nh // m.nkv, dim=0)
            s = q @ k.transpose(1, 2) / math.sqrt(m.hd)
            s = s.masked_fill(masked, float("-inf")).softmax(-1)
            o = (s @ v).transpose(0, 1).reshape(n, m.nh * m.hd)
            x = x + self.linear(o, p + "self_attn.o_proj")
            h = self.rms(x, p + "post_attention_layernorm.weight")
            g = self.linear(h, p + "mlp.gate_proj")
            a = torch.nn.functional.silu(g) * self.linear(h, p + "mlp.up_proj")
            x = x + self.linear(a, p + "mlp.down_proj")
        x = self.rms(x, "model.norm.weight")
        logits = x[:-1] @ self.lm.T
        return torch.nn.functional.cross_entropy(
            logits, torch.tensor(ids[1:]), reduction="sum")


def cmd_case(a):
    c = {c[0]: c for c in llama_ref.CASES}[a.name]
    m = llama_ref.case_model(c)
    os.makedirs(a.dir)
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(llama_ref.case_config(c), f)
    save_file({k: v.astype(np.float32) for k, v in m.w.items()},
              os.path.join(a.dir, "model.safetensors"))
    llama_ref.case_tokens(c).astype("<u2").tofile(a.dir + ".u16")
    return 0


def cmd_check(a):
    m = llama_ref.load_model(a.model)
    tok = np.fromfile(a.tokens, dtype="<u2").astype(np.int64)
    ctx = a.ctx or llama_ref.default_ctx(m)
    tm = TorchModel(m)
    acc = {}
    for w in llama_ref.windows(list(tok), ctx):
        if len(w) < 2:
            continue
        tm.outs = {}
        tm.nll(w).backward()
        for name, ys in tm.outs.items():
            for y in ys:
                g = y.grad.reshape(-1, y.shape[-1])
                acc[name] = acc.get(name, 0) + (g * g).sum(0)
    st = load_file(a.stats)
    worst, bad = 0.0, 0
    for name, v in sorted(acc.items()):
        ref = (v / len(tok)).numpy()
        got = st.get(name + ".G")
        if got is None:
            print(f"{name}.G: missing from {a.stats}")
            bad += 1
            continue
        err = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-300))
        worst = max(worst, err)
        if got.shape != ref.shape or err > a.tol:
            print(f"{name}.G: relative error {err:.3g} > {a.tol}")
            bad += 1
    for k in st:
        if k.endswith(".G") and k[:-2] not in acc:
            print(f"{k}: not a linear weight of the model")
            bad += 1
    print(f"{len(acc)} weights, worst relative error {worst:.3g}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("case")
    p.add_argument("name")
    p.add_argument("dir")
    p = sub.add_parser("check")
    p.add_argument("model")
    p.add_argument("tokens")
    p.add_argument("stats")
    p.add_argument("--ctx", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    return {"case": cmd_case, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
