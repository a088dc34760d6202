#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""framework.py - check that unmodified frameworks read a mounted image as
they read the model directory it was made from.

usage: framework.py SRC MOUNTED [--max-rel-logit-err E] [--min-top1 F]
                    [--tokens FILE] [--batch N] [--seq-len N] [--threads N]

SRC is a model directory (config.json, *.safetensors) and MOUNTED the same
model served by nwcfs.  Checks, in order:
  - tensors: for every *.safetensors file under SRC, the safetensors
    library's mmap loader, safe_open() with framework "pt" and "numpy",
    finds in MOUNTED the same metadata and tensor names, dtypes and shapes,
    and the two frameworks give the same bytes for every tensor of MOUNTED
    (numpy skips dtypes it lacks, such as BF16);
  - with --max-rel-logit-err 0 (the default: a lossless image), every
    tensor is also bit-identical to SRC's;
  - logits: transformers AutoModelForCausalLM.from_pretrained() loads SRC
    and MOUNTED in float32 and runs the same batch of token sequences; the
    logits must be bit-identical (default), or, for a lossy image, have a
    relative error ||L1 - L0|| / ||L0|| (Frobenius norms over the batch) at
    most E, and, with --min-top1, agree on the top-1 token at a rate of at
    least F.  The maximum absolute difference, the relative error and the
    top-1 agreement rate are always printed.
Sequences: --batch windows of --seq-len tokens from FILE (uint16
little-endian token ids), each starting at a BOS token (the model config's
bos_token_id), spread evenly over the file; without --tokens, ids drawn with
a fixed seed.
Exit status: 0 all checks pass, 1 a check failed (described on stderr),
2 usage, 77 numpy, torch, safetensors or transformers cannot be imported.
"""

import argparse
import importlib
import json
import os
import struct
import sys

STACK = ("numpy", "torch", "safetensors", "transformers")


class Mismatch(Exception):
    pass


def import_stack():
    """Import the framework stack, or exit 77 naming the module that failed."""
    # Everything is local: never ask a hub for files or versions.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    mods = {}
    for name in STACK:
        try:
            mods[name] = importlib.import_module(name)
        except Exception as e:	# a broken install raises more than ImportError
            print("framework: cannot import %s with %s: %s: %s"
                  % (name, sys.executable, type(e).__name__, e),
                  file=sys.stderr)
            sys.exit(77)
    return mods


def st_header(path):
    """The JSON header of a .safetensors file: {name: {dtype, shape, ...}}."""
    with open(path, "rb") as f:
        n, = struct.unpack("<Q", f.read(8))
        if n > 100 << 20:
            raise Mismatch("%s: header length %d is not plausible" % (path, n))
        return json.loads(f.read(n))


def st_files(src):
    out = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".safetensors"):
                out.append(os.path.relpath(os.path.join(root, name), src))
    if not out:
        raise Mismatch("%s: no .safetensors file" % src)
    return out


def pt_bytes(torch, t):
    """A uint8 view of a tensor's bytes, for bitwise comparison."""
    t = t.contiguous().reshape(-1)
    if not t.numel():
        return torch.empty(0, dtype=torch.uint8)
    return t.view(torch.uint8)


def np_bytes(torch, np, a):
    a = np.ascontiguousarray(a).reshape(-1)
    return torch.from_numpy(a.view(np.uint8).copy())


def rel_err(torch, want, got):
    want = want.double()
    d = (got.double() - want).norm().item()
    n = want.norm().item()
    return d / n if n else (0.0 if d == 0 else float("inf"))


def check_tensors(m, src, mnt, exact):
    """Check every tensor of every .safetensors file; return a summary."""
    np, torch = m["numpy"], m["torch"]
    safe_open = m["safetensors"].safe_open
    nfiles = ntensors = nsame = nskip = 0
    worst = (0.0, None)
    for rel in st_files(src):
        s, d = os.path.join(src, rel), os.path.join(mnt, rel)
        hdr = st_header(s)
        with safe_open(s, framework="pt") as fs, \
                safe_open(d, framework="pt") as fd, \
                safe_open(d, framework="numpy") as fn:
            if fs.metadata() != fd.metadata():
                raise Mismatch("%s: metadata differ" % rel)
            if sorted(fs.keys()) != sorted(fd.keys()) or \
                    sorted(fd.keys()) != sorted(fn.keys()):
                raise Mismatch("%s: tensor names differ" % rel)
            for name in sorted(fs.keys()):
                what = "%s: tensor %s" % (rel, name)
                want, got = fs.get_tensor(name), fd.get_tensor(name)
                if want.dtype != got.dtype or want.shape != got.shape:
                    raise Mismatch("%s: %s %s from the mount, %s %s from "
                                   "the source" % (what, got.dtype,
                                   tuple(got.shape), want.dtype,
                                   tuple(want.shape)))
                gb = pt_bytes(torch, got)
                try:
                    a = fn.get_tensor(name)
                except Exception as e:
                    if hdr[name]["dtype"] in ("F16", "F32", "F64", "I8",
                                              "I16", "I32", "I64", "U8",
                                              "U16", "U32", "U64", "BOOL"):
                        raise Mismatch("%s: framework numpy: %s" % (what, e))
                    nskip += 1	# a dtype numpy has no type for
                else:
                    if tuple(a.shape) != tuple(got.shape) or \
                            not torch.equal(np_bytes(torch, np, a), gb):
                        raise Mismatch("%s: framework numpy and pt read "
                                       "different values" % what)
                if torch.equal(pt_bytes(torch, want), gb):
                    nsame += 1
                elif exact:
                    raise Mismatch("%s differs from the source" % what)
                elif want.is_floating_point():
                    e = rel_err(torch, want, got)
                    if not e <= worst[0]:
                        worst = (e, name)
                ntensors += 1
        nfiles += 1
    if not ntensors:
        raise Mismatch("%s: no tensors" % src)
    msg = ("%d file%s, %d tensors: same names, dtypes and shapes; pt and "
           "numpy agree on the mount%s; %d of %d bit-identical to the source"
           % (nfiles, "s"[:nfiles != 1], ntensors,
              " (%d skipped by numpy)" % nskip if nskip else "", nsame,
              ntensors))
    if worst[1] is not None:
        msg += "; worst relative error %.3g (%s)" % worst
    return msg


def token_batch(m, path, batch, seq_len, vocab, bos):
    np, torch = m["numpy"], m["torch"]
    if path is None:
        g = torch.Generator().manual_seed(1)
        return torch.randint(0, vocab, (batch, seq_len), generator=g)
    ids = np.fromfile(path, dtype="<u2")
    if len(ids) < seq_len:
        raise Mismatch("%s: %d tokens, fewer than --seq-len" % (path, len(ids)))
    starts = np.flatnonzero(ids == bos) if bos is not None else ids[:0]
    starts = starts[starts + seq_len <= len(ids)]
    if len(starts) < batch:	# too few BOS: even spacing instead
        starts = np.arange(0, len(ids) - seq_len + 1)
    step = max((len(starts) - 1) // max(batch - 1, 1), 1)
    x = np.stack([ids[p:p + seq_len] for p in starts[::step][:batch]])
    if len(x) != batch:
        raise Mismatch("%s: too few sequences of %d tokens" % (path, seq_len))
    if int(x.max()) >= vocab:
        raise Mismatch("%s: token id %d, vocabulary has %d"
                       % (path, int(x.max()), vocab))
    return torch.from_numpy(x.astype(np.int64))


def logits_of(m, path, x):
    torch = m["torch"]
    model, info = m["transformers"].AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, use_safetensors=True,
        torch_dtype=torch.float32, output_loading_info=True)
    # Randomly initialized weights would make the comparison meaningless.
    for k in ("missing_keys", "mismatched_keys"):
        if info.get(k):
            raise Mismatch("%s: %s: %s" % (path, k.replace("_", " "),
                                           ", ".join(map(str, info[k]))))
    model.eval()
    with torch.no_grad():
        return model, model(input_ids=x).logits


def check_logits(m, a, src, mnt):
    torch = m["torch"]
    config = m["transformers"].AutoConfig.from_pretrained(
        src, local_files_only=True)
    x = token_batch(m, a.tokens, a.batch, a.seq_len, config.vocab_size,
                    config.bos_token_id)
    m0, l0 = logits_of(m, src, x)
    m1, l1 = logits_of(m, mnt, x)
    if l0.shape != l1.shape:
        raise Mismatch("logits %s from the mount, %s from the source"
                       % (tuple(l1.shape), tuple(l0.shape)))
    if not bool(torch.isfinite(l0).all()):
        raise Mismatch("the source's logits are not finite")
    finite = bool(torch.isfinite(l1).all())
    max_abs = (l1 - l0).abs().max().item() if finite else float("inf")
    err = rel_err(torch, l0, l1) if finite else float("inf")
    top1 = (l0.argmax(-1) == l1.argmax(-1)).double().mean().item()
    msg = ("logits %s: max abs difference %.6g, relative error %.6g, top-1 "
           "agreement %.2f%%" % ("x".join(map(str, l0.shape)), max_abs,
                                 err, 100 * top1))
    if a.max_rel_logit_err == 0:
        bitwise = torch.equal(pt_bytes(torch, l0), pt_bytes(torch, l1))
        if not (torch.equal(l0, l1) and bitwise):
            p0, p1 = dict(m0.named_parameters()), dict(m1.named_parameters())
            ndiff = sum(not torch.equal(p0[k], p1[k]) for k in p0)
            raise Mismatch("%s; logits differ (%d of %d parameters differ)"
                           % (msg, ndiff, len(p0)))
        return msg + "; bit-identical"
    if not err <= a.max_rel_logit_err:
        raise Mismatch("%s; relative error above %g"
                       % (msg, a.max_rel_logit_err))
    if a.min_top1 is not None and not top1 >= a.min_top1:
        raise Mismatch("%s; top-1 agreement below %.2f%%"
                       % (msg, 100 * a.min_top1))
    return msg + "; within bounds"


def main():
    ap = argparse.ArgumentParser(description="compare what safetensors and "
                                 "transformers read from a mounted image "
                                 "with what they read from the source")
    ap.add_argument("src", help="the model directory the image was made from")
    ap.add_argument("mounted", help="the same model through nwcfs")
    ap.add_argument("--max-rel-logit-err", type=float, default=0.0,
                    metavar="E", help="0: bit-identical tensors and logits "
                    "(default); else the bound on ||L1-L0||/||L0||")
    ap.add_argument("--min-top1", type=float, default=None, metavar="F",
                    help="least top-1 agreement rate, 0..1 (lossy images)")
    ap.add_argument("--tokens", metavar="FILE",
                    help="token ids, uint16 little-endian")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 keeps the sums in a fixed order)")
    a = ap.parse_args()
    if not a.max_rel_logit_err >= 0 or a.batch < 1 or a.seq_len < 1 or \
            a.threads < 1:
        ap.error("--max-rel-logit-err must be >= 0, --batch, --seq-len "
                 "and --threads >= 1")
    if a.min_top1 is not None and not 0 <= a.min_top1 <= 1:
        ap.error("--min-top1 must be within 0..1")
    for d in (a.src, a.mounted):
        if not os.path.isdir(d):
            ap.error("%s: not a directory" % d)
    m = import_stack()
    m["torch"].set_num_threads(a.threads)
    print("framework: %s" % ", ".join("%s %s" % (n, m[n].__version__)
                                      for n in STACK))
    try:
        print("framework: %s" % check_tensors(m, a.src, a.mounted,
                                              a.max_rel_logit_err == 0))
        print("framework: %s" % check_logits(m, a, a.src, a.mounted))
    except (Mismatch, OSError) as e:
        print("framework: MISMATCH: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
