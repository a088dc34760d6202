/* SPDX-License-Identifier: MIT */
/*
 * rans.c - order-0 rANS over bytes on the shared core (ranscore.h): a
 * header of byte frequencies, then the core's states and words.
 */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/common/cpu.h"
#include "codec/rans.h"
#include "codec/ranscore.h"
#include "codec/ranswide.h"

#define NSYM 256u
#define NSTATES NWC_RANS_WAYS
#define HDR_MAX (1 + 32 + NSYM * 3)	/* before the states */

/* Largest stream of @len symbols on @n states: each symbol costs at most
 * P <= 15 bits; round up generously. */
static size_t bound(size_t len, unsigned n)
{
	return HDR_MAX + 4 * n + 2 * (len + n) + 16;
}

size_t nwc_rans8_bound(size_t len)
{
	return bound(len, NSTATES);
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

/* Write the header: precision, presence bitmap, frequencies. */
static size_t put_header(const uint32_t *freq, unsigned prec, uint8_t *dst)
{
	size_t pos = 33;

	dst[0] = (uint8_t)prec;
	memset(dst + 1, 0, 32);
	for (unsigned s = 0; s < NSYM; s++) {
		if (!freq[s])
			continue;
		dst[1 + s / 8] |= (uint8_t)(1u << (s % 8));
		pos += put_varint(dst + pos, freq[s]);
	}
	return pos;
}

/*
 * Read the header and the @n states after it: *@pos is then where the words
 * start.  Frequencies must be present exactly where the bitmap says and sum
 * to 2^P.
 */
static int get_header(const uint8_t *src, size_t srclen, unsigned n,
		      unsigned *prec, uint32_t *freq, uint32_t *x, size_t *pos)
{
	uint32_t m, fmax, c = 0;
	size_t p = 33;

	if (srclen < 33 + 4 * n)
		return -NWC_ECORRUPT;
	*prec = src[0];
	if (*prec < NWC_RANS_PREC_MIN || *prec > NWC_RANS_PREC_MAX)
		return -NWC_ECORRUPT;
	m = 1u << *prec;
	/* The wide layout's table entries hold frequencies below 2^12. */
	fmax = n == NWC_RANS_WIDE ? m - 1 : m;
	for (unsigned s = 0; s < NSYM; s++) {
		freq[s] = 0;
		if (!(src[1 + s / 8] & (1u << (s % 8))))
			continue;
		if (get_varint(src, srclen, &p, &freq[s]) || !freq[s] ||
		    freq[s] > m - c || freq[s] > fmax)
			return -NWC_ECORRUPT;
		c += freq[s];
	}
	if (c != m || srclen - p < 4 * n)
		return -NWC_ECORRUPT;
	if (nwc_rans_states_get(src + p, x, n))
		return -NWC_ECORRUPT;
	p += 4 * n;
	if ((srclen - p) % 2)
		return -NWC_ECORRUPT;
	*pos = p;
	return 0;
}

/* The encoder of both layouts: symbol i goes to state i mod @n. */
static ssize_t encode(const uint8_t *src, size_t len, uint8_t *dst,
		      size_t cap, unsigned n)
{
	const unsigned prec = NWC_RANS_PREC;
	uint64_t count[NSYM] = { 0 };
	uint32_t freq[NSYM], cum[NSYM];
	uint32_t x[NWC_RANS_WIDE];
	uint16_t *words, *w;
	size_t pos, nwords;
	uint32_t c = 0;

	assert(n <= NWC_RANS_WIDE);
	if (!len)
		return -EINVAL;
	if (cap < bound(len, n))
		return -ENOBUFS;
	for (size_t i = 0; i < len; i++)
		count[src[i]]++;
	normalize(count, len, prec, freq);
	for (unsigned s = 0; s < NSYM; s++) {
		cum[s] = c;
		c += freq[s];
	}
	pos = put_header(freq, prec, dst);

	/* Words are produced last-first: fill a scratch area from its end. */
	words = malloc((len + n) * sizeof(*words));
	if (!words)
		return -ENOMEM;
	w = words + len + n;
	for (unsigned k = 0; k < n; k++)
		x[k] = NWC_RANS_L;
	for (size_t i = len; i-- > 0;) {
		uint32_t *st = &x[i % n];
		uint32_t f = freq[src[i]];
		uint16_t word;

		if (nwc_rans_enc_renorm(st, f, prec, &word))
			*--w = word;
		*st = nwc_rans_enc_step(*st, f, cum[src[i]], prec);
	}
	nwords = (size_t)(words + len + n - w);
	nwc_rans_states_put(dst + pos, x, n);
	pos += 4 * n;
	for (size_t i = 0; i < nwords; i++)
		nwc_put_le16(dst + pos + 2 * i, w[i]);
	pos += 2 * nwords;
	free(words);
	return (ssize_t)pos;
}

ssize_t nwc_rans8_encode(const uint8_t *src, size_t len, uint8_t *dst,
			 size_t cap)
{
	return encode(src, len, dst, cap, NSTATES);
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
	uint32_t freq[NSYM];
	uint32_t x[NSTATES], m, c = 0;
	struct dslot slots[1u << NWC_RANS_PREC_MAX];
	uint8_t sym[1u << NWC_RANS_PREC_MAX];
	size_t wpos, wend = srclen, i = 0;
	unsigned prec;

	if (get_header(src, srclen, NSTATES, &prec, freq, x, &wpos))
		return -NWC_ECORRUPT;
	m = 1u << prec;
	for (unsigned s = 0; s < NSYM; s++) {
		for (uint32_t k = 0; k < freq[s]; k++) {
			slots[c + k].freq = (uint16_t)freq[s];
			slots[c + k].bias = (uint16_t)k;
			sym[c + k] = (uint8_t)s;
		}
		c += freq[s];
	}

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
		if (nwc_rans_dec_refill(st, src, &wpos, wend))
			return -NWC_ECORRUPT;
	}
#undef DECODE_ONE
	/* The encoder started every state at L and used every word. */
	if (wpos != wend || !nwc_rans_states_done(x, NSTATES))
		return -NWC_ECORRUPT;
	return 0;
}

/*
 * The wide layout.  One u32 per slot so that one load fetches a
 * lane's whole entry (ranswide.h): the state update needs frequency and
 * bias, the output the symbol.
 */
size_t nwc_rans8w_bound(size_t len)
{
	return bound(len, NWC_RANS_WIDE);
}

ssize_t nwc_rans8w_encode(const uint8_t *src, size_t len, uint8_t *dst,
			  size_t cap)
{
	size_t i = 1;

	while (i < len && src[i] == src[0])
		i++;
	if (len && i == len)
		return -ENOSPC;	/* one symbol: frequency 2^P */
	return encode(src, len, dst, cap, NWC_RANS_WIDE);
}

/* Whole groups of 32 symbols, while 64 bytes of words remain, one state
 * after the other: the order the vector kernels pull words in. */
static size_t wide_scalar(uint32_t *x, const uint32_t *tab, unsigned prec,
			  const uint8_t *src, size_t *wpos, size_t wend,
			  uint8_t *dst, size_t len)
{
	const uint32_t mask = (1u << prec) - 1;
	size_t i = 0, p = *wpos;

	while (len - i >= NWC_RANS_WIDE && wend - p >= NWC_RANSW_GROUP_WORDS) {
		for (unsigned k = 0; k < NWC_RANS_WIDE; k++) {
			uint32_t e = tab[x[k] & mask];

			dst[i + k] = NWC_RANSW_SYM(e);
			x[k] = nwc_rans_dec_step(x[k], NWC_RANSW_FREQ(e),
						 NWC_RANSW_BIAS(e), prec);
			x[k] = nwc_rans_dec_pull(x[k], src + p, &p);
		}
		i += NWC_RANS_WIDE;
	}
	*wpos = p;
	return i;
}

bool nwc_rans8w_kernel_ok(enum nwc_rans_kernel k)
{
	switch (k) {
	case NWC_RANS_KERNEL_AUTO:
	case NWC_RANS_KERNEL_SCALAR:
		return true;
	case NWC_RANS_KERNEL_AVX2:
		return nwc_cpu_has(NWC_CPU_AVX2);
	}
	return false;
}

/* The kernel that @k stands for: AUTO, the fastest this CPU runs. */
static enum nwc_rans_kernel resolve(enum nwc_rans_kernel k)
{
	if (k != NWC_RANS_KERNEL_AUTO)
		return k;
	return nwc_cpu_has(NWC_CPU_AVX2) ? NWC_RANS_KERNEL_AVX2
					 : NWC_RANS_KERNEL_SCALAR;
}

const char *nwc_rans8w_kernel_name(enum nwc_rans_kernel k)
{
	return resolve(k) == NWC_RANS_KERNEL_AVX2 ? "avx2" : "scalar";
}

int nwc_rans8w_decode_with(enum nwc_rans_kernel kernel, const uint8_t *src,
			   size_t srclen, uint8_t *dst, size_t len)
{
	uint32_t freq[NSYM], x[NWC_RANS_WIDE];
	uint32_t tab[1u << NWC_RANS_PREC_MAX];
	size_t wpos, i, c = 0;
	unsigned prec;

	if (!nwc_rans8w_kernel_ok(kernel))
		return -ENOTSUP;
	kernel = resolve(kernel);
	if (get_header(src, srclen, NWC_RANS_WIDE, &prec, freq, x, &wpos))
		return -NWC_ECORRUPT;
	for (unsigned s = 0; s < NSYM; s++) {
		for (uint32_t k = 0; k < freq[s]; k++)
			tab[c + k] = NWC_RANSW_ENTRY(s, freq[s], k);
		c += freq[s];
	}

	if (kernel == NWC_RANS_KERNEL_AVX2)
		i = nwc_ransw_avx2(x, tab, prec, src, &wpos, srclen, dst, len);
	else
		i = wide_scalar(x, tab, prec, src, &wpos, srclen, dst, len);
	/* The rest, each word checked. */
	for (; i < len; i++) {
		uint32_t *st = &x[i % NWC_RANS_WIDE];
		uint32_t e = tab[*st & ((1u << prec) - 1)];

		dst[i] = NWC_RANSW_SYM(e);
		*st = nwc_rans_dec_step(*st, NWC_RANSW_FREQ(e),
					NWC_RANSW_BIAS(e), prec);
		if (nwc_rans_dec_refill(st, src, &wpos, srclen))
			return -NWC_ECORRUPT;
	}
	if (wpos != srclen || !nwc_rans_states_done(x, NWC_RANS_WIDE))
		return -NWC_ECORRUPT;
	return 0;
}

int nwc_rans8w_decode(const uint8_t *src, size_t srclen, uint8_t *dst,
		      size_t len)
{
	return nwc_rans8w_decode_with(NWC_RANS_KERNEL_AUTO, src, srclen, dst,
				      len);
}
