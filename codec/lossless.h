/* SPDX-License-Identifier: MIT */
/*
 * lossless.h - the tables (codec/image/iface.h) of the lossless block
 * codecs: NWC_CODEC_RAW (raw.c), and NWC_CODEC_PLANES and NWC_CODEC_ZSTD,
 * byte planes each zstd-compressed, rANS-coded or stored (bplanes.c).  codec/registry/
 * lists them with the neural codec.
 *
 * Thread safety: constant tables; per-thread state as iface.h says.
 */
#ifndef NWC_LOSSLESS_H
#define NWC_LOSSLESS_H

#include "codec/image/iface.h"

extern const struct nwc_codec_dec nwc_codec_raw_dec;
extern const struct nwc_codec_enc nwc_codec_raw_enc;
extern const struct nwc_codec_dec nwc_codec_zstd_dec;
extern const struct nwc_codec_enc nwc_codec_zstd_enc;
extern const struct nwc_codec_dec nwc_codec_planes_dec;
extern const struct nwc_codec_enc nwc_codec_planes_enc;

#endif /* NWC_LOSSLESS_H */
