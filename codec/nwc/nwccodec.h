/* SPDX-License-Identifier: MIT */
/*
 * nwccodec.h - the neural weight codec as an extent codec of the image
 * format (codec/image/iface.h): NWC_CODEC_NWC, its MODELS section and its
 * per-tensor side records (format.h, sections 8 and 10).
 *
 *	const void *st = nwc_image_codec_state(img, NWC_CODEC_NWC);
 *	for (uint32_t i = 0; i < nwc_nwc_n_models(st); i++)
 *		use(nwc_nwc_model(st, i)->model);
 *
 * The decode table (nwccodec.c) parses the MODELS section into finalized
 * models at open, parses and checks side records, and decodes row bands.
 * The encode table (nwccodec_enc.c, the encode archive) collects .nwcm
 * files for the writer and lays out the MODELS section.
 *
 * Thread safety: the per-image state is immutable after open.
 */
#ifndef NWC_NWCCODEC_H
#define NWC_NWCCODEC_H

#include "codec/image/iface.h"
#include "codec/nwc/nwcmodel.h"

extern const struct nwc_codec_dec nwc_codec_nwc_dec;
extern const struct nwc_codec_enc nwc_codec_nwc_enc;

/* An embedded codec model (format.h, MODELS). */
struct nwc_nwc_model {
	const struct nwc_model *model;	/* parsed and finalized */
	uint64_t off;		/* its bytes in the image */
	uint64_t len;
	uint64_t xxh;		/* the model file's own checksum */
};

/* Models of a per-image state (NULL: an image without NWC tensors). */
uint32_t nwc_nwc_n_models(const void *state);
/* Model @idx (< nwc_nwc_n_models()). */
const struct nwc_nwc_model *nwc_nwc_model(const void *state, uint32_t idx);

/*
 * nwc_nwc_models_parse() - a MODELS section (@len bytes at @sect, at
 * offset @sect_off of the image) into a
 * per-image state, as the reader opens it; @path names the image in
 * messages.  Returns 0, -NWC_ECORRUPT, -NWC_ECHECKSUM, -NWC_EFEATURE or
 * -ENOMEM.
 */
int nwc_nwc_models_parse(const char *path, const uint8_t *sect,
			 uint64_t sect_off, uint64_t len, void **state);
void nwc_nwc_models_free(void *state);

#endif /* NWC_NWCCODEC_H */
