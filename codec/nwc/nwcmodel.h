/* SPDX-License-Identifier: MIT */
/*
 * nwcmodel.h - a trained NWC codec model: encoder, decoder, level table and
 * factorized prior, its integer coding tables, the versioned checksummed
 * file that stores them, and the chunk <-> symbol round trip.
 *
 *	nwc_model_load("lambda100.nwcm", &m);
 *	nwc_model_scratch_create(&s);
 *	nwc_model_encode_chunks(m, x, q, n, sym, s);	// n x 16 symbols
 *	len = nwc_model_code_syms(m, sym, 16 * n, buf, cap);
 *	nwc_model_decode_syms(m, buf, len, sym, 16 * n);
 *	nwc_model_decode_chunks(m, sym, q, n, xhat, s);
 *
 * File layout (normative), all little-endian:
 *
 *	off  size
 *	0    8     magic "NWCMODEL"
 *	8    4     u32 version (1)
 *	12   4     u32 H, hidden width (nwc_net_check limits)
 *	16   4     u32 R, residual blocks
 *	20   4     u32 Q, quality levels
 *	24   4     u32 C, latents per chunk = chunk length (NWC_CHUNK, 16)
 *	28   4     f32 lambda the model was trained for (informational)
 *	32   4     u32 flags: NWC_MODEL_F_TCQ (bit 0) = half-offset tables
 *		   follow the coding tables; NWC_MODEL_F_DEC_LEVELS (bit 1) =
 *		   the decoder has its own level table; any other bit is an
 *		   unknown feature
 *	36   8     u64 F, number of floats that follow
 *	44   4 F   f32 enc, dec, emb, [emb_dec,] prior, quantiles (see struct
 *		   nwc_model), F = 2 nwc_net_nparams(H, R) + Q H (2 Q H with
 *		   NWC_MODEL_F_DEC_LEVELS) + nwc_prior_nparams(C) + 3 C
 *	...        T = C (2 C with NWC_MODEL_F_TCQ) times: u32 length L, then
 *		   L bytes of an nwc_qdist_save() table; table c < C codes
 *		   channel c on cells centred at median_c + v, table C + c on
 *		   cells centred at median_c + v + 1/2 (trellis quantization,
 *		   codec/nwc/nwctensor.h)
 *	...  4 C   f32 medians[C]
 *	...  8     u64 XXH3-64 (nwc_hash64) of every byte before it
 *
 * Every float must be finite.  The stored tables, not ones rebuilt from the
 * prior, are what a decoder uses: they are exactly what the encoder used.
 *
 * Sides: loading, finalizing and decoding are nwcmodel.c in libnwcdec.a;
 * the functions marked "encode side" (create, serialize, save, analyze,
 * encode, code) are nwcmodel_enc.c in libnwcenc.a, which the read-only
 * daemon does not link.
 *
 * Validation: nwc_model_from_buf() and nwc_model_load() check a file
 * whole (sizes, checksum, finite values, table sums) and finalize it; the
 * analysis and synthesis functions then trust the model and check only
 * their own arguments.
 *
 * Thread safety: a loaded or finalized model is immutable and may be
 * shared; a scratch belongs to one thread at a time.
 */
#ifndef NWC_NWCMODEL_H
#define NWC_NWCMODEL_H

#include "codec/common/base.h"
#include "codec/nwc/chunk.h"
#include "codec/nwc/entropy.h"

#define NWC_MODEL_MAGIC "NWCMODEL"
#define NWC_MODEL_VERSION 1u
#define NWC_MODEL_HDR_SIZE 44u
#define NWC_MODEL_MAX_BYTES (1ull << 32)	/* largest file we load */
#define NWC_MODEL_F_TCQ 0x1u		/* half-offset tables present */
#define NWC_MODEL_F_DEC_LEVELS 0x2u	/* a level table per network */
#define NWC_MODEL_F_KNOWN (NWC_MODEL_F_TCQ | NWC_MODEL_F_DEC_LEVELS)

struct nwc_model {
	unsigned int h;		/* hidden width H */
	unsigned int r;		/* residual blocks R */
	unsigned int nq;	/* quality levels Q */
	unsigned int c;		/* latents per chunk C (= NWC_CHUNK) */
	float lambda;		/* rate point trained for; informational */
	uint32_t flags;		/* NWC_MODEL_F_*; finalize sets F_TCQ */

	/*
	 * All parameters in one allocation, in file order, so that a trainer
	 * can run one optimizer over a prefix of it:
	 *	enc		nwc_net_nparams(H, R)	encoder g_a (mlp.h layout)
	 *	dec		nwc_net_nparams(H, R)	decoder g_s
	 *	emb		Q x H			encoder level table E
	 *	emb_dec		Q x H			decoder level table,
	 *						with F_DEC_LEVELS only
	 *	prior		nwc_prior_nparams(C)	densities (prior.h layout)
	 *	quantiles	3 x C			lower, median, upper
	 * The named pointers point into @params; without F_DEC_LEVELS (the
	 * paper's design, and models of version 1 files before the flag)
	 * emb_dec is emb.  One table for both networks scales the decoder's
	 * output by what scales the encoder's latents, so a small decoder
	 * cannot give the levels different step sizes; its own table can.
	 */
	float *params;
	size_t nparams;		/* floats in @params (F of the file) */
	float *enc, *dec, *emb, *emb_dec, *prior, *quantiles;

	/* Coding state, built by nwc_model_finalize() or loaded. */
	float *medians;			/* C: yhat = symbol + medians[c] */
	float *dec_folded;		/* R >= 1: the decoder's input layers
					 * and medians, nwc_net_fold() */
	float *dec_linear;		/* a linear decoder's maps, medians
					 * included (nwc_net_fold_linear()),
					 * instead of dec_folded */
	bool dec_lanes;			/* dec_folded runs on this CPU's
					 * lanes kernel (nwc_net_lanes_ok()) */
	struct nwc_qdist **tables;	/* nwc_model_ntables(); see the file */
	struct nwc_ents_flat *flat;	/* the tables for the vector decoder,
					 * or NULL (entropy.h) */
	bool finalized;
};

/* Coding tables the model has: C, or 2 C with the half-offset ones. */
static inline unsigned int nwc_model_ntables(const struct nwc_model *m)
{
	return m->flags & NWC_MODEL_F_TCQ ? 2 * m->c : m->c;
}

/*
 * nwc_model_create() - encode side: a model of the given shape with zeroed
 * parameters, a level table per network (NWC_MODEL_F_DEC_LEVELS) and no coding
 * state; C is NWC_CHUNK.  Returns 0, -EINVAL (shape outside nwc_net_check) or
 * -ENOMEM.
 */
int nwc_model_create(unsigned int h, unsigned int r, unsigned int nq,
		     struct nwc_model **out);

/* nwc_model_free() - free @m and its tables; NULL is fine. */
void nwc_model_free(struct nwc_model *m);

/*
 * nwc_model_finalize() - (re)build medians and tables, the half-offset
 * ones included (setting NWC_MODEL_F_TCQ), from the prior and the
 * quantiles (nwc_prior_tables), and the decoder's folded input layers
 * (nwc_net_fold), replacing any previous ones.  Call after the
 * parameters change, before coding or saving.  Returns 0,
 * -EINVAL (a non-finite quantile) or -ENOMEM; on failure the model is left
 * without coding state.
 */
int nwc_model_finalize(struct nwc_model *m);

/*
 * nwc_model_to_buf() - encode side: serialize a finalized model into a malloc'd
 * buffer (*buf, *len).  Returns 0, -EINVAL (not finalized, non-finite float) or
 * -ENOMEM.
 */
int nwc_model_to_buf(const struct nwc_model *m, uint8_t **buf, size_t *len);

/*
 * nwc_model_from_buf() - parse and validate @len bytes.  Returns 0 and a
 * finalized model in *out, -NWC_ECORRUPT for anything malformed (wrong
 * magic, shape, length, checksum, a non-finite float, a bad table),
 * -NWC_EFEATURE for an unknown version or flag, -ENOMEM.  Errors are
 * logged naming "codec model buffer".
 */
int nwc_model_from_buf(const uint8_t *buf, size_t len, struct nwc_model **out);

/*
 * nwc_model_save() - encode side: write @m (finalized) to @path: a temporary
 * file in the same directory, fsync, rename over @path.  No temporary file is
 * left behind on failure.  Errors are logged with the path; returns 0 or a
 * negative errno.
 */
int nwc_model_save(const struct nwc_model *m, const char *path);

/* nwc_model_load() - read and validate @path; returns as nwc_model_from_buf
 * (errors logged with the path), or the errno of open/read. */
int nwc_model_load(const char *path, struct nwc_model **out);

struct nwc_model_scratch;

/* Per-thread working memory of the chunk functions; grows as needed. */
int nwc_model_scratch_create(struct nwc_model_scratch **out);
void nwc_model_scratch_free(struct nwc_model_scratch *s);

/*
 * nwc_model_encode_chunks() - encode side: symbols of @n chunks: y = g_a(x, q),
 * then sym[i, c] = round(y[i, c] - medians[c]), halves away from zero, clamped
 * to +-2^30.  @x and @sym are n x 16, @q has n levels.  The model must be
 * finalized.  Returns 0, -EINVAL (not finalized, bad q), -ERANGE (a latent is
 * not finite) or -ENOMEM.
 */
int nwc_model_encode_chunks(const struct nwc_model *m, const float *x,
			    const uint8_t *q, size_t n, int32_t *sym,
			    struct nwc_model_scratch *s);

/*
 * nwc_model_decode_chunks() - xhat = g_s(sym + medians, q) for @n chunks
 * (n x 16 each way).  Same returns as nwc_model_encode_chunks().
 */
int nwc_model_decode_chunks(const struct nwc_model *m, const int32_t *sym,
			    const uint8_t *q, size_t n, float *xhat,
			    struct nwc_model_scratch *s);

/*
 * nwc_model_analyze() - encode side: centred latents of @n chunks: y = g_a(x,
 * q) - medians (n x 16 each way).  Returns as nwc_model_encode_chunks().
 */
int nwc_model_analyze(const struct nwc_model *m, const float *x,
		      const uint8_t *q, size_t n, float *y,
		      struct nwc_model_scratch *s);

/*
 * nwc_model_synthesize() - xhat = g_s(y + medians, q) for centred latents
 * @y of @n chunks; @xhat may be @y.  With R >= 1 it runs from the folded
 * input layers (nwc_net_forward_folded()), or for a linear decoder from
 * its per-level maps (nwc_net_forward_linear()), so it matches g_s
 * computed layer by layer to float rounding, not to the bit.  Returns as
 * nwc_model_decode_chunks().
 */
int nwc_model_synthesize(const struct nwc_model *m, const float *y,
			 const uint8_t *q, size_t n, float *xhat,
			 struct nwc_model_scratch *s);

/*
 * nwc_model_synthesize_lanes() - nwc_model_synthesize() on @lanes chunk
 * columns side by side in the entropy stage's lanes layout, each output
 * times its row's scale and written as @dtype, through
 * nwc_net_forward_lanes() (mlp.h: the layouts of @y and @out, the same
 * bytes).  Only where
 * nwc_model_lanes_ok(): a finalized model whose decoder is folded, on a
 * CPU that runs the kernel.  0 or -EINVAL.
 */
bool nwc_model_lanes_ok(const struct nwc_model *m);
int nwc_model_synthesize_lanes(const struct nwc_model *m, const uint8_t *q,
			       unsigned int lanes, const float *y,
			       size_t rows, const float *scale,
			       unsigned int dtype, void *out, size_t ldo);

/*
 * nwc_model_code_syms() - encode side: entropy-code @count symbols, symbol i
 * with table i % C (its latent channel).  Returns the stream length, -ENOBUFS
 * if @cap (size it with nwc_ents_bound) is too small, -EINVAL, -ENOMEM.
 */
ssize_t nwc_model_code_syms(const struct nwc_model *m, const int32_t *sym,
			    size_t count, uint8_t *dst, size_t cap);

/* nwc_model_decode_syms() - the reverse; a bad stream gives -NWC_ECORRUPT. */
int nwc_model_decode_syms(const struct nwc_model *m, const uint8_t *src,
			  size_t len, int32_t *sym, size_t count);

#endif /* NWC_NWCMODEL_H */
