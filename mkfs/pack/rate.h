/* SPDX-License-Identifier: MIT */
/*
 * rate.h - mkfs.nwc's rate planning for the lossy tensors: load the codec
 * models of a models directory, give every tensor its column levels, trial
 * encode it with each model on worker threads, and pick one model per
 * tensor for the bit target (mkfs/pack/lossy.h does the arithmetic).
 *
 *	nwc_rate_load_models(dir, NWC_QUANT_TCQ, &models);
 *	t[i] = { .path, .name, .dtype, .m, .n, .off, .fixed_bits };
 *	nwc_rate_plan(t, nt, &opts, &models);
 *	... t[i].lossless, t[i].model, t[i].level, models.m[k].index ...
 *	nwc_rate_tensors_free(t, nt);
 *	nwc_rate_models_free(&models);
 *
 * The plan depends on the inputs only, never on the number of threads.
 * Thread safety: used by mkfs's main thread; it starts its own workers.
 */
#ifndef NWC_RATE_H
#define NWC_RATE_H

#include "codec/common/base.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwctensor.h"
#include "mkfs/pack/calib.h"

/* One tensor the neural codec takes. */
struct nwc_rate_tensor {
	/* Set by the caller. */
	const char *path;	/* source file, for reading and messages */
	const char *name;	/* tensor name, NUL-terminated */
	unsigned dtype;		/* F32, F16 or BF16 */
	uint32_t m, n;		/* rows, columns */
	uint64_t off;		/* of the data in the file */
	double fixed_bits;	/* --bits GLOB=B, or < 0 */
	/* Set by nwc_rate_plan(). */
	bool lossless;		/* cannot be coded: store it losslessly */
	bool have_h;		/* calibration statistics exist for it */
	bool have_g;		/* and sensitivities (calib.h) */
	bool exact;		/* lossless by the allocation's choice */
	double exact_bits;	/* estimated lossless bits/weight */
	unsigned model;		/* index into the models */
	unsigned rank;		/* the rank of the group that codes it */
	uint8_t *level;		/* n column levels; on that rank only */
	/* Set by the tuning (pack/tune.c), or NULL. */
	float *row_mul;		/* m factors for the stored row scales */
};

struct nwc_rate_model {
	char *name;		/* file name inside the models directory */
	struct nwc_model *model;
	bool used;		/* picked for at least one tensor */
	uint16_t index;		/* in the image's MODELS section, if used */
};

/* The models of a directory, by ascending lambda (then name). */
struct nwc_rate_models {
	struct nwc_rate_model *m;
	unsigned n;
	unsigned nq;		/* the fewest quality levels of any model */
	unsigned n_used;
};

struct nwc_rate_opts {
	double bits;			/* average target, bits per weight */
	enum nwc_quant quant;
	const struct nwc_calib *calib;	/* or NULL */
	double promote;			/* nwc_lossy_levels()' share */
	double exact_sd;		/* nwc_tenc_opts.exact_sd */
	double sens_power;		/* nwc_lossy_weigh()'s power */
	bool exact_tensors;		/* exact storage is a rate point */
	unsigned jobs;			/* worker threads, >= 1 */
	bool progress;			/* a progress line on stderr */
};

/*
 * nwc_rate_load_models() - load every *.nwcm file of @dir.  A model that
 * lacks the trellis tables that @quant needs has them rebuilt
 * (nwc_model_finalize).  Returns 0; -ENOENT when @dir does not exist or
 * holds no model, -NWC_EFORMAT for a model that does not load (both
 * logged), -ENOMEM.
 */
int nwc_rate_load_models(const char *dir, enum nwc_quant quant,
			 struct nwc_rate_models *out);
void nwc_rate_models_free(struct nwc_rate_models *ms);

/*
 * nwc_rate_plan() - levels (from the calibration, else all 0), estimates
 * (when there is more than one model) and the allocation of @ms to the
 * @nt tensors at @t; marks the used models and numbers them in order.  A
 * tensor that the codec cannot take (non-finite values) is logged and
 * marked lossless.  In a group of ranks (mkfs/group/group.h) each
 * tensor is given to one rank, which estimates it (and codes it later),
 * and all ranks learn the estimates, so that every rank makes the same
 * plan.  Returns 0, -NWC_EFORMAT (statistics of the wrong shape), an I/O
 * error or -ENOMEM; in a group, every rank returns the smallest.
 */
int nwc_rate_plan(struct nwc_rate_tensor *t, size_t nt,
		  const struct nwc_rate_opts *o, struct nwc_rate_models *ms);

/* Free the levels of @nt tensors (not the array). */
void nwc_rate_tensors_free(struct nwc_rate_tensor *t, size_t nt);

/*
 * nwc_rate_read() - the values of tensor @t, read from @fd, as m x n
 * floats in a malloc'd *out.  Errors are logged with the path; returns 0,
 * an I/O error or -ENOMEM.
 */
int nwc_rate_read(int fd, const struct nwc_rate_tensor *t, float **out);

/* True when all @count floats are finite. */
bool nwc_rate_finite(const float *w, size_t count);

#endif /* NWC_RATE_H */
