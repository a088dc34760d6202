/* SPDX-License-Identifier: MIT */
/*
 * linear.c - small Linear layers (linear.h): AVX-512 and AVX2/FMA kernels
 * over register blocks of rows x 16- or 8-wide column groups, and
 * OpenBLAS elsewhere.
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

bool nwc_linear_has(enum nwc_linear_kernel kern, size_t n, size_t k)
{
	if (n * k > WT_MAX)
		return false;
	switch (kern) {
	case NWC_LINEAR_AVX2:
		return nwc_cpu_has(NWC_CPU_AVX2 | NWC_CPU_FMA) && n >= 8;
	case NWC_LINEAR_AVX512:
		return nwc_cpu_has(NWC_CPU_AVX512F | NWC_CPU_AVX2 |
				   NWC_CPU_FMA) && n >= 16;
	}
	return false;
}

bool nwc_linear_vector(size_t n, size_t k)
{
	return nwc_linear_has(NWC_LINEAR_AVX2, n, k);
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

/*
 * Columns [j, n) of c, with wt (k x n, w transposed) already built: groups
 * of 64, 32, 16 and 8, then single columns.
 */
__attribute__((target("avx2,fma")))
static void cols_avx2(const float *x, size_t ldx, const float *wt,
		      const float *bias, size_t rows, size_t n, size_t k,
		      float *c, size_t ldc, size_t j)
{
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

/* wt (k x n) = w^T. */
static void transpose(const float *w, size_t n, size_t k, float *wt)
{
	for (size_t jj = 0; jj < n; jj++)
		for (size_t l = 0; l < k; l++)
			wt[l * n + jj] = w[jj * k + l];
}

__attribute__((target("avx2,fma")))
static void linear_avx2(const float *x, size_t ldx, const float *w,
			const float *bias, size_t rows, size_t n, size_t k,
			float *c, size_t ldc)
{
	float wt[WT_MAX];

	transpose(w, n, k, wt);
	cols_avx2(x, ldx, wt, bias, rows, n, k, c, ldc, 0);
}

/*
 * block() in 16-wide vectors: RB x NV accumulators of the 32 registers,
 * each output still one fused multiply-add per input in input order.
 */
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline void block16(const int NV, const int RB, const float *x,
			   size_t ldx, const float *wt, size_t ldw, size_t k,
			   const float *bias, float *c, size_t ldc)
{
	__m512 acc[16][4];

#pragma GCC unroll 16
	for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++)
			acc[r][v] = _mm512_loadu_ps(bias + 16 * v);
	for (size_t l = 0; l < k; l++) {
		const float *wr = wt + l * ldw;

#pragma GCC unroll 16
		for (int r = 0; r < RB; r++) {
			__m512 a = _mm512_set1_ps(x[r * ldx + l]);

#pragma GCC unroll 4
			for (int v = 0; v < NV; v++)
				acc[r][v] = _mm512_fmadd_ps(
					a, _mm512_loadu_ps(wr + 16 * v),
					acc[r][v]);
		}
	}
#pragma GCC unroll 16
	for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
		for (int v = 0; v < NV; v++)
			_mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
}

/* All rows for @NV 16-wide column groups: blocks of RB rows, then single
 * rows. */
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline void groups16(const int NV, const int RB, const float *x,
			    size_t ldx, const float *wt, size_t ldw, size_t k,
			    const float *bias, size_t rows, float *c,
			    size_t ldc)
{
	size_t i = 0;

	for (; i + (size_t)RB <= rows; i += (size_t)RB)
		block16(NV, RB, x + i * ldx, ldx, wt, ldw, k, bias,
			c + i * ldc, ldc);
	for (; i < rows; i++)
		block16(NV, 1, x + i * ldx, ldx, wt, ldw, k, bias,
			c + i * ldc, ldc);
}

/* Column groups of 64, 32 and 16 in AVX-512, the rest as linear_avx2(). */
__attribute__((target("avx512f,avx2,fma")))
static void linear_avx512(const float *x, size_t ldx, const float *w,
			  const float *bias, size_t rows, size_t n, size_t k,
			  float *c, size_t ldc)
{
	float wt[WT_MAX];
	size_t j = 0;

	transpose(w, n, k, wt);
	for (; j + 64 <= n; j += 64)
		groups16(4, 6, x, ldx, wt + j, n, k, bias + j, rows, c + j,
			 ldc);
	if (j + 32 <= n) {
		groups16(2, 12, x, ldx, wt + j, n, k, bias + j, rows, c + j,
			 ldc);
		j += 32;
	}
	if (j + 16 <= n) {
		groups16(1, 16, x, ldx, wt + j, n, k, bias + j, rows, c + j,
			 ldc);
		j += 16;
	}
	cols_avx2(x, ldx, wt, bias, rows, n, k, c, ldc, j);
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

static void linear_avx512(const float *x NWC_UNUSED,
			  size_t ldx NWC_UNUSED, const float *w NWC_UNUSED,
			  const float *bias NWC_UNUSED,
			  size_t rows NWC_UNUSED, size_t n NWC_UNUSED,
			  size_t k NWC_UNUSED, float *c NWC_UNUSED,
			  size_t ldc NWC_UNUSED)
{
	assert(!"no AVX-512 kernel in this build");
}

#endif

void nwc_linear_with(enum nwc_linear_kernel kern, const float *x,
		     size_t ldx, const float *w, const float *bias,
		     size_t rows, size_t n, size_t k, float *c, size_t ldc)
{
	assert(nwc_linear_has(kern, n, k));
	if (kern == NWC_LINEAR_AVX512)
		linear_avx512(x, ldx, w, bias, rows, n, k, c, ldc);
	else
		linear_avx2(x, ldx, w, bias, rows, n, k, c, ldc);
}

void nwc_linear(const float *x, size_t ldx, const float *w,
		const float *bias, size_t rows, size_t n, size_t k, float *c,
		size_t ldc)
{
	if (nwc_linear_has(NWC_LINEAR_AVX512, n, k)) {
		linear_avx512(x, ldx, w, bias, rows, n, k, c, ldc);
		return;
	}
	if (nwc_linear_has(NWC_LINEAR_AVX2, n, k)) {
		linear_avx2(x, ldx, w, bias, rows, n, k, c, ldc);
		return;
	}
	for (size_t i = 0; i < rows; i++)
		memcpy(c + i * ldc, bias, n * sizeof(*c));
	nwc_sgemm(false, true, (int)rows, (int)n, (int)k, 1.0f, x, (int)ldx,
		  w, (int)k, 1.0f, c, (int)ldc);
}
