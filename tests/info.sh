#!/bin/sh
# info.sh - a lossy image says so, and says how it was made:
#  - nwc info (text and --json) gives the creation time ($SOURCE_DATE_EPOCH,
#    else now), tool and command, each file LOSSY or exact with its
#    tensors' codec, bits per weight and SQNR, and totals that match
#    mkfs.nwc's summary; an image without the INFO section still opens;
#  - fsck.nwc -l marks lossy files;
#  - the mount's extended attributes: user.nwc.codec, .lossy,
#    .bits_per_weight and .sqnr_db on files, .created, .tool and .command
#    on the root, and user.nwcfs.stats counting what was served; they are
#    read-only;
#  - nwcfs refuses to mount over a mount unless -o nonempty, names the
#    image as the file system's source, and logs at the level asked.
. "$top_srcdir/tests/lib.sh"
t_require_python
t_workdir
MD=$S/codec/models
ls "$MD"/*.nwcm >/dev/null 2>&1 || t_skip "no codec models in $MD"

t_gen --seed 2 --dtype BF16 "$W/model"
"$MKFS" --models "$MD" --bits 4 "$W/model" "$W/lossy.nwc" >"$W/mk.out" 2>&1 ||
	t_fail "mkfs.nwc --bits 4: $(cat "$W/mk.out")"
"$MKFS" -q --lossless "$W/model" "$W/exact.nwc" || t_fail "mkfs.nwc --lossless"

# --- nwc info -----------------------------------------------------------
"$NWC" info "$W/lossy.nwc" >"$W/info" 2>&1 || t_fail "nwc info: $(cat "$W/info")"
grep -q '^created:    2023-11-14T22:13:20Z$' "$W/info" ||
	t_fail "nwc info: not created at SOURCE_DATE_EPOCH: $(grep created "$W/info")"
grep -q '^command:    mkfs.nwc --bits=4 --quant=tcq --models=models --block-size=262144 --level=3 MODEL_DIR IMAGE$' \
	"$W/info" || t_fail "nwc info: command: $(grep command "$W/info")"
grep -q '^LOSSY .* /model.safetensors$' "$W/info" ||
	t_fail "nwc info: the model file is not LOSSY: $(cat "$W/info")"
grep -q '^exact .* /config.json$' "$W/info" ||
	t_fail "nwc info: config.json is not exact"
grep -Eq '^    BF16  nwc/m[0-9]+ +[0-9.]+ +[0-9.]+ dB  model.layers.0.mlp.up_proj.weight$' \
	"$W/info" || t_fail "nwc info: no lossy tensor line: $(cat "$W/info")"
# The totals are mkfs.nwc's.
mk=$(sed -n 's/^lossy: \([0-9]*\) tensors, \([0-9]*\) weights, \([0-9.]*\) bits\/weight .*, SQNR \([0-9.]*\) dB.*/\1 \2 \3 \4/p' "$W/mk.out")
ni=$(sed -n 's/^lossy:      \([0-9]*\) tensors, \([0-9]*\) weights, \([0-9.]*\) bits\/weight, SQNR \([0-9.]*\) dB$/\1 \2 \3 \4/p' "$W/info")
[ -n "$mk" ] && [ "$mk" = "$ni" ] ||
	t_fail "nwc info totals '$ni' are not mkfs.nwc's '$mk'"
"$NWC" info --json "$W/lossy.nwc" >"$W/info.json" || t_fail "nwc info --json"
python3 - "$W/info.json" <<'EOF' || t_fail "nwc info --json is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["created"] == "2023-11-14T22:13:20Z", d["created"]
assert d["command"].startswith("mkfs.nwc --bits=4"), d["command"]
files = {f["path"]: f for f in d["files"]}
m = files["/model.safetensors"]
assert m["lossy"] and not files["/config.json"]["lossy"]
lossy = [t for t in m["tensors"] if t["lossy"]]
assert lossy and all(t["sqnr_db"] > 5 and 2 < t["bits_per_weight"] < 8
                     for t in lossy), lossy
assert all(t["sqnr_db"] == "exact" for t in m["tensors"] if not t["lossy"])
assert d["totals"]["lossy_tensors"] == len(lossy)
EOF
"$NWC" info "$W/exact.nwc" >"$W/info" || t_fail "nwc info of a lossless image"
grep -q '^lossy:      none: every file is exact$' "$W/info" ||
	t_fail "nwc info of a lossless image: $(tail -2 "$W/info")"
grep -q '^LOSSY' "$W/info" && t_fail "nwc info: a lossless image has a LOSSY file"
(unset SOURCE_DATE_EPOCH; "$MKFS" -q --lossless "$W/model" "$W/now.nwc") ||
	t_fail "mkfs.nwc without SOURCE_DATE_EPOCH"
today=$(date -u +%Y-%m-%d)
"$NWC" info "$W/now.nwc" | grep -q "^created:    ${today}T" ||
	t_fail "without SOURCE_DATE_EPOCH the image was not created today"
# An image without INFO (gen_deep writes none) still opens.
"$B/tests/gen_deep" 2 "$W/old.nwc" || t_fail "gen_deep"
"$NWC" info "$W/old.nwc" >"$W/info" || t_fail "nwc info of an image without INFO"
grep -q '^created:    unknown' "$W/info" || t_fail "no INFO: $(head -3 "$W/info")"
echo "ok: nwc info and --json: creation, command, LOSSY/exact files, tensors, totals"

"$FSCK" -l "$W/lossy.nwc" | grep -q ' LOSSY  *[^ ]*/model.safetensors$\| LOSSY .*/model.safetensors$' ||
	t_fail "fsck.nwc -l does not mark the lossy file: $("$FSCK" -l "$W/lossy.nwc")"
"$FSCK" -l "$W/exact.nwc" | grep -q LOSSY && t_fail "fsck.nwc -l marks an exact file"
echo "ok: fsck.nwc -l marks lossy files"

# --- the mount ------------------------------------------------------------
(t_require_fuse) >/dev/null 2>&1 || { echo "note: FUSE unavailable: xattrs not checked"; exit 0; }
t_mount "$W/lossy.nwc" "$W/mnt" -o loglevel=debug
grep -q "^$W/lossy.nwc $W/mnt fuse.nwcfs " /proc/mounts ||
	t_fail "the mount's source is not the image: $(grep "$W/mnt" /proc/mounts)"
cat "$W/mnt/model.safetensors" "$W/mnt/config.json" >/dev/null
python3 - "$W/mnt" "$W/info.json" <<'EOF' || t_fail "extended attributes"
import errno, json, os, sys
mnt, d = sys.argv[1], json.load(open(sys.argv[2]))
def x(p, a):
    return os.getxattr(os.path.join(mnt, p), a).decode()
files = {f["path"]: f for f in d["files"]}
m = files["/model.safetensors"]
assert "nwc" in x("model.safetensors", "user.nwc.codec").split("+")
assert x("model.safetensors", "user.nwc.lossy") == "yes"
bits = float(x("model.safetensors", "user.nwc.bits_per_weight"))
assert abs(bits - d["totals"]["bits_per_weight"]) < 1e-3, bits
sq = float(x("model.safetensors", "user.nwc.sqnr_db"))
assert abs(sq - d["totals"]["sqnr_db"]) < 0.01, sq
assert x("config.json", "user.nwc.lossy") == "no"
assert x("config.json", "user.nwc.codec") == "planes"
for a in ("user.nwc.bits_per_weight", "user.nwc.sqnr_db"):
    try:
        x("config.json", a)
        sys.exit("an exact file has " + a)
    except OSError as e:
        assert e.errno == errno.ENODATA, e
assert set(os.listxattr(os.path.join(mnt, "config.json"))) == \
    {"user.nwc.codec", "user.nwc.lossy"}
assert x("", "user.nwc.created") == "2023-11-14T22:13:20Z"
assert x("", "user.nwc.command") == d["command"]
assert x("", "user.nwc.tool").startswith("mkfs.nwc (nwcfs)")
st = dict(l.split("=") for l in x("", "user.nwcfs.stats").split())
size = sum(f["size"] for p, f in files.items()
           if p in ("/model.safetensors", "/config.json"))
assert int(st["bytes_served"]) >= size, st
assert int(st["blocks_decoded"]) > 0 and int(st["errors"]) == 0, st
# files read whole: their blocks left the cache as soon as they were served
assert int(st["cache_used_up"]) > 0, st
assert float(st["decode_cpu_seconds"]) >= 0, st
try:
    os.setxattr(os.path.join(mnt, "config.json"), "user.nwc.lossy", b"no")
    sys.exit("setxattr succeeded")
except OSError as e:
    assert e.errno in (errno.EROFS, errno.EPERM, errno.ENOTSUP), e
EOF
grep -q 'debug: open /model.safetensors' "$W/nwcfs.log" ||
	t_fail "-o loglevel=debug logged no open: $(head -3 "$W/nwcfs.log")"
grep -q 'debug: decoded block' "$W/nwcfs.log" ||
	t_fail "-o loglevel=debug logged no decode"
grep -q "lossy.nwc: [0-9]* inodes, [0-9]* blocks" "$W/nwcfs.log" ||
	t_fail "no opening line at debug level"
echo "ok: xattrs of files and root, stats, read-only, debug log"

# Mounting over a mount: refused, unless asked.
rc=0
"$NWCFS" "$W/exact.nwc" "$W/mnt" >"$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "lossy.nwc (fuse.nwcfs) is mounted there already" "$W/out" ||
	t_fail "mounting over a mount: exit $rc: $(cat "$W/out")"
[ "$(grep -c " $W/mnt " /proc/mounts)" = 1 ] || t_fail "a second mount was stacked"
pid1=$PID
t_mount "$W/exact.nwc" "$W/mnt" -o nonempty
# The mount point was one already: wait for the second mount itself.
i=0
while [ "$(grep -c " $W/mnt " /proc/mounts)" != 2 ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ "$(grep -c " $W/mnt " /proc/mounts)" = 2 ] || t_fail "-o nonempty did not stack"
t_umount "$W/mnt"
PID=$pid1
t_umount "$W/mnt"
echo "ok: nwcfs refuses to stack mounts unless -o nonempty"
