#!/bin/sh
# mount-real.sh - pack the real model (stories260K) and mount it: every
# file byte for byte, model.safetensors through mmap, and, when the
# safetensors and numpy packages are there, every tensor loaded from the
# mount equal to the same tensor loaded from the source.
. "$top_srcdir/tests/lib.sh"
t_require_fuse
t_require_python
[ -d "$SHARED_MODEL" ] ||
	t_skip "real model $SHARED_MODEL absent (set NWC_SHARED to the \
directory that holds models/stories260K-hf)"
t_workdir
m=$SHARED_MODEL

"$MKFS" -q --lossless "$m" "$W/real.nwc" || t_fail "mkfs.nwc $m failed"
t_mount "$W/real.nwc" "$W/mnt"
mnt=$W/mnt

(cd "$m" && find . -type f | sort) >"$W/files"
grep -q '\.safetensors$' "$W/files" || t_fail "no .safetensors in $m"
while read -r f; do
	cmp "$m/$f" "$mnt/$f" || t_fail "$f differs through the mount"
done <"$W/files"
python3 "$S/tests/readcheck.py" "$m" "$mnt" --mmap --random 200 --seed 2 \
	--block-size 1048576 || t_fail "readcheck.py found a difference"

if python3 -c 'import numpy, safetensors.numpy' 2>/dev/null; then
	python3 - "$m" "$mnt" <<'EOF' || t_fail "tensors differ through the mount"
import os, sys
import numpy as np
from safetensors.numpy import load_file
src, mnt = sys.argv[1], sys.argv[2]
n = 0
for root, dirs, files in os.walk(src):
    for f in sorted(files):
        if not f.endswith(".safetensors"):
            continue
        rel = os.path.relpath(os.path.join(root, f), src)
        want = load_file(os.path.join(src, rel))
        got = load_file(os.path.join(mnt, rel))
        if sorted(want) != sorted(got):
            sys.exit("%s: tensor names differ" % rel)
        for name, t in want.items():
            g = got[name]
            if t.dtype != g.dtype or t.shape != g.shape or \
                    t.tobytes() != g.tobytes():
                sys.exit("%s: tensor %s differs" % (rel, name))
            n += 1
if not n:
    sys.exit("no tensors loaded")
print("mount-real: %d tensors equal through safetensors.numpy" % n)
EOF
else
	echo "mount-real: note: python3 packages numpy and safetensors not" \
		"importable; tensor-level comparison skipped"
fi

t_umount "$mnt"
pgrep -f "nwcfs.*$W" >"$W/pids" && t_fail "nwcfs left running: $(cat "$W/pids")"
exit 0
