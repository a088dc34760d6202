/* SPDX-License-Identifier: MIT */
/*
 * json.h - read-only JSON documents (safetensors headers, config.json): the
 * one seam to jansson.
 *
 *	struct nwc_json *doc;
 *	struct nwc_json_error e;
 *	ret = nwc_json_parse(text, len, &doc, &e);
 *	ret = nwc_json_u64(nwc_json_get(doc, "hidden_size"), &n);
 *	nwc_json_free(doc);
 *
 * nwc_json_parse() returns the root of a document; every value reached from
 * it is borrowed, valid until nwc_json_free() of the root.  The typed
 * getters accept NULL (an absent member or element) and return -ENOENT for
 * it, so an optional key with a default is a single test:
 *
 *	ret = nwc_json_number(nwc_json_get(doc, "rope_theta"), &theta);
 *	if (ret == -ENOENT)
 *		theta = 10000;
 *
 * Errors: -ENOENT absent, -NWC_EFORMAT the value has another type, -ERANGE
 * an integer outside the range of the getter.
 *
 * Thread safety: a document is immutable once parsed and reading it touches
 * no shared state, so any number of threads may read one at once.
 */
#ifndef NWC_JSON_H
#define NWC_JSON_H

#include "codec/common/base.h"

/* A JSON value; opaque. */
struct nwc_json;

enum nwc_json_type {
	NWC_JSON_NULL,
	NWC_JSON_BOOL,
	NWC_JSON_INT,		/* a number written without '.' or exponent */
	NWC_JSON_REAL,
	NWC_JSON_STRING,
	NWC_JSON_ARRAY,
	NWC_JSON_OBJECT,
};

/* Why a parse failed, for the caller's message. */
struct nwc_json_error {
	bool trailing;		/* a whole value, then more than white space */
	int line;		/* 1-based position of the error */
	int column;
	char text[160];		/* what is wrong, one line */
};

/*
 * nwc_json_parse() - parse @len bytes at @buf (no NUL terminator needed).
 * The root must be an object or an array; objects with a duplicate key
 * and strings with a NUL character are rejected.  Returns 0 and sets *out,
 * -ENOMEM, or -NWC_EFORMAT with *err filled in (@err may be NULL).
 */
int nwc_json_parse(const void *buf, size_t len, struct nwc_json **out,
		   struct nwc_json_error *err);

/* nwc_json_free() - release a document given its root; accepts NULL. */
void nwc_json_free(struct nwc_json *root);

/* nwc_json_type() - the type of @v, which must not be NULL. */
enum nwc_json_type nwc_json_type(const struct nwc_json *v);

/*
 * nwc_json_type_name() - "an object", "an array", "a string", "an
 * integer", "a non-integer number", "a boolean", "null", or "absent" for
 * NULL: for messages such as "%s is %s, not a string".
 */
const char *nwc_json_type_name(const struct nwc_json *v);

/* nwc_json_size() - members of an object or elements of an array, else 0. */
size_t nwc_json_size(const struct nwc_json *v);

/*
 * nwc_json_get() - member @key of object @obj; NULL if @obj is NULL or not
 * an object, or has no such member.
 */
const struct nwc_json *nwc_json_get(const struct nwc_json *obj,
				    const char *key);

/* nwc_json_at() - element @i of array @arr; NULL as nwc_json_get(). */
const struct nwc_json *nwc_json_at(const struct nwc_json *arr, size_t i);

/* nwc_json_u64() - a non-negative integer; -ERANGE if negative. */
int nwc_json_u64(const struct nwc_json *v, uint64_t *out);

/* nwc_json_i64() - any integer. */
int nwc_json_i64(const struct nwc_json *v, int64_t *out);

/* nwc_json_number() - an integer or a real, as a double. */
int nwc_json_number(const struct nwc_json *v, double *out);

/* nwc_json_bool() - true or false. */
int nwc_json_bool(const struct nwc_json *v, bool *out);

/*
 * nwc_json_str() - a string: *s is NUL-terminated and borrowed; *len (if
 * @len is not NULL) is its length in bytes.
 */
int nwc_json_str(const struct nwc_json *v, const char **s, size_t *len);

/* The members of an object in document order; fields are private. */
struct nwc_json_iter {
	void *obj;
	void *pos;
};

/* nwc_json_iter_init() - start at the first member (none if not an object). */
void nwc_json_iter_init(struct nwc_json_iter *it, const struct nwc_json *obj);

/*
 * nwc_json_iter_next() - the next member: its key (NUL-terminated; @key_len
 * bytes, which may include NUL bytes) and value.  Returns false at the
 * end.  @key_len may be NULL.
 *
 *	nwc_json_iter_init(&it, obj);
 *	while (nwc_json_iter_next(&it, &key, &klen, &val))
 *		...
 */
bool nwc_json_iter_next(struct nwc_json_iter *it, const char **key,
			size_t *key_len, const struct nwc_json **val);

#endif /* NWC_JSON_H */
