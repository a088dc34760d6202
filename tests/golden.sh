#!/bin/sh
# golden.sh - lossless images are byte-for-byte what this version of the
# format and mkfs.nwc write: fixed inputs (generated models, and
# stories260K where ../shared has it) pack to images of known SHA-256.
# Lossless images are the same on every machine; a change to the format,
# the layout or a lossless codec must update these sums on purpose.  The
# sums are those of the images written since the wide rANS planes (codec
# PLANES, format.h 8); before them the images had the sums of the INFO
# section (format.h 11, created at lib.sh's SOURCE_DATE_EPOCH).
# (Lossy images are deterministic per machine type only, so they are not
# here; tests/lossy.sh checks that -j1 and -j2 agree.)
. "$top_srcdir/tests/lib.sh"

command -v sha256sum >/dev/null 2>&1 || t_skip "sha256sum not on PATH"
t_workdir

# pack NAME DIR MKFS-OPTIONS...: the SHA-256 of DIR's image, with every
# name's mtime and mode fixed first so that only the format decides.
pack() {
	name=$1
	dir=$2
	shift 2
	find "$dir" -exec touch -h -d @1700000000 {} + || t_fail "touch $dir"
	find "$dir" -type d -exec chmod 0755 {} + &&
		find "$dir" -type f -exec chmod 0644 {} + || t_fail "chmod $dir"
	touch -h -d @1700000000 "$dir"
	"$MKFS" -q "$@" "$dir" "$W/$name.nwc" || t_fail "mkfs.nwc $* $dir failed"
	sha256sum "$W/$name.nwc" | cut -d' ' -f1
}

# check NAME WANT GOT
check() {
	if [ "$2" = "$3" ]; then
		echo "ok: $1 $3"
	else
		echo "FAIL: $1: image SHA-256 $3, expected $2" >&2
		bad=1
	fi
}

bad=0
t_gen --seed 1 --dtype BF16 "$W/bf16"
t_gen --seed 2 --dtype F32 "$W/f32"
check bf16-lossless \
	3df0511eb214f2960e1bc0bb52f5dd7bc5a4edacdb37fd49ef03bb449d78c062 \
	"$(pack bf16 "$W/bf16" --lossless)"
check f32-lossless-64k-l9 \
	9c593fa1c995ba339ce99a54e8590b0507153985f26577b3da3ab40cbb89a36c \
	"$(pack f32 "$W/f32" --lossless -b 64K -l 9)"
if [ -d "$SHARED_MODEL" ]; then
	cp -r "$SHARED_MODEL" "$W/st" || t_fail "cannot copy $SHARED_MODEL"
	check stories260K-lossless \
		d6a519ded9d8db1fe35c1600a14a4ddcfbef2821d5e1c77995f4abfb0a0fb275 \
		"$(pack st "$W/st" --lossless)"
else
	echo "stories260K absent ($SHARED_MODEL): generated models only"
fi
[ "$bad" = 0 ] || t_fail "lossless images changed"
