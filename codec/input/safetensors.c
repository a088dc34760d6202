/* SPDX-License-Identifier: MIT */
/* safetensors.c - validate a .safetensors header and list its tensors. */
#include "codec/common/base.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/io.h"
#include "codec/input/json.h"
#include "codec/common/log.h"
#include "codec/input/safetensors.h"

#define ST_NAME_MAX 65535u
#define ST_LOG_NAME_MAX 100u	/* bytes of a tensor name shown in a message */
#define ST_METADATA "__metadata__"

/* Room for a quoted, escaped, possibly shortened name. */
struct st_qname {
	char s[ST_LOG_NAME_MAX * 4 + 8];
};

/* Room for "[d0, d1, ...]" with NWC_MAX_DIMS 20-digit dimensions. */
struct st_shape_str {
	char s[NWC_MAX_DIMS * 22 + 4];
};

/*
 * Names come from the file: escape control bytes, quotes and backslashes so
 * a message stays on one line, and cut long names at a UTF-8 boundary.
 */
static const char *st_quote(struct st_qname *q, const char *name, size_t len)
{
	size_t show = len, o = 0;

	if (show > ST_LOG_NAME_MAX) {
		show = ST_LOG_NAME_MAX;
		while (show && ((uint8_t)name[show] & 0xc0) == 0x80)
			show--;
	}
	q->s[o++] = '"';
	for (size_t i = 0; i < show; i++) {
		uint8_t c = (uint8_t)name[i];

		if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(q->s + o, sizeof(q->s) - o,
					      "\\x%02x", c);
		} else {
			if (c == '"' || c == '\\')
				q->s[o++] = '\\';
			q->s[o++] = (char)c;
		}
	}
	q->s[o++] = '"';
	if (show < len) {
		memcpy(q->s + o, "...", 3);
		o += 3;
	}
	q->s[o] = '\0';
	return q->s;
}

static const char *st_shape_fmt(struct st_shape_str *b, const uint64_t *shape,
				unsigned ndim)
{
	size_t o = 0;

	b->s[o++] = '[';
	for (unsigned i = 0; i < ndim; i++)
		o += (size_t)snprintf(b->s + o, sizeof(b->s) - o, "%s%" PRIu64,
				      i ? ", " : "", shape[i]);
	b->s[o++] = ']';
	b->s[o] = '\0';
	return b->s;
}

int nwc_st_header_len(const void *buf, size_t len, uint64_t file_size,
		      const char *path, uint64_t *out)
{
	uint64_t n;

	if (file_size < 8) {
		nwc_err("%s: file is %" PRIu64
			" bytes, too short for the 8-byte header length",
			path, file_size);
		return -NWC_EFORMAT;
	}
	if (len < 8) {
		nwc_err("%s: only %zu bytes of the header length were read",
			path, len);
		return -NWC_EFORMAT;
	}
	n = nwc_get_le64(buf);
	if (n < 2) {
		nwc_err("%s: header length %" PRIu64
			" is too small for a JSON object", path, n);
		return -NWC_EFORMAT;
	}
	if (n > NWC_ST_HEADER_MAX) {
		nwc_err("%s: header length %" PRIu64
			" exceeds the limit of %u bytes", path, n,
			NWC_ST_HEADER_MAX);
		return -NWC_EFORMAT;
	}
	if (n > file_size - 8) {
		nwc_err("%s: header length %" PRIu64
			" runs past the end of the file (%" PRIu64 " bytes)",
			path, n, file_size);
		return -NWC_EFORMAT;
	}
	*out = n;
	return 0;
}

static int st_parse_dtype(struct nwc_st_tensor *t, const struct nwc_json *v,
			  const char *path, const char *qn)
{
	struct st_qname qd;
	const char *s;
	size_t len;

	if (nwc_json_str(v, &s, &len)) {
		nwc_err("%s: tensor %s: dtype is %s, not a string", path, qn,
			nwc_json_type_name(v));
		return -NWC_EFORMAT;
	}
	t->dtype = nwc_dtype_from_name(s, len);
	if (!t->dtype) {
		nwc_err("%s: tensor %s: unknown dtype %s", path, qn,
			st_quote(&qd, s, len));
		return -NWC_EFORMAT;
	}
	return 0;
}

static int st_parse_shape(struct nwc_st_tensor *t, const struct nwc_json *v,
			  const char *path, const char *qn)
{
	size_t n;

	if (nwc_json_type(v) != NWC_JSON_ARRAY) {
		nwc_err("%s: tensor %s: shape is %s, not an array", path, qn,
			nwc_json_type_name(v));
		return -NWC_EFORMAT;
	}
	n = nwc_json_size(v);
	if (n > NWC_MAX_DIMS) {
		nwc_err("%s: tensor %s: shape has %zu dimensions, at most %u are supported",
			path, qn, n, NWC_MAX_DIMS);
		return -NWC_EFORMAT;
	}
	for (size_t i = 0; i < n; i++) {
		const struct nwc_json *d = nwc_json_at(v, i);
		int ret = nwc_json_u64(d, &t->shape[i]);

		if (ret) {
			nwc_err("%s: tensor %s: shape dimension %zu is %s; dimensions must be non-negative integers",
				path, qn, i,
				ret == -ERANGE ? "negative" :
				nwc_json_type_name(d));
			return -NWC_EFORMAT;
		}
	}
	t->ndim = (unsigned)n;
	return 0;
}

static int st_parse_offsets(struct nwc_st_tensor *t,
			    const struct nwc_json *v, const char *path,
			    const char *qn)
{
	if (nwc_json_type(v) != NWC_JSON_ARRAY || nwc_json_size(v) != 2) {
		nwc_err("%s: tensor %s: data_offsets must be an array of 2 integers [begin, end]",
			path, qn);
		return -NWC_EFORMAT;
	}
	if (nwc_json_u64(nwc_json_at(v, 0), &t->begin) ||
	    nwc_json_u64(nwc_json_at(v, 1), &t->end)) {
		nwc_err("%s: tensor %s: data_offsets must be non-negative integers",
			path, qn);
		return -NWC_EFORMAT;
	}
	if (t->begin > t->end) {
		nwc_err("%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
			"] end before they begin", path, qn, t->begin, t->end);
		return -NWC_EFORMAT;
	}
	return 0;
}

/* Checks that the shape's byte size is the span and that it fits the data. */
static int st_check_size(const struct nwc_st_tensor *t, uint64_t data_len,
			 const char *path, const char *qn)
{
	uint64_t bytes = nwc_dtype_size(t->dtype);
	struct st_shape_str sb;

	for (unsigned i = 0; i < t->ndim; i++) {
		if (__builtin_mul_overflow(bytes, t->shape[i], &bytes)) {
			nwc_err("%s: tensor %s: shape %s of %s overflows a 64-bit byte count",
				path, qn, st_shape_fmt(&sb, t->shape, t->ndim),
				nwc_dtype_name(t->dtype));
			return -NWC_EFORMAT;
		}
	}
	if (bytes != t->end - t->begin) {
		nwc_err("%s: tensor %s: shape %s of %s needs %" PRIu64
			" bytes but data_offsets span %" PRIu64, path, qn,
			st_shape_fmt(&sb, t->shape, t->ndim),
			nwc_dtype_name(t->dtype), bytes, t->end - t->begin);
		return -NWC_EFORMAT;
	}
	if (t->end > data_len) {
		nwc_err("%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
			"] run past the end of the data (%" PRIu64 " bytes)",
			path, qn, t->begin, t->end, data_len);
		return -NWC_EFORMAT;
	}
	return 0;
}

static int st_parse_tensor(struct nwc_st_tensor *t, const char *name,
			   size_t name_len, const struct nwc_json *v,
			   uint64_t data_len, const char *path)
{
	static const char *const keys[] = { "dtype", "shape", "data_offsets" };
	struct st_qname qn, qk;
	const struct nwc_json *val;
	struct nwc_json_iter it;
	const char *key;
	int ret;

	st_quote(&qn, name, name_len);
	if (!name_len) {
		nwc_err("%s: a tensor has an empty name", path);
		return -NWC_EFORMAT;
	}
	if (name_len > ST_NAME_MAX || memchr(name, '\0', name_len)) {
		nwc_err("%s: tensor %s: name is %s", path, qn.s,
			name_len > ST_NAME_MAX ? "longer than 65535 bytes" :
			"not allowed to contain a NUL byte");
		return -NWC_EFORMAT;
	}
	if (nwc_json_type(v) != NWC_JSON_OBJECT) {
		nwc_err("%s: tensor %s: entry is %s, not an object", path,
			qn.s, nwc_json_type_name(v));
		return -NWC_EFORMAT;
	}
	nwc_json_iter_init(&it, v);
	while (nwc_json_iter_next(&it, &key, NULL, &val)) {
		size_t i;

		for (i = 0; i < NWC_ARRAY_SIZE(keys); i++)
			if (!strcmp(key, keys[i]))
				break;
		if (i == NWC_ARRAY_SIZE(keys)) {
			nwc_err("%s: tensor %s: unexpected key %s (only dtype, shape and data_offsets are allowed)",
				path, qn.s, st_quote(&qk, key, strlen(key)));
			return -NWC_EFORMAT;
		}
	}
	for (size_t i = 0; i < NWC_ARRAY_SIZE(keys); i++) {
		if (!nwc_json_get(v, keys[i])) {
			nwc_err("%s: tensor %s: missing key \"%s\"", path,
				qn.s, keys[i]);
			return -NWC_EFORMAT;
		}
	}
	ret = st_parse_dtype(t, nwc_json_get(v, "dtype"), path, qn.s);
	if (ret)
		return ret;
	ret = st_parse_shape(t, nwc_json_get(v, "shape"), path, qn.s);
	if (ret)
		return ret;
	ret = st_parse_offsets(t, nwc_json_get(v, "data_offsets"), path,
			       qn.s);
	if (ret)
		return ret;
	ret = st_check_size(t, data_len, path, qn.s);
	if (ret)
		return ret;
	t->name = malloc(name_len + 1);
	if (!t->name)
		return -ENOMEM;
	memcpy(t->name, name, name_len + 1);
	t->name_len = name_len;
	return 0;
}

static int st_check_metadata(const struct nwc_json *v, const char *path)
{
	const struct nwc_json *val;
	struct nwc_json_iter it;
	struct st_qname qk;
	const char *key;

	if (nwc_json_type(v) != NWC_JSON_OBJECT) {
		nwc_err("%s: " ST_METADATA " is %s, not an object", path,
			nwc_json_type_name(v));
		return -NWC_EFORMAT;
	}
	nwc_json_iter_init(&it, v);
	while (nwc_json_iter_next(&it, &key, NULL, &val)) {
		if (nwc_json_type(val) != NWC_JSON_STRING) {
			nwc_err("%s: " ST_METADATA " value of %s is %s, not a string",
				path, st_quote(&qk, key, strlen(key)),
				nwc_json_type_name(val));
			return -NWC_EFORMAT;
		}
	}
	return 0;
}

static int st_cmp(const void *a, const void *b)
{
	const struct nwc_st_tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* After sorting by begin, only the latest non-empty tensor can overlap. */
static int st_check_overlap(const struct nwc_st *st, const char *path)
{
	const struct nwc_st_tensor *prev = NULL;

	for (size_t i = 0; i < st->n_tensors; i++) {
		const struct nwc_st_tensor *t = &st->tensors[i];
		struct st_qname qa, qb;

		if (t->begin == t->end)
			continue;
		if (prev && t->begin < prev->end) {
			nwc_err("%s: tensor %s (data_offsets [%" PRIu64 ", %"
				PRIu64 "]) overlaps tensor %s ([%" PRIu64
				", %" PRIu64 "])", path,
				st_quote(&qa, t->name, t->name_len), t->begin,
				t->end, st_quote(&qb, prev->name,
						 prev->name_len),
				prev->begin, prev->end);
			return -NWC_EFORMAT;
		}
		prev = t;
	}
	return 0;
}

static int st_load_json(const char *json, size_t n, const char *path,
			struct nwc_json **out)
{
	struct nwc_json_error jerr;
	struct nwc_json *root;
	int ret;

	if (json[0] != '{') {
		nwc_err("%s: header does not start with '{'", path);
		return -NWC_EFORMAT;
	}
	ret = nwc_json_parse(json, n, &root, &jerr);
	if (ret == -NWC_EFORMAT && jerr.trailing)
		nwc_err("%s: header has bytes other than spaces after the JSON object",
			path);
	else if (ret == -NWC_EFORMAT)
		nwc_err("%s: header is not valid JSON: %s (line %d, column %d)",
			path, jerr.text, jerr.line, jerr.column);
	if (ret)
		return ret;
	if (nwc_json_type(root) != NWC_JSON_OBJECT) {
		nwc_err("%s: header is %s, not a JSON object", path,
			nwc_json_type_name(root));
		nwc_json_free(root);
		return -NWC_EFORMAT;
	}
	*out = root;
	return 0;
}

int nwc_st_parse(const void *buf, size_t len, uint64_t file_size,
		 const char *path, struct nwc_st **out)
{
	const struct nwc_json *val;
	struct nwc_json_iter it;
	struct nwc_json *root;
	struct nwc_st *st;
	const char *key;
	size_t key_len;
	uint64_t n;
	int ret;

	ret = nwc_st_header_len(buf, len, file_size, path, &n);
	if (ret)
		return ret;
	if (len - 8 < n) {
		nwc_err("%s: only %zu of the %" PRIu64
			" header bytes were read", path, len - 8, n);
		return -NWC_EFORMAT;
	}
	ret = st_load_json((const char *)buf + 8, n, path, &root);
	if (ret)
		return ret;
	st = calloc(1, sizeof(*st));
	if (!st) {
		ret = -ENOMEM;
		goto out_put_root;
	}
	st->header_len = n;
	st->data_off = 8 + n;
	st->data_len = file_size - st->data_off;
	st->tensors = calloc(nwc_json_size(root) + 1,
			     sizeof(*st->tensors));
	if (!st->tensors) {
		ret = -ENOMEM;
		goto out_free_st;
	}
	nwc_json_iter_init(&it, root);
	while (nwc_json_iter_next(&it, &key, &key_len, &val)) {
		if (!strcmp(key, ST_METADATA)) {
			ret = st_check_metadata(val, path);
		} else {
			ret = st_parse_tensor(&st->tensors[st->n_tensors],
					      key, key_len, val, st->data_len,
					      path);
			if (!ret)
				st->n_tensors++;
		}
		if (ret)
			goto out_free_st;
	}
	qsort(st->tensors, st->n_tensors, sizeof(*st->tensors), st_cmp);
	ret = st_check_overlap(st, path);
	if (ret)
		goto out_free_st;
	nwc_json_free(root);
	*out = st;
	return 0;

out_free_st:
	nwc_st_free(st);
out_put_root:
	nwc_json_free(root);
	return ret;
}

void nwc_st_free(struct nwc_st *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_tensors; i++)
		free(st->tensors[i].name);
	free(st->tensors);
	free(st);
}

int nwc_st_read_fd(int fd, uint64_t file_size, const char *path,
		   struct nwc_st **out)
{
	uint8_t word[8], *hdr;
	uint64_t hlen;
	int ret;

	if (file_size < 8) {
		nwc_err("%s: too short for a safetensors file (%llu bytes)", path,
			(unsigned long long)file_size);
		return -NWC_EFORMAT;
	}
	ret = nwc_pread_full(fd, word, 8, 0);
	if (ret)
		goto out_read_err;
	ret = nwc_st_header_len(word, 8, file_size, path, &hlen);
	if (ret)
		return ret;
	hdr = malloc(8 + hlen);
	if (!hdr)
		return -ENOMEM;
	ret = nwc_pread_full(fd, hdr, 8 + hlen, 0);
	if (!ret)
		ret = nwc_st_parse(hdr, 8 + hlen, file_size, path, out);
	free(hdr);
	if (ret == -NWC_EFORMAT || ret == -ENOMEM || !ret)
		return ret;
out_read_err:
	/* nwc_pread_full() reports a file shorter than file_size as corrupt. */
	if (ret == -NWC_ECORRUPT)
		ret = -EIO;
	nwc_err("%s: read failed: %s", path, nwc_strerror(ret));
	return ret;
}

int nwc_st_open(const char *path, int *fd, struct nwc_st **out)
{
	struct stat sb;
	int ret;

	*out = NULL;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0 || fstat(*fd, &sb)) {
		ret = -errno;
		nwc_err("%s: %s", path, nwc_strerror(ret));
		goto out_close;
	}
	if (!S_ISREG(sb.st_mode)) {
		nwc_err("%s: not a regular file", path);
		ret = -NWC_EFORMAT;
		goto out_close;
	}
	ret = nwc_st_read_fd(*fd, (uint64_t)sb.st_size, path, out);
	if (!ret)
		return 0;
out_close:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return ret;
}
