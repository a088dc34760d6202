/* SPDX-License-Identifier: MIT */
/*
 * tenc.c - the NWC tensor encoder (see tenc.h): row scales, LDLQ feedback,
 * trellis or plain quantization through the model's analysis network, the
 * side record and the entropy-coded bands, decoded back as a reader will.
 * Part of libnwcenc.a; the reader's half is nwctensor.c.
 */
#include "codec/common/base.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/common/convert.h"
#include "codec/nwc/entropy.h"
#include "codec/nwc/ldlq.h"
#include "codec/nwc/nwctensor.h"
#include "codec/nwc/nwctensor_impl.h"
#include "codec/nwc/tenc.h"

#define SYM_LIMIT (1 << 30)

unsigned int nwc_tside_level_bits(const uint8_t *level, uint32_t n)
{
	uint8_t top = 0;

	for (uint32_t j = 0; j < n; j++)
		top |= level[j];
	return top < 2 ? 1 : top < 4 ? 2 : top < 16 ? 4 : 8;
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
	float *cost[2 * NWC_CHUNK];	/* bits of symbol lo+i with each table */
	int32_t cost_lo[2 * NWC_CHUNK];
	uint32_t cost_n[2 * NWC_CHUNK];
	float *esc_cost;	/* 2C: bits of an escape's first symbol */
	struct nwc_tensor_scratch *s;
	/* Viterbi working memory, one band's column sequence */
	uint8_t *tb_state;
	int32_t *tb_sym;
	/* weights stored exactly (opts->exact_sd), in row-major order; by_col
	 * lists them by column (col_start: n + 1 offsets into it); xn is the
	 * normalized matrix LDLQ runs on, which holds their values too */
	uint32_t nexact;
	struct nwc_exact *exact;
	uint32_t *by_col, *col_start;
	const float *xn;
};

/* Index of symbol (chunk k of column j, channel c) in the band-major array. */
static size_t band_sym(const struct enc *e, uint32_t j, uint32_t k,
		       unsigned int c)
{
	uint32_t kb = e->band_rows / NWC_CHUNK;	/* chunks per band */
	uint32_t b = k / kb, k0 = b * kb;
	uint32_t nkb = e->nk - k0 < kb ? e->nk - k0 : kb;

	return (size_t)k0 * e->n * NWC_CHUNK +
	       (((size_t)j * nkb + (k - k0)) * NWC_CHUNK + c);
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
		unsigned int c = (unsigned int)(i % NWC_CHUNK);
		uint8_t *tbs = e->tb_state + i * TCQ_STATES;
		int32_t *tbv = e->tb_sym + i * TCQ_STATES;

		for (unsigned int t = 0; t < TCQ_STATES; t++)
			next[t] = INFINITY;
		for (unsigned int t = 0; t < TCQ_STATES; t++) {
			unsigned int u = tcq_union(t), tab = c + NWC_CHUNK * u;
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
	uint32_t kb = e->band_rows / NWC_CHUNK;
	size_t nlat = (size_t)e->nk * NWC_CHUNK;
	int ret;

	for (uint32_t k = 0; k < e->nk; k++) {
		for (unsigned int t = 0; t < NWC_CHUNK; t++) {
			uint32_t r = k * NWC_CHUNK + t;

			s->xhat[(size_t)k * NWC_CHUNK + t] =
				r < e->m ? target[r] : 0.0f;
		}
	}
	/* The codec codes 0 where the reader puts an exact weight, so that
	 * the weight does not spoil its chunk. */
	if (e->nexact) {
		for (uint32_t i = e->col_start[j]; i < e->col_start[j + 1];
		     i++)
			s->xhat[e->exact[e->by_col[i]].row] = 0.0f;
	}
	memset(s->q, e->level[j], e->nk);
	ret = nwc_model_analyze(e->model, s->xhat, s->q, e->nk, s->y, s->ms);
	if (ret)
		return ret;
	/* one trellis sequence per band: the band's chunks of this column */
	for (uint32_t k0 = 0; k0 < e->nk; k0 += kb) {
		uint32_t nkb = e->nk - k0 < kb ? e->nk - k0 : kb;
		const float *y = s->y + (size_t)k0 * NWC_CHUNK;
		int32_t *v = s->sym + (size_t)k0 * NWC_CHUNK;
		size_t len = (size_t)nkb * NWC_CHUNK;

		if (e->o->quant == NWC_QUANT_TCQ) {
			tcq_quantize(e, y, len, v);
		} else {
			for (size_t i = 0; i < len; i++)
				v[i] = clamp_sym(roundf(y[i]));
		}
		dequantize(v, len, len, e->o->quant,
			   s->y + (size_t)k0 * NWC_CHUNK);
	}
	for (uint32_t k = 0; k < e->nk; k++) {
		for (unsigned int c = 0; c < NWC_CHUNK; c++)
			e->sym[band_sym(e, j, k, c)] =
				s->sym[(size_t)k * NWC_CHUNK + c];
	}
	ret = nwc_model_synthesize(e->model, s->y, s->q, e->nk, s->xhat,
				   s->ms);
	if (ret)
		return ret;
	memcpy(out, s->xhat, e->m * sizeof(*out));
	/* An exact weight is what the reader gets there, so LDLQ carries the
	 * difference from its target (the weight plus the feedback of the
	 * columns before) on to the later columns. */
	if (e->nexact) {
		for (uint32_t i = e->col_start[j]; i < e->col_start[j + 1];
		     i++) {
			uint32_t r = e->exact[e->by_col[i]].row;

			out[r] = e->xn[(size_t)r * e->n + j];
		}
	}
	(void)nlat;
	return 0;
}

static int build_costs(struct enc *e)
{
	unsigned int ntab = nwc_model_ntables(e->model);

	e->esc_cost = malloc(2 * NWC_CHUNK * sizeof(*e->esc_cost));
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
	for (unsigned int t = 0; t < 2 * NWC_CHUNK; t++)
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

/* The k-th smallest of a[0..n) (k < n), partly reordering a: Wirth's
 * selection, pivot the median of three, deterministic. */
static float select_kth(float *a, uint32_t n, uint32_t k)
{
	int64_t l = 0, r = (int64_t)n - 1, kk = k;

	while (l < r) {
		float x = a[l], y = a[l + (r - l) / 2], z = a[r], p, t;
		int64_t i = l, j = r;

		p = x < y ? (y < z ? y : x < z ? z : x) :
			    (x < z ? x : y < z ? z : y);
		do {
			while (a[i] < p)
				i++;
			while (p < a[j])
				j--;
			if (i <= j) {
				t = a[i];
				a[i++] = a[j];
				a[j--] = t;
			}
		} while (i <= j);
		if (j < kk)
			l = i;
		if (kk < i)
			r = j;
	}
	return a[k];
}

struct cand {
	float dev;
	uint32_t col;
};

static int by_dev(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;

	if (a->dev != b->dev)
		return a->dev > b->dev ? -1 : 1;
	return a->col < b->col ? -1 : a->col > b->col;
}

static int by_col(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;

	return a->col < b->col ? -1 : a->col > b->col;
}

/*
 * Mark in @loud (n) the input channels whose energy, H's diagonal, passes
 * @ratio times the median channel's, the loudest NWC_TENC_ROW_EXACT(n) at
 * most.  Returns how many, or -ENOMEM.
 */
static int find_loud(const float *h, uint32_t n, float ratio, bool *loud)
{
	struct cand *c = malloc((size_t)n * sizeof(*c));
	float *tmp = malloc((size_t)n * sizeof(*tmp));
	uint32_t nl = 0;
	float thr;

	if (!c || !tmp) {
		free(tmp);
		free(c);
		return -ENOMEM;
	}
	for (uint32_t j = 0; j < n; j++)
		tmp[j] = h[(size_t)j * n + j];
	thr = select_kth(tmp, n, n / 2) * ratio;
	for (uint32_t j = 0; j < n; j++) {
		float d = h[(size_t)j * n + j];

		loud[j] = false;
		if (d > thr && thr > 0)
			c[nl++] = (struct cand){ d, j };
	}
	if (nl > NWC_TENC_ROW_EXACT(n)) {
		qsort(c, nl, sizeof(*c), by_dev);
		nl = NWC_TENC_ROW_EXACT(n);
	}
	for (uint32_t i = 0; i < nl; i++)
		loud[c[i].col] = true;
	free(tmp);
	free(c);
	return (int)nl;
}

/*
 * The weights to store exactly, row-major into e->exact with their
 * column index: every weight of the columns marked in @loud (or NULL),
 * then, up to NWC_TENC_ROW_EXACT(n) a row in all, those further than @sd
 * (0: none) robust standard deviations from their row's median, the
 * furthest first.  The deviation is 1.4826 times the median absolute
 * deviation, which a few outliers cannot inflate as they do the plain one,
 * but at least a quarter of the plain one, lest a short row whose values
 * cluster make outliers of them all.
 */
static int find_exact(struct enc *e, const float *w, float sd,
		      const bool *loud)
{
	uint32_t m = e->m, n = e->n, cap = NWC_TENC_ROW_EXACT(n), k = 0;
	struct cand *c = malloc((size_t)n * sizeof(*c));
	float *tmp = malloc((size_t)n * sizeof(*tmp));
	uint32_t *fill = NULL;
	size_t room = 0;
	int ret = -ENOMEM;

	if (!c || !tmp)
		goto out_free;
	for (uint32_t r = 0; r < m; r++) {
		const float *row = w + (size_t)r * n;
		double sum = 0, ss = 0, mean, spread = 0;
		uint32_t nc = 0;
		float med = 0;

		/* the row's spread, only where outliers are wanted */
		if (sd > 0) {
			memcpy(tmp, row, (size_t)n * sizeof(*tmp));
			med = select_kth(tmp, n, n / 2);
			for (uint32_t j = 0; j < n; j++) {
				tmp[j] = fabsf(row[j] - med);
				sum += row[j];
			}
			mean = sum / n;
			for (uint32_t j = 0; j < n; j++)
				ss += (row[j] - mean) * (row[j] - mean);
			spread = NWC_MAX(1.4826 * select_kth(tmp, n, n / 2),
					 sqrt(ss / n) / 4);
		}
		for (uint32_t j = 0; j < n; j++) {
			float d = fabsf(row[j] - med);

			if (loud && loud[j])
				c[nc++] = (struct cand){ INFINITY, j };
			else if (sd > 0 && d > sd * spread)
				c[nc++] = (struct cand){ d, j };
		}
		if (nc > cap) {
			qsort(c, nc, sizeof(*c), by_dev);
			nc = cap;
			qsort(c, nc, sizeof(*c), by_col);
		}
		if (k + nc > room) {
			size_t want = NWC_MAX(2 * room, (size_t)k + nc);
			struct nwc_exact *x = realloc(e->exact,
						      want * sizeof(*x));

			if (!x)
				goto out_free;
			e->exact = x;
			room = want;
		}
		for (uint32_t i = 0; i < nc; i++)
			e->exact[k + i] = (struct nwc_exact){
				r, c[i].col, row[c[i].col] };
		k += nc;
	}
	assert(k <= NWC_TSIDE_MAX_EXACT(m, n));
	ret = 0;
	if (!k)
		goto out_free;
	ret = -ENOMEM;
	e->by_col = malloc(k * sizeof(*e->by_col));
	e->col_start = calloc((size_t)n + 1, sizeof(*e->col_start));
	fill = malloc((size_t)n * sizeof(*fill));
	if (!e->by_col || !e->col_start || !fill)
		goto out_free;
	e->nexact = k;
	/* counting sort by column; rows stay increasing within one */
	for (uint32_t i = 0; i < k; i++)
		e->col_start[e->exact[i].col + 1]++;
	for (uint32_t j = 0; j < n; j++)
		e->col_start[j + 1] += e->col_start[j];
	memcpy(fill, e->col_start, (size_t)n * sizeof(*fill));
	for (uint32_t i = 0; i < k; i++)
		e->by_col[fill[e->exact[i].col]++] = i;
	ret = 0;
out_free:
	free(fill);
	free(tmp);
	free(c);
	return ret;
}

static int write_side(struct nwc_tenc *out, const struct enc *e,
		      uint16_t model_index, const float *scale, bool f16)
{
	unsigned int lb = nwc_tside_level_bits(e->level, e->n);
	size_t len = nwc_tside_size(e->m, e->n, f16, lb, e->nexact);
	uint8_t *p = calloc(1, len), *lv, *x;

	if (!p)
		return -ENOMEM;
	memcpy(p, NWC_TSIDE_MAGIC, 4);
	nwc_put_le16(p + 4, NWC_TSIDE_VERSION);
	nwc_put_le16(p + 6, (f16 ? NWC_TSIDE_F16 : 0) |
			    (e->o->seq_order ? 0 : NWC_TSIDE_LANES) |
			    (e->nexact ? NWC_TSIDE_EXACT : 0));
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
	if (e->nexact) {
		x = lv + ((size_t)e->n * lb + 7) / 8;
		nwc_put_le32(x, e->nexact);
		x += 4;
		for (uint32_t i = 0; i < e->nexact; i++) {
			nwc_put_le32(x, e->exact[i].row);
			nwc_put_le32(x + 4, e->exact[i].col);
			nwc_put_lef32(x + 8, e->exact[i].value);
			x += NWC_TSIDE_EXACT_BYTES;
		}
	}
	out->side = p;
	out->side_len = len;
	return 0;
}

/* Entropy-code every band's symbols. */
static int code_bands(struct nwc_tenc *out, const struct enc *e)
{
	uint32_t kb = e->band_rows / NWC_CHUNK;
	size_t most = (size_t)kb * e->n * NWC_CHUNK;
	size_t cap = nwc_ents_bound(most);
	uint8_t *ctx = malloc(most), *lctx = malloc(most);
	int32_t *lsym = malloc(most * sizeof(*lsym));
	int ret = 0;

	if (!ctx || !lctx || !lsym) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (uint32_t b = 0; b < out->nbands; b++) {
		uint32_t k0 = b * kb, nkb = e->nk - k0 < kb ? e->nk - k0 : kb;
		size_t count = (size_t)nkb * e->n * NWC_CHUNK;
		size_t seq = (size_t)nkb * NWC_CHUNK;
		const int32_t *sym = e->sym + (size_t)k0 * e->n * NWC_CHUNK;
		unsigned int t = 0;
		ssize_t len;

		for (size_t i = 0; i < count; i++) {
			if (e->o->quant != NWC_QUANT_TCQ) {
				ctx[i] = (uint8_t)(i % NWC_CHUNK);
				continue;
			}
			if (i % seq == 0)
				t = 0;
			ctx[i] = (uint8_t)(i % NWC_CHUNK +
					   NWC_CHUNK * tcq_union(t));
			t = tcq_next(t, sym[i]);
		}
		out->band[b] = malloc(cap);
		if (!out->band[b]) {
			ret = -ENOMEM;
			break;
		}
		if (e->o->seq_order) {
			len = nwc_ents_encode((const struct nwc_qdist *const *)
					      e->model->tables, ctx, sym,
					      count, out->band[b], cap);
		} else {
			for (size_t p = 0; p < count; p++) {
				size_t i = nwc_ents_lane_index(p, seq, count);

				lctx[p] = ctx[i];
				lsym[p] = sym[i];
			}
			len = nwc_ents_encode_lanes(
				(const struct nwc_qdist *const *)
					e->model->tables,
				lctx, lsym, count, out->band[b], cap);
		}
		if (len < 0) {
			ret = (int)len;
			break;
		}
		out->band_len[b] = (size_t)len;
		out->coded_bytes += (size_t)len;
	}
out_free:
	free(lsym);
	free(lctx);
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
	float *scale = NULL, *xn = NULL, *xq = NULL, *u = NULL, *wz = NULL;
	float *hq = NULL;	/* H without the loud channels */
	bool *loud = NULL;
	uint32_t nloud = 0;
	struct nwc_tenc *res = NULL;
	const float *wc = w;	/* what the codec codes */
	size_t mn = (size_t)m * n, kb;
	bool f16 = opts->scale_f16;
	int ret;

	*out = NULL;
	if (!model->finalized || !m || !n || m > MAX_DIM || n > MAX_DIM ||
	    opts->band_rows % NWC_CHUNK || !isfinite(opts->tcq_mu) ||
	    opts->tcq_mu < 0 || (opts->fit_scales && !opts->h) ||
	    !(opts->exact_sd == 0 ||
	      opts->exact_sd >= NWC_TENC_MIN_EXACT_SD) ||
	    !(opts->exact_loud == 0 ||
	      opts->exact_loud >= NWC_TENC_MIN_EXACT_LOUD) ||
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
	for (uint32_t r = 0; opts->row_mul && r < m; r++) {
		if (!isfinite(opts->row_mul[r]) || !(opts->row_mul[r] > 0))
			return -EINVAL;
	}
	e.nk = (m + NWC_CHUNK - 1) / NWC_CHUNK;
	e.band_rows = opts->band_rows ? opts->band_rows : e.nk * NWC_CHUNK;
	if (e.band_rows > e.nk * NWC_CHUNK)
		e.band_rows = e.nk * NWC_CHUNK;
	kb = e.band_rows / NWC_CHUNK;

	ret = nwc_tensor_scratch_create(&e.s);
	if (ret)
		return ret;
	ret = -ENOMEM;
	res = calloc(1, sizeof(*res));
	scale = malloc(m * sizeof(*scale));
	xn = malloc(mn * sizeof(*xn));
	xq = malloc(mn * sizeof(*xq));
	e.sym = malloc((size_t)e.nk * n * NWC_CHUNK * sizeof(*e.sym));
	e.tb_state = malloc(kb * NWC_CHUNK * TCQ_STATES);
	e.tb_sym = malloc(kb * NWC_CHUNK * TCQ_STATES * sizeof(*e.tb_sym));
	if (!res || !scale || !xn || !xq || !e.sym || !e.tb_state || !e.tb_sym)
		goto out_free;
	res->nbands = (uint32_t)((e.nk + kb - 1) / kb);
	res->band = calloc(res->nbands, sizeof(*res->band));
	res->band_len = calloc(res->nbands, sizeof(*res->band_len));
	res->what = malloc(mn * sizeof(*res->what));
	if (!res->band || !res->band_len || !res->what)
		goto out_free;
	ret = nwc_tensor_scratch_reserve(e.s, (size_t)e.nk * NWC_CHUNK);
	if (ret)
		goto out_free;
	ret = build_costs(&e);
	if (ret)
		goto out_free;

	if (opts->h && opts->exact_loud > 0) {
		loud = calloc(n, sizeof(*loud));
		if (!loud) {
			ret = -ENOMEM;
			goto out_free;
		}
		ret = find_loud(opts->h, n, opts->exact_loud, loud);
		if (ret < 0)
			goto out_free;
		nloud = (uint32_t)ret;
	}
	if (opts->exact_sd > 0 || nloud) {
		ret = find_exact(&e, w, opts->exact_sd, nloud ? loud : NULL);
		if (ret)
			goto out_free;
	}
	if (e.nexact) {
		/* The row scales leave them out (0 in their place); LDLQ
		 * still sees them, and quant_column() codes 0 there. */
		wz = malloc(mn * sizeof(*wz));
		if (!wz) {
			ret = -ENOMEM;
			goto out_free;
		}
		memcpy(wz, w, mn * sizeof(*wz));
		for (uint32_t i = 0; i < e.nexact; i++)
			wz[(size_t)e.exact[i].row * n + e.exact[i].col] = 0;
		wc = wz;
	}
	row_scales(wc, m, n, scale);
	if (!store_scales(scale, m, f16)) {
		f16 = false;
		store_scales(scale, m, false);
	}
	for (uint32_t r = 0; r < m; r++) {
		float inv = scale[r] > 0 ? 1.0f / scale[r] : 0.0f;

		for (uint32_t j = 0; j < n; j++)
			xn[(size_t)r * n + j] = w[(size_t)r * n + j] * inv;
	}
	e.xn = xn;
	if (nloud) {
		/* The loud channels' weights are exact: the loss is that of
		 * the other channels alone, whose errors LDLQ must then
		 * correct among themselves, and whose mean energy sets the
		 * damping.  So the loud channels become independent of the
		 * rest, at that mean energy. */
		double quiet = 0;

		hq = malloc((size_t)n * n * sizeof(*hq));
		if (!hq) {
			ret = -ENOMEM;
			goto out_free;
		}
		for (uint32_t j = 0; j < n; j++)
			quiet += loud[j] ? 0 : opts->h[(size_t)j * n + j];
		quiet /= n - nloud;
		for (uint32_t a = 0; a < n; a++)
			for (uint32_t b = 0; b < n; b++)
				hq[(size_t)a * n + b] = !loud[a] && !loud[b] ?
					opts->h[(size_t)a * n + b] :
					a == b ? (float)quiet : 0.0f;
	}
	if (opts->h) {
		/* LDLQ feedback is per row, so it works on the normalized
		 * rows unchanged. */
		u = malloc((size_t)n * n * sizeof(*u));
		if (!u) {
			ret = -ENOMEM;
			goto out_free;
		}
		ret = nwc_ldlq_factor(hq ? hq : opts->h, n, opts->damp, u);
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
		/* exact weights have no error whatever the scale: 0 on both
		 * sides leaves them out of the fit */
		for (uint32_t i = 0; i < e.nexact; i++)
			xq[(size_t)e.exact[i].row * n + e.exact[i].col] = 0;
		ret = nwc_ldlq_row_scale(wc, xq, m, n, opts->h, alpha);
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
	if (opts->row_mul) {
		for (uint32_t r = 0; r < m; r++)
			scale[r] *= opts->row_mul[r];
		if (f16 && !store_scales(scale, m, true))
			f16 = false;
	}
	res->nexact = e.nexact;
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
	free(hq);
	free(loud);
	free(e.tb_sym);
	free(e.tb_state);
	free(e.sym);
	free(xq);
	free(xn);
	free(wz);
	free(scale);
	free(e.exact);
	free(e.by_col);
	free(e.col_start);
	nwc_tensor_scratch_free(e.s);
	return ret;
}
