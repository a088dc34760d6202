/* SPDX-License-Identifier: MIT */
/* tests/test_cache.c - unit tests of the block cache and the work queue. */
#include "codec/common/base.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "fs/cache.h"
#include "fs/workq.h"
#include "tests/t.h"

#define NKEYS 256

/* What the fill callback does; one per test. */
struct src {
	size_t len;			/* block length, or 0: key_len() */
	int err;			/* fail with this when nonzero */
	bool yield;			/* widen the fill window */
	struct nwc_cache *cache;	/* with hold_waits: whose stats */
	uint64_t hold_waits;		/* sleep until this many gets wait */
	atomic_int fills[NKEYS];
	atomic_int filling[NKEYS];
	atomic_int max_filling;		/* most fills of one key at once */
};

static size_t key_len(uint64_t key)
{
	return 64 + (key % 13) * 16;
}

static uint8_t pat(uint64_t key, size_t i)
{
	return (uint8_t)(key * 37 + i * 11 + (i >> 8) + 1);
}

static bool entry_ok(const struct nwc_centry *e, uint64_t key, size_t len)
{
	const uint8_t *p = nwc_centry_data(e);
	size_t i;

	if (nwc_centry_len(e) != len || !p)
		return false;
	for (i = 0; i < len; i++)
		if (p[i] != pat(key, i))
			return false;
	return true;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static uint64_t cache_waits(struct nwc_cache *cache)
{
	struct nwc_cache_stats st;

	nwc_cache_get_stats(cache, &st);
	return st.waits;
}

/* Sleep at least 50 ms and until the expected waiters (2 s at most). */
static void hold_fill(struct src *src)
{
	double t0 = now_s();

	while (now_s() - t0 < 0.05 ||
	       (cache_waits(src->cache) < src->hold_waits &&
		now_s() - t0 < 2.0))
		sleep_ms(1);
}

static int test_fill(void *arg, uint64_t key, void **data, size_t *len)
{
	struct src *src = arg;
	size_t n = src->len ? src->len : key_len(key);
	int now, max, ret = 0;
	uint8_t *buf = NULL;
	size_t i;

	if (key >= NKEYS)
		return -EINVAL;
	now = atomic_fetch_add(&src->filling[key], 1) + 1;
	max = atomic_load(&src->max_filling);
	while (now > max &&
	       !atomic_compare_exchange_weak(&src->max_filling, &max, now))
		;
	atomic_fetch_add(&src->fills[key], 1);
	if (src->hold_waits)
		hold_fill(src);
	if (src->yield)
		sched_yield();
	if (src->err) {
		ret = src->err;
		goto out;
	}
	buf = malloc(n);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		buf[i] = pat(key, i);
	*data = buf;
	*len = n;
out:
	atomic_fetch_sub(&src->filling[key], 1);
	return ret;
}

/* get + check + put; returns the fill's error or 0. */
static int touch(struct nwc_cache *cache, struct src *src, uint64_t key)
{
	struct nwc_centry *e;
	int ret;

	ret = nwc_cache_get(cache, key, test_fill, src, &e);
	if (ret)
		return ret;
	T_CHECK(entry_ok(e, key, src->len ? src->len : key_len(key)));
	nwc_cache_put(cache, e);
	return 0;
}

static struct nwc_cache_stats stats(struct nwc_cache *cache)
{
	struct nwc_cache_stats st;

	nwc_cache_get_stats(cache, &st);
	return st;
}

static void test_cache_args(void)
{
	struct nwc_cache *cache = NULL;

	T_EQ(nwc_cache_create(1000, 100000, &cache), -EINVAL);
	T_CHECK(cache == NULL);
	T_EQ(nwc_cache_create(1000, 0, &cache), 0);
	T_CHECK(cache != NULL);
	nwc_cache_destroy(cache);
	nwc_cache_destroy(NULL);
}

static void test_cache_basic(void)
{
	static struct src src;
	struct nwc_cache *cache;
	struct nwc_centry *e1, *e2, *e3;
	struct nwc_cache_stats st;

	T_EQ(nwc_cache_create(1 << 20, 4, &cache), 0);
	T_CHECK(!nwc_cache_contains(cache, 1));

	T_EQ(nwc_cache_get(cache, 1, test_fill, &src, &e1), 0);
	T_CHECK(entry_ok(e1, 1, key_len(1)));
	T_EQ(src.fills[1], 1);
	/* Second reference while the first is held: same entry, no fill. */
	T_EQ(nwc_cache_get(cache, 1, test_fill, &src, &e2), 0);
	T_CHECK(e1 == e2);
	T_EQ(src.fills[1], 1);
	nwc_cache_put(cache, e1);
	nwc_cache_put(cache, e2);

	T_EQ(nwc_cache_get(cache, 1, test_fill, &src, &e3), 0);
	T_CHECK(nwc_centry_data(e3) == nwc_centry_data(e1));
	T_EQ(src.fills[1], 1);
	nwc_cache_put(cache, e3);

	T_EQ(touch(cache, &src, 2), 0);
	T_CHECK(nwc_cache_contains(cache, 1));
	T_CHECK(nwc_cache_contains(cache, 2));
	T_CHECK(!nwc_cache_contains(cache, 3));

	st = stats(cache);
	T_EQ(st.hits, 2);
	T_EQ(st.misses, 2);
	T_EQ(st.waits, 0);
	T_EQ(st.evictions, 0);
	T_EQ(st.fill_errors, 0);
	T_EQ(st.entries, 2);
	T_EQ(st.bytes, key_len(1) + key_len(2));
	nwc_cache_destroy(cache);
}

/* One shard: eviction follows the exact LRU order. */
static void test_cache_lru(void)
{
	static struct src src = { .len = 1000 };
	struct nwc_cache *cache;
	struct nwc_cache_stats st;
	uint64_t k;

	T_EQ(nwc_cache_create(10 * 1000, 1, &cache), 0);
	for (k = 0; k < 10; k++)
		T_EQ(touch(cache, &src, k), 0);
	st = stats(cache);
	T_EQ(st.bytes, 10000);
	T_EQ(st.evictions, 0);

	T_EQ(touch(cache, &src, 0), 0);		/* 0 is now the newest */
	T_EQ(touch(cache, &src, 10), 0);	/* evicts 1 */
	T_CHECK(nwc_cache_contains(cache, 0));
	T_CHECK(!nwc_cache_contains(cache, 1));
	T_CHECK(nwc_cache_contains(cache, 2));
	T_CHECK(nwc_cache_contains(cache, 10));
	T_EQ(touch(cache, &src, 11), 0);	/* evicts 2 */
	T_CHECK(!nwc_cache_contains(cache, 2));
	T_CHECK(nwc_cache_contains(cache, 3));
	T_CHECK(nwc_cache_contains(cache, 0));
	st = stats(cache);
	T_EQ(st.bytes, 10000);
	T_EQ(st.entries, 10);
	T_EQ(st.evictions, 2);

	/* Evicted 1 is filled again and evicts 3; 0 stays a hit. */
	T_EQ(touch(cache, &src, 1), 0);
	T_EQ(src.fills[1], 2);
	T_CHECK(!nwc_cache_contains(cache, 3));
	T_EQ(touch(cache, &src, 0), 0);
	T_EQ(src.fills[0], 1);
	st = stats(cache);
	T_EQ(st.bytes, 10000);
	T_EQ(st.evictions, 3);
	nwc_cache_destroy(cache);
}

/* Several shards share one budget. */
static void test_cache_budget_shards(void)
{
	static struct src src = { .len = 1000 };
	struct nwc_cache *cache;
	struct nwc_cache_stats st;
	uint64_t k;
	int bad = 0;

	T_EQ(nwc_cache_create(10 * 1000, 4, &cache), 0);
	for (k = 0; k < 40; k++) {
		T_EQ(touch(cache, &src, k), 0);
		if (stats(cache).bytes > 10000)
			bad++;
		if (!nwc_cache_contains(cache, k))
			bad++;
	}
	T_EQ(bad, 0);
	st = stats(cache);
	T_EQ(st.bytes, 10000);
	T_EQ(st.entries, 10);
	T_EQ(st.evictions, 30);
	T_CHECK(!nwc_cache_contains(cache, 0));
	nwc_cache_destroy(cache);
}

static void test_cache_referenced(void)
{
	static struct src src = { .len = 1000 };
	struct nwc_centry *held[4], *again;
	struct nwc_cache *cache;
	struct nwc_cache_stats st;
	uint64_t k;
	int i;

	T_EQ(nwc_cache_create(3000, 1, &cache), 0);
	T_EQ(nwc_cache_get(cache, 100, test_fill, &src, &held[0]), 0);
	for (k = 0; k < 10; k++)
		T_EQ(touch(cache, &src, k), 0);
	T_CHECK(nwc_cache_contains(cache, 100));
	T_CHECK(entry_ok(held[0], 100, 1000));
	st = stats(cache);
	T_EQ(st.bytes, 3000);
	T_EQ(st.entries, 3);

	/* Hold more than the budget: nothing held may go. */
	for (i = 1; i < 4; i++)
		T_EQ(nwc_cache_get(cache, 100 + i, test_fill, &src, &held[i]),
		     0);
	st = stats(cache);
	T_EQ(st.bytes, 4000);
	T_EQ(st.entries, 4);
	for (k = 0; k < 10; k++)
		T_CHECK(!nwc_cache_contains(cache, k));
	T_EQ(touch(cache, &src, 20), 0);	/* filled, evicted on put */
	T_CHECK(!nwc_cache_contains(cache, 20));
	for (i = 0; i < 4; i++) {
		T_CHECK(nwc_cache_contains(cache, 100 + i));
		T_CHECK(entry_ok(held[i], 100 + i, 1000));
		T_EQ(src.fills[100 + i], 1);
	}
	T_EQ(nwc_cache_get(cache, 100, test_fill, &src, &again), 0);
	T_CHECK(again == held[0]);
	nwc_cache_put(cache, again);

	/* Released in order: the first one released is the first to go. */
	for (i = 0; i < 4; i++)
		nwc_cache_put(cache, held[i]);
	T_CHECK(!nwc_cache_contains(cache, 100));
	T_CHECK(nwc_cache_contains(cache, 101));
	st = stats(cache);
	T_EQ(st.bytes, 3000);
	T_EQ(st.entries, 3);
	nwc_cache_destroy(cache);
}

static void test_cache_oversized(void)
{
	static struct src src = { .len = 5000 };
	struct nwc_cache *cache;
	struct nwc_centry *e;
	struct nwc_cache_stats st;

	T_EQ(nwc_cache_create(1000, 2, &cache), 0);
	T_EQ(nwc_cache_get(cache, 5, test_fill, &src, &e), 0);
	T_CHECK(entry_ok(e, 5, 5000));
	T_CHECK(nwc_cache_contains(cache, 5));
	T_EQ(stats(cache).bytes, 5000);
	nwc_cache_put(cache, e);
	T_CHECK(!nwc_cache_contains(cache, 5));
	st = stats(cache);
	T_EQ(st.bytes, 0);
	T_EQ(st.entries, 0);
	T_EQ(st.evictions, 1);
	nwc_cache_destroy(cache);
}

static void test_cache_fill_error(void)
{
	static struct src src = { .err = -EIO };
	struct nwc_cache *cache;
	struct nwc_centry *e = NULL;
	struct nwc_cache_stats st;

	T_EQ(nwc_cache_create(1 << 20, 0, &cache), 0);
	T_EQ(nwc_cache_get(cache, 7, test_fill, &src, &e), -EIO);
	T_CHECK(e == NULL);
	T_CHECK(!nwc_cache_contains(cache, 7));
	T_EQ(nwc_cache_get(cache, 7, test_fill, &src, &e), -EIO);
	T_EQ(src.fills[7], 2);

	src.err = 0;
	T_EQ(nwc_cache_get(cache, 7, test_fill, &src, &e), 0);
	T_EQ(src.fills[7], 3);
	T_CHECK(entry_ok(e, 7, key_len(7)));
	nwc_cache_put(cache, e);
	st = stats(cache);
	T_EQ(st.misses, 3);
	T_EQ(st.fill_errors, 2);
	T_EQ(st.hits, 0);
	T_EQ(st.entries, 1);
	nwc_cache_destroy(cache);
}

#define SF_THREADS 8

struct sf_ctx {
	struct nwc_cache *cache;
	struct src *src;
	pthread_barrier_t *bar;
	uint64_t key;
	const uint8_t *data;
	bool data_ok;
	int ret;
};

static void *sf_thread(void *p)
{
	struct sf_ctx *c = p;
	struct nwc_centry *e;

	pthread_barrier_wait(c->bar);
	c->ret = nwc_cache_get(c->cache, c->key, test_fill, c->src, &e);
	if (!c->ret) {
		c->data = nwc_centry_data(e);
		c->data_ok = entry_ok(e, c->key, key_len(c->key));
		nwc_cache_put(c->cache, e);
	}
	return NULL;
}

static void single_flight(struct src *src, uint64_t key,
			  struct sf_ctx ctx[SF_THREADS], struct nwc_cache **out)
{
	pthread_t th[SF_THREADS];
	pthread_barrier_t bar;
	struct nwc_cache *cache;
	int i;

	T_EQ(nwc_cache_create(1 << 20, 4, &cache), 0);
	src->cache = cache;
	src->hold_waits = SF_THREADS - 1;
	pthread_barrier_init(&bar, NULL, SF_THREADS);
	for (i = 0; i < SF_THREADS; i++) {
		ctx[i] = (struct sf_ctx){ .cache = cache, .src = src,
					  .bar = &bar, .key = key, .ret = 1 };
		T_EQ(pthread_create(&th[i], NULL, sf_thread, &ctx[i]), 0);
	}
	for (i = 0; i < SF_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	*out = cache;
}

static void test_cache_single_flight(void)
{
	static struct src src;
	struct sf_ctx ctx[SF_THREADS];
	struct nwc_cache *cache;
	struct nwc_cache_stats st;
	int i;

	single_flight(&src, 42, ctx, &cache);
	T_EQ(src.fills[42], 1);
	for (i = 0; i < SF_THREADS; i++) {
		T_EQ(ctx[i].ret, 0);
		T_CHECK(ctx[i].data_ok);
		T_CHECK(ctx[i].data == ctx[0].data);
	}
	st = stats(cache);
	T_EQ(st.misses, 1);
	T_EQ(st.waits, SF_THREADS - 1);
	T_EQ(st.hits, 0);
	T_EQ(st.entries, 1);
	nwc_cache_destroy(cache);
}

static void test_cache_single_flight_error(void)
{
	static struct src src = { .err = -NWC_ECORRUPT };
	struct sf_ctx ctx[SF_THREADS];
	struct nwc_cache *cache;
	struct nwc_cache_stats st;
	int i;

	single_flight(&src, 43, ctx, &cache);
	T_EQ(src.fills[43], 1);
	for (i = 0; i < SF_THREADS; i++)
		T_EQ(ctx[i].ret, -NWC_ECORRUPT);
	T_CHECK(!nwc_cache_contains(cache, 43));
	st = stats(cache);
	T_EQ(st.misses, 1);
	T_EQ(st.fill_errors, 1);
	T_EQ(st.waits, SF_THREADS - 1);
	T_EQ(st.entries, 0);
	T_EQ(st.bytes, 0);
	nwc_cache_destroy(cache);
}

#define ST_THREADS 8
#define ST_GETS 20000
#define ST_KEYS 200
#define ST_BUDGET 4096

struct st_ctx {
	struct nwc_cache *cache;
	struct src *src;
	uint64_t seed;
	int bad;
};

static void *stress_thread(void *p)
{
	struct st_ctx *c = p;
	struct nwc_centry *e;
	uint64_t key;
	int i;

	for (i = 0; i < ST_GETS; i++) {
		key = t_rand(&c->seed) % ST_KEYS;
		if (nwc_cache_get(c->cache, key, test_fill, c->src, &e)) {
			c->bad++;
			continue;
		}
		if (!entry_ok(e, key, key_len(key)))
			c->bad++;
		if (!(i % 16)) {
			/* Hold the reference while others evict. */
			sched_yield();
			if (!entry_ok(e, key, key_len(key)))
				c->bad++;
		}
		nwc_cache_put(c->cache, e);
	}
	return NULL;
}

static void test_cache_stress(void)
{
	static struct src src = { .yield = true };
	struct st_ctx ctx[ST_THREADS];
	pthread_t th[ST_THREADS];
	struct nwc_cache *cache;
	struct nwc_cache_stats st;
	long fills = 0;
	int i, bad = 0;

	T_EQ(nwc_cache_create(ST_BUDGET, 4, &cache), 0);
	for (i = 0; i < ST_THREADS; i++) {
		ctx[i] = (struct st_ctx){ .cache = cache, .src = &src,
					  .seed = 1000 + (uint64_t)i };
		T_EQ(pthread_create(&th[i], NULL, stress_thread, &ctx[i]), 0);
	}
	for (i = 0; i < ST_THREADS; i++) {
		pthread_join(th[i], NULL);
		bad += ctx[i].bad;
	}
	T_EQ(bad, 0);
	T_EQ(src.max_filling, 1);
	for (i = 0; i < ST_KEYS; i++)
		fills += src.fills[i];

	st = stats(cache);
	T_EQ(st.hits + st.misses + st.waits, ST_THREADS * ST_GETS);
	T_EQ(st.misses, fills);
	T_EQ(st.fill_errors, 0);
	T_EQ(st.misses, st.entries + st.evictions);
	T_CHECK(st.evictions > 1000);
	T_CHECK(st.bytes <= ST_BUDGET);
	nwc_cache_destroy(cache);
}

/* Work queue: one gate job blocks a worker until opened. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool started;
	bool open;
	bool finished;
	atomic_int ran;
	atomic_int discarded;
	atomic_int norder;
	int order[64];
} wq_t = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void wq_reset(void)
{
	pthread_mutex_lock(&wq_t.lock);
	wq_t.started = false;
	wq_t.open = false;
	wq_t.finished = false;
	pthread_mutex_unlock(&wq_t.lock);
	wq_t.ran = 0;
	wq_t.discarded = 0;
	wq_t.norder = 0;
}

static void gate_job(void *arg NWC_UNUSED)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 3;
	pthread_mutex_lock(&wq_t.lock);
	wq_t.started = true;
	pthread_cond_broadcast(&wq_t.cond);
	while (!wq_t.open &&
	       pthread_cond_timedwait(&wq_t.cond, &wq_t.lock, &deadline) == 0)
		;
	wq_t.finished = true;
	pthread_mutex_unlock(&wq_t.lock);
}

static void gate_wait_started(void)
{
	pthread_mutex_lock(&wq_t.lock);
	while (!wq_t.started)
		pthread_cond_wait(&wq_t.cond, &wq_t.lock);
	pthread_mutex_unlock(&wq_t.lock);
}

static void gate_open(void)
{
	pthread_mutex_lock(&wq_t.lock);
	wq_t.open = true;
	pthread_cond_broadcast(&wq_t.cond);
	pthread_mutex_unlock(&wq_t.lock);
}

static bool gate_finished(void)
{
	bool f;

	pthread_mutex_lock(&wq_t.lock);
	f = wq_t.finished;
	pthread_mutex_unlock(&wq_t.lock);
	return f;
}

static void count_job(void *arg)
{
	int n = atomic_fetch_add(&wq_t.norder, 1);

	if (n < (int)NWC_ARRAY_SIZE(wq_t.order))
		wq_t.order[n] = (int)(intptr_t)arg;
	atomic_fetch_add(&wq_t.ran, 1);
}

static void count_discard(void *arg NWC_UNUSED)
{
	atomic_fetch_add(&wq_t.discarded, 1);
	gate_open();
}

static void test_workq_run(void)
{
	struct nwc_workq *wq = NULL;
	int i, inorder = 0;

	T_EQ(nwc_workq_create(0, 4, &wq), -EINVAL);
	T_EQ(nwc_workq_create(1, 0, &wq), -EINVAL);
	T_CHECK(wq == NULL);
	nwc_workq_destroy(NULL, NULL);

	/* One worker runs jobs in submission order. */
	wq_reset();
	T_EQ(nwc_workq_create(1, 64, &wq), 0);
	nwc_workq_drain(wq);
	for (i = 0; i < 50; i++)
		T_EQ(nwc_workq_submit(wq, count_job, (void *)(intptr_t)i), 0);
	nwc_workq_drain(wq);
	T_EQ(wq_t.ran, 50);
	for (i = 0; i < 50; i++)
		inorder += wq_t.order[i] == i;
	T_EQ(inorder, 50);
	nwc_workq_destroy(wq, count_discard);
	T_EQ(wq_t.discarded, 0);

	wq_reset();
	T_EQ(nwc_workq_create(3, 64, &wq), 0);
	for (i = 0; i < 60; i++)
		T_EQ(nwc_workq_submit(wq, count_job, (void *)(intptr_t)i), 0);
	nwc_workq_drain(wq);
	T_EQ(wq_t.ran, 60);
	nwc_workq_destroy(wq, NULL);
}

static void test_workq_full(void)
{
	struct nwc_workq *wq;
	int i;

	wq_reset();
	T_EQ(nwc_workq_create(1, 4, &wq), 0);
	T_EQ(nwc_workq_submit(wq, gate_job, NULL), 0);
	gate_wait_started();
	for (i = 0; i < 4; i++)
		T_EQ(nwc_workq_submit(wq, count_job, (void *)(intptr_t)i), 0);
	T_EQ(nwc_workq_submit(wq, count_job, (void *)(intptr_t)4), -EAGAIN);
	T_EQ(wq_t.ran, 0);
	gate_open();
	nwc_workq_drain(wq);
	T_CHECK(gate_finished());
	T_EQ(wq_t.ran, 4);
	T_EQ(nwc_workq_submit(wq, count_job, (void *)(intptr_t)5), 0);
	nwc_workq_drain(wq);
	T_EQ(wq_t.ran, 5);
	nwc_workq_destroy(wq, count_discard);
	T_EQ(wq_t.discarded, 0);
}

static void test_workq_destroy(void)
{
	struct nwc_workq *wq;
	int i;

	wq_reset();
	T_EQ(nwc_workq_create(1, 8, &wq), 0);
	T_EQ(nwc_workq_submit(wq, gate_job, NULL), 0);
	gate_wait_started();
	for (i = 0; i < 5; i++)
		T_EQ(nwc_workq_submit(wq, count_job, (void *)(intptr_t)i), 0);
	/* The first discard opens the gate; the queued jobs never run. */
	nwc_workq_destroy(wq, count_discard);
	T_EQ(wq_t.discarded, 5);
	T_EQ(wq_t.ran, 0);
	T_CHECK(gate_finished());
}

int main(void)
{
	T_RUN(test_cache_args);
	T_RUN(test_cache_basic);
	T_RUN(test_cache_lru);
	T_RUN(test_cache_budget_shards);
	T_RUN(test_cache_referenced);
	T_RUN(test_cache_oversized);
	T_RUN(test_cache_fill_error);
	T_RUN(test_cache_single_flight);
	T_RUN(test_cache_single_flight_error);
	T_RUN(test_cache_stress);
	T_RUN(test_workq_run);
	T_RUN(test_workq_full);
	T_RUN(test_workq_destroy);
	T_EXIT();
}
