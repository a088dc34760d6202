/* SPDX-License-Identifier: MIT */
/*
 * writer.c - lays out an image: payloads (and side records) stream to the
 * data region as they arrive; tables, the codecs' sections, the section
 * directory and finally the superblock are written by nwc_writer_finish(),
 * which numbers inodes breadth first.  What belongs to a codec is checked
 * by its decode table, as the reader will check it (iface.h).
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <float.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/array.h"
#include "codec/common/hash.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/image/iface.h"
#include "codec/image/record.h"
#include "codec/image/writer.h"

#define WBUF_SIZE (4u << 20)

struct wnode {
	uint32_t parent;
	uint32_t mode;
	uint32_t flags;
	int64_t mtime;
	uint32_t mtime_ns;
	char *name;
	uint32_t name_len;
	char *target;		/* symlink */
	uint32_t target_len;
	uint64_t size;		/* file bytes so far */
	uint32_t first_ext;
	uint32_t n_ext;
	uint32_t ino;		/* breadth-first number, set at finish */
};

struct wext {
	uint32_t file;
	uint64_t file_off;
	uint64_t len;
	uint32_t block_len;
	uint16_t codec;
	uint32_t codec_arg;
	const struct nwc_codec_dec *dec;	/* of @codec */
	uint32_t tensor;
	uint32_t first_block;
	uint32_t nblocks;	/* expected */
	uint32_t added;		/* blocks added so far */
};

struct wblock {
	uint64_t off;
	uint32_t stored_len;
	uint32_t raw_len;
	uint64_t xxh;
};

struct wtensor {
	uint32_t file;
	char *name;
	uint32_t name_len;
	uint16_t dtype;
	uint16_t ndim;
	uint64_t shape[NWC_MAX_DIMS];
	uint64_t data_off;
	uint64_t data_len;
	uint16_t codec;
	uint64_t side_off;	/* side data in the image, if side_len */
	uint32_t side_len;
	uint64_t side_xxh;
	void *side;		/* the parsed side record, or NULL */
	const struct nwc_codec_dec *side_dec;	/* the codec that parsed it */
	bool has_err;		/* sig and err set (INFO) */
	double sig, err;
};

/* A growable byte buffer for the tables. */
struct bytes {
	uint8_t *p;
	size_t len;
	size_t cap;
};

struct nwc_writer {
	char *path;
	bool has_info;		/* write an INFO section */
	int64_t created;
	char *info_text;
	size_t info_len;
	struct bytes info;	/* its body, built with the tables */
	char *tmp_path;		/* named temporary file, or NULL: the image
				 * is written unnamed (O_TMPFILE) */
	const char *name;	/* for messages: tmp_path, else path */
	bool force;		/* may replace an existing image */
	int fd;
	unsigned block_log2;
	uint64_t pos;		/* next payload offset in the image */
	uint8_t *wbuf;		/* payload bytes not yet written */
	size_t wlen;
	struct wnode *nodes;
	uint32_t n_nodes;
	size_t cap_nodes;
	struct wext *exts;
	uint32_t n_exts;
	size_t cap_exts;
	struct wblock *blocks;
	uint32_t n_blocks;
	size_t cap_blocks;
	struct wtensor *tensors;
	uint32_t n_tensors;
	size_t cap_tensors;
	const struct nwc_codec_set *codecs;
	uint64_t incompat;	/* feature bits the extents' codecs need */
	void **sstate;		/* per encoder of @codecs: section state */
};

/* Grow *arr (of *cap elements of @size) so that index @n fits. */
static int grow(void **arr, size_t *cap, uint32_t n, size_t size)
{
	/* Counts are u32 on disk; the last index stays free as a marker. */
	return nwc_array_reserve_max(arr, cap, (size_t)n + 1, size,
				     UINT32_MAX / 2);
}

static int bytes_reserve(struct bytes *b, size_t more)
{
	if (more > SIZE_MAX - b->len)
		return -EOVERFLOW;
	return nwc_array_reserve((void **)&b->p, &b->cap, b->len + more, 1);
}

/* Append @len bytes (or zeros when @src is NULL); returns the offset. */
static int bytes_add(struct bytes *b, const void *src, size_t len,
		     uint32_t *off)
{
	int ret = bytes_reserve(b, len);

	if (ret)
		return ret;
	if (b->len + len > UINT32_MAX)
		return -EOVERFLOW;
	if (off)
		*off = (uint32_t)b->len;
	if (!len)
		return 0;
	if (src)
		memcpy(b->p + b->len, src, len);
	else
		memset(b->p + b->len, 0, len);
	b->len += len;
	return 0;
}

/*
 * The image is written to a file without a name in the image's directory
 * (O_TMPFILE), given its name only when it is complete: a run that is
 * killed, even by SIGKILL or an MPI job's end, leaves nothing behind.
 * Returns 0, -EOPNOTSUPP when the file system cannot (the caller falls
 * back to a named temporary file), or another error (logged).
 */
static int open_unnamed(struct nwc_writer *w)
{
	char *dir = strdup(w->path);
	int ret = 0;

	if (!dir)
		return -ENOMEM;
	ret = nwc_open_unnamed(dirname(dir), 0666, &w->fd);
	if (ret && ret != -EOPNOTSUPP)
		nwc_err("%s: cannot create the image in %s: %s", w->path, dir,
			strerror(-ret));
	free(dir);
	return ret;
}

/* A named temporary file beside the image, renamed over it at the end. */
static int open_named(struct nwc_writer *w, size_t n)
{
	mode_t um;
	int ret;

	w->tmp_path = malloc(n);
	if (!w->tmp_path)
		return -ENOMEM;
	snprintf(w->tmp_path, n, "%s.tmp.XXXXXX", w->path);
	w->name = w->tmp_path;
	w->fd = mkstemp(w->tmp_path);
	if (w->fd < 0) {
		ret = -errno;
		nwc_err("%s: cannot create temporary file: %s", w->tmp_path,
			strerror(-ret));
		return ret;
	}
	/* mkstemp() creates 0600; give the image the usual 0666 & ~umask. */
	um = umask(0);
	umask(um);
	if (fchmod(w->fd, 0666 & ~um)) {
		ret = -errno;
		close(w->fd);
		w->fd = -1;
		unlink(w->tmp_path);
		return ret;
	}
	return 0;
}

/*
 * Gives the finished unnamed file its name: linked straight to the path
 * when it may not replace anything (so that an image that appeared
 * meanwhile is not lost), else under a temporary name renamed over it.
 */
static int name_unnamed(struct nwc_writer *w)
{
	char proc[64], *tmp;
	size_t n = strlen(w->path) + 32;
	int ret = 0;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", w->fd);
	if (!w->force) {
		if (!linkat(AT_FDCWD, proc, AT_FDCWD, w->path,
			    AT_SYMLINK_FOLLOW))
			return 0;
		ret = -errno;
		nwc_err("%s: cannot name the finished image: %s%s", w->path,
			strerror(-ret),
			ret == -EEXIST ? " (it appeared while packing)" : "");
		return ret;
	}
	tmp = malloc(n);
	if (!tmp)
		return -ENOMEM;
	for (unsigned i = 0;; i++) {
		snprintf(tmp, n, "%s.tmp.%ld.%u", w->path, (long)getpid(), i);
		if (!linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW))
			break;
		if (errno != EEXIST || i == 99) {
			ret = -errno;
			nwc_err("%s: cannot name the finished image: %s",
				tmp, strerror(-ret));
			free(tmp);
			return ret;
		}
	}
	if (rename(tmp, w->path)) {
		ret = -errno;
		nwc_err("%s: cannot rename to %s: %s", tmp, w->path,
			strerror(-ret));
		unlink(tmp);
	}
	free(tmp);
	return ret;
}

int nwc_writer_create(const char *path, unsigned block_log2, bool force,
		      const struct nwc_codec_set *codecs, struct nwc_writer **out)
{
	struct nwc_writer *w;
	struct stat st;
	size_t n;
	int ret;

	if (block_log2 < NWC_BLOCK_LOG2_MIN || block_log2 > NWC_BLOCK_LOG2_MAX)
		return -EINVAL;
	if (!force && lstat(path, &st) == 0) {
		nwc_err("%s: already exists (use --force to replace it)", path);
		return -EEXIST;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->block_log2 = block_log2;
	w->pos = NWC_DATA_ALIGN;
	w->codecs = codecs;
	n = strlen(path) + 16;
	w->path = strdup(path);
	w->name = w->path;
	w->wbuf = malloc(WBUF_SIZE);
	w->sstate = calloc(codecs->n_enc ? codecs->n_enc : 1,
			   sizeof(*w->sstate));
	if (!w->path || !w->wbuf || !w->sstate) {
		ret = -ENOMEM;
		goto out_free;
	}
	w->force = force;
	ret = open_unnamed(w);
	if (ret == -EOPNOTSUPP) {
		ret = open_named(w, n);
		if (ret)
			goto out_free;
	} else if (ret) {
		goto out_free;
	}
	/* Root directory: id 0, its own parent. */
	ret = grow((void **)&w->nodes, &w->cap_nodes, 0, sizeof(*w->nodes));
	if (ret)
		goto out_unlink;
	memset(&w->nodes[0], 0, sizeof(w->nodes[0]));
	w->nodes[0].mode = S_IFDIR | 0755;
	w->n_nodes = 1;
	*out = w;
	return 0;

out_unlink:
	close(w->fd);
	if (w->tmp_path)
		unlink(w->tmp_path);
out_free:
	free(w->sstate);
	free(w->wbuf);
	free(w->tmp_path);
	free(w->path);
	free(w);
	return ret;
}

int nwc_writer_add_node(struct nwc_writer *w, uint32_t parent, const char *name,
			size_t len, uint32_t mode, int64_t mtime,
			uint32_t mtime_ns, uint32_t *id)
{
	struct wnode *n;
	uint32_t type = mode & S_IFMT;
	int ret;

	if (parent >= w->n_nodes || !S_ISDIR(w->nodes[parent].mode))
		return -ENOTDIR;
	if (!nwc_name_valid(name, len))
		return -EINVAL;
	if (type != S_IFDIR && type != S_IFREG && type != S_IFLNK)
		return -EINVAL;
	if (mtime_ns >= 1000000000u)
		return -EINVAL;
	ret = grow((void **)&w->nodes, &w->cap_nodes, w->n_nodes,
		   sizeof(*w->nodes));
	if (ret)
		return ret;
	n = &w->nodes[w->n_nodes];
	memset(n, 0, sizeof(*n));
	n->name = malloc(len);
	if (!n->name)
		return -ENOMEM;
	memcpy(n->name, name, len);
	n->name_len = (uint32_t)len;
	n->parent = parent;
	n->mode = mode & (S_IFMT | 07777);
	n->mtime = mtime;
	n->mtime_ns = mtime_ns;
	*id = w->n_nodes++;
	return 0;
}

int nwc_writer_set_root(struct nwc_writer *w, uint32_t mode, int64_t mtime,
			uint32_t mtime_ns)
{
	if (mtime_ns >= 1000000000u)
		return -EINVAL;
	w->nodes[0].mode = S_IFDIR | (mode & 07777);
	w->nodes[0].mtime = mtime;
	w->nodes[0].mtime_ns = mtime_ns;
	return 0;
}

int nwc_writer_set_symlink(struct nwc_writer *w, uint32_t id,
			   const char *target, size_t len)
{
	struct wnode *n;

	if (id >= w->n_nodes || !S_ISLNK(w->nodes[id].mode))
		return -EINVAL;
	if (len == 0 || len > 4096)
		return -EINVAL;
	n = &w->nodes[id];
	free(n->target);
	n->target = malloc(len);
	if (!n->target)
		return -ENOMEM;
	memcpy(n->target, target, len);
	n->target_len = (uint32_t)len;
	n->size = len;
	return 0;
}

int nwc_writer_set_flags(struct nwc_writer *w, uint32_t id, uint32_t flags)
{
	if (id >= w->n_nodes || !S_ISREG(w->nodes[id].mode))
		return -EINVAL;
	w->nodes[id].flags = flags;
	return 0;
}

int nwc_writer_add_tensor(struct nwc_writer *w, uint32_t id,
			  const struct nwc_wtensor *t, uint32_t *idx)
{
	struct wtensor *wt;
	int ret;

	if (id >= w->n_nodes || !S_ISREG(w->nodes[id].mode))
		return -EINVAL;
	if (t->ndim > NWC_MAX_DIMS || !nwc_dtype_size(t->dtype) ||
	    t->name_len == 0 || t->name_len > UINT16_MAX)
		return -EINVAL;
	ret = grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors,
		   sizeof(*w->tensors));
	if (ret)
		return ret;
	wt = &w->tensors[w->n_tensors];
	memset(wt, 0, sizeof(*wt));
	wt->name = malloc(t->name_len);
	if (!wt->name)
		return -ENOMEM;
	memcpy(wt->name, t->name, t->name_len);
	wt->name_len = (uint32_t)t->name_len;
	wt->file = id;
	wt->dtype = (uint16_t)t->dtype;
	wt->ndim = (uint16_t)t->ndim;
	memcpy(wt->shape, t->shape, t->ndim * sizeof(*t->shape));
	wt->data_off = t->data_off;
	wt->data_len = t->data_len;
	wt->codec = t->codec;
	*idx = w->n_tensors++;
	return 0;
}

static void codec_tensor(const struct wtensor *t, struct nwc_codec_tensor *ct)
{
	ct->dtype = t->dtype;
	ct->ndim = t->ndim;
	ct->shape = t->shape;
	ct->data_len = t->data_len;
}

/*
 * What the reader demands of an extent of file @id (format.h, section 8),
 * asked of the extent's codec: its argument and geometry, and for a tensor
 * codec a tensor of that codec whose side record gives the blocks.
 */
static int check_extent(const struct nwc_writer *w, uint32_t id,
			const struct nwc_wextent *e,
			const struct nwc_codec_dec **out)
{
	const struct nwc_codec_dec *dec;
	const struct wtensor *t = NULL;
	struct nwc_codec_tensor ct;
	uint64_t nblocks = (e->len + e->block_len - 1) / e->block_len;
	unsigned unit;

	dec = nwc_codec_set_dec(w->codecs, e->codec);
	if (!dec) {
		nwc_err("%s: extent of codec %u, which this build lacks",
			w->path, e->codec);
		return -EINVAL;
	}
	if (dec->tensor_codec) {
		if (e->tensor == NWC_NO_TENSOR)
			return -EINVAL;
		t = &w->tensors[e->tensor];
		codec_tensor(t, &ct);
		if (t->side_dec != dec || t->file != id ||
		    t->data_off != w->nodes[id].size || e->len != t->data_len)
			goto out_mismatch;
	}
	if (nblocks > UINT32_MAX ||
	    nwc_codec_check_extent(dec, e->codec_arg, e->block_len,
				   (uint32_t)nblocks, t ? &ct : NULL,
				   t ? t->side : NULL, &unit) ||
	    e->len % unit)
		goto out_mismatch;
	*out = dec;
	return 0;

out_mismatch:
	if (t)
		nwc_err("%s: tensor \"%.*s\": %s extent does not match the tensor or its side record",
			w->path, (int)t->name_len, t->name, dec->name);
	else
		nwc_err("%s: extent of codec %s: bad argument 0x%x or geometry",
			w->path, dec->name, (unsigned)e->codec_arg);
	return -EINVAL;
}

static bool last_extent_done(const struct nwc_writer *w)
{
	return !w->n_exts ||
	       w->exts[w->n_exts - 1].added == w->exts[w->n_exts - 1].nblocks;
}

int nwc_writer_add_extent(struct nwc_writer *w, uint32_t id,
			  const struct nwc_wextent *e, uint32_t *ext)
{
	const struct nwc_codec_dec *dec;
	struct wnode *n;
	struct wext *x;
	uint64_t nblocks;
	int ret;

	if (id >= w->n_nodes || !S_ISREG(w->nodes[id].mode))
		return -EINVAL;
	n = &w->nodes[id];
	if (!last_extent_done(w) || e->len == 0 || e->block_len == 0 ||
	    e->block_len > NWC_BLOCK_MAX)
		return -EINVAL;
	/* A file's extents must be consecutive in the table. */
	if (n->n_ext && n->first_ext + n->n_ext != w->n_exts)
		return -EINVAL;
	if (e->tensor != NWC_NO_TENSOR && e->tensor >= w->n_tensors)
		return -EINVAL;
	ret = check_extent(w, id, e, &dec);
	if (ret)
		return ret;
	nblocks = (e->len + e->block_len - 1) / e->block_len;
	if (nblocks > UINT32_MAX - w->n_blocks)
		return -EOVERFLOW;
	ret = grow((void **)&w->exts, &w->cap_exts, w->n_exts,
		   sizeof(*w->exts));
	if (ret)
		return ret;
	x = &w->exts[w->n_exts];
	memset(x, 0, sizeof(*x));
	x->file = id;
	x->file_off = n->size;
	x->len = e->len;
	x->block_len = e->block_len;
	x->codec = e->codec;
	x->codec_arg = e->codec_arg;
	x->dec = dec;
	x->tensor = e->tensor;
	w->incompat |= dec->incompat;
	x->first_block = w->n_blocks;
	x->nblocks = (uint32_t)nblocks;
	if (e->tensor != NWC_NO_TENSOR)
		w->tensors[e->tensor].codec = e->codec;
	if (!n->n_ext)
		n->first_ext = w->n_exts;
	n->n_ext++;
	n->size += e->len;
	*ext = w->n_exts++;
	return 0;
}

static int flush_wbuf(struct nwc_writer *w)
{
	int ret;

	if (!w->wlen)
		return 0;
	ret = nwc_pwrite_full(w->fd, w->wbuf, w->wlen, w->pos - w->wlen);
	if (ret) {
		nwc_err("%s: write failed: %s", w->name, strerror(-ret));
		return ret;
	}
	w->wlen = 0;
	return 0;
}

/* Append payload bytes to the data region. */
static int put_data(struct nwc_writer *w, const void *src, size_t len)
{
	int ret;

	if (!len)
		return 0;
	if (len > WBUF_SIZE - w->wlen) {
		ret = flush_wbuf(w);
		if (ret)
			return ret;
	}
	if (len >= WBUF_SIZE) {
		ret = nwc_pwrite_full(w->fd, src, len, w->pos);
		if (ret) {
			nwc_err("%s: write failed: %s", w->name,
				strerror(-ret));
			return ret;
		}
	} else {
		memcpy(w->wbuf + w->wlen, src, len);
		w->wlen += len;
	}
	w->pos += len;
	return 0;
}

int nwc_writer_add_block(struct nwc_writer *w, uint32_t ext,
			 const void *payload, size_t stored_len,
			 uint32_t raw_len)
{
	struct wext *x;
	struct wblock *b;
	uint64_t expect;
	int ret;

	if (ext + 1 != w->n_exts)
		return -EINVAL;
	x = &w->exts[ext];
	if (x->added == x->nblocks || stored_len > UINT32_MAX)
		return -EINVAL;
	expect = NWC_MIN((uint64_t)x->block_len,
			 x->len - (uint64_t)x->added * x->block_len);
	if (raw_len != expect ||
	    (x->dec->block_ok &&
	     !x->dec->block_ok(x->codec_arg, (uint32_t)stored_len, raw_len)))
		return -EINVAL;
	ret = grow((void **)&w->blocks, &w->cap_blocks, w->n_blocks,
		   sizeof(*w->blocks));
	if (ret)
		return ret;
	b = &w->blocks[w->n_blocks];
	b->off = w->pos;
	b->stored_len = (uint32_t)stored_len;
	b->raw_len = raw_len;
	b->xxh = nwc_hash64(payload, stored_len);
	ret = put_data(w, payload, stored_len);
	if (ret)
		return ret;
	w->n_blocks++;
	x->added++;
	return 0;
}

int nwc_writer_add_codec_item(struct nwc_writer *w, unsigned codec,
			      const void *item, size_t len, uint32_t *idx)
{
	const struct nwc_codec_set *set = w->codecs;
	unsigned i;
	int ret;

	for (i = 0; i < set->n_enc; i++)
		if (set->enc[i]->id == codec && set->enc[i]->sect_add)
			break;
	if (i == set->n_enc)
		return -EINVAL;
	if (!w->sstate[i]) {
		ret = set->enc[i]->sect_create(&w->sstate[i]);
		if (ret)
			return ret;
	}
	return set->enc[i]->sect_add(w->sstate[i], item, len, idx);
}

int nwc_writer_set_tensor_side(struct nwc_writer *w, uint32_t idx,
			       unsigned codec, const void *side, size_t len)
{
	const struct nwc_codec_dec *dec = nwc_codec_set_dec(w->codecs, codec);
	struct nwc_codec_tensor ct;
	struct wtensor *t;
	int ret;

	if (idx >= w->n_tensors || w->tensors[idx].side_len || !len ||
	    len > UINT32_MAX || !dec || !dec->tensor_codec)
		return -EINVAL;
	t = &w->tensors[idx];
	codec_tensor(t, &ct);
	ret = dec->side_parse(&ct, side, len, &t->side);
	if (ret == -ENOMEM)
		return ret;
	if (ret) {
		nwc_err("%s: tensor \"%.*s\": bad side record: %s", w->path,
			(int)t->name_len, t->name, nwc_strerror(ret));
		return -EINVAL;
	}
	t->side_off = w->pos;
	ret = put_data(w, side, len);
	if (ret) {
		free(t->side);
		t->side = NULL;
		return ret;
	}
	t->side_dec = dec;
	t->side_len = (uint32_t)len;
	t->side_xxh = nwc_hash64(side, len);
	return 0;
}

int nwc_writer_add_tensor_extent(struct nwc_writer *w, uint32_t id,
				 uint32_t tensor, uint32_t nblocks,
				 uint8_t *const *payload, const size_t *len,
				 uint32_t *ext)
{
	const struct wtensor *t;
	struct nwc_codec_tensor ct;
	struct nwc_wextent e;
	uint32_t x, block_len, want;
	int ret;

	if (tensor >= w->n_tensors || !w->tensors[tensor].side)
		return -EINVAL;
	t = &w->tensors[tensor];
	codec_tensor(t, &ct);
	if (t->side_dec->tensor_geometry(&ct, t->side, &block_len, &want) ||
	    nblocks != want) {
		nwc_err("%s: tensor \"%.*s\": %s blocks do not match the tensor or its side record",
			w->path, (int)t->name_len, t->name, t->side_dec->name);
		return -EINVAL;
	}
	e = (struct nwc_wextent){
		.len = t->data_len,
		.block_len = block_len,
		.codec = t->side_dec->id,
		.codec_arg = 0,
		.tensor = tensor,
	};
	ret = nwc_writer_add_extent(w, id, &e, &x);
	for (uint32_t b = 0; !ret && b < nblocks; b++) {
		uint64_t start = (uint64_t)b * block_len;

		ret = nwc_writer_add_block(w, x, payload[b], len[b],
					   (uint32_t)NWC_MIN((uint64_t)block_len,
							     e.len - start));
	}
	if (!ret)
		*ext = x;
	return ret;
}

uint64_t nwc_writer_data_len(const struct nwc_writer *w)
{
	return w->pos - NWC_DATA_ALIGN;
}

/* qsort_r() comparators over node and tensor indices; @arg is the writer. */
static int cmp_child(const void *pa, const void *pb, void *arg)
{
	const struct nwc_writer *w = arg;
	const struct wnode *a = &w->nodes[*(const uint32_t *)pa];
	const struct wnode *b = &w->nodes[*(const uint32_t *)pb];

	return nwc_name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int cmp_tensor(const void *pa, const void *pb, void *arg)
{
	const struct nwc_writer *w = arg;
	const struct wtensor *a = &w->tensors[*(const uint32_t *)pa];
	const struct wtensor *b = &w->tensors[*(const uint32_t *)pb];
	uint32_t ia = w->nodes[a->file].ino;
	uint32_t ib = w->nodes[b->file].ino;

	if (ia != ib)
		return ia < ib ? -1 : 1;
	if (a->data_off != b->data_off)
		return a->data_off < b->data_off ? -1 : 1;
	return nwc_name_cmp(a->name, a->name_len, b->name, b->name_len);
}

/*
 * Number the nodes breadth first.  order[] receives node ids in inode order;
 * first_child[]/n_child[] describe each node's (sorted) child range in it.
 */
static int number_nodes(struct nwc_writer *w, uint32_t *order,
			uint32_t *first_child, uint32_t *n_child)
{
	uint32_t *cnt, *start, *kids;
	uint32_t head = 0, tail = 1;
	int ret = 0;

	cnt = calloc(w->n_nodes, sizeof(*cnt));
	start = calloc((size_t)w->n_nodes + 1, sizeof(*start));
	kids = calloc(w->n_nodes, sizeof(*kids));
	if (!cnt || !start || !kids) {
		ret = -ENOMEM;
		goto out_free;
	}
	/* Bucket children by parent (counting sort), then sort each bucket. */
	for (uint32_t i = 1; i < w->n_nodes; i++)
		cnt[w->nodes[i].parent]++;
	for (uint32_t i = 0; i < w->n_nodes; i++)
		start[i + 1] = start[i] + cnt[i];
	memset(cnt, 0, w->n_nodes * sizeof(*cnt));
	for (uint32_t i = 1; i < w->n_nodes; i++) {
		uint32_t p = w->nodes[i].parent;

		kids[start[p] + cnt[p]++] = i;
	}
	for (uint32_t i = 0; i < w->n_nodes; i++) {
		qsort_r(kids + start[i], cnt[i], sizeof(*kids), cmp_child, w);
		for (uint32_t k = 1; k < cnt[i]; k++) {
			const struct wnode *a = &w->nodes[kids[start[i] + k - 1]];
			const struct wnode *b = &w->nodes[kids[start[i] + k]];

			if (!nwc_name_cmp(a->name, a->name_len, b->name,
				      b->name_len)) {
				nwc_err("%s: duplicate name \"%.*s\" in one directory",
					w->path, (int)a->name_len, a->name);
				ret = -EEXIST;
				goto out_free;
			}
		}
	}
	order[0] = 0;
	w->nodes[0].ino = 0;
	while (head < tail) {
		uint32_t id = order[head++];

		first_child[id] = tail;
		n_child[id] = cnt[id];
		for (uint32_t k = 0; k < cnt[id]; k++) {
			uint32_t c = kids[start[id] + k];

			w->nodes[c].ino = tail;
			order[tail++] = c;
		}
	}
	if (tail != w->n_nodes)
		ret = -EINVAL;	/* unreachable: every parent precedes its child */
out_free:
	free(kids);
	free(start);
	free(cnt);
	return ret;
}

static int add_section(struct bytes *dir, struct nwc_writer *w, uint32_t type,
		       const struct bytes *body)
{
	uint8_t e[NWC_SECT_SIZE];
	static const uint8_t zeros[8];
	uint64_t pad = (8 - (w->pos & 7)) & 7;
	int ret;

	ret = put_data(w, zeros, pad);
	if (ret)
		return ret;
	nwc_rec_dirent_encode(&(struct nwc_rec_dirent){
				      .type = type,
				      .version = 1,
				      .off = w->pos,
				      .len = body->len,
				      .xxh = nwc_hash64(body->p, body->len),
			      },
			      e);
	ret = put_data(w, body->p, body->len);
	if (ret)
		return ret;
	return bytes_add(dir, e, sizeof(e), NULL);
}

/* The INFO body (format.h 11), tensors in their final order @torder. */
static int build_info(struct nwc_writer *w, const uint32_t *torder)
{
	uint8_t rec[NWC_INFO_ENT_SIZE];
	struct nwc_rec_info_hdr h = {
		.created = (uint64_t)w->created,
		.text_len = (uint32_t)w->info_len,
	};
	int ret;

	for (uint32_t i = 0; i < w->n_tensors; i++)
		h.count += w->tensors[i].has_err;
	ret = bytes_add(&w->info, NULL, NWC_INFO_HDR_SIZE, NULL);
	if (ret)
		return ret;
	nwc_rec_info_hdr_encode(&h, w->info.p);
	for (uint32_t i = 0; i < w->n_tensors && !ret; i++) {
		const struct wtensor *t = &w->tensors[torder[i]];
		struct nwc_rec_info_ent e = { .tensor = i };

		if (!t->has_err)
			continue;
		memcpy(&e.sig, &t->sig, sizeof(e.sig));
		memcpy(&e.err, &t->err, sizeof(e.err));
		nwc_rec_info_ent_encode(&e, rec);
		ret = bytes_add(&w->info, rec, sizeof(rec), NULL);
	}
	if (!ret)
		ret = bytes_add(&w->info, w->info_text, w->info_len, NULL);
	return ret;
}

int nwc_writer_set_info(struct nwc_writer *w, int64_t created,
			const char *text, size_t len)
{
	char *copy;

	if (len > NWC_INFO_TEXT_MAX || (len && memchr(text, '\0', len)))
		return -EINVAL;
	copy = malloc(NWC_MAX(len, 1));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	free(w->info_text);
	w->info_text = copy;
	w->info_len = len;
	w->created = created;
	w->has_info = true;
	return 0;
}

int nwc_writer_set_tensor_error(struct nwc_writer *w, uint32_t idx,
				double sig, double err)
{
	if (idx >= w->n_tensors || !(sig >= 0 && sig <= DBL_MAX) ||
	    !(err >= 0 && err <= DBL_MAX))
		return -EINVAL;
	w->tensors[idx].has_err = true;
	w->tensors[idx].sig = sig;
	w->tensors[idx].err = err;
	return 0;
}

/* Build the table sections into @sect (indexed by NWC_SECT_* - 1). */
static int build_tables(struct nwc_writer *w, struct bytes *sect)
{
	struct bytes *strs = &sect[NWC_SECT_STRINGS - 1];
	struct bytes *inodes = &sect[NWC_SECT_INODES - 1];
	struct bytes *exts = &sect[NWC_SECT_EXTENTS - 1];
	struct bytes *blocks = &sect[NWC_SECT_BLOCKS - 1];
	struct bytes *tens = &sect[NWC_SECT_TENSORS - 1];
	struct bytes *params = &sect[NWC_SECT_PARAMS - 1];
	uint32_t *order, *first_child, *n_child, *torder = NULL, *tnew = NULL;
	int ret;

	order = calloc(w->n_nodes, sizeof(*order));
	first_child = calloc(w->n_nodes, sizeof(*first_child));
	n_child = calloc(w->n_nodes, sizeof(*n_child));
	if (w->n_tensors) {
		torder = calloc(w->n_tensors, sizeof(*torder));
		tnew = calloc(w->n_tensors, sizeof(*tnew));
	}
	if (!order || !first_child || !n_child ||
	    (w->n_tensors && (!torder || !tnew))) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = number_nodes(w, order, first_child, n_child);
	if (ret)
		goto out_free;

	/* Tensors sorted by (inode, data offset): contiguous per file. */
	for (uint32_t i = 0; i < w->n_tensors; i++)
		torder[i] = i;
	if (w->n_tensors)
		qsort_r(torder, w->n_tensors, sizeof(*torder), cmp_tensor, w);
	for (uint32_t i = 0; i < w->n_tensors; i++)
		tnew[torder[i]] = i;

	ret = bytes_add(inodes, NULL, (size_t)w->n_nodes * NWC_INODE_SIZE, NULL);
	if (ret)
		goto out_free;
	for (uint32_t ino = 0; ino < w->n_nodes; ino++) {
		const struct wnode *n = &w->nodes[order[ino]];
		uint32_t name_off = 0, first = 0, count = 0;

		if (n->name_len) {
			ret = bytes_add(strs, n->name, n->name_len, &name_off);
			if (ret)
				goto out_free;
		}
		if (S_ISDIR(n->mode)) {
			first = first_child[order[ino]];
			count = n_child[order[ino]];
		} else if (S_ISREG(n->mode)) {
			first = n->first_ext;
			count = n->n_ext;
		} else {
			ret = bytes_add(strs, n->target, n->target_len, &first);
			if (ret)
				goto out_free;
			count = n->target_len;
		}
		nwc_rec_inode_encode(&(struct nwc_rec_inode){
					     .mode = n->mode,
					     .parent = w->nodes[n->parent].ino,
					     .name_off = name_off,
					     .name_len = n->name_len,
					     .mtime = n->mtime,
					     .mtime_ns = n->mtime_ns,
					     .flags = n->flags,
					     .size = S_ISDIR(n->mode) ? 0 : n->size,
					     .first = first,
					     .count = count,
				     },
				     inodes->p + (size_t)ino * NWC_INODE_SIZE);
	}

	ret = bytes_add(exts, NULL, (size_t)w->n_exts * NWC_EXTENT_SIZE, NULL);
	if (ret)
		goto out_free;
	for (uint32_t i = 0; i < w->n_exts; i++) {
		const struct wext *x = &w->exts[i];

		nwc_rec_extent_encode(&(struct nwc_rec_extent){
					      .file_off = x->file_off,
					      .len = x->len,
					      .first_block = x->first_block,
					      .nblocks = x->nblocks,
					      .block_len = x->block_len,
					      .codec = x->codec,
					      .codec_arg = x->codec_arg,
					      .tensor = x->tensor == NWC_NO_TENSOR ?
								NWC_NO_TENSOR :
								tnew[x->tensor],
				      },
				      exts->p + (size_t)i * NWC_EXTENT_SIZE);
	}

	ret = bytes_add(blocks, NULL, (size_t)w->n_blocks * NWC_BLOCK_SIZE, NULL);
	if (ret)
		goto out_free;
	for (uint32_t i = 0; i < w->n_blocks; i++) {
		const struct wblock *b = &w->blocks[i];

		nwc_rec_block_encode(&(struct nwc_rec_block){
					     .off = b->off,
					     .stored_len = b->stored_len,
					     .raw_len = b->raw_len,
					     .xxh = b->xxh,
				     },
				     blocks->p + (size_t)i * NWC_BLOCK_SIZE);
	}

	ret = bytes_add(tens, NULL, (size_t)w->n_tensors * NWC_TENSOR_SIZE, NULL);
	if (ret)
		goto out_free;
	for (uint32_t i = 0; i < w->n_tensors; i++) {
		const struct wtensor *t = &w->tensors[torder[i]];
		uint32_t name_off, shape_off = 0;

		ret = bytes_add(strs, t->name, t->name_len, &name_off);
		if (ret)
			goto out_free;
		if (t->ndim) {
			uint8_t dims[NWC_MAX_DIMS * 8];

			for (unsigned d = 0; d < t->ndim; d++)
				nwc_put_le64(dims + d * 8, t->shape[d]);
			ret = bytes_add(params, dims, t->ndim * 8u, &shape_off);
			if (ret)
				goto out_free;
		}
		nwc_rec_tensor_encode(&(struct nwc_rec_tensor){
					      .inode = w->nodes[t->file].ino,
					      .name_off = name_off,
					      .name_len = t->name_len,
					      .dtype = t->dtype,
					      .ndim = t->ndim,
					      .data_off = t->data_off,
					      .data_len = t->data_len,
					      .shape_off = shape_off,
					      .codec = t->codec,
					      .side_off = t->side_off,
					      .side_len = t->side_len,
					      .side_xxh = t->side_xxh,
				      },
				      tens->p + (size_t)i * NWC_TENSOR_SIZE);
	}
	if (w->has_info)
		ret = build_info(w, torder);
out_free:
	free(tnew);
	free(torder);
	free(n_child);
	free(first_child);
	free(order);
	return ret;
}

/*
 * Each codec's section, as its encoder lays it out, and the per-image
 * state its decoder opens from those bytes, as a reader will.
 */
static int build_codec_sections(struct nwc_writer *w, struct bytes *sect,
				void **dstate)
{
	const struct nwc_codec_set *set = w->codecs;

	for (unsigned i = 0; i < set->n_dec; i++) {
		const struct nwc_codec_dec *dec = set->dec[i];
		struct bytes *b;
		int ret;

		if (!dec->section)
			continue;
		assert(dec->section <= NWC_SECT_LAST);
		b = &sect[dec->section - 1];
		for (unsigned k = 0; k < set->n_enc; k++) {
			const struct nwc_codec_enc *enc = set->enc[k];

			if (enc->id != dec->id || !w->sstate[k] ||
			    !enc->sect_count(w->sstate[k]))
				continue;
			ret = enc->sect_build(w->sstate[k], &b->p, &b->len);
			if (ret)
				return ret;
			b->cap = b->len;
		}
		if (dec->open) {
			ret = dec->open(w->path, b->p, 0, b->len, &dstate[i]);
			if (ret)
				return ret;
		}
	}
	return 0;
}

/*
 * Side data only on tensors of the codec that parsed it, each fitting that
 * codec's section (for NWC: naming an embedded model that fits it).  Every
 * tensor of a tensor codec has side data: check_extent().
 */
static int check_sides(const struct nwc_writer *w, void *const *dstate)
{
	for (uint32_t i = 0; i < w->n_tensors; i++) {
		const struct wtensor *t = &w->tensors[i];
		const void *state = NULL;
		int ret;

		if (!t->side)
			continue;
		if (t->codec != t->side_dec->id) {
			nwc_err("%s: tensor \"%.*s\" has side data but codec %u",
				w->path, (int)t->name_len, t->name, t->codec);
			return -EINVAL;
		}
		for (unsigned k = 0; k < w->codecs->n_dec; k++)
			if (w->codecs->dec[k] == t->side_dec)
				state = dstate[k];
		ret = t->side_dec->side_check(state, t->side);
		if (ret) {
			nwc_err("%s: tensor \"%.*s\" does not fit the image's %s section: %s",
				w->path, (int)t->name_len, t->name,
				t->side_dec->name, nwc_strerror(ret));
			return -EINVAL;
		}
	}
	return 0;
}

static int write_super(struct nwc_writer *w, uint64_t dir_off,
		       const struct bytes *dir, uint64_t data_end,
		       uint64_t incompat)
{
	uint8_t sb[NWC_SB_SIZE];

	nwc_rec_super_encode(&(struct nwc_rec_super){
				     .version = NWC_VERSION,
				     .sb_size = NWC_SB_SIZE,
				     .compat = 0,
				     .incompat = incompat,
				     .image_size = w->pos,
				     .data_off = NWC_DATA_ALIGN,
				     .data_len = data_end - NWC_DATA_ALIGN,
				     .dir_off = dir_off,
				     .dir_count = (uint32_t)(dir->len /
							     NWC_SECT_SIZE),
				     .block_log2 = w->block_log2,
				     .dir_xxh = nwc_hash64(dir->p, dir->len),
				     .created_by = NWC_VERSION_CODE,
			     },
			     sb);
	return nwc_pwrite_full(w->fd, sb, sizeof(sb), 0);
}

int nwc_writer_finish(struct nwc_writer *w)
{
	struct bytes sect[NWC_SECT_LAST] = { { 0 } };
	struct bytes dir = { 0 };
	uint64_t data_end, dir_off, incompat = 0;
	void **dstate;
	int ret;

	dstate = calloc(w->codecs->n_dec ? w->codecs->n_dec : 1,
			sizeof(*dstate));
	if (!dstate) {
		ret = -ENOMEM;
		goto out_abort;
	}

	if (!last_extent_done(w)) {
		nwc_err("%s: internal error: extent %u is missing blocks",
			w->path, w->n_exts - 1);
		ret = -EINVAL;
		goto out_free;
	}
	ret = build_codec_sections(w, sect, dstate);
	if (!ret)
		ret = check_sides(w, dstate);
	if (!ret)
		ret = build_tables(w, sect);
	if (ret)
		goto out_free;
	data_end = w->pos;
	for (unsigned i = 0; i < NWC_ARRAY_SIZE(sect); i++) {
		const struct nwc_codec_dec *dec =
			nwc_codec_set_section(w->codecs, i + 1);

		/* A codec's section is written when it has items. */
		if (i + 1 > NWC_SECT_PARAMS && (!dec || !sect[i].len))
			continue;
		if (dec)
			incompat |= dec->incompat;
		ret = add_section(&dir, w, i + 1, &sect[i]);
		if (ret)
			goto out_free;
	}
	if (w->has_info) {
		ret = add_section(&dir, w, NWC_SECT_INFO, &w->info);
		if (ret)
			goto out_free;
	}
	incompat |= w->incompat;
	dir_off = w->pos;
	ret = put_data(w, dir.p, dir.len);
	if (!ret)
		ret = flush_wbuf(w);
	if (ret)	/* put_data() and flush_wbuf() log their failures */
		goto out_free;
	ret = write_super(w, dir_off, &dir, data_end, incompat);
	if (!ret && fsync(w->fd))
		ret = -errno;
	if (ret) {
		nwc_err("%s: write failed: %s", w->name, strerror(-ret));
		goto out_free;
	}
	if (!w->tmp_path) {
		ret = name_unnamed(w);
		if (ret)
			goto out_free;
	}
	if (close(w->fd)) {
		ret = -errno;
		w->fd = -1;
		nwc_err("%s: close failed: %s", w->name, strerror(-ret));
		goto out_free;
	}
	w->fd = -1;
	if (w->tmp_path && rename(w->tmp_path, w->path)) {
		ret = -errno;
		nwc_err("%s: cannot rename to %s: %s", w->tmp_path, w->path,
			strerror(-ret));
		goto out_free;
	}
	free(w->tmp_path);
	w->tmp_path = NULL;
out_free:
	for (unsigned i = 0; i < NWC_ARRAY_SIZE(sect); i++)
		free(sect[i].p);
	free(dir.p);
	for (unsigned k = 0; k < w->codecs->n_dec; k++)
		if (dstate[k])
			w->codecs->dec[k]->close(dstate[k]);
	free(dstate);
out_abort:
	nwc_writer_abort(w);
	return ret;
}

void nwc_writer_abort(struct nwc_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_path)
		unlink(w->tmp_path);
	for (uint32_t i = 0; i < w->n_nodes; i++) {
		free(w->nodes[i].name);
		free(w->nodes[i].target);
	}
	for (uint32_t i = 0; i < w->n_tensors; i++) {
		free(w->tensors[i].name);
		free(w->tensors[i].side);
	}
	for (unsigned k = 0; w->sstate && k < w->codecs->n_enc; k++)
		if (w->sstate[k])
			w->codecs->enc[k]->sect_free(w->sstate[k]);
	free(w->sstate);
	free(w->nodes);
	free(w->exts);
	free(w->blocks);
	free(w->tensors);
	free(w->wbuf);
	free(w->info_text);
	free(w->info.p);
	free(w->tmp_path);
	free(w->path);
	free(w);
}
