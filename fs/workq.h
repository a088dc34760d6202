/* SPDX-License-Identifier: MIT */
/*
 * workq.h - a fixed pool of worker threads draining a bounded FIFO of jobs;
 * used for prefetching blocks ahead of sequential readers.
 *
 *	nwc_workq_create(2, 64, &wq);
 *	nwc_workq_submit(wq, fn, arg);	// -EAGAIN when the queue is full
 *	nwc_workq_destroy(wq);		// runs nothing more, joins the workers
 *
 * Thread safety: internally locked; submit from any thread.  Jobs must not
 * call nwc_workq_destroy().
 */
#ifndef NWC_WORKQ_H
#define NWC_WORKQ_H

#include "codec/common/base.h"

struct nwc_workq;

typedef void (*nwc_work_fn)(void *arg);

/* Start @nthreads workers (>= 1) with room for @depth queued jobs (>= 1). */
int nwc_workq_create(unsigned nthreads, unsigned depth, struct nwc_workq **out);

/*
 * Queue @fn(@arg).  Returns 0, or -EAGAIN if the queue is full (the job is
 * not queued; prefetch simply drops it).
 */
int nwc_workq_submit(struct nwc_workq *wq, nwc_work_fn fn, void *arg);

/* Wait until the queue is empty and no job runs (for tests and shutdown). */
void nwc_workq_drain(struct nwc_workq *wq);

/*
 * Stop and join the workers.  Jobs still queued are discarded; each
 * discarded job's @arg is passed to @discard if it is not NULL, so the
 * submitter can free it.  Accepts NULL.
 */
void nwc_workq_destroy(struct nwc_workq *wq, nwc_work_fn discard);

#endif /* NWC_WORKQ_H */
