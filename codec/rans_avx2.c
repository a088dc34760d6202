/* SPDX-License-Identifier: MIT */
/*
 * rans_avx2.c - the wide rANS decoder's AVX2 kernel (ranswide.h): 32
 * states as four vectors of eight, one gather for the slot entries, one
 * unaligned load and a lane permutation for the renormalization words.
 * Compiled for every x86-64 machine (target attribute) and chosen at run
 * time, so one binary serves CPUs with and without AVX2.
 */
#include "codec/common/base.h"

#include "codec/ranswide.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <pthread.h>
#include <immintrin.h>

/*
 * For each mask of lanes that pull a word: which of the eight words loaded
 * at the stream position each lane takes (lane j takes the count of pulling
 * lanes below it).  Lanes that pull nothing take word 0 and discard it.
 */
static uint32_t perm[256][8];
static pthread_once_t perm_once = PTHREAD_ONCE_INIT;

static void perm_init(void)
{
	for (unsigned m = 0; m < 256; m++) {
		unsigned n = 0;

		for (unsigned j = 0; j < 8; j++)
			perm[m][j] = m >> j & 1 ? n++ : 0;
	}
}

bool nwc_ransw_avx2_ok(void)
{
	static int ok = -1;	/* racing first calls store the same value */

	if (ok < 0) {
		__builtin_cpu_init();
		ok = __builtin_cpu_supports("avx2") ? 1 : 0;
	}
	return ok;
}

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
	__m256i e, f, b, low, words;
	unsigned m;

	e = _mm256_i32gather_epi32((const int *)tab, _mm256_and_si256(x, mask),
				   4);
	f = _mm256_srli_epi32(e, 20);
	b = _mm256_and_si256(_mm256_srli_epi32(e, 8), lo12);
	x = _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srli_epi32(x, prec)),
			     b);
	*sym = _mm256_and_si256(e, lo8);

	/* x < L: the top half is zero (a signed compare would fail >= 2^31). */
	low = _mm256_cmpeq_epi32(_mm256_srli_epi32(x, 16),
				 _mm256_setzero_si256());
	m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(low));
	words = _mm256_cvtepu16_epi32(
		_mm_loadu_si128((const __m128i *)(const void *)(src + *p)));
	words = _mm256_permutevar8x32_epi32(
		words, _mm256_loadu_si256((const __m256i *)(const void *)perm[m]));
	x = _mm256_blendv_epi8(
		x, _mm256_or_si256(_mm256_slli_epi32(x, 16), words), low);
	*p += 2 * (size_t)__builtin_popcount(m);
	return x;
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

	pthread_once(&perm_once, perm_init);
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

#else /* no x86-64 vector kernel */

bool nwc_ransw_avx2_ok(void)
{
	return false;
}

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
