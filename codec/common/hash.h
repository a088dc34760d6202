/* SPDX-License-Identifier: MIT */
/*
 * hash.h - the project's checksum: XXH3-64, used for every on-disk structure.
 * Pure functions; thread-safe.
 */
#ifndef NWC_HASH_H
#define NWC_HASH_H

#include "codec/common/base.h"

/* nwc_hash64() - XXH3-64 of @len bytes at @buf (seed 0). */
uint64_t nwc_hash64(const void *buf, size_t len);

/* Streaming form, for data that does not sit in one buffer. */
struct nwc_hash_state;
int nwc_hash_create(struct nwc_hash_state **out);
void nwc_hash_update(struct nwc_hash_state *st, const void *buf, size_t len);
uint64_t nwc_hash_digest(const struct nwc_hash_state *st);
void nwc_hash_free(struct nwc_hash_state *st);

#endif /* NWC_HASH_H */
