/* SPDX-License-Identifier: MIT */
/* cli.c - size and number parsing for the command-line front ends. */
#include "codec/common/base.h"

#include <stdlib.h>

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

char *nwc_escape(const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char *out, *q;

	if (len > (SIZE_MAX - 1) / 4)
		return NULL;
	q = out = malloc(4 * len + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			*q++ = '\\';
			*q++ = 'x';
			*q++ = hex[c >> 4];
			*q++ = hex[c & 15];
		} else if (c == '\\') {
			*q++ = '\\';
			*q++ = '\\';
		} else {
			*q++ = (char)c;
		}
	}
	*q = '\0';
	return out;
}
