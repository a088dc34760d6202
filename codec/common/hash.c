/* SPDX-License-Identifier: MIT */
/* hash.c - the only file that includes <xxhash.h>. */
#include "codec/common/base.h"

#include <xxhash.h>

#include "codec/common/hash.h"

uint64_t nwc_hash64(const void *buf, size_t len)
{
	return XXH3_64bits(buf, len);
}

int nwc_hash_create(struct nwc_hash_state **out)
{
	XXH3_state_t *st = XXH3_createState();

	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	*out = (struct nwc_hash_state *)st;
	return 0;
}

void nwc_hash_update(struct nwc_hash_state *st, const void *buf, size_t len)
{
	XXH3_64bits_update((XXH3_state_t *)st, buf, len);
}

uint64_t nwc_hash_digest(const struct nwc_hash_state *st)
{
	return XXH3_64bits_digest((const XXH3_state_t *)st);
}

void nwc_hash_free(struct nwc_hash_state *st)
{
	XXH3_freeState((XXH3_state_t *)st);
}
