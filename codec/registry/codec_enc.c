/* SPDX-License-Identifier: MIT */
/*
 * codec_enc.c - one block at a time through the block encoders of the
 * registry: mkfs's lossless path.
 */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/registry/codec.h"
#include "codec/registry/registry.h"

struct nwc_cctx {
	const struct nwc_codec_enc *owner[NWC_N_DECODERS];
	void *state[NWC_N_DECODERS];	/* per codec, from cctx_create */
};

static const struct nwc_codec_enc *block_enc(unsigned codec)
{
	const struct nwc_codec_enc *enc;

	enc = nwc_codec_set_enc(nwc_codecs_write(), codec);
	return enc && enc->encode ? enc : NULL;
}

int nwc_cctx_create(int level, struct nwc_cctx **out)
{
	const struct nwc_codec_set *set = nwc_codecs_write();
	struct nwc_cctx *cctx;
	unsigned n = 0;
	int ret;

	cctx = calloc(1, sizeof(*cctx));
	if (!cctx)
		return -ENOMEM;
	for (unsigned i = 0; i < set->n_enc; i++) {
		if (!set->enc[i]->cctx_create)
			continue;
		assert(n < NWC_N_DECODERS);
		ret = set->enc[i]->cctx_create(level, &cctx->state[n]);
		if (ret)
			goto out_free_cctx;
		cctx->owner[n++] = set->enc[i];
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
	for (unsigned i = 0; i < NWC_N_DECODERS && cctx->owner[i]; i++)
		cctx->owner[i]->cctx_free(cctx->state[i]);
	free(cctx);
}

size_t nwc_codec_bound(unsigned codec, uint32_t arg, size_t raw_len)
{
	const struct nwc_codec_enc *enc = block_enc(codec);

	return enc ? enc->bound(arg, raw_len) : 0;
}

ssize_t nwc_codec_encode(struct nwc_cctx *cctx, unsigned codec, uint32_t arg,
			 const void *src, size_t len, void *dst, size_t cap)
{
	const struct nwc_codec_enc *enc = block_enc(codec);
	void *state = NULL;

	if (!enc)
		return -NWC_EFEATURE;
	for (unsigned i = 0; i < NWC_N_DECODERS && cctx->owner[i]; i++)
		if (cctx->owner[i] == enc)
			state = cctx->state[i];
	return enc->encode(state, arg, src, len, dst, cap);
}

