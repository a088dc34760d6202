/* SPDX-License-Identifier: MIT */
/* nwcmodel.c - NWC codec model: file format, coding tables, chunk coding. */
#include "codec/common/base.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec/common/hash.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/common/simd.h"
#include "codec/nwc/prior.h"

#define SYM_LIMIT (1 << 30)

struct nwc_model_scratch {
	struct nwc_net_scratch *net;
	float *buf;
	size_t cap;		/* floats in @buf */
};

/* Floats of the parameter blob for a shape, or 0 if the shape is invalid. */
static size_t model_nparams(unsigned int h, unsigned int r, unsigned int nq,
			    unsigned int c, uint32_t flags)
{
	size_t net = nwc_net_nparams(h, r);
	size_t levels = flags & NWC_MODEL_F_DEC_LEVELS ? 2 : 1;

	if (nwc_net_check(h, r, nq) || c != NWC_MODEL_C || !net)
		return 0;
	return 2 * net + levels * nq * h + nwc_prior_nparams(c) +
	       3 * (size_t)c;
}

static void free_coding(struct nwc_model *m)
{
	if (m->tables) {
		for (unsigned int i = 0; i < nwc_model_ntables(m); i++)
			nwc_qdist_free(m->tables[i]);
	}
	free(m->tables);
	free(m->medians);
	free(m->dec_folded);
	m->tables = NULL;
	m->medians = NULL;
	m->dec_folded = NULL;
	m->finalized = false;
	m->flags &= ~NWC_MODEL_F_TCQ;
}

void nwc_model_free(struct nwc_model *m)
{
	if (!m)
		return;
	free_coding(m);
	free(m->params);
	free(m);
}

/* nwc_model_create() with the level-table layout of @flags. */
static int model_alloc(unsigned int h, unsigned int r, unsigned int nq,
		       uint32_t flags, struct nwc_model **out)
{
	size_t n = model_nparams(h, r, nq, NWC_MODEL_C, flags);
	size_t net = nwc_net_nparams(h, r);
	struct nwc_model *m;

	*out = NULL;
	if (!n)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->params = calloc(n, sizeof(*m->params));
	if (!m->params) {
		free(m);
		return -ENOMEM;
	}
	m->h = h;
	m->r = r;
	m->nq = nq;
	m->c = NWC_MODEL_C;
	m->nparams = n;
	m->flags = flags & NWC_MODEL_F_DEC_LEVELS;
	m->enc = m->params;
	m->dec = m->enc + net;
	m->emb = m->dec + net;
	m->emb_dec = m->emb;
	if (m->flags & NWC_MODEL_F_DEC_LEVELS)
		m->emb_dec += (size_t)nq * h;
	m->prior = m->emb_dec + (size_t)nq * h;
	m->quantiles = m->prior + nwc_prior_nparams(m->c);
	*out = m;
	return 0;
}

int nwc_model_create(unsigned int h, unsigned int r, unsigned int nq,
		     struct nwc_model **out)
{
	return model_alloc(h, r, nq, NWC_MODEL_F_DEC_LEVELS, out);
}

/*
 * The decoder's input layers folded into one, medians included (mlp.h),
 * once the medians are known; nothing to fold without a block.
 */
static int fold_decoder(struct nwc_model *m)
{
	struct nwc_net net = { .h = m->h, .r = m->r, .nq = m->nq,
			       .params = m->dec };
	int ret;

	if (!m->r)
		return 0;
	m->dec_folded = malloc(nwc_net_folded_size(m->h) *
			       sizeof(*m->dec_folded));
	if (!m->dec_folded)
		return -ENOMEM;
	ret = nwc_net_fold(&net, m->medians, m->dec_folded);
	if (ret) {
		free(m->dec_folded);
		m->dec_folded = NULL;
	}
	return ret;
}

int nwc_model_finalize(struct nwc_model *m)
{
	float *shifted;
	int ret;

	free_coding(m);
	m->tables = calloc(2 * (size_t)m->c, sizeof(*m->tables));
	m->medians = calloc(m->c, sizeof(*m->medians));
	shifted = malloc(3 * (size_t)m->c * sizeof(*shifted));
	if (!m->tables || !m->medians || !shifted) {
		ret = -ENOMEM;
		goto out_free_coding;
	}
	ret = nwc_prior_tables(m->prior, m->quantiles, m->c, m->tables,
			       m->medians);
	if (ret)
		goto out_free_coding;
	/*
	 * The half-offset tables: the same density over cells centred on
	 * median + v + 1/2, which is what nwc_prior_tables() gives for a
	 * median moved up by 1/2.
	 */
	memcpy(shifted, m->quantiles, 3 * (size_t)m->c * sizeof(*shifted));
	for (unsigned int c = 0; c < m->c; c++)
		shifted[3 * c + 1] += 0.5f;
	ret = nwc_prior_tables(m->prior, shifted, m->c, m->tables + m->c,
			       NULL);
	if (ret)
		goto out_free_coding;	/* it left nothing allocated */
	m->flags |= NWC_MODEL_F_TCQ;	/* so free_coding() frees them too */
	ret = fold_decoder(m);
	if (ret)
		goto out_free_coding;
	free(shifted);
	m->finalized = true;
	return 0;

out_free_coding:
	free(shifted);
	free_coding(m);
	return ret;
}

static bool all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i]))
			return false;
	}
	return true;
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

static int parse(const uint8_t *buf, size_t len, const char *what,
		 struct nwc_model **out)
{
	unsigned int h, r, nq, c, ntab;
	uint32_t version, flags;
	struct nwc_model *m;
	uint64_t nfl;
	size_t off, body;
	float lambda;
	int ret;

	*out = NULL;
	if (len < NWC_MODEL_HDR_SIZE + 8 || memcmp(buf, NWC_MODEL_MAGIC, 8)) {
		nwc_err("%s: not an NWC codec model (bad magic or too short)",
			what);
		return -NWC_ECORRUPT;
	}
	version = nwc_get_le32(buf + 8);
	if (version != NWC_MODEL_VERSION) {
		nwc_err("%s: codec model version %u is not supported (this build reads %u)",
			what, version, NWC_MODEL_VERSION);
		return -NWC_EFEATURE;
	}
	body = len - 8;
	if (nwc_get_le64(buf + body) != nwc_hash64(buf, body)) {
		nwc_err("%s: codec model checksum mismatch", what);
		return -NWC_ECORRUPT;
	}
	h = nwc_get_le32(buf + 12);
	r = nwc_get_le32(buf + 16);
	nq = nwc_get_le32(buf + 20);
	c = nwc_get_le32(buf + 24);
	lambda = nwc_get_lef32(buf + 28);
	flags = nwc_get_le32(buf + 32);
	nfl = nwc_get_le64(buf + 36);
	if (flags & ~NWC_MODEL_F_KNOWN) {
		nwc_err("%s: codec model has unknown flags 0x%x", what, flags);
		return -NWC_EFEATURE;
	}
	if (!model_nparams(h, r, nq, c, flags) ||
	    nfl != model_nparams(h, r, nq, c, flags) || !isfinite(lambda)) {
		nwc_err("%s: codec model has an invalid shape (H %u, R %u, Q %u, C %u, %llu floats)",
			what, h, r, nq, c, (unsigned long long)nfl);
		return -NWC_ECORRUPT;
	}
	if (!nwc_range_ok(NWC_MODEL_HDR_SIZE, 4 * nfl, body)) {
		nwc_err("%s: codec model is truncated", what);
		return -NWC_ECORRUPT;
	}
	ret = model_alloc(h, r, nq, flags, &m);
	if (ret)
		return ret;
	m->lambda = lambda;
	m->flags = flags;
	ntab = nwc_model_ntables(m);
	off = NWC_MODEL_HDR_SIZE;
	for (size_t i = 0; i < m->nparams; i++, off += 4)
		m->params[i] = nwc_get_lef32(buf + off);
	if (!all_finite(m->params, m->nparams)) {
		nwc_err("%s: codec model has a non-finite parameter", what);
		ret = -NWC_ECORRUPT;
		goto out_free_model;
	}
	m->tables = calloc(ntab, sizeof(*m->tables));
	m->medians = calloc(c, sizeof(*m->medians));
	if (!m->tables || !m->medians) {
		ret = -ENOMEM;
		goto out_free_model;
	}
	for (unsigned int i = 0; i < ntab; i++) {
		uint32_t tl;
		size_t used;

		if (!nwc_range_ok(off, 4, body))
			goto out_truncated;
		tl = nwc_get_le32(buf + off);
		off += 4;
		if (!nwc_range_ok(off, tl, body))
			goto out_truncated;
		ret = nwc_qdist_load(buf + off, tl, &used, &m->tables[i]);
		if (ret == -ENOMEM)
			goto out_free_model;
		if (ret || used != tl) {
			nwc_err("%s: codec model: coding table %u is malformed",
				what, i);
			ret = -NWC_ECORRUPT;
			goto out_free_model;
		}
		off += tl;
	}
	if (!nwc_range_ok(off, 4 * (size_t)c, body) ||
	    off + 4 * (size_t)c != body) {
		nwc_err("%s: codec model has a wrong length", what);
		ret = -NWC_ECORRUPT;
		goto out_free_model;
	}
	for (unsigned int i = 0; i < c; i++, off += 4)
		m->medians[i] = nwc_get_lef32(buf + off);
	if (!all_finite(m->medians, c)) {
		nwc_err("%s: codec model has a non-finite median", what);
		ret = -NWC_ECORRUPT;
		goto out_free_model;
	}
	ret = fold_decoder(m);
	if (ret)
		goto out_free_model;
	m->finalized = true;
	*out = m;
	return 0;

out_truncated:
	nwc_err("%s: codec model is truncated", what);
	ret = -NWC_ECORRUPT;
out_free_model:
	nwc_model_free(m);
	return ret;
}

int nwc_model_from_buf(const uint8_t *buf, size_t len, struct nwc_model **out)
{
	return parse(buf, len, "codec model buffer", out);
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

int nwc_model_load(const char *path, struct nwc_model **out)
{
	uint8_t *buf;
	size_t len;
	int ret;

	*out = NULL;
	ret = nwc_read_file(path, NWC_MODEL_MAX_BYTES, &buf, &len);
	if (ret == -EINVAL || ret == -EFBIG) {
		nwc_err("%s: not a codec model file (not a regular file or too large)",
			path);
		return -NWC_ECORRUPT;
	}
	if (ret) {
		nwc_err("%s: %s%s", path, ret == -NWC_ECORRUPT ?
			"read failed: " : "", nwc_strerror(ret));
		return ret;
	}
	ret = parse(buf, len, path, out);
	free(buf);
	return ret;
}

int nwc_model_scratch_create(struct nwc_model_scratch **out)
{
	struct nwc_model_scratch *s;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ret = nwc_net_scratch_create(&s->net);
	if (ret) {
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

void nwc_model_scratch_free(struct nwc_model_scratch *s)
{
	if (!s)
		return;
	nwc_net_scratch_free(s->net);
	free(s->buf);
	free(s);
}

/* Make room for @n chunks of latents in s->buf. */
static int scratch_reserve(struct nwc_model_scratch *s, size_t n)
{
	float *nb;

	if (n > SIZE_MAX / (NWC_NET_IO * sizeof(float)))
		return -EINVAL;
	if (n * NWC_NET_IO <= s->cap)
		return 0;
	nb = realloc(s->buf, n * NWC_NET_IO * sizeof(float));
	if (!nb)
		return -ENOMEM;
	s->buf = nb;
	s->cap = n * NWC_NET_IO;
	return 0;
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
	for (size_t i = 0; i < n * NWC_NET_IO; i++) {
		y[i] -= m->medians[i % NWC_NET_IO];
		if (!isfinite(y[i]))
			return -ERANGE;
	}
	return 0;
}

int nwc_model_synthesize(const struct nwc_model *m, const float *y,
			 const uint8_t *q, size_t n, float *xhat,
			 struct nwc_model_scratch *s)
{
	struct nwc_net net = { .h = m->h, .r = m->r, .nq = m->nq,
			       .params = m->dec };
	int ret;

	if (!m->finalized)
		return -EINVAL;
	if (m->dec_folded)
		return nwc_net_forward_folded(&net, m->dec_folded, m->emb_dec,
					      q, y, n, xhat, s->net);
	ret = scratch_reserve(s, n);
	if (ret)
		return ret;
	/* a chunk's latents are C = 16 floats: four vectors */
	for (size_t i = 0; i < n * NWC_NET_IO; i += NWC_NET_IO)
		for (size_t c = 0; c < NWC_NET_IO; c += 4)
			v4_store(s->buf + i + c, v4_load(y + i + c) +
				 v4_load(m->medians + c));
	return nwc_net_forward(&net, m->emb_dec, q, s->buf, n, xhat, s->net);
}

int nwc_model_encode_chunks(const struct nwc_model *m, const float *x,
			    const uint8_t *q, size_t n, int32_t *sym,
			    struct nwc_model_scratch *s)
{
	int ret;

	if (!m->finalized)
		return -EINVAL;
	ret = scratch_reserve(s, n);
	if (ret)
		return ret;
	ret = nwc_model_analyze(m, x, q, n, s->buf, s);
	if (ret)
		return ret;
	for (size_t i = 0; i < n * NWC_NET_IO; i++) {
		float v = roundf(s->buf[i]);

		if (v > SYM_LIMIT)
			v = SYM_LIMIT;
		else if (v < -SYM_LIMIT)
			v = -SYM_LIMIT;
		sym[i] = (int32_t)v;
	}
	return 0;
}

int nwc_model_decode_chunks(const struct nwc_model *m, const int32_t *sym,
			    const uint8_t *q, size_t n, float *xhat,
			    struct nwc_model_scratch *s)
{
	/* synthesize() copies its latents before writing @xhat */
	for (size_t i = 0; i < n * NWC_NET_IO; i++)
		xhat[i] = (float)sym[i];
	return nwc_model_synthesize(m, xhat, q, n, xhat, s);
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

int nwc_model_decode_syms(const struct nwc_model *m, const uint8_t *src,
			  size_t len, int32_t *sym, size_t count)
{
	/* channel i % C: an FSM that never leaves table set 0 */
	struct nwc_ents_fsm f = { .period = m->c, .seq = m->c };

	if (!m->finalized)
		return -EINVAL;
	return nwc_ents_decode_fsm((const struct nwc_qdist *const *)m->tables,
				   &f, sym, NULL, count, src, len);
}
