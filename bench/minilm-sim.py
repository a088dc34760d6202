#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""minilm-sim.py - output similarity of sentence encoders to the original.

Usage: minilm-sim.py [-j N] [--skip N] [--lines N] [--max-length N]
                     [--batch N] ORIG_DIR TEXT CAND_DIR...

Loads ORIG_DIR and each CAND_DIR with transformers' AutoModel in float32
(local files only) and embeds the same sentences with all of them: the
non-empty lines of TEXT after the first --skip (default 0), --lines of
them (default 256), tokenized by ORIG_DIR's tokenizer and truncated to
--max-length tokens (default: max_seq_length of ORIG_DIR's
sentence_bert_config.json, else 256).  A sentence embedding is the mean of
the last hidden states over the attention mask, as sentence-transformers
pools all-MiniLM-L6-v2.

Prints to stdout, per candidate, one line of key=value pairs:

  sentences=S tokens=T cos=C cos_min=M relerr=E dir=CAND_DIR

C and M: mean and least cosine similarity between a sentence's embeddings
by the candidate and by the original; E = ||H' - H|| / ||H||, Frobenius
norms over the last hidden states of all T unpadded token positions.

Exit status: 0 success, 1 usage error, 2 I/O error, 3 bad model or text,
77 if torch or transformers cannot be imported.
"""
import argparse
import json
import os
import sys


def fail(msg, status):
    print(f"minilm-sim: {msg}", file=sys.stderr)
    sys.exit(status)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def read_lines(path, skip, n):
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                if skip:
                    skip -= 1
                    continue
                out.append(line)
                if len(out) == n:
                    break
    except OSError as e:
        fail(f"{path}: {e.strerror}", 2)
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8 text: {e}", 3)
    return out


def default_max_length(model_dir):
    try:
        with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
            return int(json.load(f)["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 256


def batches(tk, lines, max_length, size):
    """Tokenized batches, sentences sorted by length to pad little."""
    n = [len(ids) for ids in
         tk(lines, truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(lines)), key=lambda i: n[i])
    return [tk([lines[i] for i in order[b:b + size]], padding=True,
               truncation=True, max_length=max_length, return_tensors="pt")
            for b in range(0, len(order), size)]


def run(torch, model_dir, data):
    """Per batch: (masked last hidden states [tokens, dim], embeddings)."""
    import transformers
    try:
        model = transformers.AutoModel.from_pretrained(
            model_dir, torch_dtype=torch.float32, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        fail(f"{model_dir}: {e}", 3)
    model.eval()
    out = []
    with torch.no_grad():
        for b in data:
            mask = b["attention_mask"]
            h = model(input_ids=b["input_ids"],
                      attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            emb = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.append((h[mask.bool()].double(), emb.double()))
    return out


def main():
    ap = Parser(
        usage="%(prog)s [OPTIONS] ORIG_DIR TEXT CAND_DIR...",
        description=__doc__.split("\n")[0])
    ap.add_argument("orig")
    ap.add_argument("text")
    ap.add_argument("cands", nargs="+", metavar="CAND_DIR")
    ap.add_argument("-j", "--threads", type=int, default=os.cpu_count(),
                    help="torch threads (default: online CPUs)")
    ap.add_argument("--skip", type=int, default=0,
                    help="leave out the first N non-empty lines")
    ap.add_argument("--lines", type=int, default=256,
                    help="sentences to embed (default 256)")
    ap.add_argument("--max-length", type=int, default=0,
                    help="tokens per sentence (default: the model's "
                    "max_seq_length, else 256)")
    ap.add_argument("--batch", type=int, default=32,
                    help="sentences per forward pass (default 32)")
    a = ap.parse_args()
    if a.threads < 1 or a.skip < 0 or a.lines < 1 or a.max_length < 0 or \
       a.max_length == 1 or a.batch < 1:
        ap.error("-j, --lines and --batch must be >= 1, --skip >= 0, "
                 "--max-length >= 2")
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"minilm-sim: needs torch and transformers: {e}",
              file=sys.stderr)
        return 77
    torch.set_num_threads(a.threads)

    lines = read_lines(a.text, a.skip, a.lines)
    if not lines:
        fail(f"{a.text}: no sentences after the first {a.skip}", 3)
    try:
        tk = transformers.AutoTokenizer.from_pretrained(
            a.orig, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        fail(f"{a.orig}: no usable tokenizer: {e}", 3)
    data = batches(tk, lines, a.max_length or default_max_length(a.orig),
                   a.batch)
    ref = run(torch, a.orig, data)
    href2 = sum(float((h * h).sum()) for h, _ in ref)
    ntok = sum(h.shape[0] for h, _ in ref)
    if href2 <= 0:
        fail(f"{a.orig}: the hidden states are all zero", 3)
    for d in a.cands:
        got = run(torch, d, data)
        err2, cos = 0.0, []
        for (h0, e0), (h1, e1) in zip(ref, got):
            if h1.shape != h0.shape:
                fail(f"{d}: hidden states of shape {tuple(h1.shape)}, "
                     f"the original's {tuple(h0.shape)}", 3)
            err2 += float(((h1 - h0) ** 2).sum())
            cos.append(torch.nn.functional.cosine_similarity(e1, e0, dim=1))
        cos = torch.cat(cos)
        print(f"sentences={len(lines)} tokens={ntok} "
              f"cos={float(cos.mean()):.8f} cos_min={float(cos.min()):.8f} "
              f"relerr={(err2 / href2) ** 0.5:.6e} dir={d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
