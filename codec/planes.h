/* SPDX-License-Identifier: MIT */
/*
 * planes.h - byte-plane transforms used by the zstd codec (format.h
 * section 8): split little-endian elements of E bytes into E planes, plane p
 * holding byte p of every element, and merge them back.
 *
 *	uint8_t *planes[2] = { buf, buf + n };
 *	nwc_planes_split(src, n, 2, true, planes);
 *	nwc_planes_merge((const uint8_t *const *)planes, n, 2, true, dst);
 *
 * With @rot (the codec's FLOAT flag, E of 2, 4 or 8) each element is first
 * rotated left by one bit over its E*8 bits: the sign bit lands in bit 0 and
 * the exponent's top bits fill the top byte, so plane E-1 holds mostly the
 * exponent and compresses well.  Merge rotates right, so the pair is exact
 * for every bit pattern (NaN payloads, -0, denormals included).
 *
 * Pure functions on caller memory: no allocation, no state, thread-safe.
 * Planes must not overlap the element buffer or each other.
 */
#ifndef NWC_PLANES_H
#define NWC_PLANES_H

#include "codec/common/base.h"

/*
 * nwc_planes_split() - write byte p of each of the @n elements of @esize
 * bytes (1, 2, 4 or 8) at @src to planes[p][0..n).  @rot needs @esize > 1.
 */
void nwc_planes_split(const void *src, size_t n, unsigned esize, bool rot,
		      uint8_t *const planes[]);

/* nwc_planes_merge() - the inverse: @n elements into @dst from the planes. */
void nwc_planes_merge(const uint8_t *const planes[], size_t n, unsigned esize,
		      bool rot, void *dst);

#endif /* NWC_PLANES_H */
