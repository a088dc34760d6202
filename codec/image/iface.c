/* SPDX-License-Identifier: MIT */
/* iface.c - codec set lookups and the per-thread decode context. */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/common/array.h"
#include "codec/image/iface.h"

#define DCTX_SLOTS 8u	/* codecs with per-thread scratch in one context */

struct nwc_dctx {
	struct nwc_scratch payload;	/* handed out by nwc_dctx_scratch() */
	const struct nwc_codec_dec *owner[DCTX_SLOTS];
	void *scratch[DCTX_SLOTS];
};

const struct nwc_codec_dec *nwc_codec_set_dec(const struct nwc_codec_set *set,
					      unsigned id)
{
	for (unsigned i = 0; i < set->n_dec; i++)
		if (set->dec[i]->id == id)
			return set->dec[i];
	return NULL;
}

const struct nwc_codec_enc *nwc_codec_set_enc(const struct nwc_codec_set *set,
					      unsigned id)
{
	for (unsigned i = 0; i < set->n_enc; i++)
		if (set->enc[i]->id == id)
			return set->enc[i];
	return NULL;
}

const struct nwc_codec_dec *
nwc_codec_set_section(const struct nwc_codec_set *set, uint32_t type)
{
	for (unsigned i = 0; i < set->n_dec; i++)
		if (set->dec[i]->section == type)
			return set->dec[i];
	return NULL;
}

int nwc_codec_check_extent(const struct nwc_codec_dec *dec, uint32_t arg,
			   uint32_t block_len, uint32_t nblocks,
			   const struct nwc_codec_tensor *t, const void *side,
			   unsigned *unit)
{
	if (dec->tensor_codec) {
		uint32_t want_len, want_n;

		if (!t || !side ||
		    dec->tensor_geometry(t, side, &want_len, &want_n) ||
		    block_len != want_len || nblocks != want_n)
			return -NWC_ECORRUPT;
	}
	return dec->check_extent(arg, block_len, nblocks, t, side, unit);
}

uint64_t nwc_codec_set_incompat(const struct nwc_codec_set *set)
{
	uint64_t bits = 0;

	for (unsigned i = 0; i < set->n_dec; i++)
		bits |= set->dec[i]->incompat;
	return bits;
}

int nwc_dctx_create(struct nwc_dctx **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void nwc_dctx_free(struct nwc_dctx *dctx)
{
	if (!dctx)
		return;
	for (unsigned i = 0; i < DCTX_SLOTS && dctx->owner[i]; i++)
		dctx->owner[i]->dctx_free(dctx->scratch[i]);
	free(dctx->payload.buf);
	free(dctx);
}

void *nwc_dctx_scratch(struct nwc_dctx *dctx, size_t len)
{
	return nwc_scratch_get(&dctx->payload, len);
}

int nwc_dctx_codec(struct nwc_dctx *dctx, const struct nwc_codec_dec *dec,
		   void **out)
{
	unsigned i;
	int ret;

	*out = NULL;
	if (!dec->dctx_create)
		return 0;
	for (i = 0; i < DCTX_SLOTS && dctx->owner[i]; i++) {
		if (dctx->owner[i] == dec) {
			*out = dctx->scratch[i];
			return 0;
		}
	}
	/* A codec set holds a handful of codecs; more is a build error. */
	assert(i < DCTX_SLOTS);
	ret = dec->dctx_create(&dctx->scratch[i]);
	if (ret)
		return ret;
	dctx->owner[i] = dec;
	*out = dctx->scratch[i];
	return 0;
}
