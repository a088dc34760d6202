/* SPDX-License-Identifier: MIT */
/*
 * gemm.h - the matrix-multiply seam: the only way into OpenBLAS.
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

/* nwc_sgemm() - OpenBLAS sgemm; a no-op when m or n is 0. */
void nwc_sgemm(bool ta, bool tb, int m, int n, int k, float alpha,
	       const float *a, int lda, const float *b, int ldb, float beta,
	       float *c, int ldc);

/*
 * nwc_sgemm_ref() - the same product with plain loops and double
 * accumulation: slow, obviously correct, the oracle for tests.
 */
void nwc_sgemm_ref(bool ta, bool tb, int m, int n, int k, float alpha,
		   const float *a, int lda, const float *b, int ldb,
		   float beta, float *c, int ldc);

/*
 * nwc_dcholesky() - Cholesky factor of a symmetric positive definite n x n
 * row-major double matrix, in place: on return the lower triangle of @a
 * (row stride @lda) holds L with A = L L^T.  Only the lower triangle is
 * read; the strict upper triangle is left as it was.  LAPACK dpotrf, run in
 * the calling thread like nwc_sgemm().
 * Returns 0, -EDOM if A is not positive definite (a pivot <= 0), -EINVAL
 * if n < 0 or lda < n.  NaNs are not detected: check the input first.
 */
int nwc_dcholesky(int n, double *a, int lda);

#endif /* NWC_GEMM_H */
