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
#include "mkfs/llm/llm_impl.h"

#define CALIB_BLOCKS 64u		/* calibration blocks to aim for */

/* The inputs of the linear layers, and blocks of about equal size. */
static int calib_layout(struct run *r)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	uint64_t per_block, tokens = 0;

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
		r->in_off[i] = r->acc_len;
		r->acc_len += (size_t)n * n;
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
	return 0;
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

/* Mirrors the upper triangles into symmetric float H, divided by T. */
static int calib_result(const struct run *r, struct nwc_llama_calib **out)
{
	static const char *const names[IN_PER_LAYER + 1][3] = {
		[IN_ATTN] = { "self_attn.q_proj.weight",
			      "self_attn.k_proj.weight",
			      "self_attn.v_proj.weight" },
		[IN_O] = { "self_attn.o_proj.weight" },
		[IN_MLP] = { "mlp.gate_proj.weight", "mlp.up_proj.weight" },
		[IN_DOWN] = { "mlp.down_proj.weight" },
		[IN_PER_LAYER] = { "lm_head.weight" },
	};
	const size_t nlayer = (size_t)r->m->cfg.layers * IN_PER_LAYER;
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
	for (size_t k = 0; k < r->nin && !ret; k++) {
		struct nwc_llama_h *in = &cb->in[k];
		const double *s = r->sum + r->in_off[k];
		uint32_t n = r->in_n[k], l = (uint32_t)(k / IN_PER_LAYER);
		const char *const *kind;

		in->n_in = n;
		in->h = llm_alloc_f32(n, n);
		if (!in->h) {
			ret = -ENOMEM;
			break;
		}
		for (uint32_t i = 0; i < n; i++) {
			for (uint32_t j = i; j < n; j++) {
				float v = (float)(s[(size_t)i * n + j] /
						  (double)r->total);

				in->h[(size_t)i * n + j] = v;
				in->h[(size_t)j * n + i] = v;
			}
		}
		kind = k < nlayer ? names[k % IN_PER_LAYER] :
				    names[IN_PER_LAYER];
		for (unsigned w = 0; w < 3 && kind[w] && !ret; w++) {
			ret = calib_name(&in->weights[w], l, kind[w]);
			in->n_weights += !ret;
		}
	}
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

	ret = llm_run_init(&r, m, tok, n, o);
	if (!ret && !r.total) {
		nwc_err("no tokens to collect statistics from");
		ret = -EINVAL;
	}
	if (!ret)
		ret = calib_layout(&r);
	if (!ret)
		ret = llm_run_threads(&r, llm_threads_for(o, r.nblocks), true);
	if (!ret)
		ret = calib_result(&r, out);
	llm_run_free(&r);
	return ret;
}

void nwc_llama_calib_free(struct nwc_llama_calib *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->in[i].h);
		for (unsigned w = 0; w < 3; w++)
			free(c->in[i].weights[w]);
	}
	free(c->in);
	free(c);
}
