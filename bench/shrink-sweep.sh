#!/bin/bash
# SPDX-License-Identifier: MIT
# shrink-sweep.sh - mkfs.nwc --calib-shrink on SmolLM2-135M: statistics
# once (nwc calib, the first 65536 TinyStories tokens), then an image per
# rate and shrinkage with --calib-stats, each scored by nwc eval on the
# first EVAL_TOKENS tokens of held-out TinyStories and of the
# out-of-domain prose; the original model first.  Needs the files make
# quality-smollm2 leaves in bench/cache/smollm2.  Prints one line per
# point, with the real bits per weight of the selected tensors (those
# stored exactly included, as bench/quality.sh counts them).
# Environment: BITS (default 4), SHRINKS (default "0 0.1 0.3 0.5"),
# DAMPS (mkfs.nwc --calib-damp; default 0.01, the codec's), PROMOTES
# (mkfs.nwc --calib-promote; default 0.111), SENS (tokens of the
# sensitivity pass, nwc calib --sensitivity; default 4096; 0: none),
# POWERS (mkfs.nwc --calib-sens-power; default 0.5), MODELS (mkfs.nwc
# --models; default the source tree's codec/models, e.g.
# codec/models/linear), TUNES (mkfs.nwc --calib-tune steps, on the
# calibration tokens; default 0), EVAL_TOKENS (default 4096).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

. "${top_srcdir:-.}/tests/lib.sh"
PROG=shrink-sweep
MODELS=${MODELS:-$S/codec/models}

D=$B/bench/cache/smollm2
for f in model/config.json calib.u16 heldout.u16 ood.u16; do
	[ -e "$D/$f" ] || t_skip "no $D/$f: run make quality-smollm2 first"
done
t_workdir
. "$S/bench/quality-lib.sh"
N=${EVAL_TOKENS:-4096}
for e in heldout ood; do
	"$NWC" eval -q -j2 --max-tokens "$N" "$D/model" "$D/$e.u16" |
		awk -v e=$e '/perplexity/ { printf " %s=%s", e, $2 }'
done >"$W/ppl0"
echo "original$(cat "$W/ppl0") | $N tokens each"
SENS=${SENS:-4096}
[ "$SENS" = 0 ] && sens= || sens="--sensitivity $SENS"
"$NWC" calib -q -j2 --max-tokens 65536 $sens "$D/model" "$D/calib.u16" \
	-o "$W/stats.safetensors" || t_fail "nwc calib failed"
for bits in ${BITS:-4}; do
	for a in ${SHRINKS:-0 0.1 0.3 0.5}; do
	for d in ${DAMPS:-0.01}; do
	for pr in ${PROMOTES:-0.111}; do
	for pw in ${POWERS:-0.5}; do
	for tn in ${TUNES:-0}; do
		tune=
		[ "$tn" = 0 ] ||
			tune="--calib-tune $tn --calib-tune-file $D/calib.u16"
		# real bits: the tensors stored exactly counted too
		nwc_image "$W/i.nwc" "$D/model" -j2 $tune --bits "$bits" \
			--calib-stats "$W/stats.safetensors" \
			--calib-shrink "$a" --calib-damp "$d" \
			--calib-promote "$pr" --calib-sens-power "$pw"
		line=$(grep '^lossy: .* tensors,' "$W/mkfs.out")
		"$FSCK" -q -x "$W/x" "$W/i.nwc" || t_fail "fsck.nwc -x"
		for e in heldout ood; do
			"$NWC" eval -q -j2 --max-tokens "$N" "$W/x" "$D/$e.u16" |
				awk -v e=$e '/perplexity/ { printf " %s=%s", e, $2 }'
		done >"$W/ppl"
		echo "bits=$bits real=$NWC_BPW fallbacks=$NWC_FALLBACKS shrink=$a damp=$d promote=$pr sens=$SENS power=$pw tune=$tn models=$(basename "$MODELS")$(cat "$W/ppl") | $line"
		rm -rf "$W/x" "$W/i.nwc"
	done
	done
	done
	done
	done
done
