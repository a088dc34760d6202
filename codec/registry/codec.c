/* SPDX-License-Identifier: MIT */
/*
 * codec.c - one block at a time through the block decoders of the registry;
 * codec_enc.c has the encode side.
 */
#include "codec/common/base.h"

#include <stdio.h>
#include <stdlib.h>

#include "codec/registry/codec.h"
#include "codec/registry/registry.h"

/* The decoder of block codec @codec, or NULL (unknown or a tensor codec). */
static const struct nwc_codec_dec *block_dec(unsigned codec)
{
	const struct nwc_codec_dec *dec;

	dec = nwc_codec_set_dec(nwc_codecs_read(), codec);
	return dec && !dec->tensor_codec ? dec : NULL;
}

int nwc_codec_check(unsigned codec, uint32_t arg, uint32_t block_len)
{
	const struct nwc_codec_dec *dec = block_dec(codec);
	unsigned unit;

	if (!dec)
		return -NWC_EFEATURE;
	return dec->check_extent(arg, block_len, 0, NULL, NULL, &unit);
}

unsigned nwc_codec_unit(unsigned codec, uint32_t arg)
{
	const struct nwc_codec_dec *dec = block_dec(codec);
	unsigned unit;

	if (!dec || dec->check_extent(arg, NWC_BLOCK_MAX, 0, NULL, NULL, &unit))
		return 0;
	return unit;
}

int nwc_codec_decode(struct nwc_dctx *dctx, unsigned codec, uint32_t arg,
		     const void *src, size_t srclen, void *dst, size_t raw_len)
{
	const struct nwc_codec_dec *dec = block_dec(codec);
	void *scratch;
	int ret;

	if (!dec)
		return -NWC_EFEATURE;
	ret = nwc_dctx_codec(dctx, dec, &scratch);
	if (ret)
		return ret;
	return dec->decode(NULL, scratch, arg, NULL, NULL, 0, src, srclen, dst,
			   raw_len);
}

uint32_t nwc_codec_arg_for_dtype(unsigned dtype)
{
	unsigned e = nwc_dtype_size(dtype);

	if (!e)
		return 1;
	return nwc_dtype_is_float(dtype) ? e | NWC_ZSTD_ARG_FLOAT : e;
}

const char *nwc_codec_name(unsigned codec, uint32_t arg, char *buf, size_t len)
{
	const struct nwc_codec_dec *dec;

	if (!buf || !len)
		return "";
	dec = nwc_codec_set_dec(nwc_codecs_read(), codec);
	if (dec)
		return dec->describe(arg, NULL, buf, len);
	snprintf(buf, len, "codec%u/0x%x", codec, (unsigned)arg);
	return buf;
}
