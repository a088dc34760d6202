# lib.sh - helpers for the shell tests and benchmarks; source it first.
# It sets LC_ALL=C and SOURCE_DATE_EPOCH, and makes $top_srcdir and
# $top_builddir absolute.
#
#   t_skip REASON       print "SKIP: REASON" and exit 77
#   t_fail MESSAGE      print "FAIL: MESSAGE" and exit 1
#   t_workdir           make $W, a temporary directory removed on exit
#                       (unmounting $W/mnt* and killing $NWC_PIDS first)
#   t_require_fuse      skip unless nwcfs is built and FUSE mounts can work
#   t_mount IMG MNT [opts...]   start nwcfs -f, wait until mounted, set $PID
#   t_umount MNT        unmount, and fail unless the daemon exits cleanly
#   t_require_python    skip unless python3 is on PATH
#   t_gen ARGS...       run gen_model ARGS; skip if it is still a placeholder
#   t_block_of IMG PATH print "POFF PLEN FOFF RLEN" for a middle block of the
#                       file PATH ("/dir/name") in IMG: where its stored
#                       payload lies in IMG, and which bytes of PATH it holds
#   t_flip_byte FILE OFF  invert every bit of the byte at offset OFF of FILE
set -u
LC_ALL=C
export LC_ALL
# Images record their creation time; a fixed one makes them reproducible
# (as for reproducible builds), so that tests can compare them.
SOURCE_DATE_EPOCH=1700000000
export SOURCE_DATE_EPOCH

top_srcdir=$(cd "${top_srcdir:-.}" && pwd) || exit 1
top_builddir=$(cd "${top_builddir:-.}" && pwd) || exit 1
B=$top_builddir
S=$top_srcdir
MKFS=$B/mkfs/mkfs.nwc
NWC=$B/mkfs/tools/nwc
TRAIN=$B/mkfs/tools/nwc-train
FSCK=$B/fs/fsck.nwc
NWCFS=$B/fs/nwcfs
GEN=$B/tests/gen_model
SHARED_MODEL=${NWC_SHARED:-$S/../shared}/models/stories260K-hf
NWC_PIDS=

t_skip() { echo "SKIP: $*" >&2; exit 77; }
t_fail() { echo "FAIL: $*" >&2; exit 1; }

t_cleanup() {
	for m in "$W"/mnt*; do
		[ -d "$m" ] && mountpoint -q "$m" 2>/dev/null &&
			{ fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
	done
	for p in $NWC_PIDS; do kill "$p" 2>/dev/null; done
	rm -rf "$W"
}

t_workdir() {
	W=$(mktemp -d "${TMPDIR:-/tmp}/nwctest.XXXXXX") || t_fail "mktemp"
	trap t_cleanup EXIT
	trap 'exit 1' INT TERM
}

t_require_fuse() {
	[ -x "$NWCFS" ] || t_skip "nwcfs not built (configured without fuse3)"
	[ -e /dev/fuse ] || t_skip "no /dev/fuse (FUSE module not loaded)"
	FM=$(command -v fusermount3) || t_skip "no fusermount3 on PATH"
	[ "$(id -u)" = 0 ] || [ -u "$FM" ] ||
		t_skip "$FM is not setuid and we are not root"
	command -v mountpoint >/dev/null || t_skip "no mountpoint(1)"
}

# Poll until $2 is a mountpoint, for at most 20 s; give up if nwcfs died.
t_wait_mounted() {
	i=0
	while [ $i -lt 200 ]; do
		mountpoint -q "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

t_mount() {
	img=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	"$NWCFS" -f "$img" "$mnt" "$@" 2>>"$W/nwcfs.log" &
	PID=$!
	NWC_PIDS="$NWC_PIDS $PID"
	if ! t_wait_mounted "$mnt" "$PID"; then
		grep -q -e 'fuse: device not found' -e 'Operation not permitted' \
			"$W/nwcfs.log" 2>/dev/null &&
			t_skip "FUSE mount refused here: $(head -n1 "$W/nwcfs.log")"
		t_fail "nwcfs did not mount $img: $(cat "$W/nwcfs.log")"
	fi
}

t_umount() {
	fusermount3 -u "$1" || t_fail "fusermount3 -u $1 failed"
	i=0
	while kill -0 "$PID" 2>/dev/null; do
		[ $i -ge 100 ] && t_fail "nwcfs still running 10 s after unmount"
		sleep 0.1
		i=$((i + 1))
	done
	wait "$PID" || t_fail "nwcfs exited with status $?"
}

t_require_python() {
	command -v python3 >/dev/null || t_skip "python3 not on PATH"
}

t_gen() {
	rc=0
	"$GEN" "$@" >"$W/gen.log" 2>&1 || rc=$?
	[ $rc = 77 ] && t_skip "gen_model: $(cat "$W/gen.log")"
	[ $rc = 0 ] || t_fail "gen_model $* exited with $rc: $(cat "$W/gen.log")"
}

# Reads the superblock, section directory, INODES, EXTENTS and BLOCKS
# sections as codec/image/format.h lays them out; checksums are not verified.
t_block_of() {
	python3 - "$1" "$2" <<'EOF' || t_fail "t_block_of $1 $2 failed"
import struct, sys
img, path = sys.argv[1], sys.argv[2]
with open(img, "rb") as f:
    b = f.read()
dir_off, = struct.unpack_from("<Q", b, 56)
dir_count, = struct.unpack_from("<I", b, 64)
sect = {}
for i in range(dir_count):
    t, _, off, ln, _ = struct.unpack_from("<IIQQQ", b, dir_off + 32 * i)
    sect[t] = (off, ln)
strings = sect[1][0]
def inode(i):
    return struct.unpack_from("<IIIIqIIQII", b, sect[2][0] + 48 * i)
ino = 0
for comp in path.strip("/").split("/"):
    first, count = inode(ino)[8:10]
    for c in range(first, first + count):
        no, nl = inode(c)[2:4]
        if b[strings + no:strings + no + nl] == comp.encode():
            ino = c
            break
    else:
        sys.exit("%s: no %s in %s" % (img, comp, path))
first, count = inode(ino)[8:10]
blocks = []
for e in range(first, first + count):
    foff, ln, fb, nb, bl = struct.unpack_from("<QQIII", b, sect[3][0] + 48 * e)
    for j in range(nb):
        poff, plen, rlen = struct.unpack_from("<QII", b, sect[4][0] + 24 * (fb + j))
        blocks.append((poff, plen, foff + j * bl, rlen))
if not blocks:
    sys.exit("%s: %s has no blocks" % (img, path))
print("%d %d %d %d" % blocks[len(blocks) // 2])
EOF
}

t_flip_byte() {
	python3 - "$1" "$2" <<'EOF' || t_fail "t_flip_byte $1 $2 failed"
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    c = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([c[0] ^ 0xff]))
EOF
}
