#!/bin/sh
# errors.sh - bad input to mkfs.nwc, fsck.nwc and nwcfs gives a message
# that names the file and the problem, the documented exit status, and
# loses nothing: no image or temporary file left behind, no existing image
# replaced, no mount.
. "$top_srcdir/tests/lib.sh"
t_require_python
t_workdir

# run WANT CMD...: run CMD, stdout and stderr to $W/out; fail unless it
# exits with WANT.
run() {
	want=$1
	shift
	rc=0
	"$@" >"$W/out" 2>&1 </dev/null || rc=$?
	[ "$rc" = "$want" ] || t_fail "'$*' exited with $rc, expected $want: \
$(head -n 5 "$W/out")"
}

# said WHAT PATTERN...: the last output matches every extended regexp.
said() {
	what=$1
	shift
	for re; do
		grep -q -i -E -e "$re" "$W/out" ||
			t_fail "$what: message lacks /$re/: $(head -n 5 "$W/out")"
	done
}

# no_image IMG: neither IMG nor a temporary file IMG.tmp.* exists.
no_image() {
	[ -e "$1" ] && t_fail "$1 exists after a failed mkfs.nwc"
	for f in "$1".tmp.*; do
		[ -e "$f" ] && t_fail "temporary file $f left behind"
	done
	return 0
}

t_gen --seed 7 --dtype BF16 --size tiny "$W/model"
img=$W/out.nwc

# --- mkfs.nwc: usage errors (1) -----------------------------------------
run 1 "$MKFS" -q
said "mkfs.nwc without arguments" 'MODEL_DIR'
run 1 "$MKFS" -q --lossless "$W/model"
said "mkfs.nwc without IMAGE" 'IMAGE'
run 1 "$MKFS" -q --lossless "$W/model" "$img" extra
run 1 "$MKFS" -q --lossless -b 3K "$W/model" "$img"
said "mkfs.nwc -b 3K" 'block-size' '3K'
run 1 "$MKFS" -q --lossless -b 128M "$W/model" "$img"
said "mkfs.nwc -b 128M" 'block-size' '128M'
run 1 "$MKFS" -q --lossless -l 0 "$W/model" "$img"
said "mkfs.nwc -l 0" 'level' "'0'"
run 1 "$MKFS" -q --lossless -l 20 "$W/model" "$img"
run 1 "$MKFS" -q --lossless -j x "$W/model" "$img"
said "mkfs.nwc -j x" 'jobs' "'x'"
run 1 "$MKFS" -q --lossless --no-such-option "$W/model" "$img"
said "mkfs.nwc --no-such-option" 'no-such-option'
no_image "$img"

# --- mkfs.nwc: unreadable input (2) -------------------------------------
run 2 "$MKFS" -q --lossless "$W/nonexistent" "$img"
said "missing MODEL_DIR" "$W/nonexistent" 'no such file'
no_image "$img"
run 2 "$MKFS" -q --lossless "$W/model/config.json" "$img"
said "MODEL_DIR is a file" "$W/model/config.json" 'not a directory'
no_image "$img"
run 2 "$MKFS" -q --lossless "$W/model" "$W/nonexistent/out.nwc"
said "IMAGE in a missing directory" "$W/nonexistent/out.nwc"

# --- mkfs.nwc: malformed safetensors (3) --------------------------------
# Each directory holds a valid shard and a bad one; names the tensor
# involved where there is one.
python3 - "$W/bad" <<'EOF' || t_fail "cannot write the malformed models"
import json, os, struct, sys
top = sys.argv[1]
good = {"a.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b.weight": {"dtype": "F32", "shape": [4], "data_offsets": [24, 40]}}
def st(hdr, data=bytes(40)):
    h = hdr if isinstance(hdr, bytes) else json.dumps(hdr).encode()
    return struct.pack("<Q", len(h)) + h + data
def variant(**kw):
    g = json.loads(json.dumps(good))
    g["b.weight"].update(kw)
    return st(g)
cases = {
    "truncated": struct.pack("<Q", 1000) + b'{"a.weight": {"dtype"',
    "json": st(b'{"a.weight": {"dtype": "F32", "shape": [2, 3], '
               b'"data_offsets": [0, 24]'),
    "dtype": variant(dtype="F7"),
    "overlap": variant(data_offsets=[20, 36]),
    "shape": variant(shape=[5]),
}
for name, raw in cases.items():
    d = os.path.join(top, name)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write("{}\n")
    with open(os.path.join(d, "model-00001-of-00002.safetensors"), "wb") as f:
        f.write(st(good))
    with open(os.path.join(d, "model-00002-of-00002.safetensors"), "wb") as f:
        f.write(raw)
EOF
for c in truncated json dtype overlap shape; do
	f=$W/bad/$c/model-00002-of-00002.safetensors
	run 3 "$MKFS" -q --lossless "$W/bad/$c" "$img"
	case $c in
	truncated) said "$c" "$f" 'header|length|end of( the)? file|truncat' ;;
	json) said "$c" "$f" 'json' ;;
	dtype) said "$c" "$f" 'b\.weight' 'dtype' 'F7' ;;
	overlap) said "$c" "$f" 'b\.weight' 'a\.weight' 'overlap' ;;
	shape) said "$c" "$f" 'b\.weight' 'shape' ;;
	esac
	no_image "$img"
done
echo "errors: mkfs.nwc usage, missing input, 5 malformed safetensors ok"

# --- mkfs.nwc: an existing IMAGE is replaced only with -f ---------------
echo "not an image, keep me" >"$img"
cp "$img" "$W/keep"
run 1 "$MKFS" -q --lossless "$W/model" "$img"
said "existing IMAGE without -f" "$img" 'exist|force|-f'
cmp -s "$img" "$W/keep" || t_fail "mkfs.nwc without -f changed $img"
run 3 "$MKFS" -q --lossless -f "$W/bad/shape" "$img"
cmp -s "$img" "$W/keep" || t_fail "a failed mkfs.nwc -f changed $img"
for f in "$img".tmp.*; do
	[ -e "$f" ] && t_fail "temporary file $f left behind"
done
run 0 "$MKFS" -q --lossless -f "$W/model" "$img"
run 0 "$FSCK" -q "$img"
cp "$img" "$W/good.nwc"

# --- mkfs.nwc: full disk (2) --------------------------------------------
full=$W/mnt-full	# mnt*: t_cleanup unmounts it
mkdir -p "$full"
if [ "$(id -u)" = 0 ] &&
	mount -t tmpfs -o size=256k tmpfs "$full" 2>/dev/null; then
	python3 -c 'import os, random, sys
os.makedirs(sys.argv[1])
with open(sys.argv[1] + "/blob.bin", "wb") as f:
    f.write(random.Random(5).randbytes(1 << 20))' "$W/big" ||
		t_fail "cannot write $W/big"
	run 2 "$MKFS" -q --lossless "$W/big" "$full/img.nwc"
	said "full disk" "$full/img.nwc" 'No space left'
	left=$(ls -A "$full")
	[ -n "$left" ] && t_fail "files left on the full disk: $left"
	umount "$full" || t_fail "cannot unmount $full"
	echo "errors: full disk ok"
else
	echo "errors: note: cannot mount a tmpfs (not root?); full disk not tested"
fi

# --- mkfs.nwc killed while it writes: nothing is left -------------------
# 48 MiB of random bytes at zstd level 19 take seconds; the image has no
# name until it is complete, so neither SIGINT, SIGTERM nor SIGKILL (an MPI
# job's end) leaves a partial image or a temporary file.
python3 -c 'import os, random, sys
os.makedirs(sys.argv[1])
with open(sys.argv[1] + "/blob.bin", "wb") as f:
    f.write(random.Random(6).randbytes(48 << 20))' "$W/slow" ||
	t_fail "cannot write $W/slow"
for sig in INT TERM KILL; do
	mkdir "$W/killed"
	# A background job of sh ignores SIGINT: restore it, as a terminal's
	# foreground job has it.
	python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$MKFS" -q --lossless -l 19 -j 1 \
		"$W/slow" "$W/killed/img.nwc" >/dev/null 2>&1 &
	pid=$!
	sleep 1
	kill -0 "$pid" 2>/dev/null || t_fail "mkfs.nwc ended before SIG$sig"
	[ -z "$(ls -A "$W/killed")" ] ||
		t_fail "a half-written image is visible: $(ls -A "$W/killed")"
	kill -"$sig" "$pid"
	wait "$pid" 2>/dev/null
	[ -z "$(ls -A "$W/killed")" ] ||
		t_fail "SIG$sig left $(ls -A "$W/killed")"
	rm -rf "$W/killed"
done
rm -rf "$W/slow"
echo "errors: SIGINT, SIGTERM and SIGKILL while writing leave nothing ok"

# --- fsck.nwc ----------------------------------------------------------
run 1 "$FSCK"
run 1 "$FSCK" --no-such-option "$W/good.nwc"
run 2 "$FSCK" "$W/nonexistent.nwc"
said "fsck.nwc of a missing file" "$W/nonexistent.nwc" 'no such file'
size=$(wc -c <"$W/good.nwc")
head -c $((size - 100)) "$W/good.nwc" >"$W/truncated.nwc"
run 3 "$FSCK" "$W/truncated.nwc"
said "fsck.nwc of a truncated image" "$W/truncated.nwc" 'truncat|size|short'
: >"$W/empty.nwc"
run 3 "$FSCK" "$W/empty.nwc"
said "fsck.nwc of an empty file" "$W/empty.nwc"
big=$(cd "$W/model" && find . -type f -printf '%s %P\n' | sort -n |
	tail -n 1 | cut -d' ' -f2-)
run 3 "$FSCK" "$W/model/$big"
said "fsck.nwc of a non-image" "$W/model/$big" 'magic|not an nwc image'
cp "$W/good.nwc" "$W/badsb.nwc"
t_flip_byte "$W/badsb.nwc" 100
run 3 "$FSCK" "$W/badsb.nwc"
said "fsck.nwc of a damaged superblock" "$W/badsb.nwc" 'superblock|checksum'

# One flipped byte in a data block of the biggest file: that file is named
# damaged, every other file is ok, and extraction recovers the others.
blk=$(t_block_of "$W/good.nwc" "/$big") || exit 1
set -- $blk
cp "$W/good.nwc" "$W/damaged.nwc"
t_flip_byte "$W/damaged.nwc" $(($1 + $2 / 2))
run 3 "$FSCK" "$W/damaged.nwc"
said "fsck.nwc of a damaged block" "^DAMAGED +/$big\b" 'checksum'
grep '^DAMAGED' "$W/out" | grep -v -F " /$big:" >"$W/wrong" &&
	t_fail "fsck.nwc names undamaged files: $(cat "$W/wrong")"
grep '^ok ' "$W/out" | awk '{ print $2 }' | sort >"$W/ok"
(cd "$W/model" && find . -type f ! -path "./$big" | sed 's/^\.//' |
	sort) >"$W/others"
diff "$W/others" "$W/ok" >/dev/null ||
	t_fail "fsck.nwc: undamaged files not all reported ok: $(cat "$W/out")"
run 3 "$FSCK" -q -x "$W/salvage" "$W/damaged.nwc"
said "fsck.nwc -q -x of a damaged image" "/$big"
[ -e "$W/salvage/$big" ] && t_fail "fsck.nwc -x extracted damaged $big"
(cd "$W/model" && find . -type f ! -path "./$big") | while read -r f; do
	cmp -s "$W/model/$f" "$W/salvage/$f" ||
		t_fail "fsck.nwc -x did not recover undamaged $f"
done || exit 1

mkdir "$W/nonempty"
echo "precious" >"$W/nonempty/file"
run 2 "$FSCK" -x "$W/nonempty" "$W/good.nwc"
said "fsck.nwc -x into a non-empty directory" "$W/nonempty" 'not empty'
[ "$(ls -A "$W/nonempty")" = file ] && [ "$(cat "$W/nonempty/file")" = precious ] ||
	t_fail "fsck.nwc -x changed the non-empty directory $W/nonempty"
echo "errors: fsck.nwc missing, truncated, non-image, damaged, -x ok"

# --- nwcfs: a bad image fails before anything is mounted ----------------
if [ -x "$NWCFS" ]; then
	mnt=$W/mnt-bad	# mnt*: t_cleanup unmounts it if nwcfs did mount
	mkdir -p "$mnt"
	for c in nonexistent:2 truncated:3 badsb:3 empty:3; do
		run "${c#*:}" timeout 20 "$NWCFS" "$W/${c%:*}.nwc" "$mnt"
		said "nwcfs ${c%:*}.nwc" "$W/${c%:*}.nwc"
		mountpoint -q "$mnt" && t_fail "nwcfs mounted ${c%:*}.nwc"
	done
	run 3 timeout 20 "$NWCFS" "$W/model/$big" "$mnt"
	mountpoint -q "$mnt" && t_fail "nwcfs mounted a non-image"
	run 1 "$NWCFS" "$W/good.nwc"
	said "nwcfs without MOUNTPOINT" 'MOUNTPOINT'
	echo "errors: nwcfs refuses bad images ok"
else
	echo "errors: note: nwcfs not built; its errors not tested"
fi
exit 0
