/* SPDX-License-Identifier: MIT */
/* rate.c - codec models, levels, estimates and allocation of lossy tensors. */
#include "codec/common/base.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/array.h"
#include "codec/common/convert.h"
#include "codec/common/dtype.h"
#include "codec/image/format.h"
#include "codec/planes.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "mkfs/pack/lossy.h"
#include "mkfs/pack/progress.h"
#include "mkfs/group/group.h"
#include "mkfs/pack/rate.h"

static bool is_model_name(const char *name)
{
	size_t n = strlen(name);

	return n > 5 && !strcmp(name + n - 5, ".nwcm");
}

static int cmp_str(const void *pa, const void *pb)
{
	return strcmp(*(char *const *)pa, *(char *const *)pb);
}

static int cmp_model(const void *pa, const void *pb)
{
	const struct nwc_rate_model *a = pa, *b = pb;

	if (a->model->lambda != b->model->lambda)
		return a->model->lambda < b->model->lambda ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Names of the *.nwcm regular files of @dir, sorted bytewise. */
static int list_models(const char *dir, char ***out, unsigned *n_out)
{
	char **names = NULL, path[4096];
	unsigned n = 0;
	size_t cap = 0;
	struct dirent *de;
	struct stat sb;
	DIR *d;
	int ret = 0;

	d = opendir(dir);
	if (!d) {
		ret = -errno;
		nwc_err("%s: cannot open the codec models directory: %s (pass --models DIR, or --lossless)",
			dir, strerror(errno));
		return ret == -ENOTDIR ? -ENOENT : ret;
	}
	while ((de = readdir(d))) {
		if (!is_model_name(de->d_name))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
				     de->d_name) >= sizeof(path) ||
		    stat(path, &sb) || !S_ISREG(sb.st_mode))
			continue;
		ret = nwc_array_reserve_max((void **)&names, &cap,
					    (size_t)n + 1, sizeof(*names),
					    UINT_MAX);
		if (ret)
			break;
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			ret = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (!ret && !n) {
		nwc_err("%s: no codec models (*.nwcm) in it (pass --models DIR, or --lossless)",
			dir);
		ret = -ENOENT;
	}
	if (ret) {
		for (unsigned i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return ret;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	*out = names;
	*n_out = n;
	return 0;
}

int nwc_rate_load_models(const char *dir, enum nwc_quant quant,
			 struct nwc_rate_models *out)
{
	struct nwc_rate_models ms = { 0 };
	char **names = NULL, path[4096];
	unsigned n = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = list_models(dir, &names, &n);
	if (ret)
		return ret;
	if (n > NWC_MODELS_MAX) {
		nwc_err("%s: %u codec models, more than an image holds (%u)",
			dir, n, NWC_MODELS_MAX);
		ret = -NWC_EFORMAT;
		goto out_names;
	}
	ms.m = calloc(n, sizeof(*ms.m));
	if (!ms.m) {
		ret = -ENOMEM;
		goto out_names;
	}
	for (unsigned i = 0; i < n; i++) {
		struct nwc_rate_model *rm = &ms.m[ms.n];

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		ret = nwc_model_load(path, &rm->model);
		if (ret) {
			if (ret != -ENOMEM)
				ret = -NWC_EFORMAT;
			break;
		}
		rm->name = names[i];
		names[i] = NULL;
		ms.n++;
		if (quant == NWC_QUANT_TCQ &&
		    !(rm->model->flags & NWC_MODEL_F_TCQ)) {
			nwc_dbg("%s: no trellis tables, rebuilding them from the prior",
				path);
			ret = nwc_model_finalize(rm->model);
			if (ret) {
				nwc_err("%s: cannot build its trellis tables: %s",
					path, nwc_strerror(ret));
				break;
			}
		}
	}
	if (ret) {
		nwc_rate_models_free(&ms);
		goto out_names;
	}
	qsort(ms.m, ms.n, sizeof(*ms.m), cmp_model);
	ms.nq = UINT32_MAX;
	for (unsigned k = 0; k < ms.n; k++) {
		ms.nq = NWC_MIN(ms.nq, ms.m[k].model->nq);
		nwc_dbg("codec model %u: %s, lambda %g, H %u, Q %u", k,
			ms.m[k].name, (double)ms.m[k].model->lambda,
			ms.m[k].model->h, ms.m[k].model->nq);
	}
	*out = ms;
out_names:
	for (unsigned i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

void nwc_rate_models_free(struct nwc_rate_models *ms)
{
	for (unsigned k = 0; ms->m && k < ms->n; k++) {
		free(ms->m[k].name);
		nwc_model_free(ms->m[k].model);
	}
	free(ms->m);
	memset(ms, 0, sizeof(*ms));
}

void nwc_rate_tensors_free(struct nwc_rate_tensor *t, size_t nt)
{
	for (size_t i = 0; i < nt; i++) {
		free(t[i].level);
		free(t[i].row_mul);
		t[i].level = NULL;
		t[i].row_mul = NULL;
	}
}

bool nwc_rate_finite(const float *w, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (!isfinite(w[i]))
			return false;
	}
	return true;
}

int nwc_rate_read(int fd, const struct nwc_rate_tensor *t, float **out)
{
	size_t count = (size_t)t->m * t->n, es = nwc_dtype_size(t->dtype);
	bool in_place = t->dtype == NWC_DTYPE_F32;
	uint8_t *raw = NULL;
	float *w;
	int ret;

	*out = NULL;
	w = malloc(count * sizeof(*w));
	if (!w)
		return -ENOMEM;
	/* F32 is read in place and converted from little-endian there. */
	raw = in_place ? (uint8_t *)w : malloc(count * es);
	if (!raw) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = nwc_pread_full(fd, raw, count * es, t->off);
	if (ret) {
		if (ret == -NWC_ECORRUPT)
			nwc_err("%s: %s: read failed: file shrank while packing?",
				t->path, t->name);
		else
			nwc_err("%s: %s: read failed: %s", t->path, t->name,
				nwc_strerror(ret));
		ret = ret == -NWC_ECORRUPT ? -EIO : ret;
		goto out_free;
	}
	if (in_place) {
		for (size_t i = 0; i < count; i++)
			w[i] = nwc_get_lef32(raw + 4 * i);
	} else {
		ret = nwc_to_f32(t->dtype, raw, count, w);
		if (ret)
			goto out_free;
		free(raw);
	}
	*out = w;
	return 0;

out_free:
	if (!in_place)
		free(raw);
	free(w);
	return ret;
}

/* The estimation run: tensors are claimed in order by the workers. */
struct est {
	struct nwc_rate_tensor *t;
	size_t nt;
	const struct nwc_rate_opts *o;
	struct nwc_model **models;	/* by rate order */
	unsigned nm, nq;
	double *bits, *dist, *loss;	/* nt x nm */
	size_t next, done;
	int err;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a tensor is done */
};

/* Levels of tensor @t, from its H when there are statistics. */
static int est_levels(struct est *e, struct nwc_rate_tensor *t, float **h)
{
	int ret;

	*h = NULL;
	t->level = calloc(t->n, 1);
	if (!t->level)
		return -ENOMEM;
	if (e->o->calib) {
		ret = nwc_calib_get(e->o->calib, t->name, t->n, h);
		if (ret == -ENOENT) {
			nwc_dbg("%s: %s: no calibration statistics", t->path,
				t->name);
			return 0;
		}
		if (ret)
			return ret;
		t->have_h = true;
	}
	ret = nwc_lossy_levels(*h, t->n, e->o->promote, t->level);
	for (uint32_t j = 0; !ret && j < t->n; j++) {
		if (t->level[j] >= e->nq)
			t->level[j] = (uint8_t)(e->nq - 1);
	}
	return ret;
}

/* Elements a pass of exact_bits() converts and splits. */
#define EXACT_CHUNK 4096u

/*
 * Bits per weight that the lossless byte planes would take for @t's @w
 * (values of its dtype, so exact): the order-0 entropy of each plane that
 * nwc_planes_split() makes of the elements, rotated as the planes codec
 * rotates floats, which the planes' rANS comes close to.  A chunk at a
 * time, so no copy of the tensor is made.
 */
static double exact_bits(const struct nwc_rate_tensor *t, const float *w)
{
	const size_t n = (size_t)t->m * t->n;
	const unsigned es = nwc_dtype_size(t->dtype);
	uint64_t (*hist)[256] = calloc(es, sizeof(*hist));
	uint8_t *buf = malloc(2 * (size_t)EXACT_CHUNK * es);
	double bits = 0;

	assert(es >= 2 && es <= 8);
	if (!hist || !buf) {
		free(hist);
		free(buf);
		return 8.0 * es;	/* as stored: no gain counted */
	}
	for (size_t i = 0; i < n; i += EXACT_CHUNK) {
		const size_t k = NWC_MIN((size_t)EXACT_CHUNK, n - i);
		uint8_t *planes[8];

		for (unsigned b = 0; b < es; b++)
			planes[b] = buf + (size_t)EXACT_CHUNK * es + b * k;
		nwc_from_f32(t->dtype, w + i, k, buf);
		nwc_planes_split(buf, k, es, true, planes);
		for (unsigned b = 0; b < es; b++)
			for (size_t j = 0; j < k; j++)
				hist[b][planes[b][j]]++;
	}
	for (unsigned b = 0; b < es; b++)
		for (unsigned v = 0; v < 256; v++)
			if (hist[b][v])
				bits -= (double)hist[b][v] *
					log2((double)hist[b][v] / (double)n);
	free(buf);
	free(hist);
	return bits / (double)n;
}

static int est_one(struct est *e, size_t i)
{
	struct nwc_rate_tensor *t = &e->t[i];
	struct nwc_tenc_opts so;
	float *h, *g = NULL, *w = NULL;
	int fd, ret;

	ret = est_levels(e, t, &h);
	if (ret || e->nm == 1)
		goto out_free;
	if (t->have_h && nwc_calib_sens_count(e->o->calib)) {
		ret = nwc_calib_get_sens(e->o->calib, t->name, t->m, &g);
		if (ret && ret != -ENOENT)
			goto out_free;
		t->have_g = !ret;
		ret = 0;
	}
	fd = open(t->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		nwc_err("%s: %s", t->path, strerror(errno));
		goto out_free;
	}
	ret = nwc_rate_read(fd, t, &w);
	close(fd);
	if (ret)
		goto out_free;
	if (!nwc_rate_finite(w, (size_t)t->m * t->n)) {
		nwc_warn("%s: %s: has values that are not finite (NaN or infinity): stored losslessly",
			 t->path, t->name);
		t->lossless = true;
		goto out_free;
	}
	if (e->o->exact_tensors)
		t->exact_bits = exact_bits(t, w);
	nwc_tenc_opts_init(&so);
	so.quant = e->o->quant;
	so.dtype = t->dtype;
	so.exact_sd = (float)e->o->exact_sd;
	ret = nwc_lossy_estimate(e->models, e->nm, w, t->m, t->n, t->level, h,
				 g, &so, e->bits + i * e->nm,
				 e->dist + i * e->nm, e->loss + i * e->nm);
	if (ret && ret != -ENOMEM) {
		nwc_warn("%s: %s: the neural codec cannot code it (%s): stored losslessly",
			 t->path, t->name, nwc_strerror(ret));
		t->lossless = true;
		ret = 0;
	}
out_free:
	free(w);
	free(g);
	free(h);
	return ret;
}

static void *est_main(void *arg)
{
	struct est *e = arg;

	for (;;) {
		size_t i;
		int ret;

		pthread_mutex_lock(&e->lock);
		if (e->err || e->next >= e->nt) {
			pthread_mutex_unlock(&e->lock);
			break;
		}
		i = e->next++;
		pthread_mutex_unlock(&e->lock);

		ret = e->t[i].rank == nwc_group_rank() ? est_one(e, i) : 0;

		pthread_mutex_lock(&e->lock);
		if (ret && !e->err)
			e->err = ret;
		e->done++;
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
	}
	return NULL;
}

/* Run est_one() over all tensors on the workers; the caller waits. */
static int run_estimates(struct est *e, unsigned jobs, bool progress)
{
	unsigned nthreads = (unsigned)NWC_MIN((size_t)jobs, e->nt), started = 0;
	pthread_t *tid;
	double t0 = nwc_now(), last = 0;
	int ret = 0;

	tid = calloc(NWC_MAX(nthreads, 1u), sizeof(*tid));
	if (!tid)
		return -ENOMEM;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	for (unsigned k = 0; k < nthreads; k++) {
		ret = -pthread_create(&tid[k], NULL, est_main, e);
		if (ret)
			break;
		started++;
	}
	pthread_mutex_lock(&e->lock);
	if (ret && !e->err)
		e->err = ret;
	/* Until every claimed tensor is done and, barring errors, all are. */
	while (started && (e->done < e->next || (!e->err && e->next < e->nt))) {
		double now;

		pthread_cond_wait(&e->cond, &e->lock);
		now = nwc_now();
		if (progress && now - last >= 0.1) {
			last = now;
			fprintf(stderr, "\restimating rates: %zu/%zu tensors, %.1f s ",
				e->done, e->nt, now - t0);
		}
	}
	pthread_mutex_unlock(&e->lock);
	for (unsigned k = 0; k < started; k++)
		pthread_join(tid[k], NULL);
	if (progress)
		fprintf(stderr, "\restimating rates: %zu/%zu tensors, %.1f s\n",
			e->done, e->nt, nwc_now() - t0);
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	free(tid);
	return e->err;
}

/*
 * Whether the allocation weighs each tensor by its sensitivities: when
 * every lossy tensor has them (and its H), so that all distortions are in
 * the one unit of the model's loss.  Otherwise the relative distortions,
 * and a warning if some had sensitivities.
 */
static bool by_loss(const struct est *e)
{
	size_t with = 0, lossy = 0;

	for (size_t i = 0; i < e->nt; i++) {
		lossy += !e->t[i].lossless;
		with += !e->t[i].lossless && e->t[i].have_g;
	}
	if (with && with < lossy)
		nwc_warn("%s: sensitivities for %zu of the %zu lossy tensors only: rates allocated without them",
			 nwc_calib_source(e->o->calib), with, lossy);
	return with && with == lossy;
}

/*
 * Choose the models of the tensors that are still lossy.  With
 * --exact-tensors (and sensitivities) exact storage is one more choice,
 * column nm: its estimated bits (exact_bits()) for no distortion; a
 * tensor given a fixed rate never takes it.
 */
static int allocate(struct est *e, struct nwc_rate_models *ms)
{
	const bool sens = by_loss(e);
	const size_t nm = e->nm;
	const size_t nc = nm + (e->o->exact_tensors && sens && nm > 1);
	size_t nt = 0;
	double *bits, *dist, *fixed, sum = 0, w = 0;
	uint64_t *weights;
	unsigned *pick;
	int ret = -ENOMEM;

	bits = malloc(NWC_MAX(e->nt, 1) * nc * sizeof(*bits));
	dist = malloc(NWC_MAX(e->nt, 1) * nc * sizeof(*dist));
	fixed = malloc(NWC_MAX(e->nt, 1) * sizeof(*fixed));
	weights = malloc(NWC_MAX(e->nt, 1) * sizeof(*weights));
	pick = calloc(NWC_MAX(e->nt, 1), sizeof(*pick));
	if (!bits || !dist || !fixed || !weights || !pick)
		goto out_free;
	for (size_t i = 0; i < e->nt; i++) {
		if (e->t[i].lossless)
			continue;
		memcpy(bits + nt * nc, e->bits + i * nm, nm * sizeof(*bits));
		memcpy(dist + nt * nc, e->dist + i * nm, nm * sizeof(*dist));
		if (sens)
			nwc_lossy_weigh((unsigned)nm, e->loss + i * nm,
					e->o->sens_power, dist + nt * nc);
		fixed[nt] = e->t[i].fixed_bits;
		if (nc > nm) {
			/* never nearest to a fixed rate, never cheapest */
			bits[nt * nc + nm] = fixed[nt] < 0 ?
				e->t[i].exact_bits : 1e9;
			dist[nt * nc + nm] = fixed[nt] < 0 ? 0 : 1e300;
		}
		weights[nt] = (uint64_t)e->t[i].m * e->t[i].n;
		nt++;
	}
	ret = 0;
	if (nt && nc > 1)
		ret = nwc_lossy_allocate(nt, (unsigned)nc, bits, dist, weights,
					 fixed, e->o->bits, pick);
	if (ret)
		goto out_free;
	nt = 0;
	for (size_t i = 0; i < e->nt; i++) {
		struct nwc_rate_tensor *t = &e->t[i];

		if (t->lossless)
			continue;
		if (nc > 1) {
			sum += bits[nt * nc + pick[nt]] * (double)weights[nt];
			w += (double)weights[nt];
		}
		if (pick[nt] == nm) {
			t->lossless = t->exact = true;
			nwc_info("%s: %s: stored exactly, estimated %.3f bits/weight",
				 t->path, t->name, bits[nt * nc + nm]);
			nt++;
			continue;
		}
		t->model = pick[nt];
		ms->m[t->model].used = true;
		if (nm > 1)
			nwc_dbg("%s: %s: model %s, estimated %.3f bits/weight",
				t->path, t->name, ms->m[t->model].name,
				bits[nt * nc + pick[nt]]);
		nt++;
	}
	if (w > 0)
		nwc_dbg("estimated average: %.3f bits/weight over %.0f weights (target %.3f), allocated by %s",
			sum / w, w, e->o->bits,
			sens ? "sensitivity" : "relative distortion");
out_free:
	free(pick);
	free(weights);
	free(fixed);
	free(dist);
	free(bits);
	return ret;
}

/*
 * Spreads the tensors over the ranks of the group: each in turn goes to
 * the rank with the fewest weights so far (the lowest of equals), so the
 * ranks share the coding work and agree on who does what.
 */
static int assign_ranks(struct nwc_rate_tensor *t, size_t nt)
{
	unsigned n = nwc_group_size();
	uint64_t *load;

	load = calloc(n, sizeof(*load));
	if (!load)
		return -ENOMEM;
	for (size_t i = 0; i < nt; i++) {
		unsigned best = 0;

		for (unsigned k = 1; k < n; k++)
			if (load[k] < load[best])
				best = k;
		t[i].rank = best;
		load[best] += (uint64_t)t[i].m * t[i].n;
	}
	free(load);
	return 0;
}

/* Every rank learns the estimates and flags of the tensors it did not
 * estimate, from the rank that did. */
static int share_estimates(struct est *e)
{
	size_t len = 3 * e->nm * sizeof(double) + sizeof(double) + 3;
	uint8_t *buf;

	if (nwc_group_size() == 1)
		return 0;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < e->nt; i++) {
		struct nwc_rate_tensor *t = &e->t[i];
		double *est[3] = { e->bits + i * e->nm, e->dist + i * e->nm,
				   e->loss + i * e->nm };
		size_t row = e->nm * sizeof(double);

		for (unsigned k = 0; k < 3; k++)
			memcpy(buf + k * row, est[k], row);
		memcpy(buf + 3 * row, &t->exact_bits, sizeof(double));
		buf[len - 3] = t->lossless;
		buf[len - 2] = t->have_h;
		buf[len - 1] = t->have_g;
		nwc_group_bcast(t->rank, buf, len);
		for (unsigned k = 0; k < 3; k++)
			memcpy(est[k], buf + k * row, row);
		memcpy(&t->exact_bits, buf + 3 * row, sizeof(double));
		t->lossless = buf[len - 3];
		t->have_h = buf[len - 2];
		t->have_g = buf[len - 1];
	}
	free(buf);
	return 0;
}

/* One line for all the tensors coded without statistics. */
static void warn_missing_h(const struct nwc_rate_tensor *t, size_t nt,
			   const struct nwc_calib *calib)
{
	size_t missing = 0;

	for (size_t i = 0; i < nt; i++)
		missing += !t[i].lossless && !t[i].have_h;
	if (missing)
		nwc_warn("%s: no statistics for %zu of the lossy tensors: coded without them (-v names them)",
			 nwc_calib_source(calib), missing);
}

int nwc_rate_plan(struct nwc_rate_tensor *t, size_t nt,
		  const struct nwc_rate_opts *o, struct nwc_rate_models *ms)
{
	struct est e = {
		.t = t, .nt = nt, .o = o, .nm = ms->n, .nq = ms->nq,
	};
	int ret = -ENOMEM;

	if (!ms->n || !ms->nq || !o->jobs)
		return -EINVAL;
	e.models = malloc(ms->n * sizeof(*e.models));
	e.bits = calloc(NWC_MAX(nt, 1) * ms->n, sizeof(*e.bits));
	e.dist = calloc(NWC_MAX(nt, 1) * ms->n, sizeof(*e.dist));
	e.loss = calloc(NWC_MAX(nt, 1) * ms->n, sizeof(*e.loss));
	if (!e.models || !e.bits || !e.dist || !e.loss)
		goto out_free;
	for (unsigned k = 0; k < ms->n; k++)
		e.models[k] = ms->m[k].model;
	ret = assign_ranks(t, nt);
	if (!ret)
		ret = run_estimates(&e, o->jobs, o->progress && ms->n > 1);
	ret = nwc_group_min(ret);
	if (!ret)
		ret = share_estimates(&e);
	if (!ret)
		ret = allocate(&e, ms);
	if (!ret && o->calib)
		warn_missing_h(t, nt, o->calib);
	ms->n_used = 0;
	for (unsigned k = 0; !ret && k < ms->n; k++) {
		if (ms->m[k].used)
			ms->m[k].index = (uint16_t)ms->n_used++;
	}
out_free:
	free(e.loss);
	free(e.dist);
	free(e.bits);
	free(e.models);
	return ret;
}
