/* SPDX-License-Identifier: MIT */
/* fs/cache.c - the decoded-block cache (see cache.h). */
/*
 * Layout: keys are mixed into a 64-bit hash; its high half picks the shard,
 * its low bits the bucket of that shard's chained hash table (doubled when
 * it holds more entries than buckets).  Each shard also keeps an LRU list of
 * its READY entries that nobody references; only those can be evicted.
 *
 * Entry life: a miss inserts a LOADING entry holding the filler's
 * reference, drops the lock and runs fill().  Getters that find it LOADING
 * take a reference and sleep on the shard's condition variable.  Success
 * makes it READY; failure unlinks it and stores the error in the entry, so
 * waiters can still read it: the last reference frees an unlinked entry.
 * A READY entry leaves the table only by eviction, and only at refcount 0.
 *
 * Budget: one global byte count of READY entries (atomic), compared with
 * the whole budget rather than a per-shard share, so a budget of a few
 * blocks still works with many shards.  Whoever pushes the cache over it
 * (a fill, or a put that makes an entry evictable) evicts from its own
 * shard's LRU head first, then from the other shards, one at a time.  LRU
 * order is therefore exact within a shard and approximate across shards.
 *
 * Locking: one mutex per shard guards its table, its LRU list, and every
 * field of its entries except the immutable key, hash and shard.  Lock
 * order: a shard mutex, then the atomics; never two shard mutexes at once.
 * Nothing is held while fill() runs or while evicted buffers are freed.
 * The stats counters are relaxed atomics; bytes uses sequentially
 * consistent operations so a trimmer never misses another's insert.
 */
#include "codec/common/base.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "codec/common/log.h"
#include "fs/cache.h"

#define CACHE_DEFAULT_SHARDS 16
#define CACHE_MAX_SHARDS 4096
#define SHARD_MIN_BUCKETS 16

enum centry_state {
	CENTRY_LOADING,		/* fill() running; getters wait */
	CENTRY_READY,		/* data valid */
	CENTRY_FAILED,		/* fill() failed; unlinked, err set */
};

struct cache_shard;

struct nwc_centry {
	uint64_t key;
	uint64_t hash;
	struct cache_shard *shard;
	struct nwc_centry *hnext;	/* hash chain, then the free list */
	struct nwc_centry *lru_prev;	/* LRU links: READY and refs == 0 */
	struct nwc_centry *lru_next;
	void *data;
	size_t len;
	unsigned refs;
	enum centry_state state;
	int err;			/* fill's error when FAILED */
	_Atomic size_t served;		/* bytes nwc_centry_serve() counted */
};

struct cache_shard {
	_Alignas(64) pthread_mutex_t lock;
	pthread_cond_t filled;		/* a fill in this shard ended */
	struct nwc_centry **buckets;
	size_t nbuckets;		/* power of two */
	size_t count;			/* linked entries, any state */
	struct nwc_centry *lru_head;	/* evicted first */
	struct nwc_centry *lru_tail;	/* most recently released */
};

struct nwc_cache {
	size_t budget;
	unsigned nshards;
	struct cache_shard *shards;
	_Atomic uint64_t bytes;		/* READY bytes linked in all shards */
	_Atomic uint64_t entries;	/* READY entries linked */
	_Atomic uint64_t hits;
	_Atomic uint64_t misses;
	_Atomic uint64_t waits;
	_Atomic uint64_t evictions;
	_Atomic uint64_t used_up;
	_Atomic uint64_t fill_errors;
};

/* Keys are small consecutive integers: spread them over all 64 bits. */
static uint64_t key_hash(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static void stat_inc(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static bool over_budget(struct nwc_cache *cache)
{
	return atomic_load(&cache->bytes) > cache->budget;
}

static struct nwc_centry **bucket_of(struct cache_shard *s, uint64_t hash)
{
	return &s->buckets[hash & (s->nbuckets - 1)];
}

static struct nwc_centry *shard_find(struct cache_shard *s, uint64_t key,
				     uint64_t hash)
{
	struct nwc_centry *e;

	for (e = *bucket_of(s, hash); e; e = e->hnext)
		if (e->key == key)
			return e;
	return NULL;
}

/* Double the table; on allocation failure keep the longer chains. */
static void shard_grow(struct cache_shard *s)
{
	struct nwc_centry **nb, *e, *next;
	size_t n = s->nbuckets * 2, i;

	if (n < s->nbuckets)
		return;
	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (i = 0; i < s->nbuckets; i++) {
		for (e = s->buckets[i]; e; e = next) {
			next = e->hnext;
			e->hnext = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = nb;
	s->nbuckets = n;
}

static void shard_link(struct cache_shard *s, struct nwc_centry *e)
{
	struct nwc_centry **b;

	if (s->count >= s->nbuckets)
		shard_grow(s);
	b = bucket_of(s, e->hash);
	e->hnext = *b;
	*b = e;
	s->count++;
}

static void shard_unlink(struct cache_shard *s, struct nwc_centry *e)
{
	struct nwc_centry **p;

	for (p = bucket_of(s, e->hash); *p; p = &(*p)->hnext) {
		if (*p == e) {
			*p = e->hnext;
			e->hnext = NULL;
			s->count--;
			return;
		}
	}
}

static void lru_add_tail(struct cache_shard *s, struct nwc_centry *e)
{
	e->lru_next = NULL;
	e->lru_prev = s->lru_tail;
	if (s->lru_tail)
		s->lru_tail->lru_next = e;
	else
		s->lru_head = e;
	s->lru_tail = e;
}

static void lru_del(struct cache_shard *s, struct nwc_centry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		s->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		s->lru_tail = e->lru_prev;
	e->lru_prev = NULL;
	e->lru_next = NULL;
}

static void centry_free(struct nwc_centry *e)
{
	if (!e)
		return;
	free(e->data);
	free(e);
}

/*
 * Frees the entries shard_trim() evicted (chained through hnext), naming
 * them at debug level; called with no lock held.
 */
static void evicted_free_list(struct nwc_centry *e)
{
	struct nwc_centry *next;

	for (; e; e = next) {
		next = e->hnext;
		nwc_dbg("cache: evicted key %#llx (%zu bytes)",
			(unsigned long long)e->key, e->len);
		centry_free(e);
	}
}

/*
 * Evict unreferenced entries of @s, least recently released first, while
 * the cache is over budget.  Called with s->lock held; the victims go on
 * *dead to be freed after unlocking.
 */
static void shard_trim(struct nwc_cache *cache, struct cache_shard *s,
		       struct nwc_centry **dead)
{
	struct nwc_centry *e;

	while (s->lru_head && over_budget(cache)) {
		e = s->lru_head;
		lru_del(s, e);
		shard_unlink(s, e);
		atomic_fetch_sub(&cache->bytes, e->len);
		atomic_fetch_sub_explicit(&cache->entries, 1,
					  memory_order_relaxed);
		stat_inc(&cache->evictions);
		e->hnext = *dead;
		*dead = e;
	}
}

/* Still over budget after trimming @own: evict from the other shards. */
static void cache_trim_others(struct nwc_cache *cache,
			      const struct cache_shard *own)
{
	unsigned first = (unsigned)(own - cache->shards), i;
	struct nwc_centry *dead;
	struct cache_shard *s;

	for (i = 1; i < cache->nshards && over_budget(cache); i++) {
		s = &cache->shards[(first + i) % cache->nshards];
		dead = NULL;
		pthread_mutex_lock(&s->lock);
		shard_trim(cache, s, &dead);
		pthread_mutex_unlock(&s->lock);
		evicted_free_list(dead);
	}
}

static void shards_fini(struct cache_shard *shards, unsigned n)
{
	struct nwc_centry *e, *next;
	unsigned i;
	size_t b;

	for (i = 0; i < n; i++) {
		struct cache_shard *s = &shards[i];

		for (b = 0; b < s->nbuckets; b++) {
			for (e = s->buckets[b]; e; e = next) {
				next = e->hnext;
				centry_free(e);
			}
		}
		free(s->buckets);
		pthread_cond_destroy(&s->filled);
		pthread_mutex_destroy(&s->lock);
	}
}

static int shard_init(struct cache_shard *s)
{
	int ret;

	s->buckets = calloc(SHARD_MIN_BUCKETS, sizeof(*s->buckets));
	if (!s->buckets)
		return -ENOMEM;
	s->nbuckets = SHARD_MIN_BUCKETS;
	ret = pthread_mutex_init(&s->lock, NULL);
	if (ret)
		goto out_free_buckets;
	ret = pthread_cond_init(&s->filled, NULL);
	if (ret)
		goto out_destroy_lock;
	return 0;

out_destroy_lock:
	pthread_mutex_destroy(&s->lock);
out_free_buckets:
	free(s->buckets);
	s->buckets = NULL;
	return -ret;
}

int nwc_cache_create(size_t budget, unsigned nshards, struct nwc_cache **out)
{
	struct nwc_cache *cache;
	unsigned i;
	int ret;

	if (!nshards)
		nshards = CACHE_DEFAULT_SHARDS;
	if (nshards > CACHE_MAX_SHARDS)
		return -EINVAL;
	cache = calloc(1, sizeof(*cache));
	if (!cache)
		return -ENOMEM;
	/* sizeof is a multiple of 64 thanks to _Alignas: no false sharing. */
	cache->shards = aligned_alloc(_Alignof(struct cache_shard),
				      nshards * sizeof(*cache->shards));
	if (!cache->shards) {
		ret = -ENOMEM;
		goto out_free_cache;
	}
	memset(cache->shards, 0, nshards * sizeof(*cache->shards));
	for (i = 0; i < nshards; i++) {
		ret = shard_init(&cache->shards[i]);
		if (ret)
			goto out_fini_shards;
	}
	cache->budget = budget;
	cache->nshards = nshards;
	*out = cache;
	return 0;

out_fini_shards:
	shards_fini(cache->shards, i);
	free(cache->shards);
out_free_cache:
	free(cache);
	return ret;
}

void nwc_cache_destroy(struct nwc_cache *cache)
{
	if (!cache)
		return;
	shards_fini(cache->shards, cache->nshards);
	free(cache->shards);
	free(cache);
}

/* Wait for another thread's fill of @e, holding a reference to it. */
static int cache_wait(struct nwc_cache *cache, struct cache_shard *s,
		      struct nwc_centry *e, struct nwc_centry **out)
{
	struct nwc_centry *dead = NULL;
	int ret;

	stat_inc(&cache->waits);
	while (e->state == CENTRY_LOADING)
		pthread_cond_wait(&s->filled, &s->lock);
	if (e->state == CENTRY_READY) {
		pthread_mutex_unlock(&s->lock);
		*out = e;
		return 0;
	}
	ret = e->err;
	if (!--e->refs)
		dead = e;
	pthread_mutex_unlock(&s->lock);
	centry_free(dead);
	return ret;
}

/* Run @fill for the LOADING entry @e that this thread inserted. */
static int cache_fill(struct nwc_cache *cache, struct cache_shard *s,
		      struct nwc_centry *e, nwc_cache_fill_fn fill, void *arg,
		      struct nwc_centry **out)
{
	struct nwc_centry *dead = NULL;
	void *data = NULL;
	size_t len = 0;
	int ret;

	ret = fill(arg, e->key, &data, &len);
	if (ret > 0 || (!ret && !data && len))
		ret = -EIO;

	pthread_mutex_lock(&s->lock);
	if (ret) {
		shard_unlink(s, e);
		e->state = CENTRY_FAILED;
		e->err = ret;
		if (!--e->refs)
			dead = e;
		pthread_cond_broadcast(&s->filled);
		pthread_mutex_unlock(&s->lock);
		stat_inc(&cache->fill_errors);
		centry_free(dead);
		return ret;
	}
	e->data = data;
	e->len = len;
	e->state = CENTRY_READY;
	atomic_fetch_add(&cache->bytes, len);
	atomic_fetch_add_explicit(&cache->entries, 1, memory_order_relaxed);
	pthread_cond_broadcast(&s->filled);
	shard_trim(cache, s, &dead);
	pthread_mutex_unlock(&s->lock);
	evicted_free_list(dead);
	if (over_budget(cache))
		cache_trim_others(cache, s);
	*out = e;
	return 0;
}

int nwc_cache_get(struct nwc_cache *cache, uint64_t key, nwc_cache_fill_fn fill,
		  void *arg, struct nwc_centry **out)
{
	uint64_t hash = key_hash(key);
	struct cache_shard *s = &cache->shards[(hash >> 32) % cache->nshards];
	struct nwc_centry *e;

	pthread_mutex_lock(&s->lock);
	e = shard_find(s, key, hash);
	if (e) {
		if (!e->refs++ && e->state == CENTRY_READY)
			lru_del(s, e);
		if (e->state == CENTRY_LOADING)
			return cache_wait(cache, s, e, out);
		pthread_mutex_unlock(&s->lock);
		stat_inc(&cache->hits);
		*out = e;
		return 0;
	}

	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		return -ENOMEM;
	}
	e->key = key;
	e->hash = hash;
	e->shard = s;
	e->refs = 1;
	e->state = CENTRY_LOADING;
	shard_link(s, e);
	pthread_mutex_unlock(&s->lock);
	stat_inc(&cache->misses);
	return cache_fill(cache, s, e, fill, arg, out);
}

bool nwc_cache_contains(struct nwc_cache *cache, uint64_t key)
{
	uint64_t hash = key_hash(key);
	struct cache_shard *s = &cache->shards[(hash >> 32) % cache->nshards];
	bool found;

	pthread_mutex_lock(&s->lock);
	found = shard_find(s, key, hash) != NULL;
	pthread_mutex_unlock(&s->lock);
	return found;
}

void nwc_cache_put(struct nwc_cache *cache, struct nwc_centry *e)
{
	struct cache_shard *s;
	struct nwc_centry *dead = NULL;

	if (!e)
		return;
	s = e->shard;
	pthread_mutex_lock(&s->lock);
	if (--e->refs) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (e->state != CENTRY_READY) {
		/* A failed fill's entry, already unlinked. */
		pthread_mutex_unlock(&s->lock);
		centry_free(e);
		return;
	}
	lru_add_tail(s, e);
	shard_trim(cache, s, &dead);
	pthread_mutex_unlock(&s->lock);
	evicted_free_list(dead);
	if (over_budget(cache))
		cache_trim_others(cache, s);
}

void nwc_cache_put_used(struct nwc_cache *cache, struct nwc_centry *e)
{
	struct cache_shard *s = e->shard;

	pthread_mutex_lock(&s->lock);
	/* Held elsewhere, or a failed fill's (already unlinked): as put. */
	if (e->refs > 1 || e->state != CENTRY_READY) {
		pthread_mutex_unlock(&s->lock);
		nwc_cache_put(cache, e);
		return;
	}
	e->refs = 0;
	shard_unlink(s, e);
	atomic_fetch_sub(&cache->bytes, e->len);
	atomic_fetch_sub_explicit(&cache->entries, 1, memory_order_relaxed);
	pthread_mutex_unlock(&s->lock);
	stat_inc(&cache->used_up);
	centry_free(e);
}

bool nwc_centry_serve(struct nwc_centry *e, size_t n)
{
	return atomic_fetch_add_explicit(&e->served, n, memory_order_relaxed) +
		       n >= e->len;
}

const uint8_t *nwc_centry_data(const struct nwc_centry *e)
{
	return e->data;
}

size_t nwc_centry_len(const struct nwc_centry *e)
{
	return e->len;
}

void nwc_cache_get_stats(struct nwc_cache *cache, struct nwc_cache_stats *out)
{
	out->hits = atomic_load_explicit(&cache->hits, memory_order_relaxed);
	out->misses = atomic_load_explicit(&cache->misses,
					   memory_order_relaxed);
	out->waits = atomic_load_explicit(&cache->waits, memory_order_relaxed);
	out->evictions = atomic_load_explicit(&cache->evictions,
					      memory_order_relaxed);
	out->used_up = atomic_load_explicit(&cache->used_up,
					    memory_order_relaxed);
	out->fill_errors = atomic_load_explicit(&cache->fill_errors,
						memory_order_relaxed);
	out->bytes = atomic_load(&cache->bytes);
	out->entries = atomic_load_explicit(&cache->entries,
					    memory_order_relaxed);
}
