/* SPDX-License-Identifier: MIT */
/*
 * calibrate.c - nwc_llama_calib(): a run that collects the second moment
 * of the input of every linear layer, and the result it hands back.
 */
#include "codec/common/base.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec/common/log.h"
#include "mkfs/group/group.h"
#include "mkfs/llm/llm_impl.h"

#define CALIB_BLOCKS 64u		/* calibration blocks to aim for */

/*
 * The inputs of the linear layers, and blocks of about equal size.  A
 * whole run sums every input at once; a stream (@stream) one stage at a
 * time, so the inputs of each stage share the offsets of one accumulator.
 */
static int calib_layout(struct run *r, bool stream)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	uint64_t per_block, tokens = 0;
	size_t stage_len = 0;

	r->nin = (size_t)c->layers * IN_PER_LAYER + !c->tied;
	r->in_n = calloc(r->nin, sizeof(*r->in_n));
	r->in_off = calloc(r->nin, sizeof(*r->in_off));
	r->block = calloc(r->nwin + 1, sizeof(*r->block));
	if (!r->in_n || !r->in_off || !r->block)
		return -ENOMEM;
	for (size_t i = 0; i < r->nin; i++) {
		uint32_t n = c->hidden;

		if (i < (size_t)c->layers * IN_PER_LAYER &&
		    i % IN_PER_LAYER == IN_O)
			n = m->q_out;
		if (i < (size_t)c->layers * IN_PER_LAYER &&
		    i % IN_PER_LAYER == IN_DOWN)
			n = c->intermediate;
		r->in_n[i] = n;
		if (stream && (i % IN_PER_LAYER == 0 ||
			       i == (size_t)c->layers * IN_PER_LAYER))
			stage_len = 0;	/* a new stage */
		r->in_off[i] = stream ? stage_len : r->acc_len;
		stage_len += llm_tri_len(n);
		r->acc_len = stream ? NWC_MAX(r->acc_len, stage_len) :
				      r->acc_len + llm_tri_len(n);
	}
	r->sum = calloc(r->acc_len, sizeof(*r->sum));
	if (!r->sum)
		return -ENOMEM;
	per_block = NWC_MAX(r->total / CALIB_BLOCKS, 1);
	for (size_t i = 0; i < r->nwin; i++) {
		if (!tokens)
			r->block[r->nblocks++] = i;
		tokens += r->win[i].len;
		if (tokens >= per_block)
			tokens = 0;
	}
	r->block[r->nblocks] = r->nwin;
	/* This rank's blocks, and the rows of their windows in the stream. */
	r->nmine = r->nblocks > r->rank ?
		   (r->nblocks - r->rank - 1) / r->ranks + 1 : 0;
	for (size_t j = 0; j < r->nmine; j++) {
		size_t b = llm_block_of(r, j);

		for (size_t i = r->block[b]; i < r->block[b + 1]; i++) {
			r->win[i].row = r->mine_total;
			r->mine_total += r->win[i].len;
		}
	}
	return 0;
}

/*
 * A run over at least one token, with its inputs laid out.  A stream is
 * spread over the ranks of the group.
 */
static int calib_init(struct run *r, const struct nwc_llama *m,
		      const uint32_t *tok, size_t n,
		      const struct nwc_llama_opts *o, bool stream)
{
	int ret = llm_run_init(r, m, tok, n, o);

	if (!ret && !r->total) {
		nwc_err("no tokens to collect statistics from");
		ret = -EINVAL;
	}
	if (!ret && stream) {
		r->rank = nwc_group_rank();
		r->ranks = nwc_group_size();
	}
	return ret ? ret : calib_layout(r, stream);
}

/* "model.layers.@l.@part", or @part alone for the lm_head. */
static int calib_name(char **dst, uint32_t l, const char *part)
{
	char name[NAME_LEN];

	if (!strcmp(part, "lm_head.weight"))
		snprintf(name, sizeof(name), "%s", part);
	else
		snprintf(name, sizeof(name), "model.layers.%" PRIu32 ".%s", l,
			 part);
	*dst = strdup(name);
	return *dst ? 0 : -ENOMEM;
}

static const char *const in_names[IN_PER_LAYER + 1][3] = {
	[IN_ATTN] = { "self_attn.q_proj.weight", "self_attn.k_proj.weight",
		      "self_attn.v_proj.weight" },
	[IN_O] = { "self_attn.o_proj.weight" },
	[IN_MLP] = { "mlp.gate_proj.weight", "mlp.up_proj.weight" },
	[IN_DOWN] = { "mlp.down_proj.weight" },
	[IN_PER_LAYER] = { "lm_head.weight" },
};

/*
 * Input @k's H from its sum at @s: the upper triangle mirrored into a
 * symmetric float matrix, divided by T; and the names of its weights.
 */
static int calib_h(const struct run *r, size_t k, const double *s,
		   struct nwc_llama_h *in)
{
	const size_t nlayer = (size_t)r->m->cfg.layers * IN_PER_LAYER;
	uint32_t n = r->in_n[k], l = (uint32_t)(k / IN_PER_LAYER);
	const char *const *kind = k < nlayer ? in_names[k % IN_PER_LAYER] :
					       in_names[IN_PER_LAYER];
	int ret = 0;

	memset(in, 0, sizeof(*in));
	in->n_in = n;
	in->h = llm_alloc_f32(n, n);
	if (!in->h)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const double *row = s + llm_tri(n, i);

		for (uint32_t j = i; j < n; j++) {
			float v = (float)(row[j] / (double)r->total);

			in->h[(size_t)i * n + j] = v;
			in->h[(size_t)j * n + i] = v;
		}
	}
	for (unsigned w = 0; w < 3 && kind[w] && !ret; w++) {
		ret = calib_name(&in->weights[w], l, kind[w]);
		in->n_weights += !ret;
	}
	return ret;
}

static void calib_h_free(struct nwc_llama_h *in)
{
	free(in->h);
	for (unsigned w = 0; w < 3; w++)
		free(in->weights[w]);
}

/* Every input's H, from the sums of a whole run. */
static int calib_result(const struct run *r, struct nwc_llama_calib **out)
{
	struct nwc_llama_calib *cb;
	int ret = 0;

	cb = calloc(1, sizeof(*cb));
	if (!cb)
		return -ENOMEM;
	cb->tokens = r->total;
	cb->in = calloc(r->nin, sizeof(*cb->in));
	if (!cb->in) {
		free(cb);
		return -ENOMEM;
	}
	cb->n = r->nin;
	for (size_t k = 0; k < r->nin && !ret; k++)
		ret = calib_h(r, k, r->sum + r->in_off[k], &cb->in[k]);
	if (ret) {
		nwc_llama_calib_free(cb);
		return ret;
	}
	*out = cb;
	return 0;
}

int nwc_llama_calib(const struct nwc_llama *m, const uint32_t *tok, size_t n,
		    const struct nwc_llama_opts *o,
		    struct nwc_llama_calib **out)
{
	struct run r;
	int ret;

	ret = calib_init(&r, m, tok, n, o, false);
	if (!ret)
		ret = llm_run_threads(&r, llm_threads_for(o, r.nblocks),
				      RUN_CALIB);
	if (!ret)
		ret = calib_result(&r, out);
	llm_run_free(&r);
	return ret;
}

void llm_embed_window(const struct run *r, const float *embed,
		      const struct window *w)
{
	const uint32_t h = r->m->cfg.hidden;

	for (uint32_t t = 0; t < w->len; t++)
		memcpy(r->act + (w->row + t) * h,
		       embed + (size_t)r->tok[w->off + t] * h,
		       h * sizeof(float));
}

int llm_load_norm(struct nwc_llama *m)
{
	m->norm = llm_alloc_f32(m->cfg.hidden, 1);
	if (!m->norm)
		return -ENOMEM;
	return llm_load_f32(m, "model.norm.weight", m->cfg.hidden, 0, m->norm);
}

/* The residual stream of every token at the start: its embedding row. */
static int stream_embed(struct run *r, struct nwc_llama *m)
{
	const struct nwc_llama_config *c = &m->cfg;
	float *embed;
	int ret;

	r->act = llm_alloc_f32(r->mine_total, c->hidden);
	embed = llm_alloc_f32(c->vocab, c->hidden);
	if (!r->act || !embed) {
		free(embed);
		return -ENOMEM;
	}
	ret = llm_load_f32(m, "model.embed_tokens.weight", c->vocab,
			   c->hidden, embed);
	for (size_t j = 0; !ret && j < r->nmine; j++) {
		size_t b = llm_block_of(r, j);

		for (size_t i = r->block[b]; i < r->block[b + 1]; i++)
			llm_embed_window(r, embed, &r->win[i]);
	}
	free(embed);
	return ret || c->tied ? ret : llm_load_norm(m);
}

/*
 * Runs the workers over this rank's windows for stage r->stage; with
 * @stats, every rank ends with the sums, which the rank of the last
 * block holds when they are done.
 */
static int stream_pass(struct run *r, unsigned threads, bool stats,
		       bool write)
{
	int ret;

	r->no_stats = !stats;
	r->no_write = !write;
	r->next = 0;
	r->merged = 0;
	if (stats)
		memset(r->sum, 0, r->acc_len * sizeof(*r->sum));
	ret = r->nmine ? llm_run_threads(r, threads, RUN_STREAM) : 0;
	/* Every rank has run its part: agree on whether all went well. */
	ret = nwc_group_min(ret);
	if (!ret && stats)
		nwc_group_bcast((unsigned)((r->nblocks - 1) % r->ranks),
				r->sum, r->acc_len * sizeof(*r->sum));
	return ret;
}

int llm_layer_hook(const struct nwc_llama *m, uint32_t l, struct layer *ly,
		   nwc_llama_layer_hook *hook, void *arg)
{
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t h = c->hidden, in = c->intermediate;
	const struct {
		const char *part;
		float *w;
		uint32_t rows, cols;
	} lin[] = {
		{ "self_attn.q_proj.weight", ly->wqkv, m->q_out, h },
		{ "self_attn.k_proj.weight", ly->wqkv + (size_t)m->q_out * h,
		  m->kv_out, h },
		{ "self_attn.v_proj.weight",
		  ly->wqkv + (size_t)(m->q_out + m->kv_out) * h, m->kv_out, h },
		{ "self_attn.o_proj.weight", ly->wo, h, m->q_out },
		{ "mlp.gate_proj.weight", ly->wgu, in, h },
		{ "mlp.up_proj.weight", ly->wgu + (size_t)in * h, in, h },
		{ "mlp.down_proj.weight", ly->wdown, h, in },
	};
	int ret = 0;

	for (size_t i = 0; i < NWC_ARRAY_SIZE(lin) && !ret; i++) {
		char *name;

		ret = calib_name(&name, l, lin[i].part);
		if (!ret)
			ret = hook(arg, name, lin[i].w, lin[i].rows,
				   lin[i].cols);
		free(name);
	}
	return ret;
}

/*
 * Stage @s of a stream: its layer over every window, then its H.  With
 * @hook, the statistics are summed first, the hook may replace the
 * layer's weights, and a second pass moves the stream on with them.
 */
static int stream_stage(struct run *r, struct nwc_llama *m, uint32_t s,
			unsigned threads, nwc_llama_sink *sink,
			nwc_llama_layer_hook *hook, void *arg)
{
	const struct nwc_llama_config *c = &m->cfg;
	size_t first = (size_t)s * IN_PER_LAYER;
	size_t end = s < c->layers ? first + IN_PER_LAYER : r->nin;
	bool two = hook && s < c->layers;
	struct layer ly = { 0 };
	int ret = 0;

	if (s < c->layers)
		ret = llm_load_layer(m, s, &ly);
	if (ret)
		return ret;
	r->cur = &ly;
	r->stage = s;
	ret = stream_pass(r, threads, true, !two);
	for (size_t k = first; k < end && !ret; k++) {
		struct nwc_llama_h h;

		ret = calib_h(r, k, r->sum + r->in_off[k], &h);
		if (!ret)
			ret = sink(arg, &h);
		calib_h_free(&h);
	}
	if (!ret && two)
		ret = llm_layer_hook(m, s, &ly, hook, arg);
	if (!ret && two)
		ret = stream_pass(r, threads, false, true);
	llm_free_layer(&ly);
	return ret;
}

int nwc_llama_calib_stream(const char *dir, const uint32_t *tok, size_t n,
			   const struct nwc_llama_opts *o,
			   nwc_llama_sink *sink, nwc_llama_layer_hook *hook,
			   void *arg, uint64_t *tokens)
{
	struct nwc_llama *m;
	unsigned threads;
	uint32_t stages;
	struct run r;
	int ret;

	ret = llm_open(dir, false, &m);
	if (ret)
		return ret;
	ret = calib_init(&r, m, tok, n, o, true);
	if (!ret)
		ret = stream_embed(&r, m);
	if (ret == -ENOMEM)
		nwc_err("%s: out of memory for the calibration", dir);
	if (!ret && r.ranks > 1)
		nwc_dbg("rank %u: %zu of the %zu calibration blocks, %" PRIu64 " of %" PRIu64 " tokens",
			r.rank, r.nmine, r.nblocks, r.mine_total, r.total);
	stages = m->cfg.layers + !m->cfg.tied;
	r.work = r.mine_total * (stages + (hook ? m->cfg.layers : 0));
	threads = llm_threads_for(o, r.nmine);
	for (uint32_t s = 0; !ret && s < stages; s++)
		ret = stream_stage(&r, m, s, threads, sink, hook, arg);
	if (!ret)
		*tokens = r.total;
	free(r.act);
	llm_run_free(&r);
	nwc_llama_free(m);
	return ret;
}

uint64_t nwc_llama_stream_bytes(const struct nwc_llama_config *c,
				uint64_t tokens, uint32_t ctx, unsigned threads,
				unsigned ranks)
{
	const uint64_t h = c->hidden, in = c->intermediate;
	const uint64_t q = (uint64_t)c->heads * c->head_dim;
	const uint64_t kv = (uint64_t)c->kv_heads * c->head_dim;
	const uint64_t L = NWC_MIN(tokens, (uint64_t)ctx);
	uint64_t layer = (q + 2 * kv) * h + h * q + 3 * in * h + 2 * h;
	uint64_t acc = (2 * h * h + q * q + in * in + 2 * h + q + in) / 2;
	uint64_t maxin = NWC_MAX(NWC_MAX(h, q), in);
	uint64_t window = L * (2 * h + 2 * q + 2 * kv + 2 * in + 64) +
			  maxin * maxin;

	/* the stream, one layer or the embedding, a sum and one accumulator
	 * a thread (double), a thread's window buffers (scratch_alloc) */
	/* the blocks are about equal: a rank's share, and one block more */
	if (ranks > 1)
		tokens = NWC_MIN(tokens, tokens / ranks + tokens / CALIB_BLOCKS + 1);
	return 4 * tokens * h + NWC_MAX(4 * layer, 4 * (uint64_t)c->vocab * h) +
	       8 * acc * (threads + 1) + 4 * window * threads;
}

void nwc_llama_calib_free(struct nwc_llama_calib *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		calib_h_free(&c->in[i]);
	free(c->in);
	free(c);
}
