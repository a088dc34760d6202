/* SPDX-License-Identifier: MIT */
/*
 * prior.c - learned factorized prior of the NWC latents (see prior.h):
 * the integer coding tables a model is finalized with.  Decode side
 * (libnwcdec.a); training (rate, gradients, quantiles) is prior_train.c.
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>

#include "codec/nwc/prior.h"
#include "codec/nwc/prior_impl.h"

/* Table range of one channel: offsets lo .. hi around the median. */
static void pr_range(double lower, double med, double upper, int32_t *lo,
		     int32_t *hi)
{
	const double cap = NWC_QDIST_MAX_SYMS - 2;	/* hi - lo */
	double a = -floor(lower - med), b = ceil(upper - med);

	a = a > 0 ? a : 0;
	b = b > 0 ? b : 0;
	if (a + b > cap) {
		double half = floor(cap / 2);

		if (a >= half && b >= half) {
			a = half;
			b = cap - half;
		} else if (a > b) {
			a = cap - b;
		} else {
			b = cap - a;
		}
	}
	*lo = -(int32_t)a;
	*hi = (int32_t)b;
}

int nwc_prior_tables(const float *params, const float *quantiles,
		     unsigned int C, struct nwc_qdist **out, float *medians)
{
	double *pmf;
	unsigned int c;
	int ret = 0;

	if (!C || !params || !quantiles || !out)
		return -EINVAL;
	for (c = 0; c < C; c++) {
		out[c] = NULL;
		for (unsigned int i = 0; i < 3; i++)
			if (!isfinite(quantiles[3 * c + i]))
				return -EINVAL;
	}
	pmf = malloc(NWC_QDIST_MAX_SYMS * sizeof(*pmf));
	if (!pmf)
		return -ENOMEM;
	for (c = 0; c < C; c++) {
		double m = quantiles[3 * c + 1], tail;
		struct pr_chan pc;
		struct pr_act a;
		int32_t lo, hi;
		uint32_t n;

		pr_range(quantiles[3 * c], m, quantiles[3 * c + 2], &lo, &hi);
		n = (uint32_t)(hi - lo) + 1;
		pr_prepare(params + (size_t)c * NP_CH, &pc);
		for (uint32_t k = 0; k < n; k++) {
			struct pr_act al;
			double fu, fl;

			pmf[k] = pr_likelihood(&pc, m + lo + (double)k, &fu,
					       &fl, &a, &al);
			if (!isfinite(pmf[k])) {
				ret = -EINVAL;
				goto out_free_tables;
			}
		}
		tail = pr_sigmoid(pr_forward(&pc, m + lo - 0.5, &a)) +
		       pr_sigmoid(-pr_forward(&pc, m + hi + 0.5, &a));
		if (!isfinite(tail)) {
			ret = -EINVAL;
			goto out_free_tables;
		}
		ret = nwc_qdist_from_pmf(lo, n, pmf, tail, &out[c]);
		if (ret)
			goto out_free_tables;
		if (medians)
			medians[c] = quantiles[3 * c + 1];
	}
	free(pmf);
	return 0;

out_free_tables:
	for (unsigned int i = 0; i < C; i++) {
		if (out[i])
			nwc_qdist_free(out[i]);
		out[i] = NULL;
	}
	free(pmf);
	return ret;
}
