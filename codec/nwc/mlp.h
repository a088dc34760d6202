/* SPDX-License-Identifier: MIT */
/*
 * mlp.h - the NWC analysis/synthesis network (encoder g_a, decoder g_s).
 *
 * One network maps a chunk of NWC_CHUNK (16, codec/nwc/chunk.h) floats to
 * 16 floats; rows of a batch are chunks and each row has its own quality
 * level q:
 *
 *	h = in . W_in^T + b_in				(no activation)
 *	R times:
 *		t = ReLU(LayerNorm(h . W_r^T + b_r) * gamma_r + beta_r)
 *		h = (h + t) * E[q]
 *	out = h . W_out^T + b_out
 *
 * LayerNorm is over the H features, biased variance, eps 1e-5 (as
 * PyTorch).  E (Q x H) is not part of the parameters but passed
 * separately: a codec model has one table per network, or one shared by
 * both (nwcmodel.h).
 *
 * Parameters are one flat float array (so a trainer runs Adam over one
 * array and a model file stores one blob), in this order, row-major:
 *
 *	w_in	(H x 16)	row i = weights of hidden feature i
 *	b_in	(H)
 *	for each of the R blocks:
 *		w	(H x H)	row i = weights of output feature i
 *		b	(H)
 *		gamma	(H)
 *		beta	(H)
 *	w_out	(16 x H)
 *	b_out	(16)
 *
 * i.e. PyTorch's nn.Linear weight layout (out x in), so every layer is one
 * sgemm over the whole batch.  Gradients use the same layout.
 *
 *	struct nwc_net net = { .h = 64, .r = 1, .nq = 4, .params = p };
 *	nwc_net_scratch_create(&s);
 *	nwc_net_forward(&net, emb, q, in, batch, out, s);
 *	nwc_net_scratch_free(s);
 *
 * Results are bit-identical for the same inputs and batch, on any thread
 * (BLAS is single-threaded, see codec/nwc/gemm.h), but only on the same CPU
 * type and OpenBLAS build.  A row's result may differ in the last bits if
 * it is computed in a batch of another size.
 *
 * Sides: inference (shapes, nwc_net_forward, the folded decoder) is
 * mlp.c in libnwcdec.a; the functions marked "training side" below
 * (initialization, nwc_net_forward_train, nwc_net_backward, activation
 * stores) are mlp_train.c in libnwcenc.a, which the read-only daemon does
 * not link.
 *
 * Thread safety: a scratch or activation store belongs to one thread at a
 * time; the parameters and E are only read and may be shared.
 */
#ifndef NWC_MLP_H
#define NWC_MLP_H

#include "codec/common/base.h"
#include "codec/nwc/chunk.h"

#define NWC_NET_Q 4		/* quality levels of the standard codec */
#define NWC_NET_MAX_H 4096u
#define NWC_NET_MAX_R 16u
#define NWC_NET_MAX_Q 16u
#define NWC_NET_LN_EPS 1e-5f

struct nwc_net {
	unsigned int h;		/* hidden width H, 1..NWC_NET_MAX_H */
	unsigned int r;		/* residual blocks R, 0..NWC_NET_MAX_R */
	unsigned int nq;	/* quality levels Q, 1..NWC_NET_MAX_Q */
	const float *params;	/* nwc_net_nparams(h, r) floats */
};

/* Offsets (in floats) of each parameter tensor in the flat array. */
struct nwc_net_layout {
	size_t w_in, b_in;
	struct nwc_net_block_offs {
		size_t w, b, gamma, beta;
	} blk[NWC_NET_MAX_R];
	size_t w_out, b_out;
	size_t total;		/* = nwc_net_nparams() */
};

/* nwc_net_check() - 0 if the dimensions are within the limits, or -EINVAL. */
int nwc_net_check(unsigned int h, unsigned int r, unsigned int nq);

/* Parameter count: 33 H + 16 + R (H^2 + 3 H); 0 for invalid dimensions. */
size_t nwc_net_nparams(unsigned int h, unsigned int r);

/* nwc_net_layout() - fill @l; 0 or -EINVAL (invalid dimensions). */
int nwc_net_layout(unsigned int h, unsigned int r, struct nwc_net_layout *l);

/* Multiply-accumulates per chunk: 32 H + R H^2 (LayerNorm etc. excluded). */
uint64_t nwc_net_macs(unsigned int h, unsigned int r);

/*
 * nwc_net_init() - training side: deterministic initialization for
 * @seed: weights and biases uniform in +-1/sqrt(fan_in) (PyTorch's
 * nn.Linear default), gamma 1, beta 0.  Tensors are filled in layout
 * order from one splitmix64 stream.  0 or -EINVAL.
 */
int nwc_net_init(float *params, unsigned int h, unsigned int r,
		 uint64_t seed);

/*
 * nwc_emb_init() - training side: E = all ones.  PyTorch's nn.Embedding
 * default, N(0, 1), would flip signs and rescale features at random in
 * each of the R multiplicative steps; starting at 1 makes the untrained
 * net level-blind and leaves training to learn each level's modulation.
 * 0 or -EINVAL.
 */
int nwc_emb_init(float *emb, unsigned int nq, unsigned int h);

struct nwc_net_scratch;

/* Per-thread working memory for nwc_net_forward(); grows as needed. */
int nwc_net_scratch_create(struct nwc_net_scratch **out);
void nwc_net_scratch_free(struct nwc_net_scratch *s);

/*
 * nwc_net_forward() - out (batch x 16) = net(in (batch x 16)), row i
 * modulated by E[q[i]] (@emb: nq x H).  batch may be 0.  Returns 0,
 * -EINVAL (bad dimensions, batch over INT_MAX, q[i] >= nq) or -ENOMEM.
 */
int nwc_net_forward(const struct nwc_net *net, const float *emb,
		    const uint8_t *q, const float *in, size_t batch,
		    float *out, struct nwc_net_scratch *s);

/*
 * The decoder's shortcut.  With R >= 1 nothing nonlinear lies between the
 * input Linear and the first block's Linear, so both are one Linear of the
 * 16 inputs, stacked: [h | z] = in . [W_in; W_1 W_in]^T + [b_in; W_1 b_in
 * + b_1].  At H 32 that is 1536 multiply-adds per chunk instead of 2048,
 * and one sgemm fewer; at H 64, half.
 *
 * nwc_net_fold() computes the stacked layer into @folded
 * (nwc_net_folded_size(H) floats: 2H x 16 weights, then 2H biases), in
 * double with one final rounding, for inputs shifted by @shift (16
 * floats, or NULL for none): the net then computes net(in + shift).
 * 0, -EINVAL (bad dimensions, R = 0) or -ENOMEM.
 *
 * nwc_net_forward_folded() is nwc_net_forward() from @folded, with the
 * same arguments and returns (and -EINVAL for R = 0).  Its results agree
 * with nwc_net_forward()'s to float rounding, not to the bit, and are
 * deterministic in the same way.  @folded is only read and may be shared.
 */
size_t nwc_net_folded_size(unsigned int h);
int nwc_net_fold(const struct nwc_net *net, const float *shift,
		 float *folded);
int nwc_net_forward_folded(const struct nwc_net *net, const float *folded,
			   const float *emb, const uint8_t *q, const float *in,
			   size_t batch, float *out, struct nwc_net_scratch *s);

/* Chunks that nwc_net_forward_lanes() takes side by side. */
#define NWC_NET_LANES 16u

/*
 * The folded decoder on @lanes (1..NWC_NET_LANES) chunk columns side by
 * side, in the lanes layout of the entropy stage (entropy.h): column l
 * (level q[l]) holds ceil(@rows / 16) chunks down, latent c of its chunk
 * k at y[(16 k + c) lanes + l].  Output o of that chunk is value row
 * 16 k + o of column l: times scale[16 k + o], it goes as a @dtype
 * element (a float dtype, convert.h) to element (16 k + o) @ldo + l of
 * @out, for the first @rows rows (the last chunk may be short).  The
 * same bytes as nwc_net_forward_folded() on those chunks, the multiply by
 * the scale and nwc_from_f32(), with no transposes, every LayerNorm sum a
 * vertical add and BF16 rounded in registers (mlp_lanes.c).  Only where
 * nwc_net_lanes_ok(): a net with R >= 1, H a multiple of 8 up to 64, on
 * a CPU with AVX2 and FMA (there nwc_net_forward_folded() runs the vector
 * Linear kernels, whose bits these are).  0 or -EINVAL (not ok here, bad
 * lanes, @ldo, q or dtype).  Pure: @folded, @emb and @net are only read.
 */
bool nwc_net_lanes_ok(const struct nwc_net *net);
int nwc_net_forward_lanes(const struct nwc_net *net, const float *folded,
			  const float *emb, const uint8_t *q,
			  unsigned int lanes, const float *y, size_t rows,
			  const float *scale, unsigned int dtype, void *out,
			  size_t ldo);

/* Floats of one level's map in nwc_net_fold_linear()'s layout. */
#define NWC_NET_LIN_LEVEL (NWC_CHUNK * NWC_CHUNK + NWC_CHUNK)

/*
 * A net whose every block has gamma = beta = 0 is linear: the block adds
 * ReLU(0) = 0, so h only picks up the level factors, and
 *
 *	out = W_out diag(E[q]^R) (W_in in + b_in) + b_out
 *
 * one 16 x 16 map per level (models trained from nwc-train --init-branch
 * 0; their decoders cost 256 multiply-adds per chunk instead of 1536).
 *
 * nwc_net_is_linear() tells whether @net is such a net (R >= 1).
 * nwc_net_fold_linear() computes, for inputs shifted by @shift (16
 * floats or NULL), each level's map into @lin (nwc_net_linear_size(Q)
 * floats: per level, NWC_NET_LIN_LEVEL apart, 16 x 16 weights
 * input-major (weight of input k for output o at k 16 + o), then 16
 * biases), in double with one final rounding; nwctensor.c reads this
 * layout too.  0, -EINVAL (not such a net) or -ENOMEM.
 *
 * nwc_net_forward_linear() is nwc_net_forward() from @lin (@out may be
 * @in).  Its results agree with nwc_net_forward()'s to float rounding, not
 * to the bit, and do not depend on the batch: each chunk's multiplies and
 * adds run in one fixed order (which nwctensor.c's one-pass band decoder
 * repeats, to give the same values).  @lin is only read and may be shared.
 * Returns as nwc_net_forward().
 */
bool nwc_net_is_linear(const struct nwc_net *net);
size_t nwc_net_linear_size(unsigned int nq);
int nwc_net_fold_linear(const struct nwc_net *net, const float *emb,
			const float *shift, float *lin);
int nwc_net_forward_linear(const struct nwc_net *net, const float *lin,
			   const uint8_t *q, const float *in, size_t batch,
			   float *out);

struct nwc_net_acts;

/*
 * Training side: activations that nwc_net_forward_train() keeps for
 * nwc_net_backward(), with the backward pass's working memory; per
 * thread, grows as needed (about (2 R + 3) x batch x H floats).
 */
int nwc_net_acts_create(struct nwc_net_acts **out);
void nwc_net_acts_free(struct nwc_net_acts *a);

/*
 * nwc_net_forward_train() - training side: nwc_net_forward() that records
 * in @a what the backward pass needs (copies of @in and @q included).
 * Its @out is bit-identical to nwc_net_forward()'s.  Same returns.
 */
int nwc_net_forward_train(const struct nwc_net *net, const float *emb,
			  const uint8_t *q, const float *in, size_t batch,
			  float *out, struct nwc_net_acts *a);

/*
 * nwc_net_backward() - training side: given dL/d(out) (@dout, batch x
 * 16) for the last nwc_net_forward_train() on @a, with the same @net and
 * @emb:
 *	adds dL/d(params) to @dparams (nwc_net_nparams() floats, same layout),
 *	adds dL/d(E) to @demb (nq x H),
 *	stores dL/d(in) in @din (batch x 16) unless it is NULL.
 * Returns 0, or -EINVAL if @a holds no forward pass of this net's shape.
 */
int nwc_net_backward(const struct nwc_net *net, const float *emb,
		     const float *dout, struct nwc_net_acts *a,
		     float *dparams, float *demb, float *din);

#endif /* NWC_MLP_H */
