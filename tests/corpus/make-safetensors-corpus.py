#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# make-safetensors-corpus.py - regenerate the seed corpus for fuzz_safetensors.
#
#   python3 tests/corpus/make-safetensors-corpus.py [OUTDIR]
#
# Writes small .safetensors files (valid and malformed) to OUTDIR, by default
# tests/corpus/safetensors next to this script.  Output is deterministic.
import os
import struct
import sys


def entry(dtype, shape, begin, end):
    return ('{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'
            % (dtype, ",".join(str(d) for d in shape), begin, end))


def header(entries, meta=None):
    parts = []
    if meta is not None:
        parts.append('"__metadata__":' + meta)
    parts += ['"%s":%s' % (name, e) for name, e in entries]
    return "{" + ",".join(parts) + "}"


def st_file(json, data=b"", pad=True, length=None):
    raw = json.encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    n = len(raw) if length is None else length
    return struct.pack("<Q", n) + raw + data


def data(n):
    return bytes((i * 37 + 11) & 0xff for i in range(n))


VALID_TWO = header([("a.weight", entry("F32", [2, 3], 0, 24)),
                    ("b.bias", entry("BF16", [3], 24, 30))],
                   '{"format":"pt"}')

FILES = {
    # Valid inputs.
    "valid-empty": st_file("{}", pad=False),
    "valid-two-tensors": st_file(VALID_TWO, data(30)),
    "valid-dtypes-scalar-zero-gap": st_file(header([
        ("s", entry("F64", [], 0, 8)),
        ("z", entry("I32", [0, 4], 8, 8)),
        ("h", entry("F16", [2, 2], 16, 24)),
        ("u", entry("U8", [3], 24, 27)),
        ("m", entry("BOOL", [1, 1, 1], 27, 28)),
        ("i", entry("I64", [1], 32, 40)),
        ("e", entry("F8_E4M3", [4], 40, 44))]), data(48)),
    # Malformed inputs, one defect each.
    "bad-short-length": b"\x02\x00\x00\x00",
    "bad-length-past-eof": st_file("{}", pad=False, length=64),
    "bad-length-huge": st_file("{}", pad=False, length=(1 << 63) + 2),
    "bad-not-json": st_file("{this is not json}"),
    "bad-json-array": st_file('[{"a":1}]'),
    "bad-trailing-garbage": st_file("{} x", pad=False),
    "bad-duplicate-key": st_file(header([
        ("a", entry("U8", [1], 0, 1)), ("a", entry("U8", [1], 1, 2))]),
        data(2)),
    "bad-unknown-dtype": st_file(header([("a", entry("F12", [1], 0, 1))]),
                                 data(1)),
    "bad-extra-key": st_file(
        '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":0}}',
        data(1)),
    "bad-shape-negative": st_file(
        header([("a", entry("U8", [-1], 0, 1))]), data(1)),
    "bad-shape-float": st_file(
        '{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}', data(1)),
    "bad-shape-too-many-dims": st_file(
        header([("a", entry("U8", [1] * 9, 0, 1))]), data(1)),
    "bad-shape-overflow": st_file(
        header([("a", entry("F32", [1 << 40, 1 << 40], 0, 0))])),
    "bad-offsets-reversed": st_file(
        header([("a", entry("U8", [2], 4, 2))]), data(4)),
    "bad-size-mismatch": st_file(
        header([("w", entry("F32", [3, 4], 0, 40))]), data(48)),
    "bad-end-past-data": st_file(
        header([("a", entry("U8", [8], 0, 8))]), data(4)),
    "bad-overlap": st_file(header([
        ("a", entry("U8", [4], 0, 4)), ("b", entry("U8", [4], 2, 6))]),
        data(6)),
    "bad-metadata-value": st_file(
        header([("a", entry("U8", [1], 0, 1))], '{"format":1}'), data(1)),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here,
                                                              "safetensors")
    os.makedirs(out, exist_ok=True)
    for name, blob in sorted(FILES.items()):
        assert len(blob) < 2048, name
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
