/* SPDX-License-Identifier: MIT */
/*
 * bplanes.c - byte planes each zstd-compressed, rANS-coded or stored
 * (format.h, section 8): the tables of NWC_CODEC_PLANES, whose rANS planes
 * have the wide layout, and of NWC_CODEC_ZSTD, whose have the 4-state one.
 */
#include "codec/common/base.h"

#include <stdio.h>
#include <stdlib.h>

#include "codec/planes.h"
#include "codec/rans.h"
#include "codec/common/array.h"
#include "codec/lossless.h"
#include "codec/zstd.h"

#define ZSTD_WORD_SIZE 4u	/* one u32 per plane ahead of the planes */

/* Per-thread compression state. */
struct zcctx {
	struct nwc_zstd_cctx *z;
	struct nwc_scratch planes;	/* planes of the block being encoded */
	struct nwc_scratch rans;	/* rANS candidate for one plane */
};

/* Per-thread decompression state. */
struct zdctx {
	struct nwc_zstd_dctx *z;
	struct nwc_scratch planes;	/* decompressed planes before merging */
};

/* Element size and float flag of a zstd argument; -NWC_ECORRUPT if bad. */
static int zstd_arg(uint32_t arg, unsigned *esize, bool *rot)
{
	unsigned e = arg & NWC_ZSTD_ARG_ESIZE_MASK;

	if (arg & ~(NWC_ZSTD_ARG_ESIZE_MASK | NWC_ZSTD_ARG_FLOAT))
		return -NWC_ECORRUPT;
	if (e != 1 && e != 2 && e != 4 && e != 8)
		return -NWC_ECORRUPT;
	if ((arg & NWC_ZSTD_ARG_FLOAT) && e == 1)
		return -NWC_ECORRUPT;
	*esize = e;
	*rot = arg & NWC_ZSTD_ARG_FLOAT;
	return 0;
}

static int zcctx_create(int level, void **out)
{
	struct zcctx *cctx;
	int ret;

	cctx = calloc(1, sizeof(*cctx));
	if (!cctx)
		return -ENOMEM;
	ret = nwc_zstd_cctx_create(level, &cctx->z);
	if (ret)
		goto out_free_cctx;
	*out = cctx;
	return 0;

out_free_cctx:
	free(cctx);
	return ret;
}

static void zcctx_free(void *p)
{
	struct zcctx *cctx = p;

	if (!cctx)
		return;
	nwc_zstd_cctx_free(cctx->z);
	free(cctx->planes.buf);
	free(cctx->rans.buf);
	free(cctx);
}

static int zdctx_create(void **out)
{
	struct zdctx *dctx;
	int ret;

	dctx = calloc(1, sizeof(*dctx));
	if (!dctx)
		return -ENOMEM;
	ret = nwc_zstd_dctx_create(&dctx->z);
	if (ret)
		goto out_free_dctx;
	*out = dctx;
	return 0;

out_free_dctx:
	free(dctx);
	return ret;
}

static void zdctx_free(void *p)
{
	struct zdctx *dctx = p;

	if (!dctx)
		return;
	nwc_zstd_dctx_free(dctx->z);
	free(dctx->planes.buf);
	free(dctx);
}

static int bplanes_check(uint32_t arg, uint32_t block_len,
			 uint32_t nblocks NWC_UNUSED,
			 const struct nwc_codec_tensor *t NWC_UNUSED,
			 const void *side NWC_UNUSED, unsigned *unit)
{
	unsigned e;
	bool rot;

	if (zstd_arg(arg, &e, &rot))
		return -NWC_ECORRUPT;
	if (block_len == 0 || block_len > NWC_BLOCK_MAX || block_len % e)
		return -NWC_ECORRUPT;
	*unit = e;
	return 0;
}

static size_t bplanes_bound(uint32_t arg, size_t raw_len)
{
	unsigned e;
	bool rot;

	if (zstd_arg(arg, &e, &rot))
		return 0;
	/* Each plane is either stored or a frame smaller than the plane. */
	if (raw_len > SIZE_MAX - 8 * ZSTD_WORD_SIZE)
		return SIZE_MAX;
	return raw_len + e * ZSTD_WORD_SIZE;
}

/*
 * Code one plane as the smallest of: a zstd frame, an order-0 rANS stream
 * (which beats zstd on exponent bytes, whose matches cost more than they
 * save), or the bytes themselves.  A coded form must save at least 1/64 of
 * the plane: mantissa bytes would shrink by a fraction of a percent and
 * double the decode time.  Returns the payload length and sets *word.
 */
static ssize_t encode_plane(struct zcctx *cctx, bool wide,
			    const uint8_t *plane, size_t plen, uint8_t *dst,
			    size_t room, uint32_t *word)
{
	ssize_t nz = -ENOSPC, nr = -ENOSPC;
	uint8_t *rbuf = NULL;
	size_t limit, rcap;

	if (plen > 1) {
		limit = plen - plen / 64 - 1;	/* largest worthwhile size */
		nz = nwc_zstd_compress(cctx->z, plane, plen, dst,
				       NWC_MIN(limit, room));
		if (nz < 0 && nz != -ENOSPC)
			return nz;
		rcap = wide ? nwc_rans8w_bound(plen) : nwc_rans8_bound(plen);
		rbuf = nwc_scratch_get(&cctx->rans, rcap);
		if (!rbuf)
			return -ENOMEM;
		nr = wide ? nwc_rans8w_encode(plane, plen, rbuf, rcap)
			  : nwc_rans8_encode(plane, plen, rbuf, rcap);
		if (nr < 0 && nr != -ENOSPC)
			return nr;
		if (nr >= 0 && ((size_t)nr > limit || (size_t)nr > room ||
				(nz >= 0 && nr >= nz)))
			nr = -ENOSPC;
	}
	if (nr >= 0) {
		memcpy(dst, rbuf, (size_t)nr);
		*word = (uint32_t)nr | NWC_PLANE_RANS;
		return nr;
	}
	if (nz >= 0) {
		*word = (uint32_t)nz;
		return nz;
	}
	if (plen > room)
		return -ENOSPC;
	if (plen)
		memcpy(dst, plane, plen);
	*word = (uint32_t)plen | NWC_PLANE_STORED;
	return (ssize_t)plen;
}

static ssize_t planes_encode(struct zcctx *cctx, bool wide, unsigned e,
			     bool rot, const uint8_t *src, size_t len,
			     uint8_t *dst, size_t cap)
{
	const size_t plen = len / e;
	const uint8_t *planes[8];
	size_t off = e * ZSTD_WORD_SIZE;

	if (cap < off)
		return -ENOSPC;
	if (e == 1) {
		planes[0] = src;
	} else {
		uint8_t *buf = nwc_scratch_get(&cctx->planes, len);
		uint8_t *split[8];

		if (!buf)
			return -ENOMEM;
		for (unsigned p = 0; p < e; p++)
			split[p] = buf + p * plen;
		nwc_planes_split(src, plen, e, rot, split);
		for (unsigned p = 0; p < e; p++)
			planes[p] = split[p];
	}

	for (unsigned p = 0; p < e; p++) {
		uint32_t word;
		ssize_t n = encode_plane(cctx, wide, planes[p], plen,
					 dst + off, cap - off, &word);

		if (n < 0)
			return n;
		nwc_put_le32(dst + p * ZSTD_WORD_SIZE, word);
		off += (size_t)n;
	}
	return (ssize_t)off;
}

static ssize_t encode_either(void *cctx, bool wide, uint32_t arg,
			     const void *src, size_t len, void *dst, size_t cap)
{
	unsigned e;
	bool rot;

	/* Also keeps every plane length below bit 30 of its word. */
	if (len > NWC_BLOCK_MAX)
		return -EINVAL;
	if (zstd_arg(arg, &e, &rot) || len % e)
		return -EINVAL;
	return planes_encode(cctx, wide, e, rot, src, len, dst, cap);
}

static ssize_t bplanes_encode(void *cctx, uint32_t arg, const void *src,
			      size_t len, void *dst, size_t cap)
{
	return encode_either(cctx, false, arg, src, len, dst, cap);
}

static ssize_t wplanes_encode(void *cctx, uint32_t arg, const void *src,
			      size_t len, void *dst, size_t cap)
{
	return encode_either(cctx, true, arg, src, len, dst, cap);
}

static int rans_decode(bool wide, const uint8_t *src, size_t srclen,
		       uint8_t *dst, size_t len)
{
	return wide ? nwc_rans8w_decode(src, srclen, dst, len)
		    : nwc_rans8_decode(src, srclen, dst, len);
}

/*
 * All words are checked against the payload length before any plane is
 * touched; each frame is then bounded by its word and must decode to exactly
 * one plane.
 */
static int planes_decode(struct zdctx *dctx, bool wide, unsigned e, bool rot,
			 const uint8_t *src, size_t srclen, uint8_t *dst,
			 size_t raw_len)
{
	const size_t plen = raw_len / e;
	const size_t hdr = e * ZSTD_WORD_SIZE;
	const uint8_t *planes[8];
	size_t lens[8];
	bool stored[8], rans[8];
	uint64_t total = 0;
	uint8_t *buf = NULL;
	size_t off = hdr;
	int ret;

	if (srclen < hdr)
		return -NWC_ECORRUPT;
	for (unsigned p = 0; p < e; p++) {
		uint32_t word = nwc_get_le32(src + p * ZSTD_WORD_SIZE);

		stored[p] = word & NWC_PLANE_STORED;
		rans[p] = word & NWC_PLANE_RANS;
		lens[p] = word & ~(NWC_PLANE_STORED | NWC_PLANE_RANS);
		if ((stored[p] && (rans[p] || lens[p] != plen)))
			return -NWC_ECORRUPT;
		total += lens[p];
	}
	if (total != srclen - hdr)
		return -NWC_ECORRUPT;

	/* Plain zstd decodes straight into the caller's buffer. */
	if (e == 1 && rans[0])
		return rans_decode(wide, src + hdr, lens[0], dst, plen);
	if (e == 1 && !stored[0])
		return nwc_zstd_decompress(dctx->z, src + hdr, lens[0], dst,
					   plen);

	for (unsigned p = 0; p < e; p++) {
		if (stored[p]) {
			planes[p] = src + off;
		} else {
			if (!buf) {
				buf = nwc_scratch_get(&dctx->planes, raw_len);
				if (!buf)
					return -ENOMEM;
			}
			ret = rans[p] ? rans_decode(wide, src + off, lens[p],
						    buf + p * plen, plen)
				      : nwc_zstd_decompress(dctx->z, src + off,
							    lens[p], buf + p * plen,
							    plen);
			if (ret)
				return ret;
			planes[p] = buf + p * plen;
		}
		off += lens[p];
	}
	nwc_planes_merge(planes, plen, e, rot, dst);
	return 0;
}

static int decode_either(void *scratch, bool wide, uint32_t arg,
			 const void *src, size_t srclen, void *dst,
			 size_t raw_len)
{
	unsigned e;
	bool rot;

	if (raw_len > NWC_BLOCK_MAX)
		return -NWC_ECORRUPT;
	if (zstd_arg(arg, &e, &rot) || raw_len % e)
		return -NWC_ECORRUPT;
	return planes_decode(scratch, wide, e, rot, src, srclen, dst, raw_len);
}

static int bplanes_decode(const void *state NWC_UNUSED, void *scratch,
			  uint32_t arg,
			  const struct nwc_codec_tensor *t NWC_UNUSED,
			  const void *side NWC_UNUSED, uint32_t j NWC_UNUSED,
			  const void *src, size_t srclen, void *dst,
			  size_t raw_len)
{
	return decode_either(scratch, false, arg, src, srclen, dst, raw_len);
}

static int wplanes_decode(const void *state NWC_UNUSED, void *scratch,
			  uint32_t arg,
			  const struct nwc_codec_tensor *t NWC_UNUSED,
			  const void *side NWC_UNUSED, uint32_t j NWC_UNUSED,
			  const void *src, size_t srclen, void *dst,
			  size_t raw_len)
{
	return decode_either(scratch, true, arg, src, srclen, dst, raw_len);
}

static const char *bplanes_describe(uint32_t arg, const void *side NWC_UNUSED,
				    char *buf, size_t len)
{
	unsigned e;
	bool rot;

	if (zstd_arg(arg, &e, &rot))
		snprintf(buf, len, "zstd/0x%x", (unsigned)arg);
	else if (e == 1)
		snprintf(buf, len, "zstd");
	else
		snprintf(buf, len, "zstd/planes%u%s", e, rot ? "f" : "");
	return buf;
}

/* "planes2f": two byte planes of floats. */
static const char *wplanes_describe(uint32_t arg, const void *side NWC_UNUSED,
				    char *buf, size_t len)
{
	unsigned e;
	bool rot;

	if (zstd_arg(arg, &e, &rot))
		snprintf(buf, len, "planes/0x%x", (unsigned)arg);
	else
		snprintf(buf, len, "planes%u%s", e, rot ? "f" : "");
	return buf;
}

const struct nwc_codec_dec nwc_codec_zstd_dec = {
	.id = NWC_CODEC_ZSTD,
	.name = "zstd",
	.check_extent = bplanes_check,
	.dctx_create = zdctx_create,
	.dctx_free = zdctx_free,
	.decode = bplanes_decode,
	.describe = bplanes_describe,
};

const struct nwc_codec_enc nwc_codec_zstd_enc = {
	.id = NWC_CODEC_ZSTD,
	.cctx_create = zcctx_create,
	.cctx_free = zcctx_free,
	.bound = bplanes_bound,
	.encode = bplanes_encode,
};

const struct nwc_codec_dec nwc_codec_planes_dec = {
	.id = NWC_CODEC_PLANES,
	.name = "planes",
	.incompat = NWC_INCOMPAT_PLANES,
	.check_extent = bplanes_check,
	.dctx_create = zdctx_create,
	.dctx_free = zdctx_free,
	.decode = wplanes_decode,
	.describe = wplanes_describe,
};

const struct nwc_codec_enc nwc_codec_planes_enc = {
	.id = NWC_CODEC_PLANES,
	.cctx_create = zcctx_create,
	.cctx_free = zcctx_free,
	.bound = bplanes_bound,
	.encode = wplanes_encode,
};
