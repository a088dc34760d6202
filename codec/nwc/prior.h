/* SPDX-License-Identifier: MIT */
/*
 * prior.h - the learned factorized prior of the NWC latents: one univariate
 * density per latent channel (Balle et al. 2018, "fully factorized"
 * non-parametric model), its rate and gradients for training, the auxiliary
 * quantile loss, and the integer tables the entropy coder uses.
 *
 *	float *p = malloc(nwc_prior_nparams(C) * sizeof(*p)), q[3 * C];
 *	nwc_prior_init(p, q, C, seed);
 *	nwc_prior_bits(p, C, y, n, coff_of_row, &bits, NULL, dp, dy);
 *	nwc_prior_aux(p, q, C, &aux, dq);
 *	nwc_prior_tables(p, q, C, tabs, medians);	// at save time
 *
 * Per channel c a monotone function f_c: R -> R is a chain of five layers
 * of widths 1 -> 3 -> 3 -> 3 -> 3 -> 1.  Layer k computes
 *	z = softplus(H_k) z + b_k,
 * and every layer but the last then adds a gate, z = z + tanh(a_k) * tanh(z)
 * (elementwise).  softplus keeps the matrices positive and tanh(a) > -1
 * keeps the gate increasing, so f_c is increasing and sigmoid(f_c) is a
 * cumulative distribution.  The likelihood of a latent y (noisy in
 * training, rounded around the median at coding time) is the mass of the
 * unit interval around it:
 *	p(y) = sigmoid(f(y + 1/2)) - sigmoid(f(y - 1/2)),
 * computed on the side of the distribution where it does not cancel, and
 * bounded below by NWC_PRIOR_LIKELIHOOD_MIN.
 *
 * Parameter layout (floats): channel c owns the block
 * params[c * NWC_PRIOR_CH_PARAMS ...], and inside it, for k = 0 .. 4 in
 * order: H_k (out x in, row-major), b_k (out), then a_k (out) for k < 4.
 * With widths 1,3,3,3,3,1 the offsets are
 *	k=0: H 0..2    b 3..5    a 6..8
 *	k=1: H 9..17   b 18..20  a 21..23
 *	k=2: H 24..32  b 33..35  a 36..38
 *	k=3: H 39..47  b 48..50  a 51..53
 *	k=4: H 54..56  b 57
 * 58 floats per channel.  Quantiles are a separate float[3 * C]:
 * quantiles[3c + 0, 1, 2] = lower, median, upper of channel c.  They are
 * fitted by their own loss (nwc_prior_aux) and optimizer and do not enter
 * the likelihood; the median centres the quantizer and the table, the
 * outer two bound the table's range.
 *
 * Gradients are accumulated (+=) into caller arrays, so a trainer can split
 * a batch over threads, give each its own gradient buffers and add them.
 *
 * Sides: nwc_prior_tables() (what finalizing a model needs) is prior.c in
 * libnwcdec.a; the functions marked "training side" are prior_train.c in
 * libnwcenc.a, which the read-only daemon does not link.
 *
 * Thread safety: every function is pure over caller arrays and reentrant.
 */
#ifndef NWC_PRIOR_H
#define NWC_PRIOR_H

#include "codec/common/base.h"
#include "codec/nwc/entropy.h"

#define NWC_PRIOR_CH_PARAMS 58u		/* floats per channel */
#define NWC_PRIOR_INIT_SCALE 10.0	/* initial width of every density */
#define NWC_PRIOR_TAIL_MASS 1e-9	/* mass outside [lower, upper] */
#define NWC_PRIOR_LIKELIHOOD_MIN 1e-9	/* floor of p(y) in the rate */

/* Number of floats of the parameter array for @C channels. */
static inline size_t nwc_prior_nparams(unsigned int C)
{
	return (size_t)C * NWC_PRIOR_CH_PARAMS;
}

/*
 * nwc_prior_init() - training side: initial parameters and quantiles from
 * @seed.
 *
 * softplus(H_k) = 1 / (s * out_k) with s = INIT_SCALE^(1/5) (out_k the
 * layer's output width), a_k = 0 and b_k uniform in [-1/2, 1/2) from a
 * splitmix64 stream of @seed.  With zero biases this makes
 * f(x) = x / INIT_SCALE exactly: a logistic density of scale 10, wide
 * enough for any latent the encoder starts with.  Quantiles start at
 * (-INIT_SCALE, 0, INIT_SCALE).  Either array may be NULL.
 * Returns 0 or -EINVAL (C == 0).
 */
int nwc_prior_init(float *params, float *quantiles, unsigned int C,
		   uint64_t seed);

/*
 * nwc_prior_bits() - training side: rate of a batch of latents under the
 * prior.
 * @y:		n rows (chunks) of C latents, row-major (y[i * C + c])
 * @row_w:	n per-row weights (the level's rate coefficient), or NULL
 *		for weight 1
 * @bits:	out: sum over rows of row_w[i] * sum_c -log2 p(y[i, c])
 * @row_bits:	optional out: n unweighted per-row sums of -log2 p
 * @dparams:	optional, nwc_prior_nparams(C) floats: += d(bits)/d(params)
 * @dy:		optional, n * C floats: += d(bits)/d(y)
 *
 * Where p(y) is at its floor the gradient is still that of -log2 p at the
 * floor's value (straight through), so training keeps pulling mass
 * towards far-out latents instead of seeing a flat loss.  Internal
 * arithmetic is double.  Returns 0 or -EINVAL (C == 0, n * C overflows).
 */
int nwc_prior_bits(const float *params, unsigned int C, const float *y,
		   size_t n, const float *row_w, double *bits, double *row_bits,
		   float *dparams, float *dy);

/*
 * nwc_prior_aux() - training side: the auxiliary quantile loss
 *	sum_c sum_i | f_c(quantiles[3c + i]) - target_i |,
 * targets (-t, 0, t) with t = log(2 / NWC_PRIOR_TAIL_MASS - 1), so that at
 * its minimum the lower and upper quantiles leave TAIL_MASS / 2 of the
 * distribution on each side and the median splits it in half.  Writes
 * *loss and, if @dquant is given (3 * C floats), += d(loss)/d(quantiles).
 * The density parameters get no gradient from this loss.
 * Returns 0 or -EINVAL.
 */
int nwc_prior_aux(const float *params, const float *quantiles, unsigned int C,
		  double *loss, float *dquant);

/*
 * nwc_prior_solve_quantiles() - training side: the quantiles at which the
 * aux loss is zero, found by bisection on each channel's f (increasing)
 * to full double precision, starting from the current ones.  The aux optimizer
 * moves quantiles slowly, too slowly to follow latents that grow during
 * training; a trainer calls this before it builds tables or saves.
 * Returns 0, -EINVAL, or -EDOM (no finite solution, or a density so
 * narrow that float quantiles would not stay ordered).
 */
int nwc_prior_solve_quantiles(const float *params, float *quantiles,
			      unsigned int C);

/*
 * nwc_prior_tables() - integer coding tables, one per channel.
 *
 * Channel c codes offsets v = round(y - median_c); the decoder rebuilds
 * yhat = v + median_c.  Its table covers v in
 * [floor(lower_c - median_c), ceil(upper_c - median_c)] (always containing
 * 0), narrowed so that it has at most NWC_QDIST_MAX_SYMS - 1 values (the
 * side further from 0 gives way first; values beyond go through the
 * escape).  pmf(v) = p(median_c + v) as in the rate; the escape gets the
 * mass outside the range, sigmoid(f(m + lo - 1/2)) + sigmoid(-f(m + hi +
 * 1/2)), which is 1 - sum pmf computed without cancellation.
 *
 * @out receives C tables (free each with nwc_qdist_free), @medians (may be
 * NULL) the C medians as floats, exactly the values the decoder must add.
 * On failure nothing is left allocated.  Returns 0, -EINVAL (C == 0 or a
 * non-finite quantile) or -ENOMEM.
 */
int nwc_prior_tables(const float *params, const float *quantiles,
		     unsigned int C, struct nwc_qdist **out, float *medians);

#endif /* NWC_PRIOR_H */
