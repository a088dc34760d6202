#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""quality-plot.py - bits per weight against perplexity, one line per method.

Usage: quality-plot.py POINTS.tsv ORIGINAL_PPL OUT.png

POINTS.tsv is what bench/quality.sh writes: a header line, then method,
param, bpw, sqnr_db, ppl separated by tabs.  Needs matplotlib.
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2])
    path, ppl0, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    lines = {}
    with open(path) as f:
        next(f)
        for row in f:
            method, _, bpw, _, ppl = row.rstrip("\n").split("\t")
            lines.setdefault(method, []).append((float(bpw), float(ppl)))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, pts in lines.items():
        pts.sort()
        style = "-o" if method.startswith("NWC") else "--."
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                label=method, linewidth=2 if method == "NWC" else 1)
    ax.axhline(ppl0, color="black", linewidth=0.8, linestyle=":",
               label="original (%.3f)" % ppl0)
    ax.set_xlim(2, 8)
    ax.set_ylim(ppl0 * 0.98, ppl0 * 1.6)
    ax.set_xlabel("bits per weight (linear layers, real bytes)")
    ax.set_ylabel("perplexity (tinystories eval)")
    ax.set_title("stories260K: perplexity against bits per weight")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
