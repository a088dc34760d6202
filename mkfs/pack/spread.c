/* SPDX-License-Identifier: MIT */
/*
 * spread.c - nwc_pack() across the ranks of a group (mkfs/group/group.h):
 * every rank makes the same plan; a lossy tensor is coded by the rank the
 * rate plan gave it, and everything else by rank 0.  Ranks other than 0
 * send each finished job, in plan order, to rank 0, whose writer receives
 * it when it reaches it (messages of one pair of ranks keep their order).
 *
 * A job travels as a header (struct wire) and then one message of bytes:
 * the band lengths or the fallback blocks' lengths, then the side record
 * and the payloads.  The ranks run one build of mkfs.nwc on one kind of
 * machine, so numbers travel in the machine's own byte order.
 */
#include "codec/common/base.h"

#include <stdlib.h>

#include "codec/common/log.h"
#include "mkfs/group/group.h"
#include "mkfs/pack/pack_impl.h"

struct wire {
	int32_t err_code;
	uint32_t nbands;	/* coded: bands; else 0 */
	uint32_t n_sub;		/* codec failed: lossless blocks; else 0 */
	uint32_t coded;		/* j->enc was set */
	uint64_t side_len;
	uint64_t bytes;		/* of the message that follows */
	double sig, err, hsig, herr;
};

/* A lossless block of a fallback, as it travels. */
struct wire_sub {
	uint64_t len;
	uint64_t out_len;
	uint64_t raw;
};

unsigned pack_job_rank(const struct pipe *p, const struct job *j)
{
	return j->lossy >= 0 ? p->lt[j->lossy].rank : 0;
}

int pack_own_jobs(struct pipe *p)
{
	size_t lossy = 0, mine = 0;

	p->order = malloc(NWC_MAX(p->n_jobs, 1) * sizeof(*p->order));
	if (!p->order)
		return -ENOMEM;
	p->n_order = 0;
	for (size_t i = 0; i < p->n_jobs; i++) {
		const struct job *j = &p->jobs[i];

		if (pack_job_rank(p, j) == p->rank)
			p->order[p->n_order++] = i;
		lossy += j->lossy >= 0;
		mine += j->lossy >= 0 && pack_job_rank(p, j) == p->rank;
	}
	if (nwc_group_size() > 1)
		nwc_dbg("rank %u: codes %zu of the %zu lossy tensors", p->rank,
			mine, lossy);
	return 0;
}

/* The bytes of a finished job, after its header's fields are set. */
static int pack_wire(const struct job *j, struct wire *h, uint8_t **out)
{
	const struct nwc_tenc *e = j->enc;
	uint8_t *buf, *q;

	memset(h, 0, sizeof(*h));
	h->err_code = j->err_code;
	h->sig = j->sig;
	h->err = j->err;
	h->hsig = j->hsig;
	h->herr = j->herr;
	if (e) {
		h->coded = 1;
		h->nbands = e->nbands;
		h->side_len = e->side_len;
		h->bytes = e->nbands * sizeof(uint64_t) + e->side_len;
		for (uint32_t b = 0; b < e->nbands; b++)
			h->bytes += e->band_len[b];
	} else if (!j->err_code) {
		h->n_sub = j->n_sub;
		h->bytes = j->n_sub * sizeof(struct wire_sub);
		for (uint32_t i = 0; i < j->n_sub; i++)
			h->bytes += j->sub[i].out_len;
	}
	q = buf = malloc(NWC_MAX(h->bytes, 1));
	if (!buf)
		return -ENOMEM;
	if (e) {
		for (uint32_t b = 0; b < e->nbands; b++) {
			uint64_t len = e->band_len[b];

			memcpy(q, &len, sizeof(len));
			q += sizeof(len);
		}
		memcpy(q, e->side, e->side_len);
		q += e->side_len;
		for (uint32_t b = 0; b < e->nbands; b++) {
			memcpy(q, e->band[b], e->band_len[b]);
			q += e->band_len[b];
		}
	} else {
		for (uint32_t i = 0; i < h->n_sub; i++) {
			struct wire_sub ws = {
				.len = j->sub[i].len,
				.out_len = j->sub[i].out_len,
				.raw = j->sub[i].raw,
			};

			memcpy(q, &ws, sizeof(ws));
			q += sizeof(ws);
		}
		for (uint32_t i = 0; i < h->n_sub; i++) {
			memcpy(q, j->sub[i].out, j->sub[i].out_len);
			q += j->sub[i].out_len;
		}
	}
	assert((size_t)(q - buf) == h->bytes);
	*out = buf;
	return 0;
}

int pack_send_jobs(struct pipe *p)
{
	for (size_t k = 0; k < p->n_order; k++) {
		struct job *j = pack_wait_job(p, &p->jobs[p->order[k]]);
		struct wire h;
		uint8_t *buf;
		int ret;

		ret = pack_wire(j, &h, &buf);
		if (ret)
			return ret;
		nwc_group_send(0, NWC_GROUP_TAG_JOB, &h, sizeof(h));
		nwc_group_send(0, NWC_GROUP_TAG_JOB, buf, h.bytes);
		free(buf);
		ret = j->err_code;
		pack_consumed_job(p, j);
		/* Rank 0 stops at this job, and ends the run. */
		if (ret)
			return ret;
	}
	return 0;
}

/* Job @j's fields from its bytes at @q (@h->bytes of them). */
static int unpack_coded(struct job *j, const struct wire *h, const uint8_t *q)
{
	struct nwc_tenc *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	j->enc = e;
	e->nbands = h->nbands;
	e->band = calloc(NWC_MAX(h->nbands, 1), sizeof(*e->band));
	e->band_len = calloc(NWC_MAX(h->nbands, 1), sizeof(*e->band_len));
	e->side = malloc(NWC_MAX(h->side_len, 1));
	if (!e->band || !e->band_len || !e->side)
		return -ENOMEM;
	for (uint32_t b = 0; b < h->nbands; b++) {
		uint64_t len;

		memcpy(&len, q, sizeof(len));
		q += sizeof(len);
		e->band_len[b] = len;
	}
	e->side_len = h->side_len;
	memcpy(e->side, q, h->side_len);
	q += h->side_len;
	e->coded_bytes = h->side_len;
	for (uint32_t b = 0; b < h->nbands; b++) {
		e->band[b] = malloc(NWC_MAX(e->band_len[b], 1));
		if (!e->band[b])
			return -ENOMEM;
		memcpy(e->band[b], q, e->band_len[b]);
		q += e->band_len[b];
		e->coded_bytes += e->band_len[b];
	}
	return 0;
}

static int unpack_fallback(struct job *j, const struct wire *h,
			   const uint8_t *q)
{
	const uint8_t *data = q + h->n_sub * sizeof(struct wire_sub);

	j->sub = calloc(NWC_MAX(h->n_sub, 1), sizeof(*j->sub));
	if (!j->sub)
		return -ENOMEM;
	j->n_sub = h->n_sub;
	for (uint32_t i = 0; i < h->n_sub; i++) {
		struct job *s = &j->sub[i];
		struct wire_sub ws;

		memcpy(&ws, q + i * sizeof(ws), sizeof(ws));
		s->len = ws.len;
		s->out_len = ws.out_len;
		s->raw = ws.raw;
		s->out = malloc(NWC_MAX(ws.out_len, 1));
		if (!s->out)
			return -ENOMEM;
		memcpy(s->out, data, ws.out_len);
		data += ws.out_len;
	}
	return 0;
}

void pack_recv_job(struct pipe *p, struct job *j)
{
	unsigned from = pack_job_rank(p, j);
	struct wire h;
	uint8_t *buf;
	int ret;

	nwc_group_recv(from, NWC_GROUP_TAG_JOB, &h, sizeof(h));
	buf = malloc(NWC_MAX(h.bytes, 1));
	if (!buf) {
		/* The bytes stay unread: the writer stops at this job, and
		 * mkfs.nwc ends every rank. */
		j->err_code = -ENOMEM;
		j->done = true;
		return;
	}
	nwc_group_recv(from, NWC_GROUP_TAG_JOB, buf, h.bytes);
	j->err_code = h.err_code;
	j->sig = h.sig;
	j->err = h.err;
	j->hsig = h.hsig;
	j->herr = h.herr;
	ret = 0;
	if (h.coded)
		ret = unpack_coded(j, &h, buf);
	else if (!h.err_code)
		ret = unpack_fallback(j, &h, buf);
	if (ret && !j->err_code)
		j->err_code = ret;
	free(buf);
	j->done = true;
}
