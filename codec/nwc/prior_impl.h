/* SPDX-License-Identifier: MIT */
/*
 * prior_impl.h - private to prior.c (coding tables, libnwcdec.a) and
 * prior_train.c (rate, gradients and quantiles, libnwcenc.a): the layout
 * of a channel's density network and its forward evaluation, which both
 * need.  Inline, so each side evaluates f exactly as before the split and
 * the tables do not change.  Not for other files.
 *
 * Thread safety: constants and pure inline functions only.
 */
#ifndef NWC_PRIOR_IMPL_H
#define NWC_PRIOR_IMPL_H

#include "codec/common/base.h"

#include <math.h>

#include "codec/nwc/prior.h"

#define PR_LAYERS 5
#define PR_WIDTH 3	/* widest layer */
#define NP_CH NWC_PRIOR_CH_PARAMS

/* Layer widths and the parameter offsets inside a channel's block. */
static const unsigned int pr_in[PR_LAYERS] = { 1, 3, 3, 3, 3 };
static const unsigned int pr_out[PR_LAYERS] = { 3, 3, 3, 3, 1 };
static const unsigned int pr_off_h[PR_LAYERS] = { 0, 9, 24, 39, 54 };
static const unsigned int pr_off_b[PR_LAYERS] = { 3, 18, 33, 48, 57 };
static const unsigned int pr_off_a[PR_LAYERS - 1] = { 6, 21, 36, 51 };

/* One channel's parameters after the constraining functions. */
struct pr_chan {
	double w[PR_LAYERS][PR_WIDTH * PR_WIDTH];	/* softplus(H_k) */
	double dw[PR_LAYERS][PR_WIDTH * PR_WIDTH];	/* sigmoid(H_k) */
	double b[PR_LAYERS][PR_WIDTH];
	double t[PR_LAYERS][PR_WIDTH];		/* tanh(a_k) */
	double dt[PR_LAYERS][PR_WIDTH];		/* 1 - tanh(a_k)^2 */
};

/* What the backward pass needs from one forward evaluation. */
struct pr_act {
	double in[PR_LAYERS][PR_WIDTH];		/* input of layer k */
	double th[PR_LAYERS][PR_WIDTH];		/* tanh(pre-gate output) */
};

static inline double pr_softplus(double x)
{
	return x > 30 ? x : log1p(exp(x));
}

static inline double pr_sigmoid(double x)
{
	double e;

	if (x >= 0)
		return 1 / (1 + exp(-x));
	e = exp(x);
	return e / (1 + e);
}

static inline void pr_prepare(const float *p, struct pr_chan *pc)
{
	for (unsigned int k = 0; k < PR_LAYERS; k++) {
		unsigned int nw = pr_in[k] * pr_out[k];

		for (unsigned int i = 0; i < nw; i++) {
			double h = p[pr_off_h[k] + i];

			pc->w[k][i] = pr_softplus(h);
			pc->dw[k][i] = pr_sigmoid(h);
		}
		for (unsigned int j = 0; j < pr_out[k]; j++) {
			pc->b[k][j] = p[pr_off_b[k] + j];
			if (k < PR_LAYERS - 1) {
				double t = tanh((double)p[pr_off_a[k] + j]);

				pc->t[k][j] = t;
				pc->dt[k][j] = 1 - t * t;
			}
		}
	}
}

/* f(x) of one channel, keeping what pr_backward() needs in @a. */
static inline double pr_forward(const struct pr_chan *pc, double x,
				struct pr_act *a)
{
	double z[PR_WIDTH];

	a->in[0][0] = x;
	for (unsigned int k = 0;; k++) {
		unsigned int ni = pr_in[k], no = pr_out[k];

		for (unsigned int j = 0; j < no; j++) {
			double s = pc->b[k][j];

			for (unsigned int i = 0; i < ni; i++)
				s += pc->w[k][j * ni + i] * a->in[k][i];
			z[j] = s;
		}
		if (k == PR_LAYERS - 1)
			return z[0];
		for (unsigned int j = 0; j < no; j++) {
			double th = tanh(z[j]);

			a->th[k][j] = th;
			a->in[k + 1][j] = z[j] + pc->t[k][j] * th;
		}
	}
}

/*
 * p(y), bounded below, from f at y +- 1/2 (kept in *fu, *fl, @au, @al for
 * the backward pass).
 */
static inline double pr_likelihood(const struct pr_chan *pc, double y,
				   double *fu, double *fl, struct pr_act *au,
				   struct pr_act *al)
{
	double s, p;

	*fu = pr_forward(pc, y + 0.5, au);
	*fl = pr_forward(pc, y - 0.5, al);
	/* Evaluate on the side where both sigmoids are small. */
	s = *fu + *fl > 0 ? -1 : 1;
	p = s * (pr_sigmoid(s * *fu) - pr_sigmoid(s * *fl));
	return p >= NWC_PRIOR_LIKELIHOOD_MIN ? p : NWC_PRIOR_LIKELIHOOD_MIN;
}

#endif /* NWC_PRIOR_IMPL_H */
