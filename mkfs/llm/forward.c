/* SPDX-License-Identifier: MIT */
/*
 * forward.c - the F32 forward pass, run on worker threads window by
 * window; nwc_llama_eval() sums its log-likelihoods.
 */
#include "codec/common/base.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "codec/common/log.h"
#include "codec/nwc/gemm.h"
#include "mkfs/group/group.h"
#include "mkfs/llm/llm_impl.h"

#define CTX_LIMIT (1u << 20)		/* largest window accepted */
#define GRAM_ROWS 512u			/* rows of one float X^T X product */

/* Per-thread buffers, sized for the longest window. */
struct scratch {
	float *x;		/* (L, hidden) residual stream */
	float *xn;		/* (L, hidden) normed input, block output */
	float *qkv;		/* (L, qkv_out) */
	float *att;		/* (L, q_out) attention output */
	float *s;		/* (LLM_QROWS, L) scores */
	float *gu;		/* (L, 2 inter) gate | up; SiLU(g)*u in g */
	float *logits;		/* (LLM_LOGIT_ROWS, vocab) */
	float *gram;		/* (max n_in, max n_in), calib only */
	double *acc;		/* (acc_len,), calib only */
};

void llm_rmsnorm(float *y, const float *x, const float *w, uint32_t rows,
		 uint32_t n, float eps)
{
	for (uint32_t t = 0; t < rows; t++) {
		const float *xr = x + (size_t)t * n;
		float *yr = y + (size_t)t * n;
		double ss = 0;
		float r;

		for (uint32_t i = 0; i < n; i++)
			ss += (double)xr[i] * xr[i];
		r = 1.0f / sqrtf((float)(ss / n) + eps);
		for (uint32_t i = 0; i < n; i++)
			yr[i] = w[i] * (xr[i] * r);
	}
}

void llm_linear(float *y, const float *x, const float *w, const float *b,
		uint32_t rows, uint32_t in, uint32_t out)
{
	nwc_sgemm(false, true, (int)rows, (int)out, (int)in, 1.0f, x, (int)in,
		  w, (int)in, 0.0f, y, (int)out);
	if (!b)
		return;
	for (uint32_t t = 0; t < rows; t++)
		for (uint32_t j = 0; j < out; j++)
			y[(size_t)t * out + j] += b[j];
}

/*
 * The rotary table as transformers builds it in float32: inverse
 * frequencies theta^(-2i/d), angle = position * frequency, then cos/sin.
 */
static void rope_table(struct run *r)
{
	const struct nwc_llama_config *c = &r->m->cfg;
	uint32_t half = c->head_dim / 2;

	for (uint32_t i = 0; i < half; i++) {
		float e = (float)(2 * i) / (float)c->head_dim;
		float inv = 1.0f / powf((float)c->rope_theta, e);

		for (uint32_t p = 0; p < r->maxlen; p++) {
			float a = (float)p * inv;

			r->rcos[(size_t)p * half + i] = (float)cos(a);
			r->rsin[(size_t)p * half + i] = (float)sin(a);
		}
	}
}

void llm_rope(const struct run *r, float *v, uint32_t nheads, uint32_t pos)
{
	uint32_t d = r->m->cfg.head_dim, half = d / 2;
	const float *cs = r->rcos + (size_t)pos * half;
	const float *sn = r->rsin + (size_t)pos * half;

	for (uint32_t h = 0; h < nheads; h++, v += d) {
		for (uint32_t i = 0; i < half; i++) {
			float a = v[i], b = v[i + half];

			v[i] = a * cs[i] - b * sn[i];
			v[i + half] = b * cs[i] + a * sn[i];
		}
	}
}

void llm_softmax(float *s, uint32_t n)
{
	float mx = s[0], inv;
	double sum = 0;

	for (uint32_t j = 1; j < n; j++)
		mx = NWC_MAX(mx, s[j]);
	for (uint32_t j = 0; j < n; j++) {
		s[j] = expf(s[j] - mx);
		sum += s[j];
	}
	inv = (float)(1 / sum);
	for (uint32_t j = 0; j < n; j++)
		s[j] *= inv;
}

void llm_attn_probs(const struct run *r, const float *q, const float *k,
		    uint32_t i0, uint32_t i1, uint32_t k0, float *s)
{
	const struct nwc_llama *m = r->m;
	const uint32_t d = m->cfg.head_dim, win = m->cfg.sliding_window;
	const uint32_t ld = m->qkv_out, nq = i1 - i0, nk = i1 - k0;

	nwc_sgemm(false, true, (int)nq, (int)nk, (int)d,
		  1.0f / sqrtf((float)d), q, (int)ld, k, (int)ld, 0.0f, s,
		  (int)nk);
	for (uint32_t i = i0; i < i1; i++) {
		float *row = s + (size_t)(i - i0) * nk;
		uint32_t lo = win && i + 1 > win ? i + 1 - win : 0;

		memset(row, 0, (lo - k0) * sizeof(*row));
		llm_softmax(row + (lo - k0), i + 1 - lo);
		memset(row + (i + 1 - k0), 0, (i1 - i - 1) * sizeof(*row));
	}
}

/*
 * Causal attention of every head over the qkv rows of a window, in blocks
 * of LLM_QROWS queries: scores against the keys the block can see, masked
 * softmax (zeros outside the mask), then the weighted sum of values.
 */
void llm_attention(const struct run *r, const float *qkv, float *att,
		   float *s, uint32_t L)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t d = c->head_dim, rep = c->heads / c->kv_heads;
	const uint32_t win = c->sliding_window, ld = m->qkv_out;

	for (uint32_t i0 = 0; i0 < L; i0 += LLM_QROWS) {
		uint32_t i1 = NWC_MIN(L, i0 + LLM_QROWS), nq = i1 - i0;
		uint32_t k0 = win && i0 + 1 > win ? i0 + 1 - win : 0;
		uint32_t nk = i1 - k0;

		for (uint32_t h = 0; h < c->heads; h++) {
			const float *q = qkv + (size_t)i0 * ld + h * d;
			const float *k = qkv + (size_t)k0 * ld + m->q_out +
					 (h / rep) * d;
			const float *v = k + m->kv_out;

			llm_attn_probs(r, q, k, i0, i1, k0, s);
			nwc_sgemm(false, false, (int)nq, (int)d, (int)nk, 1.0f,
				  s, (int)nk, v, (int)ld, 0.0f,
				  att + (size_t)i0 * m->q_out + h * d,
				  (int)m->q_out);
		}
	}
}

/* acc (an upper triangle, llm_tri) += X^T X, X (rows, n), row stride ld. */
static void gram_add(double *acc, float *tmp, const float *x, uint32_t rows,
		     uint32_t n, uint32_t ld)
{
	for (uint32_t r0 = 0; r0 < rows; r0 += GRAM_ROWS) {
		uint32_t nr = NWC_MIN(GRAM_ROWS, rows - r0);
		const float *xr = x + (size_t)r0 * ld;

		nwc_ssyrk_t((int)n, (int)nr, xr, (int)ld, tmp, (int)n);
		for (size_t i = 0; i < n; i++) {
			double *a = acc + llm_tri(n, i);

			for (size_t j = i; j < n; j++)
				a[j] += tmp[i * n + j];
		}
	}
}

static void calib_add(const struct run *r, struct scratch *sc, size_t in,
		      const float *x, uint32_t rows, uint32_t ld)
{
	gram_add(sc->acc + r->in_off[in], sc->gram, x, rows, r->in_n[in], ld);
}

static void decoder_layer(const struct run *r, struct scratch *sc,
			  const struct layer *ly, size_t l, uint32_t L)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t h = c->hidden, in = c->intermediate;
	const size_t nx = (size_t)L * h;
	const bool calib = sc->acc && !r->no_stats;

	llm_rmsnorm(sc->xn, sc->x, ly->attn_norm, L, h, (float)c->rms_eps);
	if (calib)
		calib_add(r, sc, l * IN_PER_LAYER + IN_ATTN, sc->xn, L, h);
	llm_linear(sc->qkv, sc->xn, ly->wqkv, ly->bqkv, L, h, m->qkv_out);
	for (uint32_t t = 0; t < L; t++) {
		float *row = sc->qkv + (size_t)t * m->qkv_out;

		if (ly->q_norm) {	/* qwen3: each head normed alone */
			llm_rmsnorm(row, row, ly->q_norm, c->heads, c->head_dim,
				(float)c->rms_eps);
			llm_rmsnorm(row + m->q_out, row + m->q_out, ly->k_norm,
				c->kv_heads, c->head_dim, (float)c->rms_eps);
		}
		llm_rope(r, row, c->heads, t);
		llm_rope(r, row + m->q_out, c->kv_heads, t);
	}
	llm_attention(r, sc->qkv, sc->att, sc->s, L);
	if (calib)
		calib_add(r, sc, l * IN_PER_LAYER + IN_O, sc->att, L, m->q_out);
	llm_linear(sc->xn, sc->att, ly->wo, ly->bo, L, m->q_out, h);
	for (size_t i = 0; i < nx; i++)
		sc->x[i] += sc->xn[i];

	llm_rmsnorm(sc->xn, sc->x, ly->mlp_norm, L, h, (float)c->rms_eps);
	if (calib)
		calib_add(r, sc, l * IN_PER_LAYER + IN_MLP, sc->xn, L, h);
	llm_linear(sc->gu, sc->xn, ly->wgu, NULL, L, h, 2 * in);
	for (uint32_t t = 0; t < L; t++) {
		float *g = sc->gu + (size_t)t * 2 * in, *u = g + in;

		for (uint32_t j = 0; j < in; j++)
			g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
	}
	if (calib)
		calib_add(r, sc, l * IN_PER_LAYER + IN_DOWN, sc->gu, L, 2 * in);
	nwc_sgemm(false, true, (int)L, (int)h, (int)in, 1.0f, sc->gu,
		  (int)(2 * in), ly->wdown, (int)in, 0.0f, sc->xn, (int)h);
	for (size_t i = 0; i < nx; i++)
		sc->x[i] += sc->xn[i];
}

/* Sum of -ln p(tok[t + 1]) over t < L - 1, from the final normed rows. */
static double window_nll(const struct run *r, struct scratch *sc,
			 const uint32_t *tok, uint32_t L)
{
	const struct nwc_llama *m = r->m;
	const uint32_t h = m->cfg.hidden, V = m->cfg.vocab;
	double nll = 0;

	for (uint32_t r0 = 0; r0 + 1 < L; r0 += LLM_LOGIT_ROWS) {
		uint32_t nr = NWC_MIN(LLM_LOGIT_ROWS, L - 1 - r0);

		nwc_sgemm(false, true, (int)nr, (int)V, (int)h, 1.0f,
			  sc->xn + (size_t)r0 * h, (int)h, m->lm_head, (int)h,
			  0.0f, sc->logits, (int)V);
		for (uint32_t t = 0; t < nr; t++) {
			const float *lg = sc->logits + (size_t)t * V;
			float mx = lg[0];
			double sum = 0;

			for (uint32_t j = 1; j < V; j++)
				mx = NWC_MAX(mx, lg[j]);
			for (uint32_t j = 0; j < V; j++)
				sum += expf(lg[j] - mx);
			nll += mx + log(sum) - lg[tok[r0 + t + 1]];
		}
	}
	return nll;
}

/*
 * Stage r->stage of one window, on its rows of the residual stream: a
 * decoder layer (statistics of its inputs, then the stream updated), or
 * after the last layer the statistics of the final norm (lm_head's input).
 * The rows go through the thread's own buffer, as in forward(), so each
 * stage computes exactly what a whole forward pass computes.
 */
static void stage(const struct run *r, struct scratch *sc,
		  const struct window *w)
{
	const struct nwc_llama_config *c = &r->m->cfg;
	const uint32_t h = c->hidden, L = w->len;
	float *rows = r->act + w->row * h;

	memcpy(sc->x, rows, (size_t)L * h * sizeof(float));
	if (r->stage < c->layers) {
		decoder_layer(r, sc, r->cur, r->stage, L);
		if (!r->no_write)
			memcpy(rows, sc->x, (size_t)L * h * sizeof(float));
		return;
	}
	llm_rmsnorm(sc->xn, sc->x, r->m->norm, L, h, (float)c->rms_eps);
	calib_add(r, sc, r->nin - 1, sc->xn, L, h);
}

/* One window from position 0: its NLL (eval) or its statistics (calib). */
static double forward(const struct run *r, struct scratch *sc,
		      const struct window *w)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t *tok = r->tok + w->off;
	const uint32_t h = c->hidden, L = w->len;

	for (uint32_t t = 0; t < L; t++)
		memcpy(sc->x + (size_t)t * h, m->embed + (size_t)tok[t] * h,
		       h * sizeof(float));
	for (uint32_t l = 0; l < c->layers; l++)
		decoder_layer(r, sc, &m->layer[l], l, L);
	llm_rmsnorm(sc->xn, sc->x, m->norm, L, h, (float)c->rms_eps);
	if (sc->acc) {
		if (!c->tied)
			calib_add(r, sc, r->nin - 1, sc->xn, L, h);
		return 0;
	}
	return window_nll(r, sc, tok, L);
}

static void scratch_free(struct scratch *sc)
{
	free(sc->x);
	free(sc->xn);
	free(sc->qkv);
	free(sc->att);
	free(sc->s);
	free(sc->gu);
	free(sc->logits);
	free(sc->gram);
	free(sc->acc);
}

static int scratch_alloc(const struct run *r, struct scratch *sc, bool calib)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint64_t L = r->maxlen;
	uint32_t maxin = 0;

	memset(sc, 0, sizeof(*sc));
	sc->x = llm_alloc_f32(L, c->hidden);
	sc->xn = llm_alloc_f32(L, c->hidden);
	sc->qkv = llm_alloc_f32(L, m->qkv_out);
	sc->att = llm_alloc_f32(L, m->q_out);
	sc->s = llm_alloc_f32(LLM_QROWS, L);
	sc->gu = llm_alloc_f32(L, 2 * (uint64_t)c->intermediate);
	if (!sc->x || !sc->xn || !sc->qkv || !sc->att || !sc->s || !sc->gu)
		goto out_free;
	if (!calib) {
		sc->logits = llm_alloc_f32(LLM_LOGIT_ROWS, c->vocab);
		if (!sc->logits)
			goto out_free;
		return 0;
	}
	for (size_t i = 0; i < r->nin; i++)
		maxin = NWC_MAX(maxin, r->in_n[i]);
	sc->gram = llm_alloc_f32(maxin, maxin);
	sc->acc = malloc(r->acc_len * sizeof(*sc->acc));
	if (sc->gram && sc->acc)
		return 0;
out_free:
	scratch_free(sc);
	return -ENOMEM;
}

void llm_report(struct run *r, uint64_t tokens)
{
	r->done += tokens;
	if (r->o->progress)
		r->o->progress(r->o->progress_arg, r->done,
			       r->work ? r->work : r->total);
}

bool llm_take(struct run *r, size_t limit, size_t *unit)
{
	pthread_mutex_lock(&r->lock);
	*unit = r->next < limit ? r->next++ : limit;
	pthread_mutex_unlock(&r->lock);
	return *unit < limit;
}

static void eval_work(struct run *r, struct scratch *sc)
{
	size_t i;

	while (llm_take(r, r->nwin, &i)) {
		r->nll[i] = forward(r, sc, &r->win[i]);
		pthread_mutex_lock(&r->lock);
		llm_report(r, r->win[i].len);
		pthread_mutex_unlock(&r->lock);
	}
}

/*
 * A block is summed alone from zero, then added to the total in block
 * order: the blocks do not depend on the thread count, so neither does
 * any rounding.  In a group, block b is rank b % ranks's, and the total
 * goes from rank to rank: each rank's merger thread receives the sum of
 * the blocks before its next one, adds that block when a worker has it,
 * and sends the sum on, so every rank count adds the same numbers in the
 * same order as one process does.  The merger alone talks to the other
 * ranks, and always waits in a receive before the sender gets there, so
 * sends finish at once and the ranks keep computing.
 */
void llm_merge_block(struct run *r, size_t j, const double *acc)
{
	while (r->merged != j)
		pthread_cond_wait(&r->merged_cv, &r->lock);
	if (r->ranks == 1) {
		for (size_t i = 0; i < r->acc_len; i++)
			r->sum[i] += acc[i];
		r->merged++;
	} else {
		r->ready = acc;
		pthread_cond_broadcast(&r->merged_cv);
		while (r->merged == j)
			pthread_cond_wait(&r->merged_cv, &r->lock);
	}
	pthread_cond_broadcast(&r->merged_cv);
}

static void calib_work(struct run *r, struct scratch *sc, bool stream)
{
	size_t j;

	while (llm_take(r, r->nmine, &j)) {
		size_t b = llm_block_of(r, j);
		uint64_t tokens = 0;

		if (!r->no_stats)
			memset(sc->acc, 0, r->acc_len * sizeof(*sc->acc));
		for (size_t i = r->block[b]; i < r->block[b + 1]; i++) {
			if (stream)
				stage(r, sc, &r->win[i]);
			else
				forward(r, sc, &r->win[i]);
			tokens += r->win[i].len;
		}
		pthread_mutex_lock(&r->lock);
		if (!r->no_stats)
			llm_merge_block(r, j, sc->acc);
		llm_report(r, tokens);
		pthread_mutex_unlock(&r->lock);
	}
}

static void *merger_main(void *arg)
{
	struct run *r = arg;
	size_t bytes = r->acc_len * sizeof(*r->sum);

	for (size_t j = 0; j < r->nmine; j++) {
		size_t b = llm_block_of(r, j);
		const double *acc;

		if (b > 0)
			nwc_group_recv((r->rank + r->ranks - 1) % r->ranks,
				       NWC_GROUP_TAG_SUM, r->sum, bytes);
		pthread_mutex_lock(&r->lock);
		while (!r->ready)
			pthread_cond_wait(&r->merged_cv, &r->lock);
		acc = r->ready;
		r->ready = NULL;
		pthread_mutex_unlock(&r->lock);
		for (size_t i = 0; i < r->acc_len; i++)
			r->sum[i] += acc[i];
		pthread_mutex_lock(&r->lock);
		r->merged++;
		pthread_cond_broadcast(&r->merged_cv);
		pthread_mutex_unlock(&r->lock);
		if (b + 1 < r->nblocks)
			nwc_group_send((r->rank + 1) % r->ranks,
				       NWC_GROUP_TAG_SUM, r->sum, bytes);
	}
	return NULL;
}

struct worker {
	struct run *r;
	struct scratch sc;
	enum run_mode mode;
};

void llm_workers(void *args, size_t size, unsigned n, void *(*fn)(void *))
{
	pthread_t *tid = n > 1 ? calloc(n, sizeof(*tid)) : NULL;
	unsigned started = 1;

	for (unsigned i = 1; tid && i < n; i++) {
		if (pthread_create(&tid[i], NULL, fn, (char *)args + i * size))
			break;
		started++;
	}
	fn(args);
	for (unsigned i = 1; i < started; i++)
		pthread_join(tid[i], NULL);
	free(tid);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	if (w->mode == RUN_EVAL)
		eval_work(w->r, &w->sc);
	else
		calib_work(w->r, &w->sc, w->mode == RUN_STREAM);
	return NULL;
}

/*
 * Runs the workers: the calling thread is one of them.  A thread that
 * cannot get its buffers or be started leaves its share to the others,
 * which changes the speed but not the result.
 */
int llm_run_threads(struct run *r, unsigned nthreads, enum run_mode mode)
{
	struct worker *w;
	pthread_t mtid;
	bool merger;

	w = calloc(nthreads, sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (unsigned i = 0; i < nthreads; i++) {
		w[i].r = r;
		w[i].mode = mode;
		if (scratch_alloc(r, &w[i].sc, mode != RUN_EVAL)) {
			nthreads = i;
			break;
		}
	}
	if (!nthreads) {
		free(w);
		return -ENOMEM;
	}
	nwc_gemm_init();
	/* Without its merger, the ranks could not add their sums. */
	merger = mode == RUN_STREAM && r->ranks > 1 && !r->no_stats;
	if (merger && pthread_create(&mtid, NULL, merger_main, r)) {
		for (unsigned i = 0; i < nthreads; i++)
			scratch_free(&w[i].sc);
		free(w);
		return -EAGAIN;
	}
	llm_workers(w, sizeof(*w), nthreads, worker_main);
	if (merger)
		pthread_join(mtid, NULL);
	for (unsigned i = 0; i < nthreads; i++)
		scratch_free(&w[i].sc);
	free(w);
	return 0;
}

/* Validates the options and tokens and cuts the stream into windows. */
int llm_run_init(struct run *r, const struct nwc_llama *m,
		 const uint32_t *tok, size_t n,
		 const struct nwc_llama_opts *o)
{
	const struct nwc_llama_config *c = &m->cfg;
	uint32_t ctx = o->ctx ? o->ctx : NWC_MIN(c->max_pos, NWC_LLAMA_CTX_MAX);

	memset(r, 0, sizeof(*r));
	r->ranks = 1;
	r->m = m;
	r->tok = tok;
	r->o = o;
	if (ctx < 2 || ctx > CTX_LIMIT) {
		nwc_err("context length %" PRIu32 " is out of range [2, %u]",
			ctx, CTX_LIMIT);
		return -EINVAL;
	}
	if (o->max_tokens && o->max_tokens < n)
		n = (size_t)o->max_tokens;
	for (size_t i = 0; i < n; i++) {
		if (tok[i] >= c->vocab) {
			nwc_err("token %" PRIu32 " at index %zu is not below vocab_size %" PRIu32,
				tok[i], i, c->vocab);
			return -EINVAL;
		}
	}
	/* At most one window per token: allocate for the worst case. */
	r->win = calloc(NWC_MAX(n, 1), sizeof(*r->win));
	if (!r->win)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct window *w = r->nwin ? &r->win[r->nwin - 1] : NULL;

		if (!w || tok[i] == NWC_LLAMA_BOS || w->len == ctx) {
			w = &r->win[r->nwin++];
			w->off = i;
		}
		w->len++;
		r->maxlen = NWC_MAX(r->maxlen, w->len);
	}
	r->total = n;
	r->rcos = llm_alloc_f32(r->maxlen, c->head_dim / 2);
	r->rsin = llm_alloc_f32(r->maxlen, c->head_dim / 2);
	if (!r->rcos || !r->rsin)
		return -ENOMEM;
	rope_table(r);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->merged_cv, NULL);
	r->locks = true;
	return 0;
}

void llm_run_free(struct run *r)
{
	if (r->locks) {
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->merged_cv);
	}
	free(r->win);
	free(r->rcos);
	free(r->rsin);
	free(r->nll);
	free(r->in_n);
	free(r->in_off);
	free(r->block);
	free(r->sum);
}

/* Threads to use for @units units of work: at least 1, at most @units. */
unsigned llm_threads_for(const struct nwc_llama_opts *o, size_t units)
{
	size_t t = o->threads ? o->threads : 1;

	return (unsigned)NWC_MAX(NWC_MIN(t, units), 1);
}

int nwc_llama_eval(const struct nwc_llama *m, const uint32_t *tok, size_t n,
		   const struct nwc_llama_opts *o, struct nwc_llama_eval *out)
{
	struct run r;
	int ret;

	ret = llm_run_init(&r, m, tok, n, o);
	if (!ret) {
		r.nll = calloc(NWC_MAX(r.nwin, 1), sizeof(*r.nll));
		ret = r.nll ? 0 : -ENOMEM;
	}
	if (!ret && r.nwin)
		ret = llm_run_threads(&r, llm_threads_for(o, r.nwin), RUN_EVAL);
	if (!ret) {
		memset(out, 0, sizeof(*out));
		for (size_t i = 0; i < r.nwin; i++) {
			out->nll += r.nll[i];
			out->count += r.win[i].len - 1;
		}
		out->tokens = r.total;
	}
	llm_run_free(&r);
	return ret;
}
