#!/bin/sh
# make-image-corpus.sh - regenerate tests/corpus/image/, the seed corpus of
# the image fuzz target: small valid images built by mkfs.nwc from tiny
# trees, and truncated, bit-flipped and hand-patched copies of them.  The
# fuzz target recomputes checksums of inputs that fail on one, so a patched
# copy exercises the structural checks without fixing checksums here.
# Images with lossy (NWC) tensors (nwc*.nwc) come from the image unit test.
#
#   tests/corpus/make-image-corpus.sh BUILDDIR [OUTDIR]
#
# BUILDDIR holds a built mkfs/mkfs.nwc and tests/test_image; OUTDIR defaults
# to tests/corpus/image next to this script.  Every mkfs image stays under
# 12 KiB; the NWC ones are about 26 KiB (two embedded codec models).
set -eu

B=${1:?usage: make-image-corpus.sh BUILDDIR [OUTDIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${2:-$HERE/image}
MKFS=$B/mkfs/mkfs.nwc
TEST_IMAGE=$B/tests/test_image
[ -x "$MKFS" ] || { echo "$MKFS: not built" >&2; exit 1; }
[ -x "$TEST_IMAGE" ] || { echo "$TEST_IMAGE: not built" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/nwc-corpus.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"

# Little-endian u32 at byte offset $2 of file $1.
u32() {
	set -- $(od -An -tu1 -j "$2" -N 4 "$1")
	echo $(($1 + 256 * $2 + 65536 * $3 + 16777216 * $4))
}

# Write byte value $3 at offset $2 of file $1.
putb() {
	printf "\\$(printf %o "$3")" |
		dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

put32() {
	for i in 0 1 2 3; do
		putb "$1" $(($2 + i)) $((($3 >> (8 * i)) & 255))
	done
}

byte() {
	od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' '
}

flip() {
	putb "$1" "$2" $(($(byte "$1" "$2") ^ $3))
}

# Offset of section type $2 in image $1 (images here are far below 4 GiB).
sect() {
	dir=$(u32 "$1" 56)
	n=$(u32 "$1" 64)
	i=0
	while [ "$i" -lt "$n" ]; do
		e=$((dir + 32 * i))
		if [ "$(u32 "$1" "$e")" = "$2" ]; then
			u32 "$1" $((e + 8))
			return
		fi
		i=$((i + 1))
	done
	echo "$1: no section $2" >&2
	exit 1
}

# Fixed mtimes, so that the corpus only changes when the format does.
settime() {
	find "$1" -exec touch -h -t 202401010000 {} + 2>/dev/null ||
		find "$1" ! -type l -exec touch -t 202401010000 {} +
}

mk() {
	settime "$W/$1"
	"$MKFS" -q -f --lossless -b 4K "$W/$1" "$OUT/$1.nwc"
	size=$(wc -c <"$OUT/$1.nwc")
	[ "$size" -lt 12288 ] || { echo "$1.nwc: $size bytes" >&2; exit 1; }
}

derive() {
	cp "$OUT/$1.nwc" "$OUT/$2.nwc"
	chmod 644 "$OUT/$2.nwc"
}

# A valid .safetensors file: three tensors, one of them empty.
safetensors() {
	h='{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
	h=$h'"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]},'
	h=$h'"z":{"dtype":"U8","shape":[0],"data_offsets":[16,16]}}'
	while [ $((${#h} % 8)) -ne 0 ]; do h="$h "; done
	{
		printf "\\$(printf %o $((${#h} & 255)))"
		printf "\\$(printf %o $((${#h} >> 8)))"
		printf '\0\0\0\0\0\0'
		printf '%s' "$h"
		printf '\0\0\200\77\0\0\0\100\200\77\0\100\100\100\200\100'
	} >"$1"
}

# BF16 weights of std 0.02 whose exponent planes are wide rANS streams
# (codec PLANES): 40 x 64, a 4 KiB block and a 1 KiB one.
weights() {
	python3 - "$1" <<'PY'
import json, random, struct, sys
r = random.Random(5)
n = 40 * 64
raw = b"".join(struct.pack("<f", r.gauss(0, 0.02))[2:] for _ in range(n))
h = json.dumps({"w": {"dtype": "BF16", "shape": [40, 64],
                      "data_offsets": [0, len(raw)]}}).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + raw)
PY
}

mkdir -p "$W/one" "$W/tree/d/e" "$W/tree/emptydir" \
	"$W/model" "$W/cycle/d"
printf 'hello\n' >"$W/one/a.txt"
printf 'deep\n' >"$W/tree/d/e/deep.txt"
: >"$W/tree/d/x.bin"
printf 'a' >"$W/tree/a"
printf 'aa' >"$W/tree/aa"
printf 'b' >"$W/tree/b"
ln -s d/e/deep.txt "$W/tree/link"
# 12 KiB that compress well: three 4 KiB zstd blocks.
i=0
while [ $i -lt 192 ]; do
	printf '0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab\n'
	i=$((i + 1))
done >"$W/tree/rep.txt"
safetensors "$W/model/model.safetensors"
printf '{"dim": 8}\n' >"$W/model/config.json"
printf 'f\n' >"$W/cycle/f"	# mkfs.nwc needs a file; d stays inode 1
mkdir -p "$W/weights"
weights "$W/weights/model.safetensors"

# empty.nwc, zstd-model.nwc, zstd-tree.nwc and seq-nwc.nwc stay as an
# older mkfs.nwc wrote them: mkfs.nwc now refuses a source without files,
# writes codec PLANES where the older one wrote ZSTD, and NWC bands in the
# lanes layout where it wrote them in sequence order; readers serve both.
mk one
mk tree
mk model
mk cycle
mk weights

# Cut short.
size=$(wc -c <"$OUT/tree.nwc")
dd if="$OUT/tree.nwc" of="$OUT/trunc-128.nwc" bs=128 count=1 2>/dev/null
dd if="$OUT/tree.nwc" of="$OUT/trunc-4096.nwc" bs=4096 count=1 2>/dev/null
dd if="$OUT/tree.nwc" of="$OUT/trunc-last.nwc" bs=1 count=$((size - 1)) \
	2>/dev/null

# One byte changed: superblock, directory, inode table, a payload.
derive tree flip-sb-data-off
flip "$OUT/flip-sb-data-off.nwc" 41 1
derive tree flip-dir
flip "$OUT/flip-dir.nwc" $(($(u32 "$OUT/tree.nwc" 56) + 9)) 2
derive tree flip-inode-mode
flip "$OUT/flip-inode-mode.nwc" $(($(sect "$OUT/tree.nwc" 2) + 48 + 1)) 0x20
derive tree flip-payload
flip "$OUT/flip-payload.nwc" 4100 0x40
derive model flip-tensor-shape
flip "$OUT/flip-tensor-shape.nwc" $(sect "$OUT/model.nwc" 6) 1
derive model flip-extent-codec
flip "$OUT/flip-extent-codec.nwc" $(($(sect "$OUT/model.nwc" 3) + 28)) 1
# A byte of the first weight block's rANS states, and of its words: the
# block starts with words 0x80000800 (mantissa plane stored, 2048 bytes)
# and the exponent plane's length with bit 30 (rANS).
rans=$(python3 - "$OUT/weights.nwc" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
p = b.index(struct.pack("<I", 0x80000800))
w = struct.unpack_from("<I", b, p + 4)[0]
assert w & 0x40000000 and not w & 0x80000000, hex(w)
print(p + 8 + 2048)
PY
)
derive weights flip-rans-state
flip "$OUT/flip-rans-state.nwc" $((rans + 50)) 0x10
derive weights flip-rans-word
flip "$OUT/flip-rans-word.nwc" $((rans + 200)) 0x04

# Directory 1 detached from the root and its own parent and only child.
# The reader used to accept this; a walk up the parents never ends.
derive cycle crash-self-parent
ino=$(sect "$OUT/cycle.nwc" 2)
put32 "$OUT/crash-self-parent.nwc" $((ino + 44)) 0
put32 "$OUT/crash-self-parent.nwc" $((ino + 48 + 4)) 1
put32 "$OUT/crash-self-parent.nwc" $((ino + 48 + 40)) 1
put32 "$OUT/crash-self-parent.nwc" $((ino + 48 + 44)) 1

# Lossy tensors, codec models and side records: a valid image, and copies
# with a side level, the model count, a band's geometry or a band payload
# changed.
"$TEST_IMAGE" --write-corpus "$OUT"
