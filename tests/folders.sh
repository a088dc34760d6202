#!/bin/sh
# folders.sh - the model folders users have:
#  - a Hugging Face cache snapshot (every file a relative symlink into
#    ../../blobs/) packs as the files themselves, says so in the summary,
#    extracts and mounts as regular files with the blobs' bytes, and
#    transformers loads it from the mount (tests/framework.py, where the
#    Python stack is); --no-dereference keeps the links; a link that stays
#    inside the tree stays a link;
#  - --exclude leaves out directories (a trailing /), globs and names, and
#    counts them; patterns that match nothing (--exclude, --keep, --bits)
#    are warnings that show a real name; a source without files is an
#    error; lossy options without a safetensors file are a warning;
#  - mkfs.nwc -f onto a directory fails before packing anything;
#  - mkfs.nwc run from the build tree finds the source tree's models
#    without --models or NWC_MODELS_DIR.
. "$top_srcdir/tests/lib.sh"
t_workdir

# mk ARGS...: mkfs.nwc, output in $W/mk.out; fails the test on failure.
mk() {
	"$MKFS" "$@" >"$W/mk.out" 2>&1 ||
		t_fail "mkfs.nwc $*: exit $?: $(cat "$W/mk.out")"
}
# bad STATUS PATTERN ARGS...: mkfs.nwc exits STATUS saying PATTERN.
bad() {
	want=$1 pat=$2
	shift 2
	rc=0
	"$MKFS" "$@" >"$W/mk.out" 2>&1 || rc=$?
	[ "$rc" = "$want" ] ||
		t_fail "mkfs.nwc $*: exit $rc, not $want: $(cat "$W/mk.out")"
	grep -q -e "$pat" "$W/mk.out" ||
		t_fail "mkfs.nwc $*: no '$pat' in: $(cat "$W/mk.out")"
}
# warns PATTERN: the last run warned PATTERN.
warns() {
	grep -q -e "warning: .*$1" "$W/mk.out" ||
		t_fail "no warning '$1' in: $(cat "$W/mk.out")"
}

# --- a Hugging Face cache snapshot ---------------------------------------
t_gen --seed 4 --dtype BF16 "$W/src"
HUB=$W/hub/models--nwc--tiny
mkdir -p "$HUB/blobs" "$HUB/snapshots/0123abcd" "$HUB/refs"
echo 0123abcd >"$HUB/refs/main"
for f in $(cd "$W/src" && find . -type f | sed 's#^\./##'); do
	sum=$(sha256sum "$W/src/$f" | cut -d' ' -f1)
	cp "$W/src/$f" "$HUB/blobs/$sum"
	mkdir -p "$HUB/snapshots/0123abcd/$(dirname "$f")"
	# as the hub does: relative to the link's own directory
	up=$(echo "$f" | sed 's#[^/]*/#../#g; s#[^/]*$##')
	ln -s "$up../../blobs/$sum" "$HUB/snapshots/0123abcd/$f"
done
SNAP=$HUB/snapshots/0123abcd
ln -s config.json "$SNAP/config.link"	# stays inside: stays a link
nfiles=$(cd "$W/src" && find . -type f | wc -l)

mk --lossless "$SNAP" "$W/snap.nwc"
grep -q "^$nfiles symlinks leading out of the model directory stored as the files they point to" \
	"$W/mk.out" || t_fail "snapshot: no summary line for $nfiles files: $(cat "$W/mk.out")"
grep -q "total payload, $nfiles files" "$W/mk.out" ||
	t_fail "snapshot: not $nfiles files packed: $(cat "$W/mk.out")"
"$FSCK" -q -x "$W/x" "$W/snap.nwc" || t_fail "snapshot: fsck.nwc -x failed"
for f in $(cd "$W/src" && find . -type f | sed 's#^\./##'); do
	[ -f "$W/x/$f" ] && [ ! -L "$W/x/$f" ] ||
		t_fail "snapshot: $f is not a regular file in the image"
	cmp -s "$W/src/$f" "$W/x/$f" || t_fail "snapshot: $f differs"
done
[ "$(readlink "$W/x/config.link")" = config.json ] ||
	t_fail "snapshot: the link inside the tree is not a link"
echo "ok: a cache snapshot packs its $nfiles blobs as files; an inner link stays"

mk --lossless --no-dereference "$SNAP" "$W/links.nwc"
grep -q "symlinks leading out" "$W/mk.out" &&
	t_fail "--no-dereference: still dereferenced: $(cat "$W/mk.out")"
"$FSCK" -q -x "$W/xl" "$W/links.nwc" || t_fail "--no-dereference: fsck -x failed"
[ -L "$W/xl/config.json" ] && case $(readlink "$W/xl/config.json") in
	../../blobs/*) true ;; *) false ;; esac ||
	t_fail "--no-dereference: config.json is not the hub's link"
echo "ok: --no-dereference keeps the links"

# The lossy default reads through the links too.
ls "$S"/codec/models/*.nwcm >/dev/null 2>&1 && {
	mk --models "$S/codec/models" --bits 4 "$SNAP" "$W/snap-lossy.nwc"
	grep -q '^lossy: [1-9][0-9]* tensors' "$W/mk.out" ||
		t_fail "snapshot, lossy: no lossy tensor: $(cat "$W/mk.out")"
}

# Mounted, and loaded by transformers.
if [ -x "$NWCFS" ] && [ -e /dev/fuse ] && command -v fusermount3 >/dev/null &&
   command -v mountpoint >/dev/null; then
	t_mount "$W/snap.nwc" "$W/mnt"
	for f in $(cd "$W/src" && find . -type f | sed 's#^\./##'); do
		cmp -s "$W/src/$f" "$W/mnt/$f" || t_fail "mounted snapshot: $f differs"
	done
	PY=''
	for py in ${NWC_PYTHON:-python3 /usr/bin/python3}; do
		command -v "$py" >/dev/null && "$py" -c 'import numpy, torch, safetensors, transformers' \
			2>/dev/null && { PY=$py; break; }
	done
	if [ -n "$PY" ]; then
		HF_HOME=$W/hf "$PY" "$S/tests/framework.py" "$W/src" "$W/mnt" \
			--batch 2 --seq-len 32 2>"$W/py.err" ||
			t_fail "transformers on the mounted snapshot: $(cat "$W/py.err")"
		echo "ok: transformers loads the mounted snapshot, logits bit-identical"
	else
		echo "note: no Python with torch and transformers: not loaded"
	fi
	t_umount "$W/mnt"
else
	echo "note: FUSE unavailable: the snapshot is not mounted"
fi

# --- exclusions and silent no-ops ----------------------------------------
mkdir -p "$W/ex/.git/objects" "$W/ex/sub"
cp "$W/src/model.safetensors" "$W/src/config.json" "$W/ex/"
echo ref >"$W/ex/.git/HEAD"
echo obj >"$W/ex/.git/objects/x"
echo state >"$W/ex/optimizer.pt"
echo state >"$W/ex/sub/rng.pt"
cp "$W/snap.nwc" "$W/ex/old.nwc"
mk --lossless --exclude .git/ --exclude '*.pt' --exclude old.nwc \
	"$W/ex" "$W/ex.nwc"
grep -q "^4 entries left out by --exclude" "$W/mk.out" ||
	t_fail "--exclude: not 4 entries left out: $(cat "$W/mk.out")"
"$FSCK" -q -x "$W/xe" "$W/ex.nwc" || t_fail "--exclude: fsck -x failed"
[ "$(cd "$W/xe" && find . | sort | tr '\n' ' ')" = ". ./config.json ./model.safetensors ./sub " ] ||
	t_fail "--exclude: the image holds $(cd "$W/xe" && find . | sort | tr '\n' ' ')"
grep -q warning "$W/mk.out" && t_fail "--exclude: a warning: $(cat "$W/mk.out")"
echo "ok: --exclude leaves out a directory, a glob in subfolders and a name"

mk --lossless --exclude '*.bin' "$W/ex" "$W/ex2.nwc"
warns "--exclude '\*.bin' matches nothing in .*paths look like '"
if ls "$S"/codec/models/*.nwcm >/dev/null 2>&1; then
	mk --models "$S/codec/models" --keep '*.q_prj.*' --bits '*mlp*=6' \
		"$W/ex" "$W/ex3.nwc"
	warns "--keep '\*.q_prj.\*' matches no tensor (tensor names look like '[a-z]"
	grep -q "bits '\*mlp\*'" "$W/mk.out" &&
		t_fail "a --bits rule that matches warned: $(cat "$W/mk.out")"
fi
mkdir "$W/empty"
bad 1 "empty: no files to pack" --lossless "$W/empty" "$W/e.nwc"
bad 1 "no files to pack (all of them excluded)" --lossless --exclude '*' \
	"$W/ex" "$W/e.nwc"
mkdir "$W/plain"
echo text >"$W/plain/readme.txt"
mk --bits 4 "$W/plain" "$W/plain.nwc"
warns "no .safetensors file: the lossy options do not apply"
echo "ok: unmatched patterns, empty sources and lossy options without tensors"

# --- -f onto a directory -------------------------------------------------
mkdir "$W/isdir"
bad 1 "isdir: exists and is not a regular file" -f --lossless "$W/src" "$W/isdir"
grep -q "total payload" "$W/mk.out" && t_fail "-f onto a directory packed first"
echo "ok: -f onto a directory fails before packing"

# --- an uninstalled mkfs.nwc finds the source tree's models ---------------
if ls "$S"/codec/models/*.nwcm >/dev/null 2>&1; then
	(unset NWC_MODELS_DIR; cd "$W" && "$MKFS" --bits 4 src from-build.nwc) \
		>"$W/mk.out" 2>&1 ||
		t_fail "mkfs.nwc --bits 4 from the build tree: $(cat "$W/mk.out")"
	grep -q '^lossy: [1-9][0-9]* tensors' "$W/mk.out" ||
		t_fail "from the build tree: no lossy tensors: $(cat "$W/mk.out")"
	echo "ok: mkfs.nwc run from the build tree finds $S/codec/models"
fi
exit 0
