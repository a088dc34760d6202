#!/bin/sh
# extract.sh - fsck.nwc on trees of any depth and on chosen paths:
#  - an image of a tree 5000 directories deep (tests/gen_deep: deeper than
#    PATH_MAX allows a path) verifies, lists and extracts, and the mount
#    serves its bottom file;
#  - fsck.nwc -x DIR IMAGE PATH... extracts only those files and trees
#    (with the directories that lead to them); a PATH not in the image is
#    a usage error;
#  - extraction clears set-user/group-ID bits unless --preserve-setid;
#  - names with control characters are printed escaped by fsck.nwc (check,
#    list) and by mkfs.nwc's summary.
. "$top_srcdir/tests/lib.sh"
t_require_python
t_workdir
DEEP=$B/tests/gen_deep
[ -x "$DEEP" ] || t_fail "tests/gen_deep not built"

"$DEEP" 5000 "$W/deep.nwc" || t_fail "gen_deep failed"

# leaf ROOT: the bottom file's text, 5000 directories under ROOT.
leaf() {
	python3 - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for _ in range(5000):
    nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
f = os.open("leaf.txt", os.O_RDONLY, dir_fd=fd)
sys.stdout.write(os.read(f, 100).decode())
EOF
}

"$FSCK" "$W/deep.nwc" >"$W/out" 2>&1 || t_fail "fsck.nwc of the deep tree: $(tail -3 "$W/out")"
grep -q "5004 inodes, 3 blocks checked, 0 damaged" "$W/out" ||
	t_fail "fsck.nwc of the deep tree: $(tail -1 "$W/out")"
grep -q '^ok      /bell\\x07\\x0aname$' "$W/out" ||
	t_fail "fsck.nwc did not escape a name: $(grep -a bell "$W/out")"
"$FSCK" -l "$W/deep.nwc" >"$W/list" 2>&1 || t_fail "fsck.nwc -l of the deep tree"
grep -q ' /bell\\x07\\x0aname$' "$W/list" ||
	t_fail "fsck.nwc -l did not escape a name: $(grep -a bell "$W/list")"
"$FSCK" -q -x "$W/x" "$W/deep.nwc" || t_fail "fsck.nwc -x of the deep tree"
[ "$(leaf "$W/x")" = bottom ] || t_fail "the extracted bottom file is wrong"
mode=$(stat -c %a "$W/x/suid")
[ "$mode" = 755 ] || t_fail "extraction kept set-ID bits: mode $mode"
echo "ok: a tree 5000 deep verifies, lists and extracts; set-ID bits cleared"

"$FSCK" -q --preserve-setid -x "$W/xs" "$W/deep.nwc" /suid ||
	t_fail "fsck.nwc --preserve-setid -x"
mode=$(stat -c %a "$W/xs/suid")
[ "$mode" = 4755 ] || t_fail "--preserve-setid: mode $mode"
[ "$(ls -A "$W/xs")" = suid ] || t_fail "-x /suid extracted $(ls -A "$W/xs")"

"$FSCK" -q -x "$W/xp" "$W/deep.nwc" /d/d/d ||
	t_fail "fsck.nwc -x of a subtree"
[ "$(ls -A "$W/xp")" = d ] && [ "$(ls -A "$W/xp/d/d")" = d ] ||
	t_fail "-x /d/d/d: not just the way to the subtree"
[ "$(leaf "$W/xp")" = bottom ] || t_fail "-x /d/d/d: the subtree is incomplete"
rc=0
"$FSCK" -q -x "$W/xn" "$W/deep.nwc" /nothing >"$W/out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "/nothing: not in the image" "$W/out" ||
	t_fail "a PATH not in the image: exit $rc: $(cat "$W/out")"
[ -e "$W/xn" ] && t_fail "a PATH not in the image created $W/xn"
echo "ok: fsck.nwc -x DIR IMAGE PATH... extracts only those paths"

if (t_require_fuse) >/dev/null 2>&1; then
	t_mount "$W/deep.nwc" "$W/mnt"
	[ "$(leaf "$W/mnt")" = bottom ] || t_fail "the mount's bottom file is wrong"
	t_umount "$W/mnt"
	echo "ok: the mount serves the bottom of the deep tree"
fi

mkdir "$W/ctl"
printf 'x' >"$W/ctl/$(printf 'tab\tname')"
"$MKFS" --lossless "$W/ctl" "$W/ctl.nwc" >"$W/out" 2>&1 ||
	t_fail "mkfs.nwc of a control-character name: $(cat "$W/out")"
grep -q ' tab\\x09name$' "$W/out" ||
	t_fail "mkfs.nwc's summary did not escape a name: $(cat "$W/out")"
# and so do the log lines: a warning about a FIFO with a newline in its name
mkfifo "$W/ctl/$(printf 'fi\nfo')"
"$MKFS" -f --lossless "$W/ctl" "$W/ctl.nwc" >"$W/out" 2>&1 ||
	t_fail "mkfs.nwc with a FIFO: $(cat "$W/out")"
grep -q 'warning: .*/fi\\x0afo: skipping special file$' "$W/out" ||
	t_fail "a log line did not escape a name: $(cat "$W/out")"
echo "ok: mkfs.nwc's summary and log lines escape names"
