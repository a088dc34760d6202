/* SPDX-License-Identifier: MIT */
/* planes.c - byte-plane split and merge, with the optional float rotation. */
#include "codec/common/base.h"

#include "codec/planes.h"

/*
 * Rotating an E-byte little-endian element left by one bit gives output byte
 * k = (byte k << 1) | (byte k-1 >> 7), indices mod E; rotating right gives
 * byte k = (byte k >> 1) | (byte k+1 << 7).  Working on bytes keeps the code
 * independent of host byte order and lets the compiler vectorize it.
 *
 * Each kernel handles elements [i, end) and is inlined with a constant
 * rotation flag.  The drivers call it on fixed CHUNK-element stretches, then
 * on the tail: a constant trip count is what lets gcc -O2 (whose cost model
 * refuses loops that need a scalar epilogue) use SIMD for these loops.
 */
#define CHUNK 64

#define KERNEL static inline __attribute__((always_inline)) void

KERNEL split2(const uint8_t *restrict s, size_t i, size_t end, bool rot,
	      uint8_t *restrict p0, uint8_t *restrict p1)
{
	for (; i < end; i++) {
		uint8_t b0 = s[2 * i], b1 = s[2 * i + 1];

		p0[i] = rot ? (uint8_t)(b0 << 1 | b1 >> 7) : b0;
		p1[i] = rot ? (uint8_t)(b1 << 1 | b0 >> 7) : b1;
	}
}

KERNEL merge2(const uint8_t *restrict p0, const uint8_t *restrict p1,
	      size_t i, size_t end, bool rot, uint8_t *restrict d)
{
	for (; i < end; i++) {
		uint8_t c0 = p0[i], c1 = p1[i];

		d[2 * i] = rot ? (uint8_t)(c0 >> 1 | c1 << 7) : c0;
		d[2 * i + 1] = rot ? (uint8_t)(c1 >> 1 | c0 << 7) : c1;
	}
}

KERNEL split4(const uint8_t *restrict s, size_t i, size_t end, bool rot,
	      uint8_t *restrict p0, uint8_t *restrict p1,
	      uint8_t *restrict p2, uint8_t *restrict p3)
{
	for (; i < end; i++) {
		uint8_t b0 = s[4 * i], b1 = s[4 * i + 1];
		uint8_t b2 = s[4 * i + 2], b3 = s[4 * i + 3];

		p0[i] = rot ? (uint8_t)(b0 << 1 | b3 >> 7) : b0;
		p1[i] = rot ? (uint8_t)(b1 << 1 | b0 >> 7) : b1;
		p2[i] = rot ? (uint8_t)(b2 << 1 | b1 >> 7) : b2;
		p3[i] = rot ? (uint8_t)(b3 << 1 | b2 >> 7) : b3;
	}
}

KERNEL merge4(const uint8_t *restrict p0, const uint8_t *restrict p1,
	      const uint8_t *restrict p2, const uint8_t *restrict p3,
	      size_t i, size_t end, bool rot, uint8_t *restrict d)
{
	for (; i < end; i++) {
		uint8_t c0 = p0[i], c1 = p1[i], c2 = p2[i], c3 = p3[i];

		d[4 * i] = rot ? (uint8_t)(c0 >> 1 | c1 << 7) : c0;
		d[4 * i + 1] = rot ? (uint8_t)(c1 >> 1 | c2 << 7) : c1;
		d[4 * i + 2] = rot ? (uint8_t)(c2 >> 1 | c3 << 7) : c2;
		d[4 * i + 3] = rot ? (uint8_t)(c3 >> 1 | c0 << 7) : c3;
	}
}

static void split_2(const uint8_t *s, size_t n, bool rot,
		    uint8_t *const planes[])
{
	uint8_t *p0 = planes[0], *p1 = planes[1];
	size_t i;

	for (i = 0; n - i >= CHUNK; i += CHUNK) {
		if (rot)
			split2(s, i, i + CHUNK, true, p0, p1);
		else
			split2(s, i, i + CHUNK, false, p0, p1);
	}
	split2(s, i, n, rot, p0, p1);
}

static void merge_2(const uint8_t *const planes[], size_t n, bool rot,
		    uint8_t *d)
{
	const uint8_t *p0 = planes[0], *p1 = planes[1];
	size_t i;

	for (i = 0; n - i >= CHUNK; i += CHUNK) {
		if (rot)
			merge2(p0, p1, i, i + CHUNK, true, d);
		else
			merge2(p0, p1, i, i + CHUNK, false, d);
	}
	merge2(p0, p1, i, n, rot, d);
}

static void split_4(const uint8_t *s, size_t n, bool rot,
		    uint8_t *const planes[])
{
	uint8_t *p0 = planes[0], *p1 = planes[1];
	uint8_t *p2 = planes[2], *p3 = planes[3];
	size_t i;

	for (i = 0; n - i >= CHUNK; i += CHUNK) {
		if (rot)
			split4(s, i, i + CHUNK, true, p0, p1, p2, p3);
		else
			split4(s, i, i + CHUNK, false, p0, p1, p2, p3);
	}
	split4(s, i, n, rot, p0, p1, p2, p3);
}

static void merge_4(const uint8_t *const planes[], size_t n, bool rot,
		    uint8_t *d)
{
	const uint8_t *p0 = planes[0], *p1 = planes[1];
	const uint8_t *p2 = planes[2], *p3 = planes[3];
	size_t i;

	for (i = 0; n - i >= CHUNK; i += CHUNK) {
		if (rot)
			merge4(p0, p1, p2, p3, i, i + CHUNK, true, d);
		else
			merge4(p0, p1, p2, p3, i, i + CHUNK, false, d);
	}
	merge4(p0, p1, p2, p3, i, n, rot, d);
}

/* Any element size, one pass per plane: the rarer 8-byte dtypes. */
static void split_any(const uint8_t *restrict s, size_t n, unsigned e,
		      bool rot, uint8_t *const planes[])
{
	for (unsigned p = 0; p < e; p++) {
		uint8_t *restrict d = planes[p];
		unsigned q = (p + e - 1) % e;

		if (rot) {
			for (size_t i = 0; i < n; i++)
				d[i] = (uint8_t)(s[i * e + p] << 1 |
						 s[i * e + q] >> 7);
		} else {
			for (size_t i = 0; i < n; i++)
				d[i] = s[i * e + p];
		}
	}
}

static void merge_any(const uint8_t *const planes[], size_t n, unsigned e,
		      bool rot, uint8_t *restrict d)
{
	for (unsigned p = 0; p < e; p++) {
		const uint8_t *restrict c = planes[p];
		const uint8_t *restrict c_next = planes[(p + 1) % e];

		if (rot) {
			for (size_t i = 0; i < n; i++)
				d[i * e + p] = (uint8_t)(c[i] >> 1 |
							 c_next[i] << 7);
		} else {
			for (size_t i = 0; i < n; i++)
				d[i * e + p] = c[i];
		}
	}
}

void nwc_planes_split(const void *src, size_t n, unsigned esize, bool rot,
		      uint8_t *const planes[])
{
	if (esize == 1) {
		if (n)
			memcpy(planes[0], src, n);
	} else if (esize == 2) {
		split_2(src, n, rot, planes);
	} else if (esize == 4) {
		split_4(src, n, rot, planes);
	} else {
		split_any(src, n, esize, rot, planes);
	}
}

void nwc_planes_merge(const uint8_t *const planes[], size_t n, unsigned esize,
		      bool rot, void *dst)
{
	if (esize == 1) {
		if (n)
			memcpy(dst, planes[0], n);
	} else if (esize == 2) {
		merge_2(planes, n, rot, dst);
	} else if (esize == 4) {
		merge_4(planes, n, rot, dst);
	} else {
		merge_any(planes, n, esize, rot, dst);
	}
}
