/* SPDX-License-Identifier: MIT */
/* test_ldlq.c - LDLQ feedback against a plain GPTQ loop, row gains, loss. */
#include "codec/common/base.h"

#include <math.h>

#include "codec/nwc/ldlq.h"
#include "tests/t.h"

#define STEP 0.25		/* test grid: STEP * {-8..7} */
#define QLO (-8)
#define QHI 7

static uint64_t seed = 0x6c646c71;

static double urand(void)
{
	return (double)(t_rand(&seed) >> 11) * 0x1p-53 * 2 - 1;
}

static void fill_w(float *w, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		w[i] = (float)urand();
}

/*
 * H = X^T X / ns: each sample is an AR(1) chain over the columns (neighbour
 * correlation @rho) with column gains 0.5..2; columns in @dead stay 0.
 */
static float *make_h(uint32_t n, uint32_t ns, double rho, const int *dead,
		     size_t ndead)
{
	double *x = t_xmalloc((size_t)ns * n * sizeof(*x));
	double *gain = t_xmalloc(n * sizeof(*gain));
	float *h = t_xmalloc((size_t)n * n * sizeof(*h));

	for (uint32_t j = 0; j < n; j++)
		gain[j] = pow(2, urand());
	for (uint32_t t = 0; t < ns; t++) {
		double prev = urand();

		for (uint32_t j = 0; j < n; j++) {
			prev = rho * prev + sqrt(1 - rho * rho) * urand();
			x[(size_t)t * n + j] = prev * gain[j];
		}
		for (size_t d = 0; d < ndead; d++)
			x[(size_t)t * n + dead[d]] = 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < n; j++) {
			double acc = 0;

			for (size_t t = 0; t < ns; t++)
				acc += x[t * n + i] * x[t * n + j];
			h[(size_t)i * n + j] = (float)(acc / ns);
		}
	}
	free(gain);
	free(x);
	return h;
}

static double grid_idx(double x)
{
	double v = rint(x / STEP);

	return v < QLO ? QLO : v > QHI ? QHI : v;
}

/* Distance, in steps, from x to the nearest rounding boundary of the grid. */
static double grid_margin(double x)
{
	double k = floor(x / STEP);

	if (k < QLO || k >= QHI)
		return INFINITY;
	return fabs(x / STEP - (k + 0.5));
}

struct grid_ctx {
	uint32_t m;
	float *targets;		/* n x m: the targets seen, or NULL */
};

static int grid_quant(void *ctx, uint32_t col, const float *t, float *out)
{
	const struct grid_ctx *g = ctx;

	if (g->targets)
		memcpy(g->targets + (size_t)col * g->m, t, g->m * sizeof(*t));
	for (uint32_t r = 0; r < g->m; r++)
		out[r] = (float)(STEP * grid_idx(t[r]));
	return 0;
}

/* In-place lower Cholesky of an n x n double matrix (no pivoting). */
static void ref_chol(double *a, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		for (size_t i = j; i < n; i++) {
			double s = a[i * n + j];

			for (size_t k = 0; k < j; k++)
				s -= a[i * n + k] * a[j * n + k];
			a[i * n + j] = i == j ? sqrt(s) : s / a[j * n + j];
		}
		for (size_t i = 0; i < j; i++)
			a[i * n + j] = 0;
	}
}

/*
 * GPTQ's factor, written the classic way: damp H (dead inputs get diagonal
 * 1), invert it through its Cholesky factor, and return the upper Cholesky
 * factor Uc of H^-1 (H^-1 = Uc^T Uc).
 */
static double *ref_gptq_factor(const float *h, uint32_t n, double damp)
{
	size_t nn = n;
	double *a = t_xmalloc(nn * nn * sizeof(*a));
	double *li = calloc(nn * nn, sizeof(*li));
	double *hi = t_xmalloc(nn * nn * sizeof(*hi));
	double mean = 0;

	if (!li)
		exit(99);
	for (size_t i = 0; i < nn * nn; i++)
		a[i] = h[i];
	for (size_t i = 0; i < nn; i++) {
		if (a[i * nn + i] == 0)
			a[i * nn + i] = 1;
		mean += a[i * nn + i];
	}
	for (size_t i = 0; i < nn; i++)
		a[i * nn + i] += damp * mean / nn;
	ref_chol(a, n);

	/* li = L^-1 by forward substitution; H^-1 = li^T li. */
	for (size_t c = 0; c < nn; c++) {
		for (size_t i = c; i < nn; i++) {
			double s = i == c ? 1 : 0;

			for (size_t k = c; k < i; k++)
				s -= a[i * nn + k] * li[k * nn + c];
			li[i * nn + c] = s / a[i * nn + i];
		}
	}
	for (size_t i = 0; i < nn; i++) {
		for (size_t j = 0; j < nn; j++) {
			double s = 0;

			for (size_t k = NWC_MAX(i, j); k < nn; k++)
				s += li[k * nn + i] * li[k * nn + j];
			hi[i * nn + j] = s;
		}
	}
	ref_chol(hi, n);
	/* Uc = L2^T */
	for (size_t i = 0; i < nn; i++)
		for (size_t j = 0; j < nn; j++)
			a[i * nn + j] = j >= i ? hi[j * nn + i] : 0;
	free(hi);
	free(li);
	return a;
}

/*
 * GPTQ's column loop without lazy batching, in double.  With @forced, the
 * quantized values are taken from it instead of the grid (to replay another
 * run); targets go to @tgt (n x m) and the smallest rounding margin of the
 * grid decisions to *margin.
 */
static void ref_gptq_loop(const float *w, uint32_t m, uint32_t n,
			  const double *uc, const float *forced, float *what,
			  double *tgt, double *margin)
{
	size_t mm = m, nn = n;
	double *wd = t_xmalloc(mm * nn * sizeof(*wd));

	*margin = INFINITY;
	for (size_t i = 0; i < mm * nn; i++)
		wd[i] = w[i];
	for (size_t j = 0; j < nn; j++) {
		for (size_t r = 0; r < mm; r++) {
			double t = wd[r * nn + j];
			double q = forced ? forced[r * nn + j] :
					    STEP * grid_idx(t);
			double err = (t - q) / uc[j * nn + j];

			tgt[j * mm + r] = t;
			*margin = fmin(*margin, grid_margin(t));
			what[r * nn + j] = (float)q;
			for (size_t k = j + 1; k < nn; k++)
				wd[r * nn + k] -= err * uc[j * nn + k];
		}
	}
	free(wd);
}

static int run_grid(const float *w, uint32_t m, uint32_t n, const float *h,
		    float *targets, float *what)
{
	struct grid_ctx g = { .m = m, .targets = targets };
	float *u = t_xmalloc((size_t)n * n * sizeof(*u));
	int ret;

	ret = nwc_ldlq_factor(h, n, NWC_LDLQ_DAMP, u);
	if (!ret)
		ret = nwc_ldlq_run(w, m, n, u, grid_quant, &g, what);
	free(u);
	return ret;
}

/*
 * (a) Free run: sizes around the block size, dead inputs included.  No
 * reference target lies within 5e-5 steps of a rounding boundary (closest
 * 9.5e-5), so float noise cannot flip a decision and the outputs must
 * match bit for bit.
 * (The reference keeps W's dead columns; GPTQ zeroes them, which changes
 * only those columns.)
 */
static void test_gptq_equal(void)
{
	static const struct { uint32_t m, n; } sz[] = {
		{ 1, 1 }, { 3, 5 }, { 16, 128 }, { 16, 300 }, { 8, 257 },
	};
	static const int dead[] = { 2, 150 };

	for (size_t c = 0; c < NWC_ARRAY_SIZE(sz); c++) {
		uint32_t m = sz[c].m, n = sz[c].n;
		size_t nd = n > 150 ? 2 : n > 2 ? 1 : 0;
		float *h = make_h(n, n + 64, 0.9, dead, nd);
		float *w = t_xmalloc((size_t)m * n * sizeof(*w));
		float *got = t_xmalloc((size_t)m * n * sizeof(*got));
		float *want = t_xmalloc((size_t)m * n * sizeof(*want));
		double *tgt = t_xmalloc((size_t)m * n * sizeof(*tgt));
		double *uc = ref_gptq_factor(h, n, NWC_LDLQ_DAMP);
		double margin;

		fill_w(w, (size_t)m * n);
		ref_gptq_loop(w, m, n, uc, NULL, want, tgt, &margin);
		T_EQ(run_grid(w, m, n, h, NULL, got), 0);
		T_CHECK(margin > 5e-5);
		T_MEMEQ(got, want, (size_t)m * n * sizeof(*got));
		free(uc);
		free(tgt);
		free(want);
		free(got);
		free(w);
		free(h);
	}
}

/*
 * (a) Replay at a size where some decision is bound to be close: feed the
 * driver's own outputs through the reference loop.  Every target must
 * agree within 1e-5 steps, and every output must be the grid point of the
 * reference target unless that target is within 1e-4 steps of a boundary.
 * Measured: largest difference 1.5e-6 steps (a few ulp of the targets:
 * U is rounded to float), 7 targets within 1e-4 steps of a boundary.
 */
static void test_gptq_replay(void)
{
	const uint32_t m = 64, n = 520;
	static const int dead[] = { 300 };
	float *h = make_h(n, 700, 0.95, dead, 1);
	float *w = t_xmalloc((size_t)m * n * sizeof(*w));
	float *got = t_xmalloc((size_t)m * n * sizeof(*got));
	float *ref = t_xmalloc((size_t)m * n * sizeof(*ref));
	float *tgot = t_xmalloc((size_t)m * n * sizeof(*tgot));
	double *tref = t_xmalloc((size_t)m * n * sizeof(*tref));
	double *uc = ref_gptq_factor(h, n, NWC_LDLQ_DAMP);
	double margin, maxd = 0;
	size_t close = 0, bad = 0;

	fill_w(w, (size_t)m * n);
	T_EQ(run_grid(w, m, n, h, tgot, got), 0);
	ref_gptq_loop(w, m, n, uc, got, ref, tref, &margin);
	for (size_t j = 0; j < n; j++) {
		for (size_t r = 0; r < m; r++) {
			double t = tref[j * m + r];
			float q = got[r * n + j];

			maxd = fmax(maxd, fabs(tgot[j * m + r] - t) / STEP);
			if (grid_margin(t) < 1e-4)
				close++;
			else if (q != (float)(STEP * grid_idx(t)))
				bad++;
		}
	}
	T_CHECK(maxd < 1e-5);
	printf("# replay: largest target difference %.2g steps\n", maxd);
	T_EQ(bad, 0);
	T_CHECK(close < 30);
	free(uc);
	free(tref);
	free(tgot);
	free(ref);
	free(got);
	free(w);
	free(h);
}

/* The factor itself: V = (I + U)^-1 makes V Hd V^T diagonal. */
static void test_factor_ldl(void)
{
	const uint32_t n = 40;
	float *h = make_h(n, 30, 0.8, NULL, 0);
	float *u = t_xmalloc((size_t)n * n * sizeof(*u));
	double *hd = t_xmalloc((size_t)n * n * sizeof(*hd));
	double *v = t_xmalloc((size_t)n * n * sizeof(*v));
	double mean = 0, worst = 0;

	T_EQ(nwc_ldlq_factor(h, n, NWC_LDLQ_DAMP, u), 0);
	for (uint32_t i = 0; i < n; i++)
		mean += h[i * n + i];
	for (uint32_t i = 0; i < n * n; i++)
		hd[i] = h[i];
	for (uint32_t i = 0; i < n; i++)
		hd[i * n + i] += NWC_LDLQ_DAMP * mean / n;

	/* columns of V from the top: (I + U) V = I */
	for (uint32_t c = 0; c < n; c++) {
		for (uint32_t i = n; i-- > 0;) {
			double s = i == c ? 1 : 0;

			T_CHECK(i < c || u[(size_t)i * n + c] == 0);
			for (size_t k = i + 1; k < n; k++)
				s -= u[i * (size_t)n + k] * v[k * n + c];
			v[(size_t)i * n + c] = s;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < i; j++) {
			double s = 0, di = 0, dj = 0;

			for (uint32_t a = 0; a < n; a++)
				for (uint32_t b = 0; b < n; b++) {
					double hab = hd[a * n + b];

					s += v[i * n + a] * hab * v[j * n + b];
					di += v[i * n + a] * hab * v[i * n + b];
					dj += v[j * n + a] * hab * v[j * n + b];
				}
			worst = fmax(worst, fabs(s) / sqrt(di * dj));
		}
	}
	T_CHECK(worst < 1e-5);
	free(v);
	free(hd);
	free(u);
	free(h);
}

/* Per-row loss e_r H e_r^T in double. */
static double row_loss(const float *w, const float *what, float alpha,
		       const float *h, uint32_t n)
{
	double s = 0;

	for (uint32_t i = 0; i < n; i++) {
		double ei = w[i] - (double)alpha * what[i], acc = 0;

		for (uint32_t j = 0; j < n; j++)
			acc += h[(size_t)i * n + j] *
			       (w[j] - (double)alpha * what[j]);
		s += ei * acc;
	}
	return s;
}

/* The GPTQ grid of nwc_ldlq_gptq(), rebuilt here from its description. */
struct minmax_ctx {
	uint32_t m;
	float scale[64], zero[64], maxq;
};

static int minmax_quant(void *ctx, uint32_t col NWC_UNUSED, const float *t,
			float *out)
{
	const struct minmax_ctx *g = ctx;

	for (uint32_t r = 0; r < g->m; r++) {
		float v = rintf(t[r] / g->scale[r]) + g->zero[r];

		v = fminf(fmaxf(v, 0), g->maxq);
		out[r] = g->scale[r] * (v - g->zero[r]);
	}
	return 0;
}

/*
 * (b) LDLQ against plain rounding with the same 3-bit grid on a strongly
 * correlated H (AR(1), rho 0.98).  Measured loss ratio 0.041; the row
 * gains then take another 0.85% off.  Also checks that nwc_ldlq_gptq() is
 * the driver with that grid, and (c) the row gains and the loss function.
 */
static void test_gain_over_rtn(void)
{
	const uint32_t m = 64, n = 256;
	struct minmax_ctx g = { .m = m, .maxq = 7 };
	float *h = make_h(n, 512, 0.98, NULL, 0);
	float *w = t_xmalloc((size_t)m * n * sizeof(*w));
	float *u = t_xmalloc((size_t)n * n * sizeof(*u));
	float *rtn = t_xmalloc((size_t)m * n * sizeof(*rtn));
	float *lq = t_xmalloc((size_t)m * n * sizeof(*lq));
	float *gq = t_xmalloc((size_t)m * n * sizeof(*gq));
	float alpha[64];
	double l_rtn = 0, l_lq = 0, l_fn, l_sc = 0;

	fill_w(w, (size_t)m * n);
	for (uint32_t r = 0; r < m; r++) {
		double lo = 0, hi = 0;

		for (uint32_t j = 0; j < n; j++) {
			lo = fmin(lo, w[r * n + j]);
			hi = fmax(hi, w[r * n + j]);
		}
		g.scale[r] = (float)((hi - lo) / 7);
		g.zero[r] = (float)rint(-lo / g.scale[r]);
	}
	T_EQ(nwc_ldlq_factor(h, n, NWC_LDLQ_DAMP, u), 0);
	T_EQ(nwc_ldlq_run(w, m, n, NULL, minmax_quant, &g, rtn), 0);
	T_EQ(nwc_ldlq_run(w, m, n, u, minmax_quant, &g, lq), 0);
	T_EQ(nwc_ldlq_gptq(w, m, n, h, 3, gq), 0);
	T_MEMEQ(gq, lq, (size_t)m * n * sizeof(*lq));

	for (uint32_t r = 0; r < m; r++) {
		l_rtn += row_loss(w + r * n, rtn + r * n, 1, h, n);
		l_lq += row_loss(w + r * n, lq + r * n, 1, h, n);
	}
	printf("# proxy loss ldlq/rtn = %.4f\n", l_lq / l_rtn);
	T_CHECK(l_lq < 0.2 * l_rtn);

	T_EQ(nwc_ldlq_proxy_loss(w, lq, m, n, h, &l_fn), 0);
	T_CHECK(fabs(l_fn - l_lq) < 1e-5 * l_lq);

	/* (c) no row gets worse with its gain */
	T_EQ(nwc_ldlq_row_scale(w, lq, m, n, h, alpha), 0);
	for (uint32_t r = 0; r < m; r++) {
		double before = row_loss(w + r * n, lq + r * n, 1, h, n);
		double after = row_loss(w + r * n, lq + r * n, alpha[r], h, n);

		T_CHECK(after <= before * (1 + 1e-6));
		l_sc += after;
	}
	printf("# proxy loss with row gains / without = %.4f\n", l_sc / l_lq);
	T_CHECK(l_sc < l_lq);
	free(gq);
	free(lq);
	free(rtn);
	free(u);
	free(w);
	free(h);
}

/*
 * (c) What = W / alpha0 per row: powers of two are recovered exactly (the
 * two dot products scale exactly), others within float rounding; a zero
 * row of What gets 1.
 */
static void test_row_scale_known(void)
{
	static const float a0[] = { 0.5f, 2, 4, 0.25f, 1, 8, 1.3f, -0.7f, 1 };
	const uint32_t m = NWC_ARRAY_SIZE(a0), n = 33;
	float *h = make_h(n, 50, 0.7, NULL, 0);
	float *w = t_xmalloc((size_t)m * n * sizeof(*w));
	float *what = t_xmalloc((size_t)m * n * sizeof(*what));
	float alpha[NWC_ARRAY_SIZE(a0)];

	fill_w(w, (size_t)m * n);
	for (uint32_t r = 0; r < m; r++)
		for (uint32_t j = 0; j < n; j++)
			what[r * n + j] = r == m - 1 ? 0 : w[r * n + j] / a0[r];
	T_EQ(nwc_ldlq_row_scale(w, what, m, n, h, alpha), 0);
	for (uint32_t r = 0; r < 6; r++)
		T_CHECK(alpha[r] == a0[r]);
	T_CHECK(fabsf(alpha[6] - 1.3f) < 1e-5f);
	T_CHECK(fabsf(alpha[7] + 0.7f) < 1e-5f);
	T_CHECK(alpha[m - 1] == 1);
	free(what);
	free(w);
	free(h);
}

/* |w - alpha what|^2 in double. */
static double row_plain(const float *w, const float *what, float alpha,
			uint32_t n)
{
	double s = 0;

	for (uint32_t j = 0; j < n; j++) {
		double d = w[j] - (double)alpha * what[j];

		s += d * d;
	}
	return s;
}

/*
 * (c) One input channel a million times louder than the rest, as the
 * massive activations of LLMs: the unbounded gain of a row follows that
 * one column.  Every row came back 0.9 times too small (plain optimum
 * near 1.11).  Rows whose loud-column weight came back five times too
 * large (unbounded gain near 0.2) or of the wrong sign (negative) keep
 * gain 1, the end of the allowed range nearest to it; rows coded like
 * the rest there keep the unbounded gain, inside the range.  No row's
 * plain error or proxy loss rises.
 */
static void test_row_scale_bounded(void)
{
	const uint32_t m = 24, n = 48;
	float *h = make_h(n, 60, 0.3, NULL, 0);
	float *w = t_xmalloc((size_t)m * n * sizeof(*w));
	float *what = t_xmalloc((size_t)m * n * sizeof(*what));
	float alpha[24];
	int bounded = 0;

	for (uint32_t j = 0; j < n; j++) {
		h[j] *= 1000;
		h[(size_t)j * n] *= 1000;
	}
	fill_w(w, (size_t)m * n);
	for (uint32_t r = 0; r < m; r++) {
		for (uint32_t j = 0; j < n; j++)
			what[r * n + j] = w[r * n + j] * 0.9f +
					  0.01f * (float)urand();
		w[r * n] = 0.02f;
		what[r * n] = r % 3 == 0 ? 0.1f : r % 3 == 1 ? -0.03f : 0.018f;
	}
	T_EQ(nwc_ldlq_row_scale(w, what, m, n, h, alpha), 0);
	for (uint32_t r = 0; r < m; r++) {
		const float *wr = w + r * n, *qr = what + r * n;
		double num = 0, den = 0, free_a;

		for (uint32_t i = 0; i < n; i++)
			for (uint32_t j = 0; j < n; j++) {
				num += (double)wr[i] * h[i * n + j] * qr[j];
				den += (double)qr[i] * h[i * n + j] * qr[j];
			}
		free_a = num / den;
		T_CHECK(row_plain(wr, qr, alpha[r], n) <=
			row_plain(wr, qr, 1, n) * (1 + 1e-6));
		T_CHECK(row_loss(wr, qr, alpha[r], h, n) <=
			row_loss(wr, qr, 1, h, n) * (1 + 1e-6));
		if (r % 3 == 2) {
			T_CHECK(fabs(alpha[r] - free_a) < 1e-5);
		} else {
			T_CHECK(free_a < 0.5);
			T_CHECK(alpha[r] == 1);
			bounded++;
		}
	}
	T_EQ(bounded, 16);
	free(what);
	free(w);
	free(h);
}

static bool finite_all(const float *p, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		if (!isfinite(p[i]))
			return false;
	return true;
}

/* (d) Singular H, dead inputs, an all-zero H, an indefinite H. */
static void test_damping_dead(void)
{
	const uint32_t m = 8, n = 64;
	static const int dead[] = { 0, 3, 63 };
	static const float indef[] = { 1, 2, 2, 1 };
	/* input 0 never varies but H says otherwise: still treated as dead */
	static const float odd[] = {
		0, 0.5f, 0.5f, 0.5f, 1, 0.5f, 0.5f, 0.5f, 1,
	};
	struct grid_ctx g = { .m = m };
	float *h = make_h(n, 4, 0.5, dead, NWC_ARRAY_SIZE(dead));
	float *u = t_xmalloc((size_t)n * n * sizeof(*u));
	float *w = t_xmalloc((size_t)m * n * sizeof(*w));
	float *a = t_xmalloc((size_t)m * n * sizeof(*a));
	float *b = t_xmalloc((size_t)m * n * sizeof(*b));
	float *zero = calloc((size_t)n * n, sizeof(*zero));
	double loss;

	if (!zero)
		exit(99);
	fill_w(w, (size_t)m * n);
	/* rank 4 of 64: only the damping makes it definite */
	T_EQ(nwc_ldlq_factor(h, n, NWC_LDLQ_DAMP, u), 0);
	T_CHECK(finite_all(u, (size_t)n * n));
	for (size_t d = 0; d < NWC_ARRAY_SIZE(dead); d++) {
		for (uint32_t k = 0; k < n; k++) {
			T_CHECK(u[(size_t)dead[d] * n + k] == 0);
			T_CHECK(u[(size_t)k * n + dead[d]] == 0);
		}
	}
	T_EQ(nwc_ldlq_run(w, m, n, u, grid_quant, &g, a), 0);
	T_CHECK(finite_all(a, (size_t)m * n));
	T_EQ(nwc_ldlq_proxy_loss(w, a, m, n, h, &loss), 0);
	T_CHECK(isfinite(loss) && loss >= 0);

	/* a dead input's weights affect only their own column */
	for (uint32_t r = 0; r < m; r++)
		w[r * n + 3] += 5.0f;
	T_EQ(nwc_ldlq_run(w, m, n, u, grid_quant, &g, b), 0);
	for (uint32_t r = 0; r < m; r++)
		for (uint32_t j = 0; j < n; j++)
			T_CHECK(j == 3 || a[r * n + j] == b[r * n + j]);

	/* all inputs dead: no feedback, plain rounding */
	T_EQ(nwc_ldlq_factor(zero, n, NWC_LDLQ_DAMP, u), 0);
	T_MEMEQ(u, zero, (size_t)n * n * sizeof(*u));
	T_EQ(nwc_ldlq_run(w, m, n, u, grid_quant, &g, a), 0);
	T_EQ(nwc_ldlq_run(w, m, n, NULL, grid_quant, &g, b), 0);
	T_MEMEQ(a, b, (size_t)m * n * sizeof(*a));

	T_EQ(nwc_ldlq_factor(odd, 3, 0, u), 0);
	T_CHECK(u[1] == 0 && u[2] == 0 && u[5] == 0.5f);

	T_EQ(nwc_ldlq_factor(indef, 2, 0, u), -EDOM);
	T_EQ(nwc_ldlq_factor(indef, 2, NWC_LDLQ_DAMP, u), -EDOM);
	T_EQ(nwc_ldlq_factor(indef, 2, 2.0f, u), 0);
	/* [[3, 2], [2, 3]] = (I + U) D (I + U)^T: D = (5/3, 3), U01 = 2/3 */
	T_CHECK(fabsf(u[1] - 2.0f / 3) < 1e-6f);
	T_CHECK(u[0] == 0 && u[2] == 0 && u[3] == 0);
	free(zero);
	free(b);
	free(a);
	free(w);
	free(u);
	free(h);
}

/* (e) Same bytes on every run. */
static void test_deterministic(void)
{
	const uint32_t m = 48, n = 200;
	float *h = make_h(n, 300, 0.9, NULL, 0);
	float *w = t_xmalloc((size_t)m * n * sizeof(*w));
	float *a = t_xmalloc((size_t)m * n * sizeof(*a));
	float *b = t_xmalloc((size_t)m * n * sizeof(*b));

	fill_w(w, (size_t)m * n);
	T_EQ(nwc_ldlq_gptq(w, m, n, h, 4, a), 0);
	T_EQ(nwc_ldlq_gptq(w, m, n, h, 4, b), 0);
	T_MEMEQ(a, b, (size_t)m * n * sizeof(*a));
	T_CHECK(memcmp(a, w, (size_t)m * n * sizeof(*a)) != 0);
	free(b);
	free(a);
	free(w);
	free(h);
}

struct fail_ctx {
	uint32_t m;
	int ret;		/* returned for column 1 */
	float bad;		/* written for column 2 */
};

static int fail_quant(void *ctx, uint32_t col, const float *t NWC_UNUSED,
		      float *out)
{
	const struct fail_ctx *f = ctx;

	for (uint32_t r = 0; r < f->m; r++)
		out[r] = col == 2 ? f->bad : 0;
	return col == 1 ? f->ret : 0;
}

/* (f) */
static void test_invalid(void)
{
	static const float h2[] = { 1, 0.5f, 0.5f, 1 };
	static const float hnan[] = { 1, NAN, NAN, 1 };
	static const float hneg[] = { 1, 0, 0, -1 };
	float w[6] = { 1, 2, 3, 4, 5, 6 }, what[6], u[4], alpha[3];
	struct grid_ctx g = { .m = 3 };
	struct fail_ctx f = { .m = 2, .ret = -EIO };
	double loss;

	T_EQ(nwc_ldlq_factor(NULL, 2, 0.01f, u), -EINVAL);
	T_EQ(nwc_ldlq_factor(h2, 2, 0.01f, NULL), -EINVAL);
	T_EQ(nwc_ldlq_factor(h2, 0, 0.01f, u), -EINVAL);
	T_EQ(nwc_ldlq_factor(h2, NWC_LDLQ_MAX_DIM + 1, 0.01f, u), -EINVAL);
	T_EQ(nwc_ldlq_factor(h2, 2, -0.01f, u), -EINVAL);
	T_EQ(nwc_ldlq_factor(h2, 2, NAN, u), -EINVAL);
	T_EQ(nwc_ldlq_factor(hnan, 2, 0.01f, u), -EINVAL);
	T_EQ(nwc_ldlq_factor(hneg, 2, 0.01f, u), -EINVAL);
	T_EQ(nwc_ldlq_factor(h2, 2, 0.01f, u), 0);

	T_EQ(nwc_ldlq_run(NULL, 3, 2, u, grid_quant, &g, what), -EINVAL);
	T_EQ(nwc_ldlq_run(w, 3, 2, u, NULL, &g, what), -EINVAL);
	T_EQ(nwc_ldlq_run(w, 3, 2, u, grid_quant, &g, NULL), -EINVAL);
	T_EQ(nwc_ldlq_run(w, 0, 2, u, grid_quant, &g, what), -EINVAL);
	T_EQ(nwc_ldlq_run(w, 3, 0, u, grid_quant, &g, what), -EINVAL);
	T_EQ(nwc_ldlq_run(w, 3, 2, u, grid_quant, &g, w + 1), -EINVAL);
	T_EQ(nwc_ldlq_run(w, 3, 2, u, grid_quant, &g, what), 0);
	w[4] = INFINITY;
	T_EQ(nwc_ldlq_run(w, 3, 2, u, grid_quant, &g, what), -EINVAL);
	w[4] = 5;

	/* the quantizer's errors come back; columns are 0, 1, 2 in order */
	T_EQ(nwc_ldlq_run(w, 2, 3, u, fail_quant, &f, what), -EIO);
	f.ret = 1;
	T_EQ(nwc_ldlq_run(w, 2, 3, NULL, fail_quant, &f, what), -EINVAL);
	f.ret = 0;
	T_EQ(nwc_ldlq_run(w, 2, 3, NULL, fail_quant, &f, what), 0);
	f.bad = NAN;
	T_EQ(nwc_ldlq_run(w, 2, 3, NULL, fail_quant, &f, what), -ERANGE);
	f.bad = INFINITY;
	T_EQ(nwc_ldlq_run(w, 2, 3, NULL, fail_quant, &f, what), -ERANGE);

	T_EQ(nwc_ldlq_row_scale(w, w, 3, 2, h2, NULL), -EINVAL);
	T_EQ(nwc_ldlq_row_scale(w, w, 3, 2, hnan, alpha), -EINVAL);
	T_EQ(nwc_ldlq_row_scale(w, w, 0, 2, h2, alpha), -EINVAL);
	T_EQ(nwc_ldlq_proxy_loss(w, w, 3, 2, NULL, &loss), -EINVAL);
	T_EQ(nwc_ldlq_proxy_loss(w, w, 3, 2, h2, NULL), -EINVAL);
	T_EQ(nwc_ldlq_proxy_loss(w, w, 3, 2, h2, &loss), 0);
	T_CHECK(loss == 0);

	T_EQ(nwc_ldlq_gptq(w, 3, 2, h2, 0, what), -EINVAL);
	T_EQ(nwc_ldlq_gptq(w, 3, 2, h2, NWC_LDLQ_MAX_BITS + 1, what), -EINVAL);
	T_EQ(nwc_ldlq_gptq(w, 3, 2, NULL, 4, what), -EINVAL);
	T_EQ(nwc_ldlq_gptq(w, 3, 2, hnan, 4, what), -EINVAL);
	T_EQ(nwc_ldlq_gptq(w, 3, 2, h2, NWC_LDLQ_MAX_BITS, what), 0);
	for (int i = 0; i < 6; i++)
		T_CHECK(fabsf(what[i] - w[i]) < 1e-3f);
}

int main(void)
{
	T_RUN(test_gptq_equal);
	T_RUN(test_gptq_replay);
	T_RUN(test_factor_ldl);
	T_RUN(test_gain_over_rtn);
	T_RUN(test_row_scale_known);
	T_RUN(test_row_scale_bounded);
	T_RUN(test_damping_dead);
	T_RUN(test_deterministic);
	T_RUN(test_invalid);
	T_EXIT();
}
