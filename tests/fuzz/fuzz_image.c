/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.c - fuzz target: a whole image to nwc_image_open_fd(); for an
 * image that opens, the promises of validation are checked and every block
 * is read (NWC bands decoded with their models).  An input failing on a
 * checksum is opened a second time with every checksum recomputed (side
 * records and embedded model files included), so that mutations reach the
 * structural checks and the decoders, which no mutation would get to
 * otherwise.  Rejected inputs log one error line; under libFuzzer pass
 * -close_fd_mask=2.
 */
#include "codec/common/base.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/registry/codec.h"
#include "codec/common/hash.h"
#include "codec/image/image.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwctensor.h"
#include "codec/nwc/nwccodec.h"
#include "codec/registry/registry.h"

/* The parsed NWC side record of tensor @t. */
#define NWC_SIDE(t) ((const struct nwc_tside *)(t)->side)
#include "tests/fuzz/fuzz.h"

#define BLOCK_DECODE_MAX (1u << 20)	/* larger blocks are only checked */
#define DECODE_BUDGET (16u << 20)	/* decoded bytes per input */
#define PATH_MAX_LEN 8192u

static struct nwc_dctx *dctx;

/* Set the checksum at @xxh of [off, off + len) if that lies in the input. */
static void fix_sum(uint8_t *p, size_t size, uint64_t off, uint64_t len,
		    uint8_t *xxh)
{
	if (nwc_range_ok(off, len, size))
		nwc_put_le64(xxh, nwc_hash64(p + off, len));
}

/* The checksum in the last 8 bytes of each model file in MODELS. */
static void fix_models(uint8_t *p, size_t size, uint64_t off, uint64_t len)
{
	uint64_t count;

	if (len < NWC_MODELS_HDR)
		return;
	count = NWC_MIN((uint64_t)nwc_get_le32(p + off),
			(len - NWC_MODELS_HDR) / NWC_MODEL_ENT_SIZE);
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *e = p + off + NWC_MODELS_HDR +
				   i * NWC_MODEL_ENT_SIZE;
		uint64_t moff = nwc_get_le64(e), mlen = nwc_get_le64(e + 8);

		if (mlen >= 8 && nwc_range_ok(moff, mlen, len))
			fix_sum(p, size, off + moff, mlen - 8,
				p + off + moff + mlen - 8);
	}
}

/*
 * Recompute what checksums can be found: block payloads and side records,
 * model files, sections, the directory and the superblock, in that order
 * (each covers the previous).
 */
static void fix_checksums(uint8_t *p, size_t size)
{
	uint64_t dir, n;

	if (size < NWC_SB_SIZE)
		return;
	dir = nwc_get_le64(p + NWC_SB_DIR_OFF);
	n = nwc_get_le32(p + NWC_SB_DIR_COUNT);
	if (n <= NWC_SECT_MAX_COUNT &&
	    nwc_range_ok(dir, n * NWC_SECT_SIZE, size)) {
		for (uint64_t i = 0; i < n; i++) {
			uint8_t *e = p + dir + i * NWC_SECT_SIZE;
			uint32_t type = nwc_get_le32(e);
			uint64_t off = nwc_get_le64(e + 8);
			uint64_t len = nwc_get_le64(e + 16);

			if (!nwc_range_ok(off, len, size))
				continue;
			for (uint64_t b = 0; type == NWC_SECT_BLOCKS &&
					     b + NWC_BLOCK_SIZE <= len;
			     b += NWC_BLOCK_SIZE) {
				uint8_t *r = p + off + b;

				fix_sum(p, size, nwc_get_le64(r),
					nwc_get_le32(r + 8), r + 16);
			}
			for (uint64_t t = 0; type == NWC_SECT_TENSORS &&
					     t + NWC_TENSOR_SIZE <= len;
			     t += NWC_TENSOR_SIZE) {
				uint8_t *r = p + off + t;

				if (nwc_get_le32(r + 48))
					fix_sum(p, size, nwc_get_le64(r + 40),
						nwc_get_le32(r + 48), r + 56);
			}
		}
		for (uint64_t i = 0; i < n; i++) {
			uint8_t *e = p + dir + i * NWC_SECT_SIZE;
			uint64_t off = nwc_get_le64(e + 8);
			uint64_t len = nwc_get_le64(e + 16);

			if (nwc_get_le32(e) == NWC_SECT_MODELS &&
			    nwc_range_ok(off, len, size))
				fix_models(p, size, off, len);
		}
		for (uint64_t i = 0; i < n; i++) {
			uint8_t *e = p + dir + i * NWC_SECT_SIZE;

			fix_sum(p, size, nwc_get_le64(e + 8),
				nwc_get_le64(e + 16), e + 24);
		}
		fix_sum(p, size, dir, n * NWC_SECT_SIZE, p + NWC_SB_DIR_XXH);
	}
	fix_sum(p, size, 0, NWC_SB_XXH, p + NWC_SB_XXH);
}

static int open_bytes(const uint8_t *data, size_t size,
		      struct nwc_image **img)
{
	int fd = memfd_create("fuzz-image", MFD_CLOEXEC);

	FUZZ_ASSERT(fd >= 0);
	FUZZ_ASSERT(!size || !nwc_pwrite_full(fd, data, size, 0));
	return nwc_image_open_fd(fd, "fuzz", nwc_codecs_read(), img);
}

static void check_file(const struct nwc_image *img,
		       const struct nwc_image_info *info, uint32_t ino)
{
	const struct nwc_inode *n = nwc_image_inode(img, ino);
	uint32_t first, count;
	uint64_t pos = 0;

	FUZZ_ASSERT(n->first <= info->n_extents &&
		    n->count <= info->n_extents - n->first);
	for (uint32_t k = 0; k < n->count; k++) {
		uint32_t idx = n->first + k;
		const struct nwc_extent *e = nwc_image_extent(img, idx);

		FUZZ_ASSERT(e->file_off == pos);
		FUZZ_ASSERT(e->len > 0 && e->len <= n->size - pos);
		FUZZ_ASSERT(e->block_len > 0 && e->block_len <= NWC_BLOCK_MAX);
		FUZZ_ASSERT(e->nblocks ==
			    (e->len + e->block_len - 1) / e->block_len);
		FUZZ_ASSERT(e->first_block <= info->n_blocks &&
			    e->nblocks <= info->n_blocks - e->first_block);
		for (uint32_t j = 0; j < e->nblocks; j++)
			FUZZ_ASSERT(nwc_image_block(img, e->first_block + j)
					    ->raw_len ==
				    nwc_extent_block_len(e, j));
		FUZZ_ASSERT(nwc_image_find_extent(img, ino, e->file_off) ==
			    idx);
		FUZZ_ASSERT(nwc_image_find_extent(img, ino,
						  e->file_off + e->len - 1) ==
			    idx);
		pos += e->len;
	}
	FUZZ_ASSERT(pos == n->size);
	nwc_image_file_tensors(img, ino, &first, &count);
	FUZZ_ASSERT(first <= info->n_tensors &&
		    count <= info->n_tensors - first);
	for (uint32_t i = first; i < first + count; i++)
		FUZZ_ASSERT(nwc_image_tensor(img, i)->inode == ino);
}

/* An NWC tensor: what open promises of its side record and extent. */
static void check_nwc_tensor(const struct nwc_image *img,
			     const struct nwc_image_info *info,
			     const struct nwc_tensor *t)
{
	const struct nwc_tside *ts = NWC_SIDE(t);
	const struct nwc_extent *e = nwc_image_extent(img, t->extent);
	unsigned esize = nwc_dtype_size(t->dtype);
	const struct nwc_model *model;

	FUZZ_ASSERT(info->incompat & NWC_INCOMPAT_NWC);
	FUZZ_ASSERT(ts && t->ndim == 2 && t->side_len > 0);
	FUZZ_ASSERT(t->dtype == NWC_DTYPE_F32 || t->dtype == NWC_DTYPE_F16 ||
		    t->dtype == NWC_DTYPE_BF16);
	FUZZ_ASSERT(ts->m == t->shape[0] && ts->n == t->shape[1]);
	FUZZ_ASSERT(ts->band_rows && ts->band_rows % NWC_CHUNK == 0);
	FUZZ_ASSERT(ts->model < nwc_nwc_n_models(nwc_image_codec_state(img, NWC_CODEC_NWC)));
	model = nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), ts->model)->model;
	FUZZ_ASSERT(!nwc_tside_check_model(ts, model));
	FUZZ_ASSERT(e->codec == NWC_CODEC_NWC);
	FUZZ_ASSERT(e->block_len == (uint64_t)ts->band_rows * ts->n * esize);
	FUZZ_ASSERT(e->nblocks == nwc_tside_bands(ts));
	for (uint32_t j = 0; j < e->nblocks; j++)
		FUZZ_ASSERT(nwc_extent_block_len(e, j) ==
			    (uint64_t)nwc_tside_band_rows(ts, j) * ts->n *
				    esize);
}

static void check_tensors(const struct nwc_image *img,
			  const struct nwc_image_info *info)
{
	for (uint32_t i = 0; i < nwc_nwc_n_models(nwc_image_codec_state(img, NWC_CODEC_NWC)); i++)
		FUZZ_ASSERT(nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), i)->model &&
			    nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), i)->model->finalized);
	for (uint32_t i = 0; i < info->n_tensors; i++) {
		const struct nwc_tensor *t = nwc_image_tensor(img, i);
		const struct nwc_inode *n;
		const struct nwc_extent *e;

		FUZZ_ASSERT(t->inode < info->n_inodes);
		n = nwc_image_inode(img, t->inode);
		FUZZ_ASSERT(S_ISREG(n->mode));
		FUZZ_ASSERT(t->ndim <= NWC_MAX_DIMS);
		FUZZ_ASSERT(nwc_dtype_size(t->dtype) != 0);
		FUZZ_ASSERT(nwc_range_ok(t->data_off, t->data_len, n->size));
		if (!t->data_len) {
			FUZZ_ASSERT(t->extent == UINT32_MAX);
			continue;
		}
		FUZZ_ASSERT(t->extent < info->n_extents);
		e = nwc_image_extent(img, t->extent);
		FUZZ_ASSERT(e->tensor == i);
		FUZZ_ASSERT(e->file_off == t->data_off);
		FUZZ_ASSERT(e->len == t->data_len);
		FUZZ_ASSERT(t->extent - n->first < n->count);
		if (t->codec == NWC_CODEC_NWC)
			check_nwc_tensor(img, info, t);
		else
			FUZZ_ASSERT(!t->side && !t->side_len && !t->side_off);
	}
}

/* The path of @ino from its parent links; asserts they reach the root. */
static bool inode_path(const struct nwc_image *img, uint32_t n_inodes,
		       uint32_t ino, char *buf, size_t *len)
{
	size_t pos = PATH_MAX_LEN;
	uint32_t steps = 0;

	buf[--pos] = '\0';
	while (ino) {
		const struct nwc_inode *n = nwc_image_inode(img, ino);

		FUZZ_ASSERT(++steps < n_inodes);
		FUZZ_ASSERT(n->parent < n_inodes);
		if (pos < n->name_len + 1u)
			return false;
		pos -= n->name_len;
		memcpy(buf + pos, n->name, n->name_len);
		buf[--pos] = '/';
		ino = n->parent;
	}
	*len = PATH_MAX_LEN - 1 - pos;
	memmove(buf, buf + pos, *len + 1);
	return true;
}

static void check_tree(const struct nwc_image *img,
		       const struct nwc_image_info *info)
{
	static char path[PATH_MAX_LEN];
	uint32_t found;
	size_t len;

	FUZZ_ASSERT(info->n_inodes > 0);
	FUZZ_ASSERT(S_ISDIR(nwc_image_inode(img, 0)->mode));
	for (uint32_t ino = 0; ino < info->n_inodes; ino++) {
		const struct nwc_inode *n = nwc_image_inode(img, ino);

		if (ino) {
			FUZZ_ASSERT(n->name_len > 0 &&
				    n->name_len <= NWC_NAME_MAX);
			FUZZ_ASSERT(!memchr(n->name, '/', n->name_len));
			FUZZ_ASSERT(!nwc_image_lookup(img, n->parent, n->name,
						      n->name_len, &found));
			FUZZ_ASSERT(found == ino);
		}
		if (inode_path(img, info->n_inodes, ino, path, &len)) {
			FUZZ_ASSERT(!nwc_image_resolve(img, path, &found));
			FUZZ_ASSERT(found == ino);
		}
		if (S_ISDIR(n->mode)) {
			FUZZ_ASSERT(n->first <= info->n_inodes &&
				    n->count <= info->n_inodes - n->first);
		} else if (S_ISLNK(n->mode)) {
			FUZZ_ASSERT(n->target && n->size == n->count);
		} else {
			FUZZ_ASSERT(S_ISREG(n->mode));
			check_file(img, info, ino);
		}
	}
}

/*
 * Read every block into a buffer of exactly its size.  Returns whether a
 * payload failed its checksum.
 */
static bool read_blocks(const struct nwc_image *img,
			const struct nwc_image_info *info)
{
	uint64_t budget = DECODE_BUDGET;
	bool damaged = false;

	for (uint32_t b = 0; b < info->n_blocks; b++) {
		const struct nwc_block *blk = nwc_image_block(img, b);
		int ret;

		FUZZ_ASSERT(blk->off >= NWC_SB_SIZE);
		FUZZ_ASSERT(nwc_range_ok(blk->off, blk->stored_len,
					 info->image_size));
		FUZZ_ASSERT(blk->raw_len > 0 && blk->raw_len <= NWC_BLOCK_MAX);
		ret = nwc_image_check_block(img, dctx, b);
		FUZZ_ASSERT(ret <= 0);
		damaged |= ret == -NWC_ECHECKSUM;
	}
	for (uint32_t k = 0; k < info->n_extents; k++) {
		const struct nwc_extent *e = nwc_image_extent(img, k);

		for (uint32_t j = 0; j < e->nblocks; j++) {
			size_t n = nwc_extent_block_len(e, j);
			uint8_t *buf;

			if (n > BLOCK_DECODE_MAX || n > budget)
				continue;
			budget -= n;
			buf = malloc(n);
			FUZZ_ASSERT(buf);
			FUZZ_ASSERT(nwc_image_load_block(img, dctx, k, j, buf,
							 n) <= 0);
			free(buf);
		}
	}
	return damaged;
}

/* Check an image that opened; true if a block failed its checksum. */
static bool check_image(const struct nwc_image *img)
{
	struct nwc_image_info info;

	nwc_image_get_info(img, &info);
	FUZZ_ASSERT(info.incompat ==
		    (info.incompat & nwc_codec_set_incompat(nwc_codecs_read())));
	check_tree(img, &info);
	check_tensors(img, &info);
	return read_blocks(img, &info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nwc_image *img;
	bool opened;
	uint8_t *copy;
	int ret;

	if (!dctx) {
		nwc_log_set_level(NWC_LOG_ERR);
		FUZZ_ASSERT(!nwc_dctx_create(&dctx));
	}
	ret = open_bytes(data, size, &img);
	FUZZ_ASSERT(ret <= 0);
	opened = !ret;
	if (opened) {
		bool damaged = check_image(img);

		nwc_image_close(img);
		if (!damaged)
			return 0;
	} else if (ret != -NWC_ECHECKSUM) {
		return 0;
	}
	/* Again with every checksum right: structure and payloads decide. */
	copy = malloc(size);
	FUZZ_ASSERT(copy);
	memcpy(copy, data, size);
	fix_checksums(copy, size);
	ret = open_bytes(copy, size, &img);
	free(copy);
	FUZZ_ASSERT(ret <= 0);
	FUZZ_ASSERT(!opened || !ret);
	if (!ret) {
		check_image(img);
		nwc_image_close(img);
	}
	return 0;
}
