/* SPDX-License-Identifier: MIT */
/*
 * linear.c - small Linear layers (linear.h): an AVX2/FMA kernel over
 * register blocks of rows x 8-wide column groups, and OpenBLAS elsewhere.
 */
#include "codec/common/base.h"

#include <math.h>

#include "codec/common/cpu.h"
#include "codec/nwc/gemm.h"
#include "codec/nwc/linear.h"

/* Largest w the kernel copies, transposed, to its stack (floats). */
#define WT_MAX 8192u

void nwc_linear_ref(const float *x, size_t ldx, const float *w,
		    const float *bias, size_t rows, size_t n, size_t k,
		    float *c, size_t ldc)
{
	for (size_t i = 0; i < rows; i++)
		for (size_t j = 0; j < n; j++) {
			float acc = bias[j];

			for (size_t l = 0; l < k; l++)
				acc = fmaf(x[i * ldx + l], w[j * k + l], acc);
			c[i * ldc + j] = acc;
		}
}

bool nwc_linear_vector(size_t n, size_t k)
{
	return nwc_cpu_has(NWC_CPU_AVX2 | NWC_CPU_FMA) && n >= 8 &&
	       n * k <= WT_MAX;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

/*
 * Rows [i, i + RB) of the @NV 8-wide column groups at @wt (k rows of @ldw
 * floats: w transposed), @bias and @c: RB x NV accumulators in registers,
 * each fed one broadcast of x and one row of wt per input.  Constant @NV
 * and @RB where inlined, so the loops unroll.
 */
__attribute__((target("avx2,fma"), always_inline))
static inline void block(const int NV, const int RB, const float *x,
			 size_t ldx, const float *wt, size_t ldw, size_t k,
			 const float *bias, float *c, size_t ldc)
{
	__m256 acc[8][8];

#pragma GCC unroll 8
	for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
		for (int v = 0; v < NV; v++)
			acc[r][v] = _mm256_loadu_ps(bias + 8 * v);
	for (size_t l = 0; l < k; l++) {
		const float *wr = wt + l * ldw;

#pragma GCC unroll 8
		for (int r = 0; r < RB; r++) {
			__m256 a = _mm256_broadcast_ss(x + r * ldx + l);

#pragma GCC unroll 8
			for (int v = 0; v < NV; v++)
				acc[r][v] = _mm256_fmadd_ps(
					a, _mm256_loadu_ps(wr + 8 * v),
					acc[r][v]);
		}
	}
#pragma GCC unroll 8
	for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
		for (int v = 0; v < NV; v++)
			_mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
}

/* All rows for @NV column groups: blocks of 8 / NV rows, then single rows
 * (the same sums: a row's arithmetic does not depend on its block). */
__attribute__((target("avx2,fma"), always_inline))
static inline void groups(const int NV, const float *x, size_t ldx,
			  const float *wt, size_t ldw, size_t k,
			  const float *bias, size_t rows, float *c,
			  size_t ldc)
{
	const int RB = 8 / NV;
	size_t i = 0;

	for (; i + (size_t)RB <= rows; i += (size_t)RB)
		block(NV, RB, x + i * ldx, ldx, wt, ldw, k, bias, c + i * ldc,
		      ldc);
	for (; i < rows; i++)
		block(NV, 1, x + i * ldx, ldx, wt, ldw, k, bias, c + i * ldc,
		      ldc);
}

__attribute__((target("avx2,fma")))
static void linear_avx2(const float *x, size_t ldx, const float *w,
			const float *bias, size_t rows, size_t n, size_t k,
			float *c, size_t ldc)
{
	float wt[WT_MAX];
	size_t j = 0;

	for (size_t jj = 0; jj < n; jj++)
		for (size_t l = 0; l < k; l++)
			wt[l * n + jj] = w[jj * k + l];
	/* Column groups of 64, 32, 16 and 8, then single columns. */
	for (; j + 64 <= n; j += 64)
		groups(8, x, ldx, wt + j, n, k, bias + j, rows, c + j, ldc);
	if (j + 32 <= n) {
		groups(4, x, ldx, wt + j, n, k, bias + j, rows, c + j, ldc);
		j += 32;
	}
	if (j + 16 <= n) {
		groups(2, x, ldx, wt + j, n, k, bias + j, rows, c + j, ldc);
		j += 16;
	}
	if (j + 8 <= n) {
		groups(1, x, ldx, wt + j, n, k, bias + j, rows, c + j, ldc);
		j += 8;
	}
	for (; j < n; j++)
		for (size_t i = 0; i < rows; i++) {
			float acc = bias[j];

			for (size_t l = 0; l < k; l++)
				acc = fmaf(x[i * ldx + l], wt[l * n + j], acc);
			c[i * ldc + j] = acc;
		}
}

#else /* no x86-64 vector kernel: nwc_cpu_has() never chooses it */

static void linear_avx2(const float *x NWC_UNUSED, size_t ldx NWC_UNUSED,
			const float *w NWC_UNUSED,
			const float *bias NWC_UNUSED, size_t rows NWC_UNUSED,
			size_t n NWC_UNUSED, size_t k NWC_UNUSED,
			float *c NWC_UNUSED, size_t ldc NWC_UNUSED)
{
	assert(!"no AVX2 kernel in this build");
}

#endif

void nwc_linear(const float *x, size_t ldx, const float *w,
		const float *bias, size_t rows, size_t n, size_t k, float *c,
		size_t ldc)
{
	if (nwc_linear_vector(n, k)) {
		linear_avx2(x, ldx, w, bias, rows, n, k, c, ldc);
		return;
	}
	for (size_t i = 0; i < rows; i++)
		memcpy(c + i * ldc, bias, n * sizeof(*c));
	nwc_sgemm(false, true, (int)rows, (int)n, (int)k, 1.0f, x, (int)ldx,
		  w, (int)k, 1.0f, c, (int)ldc);
}
