#!/bin/sh
# mount-corrupt.sh - mount an image with one flipped byte in a data block:
# reads of that block fail with EIO, every time, and log one line; the
# rest of the file and every other file read back intact; the daemon lives
# on and unmounts cleanly.
. "$top_srcdir/tests/lib.sh"
t_require_fuse
t_require_python
t_workdir

t_gen --seed 5 --dtype F16 --size tiny "$W/model"
m=$W/model
"$MKFS" -q --lossless -b 4K "$m" "$W/good.nwc" || t_fail "mkfs.nwc failed"

# Damage the middle block of the biggest file.
big=$(cd "$m" && find . -type f -printf '%s %P\n' | sort -n | tail -n 1 |
	cut -d' ' -f2-)
blk=$(t_block_of "$W/good.nwc" "/$big") || exit 1
set -- $blk
poff=$1 plen=$2 foff=$3 rlen=$4
[ "$foff" -gt 0 ] || t_fail "$big has a single block; expected several"
cp "$W/good.nwc" "$W/bad.nwc"
t_flip_byte "$W/bad.nwc" $((poff + plen / 2))
rc=0
"$FSCK" -q "$W/bad.nwc" >/dev/null 2>&1 || rc=$?
[ $rc = 3 ] || t_fail "fsck.nwc of the damaged image exited with $rc, not 3"

t_mount "$W/bad.nwc" "$W/mnt"
mnt=$W/mnt
size=$(wc -c <"$m/$big")

# The pages before the damaged block do not touch it: readable, and equal.
python3 - "$m/$big" "$mnt/$big" "$foff" "$rlen" <<'EOF' ||
import os, sys
src, dst, foff, rlen = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
page = os.sysconf("SC_PAGE_SIZE")
head = foff // page * page
with open(src, "rb") as f:
    want = f.read(head)
fd = os.open(dst, os.O_RDONLY)
try:
    got = os.pread(fd, head, 0) if head else b""
    if got != want:
        sys.exit("the %d bytes before the damaged block differ" % head)
    # From inside the damaged block: EIO, never data or a short read.  (A
    # read from before it may legitimately return the bytes up to the page
    # holding the block's first byte.)
    for off, n in ((foff, 1), (foff + rlen // 2, 100), (foff, rlen)):
        try:
            b = os.pread(fd, n, off)
            sys.exit("pread(%d bytes at %d) in the damaged block gave %d "
                     "bytes, not EIO" % (n, off, len(b)))
        except OSError as e:
            if e.errno != 5:
                sys.exit("pread(%d at %d): %s, not EIO" % (n, off, e))
finally:
    os.close(fd)
EOF
	t_fail "reading around the damaged block of $big"

# A whole-file read fails with EIO, twice: the error is not cached.
for i in 1 2; do
	cat "$mnt/$big" >/dev/null 2>"$W/err" &&
		t_fail "cat of damaged $big succeeded (read $i)"
	grep -q 'Input/output error' "$W/err" ||
		t_fail "cat of damaged $big, read $i: $(cat "$W/err")"
done
got=$(stat -c %s "$mnt/$big")
[ "$got" = "$size" ] ||
	t_fail "after the failed reads $big has size $got, not $size"
kill -0 "$PID" 2>/dev/null || t_fail "nwcfs died after a damaged read"

# Every other file is intact.
(cd "$m" && find . -type f ! -path "./$big") >"$W/others"
[ -s "$W/others" ] || t_fail "no other files in the model"
while read -r f; do
	cmp "$m/$f" "$mnt/$f" || t_fail "undamaged $f differs through the mount"
done <"$W/others"

# One log line for the block, however often it was read.
n=$(grep -c 'checksum mismatch' "$W/nwcfs.log")
[ "$n" = 1 ] || t_fail "expected 1 checksum-mismatch line, got $n: \
$(cat "$W/nwcfs.log")"
grep 'checksum mismatch' "$W/nwcfs.log" | grep -q "offset $poff\b" ||
	t_fail "the log line does not name offset $poff: $(cat "$W/nwcfs.log")"

kill -0 "$PID" 2>/dev/null || t_fail "nwcfs died"
t_umount "$mnt"
pgrep -f "nwcfs.*$W" >"$W/pids" && t_fail "nwcfs left running: $(cat "$W/pids")"
echo "mount-corrupt: EIO for block at $poff of /$big, all else intact"

# Truncated while mounted: reads past the new end fail with EIO, four
# readers reading every file three times log one line per lost block
# (not per read), saying that the image is shorter than its tables.
cp "$W/good.nwc" "$W/trunc.nwc"
t_mount "$W/trunc.nwc" "$mnt"
full=$(wc -c <"$W/trunc.nwc")
truncate -s $((full / 2)) "$W/trunc.nwc"
: >"$W/nwcfs.log"
readers=
for r in 1 2 3 4; do
	(for i in 1 2 3; do
		for f in $(cd "$m" && find . -type f); do
			cat "$mnt/$f" >/dev/null 2>&1
		done
	done) &
	readers="$readers $!"
done
wait $readers	# not nwcfs, also a child of this shell
kill -0 "$PID" 2>/dev/null || t_fail "nwcfs died reading a truncated image"
lines=$(grep -c 'block' "$W/nwcfs.log")
short=$(grep -c 'the image is shorter than its tables say' "$W/nwcfs.log")
nblocks=$("$FSCK" -q "$W/good.nwc" >/dev/null 2>&1; \
	"$FSCK" "$W/good.nwc" | sed -n 's/.*inodes, \([0-9]*\) blocks checked.*/\1/p')
[ "$short" -ge 1 ] || t_fail "truncated: no 'shorter than its tables' line: $(head -3 "$W/nwcfs.log")"
[ "$lines" = "$short" ] || t_fail "truncated: other lines: $(grep -v 'shorter than' "$W/nwcfs.log" | head -3)"
[ "$lines" -le "$nblocks" ] ||
	t_fail "truncated: $lines log lines for $nblocks blocks (12 reads of each)"
[ "$(grep 'block' "$W/nwcfs.log" | sort | uniq -d | wc -l)" = 0 ] ||
	t_fail "truncated: a block logged twice"
t_umount "$mnt"
echo "mount-corrupt: truncated while mounted: $lines lines for $lines lost blocks"
exit 0
