/* SPDX-License-Identifier: MIT */
/*
 * rans.c - order-0 rANS over bytes on the shared core (ranscore.h): a
 * header of byte frequencies, then the core's states and words.
 */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/rans.h"
#include "codec/ranscore.h"

#define NSYM 256u
#define NSTATES NWC_RANS_WAYS
#define HDR_MAX (2 + 32 + NSYM * 3 + NWC_RANS_STATES_LEN)

size_t nwc_rans8_bound(size_t len)
{
	/* Each symbol costs at most P <= 15 bits; round up generously. */
	return HDR_MAX + 2 * (len + NSTATES) + 16;
}

/*
 * Scale @count (summing to @n) to frequencies summing to 2^@prec, keeping
 * every present symbol at >= 1.  Deterministic: ties break by symbol.
 */
static void normalize(const uint64_t *count, uint64_t n, unsigned prec,
		      uint32_t *freq)
{
	const uint32_t m = 1u << prec;
	int64_t sum = 0;

	for (unsigned s = 0; s < NSYM; s++) {
		freq[s] = 0;
		if (!count[s])
			continue;
		freq[s] = (uint32_t)((count[s] * m + n / 2) / n);
		if (!freq[s])
			freq[s] = 1;
		sum += freq[s];
	}
	/* Take from (or give to) the largest frequencies until the sum fits. */
	while (sum != m) {
		unsigned best = 0;

		for (unsigned s = 1; s < NSYM; s++)
			if (freq[s] > freq[best])
				best = s;
		if (sum > m) {
			uint32_t d = (uint32_t)NWC_MIN((int64_t)freq[best] - 1,
						       sum - (int64_t)m);

			if (!d) {	/* largest is 1: cannot happen, m >= 256 */
				break;
			}
			/* Spread large corrections over several symbols. */
			d = NWC_MAX(1u, NWC_MIN(d, freq[best] / 8 + 1));
			freq[best] -= d;
			sum -= d;
		} else {
			freq[best] += (uint32_t)(m - sum);
			sum = m;
		}
	}
}

static size_t put_varint(uint8_t *p, uint32_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static int get_varint(const uint8_t *p, size_t len, size_t *pos, uint32_t *v)
{
	uint32_t r = 0;

	for (unsigned shift = 0; shift < 21; shift += 7) {
		uint8_t b;

		if (*pos >= len)
			return -NWC_ECORRUPT;
		b = p[(*pos)++];
		r |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -NWC_ECORRUPT;
}

ssize_t nwc_rans8_encode(const uint8_t *src, size_t len, uint8_t *dst,
			 size_t cap)
{
	const unsigned prec = NWC_RANS_PREC;
	uint64_t count[NSYM] = { 0 };
	uint32_t freq[NSYM], cum[NSYM];
	uint32_t x[NSTATES];
	uint16_t *words, *w;
	size_t pos, nwords;
	uint32_t c = 0;

	if (!len)
		return -EINVAL;
	if (cap < nwc_rans8_bound(len))
		return -ENOBUFS;
	for (size_t i = 0; i < len; i++)
		count[src[i]]++;
	normalize(count, len, prec, freq);
	for (unsigned s = 0; s < NSYM; s++) {
		cum[s] = c;
		c += freq[s];
	}

	/* Header: precision, presence bitmap, frequencies. */
	dst[0] = (uint8_t)prec;
	memset(dst + 1, 0, 32);
	pos = 33;
	for (unsigned s = 0; s < NSYM; s++) {
		if (!freq[s])
			continue;
		dst[1 + s / 8] |= (uint8_t)(1u << (s % 8));
		pos += put_varint(dst + pos, freq[s]);
	}

	/* Words are produced last-first: fill a scratch area from its end. */
	words = malloc((len + NSTATES) * sizeof(*words));
	if (!words)
		return -ENOMEM;
	w = words + len + NSTATES;
	for (unsigned k = 0; k < NSTATES; k++)
		x[k] = NWC_RANS_L;
	for (size_t i = len; i-- > 0;) {
		uint32_t *st = &x[i % NSTATES];
		uint32_t f = freq[src[i]];
		uint16_t word;

		if (nwc_rans_enc_renorm(st, f, prec, &word))
			*--w = word;
		*st = nwc_rans_enc_step(*st, f, cum[src[i]], prec);
	}
	nwords = (size_t)(words + len + NSTATES - w);
	nwc_rans_states_put(dst + pos, x);
	pos += NWC_RANS_STATES_LEN;
	for (size_t i = 0; i < nwords; i++)
		nwc_put_le16(dst + pos + 2 * i, w[i]);
	pos += 2 * nwords;
	free(words);
	return (ssize_t)pos;
}

/*
 * Decode tables, one entry per slot of [0, 2^P): frequency and offset in
 * one load for the state update (the dependency chain), the symbol apart.
 */
struct dslot {
	uint16_t freq;		/* frequency of the slot's symbol */
	uint16_t bias;		/* slot - cumulative frequency of the symbol */
};

int nwc_rans8_decode(const uint8_t *src, size_t srclen, uint8_t *dst,
		     size_t len)
{
	uint32_t freq[NSYM] = { 0 };
	uint32_t x[NSTATES], m, c = 0;
	struct dslot slots[1u << NWC_RANS_PREC_MAX];
	uint8_t sym[1u << NWC_RANS_PREC_MAX];
	size_t pos = 33, wpos, wend, i = 0;
	unsigned prec;

	if (srclen < 33 + NWC_RANS_STATES_LEN)
		return -NWC_ECORRUPT;
	prec = src[0];
	if (prec < NWC_RANS_PREC_MIN || prec > NWC_RANS_PREC_MAX)
		return -NWC_ECORRUPT;
	m = 1u << prec;
	for (unsigned s = 0; s < NSYM; s++) {
		if (!(src[1 + s / 8] & (1u << (s % 8))))
			continue;
		if (get_varint(src, srclen, &pos, &freq[s]) || !freq[s] ||
		    freq[s] > m - c)
			return -NWC_ECORRUPT;
		c += freq[s];
	}
	if (c != m || srclen - pos < NWC_RANS_STATES_LEN)
		return -NWC_ECORRUPT;
	c = 0;
	for (unsigned s = 0; s < NSYM; s++) {
		for (uint32_t k = 0; k < freq[s]; k++) {
			slots[c + k].freq = (uint16_t)freq[s];
			slots[c + k].bias = (uint16_t)k;
			sym[c + k] = (uint8_t)s;
		}
		c += freq[s];
	}
	if (nwc_rans_states_get(src + pos, x))
		return -NWC_ECORRUPT;
	wpos = pos + NWC_RANS_STATES_LEN;
	wend = srclen;
	if ((wend - wpos) % 2)
		return -NWC_ECORRUPT;

#define DECODE_ONE(k, out) do {						\
		uint32_t s_ = x[k] & (m - 1);				\
		const struct dslot d_ = slots[s_];			\
		(out) = sym[s_];					\
		x[k] = nwc_rans_dec_step(x[k], d_.freq, d_.bias, prec);	\
		x[k] = nwc_rans_dec_pull(x[k], src + wpos, &wpos);	\
	} while (0)

	/* Fast path: four symbols read at most four words, checked once. */
	while (len - i >= NSTATES && wend - wpos >= 2 * NSTATES) {
		DECODE_ONE(0, dst[i]);
		DECODE_ONE(1, dst[i + 1]);
		DECODE_ONE(2, dst[i + 2]);
		DECODE_ONE(3, dst[i + 3]);
		i += NSTATES;
	}
	for (; i < len; i++) {
		uint32_t *st = &x[i % NSTATES];
		uint32_t slot = *st & (m - 1);

		dst[i] = sym[slot];
		*st = nwc_rans_dec_step(*st, slots[slot].freq,
					slots[slot].bias, prec);
		if (nwc_rans_dec_low(*st)) {
			if (wend - wpos < 2)
				return -NWC_ECORRUPT;
			*st = *st << 16 | nwc_get_le16(src + wpos);
			wpos += 2;
		}
	}
#undef DECODE_ONE
	/* The encoder started every state at L and used every word. */
	if (wpos != wend || !nwc_rans_states_done(x))
		return -NWC_ECORRUPT;
	return 0;
}
