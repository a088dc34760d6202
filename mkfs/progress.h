/* SPDX-License-Identifier: MIT */
/*
 * progress.h - a one-line progress bar on stderr, redrawn at most ten times
 * a second.  Used by one thread (the mkfs writer loop).
 */
#ifndef NWC_PROGRESS_H
#define NWC_PROGRESS_H

#include "codec/nwc.h"

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

#endif /* NWC_PROGRESS_H */
