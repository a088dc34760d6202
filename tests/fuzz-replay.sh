#!/bin/sh
# fuzz-replay.sh - run the seed corpora through the fuzz targets, so that
# every input that once crashed stays a regression test.  The targets are
# linked with the replay driver, or with libFuzzer under --enable-fuzzing
# (then -runs=0: execute the corpus, do not fuzz).
. "$top_srcdir/tests/lib.sh"

t_workdir
status=0
for target in image safetensors; do
	bin=$B/tests/fuzz_$target
	dir=$S/tests/corpus/$target
	[ -x "$bin" ] || t_fail "$bin not built"
	[ -d "$dir" ] || t_fail "$dir: no such corpus"
	set -- "$dir"
	grep -q 'INFO: Seed' "$bin" && set -- -runs=0 "$dir"
	# Rejected inputs log one line each: show them only on failure.
	if ! "$bin" "$@" >"$W/$target.log" 2>&1; then
		tail -n 20 "$W/$target.log" >&2
		echo "FAIL: fuzz_$target on $dir" >&2
		status=1
	fi
done
exit $status
