/* SPDX-License-Identifier: MIT */
/*
 * linear.h - the Linear layers of the codec's small networks, c = bias +
 * x . w^T over a batch of rows, without BLAS where BLAS costs most: a few
 * dozen outputs from 16 or 32 inputs, for which OpenBLAS spends about as
 * long packing its operands as multiplying them (perf: sgemm_oncopy at a
 * quarter of the GEMM time when nwcfs decodes a lossy file).
 *
 * With AVX2 and FMA, or AVX-512 (chosen at run time), each output is
 * bias + x_0 w_0 + x_1 w_1 + ..., one fused multiply-add after the other
 * in that order: the same bits whatever the kernel, the batch size or the
 * row's place in it, and the same as nwc_linear_ref(), the scalar
 * statement of that order.  Elsewhere,
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

/* Whether nwc_linear() takes a vector kernel for an n x k layer here. */
bool nwc_linear_vector(size_t n, size_t k);

/* The vector kernels; nwc_linear() takes the widest this CPU has. */
enum nwc_linear_kernel {
	NWC_LINEAR_AVX2,	/* 8-wide column groups, n >= 8 */
	NWC_LINEAR_AVX512,	/* 16-wide groups, the rest as AVX2; n >= 16 */
};

/* Whether kernel @kern runs here for an n x k layer. */
bool nwc_linear_has(enum nwc_linear_kernel kern, size_t n, size_t k);

/* nwc_linear() on kernel @kern, which must run here (tests, benchmarks). */
void nwc_linear_with(enum nwc_linear_kernel kern, const float *x,
		     size_t ldx, const float *w, const float *bias,
		     size_t rows, size_t n, size_t k, float *c, size_t ldc);

/* The kernel's arithmetic, one fmaf() at a time (tests). */
void nwc_linear_ref(const float *x, size_t ldx, const float *w,
		    const float *bias, size_t rows, size_t n, size_t k,
		    float *c, size_t ldc);

#endif /* NWC_LINEAR_H */
