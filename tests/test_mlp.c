/* SPDX-License-Identifier: MIT */
/* test_mlp.c - sgemm seam and NWC network: golden forward, gradients, speed. */
#include "codec/common/base.h"

#include <math.h>
#include <pthread.h>
#include <time.h>

#include "codec/common/convert.h"
#include "codec/common/dtype.h"
#include "codec/nwc/gemm.h"
#include "codec/nwc/linear.h"
#include "codec/nwc/mlp.h"
#include "tests/t.h"
#include "tests/golden_mlp.h"


/* Uniform in [-1, 1). */
static float frand(uint64_t *s)
{
	return (float)(t_rand(s) >> 40) * 0x1p-23f - 1.0f;
}

static void fill(float *p, size_t n, float scale, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		p[i] = scale * frand(s);
}

/* One nwc_sgemm() against the reference; returns the bad entries. */
static int sgemm_case(int m, int n, int k, bool ta, bool tb, float alpha,
		      float beta, uint64_t *seed)
{
	/* Padded leading dimensions catch stride mix-ups. */
	int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
	size_t na = (size_t)(ta ? k : m) * lda;
	size_t nb = (size_t)(tb ? n : k) * ldb, nc = (size_t)m * ldc;
	float *a = malloc(na * sizeof(float)), *b = malloc(nb * sizeof(float));
	float *c = malloc(nc * sizeof(float));
	float *cref = malloc(nc * sizeof(float));
	float *bound = malloc(nc * sizeof(float));
	int bad = 0;

	T_CHECK(a && b && c && cref && bound);
	fill(a, na, 1, seed);
	fill(b, nb, 1, seed);
	fill(c, nc, 1, seed);
	/* beta 0 must not read C: poison it. */
	if (beta == 0)
		for (size_t i = 0; i < nc; i++)
			c[i] = NAN;
	memcpy(cref, c, nc * sizeof(float));
	nwc_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	nwc_sgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, cref, ldc);

	/* Error bound from the same product of absolute values. */
	for (size_t i = 0; i < na; i++)
		a[i] = fabsf(a[i]);
	for (size_t i = 0; i < nb; i++)
		b[i] = fabsf(b[i]);
	for (size_t i = 0; i < nc; i++)
		bound[i] = beta == 0 ? 0 : fabsf(cref[i]);
	nwc_sgemm_ref(ta, tb, m, n, k, fabsf(alpha), a, lda, b, ldb,
		      beta == 0 ? 0 : 1, bound, ldc);

	for (int i = 0; i < m; i++) {
		for (int j = 0; j < ldc; j++) {
			size_t x = (size_t)i * ldc + j;
			float tol = 1e-6f * (float)(k + 2) * bound[x];

			if (j >= n) {
				/* Padding stays untouched (NaN included). */
				bad += memcmp(&c[x], &cref[x], sizeof(float)) != 0;
			} else if (!(fabsf(c[x] - cref[x]) <= tol)) {
				if (bad++ < 3)
					fprintf(stderr, "sgemm m%d n%d k%d ta%d tb%d alpha %g beta %g [%d,%d]: %g, reference %g\n",
						m, n, k, ta, tb, alpha, beta,
						i, j, c[x], cref[x]);
			}
		}
	}
	free(a);
	free(b);
	free(c);
	free(cref);
	free(bound);
	return bad;
}

/*
 * nwc_ssyrk_t(): the upper triangle of X^T X against the reference
 * product, the lower triangle and the padding of C untouched, for square
 * and tall X and a row stride wider than n.
 */
static void test_ssyrk(void)
{
	static const int dims[][3] = { { 1, 1, 1 }, { 7, 3, 9 }, { 33, 70, 40 },
				       { 64, 5, 64 } };	/* n, k, ldx */
	uint64_t seed = 5;

	for (size_t d = 0; d < NWC_ARRAY_SIZE(dims); d++) {
		int n = dims[d][0], k = dims[d][1], ldx = dims[d][2];
		int ldc = n + 3;
		float *x = t_xmalloc((size_t)k * ldx * sizeof(float));
		float *c = t_xmalloc((size_t)n * ldc * sizeof(float));
		float *ref = t_xmalloc((size_t)n * n * sizeof(float));
		int bad = 0;

		for (size_t i = 0; i < (size_t)k * ldx; i++)
			x[i] = (float)((double)(t_rand(&seed) >> 11) /
				       9007199254740992.0 * 2 - 1);
		for (size_t i = 0; i < (size_t)n * ldc; i++)
			c[i] = NAN;
		nwc_ssyrk_t(n, k, x, ldx, c, ldc);
		nwc_sgemm_ref(true, false, n, n, k, 1.0f, x, ldx, x, ldx, 0.0f,
			      ref, n);
		for (int i = 0; i < n; i++) {
			for (int j = 0; j < ldc; j++) {
				float got = c[(size_t)i * ldc + j];

				if (j < i || j >= n)
					bad += !isnan(got);
				else
					bad += !(fabsf(got - ref[i * n + j]) <=
						 1e-5f * (float)(k + 1));
			}
		}
		if (bad)
			fprintf(stderr, "ssyrk n%d k%d ldx%d: %d wrong\n", n, k,
				ldx, bad);
		t_failed += bad != 0;
		free(x);
		free(c);
		free(ref);
	}
}

static void test_sgemm(void)
{
	static const int dims[][3] = {
		{ 1, 1, 1 }, { 3, 5, 7 }, { 17, 13, 31 }, { 64, 33, 129 },
		{ 5, 16, 200 }, { 130, 7, 16 },
	};
	static const float ab[][2] = { { 1, 0 }, { -0.5f, 1 }, { 2, 0.25f } };
	uint64_t seed = 1;
	int bad = 0;

	for (size_t d = 0; d < NWC_ARRAY_SIZE(dims); d++) {
		for (int tr = 0; tr < 4; tr++) {
			for (size_t v = 0; v < NWC_ARRAY_SIZE(ab); v++)
				bad += sgemm_case(dims[d][0], dims[d][1],
						  dims[d][2], tr & 1, tr & 2,
						  ab[v][0], ab[v][1], &seed);
		}
	}
	T_EQ(bad, 0);
	/* m or n of 0 is a no-op. */
	nwc_sgemm(false, false, 0, 3, 3, 1, NULL, 3, NULL, 3, 0, NULL, 3);
}

/*
 * nwc_linear(), and each vector kernel this CPU runs (AVX2, AVX-512):
 * where it takes one, the very bits of the
 * scalar statement of its order, nwc_linear_ref(), for every shape the
 * networks have and odd ones (column groups of 64 down to single columns,
 * row blocks and their leftovers), whatever the batch a row sits in;
 * elsewhere (OpenBLAS) within rounding of it.
 */
static void test_linear(void)
{
	static const size_t shapes[][2] = {
		{ 64, 16 }, { 32, 32 }, { 16, 32 }, { 128, 16 }, { 64, 64 },
		{ 8, 1 }, { 24, 5 }, { 8 + 4 + 1, 3 }, { 120, 7 }, { 3, 9 },
		{ 200, 50 }, { 64 + 32 + 16 + 8 + 3, 5 }, { 48, 20 },
		{ 16 + 8 + 1, 4 },
	};
	static const size_t batches[] = { 1, 2, 3, 7, 8, 9, 12, 16, 17, 33 };
	uint64_t seed = 5;
	int vector = 0, kernels[2] = { 0, 0 };

	for (size_t s = 0; s < NWC_ARRAY_SIZE(shapes); s++) {
		size_t n = shapes[s][0], k = shapes[s][1], ldx = k + 3;
		size_t ldc = n + 5, most = 33;
		float *x = t_xmalloc(most * ldx * sizeof(float));
		float *w = t_xmalloc(n * k * sizeof(float));
		float *b = t_xmalloc(n * sizeof(float));
		float *c = t_xmalloc(most * ldc * sizeof(float));
		float *r = t_xmalloc(most * ldc * sizeof(float));

		fill(x, most * ldx, 1.0f, &seed);
		fill(w, n * k, 0.3f, &seed);
		fill(b, n, 0.1f, &seed);
		vector += nwc_linear_vector(n, k);
		for (size_t q = 0; q < NWC_ARRAY_SIZE(batches); q++) {
			size_t rows = batches[q];

			nwc_linear_ref(x, ldx, w, b, rows, n, k, r, ldc);
			for (int kern = NWC_LINEAR_AVX2;
			     kern <= NWC_LINEAR_AVX512; kern++) {
				if (!nwc_linear_has(kern, n, k))
					continue;
				nwc_linear_with(kern, x, ldx, w, b, rows, n, k,
						c, ldc);
				for (size_t i = 0; i < rows; i++)
					T_MEMEQ(c + i * ldc, r + i * ldc,
						n * sizeof(float));
				kernels[kern]++;
			}
			nwc_linear(x, ldx, w, b, rows, n, k, c, ldc);
			for (size_t i = 0; i < rows; i++) {
				if (nwc_linear_vector(n, k)) {
					T_MEMEQ(c + i * ldc, r + i * ldc,
						n * sizeof(float));
					continue;
				}
				for (size_t j = 0; j < n; j++)
					T_CHECK(fabsf(c[i * ldc + j] -
						      r[i * ldc + j]) <=
						1e-5f * (1 + (float)k));
			}
		}
		free(x);
		free(w);
		free(b);
		free(c);
		free(r);
	}
	printf("  %d of %zu shapes on a vector kernel; shapes x batches on AVX2 %d, AVX-512 %d\n",
	       vector, NWC_ARRAY_SIZE(shapes), kernels[NWC_LINEAR_AVX2],
	       kernels[NWC_LINEAR_AVX512]);
}

static void test_layout(void)
{
	struct nwc_net_layout l;
	float p[8 * NWC_CHUNK + 8 + 2 * (64 + 24) + NWC_CHUNK * 8 + NWC_CHUNK];
	float bound = 1.0f / sqrtf(8), before;

	/* The paper's codec: H 512, R 4. */
	T_EQ(nwc_net_nparams(512, 4), 1071632);
	T_EQ(nwc_net_macs(512, 4), 1064960);
	T_EQ(nwc_net_macs(64, 1), 6144);
	T_EQ(nwc_net_nparams(8, 2), NWC_ARRAY_SIZE(p));
	T_EQ(nwc_net_nparams(0, 1), 0);
	T_EQ(nwc_net_check(8, 2, 4), 0);
	T_EQ(nwc_net_check(0, 2, 4), -EINVAL);
	T_EQ(nwc_net_check(NWC_NET_MAX_H + 1, 2, 4), -EINVAL);
	T_EQ(nwc_net_check(8, NWC_NET_MAX_R + 1, 4), -EINVAL);
	T_EQ(nwc_net_check(8, 2, 0), -EINVAL);
	T_EQ(nwc_net_check(8, 0, NWC_NET_MAX_Q), 0);
	T_EQ(nwc_net_layout(8, NWC_NET_MAX_R + 1, &l), -EINVAL);

	T_EQ(nwc_net_layout(8, 2, &l), 0);
	T_EQ(l.w_in, 0);
	T_EQ(l.b_in, 128);
	T_EQ(l.blk[0].w, 136);
	T_EQ(l.blk[0].b, 200);
	T_EQ(l.blk[0].gamma, 208);
	T_EQ(l.blk[0].beta, 216);
	T_EQ(l.blk[1].w, 224);
	T_EQ(l.w_out, 312);
	T_EQ(l.b_out, 440);
	T_EQ(l.total, 456);

	/* Init: the generator is pinned, so trained-from-seed runs repeat. */
	T_EQ(nwc_net_init(p, 8, 2, 1), 0);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(golden_init_seed1); i++)
		T_CHECK(p[i] == golden_init_seed1[i]);
	for (size_t i = 0; i < 8; i++) {
		T_CHECK(p[l.blk[1].gamma + i] == 1.0f);
		T_CHECK(p[l.blk[1].beta + i] == 0.0f);
	}
	for (size_t i = 0; i < 64; i++)
		T_CHECK(fabsf(p[l.blk[0].w + i]) <= bound);
	for (size_t i = 0; i < NWC_CHUNK * 8; i++)
		T_CHECK(fabsf(p[l.w_in + i]) <= 0.25f);
	before = p[l.w_out];
	T_EQ(nwc_net_init(p, 8, 2, 2), 0);
	T_CHECK(p[l.w_out] != before);
	T_EQ(nwc_net_init(p, 0, 2, 2), -EINVAL);
	T_EQ(nwc_emb_init(p, 4, 8), 0);
	for (size_t i = 0; i < 32; i++)
		T_CHECK(p[i] == 1.0f);
}

/* The formulas of tests/mlp_ref.py, rounded to float like numpy does. */
static void formula(float *p, size_t n, double scale, double freq,
		    double phase, double offset, bool cosine)
{
	for (size_t i = 0; i < n; i++) {
		double x = freq * (double)i + phase;

		p[i] = (float)(offset + scale * (cosine ? cos(x) : sin(x)));
	}
}

/* Largest error of @out against @ref, relative to |ref| + its rms. */
static double golden_error(const float *out, const double *ref, size_t n)
{
	double rms = 0, worst = 0;

	for (size_t i = 0; i < n; i++)
		rms += ref[i] * ref[i];
	rms = sqrt(rms / (double)n);
	for (size_t i = 0; i < n; i++)
		worst = NWC_MAX(worst, fabs(out[i] - ref[i]) /
				       (fabs(ref[i]) + rms));
	return worst;
}

/*
 * The forward pass against float64 references, layer by layer and
 * folded (inputs shifted down by a vector that the fold shifts back up).
 */
static void check_golden(unsigned int h, unsigned int r, double scale,
			 const float *in, const uint8_t *q, size_t batch,
			 const double *ref)
{
	size_t np = nwc_net_nparams(h, r);
	float *p = malloc(np * sizeof(float));
	float *emb = malloc(NWC_NET_Q * h * sizeof(float));
	float *out = malloc(batch * NWC_CHUNK * sizeof(float));
	float *fold = malloc(nwc_net_folded_size(h) * sizeof(float));
	float *sin_ = malloc(batch * NWC_CHUNK * sizeof(float));
	float shift[NWC_CHUNK];
	struct nwc_net net = { .h = h, .r = r, .nq = NWC_NET_Q, .params = p };
	struct nwc_net_scratch *s;
	double worst, worst_fold;

	T_CHECK(p && emb && out && fold && sin_);
	formula(p, np, scale, 0.37, 0.5, 0, false);
	formula(emb, NWC_NET_Q * h, 0.25, 0.53, 0, 1, true);
	T_EQ(nwc_net_scratch_create(&s), 0);
	T_EQ(nwc_net_forward(&net, emb, q, in, batch, out, s), 0);
	worst = golden_error(out, ref, batch * NWC_CHUNK);
	/* a shift of binary fractions, so in - shift is exact */
	for (size_t k = 0; k < NWC_CHUNK; k++)
		shift[k] = (float)((int)k - 7) / 64.0f;
	for (size_t i = 0; i < batch * NWC_CHUNK; i++)
		sin_[i] = in[i] - shift[i % NWC_CHUNK];
	T_EQ(nwc_net_fold(&net, shift, fold), 0);
	T_EQ(nwc_net_forward_folded(&net, fold, emb, q, sin_, batch, out, s),
	     0);
	worst_fold = golden_error(out, ref, batch * NWC_CHUNK);
	/* float32 against float64: 1e-5 of the output scale. */
	if (!(worst < 1e-5) || !(worst_fold < 1e-5)) {
		fprintf(stderr, "golden H=%u R=%u: relative error %.3g, "
			"folded %.3g > 1e-5; if the network changed on "
			"purpose, regenerate with "
			"python3 tests/mlp_ref.py > tests/golden_mlp.h\n",
			h, r, worst, worst_fold);
		t_failed++;
	}
	if (getenv("NWC_VERBOSE"))
		printf("golden H=%u R=%u: worst relative error %.3g, "
		       "folded %.3g\n", h, r, worst, worst_fold);
	nwc_net_scratch_free(s);
	free(p);
	free(emb);
	free(out);
	free(fold);
	free(sin_);
}

/*
 * A net with gamma = beta = 0 in every block against its per-level linear
 * maps: the same outputs to float rounding, in place as out of place, a
 * batch as row by row, and no fold for a net with one live feature.
 */
static void check_linear(unsigned int h, unsigned int r)
{
	enum { LB = 37 };
	size_t np = nwc_net_nparams(h, r), no = LB * NWC_CHUNK;
	float *p = malloc(np * sizeof(float));
	float *emb = malloc(NWC_NET_Q * h * sizeof(float));
	float *lin = malloc(nwc_net_linear_size(NWC_NET_Q) * sizeof(float));
	float *in = malloc(no * sizeof(float)), *sin_ = malloc(no * sizeof(float));
	float *ref = malloc(no * sizeof(float)), *out = malloc(no * sizeof(float));
	float *one = malloc(no * sizeof(float)), shift[NWC_CHUNK];
	struct nwc_net net = { .h = h, .r = r, .nq = NWC_NET_Q, .params = p };
	struct nwc_net_layout l;
	struct nwc_net_scratch *s;
	uint8_t q[LB];
	uint64_t seed = 23;
	double rms = 0, worst = 0;

	T_CHECK(p && emb && lin && in && sin_ && ref && out && one);
	nwc_net_init(p, h, r, 9);
	nwc_net_layout(h, r, &l);
	for (unsigned int b = 0; b < r; b++) {
		memset(p + l.blk[b].gamma, 0, h * sizeof(float));
		memset(p + l.blk[b].beta, 0, h * sizeof(float));
	}
	fill(emb, NWC_NET_Q * h, 1, &seed);
	fill(in, no, 2, &seed);
	for (size_t i = 0; i < LB; i++)
		q[i] = (uint8_t)(t_rand(&seed) % NWC_NET_Q);
	T_CHECK(nwc_net_is_linear(&net));
	T_EQ(nwc_net_scratch_create(&s), 0);
	T_EQ(nwc_net_forward(&net, emb, q, in, LB, ref, s), 0);
	for (size_t k = 0; k < NWC_CHUNK; k++)
		shift[k] = (float)((int)k - 7) / 64.0f;
	for (size_t i = 0; i < no; i++)
		sin_[i] = in[i] - shift[i % NWC_CHUNK];
	T_EQ(nwc_net_fold_linear(&net, emb, shift, lin), 0);
	T_EQ(nwc_net_forward_linear(&net, lin, q, sin_, LB, out), 0);
	for (size_t i = 0; i < no; i++)
		rms += (double)ref[i] * ref[i];
	rms = sqrt(rms / (double)no);
	for (size_t i = 0; i < no; i++)
		worst = NWC_MAX(worst, fabs((double)out[i] - ref[i]) / rms);
	if (!(worst < 1e-5)) {
		fprintf(stderr, "linear H=%u R=%u: error %.3g > 1e-5\n", h, r,
			worst);
		t_failed++;
	}
	for (size_t i = 0; i < LB; i++)
		T_EQ(nwc_net_forward_linear(&net, lin, q + i,
					    sin_ + i * NWC_CHUNK, 1,
					    one + i * NWC_CHUNK), 0);
	T_MEMEQ(one, out, no * sizeof(float));
	T_EQ(nwc_net_forward_linear(&net, lin, q, sin_, LB, sin_), 0);
	T_MEMEQ(sin_, out, no * sizeof(float));
	q[3] = NWC_NET_Q;
	T_EQ(nwc_net_forward_linear(&net, lin, q, sin_, LB, out), -EINVAL);
	p[l.blk[r - 1].beta + h / 2] = 1e-30f;
	T_CHECK(!nwc_net_is_linear(&net));
	T_EQ(nwc_net_fold_linear(&net, emb, shift, lin), -EINVAL);
	net.r = 0;
	T_CHECK(!nwc_net_is_linear(&net));
	nwc_net_scratch_free(s);
	free(p);
	free(emb);
	free(lin);
	free(in);
	free(sin_);
	free(ref);
	free(out);
	free(one);
}

static void test_linear_fold(void)
{
	check_linear(32, 1);
	check_linear(13, 2);
}

/*
 * nwc_net_forward_lanes() against nwc_net_forward_folded() on the same
 * chunks, gathered from the lanes layout, the scale and nwc_from_f32():
 * byte for byte in @dtype, for @lanes columns of @rows rows (the last
 * chunk short when @rows is not a multiple of 16), values written among
 * others' @ldo apart, which stay as they were.
 */
static void check_lanes(unsigned int h, unsigned int r, unsigned int lanes,
			size_t rows, size_t ldo, unsigned int dtype)
{
	size_t nk = (rows + NWC_CHUNK - 1) / NWC_CHUNK, nc = nk * lanes;
	size_t nlat = nc * NWC_CHUNK, np = nwc_net_nparams(h, r);
	size_t elem = nwc_dtype_size(dtype), nout = rows * ldo * elem;
	float *p = malloc(np * sizeof(float));
	float *emb = malloc(NWC_NET_Q * h * sizeof(float));
	float *fold = malloc(nwc_net_folded_size(h) * sizeof(float));
	float *y = malloc(nlat * sizeof(float)), *rm = malloc(nlat * sizeof(float));
	float *ref = malloc(nlat * sizeof(float)), *sc = malloc(rows * sizeof(float));
	uint8_t *out = malloc(nout), *want = malloc(nout);
	uint8_t q[NWC_NET_LANES], *qr = malloc(nc);
	struct nwc_net net = { .h = h, .r = r, .nq = NWC_NET_Q, .params = p };
	struct nwc_net_layout l;
	struct nwc_net_scratch *s;
	uint64_t seed = 77 + h + lanes;
	size_t bad = 0;

	T_CHECK(p && emb && fold && y && rm && ref && out && want && sc && qr);
	nwc_net_init(p, h, r, 5);
	nwc_net_layout(h, r, &l);
	/* gamma and beta away from their init, so that ReLU cuts */
	for (unsigned int b = 0; b < r; b++) {
		fill(p + l.blk[b].gamma, h, 1.5f, &seed);
		fill(p + l.blk[b].beta, h, 0.5f, &seed);
	}
	fill(emb, NWC_NET_Q * h, 1, &seed);
	fill(y, nlat, 4, &seed);
	fill(sc, rows, 3, &seed);
	/*
	 * NaN (its payload in the bits that rounding would carry into the
	 * exponent), infinity and overflow reach the conversion through the
	 * scale.
	 */
	memcpy(&sc[1], &(uint32_t){ 0x7fc0ffffu }, sizeof(float));
	sc[2] = -INFINITY;
	sc[3] = 3e38f;
	for (unsigned int i = 0; i < lanes; i++)
		q[i] = (uint8_t)(t_rand(&seed) % NWC_NET_Q);
	/* a column of zeros (variance 0) and one of a constant */
	for (size_t t = 0; t < nk * NWC_CHUNK; t++) {
		y[t * lanes] = 0;
		if (lanes > 2)
			y[t * lanes + 2] = 1.25f;
	}
	/* chunk (column l, step k) as row l nk + k of a row-major batch */
	for (unsigned int i = 0; i < lanes; i++)
		for (size_t k = 0; k < nk; k++) {
			qr[i * nk + k] = q[i];
			for (size_t c = 0; c < NWC_CHUNK; c++)
				rm[(i * nk + k) * NWC_CHUNK + c] =
					y[(k * NWC_CHUNK + c) * lanes + i];
		}
	T_EQ(nwc_net_fold(&net, NULL, fold), 0);
	T_EQ(nwc_net_scratch_create(&s), 0);
	T_EQ(nwc_net_forward_folded(&net, fold, emb, qr, rm, nc, ref, s), 0);
	memset(out, 0xa5, nout);
	memset(want, 0xa5, nout);
	for (size_t t = 0; t < rows; t++)
		for (size_t i = 0; i < lanes; i++) {
			size_t k = t / NWC_CHUNK, o = t % NWC_CHUNK;
			float v = sc[t] * ref[(i * nk + k) * NWC_CHUNK + o];

			T_EQ(nwc_from_f32(dtype, &v, 1,
					  want + (t * ldo + i) * elem), 0);
		}
	T_EQ(nwc_net_forward_lanes(&net, fold, emb, q, lanes, y, rows, sc,
				   dtype, out, ldo), 0);
	for (size_t i = 0; i < rows * ldo; i++)
		bad += memcmp(out + i * elem, want + i * elem, elem) != 0;
	if (bad) {
		fprintf(stderr, "lanes H=%u R=%u lanes=%u rows=%zu %s: %zu "
			"values differ from the row-major pass\n", h, r, lanes,
			rows, nwc_dtype_name(dtype), bad);
		t_failed++;
	}
	T_EQ(nwc_net_forward_lanes(&net, fold, emb, q, lanes, y, rows, sc,
				   NWC_DTYPE_I32, out, ldo), -EINVAL);
	q[lanes - 1] = NWC_NET_Q;
	T_EQ(nwc_net_forward_lanes(&net, fold, emb, q, lanes, y, rows, sc,
				   dtype, out, ldo), -EINVAL);
	T_EQ(nwc_net_forward_lanes(&net, fold, emb, q, 0, y, rows, sc, dtype,
				   out, ldo), -EINVAL);
	nwc_net_scratch_free(s);
	free(p);
	free(emb);
	free(fold);
	free(y);
	free(rm);
	free(ref);
	free(out);
	free(want);
	free(sc);
	free(qr);
}

static void test_lanes(void)
{
	struct nwc_net net = { .h = 32, .r = 1, .nq = NWC_NET_Q };

	if (!nwc_net_lanes_ok(&net)) {
		printf("test_lanes: skipped: no AVX2 and FMA on this CPU\n");
		return;
	}
	check_lanes(32, 1, 16, 256, 16, NWC_DTYPE_BF16);
	check_lanes(32, 1, 16, 37, 40, NWC_DTYPE_BF16);
	check_lanes(32, 1, 5, 48, 9, NWC_DTYPE_BF16);
	check_lanes(32, 1, 16, 48, 16, NWC_DTYPE_F32);
	check_lanes(32, 1, 16, 48, 20, NWC_DTYPE_F16);
	check_lanes(64, 2, 16, 64, 16, NWC_DTYPE_BF16);
	check_lanes(8, 3, 11, 20, 11, NWC_DTYPE_F64);
	net.h = 12;
	T_CHECK(!nwc_net_lanes_ok(&net));
	net.h = 72;
	T_CHECK(!nwc_net_lanes_ok(&net));
	net.h = 32;
	net.r = 0;
	T_CHECK(!nwc_net_lanes_ok(&net));
}

static void test_golden(void)
{
	check_golden(8, 2, 0.3, golden_h8r2_in, golden_h8r2_q,
		     NWC_ARRAY_SIZE(golden_h8r2_q), golden_h8r2_out);
	check_golden(32, 1, 0.3, golden_h32r1_in, golden_h32r1_q,
		     NWC_ARRAY_SIZE(golden_h32r1_q), golden_h32r1_out);
	/* Odd H (vector tails); variance near eps. */
	check_golden(13, 3, 0.01, golden_h13r3_in, golden_h13r3_q,
		     NWC_ARRAY_SIZE(golden_h13r3_q), golden_h13r3_out);
}

/*
 * The network again, in double and one row at a time: the function that
 * the finite differences differentiate.
 */
static void forward_f64(unsigned int h, unsigned int r, const double *p,
			const double *emb, const uint8_t *q,
			const double *in, size_t batch, double *out)
{
	struct nwc_net_layout l;
	double hid[16], z[16];

	nwc_net_layout(h, r, &l);
	for (size_t n = 0; n < batch; n++) {
		const double *x = in + n * NWC_CHUNK, *e = emb + q[n] * h;

		for (size_t i = 0; i < h; i++) {
			hid[i] = p[l.b_in + i];
			for (size_t j = 0; j < NWC_CHUNK; j++)
				hid[i] += p[l.w_in + i * NWC_CHUNK + j] * x[j];
		}
		for (unsigned int b = 0; b < r; b++) {
			const struct nwc_net_block_offs *o = &l.blk[b];
			double mu = 0, var = 0;

			for (size_t i = 0; i < h; i++) {
				z[i] = p[o->b + i];
				for (size_t j = 0; j < h; j++)
					z[i] += p[o->w + i * h + j] * hid[j];
				mu += z[i] / h;
			}
			for (size_t i = 0; i < h; i++)
				var += (z[i] - mu) * (z[i] - mu) / h;
			for (size_t i = 0; i < h; i++) {
				double u = (z[i] - mu) / sqrt(var + 1e-5) *
					   p[o->gamma + i] + p[o->beta + i];

				hid[i] = (hid[i] + (u > 0 ? u : 0)) * e[i];
			}
		}
		for (size_t i = 0; i < NWC_CHUNK; i++) {
			out[n * NWC_CHUNK + i] = p[l.b_out + i];
			for (size_t j = 0; j < h; j++)
				out[n * NWC_CHUNK + i] +=
					p[l.w_out + i * h + j] * hid[j];
		}
	}
}

/* Largest net the gradient check runs: H 8, R 2. */
#define GP 456
#define GB 4

struct gcheck {
	unsigned int h, r;
	double p[GP], emb[NWC_NET_Q * 8], in[GB * NWC_CHUNK], w[GB * NWC_CHUNK];
	uint8_t q[GB];
};

static double loss_f64(const struct gcheck *g)
{
	double out[GB * NWC_CHUNK], sum = 0;

	forward_f64(g->h, g->r, g->p, g->emb, g->q, g->in, GB, out);
	for (size_t i = 0; i < GB * NWC_CHUNK; i++)
		sum += out[i] * g->w[i];
	return sum;
}

/* Central difference of the loss along *x, then compare with @analytic. */
static int check_grad(struct gcheck *g, double *x, float analytic,
		      const char *what, size_t idx)
{
	const double eps = 1e-6;
	double keep = *x, lp, lm, num, err;

	*x = keep + eps;
	lp = loss_f64(g);
	*x = keep - eps;
	lm = loss_f64(g);
	*x = keep;
	num = (lp - lm) / (2 * eps);
	err = fabs(analytic - num) / NWC_MAX(fabs(num), 1e-3);
	if (err < 1e-2)
		return 0;
	fprintf(stderr, "H=%u R=%u gradient %s[%zu]: %.6g vs numeric %.6g\n",
		g->h, g->r, what, idx, (double)analytic, num);
	return 1;
}

/*
 * Analytic gradients of sum(out * w) against double-precision central
 * differences, for every parameter, every E entry and every input.
 */
static void check_backward(unsigned int h, unsigned int r)
{
	static struct gcheck g;
	size_t np = nwc_net_nparams(h, r), ne = NWC_NET_Q * h;
	float p[GP], emb[NWC_NET_Q * 8], in[GB * NWC_CHUNK], w[GB * NWC_CHUNK];
	float out[GB * NWC_CHUNK], out2[GB * NWC_CHUNK], dp[GP];
	float de[NWC_NET_Q * 8];
	float din[GB * NWC_CHUNK], dp2[GP], de2[NWC_NET_Q * 8];
	struct nwc_net net = { .h = h, .r = r, .nq = NWC_NET_Q, .params = p };
	struct nwc_net other = net;
	struct nwc_net_layout l;
	struct nwc_net_acts *a;
	struct nwc_net_scratch *s;
	uint64_t seed = 7 + h;
	int bad = 0;

	T_CHECK(np <= GP && h <= 8);
	g.h = h;
	g.r = r;
	other.r = r + 1;
	T_EQ(nwc_net_init(p, h, r, 3), 0);
	nwc_net_layout(h, r, &l);
	/* Move gamma, beta and E off their initial values. */
	for (unsigned int b = 0; b < r; b++)
		for (size_t i = 0; i < h; i++) {
			p[l.blk[b].gamma + i] = 1 + 0.5f * frand(&seed);
			p[l.blk[b].beta + i] = 0.3f * frand(&seed);
		}
	for (size_t i = 0; i < ne; i++)
		emb[i] = 1 + 0.5f * frand(&seed);
	fill(in, NWC_ARRAY_SIZE(in), 1.5f, &seed);
	fill(w, NWC_ARRAY_SIZE(w), 1, &seed);
	for (size_t n = 0; n < GB; n++)
		g.q[n] = (uint8_t)((n * 3 + 2) % NWC_NET_Q);	/* every level */
	for (size_t i = 0; i < np; i++)
		g.p[i] = p[i];
	for (size_t i = 0; i < ne; i++)
		g.emb[i] = emb[i];
	for (size_t i = 0; i < NWC_ARRAY_SIZE(in); i++) {
		g.in[i] = in[i];
		g.w[i] = w[i];
	}

	T_EQ(nwc_net_acts_create(&a), 0);
	T_EQ(nwc_net_scratch_create(&s), 0);
	memset(dp, 0, sizeof(dp));
	memset(de, 0, sizeof(de));
	/* Nothing recorded yet. */
	T_EQ(nwc_net_backward(&net, emb, w, a, dp, de, din), -EINVAL);
	T_EQ(nwc_net_forward_train(&net, emb, g.q, in, GB, out, a), 0);
	T_EQ(nwc_net_backward(&other, emb, w, a, dp, de, din), -EINVAL);
	T_EQ(nwc_net_backward(&net, emb, w, a, dp, de, din), 0);

	/* The float forward agrees with the double one it is checked by. */
	{
		double ref[GB * NWC_CHUNK];

		forward_f64(h, r, g.p, g.emb, g.q, g.in, GB, ref);
		for (size_t i = 0; i < GB * NWC_CHUNK; i++)
			T_CHECK(fabs(out[i] - ref[i]) < 1e-5 * (1 + fabs(ref[i])));
	}

	for (size_t i = 0; i < np; i++)
		bad += check_grad(&g, &g.p[i], dp[i], "param", i);
	for (size_t i = 0; i < ne; i++)
		bad += check_grad(&g, &g.emb[i], de[i], "emb", i);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(in); i++)
		bad += check_grad(&g, &g.in[i], din[i], "in", i);
	T_EQ(bad, 0);

	/* A second backward adds the same gradient again, exactly. */
	memcpy(dp2, dp, sizeof(dp));
	memcpy(de2, de, sizeof(de));
	T_EQ(nwc_net_backward(&net, emb, w, a, dp2, de2, NULL), 0);
	for (size_t i = 0; i < np; i++)
		T_CHECK(dp2[i] == 2 * dp[i]);
	for (size_t i = 0; i < ne; i++)
		T_CHECK(de2[i] == 2 * de[i]);

	/* The training forward gives the inference forward's bits. */
	T_EQ(nwc_net_forward(&net, emb, g.q, in, GB, out2, s), 0);
	T_MEMEQ(out, out2, sizeof(out));

	/* Bad level, empty batch. */
	g.q[1] = NWC_NET_Q;
	T_EQ(nwc_net_forward(&net, emb, g.q, in, GB, out2, s), -EINVAL);
	T_EQ(nwc_net_forward_train(&net, emb, g.q, in, GB, out2, a), -EINVAL);
	T_EQ(nwc_net_backward(&net, emb, w, a, dp, de, din), -EINVAL);
	T_EQ(nwc_net_forward(&net, emb, NULL, NULL, 0, NULL, s), 0);
	T_EQ(nwc_net_forward_train(&net, emb, NULL, NULL, 0, NULL, a), 0);
	T_EQ(nwc_net_backward(&net, emb, NULL, a, dp, de, NULL), 0);

	nwc_net_acts_free(a);
	nwc_net_scratch_free(s);
}

/*
 * Gradients of one batch of 150 rows (past the 64-row float partial sums)
 * equal those of the same rows in two calls, up to float rounding.
 */
static void check_split(void)
{
	enum { N = 150, CUT = 50, H = 16, R = 2 };
	size_t np = nwc_net_nparams(H, R), ne = NWC_NET_Q * H;
	float *p = malloc(np * sizeof(float)), *emb = malloc(ne * sizeof(float));
	float *g1 = calloc(np + ne, sizeof(float));
	float *g2 = calloc(np + ne, sizeof(float));
	float *in = malloc(N * NWC_CHUNK * sizeof(float));
	float *w = malloc(N * NWC_CHUNK * sizeof(float));
	float *out = malloc(N * NWC_CHUNK * sizeof(float));
	float din1[N * NWC_CHUNK], din2[N * NWC_CHUNK];
	struct nwc_net net = { .h = H, .r = R, .nq = NWC_NET_Q, .params = p };
	struct nwc_net_acts *a;
	uint8_t q[N];
	uint64_t seed = 21;
	double worst = 0, scale = 0;

	T_CHECK(p && emb && g1 && g2 && in && w && out);
	nwc_net_init(p, H, R, 9);
	fill(emb, ne, 1, &seed);
	fill(in, N * NWC_CHUNK, 1, &seed);
	fill(w, N * NWC_CHUNK, 1, &seed);
	for (size_t i = 0; i < N; i++)
		q[i] = (uint8_t)(t_rand(&seed) % NWC_NET_Q);
	T_EQ(nwc_net_acts_create(&a), 0);
	T_EQ(nwc_net_forward_train(&net, emb, q, in, N, out, a), 0);
	T_EQ(nwc_net_backward(&net, emb, w, a, g1, g1 + np, din1), 0);
	T_EQ(nwc_net_forward_train(&net, emb, q, in, CUT, out, a), 0);
	T_EQ(nwc_net_backward(&net, emb, w, a, g2, g2 + np, din2), 0);
	T_EQ(nwc_net_forward_train(&net, emb, q + CUT, in + CUT * NWC_CHUNK,
				   N - CUT, out, a), 0);
	T_EQ(nwc_net_backward(&net, emb, w + CUT * NWC_CHUNK, a, g2, g2 + np,
			      din2 + CUT * NWC_CHUNK), 0);
	for (size_t i = 0; i < np + ne; i++)
		scale = NWC_MAX(scale, fabs(g1[i]));
	for (size_t i = 0; i < np + ne; i++)
		worst = NWC_MAX(worst, fabs(g1[i] - g2[i]) / scale);
	T_CHECK(worst < 1e-5);
	/* Per row, but BLAS blocking follows the batch size: not bit-exact. */
	scale = 0;
	for (size_t i = 0; i < N * NWC_CHUNK; i++)
		scale = NWC_MAX(scale, fabsf(din1[i]));
	for (size_t i = 0; i < N * NWC_CHUNK; i++)
		T_CHECK(fabsf(din1[i] - din2[i]) <= 1e-5 * scale);
	nwc_net_acts_free(a);
	free(p);
	free(emb);
	free(g1);
	free(g2);
	free(in);
	free(w);
	free(out);
}

static void test_backward(void)
{
	check_split();
	check_backward(8, 2);
	/* H not a multiple of 4 or 8: the scalar tails of the row loops. */
	check_backward(7, 1);
	check_backward(5, 2);
}

#define DH 64
#define DR 2
#define DB 1000

struct det_job {
	const struct nwc_net *net;
	const float *emb, *in;
	const uint8_t *q;
	float *out;
	int ret;
};

static void *det_thread(void *arg)
{
	struct det_job *j = arg;
	struct nwc_net_scratch *s;

	j->ret = nwc_net_scratch_create(&s);
	for (int i = 0; i < 3 && !j->ret; i++)
		j->ret = nwc_net_forward(j->net, j->emb, j->q, j->in, DB,
					 j->out, s);
	nwc_net_scratch_free(s);
	return NULL;
}

static void test_determinism(void)
{
	size_t np = nwc_net_nparams(DH, DR), no = DB * NWC_CHUNK;
	float *p = malloc(np * sizeof(float));
	float *emb = malloc(NWC_NET_Q * DH * sizeof(float));
	float *in = malloc(no * sizeof(float));
	float *out[4];
	uint8_t q[DB];
	struct nwc_net net = { .h = DH, .r = DR, .nq = NWC_NET_Q, .params = p };
	struct nwc_net_scratch *s;
	struct det_job job[2];
	pthread_t tid[2];
	uint64_t seed = 11;

	for (int i = 0; i < 4; i++) {
		out[i] = malloc(no * sizeof(float));
		T_CHECK(out[i] != NULL);
	}
	T_CHECK(p && emb && in);
	nwc_net_init(p, DH, DR, 5);
	fill(emb, NWC_NET_Q * DH, 1, &seed);
	fill(in, no, 2, &seed);
	for (size_t i = 0; i < DB; i++)
		q[i] = (uint8_t)(t_rand(&seed) % NWC_NET_Q);

	T_EQ(nwc_net_scratch_create(&s), 0);
	T_EQ(nwc_net_forward(&net, emb, q, in, DB, out[0], s), 0);
	/* A smaller batch in between must not disturb the next result. */
	T_EQ(nwc_net_forward(&net, emb, q, in, 3, out[1], s), 0);
	T_EQ(nwc_net_forward(&net, emb, q, in, DB, out[1], s), 0);
	T_MEMEQ(out[0], out[1], no * sizeof(float));
	nwc_net_scratch_free(s);

	for (int i = 0; i < 2; i++) {
		job[i] = (struct det_job){ &net, emb, in, q, out[2 + i], 0 };
		T_EQ(pthread_create(&tid[i], NULL, det_thread, &job[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(tid[i], NULL);
		T_EQ(job[i].ret, 0);
		T_MEMEQ(out[0], out[2 + i], no * sizeof(float));
	}
	for (int i = 0; i < 4; i++)
		free(out[i]);
	free(p);
	free(emb);
	free(in);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * Not a check: single-thread forward speed per size, to choose the decoder.
 * NWC_MLP_BENCH=0 skips it; NWC_MLP_BENCH=train adds forward + backward.
 */
static void bench(void)
{
	static const unsigned int sizes[][2] = {
		{ 32, 1 }, { 64, 1 }, { 64, 2 }, { 128, 1 }, { 128, 2 },
		{ 256, 2 }, { 512, 4 },
	};
	const char *env = getenv("NWC_MLP_BENCH");
	bool train = env && !strcmp(env, "train");
	const size_t batch = 4096;
	float *emb = malloc(NWC_NET_Q * NWC_NET_MAX_H * sizeof(float));
	float *in = malloc(batch * NWC_CHUNK * sizeof(float));
	float *out = malloc(batch * NWC_CHUNK * sizeof(float));
	uint8_t *q = malloc(batch);
	struct nwc_net_scratch *s;
	struct nwc_net_acts *a;
	uint64_t seed = 13;

	if (env && !strcmp(env, "0"))
		goto out_free;
	T_CHECK(emb && in && out && q);
	T_EQ(nwc_net_scratch_create(&s), 0);
	T_EQ(nwc_net_acts_create(&a), 0);
	fill(in, batch * NWC_CHUNK, 2, &seed);
	for (size_t i = 0; i < batch; i++)
		q[i] = (uint8_t)(t_rand(&seed) % NWC_NET_Q);
	printf("#   H  R  MAC/chunk   chunks/s  BF16 MB/s  GFLOP/s%s\n",
	       train ? "  train chunks/s" : "");
	for (size_t c = 0; c < NWC_ARRAY_SIZE(sizes); c++) {
		unsigned int h = sizes[c][0], r = sizes[c][1];
		size_t np = nwc_net_nparams(h, r);
		float *p = malloc(np * sizeof(float));
		float *g = calloc(np, sizeof(float));
		float *ge = calloc(NWC_NET_Q * h, sizeof(float));
		struct nwc_net net = { h, r, NWC_NET_Q, p };
		double t0, t = 0, rate, macs = (double)nwc_net_macs(h, r);
		long it = 0;

		T_CHECK(p && g && ge);
		nwc_net_init(p, h, r, 1);
		nwc_emb_init(emb, NWC_NET_Q, h);
		nwc_net_forward(&net, emb, q, in, batch, out, s);	/* warm */
		t0 = now();
		while (t < 0.15) {
			nwc_net_forward(&net, emb, q, in, batch, out, s);
			it++;
			t = now() - t0;
		}
		rate = (double)(it * batch) / t;
		printf("# %4u %2u %10.0f %10.0f %10.1f %8.1f", h, r, macs,
		       rate, rate * NWC_CHUNK * 2 / 1e6, rate * macs * 2 / 1e9);
		if (train) {
			t0 = now();
			it = 0;
			t = 0;
			while (t < 0.15) {
				nwc_net_forward_train(&net, emb, q, in, batch,
						      out, a);
				nwc_net_backward(&net, emb, out, a, g, ge,
						 NULL);
				it++;
				t = now() - t0;
			}
			printf(" %16.0f", (double)(it * batch) / t);
		}
		printf("\n");
		free(p);
		free(g);
		free(ge);
	}
	nwc_net_acts_free(a);
	nwc_net_scratch_free(s);
out_free:
	free(emb);
	free(in);
	free(out);
	free(q);
}

int main(void)
{
	nwc_gemm_init();
	T_RUN(test_sgemm);
	T_RUN(test_linear);
	T_RUN(test_ssyrk);
	T_RUN(test_layout);
	T_RUN(test_golden);
	T_RUN(test_linear_fold);
	T_RUN(test_lanes);
	T_RUN(test_backward);
	T_RUN(test_determinism);
	bench();
	T_EXIT();
}
