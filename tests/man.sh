#!/bin/sh
# man.sh - lint the man pages with groff, and check that the options each
# program's --help prints and the options its page documents agree.
. "$top_srcdir/tests/lib.sh"

command -v groff >/dev/null 2>&1 || t_skip "groff not installed"
t_workdir

# Plain text of a page: no overstriking, no line breaks inside paragraphs,
# no hyphenation, so an option never gets split.
render() {
	groff -man -Tascii -P-c -P-b -P-o -P-u -rLL=2000n -rHY=0 "$1"
}

npages=0
for page in "$S"/man/*.[1-8]; do
	[ -f "$page" ] || continue
	npages=$((npages + 1))
	base=${page##*/}

	# groff exits 0 on warnings, so any output on stderr is a failure.
	rc=0
	groff -man -ww -z "$page" 2>"$W/err" || rc=$?
	[ "$rc" = 0 ] || t_fail "$base: groff exited with status $rc:
$(cat "$W/err")"
	[ -s "$W/err" ] && t_fail "$base: groff warnings:
$(cat "$W/err")"

	# .TH must name this page: "mkfs.nwc.1" -> ".TH MKFS.NWC 1 ".
	name=$(echo "${base%.*}" | tr '[:lower:]' '[:upper:]')
	sect=${base##*.}
	th=$(grep -m1 '^\.TH ' "$page")
	case $th in
	".TH $name $sect "*) ;;
	*) t_fail "$base: expected '.TH $name $sect ...', found '$th'" ;;
	esac

	for sh in NAME DESCRIPTION "SEE ALSO"; do
		grep -q "^\.SH \"\{0,1\}$sh\"\{0,1\}\$" "$page" ||
			t_fail "$base: no $sh section"
	done
	if [ "$sect" = 1 ]; then
		for sh in SYNOPSIS "EXIT STATUS" EXAMPLES; do
			grep -q "^\.SH \"\{0,1\}$sh\"\{0,1\}\$" "$page" ||
				t_fail "$base: no $sh section"
		done
	fi

	# At the default width nothing (examples included) may overflow an
	# 80-column terminal.
	groff -man -Tascii -P-c -P-b -P-o -P-u "$page" >"$W/txt" 2>/dev/null ||
		t_fail "$base: groff -Tascii failed"
	awk -v f="$base" 'length($0) > 80 {
		print f ": line wider than 80 columns: " $0; bad = 1
	} END { exit bad }' "$W/txt" >&2 || t_fail "$base: lines too wide"
done
[ "$npages" -ge 4 ] || t_fail "expected at least 4 pages in $S/man, found $npages"

# help PROG: write PROG's --help to $W/help.  Fails when PROG is missing or
# --help does not succeed (still a placeholder).
help() {
	[ -x "$1" ] || return 1
	"$1" --help >"$W/help" 2>&1 </dev/null
}

# Long options in a text file, one per line; "--[no-]x" gives --x and --no-x.
long_opts() {
	sed 's/--\[no-\]\([[:alnum:]-]*\)/--\1 --no-\1/g' "$1" |
		grep -o -e '--[[:alnum:]][[:alnum:]-]*' | sed 's/-*$//' |
		sort -u
}

# check_long PROG PAGE: the long options of PROG --help and of PAGE match.
check_long() {
	prog=$1 page=$2
	if ! help "$prog"; then
		echo "note: ${prog##*/} --help failed; options not compared" >&2
		return 0
	fi
	render "$page" >"$W/page" 2>/dev/null || t_fail "cannot render $page"
	long_opts "$W/help" >"$W/help.opts"
	# Other programs' options that the pages cite (configure, mpirun,
	# srun) are not this program's.
	long_opts "$W/page" | grep -v -x -e --with-mpi -e --hostfile \
		-e --map-by -e --ntasks-per-node >"$W/page.opts"
	[ -s "$W/help.opts" ] ||
		t_fail "${prog##*/} --help lists no long options"
	missing=$(comm -23 "$W/help.opts" "$W/page.opts")
	[ -z "$missing" ] || t_fail "${prog##*/} --help has options that \
${page##*/} does not document: $(echo "$missing" | paste -s -d " " -)"
	extra=$(comm -13 "$W/help.opts" "$W/page.opts")
	[ -z "$extra" ] || t_fail "${page##*/} documents options that \
${prog##*/} --help does not list: $(echo "$extra" | paste -s -d " " -)"
	checked=$((checked + 1))
}

# "-o NAME" options in a text file, one name per line (names are lower
# case; "-o OPTION" in a synopsis is a placeholder).
o_opts() {
	grep -o -e '-o[[:space:]]\{1,\}[[:lower:]_][[:lower:][:digit:]_]*' "$1" |
		sed 's/^-o[[:space:]]*//' | sort -u
}

# check_nwcfs: every -o option of nwcfs --help that libfuse does not provide
# is in the NWCFS OPTIONS section of nwcfs.1, and the other way round.
check_nwcfs() {
	if ! help "$NWCFS"; then
		echo "note: nwcfs not built or --help failed; not compared" >&2
		return 0
	fi
	page=$S/man/nwcfs.1
	# nwcfs's own options come before libfuse's part of the help if that
	# has a heading ("FUSE options:"); libfuse's are also dropped by name.
	awk '/^[^[:space:]].*FUSE.*:[[:space:]]*$/ { exit } { print }' \
		"$W/help" >"$W/help.own"
	o_opts "$W/help.own" | grep -v -x \
		-e debug -e clone_fd -e max_idle_threads -e max_threads \
		-e allow_other -e allow_root -e auto_unmount -e kernel_cache \
		-e no_rofd_flush -e noforget -e umask -e uid -e gid \
		-e entry_timeout -e negative_timeout -e attr_timeout \
		-e ac_attr_timeout -e remember -e modules -e subdir \
		-e from_code -e to_code -e fsname -e subtype -e max_read \
		-e blksize -e default_permissions -e ro -e rw \
		>"$W/help.opts"
	[ -s "$W/help.opts" ] || t_fail "nwcfs --help lists no -o options"
	render "$page" | awk '/^NWCFS OPTIONS/ { on = 1; next }
		/^[A-Z]/ { on = 0 } on' >"$W/page.sect"
	o_opts "$W/page.sect" >"$W/page.opts"
	[ -s "$W/page.opts" ] || t_fail "nwcfs.1: no -o options in NWCFS OPTIONS"
	missing=$(comm -23 "$W/help.opts" "$W/page.opts")
	[ -z "$missing" ] || t_fail "nwcfs --help has -o options that \
nwcfs.1 does not document: $(echo "$missing" | paste -s -d " " -)"
	extra=$(comm -13 "$W/help.opts" "$W/page.opts")
	[ -z "$extra" ] || t_fail "nwcfs.1 documents -o options that \
nwcfs --help does not list: $(echo "$extra" | paste -s -d " " -)"
	checked=$((checked + 1))
}

checked=0
check_long "$MKFS" "$S/man/mkfs.nwc.1"
check_long "$FSCK" "$S/man/fsck.nwc.1"
check_long "$NWC" "$S/man/nwc.1"
check_long "$TRAIN" "$S/man/nwc-train.1"
check_nwcfs
echo "man.sh: $npages pages lint-clean; $checked of 5 programs' options compared"
