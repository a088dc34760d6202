/* SPDX-License-Identifier: MIT */
/* lossy.c - tensor selection, importance levels and rate allocation. */
#include "codec/common/base.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/image/format.h"
#include "mkfs/pack/lossy.h"

/* Embeddings and output heads: quality-critical and often tied. */
static const char *const default_keep[] = {
	"*embed*", "*lm_head*", "*wte*", "*wpe*", "*word_embeddings*",
	"*position_embeddings*", "*token_type_embeddings*",
};

bool nwc_lossy_select(const struct nwc_lossy_policy *pol, const char *name,
		      unsigned int dtype, unsigned int ndim,
		      const uint64_t *shape, double *fixed_bits)
{
	bool take = true;

	*fixed_bits = -1;
	if (ndim != 2 || (dtype != NWC_DTYPE_F32 && dtype != NWC_DTYPE_F16 &&
			  dtype != NWC_DTYPE_BF16))
		return false;
	if (!shape[0] || !shape[1] || shape[0] > UINT32_MAX / 2 ||
	    shape[1] > UINT32_MAX / 2 ||
	    shape[0] * shape[1] < NWC_LOSSY_MIN_ELEMS)
		return false;
	for (size_t i = 0; pol->keep_default && i < NWC_ARRAY_SIZE(default_keep);
	     i++) {
		if (!fnmatch(default_keep[i], name, 0))
			take = false;
	}
	for (unsigned int i = 0; i < pol->nrules; i++) {
		if (fnmatch(pol->rule[i].glob, name, 0))
			continue;
		take = pol->rule[i].bits >= 0;
		*fixed_bits = take ? pol->rule[i].bits : -1;
	}
	return take;
}

struct col_rank {
	float d;
	uint32_t j;
};

static int cmp_rank(const void *pa, const void *pb)
{
	const struct col_rank *a = pa, *b = pb;

	if (a->d != b->d)
		return a->d > b->d ? -1 : 1;
	return (a->j > b->j) - (a->j < b->j);
}

int nwc_lossy_levels(const float *h, uint32_t n, double promote,
		     uint8_t *level)
{
	/* cumulative fractions of columns at level 3, 2 and 1 (lossy.h) */
	const double top[3] = { 0.0, 0.0, promote };
	struct col_rank *r;

	memset(level, 0, n);
	if (!h)
		return 0;
	r = malloc((size_t)n * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (uint32_t j = 0; j < n; j++) {
		float d = h[(size_t)j * n + j];

		r[j].d = isfinite(d) ? d : 0;
		r[j].j = j;
	}
	qsort(r, n, sizeof(*r), cmp_rank);
	for (uint32_t i = 0; i < n; i++) {
		unsigned int lv = 0;

		/* rank i is in the top fraction f if i < round(f n) */
		for (unsigned int k = 0; k < 3 && !lv; k++) {
			if (i < (uint32_t)lround(top[k] * n))
				lv = 3 - k;
		}
		level[r[i].j] = (uint8_t)lv;
	}
	free(r);
	return 0;
}

int nwc_lossy_estimate(struct nwc_model *const *models, unsigned int nm,
		       const float *w, uint32_t m, uint32_t n,
		       const uint8_t *level, const float *h, const float *g,
		       const struct nwc_tenc_opts *o, double *bits,
		       double *dist, double *loss)
{
	uint32_t ns = n < NWC_LOSSY_SAMPLE_COLS ? n : NWC_LOSSY_SAMPLE_COLS;
	struct nwc_tenc_opts so = *o;
	float *sub, *hd;
	uint8_t *sl;
	uint32_t *col;
	int ret = 0;

	sub = malloc((size_t)m * ns * sizeof(*sub));
	hd = malloc(ns * sizeof(*hd));
	sl = malloc(ns);
	col = malloc(ns * sizeof(*col));
	if (!sub || !hd || !sl || !col) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (uint32_t k = 0; k < ns; k++) {
		col[k] = (uint32_t)(((uint64_t)k * n + n / 2) / ns);
		sl[k] = level[col[k]];
		hd[k] = h ? h[(size_t)col[k] * n + col[k]] : 1.0f;
		for (uint32_t r = 0; r < m; r++)
			sub[(size_t)r * ns + k] = w[(size_t)r * n + col[k]];
	}
	so.h = NULL;
	so.fit_scales = false;
	for (unsigned int k = 0; k < nm && !ret; k++) {
		struct nwc_tenc *e;
		double d = 0, energy = 0, dl = 0, payload;

		ret = nwc_tenc_encode(models[k], 0, sub, m, ns, sl, &so, &e);
		if (ret)
			break;
		for (uint32_t r = 0; r < m; r++) {
			double dr = 0;

			for (uint32_t c = 0; c < ns; c++) {
				double x = (double)sub[(size_t)r * ns + c] -
					   e->what[(size_t)r * ns + c];

				dr += hd[c] * x * x;
				energy += hd[c] * (double)sub[(size_t)r * ns + c] *
					  sub[(size_t)r * ns + c];
			}
			d += dr;
			dl += g ? g[r] * dr : 0;
		}
		payload = 8.0 * (double)(e->coded_bytes - e->side_len) /
			  ((double)m * ns);
		bits[k] = payload + 8.0 * (double)nwc_tside_size(m, n,
				so.scale_f16, nwc_tside_level_bits(level, n), 0) /
			  ((double)m * n);
		dist[k] = energy > 0 ? d / energy : 0;
		/* the sampled columns stand for all n */
		loss[k] = dl * (double)n / ns;
		nwc_tenc_free(e);
	}
out_free:
	free(col);
	free(sl);
	free(hd);
	free(sub);
	return ret;
}

void nwc_lossy_weigh(unsigned int nm, const double *loss, double power,
		     double *dist)
{
	double sl = 0, sd = 0, f;

	for (unsigned int k = 0; k < nm; k++) {
		sl += loss[k];
		sd += dist[k];
	}
	if (!(sd > 0))
		return;		/* no error at any rate: nothing to weigh */
	f = pow(sl / sd, power);
	for (unsigned int k = 0; k < nm; k++)
		dist[k] *= f;
}

/* Free tensors' choices for slope @mu; returns their total bits. */
static double pick_at(size_t nt, unsigned int nm, const double *bits,
		      const double *dist, const uint64_t *weights,
		      const double *fixed, double mu, unsigned int *pick)
{
	double total = 0;

	for (size_t t = 0; t < nt; t++) {
		double best = INFINITY;

		if (fixed[t] >= 0)
			continue;
		for (unsigned int k = 0; k < nm; k++) {
			double b = bits[t * nm + k] * (double)weights[t];
			double j = dist[t * nm + k] + mu * b;

			if (j < best) {
				best = j;
				pick[t] = k;
			}
		}
		total += bits[t * nm + pick[t]] * (double)weights[t];
	}
	return total;
}

int nwc_lossy_allocate(size_t nt, unsigned int nm, const double *bits,
		       const double *dist, const uint64_t *weights,
		       const double *fixed, double target, unsigned int *pick)
{
	double budget = 0, lo = 1e-30, hi = 1e30;

	if (!nm || !(target > 0))
		return -EINVAL;
	for (size_t t = 0; t < nt; t++) {
		budget += target * (double)weights[t];
		if (fixed[t] < 0)
			continue;
		pick[t] = 0;
		for (unsigned int k = 1; k < nm; k++) {
			if (fabs(bits[t * nm + k] - fixed[t]) <
			    fabs(bits[t * nm + pick[t]] - fixed[t]))
				pick[t] = k;
		}
		budget -= bits[t * nm + pick[t]] * (double)weights[t];
	}
	/* The largest slope whose choices fit: bisect in log space. */
	if (pick_at(nt, nm, bits, dist, weights, fixed, hi, pick) > budget)
		return 0;	/* even the cheapest does not fit */
	for (int it = 0; it < 200; it++) {
		double mid = sqrt(lo * hi);

		if (pick_at(nt, nm, bits, dist, weights, fixed, mid, pick) >
		    budget)
			lo = mid;
		else
			hi = mid;
	}
	pick_at(nt, nm, bits, dist, weights, fixed, hi, pick);
	return 0;
}
