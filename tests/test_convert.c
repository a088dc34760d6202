/* SPDX-License-Identifier: MIT */
/* test_convert.c - float conversions: exhaustive 16-bit, rounding, bulk. */
#include "codec/common/base.h"

#include <float.h>
#include <math.h>

#include "codec/common/convert.h"
#include "codec/image/format.h"
#include "tests/t.h"

static uint32_t fbits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float bitsf(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

static bool f16_is_nan(uint16_t h)
{
	return (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}

static bool bf16_is_nan(uint16_t h)
{
	return (h & 0x7f80) == 0x7f80 && (h & 0x7f);
}

/* The value of a half, from its fields with ldexp: independent of dtype.c. */
static double f16_value(uint16_t h)
{
	int exp = h >> 10 & 0x1f, mant = h & 0x3ff;
	double v;

	if (exp == 0x1f)
		v = mant ? NAN : INFINITY;
	else if (exp == 0)
		v = ldexp(mant, -24);
	else
		v = ldexp(1024 + mant, exp - 25);
	return h & 0x8000 ? -v : v;
}

static void test_bf16_exhaustive(void)
{
	unsigned bad = 0;

	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = nwc_bf16_to_f32((uint16_t)h);
		uint16_t back = nwc_f32_to_bf16(f);

		if (fbits(f) != h << 16)
			bad++;
		if (bf16_is_nan((uint16_t)h)) {
			if (!isnan(f) || !bf16_is_nan(back) ||
			    (back & 0x8000) != (h & 0x8000) || !(back & 0x40))
				bad++;
		} else if (back != h) {
			bad++;
		}
	}
	T_EQ(bad, 0);
}

static void test_f16_exhaustive(void)
{
	unsigned bad = 0;

	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = nwc_f16_to_f32((uint16_t)h);
		uint16_t back = nwc_f32_to_f16(f);
		double want = f16_value((uint16_t)h);

		if (f16_is_nan((uint16_t)h)) {
			if (!isnan(f) || !f16_is_nan(back) ||
			    (back & 0x8000) != (h & 0x8000) || !(back & 0x200))
				bad++;
			continue;
		}
		/* Exact value and sign (signbit catches -0). */
		if ((double)f != want || !!signbit(f) != !!(h & 0x8000))
			bad++;
		if (back != h)
			bad++;
	}
	T_EQ(bad, 0);
	/* A NaN's payload survives where it fits, and stays quiet. */
	T_EQ(nwc_f32_to_f16(nwc_f16_to_f32(0x7e55)), 0x7e55);
	T_EQ(nwc_f32_to_f16(nwc_f16_to_f32(0xfd01)), 0xff01);
}

static void test_rounding(void)
{
	/* bf16: ties go to the even neighbour, anything above rounds up. */
	T_EQ(nwc_f32_to_bf16(bitsf(0x3f808000)), 0x3f80);
	T_EQ(nwc_f32_to_bf16(bitsf(0x3f818000)), 0x3f82);
	T_EQ(nwc_f32_to_bf16(bitsf(0x3f808001)), 0x3f81);
	T_EQ(nwc_f32_to_bf16(bitsf(0x3f807fff)), 0x3f80);
	T_EQ(nwc_f32_to_bf16(bitsf(0xbf818000)), 0xbf82);
	T_EQ(nwc_f32_to_bf16(FLT_MAX), 0x7f80);	/* rounds up to Inf */
	T_EQ(nwc_f32_to_bf16(bitsf(0x7f7f7fff)), 0x7f7f);
	T_EQ(nwc_f32_to_bf16(-INFINITY), 0xff80);
	/* A subnormal tie; a signalling NaN comes back quiet. */
	T_EQ(nwc_f32_to_bf16(bitsf(0x00018000)), 0x0002);
	T_EQ(nwc_f32_to_bf16(bitsf(0x7f800001)), 0x7fc0);
	T_CHECK(isnan(nwc_bf16_to_f32(nwc_f32_to_bf16(NAN))));

	/* f16 normals: 1 + 2^-11 is a tie. */
	T_EQ(nwc_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
	T_EQ(nwc_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
	T_EQ(nwc_f32_to_f16(1.0f + 0x1p-11f + 0x1p-23f), 0x3c01);
	T_EQ(nwc_f32_to_f16(-(2.0f - 0x1p-12f)), 0xc000);	/* carry */
	/* Overflow: 65504 is the largest half, 65520 the midpoint to Inf. */
	T_EQ(nwc_f32_to_f16(65504.0f), 0x7bff);
	T_EQ(nwc_f32_to_f16(65519.996f), 0x7bff);
	T_EQ(nwc_f32_to_f16(65520.0f), 0x7c00);
	T_EQ(nwc_f32_to_f16(-1e10f), 0xfc00);
	T_EQ(nwc_f32_to_f16(FLT_MAX), 0x7c00);
	T_EQ(nwc_f32_to_f16(INFINITY), 0x7c00);
	/* Subnormals: units of 2^-24, ties to even. */
	T_EQ(nwc_f32_to_f16(0x1p-24f), 0x0001);
	T_EQ(nwc_f32_to_f16(0x1p-25f), 0x0000);
	T_EQ(nwc_f32_to_f16(0x1.000002p-25f), 0x0001);
	T_EQ(nwc_f32_to_f16(3 * 0x1p-25f), 0x0002);
	T_EQ(nwc_f32_to_f16(5 * 0x1p-25f), 0x0002);
	T_EQ(nwc_f32_to_f16(-7 * 0x1p-25f), 0x8004);
	T_EQ(nwc_f32_to_f16(1023 * 0x1p-24f), 0x03ff);
	T_EQ(nwc_f32_to_f16(0x1p-14f - 0x1p-26f), 0x0400);	/* to normal */
	T_EQ(nwc_f32_to_f16(0x1p-14f), 0x0400);
	T_EQ(nwc_f32_to_f16(FLT_MIN), 0x0000);
	T_EQ(nwc_f32_to_f16(bitsf(0x00000001)), 0x0000);
	T_EQ(nwc_f32_to_f16(-0.0f), 0x8000);
	T_EQ(nwc_f32_to_f16(bitsf(0x7f800001)), 0x7e00);
	T_EQ(nwc_f32_to_f16(bitsf(0xffc02000)), 0xfe01);
}

/* Every finite positive half in increasing order (they sort as integers). */
static double halves[0x7c00];

/*
 * Reference f32 -> f16 by searching the nearest half by value, ties to the
 * even pattern; beyond 65504 the next step would be 65536, so >= 65520 is
 * Inf.  Nothing shared with the bit-twiddling in dtype.c.
 */
static uint16_t ref_f32_to_f16(float f)
{
	double a = fabs((double)f);
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	size_t lo = 0, hi = 0x7c00 - 1;

	if (isnan(f))
		return 0xffff;	/* not compared */
	if (a >= 65520.0)
		return sign | 0x7c00;
	/* Largest index with halves[idx] <= a. */
	while (lo < hi) {
		size_t mid = (lo + hi + 1) / 2;

		if (halves[mid] <= a)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (lo < 0x7c00 - 1) {
		double d0 = a - halves[lo], d1 = halves[lo + 1] - a;

		if (d1 < d0 || (d1 == d0 && (lo & 1)))
			lo++;
	}
	return sign | (uint16_t)lo;
}

static void test_f16_random(void)
{
	uint64_t seed = 11;
	unsigned bad = 0, bad_native = 0;
	const unsigned n = 3000000;

	for (uint32_t h = 0; h < 0x7c00; h++)
		halves[h] = f16_value((uint16_t)h);
	for (unsigned i = 0; i < n; i++) {
		uint64_t r = t_rand(&seed);
		uint32_t u;
		float f;
		uint16_t got;

		if (i % 2) {
			/* Any bit pattern. */
			u = (uint32_t)r;
		} else {
			/* Exponents around the half range, random mantissa. */
			uint32_t e = 127 - 27 + (uint32_t)(r >> 32) % 46;

			u = (uint32_t)(r & 0x807fffff) | e << 23;
			/* Often exactly a tie or next to one. */
			if ((r >> 40) % 4 == 0)
				u = (u & ~0x1fffu) | 0x1000;
			else if ((r >> 40) % 4 == 1)
				u = (u & ~0x1fffu) | 0x0fff;
		}
		f = bitsf(u);
		got = nwc_f32_to_f16(f);
		if (isnan(f)) {
			if (!f16_is_nan(got))
				bad++;
			continue;
		}
		if (got != ref_f32_to_f16(f))
			bad++;
#ifdef __FLT16_MAX__
		{
			_Float16 nat = (_Float16)f;
			uint16_t nb;

			memcpy(&nb, &nat, 2);
			if (nb != got)
				bad_native++;
		}
#endif
	}
	T_EQ(bad, 0);
	T_EQ(bad_native, 0);
}

static void test_bulk(void)
{
	/* Little-endian elements at an odd address. */
	static const uint8_t f32le[] = { 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0 };
	static const uint8_t f16le[] = { 0x00, 0x3c, 0x00, 0xc0 };
	static const uint8_t bf16le[] = { 0x80, 0x3f, 0x00, 0xc0 };
	static const uint8_t f64le[] = { 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
					 0, 0, 0, 0, 0, 0, 0, 0xc0 };
	static const struct {
		unsigned dtype;
		const uint8_t *bytes;
		size_t size;
	} cases[] = {
		{ NWC_DTYPE_F32, f32le, sizeof(f32le) },
		{ NWC_DTYPE_F16, f16le, sizeof(f16le) },
		{ NWC_DTYPE_BF16, bf16le, sizeof(bf16le) },
		{ NWC_DTYPE_F64, f64le, sizeof(f64le) },
	};
	uint8_t buf[1 + 16], out[1 + 16 + 1];
	float f[2] = { 0 };

	for (size_t k = 0; k < NWC_ARRAY_SIZE(cases); k++) {
		memcpy(buf + 1, cases[k].bytes, cases[k].size);
		T_EQ(nwc_to_f32(cases[k].dtype, buf + 1, 2, f), 0);
		T_CHECK(f[0] == 1.0f && f[1] == -2.0f);
		memset(out, 0x55, sizeof(out));
		T_EQ(nwc_from_f32(cases[k].dtype, f, 2, out + 1), 0);
		T_MEMEQ(out + 1, cases[k].bytes, cases[k].size);
		T_EQ(out[1 + cases[k].size], 0x55);	/* nothing past it */
	}
	/* Narrowing through the bulk path rounds like the scalar one. */
	f[0] = 1.0f + 0x1p-11f;
	f[1] = 1e6f;
	T_EQ(nwc_from_f32(NWC_DTYPE_F16, f, 2, out), 0);
	T_EQ(nwc_get_le16(out), 0x3c00);
	T_EQ(nwc_get_le16(out + 2), 0x7c00);
	T_EQ(nwc_to_f32(NWC_DTYPE_F32, buf, 0, f), 0);
	T_EQ(nwc_to_f32(NWC_DTYPE_I32, buf, 1, f), -EINVAL);
	T_EQ(nwc_to_f32(NWC_DTYPE_F8_E4M3, buf, 1, f), -EINVAL);
	T_EQ(nwc_to_f32(0, buf, 1, f), -EINVAL);
	T_EQ(nwc_from_f32(NWC_DTYPE_U8, f, 1, out), -EINVAL);
	T_EQ(nwc_from_f32(NWC_DTYPE_COUNT, f, 1, out), -EINVAL);
}

/* The bulk BF16 path (sixteen at a time, in the clone this CPU takes)
 * gives the scalar bytes: random bit patterns, NaNs, infinities, ties, at
 * every offset of a 16-group, to aligned and odd addresses. */
static void test_bulk_bf16(void)
{
	enum { N = 4099 };
	static const uint32_t edge[] = { 0x7f800000, 0xff800000, 0x7f800001,
					 0xffc00000, 0x7fffffff, 0x3f808000,
					 0x3f818000, 0x7f7fffff, 0x00008000,
					 0x80000000, 0x7f7f8000 };
	float *f = malloc(N * sizeof(*f));
	uint8_t *out = malloc(2 * N + 1);
	uint64_t seed = 31;
	size_t bad = 0;

	T_CHECK(f && out);
	if (!f || !out)
		goto out_free;
	for (size_t i = 0; i < N; i++)
		f[i] = bitsf(i < NWC_ARRAY_SIZE(edge) * 4 ?
			     edge[i / 4] + (uint32_t)(i % 4) :
			     (uint32_t)t_rand(&seed));
	for (size_t off = 0; off < 32; off++) {
		uint8_t *o = out + off / 16;

		T_EQ(nwc_from_f32(NWC_DTYPE_BF16, f + off % 16, N - off % 16,
				  o), 0);
		for (size_t i = 0; i < N - off % 16; i++)
			bad += nwc_get_le16(o + 2 * i) !=
			       nwc_f32_to_bf16(f[off % 16 + i]);
	}
	T_EQ(bad, 0);
out_free:
	free(f);
	free(out);
}

int main(void)
{
	T_RUN(test_bf16_exhaustive);
	T_RUN(test_f16_exhaustive);
	T_RUN(test_rounding);
	T_RUN(test_f16_random);
	T_RUN(test_bulk);
	T_RUN(test_bulk_bf16);
	T_EXIT();
}
