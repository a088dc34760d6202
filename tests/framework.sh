#!/bin/sh
# framework.sh - unmodified frameworks read images of the real model
# (stories260K) through nwcfs (tests/framework.py compares):
#  - lossless: safetensors' mmap loader, with torch and with numpy, gives
#    every tensor bit-identical to the source's, and transformers gives
#    bit-identical logits on real token sequences;
#  - lossy (mkfs.nwc's default NWC coding at 5 bits per weight, calibrated
#    on the calibration split): same names, dtypes and shapes, and logits
#    within a relative error of $LOSSY_MAX_ERR, top-1 tokens agreeing at a
#    rate of at least $LOSSY_MIN_TOP1.
. "$top_srcdir/tests/lib.sh"
t_require_fuse
SHARED=${NWC_SHARED:-$S/../shared}
[ -d "$SHARED_MODEL" ] ||
	t_skip "real model $SHARED_MODEL absent (set NWC_SHARED to the \
directory that holds models/stories260K-hf)"
TOKENS=$SHARED/corpus/tinystories_tok512_eval.u16
CALIB=$SHARED/corpus/tinystories_tok512_calib.u16
[ -f "$TOKENS" ] || t_skip "token ids $TOKENS absent"
[ -f "$CALIB" ] || t_skip "token ids $CALIB absent"
# Measured: relative error 0.046, top-1 agreement 92.0% (the log prints
# both).  The bounds leave room for other codec models and BLAS kernels; a
# wrong decode of any matrix lands far outside them.
LOSSY_MAX_ERR=0.1
LOSSY_MIN_TOP1=0.85

# The interpreter: $NWC_PYTHON, else the first of python3 and Debian's own
# /usr/bin/python3 that has the stack.  Debian's python3-torch serves only
# the latter, which matters when another python3 (pyenv's) is first on PATH.
PY=''
why=''
for py in ${NWC_PYTHON:-python3 /usr/bin/python3}; do
	if ! command -v "$py" >/dev/null; then
		why="$why; $py: not found"
		continue
	fi
	miss=$("$py" -c 'import importlib.util as u, sys
print(" ".join(m for m in sys.argv[1:] if u.find_spec(m) is None))' \
		numpy torch safetensors transformers 2>&1) ||
		miss="(it failed: $miss)"
	[ -z "$miss" ] && { PY=$py; break; }
	why="$why; $py lacks $miss"
done
[ -n "$PY" ] || t_skip "no python3 with numpy, torch, safetensors and \
transformers (./setup.sh installs them)$why"

t_workdir
HF_HOME=$W/hf
export HF_HOME
"$MKFS" -q --lossless "$SHARED_MODEL" "$W/model.nwc" ||
	t_fail "mkfs.nwc $SHARED_MODEL failed"
t_mount "$W/model.nwc" "$W/mnt"

# check WHAT [framework.py options]: compare $W/mnt with the source.
check() {
	what=$1
	shift
	rc=0
	"$PY" "$S/tests/framework.py" "$SHARED_MODEL" "$W/mnt" \
		--tokens "$TOKENS" --batch 4 --seq-len 128 "$@" \
		2>"$W/py.err" || rc=$?
	cat "$W/py.err" >&2
	[ $rc = 77 ] && t_skip "$(tail -n 1 "$W/py.err")"
	[ $rc = 0 ] || t_fail "framework.py ($PY) on the $what image exited \
with $rc"
}

check lossless
t_umount "$W/mnt"

"$MKFS" -q --models "$S/codec/models" --bits 5 --calib "$CALIB" \
	"$SHARED_MODEL" "$W/lossy.nwc" ||
	t_fail "mkfs.nwc --bits 5 $SHARED_MODEL failed"
t_mount "$W/lossy.nwc" "$W/mnt"
check lossy --max-rel-logit-err "$LOSSY_MAX_ERR" \
	--min-top1 "$LOSSY_MIN_TOP1"
t_umount "$W/mnt"
exit 0
