/* SPDX-License-Identifier: MIT */
/* fs/workq.c - the prefetch work queue: a thread pool over a bounded ring. */
/*
 * One mutex guards the ring and the counters; workers sleep on "queued",
 * drainers on "idle".  Workers run with every signal blocked so that the
 * FUSE daemon's handlers keep running on its own threads.  nwc_workq_destroy()
 * detaches the queued jobs under the lock, hands them to discard() and only
 * then joins, so a job still running may overlap the discard calls.
 */
#include "codec/common/base.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "fs/workq.h"

#define WORKQ_MAX_THREADS 1024
#define WORKQ_MAX_DEPTH (1u << 20)

struct workq_job {
	nwc_work_fn fn;
	void *arg;
};

struct nwc_workq {
	pthread_mutex_t lock;
	pthread_cond_t queued;		/* a job was queued, or stop was set */
	pthread_cond_t idle;		/* the ring emptied and no job runs */
	struct workq_job *ring;
	unsigned depth;
	unsigned head;			/* next job to run */
	unsigned count;			/* jobs in the ring */
	unsigned running;		/* jobs being run */
	bool stop;
	unsigned nthreads;		/* workers started */
	pthread_t threads[];
};

static void *workq_worker(void *p)
{
	struct nwc_workq *wq = p;
	struct workq_job job;

	pthread_mutex_lock(&wq->lock);
	for (;;) {
		while (!wq->count && !wq->stop)
			pthread_cond_wait(&wq->queued, &wq->lock);
		if (wq->stop)
			break;
		job = wq->ring[wq->head];
		wq->head = (wq->head + 1) % wq->depth;
		wq->count--;
		wq->running++;
		pthread_mutex_unlock(&wq->lock);

		job.fn(job.arg);

		pthread_mutex_lock(&wq->lock);
		wq->running--;
		if (!wq->count && !wq->running)
			pthread_cond_broadcast(&wq->idle);
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

/* Tell the workers to exit and join them; the ring is left as it is. */
static void workq_stop(struct nwc_workq *wq)
{
	unsigned i;

	pthread_mutex_lock(&wq->lock);
	wq->stop = true;
	pthread_cond_broadcast(&wq->queued);
	pthread_mutex_unlock(&wq->lock);
	for (i = 0; i < wq->nthreads; i++)
		pthread_join(wq->threads[i], NULL);
	wq->nthreads = 0;
}

static int workq_start(struct nwc_workq *wq, unsigned nthreads)
{
	sigset_t all, old;
	int ret = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (wq->nthreads = 0; wq->nthreads < nthreads; wq->nthreads++) {
		ret = pthread_create(&wq->threads[wq->nthreads], NULL,
				     workq_worker, wq);
		if (ret)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -ret;
}

int nwc_workq_create(unsigned nthreads, unsigned depth, struct nwc_workq **out)
{
	struct nwc_workq *wq;
	int ret;

	if (!nthreads || nthreads > WORKQ_MAX_THREADS || !depth ||
	    depth > WORKQ_MAX_DEPTH)
		return -EINVAL;
	wq = calloc(1, sizeof(*wq) + nthreads * sizeof(wq->threads[0]));
	if (!wq)
		return -ENOMEM;
	wq->ring = calloc(depth, sizeof(*wq->ring));
	if (!wq->ring) {
		ret = -ENOMEM;
		goto out_free_wq;
	}
	wq->depth = depth;
	ret = -pthread_mutex_init(&wq->lock, NULL);
	if (ret)
		goto out_free_ring;
	ret = -pthread_cond_init(&wq->queued, NULL);
	if (ret)
		goto out_destroy_lock;
	ret = -pthread_cond_init(&wq->idle, NULL);
	if (ret)
		goto out_destroy_queued;
	ret = workq_start(wq, nthreads);
	if (ret)
		goto out_stop_workers;
	*out = wq;
	return 0;

out_stop_workers:
	workq_stop(wq);
	pthread_cond_destroy(&wq->idle);
out_destroy_queued:
	pthread_cond_destroy(&wq->queued);
out_destroy_lock:
	pthread_mutex_destroy(&wq->lock);
out_free_ring:
	free(wq->ring);
out_free_wq:
	free(wq);
	return ret;
}

int nwc_workq_submit(struct nwc_workq *wq, nwc_work_fn fn, void *arg)
{
	int ret = 0;

	pthread_mutex_lock(&wq->lock);
	if (wq->stop || wq->count == wq->depth) {
		ret = -EAGAIN;
	} else {
		wq->ring[(wq->head + wq->count) % wq->depth] =
			(struct workq_job){ .fn = fn, .arg = arg };
		wq->count++;
		pthread_cond_signal(&wq->queued);
	}
	pthread_mutex_unlock(&wq->lock);
	return ret;
}

void nwc_workq_drain(struct nwc_workq *wq)
{
	pthread_mutex_lock(&wq->lock);
	while (wq->count || wq->running)
		pthread_cond_wait(&wq->idle, &wq->lock);
	pthread_mutex_unlock(&wq->lock);
}

void nwc_workq_destroy(struct nwc_workq *wq, nwc_work_fn discard)
{
	unsigned head, count, i;

	if (!wq)
		return;
	/* Once stop is set, neither workers nor submit touch the ring. */
	pthread_mutex_lock(&wq->lock);
	wq->stop = true;
	head = wq->head;
	count = wq->count;
	wq->count = 0;
	pthread_cond_broadcast(&wq->queued);
	pthread_mutex_unlock(&wq->lock);
	for (i = 0; discard && i < count; i++)
		discard(wq->ring[(head + i) % wq->depth].arg);

	workq_stop(wq);
	pthread_cond_destroy(&wq->idle);
	pthread_cond_destroy(&wq->queued);
	pthread_mutex_destroy(&wq->lock);
	free(wq->ring);
	free(wq);
}
