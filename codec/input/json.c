/* SPDX-License-Identifier: MIT */
/* json.c - read-only JSON access over jansson: the only user of <jansson.h>. */
#include "codec/common/base.h"

#include <stdio.h>

#include <jansson.h>

#include "codec/input/json.h"

/*
 * A struct nwc_json is a json_t: the handle is the jansson value itself, so
 * borrowing costs nothing.  The getters never touch reference counts,
 * which keeps concurrent readers safe.
 */
static json_t *J(const struct nwc_json *v)
{
	return (json_t *)v;
}

static const struct nwc_json *V(const json_t *j)
{
	return (const struct nwc_json *)j;
}

int nwc_json_parse(const void *buf, size_t len, struct nwc_json **out,
		   struct nwc_json_error *err)
{
	json_error_t jerr;
	json_t *root;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root) {
		*out = (struct nwc_json *)root;
		return 0;
	}
	if (json_error_code(&jerr) == json_error_out_of_memory)
		return -ENOMEM;
	if (err) {
		err->trailing = json_error_code(&jerr) ==
				json_error_end_of_input_expected;
		err->line = jerr.line;
		err->column = jerr.column;
		snprintf(err->text, sizeof(err->text), "%s", jerr.text);
	}
	return -NWC_EFORMAT;
}

void nwc_json_free(struct nwc_json *root)
{
	json_decref(J(root));
}

enum nwc_json_type nwc_json_type(const struct nwc_json *v)
{
	switch (json_typeof(J(v))) {
	case JSON_OBJECT:
		return NWC_JSON_OBJECT;
	case JSON_ARRAY:
		return NWC_JSON_ARRAY;
	case JSON_STRING:
		return NWC_JSON_STRING;
	case JSON_INTEGER:
		return NWC_JSON_INT;
	case JSON_REAL:
		return NWC_JSON_REAL;
	case JSON_TRUE:
	case JSON_FALSE:
		return NWC_JSON_BOOL;
	case JSON_NULL:
		break;
	}
	return NWC_JSON_NULL;
}

const char *nwc_json_type_name(const struct nwc_json *v)
{
	static const char *const names[] = {
		[NWC_JSON_NULL] = "null",
		[NWC_JSON_BOOL] = "a boolean",
		[NWC_JSON_INT] = "an integer",
		[NWC_JSON_REAL] = "a non-integer number",
		[NWC_JSON_STRING] = "a string",
		[NWC_JSON_ARRAY] = "an array",
		[NWC_JSON_OBJECT] = "an object",
	};

	if (!v)
		return "absent";
	return names[nwc_json_type(v)];
}

size_t nwc_json_size(const struct nwc_json *v)
{
	if (json_is_object(J(v)))
		return json_object_size(J(v));
	return json_array_size(J(v));
}

const struct nwc_json *nwc_json_get(const struct nwc_json *obj,
				    const char *key)
{
	return V(json_object_get(J(obj), key));
}

const struct nwc_json *nwc_json_at(const struct nwc_json *arr, size_t i)
{
	return V(json_array_get(J(arr), i));
}

/* -ENOENT for NULL, -NWC_EFORMAT for another type, else 0. */
static int want(const struct nwc_json *v, enum nwc_json_type type)
{
	if (!v)
		return -ENOENT;
	return nwc_json_type(v) == type ? 0 : -NWC_EFORMAT;
}

int nwc_json_i64(const struct nwc_json *v, int64_t *out)
{
	int ret = want(v, NWC_JSON_INT);

	if (!ret)
		*out = (int64_t)json_integer_value(J(v));
	return ret;
}

int nwc_json_u64(const struct nwc_json *v, uint64_t *out)
{
	int64_t x;
	int ret = nwc_json_i64(v, &x);

	if (ret)
		return ret;
	if (x < 0)
		return -ERANGE;
	*out = (uint64_t)x;
	return 0;
}

int nwc_json_number(const struct nwc_json *v, double *out)
{
	if (!v)
		return -ENOENT;
	if (!json_is_number(J(v)))
		return -NWC_EFORMAT;
	*out = json_number_value(J(v));
	return 0;
}

int nwc_json_bool(const struct nwc_json *v, bool *out)
{
	int ret = want(v, NWC_JSON_BOOL);

	if (!ret)
		*out = json_is_true(J(v));
	return ret;
}

int nwc_json_str(const struct nwc_json *v, const char **s, size_t *len)
{
	int ret = want(v, NWC_JSON_STRING);

	if (ret)
		return ret;
	*s = json_string_value(J(v));
	if (len)
		*len = json_string_length(J(v));
	return 0;
}

void nwc_json_iter_init(struct nwc_json_iter *it, const struct nwc_json *obj)
{
	it->obj = J(obj);
	it->pos = json_object_iter(J(obj));
}

bool nwc_json_iter_next(struct nwc_json_iter *it, const char **key,
			size_t *key_len, const struct nwc_json **val)
{
	if (!it->pos)
		return false;
	*key = json_object_iter_key(it->pos);
	if (key_len)
		*key_len = json_object_iter_key_len(it->pos);
	*val = V(json_object_iter_value(it->pos));
	it->pos = json_object_iter_next(it->obj, it->pos);
	return true;
}
