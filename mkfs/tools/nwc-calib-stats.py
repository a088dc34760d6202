#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Calibration statistics of any transformers model, in `nwc calib`'s format.

Usage: nwc-calib-stats.py [-j N] [--max-tokens N] [--ctx N] [--device DEV]
                          MODEL_DIR {TOKENS.u16 | --text FILE}
                          -o STATS.safetensors

For architectures that `nwc calib` does not run: loads MODEL_DIR with
transformers in float32 (AutoModelForCausalLM when config.json names a
causal LM architecture or none, else AutoModel, e.g. for a BERT encoder),
hooks every nn.Linear (and transformers' Conv1D), runs the tokens and
writes, for
each layer, H = (1/T) sum_t x_t x_t^T over the T token positions of its
input x, as an F32 tensor "<weight tensor name>.H" of shape [n_in, n_in],
with the metadata {"tokens": "T"}.  A linear layer whose weight is the
input embedding (a tied lm_head) is left out, as `nwc calib` does.

TOKENS.u16 holds little-endian uint16 ids; a sequence starts at every BOS
(id 1) and a sequence longer than the context (default: the model's
max_position_embeddings, at most 2048) is cut into windows, each run alone.
--text FILE instead tokenizes a UTF-8 text file with the model's own
tokenizer (AutoTokenizer from MODEL_DIR, with its special tokens, such as
BOS or BERT's [CLS] and [SEP]): one sequence per non-empty line, truncated
to the context.  Exactly one of TOKENS.u16 and --text is given.
--max-tokens N keeps the first N tokens of either, the last sequence cut.
Layers called in a row on the same input (q, k, v; gate, up) share one sum.
Sums are kept in float64.  Needs numpy, torch and transformers.

Exit status: 0 success, 1 usage error, 2 I/O error, 3 bad model or tokens.
"""
import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np

BOS = 1
CTX_MAX = 2048


def fail(msg, status):
    print(f"nwc-calib-stats: {msg}", file=sys.stderr)
    sys.exit(status)


def read_tokens(path, max_tokens):
    try:
        raw = open(path, "rb").read()
    except OSError as e:
        fail(f"{path}: {e.strerror}", 2)
    if len(raw) % 2:
        fail(f"{path}: odd size: not a file of 16-bit tokens", 3)
    tok = np.frombuffer(raw, dtype="<u2").astype(np.int64)
    return tok[:max_tokens] if max_tokens else tok


def read_text(path, model_dir, ctx, max_tokens):
    """One id array per non-empty line of @path, by the model's tokenizer."""
    import transformers
    try:
        tk = transformers.AutoTokenizer.from_pretrained(model_dir,
                                                        local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        fail(f"{model_dir}: no usable tokenizer: {e}", 3)
    seqs, n = [], 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                ids = tk(line, truncation=True, max_length=ctx)["input_ids"]
                if max_tokens:
                    ids = ids[:max_tokens - n]
                if ids:
                    seqs.append(np.array(ids, dtype=np.int64))
                    n += len(ids)
                if max_tokens and n >= max_tokens:
                    break
    except OSError as e:
        fail(f"{path}: {e.strerror}", 2)
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8 text: {e}", 3)
    return seqs


def windows(tok, ctx):
    """Sequences start at every BOS; long ones are cut into ctx windows."""
    starts = [0] + [int(i) for i in np.flatnonzero(tok[1:] == BOS) + 1]
    for s, e in zip(starts, starts[1:] + [len(tok)]):
        for o in range(s, e, ctx):
            yield tok[o:min(o + ctx, e)]


def checkpoint_names(model_dir):
    """Tensor names stored in the directory's *.safetensors headers."""
    names = set()
    for fn in os.listdir(model_dir):
        if not fn.endswith(".safetensors"):
            continue
        with open(os.path.join(model_dir, fn), "rb") as f:
            n, = struct.unpack("<Q", f.read(8))
            names.update(k for k in json.loads(f.read(n)) if k != "__metadata__")
    return names


def weight_name(module_name, prefix, stored):
    """The checkpoint name of a module's weight: module names of AutoModel
    lack the CausalLM's prefix ("model."), and the other way round."""
    name = module_name + ".weight"
    for cand in (name, f"{prefix}.{name}",
                 name[len(prefix) + 1:] if name.startswith(prefix + ".") else None):
        if cand in stored:
            return cand
    return name


def load_model(model_dir, device):
    import torch
    import transformers
    kw = {"torch_dtype": torch.float32, "local_files_only": True}
    cfg = transformers.AutoConfig.from_pretrained(model_dir,
                                                  local_files_only=True)
    # An encoder such as BertModel has a CausalLM class too, but one with a
    # freshly initialised head the checkpoint does not hold.
    archs = getattr(cfg, "architectures", None) or []
    causal = not archs or any(a.endswith(("ForCausalLM", "LMHeadModel"))
                              for a in archs)
    model = None
    if causal:
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                model_dir, **kw)
        except (ValueError, KeyError):
            pass
    if model is None:
        model = transformers.AutoModel.from_pretrained(model_dir, **kw)
    return model.to(device).eval()


def collect(model, seqs, device):
    """{accumulator name: float64 X^T X sum}, {module name: accumulator}."""
    import torch
    from torch import nn
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:
        Conv1D = ()
    emb = model.get_input_embeddings()
    tied = emb.weight if emb is not None else None
    sums, owner, last = {}, {}, [None, None]

    def hook(name):
        def add(mod, inp, out):
            x = inp[0]
            if name not in owner:
                # first window: a layer called right after another on the
                # very same tensor shares that layer's sum
                owner[name] = last[1] if x is last[0] else name
            acc = owner[name]
            if x is last[0] and last[1] == acc:
                return
            last[0], last[1] = x, acc
            x = x.detach().reshape(-1, x.shape[-1]).double()
            s = x.T @ x
            sums[acc] = s if acc not in sums else sums[acc] + s
        return add

    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) or (Conv1D and isinstance(mod, Conv1D)):
            if tied is not None and mod.weight is tied:
                continue
            handles.append(mod.register_forward_hook(hook(name)))
    if not handles:
        fail("the model has no linear layers", 3)
    with torch.no_grad():
        for w in seqs:
            last[0] = last[1] = None
            ids = torch.tensor(w, dtype=torch.long, device=device)[None]
            model(input_ids=ids, use_cache=False)
    for h in handles:
        h.remove()
    return sums, owner


def encode(tensors, metadata):
    """safetensors bytes of {name: float32 array}, header padded to 8."""
    hdr, off = {"__metadata__": metadata}, 0
    for name, a in tensors.items():
        hdr[name] = {"dtype": "F32", "shape": list(a.shape),
                     "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return b"".join([struct.pack("<Q", len(h)), h] +
                    [a.astype("<f4").tobytes() for a in tensors.values()])


def write_atomic(path, data):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(
        usage="%(prog)s [OPTIONS] MODEL_DIR {TOKENS.u16 | --text FILE} "
        "-o STATS.safetensors",
        description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("tokens", nargs="?",
                    help="little-endian uint16 token ids, BOS id 1")
    ap.add_argument("--text", metavar="FILE",
                    help="tokenize FILE, one sequence per non-empty line, "
                    "instead of TOKENS.u16")
    ap.add_argument("-o", "--output", required=True,
                    help="the statistics file to write")
    ap.add_argument("-j", "--threads", type=int, default=os.cpu_count(),
                    help="torch threads (default: online CPUs)")
    ap.add_argument("--max-tokens", type=int, default=0,
                    help="use only the first N tokens")
    ap.add_argument("--ctx", type=int, default=0,
                    help="window length (default: max_position_embeddings, "
                    f"at most {CTX_MAX})")
    ap.add_argument("--device", default="cpu", help="torch device (cpu)")
    a = ap.parse_args()
    if a.threads < 1 or a.max_tokens < 0 or a.ctx == 1 or a.ctx < 0:
        ap.error("-j must be >= 1, --max-tokens >= 0 and --ctx >= 2")
    if (a.tokens is None) == (a.text is None):
        ap.error("give exactly one of TOKENS.u16 and --text FILE")

    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        fail(f"needs torch and transformers: {e}", 2)
    torch.set_num_threads(a.threads)
    if a.tokens is not None:
        tok = read_tokens(a.tokens, a.max_tokens)
        if not len(tok):
            fail(f"{a.tokens}: no tokens", 3)
    try:
        model = load_model(a.model_dir, a.device)
    except (OSError, ValueError, KeyError) as e:
        fail(f"{a.model_dir}: {e}", 3)
    cfg = model.config
    ctx = a.ctx or min(getattr(cfg, "max_position_embeddings", None) or
                       getattr(cfg, "n_positions", None) or CTX_MAX, CTX_MAX)
    if a.text is not None:
        seqs = read_text(a.text, a.model_dir, ctx, a.max_tokens)
        if not seqs:
            fail(f"{a.text}: no tokens", 3)
        T = sum(len(s) for s in seqs)
    else:
        vocab = getattr(cfg, "vocab_size", None)
        if vocab is not None and tok.max() >= vocab:
            i = int(np.argmax(tok >= vocab))
            fail(f"{a.tokens}: token {tok[i]} at index {i} is not below "
                 f"vocab_size {vocab}", 3)
        seqs, T = windows(tok, ctx), len(tok)

    sums, owner = collect(model, seqs, a.device)
    stored = checkpoint_names(a.model_dir)
    prefix = getattr(model, "base_model_prefix", "") or "model"
    out = {}
    for name, acc in owner.items():
        h = (sums[acc] / T).cpu().numpy()
        out[weight_name(name, prefix, stored) + ".H"] = \
            ((h + h.T) / 2).astype(np.float32)
    try:
        write_atomic(a.output, encode(out, {"tokens": str(T)}))
    except OSError as e:
        fail(f"{a.output}: {e.strerror}", 2)
    print(f"{a.output}: H of {len(out)} weights from {T} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
