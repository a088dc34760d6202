/* SPDX-License-Identifier: MIT */
/*
 * mlp.c - NWC encoder/decoder network: shapes and batched inference, the
 * folded decoder included.  Decode side (libnwcdec.a); initialization and
 * the training passes are mlp_train.c (libnwcenc.a).
 */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/nwc/gemm.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/mlp_impl.h"

struct nwc_net_scratch {
	float *buf;		/* batch rows of [h | z], 2H each */
	size_t cap;		/* floats in buf */
};

int nwc_net_check(unsigned int h, unsigned int r, unsigned int nq)
{
	if (h < 1 || h > NWC_NET_MAX_H || r > NWC_NET_MAX_R || nq < 1 ||
	    nq > NWC_NET_MAX_Q)
		return -EINVAL;
	return 0;
}

size_t nwc_net_nparams(unsigned int h, unsigned int r)
{
	size_t hh = h;

	if (nwc_net_check(h, r, 1))
		return 0;
	return 2 * NWC_CHUNK * hh + hh + r * (hh * hh + 3 * hh) + NWC_CHUNK;
}

int nwc_net_layout(unsigned int h, unsigned int r, struct nwc_net_layout *l)
{
	size_t off = 0;

	if (nwc_net_check(h, r, 1))
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	l->w_in = off;
	off += (size_t)h * NWC_CHUNK;
	l->b_in = off;
	off += h;
	for (unsigned int i = 0; i < r; i++) {
		l->blk[i].w = off;
		off += (size_t)h * h;
		l->blk[i].b = off;
		off += h;
		l->blk[i].gamma = off;
		off += h;
		l->blk[i].beta = off;
		off += h;
	}
	l->w_out = off;
	off += (size_t)NWC_CHUNK * h;
	l->b_out = off;
	off += NWC_CHUNK;
	l->total = off;
	return 0;
}

uint64_t nwc_net_macs(unsigned int h, unsigned int r)
{
	return 2 * NWC_CHUNK * (uint64_t)h + (uint64_t)r * h * h;
}

int nwc_net_scratch_create(struct nwc_net_scratch **out)
{
	struct nwc_net_scratch *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	nwc_gemm_init();
	*out = s;
	return 0;
}

void nwc_net_scratch_free(struct nwc_net_scratch *s)
{
	if (!s)
		return;
	free(s->buf);
	free(s);
}

/*
 * block_row() over @rows rows @ld floats apart in @z, @hin and @hout, row
 * i modulated by emb + q[i] * n; z is left as it is.  The training pass
 * has its own copy that keeps z (mlp_train.c, block_rows_keep()), with
 * the same bits.  The loop is inside the clone, one call per batch, and
 * H 32 has a copy of its own whose rows stay in registers.
 */
__attribute__((target_clones("avx2", "default")))
static void block_rows(float *z, const float *hin, float *hout, size_t ld,
		       const float *gamma, const float *beta, const float *emb,
		       const uint8_t *q, size_t rows, size_t n)
{
	if (n == 32) {
		for (size_t i = 0; i < rows; i++)
			block_row(z + i * ld, hin + i * ld, hout + i * ld,
				  gamma, beta, emb + q[i] * 32, 32, false);
	} else {
		for (size_t i = 0; i < rows; i++)
			block_row(z + i * ld, hin + i * ld, hout + i * ld,
				  gamma, beta, emb + q[i] * n, n, false);
	}
}

/*
 * What both inference passes share: the scratch as @batch rows of [h | z]
 * (2H floats: a block's input, then its pre-activation), which *hz gets.
 * 0 or -ENOMEM.
 */
static int hz_rows(struct nwc_net_scratch *s, const struct nwc_net *net,
		   size_t batch, float **hz)
{
	/* batch <= INT_MAX and H <= 4096: no overflow */
	*hz = grow(s->buf, &s->cap, 2 * batch * net->h, sizeof(**hz));
	if (!*hz)
		return -ENOMEM;
	s->buf = *hz;
	return 0;
}

/*
 * The residual blocks and the output Linear on the rows of @hz, whose h
 * holds the input of block 0 and, if @z0 (the folded pass), whose z
 * holds block 0's pre-activation already.
 */
static void blocks_out(const struct nwc_net *net, const float *emb,
		       const uint8_t *q, size_t batch, float *hz, bool z0,
		       float *out)
{
	struct nwc_net_layout l;
	const float *p = net->params;
	size_t h = net->h, ld = 2 * h;

	nwc_net_layout(net->h, net->r, &l);
	for (unsigned int r = 0; r < net->r; r++) {
		const struct nwc_net_block_offs *b = &l.blk[r];

		if (r || !z0)
			linear_ld(hz, ld, p + b->w, p + b->b, batch, h, h,
				  hz + h, ld);
		block_rows(hz + h, hz, hz, ld, p + b->gamma, p + b->beta, emb,
			   q, batch, h);
	}
	linear_ld(hz, ld, p + l.w_out, p + l.b_out, batch, NWC_CHUNK, h, out,
		  NWC_CHUNK);
}

/*
 * The inference passes run a batch a slice of rows at a time: each row's
 * arithmetic is its own, so the bits are the same, and a slice's [h | z]
 * (64 KiB at H 32) stays in L2 between the layers instead of streaming a
 * band's megabytes through memory, and a thread's scratch stays small.
 */
#define SLICE 256u

int nwc_net_forward(const struct nwc_net *net, const float *emb,
		    const uint8_t *q, const float *in, size_t batch,
		    float *out, struct nwc_net_scratch *s)
{
	struct nwc_net_layout l;
	float *hz;
	int ret;

	ret = check_args(net, q, batch);
	if (ret || !batch)
		return ret;
	ret = hz_rows(s, net, NWC_MIN(batch, SLICE), &hz);
	if (ret)
		return ret;
	nwc_net_layout(net->h, net->r, &l);
	for (size_t i = 0; i < batch; i += SLICE) {
		size_t rows = NWC_MIN(SLICE, batch - i);

		linear_ld(in + i * NWC_CHUNK, NWC_CHUNK, net->params + l.w_in,
			  net->params + l.b_in, rows, net->h, NWC_CHUNK, hz,
			  2 * (size_t)net->h);
		blocks_out(net, emb, q + i, rows, hz, false,
			   out + i * NWC_CHUNK);
	}
	return 0;
}

size_t nwc_net_folded_size(unsigned int h)
{
	return (size_t)2 * h * (NWC_CHUNK + 1);
}

int nwc_net_fold(const struct nwc_net *net, const float *shift,
		 float *folded)
{
	struct nwc_net_layout l;
	const float *p = net->params, *w_in, *w1, *b1;
	size_t h = net->h;
	float *wf, *bf;
	double *b0;

	if (nwc_net_check(net->h, net->r, net->nq) || !net->r)
		return -EINVAL;
	b0 = malloc(h * sizeof(*b0));
	if (!b0)
		return -ENOMEM;
	nwc_net_layout(net->h, net->r, &l);
	w_in = p + l.w_in;
	w1 = p + l.blk[0].w;
	b1 = p + l.blk[0].b;
	wf = folded;			/* 2H x 16 */
	bf = folded + 2 * h * NWC_CHUNK;	/* 2H */
	/* In double, so that the only rounding is the final one. */
	for (size_t i = 0; i < h; i++) {
		b0[i] = p[l.b_in + i];
		for (size_t k = 0; shift && k < NWC_CHUNK; k++)
			b0[i] += (double)w_in[i * NWC_CHUNK + k] * shift[k];
		memcpy(wf + i * NWC_CHUNK, w_in + i * NWC_CHUNK,
		       NWC_CHUNK * sizeof(*wf));
		bf[i] = (float)b0[i];
	}
	for (size_t i = 0; i < h; i++) {
		double b = b1[i];

		for (size_t k = 0; k < NWC_CHUNK; k++) {
			double w = 0;

			for (size_t j = 0; j < h; j++)
				w += (double)w1[i * h + j] *
				     w_in[j * NWC_CHUNK + k];
			wf[(h + i) * NWC_CHUNK + k] = (float)w;
		}
		for (size_t j = 0; j < h; j++)
			b += (double)w1[i * h + j] * b0[j];
		bf[h + i] = (float)b;
	}
	free(b0);
	return 0;
}

int nwc_net_forward_folded(const struct nwc_net *net, const float *folded,
			   const float *emb, const uint8_t *q, const float *in,
			   size_t batch, float *out, struct nwc_net_scratch *s)
{
	size_t ld = 2 * (size_t)net->h;
	float *hz;
	int ret;

	ret = check_args(net, q, batch);
	if (ret)
		return ret;
	if (!net->r)
		return -EINVAL;
	if (!batch)
		return 0;
	ret = hz_rows(s, net, NWC_MIN(batch, SLICE), &hz);
	if (ret)
		return ret;
	for (size_t i = 0; i < batch; i += SLICE) {
		size_t rows = NWC_MIN(SLICE, batch - i);

		/* h and block 0's z in one Linear */
		linear(in + i * NWC_CHUNK, folded, folded + ld * NWC_CHUNK,
		       rows, ld, NWC_CHUNK, hz);
		blocks_out(net, emb, q + i, rows, hz, true,
			   out + i * NWC_CHUNK);
	}
	return 0;
}

bool nwc_net_is_linear(const struct nwc_net *net)
{
	struct nwc_net_layout l;
	const float *p = net->params;

	if (nwc_net_layout(net->h, net->r, &l) || !net->r)
		return false;
	for (unsigned int r = 0; r < net->r; r++) {
		for (size_t i = 0; i < net->h; i++) {
			if (p[l.blk[r].gamma + i] != 0 ||
			    p[l.blk[r].beta + i] != 0)
				return false;
		}
	}
	return true;
}

size_t nwc_net_linear_size(unsigned int nq)
{
	return (size_t)nq * NWC_NET_LIN_LEVEL;
}

int nwc_net_fold_linear(const struct nwc_net *net, const float *emb,
			const float *shift, float *lin)
{
	struct nwc_net_layout l;
	const float *p = net->params, *w_in, *w_out;
	size_t h = net->h;
	double *b0, *e;

	if (nwc_net_check(net->h, net->r, net->nq) || !nwc_net_is_linear(net))
		return -EINVAL;
	b0 = malloc(2 * h * sizeof(*b0));
	if (!b0)
		return -ENOMEM;
	e = b0 + h;
	nwc_net_layout(net->h, net->r, &l);
	w_in = p + l.w_in;
	w_out = p + l.w_out;
	for (size_t i = 0; i < h; i++) {
		b0[i] = p[l.b_in + i];
		for (size_t k = 0; shift && k < NWC_CHUNK; k++)
			b0[i] += (double)w_in[i * NWC_CHUNK + k] * shift[k];
	}
	for (unsigned int q = 0; q < net->nq; q++) {
		float *w = lin + (size_t)q * NWC_NET_LIN_LEVEL;
		float *b = w + NWC_CHUNK * NWC_CHUNK;

		for (size_t i = 0; i < h; i++) {
			e[i] = 1;
			for (unsigned int r = 0; r < net->r; r++)
				e[i] *= emb[(size_t)q * h + i];
		}
		for (size_t o = 0; o < NWC_CHUNK; o++) {
			double bo = p[l.b_out + o];

			for (size_t k = 0; k < NWC_CHUNK; k++) {
				double acc = 0;

				for (size_t i = 0; i < h; i++)
					acc += (double)w_out[o * h + i] * e[i] *
					       w_in[i * NWC_CHUNK + k];
				w[k * NWC_CHUNK + o] = (float)acc;
			}
			for (size_t i = 0; i < h; i++)
				bo += (double)w_out[o * h + i] * e[i] * b0[i];
			b[o] = (float)bo;
		}
	}
	free(b0);
	return 0;
}

/*
 * The maps on @batch chunks, eight outputs to a vector: one AVX register
 * where the CPU has AVX2, two SSE ones elsewhere, the same operations in
 * each lane either way (no fused multiply-add in either clone).
 */
__attribute__((target_clones("avx2", "default")))
static void linear_rows(const float *lin, const uint8_t *q, const float *in,
			size_t batch, float *out)
{
	for (size_t i = 0; i < batch; i++) {
		const float *w = lin + (size_t)q[i] * NWC_NET_LIN_LEVEL;
		float x[NWC_CHUNK];
		v8sf a0, a1, w0, w1;

		V8_LOAD(a0, w + NWC_CHUNK * NWC_CHUNK);
		V8_LOAD(a1, w + NWC_CHUNK * NWC_CHUNK + 8);
		/* a copy: @out may be @in */
		memcpy(x, in + i * NWC_CHUNK, sizeof(x));
		for (size_t k = 0; k < NWC_CHUNK; k++, w += NWC_CHUNK) {
			V8_LOAD(w0, w);
			V8_LOAD(w1, w + 8);
			a0 += x[k] * w0;
			a1 += x[k] * w1;
		}
		V8_STORE(out + i * NWC_CHUNK, a0);
		V8_STORE(out + i * NWC_CHUNK + 8, a1);
	}
}

int nwc_net_forward_linear(const struct nwc_net *net, const float *lin,
			   const uint8_t *q, const float *in, size_t batch,
			   float *out)
{
	int ret = check_args(net, q, batch);

	if (ret)
		return ret;
	linear_rows(lin, q, in, batch, out);
	return 0;
}
