/* SPDX-License-Identifier: MIT */
/*
 * weights.c - open a model directory: its config, the safetensors files
 * that hold the weights, and every weight read as F32.
 */
#include "codec/common/base.h"

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "codec/common/array.h"
#include "codec/common/convert.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/image/format.h"
#include "codec/input/json.h"
#include "codec/input/safetensors.h"
#include "mkfs/llm/llm_impl.h"

static int join_path(char *buf, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		nwc_err("%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

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

	ret = llm_load_json(path, &doc);
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
		ret = nwc_array_reserve((void **)names, &cap, *n + 1,
					sizeof(**names));
		if (ret)
			break;
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

float *llm_alloc_f32(uint64_t rows, uint64_t cols)
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
	memset(ly, 0, sizeof(*ly));
	const struct nwc_llama_config *c = &m->cfg;
	const uint32_t h = c->hidden, in = c->intermediate;
	const uint32_t q = m->q_out, kv = m->kv_out;
	int ret;

	ly->attn_norm = llm_alloc_f32(h, 1);
	ly->mlp_norm = llm_alloc_f32(h, 1);
	ly->wqkv = llm_alloc_f32(m->qkv_out, h);
	ly->wo = llm_alloc_f32(h, q);
	ly->wgu = llm_alloc_f32(2 * (uint64_t)in, h);
	ly->wdown = llm_alloc_f32(h, in);
	ly->bqkv = c->qkv_bias ? llm_alloc_f32(m->qkv_out, 1) : NULL;
	ly->bo = c->o_bias ? llm_alloc_f32(h, 1) : NULL;
	ly->q_norm = c->qk_norm ? llm_alloc_f32(c->head_dim, 1) : NULL;
	ly->k_norm = c->qk_norm ? llm_alloc_f32(c->head_dim, 1) : NULL;
	if (!ly->attn_norm || !ly->mlp_norm || !ly->wqkv || !ly->wo ||
	    !ly->wgu || !ly->wdown || (c->qkv_bias && !ly->bqkv) ||
	    (c->o_bias && !ly->bo) ||
	    (c->qk_norm && (!ly->q_norm || !ly->k_norm)))
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
	if (!ret && c->qk_norm)
		ret = load_part(ws, l, "self_attn.q_norm.weight", c->head_dim,
				0, ly->q_norm);
	if (!ret && c->qk_norm)
		ret = load_part(ws, l, "self_attn.k_norm.weight", c->head_dim,
				0, ly->k_norm);
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
	m->embed = llm_alloc_f32(c->vocab, c->hidden);
	m->norm = llm_alloc_f32(c->hidden, 1);
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
	m->lm_head = llm_alloc_f32(c->vocab, c->hidden);
	if (!m->lm_head)
		return -ENOMEM;
	return load_tensor(ws, "lm_head.weight", c->vocab, c->hidden,
			   m->lm_head);
}

int nwc_llama_open(const char *dir, struct nwc_llama **out)
{
	return llm_open(dir, true, out);
}

int llm_load_layer(const struct nwc_llama *m, uint32_t l, struct layer *ly)
{
	int ret;

	assert(m->ws && l < m->cfg.layers);
	ret = load_layer(m, m->ws, l, ly);
	if (ret == -ENOMEM)
		nwc_err("%s: out of memory loading layer %" PRIu32,
			m->ws->dir, l);
	if (ret)
		llm_free_layer(ly);
	return ret;
}

int llm_load_f32(const struct nwc_llama *m, const char *name, uint32_t rows,
		 uint32_t cols, float *dst)
{
	assert(m->ws);
	return load_tensor(m->ws, name, rows, cols, dst);
}

int nwc_llama_read_config(const char *dir, struct nwc_llama_config *cfg)
{
	char path[PATH_MAX];
	struct nwc_json *doc;
	int ret;

	ret = join_path(path, dir, "config.json");
	if (ret)
		return ret;
	ret = llm_load_json(path, &doc);
	if (ret)
		return ret;
	ret = llm_parse_config(&(struct cfg){ .root = doc, .path = path }, cfg);
	nwc_json_free(doc);
	return ret;
}

int llm_open(const char *dir, bool weights, struct nwc_llama **out)
{
	struct wset ws = { 0 };
	struct nwc_llama *m;
	int ret;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	ret = nwc_llama_read_config(dir, &m->cfg);
	if (ret)
		goto out_free_model;
	m->q_out = m->cfg.heads * m->cfg.head_dim;
	m->kv_out = m->cfg.kv_heads * m->cfg.head_dim;
	m->qkv_out = m->q_out + 2 * m->kv_out;
	ret = wset_open(&ws, dir);
	if (!ret && weights)
		ret = load_weights(m, &ws);
	if (!ret && !weights) {
		/* Streaming: keep the files open, load layers on demand. */
		m->ws = malloc(sizeof(*m->ws));
		if (m->ws) {
			m->dir = strdup(dir);
			*m->ws = ws;
			m->ws->dir = m->dir;
			ws = (struct wset){ 0 };
		}
		ret = m->ws && m->dir ? 0 : -ENOMEM;
	}
	wset_close(&ws);
	if (ret == -ENOMEM)
		nwc_err("%s: out of memory loading the weights", dir);
	if (ret)
		goto out_free_model;
	*out = m;
	return 0;

out_free_model:
	nwc_llama_free(m);
	return ret;
}

void llm_free_layer(struct layer *ly)
{
	free(ly->attn_norm);
	free(ly->wqkv);
	free(ly->bqkv);
	free(ly->q_norm);
	free(ly->k_norm);
	free(ly->wo);
	free(ly->bo);
	free(ly->mlp_norm);
	free(ly->wgu);
	free(ly->wdown);
	memset(ly, 0, sizeof(*ly));
}

void nwc_llama_free(struct nwc_llama *m)
{
	if (!m)
		return;
	for (uint32_t l = 0; m->layer && l < m->cfg.layers; l++)
		llm_free_layer(&m->layer[l]);
	free(m->layer);
	if (m->ws) {
		wset_close(m->ws);
		free(m->ws);
	}
	free(m->dir);
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
