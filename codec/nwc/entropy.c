/* SPDX-License-Identifier: MIT */
/*
 * entropy.c - 16-bit integer probability tables with an escape, and an
 * interleaved rANS coder that picks one table per value.
 *
 * A state x lives in [L, L << 16) with L = M = 2^16.  Coding a symbol of
 * frequency f and cumulative c maps x to (x / f) * M + c + x % f after
 * pushing one 16-bit word if x >= f << 16; decoding inverts it and pulls a
 * word whenever x drops below L.  The encoder runs backwards over values and
 * output so the decoder reads forwards.  An escaped value costs the escape
 * symbol, its nibble count g (uniform over 1..8) and g nibbles (uniform,
 * lowest first), all on the value's own state.
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>

#include "codec/nwc/entropy.h"
#include "codec/common/hash.h"

#define PREC NWC_QDIST_PREC
#define M (1u << PREC)
#define RANS_L (1u << 16)
#define NSTATES 4u
#define HDR_LEN (4 * NSTATES)

#define QD_MAGIC "NWQD"
#define QD_VERSION 1u
#define QD_FIXED 16u		/* magic .. n */

/* Escape payload: g in 1..8 is one symbol of frequency M / 8, each nibble
 * one of frequency M / 16. */
#define G_FREQ (M / 8)
#define NIB_FREQ (M / 16)

/*
 * Immutable after construction.  fc[] packs each symbol's frequency (low
 * half) and cumulative frequency (high half).  Both fit 16 bits because
 * n >= 1 gives at least two symbols of frequency >= 1.  The decoder
 * finds a slot's symbol from a coarse table: for each bucket of 256 slots
 * the symbol at its start and the offset where the next symbol starts.
 * One compare then picks between the two, with no branch, in every bucket
 * that holds at most two symbols; the rest, marked COARSE_MULTI, lie in
 * the rare tails and step forward through fc[].  768 bytes per table
 * instead of a 128 KiB slot table, so the 32 tables of a trellis-coded
 * tensor stay in L1 (cachegrind: L1 read misses of the trellis decoder
 * 0.02 per value).
 */
#define COARSE_SHIFT 8
#define COARSE (M >> COARSE_SHIFT)
#define COARSE_MASK (M / COARSE - 1)
#define COARSE_MULTI 0x8000u	/* in coarse[]: three or more symbols */

struct nwc_qdist {
	int32_t lo;
	uint32_t n;		/* direct symbols; symbol n is the escape */
	uint16_t coarse[COARSE];	/* first symbol | COARSE_MULTI */
	uint8_t split[COARSE];	/* the next symbol's offset - 1, or 255 */
	uint32_t fc[];		/* n + 1 entries */
};

static inline uint32_t fc_freq(uint32_t fc)
{
	return fc & 0xffff;
}

static inline uint32_t fc_cum(uint32_t fc)
{
	return fc >> 16;
}

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

static inline uint32_t zigzag(int32_t v)
{
	return (uint32_t)v << 1 ^ (uint32_t)(v >> 31);
}

static inline int32_t unzigzag(uint32_t u)
{
	return (int32_t)(u >> 1 ^ (0u - (u & 1)));
}

/* Nibbles needed for @u: 1 .. 8. */
static inline uint32_t nibbles(uint32_t u)
{
	return u ? (35 - (uint32_t)__builtin_clz(u)) / 4 : 1;
}

static inline bool in_range(const struct nwc_qdist *d, int32_t v)
{
	int64_t off = (int64_t)v - d->lo;

	return off >= 0 && off < d->n;
}

double nwc_qdist_cost(const struct nwc_qdist *d, int32_t v)
{
	if (in_range(d, v))
		return PREC - log2(fc_freq(d->fc[v - d->lo]));
	return PREC - log2(fc_freq(d->fc[d->n])) + 3 + 4.0 * nibbles(zigzag(v));
}

size_t nwc_qdist_saved_size(const struct nwc_qdist *d)
{
	return QD_FIXED + 2 * ((size_t)d->n + 1) + 8;
}

void nwc_qdist_save(const struct nwc_qdist *d, uint8_t *buf)
{
	size_t pos = QD_FIXED;

	memcpy(buf, QD_MAGIC, 4);
	nwc_put_le16(buf + 4, QD_VERSION);
	nwc_put_le16(buf + 6, 0);
	nwc_put_le32(buf + 8, (uint32_t)d->lo);
	nwc_put_le32(buf + 12, d->n);
	for (uint32_t s = 0; s <= d->n; s++, pos += 2)
		nwc_put_le16(buf + pos, (uint16_t)fc_freq(d->fc[s]));
	nwc_put_le64(buf + pos, nwc_hash64(buf, pos));
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

size_t nwc_ents_bound(size_t n)
{
	/*
	 * Decoding a symbol of frequency f consumes at most log2(M / f) + 1
	 * bits of the state, so a value consumes at most 61 bits (escape 17,
	 * g 4, eight nibbles 5 each): under 8 bytes of words per value.
	 */
	if (n > (SIZE_MAX - HDR_LEN - 16) / 8)
		return SIZE_MAX;
	return HDR_LEN + 8 * n + 16;
}

/* Encoder side: push one symbol onto *x, words going down from *w. */
static inline int enc_put(uint32_t *x, uint32_t f, uint32_t c, uint8_t **w,
			  const uint8_t *wmin)
{
	if (*x >= (uint64_t)f << 16) {
		if (*w - wmin < 2)
			return -ENOBUFS;
		*w -= 2;
		nwc_put_le16(*w, (uint16_t)*x);
		*x >>= 16;
	}
	*x = ((*x / f) << PREC) + *x % f + c;
	return 0;
}

ssize_t nwc_ents_encode(const struct nwc_qdist *const *dists,
			const uint8_t *ctx, const int32_t *vals, size_t n,
			uint8_t *dst, size_t cap)
{
	uint32_t x[NSTATES];
	uint8_t *w, *end;
	size_t nwords;
	int ret;

	if (cap < HDR_LEN)
		return -ENOBUFS;
	/* Words are produced last-first: fill dst from its end, then move. */
	end = dst + cap;
	w = end;
	for (unsigned k = 0; k < NSTATES; k++)
		x[k] = RANS_L;
	for (size_t i = n; i-- > 0;) {
		const struct nwc_qdist *d = dists[ctx ? ctx[i] : 0];
		uint32_t *st = &x[i % NSTATES];
		int32_t v = vals[i];
		uint32_t fc;

		if (in_range(d, v)) {
			fc = d->fc[v - d->lo];
		} else {
			uint32_t u = zigzag(v), g = nibbles(u);

			for (uint32_t j = g; j-- > 0;) {
				ret = enc_put(st, NIB_FREQ,
					      (u >> 4 * j & 15) * NIB_FREQ,
					      &w, dst + HDR_LEN);
				if (ret)
					return ret;
			}
			ret = enc_put(st, G_FREQ, (g - 1) * G_FREQ, &w,
				      dst + HDR_LEN);
			if (ret)
				return ret;
			fc = d->fc[d->n];
		}
		ret = enc_put(st, fc_freq(fc), fc_cum(fc), &w, dst + HDR_LEN);
		if (ret)
			return ret;
	}
	nwords = (size_t)(end - w) / 2;
	memmove(dst + HDR_LEN, w, 2 * nwords);
	for (unsigned k = 0; k < NSTATES; k++)
		nwc_put_le32(dst + 4 * k, x[k]);
	return (ssize_t)(HDR_LEN + 2 * nwords);
}

/* Decoder side: one symbol step on *x with a checked word refill. */
static inline int dec_renorm(uint32_t *x, const uint8_t *src, size_t *wpos,
			     size_t wend)
{
	if (*x < RANS_L) {
		if (wend - *wpos < 2)
			return -NWC_ECORRUPT;
		*x = *x << 16 | nwc_get_le16(src + *wpos);
		*wpos += 2;
	}
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
	*x = G_FREQ * (*x >> PREC) + slot % G_FREQ;
	ret = dec_renorm(x, src, wpos, wend);
	if (ret)
		return ret;
	for (uint32_t j = 0; j < g; j++) {
		slot = *x & (M - 1);
		nib = slot / NIB_FREQ;
		u |= nib << 4 * j;
		*x = NIB_FREQ * (*x >> PREC) + slot % NIB_FREQ;
		ret = dec_renorm(x, src, wpos, wend);
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

	*x = fc_freq(fc) * (*x >> PREC) + slot - fc_cum(fc);
	ret = dec_renorm(x, src, wpos, wend);
	if (ret)
		return ret;
	if (s == d->n)
		return dec_escape(d, x, src, wpos, wend, out);
	*out = d->lo + (int32_t)s;
	return 0;
}

/* The four initial states. */
static int dec_start(uint32_t *x, const uint8_t *src, size_t len)
{
	if (len < HDR_LEN || (len - HDR_LEN) % 2)
		return -NWC_ECORRUPT;
	for (unsigned k = 0; k < NSTATES; k++) {
		x[k] = nwc_get_le32(src + 4 * k);
		if (x[k] < RANS_L)
			return -NWC_ECORRUPT;
	}
	return 0;
}

/* The encoder started every state at L and used every word. */
static int dec_finish(const uint32_t *x, size_t wpos, size_t len)
{
	if (wpos != len)
		return -NWC_ECORRUPT;
	for (unsigned k = 0; k < NSTATES; k++)
		if (x[k] != RANS_L)
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
	uint32_t fc = d->fc[s], w = nwc_get_le16(src + *wpos), pull;

	x = fc_freq(fc) * (x >> PREC) + (x & (M - 1)) - fc_cum(fc);
	/*
	 * No branch: whether a word is pulled is a coin toss to the CPU.
	 * With the compare of slot_sym(), this took the trellis decoder
	 * from 0.40 to 0.06 mispredicted branches per value (cachegrind)
	 * and from 84-105 to 103-126 MB/s.  Shift and mask, not a select,
	 * which GCC 12 compiles to a branch here (0.31 per value again).
	 */
	pull = x < RANS_L;
	*wpos += 2 * pull;
	return (x << (16 * pull)) | (w & -pull);
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

	ret = dec_start(x, src, len);
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
	return dec_finish(x, wpos, len);
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
	ret = dec_start(x, src, len);
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
	return dec_finish(x, wpos, len);
}
