/* SPDX-License-Identifier: MIT */
/*
 * pipeline.c - the workers of nwc_pack(): they claim the plan's jobs in
 * order, at most WINDOW jobs ahead of the writer and within a memory
 * budget, compress a block or code a lossy tensor (falling back to the
 * lossless codec), and hand them over to the writer loop.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/gemm.h"
#include "mkfs/group/group.h"
#include "mkfs/pack/pack_impl.h"

/* Free what a job holds; its sub-jobs hold only payloads. */
void pack_free_job(struct job *j)
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
		s->codec = PACK_LOSSLESS;
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

/*
 * Whether the codec served the m x n tensor @x faithfully as @what: every
 * value finite, and no row whose error outweighs that row without its
 * largest weight.  (One huge weight among small ones sets the row's scale,
 * and the others come back as noise of that scale: a row of 0.02s with
 * one 1e30 decoded to values near 1e29.)  A row of zeros and one weight
 * may err by a millionth of its energy.  LDLQ tripped it too, with no
 * outlier in sight, on two down_proj tensors of SmolLM2-135M whose inputs
 * have a few channels far louder than the rest, until those channels'
 * weights were stored exactly (--calib-loud) and the row gains bounded
 * (nwc_ldlq_row_scale()).  Sets *@row to a bad row.
 */
bool pack_faithful(const float *x, const float *what, uint32_t m,
		   uint32_t n, uint32_t *row)
{
	for (uint32_t r = 0; r < m; r++) {
		const float *a = x + (size_t)r * n, *b = what + (size_t)r * n;
		double all = 0, top = 0, err = 0;

		for (uint32_t c = 0; c < n; c++) {
			double v = (double)a[c] * a[c], d;

			if (!isfinite(b[c])) {
				*row = r;
				return false;
			}
			d = (double)a[c] - b[c];
			all += v;
			top = NWC_MAX(top, v);
			err += d * d;
		}
		if (err > NWC_MAX(all - top, 1e-6 * all)) {
			*row = r;
			return false;
		}
	}
	return true;
}

void pack_tenc_opts(const struct pipe *p, const struct nwc_rate_tensor *t,
		    const float *h, struct nwc_tenc_opts *o)
{
	nwc_tenc_opts_init(o);
	o->quant = p->opts->lossy->quant;
	o->dtype = t->dtype;
	o->band_rows = nwc_tside_band_rows_for(t->m, t->n,
					       nwc_dtype_size(t->dtype),
					       p->block_len);
	o->h = h;
	o->fit_scales = h != NULL;
	o->row_mul = t->row_mul;
	o->exact_sd = (float)p->opts->lossy->exact_sd;
	o->exact_loud = (float)p->opts->lossy->exact_loud;
	if (p->opts->lossy->damp > 0)
		o->damp = (float)p->opts->lossy->damp;
}

/*
 * A sequential calibration's hook (nwc_calib_sequential): a weight the
 * plan codes is coded now with the statistics just summed, as run_lossy()
 * will code it (same weights, statistics, model and options give the same
 * bits), and replaced by what the image will serve.  Weights stored
 * losslessly stay as they are.
 */
int pack_seq_hook(void *arg, const char *name, float *w, uint32_t rows,
		  uint32_t cols)
{
	struct pipe *p = arg;
	const struct nwc_pack_lossy *lo = p->opts->lossy;
	const struct nwc_rate_tensor *t = NULL;
	const struct nwc_rate_model *rm;
	struct nwc_tenc *enc = NULL;
	struct nwc_tenc_opts o;
	int32_t state = 0;	/* 1: replaced, 0: kept, < 0: an error */
	float *h = NULL;
	int ret;

	for (size_t i = 0; i < p->n_lt && !t; i++)
		if (!strcmp(p->lt[i].name, name))
			t = &p->lt[i];
	if (!t || t->lossless || t->m != rows || t->n != cols ||
	    !nwc_rate_finite(w, (size_t)rows * cols))
		return 0;
	/* The tensor's rank codes it, and tells the others what it serves. */
	if (t->rank == p->rank) {
		rm = &lo->models->m[t->model];
		ret = t->have_h ? nwc_calib_get_pending(lo->calib, name, cols,
							&h) : 0;
		state = ret;
		if (!ret) {
			uint32_t row;

			pack_tenc_opts(p, t, h, &o);
			ret = nwc_tenc_encode(rm->model, rm->index, w, rows,
					      cols, t->level, &o, &enc);
			/* Another failure, or an unfaithful result:
			 * run_lossy() stores it losslessly. */
			state = !ret ? 1 : ret == -ENOMEM ? ret : 0;
			if (state == 1 && !pack_faithful(w, enc->what, rows, cols,
						    &row))
				state = 0;
		}
		if (state == 1)
			memcpy(w, enc->what, (size_t)rows * cols * sizeof(*w));
		nwc_tenc_free(enc);
		free(h);
	}
	if (nwc_group_size() > 1) {
		nwc_group_bcast(t->rank, &state, sizeof(state));
		if (state == 1)
			nwc_group_bcast(t->rank, w,
					(size_t)rows * cols * sizeof(*w));
	}
	return state < 0 ? state : 0;
}

/* Code a whole tensor with its model; fall back to lossless on failure. */
static int run_lossy(struct worker *w, struct job *j)
{
	const struct nwc_pack_lossy *lo = w->p->opts->lossy;
	const struct nwc_rate_tensor *t = &w->p->lt[j->lossy];
	const struct nwc_rate_model *rm = &lo->models->m[t->model];
	struct nwc_tenc_opts o;
	float *x, *h = NULL;
	uint32_t row;
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
	pack_tenc_opts(w->p, t, h, &o);
	ret = nwc_tenc_encode(rm->model, rm->index, x, t->m, t->n, t->level,
			      &o, &j->enc);
	if (ret && ret != -ENOMEM) {
		float big = 0;

		for (size_t i = 0; i < (size_t)t->m * t->n; i++)
			big = NWC_MAX(big, fabsf(x[i]));
		nwc_warn("%s: %s: the neural codec cannot code it (%s; its largest weight is %g): stored losslessly",
			 t->path, t->name, nwc_strerror(ret), (double)big);
		ret = run_fallback(w, j);
		goto out_free;
	}
	if (ret)
		goto out_free;
	if (!pack_faithful(x, j->enc->what, t->m, t->n, &row)) {
		nwc_warn("%s: %s: row %u has weights the neural codec cannot represent (an outlier that dwarfs the rest of its row, values near the float limit, or error correction thrown off by a few loud input channels: see --exact-sd and --calib-loud): stored losslessly",
			 t->path, t->name, row);
		nwc_tenc_free(j->enc);
		j->enc = NULL;
		ret = run_fallback(w, j);
		goto out_free;
	}
	ret = measure(j, x, j->enc->what, h, t->m, t->n);
	/* Only the stored bytes are kept until the writer takes them. */
	free(j->enc->what);
	j->enc->what = NULL;
out_free:
	free(h);
	free(x);
	return ret;
}

/* Whether the next job may start now (called with the lock held). */
static bool may_claim(const struct pipe *p)
{
	const struct job *j = &p->jobs[p->order[p->next]];

	if (p->next >= p->consumed + p->window)
		return false;
	/* Nothing in flight: the writer waits for this very job. */
	return !p->inflight || p->inflight + j->cost <= p->budget;
}

void *pack_worker_main(void *arg)
{
	struct worker *w = arg;
	struct pipe *p = w->p;

	for (;;) {
		struct job *j;
		size_t i;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && p->next < p->n_order && !may_claim(p))
			pthread_cond_wait(&p->space_cond, &p->lock);
		if (p->stop || p->next >= p->n_order) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		i = p->order[p->next++];
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

/* Wait for job @j of the plan; another rank's comes from that rank. */
struct job *pack_wait_job(struct pipe *p, struct job *j)
{
	if (pack_job_rank(p, j) != p->rank) {
		pack_recv_job(p, j);
		return j;
	}
	pthread_mutex_lock(&p->lock);
	while (!j->done)
		pthread_cond_wait(&p->done_cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	return j;
}

/* The writer is done with job @j: free it and release its slot. */
void pack_consumed_job(struct pipe *p, struct job *j)
{
	pack_free_job(j);
	if (pack_job_rank(p, j) != p->rank)
		return;
	pthread_mutex_lock(&p->lock);
	p->consumed++;
	p->inflight -= j->cost;
	pthread_cond_broadcast(&p->space_cond);
	pthread_mutex_unlock(&p->lock);
}
