/* SPDX-License-Identifier: MIT */
/* llama.c - Llama-family models: load a directory, F32 forward, eval, calib. */
#include "codec/common/base.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/convert.h"
#include "codec/nwc/gemm.h"
#include "codec/common/io.h"
#include "codec/image/format.h"
#include "codec/input/json.h"
#include "codec/common/log.h"
#include "codec/input/safetensors.h"
#include "mkfs/llm/llama.h"

#define CONFIG_MAX (16u << 20)		/* config.json and the index */
#define CTX_LIMIT (1u << 20)		/* largest window accepted */
#define QROWS 64u			/* query rows per attention block */
#define LOGIT_ROWS 32u			/* rows of logits computed at once */
#define GRAM_ROWS 512u			/* rows of one float X^T X product */
#define CALIB_BLOCKS 64u		/* calibration blocks to aim for */
#define NAME_LEN 96u			/* longest tensor name we build */

/* Inputs of the linear layers of one decoder layer, in calib order. */
enum { IN_ATTN, IN_O, IN_MLP, IN_DOWN, IN_PER_LAYER };

struct layer {
	float *attn_norm;	/* (hidden,) */
	float *wqkv;		/* (q_out + 2 kv_out, hidden): q, k, v rows */
	float *bqkv;		/* (q_out + 2 kv_out,) or NULL */
	float *wo;		/* (hidden, q_out) */
	float *bo;		/* (hidden,) or NULL */
	float *mlp_norm;	/* (hidden,) */
	float *wgu;		/* (2 inter, hidden): gate rows, then up rows */
	float *wdown;		/* (hidden, inter) */
};

struct nwc_llama {
	struct nwc_llama_config cfg;
	uint32_t q_out;		/* heads * head_dim */
	uint32_t kv_out;	/* kv_heads * head_dim */
	uint32_t qkv_out;	/* q_out + 2 kv_out */
	float *embed;		/* (vocab, hidden) */
	float *norm;		/* (hidden,) */
	float *lm_head;		/* (vocab, hidden); the embedding when tied */
	struct layer *layer;	/* (layers,) */
};

/* ---- config.json ------------------------------------------------------ */

struct cfg {
	const struct nwc_json *root;
	const char *path;
};

/* A member; JSON null counts as absent, as it does for transformers. */
static const struct nwc_json *cfg_get(const struct cfg *c, const char *key)
{
	const struct nwc_json *v = nwc_json_get(c->root, key);

	return v && nwc_json_type(v) == NWC_JSON_NULL ? NULL : v;
}

static int cfg_bad_type(const struct cfg *c, const char *key,
			const char *what)
{
	nwc_err("%s: \"%s\" is %s, expected %s", c->path, key,
		nwc_json_type_name(cfg_get(c, key)), what);
	return -NWC_EFORMAT;
}

/* An integer in [lo, hi]; @def when absent, or an error if @def is 0. */
static int cfg_u32(const struct cfg *c, const char *key, uint32_t def,
		   uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t x;
	int ret = nwc_json_u64(cfg_get(c, key), &x);

	if (ret == -ENOENT && def) {
		*out = def;
		return 0;
	}
	if (ret == -ENOENT) {
		nwc_err("%s: missing key \"%s\"", c->path, key);
		return -NWC_EFORMAT;
	}
	if (ret == -NWC_EFORMAT)
		return cfg_bad_type(c, key, "an integer");
	if (ret || x < lo || x > hi) {
		nwc_err("%s: \"%s\" is out of range: must be in [%" PRIu32
			", %" PRIu32 "]", c->path, key, lo, hi);
		return -NWC_EFORMAT;
	}
	*out = (uint32_t)x;
	return 0;
}

static int cfg_num(const struct cfg *c, const char *key, double def,
		   double lo, double hi, double *out)
{
	int ret = nwc_json_number(cfg_get(c, key), out);

	if (ret == -ENOENT) {
		*out = def;
		return 0;
	}
	if (ret)
		return cfg_bad_type(c, key, "a number");
	if (!(*out >= lo && *out <= hi)) {
		nwc_err("%s: \"%s\" = %g is out of range [%g, %g]", c->path,
			key, *out, lo, hi);
		return -NWC_EFORMAT;
	}
	return 0;
}

static int cfg_bool(const struct cfg *c, const char *key, bool def,
		    bool *out)
{
	int ret = nwc_json_bool(cfg_get(c, key), out);

	if (ret == -ENOENT) {
		*out = def;
		return 0;
	}
	return ret ? cfg_bad_type(c, key, "true or false") : 0;
}

/* A string; @def when absent (NULL: required). */
static int cfg_str(const struct cfg *c, const char *key, const char *def,
		   const char **out)
{
	int ret = nwc_json_str(cfg_get(c, key), out, NULL);

	if (ret == -ENOENT && def) {
		*out = def;
		return 0;
	}
	if (ret == -ENOENT) {
		nwc_err("%s: missing key \"%s\"", c->path, key);
		return -NWC_EFORMAT;
	}
	return ret ? cfg_bad_type(c, key, "a string") : 0;
}

static int cfg_unsupported(const struct cfg *c, const char *key,
			   const char *why)
{
	nwc_err("%s: \"%s\": %s is not supported", c->path, key, why);
	return -NWC_EFEATURE;
}

/*
 * Rotary scaling variants change the frequencies: only the plain kind is
 * implemented.  Newer configs put rope_theta inside "rope_parameters".
 */
static int cfg_rope(const struct cfg *c, struct nwc_llama_config *k)
{
	static const char *const objs[] = { "rope_scaling", "rope_parameters" };
	int ret;

	ret = cfg_num(c, "rope_theta", 10000, 1, 1e12, &k->rope_theta);
	if (ret)
		return ret;
	for (size_t i = 0; i < NWC_ARRAY_SIZE(objs); i++) {
		const struct nwc_json *o = cfg_get(c, objs[i]);
		const char *type = "default";
		double theta;

		if (!o)
			continue;
		if (nwc_json_type(o) != NWC_JSON_OBJECT)
			return cfg_bad_type(c, objs[i], "an object or null");
		if (nwc_json_str(nwc_json_get(o, "rope_type"), &type, NULL) &&
		    nwc_json_str(nwc_json_get(o, "type"), &type, NULL) && !i)
			type = "(not named)";
		if (strcmp(type, "default")) {
			nwc_err("%s: \"%s\": rope type %s is not supported (only plain RoPE is)",
				c->path, objs[i], type);
			return -NWC_EFEATURE;
		}
		ret = nwc_json_number(nwc_json_get(o, "rope_theta"), &theta);
		if (!ret && theta >= 1 && theta <= 1e12)
			k->rope_theta = theta;
		else if (ret != -ENOENT)
			return cfg_bad_type(c, objs[i],
					    "rope_theta a number >= 1");
	}
	return 0;
}

/* Keys that would change the computation in ways not implemented here. */
static int cfg_reject(const struct cfg *c, const struct nwc_llama_config *k)
{
	const struct nwc_json *lt = cfg_get(c, "layer_types");
	double prf;
	bool b;
	int ret;

	if (cfg_get(c, "quantization_config"))
		return cfg_unsupported(c, "quantization_config",
				       "a quantized checkpoint");
	ret = cfg_bool(c, "mlp_bias", false, &b);
	if (ret || b)
		return ret ? ret : cfg_unsupported(c, "mlp_bias", "true");
	ret = cfg_num(c, "partial_rotary_factor", 1, 0, 1, &prf);
	if (ret || prf != 1)
		return ret ? ret : cfg_unsupported(c, "partial_rotary_factor",
						   "a value other than 1");
	if (!strcmp(k->model_type, "qwen2")) {
		ret = cfg_bool(c, "use_sliding_window", false, &b);
		if (ret || b)
			return ret ? ret : cfg_unsupported(c,
				"use_sliding_window", "true");
	}
	for (size_t i = 0; i < nwc_json_size(lt); i++) {
		const char *s;

		if (nwc_json_type(lt) != NWC_JSON_ARRAY ||
		    nwc_json_str(nwc_json_at(lt, i), &s, NULL))
			return cfg_bad_type(c, "layer_types",
					    "an array of strings");
		if (strcmp(s, "full_attention"))
			return cfg_unsupported(c, "layer_types",
					       "a layer type other than full_attention");
	}
	return 0;
}

static int cfg_shapes(const struct cfg *c, struct nwc_llama_config *k)
{
	static const struct {
		const char *key;
		size_t off;		/* in struct nwc_llama_config */
		uint32_t def;		/* 0: required */
		uint32_t max;
	} keys[] = {
#define KEY(key, field, def, max) \
	{ key, offsetof(struct nwc_llama_config, field), def, max }
		KEY("hidden_size", hidden, 0, 1u << 16),
		KEY("intermediate_size", intermediate, 0, 1u << 20),
		KEY("num_hidden_layers", layers, 0, 4096),
		KEY("num_attention_heads", heads, 0, 4096),
		KEY("vocab_size", vocab, 0, 1u << 24),
		KEY("max_position_embeddings", max_pos, 2048, UINT32_MAX),
#undef KEY
	};
	int ret;

	for (size_t i = 0; i < NWC_ARRAY_SIZE(keys); i++) {
		ret = cfg_u32(c, keys[i].key, keys[i].def, 1, keys[i].max,
			      (uint32_t *)((char *)k + keys[i].off));
		if (ret)
			return ret;
	}
	ret = cfg_u32(c, "num_key_value_heads", k->heads, 1, k->heads,
		      &k->kv_heads);
	if (ret)
		return ret;
	if (k->heads % k->kv_heads) {
		nwc_err("%s: num_attention_heads %" PRIu32
			" is not a multiple of num_key_value_heads %" PRIu32,
			c->path, k->heads, k->kv_heads);
		return -NWC_EFORMAT;
	}
	if (!cfg_get(c, "head_dim") && k->hidden % k->heads) {
		nwc_err("%s: hidden_size %" PRIu32
			" is not a multiple of num_attention_heads %" PRIu32
			" and there is no head_dim", c->path, k->hidden,
			k->heads);
		return -NWC_EFORMAT;
	}
	ret = cfg_u32(c, "head_dim", k->hidden / k->heads, 2, 4096,
		      &k->head_dim);
	if (ret)
		return ret;
	if (k->head_dim % 2) {
		nwc_err("%s: head_dim %" PRIu32 " is odd; rotary embeddings need it even",
			c->path, k->head_dim);
		return -NWC_EFORMAT;
	}
	if ((uint64_t)k->heads * k->head_dim > 1u << 20) {
		nwc_err("%s: num_attention_heads * head_dim is too large",
			c->path);
		return -NWC_EFORMAT;
	}
	return 0;
}

static int parse_config(const struct cfg *c, struct nwc_llama_config *k)
{
	const char *type, *act;
	bool bias;
	int ret;

	ret = cfg_str(c, "model_type", NULL, &type);
	if (ret)
		return ret;
	if (strcmp(type, "llama") && strcmp(type, "mistral") &&
	    strcmp(type, "qwen2")) {
		nwc_err("%s: \"model_type\": \"%s\" is not supported (llama, mistral and qwen2 are)",
			c->path, type);
		return -NWC_EFEATURE;
	}
	snprintf(k->model_type, sizeof(k->model_type), "%s", type);
	ret = cfg_str(c, "hidden_act", "silu", &act);
	if (ret)
		return ret;
	if (strcmp(act, "silu")) {
		nwc_err("%s: \"hidden_act\": \"%s\" is not supported (only silu is)",
			c->path, act);
		return -NWC_EFEATURE;
	}
	ret = cfg_shapes(c, k);
	if (!ret)
		ret = cfg_num(c, "rms_norm_eps", 1e-6, 0, 1, &k->rms_eps);
	if (!ret)
		ret = cfg_rope(c, k);
	if (!ret)
		ret = cfg_bool(c, "tie_word_embeddings", false, &k->tied);
	if (!ret)
		ret = cfg_reject(c, k);
	if (ret)
		return ret;
	if (!strcmp(type, "llama")) {
		ret = cfg_bool(c, "attention_bias", false, &bias);
		k->qkv_bias = k->o_bias = bias;
	} else if (!strcmp(type, "qwen2")) {
		k->qkv_bias = true;
	} else if (cfg_get(c, "sliding_window")) {
		ret = cfg_u32(c, "sliding_window", 0, 1, UINT32_MAX,
			      &k->sliding_window);
	}
	return ret;
}

/* Reads and parses a JSON file; every failure is logged with @path. */
static int load_json(const char *path, struct nwc_json **out)
{
	struct nwc_json_error e;
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	ret = nwc_read_file(path, CONFIG_MAX, &buf, &len);
	if (ret == -NWC_ECORRUPT)
		ret = -EIO;	/* shrank while we read it */
	if (ret) {
		nwc_err("%s: %s", path, ret == -EFBIG ? "larger than 16 MiB" :
			ret == -EINVAL ? "not a regular file" :
			nwc_strerror(ret));
		return ret;
	}
	ret = nwc_json_parse(buf, len, out, &e);
	free(buf);
	if (ret == -NWC_EFORMAT)
		nwc_err("%s: not valid JSON: %s (line %d, column %d)", path,
			e.trailing ? "text after the end" : e.text, e.line,
			e.column);
	if (!ret && nwc_json_type(*out) != NWC_JSON_OBJECT) {
		nwc_err("%s: not a JSON object", path);
		nwc_json_free(*out);
		ret = -NWC_EFORMAT;
	}
	return ret;
}

static int join_path(char *buf, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		nwc_err("%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- weights ---------------------------------------------------------- */

struct wfile {
	char *path;
	int fd;
	struct nwc_st *st;
};

struct wset {
	const char *dir;
	struct wfile *f;
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && !strcmp(s + n - k, suffix);
}

/* Sorts an array of strings and drops the repeats. */
static size_t sort_unique(const char **v, size_t n)
{
	size_t k = 0;

	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; i < n; i++)
		if (!k || strcmp(v[k - 1], v[i]))
			v[k++] = v[i];
	return k;
}

/* The shard names of model.safetensors.index.json's weight_map. */
static int index_files(const char *path, char ***names, size_t *n)
{
	const struct nwc_json *map, *v;
	struct nwc_json_iter it;
	struct nwc_json *doc;
	const char **files;
	const char *key;
	size_t k = 0;
	int ret;

	ret = load_json(path, &doc);
	if (ret)
		return ret;
	map = nwc_json_get(doc, "weight_map");
	if (!map || nwc_json_type(map) != NWC_JSON_OBJECT) {
		nwc_err("%s: \"weight_map\" is %s, expected an object", path,
			nwc_json_type_name(map));
		ret = -NWC_EFORMAT;
		goto out_free_doc;
	}
	files = calloc(nwc_json_size(map) + 1, sizeof(*files));
	*names = calloc(nwc_json_size(map) + 1, sizeof(**names));
	if (!files || !*names) {
		ret = -ENOMEM;
		goto out_free_files;
	}
	nwc_json_iter_init(&it, map);
	while (nwc_json_iter_next(&it, &key, NULL, &v)) {
		if (nwc_json_str(v, &files[k], NULL) ||
		    !nwc_name_valid(files[k], strlen(files[k]))) {
			nwc_err("%s: weight_map: \"%s\" must map to a file name in the directory",
				path, key);
			ret = -NWC_EFORMAT;
			goto out_free_files;
		}
		k++;
	}
	k = sort_unique(files, k);
	for (*n = 0; *n < k; (*n)++) {
		(*names)[*n] = strdup(files[*n]);
		if (!(*names)[*n]) {
			ret = -ENOMEM;
			break;
		}
	}
out_free_files:
	free(files);
out_free_doc:
	nwc_json_free(doc);
	return ret;
}

/* Every *.safetensors file of @dir, sorted. */
static int dir_files(const char *dir, char ***names, size_t *n)
{
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int ret = 0;

	d = opendir(dir);
	if (!d) {
		ret = -errno;
		nwc_err("%s: %s", dir, nwc_strerror(ret));
		return ret;
	}
	*names = NULL;
	*n = 0;
	while ((de = readdir(d))) {
		if (!has_suffix(de->d_name, ".safetensors"))
			continue;
		if (*n == cap) {
			char **p = realloc(*names, (cap * 2 + 8) *
					   sizeof(**names));

			if (!p) {
				ret = -ENOMEM;
				break;
			}
			*names = p;
			cap = cap * 2 + 8;
		}
		(*names)[*n] = strdup(de->d_name);
		if (!(*names)[*n]) {
			ret = -ENOMEM;
			break;
		}
		(*n)++;
	}
	closedir(d);
	if (!ret && !*n) {
		nwc_err("%s: no *.safetensors files", dir);
		ret = -ENOENT;
	}
	if (!ret)
		qsort(*names, *n, sizeof(**names), cmp_str);
	return ret;
}

static void wset_close(struct wset *ws)
{
	for (size_t i = 0; i < ws->n; i++) {
		free(ws->f[i].path);
		if (ws->f[i].fd >= 0)
			close(ws->f[i].fd);
		nwc_st_free(ws->f[i].st);
	}
	free(ws->f);
}

static int wfile_open(struct wfile *f, const char *dir, const char *name)
{
	char path[PATH_MAX];
	int ret;

	ret = join_path(path, dir, name);
	if (ret)
		return ret;
	f->path = strdup(path);
	if (!f->path)
		return -ENOMEM;
	return nwc_st_open(path, &f->fd, &f->st);
}

/* Opens and parses the header of every weight file of @dir. */
static int wset_open(struct wset *ws, const char *dir)
{
	char path[PATH_MAX];
	char **names = NULL;
	size_t n = 0;
	int ret;

	ws->dir = dir;
	ret = join_path(path, dir, "model.safetensors.index.json");
	if (ret)
		return ret;
	if (!access(path, F_OK))
		ret = index_files(path, &names, &n);
	else
		ret = dir_files(dir, &names, &n);
	if (!ret) {
		ws->f = calloc(n, sizeof(*ws->f));
		ret = ws->f ? 0 : -ENOMEM;
	}
	for (size_t i = 0; !ret && i < n; i++) {
		ws->f[i].fd = -1;
		ws->n++;
		ret = wfile_open(&ws->f[i], dir, names[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* Finds tensor @name in exactly one file. */
static int wset_find(const struct wset *ws, const char *name,
		     const struct wfile **file,
		     const struct nwc_st_tensor **tensor)
{
	*file = NULL;
	for (size_t i = 0; i < ws->n; i++) {
		const struct nwc_st *st = ws->f[i].st;

		for (size_t j = 0; j < st->n_tensors; j++) {
			if (strcmp(st->tensors[j].name, name))
				continue;
			if (*file) {
				nwc_err("%s: tensor %s is in both %s and %s",
					ws->dir, name, (*file)->path,
					ws->f[i].path);
				return -NWC_EFORMAT;
			}
			*file = &ws->f[i];
			*tensor = &st->tensors[j];
		}
	}
	if (!*file) {
		nwc_err("%s: tensor %s not found in %s%s", ws->dir, name,
			ws->n == 1 ? ws->f[0].path : "any weight file",
			ws->n == 1 ? "" : " of the directory");
		return -NWC_EFORMAT;
	}
	return 0;
}

/* Reads tensor @name of shape (@rows, @cols) (@cols 0: a vector) as F32. */
static int load_tensor(const struct wset *ws, const char *name,
		       uint32_t rows, uint32_t cols, float *dst)
{
	const struct nwc_st_tensor *t = NULL;
	const struct wfile *f;
	unsigned ndim = cols ? 2 : 1;
	void *raw;
	int ret;

	ret = wset_find(ws, name, &f, &t);
	if (ret)
		return ret;
	if (t->ndim != ndim || t->shape[0] != rows ||
	    (cols && t->shape[1] != cols)) {
		char got[128] = "[";	/* room for 4 dimensions of 20 digits */

		for (unsigned i = 0; i < t->ndim && i < 4; i++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got),
				 "%s%" PRIu64, i ? ", " : "", t->shape[i]);
		strcat(got, t->ndim > 4 ? ", ...]" : "]");
		if (cols)
			nwc_err("%s: tensor %s: shape %s, expected [%" PRIu32
				", %" PRIu32 "]", f->path, name, got, rows, cols);
		else
			nwc_err("%s: tensor %s: shape %s, expected [%" PRIu32
				"]", f->path, name, got, rows);
		return -NWC_EFORMAT;
	}
	if (t->dtype != NWC_DTYPE_F32 && t->dtype != NWC_DTYPE_F16 &&
	    t->dtype != NWC_DTYPE_BF16 && t->dtype != NWC_DTYPE_F64) {
		nwc_err("%s: tensor %s: dtype %s, expected F32, F16, BF16 or F64",
			f->path, name, nwc_dtype_name(t->dtype));
		return -NWC_EFORMAT;
	}
	raw = malloc(t->end - t->begin);
	if (!raw)
		return -ENOMEM;
	ret = nwc_pread_full(f->fd, raw, t->end - t->begin,
			     f->st->data_off + t->begin);
	if (ret) {
		nwc_err("%s: tensor %s: read failed: %s", f->path, name,
			nwc_strerror(ret == -NWC_ECORRUPT ? -EIO : ret));
		ret = ret == -NWC_ECORRUPT ? -EIO : ret;
	} else {
		ret = nwc_to_f32(t->dtype, raw, (size_t)rows * NWC_MAX(cols, 1),
				 dst);
	}
	free(raw);
	return ret;
}

static float *alloc_f32(uint64_t rows, uint64_t cols)
{
	uint64_t n = rows * cols;	/* both < 2^32 here: no overflow */

	if (n > SIZE_MAX / sizeof(float))
		return NULL;
	return malloc((size_t)NWC_MAX(n, 1) * sizeof(float));
}

/* Reads "model.layers.@l.@part" into @dst. */
static int load_part(const struct wset *ws, uint32_t l, const char *part,
		     uint32_t rows, uint32_t cols, float *dst)
{
	char name[NAME_LEN];

	snprintf(name, sizeof(name), "model.layers.%" PRIu32 ".%s", l, part);
	return load_tensor(ws, name, rows, cols, dst);
}

static int load_layer(const struct nwc_llama *m, const struct wset *ws,
		      uint32_t l, struct layer *ly)
{
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t h = c->hidden, in = c->intermediate;
	const uint32_t q = m->q_out, kv = m->kv_out;
	int ret;

	ly->attn_norm = alloc_f32(h, 1);
	ly->mlp_norm = alloc_f32(h, 1);
	ly->wqkv = alloc_f32(m->qkv_out, h);
	ly->wo = alloc_f32(h, q);
	ly->wgu = alloc_f32(2 * (uint64_t)in, h);
	ly->wdown = alloc_f32(h, in);
	ly->bqkv = c->qkv_bias ? alloc_f32(m->qkv_out, 1) : NULL;
	ly->bo = c->o_bias ? alloc_f32(h, 1) : NULL;
	if (!ly->attn_norm || !ly->mlp_norm || !ly->wqkv || !ly->wo ||
	    !ly->wgu || !ly->wdown || (c->qkv_bias && !ly->bqkv) ||
	    (c->o_bias && !ly->bo))
		return -ENOMEM;

	/* q, k, v stacked into one matrix, gate and up into another. */
	ret = load_part(ws, l, "input_layernorm.weight", h, 0, ly->attn_norm);
	if (!ret)
		ret = load_part(ws, l, "self_attn.q_proj.weight", q, h,
				ly->wqkv);
	if (!ret)
		ret = load_part(ws, l, "self_attn.k_proj.weight", kv, h,
				ly->wqkv + (size_t)q * h);
	if (!ret)
		ret = load_part(ws, l, "self_attn.v_proj.weight", kv, h,
				ly->wqkv + (size_t)(q + kv) * h);
	if (!ret && c->qkv_bias)
		ret = load_part(ws, l, "self_attn.q_proj.bias", q, 0, ly->bqkv);
	if (!ret && c->qkv_bias)
		ret = load_part(ws, l, "self_attn.k_proj.bias", kv, 0,
				ly->bqkv + q);
	if (!ret && c->qkv_bias)
		ret = load_part(ws, l, "self_attn.v_proj.bias", kv, 0,
				ly->bqkv + q + kv);
	if (!ret)
		ret = load_part(ws, l, "self_attn.o_proj.weight", h, q, ly->wo);
	if (!ret && c->o_bias)
		ret = load_part(ws, l, "self_attn.o_proj.bias", h, 0, ly->bo);
	if (!ret)
		ret = load_part(ws, l, "post_attention_layernorm.weight", h, 0,
				ly->mlp_norm);
	if (!ret)
		ret = load_part(ws, l, "mlp.gate_proj.weight", in, h, ly->wgu);
	if (!ret)
		ret = load_part(ws, l, "mlp.up_proj.weight", in, h,
				ly->wgu + (size_t)in * h);
	if (!ret)
		ret = load_part(ws, l, "mlp.down_proj.weight", h, in,
				ly->wdown);
	return ret;
}

static int load_weights(struct nwc_llama *m, const struct wset *ws)
{
	const struct nwc_llama_config *c = &m->cfg;
	int ret;

	m->layer = calloc(c->layers, sizeof(*m->layer));
	m->embed = alloc_f32(c->vocab, c->hidden);
	m->norm = alloc_f32(c->hidden, 1);
	if (!m->layer || !m->embed || !m->norm)
		return -ENOMEM;
	ret = load_tensor(ws, "model.embed_tokens.weight", c->vocab, c->hidden,
			  m->embed);
	if (!ret)
		ret = load_tensor(ws, "model.norm.weight", c->hidden, 0,
				  m->norm);
	for (uint32_t l = 0; !ret && l < c->layers; l++)
		ret = load_layer(m, ws, l, &m->layer[l]);
	if (ret)
		return ret;
	if (c->tied) {
		m->lm_head = m->embed;
		return 0;
	}
	m->lm_head = alloc_f32(c->vocab, c->hidden);
	if (!m->lm_head)
		return -ENOMEM;
	return load_tensor(ws, "lm_head.weight", c->vocab, c->hidden,
			   m->lm_head);
}

int nwc_llama_open(const char *dir, struct nwc_llama **out)
{
	char path[PATH_MAX];
	struct wset ws = { 0 };
	struct nwc_json *doc;
	struct nwc_llama *m;
	int ret;

	ret = join_path(path, dir, "config.json");
	if (ret)
		return ret;
	ret = load_json(path, &doc);
	if (ret)
		return ret;
	m = calloc(1, sizeof(*m));
	if (!m) {
		ret = -ENOMEM;
		goto out_free_doc;
	}
	ret = parse_config(&(struct cfg){ .root = doc, .path = path }, &m->cfg);
	if (ret)
		goto out_free_model;
	m->q_out = m->cfg.heads * m->cfg.head_dim;
	m->kv_out = m->cfg.kv_heads * m->cfg.head_dim;
	m->qkv_out = m->q_out + 2 * m->kv_out;
	ret = wset_open(&ws, dir);
	if (!ret)
		ret = load_weights(m, &ws);
	wset_close(&ws);
	if (ret == -ENOMEM)
		nwc_err("%s: out of memory loading the weights", dir);
	if (ret)
		goto out_free_model;
	nwc_json_free(doc);
	*out = m;
	return 0;

out_free_model:
	nwc_llama_free(m);
out_free_doc:
	nwc_json_free(doc);
	return ret;
}

void nwc_llama_free(struct nwc_llama *m)
{
	if (!m)
		return;
	for (uint32_t l = 0; m->layer && l < m->cfg.layers; l++) {
		struct layer *ly = &m->layer[l];

		free(ly->attn_norm);
		free(ly->wqkv);
		free(ly->bqkv);
		free(ly->wo);
		free(ly->bo);
		free(ly->mlp_norm);
		free(ly->wgu);
		free(ly->wdown);
	}
	free(m->layer);
	if (m->lm_head != m->embed)
		free(m->lm_head);
	free(m->embed);
	free(m->norm);
	free(m);
}

const struct nwc_llama_config *nwc_llama_config(const struct nwc_llama *m)
{
	return &m->cfg;
}

/* ---- forward pass ----------------------------------------------------- */

struct window {
	size_t off;		/* first token in the stream */
	uint32_t len;
};

/* One run of eval or calib: shared, read-only while the workers run. */
struct run {
	const struct nwc_llama *m;
	const uint32_t *tok;
	struct window *win;
	size_t nwin;
	uint32_t maxlen;	/* longest window */
	float *rcos, *rsin;	/* (maxlen, head_dim / 2) rotary table */
	const struct nwc_llama_opts *o;
	uint64_t total;		/* tokens in all windows */

	/* eval */
	double *nll;		/* (nwin,) per window */

	/* calib: blocks of windows, merged into sum in block order */
	size_t nin;		/* inputs */
	uint32_t *in_n;		/* (nin,) widths */
	size_t *in_off;		/* (nin,) offsets into an accumulator */
	size_t acc_len;		/* doubles in one accumulator */
	size_t *block;		/* (nblocks + 1,) first window of each */
	size_t nblocks;
	double *sum;		/* (acc_len,) upper triangles */

	bool locks;		/* lock and merged_cv initialised */
	pthread_mutex_t lock;	/* guards what follows */
	pthread_cond_t merged_cv;
	size_t next;		/* next window (eval) or block (calib) */
	size_t merged;		/* blocks added to sum */
	uint64_t done;		/* tokens finished, for progress */
};

/* Per-thread buffers, sized for the longest window. */
struct scratch {
	float *x;		/* (L, hidden) residual stream */
	float *xn;		/* (L, hidden) normed input, block output */
	float *qkv;		/* (L, qkv_out) */
	float *att;		/* (L, q_out) attention output */
	float *s;		/* (QROWS, L) scores */
	float *gu;		/* (L, 2 inter) gate | up; SiLU(g)*u in g */
	float *logits;		/* (LOGIT_ROWS, vocab) */
	float *gram;		/* (max n_in, max n_in), calib only */
	double *acc;		/* (acc_len,), calib only */
};

static void rmsnorm(float *y, const float *x, const float *w, uint32_t rows,
		    uint32_t n, float eps)
{
	for (uint32_t t = 0; t < rows; t++) {
		const float *xr = x + (size_t)t * n;
		float *yr = y + (size_t)t * n;
		double ss = 0;
		float r;

		for (uint32_t i = 0; i < n; i++)
			ss += (double)xr[i] * xr[i];
		r = 1.0f / sqrtf((float)(ss / n) + eps);
		for (uint32_t i = 0; i < n; i++)
			yr[i] = w[i] * (xr[i] * r);
	}
}

/* y = x W^T (+ b): x (rows, in), W (out, in), y (rows, out). */
static void linear(float *y, const float *x, const float *w, const float *b,
		   uint32_t rows, uint32_t in, uint32_t out)
{
	nwc_sgemm(false, true, (int)rows, (int)out, (int)in, 1.0f, x, (int)in,
		  w, (int)in, 0.0f, y, (int)out);
	if (!b)
		return;
	for (uint32_t t = 0; t < rows; t++)
		for (uint32_t j = 0; j < out; j++)
			y[(size_t)t * out + j] += b[j];
}

/*
 * The rotary table as transformers builds it in float32: inverse
 * frequencies theta^(-2i/d), angle = position * frequency, then cos/sin.
 */
static void rope_table(struct run *r)
{
	const struct nwc_llama_config *c = &r->m->cfg;
	uint32_t half = c->head_dim / 2;

	for (uint32_t i = 0; i < half; i++) {
		float e = (float)(2 * i) / (float)c->head_dim;
		float inv = 1.0f / powf((float)c->rope_theta, e);

		for (uint32_t p = 0; p < r->maxlen; p++) {
			float a = (float)p * inv;

			r->rcos[(size_t)p * half + i] = (float)cos(a);
			r->rsin[(size_t)p * half + i] = (float)sin(a);
		}
	}
}

/* rotate_half layout: element i pairs with i + d/2. */
static void rope(const struct run *r, float *v, uint32_t nheads, uint32_t pos)
{
	uint32_t d = r->m->cfg.head_dim, half = d / 2;
	const float *cs = r->rcos + (size_t)pos * half;
	const float *sn = r->rsin + (size_t)pos * half;

	for (uint32_t h = 0; h < nheads; h++, v += d) {
		for (uint32_t i = 0; i < half; i++) {
			float a = v[i], b = v[i + half];

			v[i] = a * cs[i] - b * sn[i];
			v[i + half] = b * cs[i] + a * sn[i];
		}
	}
}

/* Softmax of s[0..n) in place. */
static void softmax(float *s, uint32_t n)
{
	float mx = s[0], inv;
	double sum = 0;

	for (uint32_t j = 1; j < n; j++)
		mx = NWC_MAX(mx, s[j]);
	for (uint32_t j = 0; j < n; j++) {
		s[j] = expf(s[j] - mx);
		sum += s[j];
	}
	inv = (float)(1 / sum);
	for (uint32_t j = 0; j < n; j++)
		s[j] *= inv;
}

/*
 * Causal attention of every head over the qkv rows of a window, in blocks
 * of QROWS queries: scores against the keys the block can see, masked
 * softmax (zeros outside the mask), then the weighted sum of values.
 */
static void attention(const struct run *r, struct scratch *sc, uint32_t L)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t d = c->head_dim, rep = c->heads / c->kv_heads;
	const uint32_t win = c->sliding_window, ld = m->qkv_out;
	const float scale = 1.0f / sqrtf((float)d);

	for (uint32_t i0 = 0; i0 < L; i0 += QROWS) {
		uint32_t i1 = NWC_MIN(L, i0 + QROWS), nq = i1 - i0;
		uint32_t k0 = win && i0 + 1 > win ? i0 + 1 - win : 0;
		uint32_t nk = i1 - k0;

		for (uint32_t h = 0; h < c->heads; h++) {
			const float *q = sc->qkv + (size_t)i0 * ld + h * d;
			const float *k = sc->qkv + (size_t)k0 * ld + m->q_out +
					 (h / rep) * d;
			const float *v = k + m->kv_out;

			nwc_sgemm(false, true, (int)nq, (int)nk, (int)d, scale,
				  q, (int)ld, k, (int)ld, 0.0f, sc->s,
				  (int)nk);
			for (uint32_t i = i0; i < i1; i++) {
				float *row = sc->s + (size_t)(i - i0) * nk;
				uint32_t lo = win && i + 1 > win ?
					      i + 1 - win : 0;

				memset(row, 0, (lo - k0) * sizeof(*row));
				softmax(row + (lo - k0), i + 1 - lo);
				memset(row + (i + 1 - k0), 0,
				       (i1 - i - 1) * sizeof(*row));
			}
			nwc_sgemm(false, false, (int)nq, (int)d, (int)nk, 1.0f,
				  sc->s, (int)nk, v, (int)ld, 0.0f,
				  sc->att + (size_t)i0 * m->q_out + h * d,
				  (int)m->q_out);
		}
	}
}

/* acc's upper triangle += X^T X, X (rows, n) with row stride ld. */
static void gram_add(double *acc, float *tmp, const float *x, uint32_t rows,
		     uint32_t n, uint32_t ld)
{
	for (uint32_t r0 = 0; r0 < rows; r0 += GRAM_ROWS) {
		uint32_t nr = NWC_MIN(GRAM_ROWS, rows - r0);
		const float *xr = x + (size_t)r0 * ld;

		nwc_sgemm(true, false, (int)n, (int)n, (int)nr, 1.0f, xr,
			  (int)ld, xr, (int)ld, 0.0f, tmp, (int)n);
		for (size_t i = 0; i < n; i++)
			for (size_t j = i; j < n; j++)
				acc[i * n + j] += tmp[i * n + j];
	}
}

static void calib_add(const struct run *r, struct scratch *sc, size_t in,
		      const float *x, uint32_t rows, uint32_t ld)
{
	gram_add(sc->acc + r->in_off[in], sc->gram, x, rows, r->in_n[in], ld);
}

static void decoder_layer(const struct run *r, struct scratch *sc,
			  const struct layer *ly, size_t l, uint32_t L)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t h = c->hidden, in = c->intermediate;
	const size_t nx = (size_t)L * h;
	const bool calib = sc->acc;

	rmsnorm(sc->xn, sc->x, ly->attn_norm, L, h, (float)c->rms_eps);
	if (calib)
		calib_add(r, sc, l * IN_PER_LAYER + IN_ATTN, sc->xn, L, h);
	linear(sc->qkv, sc->xn, ly->wqkv, ly->bqkv, L, h, m->qkv_out);
	for (uint32_t t = 0; t < L; t++) {
		float *row = sc->qkv + (size_t)t * m->qkv_out;

		rope(r, row, c->heads, t);
		rope(r, row + m->q_out, c->kv_heads, t);
	}
	attention(r, sc, L);
	if (calib)
		calib_add(r, sc, l * IN_PER_LAYER + IN_O, sc->att, L, m->q_out);
	linear(sc->xn, sc->att, ly->wo, ly->bo, L, m->q_out, h);
	for (size_t i = 0; i < nx; i++)
		sc->x[i] += sc->xn[i];

	rmsnorm(sc->xn, sc->x, ly->mlp_norm, L, h, (float)c->rms_eps);
	if (calib)
		calib_add(r, sc, l * IN_PER_LAYER + IN_MLP, sc->xn, L, h);
	linear(sc->gu, sc->xn, ly->wgu, NULL, L, h, 2 * in);
	for (uint32_t t = 0; t < L; t++) {
		float *g = sc->gu + (size_t)t * 2 * in, *u = g + in;

		for (uint32_t j = 0; j < in; j++)
			g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
	}
	if (calib)
		calib_add(r, sc, l * IN_PER_LAYER + IN_DOWN, sc->gu, L, 2 * in);
	nwc_sgemm(false, true, (int)L, (int)h, (int)in, 1.0f, sc->gu,
		  (int)(2 * in), ly->wdown, (int)in, 0.0f, sc->xn, (int)h);
	for (size_t i = 0; i < nx; i++)
		sc->x[i] += sc->xn[i];
}

/* Sum of -ln p(tok[t + 1]) over t < L - 1, from the final normed rows. */
static double window_nll(const struct run *r, struct scratch *sc,
			 const uint32_t *tok, uint32_t L)
{
	const struct nwc_llama *m = r->m;
	const uint32_t h = m->cfg.hidden, V = m->cfg.vocab;
	double nll = 0;

	for (uint32_t r0 = 0; r0 + 1 < L; r0 += LOGIT_ROWS) {
		uint32_t nr = NWC_MIN(LOGIT_ROWS, L - 1 - r0);

		nwc_sgemm(false, true, (int)nr, (int)V, (int)h, 1.0f,
			  sc->xn + (size_t)r0 * h, (int)h, m->lm_head, (int)h,
			  0.0f, sc->logits, (int)V);
		for (uint32_t t = 0; t < nr; t++) {
			const float *lg = sc->logits + (size_t)t * V;
			float mx = lg[0];
			double sum = 0;

			for (uint32_t j = 1; j < V; j++)
				mx = NWC_MAX(mx, lg[j]);
			for (uint32_t j = 0; j < V; j++)
				sum += expf(lg[j] - mx);
			nll += mx + log(sum) - lg[tok[r0 + t + 1]];
		}
	}
	return nll;
}

/* One window from position 0: its NLL (eval) or its statistics (calib). */
static double forward(const struct run *r, struct scratch *sc,
		      const struct window *w)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t *tok = r->tok + w->off;
	const uint32_t h = c->hidden, L = w->len;

	for (uint32_t t = 0; t < L; t++)
		memcpy(sc->x + (size_t)t * h, m->embed + (size_t)tok[t] * h,
		       h * sizeof(float));
	for (uint32_t l = 0; l < c->layers; l++)
		decoder_layer(r, sc, &m->layer[l], l, L);
	rmsnorm(sc->xn, sc->x, m->norm, L, h, (float)c->rms_eps);
	if (sc->acc) {
		if (!c->tied)
			calib_add(r, sc, r->nin - 1, sc->xn, L, h);
		return 0;
	}
	return window_nll(r, sc, tok, L);
}

static void scratch_free(struct scratch *sc)
{
	free(sc->x);
	free(sc->xn);
	free(sc->qkv);
	free(sc->att);
	free(sc->s);
	free(sc->gu);
	free(sc->logits);
	free(sc->gram);
	free(sc->acc);
}

static int scratch_alloc(const struct run *r, struct scratch *sc, bool calib)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	const uint64_t L = r->maxlen;
	uint32_t maxin = 0;

	memset(sc, 0, sizeof(*sc));
	sc->x = alloc_f32(L, c->hidden);
	sc->xn = alloc_f32(L, c->hidden);
	sc->qkv = alloc_f32(L, m->qkv_out);
	sc->att = alloc_f32(L, m->q_out);
	sc->s = alloc_f32(QROWS, L);
	sc->gu = alloc_f32(L, 2 * (uint64_t)c->intermediate);
	if (!sc->x || !sc->xn || !sc->qkv || !sc->att || !sc->s || !sc->gu)
		goto out_free;
	if (!calib) {
		sc->logits = alloc_f32(LOGIT_ROWS, c->vocab);
		if (!sc->logits)
			goto out_free;
		return 0;
	}
	for (size_t i = 0; i < r->nin; i++)
		maxin = NWC_MAX(maxin, r->in_n[i]);
	sc->gram = alloc_f32(maxin, maxin);
	sc->acc = malloc(r->acc_len * sizeof(*sc->acc));
	if (sc->gram && sc->acc)
		return 0;
out_free:
	scratch_free(sc);
	return -ENOMEM;
}

static void report(struct run *r, uint64_t tokens)
{
	r->done += tokens;
	if (r->o->progress)
		r->o->progress(r->o->progress_arg, r->done, r->total);
}

/* Takes the next unit of work, or returns false when none is left. */
static bool take(struct run *r, size_t limit, size_t *unit)
{
	pthread_mutex_lock(&r->lock);
	*unit = r->next < limit ? r->next++ : limit;
	pthread_mutex_unlock(&r->lock);
	return *unit < limit;
}

static void eval_work(struct run *r, struct scratch *sc)
{
	size_t i;

	while (take(r, r->nwin, &i)) {
		r->nll[i] = forward(r, sc, &r->win[i]);
		pthread_mutex_lock(&r->lock);
		report(r, r->win[i].len);
		pthread_mutex_unlock(&r->lock);
	}
}

/*
 * A block is summed alone from zero, then added to the total in block
 * order: the blocks do not depend on the thread count, so neither does
 * any rounding.
 */
static void calib_work(struct run *r, struct scratch *sc)
{
	size_t b;

	while (take(r, r->nblocks, &b)) {
		uint64_t tokens = 0;

		memset(sc->acc, 0, r->acc_len * sizeof(*sc->acc));
		for (size_t i = r->block[b]; i < r->block[b + 1]; i++) {
			forward(r, sc, &r->win[i]);
			tokens += r->win[i].len;
		}
		pthread_mutex_lock(&r->lock);
		while (r->merged != b)
			pthread_cond_wait(&r->merged_cv, &r->lock);
		for (size_t i = 0; i < r->acc_len; i++)
			r->sum[i] += sc->acc[i];
		r->merged++;
		pthread_cond_broadcast(&r->merged_cv);
		report(r, tokens);
		pthread_mutex_unlock(&r->lock);
	}
}

struct worker {
	struct run *r;
	struct scratch sc;
	bool calib;
	pthread_t tid;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	if (w->calib)
		calib_work(w->r, &w->sc);
	else
		eval_work(w->r, &w->sc);
	return NULL;
}

/*
 * Runs the workers: the calling thread is one of them.  A thread that
 * cannot get its buffers or be started leaves its share to the others,
 * which changes the speed but not the result.
 */
static int run_threads(struct run *r, unsigned nthreads, bool calib)
{
	struct worker *w;
	unsigned started = 1;

	w = calloc(nthreads, sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (unsigned i = 0; i < nthreads; i++) {
		w[i].r = r;
		w[i].calib = calib;
		if (scratch_alloc(r, &w[i].sc, calib)) {
			nthreads = i;
			break;
		}
	}
	if (!nthreads) {
		free(w);
		return -ENOMEM;
	}
	nwc_gemm_init();
	for (unsigned i = 1; i < nthreads; i++) {
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]))
			break;
		started++;
	}
	worker_main(&w[0]);
	for (unsigned i = 1; i < started; i++)
		pthread_join(w[i].tid, NULL);
	for (unsigned i = 0; i < nthreads; i++)
		scratch_free(&w[i].sc);
	free(w);
	return 0;
}

/* Validates the options and tokens and cuts the stream into windows. */
static int run_init(struct run *r, const struct nwc_llama *m,
		    const uint32_t *tok, size_t n,
		    const struct nwc_llama_opts *o)
{
	const struct nwc_llama_config *c = &m->cfg;
	uint32_t ctx = o->ctx ? o->ctx : NWC_MIN(c->max_pos, NWC_LLAMA_CTX_MAX);

	memset(r, 0, sizeof(*r));
	r->m = m;
	r->tok = tok;
	r->o = o;
	if (ctx < 2 || ctx > CTX_LIMIT) {
		nwc_err("context length %" PRIu32 " is out of range [2, %u]",
			ctx, CTX_LIMIT);
		return -EINVAL;
	}
	if (o->max_tokens && o->max_tokens < n)
		n = (size_t)o->max_tokens;
	for (size_t i = 0; i < n; i++) {
		if (tok[i] >= c->vocab) {
			nwc_err("token %" PRIu32 " at index %zu is not below vocab_size %" PRIu32,
				tok[i], i, c->vocab);
			return -EINVAL;
		}
	}
	/* At most one window per token: allocate for the worst case. */
	r->win = calloc(NWC_MAX(n, 1), sizeof(*r->win));
	if (!r->win)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct window *w = r->nwin ? &r->win[r->nwin - 1] : NULL;

		if (!w || tok[i] == NWC_LLAMA_BOS || w->len == ctx) {
			w = &r->win[r->nwin++];
			w->off = i;
		}
		w->len++;
		r->maxlen = NWC_MAX(r->maxlen, w->len);
	}
	r->total = n;
	r->rcos = alloc_f32(r->maxlen, c->head_dim / 2);
	r->rsin = alloc_f32(r->maxlen, c->head_dim / 2);
	if (!r->rcos || !r->rsin)
		return -ENOMEM;
	rope_table(r);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->merged_cv, NULL);
	r->locks = true;
	return 0;
}

static void run_free(struct run *r)
{
	if (r->locks) {
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->merged_cv);
	}
	free(r->win);
	free(r->rcos);
	free(r->rsin);
	free(r->nll);
	free(r->in_n);
	free(r->in_off);
	free(r->block);
	free(r->sum);
}

/* Threads to use for @units units of work: at least 1, at most @units. */
static unsigned threads_for(const struct nwc_llama_opts *o, size_t units)
{
	size_t t = o->threads ? o->threads : 1;

	return (unsigned)NWC_MAX(NWC_MIN(t, units), 1);
}

int nwc_llama_eval(const struct nwc_llama *m, const uint32_t *tok, size_t n,
		   const struct nwc_llama_opts *o, struct nwc_llama_eval *out)
{
	struct run r;
	int ret;

	ret = run_init(&r, m, tok, n, o);
	if (!ret) {
		r.nll = calloc(NWC_MAX(r.nwin, 1), sizeof(*r.nll));
		ret = r.nll ? 0 : -ENOMEM;
	}
	if (!ret && r.nwin)
		ret = run_threads(&r, threads_for(o, r.nwin), false);
	if (!ret) {
		memset(out, 0, sizeof(*out));
		for (size_t i = 0; i < r.nwin; i++) {
			out->nll += r.nll[i];
			out->count += r.win[i].len - 1;
		}
		out->tokens = r.total;
	}
	run_free(&r);
	return ret;
}

/* The inputs of the linear layers, and blocks of about equal size. */
static int calib_layout(struct run *r)
{
	const struct nwc_llama *m = r->m;
	const struct nwc_llama_config *c = &m->cfg;
	uint64_t per_block, tokens = 0;

	r->nin = (size_t)c->layers * IN_PER_LAYER + !c->tied;
	r->in_n = calloc(r->nin, sizeof(*r->in_n));
	r->in_off = calloc(r->nin, sizeof(*r->in_off));
	r->block = calloc(r->nwin + 1, sizeof(*r->block));
	if (!r->in_n || !r->in_off || !r->block)
		return -ENOMEM;
	for (size_t i = 0; i < r->nin; i++) {
		uint32_t n = c->hidden;

		if (i < (size_t)c->layers * IN_PER_LAYER &&
		    i % IN_PER_LAYER == IN_O)
			n = m->q_out;
		if (i < (size_t)c->layers * IN_PER_LAYER &&
		    i % IN_PER_LAYER == IN_DOWN)
			n = c->intermediate;
		r->in_n[i] = n;
		r->in_off[i] = r->acc_len;
		r->acc_len += (size_t)n * n;
	}
	r->sum = calloc(r->acc_len, sizeof(*r->sum));
	if (!r->sum)
		return -ENOMEM;
	per_block = NWC_MAX(r->total / CALIB_BLOCKS, 1);
	for (size_t i = 0; i < r->nwin; i++) {
		if (!tokens)
			r->block[r->nblocks++] = i;
		tokens += r->win[i].len;
		if (tokens >= per_block)
			tokens = 0;
	}
	r->block[r->nblocks] = r->nwin;
	return 0;
}

/* "model.layers.@l.@part", or @part alone for the lm_head. */
static int calib_name(char **dst, uint32_t l, const char *part)
{
	char name[NAME_LEN];

	if (!strcmp(part, "lm_head.weight"))
		snprintf(name, sizeof(name), "%s", part);
	else
		snprintf(name, sizeof(name), "model.layers.%" PRIu32 ".%s", l,
			 part);
	*dst = strdup(name);
	return *dst ? 0 : -ENOMEM;
}

/* Mirrors the upper triangles into symmetric float H, divided by T. */
static int calib_result(const struct run *r, struct nwc_llama_calib **out)
{
	static const char *const names[IN_PER_LAYER + 1][3] = {
		[IN_ATTN] = { "self_attn.q_proj.weight",
			      "self_attn.k_proj.weight",
			      "self_attn.v_proj.weight" },
		[IN_O] = { "self_attn.o_proj.weight" },
		[IN_MLP] = { "mlp.gate_proj.weight", "mlp.up_proj.weight" },
		[IN_DOWN] = { "mlp.down_proj.weight" },
		[IN_PER_LAYER] = { "lm_head.weight" },
	};
	const size_t nlayer = (size_t)r->m->cfg.layers * IN_PER_LAYER;
	struct nwc_llama_calib *cb;
	int ret = 0;

	cb = calloc(1, sizeof(*cb));
	if (!cb)
		return -ENOMEM;
	cb->tokens = r->total;
	cb->in = calloc(r->nin, sizeof(*cb->in));
	if (!cb->in) {
		free(cb);
		return -ENOMEM;
	}
	cb->n = r->nin;
	for (size_t k = 0; k < r->nin && !ret; k++) {
		struct nwc_llama_h *in = &cb->in[k];
		const double *s = r->sum + r->in_off[k];
		uint32_t n = r->in_n[k], l = (uint32_t)(k / IN_PER_LAYER);
		const char *const *kind;

		in->n_in = n;
		in->h = alloc_f32(n, n);
		if (!in->h) {
			ret = -ENOMEM;
			break;
		}
		for (uint32_t i = 0; i < n; i++) {
			for (uint32_t j = i; j < n; j++) {
				float v = (float)(s[(size_t)i * n + j] /
						  (double)r->total);

				in->h[(size_t)i * n + j] = v;
				in->h[(size_t)j * n + i] = v;
			}
		}
		kind = k < nlayer ? names[k % IN_PER_LAYER] :
				    names[IN_PER_LAYER];
		for (unsigned w = 0; w < 3 && kind[w] && !ret; w++) {
			ret = calib_name(&in->weights[w], l, kind[w]);
			in->n_weights += !ret;
		}
	}
	if (ret) {
		nwc_llama_calib_free(cb);
		return ret;
	}
	*out = cb;
	return 0;
}

int nwc_llama_calib(const struct nwc_llama *m, const uint32_t *tok, size_t n,
		    const struct nwc_llama_opts *o,
		    struct nwc_llama_calib **out)
{
	struct run r;
	int ret;

	ret = run_init(&r, m, tok, n, o);
	if (!ret && !r.total) {
		nwc_err("no tokens to collect statistics from");
		ret = -EINVAL;
	}
	if (!ret)
		ret = calib_layout(&r);
	if (!ret)
		ret = run_threads(&r, threads_for(o, r.nblocks), true);
	if (!ret)
		ret = calib_result(&r, out);
	run_free(&r);
	return ret;
}

void nwc_llama_calib_free(struct nwc_llama_calib *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->in[i].h);
		for (unsigned w = 0; w < 3; w++)
			free(c->in[i].weights[w]);
	}
	free(c->in);
	free(c);
}

int nwc_llama_read_tokens(const char *path, uint64_t max, uint32_t **tok,
		       size_t *n)
{
	struct stat sb;
	uint8_t *raw = NULL;
	size_t bytes;
	int fd, ret;

	*tok = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb)) {
		ret = -errno;
		nwc_err("%s: %s", path, nwc_strerror(ret));
		goto out_close;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size % 2 || !sb.st_size) {
		nwc_err("%s: %s", path, !S_ISREG(sb.st_mode) ?
			"not a regular file" : sb.st_size ?
			"odd size: not a file of 16-bit tokens" : "empty");
		ret = -EINVAL;
		goto out_close;
	}
	*n = (size_t)sb.st_size / 2;
	if (max && max < *n)
		*n = (size_t)max;
	bytes = *n * 2;
	raw = malloc(bytes);
	*tok = malloc(*n * sizeof(**tok));
	if (!raw || !*tok) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = nwc_pread_full(fd, raw, bytes, 0);
	if (ret) {
		if (ret == -NWC_ECORRUPT)
			ret = -EIO;
		nwc_err("%s: read failed: %s", path, nwc_strerror(ret));
		goto out_free;
	}
	for (size_t i = 0; i < *n; i++)
		(*tok)[i] = nwc_get_le16(raw + 2 * i);
	free(raw);
	close(fd);
	return 0;

out_free:
	free(raw);
	free(*tok);
	*tok = NULL;
out_close:
	if (fd >= 0)
		close(fd);
	return ret;
}
