/* SPDX-License-Identifier: MIT */
/*
 * nwcmodel_enc.c - encode side of nwcmodel.h: creating a model,
 * serializing and saving it, and the chunk -> symbol direction (analysis,
 * rounding, entropy coding).  Part of libnwcenc.a; loading and decoding
 * are nwcmodel.c.
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>

#include "codec/common/hash.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/entropy.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwcmodel_impl.h"

#define SYM_LIMIT (1 << 30)

int nwc_model_create(unsigned int h, unsigned int r, unsigned int nq,
		     struct nwc_model **out)
{
	return nwc_model_alloc(h, r, nq, NWC_MODEL_F_DEC_LEVELS, out);
}

int nwc_model_to_buf(const struct nwc_model *m, uint8_t **buf, size_t *len)
{
	size_t size = NWC_MODEL_HDR_SIZE + 4 * m->nparams + 4 * (size_t)m->c +
		      8;
	uint8_t *b, *p;

	*buf = NULL;
	*len = 0;
	if (!m->finalized || !all_finite(m->params, m->nparams) ||
	    !all_finite(m->medians, m->c) || !isfinite(m->lambda))
		return -EINVAL;
	for (unsigned int i = 0; i < nwc_model_ntables(m); i++)
		size += 4 + nwc_qdist_saved_size(m->tables[i]);
	b = malloc(size);
	if (!b)
		return -ENOMEM;
	memcpy(b, NWC_MODEL_MAGIC, 8);
	nwc_put_le32(b + 8, NWC_MODEL_VERSION);
	nwc_put_le32(b + 12, m->h);
	nwc_put_le32(b + 16, m->r);
	nwc_put_le32(b + 20, m->nq);
	nwc_put_le32(b + 24, m->c);
	nwc_put_lef32(b + 28, m->lambda);
	nwc_put_le32(b + 32, m->flags);
	nwc_put_le64(b + 36, m->nparams);
	p = b + NWC_MODEL_HDR_SIZE;
	for (size_t i = 0; i < m->nparams; i++, p += 4)
		nwc_put_lef32(p, m->params[i]);
	for (unsigned int i = 0; i < nwc_model_ntables(m); i++) {
		size_t tl = nwc_qdist_saved_size(m->tables[i]);

		nwc_put_le32(p, (uint32_t)tl);
		nwc_qdist_save(m->tables[i], p + 4);
		p += 4 + tl;
	}
	for (unsigned int i = 0; i < m->c; i++, p += 4)
		nwc_put_lef32(p, m->medians[i]);
	nwc_put_le64(p, nwc_hash64(b, (size_t)(p - b)));
	*buf = b;
	*len = size;
	return 0;
}

int nwc_model_save(const struct nwc_model *m, const char *path)
{
	uint8_t *buf;
	size_t len;
	int ret;

	ret = nwc_model_to_buf(m, &buf, &len);
	if (ret) {
		nwc_err("%s: cannot serialize the codec model: %s", path,
			nwc_strerror(ret));
		return ret;
	}
	ret = nwc_write_file_atomic(path, buf, len);
	free(buf);
	return ret;
}

int nwc_model_analyze(const struct nwc_model *m, const float *x,
		      const uint8_t *q, size_t n, float *y,
		      struct nwc_model_scratch *s)
{
	struct nwc_net net = { .h = m->h, .r = m->r, .nq = m->nq,
			       .params = m->enc };
	int ret;

	if (!m->finalized)
		return -EINVAL;
	ret = nwc_net_forward(&net, m->emb, q, x, n, y, s->net);
	if (ret)
		return ret;
	for (size_t i = 0; i < n * NWC_CHUNK; i++) {
		y[i] -= m->medians[i % NWC_CHUNK];
		if (!isfinite(y[i]))
			return -ERANGE;
	}
	return 0;
}

int nwc_model_encode_chunks(const struct nwc_model *m, const float *x,
			    const uint8_t *q, size_t n, int32_t *sym,
			    struct nwc_model_scratch *s)
{
	int ret;

	if (!m->finalized)
		return -EINVAL;
	ret = nwc_model_scratch_reserve(s, n);
	if (ret)
		return ret;
	ret = nwc_model_analyze(m, x, q, n, s->buf, s);
	if (ret)
		return ret;
	for (size_t i = 0; i < n * NWC_CHUNK; i++) {
		float v = roundf(s->buf[i]);

		if (v > SYM_LIMIT)
			v = SYM_LIMIT;
		else if (v < -SYM_LIMIT)
			v = -SYM_LIMIT;
		sym[i] = (int32_t)v;
	}
	return 0;
}

static uint8_t *channel_ctx(const struct nwc_model *m, size_t count)
{
	uint8_t *ctx = malloc(count ? count : 1);

	if (!ctx)
		return NULL;
	for (size_t i = 0; i < count; i++)
		ctx[i] = (uint8_t)(i % m->c);
	return ctx;
}

ssize_t nwc_model_code_syms(const struct nwc_model *m, const int32_t *sym,
			    size_t count, uint8_t *dst, size_t cap)
{
	uint8_t *ctx;
	ssize_t ret;

	if (!m->finalized)
		return -EINVAL;
	ctx = channel_ctx(m, count);
	if (!ctx)
		return -ENOMEM;
	ret = nwc_ents_encode((const struct nwc_qdist *const *)m->tables, ctx,
			      sym, count, dst, cap);
	free(ctx);
	return ret;
}
