#!/bin/sh
# mpi.sh - packing across the ranks of an MPI job (mpirun -np N mkfs.nwc):
# the image is byte for byte the one a single process writes with any -j,
# for calibrated (one-pass and sequential), uncalibrated and lossless
# packing and for 2, 3 and 4 ranks; every rank does a share of the
# calibration and of the coding (-v says which); a failure ends every
# rank with the error's exit status and leaves nothing behind.
. "$top_srcdir/tests/lib.sh"

"$MKFS" --version | grep -q ', MPI$' ||
	t_skip "mkfs.nwc built without MPI (configure --with-mpi; setup.sh does)"
command -v mpirun >/dev/null || t_skip "no mpirun on PATH (Debian: openmpi-bin)"
t_require_python
t_workdir

MD=$S/codec/models
ls "$MD"/*.nwcm >/dev/null 2>&1 || t_skip "no codec models in $MD"

# Open MPI refuses root unless told, and more ranks than cores unless
# oversubscribed; containers often forbid its single-copy transport.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# run NP ARGS...: mkfs.nwc on NP ranks, output in $W/mpi.out.
run() {
	np=$1
	shift
	timeout 300 mpirun -np "$np" "$MKFS" "$@" >"$W/mpi.out" 2>&1
}

t_gen --seed 3 --dtype BF16 "$W/m"
# 40 sequences of 101 tokens: 40 calibration blocks to spread.
python3 - "$W/tok.u16" <<'EOF' || t_fail "cannot write tokens"
import random, struct, sys
random.seed(1)
v = []
for _ in range(40):
    v += [1] + [random.randrange(3, 97) for _ in range(100)]
open(sys.argv[1], "wb").write(struct.pack("<%dH" % len(v), *v))
EOF

# same REF NP LABEL ARGS...: NP ranks write what one process wrote in REF.
same() {
	ref=$1 np=$2 label=$3
	shift 3
	run "$np" "$@" "$W/np.nwc" ||
		t_fail "$label: mpirun -np $np failed: $(cat "$W/mpi.out")"
	cmp -s "$ref" "$W/np.nwc" ||
		t_fail "$label: the image of $np ranks differs from one process's"
	rm -f "$W/np.nwc"
	echo "ok: $label: $np ranks write the image of one process"
}

CAL="--models $MD --bits 4 --calib $W/tok.u16"
"$MKFS" -q -j1 $CAL "$W/m" "$W/one.nwc" ||
	t_fail "one process, calibrated: failed"
"$MKFS" -q -j2 $CAL "$W/m" "$W/two.nwc" ||
	t_fail "one process -j2, calibrated: failed"
cmp -s "$W/one.nwc" "$W/two.nwc" || t_fail "-j1 and -j2 images differ"
same "$W/one.nwc" 2 "calibrated" -q -j1 $CAL "$W/m"
same "$W/one.nwc" 3 "calibrated, -j2" -q -j2 $CAL "$W/m"
same "$W/one.nwc" 4 "calibrated" -q -j1 $CAL "$W/m"

# Each rank did a share: calibration blocks and lossy tensors.
run 2 -v -j1 $CAL "$W/m" "$W/v.nwc" ||
	t_fail "-v: mpirun -np 2 failed: $(cat "$W/mpi.out")"
for r in 0 1; do
	grep -q "debug: rank $r: 20 of the 40 calibration blocks, 2020 of 4040 tokens" \
		"$W/mpi.out" || t_fail "rank $r did not sum half of the blocks: $(grep 'debug: rank' "$W/mpi.out")"
	grep -q "debug: rank $r: codes [1-9][0-9]* of the 10 lossy tensors" \
		"$W/mpi.out" || t_fail "rank $r coded no tensor: $(grep 'debug: rank' "$W/mpi.out")"
done
grep -q "^calibration: 4040 tokens through 2 layers, one at a time, on 2 ranks" \
	"$W/mpi.out" || t_fail "no memory bound for 2 ranks: $(cat "$W/mpi.out")"
[ "$(grep -c '^lossy: 10 tensors' "$W/mpi.out")" = 1 ] ||
	t_fail "not one summary (rank 0's): $(cat "$W/mpi.out")"
cmp -s "$W/one.nwc" "$W/v.nwc" || t_fail "-v changed the image"

SEQ="$CAL --calib-mode sequential"
"$MKFS" -q -j1 $SEQ "$W/m" "$W/seq.nwc" ||
	t_fail "one process, sequential: failed"
cmp -s "$W/seq.nwc" "$W/one.nwc" && t_fail "sequential equals one-pass"
same "$W/seq.nwc" 2 "sequential" -q -j1 $SEQ "$W/m"
same "$W/seq.nwc" 3 "sequential, -j2" -q -j2 $SEQ "$W/m"

"$MKFS" -q -j2 --models "$MD" --bits 4 "$W/m" "$W/plain.nwc" ||
	t_fail "one process, uncalibrated: failed"
same "$W/plain.nwc" 2 "uncalibrated" -q --models "$MD" --bits 4 "$W/m"
"$MKFS" -q -j2 --lossless "$W/m" "$W/lossless.nwc" ||
	t_fail "one process, lossless: failed"
same "$W/lossless.nwc" 2 "lossless" -q --lossless "$W/m"
"$FSCK" "$W/one.nwc" >/dev/null || t_fail "fsck.nwc rejects the image"

# The real model, where the shared data is here.
if [ -f "$SHARED_MODEL/config.json" ]; then
	CT=${NWC_SHARED:-$S/../shared}/corpus/tinystories_tok512_calib.u16
	RC="--models $MD --bits 4 --calib $CT --calib-tokens 8192"
	"$MKFS" -q -j2 $RC "$SHARED_MODEL" "$W/real.nwc" ||
		t_fail "stories260K, one process: failed"
	same "$W/real.nwc" 2 "stories260K" -q -j1 $RC "$SHARED_MODEL"
	same "$W/real.nwc" 3 "stories260K" -q -j1 $RC "$SHARED_MODEL"
else
	echo "note: no $SHARED_MODEL: the real model is not packed"
fi

# A failure ends every rank with its status, and nothing is left.
printf '\001\000\002' >"$W/odd.u16"
mkdir "$W/out"
rc=0
run 2 -q --models "$MD" --bits 4 --calib "$W/odd.u16" "$W/m" "$W/out/bad.nwc" || rc=$?
[ "$rc" = 3 ] || t_fail "a bad token file: exit $rc, not 3: $(cat "$W/mpi.out")"
grep -q "odd.u16: odd size" "$W/mpi.out" ||
	t_fail "a bad token file: no message naming it: $(cat "$W/mpi.out")"
[ -z "$(ls -A "$W/out")" ] || t_fail "a failed run left $(ls -A "$W/out")"
echo "ok: a failure ends every rank with exit 3 and leaves nothing"
