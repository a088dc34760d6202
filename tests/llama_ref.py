#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Independent numpy (float64) model of transformers' LlamaForCausalLM.

Written from the transformers definitions (LlamaRMSNorm, rotate_half,
apply_rotary_pos_emb, repeat_kv, eager attention, LlamaMLP, Qwen2's q/k/v
biases, Qwen3's per-head q/k RMSNorm, Mistral's sliding window), not from
mkfs/llm/.  Used by the tests
of `nwc` and nwc_llama_*:

  llama_ref.py eval MODEL_DIR TOKENS.u16 [--max-tokens N] [--ctx N]
      print "perplexity nll count" of the token file.
  llama_ref.py check MODEL_DIR TOKENS.u16 [--max-tokens N] [--ctx N]
               [--ppl X] [--stats STATS.safetensors]
      compare `nwc eval`'s perplexity X (1e-4 relative) and the H matrices
      of a `nwc calib` file with this model; exit 1 on a mismatch.
  llama_ref.py golden > tests/golden_llama.h
      write the golden values of tests/test_llama.c (tiny generated models).

Token files hold little-endian uint16 ids; a sequence starts at every BOS
(id 1), and a sequence longer than the context is cut into windows, each
run from position 0.  Every token after the first of a window is scored.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

BOS = 1
DT = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
      "BF16": np.dtype("<u2")}


# ---- loading ------------------------------------------------------------

def read_safetensors(path):
    """{name: float64 array}, parsed by hand so only numpy is needed."""
    with open(path, "rb") as f:
        raw = f.read()
    n, = struct.unpack_from("<Q", raw, 0)
    hdr = json.loads(raw[8:8 + n])
    out, meta = {}, hdr.pop("__metadata__", {})
    for name, t in hdr.items():
        b, e = t["data_offsets"]
        a = np.frombuffer(raw, DT[t["dtype"]], (e - b) // DT[t["dtype"]].itemsize,
                          8 + n + b)
        if t["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a.astype(np.float64).reshape(t["shape"])
    return out, meta


def load_model(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    w = {}
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(x for x in os.listdir(d) if x.endswith(".safetensors"))
    for fn in files:
        w.update(read_safetensors(os.path.join(d, fn))[0])
    return Model(cfg, w)


class Model:
    def __init__(self, cfg, w):
        self.c = cfg
        self.w = w
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads") or self.nh
        self.hd = cfg.get("head_dim") or cfg["hidden_size"] // self.nh
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        self.layers = cfg["num_hidden_layers"]
        self.tied = cfg.get("tie_word_embeddings", False)
        self.qk_norm = cfg["model_type"] == "qwen3"
        self.window = (cfg.get("sliding_window")
                       if cfg["model_type"] == "mistral" else None)
        self.lm = w["model.embed_tokens.weight"] if self.tied else w["lm_head.weight"]

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        return y if b is None else y + b

    def rms(self, x, name):
        var = np.mean(x * x, axis=-1, keepdims=True)
        return self.w[name] * (x / np.sqrt(var + self.eps))

    def rope(self, n):
        inv = 1.0 / self.theta ** (np.arange(0, self.hd, 2) / self.hd)
        f = np.outer(np.arange(n), inv)
        emb = np.concatenate([f, f], axis=-1)
        return np.cos(emb), np.sin(emb)

    def forward(self, ids, taps=None):
        """Final normed hidden states of one window; taps[key] collects the
        input of each linear layer."""
        n = len(ids)
        tap = (lambda k, x: taps.setdefault(k, []).append(x)) if taps is not None \
            else (lambda k, x: None)
        x = self.w["model.embed_tokens.weight"][ids]
        cos, sin = self.rope(n)
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        masked = j > i
        if self.window:
            masked |= i - j >= self.window
        for l in range(self.layers):
            p = f"model.layers.{l}."
            h = self.rms(x, p + "input_layernorm.weight")
            tap((l, "attn"), h)
            q = self.linear(h, p + "self_attn.q_proj").reshape(n, self.nh, self.hd)
            k = self.linear(h, p + "self_attn.k_proj").reshape(n, self.nkv, self.hd)
            v = self.linear(h, p + "self_attn.v_proj").reshape(n, self.nkv, self.hd)
            if self.qk_norm:                # Qwen3Attention: per head
                q = self.rms(q, p + "self_attn.q_norm.weight")
                k = self.rms(k, p + "self_attn.k_norm.weight")
            q, k, v = (t.transpose(1, 0, 2) for t in (q, k, v))
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = np.repeat(k, self.nh // self.nkv, axis=0)   # repeat_kv
            v = np.repeat(v, self.nh // self.nkv, axis=0)
            s = q @ k.transpose(0, 2, 1) / math.sqrt(self.hd)
            s[:, masked] = -np.inf          # softmax, in place for speed
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            o = (s @ v).transpose(1, 0, 2).reshape(n, self.nh * self.hd)
            tap((l, "o"), o)
            x = x + self.linear(o, p + "self_attn.o_proj")
            h = self.rms(x, p + "post_attention_layernorm.weight")
            tap((l, "mlp"), h)
            g = self.linear(h, p + "mlp.gate_proj")
            a = g / (1 + np.exp(-g)) * self.linear(h, p + "mlp.up_proj")
            tap((l, "down"), a)
            x = x + self.linear(a, p + "mlp.down_proj")
        x = self.rms(x, "model.norm.weight")
        tap("lm_head", x)
        return x

    def nll(self, ids, taps=None):
        x = self.forward(ids, taps)
        logits = x[:-1] @ self.lm.T
        m = logits.max(axis=-1)
        lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=-1))
        return float((lse - logits[np.arange(len(ids) - 1), ids[1:]]).sum())

    def inputs(self):
        """(tap key, weight names) for every linear input, in calib order."""
        out = []
        for l in range(self.layers):
            p = f"model.layers.{l}."
            out += [((l, "attn"), [p + f"self_attn.{x}_proj.weight" for x in "qkv"]),
                    ((l, "o"), [p + "self_attn.o_proj.weight"]),
                    ((l, "mlp"), [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"]),
                    ((l, "down"), [p + "mlp.down_proj.weight"])]
        if not self.tied:
            out.append(("lm_head", ["lm_head.weight"]))
        return out


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def windows(tok, ctx):
    starts = [0] + [i for i in range(1, len(tok)) if tok[i] == BOS]
    for s, e in zip(starts, starts[1:] + [len(tok)]):
        for o in range(s, e, ctx):
            yield tok[o:min(o + ctx, e)]


def run(m, tok, ctx, calib=False):
    """(nll, count, {tap key: H}) over the windows of @tok."""
    nll, count, taps = 0.0, 0, {} if calib else None
    for w in windows(tok, ctx):
        nll += m.nll(w, taps)
        count += len(w) - 1
    hs = {}
    if calib:
        for key, xs in taps.items():
            x = np.concatenate(xs)
            hs[key] = x.T @ x / len(tok)
    return nll, count, hs


def default_ctx(m):
    return min(m.c.get("max_position_embeddings", 2048), 2048)


# ---- command line -------------------------------------------------------

def read_tokens(path, max_tokens):
    tok = np.fromfile(path, dtype="<u2").astype(np.int64)
    return tok[:max_tokens] if max_tokens else tok


def cmd_eval(a):
    m = load_model(a.model)
    tok = read_tokens(a.tokens, a.max_tokens)
    nll, count, _ = run(m, tok, a.ctx or default_ctx(m))
    print(f"{math.exp(nll / count):.9f} {nll / count:.9f} {count}")


def check_stats(m, hs, path, ntok):
    got, meta = read_safetensors(path)
    bad = []
    if meta.get("tokens") != str(ntok):
        bad.append(f"metadata tokens {meta.get('tokens')!r}, expected {ntok}")
    want = {}
    for key, names in m.inputs():
        for n in names:
            want[n + ".H"] = hs[key]
    if sorted(got) != sorted(want):
        bad.append(f"tensors {sorted(set(got) ^ set(want))} missing or extra")
    for name in sorted(set(got) & set(want)):
        g, r = got[name], want[name]
        if g.shape != r.shape:
            bad.append(f"{name}: shape {g.shape}, expected {r.shape}")
            continue
        if not np.array_equal(g, g.T):
            bad.append(f"{name}: not symmetric")
        if (np.diag(g) < 0).any():
            bad.append(f"{name}: negative diagonal")
        err = np.abs(g - r).max() / np.abs(r).max()
        if not err <= 1e-5:
            bad.append(f"{name}: max error {err:.3g} relative to max |H|")
    return bad, len(got)


def cmd_check(a):
    m = load_model(a.model)
    tok = read_tokens(a.tokens, a.max_tokens)
    nll, count, hs = run(m, tok, a.ctx or default_ctx(m), calib=bool(a.stats))
    ppl = math.exp(nll / count)
    bad = []
    if a.ppl is not None and not abs(a.ppl - ppl) <= 1e-4 * ppl:
        bad.append(f"perplexity {a.ppl}, reference {ppl:.9f}")
    msg = f"reference perplexity {ppl:.6f} over {count} predicted tokens"
    if a.stats:
        b, n = check_stats(m, hs, a.stats, len(tok))
        bad += b
        msg += f"; {n} H tensors match"
    for b in bad:
        print("llama_ref: " + b, file=sys.stderr)
    if not bad:
        print("llama_ref: " + msg)
    return 1 if bad else 0


# ---- golden values for tests/test_llama.c --------------------------------

MASK = (1 << 64) - 1


class Rng:
    """splitmix64, as t_rand() in tests/t.h."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        """Uniform in [-1, 1) on a 2^-23 grid: exact in float32."""
        return (self.next() >> 40) * 2.0 ** -23 - 1.0


# name, hidden, inter, layers, heads, kv, head_dim (0: default), vocab,
# model_type, tied, bias (llama attention_bias), window, dtype, seed.
CASES = [
    ("gqa_tied", 8, 12, 2, 2, 1, 0, 32, "llama", True, False, 0, "F32", 11),
    ("qwen2_bias", 8, 10, 2, 4, 2, 6, 24, "qwen2", False, False, 0, "BF16", 12),
    ("attn_bias", 8, 12, 1, 2, 2, 0, 20, "llama", False, True, 0, "F32", 13),
    ("mistral_window", 8, 12, 2, 2, 1, 0, 20, "mistral", True, False, 3, "F32",
     14),
    ("qwen3_qknorm", 8, 12, 2, 4, 2, 6, 24, "qwen3", True, False, 0, "BF16", 15),
]
CALIB_CASES = ("gqa_tied", "qwen2_bias", "qwen3_qknorm")   # H stored
NTOK = 40
BOS_AT = (0, 17, 30)
CTX = 6                 # the short context of the windowed evaluation
MAX_TOKENS = 25


def tensor_list(c):
    """(name, shape, scale, offset) in the order the generator fills them;
    test_llama.c builds the same list."""
    name, h, inter, layers, nh, nkv, hd, vocab, mt, tied, bias, win, dt, seed = c
    hd = hd or h // nh
    qkv_bias = mt == "qwen2" or bias
    t = [("model.embed_tokens.weight", (vocab, h), 1.0, 0.0)]
    for l in range(layers):
        p = f"model.layers.{l}."
        t.append((p + "input_layernorm.weight", (h,), 0.25, 1.0))
        for x, n in (("q", nh), ("k", nkv), ("v", nkv)):
            t.append((p + f"self_attn.{x}_proj.weight", (n * hd, h), 0.5, 0.0))
            if qkv_bias:
                t.append((p + f"self_attn.{x}_proj.bias", (n * hd,), 0.25, 0.0))
        if mt == "qwen3":
            t.append((p + "self_attn.q_norm.weight", (hd,), 0.25, 1.0))
            t.append((p + "self_attn.k_norm.weight", (hd,), 0.25, 1.0))
        t.append((p + "self_attn.o_proj.weight", (h, nh * hd), 0.5, 0.0))
        if bias:
            t.append((p + "self_attn.o_proj.bias", (h,), 0.25, 0.0))
        t.append((p + "post_attention_layernorm.weight", (h,), 0.25, 1.0))
        t.append((p + "mlp.gate_proj.weight", (inter, h), 0.5, 0.0))
        t.append((p + "mlp.up_proj.weight", (inter, h), 0.5, 0.0))
        t.append((p + "mlp.down_proj.weight", (h, inter), 0.5, 0.0))
    t.append(("model.norm.weight", (h,), 0.25, 1.0))
    if not tied:
        t.append(("lm_head.weight", (vocab, h), 1.0, 0.0))
    return t


def round_bf16(a):
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def case_config(c):
    name, h, inter, layers, nh, nkv, hd, vocab, mt, tied, bias, win, dt, seed = c
    cfg = {"model_type": mt, "hidden_size": h, "intermediate_size": inter,
           "num_hidden_layers": layers, "num_attention_heads": nh,
           "num_key_value_heads": nkv, "vocab_size": vocab,
           "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
           "rope_theta": 500.0 if mt == "qwen2" else 10000.0,
           "hidden_act": "silu", "tie_word_embeddings": tied,
           "rope_scaling": None}
    if hd:
        cfg["head_dim"] = hd
    if mt in ("llama", "qwen3"):
        cfg["attention_bias"] = bias
    if mt == "mistral":
        cfg["sliding_window"] = win
    return cfg


def case_model(c):
    rng = Rng(c[-1])
    w = {}
    for name, shape, scale, offset in tensor_list(c):
        v = np.array([offset + scale * rng.uniform()
                      for _ in range(int(np.prod(shape)))]).astype(np.float32)
        if c[-2] == "BF16":
            v = round_bf16(v)
        w[name] = v.astype(np.float64).reshape(shape)
    return Model(case_config(c), w)


def case_tokens(c):
    rng = Rng(c[-1] + 1000)
    vocab = c[7]
    tok = [2 + rng.next() % (vocab - 2) for _ in range(NTOK)]
    for i in BOS_AT:
        tok[i] = BOS
    return np.array(tok, dtype=np.int64)


def carray(name, ctype, vals, fmt, per_line=4):
    body = ",\n".join("\t" + ", ".join(fmt(v) for v in vals[i:i + per_line])
                      for i in range(0, len(vals), per_line))
    return f"static const {ctype} {name}[{len(vals)}] = {{\n{body},\n}};"


def cmd_golden(_):
    f64 = lambda v: f"{float(v):.17g}"
    f32 = lambda v: f"{float(np.float32(v)):.9g}f"
    print("/* SPDX-License-Identifier: MIT */")
    print("/* tests/golden_llama.h - generated by: "
          "python3 tests/llama_ref.py golden > tests/golden_llama.h */")
    print(f"\n#define GOLDEN_NTOK {NTOK}\n#define GOLDEN_CTX {CTX}")
    print(f"#define GOLDEN_MAX_TOKENS {MAX_TOKENS}")
    cases = []
    for c in CASES:
        name = c[0]
        m = case_model(c)
        tok = case_tokens(c)
        full = run(m, tok, default_ctx(m), calib=True)
        short = run(m, tok, CTX)
        limited = run(m, tok[:MAX_TOKENS], default_ctx(m))
        hs = [full[2][key] for key, _ in m.inputs()] \
            if name in CALIB_CASES else []
        print(f"\n/* {name}: {json.dumps(case_config(c))} */")
        print(carray(f"golden_{name}_tok", "uint32_t", list(tok), str, 10))
        if hs:
            print(carray(f"golden_{name}_h", "float",
                         [x for h in hs for x in h.ravel()], f32))
        cases.append((c, full, short, limited, sum(h.size for h in hs)))
    print("\nstatic const struct golden_case golden_cases[] = {")
    for c, full, short, limited, nh in cases:
        name, h, inter, layers, nh_, nkv, hd, vocab, mt, tied, bias, win, dt, seed = c
        cfg = json.dumps(case_config(c)).replace('"', '\\"')
        print(f"\t{{\n\t\t.name = \"{name}\",\n\t\t.config = \"{cfg}\",")
        print(f"\t\t.hidden = {h}, .inter = {inter}, .layers = {layers},")
        print(f"\t\t.heads = {nh_}, .kv_heads = {nkv}, .head_dim = {hd or h // nh_},"
              f" .vocab = {vocab},")
        print(f"\t\t.tied = {str(tied).lower()}, "
              f".qkv_bias = {str(mt == 'qwen2' or bias).lower()}, "
              f".o_bias = {str(bias).lower()}, .bf16 = {str(dt == 'BF16').lower()},")
        print(f"\t\t.qk_norm = {str(mt == 'qwen3').lower()},")
        print(f"\t\t.seed = {seed},\n\t\t.tok = golden_{name}_tok,")
        for tag, r in (("full", full), ("ctx", short), ("max", limited)):
            print(f"\t\t.nll_{tag} = {f64(r[0])}, .count_{tag} = {r[1]},")
        if nh:
            print(f"\t\t.h = golden_{name}_h, .h_len = {nh},")
        print("\t},")
    print("};")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("eval", "check"):
        p = sub.add_parser(name)
        p.add_argument("model")
        p.add_argument("tokens")
        p.add_argument("--max-tokens", type=int, default=0)
        p.add_argument("--ctx", type=int, default=0)
        if name == "check":
            p.add_argument("--ppl", type=float)
            p.add_argument("--stats")
    sub.add_parser("golden")
    a = ap.parse_args()
    return {"eval": cmd_eval, "check": cmd_check, "golden": cmd_golden}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
