/* SPDX-License-Identifier: MIT */
/* dtype.c - safetensors dtypes: names, sizes, float-ness, float conversions. */
#include "codec/common/base.h"

#include "codec/common/convert.h"
#include "codec/common/dtype.h"
#include "codec/common/simd.h"

struct dtype_info {
	const char *name;	/* as written in a safetensors header */
	unsigned size;		/* bytes per element */
	bool is_float;		/* IEEE-like float of 2, 4 or 8 bytes */
};

static const struct dtype_info dtypes[NWC_DTYPE_COUNT] = {
	[NWC_DTYPE_BOOL]	= { "BOOL", 1, false },
	[NWC_DTYPE_U8]		= { "U8", 1, false },
	[NWC_DTYPE_I8]		= { "I8", 1, false },
	[NWC_DTYPE_F8_E5M2]	= { "F8_E5M2", 1, false },
	[NWC_DTYPE_F8_E4M3]	= { "F8_E4M3", 1, false },
	[NWC_DTYPE_I16]		= { "I16", 2, false },
	[NWC_DTYPE_U16]		= { "U16", 2, false },
	[NWC_DTYPE_F16]		= { "F16", 2, true },
	[NWC_DTYPE_BF16]	= { "BF16", 2, true },
	[NWC_DTYPE_I32]		= { "I32", 4, false },
	[NWC_DTYPE_U32]		= { "U32", 4, false },
	[NWC_DTYPE_F32]		= { "F32", 4, true },
	[NWC_DTYPE_I64]		= { "I64", 8, false },
	[NWC_DTYPE_U64]		= { "U64", 8, false },
	[NWC_DTYPE_F64]		= { "F64", 8, true },
};

static const struct dtype_info *dtype_get(unsigned dtype)
{
	if (dtype == 0 || dtype >= NWC_DTYPE_COUNT)
		return NULL;
	return &dtypes[dtype];
}

unsigned nwc_dtype_size(unsigned dtype)
{
	const struct dtype_info *d = dtype_get(dtype);

	return d ? d->size : 0;
}

const char *nwc_dtype_name(unsigned dtype)
{
	const struct dtype_info *d = dtype_get(dtype);

	return d ? d->name : NULL;
}

unsigned nwc_dtype_from_name(const char *name, size_t len)
{
	for (unsigned i = 1; i < NWC_DTYPE_COUNT; i++) {
		const char *n = dtypes[i].name;

		if (strlen(n) == len && !memcmp(n, name, len))
			return i;
	}
	return 0;
}

bool nwc_dtype_is_float(unsigned dtype)
{
	const struct dtype_info *d = dtype_get(dtype);

	return d && d->is_float;
}

static inline uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static inline float bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

float nwc_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t nwc_f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);

	if ((u & 0x7fffffff) > 0x7f800000)	/* NaN: quiet, keep the top */
		return (uint16_t)(u >> 16 | 0x0040);
	/* Round to nearest even; a carry rolls into the exponent (-> Inf). */
	u += 0x7fff + (u >> 16 & 1);
	return (uint16_t)(u >> 16);
}

float nwc_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = h >> 10 & 0x1f, mant = h & 0x3ff;
	float mag;

	if (exp == 0x1f)		/* Inf or NaN, payload kept */
		return bits_f32(sign | 0x7f800000 | mant << 13);
	if (exp == 0)			/* zero or subnormal: mant * 2^-24 */
		mag = (float)mant * (1.0f / 16777216.0f);
	else
		mag = bits_f32((exp + 112) << 23 | mant << 13);
	return bits_f32(sign | f32_bits(mag));
}

uint16_t nwc_f32_to_f16(float f)
{
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
	uint32_t a = u & 0x7fffffff, r, rem, half;
	unsigned shift;

	if (a > 0x7f800000)		/* NaN: quiet, keep the top payload */
		return sign | 0x7e00 | (uint16_t)(a >> 13 & 0x3ff);
	if (a >= 0x477ff000)		/* >= 65520 rounds to Inf */
		return sign | 0x7c00;
	if (a >= 0x38800000) {		/* normal: rebias, round 13 bits */
		a -= 112u << 23;
		r = a >> 13;
		rem = a & 0x1fff;
		if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
			r++;		/* may carry into the exponent */
		return sign | (uint16_t)r;
	}
	if (a <= 0x33000000)		/* <= 2^-25 rounds to zero */
		return sign;
	/* Subnormal: the value in units of 2^-24 is m >> (126 - e). */
	shift = 126 - (a >> 23);
	a = (a & 0x7fffff) | 0x800000;
	r = a >> shift;
	rem = a & ((1u << shift) - 1);
	half = 1u << (shift - 1);
	if (rem > half || (rem == half && (r & 1)))
		r++;			/* 0x400 is the smallest normal */
	return sign | (uint16_t)r;
}

int nwc_to_f32(unsigned dtype, const void *src, size_t n, float *dst)
{
	const uint8_t *p = src;

	switch (dtype) {
	case NWC_DTYPE_F32:
		for (size_t i = 0; i < n; i++)
			dst[i] = bits_f32(nwc_get_le32(p + 4 * i));
		return 0;
	case NWC_DTYPE_F16:
		for (size_t i = 0; i < n; i++)
			dst[i] = nwc_f16_to_f32(nwc_get_le16(p + 2 * i));
		return 0;
	case NWC_DTYPE_BF16:
		for (size_t i = 0; i < n; i++)
			dst[i] = nwc_bf16_to_f32(nwc_get_le16(p + 2 * i));
		return 0;
	case NWC_DTYPE_F64:
		for (size_t i = 0; i < n; i++) {
			uint64_t b = nwc_get_le64(p + 8 * i);
			double d;

			memcpy(&d, &b, 8);
			dst[i] = (float)d;
		}
		return 0;
	default:
		return -EINVAL;
	}
}

/*
 * nwc_f32_to_bf16() on @n floats, sixteen at a time where the host is
 * little-endian (the stored order): the served bytes of every lossy BF16
 * tensor pass through here.  Integer operations only, so the AVX-512 and
 * AVX2 clones (chosen at load time) and the SSE one give the same bytes.
 */
typedef uint32_t v16su __attribute__((vector_size(64)));
typedef uint16_t v16hu __attribute__((vector_size(32)));

__attribute__((target_clones("avx512f", "avx2", "default")))
static void f32_to_bf16_n(const float *src, size_t n, uint8_t *p)
{
	size_t i = 0;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; i + 16 <= n; i += 16) {
		v16su u, r, nan;
		v16hu h;

		memcpy(&u, src + i, sizeof(u));
		r = (u + 0x7fff + (u >> 16 & 1)) >> 16;
		nan = (v16su)((u & 0x7fffffff) > 0x7f800000);
		r = (nan & (u >> 16 | 0x0040)) | (~nan & r);
		h = __builtin_convertvector(r, v16hu);
		memcpy(p + 2 * i, &h, sizeof(h));
	}
#endif
	for (; i < n; i++)
		nwc_put_le16(p + 2 * i, nwc_f32_to_bf16(src[i]));
}

int nwc_from_f32(unsigned dtype, const float *src, size_t n, void *dst)
{
	uint8_t *p = dst;

	switch (dtype) {
	case NWC_DTYPE_F32:
		for (size_t i = 0; i < n; i++)
			nwc_put_le32(p + 4 * i, f32_bits(src[i]));
		return 0;
	case NWC_DTYPE_F16:
		for (size_t i = 0; i < n; i++)
			nwc_put_le16(p + 2 * i, nwc_f32_to_f16(src[i]));
		return 0;
	case NWC_DTYPE_BF16:
		f32_to_bf16_n(src, n, p);
		return 0;
	case NWC_DTYPE_F64:
		for (size_t i = 0; i < n; i++) {
			double d = src[i];
			uint64_t b;

			memcpy(&b, &d, 8);
			nwc_put_le64(p + 8 * i, b);
		}
		return 0;
	default:
		return -EINVAL;
	}
}
