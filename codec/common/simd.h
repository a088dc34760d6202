/* SPDX-License-Identifier: MIT */
/*
 * simd.h - four floats (or int32s) as one value, for the codec's hot
 * loops: GCC turns the arithmetic into SSE (or the target's) instructions,
 * where -O2 alone leaves such loops scalar; and eight, for kernels cloned
 * for AVX2.  Each lane does exactly the operations of the scalar code, so
 * results do not depend on the width.  Header-only; every function is
 * pure.
 */
#ifndef NWC_SIMD_H
#define NWC_SIMD_H

#include "codec/common/base.h"

typedef float v4sf __attribute__((vector_size(16)));
typedef int32_t v4si __attribute__((vector_size(16)));
typedef uint32_t v4su __attribute__((vector_size(16)));

/*
 * Eight lanes of one __m256 where the CPU has AVX2 (a clone chosen at load
 * time), two SSE halves elsewhere.  Lane j % 8 and the fixed order of
 * V8_TOTAL keep the sums those of the scalar code, so both clones give
 * the same bits.
 */
typedef float v8sf __attribute__((vector_size(32)));
typedef int32_t v8si __attribute__((vector_size(32)));

/* Macros, not functions: a function passing v8sf by value would have an
 * ABI that differs between the two clones (-Wpsabi). */
#define V8_LOAD(v, p) memcpy(&(v), (p), sizeof(v8sf))
#define V8_STORE(p, v) memcpy((p), &(v), sizeof(v8sf))
#define V8_TOTAL(a) ((((a)[0] + (a)[4]) + ((a)[1] + (a)[5])) +	\
		     (((a)[2] + (a)[6]) + ((a)[3] + (a)[7])))

typedef uint32_t v8su __attribute__((vector_size(32)));
typedef uint16_t v8hu __attribute__((vector_size(16)));

/* @h (v8hu) = the BF16 bits of the eight floats @a (v8sf), rounded as
 * nwc_f32_to_bf16() does (convert.h): to nearest even, a NaN kept quiet. */
#define V8_BF16(h, a) do {						\
	v8su u_ = (v8su)(a);						\
	v8su r_ = (u_ + 0x7fff + (u_ >> 16 & 1)) >> 16;			\
	v8su n_ = (v8su)((u_ & 0x7fffffff) > 0x7f800000);		\
									\
	r_ = (n_ & (u_ >> 16 | 0x0040)) | (~n_ & r_);			\
	(h) = __builtin_convertvector(r_, v8hu);			\
} while (0)

/*
 * The sixteen floats @a (lanes 0-7) and @b (8-15), v8sf, as the first
 * @lanes (<= 16) elements of @dtype at @dst: BF16 by V8_BF16, all sixteen
 * in one fixed-size store, the other float dtypes through nwc_from_f32()
 * (convert.h, which the user includes).
 */
#define V16_PUT(dtype, a, b, lanes, dst) do {				\
	if ((dtype) == NWC_DTYPE_BF16) {				\
		v8hu h_[2];						\
									\
		V8_BF16(h_[0], a);					\
		V8_BF16(h_[1], b);					\
		if ((lanes) == 16)					\
			memcpy((dst), h_, sizeof(h_));			\
		else							\
			memcpy((dst), h_, (lanes) * sizeof(uint16_t));	\
	} else {							\
		float f_[16];						\
		v8sf a_ = (a), b_ = (b);				\
									\
		V8_STORE(f_, a_);					\
		V8_STORE(f_ + 8, b_);					\
		nwc_from_f32((dtype), f_, (lanes), (dst));		\
	}								\
} while (0)

/*
 * The lanes of @a and @b (0-3: @a's, 4-7: @b's) that four constants pick:
 * __builtin_shufflevector is what clang and GCC 12 and later share; older
 * GCC has only __builtin_shuffle.
 */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define V4_SHUFFLE2(a, b, i, j, k, l) \
	__builtin_shufflevector((a), (b), i, j, k, l)
#else
#define V4_SHUFFLE2(a, b, i, j, k, l) \
	__builtin_shuffle((a), (b), (v4si){ i, j, k, l })
#endif

static inline v4sf v4_load(const float *p)
{
	v4sf v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void v4_store(float *p, v4sf v)
{
	memcpy(p, &v, sizeof(v));
}

static inline v4si v4i_load(const int32_t *p)
{
	v4si v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* max(v, 0) as the scalar u > 0 ? u : 0 (NaN and -0 give +0). */
static inline v4sf v4_relu(v4sf v)
{
	const v4sf zero = { 0 };

	return (v4sf)((v4si)v & (v > zero));
}

#endif /* NWC_SIMD_H */
