/* SPDX-License-Identifier: MIT */
/*
 * tests/test_image.c - image writer and reader: round trip, writer misuse,
 * and clean rejection of damage to the superblock, tables and blocks; the
 * same for lossy (NWC) tensors, their side records and codec models.
 *
 * "test_image --write-corpus DIR" writes NWC seed images for the image
 * fuzz target instead (tests/corpus/make-image-corpus.sh).
 */
#include "codec/common/base.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/registry/codec.h"
#include "codec/common/convert.h"
#include "codec/common/hash.h"
#include "codec/image/image.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwctensor.h"
#include "codec/nwc/tenc.h"
#include "codec/nwc/prior.h"
#include "codec/image/writer.h"
#include "codec/nwc/nwccodec.h"
#include "codec/registry/registry.h"

/* The parsed NWC side record of tensor @t. */
#define NWC_SIDE(t) ((const struct nwc_tside *)(t)->side)
#include "tests/t.h"

#define MTIME0 1700000000
#define NT NWC_NO_TENSOR
#define ZF(e) ((e) | NWC_ZSTD_ARG_FLOAT)
#define RAW NWC_CODEC_RAW
#define ZSTD NWC_CODEC_ZSTD
#define PLANES NWC_CODEC_PLANES

/*
 * The reference tree, in final (breadth-first, name-sorted) inode order.
 * "z/~" stands for z/ followed by a 255-byte name.
 */
struct xnode {
	const char *path;
	uint32_t mode;
	uint32_t parent;
	int64_t mtime;
	uint32_t mtime_ns;
	uint32_t first;		/* dir: first child; file: first extent */
	uint32_t count;
	const char *target;	/* symlink */
	uint32_t flags;
};

/* An optional section type this version does not know (INFO is 0x8000). */
#define UNKNOWN_OPT (NWC_SECT_OPTIONAL + 0x100)

static const struct xnode xnodes[] = {
	{ "", S_IFDIR | 0750, 0, MTIME0, 1, 1, 6, NULL, 0 },
	{ "a", S_IFDIR | 0755, 0, MTIME0 + 1, 2, 7, 2, NULL, 0 },
	{ "big.bin", S_IFREG | 0644, 0, MTIME0 + 2, 3, 0, 3, NULL, 0 },
	{ "empty", S_IFREG | 0600, 0, -12345, 999999999, 0, 0, NULL, 0 },
	{ "link", S_IFLNK | 0777, 0, MTIME0 + 4, 5, 0, 3, "a/b", 0 },
	{ "model.safetensors", S_IFREG | 0444, 0, MTIME0 + 5, 6, 5, 4, NULL,
	  NWC_INODE_F_SAFETENSORS },
	{ "z", S_IFDIR | 0700, 0, MTIME0 + 6, 7, 9, 5, NULL, 0 },
	{ "a/b", S_IFREG | 0644, 1, MTIME0 + 7, 8, 3, 2, NULL, 0 },
	{ "a/c", S_IFDIR | 0755, 1, MTIME0 + 8, 9, 14, 1, NULL, 0 },
	{ "z/a", S_IFREG | 0644, 6, MTIME0 + 9, 10, 9, 1, NULL, 0 },
	{ "z/aa", S_IFREG | 0644, 6, MTIME0 + 10, 11, 0, 0, NULL, 0 },
	{ "z/ab", S_IFLNK | 0777, 6, MTIME0 + 11, 12, 0, 10, "../big.bin", 0 },
	{ "z/b", S_IFDIR | 0755, 6, MTIME0 + 12, 13, 15, 0, NULL, 0 },
	{ "z/~", S_IFREG | 0644, 6, MTIME0 + 13, 14, 10, 1, NULL, 0 },
	{ "a/c/deep", S_IFREG | 0644, 8, MTIME0 + 14, 15, 11, 1, NULL, 0 },
};
#define NX NWC_ARRAY_SIZE(xnodes)

/* Order in which build_ref() adds the nodes (parents first). */
static const uint32_t node_add_order[] = {
	6, 5, 4, 3, 2, 1, 13, 12, 11, 10, 9, 8, 7, 14,
};

/* Extents in table order (the order build_ref() adds them). */
struct xext {
	uint32_t ino;
	uint64_t len;
	uint32_t block_len;
	uint16_t codec;
	uint32_t arg;
	uint32_t tensor;	/* final tensor index */
};

static const struct xext xexts[] = {
	{ 2, 10000, 4096, RAW, 0, NT },
	{ 2, 9000, 4096, ZSTD, 1, NT },
	{ 2, 4100, 4096, ZSTD, ZF(4), NT },
	{ 7, 300, 4096, RAW, 0, NT },
	{ 7, 5000, 4096, PLANES, 2, NT },
	{ 5, 64, 4096, RAW, 0, NT },
	{ 5, 4800, 4096, ZSTD, ZF(2), 0 },
	{ 5, 240, 4096, ZSTD, ZF(4), 1 },
	{ 5, 4, 4096, RAW, 0, 2 },
	{ 9, 1, 4096, RAW, 0, NT },
	{ 13, 100, 4096, RAW, 0, NT },
	{ 14, 800, 512, ZSTD, 8, NT },
};
#define NXE NWC_ARRAY_SIZE(xexts)
#define NXB 20u			/* blocks of all the extents above */

/* Tensors of model.safetensors in final (data) order. */
struct xtensor {
	const char *name;
	unsigned dtype;
	unsigned ndim;
	uint64_t shape[3];
	uint64_t data_off;
	uint64_t data_len;
	uint16_t codec;
	uint32_t extent;
};

static const struct xtensor xtensors[] = {
	{ "blk.0.w", NWC_DTYPE_BF16, 2, { 8, 300 }, 64, 4800, ZSTD, 6 },
	{ "blk.1.w", NWC_DTYPE_F32, 3, { 3, 4, 5 }, 4864, 240, ZSTD, 7 },
	{ "scalar", NWC_DTYPE_I32, 0, { 0 }, 5104, 4, RAW, 8 },
	{ "empty.t", NWC_DTYPE_U8, 2, { 0, 5 }, 5108, 0, RAW, UINT32_MAX },
};
#define NXT NWC_ARRAY_SIZE(xtensors)

/* build_ref() adds tensors in this (final index) order, to test sorting. */
static const uint32_t tensor_add_order[] = { 2, 3, 1, 0 };

static char long_name[NWC_NAME_MAX + 1];
static uint64_t xsize[NX];		/* expected file sizes */
static uint8_t *xdata[NX];		/* expected file contents */
static uint32_t xfirst_block[NXE];	/* expected first block of extents */

static char tdir[256];
static uint8_t *ref_bytes;		/* the reference image */
static size_t ref_len;

/* T_EQ for a call whose expected failure logs a line. */
#define T_EQ_QUIET(expr, want) do {					\
	long long q_;							\
									\
	t_quiet(true);							\
	q_ = (long long)(expr);						\
	t_quiet(false);							\
	if (q_ != (long long)(want)) {					\
		fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
			__FILE__, __LINE__, #expr, #want, q_,		\
			(long long)(want));				\
		t_failed++;						\
	}								\
} while (0)

static void tpath(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tdir, name);
}

/* Number of entries in the temp dir, "." and ".." excluded. */
static int tdir_entries(void)
{
	DIR *d = opendir(tdir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static void tdir_clean(void)
{
	DIR *d = opendir(tdir);
	struct dirent *de;
	char path[512];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		tpath(path, sizeof(path), de->d_name);
		unlink(path);
	}
	closedir(d);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st)) {
		perror(path);
		exit(99);
	}
	p = t_xmalloc((size_t)st.st_size);
	if (nwc_pread_full(fd, p, (size_t)st.st_size, 0)) {
		fprintf(stderr, "%s: read failed\n", path);
		exit(99);
	}
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static void write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || nwc_pwrite_full(fd, p, len, 0) || close(fd)) {
		perror(path);
		exit(99);
	}
}

/* Last path component of a reference node; "~" is the long name. */
static const char *xname(uint32_t ino, size_t *len)
{
	const char *s = strrchr(xnodes[ino].path, '/');

	s = s ? s + 1 : xnodes[ino].path;
	if (!strcmp(s, "~")) {
		*len = NWC_NAME_MAX;
		return long_name;
	}
	*len = strlen(s);
	return s;
}

static void xpath(uint32_t ino, char *buf, size_t len)
{
	const char *p = xnodes[ino].path;
	size_t n = strlen(p);

	if (n && p[n - 1] == '~')
		snprintf(buf, len, "%.*s%s", (int)(n - 1), p, long_name);
	else
		snprintf(buf, len, "%s", p);
}

/* Half random, half patterned bytes: some planes compress, some do not. */
static void gen_bytes(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t s = seed;

	for (size_t i = 0; i < len; i++) {
		if ((i / 700) % 2)
			p[i] = (uint8_t)t_rand(&s);
		else
			p[i] = (uint8_t)(i % 251 < 128 ? 'a' + i % 7 : i >> 3);
	}
}

static void setup_expected(void)
{
	uint32_t blk = 0;

	memset(long_name, 'x', NWC_NAME_MAX);
	for (uint32_t k = 0; k < NXE; k++) {
		xsize[xexts[k].ino] += xexts[k].len;
		xfirst_block[k] = blk;
		blk += (uint32_t)((xexts[k].len + xexts[k].block_len - 1) /
				  xexts[k].block_len);
	}
	for (uint32_t i = 0; i < NX; i++) {
		if (S_ISLNK(xnodes[i].mode))
			xsize[i] = strlen(xnodes[i].target);
		xdata[i] = t_xmalloc(xsize[i]);
		gen_bytes(xdata[i], xsize[i], 1000 + i);
	}
}

/* Add extent @x of file @id and encode its blocks from @src. */
static int write_extent(struct nwc_writer *w, struct nwc_cctx *cc,
			uint32_t id, const struct nwc_wextent *x,
			const uint8_t *src)
{
	uint32_t ext;
	int ret;

	ret = nwc_writer_add_extent(w, id, x, &ext);
	for (uint64_t pos = 0; !ret && pos < x->len; pos += x->block_len) {
		size_t n = (size_t)NWC_MIN((uint64_t)x->block_len,
					   x->len - pos);
		size_t cap = nwc_codec_bound(x->codec, x->codec_arg, n);
		uint8_t *buf = t_xmalloc(cap);
		ssize_t s;

		s = nwc_codec_encode(cc, x->codec, x->codec_arg, src + pos, n,
				     buf, cap);
		ret = s < 0 ? (int)s :
			      nwc_writer_add_block(w, ext, buf, (size_t)s,
						   (uint32_t)n);
		free(buf);
	}
	return ret;
}

static int build_ref_nodes(struct nwc_writer *w, uint32_t *id)
{
	int ret;

	ret = nwc_writer_set_root(w, xnodes[0].mode, xnodes[0].mtime,
				  xnodes[0].mtime_ns);
	id[0] = 0;
	for (size_t k = 0; !ret && k < NWC_ARRAY_SIZE(node_add_order); k++) {
		uint32_t i = node_add_order[k];
		const struct xnode *x = &xnodes[i];
		const char *name;
		size_t len;

		name = xname(i, &len);
		ret = nwc_writer_add_node(w, id[x->parent], name, len, x->mode,
					  x->mtime, x->mtime_ns, &id[i]);
		if (!ret && x->target)
			ret = nwc_writer_set_symlink(w, id[i], x->target,
						     strlen(x->target));
		if (!ret && x->flags)
			ret = nwc_writer_set_flags(w, id[i], x->flags);
	}
	return ret;
}

/* Write the reference image to @path. */
static bool ref_info;	/* build_ref() adds an INFO section */

static int build_ref(const char *path, bool force)
{
	uint32_t id[NX], tidx[NXT];
	struct nwc_writer *w;
	struct nwc_cctx *cc;
	uint64_t off[NX] = { 0 };
	int ret;

	ret = nwc_cctx_create(3, &cc);
	if (ret)
		return ret;
	ret = nwc_writer_create(path, 12, force, nwc_codecs_write(), &w);
	if (ret)
		goto out_cctx;
	ret = build_ref_nodes(w, id);
	for (size_t k = 0; !ret && k < NXT; k++) {
		const struct xtensor *x = &xtensors[tensor_add_order[k]];
		struct nwc_wtensor t = {
			.name = x->name,
			.name_len = strlen(x->name),
			.dtype = x->dtype,
			.ndim = x->ndim,
			.shape = x->shape,
			.data_off = x->data_off,
			.data_len = x->data_len,
			.codec = 0,
		};

		ret = nwc_writer_add_tensor(w, id[5], &t,
					    &tidx[tensor_add_order[k]]);
	}
	if (!ret && ref_info)
		ret = nwc_writer_set_info(w, 1234567, "tool=t\nk=v\n", 11);
	/* Tensor k: sig 100 + k, err k (the writer reorders the tensors). */
	for (size_t k = 0; !ret && ref_info && k < NXT; k++)
		ret = nwc_writer_set_tensor_error(w, tidx[k], 100.0 + (double)k,
						  (double)k);
	for (size_t k = 0; !ret && k < NXE; k++) {
		const struct xext *x = &xexts[k];
		struct nwc_wextent e = {
			.len = x->len,
			.block_len = x->block_len,
			.codec = x->codec,
			.codec_arg = x->arg,
			.tensor = x->tensor == NT ? NT : tidx[x->tensor],
		};

		ret = write_extent(w, cc, id[x->ino], &e,
				   xdata[x->ino] + off[x->ino]);
		off[x->ino] += x->len;
	}
	if (ret)
		nwc_writer_abort(w);
	else
		ret = nwc_writer_finish(w);
out_cctx:
	nwc_cctx_free(cc);
	return ret;
}

static struct nwc_image *open_ref(void)
{
	struct nwc_image *img = NULL;
	char path[512];

	tpath(path, sizeof(path), "ref.nwc");
	T_EQ(nwc_image_open(path, nwc_codecs_read(), &img), 0);
	if (!img)
		exit(1);
	return img;
}

/* ---- round trip ---- */

static void test_roundtrip_tree(void)
{
	struct nwc_image *img = open_ref();
	struct nwc_image_info info;
	char path[512];
	uint64_t total = 0;

	tpath(path, sizeof(path), "ref.nwc");
	T_CHECK(!strcmp(nwc_image_path(img), path));
	nwc_image_get_info(img, &info);
	T_EQ(info.image_size, ref_len);
	T_EQ(info.n_inodes, NX);
	T_EQ(info.n_extents, NXE);
	T_EQ(info.n_blocks, NXB);
	T_EQ(info.n_tensors, NXT);
	T_EQ(info.block_log2, 12);
	T_EQ(info.compat, 0);
	/* The writer sets the bit of the codec of extent 4. */
	T_EQ(info.incompat, NWC_INCOMPAT_PLANES);
	T_EQ(nwc_get_le64(ref_bytes + NWC_SB_DATA_OFF), NWC_DATA_ALIGN);
	T_EQ(info.data_len, nwc_get_le64(ref_bytes + NWC_SB_DATA_LEN));
	T_EQ(nwc_get_le64(ref_bytes + NWC_SB_CREATED_BY), NWC_VERSION_CODE);
	for (uint32_t i = 0; i < NX; i++) {
		const struct nwc_inode *n = nwc_image_inode(img, i);
		const struct xnode *x = &xnodes[i];
		const char *name;
		size_t len;

		name = i ? xname(i, &len) : "";
		if (!i)
			len = 0;
		T_EQ(n->mode, x->mode);
		T_EQ(n->parent, x->parent);
		T_EQ(n->name_len, len);
		T_CHECK(n->name && !memcmp(n->name, name, len));
		T_EQ(n->mtime, x->mtime);
		T_EQ(n->mtime_ns, x->mtime_ns);
		T_EQ(n->flags, x->flags);
		T_EQ(n->size, S_ISDIR(x->mode) ? 0 : xsize[i]);
		T_EQ(n->count, x->count);
		if (!S_ISLNK(x->mode))
			T_EQ(n->first, x->first);
		if (x->target) {
			T_CHECK(n->target &&
				!memcmp(n->target, x->target, x->count));
		} else {
			T_CHECK(!n->target);
		}
		if (S_ISREG(x->mode))
			total += xsize[i];
	}
	T_EQ(info.total_size, total);
	nwc_image_close(img);
}

static void test_roundtrip_extents(void)
{
	struct nwc_image *img = open_ref();
	struct nwc_image_info info;
	uint64_t pos[NX] = { 0 };

	nwc_image_get_info(img, &info);
	for (uint32_t k = 0; k < NXE; k++) {
		const struct nwc_extent *e = nwc_image_extent(img, k);
		const struct xext *x = &xexts[k];
		uint64_t stored = 0;

		T_EQ(e->file_off, pos[x->ino]);
		T_EQ(e->len, x->len);
		T_EQ(e->block_len, x->block_len);
		T_EQ(e->codec, x->codec);
		T_EQ(e->codec_arg, x->arg);
		T_EQ(e->tensor, x->tensor);
		T_EQ(e->first_block, xfirst_block[k]);
		T_EQ(e->nblocks, (x->len + x->block_len - 1) / x->block_len);
		for (uint32_t j = 0; j < e->nblocks; j++) {
			const struct nwc_block *b =
				nwc_image_block(img, e->first_block + j);
			uint64_t want = NWC_MIN((uint64_t)x->block_len,
						x->len - (uint64_t)j *
								 x->block_len);

			T_EQ(b->raw_len, want);
			T_EQ(nwc_extent_block_len(e, j), want);
			T_CHECK(b->off >= NWC_DATA_ALIGN &&
				b->off + b->stored_len <=
					NWC_DATA_ALIGN + info.data_len);
			if (x->codec == RAW)
				T_EQ(b->stored_len, b->raw_len);
			T_EQ(b->xxh,
			     nwc_hash64(ref_bytes + b->off, b->stored_len));
			stored += b->stored_len;
		}
		T_EQ(nwc_image_extent_stored(img, k), stored);
		/* Both ends and the middle map back to this extent. */
		T_EQ(nwc_image_find_extent(img, x->ino, e->file_off), k);
		T_EQ(nwc_image_find_extent(img, x->ino,
					   e->file_off + e->len - 1), k);
		T_EQ(nwc_image_find_extent(img, x->ino,
					   e->file_off + e->len / 2), k);
		pos[x->ino] += x->len;
	}
	/* Blocks were written back to back in extent order. */
	for (uint32_t b = 1; b < NXB; b++)
		T_EQ(nwc_image_block(img, b)->off,
		     nwc_image_block(img, b - 1)->off +
			     nwc_image_block(img, b - 1)->stored_len);
	nwc_image_close(img);
}

static void test_roundtrip_blocks(void)
{
	struct nwc_image *img = open_ref();
	struct nwc_dctx *dctx;

	T_EQ(nwc_dctx_create(&dctx), 0);
	for (uint32_t k = 0; k < NXE; k++) {
		const struct nwc_extent *e = nwc_image_extent(img, k);
		const uint8_t *want = xdata[xexts[k].ino] + e->file_off;

		for (uint32_t j = 0; j < e->nblocks; j++) {
			size_t n = nwc_extent_block_len(e, j);
			uint8_t *buf = t_xmalloc(n + 1);

			T_EQ(nwc_image_load_block(img, dctx, k, j, buf, n), 0);
			T_MEMEQ(buf, want + (uint64_t)j * e->block_len, n);
			T_EQ(nwc_image_check_block(img, dctx,
						   e->first_block + j), 0);
			/* The buffer must be exactly the block length. */
			T_EQ(nwc_image_load_block(img, dctx, k, j, buf, n + 1),
			     -EINVAL);
			T_EQ(nwc_image_load_block(img, dctx, k, j, buf, n - 1),
			     -EINVAL);
			free(buf);
		}
		T_EQ(nwc_image_load_block(img, dctx, k, e->nblocks, NULL, 1),
		     -EINVAL);
	}
	nwc_dctx_free(dctx);
	nwc_image_close(img);
}

static void test_roundtrip_tensors(void)
{
	struct nwc_image *img = open_ref();
	uint32_t first, count;

	nwc_image_file_tensors(img, 5, &first, &count);
	T_EQ(first, 0);
	T_EQ(count, NXT);
	for (uint32_t i = 0; i < NX; i++) {
		if (i == 5 || !S_ISREG(xnodes[i].mode))
			continue;
		nwc_image_file_tensors(img, i, &first, &count);
		T_EQ(count, 0);
	}
	for (uint32_t i = 0; i < NXT; i++) {
		const struct nwc_tensor *t = nwc_image_tensor(img, i);
		const struct xtensor *x = &xtensors[i];

		T_EQ(t->inode, 5);
		T_EQ(t->name_len, strlen(x->name));
		T_CHECK(t->name && !memcmp(t->name, x->name, t->name_len));
		T_EQ(t->dtype, x->dtype);
		T_EQ(t->ndim, x->ndim);
		for (unsigned d = 0; d < x->ndim; d++)
			T_EQ(t->shape[d], x->shape[d]);
		T_EQ(t->data_off, x->data_off);
		T_EQ(t->data_len, x->data_len);
		T_EQ(t->codec, x->codec);
		T_EQ(t->extent, x->extent);
	}
	nwc_image_close(img);
}

static void test_lookup(void)
{
	struct nwc_image *img = open_ref();
	char path[512], name[520];
	uint32_t ino;

	for (uint32_t i = 0; i < NX; i++) {
		const char *nm;
		size_t len;

		xpath(i, path, sizeof(path));
		ino = 999;
		T_EQ(nwc_image_resolve(img, path, &ino), 0);
		T_EQ(ino, i);
		snprintf(name, sizeof(name), "/%s", path);
		ino = 999;
		T_EQ(nwc_image_resolve(img, name, &ino), 0);
		T_EQ(ino, i);
		if (!i)
			continue;
		nm = xname(i, &len);
		ino = 999;
		T_EQ(nwc_image_lookup(img, xnodes[i].parent, nm, len, &ino), 0);
		T_EQ(ino, i);
	}
	T_EQ(nwc_image_resolve(img, "/", &ino), 0);
	T_EQ(ino, 0);
	T_EQ(nwc_image_resolve(img, "//a//c///deep", &ino), 0);
	T_EQ(ino, 14);
	T_EQ(nwc_image_resolve(img, "missing", &ino), -ENOENT);
	T_EQ(nwc_image_resolve(img, "a/missing", &ino), -ENOENT);
	T_EQ(nwc_image_resolve(img, "a/missing/x", &ino), -ENOENT);
	T_EQ(nwc_image_resolve(img, "z/ac", &ino), -ENOENT);
	T_EQ(nwc_image_resolve(img, "A", &ino), -ENOENT);
	T_EQ(nwc_image_resolve(img, ".", &ino), -ENOENT);
	T_EQ(nwc_image_resolve(img, "a/..", &ino), -ENOENT);
	T_EQ(nwc_image_resolve(img, "big.bin/x", &ino), -ENOTDIR);
	T_EQ(nwc_image_resolve(img, "a/b/c", &ino), -ENOTDIR);
	T_EQ(nwc_image_resolve(img, "link/b", &ino), -ENOTDIR);
	T_EQ(nwc_image_resolve(img, "empty/x/y", &ino), -ENOTDIR);

	/* Names are counted, not terminated; prefixes are distinct names. */
	T_EQ(nwc_image_lookup(img, 6, "abc", 1, &ino), 0);
	T_EQ(ino, 9);
	T_EQ(nwc_image_lookup(img, 6, "abc", 3, &ino), -ENOENT);
	T_EQ(nwc_image_lookup(img, 6, "aax", 2, &ino), 0);
	T_EQ(ino, 10);
	T_EQ(nwc_image_lookup(img, 6, "", 0, &ino), -ENOENT);
	T_EQ(nwc_image_lookup(img, 6, long_name, NWC_NAME_MAX - 1, &ino),
	     -ENOENT);
	memset(name, 'x', sizeof(name));
	T_EQ(nwc_image_lookup(img, 6, name, NWC_NAME_MAX + 1, &ino), -ENOENT);
	T_EQ(nwc_image_lookup(img, 12, "a", 1, &ino), -ENOENT);
	T_EQ(nwc_image_lookup(img, 2, "a", 1, &ino), -ENOTDIR);
	T_EQ(nwc_image_lookup(img, 4, "b", 1, &ino), -ENOTDIR);
	T_EQ(nwc_image_lookup(img, 3, "x", 1, &ino), -ENOTDIR);
	nwc_image_close(img);
}

static void test_open_errors(void)
{
	struct nwc_image *img = NULL;
	char path[512];

	tpath(path, sizeof(path), "does-not-exist.nwc");
	T_EQ_QUIET(nwc_image_open(path, nwc_codecs_read(), &img), -ENOENT);
	T_EQ_QUIET(nwc_image_open(tdir, nwc_codecs_read(), &img), -EINVAL);
	T_CHECK(!img);
	nwc_image_close(NULL);
}

/* ---- writer ---- */

static void test_writer_misuse(void)
{
	static const uint8_t data[8192];
	struct nwc_wextent e = { 100, 64, RAW, 0, NT };
	struct nwc_wtensor t = { "t", 1, NWC_DTYPE_U8, 1, NULL, 0, 1, 0 };
	uint64_t shape[NWC_MAX_DIMS + 1] = { 1 };
	struct nwc_writer *w;
	uint32_t f, g, d, l, x, ext;
	char name[NWC_NAME_MAX + 1], path[512];

	t.shape = shape;
	tpath(path, sizeof(path), "misuse.nwc");
	T_EQ(nwc_writer_create(path, NWC_BLOCK_LOG2_MIN - 1, false, nwc_codecs_write(), &w),
	     -EINVAL);
	T_EQ(nwc_writer_create(path, NWC_BLOCK_LOG2_MAX + 1, false, nwc_codecs_write(), &w),
	     -EINVAL);
	T_EQ(tdir_entries(), 1);
	T_EQ(nwc_writer_create(path, 12, false, nwc_codecs_write(), &w), 0);
	T_EQ(tdir_entries(), 1);	/* written unnamed: nothing to see */

	T_EQ(nwc_writer_add_node(w, 0, "", 0, S_IFREG | 0644, 0, 0, &x),
	     -EINVAL);
	T_EQ(nwc_writer_add_node(w, 0, ".", 1, S_IFREG | 0644, 0, 0, &x),
	     -EINVAL);
	T_EQ(nwc_writer_add_node(w, 0, "..", 2, S_IFDIR | 0755, 0, 0, &x),
	     -EINVAL);
	T_EQ(nwc_writer_add_node(w, 0, "a/b", 3, S_IFREG | 0644, 0, 0, &x),
	     -EINVAL);
	T_EQ(nwc_writer_add_node(w, 0, "a\0b", 3, S_IFREG | 0644, 0, 0, &x),
	     -EINVAL);
	memset(name, 'n', sizeof(name));
	T_EQ(nwc_writer_add_node(w, 0, name, NWC_NAME_MAX + 1, S_IFREG | 0644,
				 0, 0, &x),
	     -EINVAL);
	T_EQ(nwc_writer_add_node(w, 0, "c", 1, S_IFCHR | 0644, 0, 0, &x),
	     -EINVAL);
	T_EQ(nwc_writer_add_node(w, 0, "c", 1, S_IFREG | 0644, 0,
				 1000000000u, &x),
	     -EINVAL);
	T_EQ(nwc_writer_set_root(w, 0755, 0, 1000000000u), -EINVAL);
	T_EQ(nwc_writer_add_node(w, 0, name, NWC_NAME_MAX, S_IFREG | 0644,
				 0, 0, &f),
	     0);
	T_EQ(nwc_writer_add_node(w, 0, "g", 1, S_IFREG | 0644, 0, 0, &g), 0);
	T_EQ(nwc_writer_add_node(w, 0, "d", 1, S_IFDIR | 0755, 0, 0, &d), 0);
	T_EQ(nwc_writer_add_node(w, 0, "..a", 3, S_IFLNK | 0777, 0, 0, &l),
	     0);
	/* Parents must be existing directories. */
	T_EQ(nwc_writer_add_node(w, f, "x", 1, S_IFREG | 0644, 0, 0, &x),
	     -ENOTDIR);
	T_EQ(nwc_writer_add_node(w, l, "x", 1, S_IFREG | 0644, 0, 0, &x),
	     -ENOTDIR);
	T_EQ(nwc_writer_add_node(w, 999, "x", 1, S_IFREG | 0644, 0, 0, &x),
	     -ENOTDIR);
	T_EQ(nwc_writer_set_symlink(w, f, "t", 1), -EINVAL);
	T_EQ(nwc_writer_set_symlink(w, l, "t", 0), -EINVAL);
	T_EQ(nwc_writer_set_symlink(w, l, (const char *)data, 4097), -EINVAL);
	T_EQ(nwc_writer_set_symlink(w, l, "t", 1), 0);
	T_EQ(nwc_writer_set_flags(w, d, NWC_INODE_F_SAFETENSORS), -EINVAL);

	T_EQ(nwc_writer_add_tensor(w, d, &t, &x), -EINVAL);
	t.ndim = NWC_MAX_DIMS + 1;
	T_EQ(nwc_writer_add_tensor(w, f, &t, &x), -EINVAL);
	t.ndim = 1;
	t.dtype = 0;
	T_EQ(nwc_writer_add_tensor(w, f, &t, &x), -EINVAL);
	t.dtype = NWC_DTYPE_COUNT;
	T_EQ(nwc_writer_add_tensor(w, f, &t, &x), -EINVAL);
	t.dtype = NWC_DTYPE_U8;
	t.name_len = 0;
	T_EQ(nwc_writer_add_tensor(w, f, &t, &x), -EINVAL);

	T_EQ(nwc_writer_add_extent(w, d, &e, &ext), -EINVAL);
	T_EQ(nwc_writer_add_extent(w, l, &e, &ext), -EINVAL);
	e.len = 0;
	T_EQ(nwc_writer_add_extent(w, f, &e, &ext), -EINVAL);
	e.len = 100;
	e.block_len = 0;
	T_EQ(nwc_writer_add_extent(w, f, &e, &ext), -EINVAL);
	e.block_len = 64;
	e.tensor = 0;	/* no tensor added yet */
	T_EQ(nwc_writer_add_extent(w, f, &e, &ext), -EINVAL);
	e.tensor = NT;
	T_EQ(nwc_writer_add_extent(w, f, &e, &ext), 0);
	/* 100 bytes in blocks of 64: raw lengths 64 then 36, nothing more. */
	T_EQ(nwc_writer_add_block(w, ext, data, 63, 63), -EINVAL);
	T_EQ(nwc_writer_add_block(w, ext, data, 100, 100), -EINVAL);
	T_EQ(nwc_writer_add_block(w, ext + 1, data, 64, 64), -EINVAL);
	T_EQ(nwc_writer_add_block(w, ext, data, 64, 64), 0);
	/* The extent is incomplete: no other extent may start. */
	T_EQ(nwc_writer_add_extent(w, g, &e, &x), -EINVAL);
	T_EQ(nwc_writer_add_extent(w, f, &e, &x), -EINVAL);
	T_EQ(nwc_writer_add_block(w, ext, data, 64, 64), -EINVAL);
	T_EQ(nwc_writer_add_block(w, ext, data, 36, 36), 0);
	T_EQ(nwc_writer_add_block(w, ext, data, 36, 36), -EINVAL);
	T_EQ(nwc_writer_data_len(w), 100);
	/* Extents of one file must be consecutive in the table. */
	T_EQ(nwc_writer_add_extent(w, g, &e, &x), 0);
	T_EQ(nwc_writer_add_block(w, ext, data, 64, 64), -EINVAL);
	T_EQ(nwc_writer_add_block(w, x, data, 64, 64), 0);
	T_EQ(nwc_writer_add_block(w, x, data, 36, 36), 0);
	T_EQ(nwc_writer_add_extent(w, f, &e, &x), -EINVAL);

	nwc_writer_abort(w);
	T_EQ(tdir_entries(), 1);
	nwc_writer_abort(NULL);

	/* finish with a block missing fails and leaves nothing behind. */
	T_EQ(nwc_writer_create(path, 12, false, nwc_codecs_write(), &w), 0);
	T_EQ(nwc_writer_add_node(w, 0, "f", 1, S_IFREG | 0644, 0, 0, &f), 0);
	T_EQ(nwc_writer_add_extent(w, f, &e, &ext), 0);
	T_EQ(nwc_writer_add_block(w, ext, data, 64, 64), 0);
	T_EQ_QUIET(nwc_writer_finish(w), -EINVAL);
	T_EQ(tdir_entries(), 1);
}

static void test_writer_duplicates(void)
{
	struct nwc_writer *w;
	uint32_t a, b, d;
	char path[512];
	struct stat st;

	tpath(path, sizeof(path), "dup.nwc");
	T_EQ(nwc_writer_create(path, 12, false, nwc_codecs_write(), &w), 0);
	T_EQ(nwc_writer_add_node(w, 0, "d", 1, S_IFDIR | 0755, 0, 0, &d), 0);
	T_EQ(nwc_writer_add_node(w, d, "x", 1, S_IFREG | 0644, 0, 0, &a), 0);
	T_EQ(nwc_writer_add_node(w, 0, "x", 1, S_IFREG | 0644, 0, 0, &b), 0);
	T_EQ(nwc_writer_add_node(w, d, "y", 1, S_IFDIR | 0755, 0, 0, &b), 0);
	T_EQ(nwc_writer_add_node(w, d, "x", 1, S_IFLNK | 0777, 0, 0, &b), 0);
	T_EQ(nwc_writer_set_symlink(w, b, "x", 1), 0);
	T_EQ_QUIET(nwc_writer_finish(w), -EEXIST);
	T_EQ(lstat(path, &st), -1);
	T_EQ(tdir_entries(), 1);
}

static void test_writer_exists(void)
{
	struct nwc_writer *w;
	char path[512];
	size_t len;
	uint8_t *p;

	tpath(path, sizeof(path), "exists.nwc");
	write_file(path, "old", 3);
	T_EQ_QUIET(nwc_writer_create(path, 12, false, nwc_codecs_write(), &w), -EEXIST);
	T_EQ_QUIET(build_ref(path, false), -EEXIST);
	T_EQ(tdir_entries(), 2);
	p = read_file(path, &len);
	T_EQ(len, 3);
	free(p);
	/* An aborted replacement keeps the old file. */
	T_EQ(nwc_writer_create(path, 12, true, nwc_codecs_write(), &w), 0);
	nwc_writer_abort(w);
	p = read_file(path, &len);
	T_EQ(len, 3);
	free(p);
	T_EQ(tdir_entries(), 2);
	T_EQ(build_ref(path, true), 0);
	p = read_file(path, &len);
	T_EQ(len, ref_len);
	T_CHECK(len == ref_len && !memcmp(p, ref_bytes, len));
	free(p);
	unlink(path);
	T_EQ(tdir_entries(), 1);

	/* A file that appears while the image is written is not replaced
	 * without force. */
	T_EQ(nwc_writer_create(path, 12, false, nwc_codecs_write(), &w), 0);
	write_file(path, "new", 3);
	T_EQ_QUIET(nwc_writer_finish(w), -EEXIST);
	p = read_file(path, &len);
	T_CHECK(len == 3 && !memcmp(p, "new", 3));
	free(p);
	unlink(path);
	T_EQ(tdir_entries(), 1);
}

static void test_writer_determinism(void)
{
	char path[512];
	uint8_t *p;
	size_t len;

	tpath(path, sizeof(path), "again.nwc");
	T_EQ(build_ref(path, false), 0);
	p = read_file(path, &len);
	T_EQ(len, ref_len);
	T_CHECK(len == ref_len && !memcmp(p, ref_bytes, len));
	free(p);
	unlink(path);
}

/* An image with one empty directory and nothing else. */
static void test_writer_minimal(void)
{
	struct nwc_image *img = NULL;
	struct nwc_image_info info;
	struct nwc_writer *w;
	char path[512];
	uint32_t d, ino;

	tpath(path, sizeof(path), "min.nwc");
	T_EQ(nwc_writer_create(path, 20, false, nwc_codecs_write(), &w), 0);
	T_EQ(nwc_writer_finish(w), 0);
	T_EQ(nwc_image_open(path, nwc_codecs_read(), &img), 0);
	if (img) {
		nwc_image_get_info(img, &info);
		T_EQ(info.n_inodes, 1);
		T_EQ(info.n_extents, 0);
		T_EQ(info.n_blocks, 0);
		T_EQ(info.n_tensors, 0);
		T_EQ(info.block_log2, 20);
		T_EQ(nwc_image_resolve(img, "/", &ino), 0);
		T_EQ(nwc_image_resolve(img, "x", &ino), -ENOENT);
		nwc_image_close(img);
	}
	T_EQ(nwc_writer_create(path, 12, true, nwc_codecs_write(), &w), 0);
	T_EQ(nwc_writer_add_node(w, 0, "d", 1, S_IFDIR | 0755, 0, 0, &d), 0);
	T_EQ(nwc_writer_finish(w), 0);
	T_EQ(nwc_image_open(path, nwc_codecs_read(), &img), 0);
	if (img) {
		T_EQ(nwc_image_resolve(img, "d", &ino), 0);
		T_EQ(ino, 1);
		T_EQ(nwc_image_inode(img, 1)->first, 2);
		T_EQ(nwc_image_inode(img, 1)->count, 0);
		nwc_image_close(img);
	}
	unlink(path);
}

/* ---- damage ---- */

/* A mutable copy of an image, opened from a memfd. */
struct mimg {
	uint8_t *p;
	size_t len;
};

static struct mimg refm;	/* the reference image, read only */

static void m_init_from(struct mimg *m, const uint8_t *p, size_t len)
{
	m->p = t_xmalloc(len);
	memcpy(m->p, p, len);
	m->len = len;
}

static void m_init(struct mimg *m)
{
	m_init_from(m, ref_bytes, ref_len);
}

static void m_free(struct mimg *m)
{
	free(m->p);
}

static uint64_t m_dir_off(const struct mimg *m)
{
	return nwc_get_le64(m->p + NWC_SB_DIR_OFF);
}

static uint32_t m_dir_count(const struct mimg *m)
{
	return nwc_get_le32(m->p + NWC_SB_DIR_COUNT);
}

/* Directory entry of section @type (the first one). */
static uint8_t *m_dirent(struct mimg *m, uint32_t type)
{
	for (uint32_t i = 0; i < m_dir_count(m); i++) {
		uint8_t *e = m->p + m_dir_off(m) + (size_t)i * NWC_SECT_SIZE;

		if (nwc_get_le32(e) == type)
			return e;
	}
	fprintf(stderr, "no section %u\n", type);
	exit(99);
}

static uint8_t *m_sect(struct mimg *m, uint32_t type)
{
	return m->p + nwc_get_le64(m_dirent(m, type) + 8);
}

static uint64_t m_sect_off(struct mimg *m, uint32_t type)
{
	return nwc_get_le64(m_dirent(m, type) + 8);
}

static uint64_t m_sect_len(struct mimg *m, uint32_t type)
{
	return nwc_get_le64(m_dirent(m, type) + 16);
}

static uint8_t *ino_rec(struct mimg *m, uint32_t i)
{
	return m_sect(m, NWC_SECT_INODES) + (size_t)i * NWC_INODE_SIZE;
}

static uint8_t *ext_rec(struct mimg *m, uint32_t i)
{
	return m_sect(m, NWC_SECT_EXTENTS) + (size_t)i * NWC_EXTENT_SIZE;
}

static uint8_t *blk_rec(struct mimg *m, uint32_t i)
{
	return m_sect(m, NWC_SECT_BLOCKS) + (size_t)i * NWC_BLOCK_SIZE;
}

static uint8_t *ten_rec(struct mimg *m, uint32_t i)
{
	return m_sect(m, NWC_SECT_TENSORS) + (size_t)i * NWC_TENSOR_SIZE;
}

/* Payload of block @b. */
static uint8_t *blk_data(struct mimg *m, uint32_t b)
{
	return m->p + nwc_get_le64(blk_rec(m, b));
}

static void put16(uint8_t *p, unsigned off, uint16_t v)
{
	nwc_put_le16(p + off, v);
}

static void put32(uint8_t *p, unsigned off, uint32_t v)
{
	nwc_put_le32(p + off, v);
}

static void put64(uint8_t *p, unsigned off, uint64_t v)
{
	nwc_put_le64(p + off, v);
}

static uint32_t get32(const uint8_t *p, unsigned off)
{
	return nwc_get_le32(p + off);
}

static uint64_t get64(const uint8_t *p, unsigned off)
{
	return nwc_get_le64(p + off);
}

/*
 * Make every checksum match again: each section that lies inside the file,
 * then the directory, then the superblock.  After this only the structural
 * checks can reject the image.
 */
static void m_fix(struct mimg *m)
{
	uint64_t dir = m_dir_off(m);
	uint64_t n = m_dir_count(m);

	if (n <= NWC_SECT_MAX_COUNT &&
	    nwc_range_ok(dir, n * NWC_SECT_SIZE, m->len)) {
		for (uint64_t i = 0; i < n; i++) {
			uint8_t *e = m->p + dir + i * NWC_SECT_SIZE;
			uint64_t off = get64(e, 8), len = get64(e, 16);

			if (nwc_range_ok(off, len, m->len))
				put64(e, 24, nwc_hash64(m->p + off, len));
		}
		put64(m->p, NWC_SB_DIR_XXH,
		      nwc_hash64(m->p + dir, n * NWC_SECT_SIZE));
	}
	put64(m->p, NWC_SB_XXH, nwc_hash64(m->p, NWC_SB_XXH));
}

/*
 * Insert a section of @len bytes (@data may point into the image) before
 * the directory, which stays last, and append its directory entry.
 */
static void m_add_section(struct mimg *m, uint32_t type, uint32_t version,
			  const void *data, size_t len)
{
	uint64_t dir = m_dir_off(m);
	uint32_t n = m_dir_count(m);
	size_t dlen = (size_t)n * NWC_SECT_SIZE;
	size_t off = ((size_t)dir + 7) & ~(size_t)7;
	size_t ndir = off + ((len + 7) & ~(size_t)7);
	uint8_t *body = t_xmalloc(len), *olddir = t_xmalloc(dlen), *e;

	memcpy(body, data, len);
	memcpy(olddir, m->p + dir, dlen);
	m->len = ndir + dlen + NWC_SECT_SIZE;
	m->p = realloc(m->p, m->len);
	if (!m->p)
		exit(99);
	memset(m->p + dir, 0, m->len - dir);
	memcpy(m->p + off, body, len);
	memcpy(m->p + ndir, olddir, dlen);
	e = m->p + ndir + dlen;
	put32(e, 0, type);
	put32(e, 4, version);
	put64(e, 8, off);
	put64(e, 16, len);
	put64(m->p, NWC_SB_DIR_OFF, ndir);
	put32(m->p, NWC_SB_DIR_COUNT, n + 1);
	put64(m->p, NWC_SB_IMAGE_SIZE, m->len);
	free(olddir);
	free(body);
}

static int m_open(const struct mimg *m, bool silent)
{
	struct nwc_image *img;
	int fd, ret;

	fd = memfd_create("nwc-test", MFD_CLOEXEC);
	if (fd < 0 || (m->len && nwc_pwrite_full(fd, m->p, m->len, 0))) {
		perror("memfd");
		exit(99);
	}
	if (silent)
		t_quiet(true);
	ret = nwc_image_open_fd(fd, "damaged", nwc_codecs_read(), &img);
	if (silent)
		t_quiet(false);
	if (!ret)
		nwc_image_close(img);
	return ret;
}

/* Expect open to give @want; on a mismatch, show the reader's log line. */
static void expect_open(const struct mimg *m, int want, int line)
{
	int got;

	if (getenv("NWC_TEST_VERBOSE"))
		fprintf(stderr, "%s:%d: want %d:\n", __FILE__, line, want);
	got = m_open(m, true);
	if (got != want) {
		fprintf(stderr, "%s:%d: open gave %d (%s), want %d (%s)\n",
			__FILE__, line, got, nwc_strerror(got), want,
			want ? nwc_strerror(want) : "success");
		m_open(m, false);
		t_failed++;
	}
}

/*
 * CASE(want, statements): apply the statements to a copy of the reference
 * image (as `m`), fix every checksum, and expect open to return @want.
 */
#define CASE(want, ...) do {						\
	struct mimg m_;							\
	struct mimg *m = &m_;						\
									\
	m_init(m);							\
	__VA_ARGS__;							\
	m_fix(m);							\
	expect_open(m, (want), __LINE__);				\
	m_free(m);							\
} while (0)

#define ECORRUPT (-NWC_ECORRUPT)
#define ECHECKSUM (-NWC_ECHECKSUM)
#define EFEATURE (-NWC_EFEATURE)

/* Every byte of superblock and directory, a sample of each section. */
static void test_damage_checksums(void)
{
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	struct mimg m;
	int bad = 0, n = 0;

	m_init(&m);
	for (size_t i = 0; i < NWC_SB_SIZE; i++) {
		for (size_t k = 0; k < NWC_ARRAY_SIZE(masks); k++) {
			int want = i < NWC_MAGIC_LEN ? ECORRUPT : ECHECKSUM;

			m.p[i] ^= masks[k];
			expect_open(&m, want, __LINE__);
			m.p[i] ^= masks[k];
		}
	}
	for (size_t i = 0; i < m_dir_count(&m) * NWC_SECT_SIZE; i++) {
		size_t at = m_dir_off(&m) + i;

		m.p[at] ^= 0x01;
		expect_open(&m, ECHECKSUM, __LINE__);
		m.p[at] ^= 0xff;
		expect_open(&m, ECHECKSUM, __LINE__);
		m.p[at] ^= 0xfe;
	}
	for (uint32_t t = NWC_SECT_STRINGS; t <= NWC_SECT_PARAMS; t++) {
		uint64_t off = m_sect_off(&m, t), len = m_sect_len(&m, t);
		uint64_t step = NWC_MAX(len / 61, 1);

		T_CHECK(len > 0);
		for (uint64_t i = 0; i < len; i += step) {
			m.p[off + i] ^= 0x10;
			bad += m_open(&m, true) != ECHECKSUM;
			m.p[off + i] ^= 0x10;
			n++;
		}
		m.p[off + len - 1] ^= 0x01;
		expect_open(&m, ECHECKSUM, __LINE__);
		m.p[off + len - 1] ^= 0x01;
	}
	T_EQ(bad, 0);
	T_CHECK(n > 300);
	/* Sanity: the untouched copy still opens. */
	expect_open(&m, 0, __LINE__);
	m_free(&m);
}

static void test_damage_length(void)
{
	struct mimg m;
	size_t lens[] = {
		0, 1, 7, 8, 127, 128, 129, 4095, 4096, 4097, 8192,
		ref_len / 2, ref_len - 33, ref_len - 32, ref_len - 8,
		ref_len - 1,
	};

	for (size_t i = 0; i < NWC_ARRAY_SIZE(lens); i++) {
		m_init(&m);
		m.len = lens[i];
		expect_open(&m, ECORRUPT, __LINE__);
		m_free(&m);
	}
	for (size_t extra = 1; extra <= 4096; extra *= 8) {
		m_init(&m);
		m.p = realloc(m.p, ref_len + extra);
		if (!m.p)
			exit(99);
		memset(m.p + ref_len, 0, extra);
		m.len = ref_len + extra;
		expect_open(&m, ECORRUPT, __LINE__);
		m_free(&m);
	}
}

static void test_damage_superblock(void)
{
	uint64_t data_len = get64(ref_bytes, NWC_SB_DATA_LEN);
	uint64_t dir_off = get64(ref_bytes, NWC_SB_DIR_OFF);

	CASE(0, (void)m);
	CASE(EFEATURE, put32(m->p, NWC_SB_VERSION, 0));
	CASE(EFEATURE, put32(m->p, NWC_SB_VERSION, 2));
	CASE(EFEATURE, put64(m->p, NWC_SB_INCOMPAT,
			     NWC_INCOMPAT_PLANES | 1ull << 2));
	/* An extent of the wide planes codec needs its bit. */
	CASE(ECORRUPT, put64(m->p, NWC_SB_INCOMPAT, 0));
	CASE(EFEATURE, put64(m->p, NWC_SB_INCOMPAT, 1ull << 63));
	CASE(EFEATURE, put64(m->p, NWC_SB_INCOMPAT, NWC_INCOMPAT_NWC | 4));
	/* The NWC bit needs a MODELS section; any compat bit is fine. */
	CASE(ECORRUPT, put64(m->p, NWC_SB_INCOMPAT,
			     NWC_INCOMPAT_NWC | NWC_INCOMPAT_PLANES));
	CASE(0, put64(m->p, NWC_SB_COMPAT, 1ull << 5));
	CASE(0, put32(m->p, NWC_SB_BLOCK_LOG2, 99));
	CASE(0, put64(m->p, NWC_SB_CREATED_BY, 0xdeadbeef));
	CASE(ECORRUPT, put32(m->p, NWC_SB_SBSIZE, 0));
	CASE(ECORRUPT, put32(m->p, NWC_SB_SBSIZE, 64));
	CASE(ECORRUPT, put32(m->p, NWC_SB_SBSIZE, NWC_SB_SIZE + 8));
	CASE(ECORRUPT, put64(m->p, NWC_SB_IMAGE_SIZE, ref_len + 1));
	CASE(ECORRUPT, put64(m->p, NWC_SB_IMAGE_SIZE, ref_len - 1));
	CASE(ECORRUPT, put64(m->p, NWC_SB_IMAGE_SIZE, 0));
	for (unsigned i = 88; i < NWC_SB_XXH; i++)
		CASE(ECORRUPT, m->p[i] = 1);

	/* The data region. */
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_OFF, 0));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_OFF, 64));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_OFF, NWC_DATA_ALIGN + 1));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_OFF, UINT64_MAX - 7));
	/* Not NWC_DATA_ALIGN aligned, though every block still fits. */
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_OFF, NWC_DATA_ALIGN - 8);
	     put64(m->p, NWC_SB_DATA_LEN, data_len + 8));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_OFF, 2 * NWC_DATA_ALIGN);
	     put64(m->p, NWC_SB_DATA_LEN, data_len - NWC_DATA_ALIGN));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_LEN, 0));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_LEN, data_len - 1));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_LEN, ref_len));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_LEN, UINT64_MAX));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_LEN, UINT64_MAX - 4095));
	/* Data swallowing the sections, then the directory too. */
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_LEN,
			     dir_off - NWC_DATA_ALIGN));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DATA_LEN,
			     ref_len - NWC_DATA_ALIGN));

	/* The directory. */
	CASE(ECORRUPT, put64(m->p, NWC_SB_DIR_OFF, ref_len));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DIR_OFF, ref_len - 32));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DIR_OFF, UINT64_MAX - 16));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DIR_OFF, 0));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DIR_OFF, 64));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DIR_OFF, NWC_DATA_ALIGN));
	CASE(ECORRUPT, put64(m->p, NWC_SB_DIR_OFF,
			     NWC_DATA_ALIGN + data_len - 8));
	CASE(ECORRUPT, put32(m->p, NWC_SB_DIR_COUNT, 0));
	CASE(ECORRUPT, put32(m->p, NWC_SB_DIR_COUNT, NWC_SECT_MAX_COUNT + 1));
	CASE(ECORRUPT, put32(m->p, NWC_SB_DIR_COUNT, UINT32_MAX));
	CASE(ECORRUPT, put32(m->p, NWC_SB_DIR_COUNT, UINT32_MAX / 32 + 2));
	/* Dropping the last entry loses a required section. */
	CASE(ECORRUPT, put32(m->p, NWC_SB_DIR_COUNT, m_dir_count(m) - 1));
}

/* The INFO section: written, read back by tensor, and validated. */
static void test_info(void)
{
	struct nwc_image *img = NULL;
	const char *text;
	int64_t created;
	char path[512];
	size_t len;

	tpath(path, sizeof(path), "info.nwc");
	ref_info = true;
	T_EQ(build_ref(path, true), 0);
	ref_info = false;
	T_EQ(nwc_image_open(path, nwc_codecs_read(), &img), 0);
	if (!img)
		return;
	T_EQ(nwc_image_made(img, &created, &text, &len), 0);
	T_EQ(created, 1234567);
	T_CHECK(len == 11 && !memcmp(text, "tool=t\nk=v\n", 11));
	for (uint32_t i = 0; i < NXT; i++) {
		const struct nwc_tensor *t = nwc_image_tensor(img, i);
		double sig = -1, err = -1;

		for (size_t k = 0; k < NXT; k++) {
			if (t->name_len != strlen(xtensors[k].name) ||
			    memcmp(t->name, xtensors[k].name, t->name_len))
				continue;
			T_EQ(nwc_image_tensor_error(img, i, &sig, &err), 0);
			T_CHECK(sig == 100.0 + (double)k && err == (double)k);
		}
	}
	nwc_image_close(img);
	unlink(path);
	/* Without INFO (the reference image): nothing to say. */
	img = open_ref();
	T_EQ(nwc_image_made(img, &created, &text, &len), -ENOENT);
	nwc_image_close(img);
}

/* An INFO body: @count entries for tensors @first, @first + @step, ... */
static size_t info_blob(uint8_t *p, uint32_t count, uint32_t first,
			int32_t step, double sig, const char *text,
			size_t text_len)
{
	size_t n = NWC_INFO_HDR_SIZE;

	memset(p, 0, 256);
	put64(p, 0, 5);
	put32(p, 8, count);
	put32(p, 12, (uint32_t)text_len);
	for (uint32_t i = 0; i < count; i++, n += NWC_INFO_ENT_SIZE) {
		double err = 1.0;

		put32(p + n, 0, first + (uint32_t)((int32_t)i * step));
		memcpy(p + n + 8, &sig, 8);
		memcpy(p + n + 16, &err, 8);
	}
	memcpy(p + n, text, text_len);
	return n + text_len;
}

static void test_damage_info(void)
{
	uint8_t b[256];

	CASE(0, m_add_section(m, NWC_SECT_INFO, 1, b,
			      info_blob(b, 2, 0, 1, 4.0, "a=b\n", 4)));
	CASE(0, m_add_section(m, NWC_SECT_INFO, 1, b,
			      info_blob(b, 0, 0, 1, 4.0, "", 0)));
	/* A later version is skipped, like any unknown optional section. */
	CASE(0, m_add_section(m, NWC_SECT_INFO, 2, b, 3));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b, 8));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b,
				     info_blob(b, 2, 0, 1, 4.0, "a", 1) - 1));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b,
				     info_blob(b, 2, 1, -1, 4.0, "", 0)));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b,
				     info_blob(b, 2, 0, 0, 4.0, "", 0)));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b,
				     info_blob(b, 1, NXT, 1, 4.0, "", 0)));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b,
				     info_blob(b, 1, 0, 1, -4.0, "", 0)));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b,
				     info_blob(b, 1, 0, 1, NAN, "", 0)));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b,
				     info_blob(b, 0, 0, 1, 4.0, "a\0b", 3)));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_INFO, 1, b,
				     info_blob(b, 0, 0, 1, 4.0, "", 0));
	     m_add_section(m, NWC_SECT_INFO, 1, b, NWC_INFO_HDR_SIZE));
}

static void test_damage_sections(void)
{
	uint64_t data_end = NWC_DATA_ALIGN + get64(ref_bytes, NWC_SB_DATA_LEN);
	static const uint8_t blob[40] = { 1, 2, 3 };

	/* Optional types are skipped; MODELS needs the NWC bit. */
	CASE(0, m_add_section(m, UNKNOWN_OPT, 1, blob, sizeof(blob)));
	CASE(0, m_add_section(m, UINT32_MAX, 7, blob, 3));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_MODELS, 1, blob,
				     sizeof(blob)));
	CASE(0, m_add_section(m, UNKNOWN_OPT + 1, 1, blob, 0));
	CASE(EFEATURE, m_add_section(m, NWC_SECT_MODELS + 1, 1, blob, 8));
	CASE(EFEATURE, m_add_section(m, NWC_SECT_OPTIONAL - 1, 1, blob, 8));
	CASE(EFEATURE, m_add_section(m, 0, 1, blob, 8));
	/* Up to NWC_SECT_MAX_COUNT entries. */
	CASE(0, for (uint32_t i = 6; i < NWC_SECT_MAX_COUNT; i++)
		m_add_section(m, UNKNOWN_OPT + i, 1, blob, 16));
	CASE(ECORRUPT, for (uint32_t i = 6; i <= NWC_SECT_MAX_COUNT; i++)
		m_add_section(m, UNKNOWN_OPT + i, 1, blob, 16));

	for (uint32_t t = NWC_SECT_STRINGS; t <= NWC_SECT_PARAMS; t++) {
		/* Duplicated, missing, or of an unknown version. */
		CASE(ECORRUPT, m_add_section(m, t, 1, m_sect(m, t),
					     (size_t)m_sect_len(m, t)));
		CASE(ECORRUPT, put32(m_dirent(m, t), 0, UNKNOWN_OPT + t));
		CASE(ECORRUPT, put32(m_dirent(m, t), 0, NWC_SECT_MODELS));
		CASE(ECORRUPT, put32(m_dirent(m, t), 4, 0));
		CASE(ECORRUPT, put32(m_dirent(m, t), 4, 2));
		/* Placement. */
		CASE(ECORRUPT, put64(m_dirent(m, t), 8, m_sect_off(m, t) + 1));
		CASE(ECORRUPT, put64(m_dirent(m, t), 8, m_sect_off(m, t) + 4));
		CASE(ECORRUPT, put64(m_dirent(m, t), 8, 0));
		CASE(ECORRUPT, put64(m_dirent(m, t), 8, 120));
		CASE(ECORRUPT, put64(m_dirent(m, t), 8, NWC_DATA_ALIGN));
		CASE(ECORRUPT, put64(m_dirent(m, t), 8,
				     (data_end - 8) & ~7ull));
		CASE(ECORRUPT, put64(m_dirent(m, t), 8, ref_len));
		CASE(ECORRUPT, put64(m_dirent(m, t), 8, UINT64_MAX - 7));
		CASE(ECORRUPT, put64(m_dirent(m, t), 8,
				     m_dir_off(m) & ~7ull));
		CASE(ECORRUPT, put64(m_dirent(m, t), 16, ref_len));
		CASE(ECORRUPT, put64(m_dirent(m, t), 16, UINT64_MAX));
		/* Grown into the next section (or the directory). */
		CASE(ECORRUPT, put64(m_dirent(m, t), 16,
				     m_sect_len(m, t) + 8));
		/* Shrunk: a table with a partial record or no records. */
		CASE(ECORRUPT, put64(m_dirent(m, t), 16,
				     m_sect_len(m, t) - 1));
		CASE(ECORRUPT, put64(m_dirent(m, t), 16, 0));
	}
	/* Two sections at one place. */
	CASE(ECORRUPT, put64(m_dirent(m, NWC_SECT_PARAMS), 8,
			     m_sect_off(m, NWC_SECT_STRINGS)));
	CASE(ECORRUPT, put64(m_dirent(m, NWC_SECT_STRINGS), 8,
			     m_sect_off(m, NWC_SECT_INODES) + 8));
	/* A duplicated STRINGS entry pointing at the same bytes. */
	CASE(ECORRUPT, m_add_section(m, 1, 1, blob, 8);
	     memcpy(m->p + m_dir_off(m) + 6 * NWC_SECT_SIZE,
		    m_dirent(m, NWC_SECT_STRINGS), NWC_SECT_SIZE));
	/* Dropping the last record of a table is fine on its own... */
	CASE(0, put64(m_dirent(m, NWC_SECT_TENSORS), 16,
		      m_sect_len(m, NWC_SECT_TENSORS) - NWC_TENSOR_SIZE));
	/* ...but not when a record refers to it. */
	CASE(ECORRUPT, put64(m_dirent(m, NWC_SECT_BLOCKS), 16,
			     m_sect_len(m, NWC_SECT_BLOCKS) - NWC_BLOCK_SIZE));
	CASE(ECORRUPT, put64(m_dirent(m, NWC_SECT_EXTENTS), 16,
			     m_sect_len(m, NWC_SECT_EXTENTS) -
				     NWC_EXTENT_SIZE));
	CASE(ECORRUPT, put64(m_dirent(m, NWC_SECT_INODES), 16,
			     m_sect_len(m, NWC_SECT_INODES) - NWC_INODE_SIZE));
}

/* Byte @k of inode @i's name, in STRINGS. */
static uint8_t *name_byte(struct mimg *m, uint32_t i, uint32_t k)
{
	return m_sect(m, NWC_SECT_STRINGS) + get32(ino_rec(m, i), 8) + k;
}

static void swap_fields(uint8_t *a, uint8_t *b, size_t n)
{
	uint8_t tmp[NWC_TENSOR_SIZE];

	memcpy(tmp, a, n);
	memcpy(a, b, n);
	memcpy(b, tmp, n);
}

/* The tree shape of the BFS numbering. */
static void test_damage_tree(void)
{
	/* Directories a (1) and z (6) trade child ranges and children. */
	CASE(ECORRUPT, swap_fields(ino_rec(m, 1) + 40, ino_rec(m, 6) + 40, 8);
	     for (uint32_t i = 7; i <= 8; i++) put32(ino_rec(m, i), 4, 6);
	     for (uint32_t i = 9; i <= 13; i++) put32(ino_rec(m, i), 4, 1));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 40, 2));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 40, 0));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 44, 5));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 44, 7));
	CASE(ECORRUPT, put32(ino_rec(m, 1), 40, 8));
	CASE(ECORRUPT, put32(ino_rec(m, 1), 44, 3));
	CASE(ECORRUPT, put32(ino_rec(m, 1), 44, UINT32_MAX));
	CASE(ECORRUPT, put32(ino_rec(m, 8), 44, 0));
	CASE(ECORRUPT, put32(ino_rec(m, 12), 44, 1));
	CASE(ECORRUPT, put32(ino_rec(m, 12), 40, 14));
	CASE(ECORRUPT, put32(ino_rec(m, 12), 40, 16));
	/* Wrong parents. */
	CASE(ECORRUPT, put32(ino_rec(m, 7), 4, 2));
	CASE(ECORRUPT, put32(ino_rec(m, 7), 4, 0));
	CASE(ECORRUPT, put32(ino_rec(m, 14), 4, 1));
	CASE(ECORRUPT, put32(ino_rec(m, 14), 4, 14));
	CASE(ECORRUPT, put32(ino_rec(m, 14), 4, 99));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 4, 1));
	/* Children out of order or duplicated. */
	CASE(ECORRUPT, swap_fields(ino_rec(m, 9) + 8, ino_rec(m, 10) + 8, 8));
	CASE(ECORRUPT, swap_fields(ino_rec(m, 1) + 8, ino_rec(m, 2) + 8, 8));
	CASE(ECORRUPT, memcpy(ino_rec(m, 10) + 8, ino_rec(m, 9) + 8, 8));
	CASE(ECORRUPT, *name_byte(m, 13, 0) = 'a');
	/* Fewer inodes than the tree needs. */
	CASE(ECORRUPT, put64(m_dirent(m, NWC_SECT_INODES), 16,
			     14 * NWC_INODE_SIZE));
	CASE(ECORRUPT, put64(m_dirent(m, NWC_SECT_INODES), 16,
			     NWC_INODE_SIZE));
}

/* An image of @n empty directories "d", "e", ... under the root. */
static void dirs_image(struct mimg *m, uint32_t n)
{
	struct nwc_writer *w;
	char path[512], name[2] = "d";
	uint8_t *p;
	uint32_t d;
	size_t len;

	tpath(path, sizeof(path), "dirs.nwc");
	T_EQ(nwc_writer_create(path, 12, false, nwc_codecs_write(), &w), 0);
	for (uint32_t i = 0; i < n; i++, name[0]++)
		T_EQ(nwc_writer_add_node(w, 0, name, 1, S_IFDIR | 0755, 0, 0,
					 &d),
		     0);
	T_EQ(nwc_writer_finish(w), 0);
	p = read_file(path, &len);
	unlink(path);
	m_init_from(m, p, len);
	free(p);
	expect_open(m, 0, __LINE__);
}

/*
 * Directories detached from the root that are their own parents: every
 * range check holds locally, yet the inodes are unreachable and a walk up
 * their parents never ends.
 */
static void test_damage_cycle(void)
{
	struct mimg m;

	/* root: no children; 1 ("d"): parent 1, children [1, 2). */
	dirs_image(&m, 1);
	put32(ino_rec(&m, 0), 44, 0);
	put32(ino_rec(&m, 1), 4, 1);
	put32(ino_rec(&m, 1), 40, 1);
	put32(ino_rec(&m, 1), 44, 1);
	m_fix(&m);
	expect_open(&m, ECORRUPT, __LINE__);
	m_free(&m);

	/* root: no children; 1 ("d"): parent 1, children {1, 2}. */
	dirs_image(&m, 2);
	put32(ino_rec(&m, 0), 44, 0);
	put32(ino_rec(&m, 1), 4, 1);
	put32(ino_rec(&m, 1), 40, 1);
	put32(ino_rec(&m, 1), 44, 2);
	put32(ino_rec(&m, 2), 4, 1);
	put32(ino_rec(&m, 2), 40, 3);
	m_fix(&m);
	expect_open(&m, ECORRUPT, __LINE__);
	m_free(&m);

	/* Sanity: the root with both as children is fine. */
	dirs_image(&m, 2);
	m_free(&m);
}

static void test_damage_inodes(void)
{
	uint64_t slen = m_sect_len(&refm, NWC_SECT_STRINGS);
	static const uint32_t bad_types[] = {
		0, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK, 0170000, 0110000,
	};

	/* File types and mode bits. */
	for (size_t k = 0; k < NWC_ARRAY_SIZE(bad_types); k++) {
		CASE(ECORRUPT, put32(ino_rec(m, 2), 0, bad_types[k] | 0644));
		CASE(ECORRUPT, put32(ino_rec(m, 0), 0, bad_types[k] | 0755));
	}
	CASE(ECORRUPT, put32(ino_rec(m, 2), 0, S_IFREG | 0644 | 0x10000000));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 0, S_IFREG | 0644 | 0x200000));
	CASE(0, put32(ino_rec(m, 2), 0, S_IFREG | 07777));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 0, S_IFREG | 0644));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 0, S_IFLNK | 0777));
	CASE(ECORRUPT, put32(ino_rec(m, 3), 0, S_IFDIR | 0755));
	CASE(ECORRUPT, put32(ino_rec(m, 12), 0, S_IFREG | 0644));
	CASE(ECORRUPT, put32(ino_rec(m, 4), 0, S_IFREG | 0644));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 0, S_IFLNK | 0777));

	/* Names. */
	CASE(ECORRUPT, put32(ino_rec(m, 0), 12, 1));
	CASE(ECORRUPT, *name_byte(m, 2, 3) = '/');
	CASE(ECORRUPT, *name_byte(m, 2, 3) = '\0');
	CASE(ECORRUPT, *name_byte(m, 2, 0) = '/');
	CASE(ECORRUPT, put32(ino_rec(m, 2), 8, get32(ino_rec(m, 2), 8) + 3);
	     put32(ino_rec(m, 2), 12, 1));
	CASE(ECORRUPT, *name_byte(m, 10, 0) = '.'; *name_byte(m, 10, 1) = '.');
	CASE(ECORRUPT, *name_byte(m, 9, 0) = '.');
	CASE(ECORRUPT, put32(ino_rec(m, 2), 12, 0));
	CASE(ECORRUPT, put32(ino_rec(m, 13), 12, NWC_NAME_MAX + 1));
	CASE(ECORRUPT, put32(ino_rec(m, 13), 12, UINT32_MAX));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 8, (uint32_t)slen));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 8, (uint32_t)slen - 1));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 8, UINT32_MAX));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 8, (uint32_t)slen + 1));

	/* Times. */
	CASE(ECORRUPT, put32(ino_rec(m, 2), 24, 1000000000u));
	CASE(ECORRUPT, put32(ino_rec(m, 0), 24, UINT32_MAX));
	CASE(0, put32(ino_rec(m, 2), 24, 999999999u));
	CASE(0, put64(ino_rec(m, 2), 16, (uint64_t)INT64_MIN));

	/* Flags. */
	CASE(0, put32(ino_rec(m, 2), 28, NWC_INODE_F_SAFETENSORS));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 28, 2));
	CASE(ECORRUPT, put32(ino_rec(m, 5), 28, 0x80000001u));
	CASE(ECORRUPT, put32(ino_rec(m, 1), 28, 1));
	CASE(ECORRUPT, put32(ino_rec(m, 4), 28, 1));

	/* Directory and symlink attributes. */
	CASE(ECORRUPT, put64(ino_rec(m, 1), 32, 1));
	CASE(ECORRUPT, put64(ino_rec(m, 0), 32, 4096));
	CASE(ECORRUPT, put64(ino_rec(m, 4), 32, 4));
	CASE(ECORRUPT, put64(ino_rec(m, 4), 32, 2));
	CASE(ECORRUPT, put32(ino_rec(m, 4), 44, 4));
	CASE(ECORRUPT, put32(ino_rec(m, 4), 44, 0);
	     put64(ino_rec(m, 4), 32, 0));
	CASE(ECORRUPT, put32(ino_rec(m, 4), 44, 4097);
	     put64(ino_rec(m, 4), 32, 4097));
	CASE(ECORRUPT, put32(ino_rec(m, 4), 40, (uint32_t)slen - 2));
	CASE(ECORRUPT, put32(ino_rec(m, 4), 40, UINT32_MAX));
	CASE(ECORRUPT, put32(ino_rec(m, 11), 40, (uint32_t)slen));

	/* A file's size and extent range. */
	CASE(ECORRUPT, put64(ino_rec(m, 2), 32, xsize[2] + 1));
	CASE(ECORRUPT, put64(ino_rec(m, 2), 32, xsize[2] - 1));
	CASE(ECORRUPT, put64(ino_rec(m, 2), 32, 0));
	CASE(ECORRUPT, put64(ino_rec(m, 2), 32, UINT64_MAX));
	CASE(ECORRUPT, put64(ino_rec(m, 3), 32, 1));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 44, 2));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 44, 4));
	CASE(ECORRUPT, put32(ino_rec(m, 2), 40, 1));
	CASE(ECORRUPT, put32(ino_rec(m, 14), 40, NXE));
	CASE(ECORRUPT, put32(ino_rec(m, 14), 40, UINT32_MAX));
	CASE(ECORRUPT, put32(ino_rec(m, 14), 44, UINT32_MAX));
	CASE(ECORRUPT, put32(ino_rec(m, 3), 40, NXE + 1));
	CASE(ECORRUPT, put32(ino_rec(m, 3), 40, UINT32_MAX));
	/* An empty file may start anywhere up to the end of the table. */
	CASE(0, put32(ino_rec(m, 3), 40, NXE));
}

static void test_damage_extents(void)
{
	/* Coverage of the file. */
	CASE(ECORRUPT, put64(ext_rec(m, 1), 0, 10001));
	CASE(ECORRUPT, put64(ext_rec(m, 1), 0, 9999));
	CASE(ECORRUPT, put64(ext_rec(m, 0), 0, 1));
	CASE(ECORRUPT, put64(ext_rec(m, 2), 0, UINT64_MAX));
	CASE(ECORRUPT, put64(ext_rec(m, 0), 8, 9999));
	CASE(ECORRUPT, put64(ext_rec(m, 2), 8, 4104));
	CASE(ECORRUPT, put64(ext_rec(m, 2), 8, UINT64_MAX));
	/* An empty extent, with every other field consistent. */
	CASE(ECORRUPT, put64(ext_rec(m, 9), 8, 0); put32(ext_rec(m, 9), 20, 0);
	     put64(ino_rec(m, 9), 32, 0));
	/* Block geometry. */
	CASE(ECORRUPT, put32(ext_rec(m, 0), 20, 4));
	CASE(ECORRUPT, put32(ext_rec(m, 0), 20, 2));
	CASE(ECORRUPT, put32(ext_rec(m, 0), 20, 0));
	CASE(ECORRUPT, put32(ext_rec(m, 0), 24, 2048));
	CASE(ECORRUPT, put32(ext_rec(m, 0), 24, 0));
	CASE(ECORRUPT, put32(ext_rec(m, 0), 24, NWC_BLOCK_MAX + 4096));
	CASE(ECORRUPT, put32(ext_rec(m, 2), 24, 4098));
	CASE(ECORRUPT, put32(ext_rec(m, 11), 24, 516));
	/* 4100 bytes are not whole 8-byte elements. */
	CASE(ECORRUPT, put32(ext_rec(m, 2), 32, 8));
	/* Codecs. */
	CASE(EFEATURE, put16(ext_rec(m, 0), 28, 3));
	CASE(0, put16(ext_rec(m, 1), 28, PLANES));
	CASE(ECORRUPT, put16(ext_rec(m, 0), 28, NWC_CODEC_NWC));
	CASE(EFEATURE, put16(ext_rec(m, 11), 28, UINT16_MAX));
	CASE(ECORRUPT, put16(ext_rec(m, 6), 28, NWC_CODEC_NWC));
	CASE(ECORRUPT, put16(ext_rec(m, 6), 28, NWC_CODEC_NWC);
	     put16(ten_rec(m, 0), 36, NWC_CODEC_NWC));
	CASE(ECORRUPT, put32(ext_rec(m, 0), 32, 1));
	CASE(ECORRUPT, put32(ext_rec(m, 1), 32, 0));
	CASE(ECORRUPT, put32(ext_rec(m, 1), 32, 3));
	CASE(ECORRUPT, put32(ext_rec(m, 1), 32, 16));
	CASE(ECORRUPT, put32(ext_rec(m, 1), 32, ZF(1)));
	CASE(ECORRUPT, put32(ext_rec(m, 2), 32, ZF(4) | 0x200));
	CASE(ECORRUPT, put32(ext_rec(m, 2), 32, 0x80000004u));
	/* Same element size, other float flag: still decodable. */
	CASE(0, put32(ext_rec(m, 1), 32, 1); put32(ext_rec(m, 4), 32, ZF(2)));
	/* Blocks. */
	CASE(ECORRUPT, put32(ext_rec(m, 11), 16, NXB - 1));
	CASE(ECORRUPT, put32(ext_rec(m, 11), 16, NXB));
	CASE(ECORRUPT, put32(ext_rec(m, 11), 16, UINT32_MAX));
	CASE(ECORRUPT, put32(ext_rec(m, 0), 16, 1));
	CASE(ECORRUPT, put32(ext_rec(m, 0), 20, UINT32_MAX));
	/* Ownership: two files, or none. */
	CASE(ECORRUPT, put32(ino_rec(m, 9), 40, 10);
	     put64(ino_rec(m, 9), 32, 100));
	CASE(ECORRUPT, put32(ino_rec(m, 9), 44, 0);
	     put64(ino_rec(m, 9), 32, 0));
	CASE(ECORRUPT, put32(ino_rec(m, 10), 40, 9);
	     put32(ino_rec(m, 10), 44, 1); put64(ino_rec(m, 10), 32, 1));
	/* Reserved fields. */
	CASE(ECORRUPT, put16(ext_rec(m, 0), 30, 1));
	CASE(ECORRUPT, put16(ext_rec(m, 11), 30, 0x8000));
	CASE(ECORRUPT, put64(ext_rec(m, 0), 40, 1));
	CASE(ECORRUPT, ext_rec(m, 5)[47] = 0x80);
	/* Tensor links. */
	CASE(ECORRUPT, put32(ext_rec(m, 0), 36, 0));
	CASE(ECORRUPT, put32(ext_rec(m, 8), 36, NXT));
	CASE(ECORRUPT, put32(ext_rec(m, 8), 36, 3));
	CASE(ECORRUPT, put32(ext_rec(m, 5), 36, 2));
	CASE(ECORRUPT, put32(ext_rec(m, 6), 36, NT));
	CASE(ECORRUPT, put32(ext_rec(m, 7), 36, 0));
	CASE(ECORRUPT, swap_fields(ext_rec(m, 6) + 36, ext_rec(m, 7) + 36, 4));
}

/* Replace the BLOCKS table by a copy with one more, unused, record. */
static void add_unused_block(struct mimg *m)
{
	size_t len = (NXB + 1) * NWC_BLOCK_SIZE;
	uint8_t *tab = t_xmalloc(len);

	memcpy(tab, m_sect(m, NWC_SECT_BLOCKS), NXB * NWC_BLOCK_SIZE);
	memcpy(tab + NXB * NWC_BLOCK_SIZE, tab, NWC_BLOCK_SIZE);
	put32(m_dirent(m, NWC_SECT_BLOCKS), 0, UNKNOWN_OPT);
	m_add_section(m, NWC_SECT_BLOCKS, 1, tab, len);
	free(tab);
}

static void test_damage_blocks(void)
{
	uint64_t data_end = NWC_DATA_ALIGN + get64(ref_bytes, NWC_SB_DATA_LEN);

	CASE(ECORRUPT, put64(blk_rec(m, 0), 0, 0));
	CASE(ECORRUPT, put64(blk_rec(m, 0), 0, NWC_DATA_ALIGN - 1));
	CASE(ECORRUPT, put64(blk_rec(m, 3), 0, UINT64_MAX));
	CASE(ECORRUPT, put64(blk_rec(m, 3), 0, UINT64_MAX - 8));
	CASE(ECORRUPT, put64(blk_rec(m, 3), 0,
			     data_end - get32(blk_rec(m, 3), 8) + 1));
	CASE(ECORRUPT, put64(blk_rec(m, 3), 0, data_end));
	CASE(ECORRUPT, put64(blk_rec(m, 3), 0, m_sect_off(m, NWC_SECT_BLOCKS)));
	CASE(ECORRUPT, put32(blk_rec(m, NXB - 1), 8,
			     get32(blk_rec(m, NXB - 1), 8) + 1));
	CASE(ECORRUPT, put32(blk_rec(m, 0), 8, UINT32_MAX));
	/* Raw lengths must follow the extent geometry. */
	CASE(ECORRUPT, put32(blk_rec(m, 0), 12, 4095));
	CASE(ECORRUPT, put32(blk_rec(m, 2), 12, 4096));
	CASE(ECORRUPT, put32(blk_rec(m, 2), 12, 1807));
	CASE(ECORRUPT, put32(blk_rec(m, 0), 12, 0));
	CASE(ECORRUPT, put32(blk_rec(m, 0), 12, NWC_BLOCK_MAX + 1));
	CASE(ECORRUPT, put32(blk_rec(m, 0), 12, UINT32_MAX));
	/* A block no extent uses is allowed (the table is just longer). */
	CASE(0, add_unused_block(m));
}

static void test_damage_tensors(void)
{
	uint64_t plen = m_sect_len(&refm, NWC_SECT_PARAMS);
	uint32_t t1_shape = get32(ten_rec(&refm, 1), 32);

	/* dtype and rank. */
	CASE(ECORRUPT, put16(ten_rec(m, 0), 12, 0));
	CASE(ECORRUPT, put16(ten_rec(m, 0), 12, NWC_DTYPE_COUNT));
	CASE(ECORRUPT, put16(ten_rec(m, 0), 12, UINT16_MAX));
	CASE(ECORRUPT, put16(ten_rec(m, 1), 12, NWC_DTYPE_F64));
	CASE(ECORRUPT, put16(ten_rec(m, 1), 12, NWC_DTYPE_BF16));
	CASE(0, put16(ten_rec(m, 1), 12, NWC_DTYPE_I32));
	CASE(ECORRUPT, put16(ten_rec(m, 1), 14, NWC_MAX_DIMS + 1));
	CASE(ECORRUPT, put16(ten_rec(m, 1), 14, UINT16_MAX));
	CASE(ECORRUPT, put16(ten_rec(m, 1), 14, 2));
	CASE(ECORRUPT, put16(ten_rec(m, 2), 14, 1));
	/* Shapes. */
	CASE(ECORRUPT, put64(m_sect(m, NWC_SECT_PARAMS) + t1_shape, 16, 6));
	CASE(ECORRUPT, put64(m_sect(m, NWC_SECT_PARAMS) + t1_shape, 0, 0));
	CASE(ECORRUPT, put64(ten_rec(m, 1), 24, 244));
	/* 4 * 3 * 4 * (5 + 2^62) wraps to 240 modulo 2^64. */
	CASE(ECORRUPT, put64(m_sect(m, NWC_SECT_PARAMS) + t1_shape, 16,
			     5 + (1ull << 62)));
	CASE(ECORRUPT, put64(m_sect(m, NWC_SECT_PARAMS) + t1_shape, 0,
			     UINT64_MAX));
	CASE(ECORRUPT, put32(ten_rec(m, 1), 32, t1_shape + 4));
	CASE(ECORRUPT, put32(ten_rec(m, 1), 32, (uint32_t)plen));
	CASE(ECORRUPT, put32(ten_rec(m, 1), 32, (uint32_t)plen - 16));
	CASE(ECORRUPT, put32(ten_rec(m, 1), 32, UINT32_MAX - 7));
	/* Data ranges. */
	CASE(ECORRUPT, put64(ten_rec(m, 0), 16, xsize[5]));
	CASE(ECORRUPT, put64(ten_rec(m, 2), 16, UINT64_MAX - 1));
	CASE(ECORRUPT, put64(ten_rec(m, 3), 16, xsize[5] + 1));
	CASE(ECORRUPT, put64(ten_rec(m, 0), 16, 65));
	/* Order: (inode, data offset). */
	CASE(ECORRUPT, swap_fields(ten_rec(m, 0), ten_rec(m, 1),
				   NWC_TENSOR_SIZE);
	     put32(ext_rec(m, 6), 36, 1); put32(ext_rec(m, 7), 36, 0));
	CASE(ECORRUPT, swap_fields(ten_rec(m, 2), ten_rec(m, 3),
				   NWC_TENSOR_SIZE);
	     put32(ext_rec(m, 8), 36, 3));
	/* Owner and extent link. */
	CASE(ECORRUPT, put32(ten_rec(m, 0), 0, 1));
	CASE(ECORRUPT, put32(ten_rec(m, 0), 0, 4));
	CASE(ECORRUPT, put32(ten_rec(m, 0), 0, 2));
	CASE(ECORRUPT, put32(ten_rec(m, 3), 0, NX));
	CASE(ECORRUPT, put32(ten_rec(m, 3), 0, UINT32_MAX));
	CASE(ECORRUPT, put32(ext_rec(m, 8), 36, NT));
	CASE(ECORRUPT, put16(ten_rec(m, 0), 36, RAW));
	CASE(ECORRUPT, put16(ten_rec(m, 2), 36, ZSTD));
	/* Names. */
	CASE(ECORRUPT, put32(ten_rec(m, 0), 8, 0));
	CASE(ECORRUPT, put32(ten_rec(m, 0), 4, UINT32_MAX));
	CASE(ECORRUPT, put32(ten_rec(m, 0), 8, UINT32_MAX));
	/* Reserved and side-data fields of this version. */
	CASE(ECORRUPT, put16(ten_rec(m, 0), 38, 1));
	CASE(ECORRUPT, put64(ten_rec(m, 0), 40, NWC_DATA_ALIGN));
	CASE(ECORRUPT, put32(ten_rec(m, 0), 48, 1));
	CASE(ECORRUPT, put32(ten_rec(m, 0), 52, 1));
	CASE(ECORRUPT, put64(ten_rec(m, 0), 56, 1));
	/* An empty tensor of another dtype is still empty. */
	CASE(0, put16(ten_rec(m, 3), 12, NWC_DTYPE_F64));
}

static uint32_t info_extents(const struct nwc_image *img)
{
	struct nwc_image_info info;

	nwc_image_get_info(img, &info);
	return info.n_extents;
}

/* The expected bytes of extent @k of an image, from its first byte. */
typedef const uint8_t *ext_data_fn(uint32_t k, const struct nwc_extent *e);

/*
 * Read every block of @img twice, then close it: those in @bad give @want
 * (or, with @want 1, either 0 or -NWC_ECORRUPT) and their checksum check
 * @want_check; every other block decodes to the bytes @data gives.
 */
static void check_blocks(struct nwc_image *img, const uint32_t *bad,
			 size_t nbad, int want, int want_check,
			 ext_data_fn *data)
{
	struct nwc_image_info info;
	struct nwc_dctx *dctx;

	nwc_image_get_info(img, &info);
	T_EQ(nwc_dctx_create(&dctx), 0);
	for (uint32_t k = 0; k < info.n_extents; k++) {
		const struct nwc_extent *e = nwc_image_extent(img, k);
		const uint8_t *want_data = data(k, e);

		for (uint32_t j = 0; j < e->nblocks; j++) {
			size_t n = nwc_extent_block_len(e, j);
			uint32_t b = e->first_block + j;
			uint8_t *buf = t_xmalloc(n);
			bool damaged = false;

			for (size_t i = 0; i < nbad; i++)
				damaged |= bad[i] == b;
			for (int rep = 0; rep < 2; rep++) {
				int got, chk;

				t_quiet(true);
				got = nwc_image_load_block(img, dctx, k, j, buf,
							   n);
				chk = nwc_image_check_block(img, dctx, b);
				t_quiet(false);
				if (damaged && want == 1)
					T_CHECK(got == 0 || got == ECORRUPT);
				else
					T_EQ(got, damaged ? want : 0);
				T_EQ(chk, damaged ? want_check : 0);
				if (!damaged)
					T_MEMEQ(buf, want_data +
						(uint64_t)j * e->block_len, n);
			}
			free(buf);
		}
	}
	nwc_dctx_free(dctx);
	nwc_image_close(img);
}

static const uint8_t *ref_ext_data(uint32_t k, const struct nwc_extent *e)
{
	return xdata[xexts[k].ino] + e->file_off;
}

/* Flip a payload byte of @blocks; only those blocks fail, each time. */
static void check_damaged_blocks(const struct mimg *m, const uint32_t *bad,
				 size_t nbad, int want, int want_check)
{
	struct nwc_image *img;
	int fd;

	fd = memfd_create("nwc-test", MFD_CLOEXEC);
	if (fd < 0 || nwc_pwrite_full(fd, m->p, m->len, 0))
		exit(99);
	T_EQ(nwc_image_open_fd(fd, "payload", nwc_codecs_read(), &img), 0);
	T_EQ(info_extents(img), NXE);
	check_blocks(img, bad, nbad, want, want_check, ref_ext_data);
}

static void test_damage_payload(void)
{
	static const uint32_t bad[] = { 1, 4, NXB - 1 };
	struct mimg m;
	uint32_t b;
	int ret;

	/* Stored bytes: only a checksum can tell. */
	m_init(&m);
	for (size_t i = 0; i < NWC_ARRAY_SIZE(bad); i++)
		blk_data(&m, bad[i])[get32(blk_rec(&m, bad[i]), 8) / 2] ^= 4;
	check_damaged_blocks(&m, bad, NWC_ARRAY_SIZE(bad), ECHECKSUM,
			     ECHECKSUM);
	m_free(&m);

	/* The last byte and the first byte of the data region. */
	m_init(&m);
	m.p[NWC_DATA_ALIGN] ^= 1;
	b = NXB - 1;
	blk_data(&m, b)[get32(blk_rec(&m, b), 8) - 1] ^= 0x80;
	check_damaged_blocks(&m, (uint32_t[]){ 0, NXB - 1 }, 2, ECHECKSUM,
			     ECHECKSUM);
	m_free(&m);

	/* The checksum in the table itself, and a moved payload. */
	m_init(&m);
	put64(blk_rec(&m, 5), 16, get64(blk_rec(&m, 5), 16) ^ 1);
	put64(blk_rec(&m, 6), 0, get64(blk_rec(&m, 7), 0));
	m_fix(&m);
	check_damaged_blocks(&m, (uint32_t[]){ 5, 6 }, 2, ECHECKSUM,
			     ECHECKSUM);
	m_free(&m);

	/*
	 * A payload that matches its checksum but does not decode: block 3
	 * (zstd, one plane) claims a plane longer than the payload.
	 */
	m_init(&m);
	b = xfirst_block[1];
	put32(blk_data(&m, b), 0, 0x7fffffffu);
	put64(blk_rec(&m, b), 16,
	      nwc_hash64(blk_data(&m, b), get32(blk_rec(&m, b), 8)));
	m_fix(&m);
	check_damaged_blocks(&m, &b, 1, ECORRUPT, 0);
	m_free(&m);

	/*
	 * A raw block whose stored length differs from its raw length: either
	 * open rejects it, or reading the block does.
	 */
	m_init(&m);
	b = xfirst_block[9];
	put32(blk_rec(&m, b), 8, 0);
	put64(blk_rec(&m, b), 16, nwc_hash64("", 0));
	m_fix(&m);
	ret = m_open(&m, true);
	if (ret)
		T_EQ(ret, ECORRUPT);
	else
		check_damaged_blocks(&m, &b, 1, ECORRUPT, 0);
	m_free(&m);
}

/* The image file shrinks under an open image: reads fail cleanly. */
static void test_damage_shrink_after_open(void)
{
	struct nwc_image *img;
	struct nwc_dctx *dctx;
	char path[512];
	uint8_t buf[4096];

	tpath(path, sizeof(path), "shrink.nwc");
	write_file(path, ref_bytes, ref_len);
	T_EQ(nwc_image_open(path, nwc_codecs_read(), &img), 0);
	T_EQ(nwc_dctx_create(&dctx), 0);
	T_EQ(truncate(path, NWC_DATA_ALIGN), 0);
	T_EQ_QUIET(nwc_image_load_block(img, dctx, 0, 0, buf, sizeof(buf)),
		   ECORRUPT);
	nwc_dctx_free(dctx);
	nwc_image_close(img);
	unlink(path);
}


/* ---- lossy (NWC) tensors ---- */

/*
 * The NWC image: "model.safetensors" holds a 64-byte raw header, then w.a,
 * bias (F32, zstd), w.b and w.c; the w.* are NWC tensors coded with two
 * embedded models.  Final tables: tensors w.a 0, bias 1, w.b 2, w.c 3;
 * extents: header 0, then one per tensor in data order (1 to 4); blocks:
 * header 0, w.a 1-3, bias 4, w.b 5, w.c 6-8.
 */
#define NHDR 64u
#define NBIAS 24u		/* F32 elements */
#define NM 2u			/* models */
#define NNB 9u			/* blocks */
#define NWC_T NWC_CODEC_NWC

struct ntensor {
	const char *name;
	unsigned dtype;
	uint32_t m, n;
	uint32_t band_rows;	/* asked for (0: one band) */
	uint32_t rows;		/* band rows in the side record */
	enum nwc_quant quant;
	bool scale_f16;
	uint16_t model;
	uint32_t index;		/* final tensor index */
	uint32_t ext;		/* final extent index */
	uint32_t nbands;
};

static const struct ntensor ntens[] = {
	{ "w.a", NWC_DTYPE_BF16, 40, 24, 16, 16, NWC_QUANT_TCQ, true, 0, 0, 1,
	  3 },
	{ "w.b", NWC_DTYPE_F32, 20, 8, 0, 32, NWC_QUANT_ROUND, false, 1, 2, 3,
	  1 },
	{ "w.c", NWC_DTYPE_F16, 33, 5, 16, 16, NWC_QUANT_TCQ, true, 0, 3, 4,
	  3 },
};
#define NNT NWC_ARRAY_SIZE(ntens)

static struct nwc_model *nmodel[NM];
static uint8_t *nblob[NM];		/* the models' .nwcm bytes */
static size_t nblob_len[NM];
static struct nwc_tenc *nenc[NNT];
static uint64_t ndata_off[NNT];		/* tensor data in the file */
static uint64_t nbias_off;
static uint8_t *nfile;			/* the served file, as decoded */
static uint64_t nfile_len;
static uint8_t *nwc_bytes;		/* the NWC reference image */
static size_t nwc_len;

/* A small untrained model, finalized (as in test_nwcmodel.c). */
static struct nwc_model *small_model(unsigned nq, uint64_t seed)
{
	struct nwc_model *m;

	if (nwc_model_create(8, 1, nq, &m))
		return NULL;
	m->lambda = 100;
	nwc_net_init(m->enc, 8, 1, seed);
	nwc_net_init(m->dec, 8, 1, seed + 1);
	nwc_emb_init(m->emb, nq, 8);
	for (unsigned i = 0; i < nq * 8; i++) {
		m->emb[i] = 1.0f + 0.05f * (float)(i % 7);
		m->emb_dec[i] = 1.0f - 0.03f * (float)(i % 5);
	}
	nwc_prior_init(m->prior, m->quantiles, m->c, seed + 2);
	if (nwc_model_finalize(m)) {
		nwc_model_free(m);
		return NULL;
	}
	return m;
}

/* Code tensor @k of ntens[] with @model (index @mi in the image). */
static int encode_ntensor(uint32_t k, const struct nwc_model *model,
			  uint16_t mi, struct nwc_tenc **out)
{
	const struct ntensor *x = &ntens[k];
	size_t mn = (size_t)x->m * x->n;
	float *w = t_xmalloc(mn * sizeof(*w));
	uint8_t *level = t_xmalloc(x->n);
	struct nwc_tenc_opts o;
	uint64_t s = 5000 + k;
	int ret;

	for (size_t i = 0; i < mn; i++)
		w[i] = (float)((int)(t_rand(&s) % 2001) - 1000) / 1000.0f *
		       (float)(1 + (i / x->n) % 3);
	for (uint32_t j = 0; j < x->n; j++)
		level[j] = (uint8_t)(j % model->nq);
	nwc_tenc_opts_init(&o);
	/* w.a: one outlier, stored exactly (NWC_TSIDE_EXACT); with so few
	 * columns, more than 16 deviations need a weight this far out */
	o.exact_sd = 16;
	if (k == 0)
		w[17 * x->n + 2] = 1024.0f;
	o.quant = x->quant;
	o.scale_f16 = x->scale_f16;
	o.band_rows = x->band_rows;
	o.dtype = x->dtype;
	ret = nwc_tenc_encode(model, mi, w, x->m, x->n, level, &o, out);
	free(level);
	free(w);
	return ret;
}

/* Models, coded tensors and the expected file. */
static int setup_nwc(void)
{
	uint64_t pos = NHDR;
	int ret;

	for (uint32_t i = 0; i < NM; i++) {
		nmodel[i] = small_model(NWC_NET_Q, 100 + 10 * i);
		if (!nmodel[i])
			return -ENOMEM;
		ret = nwc_model_to_buf(nmodel[i], &nblob[i], &nblob_len[i]);
		if (ret)
			return ret;
	}
	for (uint32_t k = 0; k < NNT; k++) {
		ndata_off[k] = pos;
		pos += (uint64_t)ntens[k].m * ntens[k].n *
		       nwc_dtype_size(ntens[k].dtype);
		if (k == 0) {
			nbias_off = pos;
			pos += NBIAS * 4;
		}
	}
	nfile_len = pos;
	nfile = t_xmalloc(nfile_len);
	gen_bytes(nfile, nfile_len, 31);
	for (uint32_t k = 0; k < NNT; k++) {
		ret = encode_ntensor(k, nmodel[ntens[k].model],
				     ntens[k].model, &nenc[k]);
		if (ret)
			return ret;
		if (nenc[k]->nexact != (k == 0))
			return -EPROTO;	/* w.a's outlier was not found */
		ret = nwc_from_f32(ntens[k].dtype, nenc[k]->what,
				   (size_t)ntens[k].m * ntens[k].n,
				   nfile + ndata_off[k]);
		if (ret)
			return ret;
	}
	return 0;
}

static void free_nwc(void)
{
	for (uint32_t i = 0; i < NM; i++) {
		nwc_model_free(nmodel[i]);
		free(nblob[i]);
	}
	for (uint32_t k = 0; k < NNT; k++)
		nwc_tenc_free(nenc[k]);
	free(nfile);
	free(nwc_bytes);
}

static int add_ntensor(struct nwc_writer *w, uint32_t id, uint32_t k,
		       uint32_t *idx)
{
	const struct ntensor *x = &ntens[k];
	uint64_t shape[2] = { x->m, x->n };
	struct nwc_wtensor t = {
		.name = x->name,
		.name_len = strlen(x->name),
		.dtype = x->dtype,
		.ndim = 2,
		.shape = shape,
		.data_off = ndata_off[k],
		.data_len = (uint64_t)x->m * x->n * nwc_dtype_size(x->dtype),
	};
	int ret;

	ret = nwc_writer_add_tensor(w, id, &t, idx);
	if (!ret)
		ret = nwc_writer_set_tensor_side(w, *idx, NWC_CODEC_NWC, nenc[k]->side,
						 nenc[k]->side_len);
	return ret;
}

/* Write the NWC reference image to @path. */
static int build_nwc(const char *path, bool force)
{
	static const uint64_t bshape[1] = { NBIAS };
	struct nwc_wtensor bias = {
		.name = "bias", .name_len = 4, .dtype = NWC_DTYPE_F32,
		.ndim = 1, .shape = bshape, .data_off = 0,
		.data_len = NBIAS * 4,
	};
	uint32_t id, idx, ti[NNT], tb, ext;
	struct nwc_writer *w;
	struct nwc_cctx *cc;
	int ret;

	bias.data_off = nbias_off;
	ret = nwc_cctx_create(3, &cc);
	if (ret)
		return ret;
	ret = nwc_writer_create(path, 12, force, nwc_codecs_write(), &w);
	if (ret)
		goto out_cctx;
	ret = nwc_writer_add_node(w, 0, "model.safetensors", 17,
				  S_IFREG | 0644, MTIME0, 0, &id);
	if (!ret)
		ret = nwc_writer_set_flags(w, id, NWC_INODE_F_SAFETENSORS);
	for (uint32_t i = 0; !ret && i < NM; i++) {
		ret = nwc_writer_add_codec_item(w, NWC_CODEC_NWC, nblob[i], nblob_len[i], &idx);
		if (!ret && idx != i)
			ret = -EINVAL;
	}
	/* The lossy tensors first: the table is sorted by data offset. */
	for (uint32_t k = NNT; !ret && k-- > 0;)
		ret = add_ntensor(w, id, k, &ti[k]);
	if (!ret)
		ret = nwc_writer_add_tensor(w, id, &bias, &tb);
	if (!ret)
		ret = write_extent(w, cc, id,
				   &(struct nwc_wextent){ NHDR, 4096, RAW, 0,
							  NT },
				   nfile);
	for (uint32_t k = 0; !ret && k < NNT; k++) {
		ret = nwc_writer_add_tensor_extent(w, id, ti[k], nenc[k]->nbands,
						nenc[k]->band,
						nenc[k]->band_len, &ext);
		if (!ret && k == 0)
			ret = write_extent(w, cc, id,
					   &(struct nwc_wextent){ NBIAS * 4,
								  4096, ZSTD,
								  ZF(4), tb },
					   nfile + nbias_off);
	}
	if (ret)
		nwc_writer_abort(w);
	else
		ret = nwc_writer_finish(w);
out_cctx:
	nwc_cctx_free(cc);
	return ret;
}

static struct nwc_image *n_open_img(const struct mimg *m)
{
	struct nwc_image *img = NULL;
	int fd = memfd_create("nwc-test", MFD_CLOEXEC);

	if (fd < 0 || nwc_pwrite_full(fd, m->p, m->len, 0))
		exit(99);
	T_EQ(nwc_image_open_fd(fd, "nwc", nwc_codecs_read(), &img), 0);
	if (!img)
		exit(1);
	return img;
}

static uint32_t n_esize(uint32_t k)
{
	return nwc_dtype_size(ntens[k].dtype);
}

static void test_nwc_roundtrip(void)
{
	struct mimg nm = { nwc_bytes, nwc_len };
	struct nwc_image *img = n_open_img(&nm);
	struct nwc_dctx *dctx, *dctx2;
	struct nwc_image_info info;
	const struct nwc_tensor *t;

	nwc_image_get_info(img, &info);
	T_EQ(info.incompat, NWC_INCOMPAT_NWC);
	T_EQ(nwc_nwc_n_models(nwc_image_codec_state(img, NWC_CODEC_NWC)), NM);
	T_EQ(info.n_tensors, NNT + 1);
	T_EQ(info.n_extents, NNT + 2);
	T_EQ(info.n_blocks, NNB);
	T_EQ(info.total_size, nfile_len);
	for (uint32_t i = 0; i < NM; i++) {
		const struct nwc_nwc_model *im = nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), i);

		T_EQ(im->len, nblob_len[i]);
		T_CHECK(im->off + im->len <= nwc_len &&
			!memcmp(nwc_bytes + im->off, nblob[i], im->len));
		T_EQ(im->xxh, nwc_get_le64(nblob[i] + nblob_len[i] - 8));
		T_EQ(im->model->nparams, nmodel[i]->nparams);
		T_MEMEQ(im->model->params, nmodel[i]->params,
			nmodel[i]->nparams * sizeof(float));
	}
	/* Models 8-byte aligned in a section that follows the tables. */
	T_EQ(nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), 0)->off % 8, 0);
	T_EQ(nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), 1)->off,
	     (nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), 0)->off + nblob_len[0] + 7) & ~7ull);

	T_EQ(nwc_dctx_create(&dctx), 0);
	T_EQ(nwc_dctx_create(&dctx2), 0);
	for (uint32_t k = 0; k < NNT; k++) {
		const struct ntensor *x = &ntens[k];
		const struct nwc_extent *e;

		t = nwc_image_tensor(img, x->index);
		T_CHECK(t->name_len == strlen(x->name) &&
			!memcmp(t->name, x->name, t->name_len));
		T_EQ(t->codec, NWC_T);
		T_EQ(t->data_off, ndata_off[k]);
		T_EQ(t->side_len, nenc[k]->side_len);
		T_CHECK(t->side_off >= NWC_DATA_ALIGN &&
			t->side_off + t->side_len <= nwc_len &&
			!memcmp(nwc_bytes + t->side_off, nenc[k]->side,
				t->side_len));
		T_CHECK(t->side != NULL);
		if (!t->side)
			continue;
		T_EQ(NWC_SIDE(t)->m, x->m);
		T_EQ(NWC_SIDE(t)->n, x->n);
		T_EQ(NWC_SIDE(t)->band_rows, x->rows);
		T_EQ(NWC_SIDE(t)->model, x->model);
		T_EQ(NWC_SIDE(t)->quant, x->quant);
		T_EQ(t->extent, x->ext);
		e = nwc_image_extent(img, t->extent);
		T_EQ(e->codec, NWC_T);
		T_EQ(e->codec_arg, 0);
		T_EQ(e->tensor, x->index);
		T_EQ(e->file_off, ndata_off[k]);
		T_EQ(e->block_len, x->rows * x->n * n_esize(k));
		T_EQ(e->nblocks, x->nbands);
		T_EQ(nenc[k]->nbands, x->nbands);
		/* Bands in reverse order, on a second context: independent. */
		for (uint32_t jj = e->nblocks; jj-- > 0;) {
			uint32_t j = k == 1 ? e->nblocks - 1 - jj : jj;
			const struct nwc_block *b =
				nwc_image_block(img, e->first_block + j);
			uint32_t rows = NWC_MIN(x->rows, x->m - j * x->rows);
			size_t n = nwc_extent_block_len(e, j);
			uint8_t *buf = t_xmalloc(n + 1);

			T_EQ(n, (size_t)rows * x->n * n_esize(k));
			T_EQ(b->raw_len, n);
			T_EQ(b->stored_len, nenc[k]->band_len[j]);
			T_MEMEQ(nwc_bytes + b->off, nenc[k]->band[j],
				b->stored_len);
			memset(buf, 0xa5, n);
			T_EQ(nwc_image_load_block(img, k % 2 ? dctx : dctx2,
						  x->ext, j, buf, n), 0);
			T_MEMEQ(buf, nfile + e->file_off +
					     (uint64_t)j * e->block_len, n);
			T_EQ(nwc_image_check_block(img, dctx,
						   e->first_block + j), 0);
			T_EQ(nwc_image_load_block(img, dctx, x->ext, j, buf,
						  n + 1), -EINVAL);
			T_EQ(nwc_image_load_block(img, dctx, x->ext, j, buf,
						  n - 1), -EINVAL);
			free(buf);
		}
		T_EQ(nwc_image_load_block(img, dctx, x->ext, e->nblocks, NULL,
					  1), -EINVAL);
		T_EQ(nwc_image_extent_stored(img, x->ext),
		     nenc[k]->coded_bytes - nenc[k]->side_len);
	}
	/* The lossless tensor has no side data. */
	t = nwc_image_tensor(img, 1);
	T_EQ(t->codec, ZSTD);
	T_CHECK(!t->side);
	T_EQ(t->side_len, 0);
	T_EQ(t->side_off, 0);
	/* The whole file, block by block. */
	for (uint32_t x = 0; x < info.n_extents; x++) {
		const struct nwc_extent *e = nwc_image_extent(img, x);

		for (uint32_t j = 0; j < e->nblocks; j++) {
			size_t n = nwc_extent_block_len(e, j);
			uint8_t *buf = t_xmalloc(n);

			T_EQ(nwc_image_load_block(img, dctx, x, j, buf, n), 0);
			T_MEMEQ(buf, nfile + e->file_off +
					     (uint64_t)j * e->block_len, n);
			free(buf);
		}
	}
	nwc_dctx_free(dctx2);
	nwc_dctx_free(dctx);
	nwc_image_close(img);
}

/* A writer with file "f" and NWC tensor w.a (ntens[0]) at offset 0. */
static struct nwc_writer *n_writer(const char *path, uint32_t *f,
				   uint32_t *t, unsigned dtype, uint64_t m)
{
	uint64_t shape[2] = { m, ntens[0].n };
	struct nwc_wtensor wt = {
		.name = "w", .name_len = 1, .dtype = dtype, .ndim = 2,
		.shape = shape, .data_off = 0,
		.data_len = m * ntens[0].n * nwc_dtype_size(dtype),
	};
	struct nwc_writer *w = NULL;

	T_EQ(nwc_writer_create(path, 12, true, nwc_codecs_write(), &w), 0);
	if (!w)
		exit(1);
	T_EQ(nwc_writer_add_node(w, 0, "f", 1, S_IFREG | 0644, 0, 0, f), 0);
	T_EQ(nwc_writer_add_tensor(w, *f, &wt, t), 0);
	return w;
}

#define WA_LEN (40u * 24 * 2)	/* bytes of w.a */

static void test_nwc_writer(void)
{
	const struct nwc_tenc *a = nenc[0];
	uint32_t band_len = 16 * ntens[0].n * 2;
	struct nwc_model *q2 = small_model(2, 77);
	uint8_t *q2blob = NULL, junk[64] = { 0 };
	struct nwc_writer *w;
	uint32_t f, t, x, idx;
	char path[512];
	size_t q2len = 0, len;
	uint8_t *p;

	tpath(path, sizeof(path), "nwcw.nwc");
	T_CHECK(q2 && !nwc_model_to_buf(q2, &q2blob, &q2len));

	w = n_writer(path, &f, &t, NWC_DTYPE_BF16, ntens[0].m);
	/* Models must parse. */
	t_quiet(true);
	T_CHECK(nwc_writer_add_codec_item(w, NWC_CODEC_NWC, junk, sizeof(junk), &idx) < 0);
	T_CHECK(nwc_writer_add_codec_item(w, NWC_CODEC_NWC, nblob[0], nblob_len[0] - 1, &idx) < 0);
	t_quiet(false);
	/* No side data yet. */
	T_EQ(nwc_writer_add_tensor_extent(w, f, t, a->nbands, a->band,
				       a->band_len, &x), -EINVAL);
	T_EQ_QUIET(nwc_writer_add_extent(w, f,
					 &(struct nwc_wextent){ WA_LEN,
								band_len,
								NWC_T, 0, t },
					 &x), -EINVAL);
	/* Side records must parse, once per tensor. */
	T_EQ_QUIET(nwc_writer_set_tensor_side(w, t, NWC_CODEC_NWC, junk, sizeof(junk)),
		   -EINVAL);
	T_EQ(nwc_writer_set_tensor_side(w, t, NWC_CODEC_NWC, a->side, 0), -EINVAL);
	T_EQ(nwc_writer_set_tensor_side(w, t + 1, NWC_CODEC_NWC, a->side, a->side_len),
	     -EINVAL);
	T_EQ(nwc_writer_set_tensor_side(w, t, NWC_CODEC_NWC, a->side, a->side_len), 0);
	T_EQ(nwc_writer_set_tensor_side(w, t, NWC_CODEC_NWC, a->side, a->side_len), -EINVAL);
	/* Bands and geometry must be those of the side record. */
	T_EQ_QUIET(nwc_writer_add_tensor_extent(w, f, t, a->nbands - 1,
					     a->band, a->band_len, &x),
		   -EINVAL);
	T_EQ_QUIET(nwc_writer_add_extent(w, f,
					 &(struct nwc_wextent){ WA_LEN,
								band_len * 2,
								NWC_T, 0, t },
					 &x), -EINVAL);
	T_EQ_QUIET(nwc_writer_add_extent(w, f,
					 &(struct nwc_wextent){ WA_LEN,
								band_len,
								NWC_T, 1, t },
					 &x), -EINVAL);
	T_EQ(nwc_writer_add_extent(w, f,
				   &(struct nwc_wextent){ WA_LEN,
							  band_len, NWC_T, 0,
							  NT },
				   &x), -EINVAL);
	/* The long way round works too; raw lengths follow the bands. */
	T_EQ(nwc_writer_add_extent(w, f,
				   &(struct nwc_wextent){ WA_LEN,
							  band_len, NWC_T, 0,
							  t },
				   &x), 0);
	T_EQ(nwc_writer_add_block(w, x, a->band[0], a->band_len[0],
				  band_len + 2), -EINVAL);
	for (uint32_t b = 0; b < a->nbands; b++)
		T_EQ(nwc_writer_add_block(w, x, a->band[b], a->band_len[b],
					  NWC_MIN(band_len,
						  WA_LEN - b * band_len)),
		     0);
	/* No model 0 in the image. */
	T_EQ_QUIET(nwc_writer_finish(w), -EINVAL);
	T_EQ(tdir_entries(), 1);

	/* Model 0 with fewer levels than the side record uses. */
	w = n_writer(path, &f, &t, NWC_DTYPE_BF16, ntens[0].m);
	T_EQ(nwc_writer_add_codec_item(w, NWC_CODEC_NWC, q2blob, q2len, &idx), 0);
	T_EQ(idx, 0);
	T_EQ(nwc_writer_set_tensor_side(w, t, NWC_CODEC_NWC, a->side, a->side_len), 0);
	T_EQ(nwc_writer_add_tensor_extent(w, f, t, a->nbands, a->band,
				       a->band_len, &x), 0);
	T_EQ_QUIET(nwc_writer_finish(w), -EINVAL);

	/* dtype, shape, and side data on a lossless tensor. */
	w = n_writer(path, &f, &t, NWC_DTYPE_I16, ntens[0].m);
	T_EQ(nwc_writer_set_tensor_side(w, t, NWC_CODEC_NWC, a->side, a->side_len), 0);
	T_EQ_QUIET(nwc_writer_add_tensor_extent(w, f, t, a->nbands, a->band,
					     a->band_len, &x), -EINVAL);
	nwc_writer_abort(w);
	w = n_writer(path, &f, &t, NWC_DTYPE_BF16, ntens[0].m + 1);
	T_EQ(nwc_writer_set_tensor_side(w, t, NWC_CODEC_NWC, a->side, a->side_len), 0);
	T_EQ_QUIET(nwc_writer_add_tensor_extent(w, f, t, a->nbands, a->band,
					     a->band_len, &x), -EINVAL);
	nwc_writer_abort(w);
	w = n_writer(path, &f, &t, NWC_DTYPE_BF16, ntens[0].m);
	T_EQ(nwc_writer_add_codec_item(w, NWC_CODEC_NWC, nblob[0], nblob_len[0], &idx), 0);
	T_EQ(nwc_writer_set_tensor_side(w, t, NWC_CODEC_NWC, a->side, a->side_len), 0);
	T_EQ(nwc_writer_add_extent(w, f,
				   &(struct nwc_wextent){ WA_LEN, 4096,
							  RAW, 0, t },
				   &x), 0);
	T_EQ(nwc_writer_add_block(w, x, nfile, WA_LEN, WA_LEN), 0);
	T_EQ_QUIET(nwc_writer_finish(w), -EINVAL);
	T_EQ(tdir_entries(), 1);

	/* A model no tensor uses: the image is still an NWC image. */
	w = n_writer(path, &f, &t, NWC_DTYPE_BF16, ntens[0].m);
	T_EQ(nwc_writer_add_codec_item(w, NWC_CODEC_NWC, q2blob, q2len, &idx), 0);
	T_EQ(nwc_writer_add_extent(w, f,
				   &(struct nwc_wextent){ WA_LEN, 4096,
							  RAW, 0, t },
				   &x), 0);
	T_EQ(nwc_writer_add_block(w, x, nfile, WA_LEN, WA_LEN), 0);
	T_EQ(nwc_writer_finish(w), 0);
	p = read_file(path, &len);
	{
		struct mimg mm = { p, len };
		struct nwc_image *img = n_open_img(&mm);
		struct nwc_image_info info;

		nwc_image_get_info(img, &info);
		T_EQ(info.incompat, NWC_INCOMPAT_NWC);
		T_EQ(nwc_nwc_n_models(nwc_image_codec_state(img, NWC_CODEC_NWC)), 1);
		T_EQ(nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), 0)->model->nq, 2);
		nwc_image_close(img);
	}
	free(p);
	unlink(path);

	/* Deterministic: the same calls give the same bytes. */
	T_EQ(build_nwc(path, false), 0);
	p = read_file(path, &len);
	T_CHECK(len == nwc_len && !memcmp(p, nwc_bytes, len));
	free(p);
	unlink(path);
	T_EQ(tdir_entries(), 1);
	free(q2blob);
	nwc_model_free(q2);
}

/* ---- NWC damage ---- */

static struct mimg nwcm;	/* the NWC reference image, read only */

/* Side record of tensor @i (as the table says). */
static uint8_t *side_of(struct mimg *m, uint32_t i)
{
	return m->p + get64(ten_rec(m, i), 40);
}

/* Recompute side_xxh of every tensor with side data inside the file. */
static void n_fix_sides(struct mimg *m)
{
	uint64_t n = m_sect_len(m, NWC_SECT_TENSORS) / NWC_TENSOR_SIZE;

	for (uint32_t i = 0; i < n; i++) {
		uint8_t *r = ten_rec(m, i);
		uint64_t off = get64(r, 40), len = get32(r, 48);

		if (len && nwc_range_ok(off, len, m->len))
			put64(r, 56, nwc_hash64(m->p + off, len));
	}
}

/* Model @i of a MODELS section at @ms: recompute its own checksum. */
static void fix_model(uint8_t *ms, uint32_t i)
{
	uint64_t off = get64(ms, 8 + 16 * i), len = get64(ms, 16 + 16 * i);

	put64(ms + off, (unsigned)(len - 8), nwc_hash64(ms + off, len - 8));
}

/* Replace the MODELS section by @len bytes (the old one is skipped). */
static void n_set_models(struct mimg *m, const uint8_t *p, size_t len)
{
	put32(m_dirent(m, NWC_SECT_MODELS), 0, UNKNOWN_OPT);
	m_add_section(m, NWC_SECT_MODELS, 1, p, len);
}

/* CASE() on the NWC image; NCASE_RAW() leaves side checksums alone. */
#define NCASE_(want, fix, ...) do {					\
	struct mimg m_;							\
	struct mimg *m = &m_;						\
									\
	m_init_from(m, nwc_bytes, nwc_len);				\
	__VA_ARGS__;							\
	if (fix)							\
		n_fix_sides(m);						\
	m_fix(m);							\
	expect_open(m, (want), __LINE__);				\
	m_free(m);							\
} while (0)
#define NCASE(want, ...) NCASE_(want, true, __VA_ARGS__)
#define NCASE_RAW(want, ...) NCASE_(want, false, __VA_ARGS__)

static void test_nwc_damage_models(void)
{
	uint64_t mlen = m_sect_len(&nwcm, NWC_SECT_MODELS);
	const uint8_t *ms0 = m_sect(&nwcm, NWC_SECT_MODELS);
	uint64_t off0 = get64(ms0, 8), off1 = get64(ms0, 24);
	uint64_t len0 = nblob_len[0], len1 = nblob_len[1];
	uint8_t *alt = t_xmalloc(mlen + 16);

	memset(alt, 0, mlen + 16);

	T_EQ(off0, NWC_MODELS_HDR + 2 * NWC_MODEL_ENT_SIZE);
	T_EQ(off1, (off0 + len0 + 7) & ~7ull);
	T_EQ(mlen, off1 + len1);
	NCASE(0, (void)m);
	/* The section and the feature bit go together. */
	NCASE(ECORRUPT, put32(m_dirent(m, NWC_SECT_MODELS), 0,
			      UNKNOWN_OPT));
	NCASE(ECORRUPT, put64(m->p, NWC_SB_INCOMPAT, 0));
	NCASE(ECORRUPT, put32(m_dirent(m, NWC_SECT_MODELS), 4, 2));
	NCASE(ECORRUPT, m_add_section(m, NWC_SECT_MODELS, 1,
				      m_sect(m, NWC_SECT_MODELS), mlen));
	NCASE(0, n_set_models(m, m_sect(m, NWC_SECT_MODELS), mlen));
	/* In a lossless image, with the bit, models are allowed unused. */
	CASE(0, m_add_section(m, NWC_SECT_MODELS, 1, ms0, mlen);
	     put64(m->p, NWC_SB_INCOMPAT,
		   NWC_INCOMPAT_NWC | NWC_INCOMPAT_PLANES));
	CASE(ECORRUPT, m_add_section(m, NWC_SECT_MODELS, 1, ms0, 40);
	     put64(m->p, NWC_SB_INCOMPAT,
		   NWC_INCOMPAT_NWC | NWC_INCOMPAT_PLANES));
	/* Header. */
	NCASE(ECORRUPT, put32(m_sect(m, NWC_SECT_MODELS), 0, 0));
	NCASE(ECORRUPT, put32(m_sect(m, NWC_SECT_MODELS), 0, 1));
	NCASE(ECORRUPT, put32(m_sect(m, NWC_SECT_MODELS), 0, 3));
	NCASE(ECORRUPT, put32(m_sect(m, NWC_SECT_MODELS), 0,
			      NWC_MODELS_MAX + 1));
	NCASE(ECORRUPT, put32(m_sect(m, NWC_SECT_MODELS), 0, UINT32_MAX));
	NCASE(ECORRUPT, put32(m_sect(m, NWC_SECT_MODELS), 4, 1));
	NCASE(ECORRUPT, put64(m_dirent(m, NWC_SECT_MODELS), 16, 4));
	NCASE(ECORRUPT, n_set_models(m, ms0, 0));
	/* Entries: the layout is canonical. */
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 8, off0 + 8));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 8, off0 - 8));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 8, UINT64_MAX - 7));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 16, 0));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 16, len0 + 8));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 16, UINT64_MAX));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 24, off1 + 8));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 32, len1 - 1));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_MODELS), 32, len1 + 1));
	/* Trailing bytes; padding that is not zero. */
	memcpy(alt, ms0, mlen);
	NCASE(ECORRUPT, n_set_models(m, alt, mlen + 8));
	if (off1 > off0 + len0) {
		alt[off1 - 1] = 1;
		NCASE(ECORRUPT, n_set_models(m, alt, mlen));
		alt[off1 - 1] = 0;
	}
	/* The models swapped: both fit every tensor, so the image opens. */
	memset(alt, 0, mlen + 16);
	memcpy(alt, ms0, NWC_MODELS_HDR + 2 * NWC_MODEL_ENT_SIZE);
	memcpy(alt + off0, ms0 + off1, len1);
	put64(alt, 16, len1);
	put64(alt, 24, (off0 + len1 + 7) & ~7ull);
	put64(alt, 32, len0);
	memcpy(alt + get64(alt, 24), ms0 + off0, len0);
	NCASE(0, n_set_models(m, alt, get64(alt, 24) + len0));
	/* Only model 0: w.b names model 1. */
	memcpy(alt, ms0, mlen);
	put32(alt, 0, 1);
	memmove(alt + off0 - 16, alt + off0, len0);
	put64(alt, 8, off0 - 16);
	NCASE(ECORRUPT, n_set_models(m, alt, off0 - 16 + len0));
	/* Model bytes: the model's own checksum, then its own checks. */
	NCASE(ECORRUPT, m_sect(m, NWC_SECT_MODELS)[off0 + 100] ^= 1);
	NCASE(ECORRUPT, m_sect(m, NWC_SECT_MODELS)[off1 + len1 - 1] ^= 1);
	NCASE(ECORRUPT, m_sect(m, NWC_SECT_MODELS)[off0] ^= 1;
	      fix_model(m_sect(m, NWC_SECT_MODELS), 0));
	NCASE(EFEATURE, put32(m_sect(m, NWC_SECT_MODELS) + off1, 8, 2);
	      fix_model(m_sect(m, NWC_SECT_MODELS), 1));
	NCASE(ECORRUPT, put32(m_sect(m, NWC_SECT_MODELS) + off0, 20, 2);
	      fix_model(m_sect(m, NWC_SECT_MODELS), 0));
	NCASE(0, fix_model(m_sect(m, NWC_SECT_MODELS), 0));
	free(alt);
}

static void test_nwc_damage_side(void)
{
	uint32_t slen = get32(ten_rec(&nwcm, 0), 48);
	uint64_t soff = get64(ten_rec(&nwcm, 0), 40);
	uint64_t data_end = NWC_DATA_ALIGN + get64(nwc_bytes, NWC_SB_DATA_LEN);
	uint32_t lv = NWC_TSIDE_HDR + 2 * ntens[0].m;	/* w.a levels, 2 bits */
	uint32_t sh = get32(ten_rec(&nwcm, 0), 32);	/* w.a shape */
	uint32_t xl = lv + 24 * 2 / 8;		/* w.a's exact weights */

	T_EQ(slen, NWC_TSIDE_HDR + 2 * 40 + 24 * 2 / 8 + 4 +
		   NWC_TSIDE_EXACT_BYTES);
	/* Checksum. */
	NCASE_RAW(ECHECKSUM, side_of(m, 0)[30] ^= 1);
	NCASE_RAW(ECHECKSUM, put64(ten_rec(m, 2), 56,
				   get64(ten_rec(m, 2), 56) ^ 1));
	NCASE(0, (void)m);
	/* Header. */
	NCASE(ECORRUPT, side_of(m, 0)[0] = 'X');
	NCASE(EFEATURE, put16(side_of(m, 0), 4, 1));
	NCASE(EFEATURE, put16(side_of(m, 0), 6, NWC_TSIDE_F16 |
					      NWC_TSIDE_LANES | 8));
	/* The lanes flag says how to read the bands, not their size. */
	NCASE(0, put16(side_of(m, 0), 6, NWC_TSIDE_F16 | NWC_TSIDE_EXACT));
	NCASE(ECORRUPT, put16(side_of(m, 0), 6, NWC_TSIDE_LANES));
	NCASE(ECORRUPT, put16(side_of(m, 0), 6, 0));
	NCASE(EFEATURE, side_of(m, 0)[22] = 2);
	NCASE(ECORRUPT, side_of(m, 0)[23] = 1);	/* bits per level */
	NCASE(ECORRUPT, side_of(m, 0)[23] = 3);
	NCASE(ECORRUPT, side_of(m, 3)[23] = 8);
	/* w.a's exact weight: count, row, column, value */
	NCASE(0, (void)m; T_EQ(get32(side_of(m, 0), xl), 1);
	      T_EQ(get32(side_of(m, 0), xl + 4), 17);
	      T_EQ(get32(side_of(m, 0), xl + 8), 2));
	NCASE(ECORRUPT, put32(side_of(m, 0), xl, 2));
	NCASE(ECORRUPT, put32(side_of(m, 0), xl, 0));
	NCASE(ECORRUPT, put32(side_of(m, 0), xl + 4, 40));
	NCASE(ECORRUPT, put32(side_of(m, 0), xl + 8, 24));
	NCASE(ECORRUPT, put32(side_of(m, 0), xl + 12, 0x7f800000));
	NCASE(0, put32(side_of(m, 0), xl + 8, 23));
	NCASE(ECORRUPT, put16(side_of(m, 0), 6, NWC_TSIDE_F16 |
					      NWC_TSIDE_LANES));
	/* Shape: same record length, other m and n; or none. */
	NCASE(ECORRUPT, put32(side_of(m, 0), 8, 39);
	      put32(side_of(m, 0), 12, 26));
	NCASE(ECORRUPT, put32(side_of(m, 0), 8, 0));
	NCASE(ECORRUPT, put32(side_of(m, 0), 12, UINT32_MAX));
	/* Band rows: multiples of 16 that match the extent. */
	NCASE(ECORRUPT, put32(side_of(m, 0), 16, 24));
	NCASE(ECORRUPT, put32(side_of(m, 0), 16, 8));
	NCASE(ECORRUPT, put32(side_of(m, 0), 16, 0));
	NCASE(ECORRUPT, put32(side_of(m, 0), 16, UINT32_MAX - 15));
	NCASE(ECORRUPT, put32(side_of(m, 0), 16, 32));
	NCASE(ECORRUPT, put32(side_of(m, 0), 16, 32);
	      put32(ext_rec(m, 1), 24, 32 * 24 * 2);
	      put32(ext_rec(m, 1), 20, 2));
	/* Model index, levels. */
	NCASE(ECORRUPT, put16(side_of(m, 0), 20, NM));
	NCASE(ECORRUPT, put16(side_of(m, 2), 20, UINT16_MAX));
	NCASE(0, put16(side_of(m, 0), 20, 1));
	/* (a level >= Q needs more bits than Q = 4 levels get: the side
	 * record's own test covers it) */
	NCASE(0, side_of(m, 0)[lv + 1] ^= 0x0c);	/* column 5 */
	NCASE(0, side_of(m, 0)[lv + 5] = 0xff);	/* columns 20..23 */
	/* Scales must be finite (binary16 for w.a and w.c, f32 for w.b). */
	NCASE(ECORRUPT, put16(side_of(m, 0), NWC_TSIDE_HDR + 2 * 7, 0x7c00));
	NCASE(ECORRUPT, put16(side_of(m, 0), NWC_TSIDE_HDR, 0xfe00));
	NCASE(ECORRUPT, put16(side_of(m, 3), NWC_TSIDE_HDR + 2 * 32, 0xfc00));
	NCASE(ECORRUPT, put32(side_of(m, 2), NWC_TSIDE_HDR + 4 * 3,
			      0x7f800000));
	NCASE(ECORRUPT, put32(side_of(m, 2), NWC_TSIDE_HDR, 0x7fc00000));
	NCASE(0, put16(side_of(m, 0), NWC_TSIDE_HDR, 0));
	/* Placement and length. */
	NCASE(ECORRUPT, put32(ten_rec(m, 0), 48, 0));
	NCASE(ECORRUPT, put32(ten_rec(m, 0), 48, slen - 1));
	NCASE(ECORRUPT, put32(ten_rec(m, 0), 48, slen + 1));
	NCASE(ECORRUPT, put32(ten_rec(m, 0), 48, UINT32_MAX));
	NCASE(ECORRUPT, put64(ten_rec(m, 0), 40, 0));
	NCASE(ECORRUPT, put64(ten_rec(m, 0), 40, NWC_DATA_ALIGN - 1));
	NCASE(ECORRUPT, put64(ten_rec(m, 0), 40, data_end - slen + 1));
	NCASE(ECORRUPT, put64(ten_rec(m, 0), 40, UINT64_MAX - 8));
	NCASE(ECORRUPT, put64(ten_rec(m, 0), 40, soff + 1));
	/* A copy elsewhere in the data region is as good. */
	NCASE(0, memcpy(blk_data(m, 1), m->p + soff, slen);
	      put64(ten_rec(m, 0), 40, get64(blk_rec(m, 1), 0)));
	/* Side data only and always on NWC tensors. */
	NCASE(ECORRUPT, memcpy(ten_rec(m, 1) + 40, ten_rec(m, 0) + 40, 24));
	NCASE(ECORRUPT, memset(ten_rec(m, 0) + 40, 0, 24));
	NCASE(ECORRUPT, put16(ten_rec(m, 1), 36, NWC_T));
	NCASE(ECORRUPT, put16(ten_rec(m, 0), 36, ZSTD));
	/* The tensor: a float matrix of the record's shape. */
	NCASE(ECORRUPT, put16(ten_rec(m, 0), 12, NWC_DTYPE_I16));
	NCASE(ECORRUPT, put16(ten_rec(m, 0), 12, NWC_DTYPE_U16));
	NCASE(ECORRUPT, put16(ten_rec(m, 2), 12, NWC_DTYPE_I32));
	NCASE(0, put16(ten_rec(m, 0), 12, NWC_DTYPE_F16));
	NCASE(ECORRUPT, put16(ten_rec(m, 0), 14, 1);
	      put64(m_sect(m, NWC_SECT_PARAMS) + sh, 0, 40 * 24));
	NCASE(ECORRUPT, put64(m_sect(m, NWC_SECT_PARAMS) + sh, 0, 24);
	      put64(m_sect(m, NWC_SECT_PARAMS) + sh, 8, 40));
}

static void test_nwc_damage_extents(void)
{
	uint32_t bl = 16 * 24 * 2;	/* w.a's band bytes */

	NCASE(ECORRUPT, put32(ext_rec(m, 1), 24, bl + 2));
	NCASE(ECORRUPT, put32(ext_rec(m, 1), 24, bl - 2));
	NCASE(ECORRUPT, put32(ext_rec(m, 1), 24, 2 * bl));
	NCASE(ECORRUPT, put32(ext_rec(m, 1), 20, 2));
	NCASE(ECORRUPT, put32(ext_rec(m, 1), 20, 4));
	NCASE(ECORRUPT, put32(ext_rec(m, 1), 32, 1));
	NCASE(ECORRUPT, put16(ext_rec(m, 1), 28, ZSTD));
	NCASE(ECORRUPT, put16(ext_rec(m, 1), 28, RAW));
	NCASE(ECORRUPT, put16(ext_rec(m, 0), 28, NWC_T));
	NCASE(ECORRUPT, put16(ext_rec(m, 2), 28, NWC_T));
	NCASE(ECORRUPT, put32(ext_rec(m, 1), 36, NT));
	NCASE(ECORRUPT, put32(ext_rec(m, 1), 36, 3));
	NCASE(ECORRUPT, put32(ext_rec(m, 1), 36, 1));
	NCASE(ECORRUPT, swap_fields(ext_rec(m, 3) + 36, ext_rec(m, 4) + 36,
				    4));
	/* Raw lengths follow the bands: 16, 16 and 8 rows of w.a. */
	NCASE(ECORRUPT, put32(blk_rec(m, 1), 12, bl + 2));
	NCASE(ECORRUPT, put32(blk_rec(m, 3), 12, bl));
	NCASE(ECORRUPT, put32(blk_rec(m, 3), 12, bl / 2 - 2));
	NCASE(ECORRUPT, put32(blk_rec(m, 8), 12, 16 * 5 * 2));
	/* Band payloads are opaque to open: swapping two still opens. */
	NCASE(0, swap_fields(blk_rec(m, 1), blk_rec(m, 2), 8);
	      swap_fields(blk_rec(m, 1) + 8, blk_rec(m, 2) + 8, 4);
	      swap_fields(blk_rec(m, 1) + 16, blk_rec(m, 2) + 16, 8));
}

static const uint8_t *nwc_ext_data(uint32_t k NWC_UNUSED,
				   const struct nwc_extent *e)
{
	return nfile + e->file_off;
}

/* check_blocks() on an NWC image copy. */
static void n_check_blocks(const struct mimg *m, const uint32_t *bad,
			   size_t nbad, int want, int want_check)
{
	check_blocks(n_open_img(m), bad, nbad, want, want_check,
		     nwc_ext_data);
}

/* Re-checksum block @b's payload after a change. */
static void fix_block(struct mimg *m, uint32_t b)
{
	put64(blk_rec(m, b), 16,
	      nwc_hash64(blk_data(m, b), get32(blk_rec(m, b), 8)));
}

static void test_nwc_damage_payload(void)
{
	struct nwc_image *img;
	struct nwc_tensor_scratch *s;
	struct mimg m;
	int decoded = 0, rejected = 0;

	/* Stored bytes: the checksum catches it, for that band only. */
	m_init_from(&m, nwc_bytes, nwc_len);
	blk_data(&m, 2)[get32(blk_rec(&m, 2), 8) / 2] ^= 0x10;
	blk_data(&m, 8)[0] ^= 1;
	n_check_blocks(&m, (uint32_t[]){ 2, 8 }, 2, ECHECKSUM, ECHECKSUM);
	m_free(&m);

	/* A payload cut short, checksum and all: the stream is incomplete. */
	m_init_from(&m, nwc_bytes, nwc_len);
	put32(blk_rec(&m, 2), 8, get32(blk_rec(&m, 2), 8) - 1);
	fix_block(&m, 2);
	m_fix(&m);
	n_check_blocks(&m, (uint32_t[]){ 2 }, 1, ECORRUPT, 0);
	m_free(&m);

	/* A band of w.c (80 latents) where w.a's band 0 (384) belongs. */
	m_init_from(&m, nwc_bytes, nwc_len);
	memcpy(blk_rec(&m, 1), blk_rec(&m, 8), 8);
	put32(blk_rec(&m, 1), 8, get32(blk_rec(&m, 8), 8));
	put64(blk_rec(&m, 1), 16, get64(blk_rec(&m, 8), 16));
	m_fix(&m);
	n_check_blocks(&m, (uint32_t[]){ 1 }, 1, ECORRUPT, 0);
	m_free(&m);

	/* Zeros with a matching checksum. */
	m_init_from(&m, nwc_bytes, nwc_len);
	memset(blk_data(&m, 5), 0, get32(blk_rec(&m, 5), 8));
	fix_block(&m, 5);
	m_fix(&m);
	n_check_blocks(&m, (uint32_t[]){ 5 }, 1, 1, 0);
	m_free(&m);

	/*
	 * Every byte of every band flipped, and every truncation, straight
	 * into the band decoder with the image's model and side record: a
	 * forged payload decodes or is rejected, never more.
	 */
	img = n_open_img(&nwcm);
	T_EQ(nwc_tensor_scratch_create(&s), 0);
	for (uint32_t k = 0; k < NNT; k++) {
		const struct nwc_tensor *t =
			nwc_image_tensor(img, ntens[k].index);
		const struct nwc_model *model =
			nwc_nwc_model(nwc_image_codec_state(img, NWC_CODEC_NWC), NWC_SIDE(t)->model)->model;
		const struct nwc_extent *e = nwc_image_extent(img, t->extent);

		for (uint32_t j = 0; j < e->nblocks; j++) {
			size_t n = nwc_extent_block_len(e, j);
			size_t len = nenc[k]->band_len[j];
			uint8_t *p = t_xmalloc(len), *dst = t_xmalloc(n);

			for (size_t i = 0; i <= 2 * len; i++) {
				int ret;

				memcpy(p, nenc[k]->band[j], len);
				if (i < len)
					p[i] ^= (uint8_t)(0x5a ^ i);
				ret = nwc_band_decode(model, t->side, j, p,
						      i < len ? len : i - len,
						      t->dtype, dst, n, s);
				T_CHECK(ret == 0 || ret == ECORRUPT);
				decoded += !ret;
				rejected += ret == ECORRUPT;
			}
			free(dst);
			free(p);
		}
	}
	T_CHECK(rejected > 0);
	T_CHECK(decoded > 0);	/* the untruncated originals, at least */
	nwc_tensor_scratch_free(s);
	nwc_image_close(img);
}

/* One seed image: @m's bytes to DIR/@name.nwc. */
static int corpus_file(const char *dir, const char *name, const struct mimg *m)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s.nwc", dir, name);
	write_file(path, m->p, m->len);
	return 0;
}

/*
 * NWC seeds for the image fuzz target: the NWC image and copies with one
 * field changed (the target recomputes checksums, side and model ones
 * included, so each reaches the check it aims at).
 */
static int write_corpus(const char *dir)
{
	struct mimg m;

	nwcm.p = nwc_bytes;
	nwcm.len = nwc_len;
	corpus_file(dir, "nwc", &nwcm);
	m_init_from(&m, nwc_bytes, nwc_len);
	side_of(&m, 0)[23] = 3;	/* bits per level */
	corpus_file(dir, "nwc-side-level", &m);
	m_free(&m);
	m_init_from(&m, nwc_bytes, nwc_len);
	/* w.a's exact weight in row 40 of 40 */
	put32(side_of(&m, 0), NWC_TSIDE_HDR + 2 * 40 + 24 * 2 / 8 + 4, 40);
	corpus_file(dir, "nwc-side-exact", &m);
	m_free(&m);
	m_init_from(&m, nwc_bytes, nwc_len);
	put32(m_sect(&m, NWC_SECT_MODELS), 0, 3);
	corpus_file(dir, "nwc-models-count", &m);
	m_free(&m);
	m_init_from(&m, nwc_bytes, nwc_len);
	put32(ext_rec(&m, 1), 24, get32(ext_rec(&m, 1), 24) + 2);
	corpus_file(dir, "nwc-extent-bands", &m);
	m_free(&m);
	m_init_from(&m, nwc_bytes, nwc_len);
	blk_data(&m, 2)[1] ^= 0x08;
	corpus_file(dir, "nwc-band-payload", &m);
	m_free(&m);
	return 0;
}

int main(int argc, char **argv)
{
	const char *corpus = NULL;
	char path[512];

	if (t_tmpdir(tdir, sizeof(tdir), "test-image"))
		return 99;
	if (argc == 3 && !strcmp(argv[1], "--write-corpus")) {
		corpus = argv[2];
	} else if (argc != 1) {
		fprintf(stderr, "usage: test_image [--write-corpus DIR]\n");
		return 99;
	}
	setup_expected();
	tpath(path, sizeof(path), "nwc.nwc");
	if (setup_nwc() || build_nwc(path, false)) {
		fprintf(stderr, "cannot build the NWC reference image\n");
		tdir_clean();
		rmdir(tdir);
		return 99;
	}
	nwc_bytes = read_file(path, &nwc_len);
	nwcm.p = nwc_bytes;
	nwcm.len = nwc_len;
	unlink(path);
	if (corpus) {
		write_corpus(corpus);
		free_nwc();
		rmdir(tdir);
		return 0;
	}
	tpath(path, sizeof(path), "ref.nwc");
	if (build_ref(path, false)) {
		fprintf(stderr, "cannot build the reference image\n");
		tdir_clean();
		rmdir(tdir);
		return 99;
	}
	ref_bytes = read_file(path, &ref_len);
	refm.p = ref_bytes;
	refm.len = ref_len;

	T_RUN(test_roundtrip_tree);
	T_RUN(test_roundtrip_extents);
	T_RUN(test_roundtrip_blocks);
	T_RUN(test_roundtrip_tensors);
	T_RUN(test_lookup);
	T_RUN(test_open_errors);
	T_RUN(test_writer_misuse);
	T_RUN(test_writer_duplicates);
	T_RUN(test_writer_exists);
	T_RUN(test_writer_determinism);
	T_RUN(test_writer_minimal);
	T_RUN(test_damage_checksums);
	T_RUN(test_damage_length);
	T_RUN(test_damage_superblock);
	T_RUN(test_damage_sections);
	T_RUN(test_damage_info);
	T_RUN(test_info);
	T_RUN(test_damage_tree);
	T_RUN(test_damage_cycle);
	T_RUN(test_damage_inodes);
	T_RUN(test_damage_extents);
	T_RUN(test_damage_blocks);
	T_RUN(test_damage_tensors);
	T_RUN(test_damage_payload);
	T_RUN(test_damage_shrink_after_open);
	T_RUN(test_nwc_roundtrip);
	T_RUN(test_nwc_writer);
	T_RUN(test_nwc_damage_models);
	T_RUN(test_nwc_damage_side);
	T_RUN(test_nwc_damage_extents);
	T_RUN(test_nwc_damage_payload);

	free_nwc();
	free(ref_bytes);
	for (uint32_t i = 0; i < NX; i++)
		free(xdata[i]);
	tdir_clean();
	rmdir(tdir);
	T_EXIT();
}
