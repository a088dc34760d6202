/* SPDX-License-Identifier: MIT */
/*
 * entropy.c - 16-bit integer probability tables with an escape, and an
 * interleaved rANS coder (on the core of codec/ranscore.h, M = 2^16) that
 * picks one table per value.  An escaped value costs the escape symbol,
 * its nibble count g (uniform over 1..8) and g nibbles (uniform, lowest
 * first), all on the value's own state.
 *
 * This file is the decode side (libnwcdec.a): tables from counts, a pmf or
 * a saved table, and the decoders.  The encoder, table serialization and
 * bit costs are in entropy_enc.c (libnwcenc.a).
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>

#include "codec/common/cpu.h"
#include "codec/common/hash.h"
#include "codec/nwc/entropy.h"
#include "codec/nwc/entropy_impl.h"
#include "codec/ransvec.h"

/* The symbol whose interval holds @slot. */
static inline uint32_t slot_sym(const struct nwc_qdist *d, uint32_t slot)
{
	uint32_t b = slot >> COARSE_SHIFT, e = d->coarse[b];

	if (__builtin_expect(e & COARSE_MULTI, 0)) {
		uint32_t s = e & ~COARSE_MULTI;

		while (slot - fc_cum(d->fc[s]) >= fc_freq(d->fc[s]))
			s++;
		return s;
	}
	return e + ((slot & COARSE_MASK) > d->split[b]);
}

/* Values lo .. lo + n - 1 must all be int32 and n + 1 symbols must fit. */
static bool range_ok(int32_t lo, uint32_t n)
{
	return n >= 1 && n < NWC_QDIST_MAX_SYMS &&
	       (int64_t)lo + n - 1 <= INT32_MAX;
}

/* Build a table from frequencies already checked to be >= 1 and sum to M. */
static int qdist_build(int32_t lo, uint32_t n, const uint32_t *freq,
		       struct nwc_qdist **out)
{
	struct nwc_qdist *d;
	uint32_t c = 0;

	d = malloc(sizeof(*d) + (n + 1) * sizeof(d->fc[0]));
	if (!d)
		return -ENOMEM;
	d->lo = lo;
	d->n = n;
	for (uint32_t s = 0; s <= n; s++) {
		d->fc[s] = freq[s] | c << 16;
		c += freq[s];
	}
	for (uint32_t b = 0, s = 0; b < COARSE; b++) {
		uint32_t start = b << COARSE_SHIFT, end = start + M / COARSE;
		uint32_t next;

		while (fc_cum(d->fc[s]) + fc_freq(d->fc[s]) <= start)
			s++;
		next = fc_cum(d->fc[s]) + fc_freq(d->fc[s]);
		d->coarse[b] = (uint16_t)s;
		d->split[b] = (uint8_t)(next < end ? next - start - 1 : 255);
		if (next < end && s < n && next + fc_freq(d->fc[s + 1]) < end)
			d->coarse[b] |= COARSE_MULTI;
	}
	*out = d;
	return 0;
}

struct nz_sym {
	uint32_t s;
	uint64_t q;		/* floor of the ideal frequency */
	uint64_t r;		/* its remainder, over the total */
};

/* Largest remainder first; ties by symbol so the order is total. */
static int cmp_rem_desc(const void *pa, const void *pb)
{
	const struct nz_sym *a = pa, *b = pb;

	if (a->r != b->r)
		return a->r > b->r ? -1 : 1;
	return (a->s > b->s) - (a->s < b->s);
}

/* Smallest relative rounding (r / q) first: cheapest to take one from. */
static int cmp_rel_asc(const void *pa, const void *pb)
{
	const struct nz_sym *a = pa, *b = pb;
	uint64_t x = a->r * b->q, y = b->r * a->q;

	if (x != y)
		return x < y ? -1 : 1;
	return (a->s > b->s) - (a->s < b->s);
}

/*
 * Scale @cnt (@ns <= NWC_QDIST_MAX_SYMS entries) to frequencies summing to M,
 * every one >= 1.  Zero counts get 1; the rest share M minus those in
 * proportion (largest remainder), then any excess from lifting tiny counts
 * to 1 is taken back where it costs least.  Integer arithmetic only.
 */
static int normalize(const uint64_t *cnt, uint32_t ns, uint32_t *freq)
{
	struct nz_sym *nz;
	uint64_t total = 0, maxc = 0, rem;
	uint32_t z = 0, nnz = 0, shift = 0;
	int64_t sum = 0;
	bool ovf = false;

	for (uint32_t s = 0; s < ns; s++) {
		ovf |= __builtin_add_overflow(total, cnt[s], &total);
		maxc = NWC_MAX(maxc, cnt[s]);
	}
	/* Keep the total below 2^40 so count * M fits 64 bits. */
	if (ovf || total >= 1ull << 40) {
		while ((maxc >> shift) >= 1ull << 27)
			shift++;
	}
	nz = malloc(ns * sizeof(*nz));
	if (!nz)
		return -ENOMEM;
	total = 0;
	for (uint32_t s = 0; s < ns; s++) {
		uint64_t c = cnt[s] >> shift;

		if (cnt[s] && !c)
			c = 1;
		if (c) {
			nz[nnz].s = s;
			nz[nnz].q = c;	/* the count, for now */
			nnz++;
			total += c;
		} else {
			z++;
		}
	}
	if (!nnz) {	/* nothing seen: uniform */
		for (uint32_t s = 0; s < ns; s++) {
			nz[s].s = s;
			nz[s].q = 1;
		}
		nnz = ns;
		z = 0;
		total = ns;
	}
	for (uint32_t s = 0; s < ns; s++)
		freq[s] = 1;
	rem = M - z;
	for (uint32_t k = 0; k < nnz; k++) {
		uint64_t p = nz[k].q * rem;

		nz[k].q = p / total;
		nz[k].r = p % total;
		freq[nz[k].s] = (uint32_t)NWC_MAX(nz[k].q, 1);
	}
	for (uint32_t s = 0; s < ns; s++)
		sum += freq[s];

	if (sum < M) {
		/* Deficit < number of symbols with q >= 1: one pass. */
		qsort(nz, nnz, sizeof(*nz), cmp_rem_desc);
		for (uint32_t k = 0; k < nnz && sum < M; k++) {
			if (!nz[k].q)
				continue;
			freq[nz[k].s]++;
			sum++;
		}
	} else if (sum > M) {
		qsort(nz, nnz, sizeof(*nz), cmp_rel_asc);
		for (uint32_t k = 0; k < nnz && sum > M; k++) {
			if (freq[nz[k].s] > 1) {
				freq[nz[k].s]--;
				sum--;
			}
		}
		/* Many tiny counts lifted to 1: the largest pays the rest. */
		while (sum > M) {
			uint32_t best = 0;
			uint32_t d;

			for (uint32_t s = 1; s < ns; s++)
				if (freq[s] > freq[best])
					best = s;
			d = (uint32_t)NWC_MIN((int64_t)freq[best] - 1, sum - M);
			if (!d)
				break;	/* ns > M: excluded by the callers */
			freq[best] -= d;
			sum -= d;
		}
	}
	free(nz);
	return sum == M ? 0 : -EINVAL;
}

int nwc_qdist_from_counts(int32_t lo, uint32_t n, const uint64_t *counts,
			  uint64_t escapes, struct nwc_qdist **out)
{
	uint64_t *cnt;
	uint32_t *freq;
	int ret;

	if (!range_ok(lo, n) || !counts)
		return -EINVAL;
	cnt = malloc((n + 1) * sizeof(*cnt));
	freq = malloc((n + 1) * sizeof(*freq));
	if (!cnt || !freq) {
		ret = -ENOMEM;
		goto out_free;
	}
	memcpy(cnt, counts, n * sizeof(*cnt));
	cnt[n] = escapes;
	ret = normalize(cnt, n + 1, freq);
	if (!ret)
		ret = qdist_build(lo, n, freq, out);
out_free:
	free(freq);
	free(cnt);
	return ret;
}

int nwc_qdist_from_pmf(int32_t lo, uint32_t n, const double *pmf, double tail,
		       struct nwc_qdist **out)
{
	const double scale = 1099511627776.0;	/* 2^40 */
	uint64_t *cnt;
	double total = 0;
	int ret;

	if (!range_ok(lo, n) || !pmf)
		return -EINVAL;
	for (uint32_t k = 0; k <= n; k++) {
		double p = k < n ? pmf[k] : tail;

		if (!(p >= 0) || !isfinite(p))
			return -EINVAL;
		total += p;
	}
	if (!isfinite(total))
		return -EINVAL;
	cnt = malloc((n + 1) * sizeof(*cnt));
	if (!cnt)
		return -ENOMEM;
	/* Fixed-point counts: the rest is the integer path. */
	for (uint32_t k = 0; k <= n; k++) {
		double p = k < n ? pmf[k] : tail;

		cnt[k] = total > 0 ? (uint64_t)(p / total * scale) : 0;
		if (p > 0 && !cnt[k])
			cnt[k] = 1;
	}
	ret = nwc_qdist_from_counts(lo, n, cnt, cnt[n], out);
	free(cnt);
	return ret;
}

void nwc_qdist_free(struct nwc_qdist *d)
{
	free(d);
}

int32_t nwc_qdist_lo(const struct nwc_qdist *d)
{
	return d->lo;
}

uint32_t nwc_qdist_n(const struct nwc_qdist *d)
{
	return d->n;
}

uint32_t nwc_qdist_freq(const struct nwc_qdist *d, uint32_t sym)
{
	return sym <= d->n ? fc_freq(d->fc[sym]) : 0;
}

static inline int32_t unzigzag(uint32_t u)
{
	return (int32_t)(u >> 1 ^ (0u - (u & 1)));
}

int nwc_qdist_load(const uint8_t *buf, size_t len, size_t *used,
		   struct nwc_qdist **out)
{
	uint32_t freq[NWC_QDIST_MAX_SYMS];
	uint32_t n, sum = 0;
	int32_t lo;
	size_t size;
	int ret;

	if (len < QD_FIXED || memcmp(buf, QD_MAGIC, 4) ||
	    nwc_get_le16(buf + 4) != QD_VERSION || nwc_get_le16(buf + 6))
		return -NWC_ECORRUPT;
	lo = (int32_t)nwc_get_le32(buf + 8);
	n = nwc_get_le32(buf + 12);
	if (!range_ok(lo, n))
		return -NWC_ECORRUPT;
	size = QD_FIXED + 2 * ((size_t)n + 1) + 8;
	if (len < size || nwc_get_le64(buf + size - 8) !=
			  nwc_hash64(buf, size - 8))
		return -NWC_ECORRUPT;
	for (uint32_t s = 0; s <= n; s++) {
		freq[s] = nwc_get_le16(buf + QD_FIXED + 2 * s);
		if (!freq[s])
			return -NWC_ECORRUPT;
		sum += freq[s];
	}
	if (sum != M)
		return -NWC_ECORRUPT;
	ret = qdist_build(lo, n, freq, out);
	if (ret)
		return ret;
	if (used)
		*used = size;
	return 0;
}

/*
 * The escape payload of a value on state *x, the escape symbol itself
 * already taken.  Rejects what the encoder never writes: a leading zero
 * nibble, or a value the table codes directly.
 */
static int dec_escape(const struct nwc_qdist *d, uint32_t *x,
		      const uint8_t *src, size_t *wpos, size_t wend,
		      int32_t *out)
{
	uint32_t slot = *x & (M - 1), g, u = 0, nib = 0;
	int ret;

	g = slot / G_FREQ + 1;
	*x = nwc_rans_dec_step(*x, G_FREQ, slot % G_FREQ, PREC);
	ret = nwc_rans_dec_refill(x, src, wpos, wend);
	if (ret)
		return ret;
	for (uint32_t j = 0; j < g; j++) {
		slot = *x & (M - 1);
		nib = slot / NIB_FREQ;
		u |= nib << 4 * j;
		*x = nwc_rans_dec_step(*x, NIB_FREQ, slot % NIB_FREQ, PREC);
		ret = nwc_rans_dec_refill(x, src, wpos, wend);
		if (ret)
			return ret;
	}
	if (g > 1 && !nib)
		return -NWC_ECORRUPT;
	*out = unzigzag(u);
	if (in_range(d, *out))
		return -NWC_ECORRUPT;
	return 0;
}

/* A whole value on *x with every word read checked. */
static int dec_value(const struct nwc_qdist *d, uint32_t *x,
		     const uint8_t *src, size_t *wpos, size_t wend,
		     int32_t *out)
{
	uint32_t slot = *x & (M - 1), s = slot_sym(d, slot), fc = d->fc[s];
	int ret;

	*x = nwc_rans_dec_step(*x, fc_freq(fc), slot - fc_cum(fc), PREC);
	ret = nwc_rans_dec_refill(x, src, wpos, wend);
	if (ret)
		return ret;
	if (s == d->n)
		return dec_escape(d, x, src, wpos, wend, out);
	*out = d->lo + (int32_t)s;
	return 0;
}

/* The @ns initial states. */
static int dec_start(uint32_t *x, unsigned int ns, const uint8_t *src,
		     size_t len)
{
	if (len < 4 * ns || (len - 4 * ns) % 2)
		return -NWC_ECORRUPT;
	return nwc_rans_states_get(src, x, ns);
}

/* The encoder started every state at L and used every word. */
static int dec_finish(const uint32_t *x, unsigned int ns, size_t wpos,
		      size_t len)
{
	if (wpos != len || !nwc_rans_states_done(x, ns))
		return -NWC_ECORRUPT;
	return 0;
}

/*
 * State @x with the symbol @s of @d (which holds x's slot) taken off, and
 * a word pulled if needed, unchecked: the caller knows one is there (and
 * it is read even when it is not needed).  By value, so that the state
 * can stay in a register.
 */
static inline uint32_t dec_take(const struct nwc_qdist *d, uint32_t s,
				uint32_t x, const uint8_t *src, size_t *wpos)
{
	uint32_t fc = d->fc[s];

	x = nwc_rans_dec_step(x, fc_freq(fc), (x & (M - 1)) - fc_cum(fc),
			      PREC);
	/*
	 * No branch: with the compare of slot_sym(), this took the trellis
	 * decoder from 0.40 to 0.06 mispredicted branches per value
	 * (cachegrind) and from 84-105 to 103-126 MB/s.
	 */
	return nwc_rans_dec_pull(x, src + *wpos, wpos);
}

/* Position in an FSM's sequence and its table offset, one value on. */
static inline void fsm_advance(const struct nwc_ents_fsm *f, size_t *pos,
			       uint32_t *c)
{
	if (++*pos == f->seq) {
		*pos = 0;
		*c = 0;
	} else if (++*c == f->period) {
		*c = 0;
	}
}

/* fsm_advance() four times, for a period and sequence of multiples of 4. */
static inline void fsm_advance_group(const struct nwc_ents_fsm *f,
				     size_t *pos, uint32_t *c)
{
	*pos += NSTATES;
	*c += NSTATES;
	if (*pos == f->seq)
		*pos = 0;
	if (*c == f->period || !*pos)
		*c = 0;
}

/* The table offset of the next value of an FSM that never leaves set 0. */
static inline uint32_t period_next(const struct nwc_ents_fsm *f, size_t *pos,
				   uint32_t *c)
{
	uint32_t now = *c;

	fsm_advance(f, pos, c);
	return now;
}

/*
 * Inlined once per mode (one table, a context array, the periodic
 * contexts of an FSM without states) so the hot loop does not test the
 * mode for every value.  DIST() runs exactly once per value, in order.
 */
enum { MODE_ONE, MODE_CTX, MODE_PERIOD };
static inline __attribute__((always_inline)) int
decode_all(const struct nwc_qdist *const *dists, const uint8_t *ctx,
	   const struct nwc_ents_fsm *f, int32_t *vals, size_t n,
	   const uint8_t *src, size_t len, const int mode)
{
	uint32_t x[NSTATES], c = 0;
	size_t wpos = HDR_LEN, i = 0, pos = 0;
	int ret;

	ret = dec_start(x, NSTATES, src, len);
	if (ret)
		return ret;
#define DIST(j) dists[mode == MODE_CTX ? ctx[j] :			\
		      mode == MODE_PERIOD ? period_next(f, &pos, &c) : 0]
	/*
	 * Fast path: a direct symbol reads at most one word, so four values
	 * need no check while four words remain.  An escape leaves the group
	 * to the checked path, which also finishes the group's other values.
	 */
	while (n - i >= NSTATES && len - wpos >= 2 * NSTATES) {
		const struct nwc_qdist *d;
		unsigned int k;
		uint32_t s;

		for (k = 0; k < NSTATES; k++) {
			d = DIST(i + k);
			s = slot_sym(d, x[k] & (M - 1));
			x[k] = dec_take(d, s, x[k], src, &wpos);
			if (__builtin_expect(s == d->n, 0))
				goto escape;
			vals[i + k] = d->lo + (int32_t)s;
		}
		i += NSTATES;
		continue;
escape:
		ret = dec_escape(d, &x[k], src, &wpos, len, &vals[i + k]);
		if (ret)
			return ret;
		for (k++; k < NSTATES; k++) {
			ret = dec_value(DIST(i + k), &x[k], src, &wpos, len,
					&vals[i + k]);
			if (ret)
				return ret;
		}
		i += NSTATES;
	}
	for (; i < n; i++) {
		ret = dec_value(DIST(i), &x[i % NSTATES], src, &wpos, len,
				&vals[i]);
		if (ret)
			return ret;
	}
#undef DIST
	return dec_finish(x, NSTATES, wpos, len);
}

int nwc_ents_decode(const struct nwc_qdist *const *dists, const uint8_t *ctx,
		    int32_t *vals, size_t n, const uint8_t *src, size_t len)
{
	if (ctx)
		return decode_all(dists, ctx, NULL, vals, n, src, len,
				  MODE_CTX);
	return decode_all(dists, NULL, NULL, vals, n, src, len, MODE_ONE);
}

static int fsm_check(const struct nwc_ents_fsm *f, bool *two)
{
	*two = false;
	if (!f->period || !f->seq)
		return -EINVAL;
	for (unsigned int t = 0; t < NWC_ENTS_FSM_STATES; t++) {
		if (f->sel[t] > 1 ||
		    f->next[t][0] >= NWC_ENTS_FSM_STATES ||
		    f->next[t][1] >= NWC_ENTS_FSM_STATES)
			return -EINVAL;
		*two |= f->sel[t];
	}
	return 0;
}

int nwc_ents_decode_fsm(const struct nwc_qdist *const *dists,
			const struct nwc_ents_fsm *f, int32_t *vals,
			uint8_t *sel, size_t n, const uint8_t *src, size_t len)
{
	/* next2[t][p0 + 2 p1]: the next state when the candidate of table
	 * set 0 has parity p0 and that of set 1 parity p1. */
	uint8_t next2[NWC_ENTS_FSM_STATES][4], nosel[NSTATES];
	uint32_t x[NSTATES], c = 0, per = f->period;
	unsigned int st = 0;
	size_t wpos = HDR_LEN, i = 0, pos = 0;
	bool two;
	int ret;

	ret = fsm_check(f, &two);
	if (ret)
		return ret;
	if (!two) {
		if (sel)
			memset(sel, 0, n);
		return decode_all(dists, NULL, f, vals, n, src, len,
				  MODE_PERIOD);
	}
	for (unsigned int t = 0; t < NWC_ENTS_FSM_STATES; t++)
		for (unsigned int p = 0; p < 4; p++)
			next2[t][p] = f->next[t][f->sel[t] ? p >> 1 : p & 1];
	ret = dec_start(x, NSTATES, src, len);
	if (ret)
		return ret;
	/*
	 * Fast path, for groups of four values that share a sequence and a
	 * period (so only the first can restart the state, and their table
	 * offsets are c .. c + 3).  A value's candidates in both table sets
	 * depend on its rANS state only, so the CPU looks them up ahead of
	 * the state chain, which costs one small-table load per value; the
	 * state then picks one candidate without a branch.
	 */
	while (per % NSTATES == 0 && f->seq % NSTATES == 0 &&
	       n - i >= NSTATES && len - wpos >= 2 * NSTATES) {
		const struct nwc_qdist *const *g0 = dists + c, *const *g1 =
			g0 + per;
		uint8_t *sg = sel ? sel + i : nosel;	/* no test per value */
		unsigned int k, u = 0, before = 0;
		const struct nwc_qdist *dk = NULL;

		if (!pos)
			st = 0;
#pragma GCC unroll 4
		for (k = 0; k < NSTATES; k++) {
			const struct nwc_qdist *d0 = g0[k], *d1 = g1[k];
			uint32_t slot = x[k] & (M - 1);
			uint32_t s0 = slot_sym(d0, slot), s1 = slot_sym(d1, slot);
			unsigned int par = ((uint32_t)(d0->lo + (int32_t)s0) & 1) |
					   ((uint32_t)(d1->lo + (int32_t)s1) & 1)
					   << 1;
			uint32_t sk;

			before = st;
			u = f->sel[st];
			st = next2[st][par];
			dk = u ? d1 : d0;
			sk = u ? s1 : s0;
			x[k] = dec_take(dk, sk, x[k], src, &wpos);
			if (__builtin_expect(sk == dk->n, 0))
				goto escape;
			vals[i + k] = dk->lo + (int32_t)sk;
			sg[k] = (uint8_t)u;
		}
		i += NSTATES;
		fsm_advance_group(f, &pos, &c);
		continue;
escape:
		/* The chain guessed past the escape: redo it from here. */
		st = before;
		ret = dec_escape(dk, &x[k], src, &wpos, len, &vals[i + k]);
		if (ret)
			return ret;
		if (sel)
			sel[i + k] = (uint8_t)u;
		st = f->next[st][(uint32_t)vals[i + k] & 1];
		for (k++; k < NSTATES; k++) {
			u = f->sel[st];
			ret = dec_value(dists[c + k + per * u], &x[k], src,
					&wpos, len, &vals[i + k]);
			if (ret)
				return ret;
			if (sel)
				sel[i + k] = (uint8_t)u;
			st = f->next[st][(uint32_t)vals[i + k] & 1];
		}
		i += NSTATES;
		fsm_advance_group(f, &pos, &c);
	}
	for (; i < n; i++) {
		if (!pos)
			st = 0;
		ret = dec_value(dists[c + per * f->sel[st]], &x[i % NSTATES],
				src, &wpos, len, &vals[i]);
		if (ret)
			return ret;
		if (sel)
			sel[i] = f->sel[st];
		st = f->next[st][(uint32_t)vals[i] & 1];
		fsm_advance(f, &pos, &c);
	}
	return dec_finish(x, NSTATES, wpos, len);
}

/* ---- the lanes layout ---- */

size_t nwc_ents_lane_index(size_t p, size_t seq, size_t n)
{
	size_t group = NWC_ENTS_LANES * seq, g = p / group, r = p % group;
	size_t w = NWC_MIN((size_t)NWC_ENTS_LANES,
			   n / seq - g * NWC_ENTS_LANES);

	/* position r of a group of w sequences: value r / w of lane r % w */
	return (g * NWC_ENTS_LANES + r % w) * seq + r / w;
}

/*
 * Tables for the vector kernel's lookups: per table t, coarse32[256 t + b]
 * = first symbol of bucket b | split << 12 | LANES_MULTI; info[t] = offset
 * of its fc[] in fc | n << 20; lo[t].  Every offset fits: <= 256 tables
 * of <= 4096 fc.
 */
#define LANES_MULTI (1u << 20)
#define LANES_TABLES_MAX 256u

struct nwc_ents_flat {
	unsigned ntab;
	uint32_t *coarse32;
	uint32_t *info;
	int32_t *lo;
	uint32_t *fc;
};

void nwc_ents_flat_free(struct nwc_ents_flat *flat)
{
	if (!flat)
		return;
	free(flat->coarse32);
	free(flat->info);
	free(flat->lo);
	free(flat->fc);
	free(flat);
}

int nwc_ents_flat_build(const struct nwc_qdist *const *dists, unsigned ntab,
			struct nwc_ents_flat **out)
{
	struct nwc_ents_flat *f;
	size_t nfc = 0, off = 0;

	*out = NULL;
	if (!ntab || ntab > LANES_TABLES_MAX)
		return -EINVAL;
	for (unsigned t = 0; t < ntab; t++)
		nfc += dists[t]->n + 1;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->ntab = ntab;
	f->coarse32 = malloc((size_t)ntab * COARSE * sizeof(*f->coarse32));
	f->info = malloc(ntab * sizeof(*f->info));
	f->lo = malloc(ntab * sizeof(*f->lo));
	f->fc = malloc(nfc * sizeof(*f->fc));
	if (!f->coarse32 || !f->info || !f->lo || !f->fc) {
		nwc_ents_flat_free(f);
		return -ENOMEM;
	}
	for (unsigned t = 0; t < ntab; t++) {
		const struct nwc_qdist *d = dists[t];

		for (unsigned b = 0; b < COARSE; b++) {
			uint32_t e = d->coarse[b];

			f->coarse32[t * COARSE + b] =
				(e & ~COARSE_MULTI) | (uint32_t)d->split[b] << 12 |
				(e & COARSE_MULTI ? LANES_MULTI : 0);
		}
		f->info[t] = (uint32_t)off | d->n << 20;
		f->lo[t] = d->lo;
		memcpy(f->fc + off, d->fc, (d->n + 1) * sizeof(*f->fc));
		off += d->n + 1;
	}
	*out = f;
	return 0;
}

/*
 * One value of the lane whose FSM state is *@st, @t values into its
 * sequence, on rANS state *@x, every word read checked.
 */
static int lane_value(const struct nwc_qdist *const *dists,
		      const struct nwc_ents_fsm *f, unsigned int *st,
		      size_t t, uint32_t *x, const uint8_t *src,
		      size_t *wpos, size_t len, int32_t *val, uint8_t *sel)
{
	unsigned int u = f->sel[*st];
	int ret;

	ret = dec_value(dists[t % f->period + f->period * u], x, src, wpos,
			len, val);
	if (ret)
		return ret;
	if (sel)
		*sel = (uint8_t)u;
	*st = f->next[*st][(uint32_t)*val & 1];
	return 0;
}

#ifdef NWC_RANSVEC

/*
 * One step of eight lanes (vector *@xv of rANS states, *@sv of FSM states)
 * whose tables are candidates c (set 0) and c + period (set 1):
 * @info and @lo hold both tables' info[] and lo[] entries, set 0 in lanes
 * where u = 0.  Returns false, with nothing changed, when a lane meets an
 * escape.  Pulls words from *@p.
 */
__attribute__((target("avx2,bmi2,popcnt"), always_inline))
static inline bool step8(const struct nwc_ents_flat *fl, __m256i selv,
			 __m256i next0, __m256i next1, __m256i *xv,
			 __m256i *sv, int c0, int c1, __m256i info0,
			 __m256i info1, __m256i lo0, __m256i lo1,
			 const uint8_t *src, size_t *p, int32_t *vals,
			 uint8_t *sel)
{
	const __m256i lo16 = _mm256_set1_epi32(0xffff);
	const __m256i lo12 = _mm256_set1_epi32(0xfff);
	const __m256i lo8 = _mm256_set1_epi32(0xff);
	const __m256i lo20 = _mm256_set1_epi32(0xfffff);
	const __m256i one = _mm256_set1_epi32(1);
	const __m256i multi = _mm256_set1_epi32((int)LANES_MULTI);
	__m256i u, tab, slot, ce, s, info, base, fc, v, odd, x;

	/* u = sel[st]: the table set, as a lane mask */
	u = _mm256_cmpgt_epi32(_mm256_permutevar8x32_epi32(selv, *sv),
			       _mm256_setzero_si256());
	tab = _mm256_blendv_epi8(_mm256_set1_epi32(c0), _mm256_set1_epi32(c1),
				 u);
	info = _mm256_blendv_epi8(info0, info1, u);
	slot = _mm256_and_si256(*xv, lo16);
	ce = nwc_rans_lookup8(fl->coarse32,
			      _mm256_add_epi32(_mm256_slli_epi32(tab, 8),
					       _mm256_srli_epi32(slot, 8)));
	/* s = first + (slot % 256 > split) */
	s = _mm256_sub_epi32(
		_mm256_and_si256(ce, lo12),
		_mm256_cmpgt_epi32(_mm256_and_si256(slot, lo8),
				   _mm256_and_si256(_mm256_srli_epi32(ce, 12),
						    lo8)));
	base = _mm256_and_si256(info, lo20);
	fc = nwc_rans_lookup8(fl->fc, _mm256_add_epi32(base, s));
	/*
	 * A bucket of three or more symbols: s is the first or the second of
	 * them, at or before the slot's, so step on (every such lane at once)
	 * while the slot lies past the interval of s.  The other lanes never
	 * step: their s is the slot's.
	 */
	if (!_mm256_testz_si256(ce, multi)) {
		for (;;) {
			__m256i past = _mm256_cmpgt_epi32(
				_mm256_sub_epi32(slot,
						 _mm256_srli_epi32(fc, 16)),
				_mm256_sub_epi32(_mm256_and_si256(fc, lo16),
						 one));

			if (_mm256_testz_si256(past, past))
				break;
			s = _mm256_sub_epi32(s, past);
			fc = nwc_rans_lookup8(fl->fc,
					      _mm256_add_epi32(base, s));
		}
	}
	if (_mm256_movemask_ps(_mm256_castsi256_ps(
		    _mm256_cmpeq_epi32(s, _mm256_srli_epi32(info, 20)))))
		return false;	/* an escape */
	x = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(fc, lo16),
						_mm256_srli_epi32(*xv, 16)),
			     _mm256_sub_epi32(slot, _mm256_srli_epi32(fc, 16)));
	*xv = nwc_rans_pull8(x, src, p);
	v = _mm256_add_epi32(_mm256_blendv_epi8(lo0, lo1, u), s);
	_mm256_storeu_si256((__m256i *)(void *)vals, v);
	if (sel) {
		uint64_t b = _pdep_u64((unsigned)_mm256_movemask_ps(
					       _mm256_castsi256_ps(u)),
				       0x0101010101010101ull);

		memcpy(sel, &b, 8);
	}
	odd = _mm256_cmpeq_epi32(_mm256_and_si256(v, one), one);
	*sv = _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(next0, *sv),
				 _mm256_permutevar8x32_epi32(next1, *sv), odd);
	return true;
}

/*
 * Steps t, t + 1, ... of a whole group: its sixteen lanes as two vectors,
 * while 32 bytes of words remain and no lane meets an escape (that
 * step, left untouched, goes to the scalar path).  Values and table sets are stored in stream order.  Returns the
 * next step; @x and @st hold the lanes' states.
 */
__attribute__((target("avx2,bmi2,popcnt")))
static size_t lanes_avx2(const struct nwc_ents_flat *fl,
			 const struct nwc_ents_fsm *f, uint32_t *x,
			 unsigned int *st, size_t t, size_t seq,
			 const uint8_t *src, size_t *wpos, size_t len,
			 int32_t *vals, uint8_t *sel)
{
	const uint32_t per = f->period;
	__m256i selv, next0, next1, x0, x1, s0, s1;
	size_t p = *wpos;
	uint32_t c = (uint32_t)(t % per);
	int32_t tmp[NWC_ENTS_LANES];

	for (unsigned k = 0; k < 8; k++)
		tmp[k] = f->sel[k];
	selv = _mm256_loadu_si256((const __m256i *)(const void *)tmp);
	for (unsigned k = 0; k < 8; k++)
		tmp[k] = f->next[k][0];
	next0 = _mm256_loadu_si256((const __m256i *)(const void *)tmp);
	for (unsigned k = 0; k < 8; k++)
		tmp[k] = f->next[k][1];
	next1 = _mm256_loadu_si256((const __m256i *)(const void *)tmp);
	x0 = _mm256_loadu_si256((const __m256i *)(const void *)x);
	x1 = _mm256_loadu_si256((const __m256i *)(const void *)(x + 8));
	for (unsigned k = 0; k < NWC_ENTS_LANES; k++)
		tmp[k] = (int32_t)st[k];
	s0 = _mm256_loadu_si256((const __m256i *)(const void *)tmp);
	s1 = _mm256_loadu_si256((const __m256i *)(const void *)(tmp + 8));

	for (; t < seq && len - p >= 32; t++) {
		/* The step's two candidate tables, the same in every lane. */
		const int c0 = (int)c, c1 = (int)(c + per);
		const __m256i info0 = _mm256_set1_epi32((int)fl->info[c0]);
		const __m256i info1 = _mm256_set1_epi32((int)fl->info[c1]);
		const __m256i lo0 = _mm256_set1_epi32(fl->lo[c0]);
		const __m256i lo1 = _mm256_set1_epi32(fl->lo[c1]);
		__m256i y0 = x0, y1 = x1, r0 = s0, r1 = s1;
		size_t q = p;
		int32_t *v = vals + NWC_ENTS_LANES * t;
		uint8_t *u = sel ? sel + NWC_ENTS_LANES * t : NULL;

		/* Both halves, or neither: a failed half leaves the step. */
		if (!step8(fl, selv, next0, next1, &y0, &r0, c0, c1, info0,
			   info1, lo0, lo1, src, &q, v, u) ||
		    !step8(fl, selv, next0, next1, &y1, &r1, c0, c1, info0,
			   info1, lo0, lo1, src, &q, v + 8, u ? u + 8 : NULL))
			break;
		x0 = y0;
		x1 = y1;
		s0 = r0;
		s1 = r1;
		p = q;
		if (++c == per)
			c = 0;
	}
	_mm256_storeu_si256((__m256i *)(void *)x, x0);
	_mm256_storeu_si256((__m256i *)(void *)(x + 8), x1);
	_mm256_storeu_si256((__m256i *)(void *)tmp, s0);
	_mm256_storeu_si256((__m256i *)(void *)(tmp + 8), s1);
	for (unsigned k = 0; k < NWC_ENTS_LANES; k++)
		st[k] = (unsigned int)tmp[k];
	*wpos = p;
	return t;
}

#else /* no x86-64 vector kernel: nwc_cpu_has() never chooses it */

static size_t lanes_avx2(const struct nwc_ents_flat *fl NWC_UNUSED,
			 const struct nwc_ents_fsm *f NWC_UNUSED,
			 uint32_t *x NWC_UNUSED, unsigned int *st NWC_UNUSED,
			 size_t t, size_t seq NWC_UNUSED,
			 const uint8_t *src NWC_UNUSED,
			 size_t *wpos NWC_UNUSED, size_t len NWC_UNUSED,
			 int32_t *vals NWC_UNUSED, uint8_t *sel NWC_UNUSED)
{
	return t;
}

#endif

int nwc_ents_decode_fsm_lanes(const struct nwc_qdist *const *dists,
			      const struct nwc_ents_flat *flat,
			      const struct nwc_ents_fsm *f, int32_t *vals,
			      uint8_t *sel, size_t n, const uint8_t *src,
			      size_t len)
{
	const size_t seq = f->seq;
	const bool vector = flat && nwc_cpu_has(NWC_CPU_AVX2 | NWC_CPU_BMI2) &&
			    f->period <= flat->ntab / 2;
	uint32_t x[NWC_ENTS_LANES];
	size_t wpos = LANES_HDR_LEN, p = 0;
	bool two;
	int ret;

	ret = fsm_check(f, &two);
	if (ret)
		return ret;
	if (n % seq)
		return -EINVAL;
	ret = dec_start(x, NWC_ENTS_LANES, src, len);
	if (ret)
		return ret;
	while (p < n) {
		size_t w = NWC_MIN((size_t)NWC_ENTS_LANES, (n - p) / seq), r = 0;
		unsigned int st[NWC_ENTS_LANES] = { 0 };

		while (r < w * seq) {
			size_t end;

			/* whole steps on the vector kernel, one step apart */
			if (vector && w == NWC_ENTS_LANES)
				r = NWC_ENTS_LANES *
				    lanes_avx2(flat, f, x, st,
					       r / NWC_ENTS_LANES, seq, src,
					       &wpos, len, vals + p,
					       sel ? sel + p : NULL);
			end = NWC_MIN(w * seq, r + w);
			for (; r < end; r++) {
				size_t k = r % w;

				ret = lane_value(dists, f, &st[k], r / w,
						 &x[(p + r) % NWC_ENTS_LANES],
						 src, &wpos, len, &vals[p + r],
						 sel ? &sel[p + r] : NULL);
				if (ret)
					return ret;
			}
		}
		p += w * seq;
	}
	return dec_finish(x, NWC_ENTS_LANES, wpos, len);
}
