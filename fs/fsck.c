/* SPDX-License-Identifier: MIT */
/*
 * fsck.c - main() of fsck.nwc: validate an image, read and decode every
 * block, report damage per file; optionally list the contents or extract
 * the tree without FUSE (the bytes are exactly those nwcfs serves).
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "codec/registry/codec.h"
#include "codec/image/image.h"
#include "codec/common/cli.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/registry/registry.h"


struct fsck {
	struct nwc_image *img;
	struct nwc_dctx *dctx;
	const char *extract;	/* output directory or NULL */
	bool quiet;
	uint8_t *buf;		/* one decoded block */
	uint32_t damaged_files;
	uint32_t damaged_blocks;
	uint64_t blocks_checked;
	bool io_error;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: fsck.nwc [OPTIONS] IMAGE\n"
"Verify every checksum of an nwc image; optionally list or extract it.\n"
"\n"
"  -x, --extract=DIR   also write the tree into DIR (created; must be empty)\n"
"  -l, --list          list files (mode, size, stored, ratio, codec, path)\n"
"                      instead of verifying\n"
"  -t, --tensors       with --list, also list the tensors of each\n"
"                      safetensors file (codec nwc/mN: lossy, model N)\n"
"  -q, --quiet         print only damage and errors\n"
"  -h, --help          show this help\n"
"  -V, --version       show the version\n"
"\n"
"Exit status: 0 image intact, 1 usage error, 2 I/O error, 3 damage found.\n");
}

/* Path of inode @ino, built by walking parents. */
static void inode_path(const struct nwc_image *img, uint32_t ino, char *buf,
		       size_t len)
{
	char tmp[PATH_MAX];
	size_t pos = sizeof(tmp) - 1;

	tmp[pos] = '\0';
	while (ino) {
		const struct nwc_inode *n = nwc_image_inode(img, ino);

		if (pos < n->name_len + 1)
			break;
		pos -= n->name_len;
		memcpy(tmp + pos, n->name, n->name_len);
		tmp[--pos] = '/';
		ino = n->parent;
	}
	snprintf(buf, len, "%s", pos == sizeof(tmp) - 1 ? "/" : tmp + pos);
}

/* Verify (and with @fd >= 0 write out) every block of file @ino. */
static int check_file(struct fsck *f, uint32_t ino, int fd, const char *path)
{
	const struct nwc_inode *n = nwc_image_inode(f->img, ino);
	int first_err = 0;

	for (uint32_t k = 0; k < n->count; k++) {
		const struct nwc_extent *e = nwc_image_extent(f->img, n->first + k);

		for (uint32_t j = 0; j < e->nblocks; j++) {
			uint32_t len = nwc_extent_block_len(e, j);
			uint64_t off = e->file_off + (uint64_t)j * e->block_len;
			int ret;

			ret = nwc_image_load_block(f->img, f->dctx, n->first + k,
						   j, f->buf, len);
			f->blocks_checked++;
			if (ret) {
				printf("DAMAGED %s: block %u, bytes %llu..%llu: %s\n",
				       path, e->first_block + j,
				       (unsigned long long)off,
				       (unsigned long long)(off + len - 1),
				       nwc_strerror(ret));
				f->damaged_blocks++;
				if (!first_err)
					first_err = ret;
				fd = -1;	/* stop writing a damaged file */
				continue;
			}
			if (fd >= 0) {
				ret = nwc_pwrite_full(fd, f->buf, len, off);
				if (ret) {
					nwc_err("%s: write failed: %s", path,
						strerror(-ret));
					f->io_error = true;
					return ret;
				}
			}
		}
	}
	if (first_err)
		f->damaged_files++;
	else if (!f->quiet)
		printf("ok      %s\n", path);
	return first_err;
}

static void set_times(const char *path, const struct nwc_inode *n)
{
	struct timespec ts[2] = {
		{ .tv_sec = n->mtime, .tv_nsec = n->mtime_ns },
		{ .tv_sec = n->mtime, .tv_nsec = n->mtime_ns },
	};

	utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

/* Extract or verify the subtree at directory @dir (paths under @out). */
static int walk_dir(struct fsck *f, uint32_t dir, const char *out)
{
	const struct nwc_inode *d = nwc_image_inode(f->img, dir);
	int ret = 0;

	for (uint32_t k = 0; k < d->count && !f->io_error; k++) {
		uint32_t ino = d->first + k;
		const struct nwc_inode *n = nwc_image_inode(f->img, ino);
		char path[PATH_MAX], dst[PATH_MAX];

		inode_path(f->img, ino, path, sizeof(path));
		if (f->extract &&
		    snprintf(dst, sizeof(dst), "%s/%.*s", out, (int)n->name_len,
			     n->name) >= (int)sizeof(dst)) {
			nwc_err("%s: path too long", path);
			f->io_error = true;
			return -ENAMETOOLONG;
		}
		if (S_ISDIR(n->mode)) {
			if (f->extract && mkdir(dst, 0700) && errno != EEXIST) {
				nwc_err("%s: %s", dst, strerror(errno));
				f->io_error = true;
				return -errno;
			}
			walk_dir(f, ino, dst);
			if (f->extract) {
				chmod(dst, n->mode & 07777);
				set_times(dst, n);
			}
		} else if (S_ISLNK(n->mode)) {
			char target[4097];

			if (!f->extract)
				continue;
			memcpy(target, n->target, n->size);
			target[n->size] = '\0';
			if (symlink(target, dst)) {
				nwc_err("%s: %s", dst, strerror(errno));
				f->io_error = true;
				return -errno;
			}
			set_times(dst, n);
		} else {
			int fd = -1;

			if (f->extract) {
				fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
					  0600);
				if (fd < 0 || ftruncate(fd, (off_t)n->size)) {
					nwc_err("%s: %s", dst, strerror(errno));
					f->io_error = true;
					if (fd >= 0)
						close(fd);
					return -errno;
				}
			}
			ret = check_file(f, ino, fd, path);
			if (fd >= 0) {
				if (close(fd)) {
					nwc_err("%s: %s", dst, strerror(errno));
					f->io_error = true;
				}
				if (ret)
					unlink(dst);	/* damaged: leave it out */
				else {
					chmod(dst, n->mode & 07777);
					set_times(dst, n);
				}
			}
		}
	}
	return 0;
}

/* Stored bytes of a tensor: its blocks plus its side data. */
static uint64_t tensor_stored(const struct nwc_image *img,
			      const struct nwc_tensor *t)
{
	if (t->extent == UINT32_MAX)
		return 0;
	return nwc_image_extent_stored(img, t->extent) + t->side_len;
}

/* Codec column of a tensor, as its codec names it ("nwc/m3"). */
static const char *tensor_codec(const struct nwc_image *img,
				const struct nwc_tensor *t, char *buf,
				size_t len)
{
	const struct nwc_extent *e;

	if (t->extent == UINT32_MAX)
		return "-";
	e = nwc_image_extent(img, t->extent);
	return nwc_image_codec_name(img, e->codec, e->codec_arg, t->side, buf,
				    len);
}

static void list_tensors(const struct nwc_image *img, uint32_t ino)
{
	uint32_t first, count;
	char name[32];

	nwc_image_file_tensors(img, ino, &first, &count);
	for (uint32_t t = first; t < first + count; t++) {
		const struct nwc_tensor *tn = nwc_image_tensor(img, t);
		uint64_t stored = tensor_stored(img, tn);
		char shape[128];
		size_t pos = 0;

		shape[pos++] = '[';
		for (unsigned d = 0; d < tn->ndim && pos < sizeof(shape) - 24;
		     d++)
			pos += (size_t)snprintf(shape + pos,
						sizeof(shape) - pos, "%s%llu",
						d ? "," : "",
						(unsigned long long)tn->shape[d]);
		snprintf(shape + pos, sizeof(shape) - pos, "]");
		printf("    %-5s %-16s %14llu %14llu %6.1f%% %-10s %.*s\n",
		       nwc_dtype_name(tn->dtype), shape,
		       (unsigned long long)tn->data_len,
		       (unsigned long long)stored,
		       tn->data_len ? 100.0 * (double)stored /
					      (double)tn->data_len : 100.0,
		       tensor_codec(img, tn, name, sizeof(name)),
		       (int)tn->name_len, tn->name);
	}
}

static void list_image(const struct nwc_image *img, bool tensors)
{
	struct nwc_image_info info;
	char path[PATH_MAX], name[32];
	uint64_t stored_total = 0;

	nwc_image_get_info(img, &info);
	printf("%-10s %14s %14s %7s %-10s %s\n", "mode", "size", "stored",
	       "ratio", "codec", "path");
	for (uint32_t ino = 0; ino < info.n_inodes; ino++) {
		const struct nwc_inode *n = nwc_image_inode(img, ino);
		uint64_t stored = 0;
		const char *codec = "-";

		inode_path(img, ino, path, sizeof(path));
		if (S_ISREG(n->mode)) {
			uint32_t first, count;

			for (uint32_t k = 0; k < n->count; k++)
				stored += nwc_image_extent_stored(img, n->first + k);
			nwc_image_file_tensors(img, ino, &first, &count);
			for (uint32_t t = first; t < first + count; t++)
				stored += nwc_image_tensor(img, t)->side_len;
			stored_total += stored;
			if (n->count) {
				const struct nwc_extent *e =
					nwc_image_extent(img, n->first + n->count - 1);

				codec = nwc_image_codec_name(img, e->codec,
							     e->codec_arg, NULL,
							     name, sizeof(name));
				if (n->flags & NWC_INODE_F_SAFETENSORS)
					codec = "tensors";
			}
		}
		printf("%c%04o      %14llu %14llu %6.1f%% %-10s %s%s%.*s\n",
		       S_ISDIR(n->mode) ? 'd' : S_ISLNK(n->mode) ? 'l' : '-',
		       n->mode & 07777, (unsigned long long)n->size,
		       (unsigned long long)stored,
		       S_ISREG(n->mode) && n->size ?
			       100.0 * (double)stored / (double)n->size : 100.0,
		       codec, path, S_ISLNK(n->mode) ? " -> " : "",
		       S_ISLNK(n->mode) ? (int)n->size : 0,
		       S_ISLNK(n->mode) ? n->target : "");
		if (tensors && (n->flags & NWC_INODE_F_SAFETENSORS))
			list_tensors(img, ino);
	}
	nwc_image_print_codecs(img, stdout);
	printf("%d inodes, %llu bytes in files, %llu stored (%.1f%%), image %llu bytes\n",
	       (int)info.n_inodes, (unsigned long long)info.total_size,
	       (unsigned long long)stored_total,
	       info.total_size ? 100.0 * (double)stored_total /
					 (double)info.total_size : 100.0,
	       (unsigned long long)info.image_size);
}

static int prepare_extract_dir(const char *dir)
{
	if (mkdir(dir, 0755) && errno != EEXIST) {
		nwc_err("%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (rmdir(dir) == 0 || errno == ENOENT)	/* empty: recreate it */
		return mkdir(dir, 0755) ? -errno : 0;
	nwc_err("%s: extraction directory is not empty", dir);
	return -ENOTEMPTY;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "extract", required_argument, NULL, 'x' },
		{ "list", no_argument, NULL, 'l' },
		{ "tensors", no_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct fsck f = { 0 };
	bool list = false, tensors = false;
	struct nwc_image_info info;
	int c, ret;

	nwc_log_set_prefix("fsck.nwc");
	while ((c = getopt_long(argc, argv, "x:ltqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'x':
			f.extract = optarg;
			break;
		case 'l':
			list = true;
			break;
		case 't':
			tensors = true;
			break;
		case 'q':
			f.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("fsck.nwc (nwcfs) %s, image format %u\n",
			       PACKAGE_VERSION, NWC_VERSION);
			return 0;
		default:
			usage(stderr);
			return NWC_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		nwc_err("expected one IMAGE (see --help)");
		return NWC_EXIT_USAGE;
	}
	if (list && f.extract) {
		nwc_err("--list and --extract do not go together");
		return NWC_EXIT_USAGE;
	}
	if (tensors && !list) {
		nwc_err("--tensors needs --list");
		return NWC_EXIT_USAGE;
	}
	ret = nwc_image_open(argv[optind], nwc_codecs_read(), &f.img);
	if (ret)
		return ret == -NWC_ECORRUPT || ret == -NWC_ECHECKSUM ||
		       ret == -NWC_EFEATURE ? NWC_EXIT_DATA : NWC_EXIT_IO;
	if (list) {
		list_image(f.img, tensors);
		nwc_image_close(f.img);
		return 0;
	}
	if (f.extract && prepare_extract_dir(f.extract)) {
		nwc_image_close(f.img);
		return NWC_EXIT_IO;
	}
	f.buf = malloc(NWC_BLOCK_MAX);
	if (!f.buf || nwc_dctx_create(&f.dctx)) {
		nwc_err("out of memory");
		nwc_image_close(f.img);
		return NWC_EXIT_IO;
	}
	walk_dir(&f, 0, f.extract);
	if (f.extract && !f.io_error) {
		chmod(f.extract, nwc_image_inode(f.img, 0)->mode & 07777);
		set_times(f.extract, nwc_image_inode(f.img, 0));
	}
	nwc_image_get_info(f.img, &info);
	if (!f.quiet || f.damaged_files)
		printf("%s: %u inodes, %llu blocks checked, %u damaged blocks in %u files\n",
		       argv[optind], info.n_inodes,
		       (unsigned long long)f.blocks_checked, f.damaged_blocks,
		       f.damaged_files);
	nwc_dctx_free(f.dctx);
	free(f.buf);
	nwc_image_close(f.img);
	if (f.io_error)
		return NWC_EXIT_IO;
	return f.damaged_files ? NWC_EXIT_DATA : 0;
}
