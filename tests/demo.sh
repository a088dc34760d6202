#!/bin/sh
# demo.sh - the main job on an embedded default: generate a small Llama-like
# model, pack it, mount it, read a tensor back through the mount and check
# it against the source, unmount.  Run by `make demo`.
. "$top_srcdir/tests/lib.sh"

t_workdir
TENSOR=model.layers.0.self_attn.q_proj.weight

echo "== generating a small BF16 Llama-style model in $W/model"
"$GEN" --seed 1 --dtype BF16 "$W/model" || t_fail "gen_model failed"
ls -l "$W/model"

echo "== mkfs.nwc $W/model $W/model.nwc"
"$MKFS" --lossless --no-progress "$W/model" "$W/model.nwc" ||
	t_fail "mkfs.nwc failed"

echo "== fsck.nwc $W/model.nwc"
"$FSCK" -q "$W/model.nwc" || t_fail "fsck.nwc found damage"

if (t_require_fuse) >/dev/null 2>&1; then
	echo "== nwcfs $W/model.nwc $W/mnt"
	t_mount "$W/model.nwc" "$W/mnt"
	SRC=$W/model/model.safetensors
	DST=$W/mnt/model.safetensors
else
	echo "== FUSE unavailable here; extracting with fsck.nwc -x instead"
	"$FSCK" -q -x "$W/out" "$W/model.nwc" || t_fail "extract failed"
	SRC=$W/model/model.safetensors
	DST=$W/out/model.safetensors
fi

echo "== reading tensor $TENSOR back"
python3 - "$SRC" "$DST" "$TENSOR" <<'PY' || t_fail "tensor read back differs"
import json, struct, sys

def tensor(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        t = hdr[name]
        b, e = t["data_offsets"]
        f.seek(8 + n + b)
        return t, f.read(e - b)

src_t, src = tensor(sys.argv[1], sys.argv[3])
dst_t, dst = tensor(sys.argv[2], sys.argv[3])
vals = [struct.unpack("<f", struct.pack("<I", v << 16))[0]
        for v in struct.unpack("<4H", dst[:8])]
print("  %s %s %s, %d bytes, first values %s" % (sys.argv[3], dst_t["dtype"],
      dst_t["shape"], len(dst), " ".join("%.5f" % v for v in vals)))
if src_t != dst_t or src != dst:
    sys.exit("  MISMATCH between %s and %s" % (sys.argv[1], sys.argv[2]))
print("  identical to the source tensor")
PY

if [ -n "${PID:-}" ]; then
	echo "== unmounting"
	t_umount "$W/mnt"
fi
echo "demo: OK"
