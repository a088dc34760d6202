/* SPDX-License-Identifier: MIT */
/*
 * linear.h - the Linear layers of the codec's small networks, c = bias +
 * x . w^T over a batch of rows, without BLAS where BLAS costs most: a few
 * dozen outputs from 16 or 32 inputs, for which OpenBLAS spends about as
 * long packing its operands as multiplying them (perf: sgemm_oncopy at a
 * quarter of the GEMM time when nwcfs decodes a lossy file).
 *
 * With AVX2 and FMA (chosen at run time) each output is bias + x_0 w_0 +
 * x_1 w_1 + ..., one fused multiply-add after the other in that order:
 * the same bits whatever the batch size or the row's place in it, and the
 * same as nwc_linear_ref(), the scalar statement of that order.  Elsewhere,
 * or for layers too large for its stack copy of w, OpenBLAS as before;
 * decoding is reproducible per machine type.
 *
 * Thread safety: pure functions over caller memory.
 */
#ifndef NWC_LINEAR_H
#define NWC_LINEAR_H

#include "codec/common/base.h"

/*
 * c (rows x n, rows @ldc floats apart) = bias (n) + x (rows x k, @ldx
 * apart) . w^T, w being n x k row-major.
 */
void nwc_linear(const float *x, size_t ldx, const float *w,
		const float *bias, size_t rows, size_t n, size_t k, float *c,
		size_t ldc);

/* Whether nwc_linear() takes the AVX2 kernel for an n x k layer here. */
bool nwc_linear_vector(size_t n, size_t k);

/* The kernel's arithmetic, one fmaf() at a time (tests). */
void nwc_linear_ref(const float *x, size_t ldx, const float *w,
		    const float *bias, size_t rows, size_t n, size_t k,
		    float *c, size_t ldc);

#endif /* NWC_LINEAR_H */
