/* SPDX-License-Identifier: MIT */
/*
 * mlp_impl.h - private to mlp.c (inference, libnwcdec.a) and mlp_train.c
 * (training, libnwcenc.a): the argument checks, the Linear layer and the
 * body of a residual block that both forward passes run, inline here so
 * that nwc_net_forward_train() stays bit-identical to nwc_net_forward()
 * without the decoder carrying training code.  Not for other files.
 *
 * Thread safety: pure inline functions over caller memory.
 */
#ifndef NWC_MLP_IMPL_H
#define NWC_MLP_IMPL_H

#include "codec/common/base.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "codec/common/simd.h"
#include "codec/nwc/gemm.h"
#include "codec/nwc/linear.h"
#include "codec/nwc/mlp.h"

/*
 * Make a buffer hold at least @n elements of @size bytes, reallocating
 * (contents lost) when it is smaller.  Returns the buffer or NULL.
 */
static inline void *grow(void *buf, size_t *cap, size_t n, size_t size)
{
	void *p;

	if (n <= *cap)
		return buf;
	if (n > SIZE_MAX / size || posix_memalign(&p, 64, n * size))
		return NULL;
	free(buf);
	*cap = n;
	return p;
}

/* Common argument checks of the forward passes. */
static inline int check_args(const struct nwc_net *net, const uint8_t *q,
			     size_t batch)
{
	if (nwc_net_check(net->h, net->r, net->nq) || batch > INT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < batch; i++)
		if (q[i] >= net->nq)
			return -EINVAL;
	return 0;
}

/*
 * c (rows x n, rows @ldc apart) = bias + x (rows x k, @ldx apart) . w^T,
 * w being (n x k): one Linear layer over the batch (linear.h).
 */
static inline void linear_ld(const float *x, size_t ldx, const float *w,
			     const float *bias, size_t rows, size_t n,
			     size_t k, float *c, size_t ldc)
{
	nwc_linear(x, ldx, w, bias, rows, n, k, c, ldc);
}

/* linear_ld() on packed rows. */
static inline void linear(const float *x, const float *w,
			  const float *bias, size_t rows, size_t n, size_t k,
			  float *c)
{
	linear_ld(x, k, w, bias, rows, n, k, c, n);
}

/*
 * The rest of a residual block for one row, after the Linear: @z holds the
 * pre-activation on entry and, if @keep (a constant where it is inlined),
 * its normalized form on return; then hout = (hin + ReLU(gamma * zhat +
 * beta)) * e.  hout may be hin.  Returns 1/std.  Without @keep the same
 * operations run in the same order, so the bits are the same.  Eight
 * lanes: one AVX register in the clone the loader picks where the CPU has
 * AVX2, two SSE halves in the other; lane j % 8 and the fixed order of
 * V8_TOTAL keep the sums those of the scalar code, so both clones give
 * the same bits.
 */
static inline __attribute__((always_inline)) float
block_row(float *restrict z, const float *hin, float *hout,
	  const float *restrict gamma, const float *restrict beta,
	  const float *restrict e, size_t n, const bool keep)
{
	const v8sf zero = { 0 };
	v8sf acc = zero, vmean, vrstd, a, b, c;
	float mean, rstd;
	size_t j, n8 = n & ~(size_t)7;

	for (j = 0; j < n8; j += 8) {
		V8_LOAD(a, z + j);
		acc += a;
	}
	for (; j < n; j++)
		acc[j & 7] += z[j];
	mean = V8_TOTAL(acc) / (float)n;

	vmean = zero + mean;
	acc = zero;
	for (j = 0; j < n8; j += 8) {
		V8_LOAD(a, z + j);
		a -= vmean;
		if (keep)
			V8_STORE(z + j, a);
		acc += a * a;
	}
	for (; j < n; j++) {
		float d = z[j] - mean;

		if (keep)
			z[j] = d;
		acc[j & 7] += d * d;
	}
	rstd = 1.0f / sqrtf(V8_TOTAL(acc) / (float)n + NWC_NET_LN_EPS);

	vrstd = zero + rstd;
	for (j = 0; j < n8; j += 8) {
		V8_LOAD(a, z + j);
		if (!keep)
			a -= vmean;		/* as stored above */
		a *= vrstd;			/* x */
		if (keep)
			V8_STORE(z + j, a);
		V8_LOAD(b, gamma + j);
		V8_LOAD(c, beta + j);
		b = b * a + c;			/* u */
		b = (v8sf)((v8si)b & (b > zero));	/* ReLU as v4_relu */
		V8_LOAD(c, hin + j);
		b += c;
		V8_LOAD(c, e + j);
		b *= c;
		V8_STORE(hout + j, b);
	}
	for (; j < n; j++) {
		float x = (keep ? z[j] : z[j] - mean) * rstd;
		float u = gamma[j] * x + beta[j];

		if (keep)
			z[j] = x;
		hout[j] = (hin[j] + (u > 0.0f ? u : 0.0f)) * e[j];
	}
	return rstd;
}

#endif /* NWC_MLP_IMPL_H */
