#!/bin/sh
# demo.sh - the main job on an embedded default: generate a small Llama-like
# model, pack it lossy (the default: the neural codec at 5 bits per weight)
# and lossless, mount both, and check what each serves: the lossless image
# the source's bytes, the lossy one the same files and headers with its
# weight matrices close to the source's (SQNR printed) and every other
# tensor exact.  Run by `make demo`; the mounts are left to fsck.nwc -x
# where FUSE is unavailable.
. "$top_srcdir/tests/lib.sh"

t_require_python
t_workdir

echo "== generating a small BF16 Llama-style model in $W/model"
"$GEN" --seed 1 --dtype BF16 "$W/model" || t_fail "gen_model failed"
ls -l "$W/model"

echo
echo "== mkfs.nwc $W/model $W/lossy.nwc   (lossy, the default)"
"$MKFS" --no-progress "$W/model" "$W/lossy.nwc" || t_fail "mkfs.nwc failed"
echo "(A model this small is dwarfed by the codec models the lossy image"
echo "carries, a few KB each; on real models the image is about half the"
echo "size of BF16 at 4-5 bits per weight: README, Lossy images.)"
echo
echo "== mkfs.nwc --lossless $W/model $W/lossless.nwc"
"$MKFS" --lossless --no-progress "$W/model" "$W/lossless.nwc" ||
	t_fail "mkfs.nwc --lossless failed"

echo
echo "== fsck.nwc: both images intact"
"$FSCK" -q "$W/lossy.nwc" || t_fail "fsck.nwc found damage in lossy.nwc"
"$FSCK" -q "$W/lossless.nwc" || t_fail "fsck.nwc found damage in lossless.nwc"

# serve NAME: mount (or extract) $W/NAME.nwc at $W/mnt-NAME.
MOUNTED=
serve() {
	if (t_require_fuse) >/dev/null 2>&1; then
		echo "== nwcfs $W/$1.nwc $W/mnt-$1"
		t_mount "$W/$1.nwc" "$W/mnt-$1"
		MOUNTED="$MOUNTED $PID:$W/mnt-$1"
	else
		echo "== FUSE unavailable; fsck.nwc -x $W/mnt-$1 $W/$1.nwc"
		"$FSCK" -q -x "$W/mnt-$1" "$W/$1.nwc" || t_fail "extract failed"
	fi
}
serve lossless
serve lossy

echo
echo "== reading back through the mounts"
python3 - "$W/model" "$W/mnt-lossless" "$W/mnt-lossy" <<'PY' ||
import json, math, os, struct, sys

src, exact, lossy = sys.argv[1:4]

def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = f.read(n)
        data = f.read()
    meta = json.loads(hdr)
    meta.pop("__metadata__", None)
    return hdr, meta, data

def values(t, data):
    b, e = t["data_offsets"]
    raw = data[b:e]
    if t["dtype"] == "BF16":
        return [struct.unpack("<f", struct.pack("<I", v << 16))[0]
                for v in struct.unpack("<%dH" % (len(raw) // 2), raw)]
    if t["dtype"] == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    return None

for root, _, files in os.walk(src):
    for f in sorted(files):
        rel = os.path.relpath(os.path.join(root, f), src)
        a = open(os.path.join(src, rel), "rb").read()
        if open(os.path.join(exact, rel), "rb").read() != a:
            sys.exit("lossless: %s differs from the source" % rel)
        if os.path.getsize(os.path.join(lossy, rel)) != len(a):
            sys.exit("lossy: %s has another size" % rel)
print("lossless image: every file identical to the source")

hs, ms, ds = tensors(os.path.join(src, "model.safetensors"))
hl, ml, dl = tensors(os.path.join(lossy, "model.safetensors"))
if hs != hl:
    sys.exit("lossy: the safetensors header differs")
coded = same = 0
sig = err = 0.0
for name, t in sorted(ms.items()):
    b, e = t["data_offsets"]
    if ds[b:e] == dl[b:e]:
        same += 1
        continue
    x, y = values(t, ds), values(t, dl)
    if x is None or len(t["shape"]) != 2:
        sys.exit("lossy: %s (%s %s) changed" % (name, t["dtype"], t["shape"]))
    coded += 1
    s = sum(v * v for v in x)
    d = sum((u - v) ** 2 for u, v in zip(x, y))
    sig += s
    err += d
    if coded <= 3:
        print("  %-42s %s %s: SQNR %.1f dB" % (name, t["dtype"], t["shape"],
              10 * math.log10(s / d) if d else float("inf")))
if not coded:
    sys.exit("lossy: no tensor was coded lossily")
db = 10 * math.log10(sig / err)
print("lossy image: same files and header; %d weight matrices within "
      "SQNR %.1f dB of the source, %d tensors exact" % (coded, db, same))
if db < 10:
    sys.exit("lossy: SQNR %.1f dB is below 10 dB" % db)
PY
	t_fail "what the mounts serve is wrong"

for m in $MOUNTED; do
	echo "== unmounting ${m#*:}"
	PID=${m%%:*}
	t_umount "${m#*:}"
done
echo "demo: OK"
