/* SPDX-License-Identifier: MIT */
/*
 * mlp_train.c - training side of mlp.h: initialization, the forward pass
 * that records activations, and the backward pass.  Part of libnwcenc.a;
 * inference (nwc_net_forward and the folded decoder) is mlp.c.
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>

#include "codec/common/simd.h"
#include "codec/nwc/gemm.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/mlp_impl.h"

struct nwc_net_acts {
	/* The recorded forward pass, valid if @valid. */
	bool valid;
	size_t batch;
	unsigned int h, r, nq;

	/* Views into fbuf, set by acts_reserve(). */
	float *in;		/* batch x 16 */
	float *hs;		/* (R + 1) x batch x H: input of each block, last h */
	float *xhat;		/* R x batch x H: normalized pre-activations */
	float *rstd;		/* R x batch: 1 / sqrt(var + eps) */
	float *gh;		/* batch x H: dL/dh */
	float *gz;		/* batch x H: dL/d(block pre-activation) */
	float *part;		/* (nq + 2) x H: float partial column sums */

	uint8_t *q;		/* batch */
	double *acc;		/* dL/dE (nq x H), then 3 H + 16 column sums */
	float *fbuf;
	size_t cap_f, cap_q, cap_acc;
};

/* splitmix64, then the top 24 bits as a float in [-bound, bound). */
static float rand_sym(uint64_t *s, float bound)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return ((float)(z >> 40) * 0x1p-23f - 1.0f) * bound;
}

static void fill_rand(float *p, size_t n, float bound, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		p[i] = rand_sym(s, bound);
}

static void fill_const(float *p, size_t n, float v)
{
	for (size_t i = 0; i < n; i++)
		p[i] = v;
}

int nwc_net_init(float *params, unsigned int h, unsigned int r,
		 uint64_t seed)
{
	struct nwc_net_layout l;
	uint64_t s = seed;
	float bin = 1.0f / sqrtf((float)NWC_CHUNK), bh = 1.0f / sqrtf((float)h);

	if (nwc_net_layout(h, r, &l))
		return -EINVAL;
	fill_rand(params + l.w_in, (size_t)h * NWC_CHUNK, bin, &s);
	fill_rand(params + l.b_in, h, bin, &s);
	for (unsigned int i = 0; i < r; i++) {
		fill_rand(params + l.blk[i].w, (size_t)h * h, bh, &s);
		fill_rand(params + l.blk[i].b, h, bh, &s);
		fill_const(params + l.blk[i].gamma, h, 1.0f);
		fill_const(params + l.blk[i].beta, h, 0.0f);
	}
	fill_rand(params + l.w_out, (size_t)NWC_CHUNK * h, bh, &s);
	fill_rand(params + l.b_out, NWC_CHUNK, bh, &s);
	return 0;
}

int nwc_emb_init(float *emb, unsigned int nq, unsigned int h)
{
	if (nwc_net_check(h, 0, nq))
		return -EINVAL;
	fill_const(emb, (size_t)nq * h, 1.0f);
	return 0;
}

int nwc_net_acts_create(struct nwc_net_acts **out)
{
	struct nwc_net_acts *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	nwc_gemm_init();
	*out = a;
	return 0;
}

void nwc_net_acts_free(struct nwc_net_acts *a)
{
	if (!a)
		return;
	free(a->fbuf);
	free(a->q);
	free(a->acc);
	free(a);
}

/*
 * The block body of nwc_net_forward_train(): block_row() over @rows rows,
 * as mlp.c's block_rows(), keeping the normalized rows in @z and 1/std in
 * rstd[i] for the backward pass.  block_row() does the same operations in
 * the same order with and without keeping them, so the outputs are
 * nwc_net_forward()'s to the bit.
 */
__attribute__((target_clones("avx2", "default")))
static void block_rows_keep(float *z, const float *hin, float *hout,
			    size_t ld, const float *gamma, const float *beta,
			    const float *emb, const uint8_t *q, size_t rows,
			    size_t n, float *rstd)
{
	for (size_t i = 0; i < rows; i++)
		rstd[i] = block_row(z + i * ld, hin + i * ld, hout + i * ld,
				    gamma, beta, emb + q[i] * n, n, true);
}

/* Size the buffers of @a for a pass of @net over @batch rows. */
static int acts_reserve(struct nwc_net_acts *a, const struct nwc_net *net,
			size_t batch)
{
	/* batch <= INT_MAX and H <= 4096 keep these far from overflow. */
	size_t h = net->h, r = net->r, bh = batch * h;
	size_t nf = batch * NWC_CHUNK + (2 * r + 3) * bh + r * batch +
		    (net->nq + 2) * h;
	float *f;
	uint8_t *q;
	double *acc;

	f = grow(a->fbuf, &a->cap_f, nf, sizeof(*f));
	if (!f)
		return -ENOMEM;
	a->fbuf = f;
	q = grow(a->q, &a->cap_q, batch, sizeof(*q));
	if (!q)
		return -ENOMEM;
	a->q = q;
	acc = grow(a->acc, &a->cap_acc, (net->nq + 3) * h + NWC_CHUNK,
		   sizeof(*acc));
	if (!acc)
		return -ENOMEM;
	a->acc = acc;

	a->in = f;
	a->hs = a->in + batch * NWC_CHUNK;
	a->xhat = a->hs + (r + 1) * bh;
	a->gh = a->xhat + r * bh;
	a->gz = a->gh + bh;
	a->rstd = a->gz + bh;
	a->part = a->rstd + r * batch;
	return 0;
}

int nwc_net_forward_train(const struct nwc_net *net, const float *emb,
			  const uint8_t *q, const float *in, size_t batch,
			  float *out, struct nwc_net_acts *a)
{
	struct nwc_net_layout l;
	const float *p = net->params;
	size_t h = net->h, bh;
	int ret;

	a->valid = false;
	ret = check_args(net, q, batch);
	if (ret)
		return ret;
	bh = batch * h;
	if (batch) {
		ret = acts_reserve(a, net, batch);
		if (ret)
			return ret;
	}
	a->batch = batch;
	a->h = net->h;
	a->r = net->r;
	a->nq = net->nq;
	a->valid = true;
	if (!batch)
		return 0;
	nwc_net_layout(net->h, net->r, &l);
	memcpy(a->in, in, batch * NWC_CHUNK * sizeof(*in));
	memcpy(a->q, q, batch);

	linear(in, p + l.w_in, p + l.b_in, batch, h, NWC_CHUNK, a->hs);
	for (unsigned int r = 0; r < net->r; r++) {
		const struct nwc_net_block_offs *b = &l.blk[r];
		const float *hin = a->hs + r * bh;
		float *hout = a->hs + (r + 1) * bh, *z = a->xhat + r * bh;
		float *rstd = a->rstd + r * batch;

		linear(hin, p + b->w, p + b->b, batch, h, h, z);
		block_rows_keep(z, hin, hout, h, p + b->gamma, p + b->beta,
				emb, q, batch, h, rstd);
	}
	linear(a->hs + net->r * bh, p + l.w_out, p + l.b_out, batch, NWC_CHUNK,
	       h, out);
	return 0;
}

/* grad[j] += column sums of x (rows x n), accumulated in double. */
static void add_colsum(float *grad, const float *x, size_t rows, size_t n,
		       double *acc)
{
	memset(acc, 0, n * sizeof(*acc));
	for (size_t i = 0; i < rows; i++)
		for (size_t j = 0; j < n; j++)
			acc[j] += x[i * n + j];
	for (size_t j = 0; j < n; j++)
		grad[j] += (float)acc[j];
}

/* acc[j] += part[j], then part[j] = 0, for @n entries. */
static void flush_part(double *acc, float *part, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		acc[j] += part[j];
		part[j] = 0;
	}
}

/*
 * A row sum kept in eight lanes (element j in lane j % 8, lanes 0-3 in
 * lo, 4-7 in hi) and added up in a fixed order, so it does not depend on
 * the vector width.
 */
struct sum8 {
	v4sf lo, hi;
};

static inline void sum8_add(struct sum8 *s, size_t j, float v)
{
	if (j & 4)
		s->hi[j & 3] += v;
	else
		s->lo[j & 3] += v;
}

static inline float sum8_total(const struct sum8 *s)
{
	return ((s->lo[0] + s->hi[0]) + (s->lo[1] + s->hi[1])) +
	       ((s->lo[2] + s->hi[2]) + (s->lo[3] + s->hi[3]));
}

/*
 * Column sums over the batch are kept in float for FLUSH_ROWS rows, which
 * vectorizes, then moved into double, which bounds the float error.
 */
#define FLUSH_ROWS 64

/*
 * Backward through block @r: on entry a->gh = dL/d(h_{r+1}); on return
 * a->gh = dL/d(h_r), the block's parameter gradients are added to @dparams
 * and its E gradient to the double sums at a->acc (nq x H).
 */
static void block_backward(const struct nwc_net *net, const float *emb,
			   const struct nwc_net_layout *l, unsigned int r,
			   struct nwc_net_acts *a, float *dparams)
{
	const struct nwc_net_block_offs *b = &l->blk[r];
	const float *p = net->params, *gamma = p + b->gamma,
		    *beta = p + b->beta;
	size_t h = net->h, batch = a->batch, bh = batch * h, nqh = net->nq * h;
	size_t n4 = h & ~(size_t)3;
	const float *hin = a->hs + r * bh, *xhat = a->xhat + r * bh,
		    *rstd = a->rstd + r * batch;
	double *de = a->acc, *dgamma = de + nqh, *dbeta = dgamma + h;
	float *pde = a->part, *pdg = pde + nqh, *pdb = pdg + h;
	const v4sf zero = { 0 };
	float invn = 1.0f / (float)h;

	memset(dgamma, 0, 2 * h * sizeof(*dgamma));
	memset(a->part, 0, (nqh + 2 * h) * sizeof(*a->part));
	for (size_t i = 0; i < batch; i++) {
		const float *e = emb + a->q[i] * h, *xi = xhat + i * h,
			    *hi = hin + i * h;
		float *pdei = pde + a->q[i] * h;
		float *gh = a->gh + i * h, *gz = a->gz + i * h;
		struct sum8 s1 = { { 0 }, { 0 } }, s2 = { { 0 }, { 0 } };
		v4sf m1, m2, vr;
		size_t j;

		/* Through h = (h_r + ReLU(gamma x + beta)) * e. */
		for (j = 0; j < n4; j += 4) {
			v4sf x = v4_load(xi + j), g = v4_load(gamma + j);
			v4sf u = g * x + v4_load(beta + j);
			v4sf vgh = v4_load(gh + j);
			v4sf gs = vgh * v4_load(e + j);
			v4sf gu = (v4sf)((v4si)gs & (u > zero));
			v4sf gx = gu * g;

			v4_store(pdei + j, v4_load(pdei + j) +
				 vgh * (v4_load(hi + j) + v4_relu(u)));
			v4_store(pdg + j, v4_load(pdg + j) + gu * x);
			v4_store(pdb + j, v4_load(pdb + j) + gu);
			v4_store(gh + j, gs);	/* residual path */
			v4_store(gz + j, gx);
			if (j & 4) {
				s1.hi += gx;
				s2.hi += gx * x;
			} else {
				s1.lo += gx;
				s2.lo += gx * x;
			}
		}
		for (; j < h; j++) {
			float u = gamma[j] * xi[j] + beta[j];
			float gs = gh[j] * e[j];
			float gu = u > 0.0f ? gs : 0.0f;
			float gx = gu * gamma[j];

			pdei[j] += gh[j] * (hi[j] + (u > 0.0f ? u : 0.0f));
			pdg[j] += gu * xi[j];
			pdb[j] += gu;
			gh[j] = gs;
			gz[j] = gx;
			sum8_add(&s1, j, gx);
			sum8_add(&s2, j, gx * xi[j]);
		}

		/* Through LayerNorm: dz = rstd (dx - mean(dx) - x mean(dx x)). */
		m1 = zero + sum8_total(&s1) * invn;
		m2 = zero + sum8_total(&s2) * invn;
		vr = zero + rstd[i];
		for (j = 0; j < n4; j += 4)
			v4_store(gz + j, vr * (v4_load(gz + j) - m1 -
					       v4_load(xi + j) * m2));
		for (; j < h; j++)
			gz[j] = rstd[i] * (gz[j] - m1[0] - xi[j] * m2[0]);

		if ((i + 1) % FLUSH_ROWS == 0 || i + 1 == batch)
			flush_part(de, pde, nqh + 2 * h);
	}
	for (size_t j = 0; j < h; j++) {
		dparams[b->gamma + j] += (float)dgamma[j];
		dparams[b->beta + j] += (float)dbeta[j];
	}

	/* z = h_r . W^T + b: dW += gz^T . h_r, db += colsum(gz), gh += gz . W */
	nwc_sgemm(true, false, (int)h, (int)h, (int)batch, 1.0f, a->gz, (int)h,
		  hin, (int)h, 1.0f, dparams + b->w, (int)h);
	add_colsum(dparams + b->b, a->gz, batch, h, dbeta + h);
	nwc_sgemm(false, false, (int)batch, (int)h, (int)h, 1.0f, a->gz,
		  (int)h, p + b->w, (int)h, 1.0f, a->gh, (int)h);
}

int nwc_net_backward(const struct nwc_net *net, const float *emb,
		     const float *dout, struct nwc_net_acts *a,
		     float *dparams, float *demb, float *din)
{
	struct nwc_net_layout l;
	const float *p = net->params;
	size_t h = net->h, batch = a->batch;
	const float *hlast;
	double *colsum;

	if (!a->valid || a->h != net->h || a->r != net->r ||
	    a->nq != net->nq || nwc_net_layout(net->h, net->r, &l))
		return -EINVAL;
	if (!batch)
		return 0;
	hlast = a->hs + net->r * batch * h;
	colsum = a->acc + (size_t)net->nq * h;

	/* out = h_R . W_out^T + b_out */
	nwc_sgemm(true, false, NWC_CHUNK, (int)h, (int)batch, 1.0f, dout,
		  NWC_CHUNK, hlast, (int)h, 1.0f, dparams + l.w_out, (int)h);
	add_colsum(dparams + l.b_out, dout, batch, NWC_CHUNK, colsum);
	nwc_sgemm(false, false, (int)batch, (int)h, NWC_CHUNK, 1.0f, dout,
		  NWC_CHUNK, p + l.w_out, (int)h, 0.0f, a->gh, (int)h);

	/* E gets one addition per call, so repeated calls add up exactly. */
	memset(a->acc, 0, (size_t)net->nq * h * sizeof(double));
	for (unsigned int r = net->r; r-- > 0;)
		block_backward(net, emb, &l, r, a, dparams);
	for (size_t j = 0; j < net->nq * h; j++)
		demb[j] += (float)a->acc[j];

	/* h_0 = in . W_in^T + b_in */
	nwc_sgemm(true, false, (int)h, NWC_CHUNK, (int)batch, 1.0f, a->gh,
		  (int)h, a->in, NWC_CHUNK, 1.0f, dparams + l.w_in, NWC_CHUNK);
	add_colsum(dparams + l.b_in, a->gh, batch, h, colsum);
	if (din)
		nwc_sgemm(false, false, (int)batch, NWC_CHUNK, (int)h, 1.0f,
			  a->gh, (int)h, p + l.w_in, NWC_CHUNK, 0.0f, din,
			  NWC_CHUNK);
	return 0;
}
