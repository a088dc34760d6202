/* SPDX-License-Identifier: MIT */
/* nwctensor.c - NWC coding of weight matrices in row bands (see the header). */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/common/convert.h"
#include "codec/nwc/entropy.h"
#include "codec/nwc/ldlq.h"
#include "codec/nwc/nwctensor.h"
#include "codec/common/simd.h"

#define C NWC_MODEL_C
#define TCQ_STATES 8u
#define SYM_LIMIT (1 << 30)
#define MAX_DIM (1u << 24)	/* rows or columns of one matrix */

/*
 * The trellis: an 8-state Ungerboeck trellis over the scalar codebook of
 * step 1/2, whose points k/2 are labelled D_(k mod 4).  State t allows the
 * union D_u(t) and D_(u(t)+2), u(t) = bit 1 of t: the integers for u = 0,
 * the half-integers for u = 1, so every state offers a grid of step 1 and
 * the rate stays that of rounding.  Symbol v (the grid index) picks the
 * subset by its parity and with it the branch.  Next states form a shift
 * register, (t >> 1) | branch << 2; the subset of each branch is chosen so
 * that the two branches leaving a state, and the two entering one, carry
 * D_u and D_(u+2).  Measured granular gain over rounding on uniform data:
 * 0.98 dB for long sequences, 0.87 dB for 32 values, 0.67 dB for 16.
 */
/*
 * Next state after a symbol of parity p in state t.  The branch subsets are
 * D(t, branch) = {0,2},{2,0},{1,3},{3,1},{2,0},{0,2},{3,1},{1,3} for
 * t = 0..7, and symbol v in state t lies in D_(u(t) + 2 (v & 1)).
 */
static const uint8_t tcq_next_tab[TCQ_STATES][2] = {
	{ 0, 4 }, { 4, 0 }, { 1, 5 }, { 5, 1 },
	{ 6, 2 }, { 2, 6 }, { 7, 3 }, { 3, 7 },
};

static inline unsigned int tcq_union(unsigned int t)
{
	return (t >> 1) & 1;
}

static inline unsigned int tcq_next(unsigned int t, int32_t v)
{
	return tcq_next_tab[t][(uint32_t)v & 1];
}

unsigned int nwc_tside_level_bits(const uint8_t *level, uint32_t n)
{
	uint8_t top = 0;

	for (uint32_t j = 0; j < n; j++)
		top |= level[j];
	return top < 2 ? 1 : top < 4 ? 2 : top < 16 ? 4 : 8;
}

size_t nwc_tside_size(uint32_t m, uint32_t n, bool scale_f16,
		      unsigned int level_bits)
{
	return NWC_TSIDE_HDR + (size_t)m * (scale_f16 ? 2 : 4) +
	       ((size_t)n * level_bits + 7) / 8;
}

int nwc_tside_parse(const uint8_t *buf, size_t len, struct nwc_tside **out)
{
	uint32_t m, n, band, flags, version, lb;
	struct nwc_tside *ts;
	const uint8_t *lv;
	uint8_t quant;
	size_t need;

	*out = NULL;
	if (len < NWC_TSIDE_HDR || memcmp(buf, NWC_TSIDE_MAGIC, 4))
		return -NWC_ECORRUPT;
	version = nwc_get_le16(buf + 4);
	flags = nwc_get_le16(buf + 6);
	quant = buf[22];
	if (version != NWC_TSIDE_VERSION || (flags & ~NWC_TSIDE_F16) ||
	    quant > NWC_QUANT_TCQ)
		return -NWC_EFEATURE;
	m = nwc_get_le32(buf + 8);
	n = nwc_get_le32(buf + 12);
	band = nwc_get_le32(buf + 16);
	lb = buf[23];
	if (!m || !n || m > MAX_DIM || n > MAX_DIM ||
	    (lb != 1 && lb != 2 && lb != 4 && lb != 8) ||
	    !band || band % NWC_TCHUNK || band > MAX_DIM)
		return -NWC_ECORRUPT;
	need = nwc_tside_size(m, n, flags & NWC_TSIDE_F16, lb);
	if (len != need)
		return -NWC_ECORRUPT;
	ts = malloc(sizeof(*ts) + (size_t)m * sizeof(float) + n);
	if (!ts)
		return -ENOMEM;
	ts->m = m;
	ts->n = n;
	ts->band_rows = band;
	ts->model = nwc_get_le16(buf + 20);
	ts->quant = quant;
	ts->scale_f16 = flags & NWC_TSIDE_F16;
	ts->scale = (float *)(ts + 1);
	ts->level = (uint8_t *)(ts->scale + m);
	buf += NWC_TSIDE_HDR;
	for (uint32_t r = 0; r < m; r++) {
		float s = ts->scale_f16 ? nwc_f16_to_f32(nwc_get_le16(buf + 2 * r))
					: nwc_get_lef32(buf + 4 * r);

		if (!isfinite(s)) {
			free(ts);
			return -NWC_ECORRUPT;
		}
		ts->scale[r] = s;
	}
	lv = buf + (size_t)m * (ts->scale_f16 ? 2 : 4);
	for (uint32_t j = 0; j < n; j++) {
		size_t bit = (size_t)j * lb;

		ts->level[j] = (uint8_t)(lv[bit / 8] >> bit % 8 &
					 ((1u << lb) - 1));
	}
	/* the padding bits of the last byte are 0 */
	if ((size_t)n * lb % 8 &&
	    lv[(size_t)n * lb / 8] >> (size_t)n * lb % 8) {
		free(ts);
		return -NWC_ECORRUPT;
	}
	*out = ts;
	return 0;
}

int nwc_tside_check_model(const struct nwc_tside *ts,
			  const struct nwc_model *model)
{
	for (uint32_t j = 0; j < ts->n; j++) {
		if (ts->level[j] >= model->nq)
			return -NWC_ECORRUPT;
	}
	if (ts->quant == NWC_QUANT_TCQ && !(model->flags & NWC_MODEL_F_TCQ))
		return -NWC_EFEATURE;
	return 0;
}

uint32_t nwc_tside_bands(const struct nwc_tside *ts)
{
	return (uint32_t)(((uint64_t)ts->m + ts->band_rows - 1) / ts->band_rows);
}

uint32_t nwc_tside_band_rows(const struct nwc_tside *ts, uint32_t b)
{
	uint64_t r0 = (uint64_t)b * ts->band_rows;

	if (r0 >= ts->m)
		return 0;
	return (uint32_t)(ts->m - r0 < ts->band_rows ? ts->m - r0
						       : ts->band_rows);
}

uint32_t nwc_tside_band_rows_for(uint32_t m, uint32_t n, size_t elem,
				 size_t block_size)
{
	uint64_t top = ((uint64_t)m + NWC_TCHUNK - 1) / NWC_TCHUNK * NWC_TCHUNK;
	uint64_t rows = block_size / ((uint64_t)n * elem) / NWC_TCHUNK *
			NWC_TCHUNK;

	if (rows < NWC_TCHUNK)
		rows = NWC_TCHUNK;
	return (uint32_t)(rows < top ? rows : top);
}

struct nwc_tensor_scratch {
	struct nwc_model_scratch *ms;
	int32_t *sym;
	float *y, *xhat;
	uint8_t *q, *sel;	/* a level per chunk, a table set per latent */
	size_t cap;		/* latents (16 per chunk) */
};

int nwc_tensor_scratch_create(struct nwc_tensor_scratch **out)
{
	struct nwc_tensor_scratch *s;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ret = nwc_model_scratch_create(&s->ms);
	if (ret) {
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

void nwc_tensor_scratch_free(struct nwc_tensor_scratch *s)
{
	if (!s)
		return;
	nwc_model_scratch_free(s->ms);
	free(s->sym);
	free(s->y);
	free(s->xhat);
	free(s->q);
	free(s->sel);
	free(s);
}

static int scratch_reserve(struct nwc_tensor_scratch *s, size_t nlat)
{
	int32_t *sym;
	float *y, *xhat;
	uint8_t *q, *sel;

	if (nlat <= s->cap)
		return 0;
	sym = realloc(s->sym, nlat * sizeof(*sym));
	if (sym)
		s->sym = sym;
	y = realloc(s->y, nlat * sizeof(*y));
	if (y)
		s->y = y;
	xhat = realloc(s->xhat, nlat * sizeof(*xhat));
	if (xhat)
		s->xhat = xhat;
	q = realloc(s->q, nlat / C);
	if (q)
		s->q = q;
	sel = realloc(s->sel, nlat);
	if (sel)
		s->sel = sel;
	if (!sym || !y || !xhat || !q || !sel)
		return -ENOMEM;
	s->cap = nlat;
	return 0;
}

/*
 * Decoder contexts, those the encoder computes: the channel, plus C in the
 * half-offset trellis states.
 */
static void dec_fsm(struct nwc_ents_fsm *f, enum nwc_quant quant, size_t seq)
{
	_Static_assert(TCQ_STATES <= NWC_ENTS_FSM_STATES, "trellis states");
	memset(f, 0, sizeof(*f));
	f->period = C;
	f->seq = seq;
	if (quant != NWC_QUANT_TCQ)
		return;
	for (unsigned int t = 0; t < TCQ_STATES; t++) {
		f->next[t][0] = tcq_next_tab[t][0];
		f->next[t][1] = tcq_next_tab[t][1];
		f->sel[t] = (uint8_t)tcq_union(t);
	}
}

/* Latents from symbols: add the trellis offsets (medians come later). */
static void dequantize(const int32_t *sym, size_t count, size_t seq,
		       enum nwc_quant quant, float *y)
{
	unsigned int t = 0;

	for (size_t i = 0; i < count; i++) {
		if (quant != NWC_QUANT_TCQ) {
			y[i] = (float)sym[i];
			continue;
		}
		if (i % seq == 0)
			t = 0;
		y[i] = (float)sym[i] + 0.5f * (float)tcq_union(t);
		t = tcq_next(t, sym[i]);
	}
}

/*
 * Four whole chunks @ld floats apart in @x (four columns of one chunk row)
 * into rows 0..15 of @tmp (@n floats apart), row t times sc[t]: the
 * products of the scalar loop, stored four at a time.
 */
static inline void emit_4x16(const float *x, size_t ld, const float *sc,
			     float *tmp, size_t n)
{
	for (unsigned int t = 0; t < NWC_TCHUNK; t += 4) {
		v4sf a = v4_load(x + t), b = v4_load(x + ld + t);
		v4sf c = v4_load(x + 2 * ld + t), d = v4_load(x + 3 * ld + t);
		/* transpose: row i holds element t + i of the four chunks */
		v4sf ab0 = __builtin_shuffle(a, b, (v4si){ 0, 4, 1, 5 });
		v4sf ab1 = __builtin_shuffle(a, b, (v4si){ 2, 6, 3, 7 });
		v4sf cd0 = __builtin_shuffle(c, d, (v4si){ 0, 4, 1, 5 });
		v4sf cd1 = __builtin_shuffle(c, d, (v4si){ 2, 6, 3, 7 });

		v4_store(tmp + t * n, sc[t] *
			 __builtin_shuffle(ab0, cd0, (v4si){ 0, 1, 4, 5 }));
		v4_store(tmp + (t + 1) * n, sc[t + 1] *
			 __builtin_shuffle(ab0, cd0, (v4si){ 2, 3, 6, 7 }));
		v4_store(tmp + (t + 2) * n, sc[t + 2] *
			 __builtin_shuffle(ab1, cd1, (v4si){ 0, 1, 4, 5 }));
		v4_store(tmp + (t + 3) * n, sc[t + 3] *
			 __builtin_shuffle(ab1, cd1, (v4si){ 2, 3, 6, 7 }));
	}
}

/*
 * Write decoded chunk values of one band as rows of @dtype.  The 16 rows
 * of chunk row k are gathered, times their scales, into @tmp (16 n floats)
 * and converted at once: each chunk is read whole, each row written
 * contiguously.
 */
static void emit_rows(const struct nwc_tside *ts, uint32_t r0, uint32_t rows,
		      const float *xhat, enum nwc_dtype dtype, float *tmp,
		      uint8_t *dst)
{
	uint32_t nk = (rows + NWC_TCHUNK - 1) / NWC_TCHUNK;
	size_t elem = dtype == NWC_DTYPE_F32 ? 4 : 2, n = ts->n;

	for (uint32_t k = 0; k < nk; k++) {
		uint32_t h = NWC_MIN(NWC_TCHUNK, rows - k * NWC_TCHUNK);
		const float *sc = ts->scale + r0 + (size_t)k * NWC_TCHUNK;
		size_t j = 0;

		/* whole chunks four columns at a time: 4 x 4 transposes */
		for (; h == NWC_TCHUNK && j + 4 <= n; j += 4)
			emit_4x16(xhat + (j * nk + k) * NWC_TCHUNK,
				  nk * NWC_TCHUNK, sc, tmp + j, n);
		for (; j < n; j++) {
			const float *x = xhat + (j * nk + k) * NWC_TCHUNK;

			for (uint32_t t = 0; t < h; t++)
				tmp[t * n + j] = sc[t] * x[t];
		}
		/* dtype was checked by the caller */
		nwc_from_f32(dtype, tmp, (size_t)h * n,
			     dst + (size_t)k * NWC_TCHUNK * n * elem);
	}
}

int nwc_band_decode(const struct nwc_model *model, const struct nwc_tside *ts,
		    uint32_t b, const uint8_t *src, size_t len,
		    enum nwc_dtype dtype, uint8_t *dst, size_t dst_len,
		    struct nwc_tensor_scratch *s)
{
	uint32_t rows = nwc_tside_band_rows(ts, b), nk;
	size_t elem, nchunks, nlat;
	struct nwc_ents_fsm fsm;
	int ret;

	if (dtype == NWC_DTYPE_F32)
		elem = 4;
	else if (dtype == NWC_DTYPE_F16 || dtype == NWC_DTYPE_BF16)
		elem = 2;
	else
		return -EINVAL;
	if (!rows || dst_len != (size_t)rows * ts->n * elem ||
	    !model->finalized)
		return -EINVAL;
	ret = nwc_tside_check_model(ts, model);
	if (ret)
		return ret;
	nk = (rows + NWC_TCHUNK - 1) / NWC_TCHUNK;
	nchunks = (size_t)nk * ts->n;
	nlat = nchunks * C;
	ret = scratch_reserve(s, nlat);
	if (ret)
		return ret;
	dec_fsm(&fsm, ts->quant, (size_t)nk * C);
	ret = nwc_ents_decode_fsm((const struct nwc_qdist *const *)model->tables,
				  &fsm, s->sym, s->sel, nlat, src, len);
	if (ret)
		return ret;
	/* latents: the symbol, plus 1/2 in half-offset trellis states
	 * (nlat is a multiple of 16) */
	for (size_t i = 0; i < nlat; i += 4) {
		v4si u = { s->sel[i], s->sel[i + 1], s->sel[i + 2],
			   s->sel[i + 3] };

		v4_store(s->y + i,
			 __builtin_convertvector(v4i_load(s->sym + i), v4sf) +
			 0.5f * __builtin_convertvector(u, v4sf));
	}
	for (uint32_t j = 0; j < ts->n; j++)
		memset(s->q + (size_t)j * nk, ts->level[j], nk);
	ret = nwc_model_synthesize(model, s->y, s->q, nchunks, s->xhat, s->ms);
	if (ret)
		return ret;
	/* y is free again: synthesize() is done with it */
	emit_rows(ts, b * ts->band_rows, rows, s->xhat, dtype, s->y, dst);
	return 0;
}

void nwc_tenc_opts_init(struct nwc_tenc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->quant = NWC_QUANT_TCQ;
	o->scale_f16 = true;
	o->tcq_mu = 0.0f;
	o->damp = NWC_LDLQ_DAMP;
	o->dtype = NWC_DTYPE_F32;
}

void nwc_tenc_free(struct nwc_tenc *e)
{
	if (!e)
		return;
	if (e->band) {
		for (uint32_t b = 0; b < e->nbands; b++)
			free(e->band[b]);
	}
	free(e->band);
	free(e->band_len);
	free(e->side);
	free(e->what);
	free(e);
}

/* Encoder state shared by the column callback. */
struct enc {
	const struct nwc_model *model;
	const struct nwc_tenc_opts *o;
	const uint8_t *level;
	uint32_t m, n, band_rows, nk;	/* nk: chunks per column */
	int32_t *sym;		/* all symbols, band-major (see band_sym) */
	float *cost[2 * C];	/* bits of symbol lo+i with each table */
	int32_t cost_lo[2 * C];
	uint32_t cost_n[2 * C];
	float *esc_cost;	/* 2C: bits of an escape's first symbol */
	struct nwc_tensor_scratch *s;
	/* Viterbi working memory, one band's column sequence */
	uint8_t *tb_state;
	int32_t *tb_sym;
};

/* Index of symbol (chunk k of column j, channel c) in the band-major array. */
static size_t band_sym(const struct enc *e, uint32_t j, uint32_t k,
		       unsigned int c)
{
	uint32_t kb = e->band_rows / NWC_TCHUNK;	/* chunks per band */
	uint32_t b = k / kb, k0 = b * kb;
	uint32_t nkb = e->nk - k0 < kb ? e->nk - k0 : kb;

	return (size_t)k0 * e->n * C +
	       (((size_t)j * nkb + (k - k0)) * C + c);
}

static inline float sym_cost(const struct enc *e, unsigned int tab, int32_t v)
{
	int64_t i = (int64_t)v - e->cost_lo[tab];

	if (i >= 0 && i < e->cost_n[tab])
		return e->cost[tab][i];
	/* escape plus about one 4-bit group per 4 bits of magnitude */
	return e->esc_cost[tab] + 4.0f * (1.0f + floorf(log2f(1.0f + fabsf((float)v)) / 4.0f));
}

static int32_t clamp_sym(float v)
{
	if (v > SYM_LIMIT)
		return SYM_LIMIT;
	if (v < -SYM_LIMIT)
		return -SYM_LIMIT;
	return (int32_t)v;
}

/* Nearest integer to @x of parity @par (ties either way). */
static inline float nearest_of_parity(float x, unsigned int par)
{
	float h = (x - (float)par) * 0.5f;
	int32_t k = (int32_t)(h + (h >= 0 ? 0.5f : -0.5f));

	return 2.0f * (float)k + (float)par;
}

/*
 * Trellis quantization of one sequence @y (centred latents, channel
 * i % C): the path minimising sum (y - yhat)^2 + mu * bits.  Each branch
 * takes the nearest point of its subset; with mu > 0 (entropy-constrained)
 * also the neighbour on the other side, which may be cheaper to code.
 */
static void tcq_quantize(struct enc *e, const float *y, size_t len,
			 int32_t *out)
{
	float cost[TCQ_STATES], next[TCQ_STATES];
	const float mu = e->o->tcq_mu;
	const unsigned int ncand = mu > 0 ? 2 : 1;

	for (unsigned int t = 0; t < TCQ_STATES; t++)
		cost[t] = t ? INFINITY : 0.0f;
	for (size_t i = 0; i < len; i++) {
		unsigned int c = (unsigned int)(i % C);
		uint8_t *tbs = e->tb_state + i * TCQ_STATES;
		int32_t *tbv = e->tb_sym + i * TCQ_STATES;

		for (unsigned int t = 0; t < TCQ_STATES; t++)
			next[t] = INFINITY;
		for (unsigned int t = 0; t < TCQ_STATES; t++) {
			unsigned int u = tcq_union(t), tab = c + C * u;
			float z = y[i] - 0.5f * (float)u;

			if (cost[t] == INFINITY)
				continue;
			for (unsigned int par = 0; par < 2; par++) {
				float v0 = nearest_of_parity(z, par);

				for (unsigned int a = 0; a < ncand; a++) {
					int32_t v = clamp_sym(a ? v0 + (z > v0 ? 2.0f : -2.0f) : v0);
					float d = z - (float)v, j = cost[t] + d * d;
					unsigned int nt = tcq_next(t, v);

					if (mu > 0)
						j += mu * sym_cost(e, tab, v);
					if (j < next[nt]) {
						next[nt] = j;
						tbs[nt] = (uint8_t)t;
						tbv[nt] = v;
					}
				}
			}
		}
		memcpy(cost, next, sizeof(cost));
	}
	{
		unsigned int best = 0;

		for (unsigned int t = 1; t < TCQ_STATES; t++) {
			if (cost[t] < cost[best])
				best = t;
		}
		for (size_t i = len; i-- > 0;) {
			out[i] = e->tb_sym[i * TCQ_STATES + best];
			best = e->tb_state[i * TCQ_STATES + best];
		}
	}
}

/* Quantize one column's target (m floats, normalized) into @out. */
static int quant_column(void *arg, uint32_t j, const float *target,
			float *out)
{
	struct enc *e = arg;
	struct nwc_tensor_scratch *s = e->s;
	uint32_t kb = e->band_rows / NWC_TCHUNK;
	size_t nlat = (size_t)e->nk * C;
	int ret;

	for (uint32_t k = 0; k < e->nk; k++) {
		for (unsigned int t = 0; t < C; t++) {
			uint32_t r = k * C + t;

			s->xhat[(size_t)k * C + t] = r < e->m ? target[r] : 0.0f;
		}
	}
	memset(s->q, e->level[j], e->nk);
	ret = nwc_model_analyze(e->model, s->xhat, s->q, e->nk, s->y, s->ms);
	if (ret)
		return ret;
	/* one trellis sequence per band: the band's chunks of this column */
	for (uint32_t k0 = 0; k0 < e->nk; k0 += kb) {
		uint32_t nkb = e->nk - k0 < kb ? e->nk - k0 : kb;
		const float *y = s->y + (size_t)k0 * C;
		int32_t *v = s->sym + (size_t)k0 * C;
		size_t len = (size_t)nkb * C;

		if (e->o->quant == NWC_QUANT_TCQ) {
			tcq_quantize(e, y, len, v);
		} else {
			for (size_t i = 0; i < len; i++)
				v[i] = clamp_sym(roundf(y[i]));
		}
		dequantize(v, len, len, e->o->quant, s->y + (size_t)k0 * C);
	}
	for (uint32_t k = 0; k < e->nk; k++) {
		for (unsigned int c = 0; c < C; c++)
			e->sym[band_sym(e, j, k, c)] = s->sym[(size_t)k * C + c];
	}
	ret = nwc_model_synthesize(e->model, s->y, s->q, e->nk, s->xhat,
				   s->ms);
	if (ret)
		return ret;
	memcpy(out, s->xhat, e->m * sizeof(*out));
	(void)nlat;
	return 0;
}

static int build_costs(struct enc *e)
{
	unsigned int ntab = nwc_model_ntables(e->model);

	e->esc_cost = malloc(2 * C * sizeof(*e->esc_cost));
	if (!e->esc_cost)
		return -ENOMEM;
	for (unsigned int t = 0; t < ntab; t++) {
		const struct nwc_qdist *d = e->model->tables[t];
		uint32_t n = nwc_qdist_n(d);

		e->cost[t] = malloc(n * sizeof(float));
		if (!e->cost[t])
			return -ENOMEM;
		e->cost_lo[t] = nwc_qdist_lo(d);
		e->cost_n[t] = n;
		for (uint32_t i = 0; i < n; i++)
			e->cost[t][i] = (float)(NWC_QDIST_PREC -
				log2((double)nwc_qdist_freq(d, i)));
		e->esc_cost[t] = (float)(NWC_QDIST_PREC -
					 log2((double)nwc_qdist_freq(d, n)));
	}
	return 0;
}

static void free_costs(struct enc *e)
{
	for (unsigned int t = 0; t < 2 * C; t++)
		free(e->cost[t]);
	free(e->esc_cost);
}

/* Row scales: the unbiased std of each row, as the trainer normalizes. */
static void row_scales(const float *w, uint32_t m, uint32_t n, float *s)
{
	for (uint32_t r = 0; r < m; r++) {
		const float *row = w + (size_t)r * n;
		double sum = 0, ss = 0, mean, sd;

		for (uint32_t j = 0; j < n; j++)
			sum += row[j];
		mean = sum / n;
		for (uint32_t j = 0; j < n; j++)
			ss += (row[j] - mean) * (row[j] - mean);
		sd = n > 1 ? sqrt(ss / (n - 1)) : fabs(mean);
		if (!(sd > 0))
			sd = fabs(mean);	/* a constant row */
		s[r] = (float)sd;
	}
}

/* Round scales to what is stored; false if binary16 cannot hold them. */
static bool store_scales(float *s, uint32_t m, bool f16)
{
	for (uint32_t r = 0; r < m && f16; r++) {
		float h = nwc_f16_to_f32(nwc_f32_to_f16(s[r]));

		if (!isfinite(h) || (s[r] > 0 && !(h > 0)) ||
		    fabsf(h - s[r]) > 1e-3f * s[r])
			return false;
	}
	for (uint32_t r = 0; r < m && f16; r++)
		s[r] = nwc_f16_to_f32(nwc_f32_to_f16(s[r]));
	return true;
}

static int write_side(struct nwc_tenc *out, const struct enc *e,
		      uint16_t model_index, const float *scale, bool f16)
{
	unsigned int lb = nwc_tside_level_bits(e->level, e->n);
	size_t len = nwc_tside_size(e->m, e->n, f16, lb);
	uint8_t *p = calloc(1, len), *lv;

	if (!p)
		return -ENOMEM;
	memcpy(p, NWC_TSIDE_MAGIC, 4);
	nwc_put_le16(p + 4, NWC_TSIDE_VERSION);
	nwc_put_le16(p + 6, f16 ? NWC_TSIDE_F16 : 0);
	nwc_put_le32(p + 8, e->m);
	nwc_put_le32(p + 12, e->n);
	nwc_put_le32(p + 16, e->band_rows);
	nwc_put_le16(p + 20, model_index);
	p[22] = (uint8_t)e->o->quant;
	p[23] = (uint8_t)lb;
	for (uint32_t r = 0; r < e->m; r++) {
		if (f16)
			nwc_put_le16(p + NWC_TSIDE_HDR + 2 * (size_t)r,
				     nwc_f32_to_f16(scale[r]));
		else
			nwc_put_lef32(p + NWC_TSIDE_HDR + 4 * (size_t)r,
				      scale[r]);
	}
	lv = p + NWC_TSIDE_HDR + (size_t)e->m * (f16 ? 2 : 4);
	for (uint32_t j = 0; j < e->n; j++) {
		size_t bit = (size_t)j * lb;

		lv[bit / 8] |= (uint8_t)(e->level[j] << bit % 8);
	}
	out->side = p;
	out->side_len = len;
	return 0;
}

/* Entropy-code every band's symbols. */
static int code_bands(struct nwc_tenc *out, const struct enc *e)
{
	uint32_t kb = e->band_rows / NWC_TCHUNK;
	size_t cap = nwc_ents_bound((size_t)kb * e->n * C);
	uint8_t *ctx = malloc((size_t)kb * e->n * C);
	int ret = 0;

	if (!ctx)
		return -ENOMEM;
	for (uint32_t b = 0; b < out->nbands; b++) {
		uint32_t k0 = b * kb, nkb = e->nk - k0 < kb ? e->nk - k0 : kb;
		size_t count = (size_t)nkb * e->n * C, seq = (size_t)nkb * C;
		const int32_t *sym = e->sym + (size_t)k0 * e->n * C;
		unsigned int t = 0;
		ssize_t len;

		for (size_t i = 0; i < count; i++) {
			if (e->o->quant != NWC_QUANT_TCQ) {
				ctx[i] = (uint8_t)(i % C);
				continue;
			}
			if (i % seq == 0)
				t = 0;
			ctx[i] = (uint8_t)(i % C + C * tcq_union(t));
			t = tcq_next(t, sym[i]);
		}
		out->band[b] = malloc(cap);
		if (!out->band[b]) {
			ret = -ENOMEM;
			break;
		}
		len = nwc_ents_encode((const struct nwc_qdist *const *)
				      e->model->tables, ctx, sym, count,
				      out->band[b], cap);
		if (len < 0) {
			ret = (int)len;
			break;
		}
		out->band_len[b] = (size_t)len;
		out->coded_bytes += (size_t)len;
	}
	free(ctx);
	return ret;
}

/* Decode what was written, exactly as a reader will, into out->what. */
static int decode_back(struct nwc_tenc *out, const struct nwc_model *model,
		       enum nwc_dtype dtype, struct nwc_tensor_scratch *s)
{
	size_t elem = dtype == NWC_DTYPE_F32 ? 4 : 2;
	struct nwc_tside *ts;
	uint8_t *buf = NULL;
	int ret;

	ret = nwc_tside_parse(out->side, out->side_len, &ts);
	if (ret)
		return ret;
	for (uint32_t b = 0; b < out->nbands && !ret; b++) {
		uint32_t rows = nwc_tside_band_rows(ts, b);
		size_t len = (size_t)rows * ts->n * elem;
		uint8_t *nb = realloc(buf, len);

		if (!nb) {
			ret = -ENOMEM;
			break;
		}
		buf = nb;
		ret = nwc_band_decode(model, ts, b, out->band[b],
				      out->band_len[b], dtype, buf, len, s);
		if (!ret)
			ret = nwc_to_f32(dtype, buf, (size_t)rows * ts->n,
					 out->what + (size_t)b *
					 ts->band_rows * ts->n);
	}
	free(buf);
	free(ts);
	return ret;
}

int nwc_tenc_encode(const struct nwc_model *model, uint16_t model_index,
		    const float *w, uint32_t m, uint32_t n,
		    const uint8_t *level, const struct nwc_tenc_opts *opts,
		    struct nwc_tenc **out)
{
	struct enc e = { .model = model, .o = opts, .level = level,
			 .m = m, .n = n };
	float *scale = NULL, *xn = NULL, *xq = NULL, *u = NULL;
	struct nwc_tenc *res = NULL;
	size_t mn = (size_t)m * n, kb;
	bool f16 = opts->scale_f16;
	int ret;

	*out = NULL;
	if (!model->finalized || !m || !n || m > MAX_DIM || n > MAX_DIM ||
	    opts->band_rows % NWC_TCHUNK || !isfinite(opts->tcq_mu) ||
	    opts->tcq_mu < 0 || (opts->fit_scales && !opts->h) ||
	    (opts->dtype != NWC_DTYPE_F32 && opts->dtype != NWC_DTYPE_F16 &&
	     opts->dtype != NWC_DTYPE_BF16))
		return -EINVAL;
	if (opts->quant == NWC_QUANT_TCQ && !(model->flags & NWC_MODEL_F_TCQ))
		return -NWC_EFEATURE;
	if (opts->quant != NWC_QUANT_TCQ && opts->quant != NWC_QUANT_ROUND)
		return -EINVAL;
	for (uint32_t j = 0; j < n; j++) {
		if (level[j] >= model->nq)
			return -EINVAL;
	}
	for (size_t i = 0; i < mn; i++) {
		if (!isfinite(w[i]))
			return -EINVAL;
	}
	e.nk = (m + NWC_TCHUNK - 1) / NWC_TCHUNK;
	e.band_rows = opts->band_rows ? opts->band_rows : e.nk * NWC_TCHUNK;
	if (e.band_rows > e.nk * NWC_TCHUNK)
		e.band_rows = e.nk * NWC_TCHUNK;
	kb = e.band_rows / NWC_TCHUNK;

	ret = nwc_tensor_scratch_create(&e.s);
	if (ret)
		return ret;
	ret = -ENOMEM;
	res = calloc(1, sizeof(*res));
	scale = malloc(m * sizeof(*scale));
	xn = malloc(mn * sizeof(*xn));
	xq = malloc(mn * sizeof(*xq));
	e.sym = malloc((size_t)e.nk * n * C * sizeof(*e.sym));
	e.tb_state = malloc(kb * C * TCQ_STATES);
	e.tb_sym = malloc(kb * C * TCQ_STATES * sizeof(*e.tb_sym));
	if (!res || !scale || !xn || !xq || !e.sym || !e.tb_state || !e.tb_sym)
		goto out_free;
	res->nbands = (uint32_t)((e.nk + kb - 1) / kb);
	res->band = calloc(res->nbands, sizeof(*res->band));
	res->band_len = calloc(res->nbands, sizeof(*res->band_len));
	res->what = malloc(mn * sizeof(*res->what));
	if (!res->band || !res->band_len || !res->what)
		goto out_free;
	ret = scratch_reserve(e.s, (size_t)e.nk * C);
	if (ret)
		goto out_free;
	ret = build_costs(&e);
	if (ret)
		goto out_free;

	row_scales(w, m, n, scale);
	if (!store_scales(scale, m, f16)) {
		f16 = false;
		store_scales(scale, m, false);
	}
	for (uint32_t r = 0; r < m; r++) {
		float inv = scale[r] > 0 ? 1.0f / scale[r] : 0.0f;

		for (uint32_t j = 0; j < n; j++)
			xn[(size_t)r * n + j] = w[(size_t)r * n + j] * inv;
	}
	if (opts->h) {
		/* LDLQ feedback is per row, so it works on the normalized
		 * rows unchanged. */
		u = malloc((size_t)n * n * sizeof(*u));
		if (!u) {
			ret = -ENOMEM;
			goto out_free;
		}
		ret = nwc_ldlq_factor(opts->h, n, opts->damp, u);
		if (ret)
			goto out_free;
	}
	ret = nwc_ldlq_run(xn, m, n, u, quant_column, &e, xq);
	if (ret)
		goto out_free;
	if (opts->fit_scales) {
		float *alpha = xn;	/* reuse: only m floats needed */

		for (size_t i = 0; i < mn; i++)
			xq[i] *= scale[i / n];
		ret = nwc_ldlq_row_scale(w, xq, m, n, opts->h, alpha);
		if (ret)
			goto out_free;
		for (uint32_t r = 0; r < m; r++) {
			if (isfinite(alpha[r]) && alpha[r] > 0)
				scale[r] *= alpha[r];
		}
		if (f16 && !store_scales(scale, m, true)) {
			f16 = false;
		}
	}
	ret = write_side(res, &e, model_index, scale, f16);
	if (ret)
		goto out_free;
	res->coded_bytes = res->side_len;
	ret = code_bands(res, &e);
	if (ret)
		goto out_free;
	ret = decode_back(res, model, opts->dtype, e.s);
	if (ret)
		goto out_free;
	*out = res;
	res = NULL;
out_free:
	nwc_tenc_free(res);
	free_costs(&e);
	free(u);
	free(e.tb_sym);
	free(e.tb_state);
	free(e.sym);
	free(xq);
	free(xn);
	free(scale);
	nwc_tensor_scratch_free(e.s);
	return ret;
}
