/* SPDX-License-Identifier: MIT */
/*
 * record.h - one encode and one decode function per fixed-size record of
 * the image format (format.h, sections 1-7 and 11), expanded from the field lists
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

/*
 * One member per field of format.h's lists, named and sized as there
 * (signed fields such as an inode's mtime travel as their unsigned bits).
 */
#define NWC_REC_MEMBER(bits, field, off) uint##bits##_t field;

/* Superblock (NWC_SB_SIZE bytes); the encoder adds magic and sb_xxh. */
struct nwc_rec_super {
	NWC_SB_FIELDS(NWC_REC_MEMBER)
	bool reserved_zero;	/* decode: the reserved bytes are zero */
};

/* Directory entries, inodes, extents, blocks, tensors. */
struct nwc_rec_dirent { NWC_DIRENT_FIELDS(NWC_REC_MEMBER) };
struct nwc_rec_inode { NWC_INODE_FIELDS(NWC_REC_MEMBER) };
struct nwc_rec_extent { NWC_EXTENT_FIELDS(NWC_REC_MEMBER) };
struct nwc_rec_block { NWC_BLOCK_FIELDS(NWC_REC_MEMBER) };
struct nwc_rec_tensor { NWC_TENSOR_FIELDS(NWC_REC_MEMBER) };
struct nwc_rec_info_hdr { NWC_INFO_HDR_FIELDS(NWC_REC_MEMBER) };
struct nwc_rec_info_ent { NWC_INFO_ENT_FIELDS(NWC_REC_MEMBER) };

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
NWC_REC_FUNCS(info_hdr)
NWC_REC_FUNCS(info_ent)

#endif /* NWC_RECORD_H */
