#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# trainset.py - copy the tensors nwc-train learns from into a smaller file.
#
# Usage: trainset.py SRC.safetensors DST.safetensors
#
# Keeps the 2-D F32/F16/BF16 tensors of at least 16 rows and 2 columns whose
# names hold neither "embed" nor "lm_head" (what nwc-train reads) and that
# belong to the encoder's first three layers (encoder.layer.0 to 2), byte
# for byte and in the order of their data in SRC.  Layers 3 to 5 and the
# pooler stay out of training: the benchmarks code them (and keep layers 0
# to 2 exact), so they measure the codec on weights it has not seen.
# Standard library only.  Exit status: 0 success, 1 usage, 2 failure.

import json
import os
import re
import struct
import sys

FLOATS = ("F32", "F16", "BF16")
TRAIN_LAYERS = re.compile(r"^encoder\.layer\.[012]\.")


def die(msg):
    print("trainset.py: " + msg, file=sys.stderr)
    sys.exit(2)


def used(name, t):
    shape = t.get("shape", [])
    return (t.get("dtype") in FLOATS and len(shape) == 2 and
            shape[0] >= 16 and shape[1] >= 2 and
            "embed" not in name and "lm_head" not in name and
            TRAIN_LAYERS.match(name) is not None)


def main():
    if len(sys.argv) != 3:
        print("usage: trainset.py SRC.safetensors DST.safetensors",
              file=sys.stderr)
        return 1
    src, dst = sys.argv[1:]
    with open(src, "rb") as f:
        data = f.read()
    if len(data) < 8:
        die(src + ": too short for a safetensors file")
    (hlen,) = struct.unpack_from("<Q", data, 0)
    if hlen > len(data) - 8:
        die(src + ": header length past end of file")
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen

    names = [k for k in header if k != "__metadata__" and used(k, header[k])]
    names.sort(key=lambda k: header[k]["data_offsets"][0])
    if not names:
        die(src + ": no tensor nwc-train would use")
    out, blobs, off = {}, [], 0
    for k in names:
        t = header[k]
        begin, end = t["data_offsets"]
        if not 0 <= begin <= end <= len(data) - base:
            die("%s: tensor %s: bad data_offsets" % (src, k))
        blobs.append(data[base + begin:base + end])
        out[k] = {"dtype": t["dtype"], "shape": t["shape"],
                  "data_offsets": [off, off + end - begin]}
        off += end - begin

    text = json.dumps(out, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
