/* SPDX-License-Identifier: MIT */
/* test_nwcmodel.c - codec model file format and the chunk round trip. */
#include "codec/common/base.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "codec/nwc/entropy.h"
#include "codec/common/hash.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/prior.h"
#include "tests/t.h"

#define TH 8
#define TR 1
#define NCHUNK 300

static char dir[200];
/* Hide the error lines of expected failures (NWC_TEST_VERBOSE shows them). */
/* A small untrained model, finalized. */
static struct nwc_model *small_model(uint64_t seed)
{
	struct nwc_model *m;

	if (nwc_model_create(TH, TR, NWC_NET_Q, &m))
		return NULL;
	m->lambda = 100;
	nwc_net_init(m->enc, TH, TR, seed);
	nwc_net_init(m->dec, TH, TR, seed + 1);
	nwc_emb_init(m->emb, NWC_NET_Q, TH);
	/* levels differ, so a level mix-up would show */
	for (unsigned int i = 0; i < NWC_NET_Q * TH; i++) {
		m->emb[i] = 1.0f + 0.05f * (float)(i % 7);
		m->emb_dec[i] = 1.0f - 0.04f * (float)(i % 5);
	}
	nwc_prior_init(m->prior, m->quantiles, m->c, seed + 2);
	if (nwc_model_finalize(m)) {
		nwc_model_free(m);
		return NULL;
	}
	return m;
}

static void same_model(const struct nwc_model *a, const struct nwc_model *b)
{
	T_EQ(a->h, b->h);
	T_EQ(a->r, b->r);
	T_EQ(a->nq, b->nq);
	T_EQ(a->c, b->c);
	T_CHECK(a->lambda == b->lambda);
	T_EQ(a->nparams, b->nparams);
	T_MEMEQ(a->params, b->params, a->nparams * sizeof(float));
	T_MEMEQ(a->medians, b->medians, a->c * sizeof(float));
	for (unsigned int c = 0; c < a->c; c++) {
		const struct nwc_qdist *x = a->tables[c], *y = b->tables[c];

		T_EQ(nwc_qdist_lo(x), nwc_qdist_lo(y));
		T_EQ(nwc_qdist_n(x), nwc_qdist_n(y));
		for (uint32_t s = 0; s <= nwc_qdist_n(x); s++)
			T_EQ(nwc_qdist_freq(x, s), nwc_qdist_freq(y, s));
	}
}

static int files_in_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_layout(void)
{
	struct nwc_model *m = small_model(1);
	size_t net = nwc_net_nparams(TH, TR);

	T_CHECK(m != NULL);
	if (!m)
		return;
	T_EQ(m->nparams, 2 * net + 2 * NWC_NET_Q * TH + 16 * 58 + 48);
	T_CHECK(m->flags & NWC_MODEL_F_DEC_LEVELS);
	T_CHECK(m->dec == m->enc + net);
	T_CHECK(m->emb == m->dec + net);
	T_CHECK(m->emb_dec == m->emb + NWC_NET_Q * TH);
	T_CHECK(m->prior == m->emb_dec + NWC_NET_Q * TH);
	T_CHECK(m->quantiles + 48 == m->params + m->nparams);
	/* untrained prior: medians are the middle quantiles */
	for (unsigned int c = 0; c < m->c; c++)
		T_CHECK(m->medians[c] == m->quantiles[3 * c + 1]);
	nwc_model_free(m);
	nwc_model_free(NULL);
	T_EQ(nwc_model_create(0, 1, 4, &m), -EINVAL);
	T_CHECK(m == NULL);
}

static void test_roundtrip_file(void)
{
	struct nwc_model *m = small_model(2), *l = NULL;
	char path[256];

	T_CHECK(m != NULL);
	if (!m)
		return;
	snprintf(path, sizeof(path), "%s/a.nwcm", dir);
	T_EQ(nwc_model_save(m, path), 0);
	T_EQ(nwc_model_load(path, &l), 0);
	if (l) {
		same_model(m, l);
		T_CHECK(l->finalized);
	}
	/* overwrite in place */
	T_EQ(nwc_model_save(l, path), 0);
	nwc_model_free(l);
	T_EQ(files_in_dir(), 1);
	unlink(path);
	T_EQ(files_in_dir(), 0);
	/* unfinalized models cannot be saved */
	m->finalized = false;
	t_quiet(true);
	T_CHECK(nwc_model_save(m, path) < 0);
	T_EQ(files_in_dir(), 0);
	/* a missing directory */
	snprintf(path, sizeof(path), "%s/nodir/a.nwcm", dir);
	m->finalized = true;
	T_EQ(nwc_model_save(m, path), -ENOENT);
	T_EQ(nwc_model_load(path, &l), -ENOENT);
	t_quiet(false);
	nwc_model_free(m);
}

static void fix_hash(uint8_t *b, size_t len)
{
	nwc_put_le64(b + len - 8, nwc_hash64(b, len - 8));
}

static void test_corruption(void)
{
	struct nwc_model *m = small_model(3), *l;
	size_t len, bad = 0;
	uint8_t *buf;
	float nan = NAN;
	uint32_t u;

	T_CHECK(m != NULL);
	if (!m)
		return;
	T_EQ(nwc_model_to_buf(m, &buf, &len), 0);
	T_EQ(nwc_model_from_buf(buf, len, &l), 0);
	nwc_model_free(l);
	t_quiet(true);
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x10;
		if (nwc_model_from_buf(buf, len, &l) >= 0) {
			bad++;
			nwc_model_free(l);
		}
		T_CHECK(l == NULL);
		buf[i] ^= 0x10;
	}
	T_EQ(bad, 0);
	for (size_t i = 0; i < len; i++)
		bad += nwc_model_from_buf(buf, i, &l) != -NWC_ECORRUPT;
	T_EQ(bad, 0);

	/* a NaN parameter with a valid checksum */
	memcpy(&u, &nan, 4);
	nwc_put_le32(buf + NWC_MODEL_HDR_SIZE + 40, u);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_ECORRUPT);
	free(buf);

	/* a NaN median */
	T_EQ(nwc_model_to_buf(m, &buf, &len), 0);
	nwc_put_le32(buf + len - 12, u);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_ECORRUPT);
	free(buf);

	/* other versions and flags are features we lack */
	T_EQ(nwc_model_to_buf(m, &buf, &len), 0);
	nwc_put_le32(buf + 8, 2);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_EFEATURE);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_EFEATURE);
	nwc_put_le32(buf + 8, 1);
	nwc_put_le32(buf + 32, NWC_MODEL_F_KNOWN | 4);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_EFEATURE);
	/* without the TCQ flag the half-offset tables are trailing junk */
	nwc_put_le32(buf + 32, NWC_MODEL_F_DEC_LEVELS);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_ECORRUPT);
	/* without F_DEC_LEVELS the float count is wrong */
	nwc_put_le32(buf + 32, NWC_MODEL_F_TCQ);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_ECORRUPT);
	nwc_put_le32(buf + 32, NWC_MODEL_F_KNOWN);
	/* a shape that does not match the float count */
	nwc_put_le32(buf + 12, TH + 1);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_ECORRUPT);
	nwc_put_le32(buf + 12, TH);
	nwc_put_le32(buf + 24, 8);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_ECORRUPT);
	nwc_put_le32(buf + 24, 16);
	/* a table length that runs into the next table */
	nwc_put_le32(buf + NWC_MODEL_HDR_SIZE + 4 * m->nparams,
		     (uint32_t)nwc_qdist_saved_size(m->tables[0]) + 4);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), -NWC_ECORRUPT);
	t_quiet(false);
	free(buf);
	nwc_model_free(m);
}

/* A model without F_DEC_LEVELS (one level table for both networks, as
 * files before the flag) loads; its decoder uses the encoder's table. */
static void test_shared_levels(void)
{
	struct nwc_model *m = small_model(6), *l = NULL;
	size_t len, qh = NWC_NET_Q * TH * sizeof(float), at;
	uint8_t *buf;

	T_CHECK(m != NULL);
	if (!m)
		return;
	T_EQ(nwc_model_to_buf(m, &buf, &len), 0);
	at = NWC_MODEL_HDR_SIZE + 4 * (size_t)(m->emb_dec - m->params);
	memmove(buf + at, buf + at + qh, len - at - qh);
	len -= qh;
	nwc_put_le32(buf + 32, NWC_MODEL_F_TCQ);
	nwc_put_le64(buf + 36, m->nparams - NWC_NET_Q * TH);
	fix_hash(buf, len);
	T_EQ(nwc_model_from_buf(buf, len, &l), 0);
	if (l) {
		T_CHECK(l->emb_dec == l->emb);
		T_CHECK(!(l->flags & NWC_MODEL_F_DEC_LEVELS));
		T_MEMEQ(l->emb, m->emb, qh);
		T_MEMEQ(l->prior, m->prior, 16 * 58 * sizeof(float));
		nwc_model_free(l);
	}
	free(buf);
	nwc_model_free(m);
}

static void test_file_errors(void)
{
	struct nwc_model *m = small_model(4), *l;
	char path[256];
	FILE *f;

	T_CHECK(m != NULL);
	if (!m)
		return;
	snprintf(path, sizeof(path), "%s/b.nwcm", dir);
	T_EQ(nwc_model_save(m, path), 0);
	f = fopen(path, "r+b");
	T_CHECK(f != NULL);
	if (f) {
		fseek(f, 100, SEEK_SET);
		fputc(0x55, f);
		fclose(f);
	}
	t_quiet(true);
	T_EQ(nwc_model_load(path, &l), -NWC_ECORRUPT);
	T_EQ(truncate(path, 0), 0);
	T_EQ(nwc_model_load(path, &l), -NWC_ECORRUPT);
	T_EQ(nwc_model_load(dir, &l), -NWC_ECORRUPT);
	t_quiet(false);
	unlink(path);
	T_EQ(files_in_dir(), 0);
	nwc_model_free(m);
}

/* Deterministic chunks of scale ~1 (like row-normalized weights). */
static void make_chunks(float *x, uint8_t *q, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n * NWC_CHUNK; i++)
		x[i] = (float)((double)(t_rand(&seed) >> 11) / 9007199254740992.0 *
			       4.0 - 2.0);
	for (size_t i = 0; i < n; i++)
		q[i] = (uint8_t)(t_rand(&seed) % NWC_NET_Q);
}

static void test_chunks(void)
{
	struct nwc_model *m = small_model(5);
	struct nwc_model_scratch *s;
	struct nwc_net enc;
	float *x, *y, *xh, *xh2, *xh3;
	int32_t *sym, *sym2, *dsym;
	size_t cap = nwc_ents_bound(NCHUNK * NWC_CHUNK), mism = 0, nonzero = 0;
	uint8_t q[NCHUNK], *stream;
	ssize_t len;

	T_CHECK(m != NULL);
	if (!m)
		return;
	x = malloc(NCHUNK * NWC_CHUNK * sizeof(*x));
	y = malloc(NCHUNK * NWC_CHUNK * sizeof(*y));
	xh = malloc(NCHUNK * NWC_CHUNK * sizeof(*xh));
	xh2 = malloc(NCHUNK * NWC_CHUNK * sizeof(*xh2));
	xh3 = malloc(NCHUNK * NWC_CHUNK * sizeof(*xh3));
	sym = malloc(NCHUNK * NWC_CHUNK * sizeof(*sym));
	sym2 = malloc(NCHUNK * NWC_CHUNK * sizeof(*sym2));
	dsym = malloc(NCHUNK * NWC_CHUNK * sizeof(*dsym));
	stream = malloc(cap);
	T_EQ(nwc_model_scratch_create(&s), 0);
	make_chunks(x, q, NCHUNK, 42);

	T_EQ(nwc_model_encode_chunks(m, x, q, NCHUNK, sym, s), 0);
	/* the symbols are the rounded latents, computed independently */
	enc = (struct nwc_net){ .h = m->h, .r = m->r, .nq = m->nq,
				.params = m->enc };
	{
		struct nwc_net_scratch *ns;

		T_EQ(nwc_net_scratch_create(&ns), 0);
		T_EQ(nwc_net_forward(&enc, m->emb, q, x, NCHUNK, y, ns), 0);
		nwc_net_scratch_free(ns);
	}
	for (size_t i = 0; i < NCHUNK * NWC_CHUNK; i++) {
		double v = (double)y[i] - (double)m->medians[i % 16];
		/* half away from zero */
		double r = v < 0 ? -floor(-v + 0.5) : floor(v + 0.5);

		mism += sym[i] != (int32_t)r && fabs(fabs(v - trunc(v)) - 0.5) > 1e-6;
		nonzero += sym[i] != 0;
	}
	T_EQ(mism, 0);
	T_CHECK(nonzero > NCHUNK);

	/* entropy coding is exact */
	len = nwc_model_code_syms(m, sym, NCHUNK * NWC_CHUNK, stream, cap);
	T_CHECK(len > 0);
	T_EQ(nwc_model_code_syms(m, sym, NCHUNK * NWC_CHUNK, stream, 8),
	     -ENOBUFS);
	len = nwc_model_code_syms(m, sym, NCHUNK * NWC_CHUNK, stream, cap);
	T_EQ(nwc_model_decode_syms(m, stream, (size_t)len, dsym,
				   NCHUNK * NWC_CHUNK), 0);
	T_MEMEQ(sym, dsym, NCHUNK * NWC_CHUNK * sizeof(*sym));
	stream[len / 2] ^= 0x40;
	{
		int r = nwc_model_decode_syms(m, stream, (size_t)len, dsym,
					      NCHUNK * NWC_CHUNK);

		/* a flip either fails or decodes other values */
		T_CHECK(r == -NWC_ECORRUPT ||
			memcmp(sym, dsym, NCHUNK * NWC_CHUNK * sizeof(*sym)));
	}

	/*
	 * decoding the decoded symbols = decoding (rounded y) + median: to
	 * the bit through the folded decoder, to float rounding layer by
	 * layer
	 */
	T_EQ(nwc_model_decode_chunks(m, dsym, q, NCHUNK, xh, s), 0);
	T_EQ(nwc_model_decode_chunks(m, sym, q, NCHUNK, xh2, s), 0);
	{
		struct nwc_net dec = { .h = m->h, .r = m->r, .nq = m->nq,
				       .params = m->dec };
		struct nwc_net_scratch *ns;
		float *fold = malloc(nwc_net_folded_size(m->h) *
				     sizeof(*fold));
		double err = 0, rms = 0;

		T_EQ(nwc_net_scratch_create(&ns), 0);
		T_EQ(nwc_net_fold(&dec, m->medians, fold), 0);
		for (size_t i = 0; i < NCHUNK * NWC_CHUNK; i++)
			y[i] = (float)sym[i];
		T_EQ(nwc_net_forward_folded(&dec, fold, m->emb_dec, q, y,
					    NCHUNK, xh3, ns), 0);
		T_MEMEQ(xh2, xh3, NCHUNK * NWC_CHUNK * sizeof(float));
		for (size_t i = 0; i < NCHUNK * NWC_CHUNK; i++)
			y[i] = (float)sym[i] + m->medians[i % 16];
		T_EQ(nwc_net_forward(&dec, m->emb_dec, q, y, NCHUNK, xh3, ns),
		     0);
		for (size_t i = 0; i < NCHUNK * NWC_CHUNK; i++) {
			err = fmax(err, fabs(xh2[i] - xh3[i]));
			rms += (double)xh3[i] * xh3[i];
		}
		rms = sqrt(rms / (NCHUNK * NWC_CHUNK));
		T_CHECK(err <= 1e-5 * rms);
		nwc_net_scratch_free(ns);
		free(fold);
	}

	/* deterministic: a second run, through a reloaded model */
	{
		struct nwc_model *l;
		uint8_t *buf;
		size_t blen;

		T_EQ(nwc_model_to_buf(m, &buf, &blen), 0);
		T_EQ(nwc_model_from_buf(buf, blen, &l), 0);
		T_EQ(nwc_model_encode_chunks(l, x, q, NCHUNK, sym2, s), 0);
		T_MEMEQ(sym, sym2, NCHUNK * NWC_CHUNK * sizeof(*sym));
		T_EQ(nwc_model_decode_chunks(l, sym2, q, NCHUNK, xh, s), 0);
		T_MEMEQ(xh, xh2, NCHUNK * NWC_CHUNK * sizeof(float));
		free(buf);
		nwc_model_free(l);
	}

	/* bad level */
	q[3] = NWC_NET_Q;
	T_EQ(nwc_model_encode_chunks(m, x, q, NCHUNK, sym, s), -EINVAL);
	q[3] = 0;
	/* a non-finite input gives no symbols */
	x[5] = INFINITY;
	T_EQ(nwc_model_encode_chunks(m, x, q, NCHUNK, sym, s), -ERANGE);

	nwc_model_scratch_free(s);
	free(stream);
	free(dsym);
	free(sym2);
	free(sym);
	free(xh3);
	free(xh2);
	free(xh);
	free(y);
	free(x);
	nwc_model_free(m);
}

int main(void)
{
	if (t_tmpdir(dir, sizeof(dir), "test-nwcmodel"))
		return 99;
	T_RUN(test_layout);
	T_RUN(test_roundtrip_file);
	T_RUN(test_corruption);
	T_RUN(test_shared_levels);
	T_RUN(test_file_errors);
	T_RUN(test_chunks);
	T_EQ(files_in_dir(), 0);
	rmdir(dir);
	T_EXIT();
}
