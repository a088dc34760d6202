/* SPDX-License-Identifier: MIT */
/*
 * ranswide.h - what the wide rANS decoder (rans.c) shares with its vector
 * kernels (rans_avx2.c): the slot table's entry and the kernels' contract.
 * Internal to codec/.
 *
 * An entry packs a slot's frequency (bits 20-31), its bias (bits 8-19) and
 * its symbol (bits 0-7): the frequency, which the state update waits for,
 * comes out with one shift.  It fits 12 bits because a wide stream has at
 * least two symbols, so none has frequency 2^12.  P <= 12 keeps the table
 * at 16 KiB, inside L1.
 */
#ifndef NWC_RANSWIDE_H
#define NWC_RANSWIDE_H

#include "codec/common/base.h"

#define NWC_RANSW_ENTRY(sym, freq, bias) \
	((uint32_t)(freq) << 20 | (uint32_t)(bias) << 8 | (uint32_t)(sym))
#define NWC_RANSW_SYM(e) ((uint8_t)(e))
#define NWC_RANSW_FREQ(e) ((e) >> 20)
#define NWC_RANSW_BIAS(e) (((e) >> 8) & 0xfffu)

/* Bytes of words a group of 32 symbols can pull at most: a kernel runs a
 * group only when this many remain, so it needs no bounds checks. */
#define NWC_RANSW_GROUP_WORDS 64u

/*
 * A kernel decodes whole groups of 32 symbols into @dst while at least
 * NWC_RANSW_GROUP_WORDS bytes of words remain at @src + *@wpos (< @wend)
 * and at least 32 symbols of @len remain; it leaves the states in @x and
 * the next word's offset in *@wpos and returns the symbols decoded.  @tab
 * has 2^@prec entries.  nwc_ransw_avx2() runs where
 * nwc_cpu_has(NWC_CPU_AVX2) (codec/common/cpu.h).
 */
size_t nwc_ransw_avx2(uint32_t *x, const uint32_t *tab, unsigned prec,
		      const uint8_t *src, size_t *wpos, size_t wend,
		      uint8_t *dst, size_t len);

#endif /* NWC_RANSWIDE_H */
