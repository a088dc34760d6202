/* SPDX-License-Identifier: MIT */
/* calib.c - calibration statistics for mkfs.nwc: from a model run or a file. */
#include "codec/common/base.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/array.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/input/safetensors.h"
#include "mkfs/group/group.h"
#include "mkfs/llm/llama.h"
#include "mkfs/pack/calib.h"
#include "mkfs/pack/progress.h"

/* One weight's H, at an offset of the statistics or spill file. */
struct centry {
	const char *name;	/* weight name, without ".H" */
	size_t name_len;
	uint32_t n;
	uint64_t off;
};

struct nwc_calib {
	char *source;
	uint64_t tokens;
	int fd;				/* statistics or spill file, or -1 */
	struct nwc_st *st;		/* statistics file: its header */
	double shrink;			/* off-diagonal entries times 1 - it */
	bool own_names;			/* model run: names are malloc'd */
	uint64_t spill_len;		/* model run: bytes in the spill file */
	struct centry *e;		/* sorted by name */
	size_t n, cap;
	struct centry *g;		/* sensitivities, sorted by name; n is
					 * the weight's rows */
	size_t ng, cap_g;

	/* model run: what nwc_calib_sequential() runs again */
	char *dir;
	struct nwc_calib_opts opts;
	struct centry *pend;		/* a sequential run's, in run order */
	size_t n_pend, cap_pend;
	nwc_llama_layer_hook *hook;	/* the caller's, and its argument */
	void *hook_arg;
};

static int cmp_entry(const void *pa, const void *pb)
{
	const struct centry *a = pa, *b = pb;
	int c = memcmp(a->name, b->name, NWC_MIN(a->name_len, b->name_len));

	if (c)
		return c;
	return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

static int calib_alloc(const char *source, size_t n, struct nwc_calib **out)
{
	struct nwc_calib *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->source = strdup(source);
	c->e = calloc(NWC_MAX(n, 1), sizeof(*c->e));
	c->cap = NWC_MAX(n, 1);
	if (!c->source || !c->e) {
		nwc_calib_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

/* Two entries of one name would make lookups ambiguous. */
static int check_unique(const struct nwc_calib *c, const struct centry *e,
			size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (!cmp_entry(&e[i - 1], &e[i])) {
			nwc_err("%s: two sets of statistics for %.*s",
				c->source, (int)e[i].name_len, e[i].name);
			return -NWC_EFORMAT;
		}
	}
	return 0;
}

static bool has_suffix(const struct nwc_st_tensor *t, const char *sfx)
{
	size_t n = strlen(sfx);

	return t->name_len > n && !memcmp(t->name + t->name_len - n, sfx, n);
}

int nwc_calib_open_stats(const char *path, struct nwc_calib **out)
{
	struct nwc_calib *c = NULL;
	struct nwc_st *st;
	int fd, ret;

	ret = nwc_st_open(path, &fd, &st);
	if (ret)
		return ret;
	ret = calib_alloc(path, st->n_tensors, &c);
	if (!ret) {
		c->g = calloc(NWC_MAX(st->n_tensors, 1), sizeof(*c->g));
		ret = c->g ? 0 : -ENOMEM;
	}
	if (ret) {
		nwc_calib_free(c);
		nwc_st_free(st);
		close(fd);
		return ret;
	}
	c->fd = fd;
	c->st = st;
	for (size_t i = 0; i < st->n_tensors; i++) {
		const struct nwc_st_tensor *t = &st->tensors[i];
		struct centry *e = &c->e[c->n];

		if (has_suffix(t, ".G")) {
			if (t->dtype != NWC_DTYPE_F32 || t->ndim != 1 ||
			    !t->shape[0] || t->shape[0] > UINT32_MAX / 2) {
				nwc_err("%s: %s: not an F32 vector", path,
					t->name);
				ret = -NWC_EFORMAT;
				goto out_free;
			}
			e = &c->g[c->ng++];
			e->name = t->name;
			e->name_len = t->name_len - 2;
			e->n = (uint32_t)t->shape[0];
			e->off = st->data_off + t->begin;
			continue;
		}
		if (!has_suffix(t, ".H"))
			continue;
		if (t->dtype != NWC_DTYPE_F32 || t->ndim != 2 ||
		    t->shape[0] != t->shape[1] || !t->shape[0] ||
		    t->shape[0] > UINT32_MAX / 2) {
			nwc_err("%s: %s: not a square F32 matrix", path,
				t->name);
			ret = -NWC_EFORMAT;
			goto out_free;
		}
		e->name = t->name;
		e->name_len = t->name_len - 2;
		e->n = (uint32_t)t->shape[0];
		e->off = st->data_off + t->begin;
		c->n++;
	}
	if (!c->n) {
		nwc_err("%s: no statistics in it (no tensor named \"<weight>.H\")",
			path);
		ret = -NWC_EFORMAT;
		goto out_free;
	}
	qsort(c->e, c->n, sizeof(*c->e), cmp_entry);
	qsort(c->g, c->ng, sizeof(*c->g), cmp_entry);
	ret = check_unique(c, c->e, c->n);
	if (!ret)
		ret = check_unique(c, c->g, c->ng);
	if (ret)
		goto out_free;
	*out = c;
	return 0;

out_free:
	nwc_calib_free(c);	/* closes fd */
	return ret;
}

/*
 * @count floats at the end of the spill file, little-endian (the layout of
 * a statistics file's data); *@off gets where they start.  @what names
 * them in a message.
 */
static int spill_floats(struct nwc_calib *c, const float *v, size_t count,
			const char *what, uint64_t *off)
{
	uint8_t *buf = malloc(count * sizeof(float));
	int ret;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++)
		nwc_put_lef32(buf + 4 * i, v[i]);
	ret = nwc_pwrite_full(c->fd, buf, count * sizeof(float), c->spill_len);
	free(buf);
	if (ret) {
		nwc_err("%s: cannot write %s: %s", c->source, what,
			nwc_strerror(ret));
		return ret;
	}
	*off = c->spill_len;
	c->spill_len += count * sizeof(float);
	return 0;
}

/* Entry @e of a model run: its own copy of @name. */
static int set_entry(struct centry *e, const char *name, uint32_t n,
		     uint64_t off)
{
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	e->name_len = strlen(name);
	e->n = n;
	e->off = off;
	return 0;
}

/*
 * A model run's sink: each H goes to the spill file, once for all the
 * weights that read its input.
 */
static int spill_to(struct nwc_calib *c, const struct nwc_llama_h *h,
		    struct centry **tab, size_t *n_tab, size_t *cap)
{
	uint64_t off;
	int ret;

	ret = nwc_array_reserve((void **)tab, cap, *n_tab + h->n_weights,
				sizeof(**tab));
	if (!ret)
		ret = spill_floats(c, h->h, (size_t)h->n_in * h->n_in,
				   "calibration statistics", &off);
	for (unsigned w = 0; !ret && w < h->n_weights; w++) {
		ret = set_entry(&(*tab)[*n_tab], h->weights[w], h->n_in, off);
		*n_tab += !ret;
	}
	return ret;
}

static int spill_h(void *arg, const struct nwc_llama_h *h)
{
	struct nwc_calib *c = arg;

	return spill_to(c, h, &c->e, &c->n, &c->cap);
}

static int spill_pending(void *arg, const struct nwc_llama_h *h)
{
	struct nwc_calib *c = arg;

	return spill_to(c, h, &c->pend, &c->n_pend, &c->cap_pend);
}

static int pass_hook(void *arg, const char *name, float *w, uint32_t rows,
		     uint32_t cols)
{
	struct nwc_calib *c = arg;

	return c->hook(c->hook_arg, name, w, rows, cols);
}

/*
 * A file without a name in @dir: nothing is left behind, whatever happens,
 * even a kill from another MPI rank.  Where the file system has no
 * O_TMPFILE, a named one unlinked at once (a kill between the two leaves
 * it).
 */
int nwc_calib_spill_open(const char *dir, const char *what, int *fd)
{
	char path[PATH_MAX];
	int ret = nwc_open_unnamed(dir, 0600, fd);

	if (ret == -EOPNOTSUPP) {
		snprintf(path, sizeof(path), "%s/.nwc-calib.XXXXXX", dir);
		*fd = mkstemp(path);
		ret = *fd < 0 ? -errno : 0;
		if (!ret)
			unlink(path);
	}
	if (ret)
		nwc_err("%s: cannot create a file for %s: %s", dir, what,
			strerror(-ret));
	return ret;
}

/*
 * One model run of @c over its token file (@c->source) with @sink, and
 * @hook for a sequential run (two passes a layer): the tokens and the
 * config read, the memory bound printed (first runs) and the progress set
 * up as @co asks.  *@stage says where an error came from: RUN_TOKENS,
 * RUN_CONFIG or RUN_STREAM.
 */
enum { RUN_TOKENS, RUN_CONFIG, RUN_STREAM };

static int run_model(struct nwc_calib *c, const char *dir,
		     const struct nwc_calib_opts *co, nwc_llama_sink *sink,
		     nwc_llama_layer_hook *hook, uint64_t *tokens, int *stage)
{
	struct nwc_token_progress rp = {
		.what = hook ? "sequential calibration" : "calibration",
		.t0 = nwc_now(),
	};
	struct nwc_llama_opts o = {
		.threads = co->threads,
		.max_tokens = co->max_tokens,
		.ctx = co->ctx,
	};
	struct nwc_llama_config cfg;
	uint32_t *tok;
	size_t n = 0;
	int ret;

	*stage = RUN_TOKENS;
	ret = nwc_llama_read_tokens(c->source, co->max_tokens, &tok, &n);
	if (ret)
		return ret;
	*stage = RUN_CONFIG;
	ret = nwc_llama_read_config(dir, &cfg);
	if (ret)
		goto out_free_tok;
	*stage = RUN_STREAM;
	if (co->progress || co->lines) {
		uint64_t bound = nwc_llama_stream_bytes(
			&cfg, n,
			co->ctx ? co->ctx :
				  NWC_MIN(cfg.max_pos, NWC_LLAMA_CTX_MAX),
			NWC_MAX(co->threads, 1), nwc_group_size());

		if (!hook && nwc_group_size() > 1)
			fprintf(stderr, "calibration: %zu tokens through %" PRIu32
				" layers, one at a time, on %u ranks: at most about %.2f GiB of memory a rank\n",
				n, cfg.layers, nwc_group_size(),
				(double)bound / (1u << 30));
		else if (!hook)
			fprintf(stderr, "calibration: %zu tokens through %" PRIu32
				" layers, one at a time: at most about %.2f GiB of memory\n",
				n, cfg.layers, (double)bound / (1u << 30));
		rp.stages = (hook ? 2 : 1) * cfg.layers + !cfg.tied;
		rp.lines = !co->progress;
		o.progress = nwc_token_progress;
		o.progress_arg = &rp;
	}
	ret = nwc_llama_calib_stream(dir, tok, n, &o, sink, hook, c, tokens);
out_free_tok:
	free(tok);
	return ret;
}

/* The sensitivity run's sink: each weight's G to the spill file. */
static int spill_g(void *arg, const char *name, const float *g,
		   uint32_t rows)
{
	struct nwc_calib *c = arg;
	uint64_t off;
	int ret;

	ret = nwc_array_reserve((void **)&c->g, &c->cap_g, c->ng + 1,
				sizeof(*c->g));
	if (!ret)
		ret = spill_floats(c, g, rows, "sensitivities", &off);
	if (!ret)
		ret = set_entry(&c->g[c->ng], name, rows, off);
	c->ng += !ret;
	return ret;
}

/*
 * The sensitivities of @c's weights from the first @co->sens_tokens tokens
 * (nwc_llama_sensitivity), each rank computing all of them; the layers'
 * inputs go to a second unnamed file, closed at the end.
 */
static int run_sensitivity(struct nwc_calib *c, const char *dir,
			   const struct nwc_calib_opts *co)
{
	struct nwc_token_progress rp = {
		.what = "sensitivity", .t0 = nwc_now(), .lines = !co->progress,
	};
	struct nwc_llama_opts o = {
		.threads = co->threads, .ctx = co->ctx,
	};
	struct nwc_llama_config cfg;
	uint32_t *tok;
	size_t n = 0;
	int fd, ret;

	ret = nwc_llama_read_tokens(c->source, co->sens_tokens, &tok, &n);
	if (ret)
		return ret;
	ret = nwc_llama_read_config(dir, &cfg);
	if (!ret)
		ret = nwc_calib_spill_open(
			co->spill_dir,
			"the layer inputs of the sensitivity pass", &fd);
	if (ret)
		goto out_free_tok;
	if (co->progress || co->lines) {
		uint32_t ctx = co->ctx ? co->ctx :
			       NWC_MIN(cfg.max_pos, NWC_LLAMA_CTX_MAX);

		fprintf(stderr, "sensitivity: %zu tokens through %" PRIu32
			" layers and back: about %.2f GiB of memory, and %.2f GiB of layer inputs in a file beside the image\n",
			n, cfg.layers,
			(double)nwc_llama_sens_bytes(&cfg, n, ctx,
						     NWC_MAX(co->threads, 1)) /
				(1u << 30),
			(double)n * cfg.hidden * 4 * cfg.layers / (1u << 30));
		rp.stages = 2 * cfg.layers + 1;	/* forward, head, back */
		rp.stage = "step";
		o.progress = nwc_token_progress;
		o.progress_arg = &rp;
	}
	ret = nwc_llama_sensitivity(dir, tok, n, &o, fd, spill_g, c);
	close(fd);
	if (!ret) {
		qsort(c->g, c->ng, sizeof(*c->g), cmp_entry);
		ret = check_unique(c, c->g, c->ng);
	}
out_free_tok:
	free(tok);
	return ret;
}

int nwc_calib_run(const char *dir, const char *tokens,
		  const struct nwc_calib_opts *co, struct nwc_calib **out)
{
	struct nwc_calib *c;
	int ret, stage = RUN_TOKENS;

	ret = calib_alloc(tokens, 0, &c);
	if (ret)
		return ret;
	c->own_names = true;
	ret = nwc_calib_spill_open(co->spill_dir, "the calibration statistics",
				   &c->fd);
	if (!ret)
		ret = run_model(c, dir, co, spill_h, NULL, &c->tokens, &stage);
	/* A config or weights this runtime cannot run: say what to do. */
	if (ret && (stage == RUN_CONFIG ||
		    (stage == RUN_STREAM && (ret == -NWC_EFORMAT ||
					     ret == -NWC_EFEATURE ||
					     ret == -ENOENT))))
		goto out_not_llama;
	if (!ret) {
		qsort(c->e, c->n, sizeof(*c->e), cmp_entry);
		ret = check_unique(c, c->e, c->n);
	}
	if (!ret && co->sens_tokens)
		ret = run_sensitivity(c, dir, co);
	if (!ret) {
		c->dir = strdup(dir);
		c->opts = *co;
		c->opts.spill_dir = NULL;	/* the spill file is open */
		ret = c->dir ? 0 : -ENOMEM;
	}
	if (ret)
		goto out_free_calib;
	nwc_dbg("%s: calibrated %zu weights on %" PRIu64 " tokens of %s (%" PRIu64 " bytes of statistics)",
		dir, c->n, c->tokens, tokens, c->spill_len);
	*out = c;
	return 0;

out_not_llama:
	if (ret != -ENOMEM && ret != -EIO)
		ret = -NWC_EFEATURE;
	nwc_err("%s: --calib runs the model, which needs a Llama-family model directory (llama, mistral, qwen2, qwen3); for other models pass statistics with --calib-stats",
		dir);
out_free_calib:
	nwc_calib_free(c);
	return ret;
}

static int entry_get(const struct nwc_calib *c, const struct centry *e,
		     const char *name, uint32_t n, float **h);

/* @count little-endian floats at @off of the file, for weight @name, in a
 * malloc'd *out; a failed read is logged and is -EIO. */
static int read_floats(const struct nwc_calib *c, const char *name,
		       uint64_t off, size_t count, float **out)
{
	float *v = malloc(count * sizeof(*v));
	int ret;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	/* Read in place, then convert from little-endian. */
	ret = nwc_pread_full(c->fd, v, count * sizeof(*v), off);
	if (ret) {
		if (ret == -NWC_ECORRUPT)
			ret = -EIO;
		nwc_err("%s: %s: read failed: %s", c->source, name,
			nwc_strerror(ret));
		free(v);
		return ret;
	}
	for (size_t i = 0; i < count; i++)
		v[i] = nwc_get_lef32((const uint8_t *)&v[i]);
	*out = v;
	return 0;
}

int nwc_calib_get(const struct nwc_calib *c, const char *name, uint32_t n,
		  float **h)
{
	struct centry key = { .name = name, .name_len = strlen(name) };
	const struct centry *e;

	*h = NULL;
	e = bsearch(&key, c->e, c->n, sizeof(*c->e), cmp_entry);
	if (!e)
		return -ENOENT;
	return entry_get(c, e, name, n, h);
}

int nwc_calib_get_pending(const struct nwc_calib *c, const char *name,
			  uint32_t n, float **h)
{
	*h = NULL;
	for (size_t i = c->n_pend; i-- > 0;)
		if (!strcmp(c->pend[i].name, name))
			return entry_get(c, &c->pend[i], name, n, h);
	return -ENOENT;
}

/* Entry @e's matrix, for weight @name of @n inputs. */
static int entry_get(const struct nwc_calib *c, const struct centry *e,
		     const char *name, uint32_t n, float **h)
{
	int ret;

	if (e->n != n) {
		nwc_err("%s: statistics of %s are %" PRIu32 " x %" PRIu32
			", the weight has %" PRIu32 " inputs", c->source, name,
			e->n, e->n, n);
		return -NWC_EFORMAT;
	}
	ret = read_floats(c, name, e->off, (size_t)n * n, h);
	if (ret)
		return ret;
	if (c->shrink > 0) {
		float keep = (float)(1 - c->shrink);

		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < n; j++)
				if (i != j)
					(*h)[i * n + j] *= keep;
	}
	return 0;
}

/* Entry @e's sensitivities, for weight @name of @rows outputs. */
static int sens_get(const struct nwc_calib *c, const struct centry *e,
		    const char *name, uint32_t rows, float **g)
{
	int ret;

	if (e->n != rows) {
		nwc_err("%s: the sensitivities of %s have %" PRIu32
			" entries, the weight has %" PRIu32 " rows",
			c->source, name, e->n, rows);
		return -NWC_EFORMAT;
	}
	ret = read_floats(c, name, e->off, rows, g);
	for (uint32_t i = 0; !ret && i < rows; i++) {
		if (!isfinite((*g)[i]) || (*g)[i] < 0) {
			nwc_err("%s: %s: a sensitivity that is negative or not finite",
				c->source, name);
			free(*g);
			*g = NULL;
			ret = -NWC_EFORMAT;
		}
	}
	return ret;
}

int nwc_calib_get_sens(const struct nwc_calib *c, const char *name,
		       uint32_t rows, float **g)
{
	struct centry key = { .name = name, .name_len = strlen(name) };
	const struct centry *e;

	*g = NULL;
	e = bsearch(&key, c->g, c->ng, sizeof(*c->g), cmp_entry);
	if (!e)
		return -ENOENT;
	return sens_get(c, e, name, rows, g);
}

int nwc_calib_get_sens_at(const struct nwc_calib *c, size_t i, float **g)
{
	const struct centry *e = &c->g[i];
	char name[NAME_MAX + 1];

	assert(i < c->ng);
	*g = NULL;
	/* For messages: a statistics file's names are not terminated. */
	snprintf(name, sizeof(name), "%.*s", (int)e->name_len, e->name);
	return sens_get(c, e, name, e->n, g);
}

size_t nwc_calib_sens_count(const struct nwc_calib *c)
{
	return c->ng;
}

const char *nwc_calib_sens_entry(const struct nwc_calib *c, size_t i,
				 size_t *len, uint32_t *rows)
{
	assert(i < c->ng);
	*len = c->g[i].name_len;
	*rows = c->g[i].n;
	return c->g[i].name;
}

void nwc_calib_set_shrink(struct nwc_calib *c, double a)
{
	assert(a >= 0 && a <= 1);
	c->shrink = a;
}

int nwc_calib_sequential(struct nwc_calib *c, nwc_llama_layer_hook *hook,
			 void *arg)
{
	uint64_t tokens = 0;
	int ret, stage;

	if (!c->dir)
		return -EINVAL;		/* statistics from a file */
	c->hook = hook;
	c->hook_arg = arg;
	ret = run_model(c, c->dir, &c->opts, spill_pending, pass_hook,
			&tokens, &stage);
	if (ret)
		return ret;
	/* The new statistics replace the first run's from now on. */
	for (size_t i = 0; i < c->n; i++)
		free((char *)c->e[i].name);
	free(c->e);
	c->e = c->pend;
	c->n = c->n_pend;
	c->cap = c->cap_pend;
	c->pend = NULL;
	c->n_pend = c->cap_pend = 0;
	qsort(c->e, c->n, sizeof(*c->e), cmp_entry);
	return check_unique(c, c->e, c->n);
}

int nwc_calib_get_at(const struct nwc_calib *c, size_t i, float **h)
{
	const struct centry *e = &c->e[i];
	char name[NAME_MAX + 1];

	assert(i < c->n);
	*h = NULL;
	/* For messages: a statistics file's names are not terminated. */
	snprintf(name, sizeof(name), "%.*s", (int)e->name_len, e->name);
	return entry_get(c, e, name, e->n, h);
}

size_t nwc_calib_count(const struct nwc_calib *c)
{
	return c->n;
}

const char *nwc_calib_entry(const struct nwc_calib *c, size_t i, size_t *len,
			    uint32_t *n)
{
	assert(i < c->n);
	*len = c->e[i].name_len;
	*n = c->e[i].n;
	return c->e[i].name;
}

const char *nwc_calib_source(const struct nwc_calib *c)
{
	return c->source;
}

uint64_t nwc_calib_tokens(const struct nwc_calib *c)
{
	return c->tokens;
}

void nwc_calib_free(struct nwc_calib *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	nwc_st_free(c->st);
	for (size_t i = 0; c->own_names && i < c->n; i++)
		free((char *)c->e[i].name);
	free(c->e);
	for (size_t i = 0; c->own_names && i < c->ng; i++)
		free((char *)c->g[i].name);
	free(c->g);
	for (size_t i = 0; i < c->n_pend; i++)
		free((char *)c->pend[i].name);
	free(c->pend);
	free(c->dir);
	free(c->source);
	free(c);
}
