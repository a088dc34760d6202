/* SPDX-License-Identifier: MIT */
/* gen_model.c - write a deterministic synthetic Llama-like model directory. */
#include "codec/common/base.h"

#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/convert.h"

#define PROG "gen_model"
#define CHUNK_ELEMS (64u << 10)	/* elements generated per write */
#define MAX_TENSORS 256

/* The few dtypes this tool writes, by their safetensors names. */
enum gen_dtype { DT_F32, DT_BF16, DT_F16, DT_I64, DT_U8 };

static const struct {
	const char *name;
	unsigned size;
	const char *torch;
} dtypes[] = {
	[DT_F32] = { "F32", 4, "float32" },
	[DT_BF16] = { "BF16", 2, "bfloat16" },
	[DT_F16] = { "F16", 2, "float16" },
	[DT_I64] = { "I64", 8, "int64" },
	[DT_U8] = { "U8", 1, "uint8" },
};

enum gen_fill {
	FILL_WEIGHT,	/* N(0, 0.02); realistic: row scales, outliers */
	FILL_NORM,	/* 1 + N(0, 0.02) */
	FILL_POS,	/* 0, 1, 2, ... */
	FILL_MASK,	/* 1 for the first 3/5, then 0 */
};

struct model_cfg {
	const char *size;
	unsigned vocab, dim, hidden, layers, heads, kv_heads;
	unsigned shards;	/* 1: model.safetensors, else index + shards */
	bool extras;		/* add the I64 and U8 tensors */
	bool realistic;		/* per-row scales and rare outliers */
};

static const struct model_cfg model_cfgs[] = {
	{ "tiny", 97, 36, 100, 2, 3, 1, 1, true, false },
	/* About 527M parameters: 0.98 GiB in BF16. */
	{ "1g", 32000, 2048, 5632, 9, 32, 4, 4, false, true },
	/*
	 * The scaling benchmark's (bench/scale.sh), in real shapes: SmolLM2's
	 * width (576, x2.7, 9 heads over 3), Qwen2-1.5B's (1536, x3, 12 over
	 * 2) and TinyLlama's (2048, x2.75, 32 over 4).  51M, 258M and 1011M
	 * parameters: 0.10, 0.52 and 2.02 GB in BF16.
	 */
	{ "100m", 32000, 576, 1536, 4, 9, 3, 1, false, true },
	{ "500m", 32000, 1536, 4608, 6, 12, 2, 2, false, true },
	{ "2g", 32000, 2048, 5632, 20, 32, 4, 8, false, true },
};

struct tensor {
	char name[64];
	enum gen_dtype dtype;
	enum gen_fill fill;
	unsigned ndim;
	uint64_t shape[2];
	uint64_t bytes;
	uint64_t begin;		/* offset in its shard's data buffer */
	unsigned shard;
};

struct gen {
	const char *dir;
	uint64_t seed;
	enum gen_dtype dtype;
	const struct model_cfg *cfg;
	size_t n;
	struct tensor t[MAX_TENSORS];
};

/* A file written under a temporary name, renamed into place on success. */
struct out_file {
	FILE *f;
	char tmp[PATH_MAX];
	char path[PATH_MAX];
};

struct sbuf {
	char *s;
	size_t len, cap;
};

static void NWC_PRINTF(1, 2) gen_err(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Standard normal samples by the ziggurat method (Marsaglia and Tsang):
 * 128 strips of equal area under the density; most draws land inside a
 * strip's rectangle and cost one multiply.  The tables are built once.
 */
#define ZIG_N 128
#define ZIG_R 3.442619855899	/* start of the tail */
#define ZIG_V 9.91256303526217e-3	/* area of each strip */

static struct {
	uint32_t k[ZIG_N];	/* |hz| below this: inside the rectangle */
	float w[ZIG_N];		/* hz to x scale of each strip */
	float f[ZIG_N];		/* density at each strip's edge */
} zig;

struct gauss {
	uint64_t state;
};

static void zig_init(void)
{
	const double m = 2147483648.0;
	double d = ZIG_R, t = d, q = ZIG_V / exp(-0.5 * d * d);

	zig.k[0] = (uint32_t)(d / q * m);
	zig.k[1] = 0;
	zig.w[0] = (float)(q / m);
	zig.w[ZIG_N - 1] = (float)(d / m);
	zig.f[0] = 1.0f;
	zig.f[ZIG_N - 1] = (float)exp(-0.5 * d * d);
	for (int i = ZIG_N - 2; i >= 1; i--) {
		d = sqrt(-2.0 * log(ZIG_V / d + exp(-0.5 * d * d)));
		zig.k[i + 1] = (uint32_t)(d / t * m);
		t = d;
		zig.f[i] = (float)exp(-0.5 * d * d);
		zig.w[i] = (float)(d / m);
	}
}

static void gauss_init(struct gauss *g, uint64_t seed, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a of the name */

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	g->state = seed ^ h;
	splitmix64(&g->state);
}

/* Uniform in (0, 1]. */
static double uniform(struct gauss *g)
{
	return (double)((splitmix64(&g->state) >> 11) + 1) * 0x1p-53;
}

/* The rare draws outside a rectangle: a wedge or the tail. */
static float __attribute__((noinline)) gauss_slow(struct gauss *g,
						   uint64_t r)
{
	for (;;) {
		unsigned i = r & (ZIG_N - 1);
		int32_t hz = (int32_t)(uint32_t)(r >> 32);
		uint32_t mag = hz < 0 ? 0u - (uint32_t)hz : (uint32_t)hz;
		double x = (double)hz * zig.w[i], y;

		if (mag < zig.k[i])
			return (float)x;
		if (i == 0) {
			/* Beyond ZIG_R, by Marsaglia's tail method. */
			do {
				x = -log(uniform(g)) / ZIG_R;
				y = -log(uniform(g));
			} while (y + y < x * x);
			return (float)(hz > 0 ? ZIG_R + x : -ZIG_R - x);
		}
		if (zig.f[i] + uniform(g) * (zig.f[i - 1] - zig.f[i]) <
		    exp(-0.5 * x * x))
			return (float)x;
		r = splitmix64(&g->state);
	}
}

static inline float gauss_next(struct gauss *g)
{
	uint64_t r = splitmix64(&g->state);
	unsigned i = r & (ZIG_N - 1);
	int32_t hz = (int32_t)(uint32_t)(r >> 32);
	uint32_t mag = hz < 0 ? 0u - (uint32_t)hz : (uint32_t)hz;

	if (__builtin_expect(mag < zig.k[i], 1))
		return (float)hz * zig.w[i];
	return gauss_slow(g, r);
}

static int sbuf_printf(struct sbuf *b, const char *fmt, ...) NWC_PRINTF(2, 3);

static int sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t cap;
	char *s;
	int n;

	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < room)
			break;
		cap = NWC_MAX(b->cap * 2, b->len + (size_t)n + 256);
		s = realloc(b->s, cap);
		if (!s)
			return -ENOMEM;
		b->s = s;
		b->cap = cap;
	}
	b->len += (size_t)n;
	return 0;
}

static int out_open(struct out_file *o, const char *dir, const char *name)
{
	int n = snprintf(o->path, sizeof(o->path), "%s/%s", dir, name);
	const char *base = strrchr(o->path, '/') + 1;
	int m = snprintf(o->tmp, sizeof(o->tmp), "%.*s.%s.tmp",
			 (int)(base - o->path), o->path, base);

	if (n < 0 || (size_t)n >= sizeof(o->path) || m < 0 ||
	    (size_t)m >= sizeof(o->tmp)) {
		gen_err("%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	o->f = fopen(o->tmp, "wb");
	if (!o->f) {
		int ret = -errno;

		gen_err("%s: cannot create: %s", o->tmp, strerror(-ret));
		return ret;
	}
	return 0;
}

static int out_write(struct out_file *o, const void *buf, size_t len)
{
	if (len && fwrite(buf, 1, len, o->f) != len) {
		int ret = errno ? -errno : -EIO;

		gen_err("%s: write failed: %s", o->tmp, strerror(-ret));
		return ret;
	}
	return 0;
}

/* Closes @o; renames it into place when @ok, else removes it. */
static int out_close(struct out_file *o, bool ok)
{
	int ret = 0;

	if (fclose(o->f) && ok) {
		ret = -errno;
		gen_err("%s: write failed: %s", o->tmp, strerror(-ret));
	} else if (ok && rename(o->tmp, o->path)) {
		ret = -errno;
		gen_err("%s: cannot rename to %s: %s", o->tmp, o->path,
			strerror(-ret));
	}
	if (!ok || ret)
		unlink(o->tmp);
	return ok ? ret : 0;
}

static int write_file(const char *dir, const char *name, const void *buf,
		      size_t len)
{
	struct out_file o;
	int ret;

	ret = out_open(&o, dir, name);
	if (ret)
		return ret;
	ret = out_write(&o, buf, len);
	if (ret) {
		out_close(&o, false);
		return ret;
	}
	return out_close(&o, true);
}

static int write_sbuf(const char *dir, const char *name, struct sbuf *b)
{
	return write_file(dir, name, b->s, b->len);
}

/* Where a tensor's value stream stands between chunks. */
struct fill_state {
	struct gauss rng;
	uint64_t i;		/* index of the next element */
	uint64_t col;		/* its column (realistic weights) */
	uint64_t skip;		/* next outlier's index in the next chunk */
	float row_scale;
};

/* Generates the next @k values of @t as floats. */
static void fill_chunk(const struct gen *g, const struct tensor *t,
		       struct fill_state *s, float *v, size_t k)
{
	uint64_t n = t->bytes / dtypes[t->dtype].size;
	uint64_t cols = t->ndim == 2 ? t->shape[1] : 0;
	size_t j;

	switch (t->fill) {
	case FILL_WEIGHT:
		if (!g->cfg->realistic || !cols) {
			for (j = 0; j < k; j++)
				v[j] = 0.02f * gauss_next(&s->rng);
			break;
		}
		for (j = 0; j < k; j++) {
			/* Rows differ in scale, as trained weights do. */
			if (s->col == 0)
				s->row_scale = 0.02f *
					expf(0.25f * gauss_next(&s->rng));
			if (++s->col == cols)
				s->col = 0;
			v[j] = s->row_scale * gauss_next(&s->rng);
		}
		/* About one weight in 2048 is an outlier. */
		for (j = s->skip; j < k;
		     j += 1 + (splitmix64(&s->rng.state) >> 52))
			v[j] *= 8.0f;
		s->skip = j - k;
		break;
	case FILL_NORM:
		for (j = 0; j < k; j++)
			v[j] = 1.0f + 0.02f * gauss_next(&s->rng);
		break;
	case FILL_POS:
		for (j = 0; j < k; j++)
			v[j] = (float)(s->i + j);
		break;
	case FILL_MASK:
		for (j = 0; j < k; j++)
			v[j] = (s->i + j) * 5 < n * 3 ? 1.0f : 0.0f;
		break;
	}
	s->i += k;
}

static void convert_chunk(uint8_t *p, const float *v, size_t k,
			  enum gen_dtype dt)
{
	size_t j;

	switch (dt) {
	case DT_F32:
		for (j = 0; j < k; j++)
			nwc_put_lef32(p + 4 * j, v[j]);
		break;
	case DT_BF16:
		for (j = 0; j < k; j++)
			nwc_put_le16(p + 2 * j, nwc_f32_to_bf16(v[j]));
		break;
	case DT_F16:
		for (j = 0; j < k; j++)
			nwc_put_le16(p + 2 * j, nwc_f32_to_f16(v[j]));
		break;
	case DT_I64:
		for (j = 0; j < k; j++)
			nwc_put_le64(p + 8 * j, (uint64_t)(int64_t)v[j]);
		break;
	case DT_U8:
		for (j = 0; j < k; j++)
			p[j] = (uint8_t)v[j];
		break;
	}
}

/* Streams one tensor's values in chunks through @vals and @buf. */
static int write_tensor_data(const struct gen *g, const struct tensor *t,
			     struct out_file *o, float *vals, uint8_t *buf)
{
	unsigned es = dtypes[t->dtype].size;
	uint64_t n = t->bytes / es;
	struct fill_state s = { .skip = 1000 };
	int ret;

	gauss_init(&s.rng, g->seed, t->name);
	while (s.i < n) {
		size_t k = (size_t)NWC_MIN(n - s.i, (uint64_t)CHUNK_ELEMS);

		fill_chunk(g, t, &s, vals, k);
		convert_chunk(buf, vals, k, t->dtype);
		ret = out_write(o, buf, k * es);
		if (ret)
			return ret;
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	const struct tensor *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* The header as the safetensors library writes it: padded to 8 bytes. */
static int shard_header(struct tensor **ts, size_t n, struct sbuf *h)
{
	int ret;

	/* Eight bytes of room for the length word, filled in at the end. */
	ret = sbuf_printf(h, "12345678{\"__metadata__\":{%s}",
			  "\"format\":\"pt\"");
	for (size_t i = 0; i < n && !ret; i++) {
		const struct tensor *t = ts[i];

		ret = sbuf_printf(h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
				  t->name, dtypes[t->dtype].name);
		for (unsigned d = 0; d < t->ndim && !ret; d++)
			ret = sbuf_printf(h, "%s%" PRIu64, d ? "," : "",
					  t->shape[d]);
		if (!ret)
			ret = sbuf_printf(h, "],\"data_offsets\":[%" PRIu64
					  ",%" PRIu64 "]}", t->begin,
					  t->begin + t->bytes);
	}
	if (!ret)
		ret = sbuf_printf(h, "}");
	while (!ret && h->len % 8)
		ret = sbuf_printf(h, " ");
	if (!ret)
		nwc_put_le64(h->s, h->len - 8);
	return ret;
}

static int write_shard(struct gen *g, unsigned shard, const char *name)
{
	struct tensor *ts[MAX_TENSORS];
	struct sbuf h = { 0 };
	struct out_file o;
	uint8_t *buf;
	float *vals;
	uint64_t off = 0;
	size_t n = 0;
	int ret;

	for (size_t i = 0; i < g->n; i++)
		if (g->t[i].shard == shard)
			ts[n++] = &g->t[i];
	qsort(ts, n, sizeof(ts[0]), cmp_names);
	for (size_t i = 0; i < n; i++) {
		ts[i]->begin = off;
		off += ts[i]->bytes;
	}
	buf = malloc(CHUNK_ELEMS * 8);
	vals = malloc(CHUNK_ELEMS * sizeof(*vals));
	if (!buf || !vals) {
		ret = -ENOMEM;
		goto out_free_buf;
	}
	ret = shard_header(ts, n, &h);
	if (ret)
		goto out_free_buf;
	ret = out_open(&o, g->dir, name);
	if (ret)
		goto out_free_buf;
	ret = out_write(&o, h.s, h.len);
	for (size_t i = 0; i < n && !ret; i++)
		ret = write_tensor_data(g, ts[i], &o, vals, buf);
	if (ret)
		out_close(&o, false);
	else
		ret = out_close(&o, true);
out_free_buf:
	free(h.s);
	free(vals);
	free(buf);
	return ret;
}

static void add_tensor(struct gen *g, enum gen_dtype dt, enum gen_fill fill,
		       uint64_t d0, uint64_t d1, const char *fmt, ...)
	NWC_PRINTF(6, 7);

/* A [d0, d1] tensor, or [d0] when @d1 is 0. */
static void add_tensor(struct gen *g, enum gen_dtype dt, enum gen_fill fill,
		       uint64_t d0, uint64_t d1, const char *fmt, ...)
{
	struct tensor *t = &g->t[g->n++];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->name, sizeof(t->name), fmt, ap);
	va_end(ap);
	t->dtype = dt;
	t->fill = fill;
	t->ndim = d1 ? 2 : 1;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->bytes = d0 * (d1 ? d1 : 1) * dtypes[dt].size;
}

/* The tensors in checkpoint order, assigned to shards of similar size. */
static void build_tensors(struct gen *g)
{
	const struct model_cfg *c = g->cfg;
	uint64_t kv = (uint64_t)c->dim / c->heads * c->kv_heads;
	uint64_t total = 0, cum = 0;
	enum gen_dtype w = g->dtype;

	add_tensor(g, w, FILL_WEIGHT, c->vocab, c->dim,
		   "model.embed_tokens.weight");
	for (unsigned l = 0; l < c->layers; l++) {
		static const char *const attn[] = { "q", "k", "v", "o" };

		for (unsigned i = 0; i < 4; i++)
			add_tensor(g, w, FILL_WEIGHT,
				   i == 1 || i == 2 ? kv : c->dim, c->dim,
				   "model.layers.%u.self_attn.%s_proj.weight",
				   l, attn[i]);
		add_tensor(g, w, FILL_WEIGHT, c->hidden, c->dim,
			   "model.layers.%u.mlp.gate_proj.weight", l);
		add_tensor(g, w, FILL_WEIGHT, c->hidden, c->dim,
			   "model.layers.%u.mlp.up_proj.weight", l);
		add_tensor(g, w, FILL_WEIGHT, c->dim, c->hidden,
			   "model.layers.%u.mlp.down_proj.weight", l);
		add_tensor(g, DT_F32, FILL_NORM, c->dim, 0,
			   "model.layers.%u.input_layernorm.weight", l);
		add_tensor(g, DT_F32, FILL_NORM, c->dim, 0,
			   "model.layers.%u.post_attention_layernorm.weight",
			   l);
	}
	add_tensor(g, DT_F32, FILL_NORM, c->dim, 0, "model.norm.weight");
	add_tensor(g, w, FILL_WEIGHT, c->vocab, c->dim, "lm_head.weight");
	if (c->extras) {
		add_tensor(g, DT_I64, FILL_POS, 1, 7, "position_ids");
		add_tensor(g, DT_U8, FILL_MASK, 5, 0, "mask");
	}
	for (size_t i = 0; i < g->n; i++)
		total += g->t[i].bytes;
	for (size_t i = 0; i < g->n; i++) {
		uint64_t mid = cum + g->t[i].bytes / 2;

		g->t[i].shard = (unsigned)NWC_MIN(mid * c->shards / total,
						  (uint64_t)c->shards - 1);
		cum += g->t[i].bytes;
	}
}

static int write_weights(struct gen *g)
{
	struct sbuf idx = { 0 };
	struct tensor *ts[MAX_TENSORS];
	char names[8][64];
	uint64_t total = 0;
	int ret = 0;

	if (g->cfg->shards == 1)
		return write_shard(g, 0, "model.safetensors");
	for (unsigned s = 0; s < g->cfg->shards; s++) {
		snprintf(names[s], sizeof(names[s]),
			 "model-%05u-of-%05u.safetensors", s + 1,
			 g->cfg->shards);
		ret = write_shard(g, s, names[s]);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < g->n; i++) {
		ts[i] = &g->t[i];
		total += g->t[i].bytes;
	}
	qsort(ts, g->n, sizeof(ts[0]), cmp_names);
	ret = sbuf_printf(&idx, "{\n  \"metadata\": {\n    \"total_size\": %"
			  PRIu64 "\n  },\n  \"weight_map\": {\n", total);
	for (size_t i = 0; i < g->n && !ret; i++)
		ret = sbuf_printf(&idx, "    \"%s\": \"%s\"%s\n", ts[i]->name,
				  names[ts[i]->shard],
				  i + 1 < g->n ? "," : "");
	if (!ret)
		ret = sbuf_printf(&idx, "  }\n}\n");
	if (!ret)
		ret = write_sbuf(g->dir, "model.safetensors.index.json", &idx);
	free(idx.s);
	return ret;
}

/* A pronounceable, unique token for each id, so the vocab reads as text. */
static int token_text(struct sbuf *b, unsigned id)
{
	static const char cons[] = "bdfgklmnprstvz", vow[] = "aeiou";
	int ret = 0;

	id -= 3;
	do {
		unsigned s = id % 70;

		ret = sbuf_printf(b, "%c%c", cons[s / 5], vow[s % 5]);
		id /= 70;
	} while (id && !ret);
	return ret;
}

static int write_json_files(struct gen *g)
{
	static const char *const special[] = { "<unk>", "<s>", "</s>" };
	const struct model_cfg *c = g->cfg;
	struct sbuf b = { 0 };
	int ret;

	ret = sbuf_printf(&b,
		"{\n"
		"  \"architectures\": [\"LlamaForCausalLM\"],\n"
		"  \"model_type\": \"llama\",\n"
		"  \"hidden_size\": %u,\n"
		"  \"intermediate_size\": %u,\n"
		"  \"num_attention_heads\": %u,\n"
		"  \"num_key_value_heads\": %u,\n"
		"  \"num_hidden_layers\": %u,\n"
		"  \"vocab_size\": %u,\n"
		"  \"max_position_embeddings\": 2048,\n"
		"  \"hidden_act\": \"silu\",\n"
		"  \"rms_norm_eps\": 1e-05,\n"
		"  \"rope_theta\": 10000.0,\n"
		"  \"tie_word_embeddings\": false,\n"
		"  \"bos_token_id\": 1,\n"
		"  \"eos_token_id\": 2,\n"
		"  \"torch_dtype\": \"%s\"\n"
		"}\n", c->dim, c->hidden, c->heads, c->kv_heads, c->layers,
		c->vocab, dtypes[g->dtype].torch);
	if (!ret)
		ret = write_sbuf(g->dir, "config.json", &b);
	b.len = 0;
	if (!ret)
		ret = sbuf_printf(&b,
			"{\n"
			"  \"bos_token_id\": 1,\n"
			"  \"eos_token_id\": 2,\n"
			"  \"max_length\": 2048\n"
			"}\n");
	if (!ret)
		ret = write_sbuf(g->dir, "generation_config.json", &b);
	b.len = 0;
	if (!ret)
		ret = sbuf_printf(&b, "{\n  \"version\": \"1.0\",\n"
				  "  \"added_tokens\": [");
	for (unsigned i = 0; i < 3 && !ret; i++)
		ret = sbuf_printf(&b, "%s\n    {\"id\": %u, "
				  "\"content\": \"%s\", "
				  "\"single_word\": false, \"lstrip\": false, "
				  "\"rstrip\": false, \"normalized\": false, "
				  "\"special\": true}", i ? "," : "", i,
				  special[i]);
	if (!ret)
		ret = sbuf_printf(&b, "\n  ],\n"
				  "  \"pre_tokenizer\": "
				  "{\"type\": \"Whitespace\"},\n"
				  "  \"model\": {\n"
				  "    \"type\": \"WordLevel\",\n"
				  "    \"unk_token\": \"<unk>\",\n"
				  "    \"vocab\": {");
	for (unsigned i = 0; i < c->vocab && !ret; i++) {
		ret = sbuf_printf(&b, "%s\n      \"", i ? "," : "");
		if (!ret)
			ret = i < 3 ? sbuf_printf(&b, "%s", special[i]) :
				      token_text(&b, i);
		if (!ret)
			ret = sbuf_printf(&b, "\": %u", i);
	}
	if (!ret)
		ret = sbuf_printf(&b, "\n    }\n  }\n}\n");
	if (!ret)
		ret = write_sbuf(g->dir, "tokenizer.json", &b);
	b.len = 0;
	if (!ret)
		ret = sbuf_printf(&b,
			"# Synthetic Llama-like test model\n\n"
			"Written by `tests/gen_model` of nwcfs "
			"(size %s, dtype %s, seed %" PRIu64 ").\n"
			"The weights are random numbers: this is not a trained "
			"model.\n", c->size, dtypes[g->dtype].name, g->seed);
	if (!ret)
		ret = write_sbuf(g->dir, "README.md", &b);
	free(b.s);
	return ret;
}

/* extra/: a binary file, an empty file and a symlink to ../config.json. */
static int write_extra(struct gen *g)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 16], link[PATH_MAX + 8];
	uint64_t s = g->seed ^ 0x5eedull;
	uint8_t blob[3000];
	int ret;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/extra", g->dir) >=
	    sizeof(dir)) {
		gen_err("%s/extra: path too long", g->dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0755)) {
		ret = -errno;
		gen_err("%s: cannot create directory: %s", dir, strerror(-ret));
		return ret;
	}
	/* Random bytes with a run of zeros in the middle. */
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = i >= 1000 && i < 1500 ? 0 :
			  (uint8_t)splitmix64(&s);
	ret = write_file(dir, "data.bin", blob, sizeof(blob));
	if (!ret)
		ret = write_file(dir, "empty.bin", NULL, 0);
	if (ret)
		return ret;
	snprintf(tmp, sizeof(tmp), "%s/.link.tmp", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	if (symlink("../config.json", tmp) || rename(tmp, link)) {
		ret = -errno;
		gen_err("%s: cannot create symlink: %s", link, strerror(-ret));
		unlink(tmp);
		return ret;
	}
	return 0;
}

/* Creates @dir, or accepts it if it is an empty directory. */
static int make_out_dir(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (!mkdir(dir, 0755))
		return 0;
	if (errno != EEXIST) {
		ret = -errno;
		gen_err("%s: cannot create directory: %s", dir, strerror(-ret));
		return ret;
	}
	d = opendir(dir);
	if (!d) {
		ret = -errno;
		gen_err("%s: exists and cannot be opened as a directory: %s",
			dir, strerror(-ret));
		return ret;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			gen_err("%s: exists and is not empty", dir);
			ret = -EEXIST;
			break;
		}
	}
	closedir(d);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [--seed N] [--dtype F32|BF16|F16] "
		"[--size tiny|1g|100m|500m|2g] OUTDIR\n"
		"Write a synthetic Llama-like model directory to OUTDIR\n"
		"(created; if it exists it must be empty).\n"
		"Same options, same bytes.\n"
		"  --seed N     PRNG seed (default 1)\n"
		"  --dtype T    dtype of the weight matrices (default BF16);\n"
		"               norms stay F32\n"
		"  --size S     tiny: one small model.safetensors (default);\n"
		"               1g: about 1 GiB of BF16 weights in 4 shards;\n"
		"               100m, 500m, 2g: 0.1, 0.5 and 2 GB in real\n"
		"               shapes, in 1, 2 and 8 shards\n");
}

static int parse_args(int argc, char **argv, struct gen *g)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "dtype", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	g->seed = 1;
	g->dtype = DT_BF16;
	g->cfg = &model_cfgs[0];
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		size_t i;

		switch (c) {
		case 's':
			errno = 0;
			g->seed = strtoull(optarg, &end, 0);
			if (errno || *end || *optarg < '0' || *optarg > '9') {
				gen_err("--seed: '%s' is not an unsigned 64-bit number",
					optarg);
				return -EINVAL;
			}
			break;
		case 'd':
			for (i = DT_F32; i <= DT_F16; i++)
				if (!strcmp(optarg, dtypes[i].name))
					break;
			if (i > DT_F16) {
				gen_err("--dtype: unknown dtype '%s' (use F32, BF16 or F16)",
					optarg);
				return -EINVAL;
			}
			g->dtype = (enum gen_dtype)i;
			break;
		case 'z':
			for (i = 0; i < NWC_ARRAY_SIZE(model_cfgs); i++)
				if (!strcmp(optarg, model_cfgs[i].size))
					break;
			if (i == NWC_ARRAY_SIZE(model_cfgs)) {
				gen_err("--size: unknown size '%s' (use tiny, 1g, 100m, 500m or 2g)",
					optarg);
				return -EINVAL;
			}
			g->cfg = &model_cfgs[i];
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -EINVAL;
	}
	g->dir = argv[optind];
	return 0;
}

int main(int argc, char **argv)
{
	static struct gen g;
	int ret;

	if (parse_args(argc, argv, &g))
		return 2;
	build_tensors(&g);
	zig_init();
	ret = make_out_dir(g.dir);
	if (!ret)
		ret = write_json_files(&g);
	if (!ret)
		ret = write_extra(&g);
	if (!ret)
		ret = write_weights(&g);
	if (ret == -ENOMEM)
		gen_err("out of memory");
	return ret ? 1 : 0;
}
