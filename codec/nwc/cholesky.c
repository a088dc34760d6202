/* SPDX-License-Identifier: MIT */
/* cholesky.c - LAPACK dpotrf on one thread (encode side, see cholesky.h). */
#include "codec/common/base.h"

#include <f77blas.h>

#include "codec/nwc/cholesky.h"
#include "codec/nwc/gemm.h"

/*
 * LAPACK is column-major: the lower triangle of a row-major matrix is the
 * upper triangle of the same buffer read column-major, and the U with
 * A = U^T U that dpotrf("U") leaves there is our L = U^T.
 */
int nwc_dcholesky(int n, double *a, int lda)
{
	char uplo = 'U';
	blasint bn = n, blda = lda, info = 0;

	if (n < 0 || lda < NWC_MAX(n, 1))
		return -EINVAL;
	if (!n)
		return 0;
	/* one OpenBLAS thread, as for sgemm */
	nwc_gemm_init();
	BLASFUNC(dpotrf)(&uplo, &bn, a, &blda, &info);
	if (info > 0)
		return -EDOM;
	return info ? -EINVAL : 0;
}
