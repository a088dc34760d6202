/* SPDX-License-Identifier: MIT */
/*
 * zstd.h - the project's seam to libzstd: compress one byte plane into one
 * zstd frame, and decompress one frame into exactly the expected length.
 *
 *	struct nwc_zstd_dctx *z;
 *	nwc_zstd_dctx_create(&z);
 *	ret = nwc_zstd_decompress(z, frame, frame_len, plane, plane_len);
 *	nwc_zstd_dctx_free(z);
 *
 * Frames are written single-threaded at a fixed level, with the content size
 * recorded and no zstd checksum (blocks carry their own XXH3), so the output
 * is a function of the input, the level and the zstd version.
 *
 * Thread safety: a context belongs to one thread at a time.
 */
#ifndef NWC_ZSTD_H
#define NWC_ZSTD_H

#include "codec/common/base.h"

struct nwc_zstd_cctx;
struct nwc_zstd_dctx;

/* Compression context at zstd @level (1..22); -EINVAL or -ENOMEM. */
int nwc_zstd_cctx_create(int level, struct nwc_zstd_cctx **out);
/* Accepts NULL. */
void nwc_zstd_cctx_free(struct nwc_zstd_cctx *z);

/*
 * nwc_zstd_compress() - compress @len bytes at @src into one frame at @dst
 * of capacity @cap.  Returns the frame length, -ENOSPC when the frame does
 * not fit in @cap (callers pass a small @cap to give up on planes that do
 * not shrink), -ENOMEM, or -EIO for any other zstd error.
 */
ssize_t nwc_zstd_compress(struct nwc_zstd_cctx *z, const void *src,
			  size_t len, void *dst, size_t cap);

int nwc_zstd_dctx_create(struct nwc_zstd_dctx **out);
/* Accepts NULL. */
void nwc_zstd_dctx_free(struct nwc_zstd_dctx *z);

/*
 * nwc_zstd_decompress() - decode @srclen bytes at @src, which must be exactly
 * one frame whose content size is @len, into @dst (@len bytes).  Returns 0,
 * or -NWC_ECORRUPT for anything else; never writes past @dst + @len.
 */
int nwc_zstd_decompress(struct nwc_zstd_dctx *z, const void *src,
			size_t srclen, void *dst, size_t len);

#endif /* NWC_ZSTD_H */
