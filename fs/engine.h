/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the FUSE-free read engine: serves byte ranges of files in an
 * image through the decoded-block cache, with prefetch for sequential
 * readers.  nwcfs wraps it; tests drive it directly.
 *
 *	struct nwc_engine *eng;
 *	ret = nwc_engine_open("model.nwc", &opts, &eng);
 *	n = nwc_engine_read(eng, ino, buf, len, off, &stream);
 *	nwc_engine_close(eng);
 *
 * Validation: nwc_engine_open() validates the image once (nwc_image_open);
 * reads trust its tables and check only the blocks they fetch, each a
 * -NWC_ECHECKSUM or -NWC_ECORRUPT of its own.
 *
 * Thread safety: an engine is internally synchronized; call
 * nwc_engine_read() from any number of threads.  A struct nwc_stream
 * belongs to one open file; concurrent reads through it are allowed (its
 * fields are atomics) but only serve as a heuristic.
 */
#ifndef NWC_ENGINE_H
#define NWC_ENGINE_H

#include <stdatomic.h>

#include "codec/image/image.h"

struct nwc_engine;

struct nwc_engine_opts {
	size_t cache_bytes;	/* decoded-block cache budget */
	unsigned threads;	/* prefetch workers; 0 disables prefetch */
	unsigned readahead;	/* blocks to prefetch ahead of a stream */
};

#define NWC_ENGINE_OPTS_DEFAULT { 256u << 20, 2, 4 }

/* Sequential-read detector for one open file. */
struct nwc_stream {
	_Atomic uint64_t next_off;	/* where a sequential read would start */
	_Atomic uint32_t run;		/* consecutive sequential reads */
	_Atomic uint64_t high;		/* the furthest end a read reached */
};

struct nwc_engine_stats {
	uint64_t hits, misses, waits, evictions, fill_errors;
	uint64_t used_up;		/* blocks served whole, dropped at once */
	uint64_t cache_bytes, cache_entries;
	uint64_t prefetched;		/* blocks queued for prefetch */
	uint64_t bytes_served;		/* by nwc_engine_read() */
	uint64_t decoded;		/* blocks read, checked and decoded */
	uint64_t decode_ns;		/* CPU time of that, all threads */
	uint64_t read_errors;		/* nwc_engine_read() calls that failed */
};

/*
 * nwc_engine_open() - open and validate @path (see nwc_image_open) and set
 * up the cache.  Returns 0 or a negative errno.
 */
int nwc_engine_open(const char *path, const struct nwc_engine_opts *opts,
		    struct nwc_engine **out);

/*
 * nwc_engine_start() - start the prefetch workers.  Separate from open
 * because a daemon forks after validating the image, and threads do not
 * survive fork(2).  Without it reads work, with no prefetch.
 */
int nwc_engine_start(struct nwc_engine *eng);

/* Stop the workers and free everything; accepts NULL. */
void nwc_engine_close(struct nwc_engine *eng);

const struct nwc_image *nwc_engine_image(const struct nwc_engine *eng);

/* Reset a stream for a newly opened file. */
void nwc_stream_init(struct nwc_stream *st);

/*
 * nwc_engine_read() - copy up to @len bytes of regular file @ino from @off
 * into @buf.  Returns the number of bytes (short only at end of file, 0 at
 * or past it) or a negative errno: -NWC_ECHECKSUM / -NWC_ECORRUPT for a
 * damaged block (logged once), -ENOMEM, an I/O error.  @st may be NULL.
 */
ssize_t nwc_engine_read(struct nwc_engine *eng, uint32_t ino, void *buf,
			size_t len, uint64_t off, struct nwc_stream *st);

void nwc_engine_get_stats(struct nwc_engine *eng,
			  struct nwc_engine_stats *out);

#endif /* NWC_ENGINE_H */
