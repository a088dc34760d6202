/* SPDX-License-Identifier: MIT */
/*
 * llama.h - F32 forward pass of Llama-family causal LMs (Hugging Face
 * model_type llama, mistral, qwen2, qwen3) for perplexity and calibration.
 *
 *	struct nwc_llama *m;
 *	struct nwc_llama_opts o = { .threads = 4 };
 *	struct nwc_llama_eval ev;
 *	ret = nwc_llama_open("model-dir", &m);
 *	ret = nwc_llama_eval(m, tok, n, &o, &ev);
 *	printf("ppl %.4f\n", exp(ev.nll / ev.count));
 *	nwc_llama_free(m);
 *
 * The computation follows transformers' LlamaForCausalLM in float32:
 * RMSNorm, rotary embeddings in the rotate_half layout, grouped-query
 * causal softmax attention, SiLU-gated MLP, final norm, lm_head or the
 * tied embedding.  Matrix products go through nwc_sgemm().
 *
 * Tokens: the stream is cut into sequences at every NWC_LLAMA_BOS (a
 * stream that does not start with one starts a sequence all the same), and
 * a sequence longer than the context is cut into windows of that length.
 * Every window is an independent forward pass from position 0.
 *
 * Threads: work is spread over @threads threads by window.  Results do not
 * depend on the thread count, bit for bit: each window is computed alone
 * and the partial sums are combined in stream order.  Ranks: the layer
 * stream of nwc_llama_calib_stream() is spread over the ranks of the
 * process group (mkfs/group/group.h), block by block in turn, and the
 * sums pass from rank to rank in block order, so that they do not depend
 * on the rank count either.
 *
 * Thread safety: a struct nwc_llama is immutable after nwc_llama_open(),
 * so several threads may run nwc_llama_eval() and nwc_llama_calib() on one
 * model at once; each call allocates its own scratch.
 */
#ifndef NWC_LLAMA_H
#define NWC_LLAMA_H

#include "codec/common/base.h"

#define NWC_LLAMA_BOS 1u		/* token that starts a sequence */
#define NWC_LLAMA_CTX_MAX 2048u		/* default context cap */

struct nwc_llama;

/* The model as config.json describes it (defaults filled in). */
struct nwc_llama_config {
	char model_type[8];		/* "llama", "mistral", "qwen2", "qwen3" */
	uint32_t hidden;		/* hidden_size */
	uint32_t intermediate;		/* intermediate_size */
	uint32_t layers;		/* num_hidden_layers */
	uint32_t heads;			/* num_attention_heads */
	uint32_t kv_heads;		/* num_key_value_heads, divides heads */
	uint32_t head_dim;		/* even; hidden / heads unless given */
	uint32_t vocab;			/* vocab_size */
	uint32_t max_pos;		/* max_position_embeddings */
	uint32_t sliding_window;	/* mistral's attention span; 0 = none */
	double rms_eps;			/* rms_norm_eps */
	double rope_theta;		/* rope_theta */
	bool tied;			/* tie_word_embeddings: no lm_head */
	bool qkv_bias;			/* q, k and v projections have biases */
	bool o_bias;			/* o_proj has a bias */
	bool qk_norm;			/* q_norm and k_norm over each head */
};

/* Options of one run; zero-initialised fields take the defaults. */
struct nwc_llama_opts {
	unsigned threads;		/* worker threads; 0 means 1 */
	uint32_t ctx;			/* window length >= 2; 0: the default,
					 * min(max_pos, NWC_LLAMA_CTX_MAX) */
	uint64_t max_tokens;		/* only the first N tokens; 0: all */
	/*
	 * Called after each window with the tokens done and the total, from
	 * the worker threads but never two calls at once; may be NULL.
	 */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
};

struct nwc_llama_eval {
	double nll;			/* sum of -ln p over predicted tokens */
	uint64_t count;			/* predicted tokens: all but the first
					 * of every window */
	uint64_t tokens;		/* tokens read from the stream */
};

/* The second-moment matrix of the input of one or more linear layers. */
struct nwc_llama_h {
	uint32_t n_in;			/* input width */
	float *h;			/* (n_in, n_in) row-major, symmetric:
					 * (1/T) sum_t x_t x_t^T */
	unsigned n_weights;		/* layers reading this input: 1 to 3 */
	char *weights[3];		/* their weight tensor names, such as
					 * "model.layers.0.self_attn.q_proj.weight" */
};

struct nwc_llama_calib {
	uint64_t tokens;		/* T: every token read, all positions */
	size_t n;			/* inputs: 4 per layer, +1 if untied */
	struct nwc_llama_h *in;		/* layer by layer: attention input
					 * (q, k, v), o_proj input, MLP input
					 * (gate, up), down_proj input; then
					 * lm_head's input if untied */
};

/*
 * nwc_llama_open() - read @dir/config.json and the weights of @dir: the
 * files named by model.safetensors.index.json when there is one, else
 * every *.safetensors file of @dir.  Weights may be F32, F16, BF16 or F64
 * and are held as F32.  Every problem is logged with the file and the key
 * or tensor.  Returns 0 and sets *out, or -ENOENT and other I/O errors,
 * -NWC_EFORMAT (malformed config, missing tensor, wrong shape or dtype),
 * -NWC_EFEATURE (a model or option this code does not implement, such as
 * rope_scaling), -ENOMEM.
 */
int nwc_llama_open(const char *dir, struct nwc_llama **out);

/* nwc_llama_read_config() - @dir/config.json only; nwc_llama_open()'s
 * errors for it. */
int nwc_llama_read_config(const char *dir, struct nwc_llama_config *cfg);

/* nwc_llama_free() - release a model; accepts NULL. */
void nwc_llama_free(struct nwc_llama *m);

/* nwc_llama_config() - the configuration of @m; valid while @m is. */
const struct nwc_llama_config *nwc_llama_config(const struct nwc_llama *m);

/*
 * nwc_llama_eval() - score the @n tokens at @tok (see the top comment for
 * sequences and windows): the summed negative log-likelihood of every
 * predicted token, in nats; perplexity is exp(nll / count).  Returns 0,
 * -EINVAL for bad options or a token >= vocab (logged with its index),
 * -ENOMEM, or the error of pthread_create().
 */
int nwc_llama_eval(const struct nwc_llama *m, const uint32_t *tok, size_t n,
		   const struct nwc_llama_opts *o, struct nwc_llama_eval *out);

/*
 * nwc_llama_calib() - run the tokens and collect, for the input of every
 * linear layer, H = (1/T) sum_t x_t x_t^T over all T positions.  Layers
 * that read the same activations share one H.  Products of a window are
 * taken in float, the sum over windows in double.  Memory: (threads + 1)
 * double copies of all the H.  Returns 0 and sets *out (free it with
 * nwc_llama_calib_free()), or the errors of nwc_llama_eval().
 */
int nwc_llama_calib(const struct nwc_llama *m, const uint32_t *tok, size_t n,
		    const struct nwc_llama_opts *o,
		    struct nwc_llama_calib **out);

/* nwc_llama_calib_free() - accepts NULL. */
void nwc_llama_calib_free(struct nwc_llama_calib *c);

/* Takes one input's H, valid during the call; 0 or a negative errno. */
typedef int nwc_llama_sink(void *arg, const struct nwc_llama_h *h);

/*
 * Gets weight @name of the layer just summed, as @rows x @cols floats it
 * may overwrite (with what a lossy image will serve, say); 0 or a negative
 * errno.
 */
typedef int nwc_llama_layer_hook(void *arg, const char *name, float *w,
				 uint32_t rows, uint32_t cols);

/*
 * nwc_llama_calib_stream() - nwc_llama_calib() on the model of @dir without
 * holding it: only the residual stream of the @n tokens (T x hidden
 * floats) stays in memory between layers, with one decoder layer's weights
 * at a time, read from @dir's weight files as it is reached.  @sink gets
 * each input's H in nwc_llama_calib()'s order, as soon as its layer is
 * done; the values are those of nwc_llama_calib(), bit for bit (same
 * windows, blocks and sums).  With @hook (or NULL), each decoder layer
 * runs twice: the first pass sums its statistics and hands them to @sink,
 * then @hook gets each of the layer's seven linear weights and may change
 * them, and the second pass moves the stream on with the changed weights,
 * so that later layers are measured on what the changed model computes
 * (sequential calibration).  Sets *@tokens to T.  Memory: at most about
 * nwc_llama_stream_bytes().  Returns the errors of nwc_llama_open() and
 * nwc_llama_calib(), or the sink's.
 */
int nwc_llama_calib_stream(const char *dir, const uint32_t *tok, size_t n,
			   const struct nwc_llama_opts *o,
			   nwc_llama_sink *sink, nwc_llama_layer_hook *hook,
			   void *arg, uint64_t *tokens);

/* Gets the sensitivities @g of the @rows outputs of weight @name. */
typedef int nwc_llama_sens_sink(void *arg, const char *name, const float *g,
				uint32_t rows);

/*
 * nwc_llama_sensitivity() - for every output i of every linear weight of
 * the decoder layers of the model of @dir, G_i = (1/T) sum_t (dL/dy_ti)^2
 * over the T = @n tokens, where L is the summed negative log-likelihood of
 * the windows (the top comment's) and y_t the weight's output at token t:
 * a second-order estimate of the loss increase of an error e_t in that
 * output is (1/2) sum_t sum_i G_i e_ti^2.  One forward pass and one
 * backward pass, streamed layer by layer like nwc_llama_calib_stream();
 * every layer's input rows (4 T hidden bytes a layer) go to @spill_fd, a
 * file open for reading and writing, at its start.  @sink gets the seven
 * weights of each layer from the last layer down.  Threads as the other
 * runs; the result does not depend on their number (ranks do not share
 * the work: each computes the same).  Memory: nwc_llama_sens_bytes(): the
 * stream and its gradient (8 T hidden bytes), one layer, the lm_head, and
 * a window's buffers per thread.  Returns nwc_llama_calib_stream()'s
 * errors.
 */
int nwc_llama_sensitivity(const char *dir, const uint32_t *tok, size_t n,
			  const struct nwc_llama_opts *o, int spill_fd,
			  nwc_llama_sens_sink *sink, void *arg);

/*
 * nwc_llama_final_rows() - the model of @dir on the tokens (windows as
 * nwc_llama_eval()), streamed layer by layer: the residual stream after
 * the last decoder layer, before the final norm, T x hidden floats in
 * window order, malloc'd into *@rows.  The reference of
 * nwc_llama_scale_grad().  Returns nwc_llama_calib_stream()'s errors.
 */
int nwc_llama_final_rows(const char *dir, const uint32_t *tok, size_t n,
			 const struct nwc_llama_opts *o, float **rows);

/*
 * nwc_llama_scale_grad() - for the model of @dir whose linear weights
 * @hook may change (it gets each decoder layer's seven weights whenever
 * the layer is read, twice a call): the mean over the predicted positions
 * of KL(p || q) in *@kl, p the distribution the reference model gives
 * (@target: its nwc_llama_final_rows() for the same tokens and options),
 * q the changed model's; and to @sink, for every output row i of every
 * linear weight, the gradient of that mean with respect to a scale of
 * the row, W_i -> (1 + d_i) W_i at d = 0: (1/P) sum_t g_ti (W_i x_t), g
 * the gradient with respect to the row's output.  The same streaming,
 * spill file, threads and determinism as nwc_llama_sensitivity(), whose
 * errors it returns.  Memory: nwc_llama_sens_bytes() plus the target (4
 * T hidden bytes) and per thread 4 (L hidden + 32 vocab) bytes.
 */
int nwc_llama_scale_grad(const char *dir, const uint32_t *tok, size_t n,
			 const struct nwc_llama_opts *o, int spill_fd,
			 const float *target, nwc_llama_layer_hook *hook,
			 void *hook_arg, nwc_llama_sens_sink *sink, void *arg,
			 double *kl);

/* The memory nwc_llama_sensitivity() takes at most, as above, for windows
 * of at most @ctx tokens. */
uint64_t nwc_llama_sens_bytes(const struct nwc_llama_config *c,
			      uint64_t tokens, uint32_t ctx, unsigned threads);

/*
 * nwc_llama_stream_bytes() - the memory bound of nwc_llama_calib_stream()
 * for a model of config @c, @tokens tokens in windows of at most @ctx,
 * @threads threads and @ranks ranks of a group, each holding the stream of
 * its share T of the tokens (man mkfs.nwc, --calib): 4 T h (the stream) + 4 max(one
 * layer's weights, vocab h) + 4 (threads + 1) (2 h^2 + q^2 + inter^2)
 * (sums of one layer's inputs as upper triangles, q = heads * head_dim) + 4 threads (C (2 h
 * + 2 q + 2 kv + 2 inter + 64) + max(h, q, inter)^2) (a window's buffers).
 */
uint64_t nwc_llama_stream_bytes(const struct nwc_llama_config *c,
				uint64_t tokens, uint32_t ctx,
				unsigned threads, unsigned ranks);

/*
 * nwc_llama_read_tokens() - read a token file (uint16 little-endian ids),
 * at most @max tokens (0: all), into a malloc'd array *tok of *n ids.
 * Errors are logged with the path; returns 0, -EINVAL (not a regular
 * file, odd size), -ENOMEM or an I/O error.
 */
int nwc_llama_read_tokens(const char *path, uint64_t max, uint32_t **tok,
			  size_t *n);

#endif /* NWC_LLAMA_H */
