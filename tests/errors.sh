#!/bin/sh
. "$top_srcdir/tests/lib.sh"
t_skip "not written yet"
