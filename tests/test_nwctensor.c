/* SPDX-License-Identifier: MIT */
/* test_nwctensor.c - NWC matrix coding: side records, bands, TCQ, LDLQ. */
#include "codec/common/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/common/convert.h"
#include "codec/nwc/ldlq.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwctensor.h"
#include "codec/nwc/tenc.h"
#include "codec/nwc/prior.h"
#include "tests/t.h"

#define TH 16
#define TR 1

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static float grand(void)
{
	double u = urand() + 1e-12, v = urand();

	return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

static struct nwc_model *small_model(uint64_t seed)
{
	struct nwc_model *m;

	if (nwc_model_create(TH, TR, NWC_NET_Q, &m))
		return NULL;
	nwc_net_init(m->enc, TH, TR, seed);
	nwc_net_init(m->dec, TH, TR, seed + 1);
	nwc_emb_init(m->emb, NWC_NET_Q, TH);
	for (unsigned int i = 0; i < NWC_NET_Q * TH; i++) {
		m->emb[i] = 1.0f + 0.3f * (float)(i % 5);
		m->emb_dec[i] = 1.0f / m->emb[i];
	}
	nwc_prior_init(m->prior, m->quantiles, m->c, seed + 2);
	if (nwc_model_finalize(m)) {
		nwc_model_free(m);
		return NULL;
	}
	return m;
}

static float *matrix(uint32_t m, uint32_t n)
{
	float *w = t_xmalloc((size_t)m * n * sizeof(*w));

	/* rows of different energy, like real layers */
	for (uint32_t r = 0; r < m; r++)
		for (uint32_t j = 0; j < n; j++)
			w[(size_t)r * n + j] = 0.02f * (1 + r % 3) * grand();
	return w;
}

/* Bands in the lanes layout that check_decode() decoded both ways. */
static unsigned int t_rowmajor_checks;

/*
 * Decode every band of @e as @dtype and compare with e->what, and with
 * the row-major decoder network's bytes.
 */
static void check_decode(const struct nwc_model *model,
			 const struct nwc_tenc *e, enum nwc_dtype dtype)
{
	struct nwc_tensor_scratch *s, *srm;
	struct nwc_tside *ts;
	size_t elem = dtype == NWC_DTYPE_F32 ? 4 : 2;

	T_EQ(nwc_tensor_scratch_create(&s), 0);
	T_EQ(nwc_tensor_scratch_create(&srm), 0);
	nwc_tensor_scratch_rowmajor(srm, true);
	T_EQ(nwc_tside_parse(e->side, e->side_len, &ts), 0);
	T_EQ(nwc_tside_bands(ts), e->nbands);
	for (uint32_t b = 0; b < e->nbands; b++) {
		uint32_t rows = nwc_tside_band_rows(ts, b);
		size_t count = (size_t)rows * ts->n;
		uint8_t *buf = t_xmalloc(count * elem);
		uint8_t *rm = t_xmalloc(count * elem);
		float *f = t_xmalloc(count * sizeof(*f));
		const float *want = e->what + (size_t)b * ts->band_rows * ts->n;

		T_EQ(nwc_band_decode(model, ts, b, e->band[b], e->band_len[b],
				     dtype, buf, count * elem, s), 0);
		T_EQ(nwc_to_f32(dtype, buf, count, f), 0);
		T_MEMEQ(f, want, count * sizeof(*f));
		/* the row-major network gives the lanes kernel's bytes */
		T_EQ(nwc_band_decode(model, ts, b, e->band[b], e->band_len[b],
				     dtype, rm, count * elem, srm), 0);
		T_MEMEQ(rm, buf, count * elem);
		t_rowmajor_checks += ts->lanes;
		/* wrong lengths and bands are refused */
		T_EQ(nwc_band_decode(model, ts, b, e->band[b], e->band_len[b],
				     dtype, buf, count * elem - 1, s), -EINVAL);
		free(buf);
		free(rm);
		free(f);
	}
	T_EQ(nwc_tside_band_rows(ts, e->nbands), 0);
	free(ts);
	nwc_tensor_scratch_free(s);
	nwc_tensor_scratch_free(srm);
}

/*
 * Bands in sequence order (images before NWC_TSIDE_LANES) and in the lanes
 * layout: other bytes, the same symbols, the same weights; 24 columns are
 * three whole groups of lanes, 22 two and a group of six, 4 one of four.
 */
static void test_orders(void)
{
	static const uint32_t widths[] = { 4, 22, 24 };
	struct nwc_model *model = small_model(3);
	const uint32_t m = 40;
	float *w = matrix(m, 24);
	uint8_t level[24];

	T_CHECK(model);
	for (uint32_t j = 0; j < 24; j++)
		level[j] = (uint8_t)(j % NWC_NET_Q);
	for (size_t q = 0; q < NWC_ARRAY_SIZE(widths); q++) {
		uint32_t n = widths[q];

		for (int quant = 0; quant < 2; quant++) {
			struct nwc_tenc *e[2];
			struct nwc_tenc_opts o;
			struct nwc_tside *ts;

			for (int k = 0; k < 2; k++) {
				nwc_tenc_opts_init(&o);
				o.quant = quant;
				o.band_rows = 32;
				o.seq_order = k;
				o.dtype = NWC_DTYPE_BF16;
				T_EQ(nwc_tenc_encode(model, 5, w, m, n, level,
						     &o, &e[k]), 0);
				check_decode(model, e[k], NWC_DTYPE_BF16);
				T_EQ(nwc_tside_parse(e[k]->side,
						     e[k]->side_len, &ts), 0);
				T_EQ(ts->lanes, !k);
				free(ts);
			}
			T_MEMEQ(e[0]->what, e[1]->what,
				(size_t)m * n * sizeof(float));
			T_CHECK(e[0]->band_len[0] != e[1]->band_len[0] ||
				memcmp(e[0]->band[0], e[1]->band[0],
				       e[0]->band_len[0]));
			nwc_tenc_free(e[0]);
			nwc_tenc_free(e[1]);
		}
	}
	free(w);
	nwc_model_free(model);
}

/* small_model() with its decoder's blocks off: a linear decoder. */
static struct nwc_model *small_linear_model(uint64_t seed)
{
	struct nwc_model *m = small_model(seed);
	struct nwc_net_layout l;

	if (!m)
		return NULL;
	nwc_net_layout(TH, TR, &l);
	for (unsigned int r = 0; r < TR; r++) {
		memset(m->dec + l.blk[r].gamma, 0, TH * sizeof(float));
		memset(m->dec + l.blk[r].beta, 0, TH * sizeof(float));
	}
	if (nwc_model_finalize(m) || !m->dec_linear) {
		nwc_model_free(m);
		return NULL;
	}
	return m;
}

/*
 * A linear decoder: the lanes layout decodes in one pass from the symbols
 * to the rows (nwctensor.c, linear_band()), the sequence order through the
 * latents, the folded map and the row output as for any decoder; both give
 * the encoder's values to the bit, for whole groups of lanes and a last
 * one of 4, 6 or 8, columns of one level and of mixed levels in a group,
 * a last chunk row of 8, both quantizers and every dtype.
 */
static void test_linear_decoder(void)
{
	static const uint32_t widths[] = { 4, 22, 24, 48 };
	static const enum nwc_dtype dt[] = { NWC_DTYPE_F32, NWC_DTYPE_F16,
					     NWC_DTYPE_BF16 };
	struct nwc_model *model = small_linear_model(3);
	const uint32_t m = 40;
	float *w = matrix(m, 48);
	uint8_t level[48];

	T_CHECK(model);
	for (int mix = 0; mix < 3; mix++) {
		/* mixed levels; all 0; all 2 but one column of level 1 in
		 * the second group */
		for (uint32_t j = 0; j < 48; j++)
			level[j] = mix == 0 ? (uint8_t)(j % NWC_NET_Q) :
				   mix == 1 ? 0 : (j == 20 ? 1 : 2);
		for (size_t q = 0; q < NWC_ARRAY_SIZE(widths); q++) {
			for (int quant = 0; quant < 2; quant++) {
				struct nwc_tenc *e[2];
				struct nwc_tenc_opts o;

				for (int k = 0; k < 2; k++) {
					nwc_tenc_opts_init(&o);
					o.quant = quant;
					o.band_rows = 32;
					o.seq_order = k;
					o.dtype = dt[(q + (size_t)quant) % 3];
					T_EQ(nwc_tenc_encode(model, 5, w, m,
							     widths[q], level,
							     &o, &e[k]), 0);
					check_decode(model, e[k], o.dtype);
				}
				T_MEMEQ(e[0]->what, e[1]->what,
					(size_t)m * widths[q] * sizeof(float));
				nwc_tenc_free(e[0]);
				nwc_tenc_free(e[1]);
			}
		}
	}
	free(w);
	nwc_model_free(model);
}

/* Ragged rows, several bands, every dtype and both quantizers. */
static void test_roundtrip(void)
{
	struct nwc_model *model = small_model(3);
	const uint32_t m = 40, n = 24;	/* 40 = 2 x 16 + 8 */
	float *w = matrix(m, n);
	uint8_t level[24];
	static const enum nwc_dtype dt[] = { NWC_DTYPE_F32, NWC_DTYPE_F16,
					     NWC_DTYPE_BF16 };

	T_CHECK(model);
	for (uint32_t j = 0; j < n; j++)
		level[j] = (uint8_t)(j % NWC_NET_Q);
	for (int quant = 0; quant < 2; quant++) {
		for (size_t d = 0; d < NWC_ARRAY_SIZE(dt); d++) {
			struct nwc_tenc_opts o;
			struct nwc_tenc *e;

			nwc_tenc_opts_init(&o);
			o.quant = quant;
			o.band_rows = 16;
			o.dtype = dt[d];
			T_EQ(nwc_tenc_encode(model, 5, w, m, n, level, &o, &e),
			     0);
			T_EQ(e->nbands, 3);
			T_CHECK(e->coded_bytes > e->side_len);
			check_decode(model, e, dt[d]);
			nwc_tenc_free(e);
		}
	}
	free(w);
	nwc_model_free(model);
}

/* Same input, same bytes; TCQ and rounding give different streams. */
static void test_determinism(void)
{
	struct nwc_model *model = small_model(4);
	const uint32_t m = 64, n = 32;
	float *w = matrix(m, n);
	struct nwc_tenc *a, *b, *c;
	struct nwc_tenc_opts o;
	uint8_t level[32] = { 0 };

	nwc_tenc_opts_init(&o);
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &a), 0);
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &b), 0);
	T_EQ(a->nbands, 1);
	T_EQ(a->band_len[0], b->band_len[0]);
	T_MEMEQ(a->band[0], b->band[0], a->band_len[0]);
	T_EQ(a->side_len, b->side_len);
	T_MEMEQ(a->side, b->side, a->side_len);
	o.quant = NWC_QUANT_ROUND;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &c), 0);
	T_CHECK(c->band_len[0] != a->band_len[0] ||
		memcmp(c->band[0], a->band[0], a->band_len[0]));
	nwc_tenc_free(a);
	nwc_tenc_free(b);
	nwc_tenc_free(c);
	free(w);
	nwc_model_free(model);
}

/* Scales binary16 cannot hold fall back to f32; zero rows stay zero. */
static void test_scales(void)
{
	struct nwc_model *model = small_model(5);
	const uint32_t m = 32, n = 16;
	float *w = matrix(m, n);
	struct nwc_tside *ts;
	struct nwc_tenc_opts o;
	struct nwc_tenc *e;
	uint8_t level[16] = { 1 };

	nwc_tenc_opts_init(&o);
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), 0);
	T_EQ(e->side_len, nwc_tside_size(m, n, true, 1, 0));
	nwc_tenc_free(e);
	for (uint32_t j = 0; j < n; j++) {
		w[j] = 1e6f * grand();		/* std > 65504 */
		w[n + j] = 0;			/* a dead row */
	}
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), 0);
	T_EQ(e->side_len, nwc_tside_size(m, n, false, 1, 0));
	T_EQ(nwc_tside_parse(e->side, e->side_len, &ts), 0);
	T_CHECK(!ts->scale_f16);
	T_CHECK(ts->scale[0] > 65504);
	for (uint32_t j = 0; j < n; j++)
		T_CHECK(e->what[n + j] == 0);
	check_decode(model, e, NWC_DTYPE_F32);
	free(ts);
	nwc_tenc_free(e);
	/* a non-finite weight and bad levels are refused */
	level[3] = NWC_NET_Q;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), -EINVAL);
	level[3] = 0;
	w[7] = NAN;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), -EINVAL);
	free(w);
	nwc_model_free(model);
}

/*
 * Row factors (nwc_tenc_opts.row_mul) change the stored scales and
 * nothing else: the same payload, scales times the factors (to binary16),
 * each decoded row its untuned values times its factor; factors that are
 * not finite and positive are refused.
 */
static void test_row_mul(void)
{
	struct nwc_model *model = small_model(6);
	const uint32_t m = 40, n = 24;
	float *w = matrix(m, n), mul[40];
	struct nwc_tside *ta, *tb;
	struct nwc_tenc *a, *b;
	struct nwc_tenc_opts o;
	uint8_t level[24] = { 0 };

	for (uint32_t r = 0; r < m; r++)
		mul[r] = 1.0f + 0.01f * (float)((int)r % 7 - 3);
	nwc_tenc_opts_init(&o);
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &a), 0);
	o.row_mul = mul;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &b), 0);
	T_EQ(b->nbands, a->nbands);
	for (uint32_t i = 0; i < a->nbands && i < b->nbands; i++) {
		T_EQ(b->band_len[i], a->band_len[i]);
		T_MEMEQ(b->band[i], a->band[i], a->band_len[i]);
	}
	T_EQ(nwc_tside_parse(a->side, a->side_len, &ta), 0);
	T_EQ(nwc_tside_parse(b->side, b->side_len, &tb), 0);
	T_CHECK(tb->scale_f16);
	for (uint32_t r = 0; r < m; r++) {
		double want = (double)ta->scale[r] * mul[r];

		T_CHECK(fabs(tb->scale[r] - want) <= 1e-3 * want);
		for (uint32_t j = 0; j < n; j++) {
			double x = (double)a->what[r * n + j] * tb->scale[r] /
				   ta->scale[r];

			T_CHECK(fabs(b->what[r * n + j] - x) <=
				1e-5 * fabs(x) + 1e-7);
		}
	}
	check_decode(model, b, NWC_DTYPE_F32);
	nwc_tenc_free(b);
	mul[5] = 0;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &b), -EINVAL);
	mul[5] = NAN;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &b), -EINVAL);
	free(ta);
	free(tb);
	nwc_tenc_free(a);
	free(w);
	nwc_model_free(model);
}

/* Every malformed side record is refused, never read past its end. */
static void test_side_corruption(void)
{
	struct nwc_model *model = small_model(6);
	const uint32_t m = 48, n = 8;
	float *w = matrix(m, n);
	struct nwc_tenc_opts o;
	struct nwc_tside *ts;
	struct nwc_tenc *e;
	uint8_t level[8] = { 2, 1 }, *b;

	nwc_tenc_opts_init(&o);
	o.band_rows = 32;
	T_EQ(nwc_tenc_encode(model, 7, w, m, n, level, &o, &e), 0);
	b = t_xmalloc(e->side_len);
	T_EQ(nwc_tside_parse(e->side, e->side_len, &ts), 0);
	T_EQ(ts->model, 7);
	T_EQ(ts->band_rows, 32);
	T_EQ(nwc_tside_bands(ts), 2);
	T_EQ(nwc_tside_band_rows(ts, 1), 16);
	T_EQ(nwc_tside_check_model(ts, model), 0);
	T_EQ(e->side_len, nwc_tside_size(m, n, true, 2, 0));
	T_CHECK(ts->level[0] == 2 && ts->level[1] == 1 && ts->level[7] == 0);
	ts->level[1] = NWC_NET_Q;
	T_EQ(nwc_tside_check_model(ts, model), -NWC_ECORRUPT);
	free(ts);
	for (size_t len = 0; len < e->side_len; len++)
		T_EQ(nwc_tside_parse(e->side, len, &ts), -NWC_ECORRUPT);
#define BAD(off, val, want) do {					\
		memcpy(b, e->side, e->side_len);			\
		b[off] = (val);						\
		T_EQ(nwc_tside_parse(b, e->side_len, &ts), want);	\
	} while (0)
	BAD(0, 'X', -NWC_ECORRUPT);		/* magic */
	BAD(4, 1, -NWC_EFEATURE);		/* version 1: u8 levels */
	BAD(6, 0x9, -NWC_EFEATURE);		/* unknown flag */
	BAD(6, 0x0, -NWC_ECORRUPT);		/* f32 scales: wrong length */
	BAD(8, 0, -NWC_ECORRUPT);		/* m = 0 ... */
	BAD(8, 49, -NWC_ECORRUPT);		/* ... or not matching */
	BAD(12, 0, -NWC_ECORRUPT);		/* n = 0 */
	BAD(16, 24, -NWC_ECORRUPT);		/* band not a multiple of 16 */
	BAD(16, 0, -NWC_ECORRUPT);
	BAD(22, 2, -NWC_EFEATURE);		/* unknown quantizer */
	BAD(23, 1, -NWC_ECORRUPT);		/* bits per level: length */
	BAD(23, 3, -NWC_ECORRUPT);		/* ... not 1, 2, 4, 8 */
	BAD(23, 0, -NWC_ECORRUPT);
	BAD(NWC_TSIDE_HDR + 1, 0x7c, -NWC_ECORRUPT);	/* scale 0 = inf */
#undef BAD
	free(b);
	nwc_tenc_free(e);
	/* 5 one-bit levels: 3 padding bits, which must be 0 */
	level[0] = 1;
	level[1] = 0;
	level[4] = 1;
	T_EQ(nwc_tenc_encode(model, 0, w, m, 5, level, &o, &e), 0);
	T_EQ(e->side_len, nwc_tside_size(m, 5, true, 1, 0));
	T_EQ(e->side[e->side_len - 1], 0x11);
	T_EQ(nwc_tside_parse(e->side, e->side_len, &ts), 0);
	T_CHECK(ts->level[0] == 1 && ts->level[3] == 0 && ts->level[4] == 1);
	free(ts);
	e->side[e->side_len - 1] |= 0x20;
	T_EQ(nwc_tside_parse(e->side, e->side_len, &ts), -NWC_ECORRUPT);
	nwc_tenc_free(e);
	T_EQ(nwc_tside_level_bits((const uint8_t[]){ 0, 0 }, 2), 1);
	T_EQ(nwc_tside_level_bits((const uint8_t[]){ 0, 1 }, 2), 1);
	T_EQ(nwc_tside_level_bits((const uint8_t[]){ 3, 1 }, 2), 2);
	T_EQ(nwc_tside_level_bits((const uint8_t[]){ 0, 4 }, 2), 4);
	T_EQ(nwc_tside_level_bits((const uint8_t[]){ 15 }, 1), 4);
	T_EQ(nwc_tside_level_bits((const uint8_t[]){ 16 }, 1), 8);
	free(w);
	nwc_model_free(model);
}

/* A damaged band gives an error for that band, never a crash. */
/*
 * Outliers in matrix()'s rows 3 (deviation 0.02), 5 and 20 (0.06), as
 * multiples of those deviations; a row of 128 keeps at most 3, the
 * furthest, so row 20 keeps columns 30, 40 and 50.
 */
static const struct { uint32_t row, col; float dev; bool kept; } outlier[] = {
	{ 3, 7, 60, true }, { 5, 0, -80, true }, { 5, 127, 70, true },
	{ 20, 10, 30, false }, { 20, 20, -40, false }, { 20, 30, 50, true },
	{ 20, 40, -60, true }, { 20, 50, 70, true },
};

static void plant_outliers(float *w, uint32_t n)
{
	for (size_t i = 0; i < NWC_ARRAY_SIZE(outlier); i++)
		w[outlier[i].row * n + outlier[i].col] =
			outlier[i].dev * 0.02f * (float)(1 + outlier[i].row % 3);
}

/* @o, which selects no exact weight, codes the side record of the
 * defaults. */
static void same_as_default(const struct nwc_model *model, const float *w,
			    uint32_t m, uint32_t n, const uint8_t *level,
			    const struct nwc_tenc_opts *o)
{
	struct nwc_tenc_opts d;
	struct nwc_tenc *plain, *e;

	nwc_tenc_opts_init(&d);
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &d, &plain), 0);
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, o, &e), 0);
	T_EQ(e->side_len, plain->side_len);
	T_MEMEQ(e->side, plain->side, e->side_len);
	nwc_tenc_free(e);
	nwc_tenc_free(plain);
}

/* *@field (of *@o) below @least, or not a number: refused. */
static void refused_below(const struct nwc_model *model, const float *w,
			  uint32_t m, uint32_t n, const uint8_t *level,
			  struct nwc_tenc_opts *o, float *field, float least)
{
	struct nwc_tenc *e;

	*field = least - 0.5f;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, o, &e), -EINVAL);
	*field = NAN;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, o, &e), -EINVAL);
}

/*
 * Weights far outside their row's spread are stored exactly: the reader
 * gets them bit for bit in every dtype, order and quantizer, with and
 * without LDLQ, and the band without one codes as before.
 */
static void test_exact(void)
{
	static const enum nwc_dtype dt[] = { NWC_DTYPE_F32, NWC_DTYPE_F16,
					     NWC_DTYPE_BF16 };
	struct nwc_model *model = small_model(9);
	const uint32_t m = 40, n = 128;
	float *w = matrix(m, n), *h = t_xmalloc((size_t)n * n * 4);
	struct nwc_tenc *plain, *e;
	struct nwc_tenc_opts o;
	struct nwc_tside *ts;
	uint8_t level[128];

	plant_outliers(w, n);
	for (uint32_t j = 0; j < n; j++)
		level[j] = (uint8_t)(j % 3);
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t b = 0; b < n; b++)
			h[a * n + b] = a == b ? 1.0f + 0.1f * (float)(a % 4) :
				       0.3f / (1.0f + (float)abs((int)a - (int)b));
	for (int cfg = 0; cfg < 12; cfg++) {
		uint32_t k = 0;

		nwc_tenc_opts_init(&o);
		o.band_rows = 32;
		o.quant = cfg % 2;
		o.seq_order = cfg / 2 % 2;
		o.dtype = dt[cfg % 3];
		if (cfg >= 6) {
			o.h = h;
			o.fit_scales = true;
		}
		T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &plain),
		     0);
		o.exact_sd = 16;
		T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), 0);
		T_EQ(e->side_len, nwc_tside_size(m, n, true, 2, 6));
		T_EQ(nwc_tside_parse(e->side, e->side_len, &ts), 0);
		T_EQ(ts->nexact, 6);
		for (size_t i = 0; i < NWC_ARRAY_SIZE(outlier); i++) {
			size_t at = outlier[i].row * n + outlier[i].col;
			float want;
			uint8_t buf[4];

			if (!outlier[i].kept)
				continue;
			T_CHECK(k < ts->nexact &&
				ts->exact[k].row == outlier[i].row &&
				ts->exact[k].col == outlier[i].col &&
				ts->exact[k].value == w[at]);
			k++;
			T_EQ(nwc_from_f32(o.dtype, &w[at], 1, buf), 0);
			T_EQ(nwc_to_f32(o.dtype, buf, 1, &want), 0);
			T_CHECK(e->what[at] == want);
		}
		free(ts);
		check_decode(model, e, o.dtype);
		/* band 1, rows 32..39, has none */
		T_MEMEQ(e->what + 32 * n, plain->what + 32 * n,
			8 * n * sizeof(float));
		nwc_tenc_free(e);
		nwc_tenc_free(plain);
	}
	/* nothing beyond 100 deviations: no list, the same bytes */
	nwc_tenc_opts_init(&o);
	o.exact_sd = 100;
	same_as_default(model, w, m, n, level, &o);
	refused_below(model, w, m, n, level, &o, &o.exact_sd,
		      NWC_TENC_MIN_EXACT_SD);
	free(h);
	free(w);
	nwc_model_free(model);
}

/*
 * Input channels far louder than the rest (H's diagonal 10^5 times the
 * others, as LLMs' massive activations) have every weight stored exactly
 * with exact_loud, first within a row's cap, before --exact-sd's
 * outliers; LDLQ then serves the other channels with a far lower proxy
 * loss.  Without H, or without a loud channel, nothing changes.
 */
static void test_exact_loud(void)
{
	static const uint32_t loud[] = { 5, 77 }, rows[] = { 3, 5, 20 },
			      cols[] = { 7, 0, 50 };
	struct nwc_model *model = small_model(9);
	const uint32_t m = 40, n = 128;
	float *w = matrix(m, n), *h = t_xmalloc((size_t)n * n * 4);
	struct nwc_tenc *plain, *e;
	struct nwc_tenc_opts o;
	struct nwc_tside *ts;
	double l_plain, l_loud;
	uint8_t level[128];

	memset(level, 0, sizeof(level));
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t b = 0; b < n; b++)
			h[a * n + b] = a == b ? 1.0f + 0.1f * (float)(a % 4) :
				       0.3f / (1.0f + (float)abs((int)a - (int)b));
	/* a channel 50 times louder than the median is not loud at 10^4 */
	for (uint32_t b = 0; b < n; b++) {
		h[90 * n + b] *= sqrtf(50);
		h[b * n + 90] *= sqrtf(50);
	}
	nwc_tenc_opts_init(&o);
	o.dtype = NWC_DTYPE_F32;
	o.h = h;
	o.fit_scales = true;
	o.exact_loud = 1e4f;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &plain), 0);
	T_EQ(plain->nexact, 0);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(loud); i++)
		for (uint32_t b = 0; b < n; b++) {
			h[loud[i] * n + b] *= sqrtf(1e5f);
			h[b * n + loud[i]] *= sqrtf(1e5f);
		}
	o.exact_loud = 0;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &plain), 0);
	o.exact_loud = 1e4f;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), 0);
	T_EQ(e->nexact, 2 * m);
	T_EQ(e->side_len, nwc_tside_size(m, n, true, 1, 2 * m));
	for (uint32_t r = 0; r < m; r++)
		for (size_t i = 0; i < NWC_ARRAY_SIZE(loud); i++)
			T_CHECK(e->what[r * n + loud[i]] == w[r * n + loud[i]]);
	check_decode(model, e, o.dtype);
	T_EQ(nwc_ldlq_proxy_loss(w, plain->what, m, n, h, &l_plain), 0);
	T_EQ(nwc_ldlq_proxy_loss(w, e->what, m, n, h, &l_loud), 0);
	printf("# proxy loss, loud channels exact / coded: %.4f\n",
	       l_loud / l_plain);
	T_CHECK(l_loud < 0.1 * l_plain);
	nwc_tenc_free(e);
	nwc_tenc_free(plain);

	/* With --exact-sd's outliers: the loud two first, then the
	 * furthest within 3 a row (rows 3, 5 and 20 keep one each). */
	plant_outliers(w, n);
	o.exact_sd = 16;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), 0);
	T_EQ(nwc_tside_parse(e->side, e->side_len, &ts), 0);
	T_EQ(ts->nexact, 2 * m + 3);
	for (uint32_t i = 0, k = 0; i < ts->nexact; i++) {
		const struct nwc_exact *x = &ts->exact[i];

		if (x->col == loud[0] || x->col == loud[1])
			continue;
		T_CHECK(k < 3);
		T_CHECK(x->row == rows[k] && x->col == cols[k]);
		k++;
	}
	free(ts);
	check_decode(model, e, o.dtype);
	nwc_tenc_free(e);

	/* without H, exact_loud does nothing */
	nwc_tenc_opts_init(&o);
	o.exact_loud = 1e4f;
	same_as_default(model, w, m, n, level, &o);
	refused_below(model, w, m, n, level, &o, &o.exact_loud,
		      NWC_TENC_MIN_EXACT_LOUD);
	free(h);
	free(w);
	nwc_model_free(model);
}

/* Every malformed list of exact weights is refused. */
static void test_exact_corruption(void)
{
	struct nwc_model *model = small_model(9);
	const uint32_t m = 40, n = 128;
	float *w = matrix(m, n);
	struct nwc_tenc_opts o;
	struct nwc_tside *ts;
	struct nwc_tenc *e;
	uint8_t level[128] = { 0 }, *b;
	size_t list;		/* offset of the count */

	plant_outliers(w, n);
	nwc_tenc_opts_init(&o);
	o.exact_sd = 16;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), 0);
	list = nwc_tside_size(m, n, true, 1, 0);
	T_EQ(e->side_len, list + 4 + 6 * NWC_TSIDE_EXACT_BYTES);
	b = t_xmalloc(e->side_len);
	for (size_t len = 0; len < e->side_len; len++)
		T_EQ(nwc_tside_parse(e->side, len, &ts), -NWC_ECORRUPT);
	/* entry i: row at list + 4 + 12 i, column + 4, value + 8 */
#define BAD(off, val, want) do {					\
		memcpy(b, e->side, e->side_len);			\
		nwc_put_le32(b + (off), (val));				\
		T_EQ(nwc_tside_parse(b, e->side_len, &ts), want);	\
	} while (0)
	BAD(list, 0, -NWC_ECORRUPT);		/* K = 0 */
	BAD(list, 5, -NWC_ECORRUPT);		/* K against the length */
	BAD(list, 7, -NWC_ECORRUPT);
	BAD(list, 0xffffffffu, -NWC_ECORRUPT);
	BAD(list + 4, m, -NWC_ECORRUPT);	/* row out of range */
	BAD(list + 8, n, -NWC_ECORRUPT);	/* column out of range */
	BAD(list + 4, 5, -NWC_ECORRUPT);	/* (5, 7) before (5, 0) */
	BAD(list + 16, 3, -NWC_ECORRUPT);	/* (3, 0) after (3, 7) */
	BAD(list + 32, 0, -NWC_ECORRUPT);	/* (5, 0) twice */
	BAD(list + 12, 0x7fc00000u, -NWC_ECORRUPT);	/* NaN */
	BAD(list + 12, 0x7f800000u, -NWC_ECORRUPT);	/* infinity */
#undef BAD
	memcpy(b, e->side, e->side_len);
	b[6] &= (uint8_t)~NWC_TSIDE_EXACT;	/* a list with no flag */
	T_EQ(nwc_tside_parse(b, e->side_len, &ts), -NWC_ECORRUPT);
	free(b);
	/* at most 40 x (128 / 64 + 1) = 120 entries, whatever the length */
	for (uint32_t k = 120; k <= 121; k++) {
		size_t len = list + 4 + k * NWC_TSIDE_EXACT_BYTES;

		b = t_xmalloc(len);
		memcpy(b, e->side, list);
		nwc_put_le32(b + list, k);
		for (uint32_t i = 0; i < k; i++) {
			uint8_t *x = b + list + 4 + i * NWC_TSIDE_EXACT_BYTES;

			nwc_put_le32(x, i / 8);
			nwc_put_le32(x + 4, i % 8);
			nwc_put_lef32(x + 8, 1.0f);
		}
		T_EQ(nwc_tside_parse(b, len, &ts), k == 120 ? 0 : -NWC_ECORRUPT);
		if (k == 120) {
			T_EQ(ts->nexact, 120);
			free(ts);
		}
		free(b);
	}
	nwc_tenc_free(e);
	free(w);
	nwc_model_free(model);
}

static void test_payload_corruption(void)
{
	struct nwc_model *model = small_model(7);
	const uint32_t m = 32, n = 16;
	float *w = matrix(m, n);
	struct nwc_tensor_scratch *s;
	struct nwc_tenc_opts o;
	struct nwc_tside *ts;
	struct nwc_tenc *e;
	uint8_t level[16] = { 0 }, out[32 * 16 * 2];
	unsigned int bad = 0, tries = 0;

	nwc_tenc_opts_init(&o);
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &e), 0);
	T_EQ(nwc_tside_parse(e->side, e->side_len, &ts), 0);
	T_EQ(nwc_tensor_scratch_create(&s), 0);
	for (size_t len = 0; len < e->band_len[0]; len++) {
		tries++;
		bad += nwc_band_decode(model, ts, 0, e->band[0], len,
				       NWC_DTYPE_BF16, out, sizeof(out), s) ==
		       -NWC_ECORRUPT;
	}
	T_EQ(bad, tries);	/* every truncation is caught */
	for (size_t i = 0; i < e->band_len[0]; i++) {
		int ret;

		e->band[0][i] ^= 0x5a;
		ret = nwc_band_decode(model, ts, 0, e->band[0], e->band_len[0],
				      NWC_DTYPE_BF16, out, sizeof(out), s);
		T_CHECK(ret == 0 || ret == -NWC_ECORRUPT);
		e->band[0][i] ^= 0x5a;
	}
	nwc_tensor_scratch_free(s);
	free(ts);
	nwc_tenc_free(e);
	free(w);
	nwc_model_free(model);
}

/* Refitted row scales never raise the output proxy loss. */
static void test_ldlq(void)
{
	struct nwc_model *model = small_model(8);
	const uint32_t m = 32, n = 48, t = 256;
	float *w = matrix(m, n), *x = t_xmalloc((size_t)t * n * 4);
	float *h = t_xmalloc((size_t)n * n * 4);
	struct nwc_tenc *plain, *fb, *fit;
	struct nwc_tenc_opts o;
	uint8_t level[48] = { 3 };
	double lp, lf, lfit;

	/* correlated inputs with one loud column */
	for (uint32_t i = 0; i < t; i++) {
		float common = grand();

		for (uint32_t j = 0; j < n; j++)
			x[(size_t)i * n + j] = (j == 5 ? 8.0f : 1.0f) *
					       (0.8f * common + 0.6f * grand());
	}
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t b = 0; b < n; b++) {
			double acc = 0;

			for (uint32_t i = 0; i < t; i++)
				acc += (double)x[(size_t)i * n + a] *
				       x[(size_t)i * n + b];
			h[(size_t)a * n + b] = (float)(acc / t);
		}
	nwc_tenc_opts_init(&o);
	o.scale_f16 = false;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &plain), 0);
	o.h = h;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &fb), 0);
	o.fit_scales = true;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &fit), 0);
	T_EQ(nwc_ldlq_proxy_loss(w, plain->what, m, n, h, &lp), 0);
	T_EQ(nwc_ldlq_proxy_loss(w, fb->what, m, n, h, &lf), 0);
	T_EQ(nwc_ldlq_proxy_loss(w, fit->what, m, n, h, &lfit), 0);
	T_CHECK(lfit <= lf * (1 + 1e-6));
	check_decode(model, fit, NWC_DTYPE_F32);
	nwc_tenc_free(fit);
	/* fit_scales without H is an error */
	o.h = NULL;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &fit), -EINVAL);
	T_CHECK(!fit);
	nwc_tenc_free(plain);
	nwc_tenc_free(fb);
	free(x);
	free(h);
	free(w);
	nwc_model_free(model);
	(void)lp;
}

static double sqnr(const float *w, const float *what, size_t n)
{
	double e = 0, d = 0;

	for (size_t i = 0; i < n; i++) {
		e += (double)w[i] * w[i];
		d += ((double)w[i] - what[i]) * ((double)w[i] - what[i]);
	}
	return 10 * log10(e / d);
}

/*
 * With a shipped model (trained on MiniLM), Gaussian weights: the round
 * trip error is bounded, and trellis quantization buys at least 0.6 dB
 * over rounding at no more bits (measured: 20.46 -> 21.45 dB at 3.85
 * bits per weight).
 */
static void test_trained_model(void)
{
	const char *src = getenv("top_srcdir");
	const uint32_t m = 256, n = 128;
	struct nwc_tenc *r, *t;
	struct nwc_model *model;
	struct nwc_tenc_opts o;
	uint8_t level[128] = { 0 };
	char path[4096];
	double sr, st;
	float *w;

	snprintf(path, sizeof(path), "%s/codec/models/nwc-h32r1-l100.nwcm",
		 src ? src : ".");
	t_quiet(true);
	if (nwc_model_load(path, &model)) {
		t_quiet(false);
		printf("  (no %s: skipped)\n", path);
		return;
	}
	t_quiet(false);
	w = matrix(m, n);
	nwc_tenc_opts_init(&o);
	o.quant = NWC_QUANT_ROUND;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &r), 0);
	o.quant = NWC_QUANT_TCQ;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &t), 0);
	sr = sqnr(w, r->what, (size_t)m * n);
	st = sqnr(w, t->what, (size_t)m * n);
	printf("  round %.2f dB %.3f bpw, TCQ %.2f dB %.3f bpw\n", sr,
	       8.0 * r->coded_bytes / (m * n), st,
	       8.0 * t->coded_bytes / (m * n));
	T_CHECK(sr > 12);
	T_CHECK(st > sr + 0.6);
	T_CHECK(t->coded_bytes <= r->coded_bytes * 1.005);
	check_decode(model, t, NWC_DTYPE_F32);
	nwc_tenc_free(r);
	nwc_tenc_free(t);
	free(w);
	nwc_model_free(model);
}

/*
 * With a shipped model: an outlier no longer sets its row's scale, so the
 * rest of its row codes far better at about the same bits, with LDLQ too
 * (measured: error 0.258 -> 0.041, H-weighted loss 0.261 -> 0.040).
 */
static void test_exact_trained(void)
{
	const char *src = getenv("top_srcdir");
	const uint32_t m = 64, n = 256;
	static const uint32_t rows[] = { 3, 17, 40, 41 };
	struct nwc_tenc *p, *x, *ph, *xh;
	struct nwc_model *model;
	struct nwc_tenc_opts o;
	uint8_t level[256] = { 0 };
	double ep = 0, ex = 0, lp, lx;
	float *w, *h = t_xmalloc((size_t)n * n * 4);
	char path[4096];

	snprintf(path, sizeof(path), "%s/codec/models/nwc-h32r1-l100.nwcm",
		 src ? src : ".");
	t_quiet(true);
	if (nwc_model_load(path, &model)) {
		t_quiet(false);
		printf("  (no %s: skipped)\n", path);
		free(h);
		return;
	}
	t_quiet(false);
	w = matrix(m, n);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(rows); i++)
		w[rows[i] * n + 11 * i + 5] = 40 * 0.02f *
					      (float)(1 + rows[i] % 3);
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t b = 0; b < n; b++)
			h[a * n + b] = a == b ? 1.0f : 0.2f / (1.0f +
				       (float)abs((int)a - (int)b));
	nwc_tenc_opts_init(&o);
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &p), 0);
	o.exact_sd = 16;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &x), 0);
	o.h = h;
	o.fit_scales = true;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &xh), 0);
	o.exact_sd = 0;
	T_EQ(nwc_tenc_encode(model, 0, w, m, n, level, &o, &ph), 0);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(rows); i++) {
		for (uint32_t j = 0; j < n; j++) {
			size_t at = rows[i] * n + j;
			double dp = (double)w[at] - p->what[at];
			double dx = (double)w[at] - x->what[at];

			if (j == 11 * i + 5) {
				T_CHECK(dx == 0);
				continue;
			}
			ep += dp * dp;
			ex += dx * dx;
		}
	}
	/* the outlier rows' share of the H-weighted loss */
	lp = lx = 0;
	for (size_t i = 0; i < NWC_ARRAY_SIZE(rows); i++) {
		double a, b;

		T_EQ(nwc_ldlq_proxy_loss(w + rows[i] * n,
					 ph->what + rows[i] * n, 1, n, h, &a),
		     0);
		T_EQ(nwc_ldlq_proxy_loss(w + rows[i] * n,
					 xh->what + rows[i] * n, 1, n, h, &b),
		     0);
		lp += a;
		lx += b;
	}
	printf("  outlier rows: error of the other weights %.3g -> %.3g, "
	       "LDLQ loss %.3g -> %.3g; %zu -> %zu bytes\n", ep, ex, lp, lx,
	       p->coded_bytes, x->coded_bytes);
	T_CHECK(ex * 4 < ep);
	T_CHECK(lx * 4 < lp);
	T_CHECK(x->coded_bytes < p->coded_bytes * 1.02);
	check_decode(model, xh, NWC_DTYPE_F32);
	nwc_tenc_free(p);
	nwc_tenc_free(x);
	nwc_tenc_free(ph);
	nwc_tenc_free(xh);
	free(w);
	free(h);
	nwc_model_free(model);
}

static void test_band_rows_for(void)
{
	/* 4096 BF16 columns in 256 KiB: 32 rows */
	T_EQ(nwc_tside_band_rows_for(4096, 4096, 2, 256 << 10), 32);
	/* never less than one chunk, never more than the matrix */
	T_EQ(nwc_tside_band_rows_for(4096, 1 << 20, 4, 256 << 10), 16);
	T_EQ(nwc_tside_band_rows_for(172, 64, 4, 256 << 10), 176);
}

int main(void)
{
	T_RUN(test_roundtrip);
	T_RUN(test_orders);
	T_RUN(test_linear_decoder);
	T_RUN(test_determinism);
	T_RUN(test_scales);
	T_RUN(test_row_mul);
	T_RUN(test_side_corruption);
	T_RUN(test_exact);
	T_RUN(test_exact_loud);
	T_RUN(test_exact_corruption);
	T_RUN(test_payload_corruption);
	T_RUN(test_ldlq);
	T_RUN(test_band_rows_for);
	T_RUN(test_trained_model);
	T_RUN(test_exact_trained);
	printf("check_decode: %u bands of the lanes layout also decoded "
	       "row-major\n", t_rowmajor_checks);
	T_EXIT();
}
