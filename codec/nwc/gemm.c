/* SPDX-License-Identifier: MIT */
/* gemm.c - OpenBLAS sgemm on one thread, plus a reference. */
#include "codec/common/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <strings.h>
#include <cblas.h>

#include "codec/common/cpu.h"
#include "codec/common/log.h"
#include "codec/nwc/gemm.h"

static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;

/*
 * Parallelism comes from our callers (FUSE workers, trainer threads), each
 * multiplying its own batch.  OpenBLAS's own pool on top of that would
 * oversubscribe the cores, concurrent callers would contend for that one
 * pool, and the work split would follow the machine's core count.  One
 * thread per call scales with our threads and keeps results reproducible.
 */
static void gemm_setup(void)
{
	openblas_set_num_threads(1);
}

void nwc_gemm_init(void)
{
	pthread_once(&gemm_once, gemm_setup);
}

/*
 * OpenBLAS 0.3.21 (Debian 12) falls back to its Prescott (SSE3) kernels on
 * CPUs it does not recognise, as a Sapphire Rapids under KVM that calls
 * itself "Intel(R) Xeon(R) Processor", although its AVX2 and AVX-512
 * kernels run there: sgemm of 1024 x 1024 on one thread measured 20-25
 * GFLOP/s, against 80 with OPENBLAS_CORETYPE=SkylakeX, and a step of
 * mkfs.nwc --calib-tune on SmolLM2-135M took about three times as long.
 * OpenBLAS reads that variable only as it loads, before main(), so all we
 * can do is say so, once.
 */
static pthread_once_t core_once = PTHREAD_ONCE_INIT;

static void check_core(void)
{
	static const char *const slow[] = {
		"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
		"Atom", "Sandybridge",
	};
	const char *core = openblas_get_corename(), *want;
	size_t i;

	if (!core || getenv("OPENBLAS_CORETYPE"))
		return;
	for (i = 0; i < NWC_ARRAY_SIZE(slow); i++)
		if (!strcasecmp(core, slow[i]))
			break;
	if (i == NWC_ARRAY_SIZE(slow))
		return;
	if (nwc_cpu_has(NWC_CPU_AVX512F))
		want = "SkylakeX";
	else if (nwc_cpu_has(NWC_CPU_AVX2 | NWC_CPU_FMA))
		want = "Haswell";
	else
		return;
	nwc_warn("OpenBLAS chose its %s kernels on a CPU that runs its %s ones, several times faster: set OPENBLAS_CORETYPE=%s",
		 core, want, want);
}

void nwc_gemm_check_core(void)
{
	pthread_once(&core_once, check_core);
}

void nwc_ssyrk_t(int n, int k, const float *x, int ldx, float *c, int ldc)
{
	if (n <= 0)
		return;
	nwc_gemm_init();
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, 1.0f, x, ldx,
		    0.0f, c, ldc);
}

void nwc_sgemm(bool ta, bool tb, int m, int n, int k, float alpha,
	       const float *a, int lda, const float *b, int ldb, float beta,
	       float *c, int ldc)
{
	if (m <= 0 || n <= 0)
		return;
	nwc_gemm_init();
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
		    tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
		    ldb, beta, c, ldc);
}

void nwc_sgemm_ref(bool ta, bool tb, int m, int n, int k, float alpha,
		   const float *a, int lda, const float *b, int ldb,
		   float beta, float *c, int ldc)
{
	for (int i = 0; i < m; i++) {
		for (int j = 0; j < n; j++) {
			float *cij = &c[(size_t)i * ldc + j];
			double acc = 0;

			for (int l = 0; l < k; l++) {
				float av = ta ? a[(size_t)l * lda + i] :
						a[(size_t)i * lda + l];
				float bv = tb ? b[(size_t)j * ldb + l] :
						b[(size_t)l * ldb + j];

				acc += (double)av * bv;
			}
			acc *= alpha;
			if (beta != 0.0f)
				acc += (double)beta * *cij;
			*cij = (float)acc;
		}
	}
}
