/* SPDX-License-Identifier: MIT */
/*
 * cholesky.h - Cholesky factorization through LAPACK, for the encoder's
 * LDLQ feedback (codec/nwc/ldlq.h).  Encode side: part of libnwcenc.a, and
 * cholesky.c is the only file that includes a LAPACK header.
 *
 *	ret = nwc_dcholesky(n, a, n);	// lower triangle of a = L
 *
 * Thread safety: reentrant; calls on different matrices may run at once,
 * each in the calling thread (see codec/nwc/gemm.h).
 */
#ifndef NWC_CHOLESKY_H
#define NWC_CHOLESKY_H

#include "codec/common/base.h"

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

#endif /* NWC_CHOLESKY_H */
