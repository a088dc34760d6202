#!/bin/bash
# SPDX-License-Identifier: MIT
# scale.sh - how packing grows with the model: generated Llama-shaped
# models of 0.1, 0.5 and 2 GB (tests/gen_model --size 100m, 500m, 2g;
# real widths and GQA) packed lossless, lossy at 4 bits, and lossy with
# layer-by-layer calibration; wall time, encoding MB/s, calibration
# tokens/s and peak RSS of each, so that growth with size is visible.
#
# Run by `make bench-scale`, which sets top_srcdir and top_builddir.
# Prints a Markdown table on stdout and writes it to bench/out/scale.md in
# the build tree; progress lines go to stderr.  Environment:
#   NWC_SCALE_SIZES   sizes to run (default "100m 500m 2g"; empty: none)
#   NWC_SCALE_TOKENS  calibration tokens (default 2048; the issue's
#                     128 x 512 = 65536 takes hours on 2 cores at 2 GB)
#   NWC_SCALE_DIR     where models and images go (default
#                     bench/cache/scale in the build tree; 2 GB needs ~5 GB)
#   NWC_SCALE_RANKS   size packed calibrated with 1 rank x 1 thread,
#                     2 ranks x 1 thread and 1 rank x 2 threads, when
#                     mkfs.nwc has MPI and mpirun exists (default 500m;
#                     "none" skips it)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

. "${top_srcdir:-.}/tests/lib.sh"

SIZES=${NWC_SCALE_SIZES-100m 500m 2g}
TOKENS=${NWC_SCALE_TOKENS:-2048}
DIR=${NWC_SCALE_DIR:-$B/bench/cache/scale}
OUT=$B/bench/out
TIME=/usr/bin/time
MODELS=${NWC_MODELS_DIR:-$S/codec/models}

[ -x "$TIME" ] || t_skip "$TIME (GNU time, Debian package time) is needed for peak RSS"
[ -x "$MKFS" ] && [ -x "$GEN" ] || t_fail "build mkfs.nwc and tests/gen_model first"
command -v python3 >/dev/null || t_skip "python3 is needed to write the token file"
mkdir -p "$DIR" "$OUT" || t_fail "cannot create $DIR"

# Calibration tokens: ids 3..511 (any model here has 32000), a BOS every
# 512, from a fixed generator so every run sees the same stream.
TOK=$DIR/tokens-$TOKENS.u16
[ -f "$TOK" ] || python3 - "$TOK" "$TOKENS" <<'EOF' || t_fail "token file"
import struct, sys
n, x, out = int(sys.argv[2]), 12345, []
for i in range(n):
    x = (x * 1103515245 + 12345) % 2**31
    out.append(1 if i % 512 == 0 else 3 + x % 509)
open(sys.argv[1], "wb").write(struct.pack("<%dH" % n, *out))
EOF

# run NAME ARGS...: mkfs.nwc ARGS, setting WALL (s), RSS (MB) and LOG;
# with $LAUNCH set (mpirun -np N), under it: RSS is the largest rank's.
LAUNCH=
run() {
	name=$1
	shift
	LOG=$DIR/$name.log
	echo "scale: $name: $LAUNCH mkfs.nwc $*" >&2
	"$TIME" -f "%e %M" -o "$DIR/$name.time" $LAUNCH "$MKFS" --no-progress -f \
		"$@" >"$LOG" 2>&1 ||
		t_fail "mkfs.nwc $* failed: $(tail -5 "$LOG")"
	read -r WALL RSS <"$DIR/$name.time"
	RSS=$((RSS / 1024))
}

rows=()
for size in $SIZES; do
	m=$DIR/model-$size
	if [ ! -f "$m/config.json" ]; then
		rm -rf "$m"
		echo "scale: generating the $size model" >&2
		"$GEN" --seed 1 --size "$size" "$m" >/dev/null ||
			t_fail "gen_model --size $size failed"
	fi
	bytes=$(du -sb "$m" | cut -f1)
	mb=$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1e6 }')
	params=$(python3 - "$m" <<'EOF'
import json, os, struct, sys
n = 0
for f in os.listdir(sys.argv[1]):
    if f.endswith(".safetensors"):
        with open(os.path.join(sys.argv[1], f), "rb") as fh:
            h = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for k, v in h.items():
            if k != "__metadata__":
                p = 1
                for d in v["shape"]:
                    p *= d
                n += p
print("%.0fM" % (n / 1e6))
EOF
)
	layers=$(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$m/config.json")

	run "$size-lossless" --lossless "$m" "$DIR/$size-lossless.nwc"
	ll="$WALL s, $(awk -v b="$bytes" -v t="$WALL" 'BEGIN { printf "%.0f", b / t / 1e6 }') MB/s, $RSS MB"
	run "$size-lossy" --models "$MODELS" --bits 4 "$m" "$DIR/$size-lossy.nwc"
	ly="$WALL s, $(awk -v b="$bytes" -v t="$WALL" 'BEGIN { printf "%.1f", b / t / 1e6 }') MB/s, $RSS MB"
	run "$size-calib" --models "$MODELS" --bits 4 --calib "$TOK" \
		--calib-tokens "$TOKENS" \
		"$m" "$DIR/$size-calib.nwc"
	tps=$(sed -n 's/^lossy: calibrated on [0-9]* tokens in \([0-9.]*\) s (\([0-9]*\) tokens\/s)/\2/p' "$LOG")
	csec=$(sed -n 's/^lossy: calibrated on [0-9]* tokens in \([0-9.]*\) s.*/\1/p' "$LOG")
	bound=$(sed -n 's/.*at most about \([0-9.]*\) GiB of memory/\1/p' "$LOG")
	cal="$WALL s ($csec s calibrating, $tps tokens/s), $RSS MB (bound $bound GiB)"
	rows+=("| $size | $params | $layers | $mb | $ll | $ly | $cal |")
done

[ ${#rows[@]} = 0 ] || {
	echo "## Packing against model size ($(nproc) cores, $TOKENS calibration tokens)"
	echo
	echo "Each cell: wall time, then MB/s of the source (model bytes / wall), then peak RSS."
	echo
	echo "| size | parameters | layers | MB | lossless | lossy 4 bits | lossy 4 bits, calibrated |"
	echo "|---|---:|---:|---:|---|---|---|"
	printf '%s\n' "${rows[@]}"
} | tee "$OUT/scale.md"

# Ranks against threads, on one machine: the image must not change.
RSIZE=${NWC_SCALE_RANKS:-500m}
m=$DIR/model-$RSIZE
if [ "$RSIZE" != none ] && [ -f "$m/config.json" ] &&
   "$MKFS" --version | grep -q ', MPI$' && command -v mpirun >/dev/null; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	export OMPI_MCA_rmaps_base_oversubscribe=1
	rrows=()
	for cfg in "1 1" "2 1" "1 2"; do
		read -r np j <<<"$cfg"
		LAUNCH=
		[ "$np" = 1 ] || LAUNCH="mpirun -np $np"
		run "$RSIZE-r$np-j$j" -j "$j" --models "$MODELS" --bits 4 \
			--calib "$TOK" --calib-tokens "$TOKENS" "$m" \
			"$DIR/$RSIZE-r$np-j$j.nwc"
		csec=$(sed -n 's/^lossy: calibrated on [0-9]* tokens in \([0-9.]*\) s.*/\1/p' "$LOG")
		same=yes
		cmp -s "$DIR/$RSIZE-r1-j1.nwc" "$DIR/$RSIZE-r$np-j$j.nwc" || same=NO
		rrows+=("| $np | $j | $WALL | $csec | $RSS | $same |")
	done
	{
		echo
		echo "## Ranks and threads ($RSIZE model, calibrated 4 bits, $TOKENS tokens, $(nproc) cores)"
		echo
		echo "| ranks | threads each | wall s | calibration s | peak RSS of a rank, MB | image = 1 rank x 1 thread |"
		echo "|---:|---:|---:|---:|---:|---|"
		printf '%s\n' "${rrows[@]}"
	} | tee -a "$OUT/scale.md"
fi
