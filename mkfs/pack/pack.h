/* SPDX-License-Identifier: MIT */
/*
 * pack.h - turn a scanned model directory into an image: plan the extents
 * of every file (safetensors files are split into header, tensors and any
 * gaps), choose a codec model for every lossy tensor (mkfs/pack/rate.h),
 * compress blocks and code lossy tensors on worker threads and hand them
 * to the image writer in a fixed order, so the output does not depend on
 * the number of threads; then print what it came to.
 *
 * Thread safety: called from one thread (mkfs.nwc's main thread);
 * nwc_pack() starts and joins its own workers.
 */
#ifndef NWC_PACK_H
#define NWC_PACK_H

#include "codec/common/base.h"
#include "mkfs/pack/calib.h"
#include "mkfs/pack/lossy.h"
#include "mkfs/pack/rate.h"
#include "mkfs/pack/walk.h"

/* Lossy packing: the tensors the policy selects go through the codec. */
struct nwc_pack_lossy {
	struct nwc_lossy_policy policy;
	double bits;			/* average bits/weight target */
	enum nwc_quant quant;
	struct nwc_rate_models *models;	/* loaded; marked used by the plan */
	const struct nwc_calib *calib;	/* or NULL: no LDLQ, levels 0 */
	double damp;			/* LDLQ damping; 0: the codec's */
	double exact_sd;		/* nwc_tenc_opts.exact_sd */
	double exact_loud;		/* nwc_tenc_opts.exact_loud */
	double promote;			/* share of columns at level 1 */
	double sens_power;		/* nwc_lossy_weigh()'s power */
	bool exact_tensors;		/* the allocation may store tensors
					 * exactly (--exact-tensors) */
	double calib_seconds;		/* what computing @calib took */
	/* Sequential calibration: @calib's model run, run again after the
	 * plan with each layer coded as it is reached; NULL: one pass. */
	struct nwc_calib *sequential;
	/*
	 * End-to-end tuning of the coded tensors' row scales (pack/tune.c):
	 * @steps Adam steps at rate @lr (times each tensor's relative coding
	 * error) on the KL divergence from the model of @dir, each over the
	 * next @max_tokens tokens of @tokens (windows of @ctx, 0: the
	 * model's default); spill files in @spill_dir.  0 steps: none.
	 */
	struct nwc_pack_tune {
		unsigned steps;
		double lr;
		const char *dir;
		const char *tokens;
		uint64_t max_tokens;
		uint32_t ctx;
		const char *spill_dir;
		bool lines;	/* a line on stderr per step */
	} tune;
};

struct nwc_pack_opts {
	unsigned block_log2;	/* decoded block size (log2) */
	int level;		/* zstd level */
	unsigned jobs;		/* compression threads, >= 1 */
	bool force;		/* replace an existing image */
	bool progress;		/* draw a progress bar */
	struct nwc_pack_lossy *lossy;	/* NULL: everything lossless */
	/* The image's INFO section (format.h 11): "key=value\n" lines and
	 * the creation time; no section when @info is NULL. */
	const char *info;
	int64_t created;
};

/* What the lossy tensors came to. */
struct nwc_pack_lossy_result {
	uint32_t tensors;	/* coded with the neural codec */
	uint32_t fallbacks;	/* selected, but stored losslessly */
	uint32_t exact_tensors;	/* of those, by the allocation's choice */
	char *exact_lines;	/* their summary lines, or NULL */
	uint64_t weights;
	uint64_t payload;	/* band payload bytes */
	uint64_t side;		/* side record bytes */
	uint64_t exact;		/* weights stored exactly (--exact-sd) */
	double sig, err;	/* sum of w^2 and of (w - what)^2 */
	double hsig, herr;	/* tr(W H W^T), tr(E H E^T) where H exists */
	uint32_t *per_model;	/* tensors per model (models order) */
	double plan_seconds;	/* calibration excluded */
	double seq_seconds;	/* the sequential calibration */
	double tune_seconds;	/* the tuning of the row scales */
	double tune_kl0, tune_kl;	/* its KL divergence at the start and
					 * at the last step */
};

struct nwc_pack_result {
	uint64_t *stored;	/* per tree entry: stored bytes (files) */
	uint64_t image_size;
	double seconds;
	struct nwc_pack_lossy_result lossy;
};

/*
 * nwc_pack() - build @image from @root (scanned into @tree).  Every
 * safetensors file is parsed before anything is written.  On success fills
 * @res (free it with nwc_pack_result_free()).  Returns 0, -NWC_EFORMAT for a
 * malformed input file, or another negative errno; each failure is logged
 * with the file it concerns, and no image is left behind.
 */
int nwc_pack(const char *root, struct nwc_tree *tree, const char *image,
	     const struct nwc_pack_opts *opts, struct nwc_pack_result *res);
void nwc_pack_result_free(struct nwc_pack_result *res);

/*
 * nwc_pack_print_summary() - the table of stored bytes per file, the
 * totals and the speed; nwc_pack_print_lossy() - what the lossy tensors
 * came to.  Both print to stdout.
 */
void nwc_pack_print_summary(const struct nwc_tree *tree,
			    const struct nwc_pack_result *res);
void nwc_pack_print_lossy(const struct nwc_pack_lossy *pl,
			  const struct nwc_pack_lossy_result *lr);

#endif /* NWC_PACK_H */
