/* SPDX-License-Identifier: MIT */
/*
 * nwccodec_enc.c - encode table of NWC_CODEC_NWC: the writer's MODELS
 * section.  Each .nwcm file is checked as the reader will parse it, kept,
 * and laid out canonically at finish (format.h, section 10).
 */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/common/array.h"
#include "codec/nwc/nwccodec.h"

struct blob {
	uint8_t *p;		/* the .nwcm bytes, as embedded */
	size_t len;
};

struct wmodels {
	struct blob *b;
	size_t n, cap;
};

static int sect_create(void **state)
{
	*state = calloc(1, sizeof(struct wmodels));
	return *state ? 0 : -ENOMEM;
}

static void sect_free(void *state)
{
	struct wmodels *ws = state;

	if (!ws)
		return;
	for (size_t i = 0; i < ws->n; i++)
		free(ws->b[i].p);
	free(ws->b);
	free(ws);
}

/* Returns 0, -EINVAL (too many models), the parse error, or -ENOMEM. */
static int sect_add(void *state, const void *item, size_t len, uint32_t *idx)
{
	struct wmodels *ws = state;
	struct nwc_model *m;
	struct blob *b;
	int ret;

	if (ws->n >= NWC_MODELS_MAX)
		return -EINVAL;
	ret = nwc_array_reserve((void **)&ws->b, &ws->cap, ws->n + 1,
				sizeof(*ws->b));
	if (ret)
		return ret;
	ret = nwc_model_from_buf(item, len, &m);
	if (ret)
		return ret;
	nwc_model_free(m);
	b = &ws->b[ws->n];
	b->p = malloc(len);
	if (!b->p)
		return -ENOMEM;
	memcpy(b->p, item, len);
	b->len = len;
	*idx = (uint32_t)ws->n++;
	return 0;
}

static uint32_t sect_count(const void *state)
{
	return (uint32_t)((const struct wmodels *)state)->n;
}

/* Header, entries, then the models, each at the next 8-byte boundary. */
static int sect_build(const void *state, uint8_t **bytes, size_t *len)
{
	const struct wmodels *ws = state;
	size_t pos = NWC_MODELS_HDR + ws->n * NWC_MODEL_ENT_SIZE;
	uint8_t *p;

	for (size_t i = 0; i < ws->n; i++)
		pos = ((pos + 7) & ~(size_t)7) + ws->b[i].len;
	p = calloc(1, pos ? pos : 1);
	if (!p)
		return -ENOMEM;
	nwc_put_le32(p, (uint32_t)ws->n);
	pos = NWC_MODELS_HDR + ws->n * NWC_MODEL_ENT_SIZE;
	for (size_t i = 0; i < ws->n; i++) {
		uint8_t *ent = p + NWC_MODELS_HDR + i * NWC_MODEL_ENT_SIZE;

		pos = (pos + 7) & ~(size_t)7;
		memcpy(p + pos, ws->b[i].p, ws->b[i].len);
		nwc_put_le64(ent, pos);
		nwc_put_le64(ent + 8, ws->b[i].len);
		pos += ws->b[i].len;
	}
	*bytes = p;
	*len = pos;
	return 0;
}

const struct nwc_codec_enc nwc_codec_nwc_enc = {
	.id = NWC_CODEC_NWC,
	.sect_create = sect_create,
	.sect_free = sect_free,
	.sect_add = sect_add,
	.sect_count = sect_count,
	.sect_build = sect_build,
};
