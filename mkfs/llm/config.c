/* SPDX-License-Identifier: MIT */
/* config.c - read a model's config.json into struct nwc_llama_config. */
#include "codec/common/base.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/input/json.h"
#include "mkfs/llm/llm_impl.h"

#define CONFIG_MAX (16u << 20)		/* config.json and the index */

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
	if (!strcmp(k->model_type, "qwen2") || !strcmp(k->model_type, "qwen3")) {
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

int llm_parse_config(const struct cfg *c, struct nwc_llama_config *k)
{
	const char *type, *act;
	bool bias;
	int ret;

	ret = cfg_str(c, "model_type", NULL, &type);
	if (ret)
		return ret;
	if (strcmp(type, "llama") && strcmp(type, "mistral") &&
	    strcmp(type, "qwen2") && strcmp(type, "qwen3")) {
		nwc_err("%s: \"model_type\": \"%s\" is not supported (llama, mistral, qwen2 and qwen3 are)",
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
	if (!strcmp(type, "llama") || !strcmp(type, "qwen3")) {
		/* Qwen3: RMSNorm of every q and k head before the rotation. */
		k->qk_norm = !strcmp(type, "qwen3");
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
int llm_load_json(const char *path, struct nwc_json **out)
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
