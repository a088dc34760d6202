/* SPDX-License-Identifier: MIT */
/* test_prior.c - factorized prior: layout, gradients, fitting, tables. */
#include "codec/common/base.h"

#include <math.h>

#include "codec/nwc/entropy.h"
#include "codec/nwc/prior.h"
#include "tests/t.h"

#define NP NWC_PRIOR_CH_PARAMS

/* Uniform double in [0, 1). */
static double t_unif(uint64_t *s)
{
	return (double)(t_rand(s) >> 11) / 9007199254740992.0;
}

static double t_laplace(uint64_t *s, double b)
{
	double u = t_unif(s) - 0.5;

	return u < 0 ? b * log1p(2 * u) : -b * log1p(-2 * u);
}

static double t_normal(uint64_t *s)
{
	double u = t_unif(s) + 1e-300, v = t_unif(s);

	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* Initialized parameters moved off the init so that every path matters. */
static float *random_params(unsigned int C, uint64_t seed)
{
	float *p = malloc(nwc_prior_nparams(C) * sizeof(*p));

	T_CHECK(p && nwc_prior_init(p, NULL, C, seed) == 0);
	for (size_t i = 0; i < nwc_prior_nparams(C); i++)
		p[i] += (float)(0.6 * (t_unif(&seed) - 0.5));
	return p;
}

static double bits_of(const float *p, unsigned int C, const float *y,
		      size_t n, const float *w)
{
	double b = NAN;

	T_EQ(nwc_prior_bits(p, C, y, n, w, &b, NULL, NULL, NULL), 0);
	return b;
}

static double logistic(double x)
{
	return 1 / (1 + exp(-x));
}

/* With zero biases the init is f(x) = x / 10: check bits against that. */
static void test_init_layout(void)
{
	static const unsigned int bias[] = { 3, 4, 5, 18, 19, 20, 33, 34, 35,
					     48, 49, 50, 57 };
	float p[2 * NP], q[6], y[2 * 7], a[2 * NP], b[2 * NP];
	float far[2] = { 400, -400 }, dfar[2] = { 0, 0 };
	uint64_t s = 5;
	double rb[7], total, sum = 0;

	T_EQ(nwc_prior_nparams(16), 928);
	T_EQ(nwc_prior_init(p, q, 0, 1), -EINVAL);
	T_EQ(nwc_prior_init(p, q, 2, 1), 0);
	for (unsigned int c = 0; c < 2; c++) {
		T_CHECK(q[3 * c] == -10 && q[3 * c + 1] == 0 &&
			q[3 * c + 2] == 10);
		for (unsigned int i = 0; i < NWC_ARRAY_SIZE(bias); i++) {
			float bv = p[c * NP + bias[i]];

			T_CHECK(bv >= -0.5f && bv < 0.5f && bv != 0);
			p[c * NP + bias[i]] = 0;
		}
	}
	/* a_k (the gates) start at 0. */
	for (unsigned int i = 6; i < 9; i++)
		T_CHECK(p[i] == 0 && p[i + 15] == 0 && p[i + 30] == 0 &&
			p[i + 45] == 0);
	/* Channel 1 shifted by +3 through the last bias: f(x) = x/10 + 3. */
	p[NP + 57] = 3;
	for (unsigned int i = 0; i < 7; i++) {
		y[2 * i] = (float)(8 * t_normal(&s));
		y[2 * i + 1] = (float)(8 * t_normal(&s));
	}
	T_EQ(nwc_prior_bits(p, 2, y, 7, NULL, &total, rb, NULL, NULL), 0);

	for (unsigned int i = 0; i < 7; i++) {
		double e = 0;

		for (unsigned int c = 0; c < 2; c++) {
			double v = y[2 * i + c], sh = c ? 3 : 0;

			e -= log2(logistic((v + 0.5) / 10 + sh) -
				  logistic((v - 0.5) / 10 + sh));
		}
		T_CHECK(fabs(rb[i] - e) < 1e-5 * e);
		sum += rb[i];
	}
	T_CHECK(fabs(total - sum) < 1e-12 * sum);

	/*
	 * Channel 0's f is now odd, so p(y) = p(-y) exactly when each tail is
	 * computed on its small side; subtracting sigmoids near 1 would
	 * differ in the 8th digit here.  Past the floor the rate is flat but
	 * the gradient still pulls the value in.
	 */
	for (unsigned int i = 0; i < 60; i++) {
		float v[2] = { 120 + (float)i, -120 - (float)i };
		double r[2];

		nwc_prior_bits(p, 1, v, 2, NULL, &total, r, NULL, NULL);
		T_CHECK(r[0] == r[1] && r[0] > 20 && r[0] < 29.8);
	}
	T_EQ(nwc_prior_bits(p, 1, far, 2, NULL, &total, rb, NULL, dfar), 0);
	T_CHECK(rb[0] == -log2(NWC_PRIOR_LIKELIHOOD_MIN) && rb[1] == rb[0]);
	T_CHECK(dfar[0] > 0 && dfar[1] == -dfar[0]);

	/* Same seed, same parameters; another seed, other biases. */
	nwc_prior_init(a, NULL, 2, 77);
	nwc_prior_init(b, NULL, 2, 77);
	T_MEMEQ(a, b, sizeof(a));
	nwc_prior_init(b, NULL, 2, 78);
	T_CHECK(memcmp(a, b, sizeof(a)) != 0);
}

/* The masses of all unit intervals add up to one, whatever the params. */
static void test_normalized(void)
{
	enum { K = 600, N = 2 * K + 1 };
	float *y = malloc(N * sizeof(*y));
	double *rb = malloc(N * sizeof(*rb)), tot;
	uint64_t s = 9;

	for (int round = 0; round < 4; round++) {
		float *p = random_params(1, 100 + (uint64_t)round);
		double off = t_unif(&s) - 0.5, sum = 0;

		for (int k = 0; k < N; k++)
			y[k] = (float)(k - K + off);
		T_EQ(nwc_prior_bits(p, 1, y, N, NULL, &tot, rb, NULL, NULL),
		     0);
		for (int k = 0; k < N; k++)
			sum += exp2(-rb[k]);
		/* N floors of 1e-9 at most, plus float rounding of y. */
		T_CHECK(fabs(sum - 1) < 2e-6);
		free(p);
	}
	free(y);
	free(rb);
}

static int check_rel(double a, double fd, double floor_)
{
	double den = fmax(fmax(fabs(a), fabs(fd)), floor_);

	if (fabs(a - fd) / den < 1e-2)
		return 1;
	fprintf(stderr, "  analytic %.9g vs finite difference %.9g\n", a, fd);
	return 0;
}

/* d(bits)/d(params) and d(bits)/d(y) against central differences. */
static void test_grad_bits(void)
{
	enum { C = 3, N = 40 };
	float *p = random_params(C, 31), y[N * C], w[N];
	float *dp = calloc(nwc_prior_nparams(C), sizeof(*dp));
	float dy[N * C] = { 0 };
	double b0, scale = 0;
	uint64_t s = 17;
	int bad = 0;

	for (int i = 0; i < N * C; i++)
		y[i] = (float)(6 * t_normal(&s));
	for (int i = 0; i < N; i++)
		w[i] = (float)(0.05 + 3.35 * t_unif(&s));
	T_EQ(nwc_prior_bits(p, C, y, N, w, &b0, NULL, dp, dy), 0);
	for (size_t i = 0; i < nwc_prior_nparams(C); i++)
		scale = fmax(scale, fabs(dp[i]));
	T_CHECK(scale > 0);

	/* A random subset of parameters (plus every one of channel 1). */
	for (size_t i = 0; i < nwc_prior_nparams(C); i++) {
		if ((i < NP || i >= 2 * NP) && t_rand(&s) % 3)
			continue;
		float keep = p[i], hi = keep + 1e-3f, lo = keep - 1e-3f;
		double bh, bl;

		p[i] = hi;
		bh = bits_of(p, C, y, N, w);
		p[i] = lo;
		bl = bits_of(p, C, y, N, w);
		p[i] = keep;
		if (!check_rel(dp[i], (bh - bl) / ((double)hi - lo),
			       1e-4 * scale)) {
			fprintf(stderr, "  param %zu\n", i);
			bad++;
		}
	}
	for (int i = 0; i < N * C; i++) {
		float keep = y[i], hi = keep + 1e-3f, lo = keep - 1e-3f;
		double bh, bl;

		y[i] = hi;
		bh = bits_of(p, C, y, N, w);
		y[i] = lo;
		bl = bits_of(p, C, y, N, w);
		y[i] = keep;
		if (!check_rel(dy[i], (bh - bl) / ((double)hi - lo), 1e-4)) {
			fprintf(stderr, "  y %d\n", i);
			bad++;
		}
	}
	T_EQ(bad, 0);

	/* Gradients accumulate: two halves add up to the whole batch. */
	float *dp2 = calloc(nwc_prior_nparams(C), sizeof(*dp2));
	float dy2[N * C] = { 0 };
	double b1, b2;

	T_EQ(nwc_prior_bits(p, C, y, N / 2, w, &b1, NULL, dp2, dy2), 0);
	T_EQ(nwc_prior_bits(p, C, y + N / 2 * C, N / 2, w + N / 2, &b2, NULL,
			    dp2, dy2 + N / 2 * C), 0);
	T_CHECK(fabs(b1 + b2 - b0) < 1e-12 * b0);
	for (size_t i = 0; i < nwc_prior_nparams(C); i++)
		T_CHECK(fabs(dp2[i] - dp[i]) <= 1e-5 * scale);
	T_MEMEQ(dy, dy2, sizeof(dy));

	/* Weights scale the rate and its gradients; NULL means 1. */
	for (int i = 0; i < N; i++)
		w[i] = 1;
	T_CHECK(bits_of(p, C, y, N, w) == bits_of(p, C, y, N, NULL));
	T_EQ(nwc_prior_bits(p, 0, y, N, w, &b1, NULL, NULL, NULL), -EINVAL);
	T_EQ(nwc_prior_bits(p, 16, y, SIZE_MAX / 8, NULL, &b1, NULL, NULL,
			    NULL), -EINVAL);
	free(p);
	free(dp);
	free(dp2);
}

/* The aux loss's gradient w.r.t. the quantiles. */
static void test_grad_aux(void)
{
	enum { C = 4 };
	float *p = random_params(C, 55), q[3 * C], dq[3 * C] = { 0 };
	uint64_t s = 3;
	double l0, lh, ll;
	int bad = 0;

	for (int c = 0; c < C; c++) {
		q[3 * c] = (float)(-30 * t_unif(&s) - 2);
		q[3 * c + 1] = (float)(4 * t_unif(&s) - 2);
		q[3 * c + 2] = (float)(30 * t_unif(&s) + 2);
	}
	T_EQ(nwc_prior_aux(p, q, C, &l0, dq), 0);
	T_CHECK(l0 > 0);
	for (int i = 0; i < 3 * C; i++) {
		float keep = q[i], hi = keep + 1e-3f, lo = keep - 1e-3f;

		q[i] = hi;
		nwc_prior_aux(p, q, C, &lh, NULL);
		q[i] = lo;
		nwc_prior_aux(p, q, C, &ll, NULL);
		q[i] = keep;
		if (!check_rel(dq[i], (lh - ll) / ((double)hi - lo), 1e-4)) {
			fprintf(stderr, "  quantile %d\n", i);
			bad++;
		}
	}
	T_EQ(bad, 0);
	free(p);
}

static void adam(float *x, const float *g, double *m, double *v, size_t n,
		 double lr, int step)
{
	double c1 = 1 - pow(0.9, step), c2 = 1 - pow(0.999, step);

	for (size_t i = 0; i < n; i++) {
		m[i] = 0.9 * m[i] + 0.1 * g[i];
		v[i] = 0.999 * v[i] + 0.001 * (double)g[i] * g[i];
		x[i] -= (float)(lr * (m[i] / c1) / (sqrt(v[i] / c2) + 1e-8));
	}
}

/* Mass of Laplace(0, b) on [lo, hi], without cancellation in the tails. */
static double laplace_mass(double lo, double hi, double b)
{
	if (lo >= 0)
		return 0.5 * (exp(-lo / b) - exp(-hi / b));
	if (hi <= 0)
		return 0.5 * (exp(hi / b) - exp(lo / b));
	return 1 - 0.5 * exp(lo / b) - 0.5 * exp(-hi / b);
}

/*
 * Fit one channel to y = L + U(-1/2, 1/2), L ~ Laplace(0, 3): the rate must
 * approach the differential entropy of y, and the integer table built from
 * the fit must code round(L) close to its empirical entropy.
 *
 * 1500 Adam steps (lr 1e-2) on batches of 1000 of the 20k samples, each with
 * one Adam step of the aux loss on the quantiles (lr 0.05); both lr / 10
 * for the last 300 steps, so that the quantiles can settle on a still
 * density.  Gets within ~0.01 bit of the oracle's rate in about a second.
 */
static void test_fit_laplace(void)
{
	enum { N = 20000, B = 1000, STEPS = 1500 };
	const double b = 3;
	float p[NP], q[3], g[NP], gq[3], med;
	double m[NP] = { 0 }, v[NP] = { 0 }, mq[3] = { 0 }, vq[3] = { 0 };
	float *y = malloc(N * sizeof(*y));
	double *l = malloc(N * sizeof(*l));
	int32_t *sym = malloc(N * sizeof(*sym));
	int32_t *back = malloc(N * sizeof(*back));
	uint64_t s = 2024;
	double h = 0, oracle = 0, fit, aux;

	T_CHECK(y && l && sym && back);
	for (int i = 0; i < N; i++) {
		l[i] = t_laplace(&s, b);
		y[i] = (float)(l[i] + t_unif(&s) - 0.5);
		back[i] = 0;
		oracle -= log2(laplace_mass(y[i] - 0.5, y[i] + 0.5, b));
	}
	oracle /= N;
	/* h(y) = -int g log2 g, g(y) = F(y + 1/2) - F(y - 1/2). */
	for (double x = -120; x <= 120; x += 1e-3) {
		double gx = laplace_mass(x - 0.5, x + 0.5, b);

		if (gx > 0)
			h -= gx * log2(gx) * 1e-3;
	}

	nwc_prior_init(p, q, 1, 1);
	for (int step = 1; step <= STEPS; step++) {
		double bits;

		memset(g, 0, sizeof(g));
		memset(gq, 0, sizeof(gq));
		nwc_prior_bits(p, 1, y + (size_t)(step % (N / B)) * B, B, NULL,
			       &bits, NULL, g, NULL);
		for (unsigned int i = 0; i < NP; i++)
			g[i] /= B;
		adam(p, g, m, v, NP, step < STEPS - 300 ? 1e-2 : 1e-3, step);
		nwc_prior_aux(p, q, 1, &aux, gq);
		adam(q, gq, mq, vq, 3, step < STEPS - 300 ? 0.05 : 0.005, step);
	}
	fit = bits_of(p, 1, y, N, NULL) / N;
	printf("  h(y) %.4f, oracle %.4f, fitted %.4f bits/sample; "
	       "quantiles %.2f %.3f %.2f, aux %.3f\n", h, oracle, fit, q[0],
	       q[1], q[2], aux);
	T_CHECK(fabs(fit - h) < 0.05);
	T_CHECK(aux < 1);
	/* P(|y| > 62.3) = 1e-9 */
	T_CHECK(fabs(q[0] + 62.3) < 4 && fabs(q[1]) < 0.5 &&
		fabs(q[2] - 62.3) < 4);

	/* The exact quantiles: aux loss ~0, near the optimizer's, and the
	 * same from any start. */
	{
		float qs[3], qz[3] = { 0, 0, 0 };
		double a0;

		memcpy(qs, q, sizeof(qs));
		T_EQ(nwc_prior_solve_quantiles(p, qs, 1), 0);
		T_EQ(nwc_prior_solve_quantiles(p, qz, 1), 0);
		T_EQ(nwc_prior_aux(p, qs, 1, &a0, NULL), 0);
		printf("  solved quantiles %.3f %.4f %.3f, aux %.2g\n", qs[0],
		       qs[1], qs[2], a0);
		T_CHECK(a0 < 1e-4);
		for (int i = 0; i < 3; i++) {
			T_CHECK(fabs(qs[i] - q[i]) < 2);
			T_CHECK(fabs(qs[i] - qz[i]) <= 1e-5 * fabs(qs[i]) + 1e-6);
		}
	}

	/* Real bytes with the table. */
	struct nwc_qdist *d = NULL;
	const struct nwc_qdist *dc;
	uint64_t cnt[512] = { 0 };
	double ent = 0;
	size_t cap = nwc_ents_bound(N);
	uint8_t *buf = malloc(cap);
	ssize_t len;

	T_EQ(nwc_prior_tables(p, q, 1, &d, &med), 0);
	T_CHECK(med == q[1]);
	if (!d || !buf)
		goto out_free;
	T_CHECK(nwc_qdist_lo(d) == (int32_t)floor(q[0] - med));
	T_CHECK(nwc_qdist_lo(d) + (int32_t)nwc_qdist_n(d) - 1 ==
		(int32_t)ceil(q[2] - med));
	for (int i = 0; i < N; i++) {
		sym[i] = (int32_t)lrint(l[i] - med);
		cnt[(sym[i] + 256) & 511]++;
	}
	for (int k = 0; k < 512; k++)
		if (cnt[k])
			ent -= (double)cnt[k] / N * log2((double)cnt[k] / N);
	dc = d;
	len = nwc_ents_encode(&dc, NULL, sym, N, buf, cap);
	T_CHECK(len > 0);
	if (len > 0) {
		printf("  round(L): empirical entropy %.4f, coded %.4f "
		       "bits/sample\n", ent, len * 8.0 / N);
		T_CHECK(len * 8.0 < 1.02 * ent * N);
		T_EQ(nwc_ents_decode(&dc, NULL, back, N, buf, (size_t)len), 0);
		T_MEMEQ(sym, back, N * sizeof(*sym));
	}
	nwc_qdist_free(d);
out_free:
	free(buf);
	free(y);
	free(l);
	free(sym);
	free(back);
}

/* Table ranges, the cap, the pmf, bad quantiles. */
static void test_tables(void)
{
	static const struct {
		float lower, med, upper;
		int32_t lo, hi;
	} cases[] = {
		{ -3.3f, 0.4f, 5.2f, -4, 5 },
		{ 2.5f, 2.0f, 1.8f, 0, 0 },	/* clamped to hold 0 */
		{ -1e6f, 0, 1e6f, -2047, 2047 },	/* the cap, evenly */
		{ -10, 0.25f, 1e7f, -11, 4083 },	/* the far side gives */
		{ -1e7f, 0, 7, -4087, 7 },
	};
	enum { C = NWC_ARRAY_SIZE(cases) };
	float *p = random_params(C, 8), q[3 * C], med[C];
	struct nwc_qdist *d[C];
	int ok = 1;

	for (unsigned int c = 0; c < C; c++) {
		q[3 * c] = cases[c].lower;
		q[3 * c + 1] = cases[c].med;
		q[3 * c + 2] = cases[c].upper;
	}
	T_EQ(nwc_prior_tables(p, q, C, d, med), 0);
	for (unsigned int c = 0; c < C; c++) {
		uint32_t n = (uint32_t)(cases[c].hi - cases[c].lo) + 1;

		T_EQ(nwc_qdist_lo(d[c]), cases[c].lo);
		T_EQ(nwc_qdist_n(d[c]), n);
		T_CHECK(med[c] == cases[c].med);
		T_CHECK(n <= NWC_QDIST_MAX_SYMS - 1);
		/* Frequencies follow p(median + v) to table precision. */
		for (uint32_t k = 0; k < n && k < 100; k++) {
			float yv = cases[c].med + (float)(cases[c].lo + (int)k);
			double rb, tot, pv;

			nwc_prior_bits(p + c * NP, 1, &yv, 1, NULL, &tot, &rb,
				       NULL, NULL);
			pv = exp2(-rb);
			ok &= fabs(nwc_qdist_freq(d[c], k) / 65536.0 - pv) <
			      2e-3 + 0.05 * pv;
		}
		nwc_qdist_free(d[c]);
	}
	T_CHECK(ok);
	/* Narrow range: escape carries what is outside. */
	q[0] = -0.2f;
	q[1] = 0;
	q[2] = 0.2f;
	T_EQ(nwc_prior_tables(p, q, 1, d, NULL), 0);
	T_EQ(nwc_qdist_n(d[0]), 3);
	T_CHECK(nwc_qdist_freq(d[0], 3) > 1000);
	nwc_qdist_free(d[0]);

	q[4] = NAN;
	d[0] = (struct nwc_qdist *)1;
	T_EQ(nwc_prior_tables(p, q, 2, d, NULL), -EINVAL);
	T_CHECK(d[0] == NULL);
	T_EQ(nwc_prior_tables(p, q, 0, d, NULL), -EINVAL);
	free(p);
}

/* Identical inputs give identical bits, gradients and table bytes. */
static void test_determinism(void)
{
	enum { C = 16, N = 64 };
	float *p = random_params(C, 4), q[3 * C], y[N * C];
	size_t np = nwc_prior_nparams(C);
	float *g1 = calloc(np, sizeof(*g1)), *g2 = calloc(np, sizeof(*g2));
	float dy1[N * C] = { 0 }, dy2[N * C] = { 0 }, dq1[3 * C] = { 0 };
	float dq2[3 * C] = { 0 };
	struct nwc_qdist *d1[C], *d2[C];
	double b1, b2, a1, a2;
	uint64_t s = 12;

	for (int i = 0; i < N * C; i++)
		y[i] = (float)(5 * t_normal(&s));
	for (int c = 0; c < C; c++) {
		q[3 * c] = (float)(-20 - 10 * t_unif(&s));
		q[3 * c + 1] = (float)(t_unif(&s) - 0.5);
		q[3 * c + 2] = (float)(20 + 10 * t_unif(&s));
	}
	nwc_prior_bits(p, C, y, N, NULL, &b1, NULL, g1, dy1);
	nwc_prior_bits(p, C, y, N, NULL, &b2, NULL, g2, dy2);
	T_CHECK(b1 == b2);
	T_MEMEQ(g1, g2, np * sizeof(*g1));
	T_MEMEQ(dy1, dy2, sizeof(dy1));
	nwc_prior_aux(p, q, C, &a1, dq1);
	nwc_prior_aux(p, q, C, &a2, dq2);
	T_CHECK(a1 == a2);
	T_MEMEQ(dq1, dq2, sizeof(dq1));
	T_EQ(nwc_prior_tables(p, q, C, d1, NULL), 0);
	T_EQ(nwc_prior_tables(p, q, C, d2, NULL), 0);
	for (int c = 0; c < C; c++) {
		size_t n1 = nwc_qdist_saved_size(d1[c]);
		uint8_t *s1 = malloc(n1), *s2 = malloc(n1);

		T_EQ(nwc_qdist_saved_size(d2[c]), n1);
		nwc_qdist_save(d1[c], s1);
		nwc_qdist_save(d2[c], s2);
		T_MEMEQ(s1, s2, n1);
		free(s1);
		free(s2);
		nwc_qdist_free(d1[c]);
		nwc_qdist_free(d2[c]);
	}
	free(p);
	free(g1);
	free(g2);
}

/* At init with zero biases f(x) = x / 10: the quantiles in closed form. */
static void test_solve_quantiles(void)
{
	enum { CH = 3 };
	static const int b_off[] = { 3, 4, 5, 18, 19, 20, 33, 34, 35, 48, 49,
				     50, 57 };
	float p[CH * NWC_PRIOR_CH_PARAMS], q[3 * CH];
	double t = log(2 / NWC_PRIOR_TAIL_MASS - 1), aux;

	nwc_prior_init(p, q, CH, 5);
	for (int c = 0; c < CH; c++)
		for (size_t k = 0; k < NWC_ARRAY_SIZE(b_off); k++)
			p[c * NWC_PRIOR_CH_PARAMS + b_off[k]] = 0;
	q[0] = 1e6f;			/* any start, even a wrong side */
	q[4] = NAN;
	T_EQ(nwc_prior_solve_quantiles(p, q, CH), 0);
	for (int c = 0; c < CH; c++) {
		T_CHECK(fabs(q[3 * c] + 10 * t) < 1e-4);
		T_CHECK(fabs(q[3 * c + 1]) < 1e-6);
		T_CHECK(fabs(q[3 * c + 2] - 10 * t) < 1e-4);
	}
	T_EQ(nwc_prior_aux(p, q, CH, &aux, NULL), 0);
	T_CHECK(aux < 1e-4);
	T_EQ(nwc_prior_solve_quantiles(p, q, 0), -EINVAL);
	T_EQ(nwc_prior_solve_quantiles(NULL, q, CH), -EINVAL);
}

int main(void)
{
	T_RUN(test_init_layout);
	T_RUN(test_normalized);
	T_RUN(test_grad_bits);
	T_RUN(test_grad_aux);
	T_RUN(test_tables);
	T_RUN(test_determinism);
	T_RUN(test_fit_laplace);
	T_RUN(test_solve_quantiles);
	T_EXIT();
}
