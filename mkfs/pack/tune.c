/* SPDX-License-Identifier: MIT */
/*
 * tune.c - mkfs.nwc --calib-tune: the row scales of the coded tensors tuned
 * end to end, after the plan and before the pipeline codes the image.
 *
 * Each lossy tensor is coded once as the pipeline will code it (same
 * weights, statistics, model and options: the same bits), and what the
 * image would serve is spilled to a file.  Then each step runs the model
 * with those weights, every output row i of a coded weight times its own
 * factor r_i, forward and backward over the first tokens of the
 * calibration file (nwc_llama_scale_grad), for the gradient of the KL
 * divergence from the original model's predictions, and Adam moves the
 * factors; each step takes the next block of tokens of the file.  The factors go into the stored row scales
 * (nwc_tenc_opts.row_mul), so the coded latents and the bit rate are those
 * of the untuned image; only the scales, a few bytes a row, change.  This
 * corrects, across layers, what the codec's error does to the model's
 * outputs, which each layer's own least-squares scales (fit_scales) cannot
 * see.
 *
 * Deterministic: the coding, the model runs and the updates do not depend
 * on the thread count.  One process only: the decoded weights would have
 * to travel between ranks.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "codec/common/io.h"
#include "codec/common/log.h"
#include "mkfs/group/group.h"
#include "mkfs/pack/pack_impl.h"
#include "mkfs/pack/progress.h"

/* Adam's constants (PyTorch's defaults). */
#define BETA1 0.9
#define BETA2 0.999
#define ADAM_EPS 1e-8
/* The factors stay within [1 / FACTOR_MAX, FACTOR_MAX]: a step moves one
 * by about the rate, so only thousands of steps would reach the bounds. */
#define FACTOR_MAX 4.0

/* One coded tensor: where its served weights lie, and its factors. */
struct tt {
	size_t lt;		/* index into the pipe's lossy tensors */
	off_t off;		/* its m x n floats in the spill file */
	bool coded;		/* coded faithfully, hence tuned */
	double *r, *m1, *m2;	/* factors and Adam's moments (m each) */
	float *g;		/* the last step's gradient */
	double err;		/* relative error: |W - coded| / |W| */
	struct nwc_tside *side;	/* its exact weights (--exact-sd) */
};

struct tune {
	struct pipe *p;
	struct tt *t;		/* the lossy tensors, in plan order */
	size_t n;
	int fd;			/* the served weights */
	/* coding: the workers' next tensor and first error */
	pthread_mutex_t lock;
	size_t next;
	int err;
};

static struct tt *find(const struct tune *T, const char *name)
{
	for (size_t i = 0; i < T->n; i++)
		if (!strcmp(T->p->lt[T->t[i].lt].name, name))
			return &T->t[i];
	return NULL;
}

/* Code tensor @k as the pipeline will, and spill what it serves. */
static int code_one(struct tune *T, struct tt *k, int *fd,
		    const char **fd_path)
{
	const struct nwc_pack_lossy *lo = T->p->opts->lossy;
	const struct nwc_rate_tensor *t = &T->p->lt[k->lt];
	const struct nwc_rate_model *rm = &lo->models->m[t->model];
	struct nwc_tenc *enc = NULL;
	struct nwc_tenc_opts o;
	float *x = NULL, *h = NULL;
	uint32_t row;
	int ret;

	if (*fd < 0 || strcmp(*fd_path, t->path)) {
		if (*fd >= 0)
			close(*fd);
		*fd = open(t->path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0) {
			ret = -errno;
			nwc_err("%s: %s", t->path, strerror(errno));
			return ret;
		}
		*fd_path = t->path;
	}
	ret = nwc_rate_read(*fd, t, &x);
	if (ret)
		return ret;
	/* What run_lossy() stores losslessly stays the original here. */
	if (!nwc_rate_finite(x, (size_t)t->m * t->n))
		goto out_free;
	if (t->have_h) {
		ret = nwc_calib_get(lo->calib, t->name, t->n, &h);
		if (ret)
			goto out_free;
	}
	pack_tenc_opts(T->p, t, h, &o);
	ret = nwc_tenc_encode(rm->model, rm->index, x, t->m, t->n, t->level,
			      &o, &enc);
	if (ret == -ENOMEM)
		goto out_free;
	ret = 0;
	if (!enc || !pack_faithful(x, enc->what, t->m, t->n, &row))
		goto out_free;
	{
		double sig = 0, err = 0;

		for (size_t i = 0; i < (size_t)t->m * t->n; i++) {
			double d = (double)x[i] - enc->what[i];

			sig += (double)x[i] * x[i];
			err += d * d;
		}
		k->err = sig > 0 ? sqrt(err / sig) : 0;
	}
	ret = nwc_pwrite_full(T->fd, enc->what,
			      (size_t)t->m * t->n * sizeof(float), k->off);
	if (ret)
		nwc_err("cannot write the coded weights for --calib-tune: %s",
			nwc_strerror(ret));
	if (!ret && enc->nexact)
		ret = nwc_tside_parse(enc->side, enc->side_len, &k->side);
	k->coded = !ret;
out_free:
	nwc_tenc_free(enc);
	free(h);
	free(x);
	return ret;
}

static void *code_worker(void *arg)
{
	struct tune *T = arg;
	const char *path = NULL;
	int fd = -1;

	for (;;) {
		size_t i;
		int ret;

		pthread_mutex_lock(&T->lock);
		i = T->next++;
		if (T->err)
			i = T->n;
		pthread_mutex_unlock(&T->lock);
		if (i >= T->n)
			break;
		ret = code_one(T, &T->t[i], &fd, &path);
		if (ret) {
			pthread_mutex_lock(&T->lock);
			if (!T->err)
				T->err = ret;
			pthread_mutex_unlock(&T->lock);
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Every lossy tensor coded on the pipe's threads. */
static int code_all(struct tune *T)
{
	unsigned n = T->p->opts->jobs, started = 0;
	pthread_t *tid = calloc(n, sizeof(*tid));

	if (!tid)
		return -ENOMEM;
	pthread_mutex_init(&T->lock, NULL);
	for (unsigned i = 1; i < n; i++) {
		if (pthread_create(&tid[i], NULL, code_worker, T))
			break;	/* the others do its share */
		started = i;
	}
	code_worker(T);
	for (unsigned i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&T->lock);
	free(tid);
	return T->err;
}

/* The model run's hook: a coded weight becomes what the image serves, each
 * row times its factor. */
static int hook(void *arg, const char *name, float *w, uint32_t rows,
		uint32_t cols)
{
	const struct tune *T = arg;
	const struct tt *k = find(T, name);
	int ret;

	if (!k || !k->coded)
		return 0;
	assert(T->p->lt[k->lt].m == rows && T->p->lt[k->lt].n == cols);
	ret = nwc_pread_full(T->fd, w, (size_t)rows * cols * sizeof(*w),
			     k->off);
	if (ret) {
		if (ret == -NWC_ECORRUPT)
			ret = -EIO;
		nwc_err("cannot read back the coded weights for --calib-tune: %s",
			nwc_strerror(ret));
		return ret;
	}
	for (uint32_t i = 0; i < rows; i++) {
		float r = (float)k->r[i];

		for (uint32_t j = 0; j < cols; j++)
			w[(size_t)i * cols + j] *= r;
	}
	/* the reader writes exact weights (values of the tensor's own
	 * dtype) over the scaled rows */
	for (uint32_t i = 0; k->side && i < k->side->nexact; i++) {
		const struct nwc_exact *x = &k->side->exact[i];

		w[(size_t)x->row * cols + x->col] = x->value;
	}
	return 0;
}

static int sink(void *arg, const char *name, const float *g, uint32_t rows)
{
	struct tt *k = find(arg, name);

	if (k && k->coded)
		memcpy(k->g, g, rows * sizeof(*g));
	return 0;
}

/*
 * One Adam step on every factor.  The run's gradient is with respect to a
 * scale of the served row, which is the factor's times r_i.  Adam moves a
 * factor by about its step size whatever the gradient, so the step size
 * is @rate times the tensor's relative coding error: the corrections a
 * tensor can use are of that size, and a fixed step that suits 3 bits
 * per weight (errors near 17%) walks 6-bit tensors (2%) away from the
 * original (SmolLM2-135M: the KL rose from 0.0051 to 0.0086 in 20 steps
 * of 0.002).  A row with exact weights (--exact-sd) keeps them whatever
 * its factor, but the run's gradient counts them as scaled: a bias on
 * those few rows.
 */
static void adam(struct tune *T, unsigned step, double rate)
{
	const double c1 = 1 - pow(BETA1, step), c2 = 1 - pow(BETA2, step);

	for (size_t i = 0; i < T->n; i++) {
		struct tt *k = &T->t[i];
		const double lr = rate * k->err;

		for (uint32_t j = 0; k->coded && j < T->p->lt[k->lt].m; j++) {
			double g = k->g[j] / k->r[j];

			k->m1[j] = BETA1 * k->m1[j] + (1 - BETA1) * g;
			k->m2[j] = BETA2 * k->m2[j] + (1 - BETA2) * g * g;
			k->r[j] -= lr * (k->m1[j] / c1) /
				   (sqrt(k->m2[j] / c2) + ADAM_EPS);
			k->r[j] = fmin(fmax(k->r[j], 1 / FACTOR_MAX),
				       FACTOR_MAX);
		}
	}
}

/* The factors into the tensors' row_mul. */
static int keep_factors(struct tune *T)
{
	for (size_t i = 0; i < T->n; i++) {
		struct tt *k = &T->t[i];
		struct nwc_rate_tensor *t = &T->p->lt[k->lt];

		if (!k->coded)
			continue;
		t->row_mul = malloc(t->m * sizeof(*t->row_mul));
		if (!t->row_mul)
			return -ENOMEM;
		for (uint32_t j = 0; j < t->m; j++)
			t->row_mul[j] = (float)k->r[j];
	}
	return 0;
}

/* Whether @path is a file of the model directory @dir itself, which the
 * model runs read (a copy in a subdirectory is coded but not tuned). */
static bool in_model(const char *path, const char *dir)
{
	size_t len = strlen(dir);

	while (len > 1 && dir[len - 1] == '/')
		len--;
	return !strncmp(path, dir, len) && path[len] == '/' &&
	       !strchr(path + len + 1, '/');
}

/* The tensors to tune, their spill offsets and their factors at 1. */
static int tune_init(struct tune *T, struct pipe *p)
{
	off_t off = 0;

	T->p = p;
	T->fd = -1;
	T->t = calloc(NWC_MAX(p->n_lt, 1), sizeof(*T->t));
	if (!T->t)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_lt; i++) {
		const struct nwc_rate_tensor *t = &p->lt[i];
		struct tt *k;

		if (t->lossless || !in_model(t->path, p->opts->lossy->tune.dir))
			continue;
		k = &T->t[T->n++];
		k->lt = i;
		k->off = off;
		off += (off_t)t->m * t->n * (off_t)sizeof(float);
		k->r = malloc(3 * (size_t)t->m * sizeof(*k->r));
		k->g = calloc(t->m, sizeof(*k->g));
		if (!k->r || !k->g)
			return -ENOMEM;
		k->m1 = k->r + t->m;
		k->m2 = k->m1 + t->m;
		for (uint32_t j = 0; j < t->m; j++) {
			k->r[j] = 1;
			k->m1[j] = k->m2[j] = 0;
		}
	}
	return 0;
}

static void tune_free(struct tune *T)
{
	for (size_t i = 0; T->t && i < T->n; i++) {
		free(T->t[i].r);
		free(T->t[i].g);
		free(T->t[i].side);
	}
	free(T->t);
	if (T->fd >= 0)
		close(T->fd);
}

/*
 * One step on block @b (@n tokens at @tok): the original's final rows for
 * it (kept in *@target while @b stays the same), then the gradient.
 */
static int step(struct tune *T, const struct nwc_llama_opts *lo, int spill,
		const uint32_t *tok, size_t n, size_t b, size_t *have,
		float **target, double *kl)
{
	const char *dir = T->p->opts->lossy->tune.dir;
	int ret;

	if (*have != b) {
		free(*target);
		*target = NULL;
		*have = SIZE_MAX;
		ret = nwc_llama_final_rows(dir, tok, n, lo, target);
		if (ret)
			return ret;
		*have = b;
	}
	return nwc_llama_scale_grad(dir, tok, n, lo, spill, *target, hook, T,
				    sink, T, kl);
}

int pack_tune(struct pipe *p, struct nwc_pack_result *res)
{
	const struct nwc_pack_tune *o = &p->opts->lossy->tune;
	struct nwc_llama_opts lo = { .threads = p->opts->jobs, .ctx = o->ctx };
	struct tune T = { 0 };
	uint32_t *tok = NULL;
	float *target = NULL;
	double t0 = nwc_now(), kl = 0;
	size_t ntok = 0, n, blocks, have = SIZE_MAX;
	int spill = -1, ret;

	if (nwc_group_size() > 1) {
		nwc_err("--calib-tune runs in one process, not across %u ranks",
			nwc_group_size());
		return -NWC_EFEATURE;
	}
	ret = tune_init(&T, p);
	/* a fresh block of tokens each step, while the file has them */
	if (!ret)
		ret = nwc_llama_read_tokens(o->tokens,
					    o->max_tokens * o->steps, &tok,
					    &ntok);
	if (!ret)
		ret = nwc_calib_spill_open(o->spill_dir,
					   "the coded weights of --calib-tune",
					   &T.fd);
	if (!ret)
		ret = nwc_calib_spill_open(o->spill_dir,
					   "the layer inputs of --calib-tune",
					   &spill);
	if (!ret && ntok < 2) {
		nwc_err("%s: too few tokens to tune on", o->tokens);
		ret = -EINVAL;
	}
	if (ret)
		goto out_free;
	n = NWC_MIN(ntok, (size_t)o->max_tokens);
	blocks = ntok / NWC_MAX(n, 1);
	if (o->lines)
		fprintf(stderr, "tune: coding %zu tensors to tune their row scales, %zu tokens a step (%zu block%s of the token file)\n",
			T.n, n, blocks, blocks > 1 ? "s" : "");
	ret = code_all(&T);
	for (unsigned s = 1; !ret && s <= o->steps; s++) {
		size_t b = (s - 1) % blocks;
		double t1 = nwc_now(), left;

		ret = step(&T, &lo, spill, tok + b * n, n, b, &have, &target,
			   &kl);
		if (ret)
			break;
		if (s == 1)
			res->lossy.tune_kl0 = kl;
		adam(&T, s, o->lr);
		left = (nwc_now() - t1) * (o->steps - s + 1);
		if (o->lines)
			fprintf(stderr, "tune: step %u/%u, block %zu, KL %.5g nats a token, ETA %u:%02u\n",
				s, o->steps, b + 1, kl,
				(unsigned)(left / 60), (unsigned)fmod(left, 60));
	}
	/* The tuned factors on the first block, against the start. */
	if (!ret)
		ret = step(&T, &lo, spill, tok, n, 0, &have, &target,
			   &res->lossy.tune_kl);
	if (!ret && o->lines)
		fprintf(stderr, "tune: KL on the first block %.5g nats a token, %.5g at the start\n",
			res->lossy.tune_kl, res->lossy.tune_kl0);
	if (!ret)
		ret = keep_factors(&T);
	res->lossy.tune_seconds = nwc_now() - t0;
out_free:
	if (spill >= 0)
		close(spill);
	free(target);
	free(tok);
	tune_free(&T);
	return ret;
}
