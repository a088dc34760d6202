/* SPDX-License-Identifier: MIT */
/* raw.c - NWC_CODEC_RAW: the payload is the bytes (format.h, section 8). */
#include "codec/common/base.h"

#include <stdio.h>

#include "codec/lossless.h"

static int raw_check(uint32_t arg, uint32_t block_len,
		     uint32_t nblocks NWC_UNUSED,
		     const struct nwc_codec_tensor *t NWC_UNUSED,
		     const void *side NWC_UNUSED, unsigned *unit)
{
	if (arg || block_len == 0 || block_len > NWC_BLOCK_MAX)
		return -NWC_ECORRUPT;
	*unit = 1;
	return 0;
}

static bool raw_block_ok(uint32_t arg NWC_UNUSED, uint32_t stored_len,
			 uint32_t raw_len)
{
	return stored_len == raw_len;
}

static int raw_decode(const void *state NWC_UNUSED, void *scratch NWC_UNUSED,
		      uint32_t arg, const struct nwc_codec_tensor *t NWC_UNUSED,
		      const void *side NWC_UNUSED, uint32_t j NWC_UNUSED,
		      const void *src, size_t srclen, void *dst, size_t raw_len)
{
	if (arg || srclen != raw_len || raw_len > NWC_BLOCK_MAX)
		return -NWC_ECORRUPT;
	if (raw_len)
		memcpy(dst, src, raw_len);
	return 0;
}

static const char *raw_describe(uint32_t arg, const void *side NWC_UNUSED,
				char *buf, size_t len)
{
	if (arg)
		snprintf(buf, len, "codec%u/0x%x", NWC_CODEC_RAW,
			 (unsigned)arg);
	else
		snprintf(buf, len, "raw");
	return buf;
}

static size_t raw_bound(uint32_t arg NWC_UNUSED, size_t raw_len)
{
	return raw_len;
}

static ssize_t raw_encode(void *cctx NWC_UNUSED, uint32_t arg,
			  const void *src, size_t len, void *dst, size_t cap)
{
	if (arg || len > NWC_BLOCK_MAX)
		return -EINVAL;
	if (cap < len)
		return -ENOSPC;
	if (len)
		memcpy(dst, src, len);
	return (ssize_t)len;
}

const struct nwc_codec_dec nwc_codec_raw_dec = {
	.id = NWC_CODEC_RAW,
	.name = "raw",
	.check_extent = raw_check,
	.block_ok = raw_block_ok,
	.decode = raw_decode,
	.describe = raw_describe,
};

const struct nwc_codec_enc nwc_codec_raw_enc = {
	.id = NWC_CODEC_RAW,
	.bound = raw_bound,
	.encode = raw_encode,
};
