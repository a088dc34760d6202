/* SPDX-License-Identifier: MIT */
/*
 * writer.h - write side of the nwc image format, used by mkfs.nwc and tests.
 *
 *	nwc_writer_create("out.nwc", 20, false, nwc_codecs_write(), &w);
 *	nwc_writer_add_node(w, 0, "a.bin", 5, S_IFREG | 0644, mtime, 0, &id);
 *	nwc_writer_add_extent(w, id, &ext, &e);		// then its blocks:
 *	nwc_writer_add_block(w, e, payload, stored_len, raw_len);
 *	nwc_writer_finish(w);		// tables, superblock, fsync, rename
 *
 * Nodes may be added in any order (each names its parent's id; the root is
 * id 0); the writer numbers inodes breadth first at finish.  A file's
 * extents must be added in file order, each followed by all its blocks in
 * order, before the next extent of any file starts.  Output goes to an
 * unnamed file (O_TMPFILE) in the final path's directory, named only by a
 * successful nwc_writer_finish(), so that nothing is left if the process
 * dies; where the file system cannot, to a temporary file beside the
 * final path, renamed over it at the end, which nwc_writer_abort()
 * removes.
 *
 * A tensor of a tensor codec (iface.h), here a lossy NWC tensor with enc
 * from nwc_tenc_encode():
 *
 *	nwc_writer_add_codec_item(w, NWC_CODEC_NWC, blob, blob_len, &model);
 *	nwc_writer_add_tensor(w, id, &t, &ti);	   // 2-D F32/F16/BF16
 *	nwc_writer_set_tensor_side(w, ti, NWC_CODEC_NWC, enc->side,
 *				   enc->side_len);
 *	nwc_writer_add_tensor_extent(w, id, ti, enc->nbands, enc->band,
 *				     enc->band_len, &ext);
 *
 * For NWC the items are codec models and the side record names the index
 * nwc_writer_add_codec_item() returned for its model.  The writer asks the
 * codecs of @codecs to check everything they own (arguments, geometry,
 * side records, items) as the reader will, writes each codec's section
 * when it has items and sets that codec's feature bit.
 *
 * Thread safety: none; one thread drives a writer.
 */
#ifndef NWC_WRITER_H
#define NWC_WRITER_H

#include "codec/image/format.h"
#include "codec/image/iface.h"

struct nwc_writer;

/* Extent description; file_off is implied (the file's length so far). */
struct nwc_wextent {
	uint64_t len;		/* decoded bytes, > 0 */
	uint32_t block_len;	/* decoded bytes per block but the last */
	uint16_t codec;
	uint32_t codec_arg;
	uint32_t tensor;	/* from nwc_writer_add_tensor, or NWC_NO_TENSOR */
};

struct nwc_wtensor {
	const char *name;
	size_t name_len;
	unsigned dtype;
	unsigned ndim;
	const uint64_t *shape;
	uint64_t data_off;	/* in the served file */
	uint64_t data_len;
	uint16_t codec;		/* overwritten by the tensor's extent */
};

/*
 * nwc_writer_create() - start an image that will be named @path.  Fails with
 * -EEXIST if @path exists and @force is false.  @block_log2 is recorded as
 * the nominal block size.  @codecs (decoders and encoders; it must outlive
 * the writer) are the codecs the image may use.
 */
int nwc_writer_create(const char *path, unsigned block_log2, bool force,
		      const struct nwc_codec_set *codecs, struct nwc_writer **out);

/*
 * Add a directory, regular file or symlink (by @mode) under directory
 * @parent.  Names must be valid (1..255 bytes, no '/' or NUL, not "." or
 * ".."): -EINVAL otherwise.  Names must be unique in their directory;
 * nwc_writer_finish() fails with -EEXIST if they are not.  Sets *id.
 */
int nwc_writer_add_node(struct nwc_writer *w, uint32_t parent, const char *name,
			size_t len, uint32_t mode, int64_t mtime,
			uint32_t mtime_ns, uint32_t *id);

/* Set the root directory's permission bits and mtime (default 0755, 0). */
int nwc_writer_set_root(struct nwc_writer *w, uint32_t mode, int64_t mtime,
			uint32_t mtime_ns);

int nwc_writer_set_symlink(struct nwc_writer *w, uint32_t id,
			   const char *target, size_t len);

/* Mark file @id as a parsed safetensors file (NWC_INODE_F_SAFETENSORS). */
int nwc_writer_set_flags(struct nwc_writer *w, uint32_t id, uint32_t flags);

/* Describe a tensor of file @id; sets *idx for nwc_wextent.tensor. */
int nwc_writer_add_tensor(struct nwc_writer *w, uint32_t id,
			  const struct nwc_wtensor *t, uint32_t *idx);

/*
 * Append an extent to file @id; sets *ext for nwc_writer_add_block().  Its
 * codec must be in the writer's set and accept the argument and geometry;
 * an extent of a tensor codec must be the data extent of a tensor with side
 * data of that codec, with the geometry its side record gives (-EINVAL
 * otherwise).
 */
int nwc_writer_add_extent(struct nwc_writer *w, uint32_t id,
			  const struct nwc_wextent *e, uint32_t *ext);

/*
 * Append the next block of extent @ext: @stored_len payload bytes that
 * decode to @raw_len bytes (which must match the extent geometry).
 */
int nwc_writer_add_block(struct nwc_writer *w, uint32_t ext,
			 const void *payload, size_t stored_len,
			 uint32_t raw_len);

/*
 * nwc_writer_add_codec_item() - add an item to the section of @codec: for
 * NWC_CODEC_NWC an embedded codec model, @len bytes of an .nwcm file
 * (nwc_model_to_buf), checked as the reader parses it.  Sets *idx, the
 * index side records use.  Returns 0, -EINVAL (no such codec section, too
 * many items), the codec's parse error (-NWC_ECORRUPT, -NWC_EFEATURE), or
 * -ENOMEM.
 */
int nwc_writer_add_codec_item(struct nwc_writer *w, unsigned codec,
			      const void *item, size_t len, uint32_t *idx);

/*
 * nwc_writer_set_tensor_side() - attach side data of tensor codec @codec
 * to tensor @idx (for NWC an nwctensor side record), written to the data
 * region now.  Only tensors of that codec have side data: finish fails if
 * the tensor's extent has another codec.  -EINVAL if the tensor already has
 * side data, @codec is not a tensor codec or the record does not parse.
 */
int nwc_writer_set_tensor_side(struct nwc_writer *w, uint32_t idx,
			       unsigned codec, const void *side, size_t len);

/*
 * nwc_writer_set_info() - give the image an INFO section (format.h 11):
 * the creation time and @len bytes of "key=value\n" text (no NUL, at most
 * NWC_INFO_TEXT_MAX).  nwc_writer_set_tensor_error() - record there, for
 * tensor @idx stored lossily, the sums of its squared source weights and
 * of its squared error (finite, >= 0).  Both return 0 or -EINVAL
 * (-ENOMEM).
 */
int nwc_writer_set_info(struct nwc_writer *w, int64_t created,
			const char *text, size_t len);
int nwc_writer_set_tensor_error(struct nwc_writer *w, uint32_t idx,
				double sig, double err);

/*
 * nwc_writer_add_tensor_extent() - append the extent of tensor @tensor,
 * which has side data, to file @id (the tensor's data must start at the
 * file's current end), and its @nblocks blocks: @payload[b] of @len[b]
 * bytes is block b.  The codec is the side data's; the side record must
 * give the tensor's shape and @nblocks blocks.  nwc_writer_add_extent()
 * with the geometry of the side record, then nwc_writer_add_block() per
 * block, does the same.  On failure abort the writer.
 */
int nwc_writer_add_tensor_extent(struct nwc_writer *w, uint32_t id,
				 uint32_t tensor, uint32_t nblocks,
				 uint8_t *const *payload, const size_t *len,
				 uint32_t *ext);

/* Payload bytes written so far (for progress). */
uint64_t nwc_writer_data_len(const struct nwc_writer *w);

/* Write the tables and the superblock, fsync, rename.  Frees @w. */
int nwc_writer_finish(struct nwc_writer *w);

/* Discard everything written (and any temporary file).  Accepts NULL. */
void nwc_writer_abort(struct nwc_writer *w);

#endif /* NWC_WRITER_H */
