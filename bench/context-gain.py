#!/usr/bin/env python3
# context-gain.py - how much better than entropy-coded scalar quantization
# (ECSQ, per-row scales) a better probability model could do on a model's
# linear weights, from ideal (entropy) rates: a per-column scale context,
# and the energy of the previous chunk in the column as context.  Answers
# whether the neural codec's gain must come from modelling or from
# quantization (space filling).  Usage: context-gain.py FILE.safetensors
# (F32 weights; 2-D tensors except embeddings and lm_head).
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        out = []
        for k, v in hdr.items():
            if k == "__metadata__" or v["dtype"] != "F32" or len(v["shape"]) != 2:
                continue
            if "embed" in k or "lm_head" in k:
                continue
            b, e = v["data_offsets"]
            f.seek(8 + n + b)
            w = np.frombuffer(f.read(e - b), dtype=np.float32)
            out.append(w.reshape(v["shape"]).astype(np.float64))
        return out


def entropy_bits(q):
    _, c = np.unique(q, return_counts=True)
    p = c / c.sum()
    return -(p * np.log2(p)).sum() * q.size


def point(ws, delta, ctx_kind, nb=8):
    """(bits per weight, SQNR dB) of one step size; side costs included."""
    bits = err = energy = n = 0.0
    for w in ws:
        m, k = w.shape
        s = w.std(axis=1, ddof=1, keepdims=True)
        s[s == 0] = 1
        x = w / s
        q = np.round(x / delta)
        side = 16 * m                       # fp16 row scales
        if ctx_kind == "none":
            bits += entropy_bits(q)
        else:
            if ctx_kind == "column":
                score = np.broadcast_to(x.std(axis=0), q.shape)
                side += 3 * k               # a 3-bit class per column
            else:                           # previous chunk's rms, causal
                mm = (m // 16) * 16
                q, x = q[:mm], x[:mm]
                rms = np.sqrt((x.reshape(mm // 16, 16, k) ** 2).mean(axis=1))
                prev = np.vstack([np.full((1, k), np.median(rms)), rms[:-1]])
                score = np.repeat(prev, 16, axis=0)
            edges = np.quantile(score, np.linspace(0, 1, nb + 1)[1:-1])
            cls = np.digitize(score, edges)
            for c in range(nb):
                sel = q[cls == c]
                if sel.size:
                    bits += entropy_bits(sel)
            side += nb * 200                # a table per class, roughly
            w = w[: q.shape[0]]
            s = s[: q.shape[0]]
        bits += side
        err += ((w - q * delta * s) ** 2).sum()
        energy += (w ** 2).sum()
        n += w.size
    return bits / n, 10 * np.log10(energy / err)


def main():
    ws = load(sys.argv[1])
    for kind in ("none", "column", "prevchunk"):
        pts = [point(ws, d, kind) for d in np.geomspace(2, 2 ** -7, 30)]
        b = np.array([p[0] for p in pts])
        s = np.array([p[1] for p in pts])
        o = np.argsort(b)
        print("%-10s" % kind, " ".join("@%d bits: %.2f dB" % (r, np.interp(r, b[o], s[o]))
                                       for r in (3, 4, 5, 6)))


if __name__ == "__main__":
    main()
