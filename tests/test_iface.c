/* SPDX-License-Identifier: MIT */
/*
 * test_iface.c - the image format layer against stub codecs, linked without
 * the project's codecs: what the reader and the writer ask of a codec's
 * tables (iface.h), and what they check themselves.
 *
 * "xor" is a block codec (payload = bytes ^ its argument, per-thread
 * scratch counting decodes).  "rows" is a tensor codec with a section: its
 * section lists items, a side record (u16 rows per block, u16 item) fixes
 * the block geometry and must name an item, payloads are the bytes.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "codec/common/hash.h"
#include "codec/common/io.h"
#include "codec/image/iface.h"
#include "codec/image/image.h"
#include "codec/image/writer.h"
#include "tests/t.h"

#define XOR_ID 9u
#define ROWS_ID 17u

static int n_open, n_close, n_scratch, n_decode;

/* ---- xor: a block codec ---- */

static int xor_check(uint32_t arg, uint32_t block_len, uint32_t nblocks,
		     const struct nwc_codec_tensor *t, const void *side,
		     unsigned *unit)
{
	(void)nblocks;
	(void)t;
	(void)side;
	if (arg > 0xff || !block_len || block_len > NWC_BLOCK_MAX)
		return -NWC_ECORRUPT;
	*unit = 1;
	return 0;
}

static int xor_scratch(void **out)
{
	n_scratch++;
	*out = calloc(1, sizeof(int));
	return *out ? 0 : -ENOMEM;
}

static int xor_decode(const void *state, void *scratch, uint32_t arg,
		      const struct nwc_codec_tensor *t, const void *side,
		      uint32_t j, const void *src, size_t srclen, void *dst,
		      size_t len)
{
	(void)state;
	(void)t;
	(void)side;
	(void)j;
	if (srclen != len)
		return -NWC_ECORRUPT;
	for (size_t i = 0; i < len; i++)
		((uint8_t *)dst)[i] = ((const uint8_t *)src)[i] ^ (uint8_t)arg;
	++*(int *)scratch;
	n_decode++;
	return 0;
}

static const char *xor_describe(uint32_t arg, const void *side, char *buf,
				size_t len)
{
	(void)side;
	snprintf(buf, len, "xor/%u", (unsigned)arg);
	return buf;
}

static const struct nwc_codec_dec xor_dec = {
	.id = XOR_ID,
	.name = "xor",
	.check_extent = xor_check,
	.dctx_create = xor_scratch,
	.dctx_free = free,
	.decode = xor_decode,
	.describe = xor_describe,
};

/* ---- rows: a tensor codec with a section ---- */

struct items {
	uint32_t n;
	uint8_t data[64];	/* writer: the items, one byte each */
};

static int rows_open(const char *path, const uint8_t *sect, uint64_t off,
		     uint64_t len, void **state)
{
	struct items *it;

	(void)path;
	(void)off;
	*state = NULL;
	if (!sect)
		return 0;
	if (len < 4 || nwc_get_le32(sect) != len - 4 || len - 4 > 64)
		return -NWC_ECORRUPT;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->n = (uint32_t)(len - 4);
	memcpy(it->data, sect + 4, it->n);
	*state = it;
	n_open++;
	return 0;
}

static void rows_close(void *state)
{
	n_close++;
	free(state);
}

static int rows_check_tensor(const struct nwc_codec_tensor *t)
{
	return t->ndim == 2 ? 0 : -NWC_ECORRUPT;
}

static int rows_side_parse(const struct nwc_codec_tensor *t, const void *buf,
			   size_t len, void **side)
{
	(void)t;
	if (len != 4 || !nwc_get_le16(buf))
		return -NWC_ECORRUPT;
	*side = malloc(4);
	if (!*side)
		return -ENOMEM;
	memcpy(*side, buf, 4);
	return 0;
}

static int rows_side_check(const void *state, const void *side)
{
	const struct items *it = state;

	return it && nwc_get_le16((const uint8_t *)side + 2) < it->n ?
		       0 : -NWC_ECORRUPT;
}

static int rows_geometry(const struct nwc_codec_tensor *t, const void *side,
			 uint32_t *block_len, uint32_t *nblocks)
{
	uint64_t row = t->shape[1] * nwc_dtype_size(t->dtype);
	uint64_t rows = nwc_get_le16(side);

	if (t->ndim != 2 || !row || rows * row > NWC_BLOCK_MAX)
		return -NWC_ECORRUPT;
	*block_len = (uint32_t)(rows * row);
	*nblocks = (uint32_t)((t->shape[0] + rows - 1) / rows);
	return 0;
}

/* The image layer has matched the blocks with rows_geometry(). */
static int rows_check(uint32_t arg, uint32_t block_len, uint32_t nblocks,
		      const struct nwc_codec_tensor *t, const void *side,
		      unsigned *unit)
{
	(void)block_len;
	(void)nblocks;
	(void)side;
	if (arg)
		return -NWC_ECORRUPT;
	*unit = nwc_dtype_size(t->dtype);
	return 0;
}

static int rows_decode(const void *state, void *scratch, uint32_t arg,
		       const struct nwc_codec_tensor *t, const void *side,
		       uint32_t j, const void *src, size_t srclen, void *dst,
		       size_t len)
{
	(void)scratch;
	(void)arg;
	(void)t;
	(void)j;
	/* What open and the side checks promised. */
	if (!state || rows_side_check(state, side) || srclen != len)
		return -NWC_ECORRUPT;
	memcpy(dst, src, len);
	n_decode++;
	return 0;
}

static const char *rows_describe(uint32_t arg, const void *side, char *buf,
				 size_t len)
{
	(void)arg;
	if (side)
		snprintf(buf, len, "rows/i%u",
			 nwc_get_le16((const uint8_t *)side + 2));
	else
		snprintf(buf, len, "rows");
	return buf;
}

static const struct nwc_codec_dec rows_dec = {
	.id = ROWS_ID,
	.name = "rows",
	.incompat = NWC_INCOMPAT_NWC,
	.section = NWC_SECT_MODELS,
	.tensor_codec = true,
	.open = rows_open,
	.close = rows_close,
	.check_tensor = rows_check_tensor,
	.side_parse = rows_side_parse,
	.side_check = rows_side_check,
	.check_extent = rows_check,
	.tensor_geometry = rows_geometry,
	.decode = rows_decode,
	.describe = rows_describe,
};

static int items_create(void **state)
{
	*state = calloc(1, sizeof(struct items));
	return *state ? 0 : -ENOMEM;
}

static int items_add(void *state, const void *item, size_t len, uint32_t *idx)
{
	struct items *it = state;

	if (len != 1 || it->n == sizeof(it->data))
		return -EINVAL;
	it->data[it->n] = *(const uint8_t *)item;
	*idx = it->n++;
	return 0;
}

static uint32_t items_count(const void *state)
{
	return ((const struct items *)state)->n;
}

static int items_build(const void *state, uint8_t **bytes, size_t *len)
{
	const struct items *it = state;

	*len = 4 + it->n;
	*bytes = malloc(*len);
	if (!*bytes)
		return -ENOMEM;
	nwc_put_le32(*bytes, it->n);
	memcpy(*bytes + 4, it->data, it->n);
	return 0;
}

static const struct nwc_codec_enc rows_enc = {
	.id = ROWS_ID,
	.sect_create = items_create,
	.sect_free = free,
	.sect_add = items_add,
	.sect_count = items_count,
	.sect_build = items_build,
};

static const struct nwc_codec_dec *const both_dec[] = { &xor_dec, &rows_dec };
static const struct nwc_codec_enc *const both_enc[] = { &rows_enc };
static const struct nwc_codec_set both = { both_dec, 2, both_enc, 1 };
static const struct nwc_codec_dec *const xor_only[] = { &xor_dec };
static const struct nwc_codec_set xor_set = { xor_only, 1, NULL, 0 };
static const struct nwc_codec_set none = { NULL, 0, NULL, 0 };

static char tdir[256];

/* T_EQ for a call whose expected failure logs a line. */
#define T_EQ_QUIET(expr, want) do {					\
	long long q_;							\
									\
	t_quiet(true);							\
	q_ = (long long)(expr);						\
	t_quiet(false);							\
	T_EQ(q_, (want));						\
} while (0)

/* A file of 64 xor-coded bytes in blocks of 16; xor key 0x5a. */
static int write_xor(const char *path, const struct nwc_codec_set *set,
		     uint8_t *plain)
{
	struct nwc_wextent e = { 64, 16, XOR_ID, 0x5a, NWC_NO_TENSOR };
	struct nwc_writer *w;
	uint32_t id, x;
	int ret;

	ret = nwc_writer_create(path, 12, true, set, &w);
	if (ret)
		return ret;
	ret = nwc_writer_add_node(w, 0, "x", 1, S_IFREG | 0644, 0, 0, &id);
	if (!ret)
		ret = nwc_writer_add_extent(w, id, &e, &x);
	for (unsigned b = 0; !ret && b < 4; b++) {
		uint8_t coded[16];

		for (unsigned i = 0; i < 16; i++)
			coded[i] = plain[b * 16 + i] ^ 0x5a;
		ret = nwc_writer_add_block(w, x, coded, 16, 16);
	}
	if (ret) {
		nwc_writer_abort(w);
		return ret;
	}
	return nwc_writer_finish(w);
}

static void test_block_codec(void)
{
	uint8_t plain[64], out[16];
	struct nwc_image *img;
	struct nwc_image_info info;
	struct nwc_dctx *dctx;
	char path[512], name[32];
	uint32_t ino;

	for (unsigned i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 37 + 1);
	snprintf(path, sizeof(path), "%s/xor.nwc", tdir);
	/* The writer knows only the codecs of its set. */
	T_EQ_QUIET(write_xor(path, &none, plain), -EINVAL);
	T_EQ(write_xor(path, &xor_set, plain), 0);

	/* So does the reader. */
	T_EQ_QUIET(nwc_image_open(path, &none, &img), -NWC_EFEATURE);
	T_EQ(nwc_image_open(path, &xor_set, &img), 0);
	nwc_image_get_info(img, &info);
	T_EQ(info.incompat, 0);
	T_EQ(nwc_image_resolve(img, "/x", &ino), 0);
	T_EQ(nwc_dctx_create(&dctx), 0);
	n_scratch = n_decode = 0;
	for (uint32_t j = 0; j < 4; j++) {
		T_EQ(nwc_image_load_block(img, dctx, 0, j, out, 16), 0);
		T_MEMEQ(out, plain + j * 16, 16);
	}
	/* One per-thread scratch per codec and context, made on first use. */
	T_EQ(n_scratch, 1);
	T_EQ(n_decode, 4);
	T_CHECK(!strcmp(nwc_image_codec_name(img, XOR_ID, 0x5a, NULL, name,
					     sizeof(name)), "xor/90"));
	T_CHECK(!strcmp(nwc_image_codec_name(img, 3, 1, NULL, name,
					     sizeof(name)), "codec3/0x1"));
	nwc_dctx_free(dctx);
	nwc_image_close(img);
}

/*
 * A 2-D tensor of 10 x 8 F32 in blocks of 4 rows (3 blocks), with item
 * @item named by its side record, after @nitems items.
 */
static int write_rows(const char *path, const struct nwc_codec_set *set,
		      const uint8_t *data, unsigned nitems, uint16_t item,
		      uint16_t rows)
{
	const uint64_t shape[2] = { 10, 8 };
	struct nwc_wtensor wt = { "w", 1, NWC_DTYPE_F32, 2, shape, 0, 320,
				  ROWS_ID };
	uint8_t side[4], *pay[3];
	size_t len[3] = { 128, 128, 64 };
	struct nwc_writer *w;
	uint32_t id, t, x, idx;
	int ret;

	nwc_put_le16(side, rows);
	nwc_put_le16(side + 2, item);
	for (unsigned b = 0; b < 3; b++)
		pay[b] = (uint8_t *)data + b * 128;
	ret = nwc_writer_create(path, 12, true, set, &w);
	if (ret)
		return ret;
	ret = nwc_writer_add_node(w, 0, "t", 1, S_IFREG | 0644, 0, 0, &id);
	for (unsigned i = 0; !ret && i < nitems; i++) {
		uint8_t v = (uint8_t)(i + 100);

		ret = nwc_writer_add_codec_item(w, ROWS_ID, &v, 1, &idx);
		if (!ret && idx != i)
			ret = -EIO;
	}
	if (!ret)
		ret = nwc_writer_add_tensor(w, id, &wt, &t);
	if (!ret)
		ret = nwc_writer_set_tensor_side(w, t, ROWS_ID, side,
						 sizeof(side));
	if (!ret)
		ret = nwc_writer_add_tensor_extent(w, id, t, 3, pay, len, &x);
	if (ret) {
		nwc_writer_abort(w);
		return ret;
	}
	return nwc_writer_finish(w);
}

static void test_tensor_codec(void)
{
	uint8_t data[320], out[128];
	const struct nwc_tensor *t;
	const struct nwc_extent *e;
	struct nwc_image_info info;
	struct nwc_image *img;
	struct nwc_dctx *dctx;
	char path[512], name[32];

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 11 + 3);
	snprintf(path, sizeof(path), "%s/rows.nwc", tdir);

	/* Writer checks through the codec: side records must parse, the
	 * blocks must be those the record gives, the record must name an
	 * item of the section. */
	T_EQ_QUIET(write_rows(path, &both, data, 2, 1, 0), -EINVAL);
	T_EQ_QUIET(write_rows(path, &both, data, 2, 1, 5), -EINVAL);
	T_EQ_QUIET(write_rows(path, &both, data, 1, 1, 4), -EINVAL);
	T_EQ_QUIET(write_rows(path, &xor_set, data, 0, 0, 4), -EINVAL);

	n_open = n_close = 0;
	T_EQ(write_rows(path, &both, data, 2, 1, 4), 0);
	/* The writer opened the section it built, as the reader will. */
	T_EQ(n_open, 1);
	T_EQ(n_close, 1);

	/* The codec's feature bit and section: unknown without the codec. */
	T_EQ_QUIET(nwc_image_open(path, &xor_set, &img), -NWC_EFEATURE);
	n_open = n_close = n_decode = 0;
	T_EQ(nwc_image_open(path, &both, &img), 0);
	T_EQ(n_open, 1);
	nwc_image_get_info(img, &info);
	T_EQ(info.incompat, NWC_INCOMPAT_NWC);
	T_EQ(info.n_tensors, 1);
	T_CHECK(nwc_image_codec_state(img, ROWS_ID) != NULL);
	T_CHECK(nwc_image_codec_state(img, XOR_ID) == NULL);
	T_EQ(((const struct items *)nwc_image_codec_state(img, ROWS_ID))->n, 2);
	t = nwc_image_tensor(img, 0);
	T_EQ(t->codec, ROWS_ID);
	T_EQ(t->side_len, 4);
	T_CHECK(t->side != NULL);
	e = nwc_image_extent(img, t->extent);
	T_EQ(e->block_len, 128);
	T_EQ(e->nblocks, 3);
	T_CHECK(!strcmp(nwc_image_codec_name(img, e->codec, e->codec_arg,
					     t->side, name, sizeof(name)),
			"rows/i1"));
	T_EQ(nwc_dctx_create(&dctx), 0);
	for (uint32_t j = 0; j < 3; j++) {
		uint32_t n = nwc_extent_block_len(e, j);

		T_EQ(nwc_image_load_block(img, dctx, t->extent, j, out, n), 0);
		T_MEMEQ(out, data + j * 128, n);
	}
	T_EQ(n_decode, 3);
	nwc_dctx_free(dctx);
	nwc_image_close(img);
	T_EQ(n_close, 1);
}

/* Set the superblock's incompat bits of image @path to @bits. */
static void set_incompat(const char *path, uint64_t bits)
{
	uint8_t sb[NWC_SB_SIZE];
	int fd = open(path, O_RDWR);

	T_CHECK(fd >= 0);
	if (fd < 0)
		return;
	T_EQ(nwc_pread_full(fd, sb, sizeof(sb), 0), 0);
	nwc_put_le64(sb + NWC_SB_INCOMPAT, bits);
	nwc_put_le64(sb + NWC_SB_XXH, nwc_hash64(sb, NWC_SB_XXH));
	T_EQ(nwc_pwrite_full(fd, sb, sizeof(sb), 0), 0);
	close(fd);
}

/*
 * A codec's section and its feature bit go together, whatever the codec:
 * an image whose only use of "rows" is one section item.
 */
static void test_section_pairing(void)
{
	struct nwc_writer *w;
	struct nwc_image *img;
	uint8_t plain[64] = { 0 }, v = 1;
	char path[512];
	uint32_t idx;

	snprintf(path, sizeof(path), "%s/pair.nwc", tdir);
	T_EQ(nwc_writer_create(path, 12, true, &both, &w), 0);
	T_EQ(nwc_writer_add_codec_item(w, ROWS_ID, &v, 1, &idx), 0);
	T_EQ(nwc_writer_add_codec_item(w, XOR_ID, &v, 1, &idx), -EINVAL);
	T_EQ(nwc_writer_finish(w), 0);
	T_EQ(nwc_image_open(path, &both, &img), 0);
	nwc_image_close(img);
	set_incompat(path, 0);
	T_EQ_QUIET(nwc_image_open(path, &both, &img), -NWC_ECORRUPT);

	/* The bit without the section. */
	T_EQ(write_xor(path, &both, plain), 0);
	T_EQ(nwc_image_open(path, &both, &img), 0);
	nwc_image_close(img);
	set_incompat(path, NWC_INCOMPAT_NWC);
	T_EQ_QUIET(nwc_image_open(path, &both, &img), -NWC_ECORRUPT);
}

int main(void)
{
	char cmd[300];

	if (t_tmpdir(tdir, sizeof(tdir), "test-iface"))
		return 99;
	T_RUN(test_block_codec);
	T_RUN(test_tensor_codec);
	T_RUN(test_section_pairing);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tdir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", tdir);
	T_EXIT();
}
