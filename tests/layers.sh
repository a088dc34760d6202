#!/bin/sh
# layers.sh - the read path links no encoding code: neither the daemon
# (fs/nwcfs) nor fsck.nwc may define a symbol that the NWC encode archive
# (codec/nwc/libnwcenc.a) defines.  A failure names the symbols; the usual
# cause is a link line with libnwcenc.a, or a decode-side file that calls
# into the encode side.
. "$top_srcdir/tests/lib.sh"

command -v nm >/dev/null 2>&1 || t_skip "nm not on PATH"
ENC=$B/codec/nwc/libnwcenc.a
[ -f "$ENC" ] || t_fail "$ENC not built"
[ -x "$FSCK" ] || t_fail "$FSCK not built"
t_workdir

# Global text, data, bss and read-only symbols, one name a line, sorted.
defined() {
	nm --defined-only "$1" | awk '$2 ~ /^[TDBR]$/ { print $3 }' | sort -u
}

defined "$ENC" >"$W/enc" || t_fail "nm $ENC failed"
[ -s "$W/enc" ] || t_fail "nm found no symbols in $ENC"

bins=$FSCK
if [ -x "$NWCFS" ]; then
	bins="$bins $NWCFS"
else
	echo "nwcfs not built (configured without fuse3): checking fsck.nwc only"
fi

bad=0
for bin in $bins; do
	nm --defined-only "$bin" | awk '{ print $3 }' | sort -u >"$W/bin" ||
		t_fail "nm $bin failed"
	comm -12 "$W/enc" "$W/bin" >"$W/both"
	if [ -s "$W/both" ]; then
		echo "FAIL: $bin defines $(wc -l <"$W/both") symbol(s) of $ENC:" >&2
		sed 's/^/	/' "$W/both" >&2
		bad=1
	else
		echo "ok: $bin defines none of the $(wc -l <"$W/enc") symbols of $ENC"
	fi
done
[ "$bad" = 0 ] || t_fail "the read path links encode-side code"
