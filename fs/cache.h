/* SPDX-License-Identifier: MIT */
/*
 * cache.h - decoded-block cache: sharded LRU with a byte budget, refcounted
 * entries and single-flight fills.
 *
 *	struct nwc_centry *e;
 *	ret = nwc_cache_get(cache, key, fill, arg, &e);
 *	if (!ret) {
 *		memcpy(dst, nwc_centry_data(e) + off, n);
 *		nwc_cache_put(cache, e);
 *	}
 *
 * A miss calls @fill exactly once per key however many threads ask at the
 * same time: the others sleep until that fill ends and then share its result
 * (or its error, which is not cached).  Entries are freed only when evicted
 * and no longer referenced, so a reader's buffer never disappears under it.
 * The budget counts decoded bytes; referenced entries are never evicted, so
 * the cache may exceed the budget while readers hold more than it.
 *
 * Thread safety: internally locked; share one cache between all threads.
 * Lock order: shard mutex only.  No lock is held while @fill runs.
 */
#ifndef NWC_CACHE_H
#define NWC_CACHE_H

#include "codec/common/base.h"

struct nwc_cache;
struct nwc_centry;

/*
 * Produce the value for @key: set *data to a malloc'd buffer of *len bytes
 * (the cache takes ownership and frees it with free()).  Returns 0 or -errno.
 */
typedef int (*nwc_cache_fill_fn)(void *arg, uint64_t key, void **data,
				 size_t *len);

struct nwc_cache_stats {
	uint64_t hits;		/* gets served from a ready entry */
	uint64_t misses;	/* gets that ran a fill */
	uint64_t waits;		/* gets that waited for another thread's fill */
	uint64_t evictions;	/* entries dropped to honour the budget */
	uint64_t used_up;	/* entries dropped by nwc_cache_put_used() */
	uint64_t fill_errors;	/* fills that returned an error */
	uint64_t bytes;		/* decoded bytes held now */
	uint64_t entries;	/* entries held now */
};

/* Create a cache holding about @budget bytes in @nshards shards (0: 16). */
int nwc_cache_create(size_t budget, unsigned nshards, struct nwc_cache **out);

/* Free everything; no entry may still be referenced.  Accepts NULL. */
void nwc_cache_destroy(struct nwc_cache *cache);

/*
 * nwc_cache_get() - find @key or fill it.  On success *out is a referenced
 * entry that the caller must release with nwc_cache_put().  Returns 0, or
 * the error of the fill that ran for this key.
 */
int nwc_cache_get(struct nwc_cache *cache, uint64_t key, nwc_cache_fill_fn fill,
		  void *arg, struct nwc_centry **out);

/* True if @key is ready or being filled (for prefetch: skip the work). */
bool nwc_cache_contains(struct nwc_cache *cache, uint64_t key);

void nwc_cache_put(struct nwc_cache *cache, struct nwc_centry *e);

/*
 * nwc_cache_put_used() - nwc_cache_put(), and the caller has used @e up
 * (readers have had all of it): unless another thread still holds it, it
 * leaves the cache now instead of waiting for the budget to push it out,
 * so that a stream recycles a few blocks' memory instead of filling the
 * whole budget with blocks nobody will ask for again.
 */
void nwc_cache_put_used(struct nwc_cache *cache, struct nwc_centry *e);

const uint8_t *nwc_centry_data(const struct nwc_centry *e);

/*
 * Count @n more bytes of @e handed to readers; true once the count reaches
 * its length.  A reader through the kernel's page cache asks for each byte
 * once while the page holding it stays cached, so by then every byte is
 * there and the entry can go (nwc_cache_put_used()).
 */
bool nwc_centry_serve(struct nwc_centry *e, size_t n);
size_t nwc_centry_len(const struct nwc_centry *e);

void nwc_cache_get_stats(struct nwc_cache *cache, struct nwc_cache_stats *out);

#endif /* NWC_CACHE_H */
