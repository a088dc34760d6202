/* SPDX-License-Identifier: MIT */
/*
 * engine.c - byte ranges -> (extent, block) -> cache -> copy, plus prefetch.
 *
 * Block geometry is per extent (block_len): for an NWC extent a block is
 * one row band of the tensor, whatever the image's nominal block size.
 * Cache keys are (extent index << 32 | block number in the extent), so a
 * fill knows both the block and the codec that decodes it.  Decode scratch
 * lives in one struct nwc_dctx per thread (FUSE workers and prefetch
 * workers alike), created on first use and freed when the thread exits.
 */
#include "codec/common/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <sys/stat.h>

#include "codec/registry/codec.h"
#include "codec/common/log.h"
#include "codec/registry/registry.h"
#include "fs/cache.h"
#include "fs/engine.h"
#include "fs/workq.h"

struct nwc_engine {
	struct nwc_image *img;
	struct nwc_cache *cache;
	struct nwc_workq *wq;		/* NULL when prefetch is off */
	unsigned threads;
	unsigned readahead;
	pthread_key_t dctx_key;
	_Atomic uint64_t prefetched;
	_Atomic uint64_t bytes_served;
	_Atomic uint64_t decode_ns;	/* thread CPU time of the fills */
	_Atomic uint64_t read_errors;	/* reads that failed */
};

/* This thread's CPU time, in nanoseconds. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct prefetch_job {
	struct nwc_engine *eng;
	uint64_t key;
};

static void free_dctx(void *p)
{
	nwc_dctx_free(p);
}

static struct nwc_dctx *thread_dctx(struct nwc_engine *eng)
{
	struct nwc_dctx *dctx = pthread_getspecific(eng->dctx_key);

	if (dctx)
		return dctx;
	if (nwc_dctx_create(&dctx))
		return NULL;
	if (pthread_setspecific(eng->dctx_key, dctx)) {
		nwc_dctx_free(dctx);
		return NULL;
	}
	return dctx;
}

static int fill_block(void *arg, uint64_t key, void **data, size_t *len)
{
	struct nwc_engine *eng = arg;
	uint32_t ext = (uint32_t)(key >> 32), j = (uint32_t)key;
	const struct nwc_extent *e = nwc_image_extent(eng->img, ext);
	struct nwc_dctx *dctx = thread_dctx(eng);
	size_t n = nwc_extent_block_len(e, j);
	uint64_t t0 = thread_cpu_ns();
	void *buf;
	int ret;

	if (!dctx)
		return -ENOMEM;
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	ret = nwc_image_load_block(eng->img, dctx, ext, j, buf, n);
	atomic_fetch_add_explicit(&eng->decode_ns, thread_cpu_ns() - t0,
				  memory_order_relaxed);
	if (ret) {
		free(buf);
		return ret;
	}
	nwc_dbg("decoded block %u of extent %u (%zu bytes)", j, ext, n);
	*data = buf;
	*len = n;
	return 0;
}

int nwc_engine_open(const char *path, const struct nwc_engine_opts *opts,
		    struct nwc_engine **out)
{
	struct nwc_engine *eng;
	int ret;

	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return -ENOMEM;
	ret = -pthread_key_create(&eng->dctx_key, free_dctx);
	if (ret)
		goto out_free;
	ret = nwc_image_open(path, nwc_codecs_read(), &eng->img);
	if (ret)
		goto out_key;
	ret = nwc_cache_create(opts->cache_bytes, 0, &eng->cache);
	if (ret)
		goto out_image;
	eng->threads = opts->threads;
	eng->readahead = opts->readahead;
	*out = eng;
	return 0;

out_image:
	nwc_image_close(eng->img);
out_key:
	pthread_key_delete(eng->dctx_key);
out_free:
	free(eng);
	return ret;
}

int nwc_engine_start(struct nwc_engine *eng)
{
	if (eng->wq || !eng->threads || !eng->readahead)
		return 0;
	return nwc_workq_create(eng->threads, NWC_MAX(64u, 4 * eng->readahead),
				&eng->wq);
}

static void discard_job(void *arg)
{
	free(arg);
}

void nwc_engine_close(struct nwc_engine *eng)
{
	struct nwc_dctx *dctx;

	if (!eng)
		return;
	nwc_workq_destroy(eng->wq, discard_job);
	nwc_cache_destroy(eng->cache);
	nwc_image_close(eng->img);
	/* The destructor does not run for the calling thread's own value. */
	dctx = pthread_getspecific(eng->dctx_key);
	pthread_setspecific(eng->dctx_key, NULL);
	nwc_dctx_free(dctx);
	pthread_key_delete(eng->dctx_key);
	free(eng);
}

const struct nwc_image *nwc_engine_image(const struct nwc_engine *eng)
{
	return eng->img;
}

void nwc_stream_init(struct nwc_stream *st)
{
	atomic_store(&st->next_off, 0);
	atomic_store(&st->run, 0);
	atomic_store(&st->high, 0);
}

static void prefetch_one(void *arg)
{
	struct prefetch_job *job = arg;
	struct nwc_centry *e;

	/* Errors are logged by the fill and met again by the real read. */
	if (!nwc_cache_get(job->eng->cache, job->key, fill_block, job->eng, &e))
		nwc_cache_put(job->eng->cache, e);
	free(job);
}

/* Queue the blocks of file @ino that follow the one holding byte @last. */
static void prefetch_after(struct nwc_engine *eng, uint32_t ino, uint64_t last)
{
	const struct nwc_inode *n = nwc_image_inode(eng->img, ino);
	uint32_t ext = nwc_image_find_extent(eng->img, ino, last);
	const struct nwc_extent *e = nwc_image_extent(eng->img, ext);
	uint32_t j = (uint32_t)((last - e->file_off) / e->block_len);

	for (unsigned k = 0; k < eng->readahead; k++) {
		struct prefetch_job *job;

		if (++j >= e->nblocks) {
			if (++ext >= n->first + n->count)
				return;
			e = nwc_image_extent(eng->img, ext);
			j = 0;
		}
		if (nwc_cache_contains(eng->cache, (uint64_t)ext << 32 | j))
			continue;
		job = malloc(sizeof(*job));
		if (!job)
			return;
		job->eng = eng;
		job->key = (uint64_t)ext << 32 | j;
		if (nwc_workq_submit(eng->wq, prefetch_one, job)) {
			free(job);	/* queue full: the workers are busy anyway */
			return;
		}
		atomic_fetch_add(&eng->prefetched, 1);
	}
}

ssize_t nwc_engine_read(struct nwc_engine *eng, uint32_t ino, void *buf,
			size_t len, uint64_t off, struct nwc_stream *st)
{
	const struct nwc_inode *n = nwc_image_inode(eng->img, ino);
	uint8_t *dst = buf;
	size_t done = 0;

	if (!S_ISREG(n->mode))
		return -EISDIR;
	if (off >= n->size || !len)
		return 0;
	len = (size_t)NWC_MIN((uint64_t)len, n->size - off);
	/*
	 * The kernel's readahead has several requests out at once, served in
	 * parallel and out of order: prefetch goes past the furthest of them,
	 * whose blocks are being served (and dropped) already.
	 */
	if (st) {
		uint64_t high = atomic_load(&st->high);

		while (high < off + len &&
		       !atomic_compare_exchange_weak(&st->high, &high,
						     off + len))
			;
	}
	while (done < len) {
		uint64_t pos = off + done;
		uint32_t ext = nwc_image_find_extent(eng->img, ino, pos);
		const struct nwc_extent *e = nwc_image_extent(eng->img, ext);
		uint64_t rel = pos - e->file_off;
		uint32_t j = (uint32_t)(rel / e->block_len);
		size_t in = (size_t)(rel % e->block_len), k;
		struct nwc_centry *ce;
		int ret;

		ret = nwc_cache_get(eng->cache, (uint64_t)ext << 32 | j,
				    fill_block, eng, &ce);
		/* Never a short count: FUSE would take it for end of file. */
		if (ret) {
			atomic_fetch_add_explicit(&eng->read_errors, 1,
						  memory_order_relaxed);
			return ret;
		}
		k = NWC_MIN(len - done, nwc_centry_len(ce) - in);
		memcpy(dst + done, nwc_centry_data(ce) + in, k);
		/*
		 * The kernel's page cache keeps what we hand it: a block all
		 * of whose bytes went out is not asked for again, and a
		 * streaming reader would otherwise fill the whole cache
		 * budget with such blocks, faulting in fresh memory for each.
		 */
		if (nwc_centry_serve(ce, k))
			nwc_cache_put_used(eng->cache, ce);
		else
			nwc_cache_put(eng->cache, ce);
		done += k;
	}
	if (st) {
		uint32_t run = atomic_load(&st->next_off) == off ?
				       atomic_fetch_add(&st->run, 1) + 1 : 0;

		if (!run)
			atomic_store(&st->run, 0);
		atomic_store(&st->next_off, off + done);
		if (eng->wq && run >= 1)
			prefetch_after(eng, ino, atomic_load(&st->high) - 1);
	}
	atomic_fetch_add_explicit(&eng->bytes_served, done,
				  memory_order_relaxed);
	return (ssize_t)done;
}

void nwc_engine_get_stats(struct nwc_engine *eng, struct nwc_engine_stats *out)
{
	struct nwc_cache_stats cs;

	nwc_cache_get_stats(eng->cache, &cs);
	out->hits = cs.hits;
	out->misses = cs.misses;
	out->waits = cs.waits;
	out->evictions = cs.evictions;
	out->used_up = cs.used_up;
	out->fill_errors = cs.fill_errors;
	out->cache_bytes = cs.bytes;
	out->cache_entries = cs.entries;
	out->prefetched = atomic_load(&eng->prefetched);
	out->bytes_served = atomic_load(&eng->bytes_served);
	out->decoded = cs.misses - cs.fill_errors;	/* every fill decodes */
	out->decode_ns = atomic_load(&eng->decode_ns);
	out->read_errors = atomic_load(&eng->read_errors);
}
