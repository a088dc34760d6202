#!/bin/bash
# SPDX-License-Identifier: MIT
# run.sh - lossless benchmark: image size against zstd, mkfs.nwc speed, and
# sequential and random read speed through an nwcfs mount.
#
# Run by `make bench`, which sets top_srcdir and top_builddir.  Prints
# Markdown tables on stdout and writes them to bench/out/results.md in the
# build tree; progress lines go to stderr.  Datasets that cannot be had are
# skipped with a reason.  Environment:
#   NWC_SHARED       directory holding models/stories260K-hf
#                    (default: $top_srcdir/../shared)
#   NWC_BENCH_FULL   set to 1 to run zstd -19 on all of every file, even
#                    the 1 GiB dataset (about 9 minutes more on 2 cores)
#   NWC_BENCH_SKIP   datasets to leave out, e.g. "B32 C"
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

. "${top_srcdir:-.}/tests/lib.sh"
. "${top_srcdir:-.}/bench/bench-lib.sh"

RB=$B/bench/readbench
CACHE=$B/bench/cache
OUT=$B/bench/out
RES=$OUT/results.md
SMALL=$((256 << 20))		# below this, best of several runs
ZSTD19_MAX=$((128 << 20))	# zstd -19 on at most this much per dataset
RAND_COUNT=2000
SMALL_CACHE=256K		# one default block: nearly every read misses

SIZE_ROWS=() MKFS_ROWS=() SEQ_ROWS=() RAND_ROWS=() SUM_ROWS=() NOTES=()
KEY_ROWS=()

mb() { calc '%.2f' "$1 / 1e6"; }
pct() { calc '%.1f%%' "100 * $1 / $2"; }
now() { echo "$EPOCHREALTIME"; }
since() { calc '%.6f' "$(now) - $1"; }
sum_sizes() { local s=0 f; for f; do s=$((s + $(fsize "$f"))); done; echo $s; }

# Can we drop the kernel page cache?  Root in a container often cannot.
DROP=no
if [ -w /proc/sys/vm/drop_caches ] && sync &&
	echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
	DROP=yes
fi
drop_caches() { [ $DROP = yes ] && sync && echo 3 >/proc/sys/vm/drop_caches; }

# Like t_require_fuse, but returns a reason instead of exiting: without FUSE
# the size and mkfs tables are still worth having.
fuse_problem() {
	[ -x "$NWCFS" ] || { echo "nwcfs not built"; return; }
	[ -e /dev/fuse ] || { echo "no /dev/fuse"; return; }
	command -v fusermount3 >/dev/null || { echo "no fusermount3"; return; }
	command -v mountpoint >/dev/null || { echo "no mountpoint(1)"; return; }
	local fm
	fm=$(command -v fusermount3)
	[ "$(id -u)" = 0 ] || [ -u "$fm" ] || echo "fusermount3 not setuid"
}

# zstd_sum LEVEL CAP FILES...: sum of the zstd -LEVEL output sizes (levels
# above 9 with -T2).  A file larger than CAP bytes is compressed only in its
# first CAP bytes and the result scaled up: the weights here are homogeneous
# enough for such a sample to represent them.
zstd_sum() {
	local level=$1 cap=$2 threads=1 s=0 f n out
	shift 2
	[ "$level" -gt 9 ] && threads=2
	for f; do
		n=$(fsize "$f")
		if [ "$n" -gt "$cap" ]; then
			out=$(head -c "$cap" "$f" | zstd -q -"$level" -T$threads -c | wc -c)
			out=$(calc '%.0f' "$out * $n / $cap")
		else
			out=$(zstd -q -"$level" -T$threads -c "$f" | wc -c)
		fi
		s=$((s + out))
	done
	echo $s
}

# bench_sizes NAME ALL_BYTES WEIGHT_BYTES: sizes of $IMG, of its weights
# and of zstd on the same files; sets W_PCT and Z3_PCT for the summary.
bench_sizes() {
	local name=$1 all=$2 w=$3 t0 t img_w z3 z3w z19 z19w cap n how
	note "dataset $name: zstd -3"
	z3w=$(zstd_sum 3 $((1 << 40)) "${WFILES[@]}")
	z3=$((z3w + $(zstd_sum 3 $((1 << 40)) "${OFILES[@]}")))

	# -19 runs at about 2 MB/s per core here: sample large weight sets.
	cap=$((1 << 40))
	n=${#WFILES[@]}
	if [ "$w" -gt $ZSTD19_MAX ] && [ "${NWC_BENCH_FULL:-0}" != 1 ]; then
		cap=$((ZSTD19_MAX / n))
		how="first $(calc '%.0f' "$cap / 1048576") MiB of each of $n weight files, scaled"
	else
		how="all data"
	fi
	note "dataset $name: zstd -19 -T2 ($how)"
	t0=$(now)
	z19w=$(zstd_sum 19 $cap "${WFILES[@]}")
	z19=$((z19w + $(zstd_sum 19 $cap "${OFILES[@]}")))
	t=$(since "$t0")
	NOTES+=("zstd -19 -T2 on $name: $how, took $(calc '%.1f' "$t") s.")

	img_w=$("$FSCK" -l "$IMG" | awk '$1 ~ /^-/ && $NF ~ /\.safetensors$/ {
		s += $3 } END { print s + 0 }')
	SIZE_ROWS+=("| $name | $(mb $all) | $(mb "$(fsize "$IMG")") ($(pct "$(fsize "$IMG")" $all)) | $(mb $w) | **$(pct $img_w $w)** | $(pct $z3w $w) | $(pct $z19w $w) | $(pct $z3 $all) | $(pct $z19 $all) |")
	W_PCT=$(pct $img_w $w) Z3_PCT=$(pct $z3w $w)
}

# bench_mkfs NAME DIR ALL_BYTES RUNS: mkfs.nwc -j1 and -j2, input in the
# page cache; leaves the image in $IMG.  Then fsck.nwc reads it all.
bench_mkfs() {
	local name=$1 dir=$2 all=$3 runs=$4 j r t0 t best row fs
	cat "${WFILES[@]}" "${OFILES[@]}" >/dev/null
	row="| $name | $(mb $all) |"
	for j in 1 2; do
		best=
		for r in $(seq "$runs"); do
			note "dataset $name: mkfs -j$j (run $r of $runs)"
			t0=$(now)
			"$MKFS" -q -f --lossless -j$j "$dir" "$IMG" || die "mkfs.nwc -j$j $dir failed"
			t=$(since "$t0")
			[ -z "$best" ] || [ "$(calc '%d' "$t < $best")" = 1 ] && best=$t
		done
		row="$row $(calc '%.3f' "$best") | $(calc '%.1f' "$all / $best / 1e6") |"
		[ $j = 1 ] && mv "$IMG" "$IMG.j1"
	done
	MKFS2=$(calc '%.1f' "$all / $best / 1e6")
	# mkfs.nwc(1) promises the same bytes whatever the number of jobs.
	cmp -s "$IMG" "$IMG.j1" ||
		NOTES+=("BUG: on $name, mkfs.nwc -j1 and -j2 wrote different images.")
	rm -f "$IMG.j1"
	note "dataset $name: fsck.nwc (verify every block)"
	t0=$(now)
	"$FSCK" -q "$IMG" || die "fsck.nwc found damage in $IMG"
	fs=$(since "$t0")
	MKFS_ROWS+=("$row $(calc '%.1f' "$all / $fs / 1e6") |")
}

# The helpers below set V instead of printing it: a mount must never be made
# inside $(...), whose reader would wait for the daemon's copy of stdout.

# Cold sequential read through a fresh mount: V = readbench's MB/s.
mounted_seq() {
	local procs=$1 out
	shift
	drop_caches
	t_mount "$IMG" "$W/mnt"
	out=$("$RB" seq --bs 1M --procs "$procs" "${@/#/$W/mnt/}") ||
		die "readbench seq failed on the mount"
	t_umount "$W/mnt"
	V=$(kv MBps "$out")
}

# Warm read of the originals with cat: V = MB/s.
cat_mbps() {
	local t0 t
	t0=$(now)
	cat "$@" >/dev/null
	t=$(since "$t0")
	V=$(calc '%.1f' "$(sum_sizes "$@") / $t / 1e6")
}

# best_of RUNS CMD...: V = the largest V that CMD set.
best_of() {
	local runs=$1 best=0 r
	shift
	for r in $(seq "$runs"); do
		"$@"
		[ "$(calc '%d' "$V > $best")" = 1 ] && best=$V
	done
	V=$best
}

# bench_seq NAME DIR RUNS WEIGHT_BYTES: cold sequential reads of the weights
# through the mount, 1 and 2 readers, against cat of the originals.
bench_seq() {
	local name=$1 dir=$2 runs=$3 w=$4 rel=() f cat1 r1 r2 how
	for f in "${WFILES[@]}"; do
		rel+=("${f#"$dir"/}")
	done
	note "dataset $name: sequential read, 1 reader, cold mount (best of $runs)"
	best_of "$runs" mounted_seq 1 "${rel[@]}"
	r1=$V
	note "dataset $name: sequential read, 2 readers, cold mount (best of $runs)"
	best_of "$runs" mounted_seq 2 "${rel[@]}"
	r2=$V
	note "dataset $name: cat of the originals from the page cache"
	cat "${WFILES[@]}" >/dev/null
	best_of "$runs" cat_mbps "${WFILES[@]}"
	cat1=$V
	if [ ${#WFILES[@]} = 1 ]; then
		how="1 file; 2 readers: its two halves"
	else
		how="${#WFILES[@]} files in turn; 2 readers: first and second half of that stream"
	fi
	SEQ_ROWS+=("| $name | $how | $(mb $w) | $cat1 | $r1 | $(calc '%.3f' "$r1 / $cat1") | $r2 | $(calc '%.3f' "$r2 / $cat1") |")
	SEQ1="$r1 ($(calc '%.3f' "$r1 / $cat1")x)"
	SEQ2="$r2 ($(calc '%.3f' "$r2 / $cat1")x)"
}

# rand_row NAME WHERE READBENCH_OUTPUT
rand_row() {
	local name=$1 what=$2 out=$3
	RAND_ROWS+=("| $name | $what | $(kv count "$out") | $(kv p50_us "$out") | $(kv p99_us "$out") | $(kv max_us "$out") | $(kv mean_us "$out") |")
}

# bench_rand NAME DIR: random 4K read latency on the largest weights file,
# through cold mounts with the default and a tiny cache, and on the original.
bench_rand() {
	local name=$1 dir=$2 big out rel opt
	big=$(ls -S "${WFILES[@]}" | head -n 1)
	rel=${big#"$dir"/}
	for opt in default $SMALL_CACHE; do
		note "dataset $name: $RAND_COUNT random 4K reads of $rel, cold mount, cache_size=$opt"
		drop_caches
		if [ "$opt" = default ]; then
			t_mount "$IMG" "$W/mnt"
		else
			t_mount "$IMG" "$W/mnt" -o "cache_size=$opt"
		fi
		out=$("$RB" rand --count $RAND_COUNT --seed 1 --time 60 \
			"$W/mnt/$rel") || die "readbench rand failed on the mount"
		t_umount "$W/mnt"
		rand_row "$name" "nwcfs, cache_size=$opt" "$out"
		[ "$opt" = default ] && RAND="$(kv p50_us "$out") / $(kv p99_us "$out")"
	done
	note "dataset $name: the same reads of the original, page cache warm"
	cat "$big" >/dev/null
	out=$("$RB" rand --count $RAND_COUNT --seed 1 "$big") ||
		die "readbench rand failed on $big"
	rand_row "$name" "original, page cache" "$out"
}

# bench_dataset NAME DTYPE DIR [size-only]
bench_dataset() {
	local name=$1 dtype=$2 dir=$3 mode=${4:-full} all w runs
	mapfile -t WFILES < <(find "$dir" -type f -name '*.safetensors' | sort)
	mapfile -t OFILES < <(find "$dir" -type f ! -name '*.safetensors' | sort)
	[ ${#WFILES[@]} -gt 0 ] || die "$dir has no *.safetensors file"
	w=$(sum_sizes "${WFILES[@]}")
	all=$((w + $(sum_sizes "${OFILES[@]}")))
	runs=2
	[ $all -gt $SMALL ] && runs=1
	IMG=$W/$name.nwc
	MKFS2=- SEQ1=- SEQ2=- RAND=-

	bench_mkfs "$name" "$dir" $all $runs
	bench_sizes "$name" "$all" "$w"
	KEY_ROWS+=("$name ($dtype): weights stored in $W_PCT of their size (zstd -3: $Z3_PCT).")
	if [ "$mode" = full ] && [ -z "$FUSE_PROBLEM" ]; then
		runs=3
		[ $all -gt $SMALL ] && runs=1
		bench_seq "$name" "$dir" $runs $w
		bench_rand "$name" "$dir"
	fi
	SUM_ROWS+=("| $name | $dtype | $(mb $all) | $W_PCT | $Z3_PCT | $MKFS2 | $SEQ1 | $SEQ2 | $RAND |")
	rm -f "$IMG"
}

skip() {
	note "dataset $1 skipped: $2"
	NOTES+=("Dataset $1 skipped: $2")
}

wanted() { [[ " ${NWC_BENCH_SKIP:-} " != *" $1 "* ]]; }

# --- setup -----------------------------------------------------------------
for p in "$MKFS" "$FSCK" "$RB"; do
	[ -x "$p" ] || die "$p is not built; run make all bench/readbench"
done
command -v zstd >/dev/null || die "zstd(1) is needed"
FUSE_PROBLEM=$(fuse_problem)
[ -z "$FUSE_PROBLEM" ] || NOTES+=("Read tests skipped: $FUSE_PROBLEM.")
[ $DROP = yes ] || NOTES+=("Cannot write /proc/sys/vm/drop_caches: the image may be in the page cache for the \"cold\" reads.")
mkdir -p "$CACHE" "$OUT" || die "cannot create $CACHE or $OUT"
t_workdir
T_START=$(now)
LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg)

# --- dataset A: the tiny real F32 model ------------------------------------
if ! wanted A; then
	skip A "in NWC_BENCH_SKIP"
elif [ -f "$SHARED_MODEL/model.safetensors" ]; then
	bench_dataset A F32 "$SHARED_MODEL"
else
	skip A "no $SHARED_MODEL/model.safetensors (set NWC_SHARED)"
fi

# --- dataset B: all-MiniLM-L6-v2, real weights, as BF16 (and F32) ----------
if ! wanted B && ! wanted B32; then
	skip B "in NWC_BENCH_SKIP"
else
	note "dataset B: fetching all-MiniLM-L6-v2 (cached in $CACHE/minilm)"
	if python3 "$S/bench/get-minilm.py" "$CACHE/minilm"; then
		wanted B && bench_dataset B BF16 "$CACHE/minilm/bf16"
		wanted B32 && bench_dataset B32 F32 "$CACHE/minilm/f32" size-only
	else
		skip B "bench/get-minilm.py failed (no network or no pip?)"
	fi
fi

# --- dataset C: 1 GiB of generated BF16 weights ----------------------------
GEN_DIR=$CACHE/gen-1g-bf16
if ! wanted C; then
	skip C "in NWC_BENCH_SKIP"
elif [ ! -x "$GEN" ]; then
	skip C "$GEN is not built"
else
	# Regenerate when gen_model was rebuilt: its output may have changed.
	if [ ! -d "$GEN_DIR" ] || [ "$GEN" -nt "$GEN_DIR" ]; then
		note "dataset C: generating 1 GiB BF16 model (cached in $GEN_DIR)"
		rm -rf "$GEN_DIR" "$GEN_DIR.tmp"
		"$GEN" --size 1g --dtype BF16 "$GEN_DIR.tmp" >/dev/null &&
			mv "$GEN_DIR.tmp" "$GEN_DIR"
	fi
	if [ -d "$GEN_DIR" ]; then
		bench_dataset C BF16 "$GEN_DIR"
	else
		rm -rf "$GEN_DIR.tmp"
		skip C "tests/gen_model --size 1g failed"
	fi
fi

# --- report ----------------------------------------------------------------
commit=$(git -C "$S" rev-parse --short HEAD 2>/dev/null) || commit=unknown
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
{
	echo "# nwcfs lossless benchmark"
	echo
	echo "Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr)," \
		"$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM." \
		"Load average before: $LOAD_START; after: $(cut -d ' ' -f 1-3 /proc/loadavg)." \
		"Commit $commit, $(date -u '+%Y-%m-%d %H:%M UTC')." \
		"MB = 10^6 bytes."
	echo
	echo "Datasets: A = stories260K-hf (real, F32); B = all-MiniLM-L6-v2" \
		"(real, F32 rounded to BF16; B32 = the same in F32, sizes only);" \
		"C = tests/gen_model --size 1g --dtype BF16 (synthetic)."
	echo
	echo "## Sizes (default options: 256K blocks, zstd level 3)"
	echo
	echo "Weights = the *.safetensors files; nwc weights = their stored payload (fsck.nwc -l); zstd = sum over files of \`zstd -c FILE | wc -c\`."
	echo
	echo "| dataset | original MB | image MB (%) | weights MB | nwc weights | zstd -3 weights | zstd -19 weights | zstd -3 all | zstd -19 all |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${SIZE_ROWS[@]}"
	echo
	echo "Key: BF16 target is <= 68% (ZipNN reports 66%, plain zstd 78%)."
	printf -- '- %s\n' "${KEY_ROWS[@]}"
	echo
	echo "## mkfs.nwc throughput (MB/s of input, input in page cache, wall time, best of 2 below 256 MB)"
	echo
	echo "| dataset | input MB | -j1 s | -j1 MB/s | -j2 s | -j2 MB/s | fsck.nwc verify MB/s |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${MKFS_ROWS[@]}"
	if [ ${#SEQ_ROWS[@]} -gt 0 ]; then
		echo
		echo "## Sequential read of the weights, 1 MiB preads (MB/s)"
		echo
		echo "nwcfs: fresh mount per run, page cache dropped ($DROP), best of 3 below 256 MB. Ratio = nwcfs / cat of the originals from the page cache, same run."
		echo
		echo "| dataset | files, readers | MB | cat (page cache) | nwcfs 1 reader | ratio | nwcfs 2 readers | ratio |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|"
		printf '%s\n' "${SEQ_ROWS[@]}"
		echo
		echo "## Random 4 KiB reads of the largest weights file (latency, us)"
		echo
		echo "$RAND_COUNT preads at random 4K-aligned offsets (seed 1, POSIX_FADV_RANDOM); nwcfs rows on a fresh mount with the page cache dropped ($DROP)."
		echo
		echo "| dataset | where | reads | p50 | p99 | max | mean |"
		echo "|---|---|---:|---:|---:|---:|---:|"
		printf '%s\n' "${RAND_ROWS[@]}"
	fi
	echo
	echo "## Summary"
	echo
	echo "| dataset | dtype | MB | nwc weights | zstd -3 weights | mkfs -j2 MB/s | seq 1 reader MB/s (x cat) | seq 2 readers MB/s (x cat) | rand 4K p50 / p99 us |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${SUM_ROWS[@]}"
	echo
	[ ${#NOTES[@]} = 0 ] || printf -- '- %s\n' "${NOTES[@]}"
	echo
	echo "Produced by \`make bench\` in $B ($(calc '%.0f' "$(since "$T_START")") s)."
} >"$RES" || die "cannot write $RES"
cat "$RES"
note "results written to $RES"
