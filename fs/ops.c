/* SPDX-License-Identifier: MIT */
/*
 * ops.c - FUSE callbacks: getattr, readlink, readdir, open, read, release,
 * statfs, and the read-only extended attributes.  The one place where project errors become errnos for the kernel:
 * a damaged block is EIO for that read; everything else passes through.
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>

#include "codec/common/cli.h"
#include "codec/common/log.h"
#include "fs/ops.h"

/* The image never changes: let the kernel cache everything for a year. */
#define NWCFS_TIMEOUT (365.0 * 86400)

struct nwcfs_ctx {
	const char *mountpoint;	/* for the readahead, or NULL */
	struct nwc_engine *eng;
	const struct nwc_image *img;
	uid_t uid;
	gid_t gid;
	uint64_t *stored;	/* per inode: stored bytes, for st_blocks */
	uint32_t *subdirs;	/* per inode: child directories, for st_nlink */
	uint32_t blksize;
};

/* An open regular file. */
struct nwcfs_file {
	uint32_t ino;
	struct nwc_stream stream;
};

static struct nwcfs_ctx *ctx_get(void)
{
	return fuse_get_context()->private_data;
}

static int to_fuse_err(int err)
{
	if (err == -NWC_ECHECKSUM || err == -NWC_ECORRUPT ||
	    err == -NWC_EFEATURE || err == -NWC_EFORMAT)
		return -EIO;
	return err;
}

void nwcfs_ctx_set_mountpoint(struct nwcfs_ctx *ctx, const char *mnt)
{
	ctx->mountpoint = mnt;
}

int nwcfs_ctx_create(struct nwc_engine *eng, uid_t uid, gid_t gid,
		     struct nwcfs_ctx **out)
{
	struct nwc_image_info info;
	struct nwcfs_ctx *ctx;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->eng = eng;
	ctx->img = nwc_engine_image(eng);
	ctx->uid = uid;
	ctx->gid = gid;
	nwc_image_get_info(ctx->img, &info);
	ctx->blksize = info.block_log2 >= NWC_BLOCK_LOG2_MIN &&
				       info.block_log2 <= NWC_BLOCK_LOG2_MAX ?
			       1u << info.block_log2 : 1u << 20;
	ctx->stored = calloc(info.n_inodes, sizeof(*ctx->stored));
	ctx->subdirs = calloc(info.n_inodes, sizeof(*ctx->subdirs));
	if (!ctx->stored || !ctx->subdirs) {
		nwcfs_ctx_free(ctx);
		return -ENOMEM;
	}
	for (uint32_t ino = 0; ino < info.n_inodes; ino++) {
		const struct nwc_inode *n = nwc_image_inode(ctx->img, ino);

		if (S_ISREG(n->mode))
			for (uint32_t k = 0; k < n->count; k++)
				ctx->stored[ino] += nwc_image_extent_stored(ctx->img,
									    n->first + k);
		if (ino && S_ISDIR(n->mode))
			ctx->subdirs[n->parent]++;
	}
	*out = ctx;
	return 0;
}

void nwcfs_ctx_free(struct nwcfs_ctx *ctx)
{
	if (!ctx)
		return;
	free(ctx->stored);
	free(ctx->subdirs);
	free(ctx);
}

static void fill_stat(const struct nwcfs_ctx *ctx, uint32_t ino,
		      struct stat *st)
{
	const struct nwc_inode *n = nwc_image_inode(ctx->img, ino);

	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)ino + 1;	/* FUSE reserves 1 for the root */
	st->st_mode = n->mode;
	st->st_nlink = S_ISDIR(n->mode) ? 2 + ctx->subdirs[ino] : 1;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	st->st_size = S_ISDIR(n->mode) ? 0 : (off_t)n->size;
	st->st_blksize = ctx->blksize;
	/* du(1) shows what the file really occupies in the image. */
	st->st_blocks = (blkcnt_t)((ctx->stored[ino] + 511) / 512);
	st->st_mtim.tv_sec = n->mtime;
	st->st_mtim.tv_nsec = n->mtime_ns;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/*
 * Raises the kernel's readahead for this mount to NWCFS_READAHEAD_KB, so
 * that a sequential reader asks for 1 MiB at a time (the bdi starts at
 * 128 KiB); root only, and best effort.  In a thread of its own: the
 * stat of the mount point is a request this daemon serves.
 */
#define NWCFS_READAHEAD_KB 4096u

static void *raise_readahead(void *arg)
{
	struct nwcfs_ctx *ctx = arg;
	char path[96];
	struct stat st;
	FILE *f;

	if (!ctx->mountpoint || stat(ctx->mountpoint, &st))
		return NULL;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major(st.st_dev), minor(st.st_dev));
	f = fopen(path, "we");
	if (!f)
		return NULL;
	if (fprintf(f, "%u\n", NWCFS_READAHEAD_KB) < 0 || fclose(f))
		nwc_dbg("%s: cannot raise the readahead", path);
	else
		nwc_dbg("%s: readahead %u KiB", path, NWCFS_READAHEAD_KB);
	return NULL;
}

static void *nwcfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct nwcfs_ctx *ctx = ctx_get();
	pthread_t tid;
	int ret;

	/* Requests of up to 1 MiB: libfuse sizes max_pages by max_write. */
	conn->max_write = NWCFS_MAX_REQUEST;
	conn->max_read = NWCFS_MAX_REQUEST;
	conn->max_readahead = NWCFS_MAX_REQUEST;
	if (!pthread_create(&tid, NULL, raise_readahead, ctx))
		pthread_detach(tid);
	/* Here, not in main(): this runs after fuse_main() has daemonized. */
	ret = nwc_engine_start(ctx->eng);
	if (ret)
		nwc_warn("cannot start prefetch workers (%s); reads go on without prefetch",
			 nwc_strerror(ret));
	cfg->kernel_cache = 1;
	cfg->use_ino = 1;
	cfg->entry_timeout = NWCFS_TIMEOUT;
	cfg->attr_timeout = NWCFS_TIMEOUT;
	cfg->negative_timeout = NWCFS_TIMEOUT;
	return ctx;
}

static int nwcfs_getattr(const char *path, struct stat *st,
			 struct fuse_file_info *fi)
{
	struct nwcfs_ctx *ctx = ctx_get();
	uint32_t ino;
	int ret;

	if (fi && fi->fh) {
		fill_stat(ctx, ((struct nwcfs_file *)(uintptr_t)fi->fh)->ino, st);
		return 0;
	}
	ret = nwc_image_resolve(ctx->img, path, &ino);
	if (ret)
		return ret;
	fill_stat(ctx, ino, st);
	return 0;
}

static int nwcfs_readlink(const char *path, char *buf, size_t size)
{
	struct nwcfs_ctx *ctx = ctx_get();
	const struct nwc_inode *n;
	uint32_t ino;
	size_t len;
	int ret;

	ret = nwc_image_resolve(ctx->img, path, &ino);
	if (ret)
		return ret;
	n = nwc_image_inode(ctx->img, ino);
	if (!S_ISLNK(n->mode))
		return -EINVAL;
	if (!size)
		return -EINVAL;
	len = NWC_MIN((size_t)n->size, size - 1);
	memcpy(buf, n->target, len);
	buf[len] = '\0';
	return 0;
}

static int nwcfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
			 off_t off, struct fuse_file_info *fi,
			 enum fuse_readdir_flags flags)
{
	struct nwcfs_ctx *ctx = ctx_get();
	const struct nwc_inode *d;
	uint32_t ino;
	int ret;

	(void)off;
	(void)fi;
	(void)flags;
	ret = nwc_image_resolve(ctx->img, path, &ino);
	if (ret)
		return ret;
	d = nwc_image_inode(ctx->img, ino);
	if (!S_ISDIR(d->mode))
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	for (uint32_t k = 0; k < d->count; k++) {
		const struct nwc_inode *c = nwc_image_inode(ctx->img, d->first + k);
		char name[NWC_NAME_MAX + 1];
		struct stat st;

		memcpy(name, c->name, c->name_len);
		name[c->name_len] = '\0';
		fill_stat(ctx, d->first + k, &st);
		if (fill(buf, name, &st, 0, FUSE_FILL_DIR_PLUS))
			break;
	}
	return 0;
}

static int nwcfs_open(const char *path, struct fuse_file_info *fi)
{
	struct nwcfs_ctx *ctx = ctx_get();
	struct nwcfs_file *f;
	uint32_t ino;
	int ret;

	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	ret = nwc_image_resolve(ctx->img, path, &ino);
	if (ret)
		return ret;
	if (!S_ISREG(nwc_image_inode(ctx->img, ino)->mode))
		return -EISDIR;
	nwc_dbg("open %s", path);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->ino = ino;
	nwc_stream_init(&f->stream);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = 1;	/* content never changes: keep the page cache */
	return 0;
}

static int nwcfs_read(const char *path, char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct nwcfs_ctx *ctx = ctx_get();
	struct nwcfs_file *f = (struct nwcfs_file *)(uintptr_t)fi->fh;
	ssize_t n;

	(void)path;
	if (off < 0)
		return -EINVAL;
	n = nwc_engine_read(ctx->eng, f->ino, buf, size, (uint64_t)off,
			    &f->stream);
	return n < 0 ? to_fuse_err((int)n) : (int)n;
}

static int nwcfs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	free((struct nwcfs_file *)(uintptr_t)fi->fh);
	return 0;
}

/*
 * Extended attributes, read-only: what a file is (user.nwc.codec, and for
 * a lossy one its bits per weight and SQNR), how the image was made (on
 * the root), and the daemon's counters (user.nwcfs.stats on the root).
 * Each is printed text without a trailing newline, except stats (lines).
 */
enum xattr {
	XA_CODEC, XA_LOSSY, XA_BITS, XA_SQNR,		/* regular files */
	XA_CREATED, XA_TOOL, XA_COMMAND, XA_STATS,	/* the root */
	XA_N,
};

static const char *const xattr_names[XA_N] = {
	[XA_CODEC] = "user.nwc.codec",
	[XA_LOSSY] = "user.nwc.lossy",
	[XA_BITS] = "user.nwc.bits_per_weight",
	[XA_SQNR] = "user.nwc.sqnr_db",
	[XA_CREATED] = "user.nwc.created",
	[XA_TOOL] = "user.nwc.tool",
	[XA_COMMAND] = "user.nwc.command",
	[XA_STATS] = "user.nwcfs.stats",
};

/* Writes attribute @a of @ino to @buf (@cap bytes); its length, or
 * -ENODATA when @ino has no such attribute. */
static int xattr_value(struct nwcfs_ctx *ctx, uint32_t ino, enum xattr a,
		       char *buf, size_t cap)
{
	const struct nwc_inode *n = nwc_image_inode(ctx->img, ino);
	struct nwc_engine_stats es;
	struct nwc_fidelity fd;
	const char *v;
	int64_t created;
	size_t len;
	int w = -ENODATA;

	if (a <= XA_SQNR) {
		if (!S_ISREG(n->mode))
			return -ENODATA;
		nwc_image_file_fidelity(ctx->img, ino, &fd);
	}
	switch (a) {
	case XA_CODEC:
		nwc_image_file_codecs(ctx->img, ino, buf, cap);
		w = (int)strlen(buf);
		break;
	case XA_LOSSY:
		w = snprintf(buf, cap, "%s", fd.lossy ? "yes" : "no");
		break;
	case XA_BITS:
		if (fd.weights)
			w = snprintf(buf, cap, "%.3f",
				     8.0 * (double)fd.stored /
					     (double)fd.weights);
		break;
	case XA_SQNR:
		if (fd.with_err && fd.with_err == fd.tensors)
			w = fd.err > 0 ? snprintf(buf, cap, "%.2f",
						  10 * log10(fd.sig / fd.err)) :
					 snprintf(buf, cap, "inf");
		break;
	case XA_CREATED:
		if (!ino && !nwc_image_made(ctx->img, &created, &v, &len))
			w = (int)nwc_format_utc(created, buf, cap);
		break;
	case XA_TOOL:
	case XA_COMMAND:
		if (!ino && (v = nwc_image_made_value(ctx->img,
						      a == XA_TOOL ? "tool" :
								     "command",
						      &len)))
			w = snprintf(buf, cap, "%.*s", (int)len, v);
		break;
	case XA_STATS:
		if (ino)
			break;
		nwc_engine_get_stats(ctx->eng, &es);
		w = snprintf(buf, cap,
			     "bytes_served=%llu\nblocks_decoded=%llu\n"
			     "cache_hits=%llu\ncache_misses=%llu\n"
			     "cache_waits=%llu\ncache_evictions=%llu\n"
			     "cache_used_up=%llu\n"
			     "cache_bytes=%llu\nprefetched=%llu\n"
			     "decode_cpu_seconds=%.3f\nerrors=%llu\n",
			     (unsigned long long)es.bytes_served,
			     (unsigned long long)es.decoded,
			     (unsigned long long)es.hits,
			     (unsigned long long)es.misses,
			     (unsigned long long)es.waits,
			     (unsigned long long)es.evictions,
			     (unsigned long long)es.used_up,
			     (unsigned long long)es.cache_bytes,
			     (unsigned long long)es.prefetched,
			     (double)es.decode_ns / 1e9,
			     (unsigned long long)es.read_errors);
		break;
	case XA_N:
		break;
	}
	return w;
}

#define XATTR_MAX 8192u		/* longer than any value above */

static int nwcfs_getxattr(const char *path, const char *name, char *value,
			  size_t size)
{
	struct nwcfs_ctx *ctx = ctx_get();
	char buf[XATTR_MAX];
	uint32_t ino;
	int ret, a;

	ret = nwc_image_resolve(ctx->img, path, &ino);
	if (ret)
		return ret;
	for (a = 0; a < XA_N && strcmp(name, xattr_names[a]); a++)
		;
	if (a == XA_N)
		return -ENODATA;
	ret = xattr_value(ctx, ino, (enum xattr)a, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	ret = NWC_MIN(ret, (int)sizeof(buf) - 1);
	if (!size)
		return ret;
	if ((size_t)ret > size)
		return -ERANGE;
	memcpy(value, buf, (size_t)ret);
	return ret;
}

static int nwcfs_listxattr(const char *path, char *list, size_t size)
{
	struct nwcfs_ctx *ctx = ctx_get();
	char buf[XATTR_MAX];
	size_t len = 0;
	uint32_t ino;
	int ret;

	ret = nwc_image_resolve(ctx->img, path, &ino);
	if (ret)
		return ret;
	for (int a = 0; a < XA_N; a++) {
		size_t n = strlen(xattr_names[a]) + 1;

		if (xattr_value(ctx, ino, (enum xattr)a, buf, sizeof(buf)) < 0)
			continue;
		if (size && len + n > size)
			return -ERANGE;
		if (size)
			memcpy(list + len, xattr_names[a], n);
		len += n;
	}
	return (int)len;
}

static int nwcfs_setxattr(const char *path, const char *name,
			  const char *value, size_t size, int flags)
{
	(void)path, (void)name, (void)value, (void)size, (void)flags;
	return -EROFS;
}

static int nwcfs_removexattr(const char *path, const char *name)
{
	(void)path, (void)name;
	return -EROFS;
}

static int nwcfs_statfs(const char *path, struct statvfs *sv)
{
	struct nwcfs_ctx *ctx = ctx_get();
	struct nwc_image_info info;

	(void)path;
	nwc_image_get_info(ctx->img, &info);
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_blocks = (fsblkcnt_t)((info.image_size + 4095) / 4096);
	sv->f_files = info.n_inodes;
	sv->f_namemax = NWC_NAME_MAX;
	sv->f_flag = ST_RDONLY;
	return 0;
}

const struct fuse_operations nwcfs_ops = {
	.init = nwcfs_init,
	.getattr = nwcfs_getattr,
	.readlink = nwcfs_readlink,
	.readdir = nwcfs_readdir,
	.open = nwcfs_open,
	.read = nwcfs_read,
	.release = nwcfs_release,
	.statfs = nwcfs_statfs,
	.getxattr = nwcfs_getxattr,
	.listxattr = nwcfs_listxattr,
	.setxattr = nwcfs_setxattr,
	.removexattr = nwcfs_removexattr,
};
