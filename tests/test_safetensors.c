/* SPDX-License-Identifier: MIT */
/* test_safetensors.c - safetensors header parsing: valid files and rejects. */
#include "codec/common/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "codec/common/log.h"
#include "codec/input/safetensors.h"
#include "tests/t.h"

#define PATH "t.safetensors"

/* A file image: 8-byte length, @json padded to @hdr_len, @data_len bytes. */
static uint8_t *mk_file(const char *json, size_t hdr_len, size_t data_len,
			size_t *size)
{
	size_t jl = strlen(json);
	uint8_t *b;

	if (hdr_len < jl)
		hdr_len = jl;
	*size = 8 + hdr_len + data_len;
	b = malloc(*size);
	if (!b) {
		perror("malloc");
		exit(99);
	}
	nwc_put_le64(b, hdr_len);
	memcpy(b + 8, json, jl);
	memset(b + 8 + jl, ' ', hdr_len - jl);
	for (size_t i = 0; i < data_len; i++)
		b[8 + hdr_len + i] = (uint8_t)(i * 7 + 1);
	return b;
}

static struct nwc_st *parse_ok(const char *json, size_t hdr_len,
			       size_t data_len)
{
	struct nwc_st *st = NULL;
	size_t size;
	uint8_t *b = mk_file(json, hdr_len, data_len, &size);
	int ret = nwc_st_parse(b, size, size, PATH, &st);

	free(b);
	T_EQ(ret, 0);
	if (ret) {
		fprintf(stderr, "  rejected: %s\n", json);
		return NULL;
	}
	T_EQ(st->header_len, NWC_MAX(hdr_len, strlen(json)));
	T_EQ(st->data_off, 8 + st->header_len);
	T_EQ(st->data_len, data_len);
	return st;
}

/*
 * Runs @fn with stderr sent to a temporary file and returns what was
 * written there (malloc'd), so the test can check for exactly one line.
 */
static char *capture_stderr(int (*fn)(const void *), const void *arg,
			    int *ret)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	char *text;
	long n;

	if (!tmp || saved < 0 || dup2(fileno(tmp), STDERR_FILENO) < 0) {
		perror("capture_stderr");
		exit(99);
	}
	*ret = fn(arg);
	if (dup2(saved, STDERR_FILENO) < 0) {
		perror("dup2");
		exit(99);
	}
	close(saved);
	n = lseek(fileno(tmp), 0, SEEK_END);
	text = calloc(1, n > 0 ? (size_t)n + 1 : 1);
	if (!text || n < 0 || pread(fileno(tmp), text, (size_t)n, 0) != n) {
		perror("capture_stderr read");
		exit(99);
	}
	fclose(tmp);
	return text;
}

struct bad_case {
	const uint8_t *buf;
	size_t len;
	uint64_t file_size;
	struct nwc_st *st;
};

static int run_bad(const void *arg)
{
	struct bad_case *c = (struct bad_case *)arg;

	return nwc_st_parse(c->buf, c->len, c->file_size, PATH, &c->st);
}

/* Expects -NWC_EFORMAT and one logged line naming the file and @what. */
static void expect_bad_raw(const uint8_t *buf, size_t len, uint64_t file_size,
			   const char *what, int line)
{
	struct bad_case c = { buf, len, file_size, NULL };
	const char *nl;
	char *log;
	int ret;

	log = capture_stderr(run_bad, &c, &ret);
	if (*log)
		fprintf(stderr, "  expected: %s", log);
	if (ret != -NWC_EFORMAT || c.st) {
		fprintf(stderr, "%s:%d: not rejected (ret %d)\n", __FILE__,
			line, ret);
		t_failed++;
		nwc_st_free(c.st);
	}
	nl = strchr(log, '\n');
	if (!nl || nl[1] || !strstr(log, PATH ": ") ||
	    !strstr(log, what)) {
		fprintf(stderr, "%s:%d: want one line with \"%s\", got: %s\n",
			__FILE__, line, what, log);
		t_failed++;
	}
	free(log);
}

static void expect_bad_line(const char *json, size_t data_len,
			    const char *what, int line)
{
	size_t size;
	uint8_t *b = mk_file(json, 0, data_len, &size);

	expect_bad_raw(b, size, size, what, line);
	free(b);
}

#define expect_bad(json, data_len, what) \
	expect_bad_line(json, data_len, what, __LINE__)

#define TF(name, dt, shape, b, e) \
	"\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape \
	",\"data_offsets\":[" #b "," #e "]}"

static void test_empty(void)
{
	struct nwc_st *st = parse_ok("{}", 0, 0);

	if (st) {
		T_EQ(st->n_tensors, 0);
		T_EQ(st->header_len, 2);
		T_EQ(st->data_off, 10);
	}
	nwc_st_free(st);
	/* Data after an empty header is allowed; nothing references it. */
	st = parse_ok("{}", 0, 5);
	if (st)
		T_EQ(st->n_tensors, 0);
	nwc_st_free(st);
	nwc_st_free(NULL);
}

static void test_metadata_and_order(void)
{
	/* Written out of order, with data_offsets first in one entry. */
	struct nwc_st *st = parse_ok(
		"{\"__metadata__\":{\"format\":\"pt\",\"x\":\"\"},"
		TF("layers.1.w", "F32", "[3,4]", 48, 96) ","
		"\"layers.0.w\":{\"data_offsets\":[0,48],\"shape\":[3,4],"
		"\"dtype\":\"F32\"}}", 0, 96);

	if (!st)
		return;
	T_EQ(st->n_tensors, 2);
	T_CHECK(!strcmp(st->tensors[0].name, "layers.0.w"));
	T_EQ(st->tensors[0].name_len, 10);
	T_EQ(st->tensors[0].dtype, NWC_DTYPE_F32);
	T_EQ(st->tensors[0].ndim, 2);
	T_EQ(st->tensors[0].shape[0], 3);
	T_EQ(st->tensors[0].shape[1], 4);
	T_EQ(st->tensors[0].begin, 0);
	T_EQ(st->tensors[0].end, 48);
	T_CHECK(!strcmp(st->tensors[1].name, "layers.1.w"));
	T_EQ(st->tensors[1].begin, 48);
	T_EQ(st->tensors[1].end, 96);
	nwc_st_free(st);
}

static void test_all_dtypes(void)
{
	char json[4096];
	size_t o = 0, n = NWC_DTYPE_COUNT - 1;
	uint64_t off[NWC_DTYPE_COUNT + 1] = { 0 };
	struct nwc_st *st;

	/* Written in reverse, laid out with the first dtype first. */
	for (unsigned d = 1; d < NWC_DTYPE_COUNT; d++)
		off[d + 1] = off[d] + 6 * nwc_dtype_size(d);
	o += (size_t)snprintf(json + o, sizeof(json) - o, "{");
	for (unsigned d = NWC_DTYPE_COUNT - 1; d >= 1; d--)
		o += (size_t)snprintf(json + o, sizeof(json) - o,
			"%s\"t.%s\":{\"dtype\":\"%s\",\"shape\":[2,3],"
			"\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
			d == NWC_DTYPE_COUNT - 1 ? "" : ",", nwc_dtype_name(d),
			nwc_dtype_name(d), off[d], off[d + 1]);
	snprintf(json + o, sizeof(json) - o, "}");
	st = parse_ok(json, 0, off[NWC_DTYPE_COUNT]);
	if (!st)
		return;
	T_EQ(st->n_tensors, n);
	for (unsigned i = 0; i < st->n_tensors && i < n; i++) {
		const struct nwc_st_tensor *t = &st->tensors[i];
		char name[32];

		snprintf(name, sizeof(name), "t.%s", nwc_dtype_name(i + 1));
		T_CHECK(!strcmp(t->name, name));
		T_EQ(t->dtype, i + 1);
		T_EQ(t->ndim, 2);
		T_EQ(t->begin, off[i + 1]);
		T_EQ(t->end - t->begin, 6 * nwc_dtype_size(i + 1));
	}
	nwc_st_free(st);
}

static void test_scalar_zero_size_gaps(void)
{
	/*
	 * A scalar, gaps before and between tensors, and zero-size tensors
	 * sharing an offset with a non-empty one and lying inside one.
	 */
	struct nwc_st *st = parse_ok("{"
		TF("s", "F64", "[]", 100, 108) ","
		TF("z", "I32", "[0,5]", 100, 100) ","
		TF("e", "BF16", "[0]", 0, 0) ","
		TF("in", "U8", "[4,0,7]", 10, 10) ","
		TF("w", "F16", "[8]", 4, 20) ","
		TF("last", "BOOL", "[1,1,1,1,1,1,1,1]", 200, 201) "}",
		0, 256);

	if (!st)
		return;
	T_EQ(st->n_tensors, 6);
	if (st->n_tensors == 6) {
		static const char *const order[] = { "e", "w", "in", "s", "z",
						     "last" };

		for (unsigned i = 0; i < 6; i++)
			T_CHECK(!strcmp(st->tensors[i].name, order[i]));
		T_EQ(st->tensors[3].ndim, 0);
		T_EQ(st->tensors[3].dtype, NWC_DTYPE_F64);
		T_EQ(st->tensors[3].end, 108);
		T_EQ(st->tensors[2].ndim, 3);
		T_EQ(st->tensors[2].shape[2], 7);
		T_EQ(st->tensors[5].ndim, 8);
		T_EQ(st->tensors[5].begin, 200);
		T_EQ(st->tensors[5].end, 201);
	}
	nwc_st_free(st);
}

static void test_padding_and_names(void)
{
	/* Headers are padded with spaces; names may hold any UTF-8. */
	struct nwc_st *st = parse_ok(
		"{" TF("\\u00e9t\\u00e9 \\\"q\\\"\\n", "U8", "[3]", 0, 3) "}",
		80, 3);

	if (!st)
		return;
	T_EQ(st->header_len, 80);
	T_EQ(st->n_tensors, 1);
	T_EQ(st->tensors[0].name_len, 10);
	T_CHECK(!strcmp(st->tensors[0].name, "\xc3\xa9t\xc3\xa9 \"q\"\n"));
	nwc_st_free(st);

	/* jansson also skips tabs and newlines after the object. */
	st = parse_ok("{}\n\t\r  ", 0, 0);
	nwc_st_free(st);
}

static void test_bad_length(void)
{
	uint8_t b[64] = "{}";
	size_t size;
	uint8_t *f;

	/* Truncated length word. */
	expect_bad_raw(b, 5, 5, "too short", __LINE__);
	expect_bad_raw(b, 0, 0, "too short", __LINE__);
	/* N larger than the file. */
	f = mk_file("{}", 0, 0, &size);
	nwc_put_le64(f, 3);
	expect_bad_raw(f, size, size, "past the end of the file", __LINE__);
	/* N beyond the limit, even when the file is big enough. */
	nwc_put_le64(f, NWC_ST_HEADER_MAX + 1ull);
	expect_bad_raw(f, size, 1ull << 40, "exceeds the limit", __LINE__);
	nwc_put_le64(f, UINT64_MAX);
	expect_bad_raw(f, size, UINT64_MAX, "exceeds the limit", __LINE__);
	nwc_put_le64(f, UINT64_MAX - 7);
	expect_bad_raw(f, size, size, "exceeds the limit", __LINE__);
	/* N too small for "{}". */
	nwc_put_le64(f, 1);
	expect_bad_raw(f, size, size, "too small", __LINE__);
	nwc_put_le64(f, 0);
	expect_bad_raw(f, size, size, "too small", __LINE__);
	/* The caller's buffer holds less than the header. */
	nwc_put_le64(f, 2);
	expect_bad_raw(f, 9, size, "header bytes were read", __LINE__);
	free(f);
	f = mk_file("{}", 0, 0, &size);
	expect_bad_raw(f, 4, size, "header length were read", __LINE__);
	free(f);
}

static void test_bad_json(void)
{
	expect_bad("{hello}", 0, "not valid JSON");
	expect_bad("{\"a\":", 0, "not valid JSON");
	expect_bad("xyz", 0, "does not start with '{'");
	expect_bad("[1,2]", 0, "does not start with '{'");
	expect_bad(" {}", 0, "does not start with '{'");
	expect_bad("\"s\"", 0, "does not start with '{'");
	expect_bad("{} x", 0, "after the JSON object");
	expect_bad("{}{}", 0, "after the JSON object");
	expect_bad("{\"\xff\":1}", 0, "not valid JSON");
	expect_bad("{\"a\\u0000b\":{}}", 0, "not valid JSON");
	expect_bad("{" TF("a", "U8", "[1]", 0, 1) ","
		   TF("a", "U8", "[1]", 1, 2) "}", 2, "duplicate");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],"
		   "\"data_offsets\":[0,1]}}", 1, "duplicate");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],"
		   "\"data_offsets\":[0,1]}}", 1, "not valid JSON");
}

static void test_bad_trailing_nul(void)
{
	size_t size;
	uint8_t *f = mk_file("{}  ", 0, 0, &size);

	f[11] = 0;
	expect_bad_raw(f, size, size, "after the JSON object", __LINE__);
	free(f);
}

static void test_bad_entries(void)
{
	expect_bad("{\"a\":[1]}", 0, "tensor \"a\": entry is an array");
	expect_bad("{" TF("", "U8", "[1]", 0, 1) "}", 1, "empty name");
	expect_bad("{" TF("a", "F12", "[1]", 0, 1) "}", 1,
		   "tensor \"a\": unknown dtype \"F12\"");
	expect_bad("{" TF("a", "f32", "[1]", 0, 4) "}", 4, "unknown dtype");
	expect_bad("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,1]}}",
		   1, "dtype is an integer");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1,
		   "missing key \"shape\"");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1,
		   "missing key \"data_offsets\"");
	expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
		   "missing key \"dtype\"");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
		   "\"data_offsets\":[0,1],\"x\":1}}", 1,
		   "unexpected key \"x\"");
	expect_bad("{\"a\":{}}", 0, "missing key");
	expect_bad("{\"__metadata__\":{\"k\":1}}", 0,
		   "__metadata__ value of \"k\" is an integer");
	expect_bad("{\"__metadata__\":{\"k\":\"v\",\"n\":null}}", 0,
		   "is null");
	expect_bad("{\"__metadata__\":[]}", 0, "__metadata__ is an array");
}

static void test_bad_shapes(void)
{
	expect_bad("{" TF("a", "U8", "[-1]", 0, 1) "}", 1,
		   "dimension 0 is negative");
	expect_bad("{" TF("a", "U8", "[1,2.0]", 0, 2) "}", 2,
		   "dimension 1 is a non-integer number");
	expect_bad("{" TF("a", "U8", "[1e0]", 0, 1) "}", 1, "non-integer");
	expect_bad("{" TF("a", "U8", "[\"1\"]", 0, 1) "}", 1,
		   "dimension 0 is a string");
	expect_bad("{" TF("a", "U8", "[[1]]", 0, 1) "}", 1, "is an array");
	expect_bad("{" TF("a", "U8", "{}", 0, 1) "}", 1,
		   "shape is an object");
	expect_bad("{" TF("a", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1,
		   "shape has 9 dimensions");
	expect_bad("{" TF("a", "F32", "[1099511627776,1099511627776]", 0, 0)
		   "}", 0, "overflows");
	expect_bad("{" TF("a", "U8",
			  "[4294967296,4294967296]", 0, 0) "}", 0,
		   "overflows");
	expect_bad("{" TF("a", "F64", "[2305843009213693952]", 0, 0) "}", 0,
		   "overflows");
}

static void test_bad_offsets(void)
{
	expect_bad("{" TF("layers.0.w", "F32", "[3,4]", 0, 40) "}", 48,
		   PATH ": tensor \"layers.0.w\": shape [3, 4] of F32 needs "
		   "48 bytes but data_offsets span 40");
	expect_bad("{" TF("a", "U8", "[]", 0, 0) "}", 1,
		   "needs 1 bytes but data_offsets span 0");
	expect_bad("{" TF("a", "U8", "[0]", 0, 1) "}", 1,
		   "needs 0 bytes but data_offsets span 1");
	expect_bad("{" TF("a", "U8", "[2]", 4, 2) "}", 4,
		   "data_offsets [4, 2] end before they begin");
	expect_bad("{" TF("a", "U8", "[2]", 0, 2) "}", 1,
		   "data_offsets [0, 2] run past the end of the data "
		   "(1 bytes)");
	expect_bad("{" TF("a", "U8", "[0]", 5, 5) "}", 1, "run past the end");
	expect_bad("{" TF("a", "U8", "[1]", -1, 0) "}", 1, "non-negative");
	expect_bad("{" TF("a", "U8", "[1]", 0.0, 1) "}", 1, "non-negative");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
		   "\"data_offsets\":[0,1,2]}}", 2, "array of 2 integers");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
		   "\"data_offsets\":1}}", 2, "array of 2 integers");
	expect_bad("{" TF("a", "U8", "[4]", 0, 4) ","
		   TF("b", "U8", "[4]", 3, 7) "}", 8,
		   "tensor \"b\" (data_offsets [3, 7]) overlaps tensor \"a\"");
	expect_bad("{" TF("a", "U8", "[8]", 0, 8) ","
		   TF("b", "U8", "[2]", 3, 5) "}", 8, "overlaps");
	expect_bad("{" TF("a", "U8", "[8]", 0, 8) ","
		   TF("b", "U8", "[8]", 0, 8) "}", 8,
		   "tensor \"b\" (data_offsets [0, 8]) overlaps tensor \"a\"");
	/* The overlap is found past a zero-size tensor in between. */
	expect_bad("{" TF("a", "U8", "[8]", 0, 8) ","
		   TF("m", "U8", "[0]", 6, 6) ","
		   TF("b", "U8", "[2]", 7, 9) "}", 9, "overlaps tensor \"a\"");
}

static void test_message_escaping(void)
{
	char json[1024], want[256];

	/* Control bytes are escaped and long names shortened. */
	expect_bad("{" TF("x\\ny", "U8", "[1]", 0, 2) "}", 2,
		   "tensor \"x\\x0ay\": shape");
	snprintf(json, sizeof(json), "{" TF("%0300d", "U8", "[1]", 0, 2) "}",
		 0);
	snprintf(want, sizeof(want), "tensor \"%0100d\"...: shape", 0);
	expect_bad(json, 2, want);
}

int main(void)
{
	T_RUN(test_empty);
	T_RUN(test_metadata_and_order);
	T_RUN(test_all_dtypes);
	T_RUN(test_scalar_zero_size_gaps);
	T_RUN(test_padding_and_names);
	T_RUN(test_bad_length);
	T_RUN(test_bad_json);
	T_RUN(test_bad_trailing_nul);
	T_RUN(test_bad_entries);
	T_RUN(test_bad_shapes);
	T_RUN(test_bad_offsets);
	T_RUN(test_message_escaping);
	T_EXIT();
}
