#!/bin/sh
# mount.sh - mount a generated model with nwcfs and check that it serves
# exactly the source tree: contents (read, mmap, random preads), names,
# sizes, modes, mtimes, links; 8 concurrent readers on a cold mount with a
# cache too small to hold the model; read-only; statfs; clean unmount.
. "$top_srcdir/tests/lib.sh"
t_require_fuse
t_require_python
t_workdir
RC=$S/tests/readcheck.py

t_gen --seed 3 --dtype BF16 --size tiny "$W/model"
m=$W/model
"$MKFS" -q --lossless -b 4K "$m" "$W/m.nwc" || t_fail "mkfs.nwc failed"

# --- a cold mount: 8 concurrent readers, with eviction ------------------
# A fresh mount has nothing in the page cache, so these reads reach the
# daemon; a 16K cache holds 4 blocks, far fewer than the model has.
t_mount "$W/m.nwc" "$W/mnt-cold" -o cache_size=16K,threads=2,readahead=4
pids=
for i in 1 2 3 4 5 6 7 8; do
	if [ $((i % 4)) = 0 ]; then
		(cd "$m" && find . -type f | while read -r f; do
			cat "$W/mnt-cold/$f" | cmp -s - "$f" || {
				echo "reader $i: $f differs" >&2
				exit 1
			}
		done) >"$W/reader$i.log" 2>&1 &
	else
		python3 "$RC" "$m" "$W/mnt-cold" --random 100 --seed $i \
			--block-size 4096 >"$W/reader$i.log" 2>&1 &
	fi
	pids="$pids $!"
done
i=0
for p in $pids; do
	i=$((i + 1))
	wait "$p" || t_fail "concurrent reader $i failed: $(cat "$W/reader$i.log")"
done
kill -0 "$PID" 2>/dev/null || t_fail "nwcfs died under concurrent reads"
t_umount "$W/mnt-cold"
echo "mount: 8 concurrent readers ok"

# --- the main mount -----------------------------------------------------
t_mount "$W/m.nwc" "$W/mnt" -o cache_size=1M
mnt=$W/mnt

# Every regular file, byte for byte; at least one is empty.
(cd "$m" && find . -type f | sort) >"$W/files"
nfiles=0
while read -r f; do
	cmp "$m/$f" "$mnt/$f" || t_fail "$f differs through the mount"
	nfiles=$((nfiles + 1))
done <"$W/files"
[ $nfiles -ge 3 ] || t_fail "expected a model of several files, got $nfiles"
empty=$(cd "$m" && find . -type f -empty | head -n 1)
[ -n "$empty" ] || t_fail "gen_model wrote no empty file"
cat "$mnt/$empty" >"$W/empty.out" || t_fail "cannot read empty file $empty"
[ -s "$W/empty.out" ] && t_fail "empty file $empty: read gave data"

# Names, types, sizes (not of directories), modes, mtimes, link targets,
# through stat(1) and through ls -l; files belong to the mounting user.
meta() {
	(cd "$1" && {
		find . -type d -exec stat -c '%n %F %a %y' {} +
		find . ! -type d -exec stat -c '%n %F %s %a %y' {} +
	}) | sort
}
meta "$m" >"$W/meta.src"
meta "$mnt" >"$W/meta.mnt"
diff "$W/meta.src" "$W/meta.mnt" >"$W/diff" ||
	t_fail "metadata differs (< source, > mount): $(head -n 20 "$W/diff")"
# ls -lnR without the link count and directory sizes
lsl() {
	(cd "$1" && ls -lnAR --time-style=+%s .) | awk '
		/^total / || /^$/ { next }
		/:$/ { print; next }
		{ sz = substr($1, 1, 1) == "d" ? "-" : $5
		  $2 = ""; $3 = ""; $4 = ""; $5 = sz; print }'
}
lsl "$m" >"$W/ls.src"
lsl "$mnt" >"$W/ls.mnt"
diff "$W/ls.src" "$W/ls.mnt" >"$W/diff" ||
	t_fail "ls -l differs (< source, > mount): $(head -n 20 "$W/diff")"
owners=$(find "$mnt" -printf '%U:%G\n' | sort -u)
[ "$owners" = "$(id -u):$(id -g)" ] ||
	t_fail "files on the mount belong to $owners, not $(id -u):$(id -g)"
(cd "$m" && find . -type l) >"$W/links"
nlinks=0
while read -r l; do
	[ "$(readlink "$mnt/$l")" = "$(readlink "$m/$l")" ] ||
		t_fail "symlink $l: '$(readlink "$mnt/$l")' on the mount, \
'$(readlink "$m/$l")' in the source"
	nlinks=$((nlinks + 1))
done <"$W/links"
[ $nlinks -ge 1 ] || t_fail "gen_model wrote no symlink"
echo "mount: $nfiles files, $nlinks symlinks, metadata ok"

# read(2) again, mmap (private and shared), random preads.
python3 "$RC" "$m" "$mnt" --mmap --random 300 --seed 11 --block-size 4096 ||
	t_fail "readcheck.py found a difference"

# Read-only; missing names; statfs.
for what in "create" "append" "truncate" "mkdir" "remove" "chmod" "touch"; do
	f=$(cd "$m" && find . -type f ! -empty | head -n 1)
	rc=0
	case $what in
	create) (: >"$mnt/new-file") 2>"$W/err" || rc=$? ;;
	append) (echo x >>"$mnt/$f") 2>"$W/err" || rc=$? ;;
	truncate) truncate -s 0 "$mnt/$f" 2>"$W/err" || rc=$? ;;
	mkdir) mkdir "$mnt/new-dir" 2>"$W/err" || rc=$? ;;
	remove) rm -f "$mnt/$f" 2>"$W/err" || rc=$? ;;
	chmod) chmod 600 "$mnt/$f" 2>"$W/err" || rc=$? ;;
	touch) touch "$mnt/$f" 2>"$W/err" || rc=$? ;;
	esac
	[ $rc != 0 ] || t_fail "$what on the mount succeeded"
	grep -q 'Read-only file system' "$W/err" ||
		t_fail "$what on the mount: expected EROFS, got: $(cat "$W/err")"
done
cmp -s "$m/$f" "$mnt/$f" || t_fail "$f changed after the write attempts"
for i in 1 2; do	# twice: the second lookup may come from a cache
	[ -e "$mnt/no-such-file" ] && t_fail "a missing name exists"
	stat "$mnt/no-such-dir/x" 2>"$W/err" && t_fail "stat of a missing path"
	grep -q 'No such file or directory' "$W/err" ||
		t_fail "missing name: expected ENOENT, got: $(cat "$W/err")"
done
df -P "$mnt" >"$W/df" 2>&1 || t_fail "df $mnt failed: $(cat "$W/df")"
grep -q " $mnt\$" "$W/df" || t_fail "df does not show $mnt: $(cat "$W/df")"
size=$(wc -c <"$W/m.nwc")
want="$(((size + 4095) / 4096)) 4096"
got=$(stat -f -c '%b %S' "$mnt")
[ "$got" = "$want" ] ||
	t_fail "statfs says '$got' (blocks, block size), expected '$want'"
echo "mount: read-only, missing names, df ok"

kill -0 "$PID" 2>/dev/null || t_fail "nwcfs died"
t_umount "$mnt"
mountpoint -q "$mnt" && t_fail "$mnt still mounted"
pgrep -f "nwcfs.*$W" >"$W/pids" && t_fail "nwcfs left running: $(cat "$W/pids")"

# Large requests: a sequential reader of a 4 MiB file is served in reads
# of 1 MiB (max_read, max_pages, and the readahead nwcfs raises as root).
head -c $((4 << 20)) /dev/urandom >"$W/model/big.bin"
"$MKFS" -q --lossless "$W/model" "$W/big.nwc" || t_fail "mkfs.nwc big.bin"
: >"$W/nwcfs.log"
t_mount "$W/big.nwc" "$mnt" -d
cat "$mnt/big.bin" >/dev/null || t_fail "cat big.bin"
t_umount "$mnt"
max=$(sed -n 's/.*read\[[0-9]*\] \([0-9]*\) bytes from.*/\1/p' "$W/nwcfs.log" |
	sort -n | tail -n 1)
if [ "$(id -u)" = 0 ]; then
	[ "${max:-0}" = 1048576 ] ||
		t_fail "largest read request ${max:-none}, not 1 MiB"
	echo "mount: sequential reads of 1 MiB"
else
	echo "mount: note: not root: largest read ${max:-none} (readahead not raised)"
fi
exit 0
