/* SPDX-License-Identifier: MIT */
/*
 * quant.h - the scalar quantization baselines of the benchmarks (codecbench
 * and quantize): RTN with min/max per group and entropy-coded uniform
 * scalar quantization (ECSQ) with real rANS bytes.
 *
 *	nwc_quant_rtn(w, rows, cols, 4, 32, what, &bits, &err2);
 *
 *	nwc_quant_ecsq_create(rows * cols, &eb);
 *	nwc_quant_row_scales(w, rows, cols, scale);
 *	ret = nwc_quant_ecsq(eb, w, rows, cols, scale, 0.25, what, &bits,
 *			     &err2);
 *	nwc_quant_ecsq_free(eb);
 *
 * W is rows x cols, row-major.  Each function adds the bits it would store
 * for W to *bits and the sum of squared errors (in double) to *err2, and
 * writes the dequantized weights to @what unless it is NULL.
 * Thread safety: no shared state; a scratch struct serves one thread.
 */
#ifndef NWC_QUANT_H
#define NWC_QUANT_H

#include "codec/common/base.h"

#define NWC_QUANT_HALF_WINDOW 2047	/* q range of a table: <= 4095 values */

/* ECSQ scratch, for tensors of up to max_n weights. */
struct nwc_quant_ecsq {
	size_t max_n;
	int32_t *q, *dec;
	uint8_t *stream;
	size_t cap;
	uint64_t cnt[2 * NWC_QUANT_HALF_WINDOW + 1];
};

/*
 * nwc_quant_rtn() - asymmetric round to nearest with min/max per group of
 * @group consecutive weights of a row (the last group of a row may be
 * shorter), 2^@bits levels; scale and minimum are stored as fp16 and used
 * rounded.  Adds @bits per weight plus 32 per group to *bits.
 */
void nwc_quant_rtn(const float *w, size_t rows, size_t cols,
		   unsigned int bits, size_t group, float *what,
		   uint64_t *total_bits, double *err2);

/*
 * nwc_quant_row_scales() - per row, the std around the mean rounded to
 * fp16 (the RMS where that rounds to 0): ECSQ's row scales.
 */
void nwc_quant_row_scales(const float *w, size_t rows, size_t cols,
			  float *scale);

int nwc_quant_ecsq_create(size_t max_n, struct nwc_quant_ecsq **out);
void nwc_quant_ecsq_free(struct nwc_quant_ecsq *eb);

/*
 * nwc_quant_ecsq() - q = round(w / (scale[r] @step)) per row r, coded with
 * one 16-bit table per tensor built from q's histogram (range cut where
 * escapes are cheaper) and the project's rANS coder, then decoded and
 * checked.  Adds the real stream bytes plus the saved table plus 16 bits
 * per row (the fp16 scale) to *bits.  Returns 0, -EINVAL (more weights
 * than the scratch holds), -NWC_ECORRUPT (the stream did not decode back)
 * or an error of the entropy coder.
 */
int nwc_quant_ecsq(struct nwc_quant_ecsq *eb, const float *w, size_t rows,
		   size_t cols, const float *scale, double step, float *what,
		   uint64_t *total_bits, double *err2);

#endif /* NWC_QUANT_H */
