/* SPDX-License-Identifier: MIT */
/* test_codec.c - dtypes and block codecs: round trips, ratios, bad input. */
#include "codec/common/base.h"

#include "codec/registry/codec.h"
#include "codec/common/convert.h"
#include "codec/image/format.h"
#include "tests/t.h"

#define LEVEL 3
#define MIB (1u << 20)
#define WORD 4u

static struct nwc_cctx *cc, *cc2;
static struct nwc_dctx *dc;
/* The byte-planes codec under test: each test runs for both. */
static uint16_t pc = NWC_CODEC_ZSTD;

static void *xmemdup(const void *src, size_t len)
{
	void *p = t_xmalloc(len);

	memcpy(p, src, len);
	return p;
}

/* Approximately N(0, 1): Irwin-Hall sum of 12 uniforms, no libm needed. */
static double gauss(uint64_t *seed)
{
	double s = 0;

	for (int i = 0; i < 12; i++)
		s += (double)(t_rand(seed) >> 11) * 0x1p-53;
	return s - 6.0;
}

/* @n elements of @dtype drawn like trained weights: N(0, 0.02). */
static void fill_weights(unsigned dtype, uint8_t *buf, size_t n,
			 uint64_t *seed)
{
	unsigned e = nwc_dtype_size(dtype);

	for (size_t i = 0; i < n; i++) {
		double x = gauss(seed) * 0.02;
		uint8_t *p = buf + i * e;

		switch (dtype) {
		case NWC_DTYPE_F32:
			nwc_put_lef32(p, (float)x);
			break;
		case NWC_DTYPE_BF16:
			nwc_put_le16(p, nwc_f32_to_bf16((float)x));
			break;
		case NWC_DTYPE_F16:
			nwc_put_le16(p, nwc_f32_to_f16((float)x));
			break;
		case NWC_DTYPE_F64: {
			uint64_t u;

			memcpy(&u, &x, sizeof(u));
			nwc_put_le64(p, u);
			break;
		}
		default:
			/* Integers: small signed values, sign-extended. */
			for (unsigned k = 0; k < e; k++)
				p[k] = (uint8_t)((uint64_t)(int64_t)(x * 3000)
						 >> (8 * k));
			break;
		}
	}
}

enum data_kind { DATA_RANDOM, DATA_WEIGHTS, DATA_CONST, DATA_KINDS };

static void fill(enum data_kind kind, unsigned dtype, uint8_t *buf, size_t n,
		 uint64_t *seed)
{
	unsigned e = nwc_dtype_size(dtype);

	switch (kind) {
	case DATA_RANDOM:
		for (size_t i = 0; i < n * e; i++)
			buf[i] = (uint8_t)t_rand(seed);
		break;
	case DATA_WEIGHTS:
		fill_weights(dtype, buf, n, seed);
		break;
	default:
		for (size_t i = 0; i < n * e; i++)
			buf[i] = (uint8_t)(0x3c + i % e);
		break;
	}
}

/*
 * Encode twice (two contexts, two capacities) and compare; decode from a
 * payload held in nwc_dctx_scratch() and compare.  Returns the stored size,
 * or -1 after reporting a failure.
 */
static ssize_t roundtrip(unsigned codec, uint32_t arg, const void *data,
			 size_t len)
{
	size_t bound = nwc_codec_bound(codec, arg, len);
	uint8_t *a = t_xmalloc(bound), *b = t_xmalloc(bound + 100);
	uint8_t *out = t_xmalloc(len), *src;
	ssize_t n, m;
	int before = t_failed;

	n = nwc_codec_encode(cc, codec, arg, data, len, a, bound);
	T_CHECK(n >= 0);
	if (n < 0)
		goto out_free;
	T_CHECK((size_t)n <= bound);
	m = nwc_codec_encode(cc2, codec, arg, data, len, b, bound + 100);
	T_EQ(m, n);
	if (m == n)
		T_MEMEQ(a, b, (size_t)n);
	m = nwc_codec_encode(cc, codec, arg, data, len, b, bound);
	T_EQ(m, n);
	if (m == n)
		T_MEMEQ(a, b, (size_t)n);

	src = nwc_dctx_scratch(dc, (size_t)n);
	T_CHECK(src != NULL);
	if (!src)
		goto out_free;
	memcpy(src, a, (size_t)n);
	memset(out, 0xee, len);
	T_EQ(nwc_codec_decode(dc, codec, arg, src, (size_t)n, out, len), 0);
	T_MEMEQ(out, data, len);
	/* The payload scratch is not the plane scratch. */
	T_MEMEQ(src, a, (size_t)n);
out_free:
	if (t_failed != before) {
		fprintf(stderr, "  (codec %u arg 0x%x len %zu)\n", codec,
			(unsigned)arg, len);
		n = -1;
	}
	free(a);
	free(b);
	free(out);
	return n;
}

static void test_dtype(void)
{
	static const struct {
		unsigned dtype, size;
		const char *name;
		bool is_float;
	} want[] = {
		{ NWC_DTYPE_BOOL, 1, "BOOL", false },
		{ NWC_DTYPE_U8, 1, "U8", false },
		{ NWC_DTYPE_I8, 1, "I8", false },
		{ NWC_DTYPE_F8_E5M2, 1, "F8_E5M2", false },
		{ NWC_DTYPE_F8_E4M3, 1, "F8_E4M3", false },
		{ NWC_DTYPE_I16, 2, "I16", false },
		{ NWC_DTYPE_U16, 2, "U16", false },
		{ NWC_DTYPE_F16, 2, "F16", true },
		{ NWC_DTYPE_BF16, 2, "BF16", true },
		{ NWC_DTYPE_I32, 4, "I32", false },
		{ NWC_DTYPE_U32, 4, "U32", false },
		{ NWC_DTYPE_F32, 4, "F32", true },
		{ NWC_DTYPE_I64, 8, "I64", false },
		{ NWC_DTYPE_U64, 8, "U64", false },
		{ NWC_DTYPE_F64, 8, "F64", true },
	};

	T_EQ(NWC_ARRAY_SIZE(want), NWC_DTYPE_COUNT - 1);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(want); i++) {
		const char *name = nwc_dtype_name(want[i].dtype);

		T_EQ(nwc_dtype_size(want[i].dtype), want[i].size);
		T_CHECK(name && !strcmp(name, want[i].name));
		T_EQ(nwc_dtype_from_name(want[i].name, strlen(want[i].name)),
		     want[i].dtype);
		T_EQ(nwc_dtype_is_float(want[i].dtype), want[i].is_float);
	}
	T_EQ(nwc_dtype_size(0), 0);
	T_EQ(nwc_dtype_size(NWC_DTYPE_COUNT), 0);
	T_EQ(nwc_dtype_size(~0u), 0);
	T_CHECK(nwc_dtype_name(0) == NULL);
	T_CHECK(nwc_dtype_name(NWC_DTYPE_COUNT) == NULL);
	T_CHECK(!nwc_dtype_is_float(0));
	T_CHECK(!nwc_dtype_is_float(NWC_DTYPE_COUNT));
	/* Exact, case-sensitive, length-bounded matches only. */
	T_EQ(nwc_dtype_from_name("BF16", 3), 0);
	T_EQ(nwc_dtype_from_name("BF16x", 5), 0);
	T_EQ(nwc_dtype_from_name("BF16x", 4), NWC_DTYPE_BF16);
	T_EQ(nwc_dtype_from_name("bf16", 4), 0);
	T_EQ(nwc_dtype_from_name("F8_E4M3FN", 9), 0);
	T_EQ(nwc_dtype_from_name("", 0), 0);
}

static void test_arg_for_dtype(void)
{
	const uint32_t f = NWC_ZSTD_ARG_FLOAT;

	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_BF16), 2 | f);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_F16), 2 | f);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_F32), 4 | f);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_F64), 8 | f);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_I64), 8);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_U64), 8);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_I32), 4);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_U16), 2);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_U8), 1);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_BOOL), 1);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_F8_E4M3), 1);
	T_EQ(nwc_codec_arg_for_dtype(NWC_DTYPE_F8_E5M2), 1);
	for (unsigned d = 1; d < NWC_DTYPE_COUNT; d++)
		T_EQ(nwc_codec_check(pc,
				     nwc_codec_arg_for_dtype(d), 4096), 0);
}

static void test_check(void)
{
	const uint32_t f = NWC_ZSTD_ARG_FLOAT;
	const int bad = -NWC_ECORRUPT;

	T_EQ(nwc_codec_check(NWC_CODEC_RAW, 0, 1), 0);
	T_EQ(nwc_codec_check(NWC_CODEC_RAW, 0, 4097), 0);
	T_EQ(nwc_codec_check(NWC_CODEC_RAW, 0, NWC_BLOCK_MAX), 0);
	T_EQ(nwc_codec_check(NWC_CODEC_RAW, 0, NWC_BLOCK_MAX + 1), bad);
	T_EQ(nwc_codec_check(NWC_CODEC_RAW, 0, 0), bad);
	T_EQ(nwc_codec_check(NWC_CODEC_RAW, 1, 4096), bad);
	T_EQ(nwc_codec_check(NWC_CODEC_RAW, f, 4096), bad);

	T_EQ(nwc_codec_check(pc, 1, 1), 0);
	T_EQ(nwc_codec_check(pc, 1, 4097), 0);
	T_EQ(nwc_codec_check(pc, 2, 4096), 0);
	T_EQ(nwc_codec_check(pc, 2 | f, 2), 0);
	T_EQ(nwc_codec_check(pc, 4 | f, 4096), 0);
	T_EQ(nwc_codec_check(pc, 8 | f, NWC_BLOCK_MAX), 0);
	T_EQ(nwc_codec_check(pc, 8, 8), 0);
	T_EQ(nwc_codec_check(pc, 2, 4095), bad);
	T_EQ(nwc_codec_check(pc, 4 | f, 4098), bad);
	T_EQ(nwc_codec_check(pc, 8, 4), bad);
	T_EQ(nwc_codec_check(pc, 1, 0), bad);
	T_EQ(nwc_codec_check(pc, 1, NWC_BLOCK_MAX + 1), bad);
	T_EQ(nwc_codec_check(pc, 0, 4096), bad);
	T_EQ(nwc_codec_check(pc, 3, 4096), bad);
	T_EQ(nwc_codec_check(pc, 16, 4096), bad);
	T_EQ(nwc_codec_check(pc, 1 | f, 4096), bad);
	T_EQ(nwc_codec_check(pc, f, 4096), bad);
	T_EQ(nwc_codec_check(pc, 2 | 1u << 9, 4096), bad);
	T_EQ(nwc_codec_check(pc, 2 | 1u << 31, 4096), bad);

	T_EQ(nwc_codec_check(NWC_CODEC_NWC, 0, 4096), -NWC_EFEATURE);
	T_EQ(nwc_codec_check(3, 0, 4096), -NWC_EFEATURE);
	T_EQ(nwc_codec_check(0xffff, 1, 0), -NWC_EFEATURE);
}

static void test_unit_bound_name(void)
{
	const bool zstd = pc == NWC_CODEC_ZSTD;
	char buf[32], tiny[5];

	T_EQ(nwc_codec_unit(NWC_CODEC_RAW, 0), 1);
	T_EQ(nwc_codec_unit(pc, 1), 1);
	T_EQ(nwc_codec_unit(pc, 2 | NWC_ZSTD_ARG_FLOAT), 2);
	T_EQ(nwc_codec_unit(pc, 8), 8);
	T_EQ(nwc_codec_unit(pc, 5), 0);
	T_EQ(nwc_codec_unit(NWC_CODEC_NWC, 0), 0);

	T_EQ(nwc_codec_bound(NWC_CODEC_RAW, 0, 1000), 1000);
	T_EQ(nwc_codec_bound(pc, 1, 1000), 1004);
	T_EQ(nwc_codec_bound(pc, 4 | NWC_ZSTD_ARG_FLOAT, 1000),
	     1016);
	T_EQ(nwc_codec_bound(pc, 8, 0), 32);

	T_CHECK(!strcmp(nwc_codec_name(NWC_CODEC_RAW, 0, buf, sizeof(buf)),
			"raw"));
	T_CHECK(!strcmp(nwc_codec_name(pc, 1, buf, sizeof(buf)),
			zstd ? "zstd" : "planes1"));
	T_CHECK(!strcmp(nwc_codec_name(pc,
				       nwc_codec_arg_for_dtype(NWC_DTYPE_BF16),
				       buf, sizeof(buf)),
			zstd ? "zstd/planes2f" : "planes2f"));
	T_CHECK(!strcmp(nwc_codec_name(pc, 8, buf, sizeof(buf)),
			zstd ? "zstd/planes8" : "planes8"));
	T_CHECK(!strcmp(nwc_codec_name(pc, 3, buf, sizeof(buf)),
			zstd ? "zstd/0x3" : "planes/0x3"));
	T_CHECK(!strcmp(nwc_codec_name(NWC_CODEC_NWC, 7, buf, sizeof(buf)),
			"nwc"));
	T_CHECK(!strcmp(nwc_codec_name(9, 1, buf, sizeof(buf)), "codec9/0x1"));
	T_CHECK(nwc_codec_name(pc, 4, tiny, sizeof(tiny)) == tiny);
	T_CHECK(!strcmp(tiny, zstd ? "zstd" : "plan"));
}

static void test_contexts(void)
{
	struct nwc_cctx *c = NULL;
	struct nwc_dctx *d = NULL;
	uint8_t *p, *q;

	T_EQ(nwc_cctx_create(0, &c), -EINVAL);
	T_EQ(nwc_cctx_create(23, &c), -EINVAL);
	T_EQ(nwc_cctx_create(-1, &c), -EINVAL);
	T_EQ(nwc_cctx_create(1, &c), 0);
	nwc_cctx_free(c);
	T_EQ(nwc_cctx_create(22, &c), 0);
	nwc_cctx_free(c);
	nwc_cctx_free(NULL);

	T_EQ(nwc_dctx_create(&d), 0);
	p = nwc_dctx_scratch(d, 0);
	T_CHECK(p != NULL);
	p = nwc_dctx_scratch(d, 100);
	T_CHECK(p != NULL);
	memset(p, 1, 100);
	q = nwc_dctx_scratch(d, MIB);
	T_CHECK(q != NULL);
	if (q)
		memset(q, 2, MIB);
	/* Not grown for a smaller request. */
	T_CHECK(nwc_dctx_scratch(d, 10) == q);
	nwc_dctx_free(d);
	nwc_dctx_free(NULL);
}

/* Every dtype's default arg on every kind of data, at several sizes. */
static void test_roundtrip_dtypes(void)
{
	uint64_t seed = 42;
	uint8_t *buf = t_xmalloc(MIB + 1);

	for (unsigned d = 1; d < NWC_DTYPE_COUNT; d++) {
		unsigned e = nwc_dtype_size(d);
		uint32_t arg = nwc_codec_arg_for_dtype(d);
		const size_t counts[] = { 0, 1, 7, 1001, 4097, MIB / e };

		for (int k = 0; k < DATA_KINDS; k++) {
			for (size_t c = 0; c < NWC_ARRAY_SIZE(counts); c++) {
				size_t n = counts[c];

				/* Odd address: no alignment is assumed. */
				fill(k, d, buf + 1, n, &seed);
				roundtrip(pc, arg, buf + 1, n * e);
			}
		}
		/* Planes without the float rotation, and plain zstd. */
		fill(DATA_WEIGHTS, d, buf, 4097, &seed);
		roundtrip(pc, e, buf, 4097 * e);
		roundtrip(pc, 1, buf, 4097 * e);
	}

	fill(DATA_RANDOM, NWC_DTYPE_U8, buf, 4097, &seed);
	T_EQ(roundtrip(NWC_CODEC_RAW, 0, buf, 4097), 4097);
	T_EQ(roundtrip(NWC_CODEC_RAW, 0, buf, 0), 0);
	/* Random bytes cannot shrink: every plane is stored. */
	T_EQ(roundtrip(pc, 1, buf, 4097), 4097 + WORD);
	T_EQ(roundtrip(pc, 4 | NWC_ZSTD_ARG_FLOAT, buf, 4096),
	     4096 + 4 * WORD);
	/* Constant data collapses. */
	memset(buf, 0, MIB);
	T_CHECK(roundtrip(pc, 2 | NWC_ZSTD_ARG_FLOAT, buf, MIB) <
		1000);
	free(buf);
}

/* Stored/compressed flags of a payload's words, plane 0 in bit 0. */
static unsigned stored_mask(const uint8_t *payload, unsigned e)
{
	unsigned m = 0;

	for (unsigned p = 0; p < e; p++)
		if (nwc_get_le32(payload + p * WORD) & NWC_PLANE_STORED)
			m |= 1u << p;
	return m;
}

static double ratio_of(uint32_t arg, const uint8_t *data,
		       size_t len, unsigned *mask)
{
	size_t bound = nwc_codec_bound(pc, arg, len);
	uint8_t *dst = t_xmalloc(bound);
	ssize_t n;

	n = nwc_codec_encode(cc, pc, arg, data, len, dst, bound);
	T_CHECK(n > 0);
	if (mask)
		*mask = stored_mask(dst, arg & NWC_ZSTD_ARG_ESIZE_MASK);
	free(dst);
	return n > 0 ? (double)n / (double)len : 1.0;
}

/* Byte grouping must pay off on weights; the ratios are printed. */
static void test_ratios(void)
{
	static const unsigned dtypes[] = {
		NWC_DTYPE_BF16, NWC_DTYPE_F16, NWC_DTYPE_F32,
	};
	uint8_t *buf = t_xmalloc(MIB);

	for (size_t i = 0; i < NWC_ARRAY_SIZE(dtypes); i++) {
		unsigned d = dtypes[i], e = nwc_dtype_size(d);
		uint32_t arg = nwc_codec_arg_for_dtype(d);
		uint64_t seed = 7;
		double planes, plain;
		unsigned mask;

		fill_weights(d, buf, MIB / e, &seed);
		planes = ratio_of(arg, buf, MIB, &mask);
		plain = ratio_of(1, buf, MIB, NULL);
		printf("  %-4s N(0,0.02) 1 MiB, level %d: planes %.3f, "
		       "plain zstd %.3f, stored planes 0x%x\n",
		       nwc_dtype_name(d), LEVEL, planes, plain, mask);
		T_CHECK(planes < plain);
		/* The exponent plane always compresses. */
		T_CHECK(!(mask & 1u << (e - 1)));
		if (d == NWC_DTYPE_BF16)
			T_CHECK(planes < 0.75);
		else
			T_CHECK(planes < 0.88);
	}
	free(buf);
}

/* Hand-built stored payloads pin the format itself (format.h section 8). */
static void test_format_vectors(void)
{
	/* BF16 1.0 and -1.0 with the float rotation. */
	static const uint8_t bf16[] = {
		2, 0, 0, 0x80, 2, 0, 0, 0x80,	/* 2 stored bytes */
		0x00, 0x01,			/* sign planes */
		0x7f, 0x7f,			/* exponents */
	};
	static const uint8_t bf16_raw[] = { 0x80, 0x3f, 0x80, 0xbf };
	/* Two I16 values, no rotation: plane 0 low bytes, plane 1 high. */
	static const uint8_t i16[] = {
		2, 0, 0, 0x80, 2, 0, 0, 0x80, 0x34, 0x78, 0x12, 0x56,
	};
	static const uint8_t i16_raw[] = { 0x34, 0x12, 0x78, 0x56 };
	static const uint8_t empty[] = { 0, 0, 0, 0x80 };
	uint8_t out[4];

	T_EQ(nwc_codec_decode(dc, pc, 2 | NWC_ZSTD_ARG_FLOAT, bf16,
			      sizeof(bf16), out, 4), 0);
	T_MEMEQ(out, bf16_raw, 4);
	T_EQ(nwc_codec_decode(dc, pc, 2, i16, sizeof(i16), out, 4),
	     0);
	T_MEMEQ(out, i16_raw, 4);
	T_EQ(nwc_codec_decode(dc, pc, 1, empty, 4, out, 0), 0);
	/* A plane stored with length zero does not describe 4 bytes. */
	T_EQ(nwc_codec_decode(dc, pc, 1, empty, 4, out, 4),
	     -NWC_ECORRUPT);
}

static void test_encode_errors(void)
{
	uint8_t src[64] = { 0 }, dst[128];

	T_EQ(nwc_codec_encode(cc, NWC_CODEC_NWC, 0, src, 64, dst, 128),
	     -NWC_EFEATURE);
	T_EQ(nwc_codec_encode(cc, 5, 0, src, 64, dst, 128), -NWC_EFEATURE);
	T_EQ(nwc_codec_encode(cc, pc, 3, src, 64, dst, 128),
	     -EINVAL);
	T_EQ(nwc_codec_encode(cc, pc, 4, src, 62, dst, 128),
	     -EINVAL);
	T_EQ(nwc_codec_encode(cc, NWC_CODEC_RAW, 1, src, 64, dst, 128),
	     -EINVAL);
	T_EQ(nwc_codec_encode(cc, NWC_CODEC_RAW, 0, src, 64, dst, 63),
	     -ENOSPC);
	T_EQ(nwc_codec_encode(cc, pc, 8, src, 64, dst, 31),
	     -ENOSPC);
	/* Random data needs the whole bound. */
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 151 + 7);
	T_EQ(nwc_codec_encode(cc, pc, 1, src, 64, dst, 67),
	     -ENOSPC);
	T_EQ(nwc_codec_encode(cc, pc, 1, src, 64, dst, 68), 68);
	T_EQ(nwc_codec_encode(cc, pc, 1, src, NWC_BLOCK_MAX + 1,
			      dst, 128), -EINVAL);

	T_EQ(nwc_codec_decode(dc, NWC_CODEC_NWC, 0, src, 64, dst, 64),
	     -NWC_EFEATURE);
	T_EQ(nwc_codec_decode(dc, 77, 0, src, 64, dst, 64), -NWC_EFEATURE);
}

/* A valid payload of @len bytes of BF16 or F32 weights, and its data. */
struct sample {
	unsigned e;
	uint32_t arg;
	uint8_t *raw;
	size_t raw_len;
	uint8_t *payload;
	size_t len;
};

static void sample_make(struct sample *s, unsigned dtype, uint32_t arg,
			size_t raw_len)
{
	uint64_t seed = 99;
	size_t bound;
	ssize_t n;

	s->e = arg & NWC_ZSTD_ARG_ESIZE_MASK;
	s->arg = arg;
	s->raw_len = raw_len;
	s->raw = t_xmalloc(raw_len);
	fill_weights(dtype, s->raw, raw_len / nwc_dtype_size(dtype), &seed);
	bound = nwc_codec_bound(pc, arg, raw_len);
	s->payload = t_xmalloc(bound);
	n = nwc_codec_encode(cc, pc, arg, s->raw, raw_len,
			     s->payload, bound);
	if (n < 0) {
		fprintf(stderr, "encode failed: %zd\n", n);
		exit(99);
	}
	s->len = (size_t)n;
}

static void sample_free(struct sample *s)
{
	free(s->raw);
	free(s->payload);
}

/*
 * Decode @len bytes copied to an exact-size buffer into an exact-size
 * output, so a sanitizer sees any access outside either.
 */
static int decode_exact(uint32_t arg, const uint8_t *payload, size_t len,
			size_t raw_len, const uint8_t *want)
{
	uint8_t *src = xmemdup(payload, len);
	uint8_t *dst = t_xmalloc(raw_len);
	int ret;

	ret = nwc_codec_decode(dc, pc, arg, src, len, dst,
			       raw_len);
	if (!ret && want)
		T_MEMEQ(dst, want, raw_len);
	free(src);
	free(dst);
	return ret;
}

static void put_word(uint8_t *payload, unsigned p, uint32_t word)
{
	nwc_put_le32(payload + p * WORD, word);
}

static uint32_t get_word(const uint8_t *payload, unsigned p)
{
	return nwc_get_le32(payload + p * WORD);
}

static void test_header_lies(void)
{
	const int bad = -NWC_ECORRUPT;
	struct sample s;
	uint8_t *p;
	uint32_t w0, w2, w3;

	/* F32 weights: low mantissa planes stored, exponent compressed. */
	sample_make(&s, NWC_DTYPE_F32, 4 | NWC_ZSTD_ARG_FLOAT, 16384);
	w0 = get_word(s.payload, 0);
	w2 = get_word(s.payload, 2);
	w3 = get_word(s.payload, 3);
	T_CHECK(w0 & NWC_PLANE_STORED);
	T_CHECK(!(w3 & NWC_PLANE_STORED));
	T_EQ(decode_exact(s.arg, s.payload, s.len, s.raw_len, s.raw), 0);

	p = t_xmalloc(s.len + 64);
	memcpy(p, s.payload, s.len);
	p[s.len] = 0;
	T_EQ(decode_exact(s.arg, p, s.len + 1, s.raw_len, NULL), bad);
	T_EQ(decode_exact(s.arg, p, s.len - 1, s.raw_len, NULL), bad);
	T_EQ(decode_exact(s.arg, p, 15, s.raw_len, NULL), bad);
	T_EQ(decode_exact(s.arg, p, 0, s.raw_len, NULL), bad);

	/* Wrong raw length or element size for the payload. */
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len - 4, NULL), bad);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len + 4, NULL), bad);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len + 1, NULL), bad);
	T_EQ(decode_exact(2 | NWC_ZSTD_ARG_FLOAT, p, s.len, s.raw_len, NULL),
	     bad);
	T_EQ(decode_exact(8 | NWC_ZSTD_ARG_FLOAT, p, s.len, s.raw_len, NULL),
	     bad);

	/* Lengths that do not add up. */
	put_word(p, 3, w3 + 1);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
	put_word(p, 3, w3 - 1);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
	/* They add up, but the stored plane has the wrong length. */
	put_word(p, 0, w0 - 1);
	put_word(p, 3, w3 + 1);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
	put_word(p, 0, w0 + 1);
	put_word(p, 3, w3 - 1);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
	/* Both flags at once are invalid. */
	put_word(p, 3, w3 | NWC_PLANE_STORED | NWC_PLANE_RANS);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
	/* Stored flag flipped either way. */
	put_word(p, 3, w3);
	put_word(p, 0, w0 & ~NWC_PLANE_STORED);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
	put_word(p, 0, w0);
	put_word(p, 3, w3 | NWC_PLANE_STORED);
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
	/* A boundary between two frames moved by one byte. */
	put_word(p, 3, w3);
	if (!(w2 & NWC_PLANE_STORED)) {
		put_word(p, 2, w2 + 1);
		put_word(p, 3, w3 - 1);
		T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
		put_word(p, 2, w2 - 1);
		put_word(p, 3, w3 + 1);
		T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, NULL), bad);
		put_word(p, 2, w2);
		put_word(p, 3, w3);
	}
	T_EQ(decode_exact(s.arg, p, s.len, s.raw_len, s.raw), 0);

	/* A second frame after the plane's frame: an empty zstd frame. */
	{
		static const uint8_t empty_frame[] = {
			0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00,
		};
		static const uint8_t skippable[] = {
			0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0,
		};

		memcpy(p + s.len, empty_frame, sizeof(empty_frame));
		put_word(p, 3, w3 + sizeof(empty_frame));
		T_EQ(decode_exact(s.arg, p, s.len + sizeof(empty_frame),
				  s.raw_len, NULL), bad);
		memcpy(p + s.len, skippable, sizeof(skippable));
		put_word(p, 3, w3 + sizeof(skippable));
		T_EQ(decode_exact(s.arg, p, s.len + sizeof(skippable),
				  s.raw_len, NULL), bad);
		/* Alone, that empty frame decodes a 0-byte block... */
		put_word(p, 0, sizeof(empty_frame));
		memcpy(p + 4, empty_frame, sizeof(empty_frame));
		T_EQ(decode_exact(1, p, 4 + sizeof(empty_frame), 0, NULL), 0);
		/* ...but no other size; a skippable frame decodes nothing. */
		T_EQ(decode_exact(1, p, 4 + sizeof(empty_frame), 1, NULL), bad);
		put_word(p, 0, sizeof(skippable));
		memcpy(p + 4, skippable, sizeof(skippable));
		T_EQ(decode_exact(1, p, 4 + sizeof(skippable), 0, NULL), bad);
	}

	/* RAW must be exact too. */
	T_EQ(nwc_codec_decode(dc, NWC_CODEC_RAW, 0, s.raw, 100, p, 101), bad);
	T_EQ(nwc_codec_decode(dc, NWC_CODEC_RAW, 1, s.raw, 100, p, 100), bad);
	T_EQ(nwc_codec_decode(dc, NWC_CODEC_RAW, 0, s.raw, 100, p, 100), 0);
	T_MEMEQ(p, s.raw, 100);
	/* And a raw length beyond the format's limit is refused outright. */
	T_EQ(nwc_codec_decode(dc, pc, 1, s.payload, s.len, p,
			      (size_t)NWC_BLOCK_MAX + 1), bad);
	free(p);
	sample_free(&s);
}

/* Truncations, with and without a header that still adds up. */
static void check_truncations(const struct sample *s)
{
	uint8_t *p = t_xmalloc(s->len);
	size_t hdr = s->e * WORD, off = hdr;

	for (size_t cut = 0; cut < s->len; cut++)
		T_EQ(decode_exact(s->arg, s->payload, cut, s->raw_len, NULL),
		     -NWC_ECORRUPT);

	/* Cut each compressed frame short and fix its word to match. */
	for (unsigned pl = 0; pl < s->e; pl++) {
		uint32_t w = get_word(s->payload, pl);
		size_t flen = w & ~(NWC_PLANE_STORED | NWC_PLANE_RANS);

		/* Compressed planes: zstd frames and rANS streams. */
		if (!(w & NWC_PLANE_STORED)) {
			for (size_t c = 0; c < flen; c++) {
				size_t tail = s->len - off - flen;

				memcpy(p, s->payload, off + c);
				memcpy(p + off + c, s->payload + off + flen,
				       tail);
				put_word(p, pl, (uint32_t)c | (w & NWC_PLANE_RANS));
				T_EQ(decode_exact(s->arg, p, off + c + tail,
						  s->raw_len, NULL),
				     -NWC_ECORRUPT);
			}
		}
		off += flen;
	}
	T_EQ(off, s->len);
	free(p);
}

/* Flipped bytes decode or fail cleanly; checksums catch the rest upstream. */
static void check_flips(const struct sample *s, uint64_t *seed, int rounds)
{
	uint8_t *p = xmemdup(s->payload, s->len);
	int ok = 0, corrupt = 0;

	for (int i = 0; i < rounds; i++) {
		size_t at = t_rand(seed) % s->len;
		uint8_t x = (uint8_t)(t_rand(seed) % 255 + 1);
		int ret;

		p[at] ^= x;
		ret = decode_exact(s->arg, p, s->len, s->raw_len, NULL);
		T_CHECK(ret == 0 || ret == -NWC_ECORRUPT);
		ok += ret == 0;
		corrupt += ret == -NWC_ECORRUPT;
		p[at] ^= x;
	}
	printf("  arg 0x%x: of %d flips %d decoded, %d corrupt\n",
	       (unsigned)s->arg, rounds, ok, corrupt);
	free(p);
}

static void test_corrupt_payloads(void)
{
	static const struct {
		unsigned dtype;
		uint32_t arg;
		size_t raw_len;
	} samples[] = {
		{ NWC_DTYPE_BF16, 2 | NWC_ZSTD_ARG_FLOAT, 4096 },
		{ NWC_DTYPE_F32, 4 | NWC_ZSTD_ARG_FLOAT, 4096 },
		{ NWC_DTYPE_F64, 8 | NWC_ZSTD_ARG_FLOAT, 4096 },
		{ NWC_DTYPE_BF16, 1, 4096 },	/* plain zstd, one frame */
		{ NWC_DTYPE_I64, 8, 4096 },
	};
	uint64_t seed = 5;

	for (size_t i = 0; i < NWC_ARRAY_SIZE(samples); i++) {
		struct sample s;

		sample_make(&s, samples[i].dtype, samples[i].arg,
			    samples[i].raw_len);
		check_truncations(&s);
		check_flips(&s, &seed, 1000);
		sample_free(&s);
	}
}

/* Garbage: random words and bytes, and frames with random bodies. */
static void test_garbage(void)
{
	static const uint32_t args[] = {
		1, 2, 4, 8, 2 | NWC_ZSTD_ARG_FLOAT, 4 | NWC_ZSTD_ARG_FLOAT,
		8 | NWC_ZSTD_ARG_FLOAT,
	};
	uint64_t seed = 11;
	uint8_t buf[512];
	struct sample s;

	for (int i = 0; i < 3000; i++) {
		uint32_t arg = args[t_rand(&seed) % NWC_ARRAY_SIZE(args)];
		unsigned e = arg & NWC_ZSTD_ARG_ESIZE_MASK;
		size_t len = t_rand(&seed) % sizeof(buf);
		size_t raw_len = t_rand(&seed) % 600 / e * e;
		size_t left, room = len > e * WORD ? len - e * WORD : 0;
		int ret;

		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)t_rand(&seed);
		/* Half the time, a header whose lengths add up. */
		if (i & 1 && room) {
			left = room;
			for (unsigned p = 0; p < e; p++) {
				size_t l = p == e - 1 ? left :
					   t_rand(&seed) % (left + 1);
				uint32_t w = (uint32_t)l;

				if (t_rand(&seed) & 1) {
					w |= NWC_PLANE_STORED;
				} else if (l >= 4) {
					/* Frame magic, to get past it. */
					nwc_put_le32(buf + len - left,
						     0xfd2fb528);
				}
				put_word(buf, p, w);
				left -= l;
			}
		}
		ret = decode_exact(arg, buf, len, raw_len, NULL);
		T_CHECK(ret == 0 || ret == -NWC_ECORRUPT);
	}

	/* Real frame headers with random block data behind them. */
	sample_make(&s, NWC_DTYPE_BF16, 1, 4096);
	T_CHECK(!(get_word(s.payload, 0) & NWC_PLANE_STORED));
	for (int i = 0; i < 2000; i++) {
		uint8_t *p = xmemdup(s.payload, s.len);
		int ret;

		/* Keep the word and the frame header (magic to FCS). */
		for (size_t k = WORD + 8; k < s.len; k++)
			if (t_rand(&seed) % 8 == 0)
				p[k] = (uint8_t)t_rand(&seed);
		ret = decode_exact(1, p, s.len, 4096, NULL);
		T_CHECK(ret == 0 || ret == -NWC_ECORRUPT);
		free(p);
	}
	sample_free(&s);
}

int main(void)
{
	if (nwc_cctx_create(LEVEL, &cc) || nwc_cctx_create(LEVEL, &cc2) ||
	    nwc_dctx_create(&dc)) {
		fprintf(stderr, "cannot create codec contexts\n");
		return 99;
	}
	T_RUN(test_dtype);
	T_RUN(test_contexts);
	for (int k = 0; k < 2; k++) {
		pc = k ? NWC_CODEC_PLANES : NWC_CODEC_ZSTD;
		printf("codec %u\n", pc);
		T_RUN(test_arg_for_dtype);
		T_RUN(test_check);
		T_RUN(test_unit_bound_name);
		T_RUN(test_format_vectors);
		T_RUN(test_roundtrip_dtypes);
		T_RUN(test_ratios);
		T_RUN(test_encode_errors);
		T_RUN(test_header_lies);
		T_RUN(test_corrupt_payloads);
		T_RUN(test_garbage);
	}
	nwc_cctx_free(cc);
	nwc_cctx_free(cc2);
	nwc_dctx_free(dc);
	T_EXIT();
}
