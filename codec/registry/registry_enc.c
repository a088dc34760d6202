/* SPDX-License-Identifier: MIT */
/*
 * registry_enc.c - the write set: the decoders (the writer checks what it
 * is given as the reader will) and the one list of encoders.
 */
#include "codec/common/base.h"

#include "codec/lossless.h"
#include "codec/nwc/nwccodec.h"
#include "codec/registry/registry.h"

static const struct nwc_codec_enc *const encoders[] = {
	&nwc_codec_raw_enc,
	&nwc_codec_zstd_enc,
	&nwc_codec_planes_enc,
	&nwc_codec_nwc_enc,
};

static const struct nwc_codec_set write_set = {
	.dec = nwc_decoders,
	.n_dec = NWC_N_DECODERS,
	.enc = encoders,
	.n_enc = NWC_ARRAY_SIZE(encoders),
};

const struct nwc_codec_set *nwc_codecs_write(void)
{
	return &write_set;
}
