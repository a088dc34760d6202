/* SPDX-License-Identifier: MIT */
/*
 * codec_enc.c - one block at a time through the block encoders of the
 * registry: mkfs's lossless path.
 */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/registry/codec.h"
#include "codec/registry/registry.h"

/* Per-thread state of each encoder of the write set, by its index there. */
struct nwc_cctx {
	const struct nwc_codec_set *set;
	void *state[];		/* set->n_enc entries, NULL without cctx_create */
};

/* The index of block codec @codec's encoder in @set, or -1. */
static int block_enc(const struct nwc_codec_set *set, unsigned codec)
{
	for (unsigned i = 0; i < set->n_enc; i++)
		if (set->enc[i]->id == codec && set->enc[i]->encode)
			return (int)i;
	return -1;
}

int nwc_cctx_create(int level, struct nwc_cctx **out)
{
	const struct nwc_codec_set *set = nwc_codecs_write();
	struct nwc_cctx *cctx;
	int ret;

	cctx = calloc(1, sizeof(*cctx) + set->n_enc * sizeof(cctx->state[0]));
	if (!cctx)
		return -ENOMEM;
	cctx->set = set;
	for (unsigned i = 0; i < set->n_enc; i++) {
		if (!set->enc[i]->cctx_create)
			continue;
		ret = set->enc[i]->cctx_create(level, &cctx->state[i]);
		if (ret)
			goto out_free_cctx;
	}
	*out = cctx;
	return 0;

out_free_cctx:
	nwc_cctx_free(cctx);
	return ret;
}

void nwc_cctx_free(struct nwc_cctx *cctx)
{
	if (!cctx)
		return;
	for (unsigned i = 0; i < cctx->set->n_enc; i++)
		if (cctx->state[i])
			cctx->set->enc[i]->cctx_free(cctx->state[i]);
	free(cctx);
}

size_t nwc_codec_bound(unsigned codec, uint32_t arg, size_t raw_len)
{
	const struct nwc_codec_set *set = nwc_codecs_write();
	int i = block_enc(set, codec);

	return i < 0 ? 0 : set->enc[i]->bound(arg, raw_len);
}

ssize_t nwc_codec_encode(struct nwc_cctx *cctx, unsigned codec, uint32_t arg,
			 const void *src, size_t len, void *dst, size_t cap)
{
	int i = block_enc(cctx->set, codec);

	if (i < 0)
		return -NWC_EFEATURE;
	return cctx->set->enc[i]->encode(cctx->state[i], arg, src, len, dst,
					 cap);
}
