/* SPDX-License-Identifier: MIT */
/*
 * sensitivity.c - backward passes over a token stream, layer by layer:
 * nwc_llama_sensitivity(), the mean square gradient of the model's loss
 * with respect to every output of every linear layer, and
 * nwc_llama_scale_grad(), the gradient of the KL divergence from a
 * reference model with respect to the scale of every output row (with
 * nwc_llama_final_rows(), the reference's side).
 *
 * The forward pass streams as calibration does (one layer's weights at a
 * time) and keeps each layer's input rows in a spill file; the backward
 * pass reads the layers again in reverse, recomputes each one's internals
 * from its input, window by window, and carries the gradient of the
 * residual stream down.  Windows are independent and their sums are added
 * in window order, so nothing depends on the thread count.
 */
#include "codec/common/base.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/gemm.h"
#include "mkfs/llm/llm_impl.h"

/* The seven linear weights of a decoder layer, in the order of their sums. */
enum { LIN_Q, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_N };

static const char *const lin_part[LIN_N] = {
	"self_attn.q_proj.weight", "self_attn.k_proj.weight",
	"self_attn.v_proj.weight", "self_attn.o_proj.weight",
	"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
};

/* A window's buffers: a layer's internals and their gradients. */
struct bscratch {
	float *xn;		/* (L, h) a normed input */
	float *pre;		/* (L, qkv_out) q, k, v before their norms */
	float *qkv;		/* (L, qkv_out) as attention reads them */
	float *att;		/* (L, q_out) */
	float *mid;		/* (L, h) the stream after attention */
	float *gu;		/* (L, 2 inter) gate | up before SiLU */
	float *act;		/* (L, inter) SiLU(gate) * up */
	float *s, *dp;		/* (LLM_QROWS, L) probabilities, their grad */
	float *dact;		/* (L, inter) */
	float *dgu;		/* (L, 2 inter) */
	float *dh;		/* (L, h) */
	float *datt;		/* (L, q_out) */
	float *dqkv;		/* (L, qkv_out) */
	float *hn;		/* (qkv_out,) one row through the head norms */
	float *logits;		/* (LLM_LOGIT_ROWS, vocab) */
	/* scale gradients only: */
	float *ydown;		/* (L, h) down_proj's output */
	float *ref;		/* (LLM_LOGIT_ROWS, vocab) the reference's */
};

/*
 * The run's r.act holds the stream (total, h), window after window, and
 * r.sum (r.acc_len = rows) a layer's sums, windows added in order.
 */
struct sens {
	struct run r;
	struct nwc_llama *m;
	const struct layer *ly;	/* the layer being run */
	const float *head;	/* (vocab, h) lm_head or the tied embedding */
	float *grad;		/* (total, h) the loss gradient of the stream */
	size_t rows;		/* outputs of the layer's linear weights */
	size_t off[LIN_N + 1];	/* where each weight's outputs start */
	enum { PASS_FORWARD, PASS_HEAD, PASS_BACKWARD } pass;
	/*
	 * Scale gradients: the reference model's final rows (total, h), the
	 * hook that gives each layer its weights, and the KL of each
	 * window; NULL for sensitivities.
	 */
	const float *target;
	nwc_llama_layer_hook *hook;
	void *hook_arg;
	double *kl;		/* (nwin,) */
	double div;		/* what the sums are divided by */
};

static void bscratch_free(struct bscratch *b)
{
	free(b->xn);
	free(b->pre);
	free(b->qkv);
	free(b->att);
	free(b->mid);
	free(b->gu);
	free(b->act);
	free(b->s);
	free(b->dp);
	free(b->dact);
	free(b->dgu);
	free(b->dh);
	free(b->datt);
	free(b->dqkv);
	free(b->hn);
	free(b->logits);
	free(b->ydown);
	free(b->ref);
}

static int bscratch_alloc(const struct sens *S, struct bscratch *b)
{
	const struct nwc_llama *m = S->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint64_t L = S->r.maxlen, h = c->hidden, in = c->intermediate;

	memset(b, 0, sizeof(*b));
	b->xn = llm_alloc_f32(L, h);
	b->pre = llm_alloc_f32(L, m->qkv_out);
	b->qkv = llm_alloc_f32(L, m->qkv_out);
	b->att = llm_alloc_f32(L, m->q_out);
	b->mid = llm_alloc_f32(L, h);
	b->gu = llm_alloc_f32(L, 2 * in);
	b->act = llm_alloc_f32(L, in);
	b->s = llm_alloc_f32(LLM_QROWS, L);
	b->dp = llm_alloc_f32(LLM_QROWS, L);
	b->dact = llm_alloc_f32(L, in);
	b->dgu = llm_alloc_f32(L, 2 * in);
	b->dh = llm_alloc_f32(L, h);
	b->datt = llm_alloc_f32(L, m->q_out);
	b->dqkv = llm_alloc_f32(L, m->qkv_out);
	b->hn = llm_alloc_f32(m->qkv_out, 1);
	b->logits = llm_alloc_f32(LLM_LOGIT_ROWS, c->vocab);
	if (S->target) {
		b->ydown = llm_alloc_f32(L, h);
		b->ref = llm_alloc_f32(LLM_LOGIT_ROWS, c->vocab);
	}
	if (b->xn && b->pre && b->qkv && b->att && b->mid && b->gu && b->act &&
	    b->s && b->dp && b->dact && b->dgu && b->dh && b->datt && b->dqkv &&
	    b->hn && b->logits && (!S->target || (b->ydown && b->ref)))
		return 0;
	bscratch_free(b);
	return -ENOMEM;
}

/*
 * Adds to dx the gradient of y = w * x / rms(x) (rows of n) with respect
 * to x, given dy: r (dy w - x r^2 mean(dy w x)), r = 1 / rms(x).
 */
static void rmsnorm_back(float *dx, const float *x, const float *w,
			 const float *dy, uint32_t rows, uint32_t n,
			 float eps)
{
	for (uint32_t t = 0; t < rows; t++) {
		const float *xr = x + (size_t)t * n, *gr = dy + (size_t)t * n;
		float *dr = dx + (size_t)t * n;
		double ss = 0, dot = 0;
		float r, k;

		for (uint32_t i = 0; i < n; i++) {
			ss += (double)xr[i] * xr[i];
			dot += (double)gr[i] * w[i] * xr[i];
		}
		r = 1.0f / sqrtf((float)(ss / n) + eps);
		k = (float)(dot / n) * r * r * r;
		for (uint32_t i = 0; i < n; i++)
			dr[i] += r * gr[i] * w[i] - k * xr[i];
	}
}

/* The inverse rotation of llm_rope(), on a gradient. */
static void rope_back(const struct run *r, float *v, uint32_t nheads,
		      uint32_t pos)
{
	uint32_t d = r->m->cfg.head_dim, half = d / 2;
	const float *cs = r->rcos + (size_t)pos * half;
	const float *sn = r->rsin + (size_t)pos * half;

	for (uint32_t h = 0; h < nheads; h++, v += d) {
		for (uint32_t i = 0; i < half; i++) {
			float a = v[i], b = v[i + half];

			v[i] = a * cs[i] + b * sn[i];
			v[i + half] = b * cs[i] - a * sn[i];
		}
	}
}

/* sums[j] += sum over the @rows rows (@ld apart) of x[., j]^2. */
static void add_squares(double *sums, const float *x, uint32_t rows,
			uint32_t n, uint32_t ld)
{
	for (uint32_t t = 0; t < rows; t++)
		for (uint32_t j = 0; j < n; j++)
			sums[j] += (double)x[(size_t)t * ld + j] *
				   x[(size_t)t * ld + j];
}

/*
 * sums[j] += sum over the @rows rows of g[., j] (y[., j] - sub[., j] -
 * bias[j]), @sub and @bias NULL for none: the gradient with respect to a
 * scale of output j of a weight whose output, less its bias, is y - sub.
 */
static void add_products(double *sums, const float *g, uint32_t ldg,
			 const float *y, const float *sub, uint32_t ldy,
			 const float *bias, uint32_t rows, uint32_t n)
{
	for (uint32_t t = 0; t < rows; t++) {
		const float *gr = g + (size_t)t * ldg, *yr = y + (size_t)t * ldy;
		const float *sr = sub ? sub + (size_t)t * ldy : NULL;

		for (uint32_t j = 0; j < n; j++) {
			float v = yr[j] - (sr ? sr[j] : 0.0f) -
				  (bias ? bias[j] : 0.0f);

			sums[j] += (double)gr[j] * v;
		}
	}
}

/*
 * The decoder layer on a window's input rows @x (L, h), keeping what the
 * backward pass needs in @b; the output rows go to @out (may be NULL).
 * The same arithmetic as forward.c's decoder_layer().
 */
static void layer_forward(const struct sens *S, struct bscratch *b,
			  const float *x, uint32_t L, float *out)
{
	const struct nwc_llama *m = S->m;
	const struct nwc_llama_config *c = &m->cfg;
	const struct layer *ly = S->ly;
	const uint32_t h = c->hidden, in = c->intermediate;
	const float eps = (float)c->rms_eps;

	llm_rmsnorm(b->xn, x, ly->attn_norm, L, h, eps);
	llm_linear(b->qkv, b->xn, ly->wqkv, ly->bqkv, L, h, m->qkv_out);
	/* the norms' backward and the scale gradients read the rows before */
	if (ly->q_norm || S->target)
		memcpy(b->pre, b->qkv, (size_t)L * m->qkv_out * sizeof(float));
	for (uint32_t t = 0; t < L; t++) {
		float *row = b->qkv + (size_t)t * m->qkv_out;

		if (ly->q_norm) {
			llm_rmsnorm(row, row, ly->q_norm, c->heads, c->head_dim,
				    eps);
			llm_rmsnorm(row + m->q_out, row + m->q_out, ly->k_norm,
				    c->kv_heads, c->head_dim, eps);
		}
		llm_rope(&S->r, row, c->heads, t);
		llm_rope(&S->r, row + m->q_out, c->kv_heads, t);
	}
	llm_attention(&S->r, b->qkv, b->att, b->s, L);
	llm_linear(b->mid, b->att, ly->wo, ly->bo, L, m->q_out, h);
	for (size_t i = 0; i < (size_t)L * h; i++)
		b->mid[i] += x[i];
	llm_rmsnorm(b->xn, b->mid, ly->mlp_norm, L, h, eps);
	llm_linear(b->gu, b->xn, ly->wgu, NULL, L, h, 2 * in);
	if (!out && !S->target)
		return;		/* the backward pass starts from gu */
	for (uint32_t t = 0; t < L; t++) {
		const float *g = b->gu + (size_t)t * 2 * in, *u = g + in;
		float *a = b->act + (size_t)t * in;

		for (uint32_t j = 0; j < in; j++)
			a[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
	}
	/* the scale gradients' backward pass needs down_proj's output */
	nwc_sgemm(false, true, (int)L, (int)h, (int)in, 1.0f, b->act, (int)in,
		  ly->wdown, (int)in, 0.0f, out ? out : b->ydown, (int)h);
	for (size_t i = 0; out && i < (size_t)L * h; i++)
		out[i] += b->mid[i];
}

/*
 * Attention's backward for every head: from datt (L, q_out) to the
 * gradients of q, k and v after their rotation, in dqkv.  The
 * probabilities are recomputed block by block of LLM_QROWS queries.
 */
static void attention_back(const struct sens *S, struct bscratch *b,
			   uint32_t L)
{
	const struct nwc_llama *m = S->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t d = c->head_dim, rep = c->heads / c->kv_heads;
	const uint32_t win = c->sliding_window, ld = m->qkv_out;
	const float scale = 1.0f / sqrtf((float)d);

	memset(b->dqkv, 0, (size_t)L * ld * sizeof(float));
	for (uint32_t i0 = 0; i0 < L; i0 += LLM_QROWS) {
		uint32_t i1 = NWC_MIN(L, i0 + LLM_QROWS), nq = i1 - i0;
		uint32_t k0 = win && i0 + 1 > win ? i0 + 1 - win : 0;
		uint32_t nk = i1 - k0;

		for (uint32_t hd = 0; hd < c->heads; hd++) {
			size_t ko = m->q_out + (size_t)(hd / rep) * d;
			const float *q = b->qkv + (size_t)i0 * ld + hd * d;
			const float *k = b->qkv + (size_t)k0 * ld + ko;
			const float *v = k + m->kv_out;
			const float *da = b->datt + (size_t)i0 * m->q_out +
					  hd * d;
			float *dq = b->dqkv + (size_t)i0 * ld + hd * d;
			float *dk = b->dqkv + (size_t)k0 * ld + ko;
			float *dv = dk + m->kv_out;

			llm_attn_probs(&S->r, q, k, i0, i1, k0, b->s);
			/* dP = dA V^T; dV += P^T dA */
			nwc_sgemm(false, true, (int)nq, (int)nk, (int)d, 1.0f,
				  da, (int)m->q_out, v, (int)ld, 0.0f, b->dp,
				  (int)nk);
			nwc_sgemm(true, false, (int)nk, (int)d, (int)nq, 1.0f,
				  b->s, (int)nk, da, (int)m->q_out, 1.0f, dv,
				  (int)ld);
			/* dS = P (dP - rowsum(P dP)), zero where P is */
			for (uint32_t i = 0; i < nq; i++) {
				float *p = b->s + (size_t)i * nk;
				float *g = b->dp + (size_t)i * nk;
				double dot = 0;

				for (uint32_t j = 0; j < nk; j++)
					dot += (double)p[j] * g[j];
				for (uint32_t j = 0; j < nk; j++)
					g[j] = p[j] * (g[j] - (float)dot);
			}
			/* dQ = scale dS K; dK += scale dS^T Q */
			nwc_sgemm(false, false, (int)nq, (int)d, (int)nk, scale,
				  b->dp, (int)nk, k, (int)ld, 1.0f, dq,
				  (int)ld);
			nwc_sgemm(true, false, (int)nk, (int)d, (int)nq, scale,
				  b->dp, (int)nk, q, (int)ld, 1.0f, dk,
				  (int)ld);
		}
	}
}

/*
 * The backward pass of the layer over one window: @x its input rows, @g
 * the gradient of its output rows, replaced by that of its input; the
 * squares of the gradients of the seven weights' outputs go to @sums, or
 * with a target (scale gradients) their products with the outputs.
 */
static void layer_backward(const struct sens *S, struct bscratch *b,
			   const float *x, float *g, uint32_t L, double *sums)
{
	const struct nwc_llama *m = S->m;
	const struct nwc_llama_config *c = &m->cfg;
	const struct layer *ly = S->ly;
	const uint32_t h = c->hidden, in = c->intermediate;
	const uint32_t q = m->q_out, kv = m->kv_out, ld = m->qkv_out;
	const float eps = (float)c->rms_eps;

	layer_forward(S, b, x, L, NULL);
	/* down_proj adds to the stream: its output gradient is g */
	if (S->target)
		add_products(sums + S->off[LIN_DOWN], g, h, b->ydown, NULL, h,
			     NULL, L, h);
	else
		add_squares(sums + S->off[LIN_DOWN], g, L, h, h);
	nwc_sgemm(false, false, (int)L, (int)in, (int)h, 1.0f, g, (int)h,
		  ly->wdown, (int)in, 0.0f, b->dact, (int)in);
	for (uint32_t t = 0; t < L; t++) {
		const float *gt = b->gu + (size_t)t * 2 * in, *u = gt + in;
		const float *da = b->dact + (size_t)t * in;
		float *dg = b->dgu + (size_t)t * 2 * in, *du = dg + in;

		for (uint32_t j = 0; j < in; j++) {
			float sg = 1.0f / (1.0f + expf(-gt[j]));

			du[j] = da[j] * gt[j] * sg;
			dg[j] = da[j] * u[j] * sg * (1.0f + gt[j] * (1.0f - sg));
		}
	}
	if (S->target) {
		add_products(sums + S->off[LIN_GATE], b->dgu, 2 * in, b->gu,
			     NULL, 2 * in, NULL, L, in);
		add_products(sums + S->off[LIN_UP], b->dgu + in, 2 * in,
			     b->gu + in, NULL, 2 * in, NULL, L, in);
	} else {
		add_squares(sums + S->off[LIN_GATE], b->dgu, L, in, 2 * in);
		add_squares(sums + S->off[LIN_UP], b->dgu + in, L, in, 2 * in);
	}
	/* g becomes the gradient of mid: g + the MLP norm's */
	nwc_sgemm(false, false, (int)L, (int)h, (int)(2 * in), 1.0f, b->dgu,
		  (int)(2 * in), ly->wgu, (int)h, 0.0f, b->dh, (int)h);
	rmsnorm_back(g, b->mid, ly->mlp_norm, b->dh, L, h, eps);
	/* o_proj adds to the stream: its output is mid - x */
	if (S->target)
		add_products(sums + S->off[LIN_O], g, h, b->mid, x, h, ly->bo,
			     L, h);
	else
		add_squares(sums + S->off[LIN_O], g, L, h, h);
	nwc_sgemm(false, false, (int)L, (int)q, (int)h, 1.0f, g, (int)h,
		  ly->wo, (int)q, 0.0f, b->datt, (int)q);
	attention_back(S, b, L);
	for (uint32_t t = 0; t < L; t++) {
		float *row = b->dqkv + (size_t)t * ld;

		rope_back(&S->r, row, c->heads, t);
		rope_back(&S->r, row + q, c->kv_heads, t);
	}
	if (ly->q_norm) {
		/* through each head's norm, from the rows before it */
		for (uint32_t t = 0; t < L; t++) {
			float *dr = b->dqkv + (size_t)t * ld;
			const float *pr = b->pre + (size_t)t * ld;

			memset(b->hn, 0, (size_t)(q + kv) * sizeof(float));
			rmsnorm_back(b->hn, pr, ly->q_norm, dr, c->heads,
				     c->head_dim, eps);
			rmsnorm_back(b->hn + q, pr + q, ly->k_norm, dr + q,
				     c->kv_heads, c->head_dim, eps);
			memcpy(dr, b->hn, (size_t)(q + kv) * sizeof(float));
		}
	}
	if (S->target) {
		const float *bq = ly->bqkv;

		add_products(sums + S->off[LIN_Q], b->dqkv, ld, b->pre, NULL,
			     ld, bq, L, q);
		add_products(sums + S->off[LIN_K], b->dqkv + q, ld,
			     b->pre + q, NULL, ld, bq ? bq + q : NULL, L, kv);
		add_products(sums + S->off[LIN_V], b->dqkv + q + kv, ld,
			     b->pre + q + kv, NULL, ld,
			     bq ? bq + q + kv : NULL, L, kv);
	} else {
		add_squares(sums + S->off[LIN_Q], b->dqkv, L, q, ld);
		add_squares(sums + S->off[LIN_K], b->dqkv + q, L, kv, ld);
		add_squares(sums + S->off[LIN_V], b->dqkv + q + kv, L, kv,
			    ld);
	}
	/* g becomes the gradient of the input: g + the attention norm's */
	nwc_sgemm(false, false, (int)L, (int)h, (int)ld, 1.0f, b->dqkv,
		  (int)ld, ly->wqkv, (int)h, 0.0f, b->dh, (int)h);
	rmsnorm_back(g, x, ly->attn_norm, b->dh, L, h, eps);
}

/* The largest of @n floats and ln sum exp(x - max), in double. */
static double log_sum_exp(const float *x, uint32_t n, float *max)
{
	float mx = x[0];
	double sum = 0;

	for (uint32_t j = 1; j < n; j++)
		mx = x[j] > mx ? x[j] : mx;
	for (uint32_t j = 0; j < n; j++)
		sum += exp((double)(x[j] - mx));
	*max = mx;
	return log(sum);
}

/*
 * KL(p || q) of one position, p = softmax(@ref) the reference's, q =
 * softmax(@lg) the model's; @lg becomes its gradient with respect to
 * the logits, q - p.
 */
static double kl_row(float *lg, const float *ref, uint32_t V)
{
	float mq, mp;
	double lq = log_sum_exp(lg, V, &mq), lp = log_sum_exp(ref, V, &mp);
	double kl = 0;

	for (uint32_t j = 0; j < V; j++) {
		double a = (double)(ref[j] - mp) - lp;	/* ln p_j */
		double c = (double)(lg[j] - mq) - lq;	/* ln q_j */
		double p = exp(a);

		kl += p * (a - c);
		lg[j] = (float)(exp(c) - p);
	}
	return kl;
}

/*
 * The loss of a window at the top of the stream: the gradient of its
 * summed negative log-likelihood with respect to the final rows @x, in @g;
 * or with a target, of the KL divergence from the reference, whose final
 * rows are @ref, summed over the same positions (returned).
 */
static double head_backward(const struct sens *S, struct bscratch *b,
			    const float *x, const float *ref,
			    const uint32_t *tok, float *g, uint32_t L)
{
	const struct nwc_llama *m = S->m;
	const uint32_t h = m->cfg.hidden, V = m->cfg.vocab;
	const float eps = (float)m->cfg.rms_eps;
	double kl = 0;

	llm_rmsnorm(b->xn, x, m->norm, L, h, eps);
	if (ref)	/* mid is free at the head */
		llm_rmsnorm(b->mid, ref, m->norm, L, h, eps);
	memset(b->dh, 0, (size_t)L * h * sizeof(float));
	for (uint32_t r0 = 0; r0 + 1 < L; r0 += LLM_LOGIT_ROWS) {
		uint32_t nr = NWC_MIN(LLM_LOGIT_ROWS, L - 1 - r0);

		nwc_sgemm(false, true, (int)nr, (int)V, (int)h, 1.0f,
			  b->xn + (size_t)r0 * h, (int)h, S->head, (int)h,
			  0.0f, b->logits, (int)V);
		if (ref)
			nwc_sgemm(false, true, (int)nr, (int)V, (int)h, 1.0f,
				  b->mid + (size_t)r0 * h, (int)h, S->head,
				  (int)h, 0.0f, b->ref, (int)V);
		for (uint32_t t = 0; t < nr; t++) {
			float *lg = b->logits + (size_t)t * V;

			if (ref) {
				kl += kl_row(lg, b->ref + (size_t)t * V, V);
				continue;
			}
			llm_softmax(lg, V);
			lg[tok[r0 + t + 1]] -= 1.0f;
		}
		nwc_sgemm(false, false, (int)nr, (int)h, (int)V, 1.0f,
			  b->logits, (int)V, S->head, (int)h, 0.0f,
			  b->dh + (size_t)r0 * h, (int)h);
	}
	memset(g, 0, (size_t)L * h * sizeof(float));
	rmsnorm_back(g, x, m->norm, b->dh, L, h, eps);
	return kl;
}

struct bworker {
	struct sens *S;
	struct bscratch b;
	double *sums;		/* (rows,) of the window at hand */
};

static void *bworker_main(void *arg)
{
	struct bworker *w = arg;
	struct sens *S = w->S;
	struct run *r = &S->r;
	const uint32_t h = S->m->cfg.hidden;

	size_t i;

	while (llm_take(r, r->nwin, &i)) {
		const struct window *win = &r->win[i];
		float *x, *g;

		x = r->act + win->row * h;
		g = S->grad + win->row * h;
		if (S->pass == PASS_FORWARD) {
			/* out in g, then back: the rows are the window's own */
			layer_forward(S, &w->b, x, win->len, g);
			memcpy(x, g, (size_t)win->len * h * sizeof(float));
		} else if (S->pass == PASS_HEAD) {
			double kl = head_backward(
				S, &w->b, x,
				S->target ? S->target + win->row * h : NULL,
				r->tok + win->off, g, win->len);

			if (S->kl)	/* each window its own slot */
				S->kl[i] = kl;
		} else {
			memset(w->sums, 0, S->rows * sizeof(*w->sums));
			layer_backward(S, &w->b, x, g, win->len, w->sums);
		}
		pthread_mutex_lock(&r->lock);
		/* windows are taken in order: those before are in hand */
		if (S->pass == PASS_BACKWARD)
			llm_merge_block(r, i, w->sums);
		llm_report(r, win->len);
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

/* One pass over every window on @nthreads threads (the caller is one). */
static int run_pass(struct sens *S, unsigned nthreads)
{
	struct bworker *w;

	w = calloc(nthreads, sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (unsigned i = 0; i < nthreads; i++) {
		w[i].S = S;
		w[i].sums = malloc(S->rows * sizeof(*w[i].sums));
		if (!w[i].sums || bscratch_alloc(S, &w[i].b)) {
			free(w[i].sums);
			nthreads = i;
			break;
		}
	}
	if (!nthreads) {
		free(w);
		return -ENOMEM;
	}
	nwc_gemm_init();
	S->r.next = 0;
	S->r.merged = 0;
	memset(S->r.sum, 0, S->rows * sizeof(*S->r.sum));
	llm_workers(w, sizeof(*w), nthreads, bworker_main);
	for (unsigned i = 0; i < nthreads; i++) {
		bscratch_free(&w[i].b);
		free(w[i].sums);
	}
	free(w);
	return 0;
}

/* Each weight's sums over the windows, divided by T (the predicted
 * positions for scale gradients). */
static int emit(struct sens *S, uint32_t l, nwc_llama_sens_sink *sink,
		void *arg)
{
	const size_t rows = S->rows;
	float *g;
	int ret = 0;

	g = malloc(rows * sizeof(*g));
	if (!g)
		return -ENOMEM;
	for (size_t j = 0; j < rows; j++)
		g[j] = (float)(S->r.sum[j] / S->div);
	for (unsigned k = 0; k < LIN_N && !ret; k++) {
		char name[NAME_LEN];

		snprintf(name, sizeof(name), "model.layers.%" PRIu32 ".%s", l,
			 lin_part[k]);
		ret = sink(arg, name, g + S->off[k],
			   (uint32_t)(S->off[k + 1] - S->off[k]));
	}
	free(g);
	return ret;
}

/* The stream's rows of every window: the embedding rows of its tokens. */
static int embed_rows(struct sens *S)
{
	const struct nwc_llama_config *c = &S->m->cfg;
	float *embed = llm_alloc_f32(c->vocab, c->hidden);
	uint64_t row = 0;
	int ret;

	if (!embed)
		return -ENOMEM;
	ret = llm_load_f32(S->m, "model.embed_tokens.weight", c->vocab,
			   c->hidden, embed);
	for (size_t i = 0; !ret && i < S->r.nwin; i++) {
		struct window *w = &S->r.win[i];

		w->row = row;
		llm_embed_window(&S->r, embed, w);
		row += w->len;
	}
	if (!ret && c->tied)
		S->head = embed;	/* kept for the head */
	else
		free(embed);
	return ret;
}

static int load_head(struct sens *S)
{
	const struct nwc_llama_config *c = &S->m->cfg;
	float *head;
	int ret;

	ret = llm_load_norm(S->m);
	if (ret || S->head)
		return ret;
	head = llm_alloc_f32(c->vocab, c->hidden);
	if (!head)
		return -ENOMEM;
	ret = llm_load_f32(S->m, "lm_head.weight", c->vocab, c->hidden, head);
	if (ret)
		free(head);
	else
		S->head = head;
	return ret;
}

uint64_t nwc_llama_sens_bytes(const struct nwc_llama_config *c,
			      uint64_t tokens, uint32_t ctx, unsigned threads)
{
	const uint64_t h = c->hidden, in = c->intermediate;
	const uint64_t q = (uint64_t)c->heads * c->head_dim;
	const uint64_t qkv = q + 2 * (uint64_t)c->kv_heads * c->head_dim;
	const uint64_t L = NWC_MIN(tokens, (uint64_t)ctx);
	const uint64_t layer = qkv * h + h * q + 3 * in * h + 2 * h;
	const uint64_t lin_rows = qkv + 2 * h + 2 * in;
	/* bscratch_alloc(), floats */
	const uint64_t window = L * (3 * h + 3 * qkv + 2 * q + 6 * in) +
				2 * LLM_QROWS * L + qkv +
				(uint64_t)LLM_LOGIT_ROWS * c->vocab;

	/* the stream and its gradient, one layer and the head (the tied
	 * embedding stays while the layers run forward), the sums and
	 * each thread's, the threads' buffers */
	return 8 * tokens * h + 4 * layer +
	       4 * (uint64_t)c->vocab * h * (c->tied ? 2 : 1) +
	       8 * lin_rows * (threads + 1) + 4 * window * threads;
}

/* Layer @l's weights, with the hook's changes when there is one. */
static int load_layer(const struct sens *S, uint32_t l, struct layer *ly)
{
	int ret = llm_load_layer(S->m, l, ly);

	if (!ret && S->hook)
		ret = llm_layer_hook(S->m, l, ly, S->hook, S->hook_arg);
	return ret;
}

/* Predicted positions: all but the last of every window. */
static uint64_t predicted(const struct run *r)
{
	return r->total - r->nwin;
}

/*
 * Set up @S for the model of @dir and the tokens: the stream (r.act)
 * holding the embedding rows, its gradient (which the forward pass uses
 * for the rows it makes) and the sums.
 */
static int sens_init(struct sens *S, const char *dir, const uint32_t *tok,
		     size_t n, const struct nwc_llama_opts *o)
{
	const struct nwc_llama_config *c;
	int ret;

	ret = llm_open(dir, false, &S->m);
	if (ret)
		return ret;
	c = &S->m->cfg;
	ret = llm_run_init(&S->r, S->m, tok, n, o);
	if (!ret && predicted(&S->r) == 0) {
		nwc_err("no tokens to run the backward pass on");
		ret = -EINVAL;
	}
	if (ret)
		return ret;
	S->off[LIN_Q] = 0;
	S->off[LIN_K] = S->m->q_out;
	S->off[LIN_V] = S->off[LIN_K] + S->m->kv_out;
	S->off[LIN_O] = S->off[LIN_V] + S->m->kv_out;
	S->off[LIN_GATE] = S->off[LIN_O] + c->hidden;
	S->off[LIN_UP] = S->off[LIN_GATE] + c->intermediate;
	S->off[LIN_DOWN] = S->off[LIN_UP] + c->intermediate;
	S->off[LIN_N] = S->off[LIN_DOWN] + c->hidden;
	S->rows = S->r.acc_len = S->off[LIN_N];
	S->r.act = llm_alloc_f32(S->r.total, c->hidden);
	S->grad = llm_alloc_f32(S->r.total, c->hidden);
	S->r.sum = malloc(S->rows * sizeof(*S->r.sum));
	if (!S->r.act || !S->grad || !S->r.sum)
		return -ENOMEM;
	return embed_rows(S);
}

static void sens_free(struct sens *S)
{
	free((float *)S->head);
	free(S->grad);
	free(S->r.act);
	llm_run_free(&S->r);	/* r.sum too */
	nwc_llama_free(S->m);
}

/* Every decoder layer forward over the stream, each layer's input rows
 * spilled to @spill_fd first unless it is -1. */
static int forward_layers(struct sens *S, int spill_fd, unsigned threads)
{
	const size_t stride = S->r.total * S->m->cfg.hidden * sizeof(float);
	int ret = 0;

	for (uint32_t l = 0; !ret && l < S->m->cfg.layers; l++) {
		struct layer ly = { 0 };

		ret = load_layer(S, l, &ly);
		if (!ret && spill_fd >= 0) {
			ret = nwc_pwrite_full(spill_fd, S->r.act, stride,
					      (off_t)(l * stride));
			if (ret)
				nwc_err("cannot write the layer inputs of the backward pass: %s",
					nwc_strerror(ret));
		}
		S->ly = &ly;
		S->pass = PASS_FORWARD;
		if (!ret)
			ret = run_pass(S, threads);
		llm_free_layer(&ly);
	}
	return ret;
}

/* The head's backward pass, then every layer's from the last down, each
 * one's sums to @sink. */
static int backward_layers(struct sens *S, int spill_fd, unsigned threads,
			   nwc_llama_sens_sink *sink, void *arg)
{
	const struct nwc_llama_config *c = &S->m->cfg;
	const size_t stride = S->r.total * c->hidden * sizeof(float);
	int ret;

	ret = load_head(S);
	S->pass = PASS_HEAD;
	if (!ret)
		ret = run_pass(S, threads);
	free((float *)S->head);
	S->head = NULL;
	for (uint32_t l = c->layers; !ret && l-- > 0;) {
		struct layer ly = { 0 };

		ret = load_layer(S, l, &ly);
		if (!ret) {
			ret = nwc_pread_full(spill_fd, S->r.act, stride,
					     (off_t)(l * stride));
			if (ret == -NWC_ECORRUPT)
				ret = -EIO;
			if (ret)
				nwc_err("cannot read back the layer inputs of the backward pass: %s",
					nwc_strerror(ret));
		}
		S->ly = &ly;
		S->pass = PASS_BACKWARD;
		if (!ret)
			ret = run_pass(S, threads);
		if (!ret)
			ret = emit(S, l, sink, arg);
		llm_free_layer(&ly);
	}
	return ret;
}

int nwc_llama_sensitivity(const char *dir, const uint32_t *tok, size_t n,
			  const struct nwc_llama_opts *o, int spill_fd,
			  nwc_llama_sens_sink *sink, void *arg)
{
	struct sens S = { 0 };
	unsigned threads;
	int ret;

	ret = sens_init(&S, dir, tok, n, o);
	if (ret)
		goto out_free;
	S.div = (double)S.r.total;
	/* forward, the layers' and the head's, then backward */
	S.r.work = S.r.total * (2 * (uint64_t)S.m->cfg.layers + 1);
	threads = llm_threads_for(o, S.r.nwin);
	ret = forward_layers(&S, spill_fd, threads);
	if (!ret)
		ret = backward_layers(&S, spill_fd, threads, sink, arg);
out_free:
	sens_free(&S);
	return ret;
}

int nwc_llama_final_rows(const char *dir, const uint32_t *tok, size_t n,
			 const struct nwc_llama_opts *o, float **rows)
{
	struct sens S = { 0 };
	int ret;

	*rows = NULL;
	ret = sens_init(&S, dir, tok, n, o);
	if (!ret) {
		S.r.work = S.r.total * (uint64_t)S.m->cfg.layers;
		ret = forward_layers(&S, -1, llm_threads_for(o, S.r.nwin));
	}
	if (!ret) {
		*rows = S.r.act;
		S.r.act = NULL;
	}
	sens_free(&S);
	return ret;
}

int nwc_llama_scale_grad(const char *dir, const uint32_t *tok, size_t n,
			 const struct nwc_llama_opts *o, int spill_fd,
			 const float *target, nwc_llama_layer_hook *hook,
			 void *hook_arg, nwc_llama_sens_sink *sink, void *arg,
			 double *kl)
{
	struct sens S = { .target = target, .hook = hook,
			  .hook_arg = hook_arg };
	unsigned threads;
	double sum = 0;
	int ret;

	ret = sens_init(&S, dir, tok, n, o);
	if (ret)
		goto out_free;
	S.div = (double)predicted(&S.r);
	S.kl = calloc(S.r.nwin, sizeof(*S.kl));
	if (!S.kl) {
		ret = -ENOMEM;
		goto out_free;
	}
	S.r.work = S.r.total * (2 * (uint64_t)S.m->cfg.layers + 1);
	threads = llm_threads_for(o, S.r.nwin);
	ret = forward_layers(&S, spill_fd, threads);
	if (!ret)
		ret = backward_layers(&S, spill_fd, threads, sink, arg);
	for (size_t i = 0; i < S.r.nwin; i++)	/* in window order */
		sum += S.kl[i];
	*kl = sum / S.div;
	free(S.kl);
out_free:
	sens_free(&S);
	return ret;
}
