/* SPDX-License-Identifier: MIT */
/*
 * dtype.h - the safetensors element types: ids (stored in images as the
 * TENSORS dtype field), header names and sizes.  Pure functions; thread-safe.
 * The conversions between them are in convert.h.
 */
#ifndef NWC_DTYPE_H
#define NWC_DTYPE_H

#include "codec/common/base.h"

/* safetensors dtypes (names as in the safetensors header). */
enum nwc_dtype {
	NWC_DTYPE_BOOL = 1,
	NWC_DTYPE_U8,
	NWC_DTYPE_I8,
	NWC_DTYPE_F8_E5M2,
	NWC_DTYPE_F8_E4M3,
	NWC_DTYPE_I16,
	NWC_DTYPE_U16,
	NWC_DTYPE_F16,
	NWC_DTYPE_BF16,
	NWC_DTYPE_I32,
	NWC_DTYPE_U32,
	NWC_DTYPE_F32,
	NWC_DTYPE_I64,
	NWC_DTYPE_U64,
	NWC_DTYPE_F64,
	NWC_DTYPE_COUNT,
};

/* Most dimensions of a tensor (safetensors headers, TENSORS records). */
#define NWC_MAX_DIMS 8u

/* Element size in bytes, or 0 for an unknown dtype. */
unsigned nwc_dtype_size(unsigned dtype);
/* Header name ("BF16"), or NULL for an unknown dtype. */
const char *nwc_dtype_name(unsigned dtype);
/* Dtype from a header name of @len bytes, or 0 if unknown. */
unsigned nwc_dtype_from_name(const char *name, size_t len);
/* True for floating-point dtypes of 2, 4 or 8 bytes. */
bool nwc_dtype_is_float(unsigned dtype);

#endif /* NWC_DTYPE_H */
