#!/bin/sh
# SPDX-License-Identifier: MIT
# ood-text.sh - an out-of-domain evaluation text for the quality benchmarks:
# technical prose that Debian ships (licence texts from
# /usr/share/common-licenses, and manual pages rendered by groff), one
# paragraph per line, taken from the sources in turn, so that a tokenizer
# can put a BOS before each paragraph.  Never used for calibration.
#
#   ood-text.sh > ood.txt
#
# The bytes depend on the Debian packages installed (base-files, bash,
# tar, grep, sed, findutils, make, gzip), so record their versions next to
# any result: the script prints them on stderr.
set -eu
LC_ALL=C
export LC_ALL

LICENSES="GPL-3 Apache-2.0 LGPL-2.1 MPL-2.0"
MANPAGES="bash tar grep sed find make gzip"

# paragraphs: join the lines of each paragraph (blank-line separated),
# squeeze spaces, drop short ones (headings, page furniture).
paragraphs() {
	awk 'function flush() { if (length(p) >= 200) print p; p = "" }
	     { gsub(/[ \t]+/, " "); sub(/^ /, ""); sub(/ $/, "") }
	     $0 == "" { flush(); next }
	     { p = p == "" ? $0 : p " " $0 }
	     END { flush() }'
}

T=$(mktemp -d "${TMPDIR:-/tmp}/ood.XXXXXX")
trap 'rm -rf "$T"' EXIT
files=
for l in $LICENSES; do
	f=/usr/share/common-licenses/$l
	[ -f "$f" ] || { echo "ood-text: $f missing" >&2; exit 1; }
	paragraphs <"$f" >"$T/$l"
	files="$files $T/$l"
done
for m in $MANPAGES; do
	f=/usr/share/man/man1/$m.1.gz
	[ -f "$f" ] || { echo "ood-text: $f missing" >&2; exit 1; }
	zcat "$f" | groff -man -Tascii -P-c -P-b -P-o -P-u -rLL=2000n \
		-rHY=0 2>/dev/null | paragraphs >"$T/$m"
	files="$files $T/$m"
done
# Round robin over the sources, so that the first N tokens (what an
# evaluation reads) hold some of each.
# shellcheck disable=SC2086
paste -d '\n' $files | grep -v '^$'
dpkg-query -W -f='${Package} ${Version}\n' base-files bash tar grep sed \
	findutils make gzip groff-base 2>/dev/null | sed 's/^/ood-text: /' >&2 ||
	true
