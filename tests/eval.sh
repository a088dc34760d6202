#!/bin/sh
# eval.sh - nwc eval and nwc calib on the real model (stories260K) against
# the numpy reference tests/llama_ref.py: perplexity within 1e-4 relative;
# the stats file holds every linear weight's H, symmetric, with a
# non-negative diagonal and equal to the reference's; -j does not change a
# bit; bad input gives a message naming the file and the documented status.
. "$top_srcdir/tests/lib.sh"
SHARED=${NWC_SHARED:-$S/../shared}
TOK=$SHARED/corpus/tinystories_tok512_eval.u16
# 10k tokens keep the numpy reference (most of the time) near 2 s.
N=10000

[ -x "$NWC" ] || t_fail "$NWC not built"
[ -d "$SHARED_MODEL" ] && [ -f "$TOK" ] ||
	t_skip "real model $SHARED_MODEL or tokens $TOK absent (set \
NWC_SHARED to the directory that holds models/ and corpus/)"
t_require_python
python3 -c 'import numpy' 2>/dev/null || t_skip "python3 cannot import numpy"
t_workdir
# The reference is many small products: BLAS threads only get in the way.
OPENBLAS_NUM_THREADS=1
export OPENBLAS_NUM_THREADS

"$NWC" eval -q -j 2 --max-tokens $N "$SHARED_MODEL" "$TOK" >"$W/eval" ||
	t_fail "nwc eval failed: $(cat "$W/eval")"
ppl=$(awk '$1 == "perplexity:" { print $2 }' "$W/eval")
grep -q "^tokens: [0-9]* predicted of $N read\$" "$W/eval" ||
	t_fail "nwc eval did not read $N tokens: $(cat "$W/eval")"
"$NWC" calib -q -j 2 --max-tokens $N "$SHARED_MODEL" "$TOK" \
	-o "$W/stats.safetensors" || t_fail "nwc calib failed"
python3 "$S/tests/llama_ref.py" check "$SHARED_MODEL" "$TOK" \
	--max-tokens $N --ppl "$ppl" --stats "$W/stats.safetensors" ||
	t_fail "nwc differs from tests/llama_ref.py (nwc perplexity $ppl)"
ls "$W"/stats.safetensors.tmp.* >/dev/null 2>&1 &&
	t_fail "temporary file left beside the stats file"

# One thread or three: the same output, to the last digit.
"$NWC" eval -q -j 1 --ctx 64 --max-tokens 4000 "$SHARED_MODEL" "$TOK" \
	>"$W/j1" || t_fail "nwc eval -j 1 failed"
"$NWC" eval -q -j 3 --ctx 64 --max-tokens 4000 "$SHARED_MODEL" "$TOK" \
	>"$W/j3" || t_fail "nwc eval -j 3 failed"
cmp -s "$W/j1" "$W/j3" || t_fail "-j 1 and -j 3 differ: $(cat "$W/j1" "$W/j3")"

# run WANT PATTERN CMD...: CMD exits with WANT and says PATTERN.
run() {
	want=$1 re=$2
	shift 2
	rc=0
	"$@" >"$W/out" 2>&1 </dev/null || rc=$?
	[ "$rc" = "$want" ] ||
		t_fail "'$*' exited with $rc, expected $want: $(cat "$W/out")"
	grep -q -E -e "$re" "$W/out" ||
		t_fail "'$*': message lacks /$re/: $(cat "$W/out")"
}
printf '\001\000\377\001' >"$W/big.u16"	# BOS, then 511: the last id
printf '\001\000\000\002' >"$W/oov.u16"	# token 512 >= vocab_size
printf '\001\000\002' >"$W/odd.u16"
run 1 'MODEL_DIR' "$NWC" eval "$SHARED_MODEL"
run 1 'calib needs -o' "$NWC" calib "$SHARED_MODEL" "$TOK"
run 1 'invalid value' "$NWC" eval -j 0 "$SHARED_MODEL" "$TOK"
run 1 'expected a command' "$NWC" "$SHARED_MODEL" "$TOK"
run 2 "$W/none/config.json" "$NWC" eval "$W/none" "$TOK"
run 3 "odd.u16.*odd size" "$NWC" eval "$SHARED_MODEL" "$W/odd.u16"
run 3 'token 512 at index 1 .*vocab_size 512' \
	"$NWC" eval "$SHARED_MODEL" "$W/oov.u16"
run 0 'perplexity' "$NWC" eval "$SHARED_MODEL" "$W/big.u16"
exit 0
