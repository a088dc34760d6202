/* SPDX-License-Identifier: MIT */
/*
 * ranscore.h - the rANS core both entropy coders are built on: the byte
 * planes' order-0 coder (rans.c) and the neural codec's latent coder
 * (codec/nwc/entropy.c).  Their alphabets, tables and stream headers
 * differ; the state machine below is theirs in common.
 *
 * A state x lives in [L, L << 16) with L = 2^16.  Coding a symbol of
 * frequency f and cumulative frequency c out of M = 2^P maps x to
 * (x / f) * M + c + x % f, after pushing one 16-bit word when x >= f <<
 * (32 - P), so x stays in range; decoding inverts it and pulls a word
 * when x falls below L.  Several states take symbols in turn (symbol i
 * goes to state i mod n; NWC_RANS_WAYS = 4 unless a stream says otherwise)
 * so a decoder's dependency chains overlap.  The
 * encoder runs backwards over the symbols and its words, so the decoder
 * reads forwards.  A stream carries the final encoder states (u32 LE each)
 * and then the words (u16 LE); it is whole when decoding leaves every
 * state back at L with every word read.  P is at most 16.
 *
 *	x = NWC_RANS_L;			// encoder, per state
 *	if (nwc_rans_enc_renorm(&x, f, P, &word)) push(word);
 *	x = nwc_rans_enc_step(x, f, c, P);
 *	...
 *	x = nwc_rans_dec_step(x, f, slot - c, P);	// decoder
 *	x = nwc_rans_dec_pull(x, src + wpos, &wpos);	// or _refill()
 *
 * Integer arithmetic only: a stream decodes the same on every machine.
 * Pure inline functions; thread-safe.
 */
#ifndef NWC_RANSCORE_H
#define NWC_RANSCORE_H

#include "codec/common/base.h"

#define NWC_RANS_L (1u << 16)	/* lower bound of a state */
#define NWC_RANS_WAYS 4u	/* interleaved states */
#define NWC_RANS_STATES_LEN (4u * NWC_RANS_WAYS)	/* bytes of the states */

/* Encoder: make room for a symbol of frequency @f; true when *@word, the
 * low half of the state, must be pushed. */
static inline bool nwc_rans_enc_renorm(uint32_t *x, uint32_t f, unsigned prec,
				       uint16_t *word)
{
	/* 2^32 when f = M, so a state never overflows; one word suffices. */
	if (*x < (uint64_t)f << (32 - prec))
		return false;
	*word = (uint16_t)*x;
	*x >>= 16;
	return true;
}

/* Encoder: code the symbol (@f, @c) onto a renormalized state. */
static inline uint32_t nwc_rans_enc_step(uint32_t x, uint32_t f, uint32_t c,
					 unsigned prec)
{
	return ((x / f) << prec) + x % f + c;
}

/* Decoder: take the symbol of frequency @f whose slot is @bias past its
 * cumulative frequency (bias = (x mod M) - c). */
static inline uint32_t nwc_rans_dec_step(uint32_t x, uint32_t f, uint32_t bias,
					 unsigned prec)
{
	return f * (x >> prec) + bias;
}

/* Decoder: true when the state must pull a word. */
static inline bool nwc_rans_dec_low(uint32_t x)
{
	return x < NWC_RANS_L;
}

/*
 * Decoder: pull the word at @w into a state below L, without a branch
 * (whether a word is pulled is a coin toss to the CPU); *@wpos advances by
 * 2 when it is pulled.  @w must be readable even when nothing is pulled.
 * Shift and mask rather than a select, which GCC 12 compiles to a branch.
 */
static inline uint32_t nwc_rans_dec_pull(uint32_t x, const uint8_t *w,
					 size_t *wpos)
{
	uint32_t pull = nwc_rans_dec_low(x);

	*wpos += 2 * pull;
	return (x << (16 * pull)) | (nwc_get_le16(w) & -pull);
}

/*
 * Decoder: pull the word at @src + *@wpos into a state below L, reading
 * only before @wend; -NWC_ECORRUPT when the stream has no word left.  For
 * the checked paths (the unchecked one is nwc_rans_dec_pull()).
 */
static inline int nwc_rans_dec_refill(uint32_t *x, const uint8_t *src,
				      size_t *wpos, size_t wend)
{
	if (!nwc_rans_dec_low(*x))
		return 0;
	if (wend - *wpos < 2)
		return -NWC_ECORRUPT;
	*x = *x << 16 | nwc_get_le16(src + *wpos);
	*wpos += 2;
	return 0;
}

/* Store the @n final encoder states. */
static inline void nwc_rans_states_put(uint8_t *p, const uint32_t *x,
				       unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		nwc_put_le32(p + 4 * k, x[k]);
}

/* Load a decoder's @n starting states; -NWC_ECORRUPT if one is below L. */
static inline int nwc_rans_states_get(const uint8_t *p, uint32_t *x,
				      unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		x[k] = nwc_get_le32(p + 4 * k);
		if (x[k] < NWC_RANS_L)
			return -NWC_ECORRUPT;
	}
	return 0;
}

/* Whether a decode ended where the encoder started: all @n states at L. */
static inline bool nwc_rans_states_done(const uint32_t *x, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		if (x[k] != NWC_RANS_L)
			return false;
	return true;
}

#endif /* NWC_RANSCORE_H */
