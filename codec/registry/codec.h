/* SPDX-License-Identifier: MIT */
/*
 * codec.h - one block at a time through a block codec of the registry
 * (raw, zstd byte planes): turn decoded bytes into a stored payload and
 * back (format.h section 8 defines the payloads).  Tensor codecs (nwc) go
 * through the image writer and reader instead; here they are unknown.
 *
 *	struct nwc_dctx *dctx;
 *	nwc_dctx_create(&dctx);
 *	ret = nwc_codec_decode(dctx, NWC_CODEC_ZSTD, arg, src, srclen, dst, rawlen);
 *	nwc_dctx_free(dctx);
 *
 * Thread safety: the functions are reentrant; a struct nwc_cctx or
 * struct nwc_dctx (codec/image/iface.h) holds per-thread scratch (zstd
 * contexts, plane buffers) and must not be used by two threads at once.
 */
#ifndef NWC_CODEC_H
#define NWC_CODEC_H

#include "codec/image/iface.h"

struct nwc_cctx;

/* Compression context; @level is the zstd level (1..22). */
int nwc_cctx_create(int level, struct nwc_cctx **out);
void nwc_cctx_free(struct nwc_cctx *cctx);

/*
 * nwc_codec_check() - whether this build decodes @codec with @arg, and
 * whether @block_len suits it (a multiple of the element size, 1..
 * NWC_BLOCK_MAX).  Returns 0, -NWC_EFEATURE for an unknown codec or
 * -NWC_ECORRUPT for a bad argument or geometry.
 */
int nwc_codec_check(unsigned codec, uint32_t arg, uint32_t block_len);

/*
 * Unit of the codec in bytes: raw lengths must be a multiple of it.  0 for
 * an unknown codec or a bad argument (nwc_codec_check() tells them apart).
 */
unsigned nwc_codec_unit(unsigned codec, uint32_t arg);

/*
 * Largest payload nwc_codec_encode() can produce for @raw_len bytes; 0 for
 * an unknown codec or a bad argument.
 */
size_t nwc_codec_bound(unsigned codec, uint32_t arg, size_t raw_len);

/*
 * nwc_codec_encode() - encode @len bytes of @src into @dst (capacity @cap,
 * at least nwc_codec_bound()).  Deterministic: the same input, codec, arg
 * and level give the same bytes.  Returns the payload length or -errno.
 */
ssize_t nwc_codec_encode(struct nwc_cctx *cctx, unsigned codec, uint32_t arg,
			 const void *src, size_t len, void *dst, size_t cap);

/*
 * nwc_codec_decode() - decode payload @src (@srclen bytes) into exactly
 * @raw_len bytes at @dst.  Any inconsistency in the payload gives
 * -NWC_ECORRUPT; it never reads or writes out of bounds.
 */
int nwc_codec_decode(struct nwc_dctx *dctx, unsigned codec, uint32_t arg,
		     const void *src, size_t srclen, void *dst, size_t raw_len);

/* The lossless codec argument mkfs uses for tensors of @dtype. */
uint32_t nwc_codec_arg_for_dtype(unsigned dtype);

/*
 * nwc_codec_name() - short name for listings, written to @buf (@len bytes)
 * and returned: "raw"; "zstd" (E = 1); "zstd/planesE" for E byte planes and
 * "zstd/planesEf" with the float rotation ("zstd/planes2f" for BF16 and
 * F16); "nwc"; "zstd/0xARG" or "codecN/0xARG" for what this build lacks.
 */
const char *nwc_codec_name(unsigned codec, uint32_t arg, char *buf, size_t len);

#endif /* NWC_CODEC_H */
