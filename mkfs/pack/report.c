/* SPDX-License-Identifier: MIT */
/* report.c - mkfs.nwc's summary of a packed image on stdout. */
#include "codec/common/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "codec/common/cli.h"
#include "mkfs/pack/pack.h"

static double db(double sig, double err)
{
	return err > 0 ? 10 * log10(sig / err) : INFINITY;
}

void nwc_pack_print_lossy(const struct nwc_pack_lossy *pl,
			  const struct nwc_pack_lossy_result *lr)
{
	const struct nwc_rate_models *ms = pl->models;
	double w = (double)lr->weights;

	if (!lr->tensors) {
		printf("lossy: no tensor coded with the neural codec%s\n",
		       lr->fallbacks ? " (every candidate stored losslessly)" :
				       "");
		return;
	}
	printf("lossy: %u tensors, %llu weights, %.3f bits/weight (%llu payload + %llu side bytes), SQNR %.2f dB",
	       lr->tensors, (unsigned long long)lr->weights,
	       8.0 * (double)(lr->payload + lr->side) / w,
	       (unsigned long long)lr->payload, (unsigned long long)lr->side,
	       db(lr->sig, lr->err));
	if (pl->calib && lr->hsig > 0)
		printf(", H-weighted SQNR %.2f dB", db(lr->hsig, lr->herr));
	printf(", planned in %.2f s\n", lr->plan_seconds);
	if (pl->calib && pl->calib_seconds > 0)
		printf("lossy: calibrated on %llu tokens in %.2f s (%.0f tokens/s)\n",
		       (unsigned long long)nwc_calib_tokens(pl->calib),
		       pl->calib_seconds,
		       (double)nwc_calib_tokens(pl->calib) / pl->calib_seconds);
	if (pl->sequential)
		printf("lossy: sequential calibration (each layer on the coded layers' outputs) in %.2f s\n",
		       lr->seq_seconds);
	if (pl->tune.steps)
		printf("lossy: row scales tuned in %u steps in %.2f s: KL from the original on the first block of tokens %.5g nats a token before, %.5g after\n",
		       pl->tune.steps, lr->tune_seconds, lr->tune_kl0,
		       lr->tune_kl);
	if (lr->exact)
		printf("lossy: %llu weights stored exactly (--calib-loud, --exact-sd), in the side bytes\n",
		       (unsigned long long)lr->exact);
	if (lr->fallbacks > lr->exact_tensors)
		printf("lossy: %u tensors stored losslessly instead (see the messages above)\n",
		       lr->fallbacks - lr->exact_tensors);
	if (lr->exact_tensors)
		printf("lossy: %u tensors stored exactly by the allocation (--exact-tensors), their byte planes counted in no figure above:\n%s",
		       lr->exact_tensors, lr->exact_lines);
	for (unsigned k = 0; k < ms->n; k++) {
		if (lr->per_model[k])
			printf("%14u tensors  model %s (lambda %g)\n",
			       lr->per_model[k], ms->m[k].name,
			       (double)ms->m[k].model->lambda);
	}
	/* Last, plainly: the files are not the originals. */
	printf("%u tensor%s lossy at %.2f bits/weight; use --lossless for bit-exact files\n",
	       lr->tensors, lr->tensors > 1 ? "s" : "",
	       8.0 * (double)(lr->payload + lr->side) / w);
}

void nwc_pack_print_summary(const struct nwc_tree *tree,
			    const struct nwc_pack_result *res)
{
	uint64_t stored = 0;

	printf("%14s %14s %7s  %s\n", "size", "stored", "ratio", "file");
	for (uint32_t i = 0; i < tree->n; i++) {
		const struct nwc_entry *e = &tree->e[i];

		if (!S_ISREG(e->mode))
			continue;
		stored += res->stored[i];
		char *name = nwc_escape(e->path, strlen(e->path));

		printf("%14llu %14llu %6.1f%%  %s\n",
		       (unsigned long long)e->size,
		       (unsigned long long)res->stored[i],
		       e->size ? 100.0 * (double)res->stored[i] / (double)e->size
			       : 100.0,
		       name ? name : "?");
		free(name);
	}
	printf("%14llu %14llu %6.1f%%  total payload, %u files\n",
	       (unsigned long long)tree->total, (unsigned long long)stored,
	       tree->total ? 100.0 * (double)stored / (double)tree->total : 100.0,
	       tree->n_files);
	printf("%14s %14llu %6.1f%%  image file (with metadata), %.2f s, %.1f MB/s\n",
	       "", (unsigned long long)res->image_size,
	       tree->total ? 100.0 * (double)res->image_size /
				     (double)tree->total : 100.0,
	       res->seconds,
	       res->seconds > 0 ? (double)tree->total / res->seconds / 1e6 : 0);
	if (tree->n_deref)
		printf("%u symlink%s leading out of the model directory stored as the file%s they point to (--no-dereference keeps links)\n",
		       tree->n_deref, tree->n_deref > 1 ? "s" : "",
		       tree->n_deref > 1 ? "s" : "");
	if (tree->n_excluded)
		printf("%u entr%s left out by --exclude\n", tree->n_excluded,
		       tree->n_excluded > 1 ? "ies" : "y");
}
