/* SPDX-License-Identifier: MIT */
/*
 * pack.c - nwc_pack(): plan (plan.c), compress in parallel (pipeline.c),
 * write in order (emit.c).
 *
 * The plan lists every block of every file in image order; a lossy tensor
 * is one job of its own (the whole matrix goes through the codec at once).
 * Workers claim jobs from that list and run them; the main thread waits
 * for each job in turn and passes it to the writer.  Workers stay at most
 * WINDOW jobs ahead of the writer, and the jobs in flight (claimed, not
 * yet written) keep their estimated working memory under a budget, which
 * bounds memory when lossy jobs are large.  In a group of ranks, each
 * rank runs its share of the jobs and rank 0 writes (spread.c).
 */
#include "codec/common/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/nwc/gemm.h"
#include "codec/registry/registry.h"
#include "mkfs/group/group.h"
#include "mkfs/pack/pack_impl.h"
#include "mkfs/pack/progress.h"

#define MEM_BUDGET_MIN (1ull << 30)	/* working memory of jobs in flight */

static uint64_t mem_budget(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t quarter = pages > 0 && psize > 0 ?
			   (uint64_t)pages * (uint64_t)psize / 4 : 0;

	return NWC_MAX(quarter, MEM_BUDGET_MIN);
}

int nwc_pack(const char *root, struct nwc_tree *tree, const char *image,
	     const struct nwc_pack_opts *opts, struct nwc_pack_result *res)
{
	uint32_t block_len = 1u << opts->block_log2, n_files = 0;
	struct pipe p = {
		.opts = opts, .block_len = block_len, .rank = nwc_group_rank(),
	};
	struct worker *workers = NULL;
	struct nwc_writer *wr = NULL;
	unsigned started = 0;
	double t0 = nwc_now();
	struct stat st;
	int ret;

	memset(res, 0, sizeof(*res));
	res->stored = calloc(tree->n, sizeof(*res->stored));
	if (!res->stored)
		return -ENOMEM;
	/* Parse every input, and plan the lossy part, before writing. */
	ret = pack_plan_files(root, tree, &p.files, &n_files);
	if (!ret && opts->lossy)
		ret = pack_plan_lossy(&p, n_files, res);
	if (!ret && opts->lossy && opts->lossy->sequential && p.n_lt) {
		double t1 = nwc_now();

		/* The plan stands; its tensors are coded with the new H. */
		ret = nwc_calib_sequential(opts->lossy->sequential,
					   pack_seq_hook, &p);
		res->lossy.seq_seconds = nwc_now() - t1;
	}
	if (!ret && opts->lossy && opts->lossy->tune.steps && p.n_lt)
		ret = pack_tune(&p, res);
	if (ret)
		goto out_plan;
	ret = pack_make_jobs(&p, n_files, block_len);
	if (!ret)
		ret = pack_own_jobs(&p);
	if (ret)
		goto out_plan;
	/* Rank 0 writes the image; the other ranks send it their jobs. */
	if (!p.rank)
		ret = nwc_writer_create(image, opts->block_log2, opts->force,
					nwc_codecs_write(), &wr);
	if (ret)
		goto out_jobs;
	if (!p.rank && opts->info)
		ret = nwc_writer_set_info(wr, opts->created, opts->info,
					  strlen(opts->info));
	if (!ret && !p.rank)
		ret = pack_add_nodes(wr, tree);
	if (!ret && !p.rank && opts->lossy)
		ret = pack_add_models(wr, opts->lossy->models);
	if (ret)
		goto out_writer;

	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.done_cond, NULL);
	pthread_cond_init(&p.space_cond, NULL);
	p.window = 4 * (size_t)opts->jobs + 4;
	p.budget = mem_budget();
	if (p.n_lt)
		nwc_gemm_init();
	workers = calloc(opts->jobs, sizeof(*workers));
	if (!workers) {
		ret = -ENOMEM;
		goto out_sync;
	}
	for (unsigned i = 0; i < opts->jobs; i++) {
		struct worker *w = &workers[i];

		w->p = &p;
		w->fd = -1;
		w->in = malloc(block_len);
		ret = w->in ? nwc_cctx_create(opts->level, &w->cctx) : -ENOMEM;
		if (!ret)
			ret = -pthread_create(&w->tid, NULL, pack_worker_main,
					      w);
		if (ret)
			break;
		started++;
	}
	if (!ret)
		ret = p.rank ? pack_send_jobs(&p) :
			       pack_write_files(&p, wr, tree, n_files, res);

	pthread_mutex_lock(&p.lock);
	p.stop = true;
	pthread_cond_broadcast(&p.space_cond);
	pthread_mutex_unlock(&p.lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i].tid, NULL);
	if (!ret && wr)
		ret = nwc_writer_finish(wr);
	else
		nwc_writer_abort(wr);
	wr = NULL;
	if (!ret && !p.rank && !stat(image, &st))
		res->image_size = (uint64_t)st.st_size;
	res->seconds = nwc_now() - t0;
out_sync:
	for (unsigned i = 0; workers && i < opts->jobs; i++) {
		nwc_cctx_free(workers[i].cctx);
		free(workers[i].in);
	}
	free(workers);
	pthread_cond_destroy(&p.space_cond);
	pthread_cond_destroy(&p.done_cond);
	pthread_mutex_destroy(&p.lock);
out_writer:
	nwc_writer_abort(wr);
out_jobs:
	for (size_t i = 0; p.jobs && i < p.n_jobs; i++)
		pack_free_job(&p.jobs[i]);
	free(p.jobs);
	free(p.order);
out_plan:
	nwc_rate_tensors_free(p.lt, p.n_lt);
	free(p.lt);
	pack_free_plan(p.files, n_files);
	if (ret)
		nwc_pack_result_free(res);
	return ret;
}

void nwc_pack_result_free(struct nwc_pack_result *res)
{
	free(res->stored);
	res->stored = NULL;
	free(res->lossy.per_model);
	res->lossy.per_model = NULL;
	free(res->lossy.exact_lines);
	res->lossy.exact_lines = NULL;
}

