/* SPDX-License-Identifier: MIT */
/*
 * ransvec.h - what both AVX2 rANS kernels share (the byte planes' in
 * rans_avx2.c, the neural codec's latents' in codec/nwc/entropy.c): the
 * renormalization of eight states at once, those below L each pulling the
 * next 16-bit word in lane order, as the scalar loops do state after state
 * (ranscore.h); and the table lookup of eight slots.  x86-64 only; its users compile it for AVX2 with a
 * target attribute and choose it at run time (codec/common/cpu.h).
 */
#ifndef NWC_RANSVEC_H
#define NWC_RANSVEC_H

#include "codec/common/base.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NWC_RANSVEC 1

#include <immintrin.h>

/*
 * For each mask of the lanes that pull: which of the eight words loaded at
 * the stream position each lane takes (lane j: the number of pulling lanes
 * below it; a lane that pulls nothing takes word 0 and discards it).
 */
extern const uint32_t nwc_rans_pull_perm[256][8];

/*
 * The states @x after a decode step, renormalized from the words at
 * @w + *@p, which must hold 16 readable bytes; *@p advances by 2 per word
 * taken.
 */
__attribute__((target("avx2,popcnt"), always_inline))
static inline __m256i nwc_rans_pull8(__m256i x, const uint8_t *w, size_t *p)
{
	/* x < L: the top half is zero (a signed compare would fail >= 2^31) */
	__m256i low = _mm256_cmpeq_epi32(_mm256_srli_epi32(x, 16),
					 _mm256_setzero_si256());
	unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(low));
	__m256i words = _mm256_cvtepu16_epi32(
		_mm_loadu_si128((const __m128i *)(const void *)(w + *p)));

	words = _mm256_permutevar8x32_epi32(
		words, _mm256_loadu_si256((const __m256i *)(const void *)
						  nwc_rans_pull_perm[m]));
	*p += 2 * (size_t)__builtin_popcount(m);
	return _mm256_blendv_epi8(
		x, _mm256_or_si256(_mm256_slli_epi32(x, 16), words), low);
}

/*
 * The eight indexes of @idx, two to a 64-bit word (lane 2k in the low
 * half of @q[k]), for the scalar loads of a table lookup.
 */
__attribute__((target("avx2"), always_inline))
static inline void nwc_rans_idx_pairs(__m256i idx, uint64_t q[4])
{
	__m128i lo = _mm256_castsi256_si128(idx);
	__m128i hi = _mm256_extracti128_si256(idx, 1);

	q[0] = (uint64_t)_mm_cvtsi128_si64(lo);
	q[1] = (uint64_t)_mm_extract_epi64(lo, 1);
	q[2] = (uint64_t)_mm_cvtsi128_si64(hi);
	q[3] = (uint64_t)_mm_extract_epi64(hi, 1);
}

/*
 * tab[idx[j]] in each lane j: eight scalar loads, the indexes taken out
 * two at a time.  On Zen 3 (this project's test machine) this decoded the
 * byte planes 13% faster than vpgatherdd, which issues far more uops.
 */
__attribute__((target("avx2"), always_inline))
static inline __m256i nwc_rans_lookup8(const uint32_t *tab, __m256i idx)
{
	uint64_t q[4];

	nwc_rans_idx_pairs(idx, q);
	return _mm256_setr_epi32((int)tab[(uint32_t)q[0]], (int)tab[q[0] >> 32],
				 (int)tab[(uint32_t)q[1]], (int)tab[q[1] >> 32],
				 (int)tab[(uint32_t)q[2]], (int)tab[q[2] >> 32],
				 (int)tab[(uint32_t)q[3]], (int)tab[q[3] >> 32]);
}

#endif /* x86-64 */

#endif /* NWC_RANSVEC_H */
