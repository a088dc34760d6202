/* SPDX-License-Identifier: MIT */
/*
 * array.h - the project's one growable-array helper: make room for one more
 * (or @n) elements of a realloc'd array by doubling its capacity; and a
 * scratch buffer whose contents need not survive growing.
 *
 *	struct item *v = NULL;
 *	size_t n = 0, cap = 0;
 *	ret = nwc_array_reserve((void **)&v, &cap, n + 1, sizeof(*v));
 *	if (!ret)
 *		v[n++] = item;
 *
 * The contents are kept (realloc); on failure the array is unchanged.
 * Pure functions of their arguments; thread-safe.
 */
#ifndef NWC_ARRAY_H
#define NWC_ARRAY_H

#include "codec/common/base.h"

#include <stdlib.h>

#define NWC_ARRAY_MIN_CAP 16u	/* first capacity of an empty array */

/*
 * nwc_array_reserve() - make *@arr, of *@cap elements of @size bytes, hold
 * at least @n elements, doubling from NWC_ARRAY_MIN_CAP.  Returns 0,
 * -EOVERFLOW when the bytes do not fit a size_t or @cap_max elements, or
 * -ENOMEM.
 */
static inline int nwc_array_reserve_max(void **arr, size_t *cap, size_t n,
					size_t size, size_t cap_max)
{
	size_t ncap = *cap ? *cap : NWC_ARRAY_MIN_CAP;
	void *p;

	if (n <= *cap)
		return 0;
	if (n > cap_max || n > SIZE_MAX / size)
		return -EOVERFLOW;
	while (ncap < n)
		ncap = ncap > cap_max / 2 ? cap_max : ncap * 2;
	if (ncap > SIZE_MAX / size)
		ncap = n;
	p = realloc(*arr, ncap * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static inline int nwc_array_reserve(void **arr, size_t *cap, size_t n,
				    size_t size)
{
	return nwc_array_reserve_max(arr, cap, n, size, SIZE_MAX);
}

/* A scratch buffer that grows on demand and is never shrunk. */
struct nwc_scratch {
	void *buf;
	size_t cap;
};

/*
 * nwc_scratch_get() - @s's buffer, grown to at least @len bytes (1 for 0).
 * Old contents are not kept: callers refill the buffer after growing it.
 * Returns NULL, the buffer unchanged, when allocation fails.
 */
static inline void *nwc_scratch_get(struct nwc_scratch *s, size_t len)
{
	void *buf;

	if (len == 0)
		len = 1;
	if (len <= s->cap)
		return s->buf;
	buf = malloc(len);
	if (!buf)
		return NULL;
	free(s->buf);
	s->buf = buf;
	s->cap = len;
	return buf;
}

#endif /* NWC_ARRAY_H */
