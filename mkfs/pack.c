/* SPDX-License-Identifier: MIT */
/*
 * pack.c - plan, compress in parallel, write in order.
 *
 * The plan lists every block of every file in image order; a lossy tensor
 * is one job of its own (the whole matrix goes through the codec at once).
 * Workers claim jobs from that list and run them; the main thread waits
 * for each job in turn and passes it to the writer.  Workers stay at most
 * WINDOW jobs ahead of the writer, and the jobs in flight (claimed, not
 * yet written) keep their estimated working memory under a budget, which
 * bounds memory when lossy jobs are large.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/codec.h"
#include "codec/nwc/gemm.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/input/safetensors.h"
#include "codec/image/writer.h"
#include "mkfs/pack.h"
#include "mkfs/progress.h"

#define MEM_BUDGET_MIN (1ull << 30)	/* working memory of jobs in flight */

/* One extent of a file: a byte range and how to store it. */
struct seg {
	uint64_t off;
	uint64_t len;
	uint16_t codec;		/* NWC_CODEC_NWC for a lossy tensor */
	uint32_t arg;		/* lossless codec argument (also a lossy
				 * tensor's, should the codec fail on it) */
	int32_t tensor;		/* index in the file's nwc_st, or -1 */
	int32_t lossy;		/* index into the lossy tensors, or -1 */
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
	uint64_t len;
	uint16_t codec;
	uint32_t arg;
	int32_t lossy;		/* lossy tensor, or -1 for one block */
	uint64_t cost;		/* estimated working memory */
	uint8_t *out;		/* payload, owned until written */
	size_t out_len;
	struct nwc_tenc *enc;	/* lossy: the coded tensor */
	struct job *sub;	/* lossy, codec failed: its lossless blocks */
	uint32_t n_sub;
	double sig, err;	/* lossy: sum of w^2 and of (w - what)^2 */
	double hsig, herr;	/* lossy with H: tr(W H W^T), tr(E H E^T) */
	int err_code;
	bool single;		/* the only block of its extent */
	bool raw;		/* stored verbatim: compression did not help */
	bool done;
};

struct pipe {
	const struct nwc_pack_opts *opts;
	struct fplan *files;
	struct nwc_rate_tensor *lt;	/* lossy tensors */
	size_t n_lt;
	struct job *jobs;
	size_t n_jobs;
	size_t next;		/* next job to claim */
	size_t consumed;	/* jobs handed to the writer */
	size_t window;
	uint64_t inflight;	/* cost of claimed jobs not yet consumed */
	uint64_t budget;
	uint32_t block_len;
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
	f->segs[f->n_segs++] = (struct seg){ off, len, codec, arg, tensor, -1 };
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

/* Whether the writer can hold the bands of a matrix of @n columns. */
static bool bands_fit(uint64_t n, unsigned dtype)
{
	return (uint64_t)NWC_CHUNK * n * nwc_dtype_size(dtype) <=
	       NWC_BLOCK_MAX;
}

/* Mark the tensors the policy hands to the codec; list them in p->lt. */
static int select_lossy(struct pipe *p, uint32_t n_files)
{
	const struct nwc_lossy_policy *pol = &p->opts->lossy->policy;
	size_t n = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t fi = 0; fi < n_files; fi++) {
			struct fplan *f = &p->files[fi];

			for (uint32_t s = 0; s < f->n_segs; s++) {
				struct seg *g = &f->segs[s];
				const struct nwc_st_tensor *t;
				struct nwc_rate_tensor *lt;
				double fixed;

				if (g->tensor < 0)
					continue;
				t = &f->st->tensors[g->tensor];
				if (!nwc_lossy_select(pol, t->name, t->dtype,
						      t->ndim, t->shape,
						      &fixed) ||
				    !bands_fit(t->shape[1], t->dtype))
					continue;
				if (!pass) {
					n++;
					continue;
				}
				g->codec = NWC_CODEC_NWC;
				g->lossy = (int32_t)p->n_lt;
				lt = &p->lt[p->n_lt++];
				*lt = (struct nwc_rate_tensor){
					.path = f->path,
					.name = t->name,
					.dtype = t->dtype,
					.m = (uint32_t)t->shape[0],
					.n = (uint32_t)t->shape[1],
					.off = g->off,
					.fixed_bits = fixed,
				};
			}
		}
		if (!pass) {
			if (n > INT32_MAX)
				return -E2BIG;
			p->lt = calloc(NWC_MAX(n, 1), sizeof(*p->lt));
			if (!p->lt)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Tensors the rate plan gave up on go back to the lossless codec. */
static uint32_t unselect_lossless(struct pipe *p, uint32_t n_files)
{
	uint32_t n = 0;

	for (uint32_t fi = 0; fi < n_files; fi++) {
		for (uint32_t s = 0; s < p->files[fi].n_segs; s++) {
			struct seg *g = &p->files[fi].segs[s];

			if (g->lossy >= 0 && p->lt[g->lossy].lossless) {
				g->codec = NWC_CODEC_ZSTD;
				g->lossy = -1;
				n++;
			}
		}
	}
	return n;
}

/* Working memory of a lossy job: the values, the encoder's copies, H. */
static uint64_t lossy_cost(const struct nwc_rate_tensor *t)
{
	uint64_t mn = (uint64_t)t->m * t->n, nn = (uint64_t)t->n * t->n;

	return mn * (24 + nwc_dtype_size(t->dtype)) + (t->have_h ? 8 * nn : 0);
}

static int make_jobs(struct pipe *p, uint32_t n_files, uint32_t block_len)
{
	size_t n = 0, k = 0;

	for (uint32_t f = 0; f < n_files; f++) {
		for (uint32_t s = 0; s < p->files[f].n_segs; s++) {
			const struct seg *g = &p->files[f].segs[s];

			n += g->lossy >= 0 ? 1 :
			     (g->len + block_len - 1) / block_len;
		}
	}
	p->jobs = calloc(n ? n : 1, sizeof(*p->jobs));
	if (!p->jobs)
		return -ENOMEM;
	for (uint32_t f = 0; f < n_files; f++) {
		for (uint32_t s = 0; s < p->files[f].n_segs; s++) {
			const struct seg *g = &p->files[f].segs[s];

			if (g->lossy >= 0) {
				p->jobs[k++] = (struct job){
					.file = f, .off = g->off, .len = g->len,
					.codec = g->codec, .arg = g->arg,
					.lossy = g->lossy,
					.cost = lossy_cost(&p->lt[g->lossy]),
				};
				continue;
			}
			for (uint64_t o = 0; o < g->len; o += block_len) {
				struct job *j = &p->jobs[k++];

				j->file = f;
				j->off = g->off + o;
				j->len = NWC_MIN((uint64_t)block_len, g->len - o);
				j->codec = g->codec;
				j->arg = g->arg;
				j->lossy = -1;
				j->cost = 2 * j->len;
				j->single = g->len <= block_len;
			}
		}
	}
	p->n_jobs = n;
	return 0;
}

/* Free what a job holds; its sub-jobs hold only payloads. */
static void free_job(struct job *j)
{
	free(j->out);
	j->out = NULL;
	nwc_tenc_free(j->enc);
	j->enc = NULL;
	for (uint32_t i = 0; j->sub && i < j->n_sub; i++)
		free(j->sub[i].out);
	free(j->sub);
	j->sub = NULL;
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

static int worker_open(struct worker *w, uint32_t file)
{
	const struct fplan *f = &w->p->files[file];
	int ret;

	if (w->fd >= 0 && w->fd_file == file)
		return 0;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (w->fd < 0) {
		ret = -errno;
		nwc_err("%s: %s", f->path, strerror(errno));
		return ret;
	}
	w->fd_file = file;
	return 0;
}

/* Compress one block (j->len <= block_len). */
static int run_block(struct worker *w, struct job *j)
{
	const struct fplan *f = &w->p->files[j->file];
	size_t cap = nwc_codec_bound(j->codec, j->arg, j->len);
	ssize_t n;
	int ret;

	ret = worker_open(w, j->file);
	if (ret)
		return ret;
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

/* The codec failed on a tensor: compress it as an ordinary one. */
static int run_fallback(struct worker *w, struct job *j)
{
	uint64_t bl = w->p->block_len;
	int ret = 0;

	j->n_sub = (uint32_t)((j->len + bl - 1) / bl);
	j->sub = calloc(j->n_sub, sizeof(*j->sub));
	if (!j->sub)
		return -ENOMEM;
	for (uint32_t i = 0; i < j->n_sub && !ret; i++) {
		struct job *s = &j->sub[i];

		s->file = j->file;
		s->off = j->off + i * bl;
		s->len = NWC_MIN(bl, j->len - i * bl);
		s->codec = NWC_CODEC_ZSTD;
		s->arg = j->arg;
		s->lossy = -1;
		s->single = j->len <= bl;
		ret = run_block(w, s);
	}
	return ret;
}

/* sum over rows r of x_r^T H x_r, for m x n @x; @tmp holds m x n. */
static double h_energy(const float *x, const float *h, uint32_t m,
		       uint32_t n, float *tmp)
{
	double s = 0;

	nwc_sgemm(false, false, (int)m, (int)n, (int)n, 1.0f, x, (int)n, h,
		  (int)n, 0.0f, tmp, (int)n);
	for (size_t i = 0; i < (size_t)m * n; i++)
		s += (double)x[i] * tmp[i];
	return s;
}

/* Signal and error energies of a coded tensor; @x becomes the error. */
static int measure(struct job *j, float *x, const float *what,
		   const float *h, uint32_t m, uint32_t n)
{
	size_t mn = (size_t)m * n;
	float *tmp = NULL;

	if (h) {
		tmp = malloc(mn * sizeof(*tmp));
		if (!tmp)
			return -ENOMEM;
		j->hsig = h_energy(x, h, m, n, tmp);
	}
	for (size_t i = 0; i < mn; i++) {
		double d = (double)x[i] - what[i];

		j->sig += (double)x[i] * x[i];
		j->err += d * d;
		x[i] -= what[i];
	}
	if (h) {
		j->herr = h_energy(x, h, m, n, tmp);
		free(tmp);
	}
	return 0;
}

/* Code a whole tensor with its model; fall back to lossless on failure. */
static int run_lossy(struct worker *w, struct job *j)
{
	const struct nwc_pack_lossy *lo = w->p->opts->lossy;
	const struct nwc_rate_tensor *t = &w->p->lt[j->lossy];
	const struct nwc_rate_model *rm = &lo->models->m[t->model];
	struct nwc_tenc_opts o;
	float *x, *h = NULL;
	int ret;

	ret = worker_open(w, j->file);
	if (!ret)
		ret = nwc_rate_read(w->fd, t, &x);
	if (ret)
		return ret;
	if (!nwc_rate_finite(x, (size_t)t->m * t->n)) {
		nwc_warn("%s: %s: has values that are not finite (NaN or infinity): stored losslessly",
			 t->path, t->name);
		free(x);
		return run_fallback(w, j);
	}
	if (t->have_h) {
		ret = nwc_calib_get(lo->calib, t->name, t->n, &h);
		if (ret)
			goto out_free;
	}
	nwc_tenc_opts_init(&o);
	o.quant = lo->quant;
	o.dtype = t->dtype;
	o.band_rows = nwc_tside_band_rows_for(t->m, t->n,
					      nwc_dtype_size(t->dtype),
					      w->p->block_len);
	o.h = h;
	o.fit_scales = h != NULL;
	ret = nwc_tenc_encode(rm->model, rm->index, x, t->m, t->n, t->level,
			      &o, &j->enc);
	if (ret && ret != -ENOMEM) {
		nwc_warn("%s: %s: the neural codec failed on it (%s): stored losslessly",
			 t->path, t->name, nwc_strerror(ret));
		ret = run_fallback(w, j);
		goto out_free;
	}
	if (ret)
		goto out_free;
	ret = measure(j, x, j->enc->what, h, t->m, t->n);
	/* Only the stored bytes are kept until the writer takes them. */
	free(j->enc->what);
	j->enc->what = NULL;
out_free:
	free(h);
	free(x);
	return ret;
}

/* Whether job @i may start now (called with the lock held). */
static bool may_claim(const struct pipe *p)
{
	const struct job *j = &p->jobs[p->next];

	if (p->next >= p->consumed + p->window)
		return false;
	/* Nothing in flight: the writer waits for this very job. */
	return !p->inflight || p->inflight + j->cost <= p->budget;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pipe *p = w->p;

	for (;;) {
		struct job *j;
		size_t i;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && p->next < p->n_jobs && !may_claim(p))
			pthread_cond_wait(&p->space_cond, &p->lock);
		if (p->stop || p->next >= p->n_jobs) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		i = p->next++;
		p->inflight += p->jobs[i].cost;
		pthread_mutex_unlock(&p->lock);

		j = &p->jobs[i];
		j->err_code = j->lossy >= 0 ? run_lossy(w, j) : run_block(w, j);

		pthread_mutex_lock(&p->lock);
		j->done = true;
		pthread_cond_broadcast(&p->done_cond);
		pthread_mutex_unlock(&p->lock);
	}
	if (w->fd >= 0)
		close(w->fd);
	return NULL;
}

/* Wait for job @j of the plan. */
static struct job *wait_job(struct pipe *p, struct job *j)
{
	pthread_mutex_lock(&p->lock);
	while (!j->done)
		pthread_cond_wait(&p->done_cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	return j;
}

/* The writer is done with job @j: free it and release its slot. */
static void consumed_job(struct pipe *p, struct job *j)
{
	free_job(j);
	pthread_mutex_lock(&p->lock);
	p->consumed++;
	p->inflight -= j->cost;
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

/* Embed the codec models the plan uses, at the indices it gave them. */
static int add_models(struct nwc_writer *wr, const struct nwc_rate_models *ms)
{
	for (unsigned k = 0; k < ms->n; k++) {
		const struct nwc_rate_model *rm = &ms->m[k];
		uint32_t idx;
		uint8_t *buf;
		size_t len;
		int ret;

		if (!rm->used)
			continue;
		ret = nwc_model_to_buf(rm->model, &buf, &len);
		if (!ret) {
			ret = nwc_writer_add_model(wr, buf, len, &idx);
			free(buf);
		}
		if (!ret && idx != rm->index)
			ret = -EINVAL;
		if (ret) {
			nwc_err("%s: cannot embed codec model: %s", rm->name,
				nwc_strerror(ret));
			return ret;
		}
	}
	return 0;
}

/* State of the writer loop. */
struct wstate {
	struct pipe *p;
	struct nwc_writer *wr;
	struct nwc_progress prog;
	uint64_t done_bytes;
	uint64_t *stored;	/* of the current file */
};

/*
 * Write the lossless extent of @g and its blocks: the plan's jobs from
 * @j on, waited for and released (@planned), or the finished sub-jobs of
 * a lossy job.
 */
static int put_lossless(struct wstate *ws, uint32_t id, const struct seg *g,
			uint32_t tensor, struct job *j, bool planned)
{
	uint32_t block_len = ws->p->block_len, ext;
	struct nwc_wextent we = {
		.len = g->len,
		.block_len = block_len,
		.codec = NWC_CODEC_ZSTD,
		.codec_arg = g->arg,
		.tensor = tensor,
	};
	int ret;

	if (g->len <= block_len && (planned ? wait_job(ws->p, j) : j)->raw) {
		we.codec = NWC_CODEC_RAW;
		we.codec_arg = 0;
	}
	ret = nwc_writer_add_extent(ws->wr, id, &we, &ext);
	for (uint64_t o = 0; !ret && o < g->len; o += block_len, j++) {
		if (planned)
			wait_job(ws->p, j);
		ret = j->err_code;
		if (!ret)
			ret = nwc_writer_add_block(ws->wr, ext, j->out,
						   j->out_len,
						   (uint32_t)j->len);
		if (!ret)
			*ws->stored += j->out_len;
		ws->done_bytes += j->len;
		if (planned)
			consumed_job(ws->p, j);
		nwc_progress_update(&ws->prog, ws->done_bytes,
				    nwc_writer_data_len(ws->wr));
	}
	return ret;
}

/* Write a coded tensor: its side record, then its NWC extent. */
static int put_nwc(struct wstate *ws, uint32_t id, uint32_t tensor,
		   const struct job *j, struct nwc_pack_result *res)
{
	const struct nwc_tenc *e = j->enc;
	const struct nwc_rate_tensor *t = &ws->p->lt[j->lossy];
	struct nwc_pack_lossy_result *lr = &res->lossy;
	uint64_t payload = 0;
	uint32_t ext;
	int ret;

	ret = nwc_writer_set_tensor_side(ws->wr, tensor, e->side, e->side_len);
	if (!ret)
		ret = nwc_writer_add_nwc_extent(ws->wr, id, tensor, e->nbands,
						e->band, e->band_len, &ext);
	if (ret) {
		nwc_err("%s: %s: cannot add the coded tensor to the image: %s",
			t->path, t->name, nwc_strerror(ret));
		return ret;
	}
	for (uint32_t b = 0; b < e->nbands; b++)
		payload += e->band_len[b];
	*ws->stored += payload + e->side_len;
	lr->tensors++;
	lr->weights += (uint64_t)t->m * t->n;
	lr->payload += payload;
	lr->side += e->side_len;
	lr->sig += j->sig;
	lr->err += j->err;
	lr->hsig += j->hsig;
	lr->herr += j->herr;
	lr->per_model[t->model]++;
	return 0;
}

/* Describe the tensors of safetensors file @f to the writer. */
static int add_tensors(struct nwc_writer *wr, uint32_t id,
		       const struct fplan *f, uint32_t *tidx)
{
	int ret = nwc_writer_set_flags(wr, id, NWC_INODE_F_SAFETENSORS);

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
	return ret;
}

/* Writer loop: extents in plan order, each followed by its blocks. */
static int write_files(struct pipe *p, struct nwc_writer *wr,
		       struct nwc_tree *tree, uint32_t n_files,
		       struct nwc_pack_result *res)
{
	struct wstate ws = { .p = p, .wr = wr };
	size_t ji = 0;
	int ret = 0;

	nwc_progress_start(&ws.prog, p->opts->progress, tree->total);
	for (uint32_t fi = 0; fi < n_files && !ret; fi++) {
		const struct fplan *f = &p->files[fi];
		uint32_t id = tree->e[f->entry].id;
		uint32_t *tidx = NULL;

		ws.stored = &res->stored[f->entry];
		if (f->st) {
			tidx = calloc(f->st->n_tensors + 1, sizeof(*tidx));
			ret = tidx ? add_tensors(wr, id, f, tidx) : -ENOMEM;
		}
		for (uint32_t s = 0; !ret && s < f->n_segs; s++) {
			const struct seg *g = &f->segs[s];
			uint32_t tensor = g->tensor < 0 ? NWC_NO_TENSOR :
							  tidx[g->tensor];
			struct job *j = &p->jobs[ji];

			if (g->lossy < 0) {
				ret = put_lossless(&ws, id, g, tensor, j, true);
				ji += (g->len + p->block_len - 1) /
				      p->block_len;
				continue;
			}
			wait_job(p, j);
			ji++;
			ret = j->err_code;
			if (!ret && j->enc) {
				ret = put_nwc(&ws, id, tensor, j, res);
			} else if (!ret) {
				res->lossy.fallbacks++;
				ret = put_lossless(&ws, id, g, tensor, j->sub,
						   false);
			}
			ws.done_bytes += j->enc ? g->len : 0;
			consumed_job(p, j);
			nwc_progress_update(&ws.prog, ws.done_bytes,
					    nwc_writer_data_len(wr));
		}
		free(tidx);
	}
	if (!ret)
		nwc_progress_finish(&ws.prog);
	else if (ws.prog.on)
		fputc('\n', stderr);
	return ret;
}

/* The lossy part of the plan: select, estimate and allocate. */
static int plan_lossy(struct pipe *p, uint32_t n_files,
		      struct nwc_pack_result *res)
{
	const struct nwc_pack_lossy *lo = p->opts->lossy;
	struct nwc_rate_opts ro = {
		.bits = lo->bits,
		.quant = lo->quant,
		.calib = lo->calib,
		.jobs = p->opts->jobs,
		.progress = p->opts->progress,
	};
	double t0 = nwc_now();
	int ret;

	ret = select_lossy(p, n_files);
	if (ret)
		return ret;
	res->lossy.per_model = calloc(NWC_MAX(lo->models->n, 1),
				      sizeof(*res->lossy.per_model));
	if (!res->lossy.per_model)
		return -ENOMEM;
	if (!p->n_lt)
		return 0;
	ret = nwc_rate_plan(p->lt, p->n_lt, &ro, lo->models);
	if (ret)
		return ret;
	res->lossy.fallbacks = unselect_lossless(p, n_files);
	res->lossy.plan_seconds = nwc_now() - t0;
	return 0;
}

static uint64_t mem_budget(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t quarter = pages > 0 && psize > 0 ?
			   (uint64_t)pages * (uint64_t)psize / 4 : 0;

	return NWC_MAX(quarter, MEM_BUDGET_MIN);
}

int nwc_pack(const char *root, struct nwc_tree *tree, const char *image,
	     const struct nwc_pack_opts *opts, struct nwc_pack_result *res)
{
	uint32_t block_len = 1u << opts->block_log2, n_files = 0;
	struct pipe p = { .opts = opts, .block_len = block_len };
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
	/* Parse every input, and plan the lossy part, before writing. */
	ret = plan_files(root, tree, &p.files, &n_files);
	if (!ret && opts->lossy)
		ret = plan_lossy(&p, n_files, res);
	if (ret)
		goto out_plan;
	ret = make_jobs(&p, n_files, block_len);
	if (ret)
		goto out_plan;
	ret = nwc_writer_create(image, opts->block_log2, opts->force, &wr);
	if (ret)
		goto out_jobs;
	ret = add_nodes(wr, tree);
	if (!ret && opts->lossy)
		ret = add_models(wr, opts->lossy->models);
	if (ret)
		goto out_writer;

	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.done_cond, NULL);
	pthread_cond_init(&p.space_cond, NULL);
	p.window = 4 * (size_t)opts->jobs + 4;
	p.budget = mem_budget();
	if (p.n_lt)
		nwc_gemm_init();
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
		ret = write_files(&p, wr, tree, n_files, res);

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
		free_job(&p.jobs[i]);
	free(p.jobs);
out_plan:
	nwc_rate_tensors_free(p.lt, p.n_lt);
	free(p.lt);
	free_plan(p.files, n_files);
	if (ret)
		nwc_pack_result_free(res);
	return ret;
}

void nwc_pack_result_free(struct nwc_pack_result *res)
{
	free(res->stored);
	res->stored = NULL;
	free(res->lossy.per_model);
	res->lossy.per_model = NULL;
}
