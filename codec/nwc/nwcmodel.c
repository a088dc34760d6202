/* SPDX-License-Identifier: MIT */
/*
 * nwcmodel.c - NWC codec model: loading and parsing the file, finalizing
 * the coding tables, chunk decoding.  Decode side (libnwcdec.a); creating,
 * serializing and encoding are nwcmodel_enc.c (libnwcenc.a).
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>

#include "codec/common/hash.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/common/simd.h"
#include "codec/nwc/entropy.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwcmodel_impl.h"
#include "codec/nwc/prior.h"

/* Floats of the parameter blob for a shape, or 0 if the shape is invalid. */
static size_t model_nparams(unsigned int h, unsigned int r, unsigned int nq,
			    unsigned int c, uint32_t flags)
{
	size_t net = nwc_net_nparams(h, r);
	size_t levels = flags & NWC_MODEL_F_DEC_LEVELS ? 2 : 1;

	if (nwc_net_check(h, r, nq) || c != NWC_CHUNK || !net)
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
	free(m->dec_linear);
	nwc_ents_flat_free(m->flat);
	m->flat = NULL;
	m->tables = NULL;
	m->medians = NULL;
	m->dec_folded = NULL;
	m->dec_linear = NULL;
	m->dec_lanes = false;
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

int nwc_model_alloc(unsigned int h, unsigned int r, unsigned int nq,
		    uint32_t flags, struct nwc_model **out)
{
	size_t n = model_nparams(h, r, nq, NWC_CHUNK, flags);
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
	m->c = NWC_CHUNK;
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

/*
 * The decoder's input layers folded into one, medians included (mlp.h),
 * once the medians are known; a linear decoder whole into one map per
 * level; nothing to fold without a block.
 */
static int fold_decoder(struct nwc_model *m)
{
	struct nwc_net net = { .h = m->h, .r = m->r, .nq = m->nq,
			       .params = m->dec };
	int ret;

	if (!m->r)
		return 0;
	if (nwc_net_is_linear(&net)) {
		m->dec_linear = malloc(nwc_net_linear_size(m->nq) *
				       sizeof(*m->dec_linear));
		if (!m->dec_linear)
			return -ENOMEM;
		ret = nwc_net_fold_linear(&net, m->emb_dec, m->medians,
					  m->dec_linear);
		if (ret) {
			free(m->dec_linear);
			m->dec_linear = NULL;
		}
		return ret;
	}
	m->dec_folded = malloc(nwc_net_folded_size(m->h) *
			       sizeof(*m->dec_folded));
	if (!m->dec_folded)
		return -ENOMEM;
	ret = nwc_net_fold(&net, m->medians, m->dec_folded);
	if (ret) {
		free(m->dec_folded);
		m->dec_folded = NULL;
	}
	m->dec_lanes = !ret && nwc_net_lanes_ok(&net);
	return ret;
}

/* The tables laid out for the vector decoder; none (the scalar decoder)
 * for more tables than it indexes. */
static int build_flat(struct nwc_model *m)
{
	int ret = nwc_ents_flat_build((const struct nwc_qdist *const *)m->tables,
				      nwc_model_ntables(m), &m->flat);

	return ret == -EINVAL ? 0 : ret;
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
	if (!ret)
		ret = build_flat(m);
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
	ret = nwc_model_alloc(h, r, nq, flags, &m);
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
	if (!ret)
		ret = build_flat(m);
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

int nwc_model_scratch_reserve(struct nwc_model_scratch *s, size_t n)
{
	float *nb;

	if (n > SIZE_MAX / (NWC_CHUNK * sizeof(float)))
		return -EINVAL;
	if (n * NWC_CHUNK <= s->cap)
		return 0;
	nb = realloc(s->buf, n * NWC_CHUNK * sizeof(float));
	if (!nb)
		return -ENOMEM;
	s->buf = nb;
	s->cap = n * NWC_CHUNK;
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
	if (m->dec_linear)
		return nwc_net_forward_linear(&net, m->dec_linear, q, y, n,
					      xhat);
	if (m->dec_folded)
		return nwc_net_forward_folded(&net, m->dec_folded, m->emb_dec,
					      q, y, n, xhat, s->net);
	ret = nwc_model_scratch_reserve(s, n);
	if (ret)
		return ret;
	/* a chunk's latents are NWC_CHUNK = 16 floats: four vectors */
	for (size_t i = 0; i < n * NWC_CHUNK; i += NWC_CHUNK)
		for (size_t c = 0; c < NWC_CHUNK; c += 4)
			v4_store(s->buf + i + c, v4_load(y + i + c) +
				 v4_load(m->medians + c));
	return nwc_net_forward(&net, m->emb_dec, q, s->buf, n, xhat, s->net);
}

bool nwc_model_lanes_ok(const struct nwc_model *m)
{
	return m->finalized && m->dec_lanes;
}

int nwc_model_synthesize_lanes(const struct nwc_model *m, const uint8_t *q,
			       unsigned int lanes, const float *y,
			       size_t rows, const float *scale,
			       unsigned int dtype, void *out, size_t ldo)
{
	struct nwc_net net = { .h = m->h, .r = m->r, .nq = m->nq,
			       .params = m->dec };

	if (!nwc_model_lanes_ok(m))
		return -EINVAL;
	return nwc_net_forward_lanes(&net, m->dec_folded, m->emb_dec, q,
				     lanes, y, rows, scale, dtype, out, ldo);
}

int nwc_model_decode_chunks(const struct nwc_model *m, const int32_t *sym,
			    const uint8_t *q, size_t n, float *xhat,
			    struct nwc_model_scratch *s)
{
	/* synthesize() copies its latents before writing @xhat */
	for (size_t i = 0; i < n * NWC_CHUNK; i++)
		xhat[i] = (float)sym[i];
	return nwc_model_synthesize(m, xhat, q, n, xhat, s);
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
