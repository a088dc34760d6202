#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""quality-plot.py - bits per weight against perplexity, one line per method.

Usage: quality-plot.py RESULTS.md OUT.png

RESULTS.md is the report bench/quality.sh writes: its "Model:" line names
the model, and each "# Evaluation on NAME (original perplexity P)" section
has an "All points" table (method, param, bits/weight, SQNR, perplexity;
older reports: one table after "Original perplexity: **P**").
One panel per evaluation set, perplexity increase over the original in
percent, so that a committed report can be plotted again.  Needs
matplotlib.
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EVAL_RE = re.compile(r"^# Evaluation on (\S+) \(original perplexity ([0-9.]+)\)")
# Reports from before there were several evaluation sets have one table.
OLD_RE = re.compile(r"^Original perplexity: \*\*([0-9.]+)\*\*")


def read_report(path):
    """Model name and [(eval name, original ppl, {method: [(bpw, ppl)]})]."""
    model, evals, table = "model", [], False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("Model: "):
                model = line[len("Model: "):].split(" (")[0]
            m, old = EVAL_RE.match(line), OLD_RE.match(line)
            if m:
                evals.append((m.group(1), float(m.group(2)), {}))
                table = False
            elif old and not evals:
                evals.append(("eval", float(old.group(1)), {}))
            elif line.startswith("## "):
                table = bool(evals) and line == "## All points"
            elif table and line.startswith("| ") and not line.startswith("| method"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                if len(cells) < 5 or cells[0] == "original":
                    continue
                evals[-1][2].setdefault(cells[0], []).append(
                    (float(cells[2]), float(cells[4])))
    if not evals or not any(e[2] for e in evals):
        raise ValueError("%s: no 'All points' table under an "
                         "'# Evaluation on' heading" % path)
    return model, evals


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    path, out = sys.argv[1], sys.argv[2]
    try:
        model, evals = read_report(path)
    except (OSError, ValueError) as e:
        sys.exit("quality-plot.py: %s" % e)

    fig, axes = plt.subplots(1, len(evals), figsize=(7 * len(evals), 4.5),
                             squeeze=False)
    for ax, (name, ppl0, lines) in zip(axes[0], evals):
        for method, pts in lines.items():
            pts.sort()
            style = "-o" if method.startswith("NWC") else "--."
            ax.plot([p[0] for p in pts],
                    [100 * (p[1] / ppl0 - 1) for p in pts], style,
                    label=method, linewidth=2 if method == "NWC" else 1)
        ax.axhline(0, color="black", linewidth=0.8, linestyle=":")
        ax.set_xlim(2, 8)
        ax.set_ylim(-2, 60)
        ax.set_xlabel("bits per weight (linear layers, real bytes)")
        ax.set_ylabel("perplexity increase over the original, %")
        ax.set_title("%s: %s (original %.3f)" % (model, name, ppl0))
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
