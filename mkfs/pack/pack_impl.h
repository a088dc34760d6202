/* SPDX-License-Identifier: MIT */
/*
 * pack_impl.h - what the three stages of nwc_pack() share and nothing
 * else includes: the plan (plan.c: every file's extents and the jobs, in
 * image order), the workers that run the jobs (pipeline.c) and the writer
 * loop that takes them in plan order (emit.c).
 *
 * Thread safety: the plan is built and freed by the main thread; while
 * the workers run, a struct pipe's fields after "next" are guarded by its
 * lock, and a job belongs to the worker that claimed it until it is done,
 * then to the writer (or the sender, spread.c).
 */
#ifndef NWC_PACK_IMPL_H
#define NWC_PACK_IMPL_H

#include "codec/common/base.h"

#include <pthread.h>

#include "codec/registry/codec.h"
#include "codec/image/writer.h"
#include "codec/input/safetensors.h"
#include "mkfs/pack/pack.h"

/*
 * The codec of every compressed lossless extent: byte planes with the
 * wide rANS layout, which needs a reader from 2026-12 on (format.h).
 */
#define PACK_LOSSLESS NWC_CODEC_PLANES

/* One extent of a file: a byte range and how to store it. */
struct seg {
	uint64_t off;
	uint64_t len;
	uint16_t codec;		/* NWC_CODEC_NWC for a lossy tensor */
	uint32_t arg;		/* lossless codec argument (also a lossy
				 * tensor's, should the codec fail on it) */
	int32_t tensor;		/* index in the file's nwc_st, or -1 */
	int32_t lossy;		/* index into the lossy tensors, or -1 */
};

struct fplan {
	uint32_t entry;		/* tree entry */
	char *path;		/* full source path */
	struct nwc_st *st;	/* parsed header, safetensors files only */
	struct seg *segs;
	uint32_t n_segs;
};

struct job {
	uint32_t file;		/* index into plan files */
	uint64_t off;
	uint64_t len;
	uint16_t codec;
	uint32_t arg;
	int32_t lossy;		/* lossy tensor, or -1 for one block */
	uint64_t cost;		/* estimated working memory */
	uint8_t *out;		/* payload, owned until written */
	size_t out_len;
	struct nwc_tenc *enc;	/* lossy: the coded tensor */
	struct job *sub;	/* lossy, codec failed: its lossless blocks */
	uint32_t n_sub;
	double sig, err;	/* lossy: sum of w^2 and of (w - what)^2 */
	double hsig, herr;	/* lossy with H: tr(W H W^T), tr(E H E^T) */
	int err_code;
	bool single;		/* the only block of its extent */
	bool raw;		/* stored verbatim: compression did not help */
	bool done;
};

struct pipe {
	const struct nwc_pack_opts *opts;
	struct fplan *files;
	struct nwc_rate_tensor *lt;	/* lossy tensors */
	size_t n_lt;
	struct job *jobs;
	size_t n_jobs;
	unsigned rank;		/* in the group (mkfs/group/group.h) */
	size_t *order;		/* the jobs this rank runs, in plan order */
	size_t n_order;
	size_t next;		/* next of @order to claim */
	size_t consumed;	/* of @order, handed to the writer (rank 0)
				 * or sent to rank 0 */
	size_t window;
	uint64_t inflight;	/* cost of claimed jobs not yet consumed */
	uint64_t budget;
	uint32_t block_len;
	bool stop;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;	/* a job finished */
	pthread_cond_t space_cond;	/* the writer consumed a job */
};

/* Worker-local state: a context, an input buffer and one open file. */
struct worker {
	pthread_t tid;
	struct pipe *p;
	struct nwc_cctx *cctx;
	uint8_t *in;
	int fd;
	uint32_t fd_file;
};

/* plan.c: the extents of every file, the lossy selection, the jobs. */
int pack_plan_files(const char *root, const struct nwc_tree *tree,
		    struct fplan **out, uint32_t *n_out);
void pack_free_plan(struct fplan *files, uint32_t n);
int pack_plan_lossy(struct pipe *p, uint32_t n_files,
		    struct nwc_pack_result *res);
int pack_make_jobs(struct pipe *p, uint32_t n_files, uint32_t block_len);

/*
 * pipeline.c: the coding options of lossy tensor @t, with statistics @h
 * or NULL; whether the codec served @x faithfully as @what (else *@row is
 * a bad row), the test that stores a coded tensor losslessly instead.
 */
void pack_tenc_opts(const struct pipe *p, const struct nwc_rate_tensor *t,
		    const float *h, struct nwc_tenc_opts *o);
bool pack_faithful(const float *x, const float *what, uint32_t m,
		   uint32_t n, uint32_t *row);

/* tune.c: --calib-tune, the row scales of the coded tensors tuned end to
 * end; sets their row_mul, and the tuning's figures in @res. */
int pack_tune(struct pipe *p, struct nwc_pack_result *res);

/* pipeline.c: the hook of a sequential calibration (@arg the pipe). */
int pack_seq_hook(void *arg, const char *name, float *w, uint32_t rows,
		  uint32_t cols);

/* pipeline.c: a worker thread; the writer's side of the job hand-off. */
void *pack_worker_main(void *arg);
struct job *pack_wait_job(struct pipe *p, struct job *j);
void pack_consumed_job(struct pipe *p, struct job *j);
void pack_free_job(struct job *j);

/*
 * spread.c: the rank that runs job @j (the lossy tensor's, else 0); the
 * jobs of this rank, in p->order; on ranks other than 0, send every job
 * of this rank to rank 0 as it finishes (in order; stops after a failed
 * one); on rank 0, receive the finished job @j from its rank.
 */
unsigned pack_job_rank(const struct pipe *p, const struct job *j);
int pack_own_jobs(struct pipe *p);
int pack_send_jobs(struct pipe *p);
void pack_recv_job(struct pipe *p, struct job *j);

/* emit.c: the tree and the codec models, then every file in plan order. */
int pack_add_nodes(struct nwc_writer *wr, struct nwc_tree *tree);
int pack_add_models(struct nwc_writer *wr, const struct nwc_rate_models *ms);
int pack_write_files(struct pipe *p, struct nwc_writer *wr,
		     struct nwc_tree *tree, uint32_t n_files,
		     struct nwc_pack_result *res);

#endif /* NWC_PACK_IMPL_H */
