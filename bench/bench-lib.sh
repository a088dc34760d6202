# SPDX-License-Identifier: MIT
# bench-lib.sh - the one-line helpers every benchmark script uses, sourced after
# tests/lib.sh.  $PROG names the script in die()'s message (default bench).

note() { echo "== $*" >&2; }
die() { echo "${PROG:-bench}: $*" >&2; exit 1; }
# Arithmetic on decimals, through awk: calc FORMAT EXPR.
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }
# kv KEY LINE: the value of KEY=VALUE in LINE.
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
fsize() { stat -c %s "$1"; }
