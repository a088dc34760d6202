/* SPDX-License-Identifier: MIT */
/* progress.c - the mkfs progress bar. */
#include "codec/common/base.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "mkfs/pack/progress.h"

double nwc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void draw(struct nwc_progress *p)
{
	double pct = p->total ? 100.0 * (double)p->done / (double)p->total : 100;
	double secs = nwc_now() - p->t0;
	double rate = secs > 0 ? (double)p->done / secs / 1e6 : 0;
	int fill = (int)(pct / 100 * 30);
	char bar[31];

	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(30 - fill));
	bar[30] = '\0';
	fprintf(stderr, "\r[%s] %5.1f%%  %9.1f MB  -> %9.1f MB  %7.1f MB/s ",
		bar, pct, (double)p->done / 1e6, (double)p->stored / 1e6, rate);
}

void nwc_progress_start(struct nwc_progress *p, bool on, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->on = on;
	p->total = total;
	p->t0 = nwc_now();
}

void nwc_progress_update(struct nwc_progress *p, uint64_t done,
			 uint64_t stored)
{
	double now;

	p->done = done;
	p->stored = stored;
	if (!p->on)
		return;
	now = nwc_now();
	if (now - p->last < 0.1)
		return;
	p->last = now;
	draw(p);
}

void nwc_progress_finish(struct nwc_progress *p)
{
	if (!p->on)
		return;
	draw(p);
	fputc('\n', stderr);
}

void nwc_token_progress(void *arg, uint64_t done, uint64_t total)
{
	struct nwc_token_progress *p = arg;
	uint32_t stages = NWC_MAX(p->stages, 1);
	uint64_t per = NWC_MAX(total / stages, 1);
	double t = nwc_now(), secs = t - p->t0;
	double rate = secs > 0 ? (double)done / secs : 0;
	double eta = rate > 0 ? (double)(total - done) / rate : 0;
	char what[64];

	if (p->lines ? done % per || !done : done < total && t - p->last < 0.1)
		return;
	p->last = t;
	if (stages > 1)
		snprintf(what, sizeof(what), "%s %" PRIu64 "/%" PRIu32,
			 p->stage ? p->stage : "layer",
			 NWC_MIN((done + per - 1) / per, (uint64_t)stages),
			 stages);
	else
		snprintf(what, sizeof(what), "%" PRIu64 "/%" PRIu64 " tokens",
			 done, total);
	fprintf(stderr, "%s%s: %s (%.0f%%), %.0f tokens/s, %s %d:%02d ",
		p->lines ? "" : "\r", p->what, what,
		total ? 100.0 * (double)done / (double)total : 100.0,
		rate / stages, done < total ? "ETA" : "took",
		(int)((done < total ? eta : secs) / 60),
		(int)(done < total ? eta : secs) % 60);
	if (p->lines || done == total)
		fputc('\n', stderr);
}
