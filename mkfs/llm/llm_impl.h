/* SPDX-License-Identifier: MIT */
/*
 * llm_impl.h - what the files of libnwcllm.a share and nothing else
 * includes: the loaded model (struct nwc_llama), the parsed config.json,
 * and one eval or calib run (struct run) that forward.c executes and
 * calibrate.c turns into statistics.
 *
 * Thread safety: as llama.h says; a struct run is read-only while its
 * workers run, except the fields under its lock.
 */
#ifndef NWC_LLM_IMPL_H
#define NWC_LLM_IMPL_H

#include "codec/common/base.h"

#include <pthread.h>

#include "codec/input/json.h"
#include "mkfs/llm/llama.h"

#define NAME_LEN 96u			/* longest tensor name we build */

/* Inputs of the linear layers of one decoder layer, in calib order. */
enum { IN_ATTN, IN_O, IN_MLP, IN_DOWN, IN_PER_LAYER };

struct layer {
	float *attn_norm;	/* (hidden,) */
	float *wqkv;		/* (q_out + 2 kv_out, hidden): q, k, v rows */
	float *bqkv;		/* (q_out + 2 kv_out,) or NULL */
	float *q_norm;		/* (head_dim,) or NULL: qwen3's q_norm */
	float *k_norm;		/* (head_dim,) or NULL */
	float *wo;		/* (hidden, q_out) */
	float *bo;		/* (hidden,) or NULL */
	float *mlp_norm;	/* (hidden,) */
	float *wgu;		/* (2 inter, hidden): gate rows, then up rows */
	float *wdown;		/* (hidden, inter) */
};

struct wset;

struct nwc_llama {
	struct nwc_llama_config cfg;
	struct wset *ws;	/* streaming: the open weight files, or NULL */
	char *dir;		/* streaming: the model directory */
	uint32_t q_out;		/* heads * head_dim */
	uint32_t kv_out;	/* kv_heads * head_dim */
	uint32_t qkv_out;	/* q_out + 2 kv_out */
	float *embed;		/* (vocab, hidden) */
	float *norm;		/* (hidden,) */
	float *lm_head;		/* (vocab, hidden); the embedding when tied */
	struct layer *layer;	/* (layers,) */
};

/* config.json being parsed, for messages. */
struct cfg {
	const struct nwc_json *root;
	const char *path;
};

/* ---- one run of eval or calib (forward.c) ----------------------------- */

struct window {
	size_t off;		/* first token in the stream */
	uint32_t len;
	uint64_t row;		/* stream: its first row of run.act */
};

/* What the workers of a run compute. */
enum run_mode {
	RUN_EVAL,		/* whole windows: log-likelihoods */
	RUN_CALIB,		/* whole windows: every layer's statistics */
	RUN_STREAM,		/* one stage of every window (stream.c) */
};

/* One run of eval or calib: shared, read-only while the workers run. */
struct run {
	const struct nwc_llama *m;
	const uint32_t *tok;
	struct window *win;
	size_t nwin;
	uint32_t maxlen;	/* longest window */
	float *rcos, *rsin;	/* (maxlen, head_dim / 2) rotary table */
	const struct nwc_llama_opts *o;
	uint64_t total;		/* tokens in all windows */
	uint64_t work;		/* tokens times stages, for progress; 0:
				 * total */

	/* eval */
	double *nll;		/* (nwin,) per window */

	/* calib: blocks of windows, merged into sum in block order */
	size_t nin;		/* inputs */
	uint32_t *in_n;		/* (nin,) widths */
	size_t *in_off;		/* (nin,) offsets into an accumulator */
	size_t acc_len;		/* doubles in one accumulator */
	size_t *block;		/* (nblocks + 1,) first window of each */
	size_t nblocks;
	double *sum;		/* (acc_len,) upper triangles (llm_tri) */
	/*
	 * A stream across the ranks of a group (mkfs/group/group.h): block
	 * b is rank b % ranks's, and the running sum goes from rank to rank
	 * as the blocks are added in order.  Elsewhere rank 0 of 1.
	 */
	unsigned rank, ranks;
	size_t nmine;		/* this rank's blocks */
	uint64_t mine_total;	/* tokens in them */

	/* stream: one stage over the residual stream of every window */
	float *act;		/* (mine_total, hidden) the stream of this
				 * rank's windows, token by token */
	const struct layer *cur;	/* the stage's decoder layer */
	uint32_t stage;		/* layer index; layers: the final norm */
	bool no_stats;		/* this pass only moves the stream on */
	bool no_write;		/* this pass only sums statistics */

	bool locks;		/* lock and merged_cv initialised */
	pthread_mutex_t lock;	/* guards what follows */
	pthread_cond_t merged_cv;
	size_t next;		/* next window (eval), or next of this
				 * rank's blocks (calib) */
	size_t merged;		/* this rank's blocks added to sum */
	const double *ready;	/* across ranks: the sums of this rank's
				 * block number merged, for the merger */
	uint64_t done;		/* tokens finished, for progress */
};

/* config.c: read @path as a JSON object; parse config.json into @k. */
int llm_load_json(const char *path, struct nwc_json **out);
int llm_parse_config(const struct cfg *c, struct nwc_llama_config *k);

/*
 * The sums of an n x n symmetric matrix keep its upper triangle only, row
 * by row: element (i, j), j >= i, at llm_tri(n, i) + j.
 */
static inline size_t llm_tri_len(size_t n)
{
	return n * (n + 1) / 2;
}

static inline size_t llm_tri(size_t n, size_t i)
{
	return i * n - i * (i + 1) / 2;
}

/* weights.c: malloc (@rows x @cols, at least 1) floats, or NULL. */
float *llm_alloc_f32(uint64_t rows, uint64_t cols);

/*
 * weights.c: llm_open() - read @dir's config and open its weight files;
 * with @weights load every weight (nwc_llama_open), else keep the files
 * open for llm_load_layer() and llm_load_f32(), which read one layer or
 * tensor as F32 (the streaming mode of nwc_llama_calib_stream()).
 */
int llm_open(const char *dir, bool weights, struct nwc_llama **out);
int llm_load_layer(const struct nwc_llama *m, uint32_t l, struct layer *ly);
int llm_load_f32(const struct nwc_llama *m, const char *name, uint32_t rows,
		 uint32_t cols, float *dst);
void llm_free_layer(struct layer *ly);

#define LLM_QROWS 64u		/* query rows per attention block */
#define LLM_LOGIT_ROWS 32u	/* rows of logits computed at once */

/*
 * forward.c's steps, which the backward pass (sensitivity.c) runs again:
 * RMSNorm of @rows rows of @n (y may be x); y = x W^T (+ b) for x (rows,
 * in), W (out, in); rotary embedding of @nheads heads at position @pos in
 * place; softmax in place; causal attention of a window's qkv rows (L,
 * qkv_out) into att (L, q_out), with @s (LLM_QROWS, L) as scratch.
 */
void llm_rmsnorm(float *y, const float *x, const float *w, uint32_t rows,
		 uint32_t n, float eps);
void llm_linear(float *y, const float *x, const float *w, const float *b,
		uint32_t rows, uint32_t in, uint32_t out);
void llm_rope(const struct run *r, float *v, uint32_t nheads, uint32_t pos);
void llm_softmax(float *s, uint32_t n);
/* The attention probabilities of queries i0..i1 of one head (rows of @q)
 * over keys k0..i1 (rows of @k), masked (zero where a query cannot see a
 * key), in @s as (i1 - i0, i1 - k0). */
void llm_attn_probs(const struct run *r, const float *q, const float *k,
		    uint32_t i0, uint32_t i1, uint32_t k0, float *s);
void llm_attention(const struct run *r, const float *qkv, float *att,
		   float *s, uint32_t L);

/*
 * forward.c: llm_workers() runs @fn on each of the @n blocks of @size bytes
 * at @args, block 0 on the calling thread and the others on new threads,
 * and returns when all are done.  A thread that cannot be started leaves
 * its block unrun: the workers take their work from a shared counter, so
 * the others do its share.
 */
void llm_workers(void *args, size_t size, unsigned n, void *(*fn)(void *));

/*
 * forward.c, for the workers of a run: llm_take() takes the next unit of
 * work below @limit (under the lock), or returns false when none is left;
 * llm_report() counts @tokens done and calls the progress callback (lock
 * held); llm_merge_block() adds @acc (acc_len doubles), the sums of this
 * rank's unit @j, to r->sum once units 0 to j - 1 are added, so that the
 * sums do not depend on the threads: here alone, or through the merger
 * across ranks (lock held).
 */
bool llm_take(struct run *r, size_t limit, size_t *unit);
void llm_report(struct run *r, uint64_t tokens);
void llm_merge_block(struct run *r, size_t j, const double *acc);

/* calibrate.c: the embedding rows of window @w's tokens into r->act, from
 * @embed (vocab, hidden); m->norm, the final norm's weights, loaded. */
void llm_embed_window(const struct run *r, const float *embed,
		      const struct window *w);
int llm_load_norm(struct nwc_llama *m);

/* calibrate.c: hands each linear weight of decoder layer @l to @hook, in
 * model order (q, k, v, o, gate, up, down), to read or replace. */
int llm_layer_hook(const struct nwc_llama *m, uint32_t l, struct layer *ly,
		   nwc_llama_layer_hook *hook, void *arg);

/* forward.c: set up, run and free a run; threads for @units of work. */
int llm_run_init(struct run *r, const struct nwc_llama *m,
		 const uint32_t *tok, size_t n,
		 const struct nwc_llama_opts *o);
int llm_run_threads(struct run *r, unsigned nthreads, enum run_mode mode);
void llm_run_free(struct run *r);
unsigned llm_threads_for(const struct nwc_llama_opts *o, size_t units);

/* The @j-th block of this rank (j < r->nmine). */
static inline size_t llm_block_of(const struct run *r, size_t j)
{
	return r->rank + j * r->ranks;
}

#endif /* NWC_LLM_IMPL_H */
