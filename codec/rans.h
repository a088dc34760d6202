/* SPDX-License-Identifier: MIT */
/*
 * rans.h - static order-0 rANS entropy coder over a byte alphabet.
 *
 * Used for byte planes whose statistics zstd's match finder cannot exploit
 * (the exponent bytes of floats): an order-0 coder gets within a fraction
 * of a percent of their entropy.  Integer arithmetic only, so a stream
 * decodes identically on every machine.  Precision is at most 12 bits so
 * that the decoder's slot tables (4096 x 5 bytes) stay in L1 cache; on
 * float exponents that costs under 0.01% of size against 14 bits.
 *
 *	n = nwc_rans8_encode(src, len, dst, nwc_rans8_bound(len));
 *	ret = nwc_rans8_decode(dst, n, out, len);
 *
 * Stream layout (all little-endian):
 *	u8      precision P (NWC_RANS_PREC_MIN..NWC_RANS_PREC_MAX)
 *	u8[32]  bitmap of the symbols present (bit s of byte s/8)
 *	varint  frequency of each present symbol, in symbol order (LEB128);
 *	        the frequencies sum to 2^P and none is 0
 *	u32[4]  final encoder states, which the decoder starts from
 *	u16[]   renormalization words, in decoding order
 * Symbol i is coded by state i mod 4.  A valid stream ends with every state
 * back at its initial value and every word consumed.
 *
 * Thread safety: pure functions; the caller provides every buffer.
 */
#ifndef NWC_RANS_H
#define NWC_RANS_H

#include "codec/common/base.h"

#define NWC_RANS_PREC_MIN 8u
#define NWC_RANS_PREC_MAX 12u
#define NWC_RANS_PREC 12u		/* what the encoder uses */

/* Largest stream nwc_rans8_encode() writes for @len input bytes. */
size_t nwc_rans8_bound(size_t len);

/*
 * nwc_rans8_encode() - code @len bytes (>= 1) of @src into @dst (capacity
 * @cap >= nwc_rans8_bound(len)).  Deterministic.  Returns the stream length
 * or -EINVAL / -ENOBUFS.
 */
ssize_t nwc_rans8_encode(const uint8_t *src, size_t len, uint8_t *dst,
			 size_t cap);

/*
 * nwc_rans8_decode() - decode exactly @len bytes from the @srclen-byte
 * stream @src.  Any malformed stream gives -NWC_ECORRUPT; it never reads or
 * writes outside the given buffers.
 */
int nwc_rans8_decode(const uint8_t *src, size_t srclen, uint8_t *dst,
		     size_t len);

#endif /* NWC_RANS_H */
