#!/bin/sh
# deps.sh - the layering of the tree, checked on the sources: each folder
# includes headers only from the folders below it (README, "Layers"), and
# each external library is included by its one file.  A failure names the
# file and the include.
. "$top_srcdir/tests/lib.sh"

cd "$top_srcdir" || t_fail "cannot enter $top_srcdir"

# allowed FOLDER: the folders whose headers FOLDER's files may include.
allowed() {
	case $1 in
	codec/common) echo "codec/common" ;;
	codec/image) echo "codec/common codec/image" ;;
	codec) echo "codec/common codec/image codec" ;;
	codec/nwc) echo "codec/common codec/image codec codec/nwc" ;;
	codec/registry)
		echo "codec/common codec/image codec codec/nwc codec/registry" ;;
	codec/input) echo "codec/common codec/input" ;;
	fs) echo "codec/common codec/image codec/registry fs" ;;
	mkfs/group) echo "codec/common mkfs/group" ;;
	mkfs/llm)
		echo "codec/common codec/image codec/input codec/nwc" \
		     "mkfs/group mkfs/llm" ;;
	mkfs/pack | mkfs)
		echo "codec/common codec/image codec codec/nwc codec/registry" \
		     "codec/input mkfs/group mkfs/llm mkfs/pack" ;;
	mkfs/tools)
		echo "codec/common codec/image codec codec/nwc codec/registry" \
		     "codec/input mkfs/group mkfs/llm mkfs/pack mkfs/tools" ;;
	*) return 1 ;;
	esac
}

bad=0
n=0
for f in codec/*.[ch] codec/*/*.[ch] fs/*.[ch] mkfs/*.[ch] mkfs/*/*.[ch]; do
	[ -f "$f" ] || continue
	dir=${f%/*}
	ok=$(allowed "$dir") || { echo "FAIL: $f: folder $dir has no layer" >&2; bad=1; continue; }
	n=$((n + 1))
	for inc in $(sed -n 's/^#include "\([a-z]*\/[a-z_/]*\)\/[a-z_-]*\.h".*/\1/p' "$f"); do
		case " $ok " in
		*" $inc "*) ;;
		*) echo "FAIL: $f includes a header of $inc, above its layer $dir" >&2
		   bad=1 ;;
		esac
	done
done
[ "$n" -gt 50 ] || t_fail "found only $n source files under $top_srcdir"

# lib HEADER-REGEX FILE...: only these files include the library.
lib() {
	re=$1
	shift
	for f in $(grep -l -E "^#include <($re)" codec/*.[ch] codec/*/*.[ch] \
		   fs/*.[ch] mkfs/*.[ch] mkfs/*/*.[ch] 2>/dev/null); do
		case " $* " in
		*" $f "*) ;;
		*) echo "FAIL: $f includes <$re>; only $* may" >&2
		   bad=1 ;;
		esac
	done
}
lib 'zstd|zstd_errors' codec/zstd.c
lib 'xxhash' codec/common/hash.c
lib 'jansson' codec/input/json.c
lib 'cblas|openblas_config' codec/nwc/gemm.c
lib 'f77blas|lapack|lapacke' codec/nwc/cholesky.c
lib 'mpi' mkfs/group/group.c
lib 'fuse|fuse_lowlevel|fuse_opt' fs/ops.h fs/nwcfs.c

# File names are unique across the tree (zstd's rule), local.mk aside;
# bench/cache holds downloads (a virtual environment), not sources.
dups=$(find codec fs mkfs tests bench -path bench/cache -prune -o \
	\( -name '*.[ch]' -o -name '*.sh' -o -name '*.py' \) -type f -print |
	sed 's#.*/##' | sort | uniq -d)
if [ -n "$dups" ]; then
	echo "FAIL: file names used twice: $dups" >&2
	bad=1
fi

[ "$bad" = 0 ] || t_fail "includes cross the layers, or names repeat"
echo "ok: $n files include only their own and lower layers; each library has its one file"
