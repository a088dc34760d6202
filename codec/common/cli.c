/* SPDX-License-Identifier: MIT */
/* cli.c - size and number parsing for the command-line front ends. */
#include "codec/common/base.h"

#include <stdlib.h>
#include <time.h>

#include "codec/common/cli.h"

int nwc_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')	/* strtoull accepts "-1" and " 1" */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (shift && *end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || v > (UINT64_MAX >> 1) >> shift)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int nwc_parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

size_t nwc_escape_to(char *out, size_t cap, const char *s, size_t len,
		     bool backslashes)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	assert(cap > 0);
	for (size_t i = 0; i < len && n + 5 <= cap; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else if (c == '\\' && backslashes) {
			out[n++] = '\\';
			out[n++] = '\\';
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;
}

char *nwc_escape(const char *s, size_t len)
{
	char *out;

	if (len > (SIZE_MAX - 5) / 4)
		return NULL;
	out = malloc(4 * len + 5);
	if (out)
		nwc_escape_to(out, 4 * len + 5, s, len, true);
	return out;
}

size_t nwc_format_utc(int64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm))
		return 0;
	return strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
