/* SPDX-License-Identifier: MIT */
/*
 * mlp_lanes.c - the folded decoder (mlp.c) on sixteen chunks side by
 * side, one chunk a vector lane (mlp.h, nwc_net_forward_lanes()).  Decode
 * side (libnwcdec.a).
 *
 * Row-major, every chunk's LayerNorm sums its features across one vector
 * (two horizontal reductions a chunk, each a chain of shuffles), and the
 * band decoder transposes latents in and values out.  With a chunk in
 * each lane, every operation is vertical: the sums of a LayerNorm are
 * adds of whole vectors, and the latents arrive, and the rows leave, in
 * the layout of the entropy stage's lanes and of the tensor's rows, the
 * rows already in the tensor's dtype (BF16 rounded in registers).
 *
 * Each lane does the arithmetic of the row-major pass in the same order:
 * Linear outputs as one fused multiply-add per input in input order
 * (linear.h), the LayerNorm sums in the eight partial sums and the fixed
 * tree of block_row() (mlp_impl.h), the rest one operation at a time (the
 * build compiles with -ffp-contract=off, so no multiply and add are fused
 * unless written so).  So the bits are those of nwc_net_forward_folded()
 * wherever it runs the vector Linear kernels (tests/test_mlp).
 */
#include "codec/common/base.h"

#include "codec/common/convert.h"
#include "codec/common/cpu.h"
#include "codec/common/dtype.h"
#include "codec/common/simd.h"
#include "codec/nwc/linear.h"
#include "codec/nwc/mlp.h"

/* Widest H the kernel keeps on its stack (hidden vectors of 16 lanes). */
#define LANES_MAX_H 64u

bool nwc_net_lanes_ok(const struct nwc_net *net)
{
	size_t h = net->h;

	/* the row-major pass must run the vector Linear kernels too */
	return nwc_cpu_has(NWC_CPU_AVX2 | NWC_CPU_FMA) &&
	       !nwc_net_check(net->h, net->r, net->nq) && net->r &&
	       h <= LANES_MAX_H && h % 8 == 0 &&
	       nwc_linear_vector(2 * h, NWC_CHUNK) &&
	       nwc_linear_vector(h, h) && nwc_linear_vector(NWC_CHUNK, h);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma")))

/* Sixteen lanes as two AVX registers: lanes 0-7, then 8-15. */
typedef struct {
	__m256 v[2];
} lanes16;

/*
 * out[j] = bias[j] + sum_i w[j k + i] in[i] for j < n (a multiple of 4),
 * four outputs at a time: one fused multiply-add per input, in order.
 */
TGT static void lin(const lanes16 *in, size_t k, const float *w,
		    const float *bias, size_t n, lanes16 *out)
{
	/* named accumulators: GCC keeps an array of them in memory */
	for (size_t j = 0; j < n; j += 4) {
		const float *w0 = w + j * k, *w1 = w0 + k, *w2 = w1 + k;
		const float *w3 = w2 + k;
		__m256 a0 = _mm256_broadcast_ss(bias + j), b0 = a0;
		__m256 a1 = _mm256_broadcast_ss(bias + j + 1), b1 = a1;
		__m256 a2 = _mm256_broadcast_ss(bias + j + 2), b2 = a2;
		__m256 a3 = _mm256_broadcast_ss(bias + j + 3), b3 = a3;

		for (size_t i = 0; i < k; i++) {
			__m256 x = in[i].v[0], y = in[i].v[1], u;

			u = _mm256_broadcast_ss(w0 + i);
			a0 = _mm256_fmadd_ps(u, x, a0);
			b0 = _mm256_fmadd_ps(u, y, b0);
			u = _mm256_broadcast_ss(w1 + i);
			a1 = _mm256_fmadd_ps(u, x, a1);
			b1 = _mm256_fmadd_ps(u, y, b1);
			u = _mm256_broadcast_ss(w2 + i);
			a2 = _mm256_fmadd_ps(u, x, a2);
			b2 = _mm256_fmadd_ps(u, y, b2);
			u = _mm256_broadcast_ss(w3 + i);
			a3 = _mm256_fmadd_ps(u, x, a3);
			b3 = _mm256_fmadd_ps(u, y, b3);
		}
		out[j] = (lanes16){ { a0, b0 } };
		out[j + 1] = (lanes16){ { a1, b1 } };
		out[j + 2] = (lanes16){ { a2, b2 } };
		out[j + 3] = (lanes16){ { a3, b3 } };
	}
}

/* block_row()'s eight partial sums folded in V8_TOTAL's order. */
TGT static inline __m256 total8(const __m256 *a)
{
	return _mm256_add_ps(
		_mm256_add_ps(_mm256_add_ps(a[0], a[4]),
			      _mm256_add_ps(a[1], a[5])),
		_mm256_add_ps(_mm256_add_ps(a[2], a[6]),
			      _mm256_add_ps(a[3], a[7])));
}

/* block_row()'s 1 / sqrt(variance + eps) from its eight partial sums of
 * squares @a over @fn features. */
TGT static inline __m256 rstd8(const __m256 *a, __m256 fn)
{
	return _mm256_div_ps(_mm256_set1_ps(1.0f),
			     _mm256_sqrt_ps(_mm256_add_ps(
				     _mm256_div_ps(total8(a), fn),
				     _mm256_set1_ps(NWC_NET_LN_EPS))));
}

/*
 * block_row() in every lane: h = (h + ReLU(gamma LN(z) + beta)) * e, both
 * halves of the lanes in each pass, so that their chains of adds and the
 * divides and square root between the passes overlap.  ReLU as max(u, 0),
 * which gives 0 for NaN and -0 as block_row()'s mask does.
 */
TGT static void block(const lanes16 *z, lanes16 *hv, const float *gamma,
		      const float *beta, const lanes16 *e, size_t n)
{
	const __m256 zero = _mm256_setzero_ps(), fn = _mm256_set1_ps((float)n);
	__m256 a[8], b[8], mean0, mean1, rstd0, rstd1;

	/* n is a multiple of 8: feature j + l adds to sum l */
#pragma GCC unroll 8
	for (int l = 0; l < 8; l++)
		a[l] = b[l] = zero;
	for (size_t j = 0; j < n; j += 8)
#pragma GCC unroll 8
		for (int l = 0; l < 8; l++) {
			a[l] = _mm256_add_ps(a[l], z[j + l].v[0]);
			b[l] = _mm256_add_ps(b[l], z[j + l].v[1]);
		}
	mean0 = _mm256_div_ps(total8(a), fn);
	mean1 = _mm256_div_ps(total8(b), fn);
#pragma GCC unroll 8
	for (int l = 0; l < 8; l++)
		a[l] = b[l] = zero;
	for (size_t j = 0; j < n; j += 8)
#pragma GCC unroll 8
		for (int l = 0; l < 8; l++) {
			__m256 d0 = _mm256_sub_ps(z[j + l].v[0], mean0);
			__m256 d1 = _mm256_sub_ps(z[j + l].v[1], mean1);

			a[l] = _mm256_add_ps(a[l], _mm256_mul_ps(d0, d0));
			b[l] = _mm256_add_ps(b[l], _mm256_mul_ps(d1, d1));
		}
	rstd0 = rstd8(a, fn);
	rstd1 = rstd8(b, fn);
	for (size_t j = 0; j < n; j++) {
		__m256 g = _mm256_broadcast_ss(gamma + j);
		__m256 c = _mm256_broadcast_ss(beta + j);
		__m256 x0 = _mm256_mul_ps(_mm256_sub_ps(z[j].v[0], mean0), rstd0);
		__m256 x1 = _mm256_mul_ps(_mm256_sub_ps(z[j].v[1], mean1), rstd1);
		__m256 u0 = _mm256_max_ps(
			_mm256_add_ps(_mm256_mul_ps(g, x0), c), zero);
		__m256 u1 = _mm256_max_ps(
			_mm256_add_ps(_mm256_mul_ps(g, x1), c), zero);

		hv[j].v[0] = _mm256_mul_ps(_mm256_add_ps(u0, hv[j].v[0]),
					   e[j].v[0]);
		hv[j].v[1] = _mm256_mul_ps(_mm256_add_ps(u1, hv[j].v[1]),
					   e[j].v[1]);
	}
}

TGT static void net_lanes_avx2(const struct nwc_net *net,
			       const float *folded, const float *emb,
			       const uint8_t *q, unsigned int lanes,
			       const float *y, size_t rows, const float *scale,
			       unsigned int dtype, uint8_t *out, size_t ldo)
{
	enum { C = NWC_CHUNK };
	const size_t h = net->h, nk = (rows + C - 1) / C;
	const size_t elem = nwc_dtype_size(dtype);
	struct nwc_net_layout l;
	lanes16 e[LANES_MAX_H], hz[2 * LANES_MAX_H], x[C], o[C];
	__m256i m[2];
	const float *p = net->params;

	nwc_net_layout(net->h, net->r, &l);
	for (int s = 0; s < 2; s++)
		m[s] = _mm256_cmpgt_epi32(
			_mm256_set1_epi32((int)lanes),
			_mm256_setr_epi32(8 * s, 8 * s + 1, 8 * s + 2,
					  8 * s + 3, 8 * s + 4, 8 * s + 5,
					  8 * s + 6, 8 * s + 7));
	/*
	 * Each lane's level factors (lanes past @lanes take lane 0's): each
	 * level's broadcast, blended into its lanes.  Filled from a stack
	 * array instead, every vector load would wait on sixteen stores.
	 */
	{
		int32_t ql[C];
		unsigned int lv[C], nlv = 0;
		__m256 sel[C][2];

		for (unsigned int i = 0; i < C; i++) {
			unsigned int d = 0;

			ql[i] = q[i < lanes ? i : 0];
			while (d < nlv && lv[d] != (unsigned int)ql[i])
				d++;
			if (d == nlv)
				lv[nlv++] = (unsigned int)ql[i];
		}
		for (unsigned int d = 0; d < nlv; d++)
			for (int s = 0; s < 2; s++)
				sel[d][s] = _mm256_castsi256_ps(
					_mm256_cmpeq_epi32(
						_mm256_loadu_si256(
							(const __m256i *)(ql +
									  8 * s)),
						_mm256_set1_epi32((int)lv[d])));
		for (size_t j = 0; j < h; j++) {
			__m256 v = _mm256_broadcast_ss(emb + lv[0] * h + j);

			e[j].v[0] = e[j].v[1] = v;
			for (unsigned int d = 1; d < nlv; d++) {
				v = _mm256_broadcast_ss(emb + lv[d] * h + j);
				for (int s = 0; s < 2; s++)
					e[j].v[s] = _mm256_blendv_ps(
						e[j].v[s], v, sel[d][s]);
			}
		}
	}
	for (size_t k = 0; k < nk; k++) {
		const float *yk = y + k * C * lanes;
		size_t nrows = NWC_MIN((size_t)C, rows - k * C);

		/* lanes past @lanes read as 0 */
		for (unsigned int c = 0; c < C; c++)
			for (int s = 0; s < 2; s++)
				x[c].v[s] = lanes == C ?
					_mm256_loadu_ps(yk + c * C + 8 * s) :
					_mm256_maskload_ps(
						yk + c * lanes + 8 * s, m[s]);
		/* h and block 0's z in one Linear (nwc_net_fold()) */
		lin(x, C, folded, folded + 2 * h * C, 2 * h, hz);
		for (unsigned int r = 0; r < net->r; r++) {
			const struct nwc_net_block_offs *b = &l.blk[r];

			if (r)
				lin(hz, h, p + b->w, p + b->b, h, hz + h);
			block(hz + h, hz, p + b->gamma, p + b->beta, e, h);
		}
		lin(hz, h, p + l.w_out, p + l.b_out, C, o);
		/* a row of sixteen values in the tensor's dtype */
		for (size_t t = 0; t < nrows; t++) {
			__m256 sc = _mm256_broadcast_ss(scale + k * C + t);
			__m256 v0 = _mm256_mul_ps(sc, o[t].v[0]);
			__m256 v1 = _mm256_mul_ps(sc, o[t].v[1]);
			uint8_t *dst = out + (k * C + t) * ldo * elem;

			V16_PUT(dtype, (v8sf)v0, (v8sf)v1, lanes, dst);
		}
	}
}

#else /* no x86-64 vector kernel: nwc_net_lanes_ok() never says yes */

static void net_lanes_avx2(const struct nwc_net *net NWC_UNUSED,
			   const float *folded NWC_UNUSED,
			   const float *emb NWC_UNUSED,
			   const uint8_t *q NWC_UNUSED,
			   unsigned int lanes NWC_UNUSED,
			   const float *y NWC_UNUSED, size_t rows NWC_UNUSED,
			   const float *scale NWC_UNUSED,
			   unsigned int dtype NWC_UNUSED,
			   uint8_t *out NWC_UNUSED, size_t ldo NWC_UNUSED)
{
	assert(!"no AVX2 kernel in this build");
}

#endif

int nwc_net_forward_lanes(const struct nwc_net *net, const float *folded,
			  const float *emb, const uint8_t *q,
			  unsigned int lanes, const float *y, size_t rows,
			  const float *scale, unsigned int dtype, void *out,
			  size_t ldo)
{
	if (!nwc_net_lanes_ok(net) || lanes < 1 || lanes > NWC_NET_LANES ||
	    ldo < lanes || !nwc_dtype_is_float(dtype))
		return -EINVAL;
	for (unsigned int i = 0; i < lanes; i++)
		if (q[i] >= net->nq)
			return -EINVAL;
	net_lanes_avx2(net, folded, emb, q, lanes, y, rows, scale, dtype, out,
		       ldo);
	return 0;
}
