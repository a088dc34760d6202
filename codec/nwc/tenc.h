/* SPDX-License-Identifier: MIT */
/*
 * tenc.h - the NWC tensor encoder: one 2-D weight matrix to the side
 * record and band payloads that codec/nwc/nwctensor.h specifies and
 * decodes.  Encode side: tenc.c in libnwcenc.a, which the read-only
 * daemon does not link.
 *
 *	struct nwc_tenc_opts o;
 *	nwc_tenc_opts_init(&o);
 *	nwc_tenc_encode(model, 3, w, m, n, level, &o, &enc);
 *	write enc->side (enc->side_len bytes) and each band enc->band[b]
 *	nwc_tenc_free(enc);
 *
 * The encoder decodes its own output as a reader will (enc->what), so
 * that a caller can measure the error it really ships.
 *
 * Thread safety: calls on different matrices may run at once; a result is
 * immutable once returned, and @model is only read.
 */
#ifndef NWC_TENC_H
#define NWC_TENC_H

#include "codec/common/base.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwctensor.h"

/* The bits per level a side record uses for these @n levels. */
unsigned int nwc_tside_level_bits(const uint8_t *level, uint32_t n);

struct nwc_tenc_opts {
	enum nwc_quant quant;	/* default NWC_QUANT_TCQ */
	bool scale_f16;		/* store row scales as binary16 */
	uint32_t band_rows;	/* multiple of NWC_CHUNK; 0: whole matrix */
	float tcq_mu;		/* TCQ rate weight, latent MSE per bit; 0
				 * (default): rate measured no gain */
	const float *h;		/* n x n input second moment, or NULL: no LDLQ */
	float damp;		/* LDLQ damping (relative to mean diag) */
	bool fit_scales;	/* refit row scales to the outputs (needs @h) */
	const float *row_mul;	/* m factors (finite, > 0) for the stored
				 * row scales, after everything else, or
				 * NULL: the latents stay those of NULL */
	float exact_sd;		/* weights further than this many robust
				 * standard deviations (1.4826 x MAD) from
				 * their row's median are stored exactly
				 * (NWC_TSIDE_EXACT), at most
				 * NWC_TENC_ROW_EXACT(n) a row; 0 (default):
				 * none, else at least NWC_TENC_MIN_EXACT_SD */
	float exact_loud;	/* with @h: every weight of the input
				 * channels whose H diagonal passes this many
				 * times the median channel's (the loudest
				 * NWC_TENC_ROW_EXACT(n)) is stored exactly,
				 * first within that cap; 0 (default): none,
				 * else at least NWC_TENC_MIN_EXACT_LOUD */
	enum nwc_dtype dtype;	/* dtype the decoder writes (rounding) */
	bool seq_order;		/* bands in sequence order, as before
				 * NWC_TSIDE_LANES (for tests) */
};

/* The fewest deviations that make a weight an outlier, and the most
 * outliers a row of n keeps (the furthest). */
#define NWC_TENC_MIN_EXACT_SD 8.0f
#define NWC_TENC_ROW_EXACT(n) ((n) / 64 + 1)
/* The least energy ratio that makes an input channel loud (exact_loud). */
#define NWC_TENC_MIN_EXACT_LOUD 10.0f

/* Defaults: TCQ, f16 scales, one band, mu 0, no H, damp 0.01, no exact
 * weights. */
void nwc_tenc_opts_init(struct nwc_tenc_opts *o);

struct nwc_tenc {
	uint8_t *side;		/* side record */
	size_t side_len;
	uint32_t nbands;
	uint8_t **band;		/* nbands payloads */
	size_t *band_len;
	float *what;		/* m x n: exactly what the decoder gives */
	uint32_t nexact;	/* weights stored exactly (opts.exact_sd) */
	size_t coded_bytes;	/* side + payloads */
};

/*
 * nwc_tenc_encode() - code the m x n row-major matrix @w with @model
 * (finalized) under @opts, with column levels @level (n, each < Q), naming
 * @model_index in the side record.  Returns 0 and the result in *out, or
 * -EINVAL (bad arguments, a level out of range, a non-finite weight),
 * -NWC_EFEATURE (TCQ with a model lacking half-offset tables), -ENOMEM.
 */
int nwc_tenc_encode(const struct nwc_model *model, uint16_t model_index,
		    const float *w, uint32_t m, uint32_t n,
		    const uint8_t *level, const struct nwc_tenc_opts *opts,
		    struct nwc_tenc **out);
void nwc_tenc_free(struct nwc_tenc *e);

#endif /* NWC_TENC_H */
