#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mix-tensors.py - a model directory that is BASE with the tensors whose
names match REGEX taken from OTHER: where a lossy image's loss comes from.

    bench/mix-tensors.py BASE_DIR OTHER_DIR OUT_DIR REGEX

BASE_DIR is a model directory (the original), OTHER_DIR the same model's
files from an image (fsck.nwc -x IMAGE OTHER_DIR); every *.safetensors file
of BASE must have the same header in OTHER (an image serves the original's
layout), and every other file is copied from BASE.  Then
`nwc eval OUT_DIR tokens.u16` scores the original with only those tensors
coded, e.g. REGEX 'v_proj' or 'layers\\.(1[5-9]|2[0-9])\\.mlp'.
Only the standard library; reads whole files (models of a few GB).
"""
import json
import os
import re
import shutil
import struct
import sys


def header(data, path):
    if len(data) < 8:
        sys.exit(f"mix-tensors: {path}: too short for a safetensors file")
    n = struct.unpack("<Q", data[:8])[0]
    if 8 + n > len(data):
        sys.exit(f"mix-tensors: {path}: header length {n} past the end")
    return json.loads(data[8:8 + n]), 8 + n


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: mix-tensors.py BASE_DIR OTHER_DIR OUT_DIR REGEX")
    base, other, out, regex = sys.argv[1:]
    rx = re.compile(regex)
    os.makedirs(out, exist_ok=True)
    total = 0
    for name in sorted(os.listdir(base)):
        src = os.path.join(base, name)
        dst = os.path.join(out, name)
        if not os.path.isfile(src):
            continue
        if not name.endswith(".safetensors"):
            shutil.copyfile(src, dst)
            continue
        opath = os.path.join(other, name)
        try:
            with open(src, "rb") as f:
                a = f.read()
            with open(opath, "rb") as f:
                b = f.read()
        except OSError as e:
            sys.exit(f"mix-tensors: {e.filename}: {e.strerror}")
        ha, start = header(a, src)
        hb, _ = header(b, opath)
        if ha != hb or len(a) != len(b):
            sys.exit(f"mix-tensors: {opath}: not the layout of {src}")
        buf = bytearray(a)
        for t, info in ha.items():
            if t == "__metadata__" or not rx.search(t):
                continue
            s, e = info["data_offsets"]
            buf[start + s:start + e] = b[start + s:start + e]
            total += 1
        with open(dst + ".tmp", "wb") as f:
            f.write(buf)
        os.replace(dst + ".tmp", dst)
    print(f"mix-tensors: {total} tensors from {other}", file=sys.stderr)


if __name__ == "__main__":
    main()
