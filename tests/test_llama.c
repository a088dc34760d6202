/* SPDX-License-Identifier: MIT */
/* test_llama.c - the Llama forward on tiny generated models vs llama_ref.py. */
#include "codec/common/base.h"

#include <inttypes.h>
#include <math.h>
#include <sys/stat.h>

#include "codec/common/convert.h"
#include "mkfs/llm/llama.h"
#include "tests/t.h"

struct golden_case {
	const char *name;
	const char *config;		/* config.json */
	uint32_t hidden, inter, layers, heads, kv_heads, head_dim, vocab;
	bool tied, qkv_bias, o_bias, bf16, qk_norm;
	uint64_t seed;			/* weights; seed + 1000: tokens */
	const uint32_t *tok;		/* GOLDEN_NTOK tokens */
	double nll_full, nll_ctx, nll_max;	/* default ctx, GOLDEN_CTX,
						 * GOLDEN_MAX_TOKENS */
	uint64_t count_full, count_ctx, count_max;
	const float *h;			/* every H in calib order, or NULL */
	size_t h_len;
};

#include "tests/golden_llama.h"

#define REGEN "python3 tests/llama_ref.py golden > tests/golden_llama.h"
#define MAX_TENSORS 64
#define SHARD0 "model-00001-of-00002.safetensors"
#define SHARD1 "model-00002-of-00002.safetensors"

struct tensor {
	char name[80];
	uint32_t shape[2];
	unsigned ndim;
	float scale, offset;	/* value = offset + scale * uniform[-1, 1) */
};

/* The weights in the order llama_ref.py's tensor_list() fills them. */
static size_t tensor_list(const struct golden_case *g, struct tensor *t)
{
	const uint32_t h = g->hidden, q = g->heads * g->head_dim;
	const uint32_t kv = g->kv_heads * g->head_dim;
	size_t n = 0;

#define ADD(sc, off, d0, d1, ...) do {					\
	snprintf(t[n].name, sizeof(t[n].name), __VA_ARGS__);		\
	t[n].shape[0] = (d0);						\
	t[n].shape[1] = (d1);						\
	t[n].ndim = (d1) ? 2 : 1;					\
	t[n].scale = (sc);						\
	t[n].offset = (off);						\
	n++;								\
} while (0)
	ADD(1.0f, 0, g->vocab, h, "model.embed_tokens.weight");
	for (uint32_t l = 0; l < g->layers; l++) {
		static const char xs[] = "qkv";

		ADD(0.25f, 1, h, 0, "model.layers.%u.input_layernorm.weight", l);
		for (int i = 0; i < 3; i++) {
			uint32_t rows = i ? kv : q;

			ADD(0.5f, 0, rows, h,
			    "model.layers.%u.self_attn.%c_proj.weight", l, xs[i]);
			if (g->qkv_bias)
				ADD(0.25f, 0, rows, 0,
				    "model.layers.%u.self_attn.%c_proj.bias", l,
				    xs[i]);
		}
		if (g->qk_norm) {
			ADD(0.25f, 1, g->head_dim, 0,
			    "model.layers.%u.self_attn.q_norm.weight", l);
			ADD(0.25f, 1, g->head_dim, 0,
			    "model.layers.%u.self_attn.k_norm.weight", l);
		}
		ADD(0.5f, 0, h, q, "model.layers.%u.self_attn.o_proj.weight", l);
		if (g->o_bias)
			ADD(0.25f, 0, h, 0,
			    "model.layers.%u.self_attn.o_proj.bias", l);
		ADD(0.25f, 1, h, 0,
		    "model.layers.%u.post_attention_layernorm.weight", l);
		ADD(0.5f, 0, g->inter, h, "model.layers.%u.mlp.gate_proj.weight", l);
		ADD(0.5f, 0, g->inter, h, "model.layers.%u.mlp.up_proj.weight", l);
		ADD(0.5f, 0, h, g->inter, "model.layers.%u.mlp.down_proj.weight", l);
	}
	ADD(0.25f, 1, h, 0, "model.norm.weight");
	if (!g->tied)
		ADD(1.0f, 0, g->vocab, h, "lm_head.weight");
#undef ADD
	return n;
}

static void write_file(const char *dir, const char *name, const void *buf,
		       size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(99);
	}
}

/* A safetensors file of the tensors of @t whose index % @every == @which. */
static void write_st(const char *dir, const char *name, const struct tensor *t,
		     uint8_t *const *data, const size_t *bytes, size_t n,
		     size_t every, size_t which, bool bf16)
{
	size_t cap = 64 + n * 160, hl = 0, off = 0, total = 0;
	char *hdr = t_xmalloc(cap);
	uint8_t *buf;

	hl += (size_t)snprintf(hdr + hl, cap - hl, "{");
	for (size_t i = which; i < n; i += every) {
		hl += (size_t)snprintf(hdr + hl, cap - hl,
			"%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%u",
			hl > 1 ? "," : "", t[i].name, bf16 ? "BF16" : "F32",
			t[i].shape[0]);
		if (t[i].ndim == 2)
			hl += (size_t)snprintf(hdr + hl, cap - hl, ",%u",
					       t[i].shape[1]);
		hl += (size_t)snprintf(hdr + hl, cap - hl,
				       "],\"data_offsets\":[%zu,%zu]}", off,
				       off + bytes[i]);
		off += bytes[i];
	}
	hl += (size_t)snprintf(hdr + hl, cap - hl, "}");
	total = 8 + hl + off;
	buf = t_xmalloc(total);
	nwc_put_le64(buf, hl);
	memcpy(buf + 8, hdr, hl);
	off = 8 + hl;
	for (size_t i = which; i < n; i += every) {
		memcpy(buf + off, data[i], bytes[i]);
		off += bytes[i];
	}
	write_file(dir, name, buf, total);
	free(buf);
	free(hdr);
}

/*
 * Writes case @g into @dir: config.json (@config if not NULL) and the
 * weights, in one file or in two shards with an index and a stray file
 * that the index must hide.
 */
static void write_model(const char *dir, const struct golden_case *g,
			const char *config, bool sharded)
{
	struct tensor t[MAX_TENSORS];
	uint8_t *data[MAX_TENSORS];
	size_t bytes[MAX_TENSORS];
	uint64_t rng = g->seed;
	size_t n = tensor_list(g, t);
	char index[8192];
	size_t il = 0;

	for (size_t i = 0; i < n; i++) {
		size_t cnt = (size_t)t[i].shape[0] *
			     (t[i].ndim == 2 ? t[i].shape[1] : 1);

		bytes[i] = cnt * (g->bf16 ? 2 : 4);
		data[i] = t_xmalloc(bytes[i]);
		for (size_t k = 0; k < cnt; k++) {
			double u = (double)(t_rand(&rng) >> 40) * 0x1p-23 - 1.0;
			float v = (float)(t[i].offset + t[i].scale * u);

			if (g->bf16)
				nwc_put_le16(data[i] + 2 * k,
					     nwc_f32_to_bf16(v));
			else
				nwc_put_lef32(data[i] + 4 * k, v);
		}
	}
	config = config ? config : g->config;
	write_file(dir, "config.json", config, strlen(config));
	if (!sharded) {
		write_st(dir, "model.safetensors", t, data, bytes, n, 1, 0,
			 g->bf16);
	} else {
		write_st(dir, SHARD0, t, data, bytes, n, 2, 0, g->bf16);
		write_st(dir, SHARD1, t, data, bytes, n, 2, 1, g->bf16);
		write_file(dir, "stray.safetensors", "junk", 4);
		il += (size_t)snprintf(index + il, sizeof(index) - il,
				       "{\"metadata\": {}, \"weight_map\": {");
		for (size_t i = 0; i < n; i++)
			il += (size_t)snprintf(index + il, sizeof(index) - il,
					       "%s\"%s\": \"%s\"",
					       i ? ", " : "", t[i].name,
					       i % 2 ? SHARD1 : SHARD0);
		il += (size_t)snprintf(index + il, sizeof(index) - il, "}}");
		write_file(dir, "model.safetensors.index.json", index, il);
	}
	for (size_t i = 0; i < n; i++)
		free(data[i]);
}

static char tmpdir[256];

static void clean_dir(void)
{
	static const char *const files[] = {
		"config.json", "model.safetensors", SHARD0, SHARD1,
		"stray.safetensors", "model.safetensors.index.json",
	};
	char path[512];

	for (size_t i = 0; i < NWC_ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
}

static struct nwc_llama *open_case(const struct golden_case *g,
				   const char *config, bool sharded)
{
	struct nwc_llama *m = NULL;
	int ret;

	clean_dir();
	write_model(tmpdir, g, config, sharded);
	ret = nwc_llama_open(tmpdir, &m);
	if (ret)
		fprintf(stderr, "%s: nwc_llama_open: %s\n", g->name,
			nwc_strerror(ret));
	T_EQ(ret, 0);
	return m;
}

static bool close_rel(double got, double want, double tol)
{
	return fabs(got - want) <= tol * fabs(want);
}

static void check_eval(const struct golden_case *g, const struct nwc_llama *m,
		       const struct nwc_llama_opts *o, double nll,
		       uint64_t count, uint64_t tokens)
{
	struct nwc_llama_eval ev;

	T_EQ(nwc_llama_eval(m, g->tok, GOLDEN_NTOK, o, &ev), 0);
	T_EQ(ev.count, count);
	T_EQ(ev.tokens, tokens);
	if (!close_rel(ev.nll, nll, 1e-5)) {
		fprintf(stderr, "%s (ctx %u, max %" PRIu64 "): nll %.9g, reference %.9g; if the reference changed: " REGEN "\n",
			g->name, o->ctx, o->max_tokens, ev.nll, nll);
		t_failed++;
	}
}

/* Every case, default context, short windows and a token limit. */
static void test_eval(void)
{
	for (size_t c = 0; c < NWC_ARRAY_SIZE(golden_cases); c++) {
		const struct golden_case *g = &golden_cases[c];
		const struct nwc_llama_config *cfg;
		struct nwc_llama_opts o = { .threads = 1 };
		struct nwc_llama *m = open_case(g, NULL, c == 1);

		if (!m)
			continue;
		cfg = nwc_llama_config(m);
		T_EQ(cfg->head_dim, g->head_dim);
		T_EQ(cfg->kv_heads, g->kv_heads);
		T_EQ(cfg->tied, g->tied);
		T_EQ(cfg->qkv_bias, g->qkv_bias);
		T_EQ(cfg->o_bias, g->o_bias);
		T_EQ(cfg->sliding_window, strstr(g->config, "sliding") ? 3 : 0);
		check_eval(g, m, &o, g->nll_full, g->count_full, GOLDEN_NTOK);
		o.ctx = GOLDEN_CTX;
		check_eval(g, m, &o, g->nll_ctx, g->count_ctx, GOLDEN_NTOK);
		o.ctx = 0;
		o.max_tokens = GOLDEN_MAX_TOKENS;
		check_eval(g, m, &o, g->nll_max, g->count_max,
			   GOLDEN_MAX_TOKENS);
		nwc_llama_free(m);
	}
}

/* H against the reference, exactly symmetric, with the right names. */
static void test_calib(void)
{
	for (size_t c = 0; c < NWC_ARRAY_SIZE(golden_cases); c++) {
		const struct golden_case *g = &golden_cases[c];
		struct nwc_llama_opts o = { .threads = 2 };
		struct nwc_llama_calib *cb = NULL;
		struct nwc_llama *m;
		size_t pos = 0;

		if (!g->h)
			continue;
		m = open_case(g, NULL, false);
		if (!m)
			continue;
		T_EQ(nwc_llama_calib(m, g->tok, GOLDEN_NTOK, &o, &cb), 0);
		if (!cb) {
			nwc_llama_free(m);
			continue;
		}
		T_EQ(cb->tokens, GOLDEN_NTOK);
		T_EQ(cb->n, 4 * g->layers + !g->tied);
		T_CHECK(!strcmp(cb->in[0].weights[0],
				"model.layers.0.self_attn.q_proj.weight"));
		T_CHECK(!strcmp(cb->in[0].weights[2],
				"model.layers.0.self_attn.v_proj.weight"));
		T_CHECK(!strcmp(cb->in[2].weights[1],
				"model.layers.0.mlp.up_proj.weight"));
		T_EQ(cb->in[1].n_in, g->heads * g->head_dim);
		T_EQ(cb->in[3].n_in, g->inter);
		T_EQ(cb->in[0].n_weights + cb->in[1].n_weights +
		     cb->in[2].n_weights + cb->in[3].n_weights, 7);
		if (!g->tied)
			T_CHECK(!strcmp(cb->in[cb->n - 1].weights[0],
					"lm_head.weight"));
		for (size_t k = 0; k < cb->n; k++) {
			const struct nwc_llama_h *in = &cb->in[k];
			size_t nn = (size_t)in->n_in * in->n_in;
			double mx = 0, err = 0;

			if (pos + nn > g->h_len)
				break;
			for (size_t i = 0; i < nn; i++) {
				mx = fmax(mx, fabs(g->h[pos + i]));
				err = fmax(err, fabs(in->h[i] - g->h[pos + i]));
			}
			for (uint32_t i = 0; i < in->n_in; i++)
				for (uint32_t j = 0; j < i; j++)
					T_CHECK(in->h[i * in->n_in + j] ==
						in->h[j * in->n_in + i]);
			if (!(err <= 1e-5 * mx)) {
				fprintf(stderr, "%s: H of %s: max error %g, max |H| %g\n",
					g->name, in->weights[0], err, mx);
				t_failed++;
			}
			pos += nn;
		}
		T_EQ(pos, g->h_len);
		nwc_llama_calib_free(cb);
		nwc_llama_free(m);
	}
}

/* 1 and 3 threads give the same bits, eval and calib, over many windows. */
static void test_threads(void)
{
	const struct golden_case *g = &golden_cases[1];
	struct nwc_llama_opts o1 = { .threads = 1, .ctx = GOLDEN_CTX };
	struct nwc_llama_opts o3 = { .threads = 3, .ctx = GOLDEN_CTX };
	struct nwc_llama_calib *c1 = NULL, *c3 = NULL;
	struct nwc_llama_eval e1, e3;
	uint32_t tok[10 * GOLDEN_NTOK];
	struct nwc_llama *m;

	for (size_t i = 0; i < NWC_ARRAY_SIZE(tok); i++)
		tok[i] = g->tok[(i * 7) % GOLDEN_NTOK];
	m = open_case(g, NULL, false);
	if (!m)
		return;
	T_EQ(nwc_llama_eval(m, tok, NWC_ARRAY_SIZE(tok), &o1, &e1), 0);
	T_EQ(nwc_llama_eval(m, tok, NWC_ARRAY_SIZE(tok), &o3, &e3), 0);
	T_MEMEQ(&e1.nll, &e3.nll, sizeof(e1.nll));
	T_EQ(e1.count, e3.count);
	T_CHECK(e1.count > 300);
	T_EQ(nwc_llama_calib(m, tok, NWC_ARRAY_SIZE(tok), &o1, &c1), 0);
	T_EQ(nwc_llama_calib(m, tok, NWC_ARRAY_SIZE(tok), &o3, &c3), 0);
	if (c1 && c3) {
		T_EQ(c1->n, c3->n);
		for (size_t k = 0; k < c1->n && k < c3->n; k++)
			T_MEMEQ(c1->in[k].h, c3->in[k].h,
				(size_t)c1->in[k].n_in * c1->in[k].n_in *
				sizeof(float));
	}
	nwc_llama_calib_free(c1);
	nwc_llama_calib_free(c3);
	nwc_llama_free(m);
}

/* The inputs a stream hands over, copied for comparison. */
struct sunk {
	struct nwc_llama_h in[64];
	size_t n;
};

static int sink_copy(void *arg, const struct nwc_llama_h *h)
{
	struct sunk *s = arg;
	struct nwc_llama_h *c;
	size_t nn = (size_t)h->n_in * h->n_in;

	if (s->n == NWC_ARRAY_SIZE(s->in))
		return -E2BIG;
	c = &s->in[s->n++];
	*c = *h;
	c->h = t_xmalloc(nn * sizeof(float));
	memcpy(c->h, h->h, nn * sizeof(float));
	for (unsigned w = 0; w < h->n_weights; w++)
		c->weights[w] = strdup(h->weights[w]);
	return 0;
}

static void sunk_free(struct sunk *s)
{
	for (size_t k = 0; k < s->n; k++) {
		free(s->in[k].h);
		for (unsigned w = 0; w < s->in[k].n_weights; w++)
			free(s->in[k].weights[w]);
	}
	s->n = 0;
}

static int sink_fail(void *arg, const struct nwc_llama_h *h)
{
	(void)h;
	return --*(int *)arg ? 0 : -EIO;
}

/*
 * The layer-by-layer stream gives what the whole-model run gives, bit for
 * bit and in the same order, for every case (one file and sharded), on 1
 * and 3 threads over many windows; a sink's error stops it.
 */
static void test_stream(void)
{
	uint32_t tok[6 * GOLDEN_NTOK];

	for (size_t c = 0; c < NWC_ARRAY_SIZE(golden_cases); c++) {
		const struct golden_case *g = &golden_cases[c];
		struct nwc_llama_calib *cb = NULL;
		struct nwc_llama *m;

		for (size_t i = 0; i < NWC_ARRAY_SIZE(tok); i++)
			tok[i] = g->tok[(i * 5) % GOLDEN_NTOK];
		m = open_case(g, NULL, c % 2);
		if (!m)
			continue;
		for (unsigned th = 1; th <= 3; th += 2) {
			struct nwc_llama_opts o = { .threads = th,
						    .ctx = GOLDEN_CTX };
			struct sunk s = { .n = 0 };
			uint64_t tokens = 0;

			T_EQ(nwc_llama_calib(m, tok, NWC_ARRAY_SIZE(tok), &o,
					     &cb), 0);
			T_EQ(nwc_llama_calib_stream(tmpdir, tok,
						    NWC_ARRAY_SIZE(tok), &o,
						    sink_copy, NULL, &s,
						    &tokens), 0);
			T_EQ(tokens, NWC_ARRAY_SIZE(tok));
			T_EQ(s.n, cb ? cb->n : 0);
			for (size_t k = 0; cb && k < s.n && k < cb->n; k++) {
				T_EQ(s.in[k].n_in, cb->in[k].n_in);
				T_EQ(s.in[k].n_weights, cb->in[k].n_weights);
				T_CHECK(!strcmp(s.in[k].weights[0],
						cb->in[k].weights[0]));
				T_MEMEQ(s.in[k].h, cb->in[k].h,
					(size_t)s.in[k].n_in * s.in[k].n_in *
					sizeof(float));
			}
			sunk_free(&s);
			nwc_llama_calib_free(cb);
			cb = NULL;
		}
		nwc_llama_free(m);
	}
	{
		struct nwc_llama_opts o = { .threads = 2 };
		uint64_t tokens = 0;
		int left = 3;

		T_EQ(nwc_llama_calib_stream(tmpdir, tok, GOLDEN_NTOK, &o,
					    sink_fail, NULL, &left, &tokens),
		     -EIO);
		T_EQ(left, 0);
	}
}

/* Counts the weights it sees; zeroes them when asked. */
struct hooked {
	unsigned calls;
	bool zero;
	char first[96];
};

static int hook_count(void *arg, const char *name, float *w, uint32_t rows,
		      uint32_t cols)
{
	struct hooked *k = arg;

	if (!k->calls++)
		snprintf(k->first, sizeof(k->first), "%s", name);
	if (k->zero)
		memset(w, 0, (size_t)rows * cols * sizeof(*w));
	return 0;
}

static struct sunk *hook_sunk;

static int sink_hooked(void *arg, const struct nwc_llama_h *h)
{
	(void)arg;
	return sink_copy(hook_sunk, h);
}

/*
 * Sequential streams: the hook sees the 7 linear weights of every layer
 * in order; a hook that changes nothing gives the one-pass statistics bit
 * for bit; one that zeroes the weights leaves layer 0's statistics alone
 * and changes every later layer's.
 */
static void test_stream_hook(void)
{
	const struct golden_case *g = &golden_cases[1];	/* 2 layers */
	struct nwc_llama_opts o = { .threads = 2, .ctx = GOLDEN_CTX };
	struct sunk plain = { .n = 0 }, same = { .n = 0 }, zero = { .n = 0 };
	struct hooked k0 = { 0 }, kz = { .zero = true };
	struct nwc_llama *m = open_case(g, NULL, true);
	uint64_t tokens;

	if (!m)
		return;
	nwc_llama_free(m);
	T_EQ(nwc_llama_calib_stream(tmpdir, g->tok, GOLDEN_NTOK, &o,
				    sink_copy, NULL, &plain, &tokens), 0);
	hook_sunk = &same;
	T_EQ(nwc_llama_calib_stream(tmpdir, g->tok, GOLDEN_NTOK, &o,
				    sink_hooked, hook_count, &k0, &tokens), 0);
	hook_sunk = &zero;
	T_EQ(nwc_llama_calib_stream(tmpdir, g->tok, GOLDEN_NTOK, &o,
				    sink_hooked, hook_count, &kz, &tokens), 0);
	T_EQ(k0.calls, 7 * g->layers);
	T_CHECK(!strcmp(k0.first, "model.layers.0.self_attn.q_proj.weight"));
	T_EQ(same.n, plain.n);
	T_EQ(zero.n, plain.n);
	for (size_t i = 0; i < plain.n && i < same.n && i < zero.n; i++) {
		size_t bytes = (size_t)plain.in[i].n_in * plain.in[i].n_in *
			       sizeof(float);

		T_MEMEQ(same.in[i].h, plain.in[i].h, bytes);
		if (i < 4)	/* layer 0: summed before its hook */
			T_MEMEQ(zero.in[i].h, plain.in[i].h, bytes);
		else if (i == 5)	/* layer 1's o_proj input: v was zeroed */
			T_CHECK(memcmp(zero.in[i].h, plain.in[i].h, bytes));
	}
	sunk_free(&plain);
	sunk_free(&same);
	sunk_free(&zero);
}

/*
 * Scale gradients: every weight row scaled by a fixed 1 + 0.05 u (u in
 * [-1, 1), from the row's place), and the probe row by 1 + @d more.
 */
struct scaled {
	const char *probe;	/* weight name, or NULL */
	uint32_t row;
	double d;
};

static int hook_scaled(void *arg, const char *name, float *w, uint32_t rows,
		       uint32_t cols)
{
	const struct scaled *k = arg;
	uint64_t seed = 0;

	for (const char *c = name; *c; c++)
		seed = seed * 131 + (unsigned char)*c;
	for (uint32_t i = 0; i < rows; i++) {
		double f = 1 + 0.05 * ((double)(t_rand(&seed) % 2001) / 1000 -
				       1);

		if (k->probe && !strcmp(name, k->probe) && i == k->row)
			f *= 1 + k->d;
		for (uint32_t j = 0; j < cols; j++)
			w[(size_t)i * cols + j] = (float)(w[(size_t)i * cols + j] *
							  f);
	}
	return 0;
}

#define GRAD_MAX 4096u

struct grads {
	char name[16][96];
	float g[16][GRAD_MAX];
	uint32_t rows[16];
	unsigned n;
};

static int sink_grads(void *arg, const char *name, const float *g,
		      uint32_t rows)
{
	struct grads *k = arg;

	T_CHECK(k->n < 16 && rows <= GRAD_MAX);
	if (k->n >= 16 || rows > GRAD_MAX)
		return -EINVAL;
	snprintf(k->name[k->n], sizeof(k->name[0]), "%s", name);
	memcpy(k->g[k->n], g, rows * sizeof(*g));
	k->rows[k->n++] = rows;
	return 0;
}

/*
 * nwc_llama_scale_grad() against central differences of its own KL, for
 * one row of every weight of every case (biases, GQA, q/k norms, a
 * window, tied and untied heads); the same bits on 1 and 2 threads; KL 0
 * and zero gradients against the model itself.
 */
static void test_scale_grad(void)
{
	for (size_t c = 0; c < NWC_ARRAY_SIZE(golden_cases); c++) {
		const struct golden_case *g = &golden_cases[c];
		struct nwc_llama_opts o1 = { .threads = 1, .ctx = GOLDEN_CTX };
		struct nwc_llama_opts o2 = { .threads = 2, .ctx = GOLDEN_CTX };
		struct grads *a = calloc(3, sizeof(*a)), *b = a + 1, *z = a + 2;
		struct scaled k = { 0 };
		struct nwc_llama *m = open_case(g, NULL, false);
		FILE *spill = tmpfile();
		float *target = NULL;
		double kl, kl2, klz, kp, km;

		if (!m || !a || !spill)
			goto next;
		nwc_llama_free(m);
		T_EQ(nwc_llama_final_rows(tmpdir, g->tok, GOLDEN_NTOK, &o2,
					  &target), 0);
		if (!target)
			goto next;
		T_EQ(nwc_llama_scale_grad(tmpdir, g->tok, GOLDEN_NTOK, &o2,
					  fileno(spill), target, hook_scaled,
					  &k, sink_grads, a, &kl), 0);
		T_EQ(nwc_llama_scale_grad(tmpdir, g->tok, GOLDEN_NTOK, &o1,
					  fileno(spill), target, hook_scaled,
					  &k, sink_grads, b, &kl2), 0);
		T_EQ(nwc_llama_scale_grad(tmpdir, g->tok, GOLDEN_NTOK, &o1,
					  fileno(spill), target, NULL, NULL,
					  sink_grads, z, &klz), 0);
		T_EQ(a->n, 7 * g->layers);
		T_CHECK(kl > 1e-5 && kl == kl2);
		T_CHECK(fabs(klz) < 1e-9);
		T_MEMEQ(a->g, b->g, sizeof(a->g));
		for (unsigned w = 0; w < z->n; w++) {
			float worst = 0;

			for (uint32_t i = 0; i < z->rows[w]; i++)
				worst = fmaxf(worst, fabsf(z->g[w][i]));
			T_CHECK(worst < 1e-6f);
		}
		z->n = 0;
		for (unsigned w = 0; w < a->n; w++) {
			const double eps = 1e-2;
			double fd, an;

			k.probe = a->name[w];
			k.row = (uint32_t)(w * 7 % a->rows[w]);
			k.d = eps;
			nwc_llama_scale_grad(tmpdir, g->tok, GOLDEN_NTOK, &o2,
					     fileno(spill), target,
					     hook_scaled, &k, sink_grads, z,
					     &kp);
			z->n = 0;
			k.d = -eps;
			nwc_llama_scale_grad(tmpdir, g->tok, GOLDEN_NTOK, &o2,
					     fileno(spill), target,
					     hook_scaled, &k, sink_grads, z,
					     &km);
			z->n = 0;
			/* d/dd of KL((1 + d) W_i): the gradient at d = 0 */
			fd = (kp - km) / (2 * eps);
			an = a->g[w][k.row];
			if (fabs(fd - an) > 0.02 * fabs(fd) + 1e-6) {
				fprintf(stderr, "%s: %s row %u: gradient %g, differences %g\n",
					g->name, a->name[w], k.row, an, fd);
				t_failed++;
			}
		}
next:
		free(target);
		if (spill)
			fclose(spill);
		free(a);
	}
}

/* Opens case 0 with "@from" in its config replaced by "@to". */
static int open_edited(const char *from, const char *to)
{
	const struct golden_case *g = &golden_cases[0];
	struct nwc_llama *m = NULL;
	char cfg[2048];
	const char *p = strstr(g->config, from);
	int ret;

	if (!p) {
		fprintf(stderr, "config has no %s\n", from);
		t_failed++;
		return 0;
	}
	snprintf(cfg, sizeof(cfg), "%.*s%s%s", (int)(p - g->config),
		 g->config, to, p + strlen(from));
	clean_dir();
	write_model(tmpdir, g, cfg, false);
	t_quiet(true);
	ret = nwc_llama_open(tmpdir, &m);
	t_quiet(false);
	nwc_llama_free(m);
	return ret;
}

static void test_errors(void)
{
	const struct golden_case *g = &golden_cases[0];
	struct nwc_llama_opts o = { .threads = 1 };
	struct nwc_llama_eval ev;
	uint32_t bad[3] = { 1, 5, 0 };
	struct nwc_llama *m;

	T_EQ(open_edited("\"rope_scaling\": null",
			 "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}"),
	     -NWC_EFEATURE);
	T_EQ(open_edited("\"rope_scaling\": null",
			 "\"rope_scaling\": {\"rope_type\": \"default\"}"), 0);
	T_EQ(open_edited("\"llama\"", "\"gpt2\""), -NWC_EFEATURE);
	T_EQ(open_edited("\"silu\"", "\"gelu\""), -NWC_EFEATURE);
	T_EQ(open_edited("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
	     -NWC_EFORMAT);
	T_EQ(open_edited("\"intermediate_size\": 12", "\"intermediate_size\": 13"),
	     -NWC_EFORMAT);
	T_EQ(open_edited("\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3"),
	     -NWC_EFORMAT);
	T_EQ(open_edited("\"hidden_size\": 8", "\"hidden_size\": \"8\""),
	     -NWC_EFORMAT);
	T_EQ(open_edited("\"tie_word_embeddings\": true",
			 "\"tie_word_embeddings\": false"), -NWC_EFORMAT);
	T_EQ(open_edited("{", "{\"mlp_bias\": true, "), -NWC_EFEATURE);

	m = open_case(g, NULL, false);
	if (!m)
		return;
	bad[2] = g->vocab;
	t_quiet(true);
	T_EQ(nwc_llama_eval(m, bad, 3, &o, &ev), -EINVAL);
	o.ctx = 1;
	T_EQ(nwc_llama_eval(m, g->tok, GOLDEN_NTOK, &o, &ev), -EINVAL);
	t_quiet(false);
	o.ctx = 0;
	/* Nothing to predict is not an error: no windows, no count. */
	T_EQ(nwc_llama_eval(m, g->tok, 1, &o, &ev), 0);
	T_EQ(ev.count, 0);
	nwc_llama_free(m);

	clean_dir();
	t_quiet(true);
	T_EQ(nwc_llama_open(tmpdir, &m), -ENOENT);
	t_quiet(false);
}

int main(void)
{
	if (t_tmpdir(tmpdir, sizeof(tmpdir), "test-llama"))
		return 99;
	T_RUN(test_eval);
	T_RUN(test_calib);
	T_RUN(test_stream);
	T_RUN(test_stream_hook);
	T_RUN(test_scale_grad);
	T_RUN(test_threads);
	T_RUN(test_errors);
	clean_dir();
	rmdir(tmpdir);
	T_EXIT();
}
