/* SPDX-License-Identifier: MIT */
/*
 * entropy_enc.c - encode side of entropy.h: the rANS encoder, table
 * serialization and bit costs.  Part of libnwcenc.a; the read path only
 * loads tables and decodes (entropy.c).
 */
#include "codec/common/base.h"

#include <math.h>

#include "codec/common/hash.h"
#include "codec/nwc/entropy.h"
#include "codec/nwc/entropy_impl.h"

static inline uint32_t zigzag(int32_t v)
{
	return (uint32_t)v << 1 ^ (uint32_t)(v >> 31);
}

/* Nibbles needed for @u: 1 .. 8. */
static inline uint32_t nibbles(uint32_t u)
{
	return u ? (35 - (uint32_t)__builtin_clz(u)) / 4 : 1;
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

size_t nwc_ents_bound(size_t n)
{
	/*
	 * Decoding a symbol of frequency f consumes at most log2(M / f) + 1
	 * bits of the state, so a value consumes at most 61 bits (escape 17,
	 * g 4, eight nibbles 5 each): under 8 bytes of words per value.
	 */
	if (n > (SIZE_MAX - LANES_HDR_LEN - 16) / 8)
		return SIZE_MAX;
	return LANES_HDR_LEN + 8 * n + 16;	/* either layout */
}

/* Encoder side: push one symbol onto *x, words going down from *w. */
static inline int enc_put(uint32_t *x, uint32_t f, uint32_t c, uint8_t **w,
			  const uint8_t *wmin)
{
	uint16_t word;

	if (nwc_rans_enc_renorm(x, f, PREC, &word)) {
		if (*w - wmin < 2)
			return -ENOBUFS;
		*w -= 2;
		nwc_put_le16(*w, word);
	}
	*x = nwc_rans_enc_step(*x, f, c, PREC);
	return 0;
}

/* Both layouts: value i on state i mod @ns, the states first. */
static ssize_t encode(const struct nwc_qdist *const *dists,
		      const uint8_t *ctx, const int32_t *vals, size_t n,
		      uint8_t *dst, size_t cap, unsigned int ns)
{
	const size_t hdr = 4 * (size_t)ns;
	uint32_t x[NWC_ENTS_LANES];
	uint8_t *w, *end;
	size_t nwords;
	int ret;

	assert(ns <= NWC_ENTS_LANES);
	if (cap < hdr)
		return -ENOBUFS;
	/* Words are produced last-first: fill dst from its end, then move. */
	end = dst + cap;
	w = end;
	for (unsigned k = 0; k < ns; k++)
		x[k] = NWC_RANS_L;
	for (size_t i = n; i-- > 0;) {
		const struct nwc_qdist *d = dists[ctx ? ctx[i] : 0];
		uint32_t *st = &x[i % ns];
		int32_t v = vals[i];
		uint32_t fc;

		if (in_range(d, v)) {
			fc = d->fc[v - d->lo];
		} else {
			uint32_t u = zigzag(v), g = nibbles(u);

			for (uint32_t j = g; j-- > 0;) {
				ret = enc_put(st, NIB_FREQ,
					      (u >> 4 * j & 15) * NIB_FREQ,
					      &w, dst + hdr);
				if (ret)
					return ret;
			}
			ret = enc_put(st, G_FREQ, (g - 1) * G_FREQ, &w,
				      dst + hdr);
			if (ret)
				return ret;
			fc = d->fc[d->n];
		}
		ret = enc_put(st, fc_freq(fc), fc_cum(fc), &w, dst + hdr);
		if (ret)
			return ret;
	}
	nwords = (size_t)(end - w) / 2;
	memmove(dst + hdr, w, 2 * nwords);
	nwc_rans_states_put(dst, x, ns);
	return (ssize_t)(hdr + 2 * nwords);
}

ssize_t nwc_ents_encode(const struct nwc_qdist *const *dists,
			const uint8_t *ctx, const int32_t *vals, size_t n,
			uint8_t *dst, size_t cap)
{
	return encode(dists, ctx, vals, n, dst, cap, NSTATES);
}

ssize_t nwc_ents_encode_lanes(const struct nwc_qdist *const *dists,
			      const uint8_t *ctx, const int32_t *vals,
			      size_t n, uint8_t *dst, size_t cap)
{
	return encode(dists, ctx, vals, n, dst, cap, NWC_ENTS_LANES);
}
