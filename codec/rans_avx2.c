/* SPDX-License-Identifier: MIT */
/*
 * rans_avx2.c - the wide rANS decoder's AVX2 kernel (ranswide.h): 32
 * states as four vectors of eight, eight loads for the slot entries, one
 * unaligned load and a lane permutation for the renormalization words.
 * Compiled for every x86-64 machine (target attribute) and chosen at run
 * time, so one binary serves CPUs with and without AVX2.
 */
#include "codec/common/base.h"

#include "codec/ranswide.h"
#include "codec/ransvec.h"

#ifdef NWC_RANSVEC

/* nwc_rans_pull_perm[m][j]: bit j of m set, the bits of m below j. */
#define BIT(m, i) (((m) >> (i)) & 1u)
#define BELOW(m, j)							\
	(BIT(m, 0) * (0 < (j)) + BIT(m, 1) * (1 < (j)) +		\
	 BIT(m, 2) * (2 < (j)) + BIT(m, 3) * (3 < (j)) +		\
	 BIT(m, 4) * (4 < (j)) + BIT(m, 5) * (5 < (j)) +		\
	 BIT(m, 6) * (6 < (j)))
#define LANE(m, j) (BIT(m, j) ? BELOW(m, j) : 0u)
#define ROW(m)								\
	{ LANE(m, 0), LANE(m, 1), LANE(m, 2), LANE(m, 3),		\
	  LANE(m, 4), LANE(m, 5), LANE(m, 6), LANE(m, 7) }
#define ROW4(m) ROW(m), ROW((m) + 1), ROW((m) + 2), ROW((m) + 3)
#define ROW16(m) ROW4(m), ROW4((m) + 4), ROW4((m) + 8), ROW4((m) + 12)
#define ROW64(m) ROW16(m), ROW16((m) + 16), ROW16((m) + 32), ROW16((m) + 48)

const uint32_t nwc_rans_pull_perm[256][8] = {
	ROW64(0), ROW64(64), ROW64(128), ROW64(192)
};

/*
 * Decode one symbol in each lane of @x, pulling words from *@p onwards.
 * @prec is a constant where this is inlined: a shift by an immediate.
 */
__attribute__((target("avx2,popcnt"), always_inline))
static inline __m256i step8(__m256i x, const uint32_t *tab,
			    const unsigned prec, const uint8_t *src, size_t *p,
			    __m256i *sym)
{
	const __m256i lo12 = _mm256_set1_epi32(0xfff);
	const __m256i lo8 = _mm256_set1_epi32(0xff);
	const __m256i mask = _mm256_set1_epi32((int)((1u << prec) - 1));
	__m256i e, f, b;

	e = nwc_rans_lookup8(tab, _mm256_and_si256(x, mask));
	f = _mm256_srli_epi32(e, 20);
	b = _mm256_and_si256(_mm256_srli_epi32(e, 8), lo12);
	x = _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srli_epi32(x, prec)),
			     b);
	*sym = _mm256_and_si256(e, lo8);
	return nwc_rans_pull8(x, src, p);
}

__attribute__((target("avx2,popcnt"), always_inline))
static inline size_t groups(uint32_t *x, const uint32_t *tab,
			    const unsigned prec, const uint8_t *src,
			    size_t *wpos, size_t wend, uint8_t *dst,
			    size_t len)
{
	/* Dword order of the packed bytes: vector 0's lanes 0-7 first. */
	const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	__m256i x0, x1, x2, x3;
	size_t i = 0, p = *wpos;

	x0 = _mm256_loadu_si256((const __m256i *)(const void *)(x + 0));
	x1 = _mm256_loadu_si256((const __m256i *)(const void *)(x + 8));
	x2 = _mm256_loadu_si256((const __m256i *)(const void *)(x + 16));
	x3 = _mm256_loadu_si256((const __m256i *)(const void *)(x + 24));
	while (len - i >= 32 && wend - p >= NWC_RANSW_GROUP_WORDS) {
		__m256i s0, s1, s01, s;

		/* Symbols are < 256: packing saturates nothing.  Packed as
		 * they come, so that fewer registers stay live. */
		x0 = step8(x0, tab, prec, src, &p, &s0);
		x1 = step8(x1, tab, prec, src, &p, &s1);
		s01 = _mm256_packus_epi32(s0, s1);
		x2 = step8(x2, tab, prec, src, &p, &s0);
		x3 = step8(x3, tab, prec, src, &p, &s1);
		s = _mm256_packus_epi16(s01, _mm256_packus_epi32(s0, s1));
		s = _mm256_permutevar8x32_epi32(s, order);
		_mm256_storeu_si256((__m256i *)(void *)(dst + i), s);
		i += 32;
	}
	_mm256_storeu_si256((__m256i *)(void *)(x + 0), x0);
	_mm256_storeu_si256((__m256i *)(void *)(x + 8), x1);
	_mm256_storeu_si256((__m256i *)(void *)(x + 16), x2);
	_mm256_storeu_si256((__m256i *)(void *)(x + 24), x3);
	*wpos = p;
	return i;
}

/* One copy per precision, each with its shifts and masks as constants:
 * a shift by a register count cost a third of the speed. */
__attribute__((target("avx2,popcnt")))
size_t nwc_ransw_avx2(uint32_t *x, const uint32_t *tab, unsigned prec,
		      const uint8_t *src, size_t *wpos, size_t wend,
		      uint8_t *dst, size_t len)
{
	switch (prec) {
	case 12:
		return groups(x, tab, 12, src, wpos, wend, dst, len);
	case 11:
		return groups(x, tab, 11, src, wpos, wend, dst, len);
	case 10:
		return groups(x, tab, 10, src, wpos, wend, dst, len);
	case 9:
		return groups(x, tab, 9, src, wpos, wend, dst, len);
	default:
		assert(prec == 8);
		return groups(x, tab, 8, src, wpos, wend, dst, len);
	}
}

#else /* no x86-64 vector kernel: nwc_cpu_has() never chooses it */

size_t nwc_ransw_avx2(uint32_t *x NWC_UNUSED, const uint32_t *tab NWC_UNUSED,
		      unsigned prec NWC_UNUSED,
		      const uint8_t *src NWC_UNUSED, size_t *wpos NWC_UNUSED,
		      size_t wend NWC_UNUSED, uint8_t *dst NWC_UNUSED,
		      size_t len NWC_UNUSED)
{
	assert(!"no AVX2 kernel in this build");
	return 0;
}

#endif
