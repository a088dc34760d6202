/* SPDX-License-Identifier: MIT */
/*
 * record.h - one encode and one decode function per fixed-size record of
 * the image format (format.h, sections 1-7), expanded from the field lists
 * of format.h (the one place the offsets are written); used by the reader
 * and the writer.
 *
 *	struct nwc_rec_block b;
 *	nwc_rec_block_decode(table + i * NWC_BLOCK_SIZE, &b);
 *	nwc_rec_block_encode(&b, out);
 *
 * Decoding only moves fields: whether they make sense is the reader's
 * question.  Encoding writes every byte of the record, reserved ones as
 * zero.  Pure functions; thread-safe.
 */
#ifndef NWC_RECORD_H
#define NWC_RECORD_H

#include "codec/image/format.h"

/* Superblock (NWC_SB_SIZE bytes); sb_xxh is computed by the encoder. */
struct nwc_rec_super {
	uint32_t version;
	uint32_t sb_size;
	uint64_t compat;
	uint64_t incompat;
	uint64_t image_size;
	uint64_t data_off;
	uint64_t data_len;
	uint64_t dir_off;
	uint32_t dir_count;
	uint32_t block_log2;
	uint64_t dir_xxh;
	uint64_t created_by;
	bool reserved_zero;	/* decode: the reserved bytes are zero */
};

/* Section directory entry (NWC_SECT_SIZE bytes). */
struct nwc_rec_dirent {
	uint32_t type;
	uint32_t version;
	uint64_t off;
	uint64_t len;
	uint64_t xxh;
};

/* INODES record (NWC_INODE_SIZE bytes). */
struct nwc_rec_inode {
	uint32_t mode;
	uint32_t parent;
	uint32_t name_off;
	uint32_t name_len;
	int64_t mtime;
	uint32_t mtime_ns;
	uint32_t flags;
	uint64_t size;
	uint32_t first;
	uint32_t count;
};

/* EXTENTS record (NWC_EXTENT_SIZE bytes). */
struct nwc_rec_extent {
	uint64_t file_off;
	uint64_t len;
	uint32_t first_block;
	uint32_t nblocks;
	uint32_t block_len;
	uint16_t codec;
	uint16_t flags;		/* zero */
	uint32_t codec_arg;
	uint32_t tensor;
	uint64_t reserved;	/* zero */
};

/* BLOCKS record (NWC_BLOCK_SIZE bytes). */
struct nwc_rec_block {
	uint64_t off;
	uint32_t stored_len;
	uint32_t raw_len;
	uint64_t xxh;
};

/* TENSORS record (NWC_TENSOR_SIZE bytes). */
struct nwc_rec_tensor {
	uint32_t inode;
	uint32_t name_off;
	uint32_t name_len;
	uint16_t dtype;
	uint16_t ndim;
	uint64_t data_off;
	uint64_t data_len;
	uint32_t shape_off;
	uint16_t codec;
	uint16_t reserved16;	/* zero */
	uint64_t side_off;
	uint32_t side_len;
	uint32_t reserved32;	/* zero */
	uint64_t side_xxh;
};

#define NWC_REC_FUNCS(kind)						\
	void nwc_rec_##kind##_encode(const struct nwc_rec_##kind *r,	\
				     uint8_t *p);			\
	void nwc_rec_##kind##_decode(const uint8_t *p,			\
				     struct nwc_rec_##kind *r);

/*
 * nwc_rec_KIND_encode() writes the NWC_KIND_SIZE bytes of a record at @p,
 * reserved bytes as zero; nwc_rec_KIND_decode() reads them.  For the
 * superblock encode also writes the magic and the checksum, and decode
 * checks neither (the reader does) but says whether the reserved bytes are
 * zero.
 */
NWC_REC_FUNCS(super)
NWC_REC_FUNCS(dirent)
NWC_REC_FUNCS(inode)
NWC_REC_FUNCS(extent)
NWC_REC_FUNCS(block)
NWC_REC_FUNCS(tensor)

#endif /* NWC_RECORD_H */
