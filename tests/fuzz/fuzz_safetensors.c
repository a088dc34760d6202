/* SPDX-License-Identifier: MIT */
/*
 * fuzz_safetensors.c - fuzz target: a whole .safetensors file to the parser.
 * Each rejected input logs one error line; under libFuzzer pass
 * -close_fd_mask=2 to keep them out of the way.
 */
#include "codec/common/base.h"

#include "codec/input/safetensors.h"
#include "tests/fuzz/fuzz.h"

static int cmp_tensors(const struct nwc_st_tensor *a,
		       const struct nwc_st_tensor *b)
{
	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* What a successful parse promises about every tensor it returns. */
static void check_parsed(const struct nwc_st *st, uint64_t header_len,
			 size_t size)
{
	const struct nwc_st_tensor *prev = NULL;

	FUZZ_ASSERT(st->header_len == header_len);
	FUZZ_ASSERT(st->data_off == 8 + header_len);
	FUZZ_ASSERT(st->data_off <= size);
	FUZZ_ASSERT(st->data_len == size - st->data_off);
	for (size_t i = 0; i < st->n_tensors; i++) {
		const struct nwc_st_tensor *t = &st->tensors[i];
		uint64_t bytes = nwc_dtype_size(t->dtype);

		FUZZ_ASSERT(bytes != 0);
		FUZZ_ASSERT(t->name_len > 0 && t->name_len <= 65535);
		FUZZ_ASSERT(strlen(t->name) == t->name_len);
		FUZZ_ASSERT(t->ndim <= NWC_MAX_DIMS);
		for (unsigned d = 0; d < t->ndim; d++)
			FUZZ_ASSERT(!__builtin_mul_overflow(bytes, t->shape[d],
							    &bytes));
		FUZZ_ASSERT(t->begin <= t->end);
		FUZZ_ASSERT(t->end <= st->data_len);
		FUZZ_ASSERT(t->end - t->begin == bytes);
		if (i)
			FUZZ_ASSERT(cmp_tensors(&st->tensors[i - 1], t) < 0);
		if (t->begin == t->end)
			continue;
		FUZZ_ASSERT(!prev || prev->end <= t->begin);
		prev = t;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nwc_st *st;
	uint64_t n;

	if (nwc_st_header_len(data, size, size, "fuzz", &n))
		return 0;
	FUZZ_ASSERT(n >= 2 && n <= NWC_ST_HEADER_MAX && 8 + n <= size);
	if (nwc_st_parse(data, size, size, "fuzz", &st))
		return 0;
	check_parsed(st, n, size);
	nwc_st_free(st);
	return 0;
}
