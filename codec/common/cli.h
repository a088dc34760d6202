/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the front ends share on their command lines: the exit
 * statuses, parsing of values, so that "-b 256K" and "-o cache_size=2G"
 * mean the same thing everywhere, and names printed safely.
 * Pure functions; thread-safe.
 */
#ifndef NWC_CLI_H
#define NWC_CLI_H

#include "codec/common/base.h"

/* Exit statuses of every program (each man page's EXIT STATUS). */
enum nwc_exit {
	NWC_EXIT_USAGE = 1,	/* bad command line or unusable options */
	NWC_EXIT_IO = 2,	/* a file could not be read, written or made */
	NWC_EXIT_DATA = 3,	/* malformed input, or a damaged image */
	NWC_EXIT_TRAIN = 4,	/* nwc-train: the run diverged */
};

/*
 * nwc_parse_size() - a byte count: digits, optionally followed by K, M or G
 * (powers of 1024, either case) and an optional "iB" or "B".  Returns 0, or
 * -EINVAL for anything else or a value of 2^63 or more.
 */
int nwc_parse_size(const char *s, uint64_t *out);

/* nwc_parse_uint() - a decimal number in [lo, hi]; 0 or -EINVAL. */
int nwc_parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out);

/*
 * nwc_escape() - @len bytes of a file name or path as they may be printed
 * to a terminal or a log: control characters (below 0x20, and 0x7f) as
 * \xHH, a backslash as \\, everything else as it is.  Returns a malloc'd
 * string, or NULL when out of memory.
 */
char *nwc_escape(const char *s, size_t len);

/*
 * nwc_escape_to() - the escaping of nwc_escape() of the @len bytes at @s
 * into @out (@cap > 0 bytes, NUL-terminated, cut short before a sequence
 * that would not fit); backslashes doubled only with @backslashes (log
 * lines leave them).  Returns the length written.
 */
size_t nwc_escape_to(char *out, size_t cap, const char *s, size_t len,
		     bool backslashes);

/* nwc_format_utc() - Unix seconds @t as "YYYY-MM-DDTHH:MM:SSZ" into
 * @buf (@cap >= 21); returns its length, 0 if @t cannot be shown. */
size_t nwc_format_utc(int64_t t, char *buf, size_t cap);

#endif /* NWC_CLI_H */
