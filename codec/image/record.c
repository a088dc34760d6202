/* SPDX-License-Identifier: MIT */
/* record.c - fixed-size records of the image format to bytes and back. */
#include "codec/common/base.h"

#include "codec/common/hash.h"
#include "codec/image/record.h"

#define SB_RESERVED 88u		/* reserved bytes [88, NWC_SB_XXH) */

void nwc_rec_super_encode(const struct nwc_rec_super *r, uint8_t *p)
{
	memset(p, 0, NWC_SB_SIZE);
	memcpy(p + NWC_SB_MAGIC, NWC_MAGIC, NWC_MAGIC_LEN);
	nwc_put_le32(p + NWC_SB_VERSION, r->version);
	nwc_put_le32(p + NWC_SB_SBSIZE, r->sb_size);
	nwc_put_le64(p + NWC_SB_COMPAT, r->compat);
	nwc_put_le64(p + NWC_SB_INCOMPAT, r->incompat);
	nwc_put_le64(p + NWC_SB_IMAGE_SIZE, r->image_size);
	nwc_put_le64(p + NWC_SB_DATA_OFF, r->data_off);
	nwc_put_le64(p + NWC_SB_DATA_LEN, r->data_len);
	nwc_put_le64(p + NWC_SB_DIR_OFF, r->dir_off);
	nwc_put_le32(p + NWC_SB_DIR_COUNT, r->dir_count);
	nwc_put_le32(p + NWC_SB_BLOCK_LOG2, r->block_log2);
	nwc_put_le64(p + NWC_SB_DIR_XXH, r->dir_xxh);
	nwc_put_le64(p + NWC_SB_CREATED_BY, r->created_by);
	nwc_put_le64(p + NWC_SB_XXH, nwc_hash64(p, NWC_SB_XXH));
}

void nwc_rec_super_decode(const uint8_t *p, struct nwc_rec_super *r)
{
	r->version = nwc_get_le32(p + NWC_SB_VERSION);
	r->sb_size = nwc_get_le32(p + NWC_SB_SBSIZE);
	r->compat = nwc_get_le64(p + NWC_SB_COMPAT);
	r->incompat = nwc_get_le64(p + NWC_SB_INCOMPAT);
	r->image_size = nwc_get_le64(p + NWC_SB_IMAGE_SIZE);
	r->data_off = nwc_get_le64(p + NWC_SB_DATA_OFF);
	r->data_len = nwc_get_le64(p + NWC_SB_DATA_LEN);
	r->dir_off = nwc_get_le64(p + NWC_SB_DIR_OFF);
	r->dir_count = nwc_get_le32(p + NWC_SB_DIR_COUNT);
	r->block_log2 = nwc_get_le32(p + NWC_SB_BLOCK_LOG2);
	r->dir_xxh = nwc_get_le64(p + NWC_SB_DIR_XXH);
	r->created_by = nwc_get_le64(p + NWC_SB_CREATED_BY);
	r->reserved_zero = true;
	for (unsigned i = SB_RESERVED; i < NWC_SB_XXH; i++)
		if (p[i])
			r->reserved_zero = false;
}

void nwc_rec_dirent_encode(const struct nwc_rec_dirent *r, uint8_t *p)
{
	nwc_put_le32(p + NWC_DIRENT_TYPE, r->type);
	nwc_put_le32(p + NWC_DIRENT_VERSION, r->version);
	nwc_put_le64(p + NWC_DIRENT_OFF, r->off);
	nwc_put_le64(p + NWC_DIRENT_LEN, r->len);
	nwc_put_le64(p + NWC_DIRENT_XXH, r->xxh);
}

void nwc_rec_dirent_decode(const uint8_t *p, struct nwc_rec_dirent *r)
{
	r->type = nwc_get_le32(p + NWC_DIRENT_TYPE);
	r->version = nwc_get_le32(p + NWC_DIRENT_VERSION);
	r->off = nwc_get_le64(p + NWC_DIRENT_OFF);
	r->len = nwc_get_le64(p + NWC_DIRENT_LEN);
	r->xxh = nwc_get_le64(p + NWC_DIRENT_XXH);
}

void nwc_rec_inode_encode(const struct nwc_rec_inode *r, uint8_t *p)
{
	nwc_put_le32(p + NWC_INO_MODE, r->mode);
	nwc_put_le32(p + NWC_INO_PARENT, r->parent);
	nwc_put_le32(p + NWC_INO_NAME_OFF, r->name_off);
	nwc_put_le32(p + NWC_INO_NAME_LEN, r->name_len);
	nwc_put_le64(p + NWC_INO_MTIME, (uint64_t)r->mtime);
	nwc_put_le32(p + NWC_INO_MTIME_NS, r->mtime_ns);
	nwc_put_le32(p + NWC_INO_FLAGS, r->flags);
	nwc_put_le64(p + NWC_INO_BYTES, r->size);
	nwc_put_le32(p + NWC_INO_FIRST, r->first);
	nwc_put_le32(p + NWC_INO_COUNT, r->count);
}

void nwc_rec_inode_decode(const uint8_t *p, struct nwc_rec_inode *r)
{
	r->mode = nwc_get_le32(p + NWC_INO_MODE);
	r->parent = nwc_get_le32(p + NWC_INO_PARENT);
	r->name_off = nwc_get_le32(p + NWC_INO_NAME_OFF);
	r->name_len = nwc_get_le32(p + NWC_INO_NAME_LEN);
	r->mtime = (int64_t)nwc_get_le64(p + NWC_INO_MTIME);
	r->mtime_ns = nwc_get_le32(p + NWC_INO_MTIME_NS);
	r->flags = nwc_get_le32(p + NWC_INO_FLAGS);
	r->size = nwc_get_le64(p + NWC_INO_BYTES);
	r->first = nwc_get_le32(p + NWC_INO_FIRST);
	r->count = nwc_get_le32(p + NWC_INO_COUNT);
}

void nwc_rec_extent_encode(const struct nwc_rec_extent *r, uint8_t *p)
{
	nwc_put_le64(p + NWC_EXT_FILE_OFF, r->file_off);
	nwc_put_le64(p + NWC_EXT_LEN, r->len);
	nwc_put_le32(p + NWC_EXT_FIRST_BLOCK, r->first_block);
	nwc_put_le32(p + NWC_EXT_NBLOCKS, r->nblocks);
	nwc_put_le32(p + NWC_EXT_BLOCK_LEN, r->block_len);
	nwc_put_le16(p + NWC_EXT_CODEC, r->codec);
	nwc_put_le16(p + NWC_EXT_FLAGS, r->flags);
	nwc_put_le32(p + NWC_EXT_CODEC_ARG, r->codec_arg);
	nwc_put_le32(p + NWC_EXT_TENSOR, r->tensor);
	nwc_put_le64(p + NWC_EXT_RESERVED, r->reserved);
}

void nwc_rec_extent_decode(const uint8_t *p, struct nwc_rec_extent *r)
{
	r->file_off = nwc_get_le64(p + NWC_EXT_FILE_OFF);
	r->len = nwc_get_le64(p + NWC_EXT_LEN);
	r->first_block = nwc_get_le32(p + NWC_EXT_FIRST_BLOCK);
	r->nblocks = nwc_get_le32(p + NWC_EXT_NBLOCKS);
	r->block_len = nwc_get_le32(p + NWC_EXT_BLOCK_LEN);
	r->codec = nwc_get_le16(p + NWC_EXT_CODEC);
	r->flags = nwc_get_le16(p + NWC_EXT_FLAGS);
	r->codec_arg = nwc_get_le32(p + NWC_EXT_CODEC_ARG);
	r->tensor = nwc_get_le32(p + NWC_EXT_TENSOR);
	r->reserved = nwc_get_le64(p + NWC_EXT_RESERVED);
}

void nwc_rec_block_encode(const struct nwc_rec_block *r, uint8_t *p)
{
	nwc_put_le64(p + NWC_BLK_OFF, r->off);
	nwc_put_le32(p + NWC_BLK_STORED_LEN, r->stored_len);
	nwc_put_le32(p + NWC_BLK_RAW_LEN, r->raw_len);
	nwc_put_le64(p + NWC_BLK_XXH, r->xxh);
}

void nwc_rec_block_decode(const uint8_t *p, struct nwc_rec_block *r)
{
	r->off = nwc_get_le64(p + NWC_BLK_OFF);
	r->stored_len = nwc_get_le32(p + NWC_BLK_STORED_LEN);
	r->raw_len = nwc_get_le32(p + NWC_BLK_RAW_LEN);
	r->xxh = nwc_get_le64(p + NWC_BLK_XXH);
}

void nwc_rec_tensor_encode(const struct nwc_rec_tensor *r, uint8_t *p)
{
	nwc_put_le32(p + NWC_TNS_INODE, r->inode);
	nwc_put_le32(p + NWC_TNS_NAME_OFF, r->name_off);
	nwc_put_le32(p + NWC_TNS_NAME_LEN, r->name_len);
	nwc_put_le16(p + NWC_TNS_DTYPE, r->dtype);
	nwc_put_le16(p + NWC_TNS_NDIM, r->ndim);
	nwc_put_le64(p + NWC_TNS_DATA_OFF, r->data_off);
	nwc_put_le64(p + NWC_TNS_DATA_LEN, r->data_len);
	nwc_put_le32(p + NWC_TNS_SHAPE_OFF, r->shape_off);
	nwc_put_le16(p + NWC_TNS_CODEC, r->codec);
	nwc_put_le16(p + NWC_TNS_RESERVED16, r->reserved16);
	nwc_put_le64(p + NWC_TNS_SIDE_OFF, r->side_off);
	nwc_put_le32(p + NWC_TNS_SIDE_LEN, r->side_len);
	nwc_put_le32(p + NWC_TNS_RESERVED32, r->reserved32);
	nwc_put_le64(p + NWC_TNS_SIDE_XXH, r->side_xxh);
}

void nwc_rec_tensor_decode(const uint8_t *p, struct nwc_rec_tensor *r)
{
	r->inode = nwc_get_le32(p + NWC_TNS_INODE);
	r->name_off = nwc_get_le32(p + NWC_TNS_NAME_OFF);
	r->name_len = nwc_get_le32(p + NWC_TNS_NAME_LEN);
	r->dtype = nwc_get_le16(p + NWC_TNS_DTYPE);
	r->ndim = nwc_get_le16(p + NWC_TNS_NDIM);
	r->data_off = nwc_get_le64(p + NWC_TNS_DATA_OFF);
	r->data_len = nwc_get_le64(p + NWC_TNS_DATA_LEN);
	r->shape_off = nwc_get_le32(p + NWC_TNS_SHAPE_OFF);
	r->codec = nwc_get_le16(p + NWC_TNS_CODEC);
	r->reserved16 = nwc_get_le16(p + NWC_TNS_RESERVED16);
	r->side_off = nwc_get_le64(p + NWC_TNS_SIDE_OFF);
	r->side_len = nwc_get_le32(p + NWC_TNS_SIDE_LEN);
	r->reserved32 = nwc_get_le32(p + NWC_TNS_RESERVED32);
	r->side_xxh = nwc_get_le64(p + NWC_TNS_SIDE_XXH);
}
