/* SPDX-License-Identifier: MIT */
/*
 * calib.h - mkfs.nwc's calibration statistics: the second moment H =
 * E[x x^T] of the input of every linear weight, either computed by running
 * a Llama-family model on a token file or read from the safetensors file
 * that `nwc calib` writes (one F32 tensor "<weight name>.H" of shape
 * [n, n] per weight); and, where asked for, the sensitivity of every
 * output row of each weight (a backward pass; "<weight name>.G", one F32
 * per row).
 *
 *	nwc_calib_open_stats("stats.safetensors", &c);
 *	ret = nwc_calib_get(c, "model.layers.0.mlp.up_proj.weight", n, &h);
 *	... use h (n x n), free(h) ...
 *	nwc_calib_free(c);
 *
 * Statistics are read lazily, one matrix per nwc_calib_get(), from the
 * statistics file or from the file a model run spilled them to, so that
 * their size does not count against memory.  Thread safety: a struct
 * nwc_calib is immutable after it is made; nwc_calib_get() may be called
 * from any number of threads at once (pread only).
 */
#ifndef NWC_CALIB_H
#define NWC_CALIB_H

#include "codec/common/base.h"
#include "mkfs/llm/llama.h"

struct nwc_calib;

/*
 * nwc_calib_open_stats() - index the statistics file @path: its header
 * must parse (safetensors) and every tensor whose name ends in ".H" must be
 * an F32 square matrix.  Problems are logged with the path; returns 0,
 * -NWC_EFORMAT, an I/O error or -ENOMEM.
 */
int nwc_calib_open_stats(const char *path, struct nwc_calib **out);

/* How nwc_calib_run() runs the model. */
struct nwc_calib_opts {
	uint64_t max_tokens;	/* the first N tokens; 0: all */
	uint32_t ctx;		/* window length; 0: the model's default */
	unsigned threads;	/* >= 1 */
	bool progress;		/* the memory bound, then a progress line */
	bool lines;		/* without @progress: the bound, then a line
				 * per layer (for logs) */
	const char *spill_dir;	/* where the statistics spill */
	uint64_t sens_tokens;	/* the sensitivities from the first N
				 * tokens (a backward pass); 0: none */
};

/*
 * nwc_calib_run() - run the Llama-family model of @dir layer by layer
 * (nwc_llama_calib_stream) over the tokens of the file @tokens
 * (little-endian u16), and keep the H of every linear weight in an
 * unlinked file in @o->spill_dir (beside the image: 4 n^2 bytes per
 * distinct input), read back by nwc_calib_get().  Memory stays within
 * nwc_llama_stream_bytes(), whatever the depth.  Returns 0, -NWC_EFEATURE
 * when @dir is not a Llama-family model directory (logged, suggesting
 * --calib-stats), -EINVAL for a bad token file, an I/O error or -ENOMEM.
 */
int nwc_calib_run(const char *dir, const char *tokens,
		  const struct nwc_calib_opts *o, struct nwc_calib **out);

/*
 * nwc_calib_sequential() - run the model of a nwc_calib_run() again, layer
 * by layer, with each layer's weights handed to @hook (with @arg) after
 * its statistics are summed (nwc_llama_calib_stream): the hook replaces
 * them with what the image will serve, so later layers are measured on
 * the compressed model's own activations.  While it runs, the hook finds
 * the new statistics of the layer with nwc_calib_get_pending(); when it
 * returns they replace the first run's for nwc_calib_get().  Memory as for
 * nwc_calib_run(); the spill file grows by the same amount again.
 * Returns 0, -EINVAL for statistics read from a file, or the errors of
 * nwc_calib_run() and of @hook.
 */
int nwc_calib_sequential(struct nwc_calib *c, nwc_llama_layer_hook *hook,
			 void *arg);

/*
 * nwc_calib_spill_open() - a file without a name in @dir for the spills
 * of model runs (@what, for the message): nothing is left behind,
 * whatever happens, even a kill from another MPI rank; where the file
 * system has no O_TMPFILE, a named one unlinked at once.  0 or a negative
 * errno (logged).
 */
int nwc_calib_spill_open(const char *dir, const char *what, int *fd);

/* nwc_calib_get() over the statistics a sequential run has made so far. */
int nwc_calib_get_pending(const struct nwc_calib *c, const char *name,
			  uint32_t n, float **h);

/* Weights with statistics, and the name (@len bytes, not terminated) and
 * width of weight @i (sorted by name; @i < nwc_calib_count()). */
size_t nwc_calib_count(const struct nwc_calib *c);
/* nwc_calib_get() of weight @i (< nwc_calib_count()), at its own width. */
int nwc_calib_get_at(const struct nwc_calib *c, size_t i, float **h);
const char *nwc_calib_entry(const struct nwc_calib *c, size_t i, size_t *len,
			    uint32_t *n);

/*
 * nwc_calib_get() - a malloc'd copy of H (n x n row-major floats) of the
 * weight named @name in *h.  Returns 0, -ENOENT when there are no
 * statistics for @name, -NWC_EFORMAT when they are not n x n (logged), an
 * I/O error or -ENOMEM.
 */
int nwc_calib_get(const struct nwc_calib *c, const char *name, uint32_t n,
		  float **h);

/*
 * nwc_calib_get_sens() - a malloc'd copy of the sensitivities of weight
 * @name (@rows floats, one per output row: the mean square gradient of
 * the model's loss with respect to that output, per token) in *g.  They
 * come from a statistics file's "<weight name>.G" tensors, or from a
 * model run with @sens_tokens (nwc_llama_sensitivity).  Returns 0,
 * -ENOENT when there are none for @name, -NWC_EFORMAT when they are not
 * @rows long or not finite and >= 0 (logged), an I/O error or -ENOMEM.
 */
int nwc_calib_get_sens(const struct nwc_calib *c, const char *name,
		       uint32_t rows, float **g);

/* Weights with sensitivities; the name (@len bytes, not terminated) and
 * rows of weight @i of them (sorted by name), and nwc_calib_get_sens() of
 * it. */
size_t nwc_calib_sens_count(const struct nwc_calib *c);
const char *nwc_calib_sens_entry(const struct nwc_calib *c, size_t i,
				 size_t *len, uint32_t *rows);
int nwc_calib_get_sens_at(const struct nwc_calib *c, size_t i, float **g);

/*
 * nwc_calib_set_shrink() - from now on nwc_calib_get() and its kin give H
 * with its off-diagonal entries times 1 - @a (0 <= @a <= 1): shrinkage
 * toward the diagonal, which trusts the calibration text's correlations
 * between inputs less (mkfs.nwc --calib-shrink, default 0.5).  0 leaves
 * H as measured.  Call before the statistics are shared with threads.
 */
void nwc_calib_set_shrink(struct nwc_calib *c, double a);

/* Where the statistics came from, for messages ("stats.safetensors"). */
const char *nwc_calib_source(const struct nwc_calib *c);

/* Tokens the statistics were gathered on; 0 when unknown. */
uint64_t nwc_calib_tokens(const struct nwc_calib *c);

/* nwc_calib_free() - accepts NULL. */
void nwc_calib_free(struct nwc_calib *c);

#endif /* NWC_CALIB_H */
