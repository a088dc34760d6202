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
 * The wide layout (nwc_rans8w_*) is the same with 32 states (u32[32]) and
 * at least two symbols (no frequency is 2^P), so that a decoder can step 8
 * states per AVX2 instruction: within a group of
 * 32 symbols each state that falls below L pulls the next word in state
 * order, which is both the scalar loop's order and the order a vector
 * hands out consecutive words to its lanes.  Every kernel decodes a stream
 * to the same bytes; nwc_rans8w_decode() picks the fastest this CPU runs.
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

#define NWC_RANS_WIDE 32u	/* states of the wide layout */

/* The wide layout's nwc_rans8_bound(), _encode() and _decode(); the
 * encoder returns -ENOSPC for a single symbol repeated, which zstd codes
 * in a few bytes. */
size_t nwc_rans8w_bound(size_t len);
ssize_t nwc_rans8w_encode(const uint8_t *src, size_t len, uint8_t *dst,
			  size_t cap);
int nwc_rans8w_decode(const uint8_t *src, size_t srclen, uint8_t *dst,
		      size_t len);

/* The wide decoder's inner loops, for tests and benchmarks. */
enum nwc_rans_kernel {
	NWC_RANS_KERNEL_AUTO,	/* the fastest this CPU has */
	NWC_RANS_KERNEL_SCALAR,	/* plain C, every machine */
	NWC_RANS_KERNEL_AVX2,	/* x86-64 with AVX2 */
};

/* Whether this machine runs @k; its name ("scalar", "avx2"; AUTO: the
 * one it stands for). */
bool nwc_rans8w_kernel_ok(enum nwc_rans_kernel k);
const char *nwc_rans8w_kernel_name(enum nwc_rans_kernel k);

/* nwc_rans8w_decode() with kernel @k: -ENOTSUP where it does not run. */
int nwc_rans8w_decode_with(enum nwc_rans_kernel k, const uint8_t *src,
			   size_t srclen, uint8_t *dst, size_t len);

#endif /* NWC_RANS_H */
