# SPDX-License-Identifier: MIT
# quality-lib.sh - what bench/quality.sh and bench/quality-minilm.sh share:
# small helpers, a lossy image with its bits checked, and the awk function
# that interpolates a baseline at an NWC point's bits.  Sourced after
# tests/lib.sh (MKFS, FSCK, W) with PROG, MODELS and W set.

. "$top_srcdir/bench/bench-lib.sh"

# nwc_image IMG DIR [MKFS_OPTION...]: mkfs.nwc DIR into IMG with the codec
# models of $MODELS.  Sets NWC_BPW (the stored bytes of the tensors that
# fsck.nwc -l -t lists with codec nwc/*, payload and side data, whose sum
# must agree with mkfs's "lossy:" line, plus those of the tensors mkfs.nwc
# warns it stored losslessly instead, times 8 over all their weights),
# NWC_FALLBACKS (how many of the latter), NWC_SQNR (the "lossy:" line's)
# and NWC_MODEL_BYTES (the embedded codec models).
nwc_image() {
	local img=$1 dir=$2 line weights payload side stored
	shift 2
	"$MKFS" --models "$MODELS" "$@" "$dir" "$img" >"$W/mkfs.out" 2>&1 ||
		die "mkfs.nwc $* failed: $(cat "$W/mkfs.out")"
	line=$(grep '^lossy:' "$W/mkfs.out") ||
		die "no lossy: line in mkfs.nwc's summary: $(cat "$W/mkfs.out")"
	weights=$(sed -n 's/.* \([0-9][0-9]*\) weights,.*/\1/p' <<<"$line")
	payload=$(sed -n 's/.*(\([0-9][0-9]*\) payload.*/\1/p' <<<"$line")
	side=$(sed -n 's/.* \([0-9][0-9]*\) side bytes.*/\1/p' <<<"$line")
	NWC_SQNR=$(sed -n 's/.*, SQNR \([-0-9.]*\) dB.*/\1/p' <<<"$line")
	"$FSCK" -l -t "$img" >"$W/list" || die "fsck.nwc -l -t $img failed"
	stored=$(awk '$6 ~ /^nwc\// { s += $4 } END { print s + 0 }' "$W/list")
	NWC_MODEL_BYTES=$(awk '$1 == "model" && $2 ~ /^m[0-9]+:$/ {
		for (i = 3; i < NF; i++) if ($(i + 1) ~ /^bytes/) s += $i
	} END { print s + 0 }' "$W/list")
	[ -n "$weights" ] && [ "$weights" -gt 0 ] ||
		die "cannot parse mkfs.nwc's lossy line: $line"
	[ "$stored" = $((payload + side)) ] ||
		die "fsck.nwc lists $stored bytes of nwc tensors, mkfs.nwc's summary $payload + $side"
	# Tensors selected for the codec but stored exactly (a warning names
	# each, or the summary those that --exact-tensors chose) count too:
	# bits/weight is over every selected tensor.
	sed -n -e 's/^mkfs\.nwc: warning: [^:]*: \([^:]*\): .*stored losslessly$/\1/p' \
		-e 's/^lossy: exact: [^:]*: \(.*\)$/\1/p' \
		"$W/mkfs.out" >"$W/fallbacks"
	set -- $(awk 'NR == FNR { fb[$1] = 1; next }
		/^    / && ($NF in fb) {
			n = split(substr($2, 2, length($2) - 2), d, ",")
			w = 1
			for (i = 1; i <= n; i++) w *= d[i]
			s += $4; ws += w
		} END { print s + 0, ws + 0 }' "$W/fallbacks" "$W/list")
	NWC_FALLBACKS=$(wc -l <"$W/fallbacks")
	NWC_BPW=$(calc '%.4f' "8 * ($stored + $1) / ($weights + $2)")
}

# interp(m, x, y): the value of method m at x bits per weight, from its
# points k = m SUBSEP i (i = 1 .. n[m]) at bits bx[k] with values y[k],
# linear in bits on log y between the two points around x; -1 outside
# them.  Sets span to the bits of those two points.
QUALITY_AWK_INTERP='
function lg(v) { return log(v > 1e-12 ? v : 1e-12) }
function interp(m, x, y,    i, k, lo, hi, t, a, b) {
	lo = hi = 0
	for (i = 1; i <= n[m]; i++) {
		k = m SUBSEP i
		if (bx[k] <= x && (!lo || bx[k] > bx[m SUBSEP lo]))
			lo = i
		if (bx[k] >= x && (!hi || bx[k] < bx[m SUBSEP hi]))
			hi = i
	}
	span = "outside the sweep"
	if (!lo || !hi)
		return -1
	span = sprintf("%.3f .. %.3f", bx[m SUBSEP lo], bx[m SUBSEP hi])
	if (bx[m SUBSEP hi] == bx[m SUBSEP lo])
		return y[m SUBSEP lo]
	t = (x - bx[m SUBSEP lo]) / (bx[m SUBSEP hi] - bx[m SUBSEP lo])
	a = lg(y[m SUBSEP lo])
	b = lg(y[m SUBSEP hi])
	return exp(a + (b - a) * t)
}
'
