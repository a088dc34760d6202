#!/bin/sh
# nwctrain.sh - nwc-train: a short run, --check, resume determinism, bad inputs.
. "$top_srcdir/tests/lib.sh"
t_workdir

[ -x "$TRAIN" ] || t_skip "nwc-train not built"
t_gen --dtype F32 "$W/m"
ST=$W/m/model.safetensors
OPTS="--hidden 8 --batch 128 --threads 1 --seed 7"

# A short run: exit 0, a final evaluation, a model that loads.
"$TRAIN" $OPTS --steps 200 --eval-every 100 "$W/a.nwcm" "$ST" \
	>"$W/a.log" 2>&1 || t_fail "training failed: $(cat "$W/a.log")"
grep -q '^eval step 100 level 1: ' "$W/a.log" ||
	t_fail "no evaluation at step 100: $(cat "$W/a.log")"
line=$(grep '^final level 1: ' "$W/a.log") ||
	t_fail "no final evaluation: $(cat "$W/a.log")"
echo "$line"
echo "$line" | grep -Eq ': [0-9]+\.[0-9]{4} bits/weight, SQNR -?[0-9]+\.[0-9]{2} dB' ||
	t_fail "final evaluation not finite: $line"
"$TRAIN" --seed 7 --check "$W/a.nwcm" "$ST" >"$W/check.log" 2>&1 ||
	t_fail "--check failed: $(cat "$W/check.log")"
grep -q ': H 8, R 1, Q 4, C 16, lambda 100, [0-9]* parameters$' "$W/check.log" ||
	t_fail "--check shape: $(cat "$W/check.log")"
# the reloaded model evaluates exactly as it did at the end of training
grep '^final level' "$W/a.log" | sed 's/^final/eval/' >"$W/want"
grep '^eval level' "$W/check.log" >"$W/got"
cmp -s "$W/want" "$W/got" || t_fail "--check evaluation differs"
ls "$W" | grep -q tmp && t_fail "temporary files left: $(ls "$W")"

# Determinism: 100 steps, then resume to 200 = 200 steps in one go.
"$TRAIN" $OPTS -q --steps 200 "$W/full.nwcm" "$ST" ||
	t_fail "uninterrupted run failed"
"$TRAIN" $OPTS -q --steps 200 "$W/full2.nwcm" "$ST" ||
	t_fail "second uninterrupted run failed"
cmp "$W/full.nwcm" "$W/full2.nwcm" || t_fail "two identical runs differ"
"$TRAIN" $OPTS -q --steps 100 --checkpoint "$W/ck" --checkpoint-every 40 \
	"$W/half.nwcm" "$ST" || t_fail "first half failed"
"$TRAIN" $OPTS --steps 200 --resume "$W/ck" "$W/resumed.nwcm" "$ST" \
	>"$W/r.log" 2>&1 || t_fail "resume failed: $(cat "$W/r.log")"
grep -q 'resumed from .* at step 100$' "$W/r.log" ||
	t_fail "resume did not start at step 100: $(cat "$W/r.log")"
grep -q 'trained steps 100\.\.200 ' "$W/r.log" ||
	t_fail "resume did not run steps 100..200: $(cat "$W/r.log")"
cmp "$W/full.nwcm" "$W/resumed.nwcm" ||
	t_fail "resumed model differs from the uninterrupted one"
cmp -s "$W/full.nwcm" "$W/half.nwcm" && t_fail "100 and 200 steps agree"

# A linear model (--init-branch 0): --check says so and evaluates as the
# training did (both through the folded decoder), and an image coded with
# it alone reads back through fsck.nwc.
"$TRAIN" $OPTS --hidden 16 --init-branch 0 --init-gain 2 --steps 200 \
	"$W/lin.nwcm" "$ST" >"$W/lin.log" 2>&1 ||
	t_fail "linear training failed: $(cat "$W/lin.log")"
"$TRAIN" --seed 7 --check "$W/lin.nwcm" "$ST" >"$W/check.log" 2>&1 ||
	t_fail "--check of the linear model failed: $(cat "$W/check.log")"
grep -q ': H 16, R 1, Q 4, C 16, lambda 100, .* parameters, linear decoder$' \
	"$W/check.log" || t_fail "--check linear shape: $(cat "$W/check.log")"
grep '^final level' "$W/lin.log" | sed 's/^final/eval/' >"$W/want"
grep '^eval level' "$W/check.log" >"$W/got"
cmp -s "$W/want" "$W/got" || t_fail "linear --check evaluation differs"
mkdir "$W/lin" && cp "$W/lin.nwcm" "$W/lin/" || t_fail "cp"
"$MKFS" -q -j2 --models "$W/lin" --bits 4 "$W/m" "$W/lin.nwc" \
	>"$W/mk.log" 2>&1 || t_fail "mkfs.nwc with the linear model: $(cat "$W/mk.log")"
"$FSCK" -q "$W/lin.nwc" || t_fail "fsck.nwc of the linear image"
"$NWC" info "$W/lin.nwc" >"$W/info" || t_fail "nwc info of the linear image"
grep -q '^model m0: H=16 R=1 Q=4 lambda=100 tcq linear, ' "$W/info" ||
	t_fail "nwc info does not show the linear model: $(cat "$W/info")"

# A checkpoint of other options, or damaged, is refused.
rc=0
"$TRAIN" $OPTS --lambda 30 --steps 200 --resume "$W/ck" "$W/x.nwcm" "$ST" \
	2>"$W/err" || rc=$?
[ $rc -ne 0 ] && grep -q 'other options' "$W/err" ||
	t_fail "resume with another lambda: rc $rc, $(cat "$W/err")"
t_flip_byte "$W/ck" 200
rc=0
"$TRAIN" $OPTS --steps 200 --resume "$W/ck" "$W/x.nwcm" "$ST" 2>"$W/err" ||
	rc=$?
[ $rc -ne 0 ] && grep -q 'corrupt' "$W/err" ||
	t_fail "damaged checkpoint: rc $rc, $(cat "$W/err")"
[ -e "$W/x.nwcm" ] && t_fail "a model was written after an error"

# Bad inputs: non-zero exit and a message naming the problem.
expect_fail() {
	what=$1
	shift
	rc=0
	"$TRAIN" "$@" >"$W/out" 2>"$W/err" || rc=$?
	[ $rc -ne 0 ] || t_fail "$what: exit 0"
	grep -q "$PATTERN" "$W/err" ||
		t_fail "$what: no '$PATTERN' in: $(cat "$W/err")"
}
PATTERN="$W/missing.safetensors: No such file"
expect_fail "missing file" $OPTS "$W/x.nwcm" "$W/missing.safetensors"
PATTERN="$W/m/config.json"
expect_fail "not safetensors" $OPTS "$W/x.nwcm" "$W/m/config.json"
printf 'not a model file at all' >"$W/junk"
PATTERN="$W/junk"
expect_fail "junk" $OPTS "$W/x.nwcm" "$W/junk"
# only matrices of fewer than 16 rows, and an embedding
j='{"norm":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]},'
j=$j'"embed_tokens.weight":{"dtype":"F32","shape":[16,4],"data_offsets":[64,320]}}'
{
	printf "\\$(printf %03o ${#j})\\000\\000\\000\\000\\000\\000\\000"
	printf '%s' "$j"
	head -c 320 /dev/zero
} >"$W/small.safetensors"
PATTERN="no usable tensors"
expect_fail "no usable tensors" $OPTS "$W/x.nwcm" "$W/small.safetensors"
PATTERN="invalid value"
expect_fail "bad option" --hidden 0 "$W/x.nwcm" "$ST"
PATTERN="needs --hidden 16"
expect_fail "narrow linear model" $OPTS --init-branch 0 "$W/x.nwcm" "$ST"
PATTERN="$W/nodir/x.nwcm"
expect_fail "unwritable output" $OPTS --steps 2 "$W/nodir/x.nwcm" "$ST"
PATTERN="$W/a.log: not an NWC codec model"
expect_fail "--check of a non-model" --check "$W/a.log"
[ -e "$W/x.nwcm" ] && t_fail "a model was written after an error"
exit 0
