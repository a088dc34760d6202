/* SPDX-License-Identifier: MIT */
/*
 * nwctensor.c - NWC coding of weight matrices in row bands (see the
 * header): the side record and band decoding.  Decode side (libnwcdec.a);
 * the encoder is tenc.c (libnwcenc.a).
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

#include "codec/common/convert.h"
#include "codec/common/cpu.h"
#include "codec/common/simd.h"
#include "codec/nwc/entropy.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwctensor.h"
#include "codec/nwc/nwctensor_impl.h"

size_t nwc_tside_size(uint32_t m, uint32_t n, bool scale_f16,
		      unsigned int level_bits, uint32_t nexact)
{
	return NWC_TSIDE_HDR + (size_t)m * (scale_f16 ? 2 : 4) +
	       ((size_t)n * level_bits + 7) / 8 +
	       (nexact ? 4 + (size_t)nexact * NWC_TSIDE_EXACT_BYTES : 0);
}

/* Parse the exact weights at @p (@k entries, their count already read and
 * within bounds): in range, finite and in strictly increasing order. */
static int parse_exact(const uint8_t *p, uint32_t k, struct nwc_tside *ts)
{
	uint64_t prev = 0;

	for (uint32_t i = 0; i < k; i++, p += NWC_TSIDE_EXACT_BYTES) {
		struct nwc_exact *x = &ts->exact[i];
		uint64_t at;

		x->row = nwc_get_le32(p);
		x->col = nwc_get_le32(p + 4);
		x->value = nwc_get_lef32(p + 8);
		if (x->row >= ts->m || x->col >= ts->n || !isfinite(x->value))
			return -NWC_ECORRUPT;
		at = (uint64_t)x->row * ts->n + x->col;
		if (i && at <= prev)
			return -NWC_ECORRUPT;
		prev = at;
	}
	return 0;
}

int nwc_tside_parse(const uint8_t *buf, size_t len, struct nwc_tside **out)
{
	uint32_t m, n, band, flags, version, lb, k = 0;
	struct nwc_tside *ts;
	const uint8_t *lv;
	uint8_t quant;
	size_t need;
	int ret;

	*out = NULL;
	if (len < NWC_TSIDE_HDR || memcmp(buf, NWC_TSIDE_MAGIC, 4))
		return -NWC_ECORRUPT;
	version = nwc_get_le16(buf + 4);
	flags = nwc_get_le16(buf + 6);
	quant = buf[22];
	if (version != NWC_TSIDE_VERSION ||
	    (flags & ~(NWC_TSIDE_F16 | NWC_TSIDE_LANES | NWC_TSIDE_EXACT)) ||
	    quant > NWC_QUANT_TCQ)
		return -NWC_EFEATURE;
	m = nwc_get_le32(buf + 8);
	n = nwc_get_le32(buf + 12);
	band = nwc_get_le32(buf + 16);
	lb = buf[23];
	if (!m || !n || m > MAX_DIM || n > MAX_DIM ||
	    (lb != 1 && lb != 2 && lb != 4 && lb != 8) ||
	    !band || band % NWC_CHUNK || band > MAX_DIM)
		return -NWC_ECORRUPT;
	need = nwc_tside_size(m, n, flags & NWC_TSIDE_F16, lb, 0);
	if (flags & NWC_TSIDE_EXACT) {
		if (len < need + 4)
			return -NWC_ECORRUPT;
		k = nwc_get_le32(buf + need);
		if (!k || k > NWC_TSIDE_MAX_EXACT(m, n))
			return -NWC_ECORRUPT;
		need = nwc_tside_size(m, n, flags & NWC_TSIDE_F16, lb, k);
	}
	if (len != need)
		return -NWC_ECORRUPT;
	ts = malloc(sizeof(*ts) + (size_t)k * sizeof(*ts->exact) +
		    (size_t)m * sizeof(float) + n);
	if (!ts)
		return -ENOMEM;
	ts->m = m;
	ts->n = n;
	ts->band_rows = band;
	ts->model = nwc_get_le16(buf + 20);
	ts->quant = quant;
	ts->scale_f16 = flags & NWC_TSIDE_F16;
	ts->lanes = flags & NWC_TSIDE_LANES;
	ts->nexact = k;
	ts->exact = (struct nwc_exact *)(ts + 1);
	ts->scale = (float *)(ts->exact + k);
	ts->level = (uint8_t *)(ts->scale + m);
	buf += NWC_TSIDE_HDR;
	for (uint32_t r = 0; r < m; r++) {
		float s = ts->scale_f16 ? nwc_f16_to_f32(nwc_get_le16(buf + 2 * r))
					: nwc_get_lef32(buf + 4 * r);

		if (!isfinite(s)) {
			ret = -NWC_ECORRUPT;
			goto out_free;
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
		ret = -NWC_ECORRUPT;
		goto out_free;
	}
	if (k) {
		ret = parse_exact(lv + ((size_t)n * lb + 7) / 8 + 4, k, ts);
		if (ret)
			goto out_free;
	}
	*out = ts;
	return 0;
out_free:
	free(ts);
	return ret;
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
	uint64_t top = ((uint64_t)m + NWC_CHUNK - 1) / NWC_CHUNK * NWC_CHUNK;
	uint64_t rows = block_size / ((uint64_t)n * elem) / NWC_CHUNK *
			NWC_CHUNK;

	if (rows < NWC_CHUNK)
		rows = NWC_CHUNK;
	return (uint32_t)(rows < top ? rows : top);
}

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

void nwc_tensor_scratch_rowmajor(struct nwc_tensor_scratch *s, bool on)
{
	s->rowmajor = on;
}

int nwc_tensor_scratch_reserve(struct nwc_tensor_scratch *s, size_t nlat)
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
	q = realloc(s->q, nlat / NWC_CHUNK);
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
	f->period = NWC_CHUNK;
	f->seq = seq;
	if (quant != NWC_QUANT_TCQ)
		return;
	for (unsigned int t = 0; t < TCQ_STATES; t++) {
		f->next[t][0] = tcq_next_tab[t][0];
		f->next[t][1] = tcq_next_tab[t][1];
		f->sel[t] = (uint8_t)tcq_union(t);
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
	for (unsigned int t = 0; t < NWC_CHUNK; t += 4) {
		v4sf a = v4_load(x + t), b = v4_load(x + ld + t);
		v4sf c = v4_load(x + 2 * ld + t), d = v4_load(x + 3 * ld + t);
		/* transpose: row i holds element t + i of the four chunks */
		v4sf ab0 = V4_SHUFFLE2(a, b, 0, 4, 1, 5);
		v4sf ab1 = V4_SHUFFLE2(a, b, 2, 6, 3, 7);
		v4sf cd0 = V4_SHUFFLE2(c, d, 0, 4, 1, 5);
		v4sf cd1 = V4_SHUFFLE2(c, d, 2, 6, 3, 7);

		v4_store(tmp + t * n, sc[t] *
			 V4_SHUFFLE2(ab0, cd0, 0, 1, 4, 5));
		v4_store(tmp + (t + 1) * n, sc[t + 1] *
			 V4_SHUFFLE2(ab0, cd0, 2, 3, 6, 7));
		v4_store(tmp + (t + 2) * n, sc[t + 2] *
			 V4_SHUFFLE2(ab1, cd1, 0, 1, 4, 5));
		v4_store(tmp + (t + 3) * n, sc[t + 3] *
			 V4_SHUFFLE2(ab1, cd1, 2, 3, 6, 7));
	}
}

/*
 * Write decoded chunk values of one band as rows of @dtype.  The NWC_CHUNK
 * rows of chunk row k are gathered, times their scales, into @tmp
 * (NWC_CHUNK n floats) and converted at once: each chunk is read whole,
 * each row written contiguously.
 */
static void emit_rows(const struct nwc_tside *ts, uint32_t r0, uint32_t rows,
		      const float *xhat, enum nwc_dtype dtype, float *tmp,
		      uint8_t *dst)
{
	uint32_t nk = (rows + NWC_CHUNK - 1) / NWC_CHUNK;
	size_t elem = dtype == NWC_DTYPE_F32 ? 4 : 2, n = ts->n;

	for (uint32_t k = 0; k < nk; k++) {
		uint32_t h = NWC_MIN(NWC_CHUNK, rows - k * NWC_CHUNK);
		const float *sc = ts->scale + r0 + (size_t)k * NWC_CHUNK;
		size_t j = 0;

		/* whole chunks four columns at a time: 4 x 4 transposes */
		for (; h == NWC_CHUNK && j + 4 <= n; j += 4)
			emit_4x16(xhat + (j * nk + k) * NWC_CHUNK,
				  nk * NWC_CHUNK, sc, tmp + j, n);
		for (; j < n; j++) {
			const float *x = xhat + (j * nk + k) * NWC_CHUNK;

			for (uint32_t t = 0; t < h; t++)
				tmp[t * n + j] = sc[t] * x[t];
		}
		/* dtype was checked by the caller */
		nwc_from_f32(dtype, tmp, (size_t)h * n,
			     dst + (size_t)k * NWC_CHUNK * n * elem);
	}
}

/* The latent of the symbol and table set at @p: the symbol, plus 1/2 in
 * half-offset trellis states. */
static inline float latent(const struct nwc_tensor_scratch *s, size_t p)
{
	return (float)s->sym[p] + 0.5f * s->sel[p];
}

/* latent() of the four at @p. */
static inline v4sf latents4(const struct nwc_tensor_scratch *s, size_t p)
{
	v4si u = { s->sel[p], s->sel[p + 1], s->sel[p + 2], s->sel[p + 3] };

	return __builtin_convertvector(v4i_load(s->sym + p), v4sf) +
	       0.5f * __builtin_convertvector(u, v4sf);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* latent() eight at a time, the table sets widened by one instruction
 * (latents4() builds its four from single byte loads): the same values. */
__attribute__((target("avx2")))
static void latents_avx2(const struct nwc_tensor_scratch *s, size_t p,
			 size_t nlat, float *y)
{
	const __m256 half = _mm256_set1_ps(0.5f);

	for (size_t i = p; i < p + nlat; i += 8) {
		__m256 a = _mm256_cvtepi32_ps(
			_mm256_loadu_si256((const __m256i *)(s->sym + i)));
		__m256 b = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
			_mm_loadl_epi64((const __m128i *)(s->sel + i))));

		_mm256_storeu_ps(y + i - p,
				 _mm256_add_ps(a, _mm256_mul_ps(half, b)));
	}
}
#endif

/* Latents of the @nlat symbols from @p in sequence order into @y (nlat
 * and p multiples of NWC_CHUNK, so of 8). */
static void seq_latents(const struct nwc_tensor_scratch *s, size_t p,
			size_t nlat, float *y)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (nwc_cpu_has(NWC_CPU_AVX2)) {
		latents_avx2(s, p, nlat, y);
		return;
	}
#endif
	for (size_t i = 0; i < nlat; i += 4)
		v4_store(y + i, latents4(s, p + i));
}

/*
 * Latents of symbols in the lanes layout of @n sequences of @seq (a
 * multiple of NWC_CHUNK), put in sequence order: whole groups as 4 x 4
 * transposes of four steps by four lanes, the last group one by one.
 */
static void lanes_latents(struct nwc_tensor_scratch *s, uint32_t n,
			  size_t seq)
{
	const size_t L = NWC_ENTS_LANES;
	size_t p = 0;

	for (uint32_t g = 0; g < n; g += L) {
		uint32_t w = NWC_MIN(L, n - g);

		for (size_t t = 0; w == L && t < seq; t += 4) {
			for (size_t k = 0; k < L; k += 4) {
				size_t q = p + t * L + k;
				v4sf a = latents4(s, q), b = latents4(s, q + L);
				v4sf c = latents4(s, q + 2 * L);
				v4sf d = latents4(s, q + 3 * L);
				v4sf ab0 = V4_SHUFFLE2(a, b, 0, 4, 1, 5);
				v4sf ab1 = V4_SHUFFLE2(a, b, 2, 6, 3, 7);
				v4sf cd0 = V4_SHUFFLE2(c, d, 0, 4, 1, 5);
				v4sf cd1 = V4_SHUFFLE2(c, d, 2, 6, 3, 7);
				float *y = s->y + (g + k) * seq + t;

				v4_store(y, V4_SHUFFLE2(ab0, cd0, 0, 1, 4, 5));
				v4_store(y + seq,
					 V4_SHUFFLE2(ab0, cd0, 2, 3, 6, 7));
				v4_store(y + 2 * seq,
					 V4_SHUFFLE2(ab1, cd1, 0, 1, 4, 5));
				v4_store(y + 3 * seq,
					 V4_SHUFFLE2(ab1, cd1, 2, 3, 6, 7));
			}
		}
		for (size_t r = w == L ? w * seq : 0; r < w * seq; r++)
			s->y[(g + r % w) * seq + r / w] = latent(s, p + r);
		p += w * seq;
	}
}

/*
 * A linear decoder straight from the lanes layout to the band's rows at
 * @dst (@n elements of @dtype apart, @elem bytes each), the group's first
 * column at @dst: for the sixteen columns of a group (its lanes)
 * and each chunk row, output o is the bias of the column's level plus
 * sum_c y_c times the level's weight of latent c for output o, then
 * times the row scale.  The same operations in the same order as
 * lanes_latents(), nwc_net_forward_linear() and emit_rows() one after the
 * other, so the same values, without the two transposes and the passes
 * over memory between them, and BF16 rounded in registers.  The group's
 * symbols start at @p.  @w is a lane's weights side by side (when the
 * group's columns have different levels), @y a chunk row's latents.
 */
__attribute__((target_clones("avx2", "default")))
static void linear_group(const float *lin, const uint8_t *level,
			 const struct nwc_tensor_scratch *s, size_t p,
			 size_t nk, uint32_t rows, const float *sc, size_t n,
			 enum nwc_dtype dtype, size_t elem, uint8_t *dst)
{
	enum { L = NWC_ENTS_LANES, C = NWC_CHUNK };
	_Static_assert(L == 16 && C == 16, "two vectors of eight lanes");
	float w[C][C][L], b[C][L], y[C][L];
	uint8_t lv[L];		/* the levels present, nlv of them */
	unsigned int nlv = 0;
	v8si mask[L][2];	/* lanes of lv[d]: all ones */
	const float *m;		/* the map of a group of one level */
	bool same;

	for (unsigned int l = 0; l < L; l++) {
		unsigned int d = 0;

		while (d < nlv && lv[d] != level[l])
			d++;
		if (d == nlv)
			lv[nlv++] = level[l];
	}
	same = nlv == 1;
	m = lin + (size_t)level[0] * NWC_NET_LIN_LEVEL;
	for (unsigned int d = 0; d < nlv; d++)
		for (unsigned int l = 0; l < L; l++)
			mask[d][l / 8][l % 8] = level[l] == lv[d] ? -1 : 0;
	/*
	 * Each lane's weight of latent c for output o, and its bias: the
	 * levels' values broadcast and masked into place, the bits moved as
	 * they are (weights only when the group has several levels).
	 */
	for (unsigned int c = 0; c <= C; c++) {
		for (unsigned int o = 0; o < C && (c == C || !same); o++) {
			v8si r0 = { 0 }, r1 = { 0 };

			for (unsigned int d = 0; d < nlv; d++) {
				float v = lin[(size_t)lv[d] * NWC_NET_LIN_LEVEL +
					      c * C + o];
				v8sf u = { v, v, v, v, v, v, v, v };

				r0 |= (v8si)u & mask[d][0];
				r1 |= (v8si)u & mask[d][1];
			}
			V8_STORE(c == C ? b[o] : w[c][o], r0);
			V8_STORE((c == C ? b[o] : w[c][o]) + 8, r1);
		}
	}
	for (size_t k = 0; k < nk; k++) {
		uint32_t h = NWC_MIN(C, rows - (uint32_t)k * C);

		for (unsigned int c = 0; c < C; c++)
			for (unsigned int l = 0; l < L; l += 4)
				v4_store(y[c] + l,
					 latents4(s, p + (k * C + c) * L + l));
		for (unsigned int o = 0; o < h; o++) {
			v8sf a0, a1, u0, u1, x0, x1;
			uint8_t *out = dst + (k * C + o) * n * elem;

			V8_LOAD(a0, b[o]);
			V8_LOAD(a1, b[o] + 8);
			/* two loops, so that neither tests a flag per term */
			if (same) {
				for (unsigned int c = 0; c < C; c++) {
					float v = m[c * C + o];

					V8_LOAD(x0, y[c]);
					V8_LOAD(x1, y[c] + 8);
					u0 = (v8sf){ v, v, v, v, v, v, v, v };
					a0 += x0 * u0;
					a1 += x1 * u0;
				}
			} else {
				for (unsigned int c = 0; c < C; c++) {
					V8_LOAD(x0, y[c]);
					V8_LOAD(x1, y[c] + 8);
					V8_LOAD(u0, w[c][o]);
					V8_LOAD(u1, w[c][o] + 8);
					a0 += x0 * u0;
					a1 += x1 * u1;
				}
			}
			a0 = sc[k * C + o] * a0;
			a1 = sc[k * C + o] * a1;
			V16_PUT(dtype, a0, a1, C, out);
		}
	}
}

/* linear_group() for a last group of @lanes < 16 columns, one by one. */
static void linear_tail(const float *lin, const uint8_t *level,
			const struct nwc_tensor_scratch *s, size_t p,
			unsigned int lanes, size_t nk, uint32_t rows,
			const float *sc, size_t n, enum nwc_dtype dtype,
			size_t elem, uint8_t *dst)
{
	enum { C = NWC_CHUNK };

	for (unsigned int l = 0; l < lanes; l++) {
		const float *m = lin + (size_t)level[l] * NWC_NET_LIN_LEVEL;

		for (size_t k = 0; k < nk; k++) {
			uint32_t h = NWC_MIN(C, rows - (uint32_t)k * C);
			float x[C];

			for (unsigned int c = 0; c < C; c++)
				x[c] = latent(s, p + (k * C + c) * lanes + l);
			for (unsigned int o = 0; o < h; o++) {
				float a = m[C * C + o];

				for (unsigned int c = 0; c < C; c++)
					a += x[c] * m[c * C + o];
				a = sc[k * C + o] * a;
				nwc_from_f32(dtype, &a, 1,
					     dst + ((k * C + o) * n + l) * elem);
			}
		}
	}
}

/* The band's rows from the lanes layout through a linear decoder. */
static void linear_band(const struct nwc_model *model,
			const struct nwc_tside *ts, uint32_t r0, uint32_t rows,
			const struct nwc_tensor_scratch *s,
			enum nwc_dtype dtype, size_t elem, uint8_t *dst)
{
	const size_t L = NWC_ENTS_LANES, n = ts->n;
	size_t nk = (rows + NWC_CHUNK - 1) / NWC_CHUNK, seq = nk * NWC_CHUNK;
	const float *sc = ts->scale + r0;
	uint32_t g;

	for (g = 0; g + L <= n; g += L)
		linear_group(model->dec_linear, ts->level + g, s, g * seq, nk,
			     rows, sc, n, dtype, elem, dst + g * elem);
	if (g < n)
		linear_tail(model->dec_linear, ts->level + g, s, g * seq,
			    (unsigned int)(n - g), nk, rows, sc, n, dtype, elem,
			    dst + g * elem);
}

/*
 * The band's rows from the lanes layout through a folded decoder, sixteen
 * columns side by side (nwc_model_synthesize_lanes()): the latents in
 * stream order are already each group's lanes, and the values come out
 * as rows of @dtype, so nothing is transposed and no floats are stored
 * for a pass of their own.  The same bytes as lanes_latents(),
 * nwc_model_synthesize() and emit_rows().
 */
static int lanes_band(const struct nwc_model *model,
		      const struct nwc_tside *ts, uint32_t r0, uint32_t rows,
		      struct nwc_tensor_scratch *s, enum nwc_dtype dtype,
		      size_t elem, uint8_t *dst)
{
	const size_t L = NWC_ENTS_LANES, n = ts->n;
	size_t seq = (size_t)(rows + NWC_CHUNK - 1) / NWC_CHUNK * NWC_CHUNK;
	int ret = 0;

	/* a group's latents at a time: they stay in L1 for the decoder */
	for (size_t g = 0; g < n && !ret; g += L) {
		size_t w = NWC_MIN(L, n - g);

		seq_latents(s, g * seq, w * seq, s->y);
		ret = nwc_model_synthesize_lanes(model, ts->level + g,
						 (unsigned int)w, s->y, rows,
						 ts->scale + r0, dtype,
						 dst + g * elem, n);
	}
	return ret;
}

/* The exact weights of rows [r0, r0 + rows) over what the codec gave. */
static void put_exact(const struct nwc_tside *ts, uint32_t r0, uint32_t rows,
		      enum nwc_dtype dtype, size_t elem, uint8_t *dst)
{
	uint32_t lo = 0, hi = ts->nexact;

	/* the first entry at or after row r0 */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ts->exact[mid].row < r0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (uint32_t i = lo; i < ts->nexact && ts->exact[i].row - r0 < rows;
	     i++) {
		const struct nwc_exact *x = &ts->exact[i];

		nwc_from_f32(dtype, &x->value, 1,
			     dst + ((size_t)(x->row - r0) * ts->n + x->col) *
				   elem);
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
	nk = (rows + NWC_CHUNK - 1) / NWC_CHUNK;
	nchunks = (size_t)nk * ts->n;
	nlat = nchunks * NWC_CHUNK;
	ret = nwc_tensor_scratch_reserve(s, nlat);
	if (ret)
		return ret;
	dec_fsm(&fsm, ts->quant, (size_t)nk * NWC_CHUNK);
	if (ts->lanes)
		ret = nwc_ents_decode_fsm_lanes(
			(const struct nwc_qdist *const *)model->tables,
			model->flat, &fsm, s->sym, s->sel, nlat, src, len);
	else
		ret = nwc_ents_decode_fsm(
			(const struct nwc_qdist *const *)model->tables, &fsm,
			s->sym, s->sel, nlat, src, len);
	if (ret)
		return ret;
	if (ts->lanes && !s->rowmajor && model->dec_linear) {
		linear_band(model, ts, b * ts->band_rows, rows, s, dtype, elem,
			    dst);
		put_exact(ts, b * ts->band_rows, rows, dtype, elem, dst);
		return 0;
	}
	if (ts->lanes && !s->rowmajor && nwc_model_lanes_ok(model)) {
		ret = lanes_band(model, ts, b * ts->band_rows, rows, s, dtype,
				 elem, dst);
		if (!ret)
			put_exact(ts, b * ts->band_rows, rows, dtype, elem,
				  dst);
		return ret;
	}
	/* latents: the symbol, plus 1/2 in half-offset trellis states */
	if (ts->lanes)
		lanes_latents(s, ts->n, (size_t)nk * NWC_CHUNK);
	else
		seq_latents(s, 0, nlat, s->y);
	for (uint32_t j = 0; j < ts->n; j++)
		memset(s->q + (size_t)j * nk, ts->level[j], nk);
	ret = nwc_model_synthesize(model, s->y, s->q, nchunks, s->xhat, s->ms);
	if (ret)
		return ret;
	/* y is free again: synthesize() is done with it */
	emit_rows(ts, b * ts->band_rows, rows, s->xhat, dtype, s->y, dst);
	put_exact(ts, b * ts->band_rows, rows, dtype, elem, dst);
	return 0;
}

