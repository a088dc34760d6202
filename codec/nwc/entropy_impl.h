/* SPDX-License-Identifier: MIT */
/*
 * entropy_impl.h - private to entropy.c (decoder, tables) and
 * entropy_enc.c (encoder): the rANS constants, the table layout and the
 * few helpers both sides need.  Not for other files: the layout is not an
 * interface.
 *
 * Thread safety: constants and pure inline functions only.
 */
#ifndef NWC_ENTROPY_IMPL_H
#define NWC_ENTROPY_IMPL_H

#include "codec/common/base.h"
#include "codec/nwc/entropy.h"
#include "codec/ranscore.h"

#define PREC NWC_QDIST_PREC
#define M (1u << PREC)
#define NSTATES NWC_RANS_WAYS
#define HDR_LEN NWC_RANS_STATES_LEN	/* the streams start with the states */
#define LANES_HDR_LEN (4 * NWC_ENTS_LANES)	/* those of the lanes layout */

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

/* Does @d code @v directly (no escape)? */
static inline bool in_range(const struct nwc_qdist *d, int32_t v)
{
	int64_t off = (int64_t)v - d->lo;

	return off >= 0 && off < d->n;
}

#endif /* NWC_ENTROPY_IMPL_H */
