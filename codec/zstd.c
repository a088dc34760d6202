/* SPDX-License-Identifier: MIT */
/* zstd.c - the only file that includes <zstd.h>: one plane <-> one frame. */
#include "codec/common/base.h"

#include <limits.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec/zstd.h"

/* The wrapper types are the zstd contexts themselves; nothing else is kept. */
static ZSTD_CCtx *cctx_of(struct nwc_zstd_cctx *z)
{
	return (ZSTD_CCtx *)z;
}

static ZSTD_DCtx *dctx_of(struct nwc_zstd_dctx *z)
{
	return (ZSTD_DCtx *)z;
}

static int set_param(ZSTD_CCtx *c, ZSTD_cParameter param, int value)
{
	return ZSTD_isError(ZSTD_CCtx_setParameter(c, param, value)) ?
	       -EINVAL : 0;
}

int nwc_zstd_cctx_create(int level, struct nwc_zstd_cctx **out)
{
	ZSTD_CCtx *c;
	int ret;

	if (level < 1 || level > ZSTD_maxCLevel())
		return -EINVAL;
	c = ZSTD_createCCtx();
	if (!c)
		return -ENOMEM;
	/* nbWorkers stays 0: multithreaded zstd would not be deterministic. */
	ret = set_param(c, ZSTD_c_compressionLevel, level);
	if (!ret)
		ret = set_param(c, ZSTD_c_contentSizeFlag, 1);
	if (!ret)
		ret = set_param(c, ZSTD_c_checksumFlag, 0);
	if (!ret)
		ret = set_param(c, ZSTD_c_dictIDFlag, 0);
	if (ret)
		goto out_free_cctx;
	*out = (struct nwc_zstd_cctx *)c;
	return 0;

out_free_cctx:
	ZSTD_freeCCtx(c);
	return ret;
}

void nwc_zstd_cctx_free(struct nwc_zstd_cctx *z)
{
	ZSTD_freeCCtx(cctx_of(z));
}

ssize_t nwc_zstd_compress(struct nwc_zstd_cctx *z, const void *src,
			  size_t len, void *dst, size_t cap)
{
	size_t ret;

	if (len > SSIZE_MAX)
		return -EINVAL;
	ret = ZSTD_compress2(cctx_of(z), dst, cap, src, len);
	if (!ZSTD_isError(ret))
		return (ssize_t)ret;

	switch (ZSTD_getErrorCode(ret)) {
	case ZSTD_error_dstSize_tooSmall:
		return -ENOSPC;
	case ZSTD_error_memory_allocation:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

int nwc_zstd_dctx_create(struct nwc_zstd_dctx **out)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();

	if (!d)
		return -ENOMEM;
	*out = (struct nwc_zstd_dctx *)d;
	return 0;
}

void nwc_zstd_dctx_free(struct nwc_zstd_dctx *z)
{
	ZSTD_freeDCtx(dctx_of(z));
}

int nwc_zstd_decompress(struct nwc_zstd_dctx *z, const void *src,
			size_t srclen, void *dst, size_t len)
{
	unsigned long long content;
	size_t ret;

	/*
	 * Exactly one regular frame (no skippable frame, nothing after it)
	 * that declares the expected size; decompressing with capacity @len
	 * then cannot write past the plane.
	 */
	if (srclen < 4 || nwc_get_le32(src) != ZSTD_MAGICNUMBER)
		return -NWC_ECORRUPT;
	content = ZSTD_getFrameContentSize(src, srclen);
	if (content == ZSTD_CONTENTSIZE_UNKNOWN ||
	    content == ZSTD_CONTENTSIZE_ERROR || content != len)
		return -NWC_ECORRUPT;
	ret = ZSTD_findFrameCompressedSize(src, srclen);
	if (ZSTD_isError(ret) || ret != srclen)
		return -NWC_ECORRUPT;

	ret = ZSTD_decompressDCtx(dctx_of(z), dst, len, src, srclen);
	if (ZSTD_isError(ret) || ret != len)
		return -NWC_ECORRUPT;
	return 0;
}
