#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""readcheck.py - check that files read back (from a mount or an extract)
exactly as their sources.

usage: readcheck.py SRC MOUNTED [--random N] [--seed S] [--block-size B]
                    [--mmap]

SRC and MOUNTED are two files, or two directories: then every regular file
under SRC (symlinks are not followed) is checked against the same relative
path under MOUNTED.  Checks, in order, for each file:
  - the sizes and the full contents are equal (read(2) until EOF);
  - with --mmap, MOUNTED mapped PROT_READ with MAP_PRIVATE and with
    MAP_SHARED equals SRC, whole and in slices across page boundaries;
  - with --random N, N os.pread() calls at random (offset, length) pairs,
    lengths 0 to 3 blocks, offsets anywhere, near EOF and past EOF, return
    what the same pread() returns on SRC.
Exit status: 0 all equal, 1 first mismatch (described on stderr), 2 usage.
Standard library only.
"""

import argparse
import mmap
import os
import random
import stat
import sys


class Mismatch(Exception):
    pass


def first_diff(a, b):
    n = min(len(a), len(b))
    lo, hi = 0, n
    if a[:n] == b[:n]:
        return n
    # Binary search for the first differing byte: slices compare fast.
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] != b[lo:mid]:
            hi = mid
        else:
            lo = mid
    return lo


def expect_equal(what, want, got):
    if want == got:
        return
    i = first_diff(want, got)
    if len(want) != len(got) and i == min(len(want), len(got)):
        raise Mismatch("%s: %d bytes expected, %d bytes read"
                       % (what, len(want), len(got)))
    raise Mismatch("%s: first difference at byte %d (expected 0x%02x, "
                   "read 0x%02x); %d bytes expected, %d read"
                   % (what, i, want[i], got[i], len(want), len(got)))


def read_all(path):
    chunks = []
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def check_full(src, dst, data):
    st = os.stat(dst)
    if st.st_size != len(data):
        raise Mismatch("%s: size %d, expected %d (as %s)"
                       % (dst, st.st_size, len(data), src))
    expect_equal("%s: full read" % dst, data, read_all(dst))


def slices(size, rnd):
    """Slices of a mapping: whole, page edges, and a few random ones."""
    page = mmap.PAGESIZE
    out = [(0, size), (0, 1), (size - 1, size)]
    for p in range(page, size, page * 7 + page):
        out.append((p - 1, min(size, p + 1)))
    for _ in range(16):
        a = rnd.randrange(size)
        out.append((a, min(size, a + rnd.randrange(1, 3 * page))))
    return out


def check_mmap(dst, data, rnd):
    if not data:
        return  # a zero-length mapping is EINVAL by definition
    fd = os.open(dst, os.O_RDONLY)
    try:
        for name, flags in (("MAP_PRIVATE", mmap.MAP_PRIVATE),
                            ("MAP_SHARED", mmap.MAP_SHARED)):
            m = mmap.mmap(fd, len(data), flags=flags, prot=mmap.PROT_READ)
            try:
                for a, b in slices(len(data), rnd):
                    expect_equal("%s: %s mapping [%d, %d)"
                                 % (dst, name, a, b), data[a:b], m[a:b])
            finally:
                m.close()
    finally:
        os.close(fd)


def check_random(src, dst, size, n, bs, rnd):
    sfd = os.open(src, os.O_RDONLY)
    dfd = os.open(dst, os.O_RDONLY)
    try:
        for i in range(n):
            kind = i % 4
            if kind == 0 or size == 0:
                off = rnd.randrange(size + 2 * bs)	# anywhere, past EOF
            elif kind == 1:
                off = max(0, size - rnd.randrange(1, 2 * bs))	# near EOF
            elif kind == 2:
                # a block boundary, give or take a byte
                off = rnd.randrange(size // bs + 1) * bs + rnd.choice((-1, 0, 1))
                off = max(0, off)
            else:
                off = rnd.randrange(size)
            length = rnd.choice((0, 1, rnd.randrange(3 * bs + 1)))
            want = os.pread(sfd, length, off)
            try:
                got = os.pread(dfd, length, off)
            except OSError as e:
                raise Mismatch("%s: pread(%d bytes at %d) failed: %s"
                               % (dst, length, off, e.strerror))
            expect_equal("%s: pread(%d bytes at %d)" % (dst, length, off),
                         want, got)
    finally:
        os.close(dfd)
        os.close(sfd)


def pairs(src, dst):
    if not os.path.isdir(src):
        return [(src, dst)]
    out = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            s = os.path.join(root, name)
            if stat.S_ISREG(os.lstat(s).st_mode):
                out.append((s, os.path.join(dst, os.path.relpath(s, src))))
    if not out:
        raise Mismatch("%s: no regular files to check" % src)
    return out


def main():
    ap = argparse.ArgumentParser(description="compare files read back "
                                 "with their sources")
    ap.add_argument("src")
    ap.add_argument("mounted")
    ap.add_argument("--random", type=int, default=0, metavar="N")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=4096, metavar="B",
                    help="image block size, scales the read lengths")
    ap.add_argument("--mmap", action="store_true")
    a = ap.parse_args()
    if a.random < 0 or a.block_size < 1:
        ap.error("--random and --block-size must be positive")
    rnd = random.Random(a.seed)
    nfiles = nbytes = 0
    try:
        for src, dst in pairs(a.src, a.mounted):
            try:
                data = read_all(src)
                check_full(src, dst, data)
                if a.mmap:
                    check_mmap(dst, data, rnd)
                if a.random:
                    check_random(src, dst, len(data), a.random,
                                 a.block_size, rnd)
            except OSError as e:
                raise Mismatch("%s: %s" % (e.filename or dst, e.strerror))
            nfiles += 1
            nbytes += len(data)
    except Mismatch as e:
        print("readcheck: MISMATCH: %s" % e, file=sys.stderr)
        return 1
    print("readcheck: %d files, %d bytes equal%s%s"
          % (nfiles, nbytes, ", mmap ok" if a.mmap else "",
             ", %d random reads per file" % a.random if a.random else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
