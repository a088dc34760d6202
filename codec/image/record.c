/* SPDX-License-Identifier: MIT */
/* record.c - fixed-size records of the image format to bytes and back. */
#include "codec/common/base.h"

#include "codec/common/hash.h"
#include "codec/image/record.h"

#define SB_RESERVED 88u		/* reserved bytes [88, NWC_SB_XXH) */

/* Expanded from the field lists of format.h, one statement per field. */
#define PUT(bits, field, off) \
	nwc_put_le##bits(p + (off), (uint##bits##_t)r->field);
#define GET(bits, field, off) \
	r->field = (__typeof__(r->field))nwc_get_le##bits(p + (off));

#define RECORD(kind, FIELDS)						\
	void nwc_rec_##kind##_encode(const struct nwc_rec_##kind *r,	\
				     uint8_t *p)			\
	{								\
		FIELDS(PUT)						\
	}								\
	void nwc_rec_##kind##_decode(const uint8_t *p,			\
				     struct nwc_rec_##kind *r)		\
	{								\
		FIELDS(GET)						\
	}

void nwc_rec_super_encode(const struct nwc_rec_super *r, uint8_t *p)
{
	memset(p, 0, NWC_SB_SIZE);
	memcpy(p + NWC_SB_MAGIC, NWC_MAGIC, NWC_MAGIC_LEN);
	NWC_SB_FIELDS(PUT)
	nwc_put_le64(p + NWC_SB_XXH, nwc_hash64(p, NWC_SB_XXH));
}

void nwc_rec_super_decode(const uint8_t *p, struct nwc_rec_super *r)
{
	NWC_SB_FIELDS(GET)
	r->reserved_zero = true;
	for (unsigned i = SB_RESERVED; i < NWC_SB_XXH; i++)
		if (p[i])
			r->reserved_zero = false;
}

/* Each list covers its record: its fields' widths add up to its size. */
#define BYTES(bits, field, off) + (bits) / 8
_Static_assert(0 NWC_DIRENT_FIELDS(BYTES) == NWC_SECT_SIZE, "dirent");
_Static_assert(0 NWC_INODE_FIELDS(BYTES) == NWC_INODE_SIZE, "inode");
_Static_assert(0 NWC_EXTENT_FIELDS(BYTES) == NWC_EXTENT_SIZE, "extent");
_Static_assert(0 NWC_BLOCK_FIELDS(BYTES) == NWC_BLOCK_SIZE, "block");
_Static_assert(0 NWC_TENSOR_FIELDS(BYTES) == NWC_TENSOR_SIZE, "tensor");
_Static_assert(NWC_MAGIC_LEN NWC_SB_FIELDS(BYTES) == SB_RESERVED, "sb");
_Static_assert(0 NWC_INFO_HDR_FIELDS(BYTES) == NWC_INFO_HDR_SIZE, "info");
_Static_assert(0 NWC_INFO_ENT_FIELDS(BYTES) == NWC_INFO_ENT_SIZE, "info");

RECORD(dirent, NWC_DIRENT_FIELDS)
RECORD(inode, NWC_INODE_FIELDS)
RECORD(extent, NWC_EXTENT_FIELDS)
RECORD(block, NWC_BLOCK_FIELDS)
RECORD(tensor, NWC_TENSOR_FIELDS)
RECORD(info_hdr, NWC_INFO_HDR_FIELDS)
RECORD(info_ent, NWC_INFO_ENT_FIELDS)
