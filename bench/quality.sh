#!/bin/bash
# SPDX-License-Identifier: MIT
# quality.sh - lossy quality benchmark: perplexity of stories260K after
# mkfs.nwc's neural codec, against scalar baselines at the same bits.
#
# Run by `make quality` (which sets top_srcdir and top_builddir), or by
# hand from the build directory.  Needs mkfs/mkfs.nwc, fs/fsck.nwc,
# mkfs/tools/nwc and bench/quantize.  Scores every model on the whole
# tinystories_tok512_eval.u16 with `nwc eval`; calibration (mkfs.nwc
# --calib and the H that GPTQ uses) reads the first $CALIB_TOKENS tokens of
# tinystories_tok512_calib.u16, the same for both.
#
#   NWC      mkfs.nwc --bits B [--calib], fsck.nwc -x, nwc eval on the
#            extracted directory.  bits/weight: the stored bytes of the
#            tensors that fsck.nwc -l -t lists with codec nwc/* (payload
#            and side data, checked against the "lossy:" line of mkfs's
#            summary) times 8, over the weights that line counts.
#   RTN-gG   bench/quantize rtn-gG b: b + 32 bits per group of G weights
#            of a row (a row of 64 is one group of 64 for G = 128).
#   ECSQ     bench/quantize ecsq D: real rANS bytes + table + 16 bits/row.
#   GPTQ     bench/quantize gptq b: b bits + (16 + b) bits per row.
#
# Baselines at an NWC point's bits: log perplexity interpolated linearly in
# bits between the two sweep points around it (n/a outside the sweep).
# Prints Markdown on stdout, also written to bench/out/quality.md with the
# points in quality.tsv and, if matplotlib imports, the plot quality.png;
# progress on stderr.  Environment: NWC_SHARED (directory holding models/
# and corpus/, default $top_srcdir/../shared), NWC_MODELS_DIR (codec
# models, default $top_srcdir/codec/models).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

. "${top_srcdir:-.}/tests/lib.sh"

QZ=$B/bench/quantize
SHARED=${NWC_SHARED:-$S/../shared}
MODELS=${NWC_MODELS_DIR:-$S/codec/models}
OUT=$B/bench/out
# What to measure; bench/quality-smollm2.sh sets these for SmolLM2.
#   QUALITY_MODEL         model directory
#   QUALITY_CALIB         calibration tokens (mkfs.nwc --calib, GPTQ's H)
#   QUALITY_CALIB_TOKENS  how many of them
#   QUALITY_EVALS         "NAME=TOKENS.u16 ...": perplexity on each; the
#                         first is the one the tables interpolate on
#   QUALITY_EVAL_TOKENS   the first N tokens of each (0: all)
#   QUALITY_NAME          output names bench/out/NAME.{md,tsv,png}
#   QUALITY_TITLE, QUALITY_NOTE   the report's model line, and a caveat
SHARED_MODEL=${QUALITY_MODEL:-$SHARED_MODEL}
CALIB=${QUALITY_CALIB:-$SHARED/corpus/tinystories_tok512_calib.u16}
CALIB_TOKENS=${QUALITY_CALIB_TOKENS:-65536}
EVALS=${QUALITY_EVALS:-tinystories=$SHARED/corpus/tinystories_tok512_eval.u16}
EVAL_TOKENS=${QUALITY_EVAL_TOKENS:-0}
NAME=${QUALITY_NAME:-quality}
TITLE=${QUALITY_TITLE:-stories260K-hf}
RES=$OUT/$NAME.md
TSV=$OUT/$NAME.tsv
PNG=$OUT/$NAME.png
EVAL=${EVALS%% *}
EVAL=${EVAL#*=}

# The sweeps (QUALITY_NWC_BITS and the like override them, for a quick run).
NWC_BITS=${QUALITY_NWC_BITS-3 4 5 6}
RTN_BITS=${QUALITY_RTN_BITS-2 3 4 5 6 7}
GPTQ_BITS=${QUALITY_GPTQ_BITS-2 3 4 5 6 7}
ECSQ_STEPS=${QUALITY_ECSQ_STEPS-1 0.7071 0.5 0.3536 0.25 0.1768 0.125 0.08839 0.0625 0.04419 0.03125}

PROG=quality
. "$top_srcdir/bench/quality-lib.sh"

for p in "$MKFS" "$FSCK" "$NWC" "$QZ"; do
	[ -x "$p" ] || die "$p is not built; run make all bench/quantize"
done
for f in "$SHARED_MODEL/config.json" "$CALIB" $(for e in $EVALS; do echo "${e#*=}"; done); do
	if [ ! -f "$f" ]; then
		echo "quality: skipped: no $f (set NWC_SHARED to the directory that holds models/ and corpus/)" >&2
		exit 0
	fi
done
ls "$MODELS"/*.nwcm >/dev/null 2>&1 ||
	die "no codec models (*.nwcm) in $MODELS (set NWC_MODELS_DIR)"
mkdir -p "$OUT" || die "cannot create $OUT"
t_workdir
T_START=$EPOCHREALTIME

# ppl DIR: perplexity of the model directory DIR on each eval set, space
# separated, in the order of $EVALS.
ppl() {
	local e out=
	for e in $EVALS; do
		"$NWC" eval -q ${EVAL_TOKENS:+--max-tokens "$EVAL_TOKENS"} \
			"$1" "${e#*=}" >"$W/eval.out" ||
			die "nwc eval $1 ${e#*=} failed: $(cat "$W/eval.out")"
		out="$out${out:+ }$(awk '$1 == "perplexity:" { print $2 }' "$W/eval.out")"
	done
	echo "$out"
}
[ "$EVAL_TOKENS" = 0 ] && EVAL_TOKENS=

# Points: method, parameter, bits/weight, SQNR dB, then a perplexity per
# eval set.
{
	printf 'method\tparam\tbpw\tsqnr_db'
	for e in $EVALS; do printf '\tppl_%s' "${e%%=*}"; done
	printf '\n'
} >"$TSV"
point() {
	local ps=$5
	printf '%s\t%s\t%s\t%s' "$1" "$2" "$3" "$4" >>"$TSV"
	printf '\t%s' $ps >>"$TSV"
	printf '\n' >>"$TSV"
}

note "original model"
PPLS0=$(ppl "$SHARED_MODEL")
PPL0=${PPLS0%% *}
DIR_BYTES=$(find "$SHARED_MODEL" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

note "calibration statistics for GPTQ (nwc calib, $CALIB_TOKENS tokens)"
"$NWC" calib -q --max-tokens $CALIB_TOKENS "$SHARED_MODEL" "$CALIB" \
	-o "$W/stats.safetensors" || die "nwc calib failed"

# --- NWC images ------------------------------------------------------------
NWC_ROWS=()
for calib in yes no; do
	for b in $NWC_BITS; do
		note "NWC: mkfs.nwc --bits $b, calibration: $calib"
		opt=()
		[ $calib = yes ] && opt=(--calib "$CALIB" --calib-tokens "$CALIB_TOKENS")
		img=$W/b$b$calib.nwc
		nwc_image "$img" "$SHARED_MODEL" --bits "$b" "${opt[@]}"
		bpw=$NWC_BPW sqnr=$NWC_SQNR mbytes=$NWC_MODEL_BYTES
		fallbacks=$NWC_FALLBACKS
		"$FSCK" -q -x "$W/x" "$img" || die "fsck.nwc -x $img failed"
		ps=$(ppl "$W/x")
		rm -rf "$W/x"
		name="NWC"
		[ $calib = no ] && name="NWC-nocalib"
		point "$name" "$b" "$bpw" "$sqnr" "$ps"
		isz=$(fsize "$img")
		cells=
		set -- $PPLS0
		for p in $ps; do
			cells="$cells | $p ($(calc '%+.2f%%' "100 * ($p - $1) / $1"))"
			shift
		done
		NWC_ROWS+=("| $b | $calib | $bpw | $fallbacks$cells | $sqnr | $isz | $(calc '%.1f%%' "100 * $isz / $DIR_BYTES") | $mbytes |")
		rm -f "$img"
	done
done

# --- baselines -------------------------------------------------------------
# baseline NAME METHOD PARAM [--stats FILE]
baseline() {
	local name=$1 method=$2 param=$3 out
	shift 3
	note "$name: quantize $method $param"
	rm -rf "$W/q"
	out=$("$QZ" "$method" "$param" "$SHARED_MODEL" "$W/q" "$@") ||
		die "bench/quantize $method $param failed"
	point "$name" "$param" "$(kv bpw "$out")" "$(kv sqnr_db "$out")" \
		"$(ppl "$W/q")"
}
for b in $RTN_BITS; do
	baseline RTN-g32 rtn-g32 "$b"
	baseline RTN-g128 rtn-g128 "$b"
done
for d in $ECSQ_STEPS; do
	baseline ECSQ ecsq "$d"
done
for b in $GPTQ_BITS; do
	baseline GPTQ gptq "$b" --stats "$W/stats.safetensors"
done

# --- report ----------------------------------------------------------------
# The tables from the points: every point, then each NWC point with the
# baselines interpolated at its bits, then the summary targets.
# report TSV PPL0: the tables of one eval set's points (column 5).
report() {
	awk -F '\t' -v ppl0="$2" "$QUALITY_AWK_INTERP"'
	function incr(p) {
		return sprintf("%+.4f (%+.2f%%)", p - ppl0, 100 * (p - ppl0) / ppl0)
	}
	NR == 1 { next }
	{
		m = $1
		if (!(m in n)) {
			order[++nm] = m
			n[m] = 0
		}
		n[m]++
		k = m SUBSEP n[m]
		par[k] = $2; bx[k] = $3; sq[k] = $4; by[k] = $5
	}
	END {
		printf "## All points\n\n"
		printf "| method | param | bits/weight | SQNR dB | perplexity | increase over original |\n"
		printf "|---|---:|---:|---:|---:|---:|\n"
		printf "| original | - | 32 | - | %.4f | - |\n", ppl0
		for (o = 1; o <= nm; o++) {
			m = order[o]
			for (i = 1; i <= n[m]; i++) {
				k = m SUBSEP i
				printf "| %s | %s | %.3f | %.2f | %.4f | %s |\n",
				       m, par[k], bx[k], sq[k], by[k], incr(by[k])
			}
		}
		printf "\n## Baselines at the NWC points'\'' bits\n\n"
		printf "Baseline perplexity interpolated (log-linear in bits) between its two sweep points around the NWC point'\''s bits/weight.\n\n"
		printf "| method | bits/weight | perplexity | increase over original | from points at bits |\n"
		printf "|---|---:|---:|---:|---|\n"
		for (o = 1; o <= nm; o++) {
			m = order[o]
			if (m !~ /^NWC/)
				continue
			for (i = 1; i <= n[m]; i++) {
				k = m SUBSEP i
				x = bx[k]
				printf "| **%s --bits %s** | %.3f | %.4f | %s | measured |\n",
				       m, par[k], x, by[k], incr(by[k])
				for (q = 1; q <= nm; q++) {
					b = order[q]
					if (b ~ /^NWC/)
						continue
					y = interp(b, x, by)
					if (y < 0)
						printf "| %s | %.3f | n/a | n/a | %s |\n",
						       b, x, span
					else
						printf "| %s | %.3f | %.4f | %s | %s |\n",
						       b, x, y, incr(y), span
				}
			}
		}
		# Targets: calibrated NWC at <= 4.25 bits (the most bits there)
		# against ECSQ; calibrated NWC --bits 6 as % of the original.
		printf "\n## Summary\n\n"
		best = 0
		for (i = 1; i <= n["NWC"]; i++) {
			k = "NWC" SUBSEP i
			if (bx[k] <= 4.25 && (!best || bx[k] > bx["NWC" SUBSEP best]))
				best = i
		}
		if (best) {
			k = "NWC" SUBSEP best
			y = interp("ECSQ", bx[k], by)
			if (y > ppl0 && by[k] >= ppl0)
				printf "- At <= 4.25 bits: NWC --bits %s (%.3f bits/weight) raises perplexity by %.4f, ECSQ at the same bits by %.4f: ratio NWC / ECSQ = **%.3f** (< 1: NWC better).\n",
				       par[k], bx[k], by[k] - ppl0, y - ppl0,
				       (by[k] - ppl0) / (y - ppl0)
			else
				printf "- At <= 4.25 bits: NWC --bits %s (%.3f bits/weight, perplexity %.4f): ECSQ has no point to compare (%s).\n",
				       par[k], bx[k], by[k], y < 0 ? "outside its sweep" : "no increase"
		} else {
			printf "- At <= 4.25 bits: no calibrated NWC point.\n"
		}
		six = 0
		for (i = 1; i <= n["NWC"]; i++)
			if (par["NWC" SUBSEP i] == 6)
				six = i
		if (six) {
			k = "NWC" SUBSEP six
			printf "- At 6 bits: NWC --bits 6 (%.3f bits/weight%s) perplexity %.4f, increase **%.2f%%** of the original %.4f.\n",
			       bx[k], bx[k] < 5.9 ? ", the highest rate the codec models reach" : "",
			       by[k], 100 * (by[k] - ppl0) / ppl0, ppl0
		}
	}' "$1"
}

# The points of eval set K (1-based) alone: method, param, bpw, SQNR, ppl.
project() {
	awk -F '\t' -v c=$((4 + $1)) 'BEGIN { OFS = "\t" }
		{ print $1, $2, $3, $4, $c }' "$TSV"
}

commit=$(git -C "$S" rev-parse --short HEAD 2>/dev/null) || commit=unknown
{
	echo "# nwcfs lossy quality benchmark"
	echo
	echo "Model: $TITLE ($DIR_BYTES bytes); perplexity by \`nwc eval\` on ${EVAL_TOKENS:-all} tokens of each eval set;" \
		"calibration: first $CALIB_TOKENS tokens of $(basename "$CALIB") (mkfs.nwc --calib and GPTQ's H)." \
		"Codec models: $MODELS. Machine: $(nproc) CPUs. Commit $commit, $(date -u '+%Y-%m-%d %H:%M UTC')."
	[ -n "${QUALITY_NOTE:-}" ] && echo && echo "$QUALITY_NOTE"
	echo
	set -- $PPLS0
	for e in $EVALS; do
		echo "- Original perplexity on ${e%%=*} ($(basename "${e#*=}")): **$1**."
		shift
	done
	echo
	echo "## NWC images"
	echo
	echo "bits/weight = 8 x stored bytes of the tensors selected for the codec (payload + side data; those mkfs.nwc stored losslessly instead counted with their lossless bytes, and named in the fallbacks column) / their weights. Perplexity with its increase over the original. Image = whole image file, which holds the codec models it uses (last column)."
	echo
	printf '| --bits | calib | bits/weight | fallbacks |'
	for e in $EVALS; do printf ' %s |' "${e%%=*}"; done
	printf ' SQNR dB | image bytes | image / dir | codec models bytes |\n'
	printf '|---:|---|---:|---:|'
	for e in $EVALS; do printf -- '---:|'; done
	printf -- '---:|---:|---:|---:|\n'
	printf '%s\n' "${NWC_ROWS[@]}"
	k=1
	set -- $PPLS0
	for e in $EVALS; do
		echo
		echo "# Evaluation on ${e%%=*} (original perplexity $1)"
		echo
		project $k >"$W/proj.tsv"
		report "$W/proj.tsv" "$1"
		k=$((k + 1))
		shift
	done
	echo
	echo "Produced by bench/quality.sh in $B ($(calc '%.0f' "$EPOCHREALTIME - $T_START") s)."
} >"$RES" || die "cannot write $RES"

# The plot is drawn from the report, so that a committed report can be
# plotted again (bench/quality-plot.py RESULTS.md OUT.png).
PLOT_PY=
for p in python3 /usr/bin/python3; do
	if "$p" -c 'import matplotlib' 2>/dev/null; then
		PLOT_PY=$p
		break
	fi
done
if [ -z "$PLOT_PY" ]; then
	PLOT_NOTE="No plot: python3 cannot import matplotlib."
elif "$PLOT_PY" "$S/bench/quality-plot.py" "$RES" "$PNG" 2>"$W/plot.err"; then
	PLOT_NOTE="Plot: $PNG."
else
	PLOT_NOTE="Plot failed: $(head -n 3 "$W/plot.err")"
fi
note "$PLOT_NOTE"
cat "$RES"
note "results written to $RES"
