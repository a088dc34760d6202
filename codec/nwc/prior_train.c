/* SPDX-License-Identifier: MIT */
/*
 * prior_train.c - training side of prior.h: initialization, the rate and
 * its gradients, the auxiliary quantile loss and the quantile solver.
 * Part of libnwcenc.a; the coding tables are prior.c.
 */
#include "codec/common/base.h"

#include <math.h>

#include "codec/nwc/prior.h"
#include "codec/nwc/prior_impl.h"

/* sigmoid'(x), without 1 - sigmoid(x) rounding to zero in the tails. */
static double pr_dsigmoid(double x)
{
	double e = exp(-fabs(x));

	return e / ((1 + e) * (1 + e));
}

/*
 * Backpropagate @g = d(loss)/d(f) through the evaluation @a: add
 * d(loss)/d(params) to @grad (one channel's block, or NULL) and return
 * d(loss)/d(x).
 */
static double pr_backward(const struct pr_chan *pc, const struct pr_act *a,
			  double g, double *grad)
{
	double gz[PR_WIDTH], gin[PR_WIDTH];

	gz[0] = g;
	for (int k = PR_LAYERS - 1; k >= 0; k--) {
		unsigned int ni = pr_in[k], no = pr_out[k];

		/* gz is the gradient of the gate's output; undo the gate. */
		if (k < PR_LAYERS - 1) {
			for (unsigned int j = 0; j < no; j++) {
				double th = a->th[k][j];

				if (grad)
					grad[pr_off_a[k] + j] +=
						gz[j] * th * pc->dt[k][j];
				gz[j] *= 1 + pc->t[k][j] * (1 - th * th);
			}
		}
		for (unsigned int i = 0; i < ni; i++)
			gin[i] = 0;
		for (unsigned int j = 0; j < no; j++) {
			if (grad)
				grad[pr_off_b[k] + j] += gz[j];
			for (unsigned int i = 0; i < ni; i++) {
				unsigned int w = j * ni + i;

				if (grad)
					grad[pr_off_h[k] + w] += gz[j] *
						a->in[k][i] * pc->dw[k][w];
				gin[i] += pc->w[k][w] * gz[j];
			}
		}
		for (unsigned int i = 0; i < ni; i++)
			gz[i] = gin[i];
	}
	return gz[0];
}

/*
 * -log2 p(y) for one value.  With @grad or @dy, also the gradients of
 * @scale * -log2 p(y): added to @grad, written to *dy.
 */
static double pr_nlog2p(const struct pr_chan *pc, double y, double scale,
			double *grad, double *dy)
{
	struct pr_act au, al;
	double fu, fl, p = pr_likelihood(pc, y, &fu, &fl, &au, &al);
	double gp, d;

	if (grad || dy) {
		/* d(-log2 p)/dp at the bounded p: straight through. */
		gp = -scale / (p * M_LN2);
		d = pr_backward(pc, &au, gp * pr_dsigmoid(fu), grad) +
		    pr_backward(pc, &al, -gp * pr_dsigmoid(fl), grad);
		if (dy)
			*dy = d;
	}
	return -log2(p);
}

int nwc_prior_init(float *params, float *quantiles, unsigned int C,
		   uint64_t seed)
{
	/* Five layers share the scale: s^5 = INIT_SCALE. */
	double s = pow(NWC_PRIOR_INIT_SCALE, 1.0 / PR_LAYERS);
	uint64_t st = seed;

	if (!C)
		return -EINVAL;
	for (unsigned int c = 0; params && c < C; c++) {
		float *p = params + (size_t)c * NP_CH;

		for (unsigned int k = 0; k < PR_LAYERS; k++) {
			/* softplus(h) = v  <=>  h = log(expm1(v)) */
			float h = (float)log(expm1(1 / (s * pr_out[k])));

			for (unsigned int i = 0; i < pr_in[k] * pr_out[k]; i++)
				p[pr_off_h[k] + i] = h;
			for (unsigned int j = 0; j < pr_out[k]; j++) {
				/* splitmix64, top 24 bits -> [-0.5, 0.5) */
				uint64_t z = (st += 0x9e3779b97f4a7c15ull);

				z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
				z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
				z ^= z >> 31;
				p[pr_off_b[k] + j] =
					(float)(z >> 40) / 16777216.0f - 0.5f;
				if (k < PR_LAYERS - 1)
					p[pr_off_a[k] + j] = 0;
			}
		}
	}
	for (unsigned int c = 0; quantiles && c < C; c++) {
		quantiles[3 * c] = (float)-NWC_PRIOR_INIT_SCALE;
		quantiles[3 * c + 1] = 0;
		quantiles[3 * c + 2] = (float)NWC_PRIOR_INIT_SCALE;
	}
	return 0;
}

int nwc_prior_bits(const float *params, unsigned int C, const float *y,
		   size_t n, const float *row_w, double *bits, double *row_bits,
		   float *dparams, float *dy)
{
	double total = 0;

	if (!C || !params || !bits || (n && !y) || n > SIZE_MAX / C)
		return -EINVAL;
	if (row_bits)
		for (size_t i = 0; i < n; i++)
			row_bits[i] = 0;
	/* Channel-major, so one channel's gradient sums in doubles. */
	for (unsigned int c = 0; c < C; c++) {
		size_t base = (size_t)c * NP_CH;
		double grad[NP_CH] = { 0 };
		struct pr_chan pc;

		pr_prepare(params + base, &pc);
		for (size_t i = 0; i < n; i++) {
			size_t at = i * C + c;
			double w = row_w ? row_w[i] : 1, d, b;

			b = pr_nlog2p(&pc, y[at], w, dparams ? grad : NULL,
				      dy ? &d : NULL);
			total += w * b;
			if (row_bits)
				row_bits[i] += b;
			if (dy)
				dy[at] += (float)d;
		}
		for (unsigned int k = 0; dparams && k < NP_CH; k++)
			dparams[base + k] += (float)grad[k];
	}
	*bits = total;
	return 0;
}

/* The aux targets: f at the lower quantile, the median, the upper one. */
static double pr_aux_target(unsigned int i)
{
	double t = log(2 / NWC_PRIOR_TAIL_MASS - 1);

	return i == 0 ? -t : i == 1 ? 0 : t;
}

int nwc_prior_aux(const float *params, const float *quantiles, unsigned int C,
		  double *loss, float *dquant)
{
	double total = 0;

	if (!C || !params || !quantiles || !loss)
		return -EINVAL;
	for (unsigned int c = 0; c < C; c++) {
		struct pr_chan pc;

		pr_prepare(params + (size_t)c * NP_CH, &pc);
		for (unsigned int i = 0; i < 3; i++) {
			struct pr_act a;
			double d = pr_forward(&pc, quantiles[3 * c + i], &a) -
				   pr_aux_target(i);

			total += fabs(d);
			if (dquant && d != 0)
				dquant[3 * c + i] += (float)((d > 0 ? 1 : -1) *
					pr_backward(&pc, &a, 1, NULL));
		}
	}
	*loss = total;
	return 0;
}

/* x with f(x) = target: f is increasing, so bracket from @x0, then bisect
 * until the midpoint is one of the ends (full double precision). */
static int pr_solve(const struct pr_chan *pc, double target, double x0,
		    double *out)
{
	double lo = x0, hi = x0, step = 1;
	struct pr_act a;

	while (pr_forward(pc, lo, &a) > target) {
		lo -= step;
		step *= 2;
		if (!isfinite(lo) || step > 1e12)
			return -EDOM;
	}
	step = 1;
	while (pr_forward(pc, hi, &a) < target) {
		hi += step;
		step *= 2;
		if (!isfinite(hi) || step > 1e12)
			return -EDOM;
	}
	for (;;) {
		double mid = 0.5 * (lo + hi);

		if (mid <= lo || mid >= hi)
			break;
		if (pr_forward(pc, mid, &a) < target)
			lo = mid;
		else
			hi = mid;
	}
	*out = 0.5 * (lo + hi);
	return 0;
}

int nwc_prior_solve_quantiles(const float *params, float *quantiles,
			      unsigned int C)
{
	float q[3];

	if (!C || !params || !quantiles)
		return -EINVAL;
	for (unsigned int c = 0; c < C; c++) {
		struct pr_chan pc;

		pr_prepare(params + (size_t)c * NP_CH, &pc);
		for (unsigned int i = 0; i < 3; i++) {
			double x0 = quantiles[3 * c + i], x;
			int ret;

			ret = pr_solve(&pc, pr_aux_target(i),
				       isfinite(x0) ? x0 : 0, &x);
			if (ret)
				return ret;
			q[i] = (float)x;
		}
		/* float rounding must not reorder them */
		if (!(q[0] <= q[1] && q[1] <= q[2]))
			return -EDOM;
		memcpy(quantiles + 3 * c, q, sizeof(q));
	}
	return 0;
}
