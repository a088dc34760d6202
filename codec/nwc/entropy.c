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
 * Tables for the vector kernel's lookups.  Per table t, bucket[256 t + b]
 * holds all a step needs to decode a slot of bucket b with one load: its
 * low half is fc[] of the bucket's first symbol s, its high half the
 * frequency of s + 1 (0 if none) | BUCKET_MULTI | (s + 1) << 19.  The
 * symbol starting after s is s + 1, at cum(s) + freq(s), so no split
 * offset is stored.  off[t] = offset of its fc[] in fc; lo[t].  At most
 * 4096 fc per table, so s + 1 <= 4096 fits the top 13 bits.
 */
#define BUCKET_MULTI_BIT 16
#define BUCKET_MULTI (1u << BUCKET_MULTI_BIT)
#define BUCKET_SYM_SHIFT 19
#define LANES_TABLES_MAX 256u

struct nwc_ents_flat {
	unsigned ntab;
	uint64_t *bucket;
	uint32_t *off;
	int32_t *lo;
	uint32_t *fc;
};

void nwc_ents_flat_free(struct nwc_ents_flat *flat)
{
	if (!flat)
		return;
	free(flat->bucket);
	free(flat->off);
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
	f->bucket = malloc((size_t)ntab * COARSE * sizeof(*f->bucket));
	f->off = malloc(ntab * sizeof(*f->off));
	f->lo = malloc(ntab * sizeof(*f->lo));
	f->fc = malloc(nfc * sizeof(*f->fc));
	if (!f->bucket || !f->off || !f->lo || !f->fc) {
		nwc_ents_flat_free(f);
		return -ENOMEM;
	}
	for (unsigned t = 0; t < ntab; t++) {
		const struct nwc_qdist *d = dists[t];

		for (unsigned b = 0; b < COARSE; b++) {
			uint32_t e = d->coarse[b], s = e & ~COARSE_MULTI;
			uint32_t hi = (s + 1) << BUCKET_SYM_SHIFT |
				      (e & COARSE_MULTI ? BUCKET_MULTI : 0);

			if (s < d->n)
				hi |= fc_freq(d->fc[s + 1]);
			f->bucket[t * COARSE + b] = (uint64_t)hi << 32 | d->fc[s];
		}
		f->off[t] = (uint32_t)off;
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
 * bucket[idx[j]] in each lane j, split into the low halves (*@lo) and the
 * high halves (*@hi): eight scalar loads, as nwc_rans_lookup8(), packed so
 * that one shuffle per half puts the lanes in order.
 */
__attribute__((target("avx2"), always_inline))
static inline void lookup8x64(const uint64_t *tab, __m256i idx, __m256i *lo,
			      __m256i *hi)
{
	uint64_t q[4];
	__m256 v0, v1;

	nwc_rans_idx_pairs(idx, q);
	/* lanes 0 1 4 5 and 2 3 6 7: shuffle_ps then keeps 128-bit halves */
	v0 = _mm256_castsi256_ps(_mm256_setr_epi64x(
		(long long)tab[(uint32_t)q[0]], (long long)tab[q[0] >> 32],
		(long long)tab[(uint32_t)q[2]], (long long)tab[q[2] >> 32]));
	v1 = _mm256_castsi256_ps(_mm256_setr_epi64x(
		(long long)tab[(uint32_t)q[1]], (long long)tab[q[1] >> 32],
		(long long)tab[(uint32_t)q[3]], (long long)tab[q[3] >> 32]));
	*lo = _mm256_castps_si256(_mm256_shuffle_ps(v0, v1, 0x88));
	*hi = _mm256_castps_si256(_mm256_shuffle_ps(v0, v1, 0xdd));
}

/* The low 16 bits of each lane, with no mask register to keep. */
__attribute__((target("avx2"), always_inline))
static inline __m256i low16(__m256i v)
{
	return _mm256_srli_epi32(_mm256_slli_epi32(v, 16), 16);
}

/*
 * Lanes whose slot lies in a bucket of three or more symbols: from s, the
 * first or second of them, step on while the slot lies past s's interval
 * [*@cum, *@cum + *@freq), every such lane at once (the others never
 * step: their s is the slot's).  Tables c (@u clear) or c + @period.
 * Rare (the tails).  Inlined: a call would clobber every vector
 * register, and the compiler then keeps the states in memory.
 */
__attribute__((target("avx2"), always_inline))
static inline __m256i multi8(const struct nwc_ents_flat *fl, unsigned c,
			     unsigned period, __m256i u, __m256i slot,
			     __m256i s, __m256i *cum, __m256i *freq)
{
	const __m256i base =
		_mm256_blendv_epi8(_mm256_set1_epi32((int)fl->off[c]),
				   _mm256_set1_epi32((int)fl->off[c + period]),
				   u);

	for (;;) {
		__m256i inside = _mm256_cmpgt_epi32(
			_mm256_add_epi32(*cum, *freq), slot);
		__m256i fc;

		if (_mm256_movemask_ps(_mm256_castsi256_ps(inside)) == 0xff)
			return s;
		s = _mm256_sub_epi32(s, _mm256_andnot_si256(
					       inside, _mm256_cmpeq_epi32(s, s)));
		fc = nwc_rans_lookup8(fl->fc, _mm256_add_epi32(base, s));
		*cum = _mm256_srli_epi32(fc, 16);
		*freq = low16(fc);
	}
}

/* Is bit @b set in any lane?  No mask register either. */
#define ANY_BIT(v, b)                                                        \
	(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 31 - (b)))))

/*
 * One step of eight lanes (vector *@xv of rANS states, *@sv of FSM states)
 * whose tables are candidates @c (set 0) and @c + @period (set 1); @setv
 * holds the distance between their buckets, @period * 256, in each lane.
 * Returns false, with nothing changed, when a lane meets an escape.  Pulls
 * words from *@p.  Written with few constants, to leave the registers to
 * the loop's states.
 */
__attribute__((target("avx2,bmi2,popcnt"), always_inline))
static inline bool step8(const struct nwc_ents_flat *fl, unsigned c,
			 unsigned period,
			 __m256i selv, __m256i next0, __m256i next1,
			 __m256i *xv, __m256i *sv, __m256i setv,
			 const uint8_t *src, size_t *p, int32_t *vals,
			 uint8_t *sel)
{
	__m256i u, slot, fc, hi, s, cum, freq, end, first, v, x;

	/* u = sel[st]: the table set, as a lane mask (selv holds masks) */
	u = _mm256_permutevar8x32_epi32(selv, *sv);
	slot = low16(*xv);
	lookup8x64(fl->bucket + c * COARSE,
		   _mm256_add_epi32(_mm256_and_si256(setv, u),
				    _mm256_srli_epi32(slot, 8)),
		   &fc, &hi);
	/* the bucket's first symbol, or the next where the slot lies past it */
	cum = _mm256_srli_epi32(fc, 16);
	freq = low16(fc);
	end = _mm256_add_epi32(cum, freq);
	first = _mm256_cmpgt_epi32(end, slot);
	s = _mm256_add_epi32(_mm256_srli_epi32(hi, BUCKET_SYM_SHIFT), first);
	cum = _mm256_blendv_epi8(end, cum, first);
	freq = _mm256_blendv_epi8(low16(hi), freq, first);
	/*
	 * A bucket of three or more symbols: s is the first or the second of
	 * them, at or before the slot's, so step on (every such lane at once)
	 * while the slot lies past the interval of s.  The other lanes never
	 * step: their s is the slot's.
	 */
	if (ANY_BIT(hi, BUCKET_MULTI_BIT))
		s = multi8(fl, c, period, u, slot, s, &cum, &freq);
	/* the escape is the last symbol: its interval ends at M */
	if (ANY_BIT(_mm256_add_epi32(cum, freq), PREC))
		return false;
	x = _mm256_add_epi32(_mm256_mullo_epi32(freq,
						_mm256_srli_epi32(*xv, 16)),
			     _mm256_sub_epi32(slot, cum));
	*xv = nwc_rans_pull8(x, src, p);
	v = _mm256_add_epi32(
		_mm256_blendv_epi8(_mm256_set1_epi32(fl->lo[c]),
				   _mm256_set1_epi32(fl->lo[c + period]), u),
		s);
	_mm256_storeu_si256((__m256i *)(void *)vals, v);
	if (sel) {
		uint64_t b = _pdep_u64((unsigned)_mm256_movemask_ps(
					       _mm256_castsi256_ps(u)),
				       0x0101010101010101ull);

		memcpy(sel, &b, 8);
	}
	/* the next state by the value's parity (the low bit, as a sign) */
	*sv = _mm256_castps_si256(_mm256_blendv_ps(
		_mm256_castsi256_ps(_mm256_permutevar8x32_epi32(next0, *sv)),
		_mm256_castsi256_ps(_mm256_permutevar8x32_epi32(next1, *sv)),
		_mm256_castsi256_ps(_mm256_slli_epi32(v, 31))));
	return true;
}

/*
 * Values @r, @r + 1, ... of a whole group in stream order (@r a step's
 * first), its sixteen lanes as two vectors of eight, while 32 bytes of
 * words remain and no lane meets an escape.  Each half commits on its own,
 * so a half that meets one is left to the scalar path, which resumes at
 * that half as the stream's lane order requires.  Values and table sets
 * are stored in stream order.  Returns the next value's position; @x and
 * @st hold the lanes' states.
 */
__attribute__((target("avx2,bmi2,popcnt")))
static size_t lanes_avx2(const struct nwc_ents_flat *fl,
			 const struct nwc_ents_fsm *f, uint32_t *x,
			 unsigned int *st, size_t r, size_t seq,
			 const uint8_t *src, size_t *wpos, size_t len,
			 int32_t *vals, uint8_t *sel)
{
	const uint32_t per = f->period;
	const __m256i setv = _mm256_set1_epi32((int)(per * COARSE));
	__m256i selv, next0, next1, x0, x1, s0, s1;
	size_t p = *wpos, t = r / NWC_ENTS_LANES;
	uint32_t c = (uint32_t)(t % per);
	int32_t tmp[NWC_ENTS_LANES];

	assert(r % NWC_ENTS_LANES == 0);
	for (unsigned k = 0; k < 8; k++)
		tmp[k] = f->sel[k] ? -1 : 0;
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

	for (; t < seq && len - p >= 32; t++, r += NWC_ENTS_LANES) {
		if (!step8(fl, c, per, selv, next0, next1, &x0, &s0, setv, src,
			   &p, vals + r, sel ? sel + r : NULL))
			break;
		if (!step8(fl, c, per, selv, next0, next1, &x1, &s1, setv, src,
			   &p, vals + r + 8, sel ? sel + r + 8 : NULL)) {
			r += 8;
			break;
		}
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
	return r;
}

#else /* no x86-64 vector kernel: nwc_cpu_has() never chooses it */

static size_t lanes_avx2(const struct nwc_ents_flat *fl NWC_UNUSED,
			 const struct nwc_ents_fsm *f NWC_UNUSED,
			 uint32_t *x NWC_UNUSED, unsigned int *st NWC_UNUSED,
			 size_t r, size_t seq NWC_UNUSED,
			 const uint8_t *src NWC_UNUSED,
			 size_t *wpos NWC_UNUSED, size_t len NWC_UNUSED,
			 int32_t *vals NWC_UNUSED, uint8_t *sel NWC_UNUSED)
{
	return r;
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

			/*
			 * The vector kernel from a step's start; the scalar
			 * loop to the next step's, from where it stopped.
			 */
			if (vector && w == NWC_ENTS_LANES)
				r = lanes_avx2(flat, f, x, st, r, seq, src,
					       &wpos, len, vals + p,
					       sel ? sel + p : NULL);
			end = NWC_MIN(w * seq, (r / w + 1) * w);
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
