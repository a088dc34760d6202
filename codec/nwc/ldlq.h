/* SPDX-License-Identifier: MIT */
/*
 * ldlq.h - LDLQ (GPTQ) error feedback for quantizing a linear layer.
 *
 *	nwc_ldlq_factor(h, n, NWC_LDLQ_DAMP, u);
 *	nwc_ldlq_run(w, m, n, u, my_quant, my_ctx, what);
 *	nwc_ldlq_row_scale(w, what, m, n, h, alpha);
 *
 * W is m x n row-major (rows = output channels, columns = input features)
 * and H = E[x x^T] is the n x n second moment of the layer's input.  An
 * approximation What costs the proxy loss tr((W - What) H (W - What)^T).
 * Columns are quantized in order 0..n-1, each from a target that feeds back
 * the errors already made:
 *
 *	target_j = W[:, j] + sum_{k<j} (W[:, k] - What[:, k]) * U[k][j]
 *	What[:, j] = Q_j(target_j)
 *
 * where H = (I + U) D (I + U)^T, U strictly upper triangular, D diagonal.
 * Then (W - What)(I + U) = eta, the matrix of per-column rounding errors
 * target_j - What[:, j], and the loss is sum_j D_j |eta_j|^2.  This is the
 * LDLQ of QuIP; it yields exactly what GPTQ's column loop yields.
 *
 * Matrices are float; the factorization runs in double.  Results are
 * bit-identical for the same inputs on the same CPU type and OpenBLAS
 * build (see gemm.h).
 *
 * Thread safety: no shared state; calls with different outputs may run at
 * once.  nwc_ldlq_run() calls the quantizer from the calling thread only.
 */
#ifndef NWC_LDLQ_H
#define NWC_LDLQ_H

#include "codec/common/base.h"

#define NWC_LDLQ_DAMP 0.01f	/* default damping, times mean(diag H) */
#define NWC_LDLQ_BLOCK 128u	/* columns per lazy feedback update */
#define NWC_LDLQ_MAX_DIM (1u << 20)	/* largest m or n accepted */
#define NWC_LDLQ_MAX_BITS 16u	/* nwc_ldlq_gptq() grid: 1..16 bits */

/*
 * A column quantizer: write Q_col(target) to @out.  Both are m floats,
 * contiguous; @target is only valid during the call.  Return 0 or a
 * negative errno, which aborts nwc_ldlq_run() and is passed back.
 */
typedef int (*nwc_ldlq_quant_fn)(void *ctx, uint32_t col, const float *target,
				 float *out);

/*
 * nwc_ldlq_factor() - the feedback matrix U of the damped H.
 * @h:    n x n, symmetric; only the upper triangle (i <= j) is read
 * @damp: damping: damp * mean(diag H) is added to the diagonal, after
 *        zero diagonal entries (inputs that are always 0) are set to 1;
 *        NWC_LDLQ_DAMP is the usual value
 * @u:    n x n output, strictly upper triangular (zero on and below the
 *        diagonal); U[k][j] is the weight of column k's error in target j.
 *        A dead input's row and column of U are zero.
 * Allocates 8 n^2 bytes while it runs.
 * Returns 0, -EINVAL (bad size, negative or non-finite @damp, non-finite
 * H, negative diagonal), -EDOM (damped H not positive definite: retry with
 * a larger @damp), -ENOMEM.
 */
int nwc_ldlq_factor(const float *h, uint32_t n, float damp, float *u);

/*
 * nwc_ldlq_run() - quantize W column by column with error feedback.
 * @w:     m x n input
 * @u:     n x n from nwc_ldlq_factor(), only its strict upper triangle is
 *         read; NULL for no feedback (plain rounding: target_j = W[:, j])
 * @quant: called once per column, for j = 0..n-1 in order
 * @what:  m x n output, must not overlap @w; undefined after an error
 * Errors are folded into later columns in blocks of NWC_LDLQ_BLOCK
 * columns, one sgemm per block.  Allocates 8 m (NWC_LDLQ_BLOCK + 1) bytes.
 * Returns 0, -EINVAL (bad size or pointer, non-finite W), -ERANGE (the
 * quantizer wrote a non-finite value), -ENOMEM, or the quantizer's error.
 */
int nwc_ldlq_run(const float *w, uint32_t m, uint32_t n, const float *u,
		 nwc_ldlq_quant_fn quant, void *ctx, float *what);

/*
 * nwc_ldlq_row_scale() - per-row gains that best correct What under H
 * without raising the plain error: alpha[r] minimizes
 * (w_r - a what_r) H (w_r - a what_r)^T, i.e.
 * (w_r H what_r^T) / (what_r H what_r^T), over the gains a for which
 * |w_r - a what_r|^2 <= |w_r - what_r|^2 (those between 1 and
 * 2 (w_r . what_r) / |what_r|^2 - 1); 1 where a denominator is not
 * positive.  Replacing what_r by alpha[r] what_r raises neither loss.
 * Unbounded, a few input channels far louder than the rest (the massive
 * activations of LLMs) decide the gain alone and may set it to 0.1 or
 * -0.4, turning the row's other weights into noise.  @h is used as given
 * (no damping).
 * Returns 0, -EINVAL (bad size or pointer, non-finite input), -ENOMEM.
 */
int nwc_ldlq_row_scale(const float *w, const float *what, uint32_t m,
		       uint32_t n, const float *h, float *alpha);

/*
 * nwc_ldlq_proxy_loss() - tr((W - What) H (W - What)^T), summed in double.
 * @h is used as given (no damping).
 * Returns 0, -EINVAL (bad size or pointer, non-finite input), -ENOMEM.
 */
int nwc_ldlq_proxy_loss(const float *w, const float *what, uint32_t m,
			uint32_t n, const float *h, double *loss);

/*
 * nwc_ldlq_gptq() - the GPTQ scalar baseline: nwc_ldlq_run() with damping
 * NWC_LDLQ_DAMP and an asymmetric min/max grid per row (GPTQ's default):
 * 2^bits levels from min(0, min w_r) to max(0, max w_r), set from W before
 * feedback, with a zero point on the grid; nearest rounding, clamped to the
 * grid.  No groups.
 * Returns 0, -EINVAL (bad size or pointer, @bits outside
 * 1..NWC_LDLQ_MAX_BITS, non-finite input), -EDOM and -ENOMEM as
 * nwc_ldlq_factor().
 */
int nwc_ldlq_gptq(const float *w, uint32_t m, uint32_t n, const float *h,
		  unsigned int bits, float *what);

#endif /* NWC_LDLQ_H */
