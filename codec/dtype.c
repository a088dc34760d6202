/* SPDX-License-Identifier: MIT */
/* dtype.c - safetensors dtypes: names, element sizes, float-ness. */
#include "codec/nwc.h"

#include "codec/format.h"

struct dtype_info {
	const char *name;	/* as written in a safetensors header */
	unsigned size;		/* bytes per element */
	bool is_float;		/* IEEE-like float of 2, 4 or 8 bytes */
};

static const struct dtype_info dtypes[NWC_DTYPE_COUNT] = {
	[NWC_DTYPE_BOOL]	= { "BOOL", 1, false },
	[NWC_DTYPE_U8]		= { "U8", 1, false },
	[NWC_DTYPE_I8]		= { "I8", 1, false },
	[NWC_DTYPE_F8_E5M2]	= { "F8_E5M2", 1, false },
	[NWC_DTYPE_F8_E4M3]	= { "F8_E4M3", 1, false },
	[NWC_DTYPE_I16]		= { "I16", 2, false },
	[NWC_DTYPE_U16]		= { "U16", 2, false },
	[NWC_DTYPE_F16]		= { "F16", 2, true },
	[NWC_DTYPE_BF16]	= { "BF16", 2, true },
	[NWC_DTYPE_I32]		= { "I32", 4, false },
	[NWC_DTYPE_U32]		= { "U32", 4, false },
	[NWC_DTYPE_F32]		= { "F32", 4, true },
	[NWC_DTYPE_I64]		= { "I64", 8, false },
	[NWC_DTYPE_U64]		= { "U64", 8, false },
	[NWC_DTYPE_F64]		= { "F64", 8, true },
};

static const struct dtype_info *dtype_get(unsigned dtype)
{
	if (dtype == 0 || dtype >= NWC_DTYPE_COUNT)
		return NULL;
	return &dtypes[dtype];
}

unsigned nwc_dtype_size(unsigned dtype)
{
	const struct dtype_info *d = dtype_get(dtype);

	return d ? d->size : 0;
}

const char *nwc_dtype_name(unsigned dtype)
{
	const struct dtype_info *d = dtype_get(dtype);

	return d ? d->name : NULL;
}

unsigned nwc_dtype_from_name(const char *name, size_t len)
{
	for (unsigned i = 1; i < NWC_DTYPE_COUNT; i++) {
		const char *n = dtypes[i].name;

		if (strlen(n) == len && !memcmp(n, name, len))
			return i;
	}
	return 0;
}

bool nwc_dtype_is_float(unsigned dtype)
{
	const struct dtype_info *d = dtype_get(dtype);

	return d && d->is_float;
}
