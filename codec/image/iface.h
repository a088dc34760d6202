/* SPDX-License-Identifier: MIT */
/*
 * iface.h - the interface between the image format and its extent codecs.
 *
 * The image layer stores block payloads, per-tensor side data and codec
 * sections, and owns their geometry and checksums (format.h).  What a
 * payload, a side record or a codec section means belongs to the codec,
 * which the reader and the writer reach only through the tables below:
 *
 *	static const struct nwc_codec_dec *const dec[] = { &my_dec };
 *	const struct nwc_codec_set set = { dec, 1, NULL, 0 };
 *	ret = nwc_image_open(path, &set, &img);
 *
 * A decode table (struct nwc_codec_dec) is what a reader needs: check an
 * extent, open the codec's per-image state from its section, parse and
 * check side records, decode a block, name the codec.  An encode table
 * (struct nwc_codec_enc) is what a writer needs besides: bound and encode a
 * block, and hold the items of the codec's section (the MODELS of the neural
 * codec) until the writer lays them out.  codec/registry/registry.h lists the
 * project's codecs; tests use stub tables.
 *
 * Validation boundary: the check hooks run once, at open (reader) or as the
 * structure is added (writer), and say no with -NWC_ECORRUPT (reader) or
 * any negative errno; decode() then trusts what they accepted and checks
 * only the payload bytes.
 *
 * Thread safety: the tables are constant.  A per-image state is immutable
 * after open() and shared by all threads; a per-thread state (dctx_create)
 * belongs to one struct nwc_dctx, used by one thread at a time.
 */
#ifndef NWC_IFACE_H
#define NWC_IFACE_H

#include "codec/image/format.h"

#include <stdio.h>

struct nwc_dctx;

/* A tensor as the codecs see it: what TENSORS says of it. */
struct nwc_codec_tensor {
	unsigned dtype;		/* NWC_DTYPE_* */
	unsigned ndim;
	const uint64_t *shape;	/* ndim dimensions */
	uint64_t data_len;	/* bytes in the served file */
};

struct nwc_codec_dec {
	uint16_t id;		/* NWC_CODEC_* */
	const char *name;	/* short name: "raw", "zstd", "nwc" */
	uint64_t incompat;	/* superblock bit its extents need, or 0 */
	uint32_t section;	/* section type it owns (with that bit), or 0 */
	bool tensor_codec;	/* codes whole tensors: each extent is the data
				 * extent of a tensor with side data, and the
				 * side record fixes the block geometry */
	bool lossy;		/* decodes to an approximation of the source */

	/*
	 * open() - the per-image state from the codec's section (@sect of
	 * @len bytes at offset @off of the image, which the writer does not
	 * know yet and gives as 0; NULL when the codec owns none); @path
	 * names the image in messages.  NULL when the codec keeps no per-image state.
	 */
	int (*open)(const char *path, const uint8_t *sect, uint64_t off,
		    uint64_t len, void **state);
	void (*close)(void *state);

	/*
	 * Tensor codecs only.  check_tensor() - whether the codec codes such
	 * a tensor at all (dtype, rank), before its side data is read.
	 * side_parse() - parse side data into a malloc'd record (freed with
	 * free()); whether it fits @t is tensor_geometry()'s question.
	 * side_check() - check a parsed record against the per-image state
	 * (the models it names).
	 */
	int (*check_tensor)(const struct nwc_codec_tensor *t);
	int (*side_parse)(const struct nwc_codec_tensor *t, const void *buf,
			  size_t len, void **side);
	int (*side_check)(const void *state, const void *side);

	/*
	 * check_extent() - whether this build decodes the codec with @arg
	 * and @block_len, and whether @nblocks blocks suit it; @t and @side
	 * are the tensor and its parsed side record for a tensor codec, NULL
	 * otherwise (nwc_codec_check_extent() has already matched their
	 * blocks with tensor_geometry()).  Sets *unit, the byte count every
	 * decoded length is a multiple of.  Returns 0 or -NWC_ECORRUPT.
	 */
	int (*check_extent)(uint32_t arg, uint32_t block_len, uint32_t nblocks,
			    const struct nwc_codec_tensor *t, const void *side,
			    unsigned *unit);
	/* Tensor codecs: the blocks their side record gives @t, or
	 * -NWC_ECORRUPT when the record does not fit @t (shape, dtype). */
	int (*tensor_geometry)(const struct nwc_codec_tensor *t,
			       const void *side, uint32_t *block_len,
			       uint32_t *nblocks);
	/* Whether a stored length may go with a decoded one; NULL: any. */
	bool (*block_ok)(uint32_t arg, uint32_t stored_len, uint32_t raw_len);

	/* Per-thread scratch, made on first use by a struct nwc_dctx. */
	int (*dctx_create)(void **out);
	void (*dctx_free)(void *p);

	/*
	 * decode() - block @j of an extent: payload @src of @srclen bytes to
	 * exactly @len bytes at @dst.  @t and @side as for check_extent().
	 * @scratch is this codec's per-thread state (NULL without
	 * dctx_create).  A bad payload gives -NWC_ECORRUPT; never reads or
	 * writes out of bounds.
	 */
	int (*decode)(const void *state, void *scratch, uint32_t arg,
		      const struct nwc_codec_tensor *t, const void *side,
		      uint32_t j, const void *src, size_t srclen, void *dst,
		      size_t len);

	/* Short name of an extent or tensor for listings ("zstd/planes2f",
	 * "nwc/m3"), written to @buf; @side may be NULL. */
	const char *(*describe)(uint32_t arg, const void *side, char *buf,
				size_t len);
	/* Lines about the per-image state for listings (fsck.nwc -l). */
	void (*print_state)(const void *state, FILE *out);
};

struct nwc_codec_enc {
	uint16_t id;

	/* Block codecs: per-thread compression state for a zstd @level. */
	int (*cctx_create)(int level, void **out);
	void (*cctx_free)(void *cctx);
	/* Largest payload for @raw_len bytes; 0 for a bad @arg. */
	size_t (*bound)(uint32_t arg, size_t raw_len);
	/* Encode @len bytes; deterministic.  Payload length or -errno. */
	ssize_t (*encode)(void *cctx, uint32_t arg, const void *src, size_t len,
			  void *dst, size_t cap);

	/*
	 * Codecs with a section: the writer keeps a section state, adds items
	 * to it (checked as the reader would) and asks it for the section
	 * bytes at finish.  *bytes is malloc'd.
	 */
	int (*sect_create)(void **state);
	void (*sect_free)(void *state);
	int (*sect_add)(void *state, const void *item, size_t len,
			uint32_t *idx);
	uint32_t (*sect_count)(const void *state);
	int (*sect_build)(const void *state, uint8_t **bytes, size_t *len);
};

/* The codecs a reader or writer knows, by id; decoders and encoders. */
struct nwc_codec_set {
	const struct nwc_codec_dec *const *dec;
	unsigned n_dec;
	const struct nwc_codec_enc *const *enc;
	unsigned n_enc;
};

/* The decode / encode table of codec @id in @set, or NULL. */
const struct nwc_codec_dec *nwc_codec_set_dec(const struct nwc_codec_set *set,
					      unsigned id);
const struct nwc_codec_enc *nwc_codec_set_enc(const struct nwc_codec_set *set,
					      unsigned id);
/*
 * nwc_codec_check_extent() - the one extent check of the reader and the
 * writer: for a tensor codec the blocks must be those the side record
 * gives tensor @t (tensor_geometry), then the codec checks @arg and
 * geometry (check_extent) and sets *unit.  Returns 0 or -NWC_ECORRUPT.
 */
int nwc_codec_check_extent(const struct nwc_codec_dec *dec, uint32_t arg,
			   uint32_t block_len, uint32_t nblocks,
			   const struct nwc_codec_tensor *t, const void *side,
			   unsigned *unit);

/* The decoder of @set that owns section @type, or NULL. */
const struct nwc_codec_dec *
nwc_codec_set_section(const struct nwc_codec_set *set, uint32_t type);

/* The incompat bits the decoders of @set know. */
uint64_t nwc_codec_set_incompat(const struct nwc_codec_set *set);

/*
 * struct nwc_dctx - one thread's decode context: a buffer for stored
 * payloads and each codec's per-thread scratch, made on first use.
 */
int nwc_dctx_create(struct nwc_dctx **out);
void nwc_dctx_free(struct nwc_dctx *dctx);

/*
 * nwc_dctx_scratch() - a per-context buffer of at least @len bytes, valid
 * until the next call on the same context; holds a stored payload before
 * decoding.  Returns NULL on allocation failure.
 */
void *nwc_dctx_scratch(struct nwc_dctx *dctx, size_t len);

/*
 * nwc_dctx_codec() - the per-thread scratch of codec @dec in @dctx, made
 * with dec->dctx_create on first use; *out is NULL for a codec without
 * one.  Returns 0 or -ENOMEM.
 */
int nwc_dctx_codec(struct nwc_dctx *dctx, const struct nwc_codec_dec *dec,
		   void **out);

#endif /* NWC_IFACE_H */
