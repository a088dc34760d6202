#!/bin/sh
# sensitivity.sh - the backward pass (nwc calib --sensitivity, mkfs.nwc
# --calib-sens) against PyTorch's autograd (tests/sens_ref.py) on the tiny
# models of tests/llama_ref.py: GQA with a tied head, q/k/v biases, an
# o_proj bias, a sliding window and per-head q/k norms, with windows cut
# short; the same bits on 1 and 3 threads; mkfs.nwc allocates by the
# sensitivities when it has them, the same image on 1 and 2 threads, and
# refuses bad options.
. "$top_srcdir/tests/lib.sh"

[ -x "$NWC" ] || t_fail "$NWC not built"
PY=''
for py in ${NWC_PYTHON:-python3 /usr/bin/python3}; do
	command -v "$py" >/dev/null || continue
	"$py" -c 'import numpy, torch, safetensors' 2>/dev/null &&
		{ PY=$py; break; }
done
[ -n "$PY" ] || t_skip "no python3 with numpy, torch and safetensors \
(./setup.sh installs them)"
t_workdir

for c in gqa_tied qwen2_bias attn_bias mistral_window qwen3_qknorm; do
	"$PY" "$S/tests/sens_ref.py" case $c "$W/$c" ||
		t_fail "sens_ref.py case $c failed"
	"$NWC" calib -q -j2 --ctx 6 --sensitivity 1000 "$W/$c" "$W/$c.u16" \
		-o "$W/$c.st" || t_fail "nwc calib --sensitivity: $c failed"
	"$PY" "$S/tests/sens_ref.py" check --ctx 6 "$W/$c" "$W/$c.u16" \
		"$W/$c.st" >"$W/check" 2>&1 ||
		t_fail "$c: nwc differs from tests/sens_ref.py: $(cat "$W/check")"
done

# Threads change nothing; fewer tokens change the sensitivities only.
c=qwen3_qknorm
"$NWC" calib -q -j1 --ctx 6 --sensitivity 1000 "$W/$c" "$W/$c.u16" \
	-o "$W/j1.st" || t_fail "nwc calib -j1 failed"
"$NWC" calib -q -j3 --ctx 6 --sensitivity 1000 "$W/$c" "$W/$c.u16" \
	-o "$W/j3.st" || t_fail "nwc calib -j3 failed"
cmp -s "$W/j1.st" "$W/j3.st" || t_fail "-j1 and -j3 give different files"
"$NWC" calib -q -j2 --ctx 6 --sensitivity 20 "$W/$c" "$W/$c.u16" \
	-o "$W/few.st" || t_fail "nwc calib --sensitivity 20 failed"
cmp -s "$W/j1.st" "$W/few.st" && t_fail "--sensitivity 20 changed nothing"
"$NWC" calib -q -j2 --ctx 6 "$W/$c" "$W/$c.u16" -o "$W/none.st" ||
	t_fail "nwc calib failed"
"$PY" -c 'import sys
from safetensors.numpy import load_file
sys.exit(any(k.endswith(".G") for k in load_file(sys.argv[1])))' \
	"$W/none.st" || t_fail "sensitivities without --sensitivity"

rc=0
"$NWC" eval --sensitivity 5 "$W/$c" "$W/$c.u16" >"$W/out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q 'an option of calib only' "$W/out" ||
	t_fail "nwc eval --sensitivity: exit $rc: $(cat "$W/out")"

# mkfs.nwc: a generated model, calibrated with the sensitivities.
t_gen "$W/g"
awk 'BEGIN { srand(3); for (s = 0; s < 12; s++) { printf "%c%c", 1, 0;
	for (i = 0; i < 60; i++) printf "%c%c", 2 + int(rand() * 90), 0 } }' \
	>"$W/tok.u16"
MK="--models $S/codec/models --bits 4 --calib $W/tok.u16"
"$MKFS" -q -v -j1 $MK --calib-sens 300 "$W/g" "$W/s1.nwc" >"$W/mk" 2>&1 ||
	t_fail "mkfs.nwc --calib-sens failed: $(cat "$W/mk")"
grep -q 'allocated by sensitivity' "$W/mk" ||
	t_fail "mkfs.nwc --calib-sens did not use them: $(cat "$W/mk")"
"$MKFS" -q -j2 $MK --calib-sens 300 "$W/g" "$W/s2.nwc" ||
	t_fail "mkfs.nwc -j2 --calib-sens failed"
cmp -s "$W/s1.nwc" "$W/s2.nwc" || t_fail "-j1 and -j2 give different images"
"$MKFS" -q -v -j2 $MK "$W/g" "$W/default.nwc" >"$W/mk" 2>&1 ||
	t_fail "mkfs.nwc --calib failed"
grep -q 'allocated by sensitivity' "$W/mk" ||
	t_fail "mkfs.nwc --calib does not measure them by default: $(cat "$W/mk")"
"$MKFS" -q -v -j2 $MK --calib-sens 0 "$W/g" "$W/plain.nwc" >"$W/mk" 2>&1 ||
	t_fail "mkfs.nwc --calib-sens 0 failed"
grep -q 'allocated by relative distortion' "$W/mk" ||
	t_fail "mkfs.nwc --calib-sens 0: $(cat "$W/mk")"
# The weighing moves bits between the tensors: other decoded weights.
"$FSCK" -q -x "$W/xp" "$W/plain.nwc" && "$FSCK" -q -x "$W/xs" "$W/s1.nwc" ||
	t_fail "fsck.nwc -x failed"
cmp -s "$W/xp/model.safetensors" "$W/xs/model.safetensors" &&
	t_fail "--calib-sens changed no weight"
# Power 0 weighs nothing: the weights of no sensitivities; the image
# records the power.
"$MKFS" -q -j2 $MK --calib-sens 300 --calib-sens-power 0 "$W/g" \
	"$W/p0.nwc" || t_fail "mkfs.nwc --calib-sens-power 0 failed"
"$FSCK" -q -x "$W/x0" "$W/p0.nwc" || t_fail "fsck.nwc -x failed"
cmp -s "$W/xp/model.safetensors" "$W/x0/model.safetensors" ||
	t_fail "--calib-sens-power 0 is not the allocation without them"
"$NWC" info "$W/p0.nwc" | grep -q -- "--calib-sens-power=0 " ||
	t_fail "the image does not record --calib-sens-power"
"$NWC" info "$W/s1.nwc" | grep -q -- "--calib-sens=300 .*--calib-sens-power=0.5 " ||
	t_fail "the image does not record --calib-sens and its power"
"$FSCK" -q "$W/s1.nwc" || t_fail "fsck.nwc of the --calib-sens image"
rc=0
"$MKFS" -q --models "$S/codec/models" --calib-sens 10 "$W/g" "$W/x.nwc" \
	>"$W/out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q -- '--calib-sens needs --calib' "$W/out" ||
	t_fail "--calib-sens without --calib: exit $rc: $(cat "$W/out")"
# The backward pass takes no more tokens than the calibration.
"$MKFS" -q -j2 $MK --calib-tokens 200 "$W/g" "$W/t200.nwc" ||
	t_fail "mkfs.nwc --calib-tokens 200 failed"
"$NWC" info "$W/t200.nwc" | grep -q -- "--calib-tokens=200 .*--calib-sens=200 " ||
	t_fail "--calib-sens is not capped by --calib-tokens: $("$NWC" info "$W/t200.nwc" | grep command)"

# Statistics files: sensitivities for some tensors only are set aside with
# a warning; one of the wrong length or sign is refused, naming the file.
"$NWC" calib -q -j2 --sensitivity 300 "$W/g" "$W/tok.u16" -o "$W/gs.st" ||
	t_fail "nwc calib --sensitivity of the generated model failed"
"$PY" - "$W/gs.st" "$W" <<'PYEOF2' || t_fail "cannot write the altered statistics"
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
st, w = load_file(sys.argv[1]), sys.argv[2]
gs = sorted(k for k in st if k.endswith(".G"))
save_file({k: v for k, v in st.items() if k != gs[0]}, w + "/part.st")
short = dict(st)
short[gs[0]] = st[gs[0]][:-1].copy()
save_file(short, w + "/short.st")
neg = dict(st)
neg[gs[0]] = -np.abs(st[gs[0]]) - 1
save_file(neg, w + "/neg.st")
PYEOF2
MS="--models $S/codec/models --bits 4"
"$MKFS" -q -v -j2 $MS --calib-stats "$W/gs.st" "$W/g" "$W/st.nwc" >"$W/mk" 2>&1 &&
	grep -q 'allocated by sensitivity' "$W/mk" ||
	t_fail "--calib-stats with sensitivities: $(cat "$W/mk")"
"$MKFS" -v -j2 $MS --calib-stats "$W/part.st" "$W/g" "$W/part.nwc" >"$W/mk" 2>&1 &&
	grep -q 'sensitivities for [0-9]* of the [0-9]* lossy tensors only' "$W/mk" &&
	grep -q 'allocated by relative distortion' "$W/mk" ||
	t_fail "--calib-stats with some sensitivities: $(cat "$W/mk")"
for f in short neg; do
	rc=0
	"$MKFS" -q $MS --calib-stats "$W/$f.st" "$W/g" "$W/x.nwc" >"$W/out" 2>&1 ||
		rc=$?
	[ $rc = 3 ] && grep -q "$f.st: .*sensitivit" "$W/out" ||
		t_fail "--calib-stats $f.st: exit $rc: $(cat "$W/out")"
	[ -e "$W/x.nwc" ] && t_fail "a refused run left its image"
done

# bad OPTION PATTERN: mkfs.nwc refuses OPTION with a message matching it.
bad() {
	rc=0
	"$MKFS" -q $MK $1 "$W/g" "$W/x.nwc" >"$W/out" 2>&1 || rc=$?
	[ $rc = 1 ] && grep -q -- "$2" "$W/out" ||
		t_fail "$1: exit $rc: $(cat "$W/out")"
}
bad "--calib-sens x" "'x' is not a number of tokens"
bad "--calib-sens-power 3" "'3' is not a number from 0 to 2"
bad "--calib-sens-power -1" "'-1' is not a number from 0 to 2"
rc=0
"$MKFS" -q --models "$S/codec/models" --calib-sens-power 1 "$W/g" \
	"$W/x.nwc" >"$W/out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q -- '--calib-sens-power needs --calib' "$W/out" ||
	t_fail "--calib-sens-power without --calib: exit $rc: $(cat "$W/out")"
[ -e "$W/x.nwc" ] && t_fail "a refused run left its image"
exit 0
