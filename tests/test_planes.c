/* SPDX-License-Identifier: MIT */
/* test_planes.c - byte planes: split/merge vs a reference, special floats. */
#include "codec/common/base.h"

#include "codec/planes.h"
#include "tests/t.h"

#define GUARD 16	/* bytes after each buffer that must stay untouched */
#define FILL 0xa5

static const unsigned esizes[] = { 1, 2, 4, 8 };
static const size_t counts[] = {
	0, 1, 2, 3, 7, 15, 16, 17, 31, 63, 64, 65, 128, 1001, 4099,
};

/* Reference: element as an integer, rotated with shifts on the whole word. */
static void ref_split(const uint8_t *src, size_t n, unsigned e, bool rot,
		      uint8_t *const planes[])
{
	unsigned bits = e * 8;

	for (size_t i = 0; i < n; i++) {
		uint64_t v = 0;

		for (unsigned b = 0; b < e; b++)
			v |= (uint64_t)src[i * e + b] << (8 * b);
		if (rot) {
			uint64_t top = v >> (bits - 1) & 1;

			v = v << 1 | top;
			if (bits < 64)
				v &= (1ull << bits) - 1;
		}
		for (unsigned b = 0; b < e; b++)
			planes[b][i] = (uint8_t)(v >> (8 * b));
	}
}

struct bufs {
	uint8_t *src;		/* n * e elements */
	uint8_t *back;		/* merged result */
	uint8_t *plane[8];	/* split result, each n bytes + GUARD */
	uint8_t *ref[8];	/* reference split */
};

static void bufs_alloc(struct bufs *b, size_t n, unsigned e)
{
	/* +1 so the element buffers start at odd addresses. */
	b->src = malloc(n * e + GUARD + 1);
	b->back = malloc(n * e + GUARD + 1);
	if (!b->src || !b->back)
		exit(99);
	b->src++;
	b->back++;
	memset(b->back, FILL, n * e + GUARD);
	for (unsigned p = 0; p < e; p++) {
		b->plane[p] = malloc(n + GUARD);
		b->ref[p] = malloc(n + GUARD);
		if (!b->plane[p] || !b->ref[p])
			exit(99);
		memset(b->plane[p], FILL, n + GUARD);
		memset(b->ref[p], FILL, n + GUARD);
	}
}

static void bufs_free(struct bufs *b, unsigned e)
{
	free(b->src - 1);
	free(b->back - 1);
	for (unsigned p = 0; p < e; p++) {
		free(b->plane[p]);
		free(b->ref[p]);
	}
}

static bool untouched(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != FILL)
			return false;
	return true;
}

/* Split @src (already in b->src), compare to the reference, merge back. */
static void check_roundtrip(struct bufs *b, size_t n, unsigned e, bool rot)
{
	int before = t_failed;

	ref_split(b->src, n, e, rot, b->ref);
	nwc_planes_split(b->src, n, e, rot, b->plane);
	for (unsigned p = 0; p < e; p++) {
		T_MEMEQ(b->plane[p], b->ref[p], n);
		T_CHECK(untouched(b->plane[p] + n, GUARD));
	}
	nwc_planes_merge((const uint8_t *const *)b->plane, n, e, rot, b->back);
	T_MEMEQ(b->back, b->src, n * e);
	T_CHECK(untouched(b->back + n * e, GUARD));
	if (t_failed != before)
		fprintf(stderr, "  (n=%zu e=%u rot=%d)\n", n, e, rot);
}

static void test_random(void)
{
	uint64_t seed = 1;

	for (size_t ei = 0; ei < NWC_ARRAY_SIZE(esizes); ei++) {
		unsigned e = esizes[ei];

		for (size_t ci = 0; ci < NWC_ARRAY_SIZE(counts); ci++) {
			size_t n = counts[ci];
			struct bufs b;

			bufs_alloc(&b, n, e);
			for (size_t i = 0; i < n * e; i++)
				b.src[i] = (uint8_t)t_rand(&seed);
			check_roundtrip(&b, n, e, false);
			if (e > 1)
				check_roundtrip(&b, n, e, true);
			bufs_free(&b, e);
		}
	}
}

/* n = 0 writes nothing at all. */
static void test_empty(void)
{
	for (size_t ei = 0; ei < NWC_ARRAY_SIZE(esizes); ei++) {
		unsigned e = esizes[ei];
		struct bufs b;

		bufs_alloc(&b, 0, e);
		nwc_planes_split(b.src, 0, e, e > 1, b.plane);
		nwc_planes_merge((const uint8_t *const *)b.plane, 0, e, e > 1,
				 b.back);
		for (unsigned p = 0; p < e; p++)
			T_CHECK(untouched(b.plane[p], GUARD));
		T_CHECK(untouched(b.back, GUARD));
		bufs_free(&b, e);
	}
}

/* Every 16-bit pattern, so every F16 and BF16 value, both ways. */
static void test_all_16bit(void)
{
	const size_t n = 65536;
	struct bufs b;

	bufs_alloc(&b, n, 2);
	for (size_t i = 0; i < n; i++)
		nwc_put_le16(b.src + 2 * i, (uint16_t)i);
	check_roundtrip(&b, n, 2, true);
	check_roundtrip(&b, n, 2, false);
	bufs_free(&b, 2);
}

static const uint16_t f16_special[] = {
	0x0000, 0x8000,			/* +-0 */
	0x7c00, 0xfc00,			/* +-Inf */
	0x7e00, 0xfe00, 0x7c01, 0x7dff,	/* quiet and signalling NaNs */
	0xffff, 0x7fff,			/* NaN, all payload bits */
	0x0001, 0x8001, 0x03ff,		/* denormals */
	0x0400, 0x8400, 0x7bff, 0xfbff,	/* min and max normal */
	0x3c00, 0xbc00,			/* +-1.0 */
};

static const uint16_t bf16_special[] = {
	0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc0, 0x7f81, 0x7fff,
	0xffff, 0x0001, 0x8001, 0x007f, 0x0080, 0x8080, 0x7f7f, 0xff7f,
	0x3f80, 0xbf80,
};

static const uint32_t f32_special[] = {
	0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000,
	0xffc00000, 0x7f800001, 0x7fbfffff, 0x7fc12345, 0xffffffff,
	0x00000001, 0x80000001, 0x007fffff, 0x00800000, 0x80800000,
	0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000,
};

static const uint64_t f64_special[] = {
	0x0000000000000000ull, 0x8000000000000000ull,
	0x7ff0000000000000ull, 0xfff0000000000000ull,
	0x7ff8000000000000ull, 0xfff8000000000000ull,
	0x7ff0000000000001ull, 0x7ff7ffffffffffffull,
	0x7ff8dead0000beefull, 0xffffffffffffffffull,
	0x0000000000000001ull, 0x8000000000000001ull,
	0x000fffffffffffffull, 0x0010000000000000ull,
	0x7fefffffffffffffull, 0xffefffffffffffffull,
	0x3ff0000000000000ull, 0xbff0000000000000ull,
};

static void check_special(const uint64_t *vals, size_t n, unsigned e)
{
	struct bufs b;

	bufs_alloc(&b, n, e);
	for (size_t i = 0; i < n; i++)
		for (unsigned k = 0; k < e; k++)
			b.src[i * e + k] = (uint8_t)(vals[i] >> (8 * k));
	check_roundtrip(&b, n, e, true);
	check_roundtrip(&b, n, e, false);
	bufs_free(&b, e);
}

static void test_special_floats(void)
{
	uint64_t v[32];

	for (size_t i = 0; i < NWC_ARRAY_SIZE(f16_special); i++)
		v[i] = f16_special[i];
	check_special(v, NWC_ARRAY_SIZE(f16_special), 2);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(bf16_special); i++)
		v[i] = bf16_special[i];
	check_special(v, NWC_ARRAY_SIZE(bf16_special), 2);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(f32_special); i++)
		v[i] = f32_special[i];
	check_special(v, NWC_ARRAY_SIZE(f32_special), 4);
	check_special(f64_special, NWC_ARRAY_SIZE(f64_special), 8);
}

/* Split one element and return its planes as bytes, plane 0 first. */
static void split_one(uint64_t val, unsigned e, uint8_t out[8])
{
	uint8_t src[8];
	uint8_t *planes[8];

	for (unsigned k = 0; k < 8; k++) {
		src[k] = (uint8_t)(val >> (8 * k));
		planes[k] = &out[k];
	}
	nwc_planes_split(src, 1, e, true, planes);
}

/* The rotation moves the sign to bit 0 and the exponent into the top plane. */
static void test_rotation_layout(void)
{
	uint8_t o[8];

	split_one(0x3f80, 2, o);	/* BF16 1.0 */
	T_EQ(o[1], 0x7f);
	T_EQ(o[0], 0x00);
	split_one(0xbf80, 2, o);	/* BF16 -1.0: sign moves to bit 0 */
	T_EQ(o[1], 0x7f);
	T_EQ(o[0], 0x01);
	split_one(0x3c00, 2, o);	/* F16 1.0: exponent 01111 */
	T_EQ(o[1], 0x78);
	T_EQ(o[0], 0x00);
	split_one(0x3f800000, 4, o);	/* F32 1.0 */
	T_EQ(o[3], 0x7f);
	T_EQ(o[2], 0x00);
	T_EQ(o[1], 0x00);
	T_EQ(o[0], 0x00);
	split_one(0xc0490fdb, 4, o);	/* F32 -pi: exponent 128 */
	T_EQ(o[3], 0x80);
	T_EQ(o[2], 0x92);
	T_EQ(o[1], 0x1f);
	T_EQ(o[0], 0xb7);
	split_one(0x3ff0000000000000ull, 8, o);	/* F64 1.0 */
	T_EQ(o[7], 0x7f);
	T_EQ(o[6], 0xe0);
	T_EQ(o[0], 0x00);
	split_one(0x8000000000000000ull, 8, o);	/* F64 -0.0 */
	T_EQ(o[7], 0x00);
	T_EQ(o[0], 0x01);
}

/* Without rotation, plane p is byte p of each little-endian element. */
static void test_plain_layout(void)
{
	const uint8_t src[8] = {
		0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
	};
	uint8_t a[4], b[4], c[4], d[4];
	uint8_t *planes[4] = { a, b, c, d };

	nwc_planes_split(src, 2, 4, false, planes);
	T_EQ(a[0], 0x11);
	T_EQ(a[1], 0x55);
	T_EQ(d[0], 0x44);
	T_EQ(d[1], 0x88);
	nwc_planes_split(src, 4, 2, false, planes);
	T_EQ(a[0], 0x11);
	T_EQ(a[3], 0x77);
	T_EQ(b[0], 0x22);
	T_EQ(b[3], 0x88);
}

int main(void)
{
	T_RUN(test_random);
	T_RUN(test_empty);
	T_RUN(test_all_16bit);
	T_RUN(test_special_floats);
	T_RUN(test_rotation_layout);
	T_RUN(test_plain_layout);
	T_EXIT();
}
