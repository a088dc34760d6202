#!/bin/sh
# clang.sh - every C source of the tree compiles with clang, warnings as
# errors (the fuzz targets build with clang and libFuzzer: README,
# Fuzzing); GCC-only builtins have a portable spelling (codec/common/simd.h).
. "$top_srcdir/tests/lib.sh"
command -v clang >/dev/null || t_skip "no clang on PATH (Debian: clang; setup.sh installs it)"
cd "$top_srcdir" || t_fail "cannot enter $top_srcdir"

flags="-std=gnu11 -fsyntax-only -Werror -Wall -Wextra -Wshadow
-Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla -I. -I$top_builddir"
for pc in fuse3 libzstd libxxhash jansson openblas ompi-c; do
	flags="$flags $(pkg-config --cflags "$pc" 2>/dev/null)"
done
n=0
bad=0
for f in codec/*.c codec/*/*.c fs/*.c mkfs/*.c mkfs/*/*.c tests/*.c \
	 tests/fuzz/*.c bench/*.c; do
	[ -f "$f" ] || continue
	case $f in	# the one file that includes <mpi.h> needs it
	mkfs/group/group.c) pkg-config --exists ompi-c || continue ;;
	esac
	n=$((n + 1))
	# shellcheck disable=SC2086
	if ! clang $flags "$f" 2>"$top_builddir/tests/clang.err"; then
		echo "FAIL: clang: $f:" >&2
		head -n 5 "$top_builddir/tests/clang.err" >&2
		bad=1
	fi
done
rm -f "$top_builddir/tests/clang.err"
[ "$n" -gt 80 ] || t_fail "only $n sources found"
[ "$bad" = 0 ] || t_fail "sources that clang does not compile"
echo "ok: $n sources compile with clang $(clang -dumpversion), -Werror"
