/* SPDX-License-Identifier: MIT */
/*
 * pack.c - plan, compress in parallel, write in order.
 *
 * The plan lists every block of every file in image order.  Workers claim
 * blocks from that list and compress them; the main thread waits for each
 * block in turn and passes it to the writer.  Workers stay at most WINDOW
 * blocks ahead of the writer, which bounds memory to WINDOW payloads.
 */
#include "codec/nwc.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/codec.h"
#include "codec/io.h"
#include "codec/log.h"
#include "codec/safetensors.h"
#include "codec/writer.h"
#include "mkfs/pack.h"
#include "mkfs/progress.h"

/* One extent of a file: a byte range and how to store it. */
struct seg {
	uint64_t off;
	uint64_t len;
	uint16_t codec;
	uint32_t arg;
	int32_t tensor;		/* index in the file's nwc_st, or -1 */
};

struct fplan {
	uint32_t entry;		/* tree entry */
	char *path;		/* full source path */
	struct nwc_st *st;	/* parsed header, safetensors files only */
	struct seg *segs;
	uint32_t n_segs;
};

struct job {
	uint32_t file;		/* index into plan files */
	uint64_t off;
	uint32_t len;
	uint16_t codec;
	uint32_t arg;
	uint8_t *out;		/* payload, owned until written */
	size_t out_len;
	int err;
	bool single;		/* the only block of its extent */
	bool raw;		/* stored verbatim: compression did not help */
	bool done;
};

struct pipe {
	const struct nwc_pack_opts *opts;
	struct fplan *files;
	struct job *jobs;
	size_t n_jobs;
	size_t next;		/* next job to claim */
	size_t consumed;	/* jobs handed to the writer */
	size_t window;
	bool stop;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;	/* a job finished */
	pthread_cond_t space_cond;	/* the writer consumed a job */
};

static bool is_safetensors(const char *name)
{
	size_t n = strlen(name);

	return n > 12 && !strcmp(name + n - 12, ".safetensors");
}

static int add_seg(struct fplan *f, uint32_t *cap, uint64_t off, uint64_t len,
		   uint16_t codec, uint32_t arg, int32_t tensor)
{
	if (!len)
		return 0;
	if (f->n_segs == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 8;
		void *p = realloc(f->segs, ncap * sizeof(*f->segs));

		if (!p)
			return -ENOMEM;
		f->segs = p;
		*cap = ncap;
	}
	f->segs[f->n_segs++] = (struct seg){ off, len, codec, arg, tensor };
	return 0;
}

/* Read and parse a safetensors header; plan header, tensors and gaps. */
static int plan_safetensors(struct fplan *f, uint64_t size, uint32_t *cap)
{
	uint64_t pos;
	int fd, ret;

	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		nwc_err("%s: %s", f->path, strerror(errno));
		return ret;
	}
	ret = nwc_st_read_fd(fd, size, f->path, &f->st);
	if (ret)
		goto out_close;
	ret = add_seg(f, cap, 0, f->st->data_off, NWC_CODEC_ZSTD, 1, -1);
	pos = f->st->data_off;
	for (size_t i = 0; !ret && i < f->st->n_tensors; i++) {
		const struct nwc_st_tensor *t = &f->st->tensors[i];
		uint64_t b = f->st->data_off + t->begin;

		if (t->end == t->begin)
			continue;
		if (b > pos)	/* bytes no tensor claims: kept verbatim */
			ret = add_seg(f, cap, pos, b - pos, NWC_CODEC_ZSTD, 1, -1);
		if (!ret)
			ret = add_seg(f, cap, b, t->end - t->begin,
				      NWC_CODEC_ZSTD,
				      nwc_codec_arg_for_dtype(t->dtype),
				      (int32_t)i);
		pos = b + (t->end - t->begin);
	}
	if (!ret && pos < size)
		ret = add_seg(f, cap, pos, size - pos, NWC_CODEC_ZSTD, 1, -1);
out_close:
	close(fd);
	return ret;
}

static int plan_files(const char *root, const struct nwc_tree *tree,
		      struct fplan **out, uint32_t *n_out)
{
	struct fplan *files;
	uint32_t n = 0;
	int ret = 0;

	files = calloc(tree->n_files ? tree->n_files : 1, sizeof(*files));
	if (!files)
		return -ENOMEM;
	for (uint32_t i = 0; i < tree->n && !ret; i++) {
		const struct nwc_entry *e = &tree->e[i];
		struct fplan *f;
		uint32_t cap = 0;
		size_t len;

		if (!S_ISREG(e->mode))
			continue;
		f = &files[n++];
		f->entry = i;
		len = strlen(root) + strlen(e->path) + 2;
		f->path = malloc(len);
		if (!f->path) {
			ret = -ENOMEM;
			break;
		}
		snprintf(f->path, len, "%s/%s", root, e->path);
		if (is_safetensors(e->name))
			ret = plan_safetensors(f, e->size, &cap);
		else
			ret = add_seg(f, &cap, 0, e->size, NWC_CODEC_ZSTD, 1, -1);
	}
	*out = files;
	*n_out = n;
	return ret;
}

static void free_plan(struct fplan *files, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free(files[i].path);
		free(files[i].segs);
		nwc_st_free(files[i].st);
	}
	free(files);
}

static int make_jobs(struct pipe *p, uint32_t n_files, uint32_t block_len)
{
	size_t n = 0, k = 0;

	for (uint32_t f = 0; f < n_files; f++)
		for (uint32_t s = 0; s < p->files[f].n_segs; s++)
			n += (p->files[f].segs[s].len + block_len - 1) / block_len;
	p->jobs = calloc(n ? n : 1, sizeof(*p->jobs));
	if (!p->jobs)
		return -ENOMEM;
	for (uint32_t f = 0; f < n_files; f++) {
		for (uint32_t s = 0; s < p->files[f].n_segs; s++) {
			const struct seg *g = &p->files[f].segs[s];

			for (uint64_t o = 0; o < g->len; o += block_len) {
				struct job *j = &p->jobs[k++];

				j->file = f;
				j->off = g->off + o;
				j->len = (uint32_t)NWC_MIN((uint64_t)block_len,
							   g->len - o);
				j->codec = g->codec;
				j->arg = g->arg;
				j->single = g->len <= block_len;
			}
		}
	}
	p->n_jobs = n;
	return 0;
}

/* Worker-local state: a context, an input buffer and one open file. */
struct worker {
	pthread_t tid;
	struct pipe *p;
	struct nwc_cctx *cctx;
	uint8_t *in;
	int fd;
	uint32_t fd_file;
};

static int run_job(struct worker *w, struct job *j)
{
	const struct fplan *f = &w->p->files[j->file];
	size_t cap = nwc_codec_bound(j->codec, j->arg, j->len);
	ssize_t n;
	int ret;

	if (w->fd < 0 || w->fd_file != j->file) {
		if (w->fd >= 0)
			close(w->fd);
		w->fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (w->fd < 0) {
			ret = -errno;
			nwc_err("%s: %s", f->path, strerror(errno));
			return ret;
		}
		w->fd_file = j->file;
	}
	ret = nwc_pread_full(w->fd, w->in, j->len, j->off);
	if (ret) {
		nwc_err("%s: read failed at offset %llu: %s%s", f->path,
			(unsigned long long)j->off, nwc_strerror(ret),
			ret == -NWC_ECORRUPT ? " (file shrank while packing?)" : "");
		return ret == -NWC_ECORRUPT ? -EIO : ret;
	}
	j->out = malloc(cap);
	if (!j->out)
		return -ENOMEM;
	n = nwc_codec_encode(w->cctx, j->codec, j->arg, w->in, j->len, j->out,
			     cap);
	if (n < 0) {
		nwc_err("%s: cannot compress block at offset %llu: %s", f->path,
			(unsigned long long)j->off, nwc_strerror((int)n));
		return (int)n;
	}
	j->out_len = (size_t)n;
	/* A lone block that does not shrink makes its extent RAW. */
	if (j->single && j->out_len >= j->len) {
		memcpy(j->out, w->in, j->len);
		j->out_len = j->len;
		j->raw = true;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pipe *p = w->p;

	for (;;) {
		struct job *j;
		size_t i;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && p->next < p->n_jobs &&
		       p->next >= p->consumed + p->window)
			pthread_cond_wait(&p->space_cond, &p->lock);
		if (p->stop || p->next >= p->n_jobs) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		i = p->next++;
		pthread_mutex_unlock(&p->lock);

		j = &p->jobs[i];
		j->err = run_job(w, j);

		pthread_mutex_lock(&p->lock);
		j->done = true;
		pthread_cond_broadcast(&p->done_cond);
		pthread_mutex_unlock(&p->lock);
	}
	if (w->fd >= 0)
		close(w->fd);
	return NULL;
}

/* Wait for job @i, then release its slot in the window. */
static struct job *wait_job(struct pipe *p, size_t i)
{
	pthread_mutex_lock(&p->lock);
	while (!p->jobs[i].done)
		pthread_cond_wait(&p->done_cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	return &p->jobs[i];
}

static void consumed_job(struct pipe *p, struct job *j)
{
	free(j->out);
	j->out = NULL;
	pthread_mutex_lock(&p->lock);
	p->consumed++;
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
}

static int add_nodes(struct nwc_writer *wr, struct nwc_tree *tree)
{
	int ret;

	ret = nwc_writer_set_root(wr, tree->e[0].mode, tree->e[0].mtime,
				  tree->e[0].mtime_ns);
	for (uint32_t i = 1; i < tree->n && !ret; i++) {
		struct nwc_entry *e = &tree->e[i];

		ret = nwc_writer_add_node(wr, tree->e[e->parent].id, e->name,
					  strlen(e->name), e->mode, e->mtime,
					  e->mtime_ns, &e->id);
		if (!ret && S_ISLNK(e->mode))
			ret = nwc_writer_set_symlink(wr, e->id, e->target,
						     strlen(e->target));
		if (ret)
			nwc_err("%s: cannot add to image: %s", e->path,
				nwc_strerror(ret));
	}
	return ret;
}

/* Writer loop: extents in plan order, each followed by its blocks. */
static int write_files(struct pipe *p, struct nwc_writer *wr,
		       struct nwc_tree *tree, uint32_t n_files,
		       uint32_t block_len, struct nwc_pack_result *res)
{
	struct nwc_progress prog;
	uint64_t done_bytes = 0;
	size_t ji = 0;
	int ret = 0;

	nwc_progress_start(&prog, p->opts->progress, tree->total);
	for (uint32_t fi = 0; fi < n_files && !ret; fi++) {
		const struct fplan *f = &p->files[fi];
		uint32_t id = tree->e[f->entry].id;
		uint32_t *tidx = NULL;

		if (f->st) {
			ret = nwc_writer_set_flags(wr, id, NWC_INODE_F_SAFETENSORS);
			tidx = calloc(f->st->n_tensors + 1, sizeof(*tidx));
			if (!tidx)
				ret = -ENOMEM;
			for (size_t t = 0; !ret && t < f->st->n_tensors; t++) {
				const struct nwc_st_tensor *st = &f->st->tensors[t];
				struct nwc_wtensor wt = {
					.name = st->name,
					.name_len = st->name_len,
					.dtype = st->dtype,
					.ndim = st->ndim,
					.shape = st->shape,
					.data_off = f->st->data_off + st->begin,
					.data_len = st->end - st->begin,
					.codec = NWC_CODEC_ZSTD,
				};

				ret = nwc_writer_add_tensor(wr, id, &wt, &tidx[t]);
			}
		}
		for (uint32_t s = 0; !ret && s < f->n_segs; s++) {
			const struct seg *g = &f->segs[s];
			struct nwc_wextent we = {
				.len = g->len,
				.block_len = block_len,
				.codec = g->codec,
				.codec_arg = g->arg,
				.tensor = g->tensor < 0 ? NWC_NO_TENSOR :
							  tidx[g->tensor],
			};
			uint32_t ext;

			if (g->len <= block_len && wait_job(p, ji)->raw) {
				we.codec = NWC_CODEC_RAW;
				we.codec_arg = 0;
			}
			ret = nwc_writer_add_extent(wr, id, &we, &ext);
			for (uint64_t o = 0; !ret && o < g->len; o += block_len) {
				struct job *j = wait_job(p, ji++);

				ret = j->err;
				if (!ret)
					ret = nwc_writer_add_block(wr, ext, j->out,
								   j->out_len,
								   j->len);
				if (!ret)
					res->stored[f->entry] += j->out_len;
				done_bytes += j->len;
				consumed_job(p, j);
				nwc_progress_update(&prog, done_bytes,
						    nwc_writer_data_len(wr));
			}
		}
		free(tidx);
	}
	if (!ret)
		nwc_progress_finish(&prog);
	else if (prog.on)
		fputc('\n', stderr);
	return ret;
}

int nwc_pack(const char *root, struct nwc_tree *tree, const char *image,
	     const struct nwc_pack_opts *opts, struct nwc_pack_result *res)
{
	uint32_t block_len = 1u << opts->block_log2, n_files = 0;
	struct pipe p = { .opts = opts };
	struct worker *workers = NULL;
	struct nwc_writer *wr = NULL;
	unsigned started = 0;
	double t0 = nwc_now();
	struct stat st;
	int ret;

	memset(res, 0, sizeof(*res));
	res->stored = calloc(tree->n, sizeof(*res->stored));
	if (!res->stored)
		return -ENOMEM;
	/* Parse every input before creating the output. */
	ret = plan_files(root, tree, &p.files, &n_files);
	if (ret)
		goto out_plan;
	ret = make_jobs(&p, n_files, block_len);
	if (ret)
		goto out_plan;
	ret = nwc_writer_create(image, opts->block_log2, opts->force, &wr);
	if (ret)
		goto out_jobs;
	ret = add_nodes(wr, tree);
	if (ret)
		goto out_writer;

	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.done_cond, NULL);
	pthread_cond_init(&p.space_cond, NULL);
	p.window = 4 * (size_t)opts->jobs + 4;
	workers = calloc(opts->jobs, sizeof(*workers));
	if (!workers) {
		ret = -ENOMEM;
		goto out_sync;
	}
	for (unsigned i = 0; i < opts->jobs; i++) {
		struct worker *w = &workers[i];

		w->p = &p;
		w->fd = -1;
		w->in = malloc(block_len);
		ret = w->in ? nwc_cctx_create(opts->level, &w->cctx) : -ENOMEM;
		if (!ret)
			ret = -pthread_create(&w->tid, NULL, worker_main, w);
		if (ret)
			break;
		started++;
	}
	if (!ret)
		ret = write_files(&p, wr, tree, n_files, block_len, res);

	pthread_mutex_lock(&p.lock);
	p.stop = true;
	pthread_cond_broadcast(&p.space_cond);
	pthread_mutex_unlock(&p.lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i].tid, NULL);
	if (!ret)
		ret = nwc_writer_finish(wr);
	else
		nwc_writer_abort(wr);
	wr = NULL;
	if (!ret && !stat(image, &st))
		res->image_size = (uint64_t)st.st_size;
	res->seconds = nwc_now() - t0;
out_sync:
	for (unsigned i = 0; workers && i < opts->jobs; i++) {
		nwc_cctx_free(workers[i].cctx);
		free(workers[i].in);
	}
	free(workers);
	pthread_cond_destroy(&p.space_cond);
	pthread_cond_destroy(&p.done_cond);
	pthread_mutex_destroy(&p.lock);
out_writer:
	nwc_writer_abort(wr);
out_jobs:
	for (size_t i = 0; p.jobs && i < p.n_jobs; i++)
		free(p.jobs[i].out);
	free(p.jobs);
out_plan:
	free_plan(p.files, n_files);
	if (ret) {
		free(res->stored);
		res->stored = NULL;
	}
	return ret;
}
