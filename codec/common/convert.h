/* SPDX-License-Identifier: MIT */
/*
 * convert.h - conversions between float32 and the other float dtypes of
 * safetensors files (F16, BF16, F64), one value or a whole buffer.
 *
 *	float w[n];
 *	ret = nwc_to_f32(NWC_DTYPE_BF16, data, n, w);
 *	ret = nwc_from_f32(NWC_DTYPE_F16, w, n, out);
 *
 * Narrowing rounds to nearest, ties to even; values too large become
 * infinities of the right sign, subnormals are exact where representable,
 * and a NaN stays a NaN (made quiet, payload kept where it fits).  Widening
 * is exact.  Buffers hold little-endian elements at any alignment.
 * Pure functions; thread-safe.
 */
#ifndef NWC_CONVERT_H
#define NWC_CONVERT_H

#include "codec/common/base.h"

float nwc_bf16_to_f32(uint16_t h);
uint16_t nwc_f32_to_bf16(float f);
float nwc_f16_to_f32(uint16_t h);
uint16_t nwc_f32_to_f16(float f);

/*
 * nwc_to_f32() - convert @n elements of @dtype (NWC_DTYPE_F32, F16, BF16 or
 * F64) at @src to floats at @dst.  Returns 0, or -EINVAL for another dtype.
 */
int nwc_to_f32(unsigned dtype, const void *src, size_t n, float *dst);

/* nwc_from_f32() - the reverse: @n floats to @dtype elements at @dst. */
int nwc_from_f32(unsigned dtype, const float *src, size_t n, void *dst);

#endif /* NWC_CONVERT_H */
