/* SPDX-License-Identifier: MIT */
/*
 * lossy.h - mkfs.nwc's lossy policy: which tensors the neural codec takes,
 * the importance level of each input column, and the choice of a codec
 * model (rate point) per tensor so that the lossy tensors average a bit
 * target with the least output distortion.
 *
 *	nwc_lossy_select(&pol, name, dtype, ndim, shape, &fixed);
 *	nwc_lossy_levels(h, n, NWC_LOSSY_PROMOTE, level);
 *	nwc_lossy_estimate(models, nm, w, m, n, level, h, &o, bits, dist);
 *	nwc_lossy_allocate(nt, nm, bits, dist, weights, fixed, target, pick);
 *
 * Distortion is the layer-output proxy sum_j H_jj |w_j - what_j|^2 when
 * calibration statistics exist, else plain squared error, relative to the
 * tensor's own (equally weighted) energy: the allocation then equalizes
 * the slope of each layer's output SNR, which measured better perplexity
 * than absolute errors in 7 of 8 settings on stories260K.  When every
 * tensor also has sensitivities (the mean square loss gradient of each
 * output row, calib.h), each tensor's relative distortion is weighted by
 * how much of the model's loss one unit of it costs (nwc_lossy_weigh()).
 * Stateless; every function is reentrant.
 */
#ifndef NWC_LOSSY_H
#define NWC_LOSSY_H

#include "codec/common/base.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwctensor.h"
#include "codec/nwc/tenc.h"

#define NWC_LOSSY_MIN_ELEMS 1024u	/* smaller matrices stay lossless */
#define NWC_LOSSY_SAMPLE_COLS 96u	/* columns a rate estimate codes */
#define NWC_LOSSY_MAX_RULES 64u

/* One --keep or --bits rule, matched with fnmatch() on the tensor name. */
struct nwc_lossy_rule {
	const char *glob;
	double bits;		/* < 0: keep lossless */
};

struct nwc_lossy_policy {
	struct nwc_lossy_rule rule[NWC_LOSSY_MAX_RULES];
	unsigned int nrules;	/* later rules win */
	bool keep_default;	/* keep embeddings and the output head */
};

/*
 * nwc_lossy_select() - whether tensor @name goes through the codec: a 2-D
 * F32/F16/BF16 matrix of at least NWC_LOSSY_MIN_ELEMS weights, not an
 * embedding or output head (unless a rule names it), not kept by a rule.
 * *fixed_bits is the rule's bit rate, or -1 to leave it to the allocation.
 */
bool nwc_lossy_select(const struct nwc_lossy_policy *pol, const char *name,
		      unsigned int dtype, unsigned int ndim,
		      const uint64_t *shape, double *fixed_bits);

/*
 * nwc_lossy_levels() - importance level of each of the @n input columns
 * from diag(H) (@h is n x n; NULL: every column level 0): the top share
 * @promote of columns (NWC_LOSSY_PROMOTE by default, mkfs.nwc
 * --calib-promote) level 1, the rest 0.  Ties broken by column index.  The
 * paper also gives the top 1.1% level 2 and the top 0.1% level 3, but
 * the shipped models code those levels far less efficiently (4 to 11 dB
 * below ECSQ at their rates, bench/codecbench), and leaving them out
 * lowered the perplexity of calibrated stories260K images at every --bits
 * from 3 to 6 (4.986 instead of 5.090 at 4 bits).
 */
#define NWC_LOSSY_PROMOTE 0.111
int nwc_lossy_levels(const float *h, uint32_t n, double promote,
		     uint8_t *level);

/*
 * nwc_lossy_estimate() - bits per weight (side data at full size
 * included), relative distortion and loss increase of coding W (m x n)
 * with each of @nm models, from a trial encode of NWC_LOSSY_SAMPLE_COLS
 * evenly spaced columns scaled to the whole matrix.  @h may be NULL.
 * loss[k] is sum_i g_i sum_j H_jj (w_ij - what_ij)^2, the second-order
 * estimate of twice the model's loss increase per token when @g holds the
 * mean square loss gradient of each output row (the sensitivities of
 * calib.h); 0 when @g is NULL.  @o gives the quantizer; LDLQ is not used
 * here.  Returns 0 or a negative errno from the codec.
 */
int nwc_lossy_estimate(struct nwc_model *const *models, unsigned int nm,
		       const float *w, uint32_t m, uint32_t n,
		       const uint8_t *level, const float *h, const float *g,
		       const struct nwc_tenc_opts *o, double *bits,
		       double *dist, double *loss);

/*
 * nwc_lossy_weigh() - multiply a tensor's @nm relative distortions @dist
 * by its sensitivity s to the @power (NWC_LOSSY_SENS_POWER by default,
 * mkfs.nwc --calib-sens-power), where s = sum of its loss estimates / sum
 * of @dist (nwc_lossy_estimate()): the loss increase a unit of relative
 * distortion causes.  Power 1 (the loss estimates themselves) trusts a
 * second-order estimate from a few thousand tokens too far: on
 * SmolLM2-135M at 4 bits it moved most bits to the first layers and lost
 * to the unweighted allocation (power 0), while 0.5 beat both (README,
 * Lossy images).
 */
#define NWC_LOSSY_SENS_POWER 0.5
void nwc_lossy_weigh(unsigned int nm, const double *loss, double power,
		     double *dist);

/*
 * nwc_lossy_allocate() - choose model pick[t] for each of @nt tensors.
 * @bits, @dist: nt x nm estimates; @weights: weights per tensor; @fixed:
 * per tensor a fixed bit rate (the model whose estimate is nearest), or < 0
 * for free tensors.  Free tensors minimise total distortion with total
 * bits at most @target times all weights (less what the fixed ones take);
 * if even the cheapest models exceed it, every free tensor gets its
 * cheapest.  Returns 0 or -EINVAL.
 */
int nwc_lossy_allocate(size_t nt, unsigned int nm, const double *bits,
		       const double *dist, const uint64_t *weights,
		       const double *fixed, double target, unsigned int *pick);

#endif /* NWC_LOSSY_H */
