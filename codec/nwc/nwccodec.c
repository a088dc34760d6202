/* SPDX-License-Identifier: MIT */
/*
 * nwccodec.c - decode table of NWC_CODEC_NWC: the MODELS section, side
 * records and row bands (format.h, sections 8 and 10).
 */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/common/log.h"
#include "codec/nwc/nwccodec.h"
#include "codec/nwc/nwctensor.h"

struct models {
	uint32_t n;
	struct nwc_nwc_model *m;
	struct nwc_model **own;		/* what m[].model points to */
};

#define corrupt(...) (nwc_err(__VA_ARGS__), -NWC_ECORRUPT)

uint32_t nwc_nwc_n_models(const void *state)
{
	const struct models *ms = state;

	return ms ? ms->n : 0;
}

const struct nwc_nwc_model *nwc_nwc_model(const void *state, uint32_t idx)
{
	const struct models *ms = state;

	assert(ms && idx < ms->n);
	return &ms->m[idx];
}

void nwc_nwc_models_free(void *state)
{
	struct models *ms = state;

	if (!ms)
		return;
	for (uint32_t i = 0; ms->own && i < ms->n; i++)
		nwc_model_free(ms->own[i]);
	free(ms->own);
	free(ms->m);
	free(ms);
}

/* The embedded codec models: canonical layout (format.h), each parsed. */
int nwc_nwc_models_parse(const char *path, const uint8_t *sect,
			 uint64_t sect_off, uint64_t len, void **state)
{
	struct models *ms;
	uint32_t count;
	uint64_t pos;
	int ret;

	if (len < NWC_MODELS_HDR)
		return corrupt("%s: MODELS section too short", path);
	count = nwc_get_le32(sect);
	if (!count || count > NWC_MODELS_MAX || nwc_get_le32(sect + 4) ||
	    (uint64_t)count * NWC_MODEL_ENT_SIZE > len - NWC_MODELS_HDR)
		return corrupt("%s: bad MODELS header", path);
	ms = calloc(1, sizeof(*ms));
	if (!ms)
		return -ENOMEM;
	ms->m = calloc(count, sizeof(*ms->m));
	ms->own = calloc(count, sizeof(*ms->own));
	if (!ms->m || !ms->own) {
		ret = -ENOMEM;
		goto out_free_models;
	}
	ms->n = count;
	pos = NWC_MODELS_HDR + (uint64_t)count * NWC_MODEL_ENT_SIZE;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *ent = sect + NWC_MODELS_HDR +
				     (size_t)i * NWC_MODEL_ENT_SIZE;
		uint64_t off = nwc_get_le64(ent), mlen = nwc_get_le64(ent + 8);
		uint64_t start = (pos + 7) & ~7ull;
		struct nwc_nwc_model *im = &ms->m[i];

		if (off != start || !mlen || !nwc_range_ok(off, mlen, len)) {
			ret = corrupt("%s: codec model %u out of place", path,
				      i);
			goto out_free_models;
		}
		for (uint64_t k = pos; k < off; k++) {
			if (sect[k]) {
				ret = corrupt("%s: MODELS padding is not zero",
					      path);
				goto out_free_models;
			}
		}
		ret = nwc_model_from_buf(sect + off, mlen, &ms->own[i]);
		if (ret) {
			nwc_err("%s: codec model %u: %s", path, i,
				nwc_strerror(ret));
			goto out_free_models;
		}
		im->model = ms->own[i];
		im->off = sect_off + off;
		im->len = mlen;
		im->xxh = nwc_get_le64(sect + off + mlen - 8);
		pos = off + mlen;
	}
	if (pos != len) {
		ret = corrupt("%s: MODELS section has trailing bytes", path);
		goto out_free_models;
	}
	*state = ms;
	return 0;

out_free_models:
	nwc_nwc_models_free(ms);
	return ret;
}

static int nwc_open(const char *path, const uint8_t *sect, uint64_t off,
		    uint64_t len, void **state)
{
	*state = NULL;
	if (!sect)
		return 0;
	return nwc_nwc_models_parse(path, sect, off, len, state);
}

static int nwc_check_tensor(const struct nwc_codec_tensor *t)
{
	if ((t->dtype != NWC_DTYPE_F32 && t->dtype != NWC_DTYPE_F16 &&
	     t->dtype != NWC_DTYPE_BF16) || t->ndim != 2)
		return -NWC_ECORRUPT;
	return 0;
}

/* The tensor is checked against the record with its extent. */
static int nwc_side_parse(const struct nwc_codec_tensor *t NWC_UNUSED,
			  const void *buf, size_t len, void **out)
{
	return nwc_tside_parse(buf, len, (struct nwc_tside **)out);
}

/* The record names a model of the image, and fits it. */
static int nwc_side_check(const void *state, const void *side)
{
	const struct nwc_tside *ts = side;

	if (ts->model >= nwc_nwc_n_models(state))
		return -NWC_ECORRUPT;
	return nwc_tside_check_model(ts, nwc_nwc_model(state, ts->model)->model);
}

static int nwc_geometry(const struct nwc_codec_tensor *t, const void *side,
			uint32_t *block_len, uint32_t *nblocks)
{
	const struct nwc_tside *ts = side;
	uint64_t esize = nwc_dtype_size(t->dtype);
	uint64_t band_len = (uint64_t)ts->band_rows * ts->n * esize;

	if (nwc_check_tensor(t) || ts->m != t->shape[0] ||
	    ts->n != t->shape[1] ||
	    t->data_len != (uint64_t)ts->m * ts->n * esize ||
	    band_len > NWC_BLOCK_MAX)
		return -NWC_ECORRUPT;
	*block_len = (uint32_t)band_len;
	*nblocks = nwc_tside_bands(ts);
	return 0;
}

/*
 * An NWC extent's blocks are its tensor's bands (nwc_geometry(), which the
 * image layer matched): block_len = band rows * n * E, one block per band.
 * The argument is zero.
 */
static int nwc_check_extent(uint32_t arg, uint32_t block_len NWC_UNUSED,
			    uint32_t nblocks NWC_UNUSED,
			    const struct nwc_codec_tensor *t,
			    const void *side NWC_UNUSED, unsigned *unit)
{
	if (arg)
		return -NWC_ECORRUPT;
	*unit = nwc_dtype_size(t->dtype);
	return 0;
}

static int band_scratch_create(void **out)
{
	return nwc_tensor_scratch_create((struct nwc_tensor_scratch **)out);
}

static void band_scratch_free(void *p)
{
	nwc_tensor_scratch_free(p);
}

/* Band @j of a tensor validated at open. */
static int nwc_decode(const void *state, void *scratch, uint32_t arg NWC_UNUSED,
		      const struct nwc_codec_tensor *t, const void *side,
		      uint32_t j, const void *src, size_t srclen, void *dst,
		      size_t len)
{
	const struct nwc_tside *ts = side;

	return nwc_band_decode(nwc_nwc_model(state, ts->model)->model, ts, j,
			       src, srclen, t->dtype, dst, len, scratch);
}

static const char *nwc_describe(uint32_t arg NWC_UNUSED, const void *side,
				char *buf, size_t len)
{
	const struct nwc_tside *ts = side;

	if (ts)
		snprintf(buf, len, "nwc/m%u", ts->model);
	else
		snprintf(buf, len, "nwc");
	return buf;
}

static void nwc_print_state(const void *state, FILE *out)
{
	for (uint32_t i = 0; i < nwc_nwc_n_models(state); i++) {
		const struct nwc_nwc_model *im = nwc_nwc_model(state, i);
		const struct nwc_model *m = im->model;

		fprintf(out, "model m%u: H=%u R=%u Q=%u lambda=%g%s%s, %llu bytes, xxh %016llx\n",
			i, m->h, m->r, m->nq, (double)m->lambda,
			m->flags & NWC_MODEL_F_TCQ ? " tcq" : "",
			m->dec_linear ? " linear" : "",
			(unsigned long long)im->len,
			(unsigned long long)im->xxh);
	}
}

const struct nwc_codec_dec nwc_codec_nwc_dec = {
	.id = NWC_CODEC_NWC,
	.name = "nwc",
	.incompat = NWC_INCOMPAT_NWC,
	.section = NWC_SECT_MODELS,
	.tensor_codec = true,
	.lossy = true,
	.open = nwc_open,
	.close = nwc_nwc_models_free,
	.check_tensor = nwc_check_tensor,
	.side_parse = nwc_side_parse,
	.side_check = nwc_side_check,
	.check_extent = nwc_check_extent,
	.tensor_geometry = nwc_geometry,
	.dctx_create = band_scratch_create,
	.dctx_free = band_scratch_free,
	.decode = nwc_decode,
	.describe = nwc_describe,
	.print_state = nwc_print_state,
};
