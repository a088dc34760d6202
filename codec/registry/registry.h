/* SPDX-License-Identifier: MIT */
/*
 * registry.h - the codecs this project builds, as codec sets for the image
 * reader and writer (codec/image/iface.h).
 *
 *	ret = nwc_image_open(path, nwc_codecs_read(), &img);	// fs, fsck
 *	ret = nwc_writer_create(path, 18, false, nwc_codecs_write(), &w);
 *
 * Adding a codec: one file with its tables, one id in format.h, one line in
 * each set.  nwc_codecs_read() links decoders only, so the read-only daemon
 * carries no encoder of the neural codec; nwc_codecs_write() (in its own
 * object, registry_enc.c) adds the encoders.
 *
 * Thread safety: the sets and tables are constant.
 */
#ifndef NWC_REGISTRY_H
#define NWC_REGISTRY_H

#include "codec/image/iface.h"

/* The decoders of every codec, in id order (registry.c). */
#define NWC_N_DECODERS 4u
extern const struct nwc_codec_dec *const nwc_decoders[NWC_N_DECODERS];

/* Decoders of every codec: what an image reader needs. */
const struct nwc_codec_set *nwc_codecs_read(void);

/* Decoders and encoders of every codec: what an image writer needs. */
const struct nwc_codec_set *nwc_codecs_write(void);

#endif /* NWC_REGISTRY_H */
