/* SPDX-License-Identifier: MIT */
/*
 * progress.h - a one-line progress bar on stderr, redrawn at most ten times
 * a second, for mkfs.nwc, nwc and nwc-train.  Thread safety: a struct
 * nwc_progress is used by one thread (the mkfs writer loop); the token
 * counter below expects its calls serialised.
 */
#ifndef NWC_PROGRESS_H
#define NWC_PROGRESS_H

#include "codec/common/base.h"

struct nwc_progress {
	bool on;
	uint64_t total;		/* bytes to process */
	uint64_t done;
	uint64_t stored;	/* bytes written so far */
	double t0;		/* start, seconds */
	double last;		/* last redraw */
};

/* Seconds on a monotonic clock. */
double nwc_now(void);

void nwc_progress_start(struct nwc_progress *p, bool on, uint64_t total);
void nwc_progress_update(struct nwc_progress *p, uint64_t done,
			 uint64_t stored);
/* Draw the final state and end the line. */
void nwc_progress_finish(struct nwc_progress *p);

/*
 * A token counter for the Llama forward pass (nwc_llama_opts.progress,
 * with a struct nwc_token_progress as its argument): "WHAT: done/total
 * tokens (P%), R tokens/s, ETA m:ss", redrawn at most ten times a second,
 * the line ended at the last token.  A run in @stages stages (a layer by
 * layer calibration: total = tokens x stages) names the stage instead:
 * "WHAT: layer k/L (P%), R tokens/s, ETA m:ss" (@stage for "layer").
 * With @lines it prints nothing but one such line as each stage ends (for
 * logs, not terminals).
 * The llama module serialises the calls.
 */
struct nwc_token_progress {
	const char *what;
	double t0;		/* start, seconds (nwc_now) */
	double last;		/* last redraw */
	uint32_t stages;	/* 0 or 1: one pass over the tokens */
	const char *stage;	/* what a stage is called; NULL: "layer" */
	bool lines;		/* a line per finished stage, no redraws */
};

void nwc_token_progress(void *arg, uint64_t done, uint64_t total);

#endif /* NWC_PROGRESS_H */
