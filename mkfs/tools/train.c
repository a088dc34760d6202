/* SPDX-License-Identifier: MIT */
/* train.c - nwc-train: train an NWC codec model on the weights of models. */
#include "codec/common/base.h"

#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/array.h"
#include "codec/common/cli.h"
#include "codec/common/convert.h"
#include "codec/image/format.h"
#include "codec/common/hash.h"
#include "codec/nwc/gemm.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/prior.h"
#include "codec/input/safetensors.h"
#include "mkfs/pack/progress.h"

#define PROG "nwc-train"
#define QGROUP 64			/* chunks sharing one random level */
#define MAX_THREADS 256u
#define MAX_ELEMS (1ull << 31)		/* largest tensor we read */
#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8
#define CLIP_NORM 1.0
#define AUX_LR 1e-3

#define CKPT_MAGIC "NWCTRAIN"
#define CKPT_VERSION 1u
#define CKPT_HDR 72u


enum {
	OPT_HIDDEN = 256, OPT_BLOCKS, OPT_LAMBDA, OPT_STEPS, OPT_BATCH,
	OPT_LR, OPT_INIT_GAIN, OPT_INIT_BRANCH, OPT_THREADS, OPT_SEED,
	OPT_CKPT, OPT_CKPT_EVERY, OPT_RESUME, OPT_EVAL_EVERY, OPT_CHECK,
};

/* Rate weight of each level in the loss (the paper's coff for Q = 4). */
static const float coff[NWC_NET_Q] = { 3.4f, 1.2f, 0.1f, 0.05f };

struct opts {
	unsigned int h, r, steps, batch, threads, ckpt_every, eval_every;
	double lambda, lr, gain, branch;
	uint64_t seed;
	const char *ckpt, *resume, *check;
	bool quiet;
};

/* All training chunks: row-normalized weights, NWC_CHUNK rows of one
 * column each. */
struct data {
	float *x;		/* n x 16 */
	uint8_t *q;		/* n levels, one random level per QGROUP */
	size_t n, cap;
	uint32_t *train, *eval;	/* chunk indices of the two splits */
	size_t ntrain, neval;
	uint64_t hash;		/* of x and q: a resume must see the same */
};

struct trainer;

struct worker {
	struct trainer *t;
	size_t lo, hi;		/* rows of the batch */
	struct nwc_net_acts *ea, *da;
	float *x, *y, *xh, *dx, *dy, *roww;
	uint8_t *q;
	double *rowbits;
	float *grad;		/* nmain floats */
	double sqerr, rate, bits;
	int ret;
};

struct trainer {
	const struct opts *o;
	const struct data *d;
	struct nwc_model *m;
	size_t nmain;		/* enc, dec, emb, prior: the main optimizer's */
	size_t nquant;		/* 3 C quantiles: the aux optimizer's */
	float *am, *av;		/* Adam moments, nmain each */
	float *qm, *qv;		/* Adam moments of the quantiles */
	float *grad, *dq;
	uint32_t *idx;		/* batch: chunk indices */
	float *noise;		/* batch x 16 */
	uint64_t step, rng;
	unsigned int nw;
	struct worker *w;
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static uint64_t rand_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)splitmix(s) * n) >> 64);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: nwc-train [OPTIONS] OUT.nwcm WEIGHTS.safetensors...\n"
"       nwc-train --check MODEL.nwcm [WEIGHTS.safetensors...]\n"
"Train an NWC codec model on the 2-D float tensors of safetensors files\n"
"(names with \"embed\" or \"lm_head\" left out).\n"
"\n"
"      --hidden=H           hidden width (default 32)\n"
"      --blocks=R           residual blocks (default 1)\n"
"      --lambda=L           distortion weight, the rate point (default 100)\n"
"      --steps=N            total training steps (default 20000)\n"
"      --batch=B            chunks per step (default 4096)\n"
"      --lr=X               learning rate (default 1e-3)\n"
"      --init-gain=G        start with latents G times larger (default 1);\n"
"                           high-rate models learn faster with G > 1\n"
"      --init-branch=S      start the residual blocks' LayerNorm scales at S\n"
"                           (default 1); small S starts near a linear map;\n"
"                           0 trains a linear model: identity init, blocks\n"
"                           off for good (its decoder folds to one map)\n"
"      --threads=N          threads (default: online CPUs)\n"
"      --seed=S             seed of the split, levels, init and sampling\n"
"                           (default 100)\n"
"      --checkpoint=FILE    write the training state to FILE\n"
"      --checkpoint-every=N every N steps (default 1000) and at the end\n"
"      --resume=FILE        continue from a checkpoint (same options)\n"
"      --eval-every=N       evaluate on the held-out chunks every N steps\n"
"                           (default 0: only at the end)\n"
"      --check=MODEL        load MODEL, print its shape and, given weights,\n"
"                           evaluate it on their held-out chunks\n"
"  -q, --quiet              no progress line, no summary\n"
"  -h, --help               show this help\n"
"\n"
"Exit status: 0 success, 1 usage error, 2 I/O error, 3 bad input,\n"
"4 training diverged.\n");
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static bool name_excluded(const char *name)
{
	return strstr(name, "embed") || strstr(name, "lm_head");
}

static int data_grow(struct data *d, size_t add)
{
	if (add > UINT32_MAX - d->n) {
		nwc_err("too many chunks (at most %u)", UINT32_MAX);
		return -E2BIG;
	}
	return nwc_array_reserve((void **)&d->x, &d->cap, d->n + add,
				 NWC_CHUNK * sizeof(*d->x));
}

/*
 * Row-normalize W (m x n) by each row's unbiased std (rows of std 0 become
 * zeros: nothing to learn from them) and append its chunks, column by
 * column.  Returns 1 if used, 0 if skipped, or a negative errno.
 */
static int add_matrix(struct data *d, float *w, uint64_t m, uint64_t n,
		      const char *path, const char *name)
{
	uint64_t mk = m / NWC_CHUNK;
	int ret;

	for (uint64_t i = 0; i < m * n; i++) {
		if (!isfinite(w[i])) {
			nwc_warn("%s: %s: non-finite weights, left out", path,
				 name);
			return 0;
		}
	}
	for (uint64_t i = 0; i < m; i++) {
		float *row = w + i * n;
		double sum = 0, ss = 0, mean, sd;

		for (uint64_t j = 0; j < n; j++)
			sum += row[j];
		mean = sum / (double)n;
		for (uint64_t j = 0; j < n; j++)
			ss += (row[j] - mean) * (row[j] - mean);
		sd = sqrt(ss / (double)(n - 1));
		for (uint64_t j = 0; j < n; j++)
			row[j] = sd > 0 ? (float)(row[j] / sd) : 0.0f;
	}
	ret = data_grow(d, mk * n);
	if (ret)
		return ret;
	for (uint64_t j = 0; j < n; j++) {
		for (uint64_t k = 0; k < mk; k++) {
			float *c = d->x + d->n * NWC_CHUNK;

			for (unsigned int i = 0; i < NWC_CHUNK; i++)
				c[i] = w[(k * NWC_CHUNK + i) * n + j];
			d->n++;
		}
	}
	return 1;
}

static int load_file(struct data *d, const char *path, size_t *used)
{
	struct nwc_st *st = NULL;
	void *raw = NULL;
	float *w = NULL;
	int fd, ret;

	ret = nwc_st_open(path, &fd, &st);
	if (ret)
		return ret;
	for (size_t i = 0; i < st->n_tensors; i++) {
		const struct nwc_st_tensor *t = &st->tensors[i];
		uint64_t m = t->shape[0], n = t->shape[1];

		if (t->ndim != 2 || name_excluded(t->name) || m < NWC_CHUNK ||
		    n < 2 ||
		    (t->dtype != NWC_DTYPE_F32 && t->dtype != NWC_DTYPE_F16 &&
		     t->dtype != NWC_DTYPE_BF16))
			continue;
		if (m > MAX_ELEMS / n) {
			nwc_warn("%s: %s: too large, left out", path, t->name);
			continue;
		}
		raw = malloc(t->end - t->begin);
		w = malloc(m * n * sizeof(*w));
		if (!raw || !w) {
			ret = -ENOMEM;
			goto out_free_bufs;
		}
		ret = nwc_pread_full(fd, raw, t->end - t->begin,
				     st->data_off + t->begin);
		if (ret)
			goto out_read_err;
		nwc_to_f32(t->dtype, raw, m * n, w);
		ret = add_matrix(d, w, m, n, path, t->name);
		if (ret < 0)
			goto out_free_bufs;
		*used += (size_t)ret;
		free(raw);
		free(w);
		raw = NULL;
		w = NULL;
	}
	ret = 0;
	goto out_free_bufs;

out_read_err:
	nwc_err("%s: read failed: %s", path, nwc_strerror(ret));
out_free_bufs:
	free(raw);
	free(w);
	nwc_st_free(st);
	close(fd);
	return ret;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Levels per group of QGROUP chunks and the 2 % held-out split. */
static int split_data(struct data *d, uint64_t seed)
{
	uint64_t rng = seed ^ 0x6e77632d64617461ull;	/* "nwc-data" */
	struct nwc_hash_state *hs;
	uint32_t *perm;
	int ret;

	d->q = malloc(d->n);
	perm = malloc(d->n * sizeof(*perm));
	if (!d->q || !perm) {
		free(perm);
		return -ENOMEM;
	}
	for (size_t g = 0; g < d->n; g += QGROUP) {
		uint8_t lv = (uint8_t)rand_below(&rng, NWC_NET_Q);

		memset(d->q + g, lv, NWC_MIN((size_t)QGROUP, d->n - g));
	}
	for (size_t i = 0; i < d->n; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = d->n - 1; i > 0; i--) {
		size_t j = rand_below(&rng, i + 1);
		uint32_t tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	d->neval = d->n * 2 / 100;
	if (!d->neval && d->n > 1)
		d->neval = 1;
	d->ntrain = d->n - d->neval;
	d->eval = perm;
	d->train = perm + d->neval;
	qsort(d->eval, d->neval, sizeof(*perm), cmp_u32);
	qsort(d->train, d->ntrain, sizeof(*perm), cmp_u32);

	ret = nwc_hash_create(&hs);
	if (ret)
		return ret;
	nwc_hash_update(hs, d->x, d->n * NWC_CHUNK * sizeof(*d->x));
	nwc_hash_update(hs, d->q, d->n);
	nwc_hash_update(hs, perm, d->n * sizeof(*perm));
	d->hash = nwc_hash_digest(hs);
	nwc_hash_free(hs);
	return 0;
}

static void data_free(struct data *d)
{
	free(d->x);
	free(d->q);
	free(d->eval);
}

/* Load every input; 0 or an exit status. */
static int load_data(struct data *d, char **files, int nfiles, uint64_t seed)
{
	size_t used = 0;
	int ret;

	for (int i = 0; i < nfiles; i++) {
		ret = load_file(d, files[i], &used);
		if (ret == -ENOMEM) {
			nwc_err("out of memory loading %s", files[i]);
			return NWC_EXIT_IO;
		}
		if (ret == -NWC_EFORMAT)
			return NWC_EXIT_DATA;
		if (ret)
			return NWC_EXIT_IO;
	}
	if (d->n < 2) {
		nwc_err("no usable tensors: need 2-D F32/F16/BF16 weights with at least %d rows (embed and lm_head are left out)",
			NWC_CHUNK);
		return NWC_EXIT_DATA;
	}
	if (split_data(d, seed)) {
		nwc_err("out of memory");
		return NWC_EXIT_IO;
	}
	return 0;
}

struct eval_result {
	double bpw, sqnr;
};

/* Real rate and SQNR of the held-out chunks, every one at @level. */
static int evaluate(struct nwc_model *m, const struct data *d, unsigned level,
		    struct eval_result *res)
{
	size_t n = d->neval, cap = nwc_ents_bound(n * NWC_CHUNK);
	struct nwc_model_scratch *s;
	float *x, *xh;
	int32_t *sym, *sym2;
	uint8_t *q, *buf;
	double sx = 0, se = 0;
	ssize_t len;
	int ret;

	ret = nwc_model_scratch_create(&s);
	if (ret)
		return ret;
	x = malloc(n * NWC_CHUNK * sizeof(*x));
	xh = malloc(n * NWC_CHUNK * sizeof(*xh));
	sym = malloc(n * NWC_CHUNK * sizeof(*sym));
	sym2 = malloc(n * NWC_CHUNK * sizeof(*sym2));
	q = malloc(n);
	buf = malloc(cap);
	if (!x || !xh || !sym || !sym2 || !q || !buf) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++)
		memcpy(x + i * NWC_CHUNK, d->x + (size_t)d->eval[i] * NWC_CHUNK,
		       NWC_CHUNK * sizeof(*x));
	memset(q, (int)level, n);
	ret = nwc_model_encode_chunks(m, x, q, n, sym, s);
	if (ret)
		goto out_free;
	len = nwc_model_code_syms(m, sym, n * NWC_CHUNK, buf, cap);
	if (len < 0) {
		ret = (int)len;
		goto out_free;
	}
	ret = nwc_model_decode_syms(m, buf, (size_t)len, sym2, n * NWC_CHUNK);
	if (!ret && memcmp(sym, sym2, n * NWC_CHUNK * sizeof(*sym)))
		ret = -NWC_ECORRUPT;
	if (ret) {
		nwc_err("evaluation: entropy decoding did not give the symbols back");
		goto out_free;
	}
	ret = nwc_model_decode_chunks(m, sym2, q, n, xh, s);
	if (ret)
		goto out_free;
	for (size_t i = 0; i < n * NWC_CHUNK; i++) {
		double e = (double)x[i] - xh[i];

		sx += (double)x[i] * x[i];
		se += e * e;
	}
	res->bpw = (double)len * 8 / (double)(n * NWC_CHUNK);
	res->sqnr = se > 0 ? 10 * log10(sx / se) : INFINITY;
out_free:
	free(buf);
	free(q);
	free(sym2);
	free(sym);
	free(xh);
	free(x);
	nwc_model_scratch_free(s);
	return ret;
}

static const unsigned eval_levels[] = { 1, 0, 3 };

/*
 * Coding tables from the exact quantiles of the density as trained: the
 * aux optimizer's lag behind growing latents would otherwise narrow the
 * tables and send the far latents through costly escapes.
 */
static int finalize(struct nwc_model *m)
{
	int ret;

	ret = nwc_prior_solve_quantiles(m->prior, m->quantiles, m->c);
	return ret ? ret : nwc_model_finalize(m);
}

/* Finalize and print one line per level; 0 or a negative errno. */
static int eval_print(struct nwc_model *m, const struct data *d,
		      const char *tag, bool solve)
{
	struct eval_result r = { 0 };
	int ret;

	ret = solve ? finalize(m) : nwc_model_finalize(m);
	if (ret) {
		nwc_err("cannot build coding tables: %s", nwc_strerror(ret));
		return ret;
	}
	for (size_t i = 0; i < NWC_ARRAY_SIZE(eval_levels); i++) {
		ret = evaluate(m, d, eval_levels[i], &r);
		if (ret) {
			nwc_err("evaluation failed: %s", nwc_strerror(ret));
			return ret;
		}
		printf("%s level %u: %.4f bits/weight, SQNR %.2f dB (%zu held-out chunks)\n",
		       tag, eval_levels[i], r.bpw, r.sqnr, d->neval);
	}
	fflush(stdout);
	return 0;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct trainer *t = w->t;
	struct nwc_model *m = t->m;
	const struct data *d = t->d;
	struct nwc_net enc = { .h = m->h, .r = m->r, .nq = m->nq,
			       .params = m->enc };
	struct nwc_net dec = enc;
	size_t b = w->hi - w->lo, ne = b * NWC_CHUNK;
	double scale = 1.0 / ((double)t->o->batch * NWC_CHUNK);
	float *genc = w->grad, *gdec = w->grad + (m->dec - m->params);
	float *gemb = w->grad + (m->emb - m->params);
	float *gemb_dec = w->grad + (m->emb_dec - m->params);
	float *gprior = w->grad + (m->prior - m->params);
	double lam = t->o->lambda;

	dec.params = m->dec;
	w->sqerr = 0;
	w->bits = 0;
	memset(w->grad, 0, t->nmain * sizeof(*w->grad));
	for (size_t i = 0; i < b; i++) {
		uint32_t c = t->idx[w->lo + i];

		memcpy(w->x + i * NWC_CHUNK, d->x + (size_t)c * NWC_CHUNK,
		       NWC_CHUNK * sizeof(float));
		w->q[i] = d->q[c];
		w->roww[i] = (float)(coff[d->q[c]] * scale);
	}
	w->ret = nwc_net_forward_train(&enc, m->emb, w->q, w->x, b, w->y,
				       w->ea);
	if (w->ret)
		return NULL;
	for (size_t i = 0; i < ne; i++)
		w->y[i] += t->noise[w->lo * NWC_CHUNK + i];
	w->ret = nwc_net_forward_train(&dec, m->emb_dec, w->q, w->y, b, w->xh,
				       w->da);
	if (w->ret)
		return NULL;
	for (size_t i = 0; i < ne; i++) {
		double e = (double)w->xh[i] - w->x[i];

		w->sqerr += e * e;
		w->dx[i] = (float)(2 * lam * e * scale);
	}
	w->ret = nwc_net_backward(&dec, m->emb_dec, w->dx, w->da, gdec,
				  gemb_dec, w->dy);
	if (w->ret)
		return NULL;
	/* row weights carry coff[q] / (B 16): bits is the rate term itself */
	w->ret = nwc_prior_bits(m->prior, NWC_CHUNK, w->y, b, w->roww, &w->rate,
				w->rowbits, gprior, w->dy);
	if (w->ret)
		return NULL;
	for (size_t i = 0; i < b; i++)
		w->bits += w->rowbits[i];
	w->ret = nwc_net_backward(&enc, m->emb, w->dy, w->ea, genc, gemb, NULL);
	return NULL;
}

static void adam(float *p, const float *g, float *am, float *av, size_t n,
		 double lr, uint64_t t)
{
	double c1 = 1 - pow(ADAM_B1, (double)t);
	double c2 = 1 - pow(ADAM_B2, (double)t);

	for (size_t i = 0; i < n; i++) {
		am[i] = (float)(ADAM_B1 * am[i] + (1 - ADAM_B1) * g[i]);
		av[i] = (float)(ADAM_B2 * av[i] + (1 - ADAM_B2) * g[i] * g[i]);
		p[i] -= (float)(lr * (am[i] / c1) /
				(sqrt(av[i] / c2) + ADAM_EPS));
	}
}

struct step_stats {
	double loss, mse, bpw;
};

static int train_step(struct trainer *t, struct step_stats *st)
{
	const struct opts *o = t->o;
	size_t B = o->batch;
	pthread_t tid[MAX_THREADS];
	double sqerr = 0, rate = 0, bits = 0, norm = 0, aux;
	int ret = 0;

	for (size_t i = 0; i < B; i++)
		t->idx[i] = t->d->train[rand_below(&t->rng, t->d->ntrain)];
	for (size_t i = 0; i < B * NWC_CHUNK; i++)
		t->noise[i] = (float)((double)(splitmix(&t->rng) >> 40) *
				      0x1p-24 - 0.5);
	for (unsigned int k = 1; k < t->nw; k++) {
		ret = -pthread_create(&tid[k], NULL, worker_run, &t->w[k]);
		if (ret) {
			nwc_err("cannot start a thread: %s", nwc_strerror(ret));
			for (unsigned int j = 1; j < k; j++)
				pthread_join(tid[j], NULL);
			return ret;
		}
	}
	worker_run(&t->w[0]);
	for (unsigned int k = 1; k < t->nw; k++)
		pthread_join(tid[k], NULL);

	memset(t->grad, 0, t->nmain * sizeof(*t->grad));
	for (unsigned int k = 0; k < t->nw; k++) {
		const struct worker *w = &t->w[k];

		if (w->ret && !ret)
			ret = w->ret;
		for (size_t i = 0; i < t->nmain; i++)
			t->grad[i] += w->grad[i];
		sqerr += w->sqerr;
		rate += w->rate;
		bits += w->bits;
	}
	if (ret) {
		nwc_err("training step failed: %s", nwc_strerror(ret));
		return ret;
	}
	st->mse = sqerr / ((double)B * NWC_CHUNK);
	st->bpw = bits / ((double)B * NWC_CHUNK);
	st->loss = o->lambda * st->mse + rate;
	for (size_t i = 0; i < t->nmain; i++)
		norm += (double)t->grad[i] * t->grad[i];
	norm = sqrt(norm);
	if (!isfinite(st->loss) || !isfinite(norm)) {
		nwc_err("training diverged at step %llu (loss %g)",
			(unsigned long long)t->step + 1, st->loss);
		return -ERANGE;
	}
	if (norm > CLIP_NORM) {
		float c = (float)(CLIP_NORM / (norm + 1e-6));

		for (size_t i = 0; i < t->nmain; i++)
			t->grad[i] *= c;
	}
	t->step++;
	adam(t->m->params, t->grad, t->am, t->av, t->nmain, o->lr, t->step);

	memset(t->dq, 0, t->nquant * sizeof(*t->dq));
	ret = nwc_prior_aux(t->m->prior, t->m->quantiles, t->m->c, &aux, t->dq);
	if (ret)
		return ret;
	adam(t->m->quantiles, t->dq, t->qm, t->qv, t->nquant, AUX_LR, t->step);
	return 0;
}

static void trainer_free(struct trainer *t)
{
	for (unsigned int k = 0; t->w && k < t->nw; k++) {
		struct worker *w = &t->w[k];

		nwc_net_acts_free(w->ea);
		nwc_net_acts_free(w->da);
		free(w->x);
		free(w->y);
		free(w->xh);
		free(w->dx);
		free(w->dy);
		free(w->roww);
		free(w->q);
		free(w->rowbits);
		free(w->grad);
	}
	free(t->w);
	free(t->am);
	free(t->av);
	free(t->qm);
	free(t->qv);
	free(t->grad);
	free(t->dq);
	free(t->idx);
	free(t->noise);
	nwc_model_free(t->m);
}

/*
 * A linear net (mlp.h, nwc_net_is_linear()): the identity from the 16
 * inputs through the first 16 features to the 16 outputs, the other
 * features and every bias zero, the blocks off (gamma = beta = 0).  A
 * block with gamma 0 passes ReLU(0) = 0 and gets no gradient, so it stays
 * off and training learns the linear map, the level table and the prior.
 */
static void init_linear(float *p, unsigned int h, unsigned int r)
{
	struct nwc_net_layout l;

	nwc_net_layout(h, r, &l);
	memset(p + l.w_in, 0, (size_t)h * NWC_CHUNK * sizeof(float));
	memset(p + l.b_in, 0, h * sizeof(float));
	for (unsigned int b = 0; b < r; b++) {
		memset(p + l.blk[b].b, 0, h * sizeof(float));
		memset(p + l.blk[b].beta, 0, h * sizeof(float));
	}
	memset(p + l.w_out, 0, (size_t)h * NWC_CHUNK * sizeof(float));
	memset(p + l.b_out, 0, NWC_CHUNK * sizeof(float));
	for (unsigned int i = 0; i < NWC_CHUNK; i++) {
		p[l.w_in + (size_t)i * NWC_CHUNK + i] = 1;
		p[l.w_out + (size_t)i * h + i] = 1;
	}
}

/*
 * Start the latents @gain times larger than the default init gives (the
 * encoder's output layer times gain, the decoder's input layer over it):
 * a high-rate model needs a fine quantization step relative to its
 * latents, which training from gain 1 reaches only after many steps.
 * Branch 0 starts (and keeps) the nets linear.
 */
static void init_gain(struct nwc_model *m, double gain, double branch)
{
	struct nwc_net_layout l;

	nwc_net_layout(m->h, m->r, &l);
	if (branch == 0) {
		init_linear(m->enc, m->h, m->r);
		init_linear(m->dec, m->h, m->r);
	}
	for (unsigned int b = 0; b < m->r; b++) {
		for (size_t i = 0; i < m->h; i++) {
			m->enc[l.blk[b].gamma + i] = (float)branch;
			m->dec[l.blk[b].gamma + i] = (float)branch;
		}
	}
	for (size_t i = 0; i < (size_t)NWC_CHUNK * m->h; i++) {
		m->enc[l.w_out + i] *= (float)gain;
		m->dec[l.w_in + i] /= (float)gain;
	}
	for (size_t i = 0; i < NWC_CHUNK; i++)
		m->enc[l.b_out + i] *= (float)gain;
}

/*
 * Level q's rate weight coff[q] asks for a quantization step about
 * sqrt(coff[q]) times level 1's: start the encoder's level table at the
 * inverse of that and the decoder's at that, so the levels start apart
 * instead of waiting for Adam to move the tables there.
 */
static void init_levels(struct nwc_model *m)
{
	for (unsigned int q = 0; q < m->nq; q++) {
		float g = sqrtf(coff[1] / coff[q]);

		for (size_t i = 0; i < m->h; i++) {
			m->emb[(size_t)q * m->h + i] = g;
			m->emb_dec[(size_t)q * m->h + i] = 1 / g;
		}
	}
}

static int trainer_init(struct trainer *t, const struct opts *o,
			const struct data *d)
{
	size_t B = o->batch;
	int ret;

	memset(t, 0, sizeof(*t));
	t->o = o;
	t->d = d;
	ret = nwc_model_create(o->h, o->r, NWC_NET_Q, &t->m);
	if (ret)
		return ret;
	t->m->lambda = (float)o->lambda;
	nwc_net_init(t->m->enc, o->h, o->r, o->seed);
	nwc_net_init(t->m->dec, o->h, o->r, o->seed + 1);
	init_gain(t->m, o->gain, o->branch);
	init_levels(t->m);
	nwc_prior_init(t->m->prior, t->m->quantiles, t->m->c, o->seed + 2);
	t->nquant = 3 * (size_t)t->m->c;
	t->nmain = t->m->nparams - t->nquant;
	t->rng = o->seed ^ 0x6e77632d7472616eull;	/* "nwc-tran" */
	t->am = calloc(t->nmain, sizeof(float));
	t->av = calloc(t->nmain, sizeof(float));
	t->grad = calloc(t->nmain, sizeof(float));
	t->qm = calloc(t->nquant, sizeof(float));
	t->qv = calloc(t->nquant, sizeof(float));
	t->dq = calloc(t->nquant, sizeof(float));
	t->idx = calloc(B, sizeof(*t->idx));
	t->noise = calloc(B * NWC_CHUNK, sizeof(float));
	t->nw = NWC_MIN(o->threads, o->batch);
	t->w = calloc(t->nw, sizeof(*t->w));
	if (!t->am || !t->av || !t->grad || !t->qm || !t->qv || !t->dq ||
	    !t->idx || !t->noise || !t->w)
		return -ENOMEM;
	for (unsigned int k = 0; k < t->nw; k++) {
		struct worker *w = &t->w[k];
		size_t b;

		w->t = t;
		w->lo = B * k / t->nw;
		w->hi = B * (k + 1) / t->nw;
		b = w->hi - w->lo;
		if (nwc_net_acts_create(&w->ea) || nwc_net_acts_create(&w->da))
			return -ENOMEM;
		w->x = malloc(b * NWC_CHUNK * sizeof(float));
		w->y = malloc(b * NWC_CHUNK * sizeof(float));
		w->xh = malloc(b * NWC_CHUNK * sizeof(float));
		w->dx = malloc(b * NWC_CHUNK * sizeof(float));
		w->dy = malloc(b * NWC_CHUNK * sizeof(float));
		w->roww = malloc(b * sizeof(float));
		w->q = malloc(b);
		w->rowbits = malloc(b * sizeof(double));
		w->grad = malloc(t->nmain * sizeof(float));
		if (!w->x || !w->y || !w->xh || !w->dx || !w->dy || !w->roww ||
		    !w->q || !w->rowbits || !w->grad)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Checkpoint, little-endian: "NWCTRAIN", u32 version 1, u32 H, R, Q,
 * f32 lambda, u32 batch, u64 seed, u64 data hash, u64 step, u64 rng,
 * u64 F (model floats); f32 params[F], Adam m and v of the main
 * parameters, m and v of the quantiles (3 F floats in all); u64 XXH3-64 of
 * everything before.
 */
static void ckpt_arrays(const struct trainer *t, size_t *lens, float **arr)
{
	arr[0] = t->m->params;
	lens[0] = t->m->nparams;
	arr[1] = t->am;
	arr[2] = t->av;
	lens[1] = lens[2] = t->nmain;
	arr[3] = t->qm;
	arr[4] = t->qv;
	lens[3] = lens[4] = t->nquant;
}

static int ckpt_save(const struct trainer *t, const char *path)
{
	size_t lens[5], size = CKPT_HDR + 8 + 12 * t->m->nparams;
	float *arr[5];
	uint8_t *b, *p;
	int ret;

	ckpt_arrays(t, lens, arr);
	b = malloc(size);
	if (!b)
		return -ENOMEM;
	memcpy(b, CKPT_MAGIC, 8);
	nwc_put_le32(b + 8, CKPT_VERSION);
	nwc_put_le32(b + 12, t->m->h);
	nwc_put_le32(b + 16, t->m->r);
	nwc_put_le32(b + 20, t->m->nq);
	nwc_put_lef32(b + 24, (float)t->o->lambda);
	nwc_put_le32(b + 28, t->o->batch);
	nwc_put_le64(b + 32, t->o->seed);
	nwc_put_le64(b + 40, t->d->hash);
	nwc_put_le64(b + 48, t->step);
	nwc_put_le64(b + 56, t->rng);
	nwc_put_le64(b + 64, t->m->nparams);
	p = b + CKPT_HDR;
	for (int a = 0; a < 5; a++)
		for (size_t i = 0; i < lens[a]; i++, p += 4)
			nwc_put_lef32(p, arr[a][i]);
	nwc_put_le64(p, nwc_hash64(b, (size_t)(p - b)));
	ret = nwc_write_file_atomic(path, b, size);
	free(b);
	return ret;
}

static int ckpt_load(struct trainer *t, const char *path)
{
	size_t lens[5], size = CKPT_HDR + 8 + 12 * t->m->nparams;
	const struct opts *o = t->o;
	float *arr[5];
	uint8_t *b, *p;
	struct stat sb;
	int fd, ret;

	ckpt_arrays(t, lens, arr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb)) {
		ret = -errno;
		nwc_err("%s: %s", path, nwc_strerror(ret));
		goto out_close_fd;
	}
	b = malloc(size);
	if (!b) {
		ret = -ENOMEM;
		goto out_close_fd;
	}
	ret = -NWC_ECORRUPT;
	if (!S_ISREG(sb.st_mode) || sb.st_size < CKPT_HDR + 8 ||
	    nwc_pread_full(fd, b, CKPT_HDR, 0) || memcmp(b, CKPT_MAGIC, 8)) {
		nwc_err("%s: not an nwc-train checkpoint", path);
		goto out_free_b;
	}
	if (nwc_get_le32(b + 8) != CKPT_VERSION) {
		nwc_err("%s: checkpoint version %u is not supported", path,
			nwc_get_le32(b + 8));
		ret = -NWC_EFEATURE;
		goto out_free_b;
	}
	if (nwc_get_le32(b + 12) != o->h || nwc_get_le32(b + 16) != o->r ||
	    nwc_get_le32(b + 20) != NWC_NET_Q ||
	    nwc_get_lef32(b + 24) != (float)o->lambda ||
	    nwc_get_le32(b + 28) != o->batch ||
	    nwc_get_le64(b + 32) != o->seed) {
		nwc_err("%s: checkpoint was made with other options (H %u, R %u, lambda %g, batch %u, seed %llu)",
			path, nwc_get_le32(b + 12), nwc_get_le32(b + 16),
			(double)nwc_get_lef32(b + 24), nwc_get_le32(b + 28),
			(unsigned long long)nwc_get_le64(b + 32));
		ret = -EINVAL;
		goto out_free_b;
	}
	if ((uint64_t)sb.st_size != size ||
	    nwc_get_le64(b + 64) != t->m->nparams ||
	    nwc_pread_full(fd, b, size, 0) ||
	    nwc_get_le64(b + size - 8) != nwc_hash64(b, size - 8)) {
		nwc_err("%s: checkpoint is truncated or corrupt", path);
		goto out_free_b;
	}
	if (nwc_get_le64(b + 40) != t->d->hash) {
		nwc_err("%s: checkpoint was made on other training data", path);
		ret = -EINVAL;
		goto out_free_b;
	}
	p = b + CKPT_HDR;
	for (int a = 0; a < 5; a++) {
		for (size_t i = 0; i < lens[a]; i++, p += 4) {
			arr[a][i] = nwc_get_lef32(p);
			if (!isfinite(arr[a][i])) {
				nwc_err("%s: checkpoint has a non-finite value",
					path);
				goto out_free_b;
			}
		}
	}
	t->step = nwc_get_le64(b + 48);
	t->rng = nwc_get_le64(b + 56);
	ret = 0;
out_free_b:
	free(b);
out_close_fd:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int do_check(const struct opts *o, char **files, int nfiles)
{
	struct data d = { 0 };
	struct nwc_model *m;
	int ret;

	if (nwc_model_load(o->check, &m))
		return NWC_EXIT_DATA;
	printf("%s: H %u, R %u, Q %u, C %u, lambda %g, %zu parameters%s\n",
	       o->check, m->h, m->r, m->nq, m->c, (double)m->lambda,
	       m->nparams, m->dec_linear ? ", linear decoder" : "");
	ret = nfiles ? load_data(&d, files, nfiles, o->seed) : 0;
	if (!ret && nfiles && eval_print(m, &d, "eval", false))
		ret = NWC_EXIT_TRAIN;
	data_free(&d);
	nwc_model_free(m);
	return ret;
}

static int do_train(const struct opts *o, const char *out, char **files,
		    int nfiles)
{
	bool tty = !o->quiet && isatty(STDERR_FILENO);
	struct data d = { 0 };
	struct step_stats st = { 0 }, acc = { 0 };
	struct trainer t;
	double t0, last = 0;
	uint64_t first, nacc = 0;
	int ret;

	ret = load_data(&d, files, nfiles, o->seed);
	if (ret)
		goto out_free_data;
	if (!o->quiet)
		printf("%zu chunks (%zu weights): %zu training, %zu held out\n",
		       d.n, d.n * NWC_CHUNK, d.ntrain, d.neval);
	ret = trainer_init(&t, o, &d) ? NWC_EXIT_IO : 0;
	if (ret) {
		nwc_err("out of memory");
		goto out_free_trainer;
	}
	if (o->resume) {
		if (ckpt_load(&t, o->resume)) {
			ret = NWC_EXIT_DATA;
			goto out_free_trainer;
		}
		if (!o->quiet)
			printf("resumed from %s at step %llu\n", o->resume,
			       (unsigned long long)t.step);
	}
	first = t.step;
	t0 = nwc_now();
	while (t.step < o->steps) {
		if (train_step(&t, &st)) {
			ret = NWC_EXIT_TRAIN;
			goto out_free_trainer;
		}
		acc.loss += st.loss;
		acc.mse += st.mse;
		acc.bpw += st.bpw;
		nacc++;
		if (tty && (nwc_now() - last >= 0.1 || t.step == o->steps)) {
			double now = nwc_now();

			fprintf(stderr, "\rstep %llu/%u  loss %.4f  %.3f bpw  MSE %.5f  %.1f steps/s ",
				(unsigned long long)t.step, o->steps,
				acc.loss / nacc, acc.bpw / nacc, acc.mse / nacc,
				(double)(t.step - first) / (now - t0));
			last = now;
			memset(&acc, 0, sizeof(acc));
			nacc = 0;
		}
		if (o->ckpt && (t.step % o->ckpt_every == 0 ||
				t.step == o->steps) && ckpt_save(&t, o->ckpt)) {
			ret = NWC_EXIT_IO;
			goto out_free_trainer;
		}
		if (o->eval_every && t.step % o->eval_every == 0 &&
		    t.step < o->steps && !o->quiet) {
			char tag[64];

			if (tty)
				fputc('\n', stderr);
			snprintf(tag, sizeof(tag), "eval step %llu",
				 (unsigned long long)t.step);
			if (eval_print(t.m, &d, tag, true)) {
				ret = NWC_EXIT_TRAIN;
				goto out_free_trainer;
			}
		}
	}
	if (tty)
		fputc('\n', stderr);
	if (finalize(t.m) || nwc_model_save(t.m, out)) {
		nwc_err("%s: the model was not saved", out);
		ret = NWC_EXIT_IO;
		goto out_free_trainer;
	}
	if (!o->quiet) {
		double secs = nwc_now() - t0;

		printf("trained steps %llu..%llu in %.1f s (%.2f steps/s, %u threads), H %u, R %u, lambda %g, batch %u\n",
		       (unsigned long long)first, (unsigned long long)t.step,
		       secs, secs > 0 ? (double)(t.step - first) / secs : 0,
		       t.nw, o->h, o->r, o->lambda, o->batch);
		if (t.step > first)
			printf("last step: loss %.4f, %.4f bits/weight, MSE %.6f\n",
			       st.loss, st.bpw, st.mse);
		if (eval_print(t.m, &d, "final", true)) {
			ret = NWC_EXIT_TRAIN;
			goto out_free_trainer;
		}
		printf("wrote %s\n", out);
	}
out_free_trainer:
	trainer_free(&t);
out_free_data:
	data_free(&d);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "hidden", required_argument, NULL, OPT_HIDDEN },
		{ "blocks", required_argument, NULL, OPT_BLOCKS },
		{ "lambda", required_argument, NULL, OPT_LAMBDA },
		{ "steps", required_argument, NULL, OPT_STEPS },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "lr", required_argument, NULL, OPT_LR },
		{ "init-gain", required_argument, NULL, OPT_INIT_GAIN },
		{ "init-branch", required_argument, NULL, OPT_INIT_BRANCH },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "checkpoint", required_argument, NULL, OPT_CKPT },
		{ "checkpoint-every", required_argument, NULL, OPT_CKPT_EVERY },
		{ "resume", required_argument, NULL, OPT_RESUME },
		{ "eval-every", required_argument, NULL, OPT_EVAL_EVERY },
		{ "check", required_argument, NULL, OPT_CHECK },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct opts o = {
		.h = 32, .r = 1, .steps = 20000, .batch = 4096,
		.threads = ncpu > 0 ?
			   (unsigned int)NWC_MIN(ncpu, (long)MAX_THREADS) : 1,
		.ckpt_every = 1000, .lambda = 100, .lr = 1e-3, .seed = 100,
		.gain = 1, .branch = 1,
	};
	unsigned int seed;
	int c, bad = 0;

	nwc_log_set_prefix(PROG);
	while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_HIDDEN:
			bad |= nwc_parse_uint(optarg, 1, NWC_NET_MAX_H, &o.h);
			break;
		case OPT_BLOCKS:
			bad |= nwc_parse_uint(optarg, 0, NWC_NET_MAX_R, &o.r);
			break;
		case OPT_LAMBDA:
			bad |= parse_double(optarg, 1e-6, 1e9, &o.lambda);
			break;
		case OPT_STEPS:
			bad |= nwc_parse_uint(optarg, 0, UINT32_MAX, &o.steps);
			break;
		case OPT_BATCH:
			bad |= nwc_parse_uint(optarg, 1, 1u << 24, &o.batch);
			break;
		case OPT_LR:
			bad |= parse_double(optarg, 1e-12, 10, &o.lr);
			break;
		case OPT_INIT_GAIN:
			bad |= parse_double(optarg, 1e-3, 1e3, &o.gain);
			break;
		case OPT_INIT_BRANCH:
			bad |= parse_double(optarg, 0, 10, &o.branch);
			break;
		case OPT_THREADS:
			bad |= nwc_parse_uint(optarg, 1, MAX_THREADS,
					      &o.threads);
			break;
		case OPT_SEED:
			bad |= nwc_parse_uint(optarg, 0, UINT32_MAX, &seed);
			o.seed = seed;
			break;
		case OPT_CKPT:
			o.ckpt = optarg;
			break;
		case OPT_CKPT_EVERY:
			bad |= nwc_parse_uint(optarg, 1, UINT32_MAX,
					      &o.ckpt_every);
			break;
		case OPT_RESUME:
			o.resume = optarg;
			break;
		case OPT_EVAL_EVERY:
			bad |= nwc_parse_uint(optarg, 0, UINT32_MAX,
					      &o.eval_every);
			break;
		case OPT_CHECK:
			o.check = optarg;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return NWC_EXIT_USAGE;
		}
		if (bad) {
			const char *name = "?";

			for (size_t k = 0; longopts[k].name; k++)
				if (longopts[k].val == c)
					name = longopts[k].name;
			nwc_err("invalid value for --%s: %s", name, optarg);
			return NWC_EXIT_USAGE;
		}
	}
	if (o.check)
		return do_check(&o, argv + optind, argc - optind);
	if (o.branch == 0 && o.h < NWC_CHUNK) {
		nwc_err("--init-branch 0 (a linear model) needs --hidden %u or more",
			NWC_CHUNK);
		return NWC_EXIT_USAGE;
	}
	if (argc - optind < 2) {
		usage(stderr);
		return NWC_EXIT_USAGE;
	}
	nwc_gemm_check_core();
	return do_train(&o, argv[optind], argv + optind + 1,
			argc - optind - 1);
}
