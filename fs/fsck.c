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

#include "codec/common/array.h"
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
	bool preserve_setid;	/* extract set-user/group-ID bits */
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
"Usage: fsck.nwc [OPTIONS] IMAGE [PATH...]\n"
"Verify every checksum of an nwc image; optionally list or extract it.\n"
"With PATHs (\"/dir/file\" in the image), only those files and the trees\n"
"of those directories.\n"
"\n"
"  -x, --extract=DIR   also write the tree into DIR (created; must be empty)\n"
"      --preserve-setid  keep set-user-ID and set-group-ID bits when\n"
"                      extracting (by default they are cleared)\n"
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

/*
 * The path of inode @ino ("/a/b"), printable (nwc_escape), of any depth.
 * Returns a malloc'd string, or NULL when out of memory.
 */
static char *inode_path(const struct nwc_image *img, uint32_t ino)
{
	char *raw = nwc_image_inode_path(img, ino), *out;

	if (!raw)
		return NULL;
	out = nwc_escape(raw, strlen(raw));
	free(raw);
	return out;
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

/* The mode bits an extracted entry gets: no set-id bits unless asked. */
static mode_t out_mode(const struct fsck *f, const struct nwc_inode *n)
{
	mode_t m = n->mode & 07777;

	return f->preserve_setid ? m : m & ~(mode_t)(S_ISUID | S_ISGID);
}

static void set_times_at(int dirfd, const char *name, const struct nwc_inode *n)
{
	struct timespec ts[2] = {
		{ .tv_sec = n->mtime, .tv_nsec = n->mtime_ns },
		{ .tv_sec = n->mtime, .tv_nsec = n->mtime_ns },
	};

	utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

/* A directory being walked: which child comes next. */
struct frame {
	uint32_t dir;
	uint32_t next;		/* child index */
	bool all;		/* every entry below is selected */
};

/* Fails the walk on an extraction error at @what (a printable path). */
static int out_err(struct fsck *f, const char *what)
{
	int ret = -errno;

	nwc_err("%s%s: %s", f->extract, what, strerror(errno));
	f->io_error = true;
	return ret;
}

/*
 * One entry @ino of the walk, in directory @cur (extracting) at @path:
 * a file is verified (and written), a symlink made; a directory is made
 * and entered (*@cur changes), the caller pushing its frame.
 */
static int visit(struct fsck *f, uint32_t ino, int *cur, const char *path)
{
	const struct nwc_inode *n = nwc_image_inode(f->img, ino);
	char name[NWC_NAME_MAX + 1], target[4097];
	int fd = -1, ret;

	memcpy(name, n->name, n->name_len);
	name[n->name_len] = '\0';
	if (S_ISDIR(n->mode)) {
		if (!f->extract)
			return 0;
		if (mkdirat(*cur, name, 0700))
			return out_err(f, path);
		fd = openat(*cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					O_CLOEXEC);
		if (fd < 0)
			return out_err(f, path);
		close(*cur);
		*cur = fd;
		return 0;
	}
	if (S_ISLNK(n->mode)) {
		if (!f->extract)
			return 0;
		memcpy(target, n->target, n->size);
		target[n->size] = '\0';
		if (symlinkat(target, *cur, name))
			return out_err(f, path);
		set_times_at(*cur, name, n);
		return 0;
	}
	if (f->extract) {
		fd = openat(*cur, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)n->size)) {
			ret = out_err(f, path);
			if (fd >= 0)
				close(fd);
			return ret;
		}
	}
	ret = check_file(f, ino, fd, path);
	if (fd < 0)
		return 0;
	if (!ret) {
		fchmod(fd, out_mode(f, n));
		set_times_at(*cur, name, n);
	}
	if (close(fd))
		return out_err(f, path);
	if (ret)
		unlinkat(*cur, name, 0);	/* damaged: leave it out */
	return 0;
}

/*
 * Verify, and extract into f->extract, the entries that @sel marks
 * (NULL: all): depth first in image order, iteratively with the
 * directories on a heap stack and only the current one open, so that no
 * depth exhausts the stack, PATH_MAX or the open files.  @sel[ino] is 2
 * for a selected entry (a directory with all below it), 1 for a
 * directory on the way to one.
 */
static int walk_tree(struct fsck *f, const uint8_t *sel)
{
	struct frame *st = NULL;
	size_t n = 0, cap = 0;
	int cur = -1, ret = 0;

	if (f->extract) {
		cur = open(f->extract, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cur < 0)
			return out_err(f, "");
	}
	ret = nwc_array_reserve((void **)&st, &cap, 1, sizeof(*st));
	if (ret)
		goto out_close;
	st[n++] = (struct frame){ .dir = 0, .all = !sel || sel[0] == 2 };
	while (n && !ret && !f->io_error) {
		struct frame *fr = &st[n - 1];
		const struct nwc_inode *d = nwc_image_inode(f->img, fr->dir);
		const struct nwc_inode *c;
		uint32_t ino;
		bool all;
		char *path;

		if (fr->next == d->count) {
			uint32_t dir = fr->dir;

			n--;
			if (f->extract && dir) {
				/* Back up; then the directory's own mode and
				 * times, after its entries are written. */
				char name[NWC_NAME_MAX + 1];
				int up = openat(cur, "..", O_RDONLY |
						O_DIRECTORY | O_CLOEXEC);

				if (up < 0) {
					ret = out_err(f, "/..");
					break;
				}
				close(cur);
				cur = up;
				memcpy(name, d->name, d->name_len);
				name[d->name_len] = '\0';
				fchmodat(cur, name, out_mode(f, d), 0);
				set_times_at(cur, name, d);
			}
			continue;
		}
		ino = d->first + fr->next++;
		all = fr->all;
		if (!all && !sel[ino])
			continue;
		all = all || sel[ino] == 2;
		c = nwc_image_inode(f->img, ino);
		path = inode_path(f->img, ino);
		if (!path) {
			ret = -ENOMEM;
			break;
		}
		ret = visit(f, ino, &cur, path);
		free(path);
		if (ret || !S_ISDIR(c->mode))
			continue;
		ret = nwc_array_reserve((void **)&st, &cap, n + 1, sizeof(*st));
		if (!ret)
			st[n++] = (struct frame){ .dir = ino, .all = all };
	}
	free(st);
out_close:
	if (cur >= 0)
		close(cur);
	if (ret == -ENOMEM)
		nwc_err("out of memory");
	return ret;
}

/*
 * Marks the entries named by the image paths @paths (and the directories
 * leading to them) in @sel; a path that is not in the image is an error.
 */
static int select_paths(const struct nwc_image *img, char **paths, int n,
			uint8_t *sel)
{
	for (int i = 0; i < n; i++) {
		uint32_t ino;
		int ret = nwc_image_resolve(img, paths[i], &ino);

		if (ret) {
			char *e = nwc_escape(paths[i], strlen(paths[i]));

			nwc_err("%s: not in the image: %s", e ? e : paths[i],
				nwc_strerror(ret));
			free(e);
			return ret;
		}
		sel[ino] = 2;
		while (ino) {
			ino = nwc_image_inode(img, ino)->parent;
			if (!sel[ino])
				sel[ino] = 1;
		}
	}
	return 0;
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
		uint64_t stored = nwc_image_tensor_stored(img, t);
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
		char *tname = nwc_escape(tn->name, tn->name_len);

		printf("    %-5s %-16s %14llu %14llu %6.1f%% %-10s %s\n",
		       nwc_dtype_name(tn->dtype), shape,
		       (unsigned long long)tn->data_len,
		       (unsigned long long)stored,
		       tn->data_len ? 100.0 * (double)stored /
					      (double)tn->data_len : 100.0,
		       tensor_codec(img, tn, name, sizeof(name)),
		       tname ? tname : "?");
		free(tname);
	}
}

static void list_image(const struct nwc_image *img, bool tensors)
{
	struct nwc_image_info info;
	uint64_t stored_total = 0;
	char name[32];

	nwc_image_get_info(img, &info);
	printf("%-10s %14s %14s %7s %-10s %s\n", "mode", "size", "stored",
	       "ratio", "codec", "path");
	for (uint32_t ino = 0; ino < info.n_inodes; ino++) {
		const struct nwc_inode *n = nwc_image_inode(img, ino);
		uint64_t stored = 0;
		const char *codec = "-";
		char *path = inode_path(img, ino), *target = NULL;

		if (S_ISLNK(n->mode))
			target = nwc_escape(n->target, n->size);
		if (!path || (S_ISLNK(n->mode) && !target)) {
			nwc_err("out of memory");
			free(path);
			free(target);
			return;
		}
		if (S_ISREG(n->mode)) {
			stored = nwc_image_file_stored(img, ino);
			stored_total += stored;
			if (n->count) {
				const struct nwc_extent *e =
					nwc_image_extent(img, n->first + n->count - 1);

				codec = nwc_image_codec_name(img, e->codec,
							     e->codec_arg, NULL,
							     name, sizeof(name));
				if (n->flags & NWC_INODE_F_SAFETENSORS)
					codec = "tensors";
				/* Lossy files say so, whatever else. */
				if (nwc_image_file_lossy(img, ino))
					codec = "LOSSY";
			}
		}
		printf("%c%04o      %14llu %14llu %6.1f%% %-10s %s%s%s\n",
		       S_ISDIR(n->mode) ? 'd' : S_ISLNK(n->mode) ? 'l' : '-',
		       n->mode & 07777, (unsigned long long)n->size,
		       (unsigned long long)stored,
		       S_ISREG(n->mode) && n->size ?
			       100.0 * (double)stored / (double)n->size : 100.0,
		       codec, path, target ? " -> " : "",
		       target ? target : "");
		free(path);
		free(target);
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
		{ "preserve-setid", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct fsck f = { 0 };
	bool list = false, tensors = false;
	struct nwc_image_info info;
	uint8_t *sel = NULL;
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
		case 'S':
			f.preserve_setid = true;
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
	if (argc - optind < 1) {
		nwc_err("expected an IMAGE (see --help)");
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
		if (argc - optind > 1)
			nwc_err("--list takes no PATH");
		else
			list_image(f.img, tensors);
		nwc_image_close(f.img);
		return argc - optind > 1 ? NWC_EXIT_USAGE : 0;
	}
	nwc_image_get_info(f.img, &info);
	if (argc - optind > 1) {
		sel = calloc(info.n_inodes, 1);
		if (!sel) {
			nwc_err("out of memory");
			nwc_image_close(f.img);
			return NWC_EXIT_IO;
		}
		if (select_paths(f.img, argv + optind + 1, argc - optind - 1,
				 sel)) {
			free(sel);
			nwc_image_close(f.img);
			return NWC_EXIT_USAGE;
		}
	}
	if (f.extract && prepare_extract_dir(f.extract)) {
		free(sel);
		nwc_image_close(f.img);
		return NWC_EXIT_IO;
	}
	f.buf = malloc(NWC_BLOCK_MAX);
	if (!f.buf || nwc_dctx_create(&f.dctx)) {
		nwc_err("out of memory");
		free(sel);
		nwc_image_close(f.img);
		return NWC_EXIT_IO;
	}
	if (walk_tree(&f, sel))
		f.io_error = true;
	if (f.extract && !f.io_error && (!sel || sel[0] == 2)) {
		chmod(f.extract, out_mode(&f, nwc_image_inode(f.img, 0)));
		set_times_at(AT_FDCWD, f.extract, nwc_image_inode(f.img, 0));
	}
	free(sel);
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
