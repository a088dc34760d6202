/* SPDX-License-Identifier: MIT */
/* ldlq.c - LDLQ/GPTQ error feedback, row gains and proxy loss under H. */
#include "codec/common/base.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec/nwc/cholesky.h"
#include "codec/nwc/gemm.h"
#include "codec/nwc/ldlq.h"

#define BS NWC_LDLQ_BLOCK
#define SUB 16u			/* width of the rank-1 sub-blocks */
#define ROWS_PER_GEMM 256u	/* row chunk of the H products */

static int check_dims(uint32_t m, uint32_t n)
{
	if (m < 1 || n < 1 || m > NWC_LDLQ_MAX_DIM || n > NWC_LDLQ_MAX_DIM)
		return -EINVAL;
	if ((size_t)m > SIZE_MAX / sizeof(double) / n ||
	    (size_t)n > SIZE_MAX / sizeof(double) / n)
		return -EINVAL;
	return 0;
}

static bool all_finite(const float *p, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		if (!isfinite(p[i]))
			return false;
	return true;
}

static bool overlap(const float *a, const float *b, size_t cnt)
{
	uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
	size_t len = cnt * sizeof(float);

	return pa < pb + len && pb < pa + len;
}

/*
 * Fill the lower triangle of A = P Hd P, where P reverses the index order
 * and Hd is H with dead inputs isolated (diagonal 1, rest of row and column
 * 0) and damping added.  Cholesky of A = L L^T then gives H = R R^T with
 * R = P L P upper triangular.
 */
static int load_reversed(const float *h, uint32_t n, float damp, double *a)
{
	size_t nn = n;
	double mean = 0, reg;

	for (size_t i = 0; i < nn; i++) {
		float d = h[i * nn + i];

		if (!isfinite(d) || d < 0)
			return -EINVAL;
		mean += d == 0 ? 1.0 : d;
	}
	reg = (double)damp * (mean / nn);

	for (size_t ra = 0; ra < nn; ra++) {
		size_t i = nn - 1 - ra;
		const float *hrow = h + i * nn;
		double *arow = a + ra * nn;
		bool dead = hrow[i] == 0;

		for (size_t rb = 0; rb < ra; rb++) {
			size_t j = nn - 1 - rb;
			float v = hrow[j];

			if (!isfinite(v))
				return -EINVAL;
			arow[rb] = dead || h[j * nn + j] == 0 ? 0.0 : v;
		}
		arow[ra] = (dead ? 1.0 : hrow[i]) + reg;
	}
	return 0;
}

/*
 * With H = R R^T, R upper, write R = (I + U) S with S = diag(R): then
 * H = (I + U) S^2 (I + U)^T, so U[k][j] = R[k][j] / R[j][j] for k < j, and
 * R[k][j] = L[n-1-k][n-1-j].
 */
int nwc_ldlq_factor(const float *h, uint32_t n, float damp, float *u)
{
	size_t nn = n;
	double *a;
	int ret;

	if (!h || !u || check_dims(1, n) || !isfinite(damp) || damp < 0)
		return -EINVAL;

	/* calloc: the strict upper triangle is never read, but defined. */
	a = calloc(nn * nn, sizeof(*a));
	if (!a)
		return -ENOMEM;
	ret = load_reversed(h, n, damp, a);
	if (ret)
		goto out_free_a;
	ret = nwc_dcholesky((int)n, a, (int)n);
	if (ret)
		goto out_free_a;

	for (size_t k = 0; k < nn; k++) {
		const double *lrow = a + (nn - 1 - k) * nn;
		float *urow = u + k * nn;

		memset(urow, 0, (k + 1) * sizeof(*urow));
		for (size_t j = k + 1; j < nn; j++) {
			size_t rj = nn - 1 - j;
			float v = (float)(lrow[rj] / a[rj * nn + rj]);

			if (!isfinite(v)) {
				ret = -EDOM;
				goto out_free_a;
			}
			urow[j] = v;
		}
	}
out_free_a:
	free(a);
	return ret;
}

/*
 * Copy columns s..s+nb of What (targets so far) and W into rows of tgt and
 * err, so every column is contiguous.  Tiles of 64 rows keep both sides
 * in cache.
 */
static void load_block(const float *w, const float *what, size_t m, size_t n,
		       size_t s, size_t nb, float *tgt, float *err)
{
	for (size_t r0 = 0; r0 < m; r0 += 64) {
		size_t r1 = NWC_MIN(r0 + 64, m);

		for (size_t jj = 0; jj < nb; jj++) {
			for (size_t r = r0; r < r1; r++) {
				tgt[jj * m + r] = what[r * n + s + jj];
				err[jj * m + r] = w[r * n + s + jj];
			}
		}
	}
}

static void store_block(float *what, size_t m, size_t n, size_t s, size_t nb,
			const float *q)
{
	for (size_t r0 = 0; r0 < m; r0 += 64) {
		size_t r1 = NWC_MIN(r0 + 64, m);

		for (size_t r = r0; r < r1; r++)
			for (size_t jj = 0; jj < nb; jj++)
				what[r * n + s + jj] = q[jj * m + r];
	}
}

static void axpy(float *restrict y, float a, const float *restrict x,
		 size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		y[i] += a * x[i];
}

/*
 * Quantize columns s..s+nb.  The same lazy scheme one level down: within
 * a sub-block of SUB columns each error is fed forward at once (rank-1
 * updates that stay in cache), then one sgemm feeds the sub-block's
 * errors to the rest of the block.  tgt rows end up holding the quantized
 * columns and err rows W - What.
 */
static int quant_block(const float *u, size_t m, size_t n, size_t s,
		       size_t nb, nwc_ldlq_quant_fn quant, void *ctx,
		       float *tgt, float *err, float *q)
{
	for (size_t s0 = 0, s1; s0 < nb; s0 = s1) {
		s1 = NWC_MIN(s0 + SUB, nb);
		for (size_t jj = s0; jj < s1; jj++) {
			size_t j = s + jj;
			float *t = tgt + jj * m, *e = err + jj * m;
			int ret;

			ret = quant(ctx, (uint32_t)j, t, q);
			if (ret)
				return ret < 0 ? ret : -EINVAL;
			if (!all_finite(q, m))
				return -ERANGE;
			for (size_t r = 0; r < m; r++) {
				e[r] -= q[r];
				t[r] = q[r];
			}
			if (!u)
				continue;
			for (size_t ii = jj + 1; ii < s1; ii++)
				axpy(tgt + ii * m, u[j * n + s + ii], e, m);
		}
		if (u && s1 < nb)
			nwc_sgemm(true, false, (int)(nb - s1), (int)m,
				  (int)(s1 - s0), 1.0f,
				  u + (s + s0) * n + s + s1, (int)n,
				  err + s0 * m, (int)m, 1.0f, tgt + s1 * m,
				  (int)m);
	}
	return 0;
}

/*
 * GPTQ's lazy batch updates: What holds W plus the feedback of all
 * finished blocks; a block's own columns get theirs in quant_block(),
 * and its errors reach all later columns in one sgemm:
 * What[:, e:] += E[:, s:e] U[s:e, e:].
 */
int nwc_ldlq_run(const float *w, uint32_t m, uint32_t n, const float *u,
		 nwc_ldlq_quant_fn quant, void *ctx, float *what)
{
	size_t mm = m, nn = n;
	float *tgt, *err, *q;
	int ret = -ENOMEM;

	if (!w || !quant || !what || check_dims(m, n) ||
	    overlap(w, what, mm * nn))
		return -EINVAL;
	if (!all_finite(w, mm * nn))
		return -EINVAL;

	tgt = malloc(BS * mm * sizeof(*tgt));
	if (!tgt)
		return -ENOMEM;
	err = malloc(BS * mm * sizeof(*err));
	if (!err)
		goto out_free_tgt;
	q = malloc(mm * sizeof(*q));
	if (!q)
		goto out_free_err;

	memcpy(what, w, mm * nn * sizeof(*what));
	for (size_t s = 0, e; s < nn; s = e) {
		size_t nb = NWC_MIN(nn - s, (size_t)BS);

		e = s + nb;
		load_block(w, what, mm, nn, s, nb, tgt, err);
		ret = quant_block(u, mm, nn, s, nb, quant, ctx, tgt, err, q);
		if (ret)
			goto out_free_q;
		store_block(what, mm, nn, s, nb, tgt);
		if (u && e < nn)
			nwc_sgemm(true, false, (int)m, (int)(nn - e), (int)nb,
				  1.0f, err, (int)m, u + s * nn + e, (int)n,
				  1.0f, what + e, (int)n);
	}
	ret = 0;
out_free_q:
	free(q);
out_free_err:
	free(err);
out_free_tgt:
	free(tgt);
	return ret;
}

static double dot(const float *a, const float *b, size_t n)
{
	double acc = 0;

	for (size_t i = 0; i < n; i++)
		acc += (double)a[i] * b[i];
	return acc;
}

static int check_pair(const float *w, const float *what, uint32_t m,
		      uint32_t n, const float *h)
{
	size_t cnt = (size_t)m * n;

	if (!w || !what || !h || check_dims(m, n))
		return -EINVAL;
	if (!all_finite(w, cnt) || !all_finite(what, cnt) ||
	    !all_finite(h, (size_t)n * n))
		return -EINVAL;
	return 0;
}

int nwc_ldlq_row_scale(const float *w, const float *what, uint32_t m,
		       uint32_t n, const float *h, float *alpha)
{
	size_t nn = n, chunk = NWC_MIN((size_t)m, (size_t)ROWS_PER_GEMM);
	float *p;
	int ret;

	if (!alpha)
		return -EINVAL;
	ret = check_pair(w, what, m, n, h);
	if (ret)
		return ret;
	p = malloc(chunk * nn * sizeof(*p));
	if (!p)
		return -ENOMEM;

	for (size_t r0 = 0; r0 < m; r0 += chunk) {
		size_t rows = NWC_MIN(chunk, m - r0);

		nwc_sgemm(false, false, (int)rows, (int)n, (int)n, 1.0f,
			  what + r0 * nn, (int)n, h, (int)n, 0.0f, p, (int)n);
		for (size_t i = 0; i < rows; i++) {
			size_t r = r0 + i;
			const float *wr = w + r * nn, *qr = what + r * nn;
			double num = dot(wr, p + i * nn, nn);
			double den = dot(qr, p + i * nn, nn);
			double qq = dot(qr, qr, nn), a = num / den, lo, hi;

			if (!(den > 0) || !(qq > 0) || !isfinite(a)) {
				alpha[r] = 1.0f;
				continue;
			}
			/* The gains that keep the plain error at most its value
			 * at 1 lie between 1 and its mirror image about the
			 * plain optimum; the proxy loss, convex, is no higher
			 * at the bound than at 1. */
			lo = 2 * dot(wr, qr, nn) / qq - 1;
			hi = NWC_MAX(lo, 1.0);
			lo = NWC_MIN(lo, 1.0);
			alpha[r] = (float)NWC_MIN(NWC_MAX(a, lo), hi);
		}
	}
	free(p);
	return 0;
}

int nwc_ldlq_proxy_loss(const float *w, const float *what, uint32_t m,
			uint32_t n, const float *h, double *loss)
{
	size_t nn = n, chunk = NWC_MIN((size_t)m, (size_t)ROWS_PER_GEMM);
	double acc = 0;
	float *e, *p;
	int ret;

	if (!loss)
		return -EINVAL;
	ret = check_pair(w, what, m, n, h);
	if (ret)
		return ret;
	e = malloc(2 * chunk * nn * sizeof(*e));
	if (!e)
		return -ENOMEM;
	p = e + chunk * nn;

	for (size_t r0 = 0; r0 < m; r0 += chunk) {
		size_t rows = NWC_MIN(chunk, m - r0);

		for (size_t i = 0; i < rows * nn; i++)
			e[i] = w[r0 * nn + i] - what[r0 * nn + i];
		nwc_sgemm(false, false, (int)rows, (int)n, (int)n, 1.0f, e,
			  (int)n, h, (int)n, 0.0f, p, (int)n);
		acc += dot(e, p, rows * nn);
	}
	free(e);
	*loss = acc;
	return 0;
}

struct gptq_grid {
	size_t m;		/* rows */
	float *scale;		/* (m,) grid step per row */
	float *zero;		/* (m,) grid index of 0.0 per row */
	float maxq;		/* top grid index, 2^bits - 1 */
};

static int gptq_quant(void *ctx, uint32_t col NWC_UNUSED, const float *t,
		      float *out)
{
	const struct gptq_grid *g = ctx;

	for (size_t r = 0; r < g->m; r++) {
		float v = rintf(t[r] / g->scale[r]) + g->zero[r];

		v = v < 0 ? 0 : v > g->maxq ? g->maxq : v;
		out[r] = g->scale[r] * (v - g->zero[r]);
	}
	return 0;
}

/* GPTQ's asymmetric min/max grid: the range always includes 0. */
static void gptq_grid_init(struct gptq_grid *g, const float *w, size_t n)
{
	for (size_t r = 0; r < g->m; r++) {
		const float *row = w + r * n;
		double lo = 0, hi = 0, scale;

		for (size_t j = 0; j < n; j++) {
			lo = NWC_MIN(lo, (double)row[j]);
			hi = NWC_MAX(hi, (double)row[j]);
		}
		if (lo == 0 && hi == 0) {
			lo = -1;
			hi = 1;
		}
		scale = NWC_MAX((hi - lo) / g->maxq, (double)FLT_MIN);
		g->scale[r] = (float)scale;
		g->zero[r] = (float)rint(-lo / g->scale[r]);
	}
}

int nwc_ldlq_gptq(const float *w, uint32_t m, uint32_t n, const float *h,
		  unsigned int bits, float *what)
{
	struct gptq_grid g;
	size_t nn = n;
	float *u;
	int ret;

	if (!w || !h || !what || check_dims(m, n) || bits < 1 ||
	    bits > NWC_LDLQ_MAX_BITS)
		return -EINVAL;
	if (!all_finite(w, (size_t)m * n))
		return -EINVAL;

	g.scale = malloc(2 * (size_t)m * sizeof(*g.scale));
	if (!g.scale)
		return -ENOMEM;
	g.m = m;
	g.zero = g.scale + m;
	g.maxq = (float)((1u << bits) - 1);
	gptq_grid_init(&g, w, n);

	u = malloc(nn * nn * sizeof(*u));
	if (!u) {
		ret = -ENOMEM;
		goto out_free_grid;
	}
	ret = nwc_ldlq_factor(h, n, NWC_LDLQ_DAMP, u);
	if (ret)
		goto out_free_u;
	ret = nwc_ldlq_run(w, m, n, u, gptq_quant, &g, what);
out_free_u:
	free(u);
out_free_grid:
	free(g.scale);
	return ret;
}
