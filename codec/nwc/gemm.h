/* SPDX-License-Identifier: MIT */
/*
 * gemm.h - the matrix-multiply seam: gemm.c is the only file including
 * <cblas.h>.  Decode side (libnwcdec.a); LAPACK's Cholesky, which only the
 * encoder needs, is codec/nwc/cholesky.h.
 *
 *	nwc_gemm_init();
 *	nwc_sgemm(false, true, m, n, k, 1.0f, a, k, w, k, 1.0f, c, n);
 *
 * Row-major single precision: C = alpha * op(A) * op(B) + beta * C, where
 * op(A) is m x k, op(B) is k x n and C is m x n; @ta/@tb say that A (stored
 * k x m) or B (stored n x k) is to be transposed.  Leading dimensions are
 * row strides in elements.  As in BLAS, C is not read when beta == 0.
 *
 * Thread safety: any number of threads may call nwc_sgemm() at once on
 * disjoint C.  Each call runs in the calling thread (see nwc_gemm_init()),
 * so for given inputs the result is bit-identical on every call and thread.
 * Across CPU types it is not: OpenBLAS picks its kernels at run time.
 */
#ifndef NWC_GEMM_H
#define NWC_GEMM_H

#include "codec/common/base.h"

/*
 * nwc_gemm_init() - make OpenBLAS single-threaded.  Idempotent and safe to
 * call from any thread; nwc_sgemm() calls it itself, so an explicit call
 * only moves the one-time cost out of the first multiply.
 */
void nwc_gemm_init(void);

/*
 * nwc_gemm_check_core() - warn (once) when OpenBLAS runs kernels older
 * than the CPU takes, as its detection does on some virtual CPUs, naming
 * the OPENBLAS_CORETYPE that would run several times faster.  For the
 * programs whose time goes into GEMM (calibration, tuning, training); the
 * read path's networks have kernels of their own.
 */
void nwc_gemm_check_core(void);

/* nwc_sgemm() - OpenBLAS sgemm; a no-op when m or n is 0. */
void nwc_sgemm(bool ta, bool tb, int m, int n, int k, float alpha,
	       const float *a, int lda, const float *b, int ldb, float beta,
	       float *c, int ldc);

/*
 * nwc_ssyrk_t() - the upper triangle (j >= i) of the n x n product
 * C = X^T X for X of @k rows of n floats with row stride @ldx (OpenBLAS
 * ssyrk: half the multiply-adds of nwc_sgemm() for the same triangle);
 * the lower triangle of C (row stride @ldc) is left alone.
 */
void nwc_ssyrk_t(int n, int k, const float *x, int ldx, float *c, int ldc);

/*
 * nwc_sgemm_ref() - the same product with plain loops and double
 * accumulation: slow, obviously correct, the oracle for tests.
 */
void nwc_sgemm_ref(bool ta, bool tb, int m, int n, int k, float alpha,
		   const float *a, int lda, const float *b, int ldb,
		   float beta, float *c, int ldc);

#endif /* NWC_GEMM_H */
