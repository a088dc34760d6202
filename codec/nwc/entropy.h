/* SPDX-License-Identifier: MIT */
/*
 * entropy.h - entropy coding of quantized integers: integer probability
 * tables at 16-bit precision with an escape for out-of-range values, and a
 * rANS coder that picks one table per value (a "context", e.g. the latent
 * channel or the importance level).
 *
 *	struct nwc_qdist *d;
 *	nwc_qdist_from_counts(-8, 17, counts, &d);	// values -8..8 + escape
 *	n = nwc_ents_encode(&d, NULL, vals, len, buf, cap);
 *	ret = nwc_ents_decode(&d, NULL, out, len, buf, n);
 *	nwc_qdist_free(d);
 *
 * A table covers the values lo .. lo + n - 1 directly (symbols 0 .. n-1)
 * and has one more symbol, n, the escape.  A value outside the range is
 * coded as the escape followed by the value itself in 4-bit groups, each a
 * uniform symbol of the same rANS stream (no separate bit stream), so any
 * int32 can be coded with any table.  Frequencies sum to 2^16 and every
 * symbol, the escape included, has frequency >= 1, so every value is
 * codable.  Integer arithmetic only: streams are identical on every
 * machine, which is what lets a decoder on another machine stay in sync.
 *
 * Stream layout: u32[4] final states, then u16 renormalization words in
 * decoding order; value i uses state i mod 4.  A valid stream ends with
 * every state at its initial value and every word consumed.
 *
 * Serialized table (nwc_qdist_save/load), little-endian:
 *	u32 magic "NWQD", u16 version 1, u16 reserved 0,
 *	i32 lo, u32 n (1 .. NWC_QDIST_MAX_SYMS - 1),
 *	u16 freq[n + 1]  (the last is the escape), u64 XXH3-64 of all before.
 *
 * Memory: a table takes 768 bytes (a coarse slot -> symbol lookup) plus 4
 * bytes per symbol, so many contexts stay cache-resident.  The encoder
 * allocates nothing.
 *
 * Sides: the functions marked "encode side" are in entropy_enc.c, part of
 * libnwcenc.a, which the read-only daemon does not link; the rest (table
 * construction and loading, the decoders) are in entropy.c, libnwcdec.a.
 *
 * Validation: tables are checked when built or loaded
 * (nwc_qdist_load()); the decoders trust them and check every stream
 * byte, giving -NWC_ECORRUPT for anything an encoder cannot write.
 *
 * Thread safety: a struct nwc_qdist is immutable after construction and
 * may be shared; the coder functions are reentrant.
 */
#ifndef NWC_ENTROPY_H
#define NWC_ENTROPY_H

#include "codec/common/base.h"

#define NWC_QDIST_PREC 16u
#define NWC_QDIST_MAX_SYMS 4096u	/* direct symbols + escape */

struct nwc_qdist;

/*
 * Build a table for values lo .. lo + n - 1 from @counts (n entries: how
 * often each value occurred; zeros allowed) and @escapes (how often a value
 * fell outside).  Frequencies are scaled to 2^16 deterministically, keeping
 * every symbol >= 1.  Returns 0 or -EINVAL / -ENOMEM.
 */
int nwc_qdist_from_counts(int32_t lo, uint32_t n, const uint64_t *counts,
			  uint64_t escapes, struct nwc_qdist **out);

/*
 * Build a table from a probability mass function: @pmf[k] for value lo + k
 * (n entries) and @tail for the escape, any non-negative doubles (they are
 * normalized).  For turning a learned density into integer tables; the
 * quantization is deterministic for identical inputs.
 */
int nwc_qdist_from_pmf(int32_t lo, uint32_t n, const double *pmf, double tail,
		       struct nwc_qdist **out);

void nwc_qdist_free(struct nwc_qdist *d);

/* Range and frequencies (for tests, listings and rate estimates). */
int32_t nwc_qdist_lo(const struct nwc_qdist *d);
uint32_t nwc_qdist_n(const struct nwc_qdist *d);
/* Frequency of symbol @sym (0 .. n; n is the escape), out of 2^16. */
uint32_t nwc_qdist_freq(const struct nwc_qdist *d, uint32_t sym);
/* Exact cost in bits of coding @v with @d (escapes included); encode side. */
double nwc_qdist_cost(const struct nwc_qdist *d, int32_t v);

/* Serialized size, save into @buf (>= that size): encode side. */
size_t nwc_qdist_saved_size(const struct nwc_qdist *d);
void nwc_qdist_save(const struct nwc_qdist *d, uint8_t *buf);
/* Load with checks: parse @len bytes; on success *used is the bytes
 * consumed.  Any malformed table (bad magic, version, checksum, n, or
 * frequencies) -> -NWC_ECORRUPT. */
int nwc_qdist_load(const uint8_t *buf, size_t len, size_t *used,
		   struct nwc_qdist **out);

/* Upper bound of the stream length for @n values (escapes included);
 * encode side. */
size_t nwc_ents_bound(size_t n);

/*
 * nwc_ents_encode() - encode side: code @n values; value i uses table
 * dists[ctx[i]], or dists[0] when @ctx is NULL.  Returns the stream length,
 * or -ENOBUFS when @cap is too small, -ENOMEM.
 */
ssize_t nwc_ents_encode(const struct nwc_qdist *const *dists,
			const uint8_t *ctx, const int32_t *vals, size_t n,
			uint8_t *dst, size_t cap);

/*
 * nwc_ents_decode() - decode exactly @n values with the same tables and
 * contexts.  A malformed stream gives -NWC_ECORRUPT; it never reads past
 * @len bytes or writes past @n values.
 */
int nwc_ents_decode(const struct nwc_qdist *const *dists, const uint8_t *ctx,
		    int32_t *vals, size_t n, const uint8_t *src, size_t len);

/*
 * Contexts from a finite-state machine over the values' parities, the shape
 * of a trellis quantizer's: value i of a sequence (the state starts at 0
 * every @seq values) uses table (i % seq) % period + period * sel[s], and
 * a value v moves the state s to next[s][v & 1].  So 2 * @period tables.
 */
#define NWC_ENTS_FSM_STATES 8u
struct nwc_ents_fsm {
	uint8_t next[NWC_ENTS_FSM_STATES][2];
	uint8_t sel[NWC_ENTS_FSM_STATES];	/* 0 or 1 */
	uint32_t period;			/* >= 1 */
	size_t seq;				/* >= 1 */
};

/*
 * nwc_ents_decode_fsm() - nwc_ents_decode() with the contexts of @fsm;
 * the encoder side is nwc_ents_encode() with the same contexts as an
 * array.  If @sel is not NULL, sel[i] receives value i's table set, 0 or
 * 1.  The decoder looks a value up in both candidate tables before the
 * state that chooses between them is known, so the state chain does not
 * serialize the interleaved rANS states.  -EINVAL for a malformed @fsm.
 */
int nwc_ents_decode_fsm(const struct nwc_qdist *const *dists,
			const struct nwc_ents_fsm *fsm, int32_t *vals,
			uint8_t *sel, size_t n, const uint8_t *src,
			size_t len);

/*
 * The lanes layout, for many sequences under one FSM (a tensor band's
 * columns).  With the FSM's contexts each value's table depends on the
 * values before it in its sequence, so one sequence decodes a table lookup
 * at a time.  In the lanes layout, n values form n / seq sequences of seq
 * (the FSM's) values, taken in groups of NWC_ENTS_LANES (the last group
 * may be smaller); a group's values are coded value 0 of each of its
 * sequences, then value 1 of each, and so on.  The stream is that of
 * nwc_ents_encode() with NWC_ENTS_LANES states, u32[16] then the words,
 * value p on state p mod 16: in a whole group state k follows sequence k
 * alone, and a vector decoder steps eight sequences per instruction.
 *
 * nwc_ents_lane_index() - the sequence-order index of stream position @p
 * (p < n, n a multiple of @seq).
 *
 * nwc_ents_encode_lanes() - encode side: nwc_ents_encode() with the
 * sixteen states; @ctx and @vals in stream order.
 *
 * nwc_ents_decode_fsm_lanes() - nwc_ents_decode_fsm() for such a stream:
 * @vals and @sel in stream order.  @flat, the same tables as built by
 * nwc_ents_flat_build() or NULL, lets it take the AVX2 kernel where the CPU
 * has one (the same values and errors as without).  -EINVAL for a malformed
 * @fsm or an @n that is not a multiple of its seq.
 */
#define NWC_ENTS_LANES 16u
struct nwc_ents_flat;

size_t nwc_ents_lane_index(size_t p, size_t seq, size_t n);
ssize_t nwc_ents_encode_lanes(const struct nwc_qdist *const *dists,
			      const uint8_t *ctx, const int32_t *vals,
			      size_t n, uint8_t *dst, size_t cap);
int nwc_ents_decode_fsm_lanes(const struct nwc_qdist *const *dists,
			      const struct nwc_ents_flat *flat,
			      const struct nwc_ents_fsm *fsm, int32_t *vals,
			      uint8_t *sel, size_t n, const uint8_t *src,
			      size_t len);

/*
 * nwc_ents_flat_build() - @ntab tables (<= 256) laid out for the vector
 * kernel's lookups; immutable, shareable.  nwc_ents_flat_free() accepts NULL.
 */
int nwc_ents_flat_build(const struct nwc_qdist *const *dists, unsigned ntab,
			struct nwc_ents_flat **out);
void nwc_ents_flat_free(struct nwc_ents_flat *flat);

#endif /* NWC_ENTROPY_H */
