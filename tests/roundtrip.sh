#!/bin/sh
# roundtrip.sh - pack generated models (F32, BF16, F16) and the shared real
# model with mkfs.nwc, verify and extract them with fsck.nwc, and compare
# the tree byte for byte, with modes, mtimes and link targets; check that
# images do not depend on --jobs or on the source path, and that
# fsck.nwc -l -t lists exactly the tensors of every safetensors header.
. "$top_srcdir/tests/lib.sh"
t_require_python
t_workdir

# meta DIR: one line per entry of DIR: path, type, size (not for
# directories), mode, mtime with nanoseconds, link target.
meta() {
	(cd "$1" && {
		find . -type d -exec stat -c '%n %F %a %y' {} +
		find . ! -type d -exec stat -c '%n %F %s %a %y' {} +
		find . -type l -exec stat -c '%N' {} +
	}) | sort
}

# same_tree SRC DST: DST holds exactly what SRC holds.
same_tree() {
	diff -r --no-dereference "$1" "$2" >"$W/diff" 2>&1 ||
		t_fail "extracted tree $2 differs from $1: $(head -n 20 "$W/diff")"
	meta "$1" >"$W/meta.src"
	meta "$2" >"$W/meta.dst"
	diff "$W/meta.src" "$W/meta.dst" >"$W/diff" ||
		t_fail "types, modes, mtimes or links of $2 differ from $1: \
$(head -n 20 "$W/diff")"
}

# tensors_src DIR: "/path name dtype [shape] bytes" for every tensor of
# every .safetensors file under DIR, read from the headers.
tensors_src() {
	python3 - "$1" <<'EOF'
import json, os, struct, sys
top = sys.argv[1]
for root, dirs, files in os.walk(top):
    for f in files:
        p = os.path.join(root, f)
        if not f.endswith(".safetensors") or os.path.islink(p):
            continue
        with open(p, "rb") as fh:
            n, = struct.unpack("<Q", fh.read(8))
            hdr = json.loads(fh.read(n))
        for name, t in hdr.items():
            if name == "__metadata__":
                continue
            a, b = t["data_offsets"]
            print("/%s %s %s [%s] %d" % (os.path.relpath(p, top), name,
                  t["dtype"], ",".join(str(d) for d in t["shape"]), b - a))
EOF
}

# tensors_img IMG: the same lines, from fsck.nwc -l -t: a file line starts
# with its mode ("-0644"), a tensor line with four spaces.
tensors_img() {
	"$FSCK" -l -t "$1" >"$W/list" || t_fail "fsck.nwc -l -t $1 failed"
	awk '/^-/ { path = $NF }
	     /^    / { print path, $NF, $1, $2, $3 }' "$W/list"
}

# check_image SRC IMG: fsck passes quietly and loudly (one "ok" per
# regular file), extraction gives SRC back, the tensor list matches.
check_image() {
	src=$1 img=$2 x=$W/x
	rc=0
	"$FSCK" -q "$img" >"$W/fsck.out" 2>&1 || rc=$?
	[ $rc = 0 ] || t_fail "fsck.nwc -q $img exited with $rc: \
$(cat "$W/fsck.out")"
	[ -s "$W/fsck.out" ] && t_fail "fsck.nwc -q $img printed: \
$(cat "$W/fsck.out")"
	"$FSCK" "$img" >"$W/fsck.out" 2>&1 || t_fail "fsck.nwc $img failed"
	grep '^ok ' "$W/fsck.out" | awk '{ print $2 }' | sort >"$W/ok"
	(cd "$src" && find . -type f | sed 's/^\.//' | sort) >"$W/files"
	diff "$W/files" "$W/ok" >"$W/diff" ||
		t_fail "fsck.nwc $img did not report each file ok: $(cat "$W/diff")"
	rm -rf "$x"
	"$FSCK" -q -x "$x" "$img" >"$W/fsck.out" 2>&1 ||
		t_fail "fsck.nwc -x $x $img failed: $(cat "$W/fsck.out")"
	same_tree "$src" "$x"
	chmod -R u+w "$x"	# read-only directories come back read-only
	rm -rf "$x"
	tensors_src "$src" | sort >"$W/t.src" || t_fail "cannot parse $src"
	tensors_img "$img" | sort >"$W/t.img"
	[ -s "$W/t.src" ] || t_fail "no tensors in $src"
	diff "$W/t.src" "$W/t.img" >"$W/diff" ||
		t_fail "fsck.nwc -l -t $img: tensors differ from the headers \
(< header, > listing): $(head -n 20 "$W/diff")"
}

seed=1
for dt in F32 BF16 F16; do
	m=$W/model-$dt
	t_gen --seed $seed --dtype $dt --size tiny "$m"
	seed=$((seed + 1))
	[ -n "$(find "$m" -name '*.safetensors')" ] ||
		t_fail "gen_model wrote no .safetensors into $m"
	"$MKFS" -q --lossless "$m" "$W/$dt.nwc" || t_fail "mkfs.nwc $m failed"
	check_image "$m" "$W/$dt.nwc"
	echo "roundtrip: $dt model ok"
done

# Determinism: the same tree gives the same bytes whatever --jobs, and
# wherever the tree lies; other block sizes still give the same tree back.
m=$W/model-BF16
for bs in 4K 64K; do
	"$MKFS" -q --lossless -j1 -b $bs "$m" "$W/j1.nwc" ||
		t_fail "mkfs.nwc -j1 -b $bs"
	"$MKFS" -q --lossless -j2 -b $bs "$m" "$W/j2.nwc" ||
		t_fail "mkfs.nwc -j2 -b $bs"
	cmp "$W/j1.nwc" "$W/j2.nwc" ||
		t_fail "mkfs.nwc -b $bs: -j1 and -j2 images differ"
	check_image "$m" "$W/j1.nwc"
	mv "$W/j1.nwc" "$W/b$bs.nwc"
	rm -f "$W/j2.nwc"
done
cmp -s "$W/b4K.nwc" "$W/b64K.nwc" && t_fail "-b 4K and -b 64K images are equal"
cp -a "$m" "$W/elsewhere"
"$MKFS" -q --lossless -j2 -b 4K "$W/elsewhere" "$W/elsewhere.nwc" ||
	t_fail "mkfs.nwc copy"
cmp "$W/b4K.nwc" "$W/elsewhere.nwc" ||
	t_fail "a copy of the tree (cp -a) at another path gave another image"
"$MKFS" -q --lossless -l 19 -b 4K "$m" "$W/l19.nwc" || t_fail "mkfs.nwc -l 19"
check_image "$m" "$W/l19.nwc"
echo "roundtrip: deterministic across -j, paths; -b 4K, 64K, -l 19 ok"

if [ -d "$SHARED_MODEL" ]; then
	"$MKFS" -q --lossless "$SHARED_MODEL" "$W/real.nwc" ||
		t_fail "mkfs.nwc $SHARED_MODEL failed"
	check_image "$SHARED_MODEL" "$W/real.nwc"
	echo "roundtrip: $SHARED_MODEL ok"
else
	echo "roundtrip: note: $SHARED_MODEL absent, real model not checked"
fi
exit 0
