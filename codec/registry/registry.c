/* SPDX-License-Identifier: MIT */
/* registry.c - the decode set: the one place that lists the decoders. */
#include "codec/common/base.h"

#include "codec/lossless.h"
#include "codec/nwc/nwccodec.h"
#include "codec/registry/registry.h"

const struct nwc_codec_dec *const nwc_decoders[NWC_N_DECODERS] = {
	&nwc_codec_raw_dec,
	&nwc_codec_zstd_dec,
	&nwc_codec_planes_dec,
	&nwc_codec_nwc_dec,
};

static const struct nwc_codec_set read_set = {
	.dec = nwc_decoders,
	.n_dec = NWC_N_DECODERS,
};

const struct nwc_codec_set *nwc_codecs_read(void)
{
	return &read_set;
}
