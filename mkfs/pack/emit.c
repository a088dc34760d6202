/* SPDX-License-Identifier: MIT */
/*
 * emit.c - nwc_pack()'s writer loop: the tree, the codec models, then
 * every file's tensors and extents in plan order, each extent followed by
 * the blocks the workers made for it.
 */
#include "codec/common/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "codec/common/log.h"
#include "mkfs/pack/pack_impl.h"
#include "mkfs/pack/progress.h"

int pack_add_nodes(struct nwc_writer *wr, struct nwc_tree *tree)
{
	int ret;

	ret = nwc_writer_set_root(wr, tree->e[0].mode, tree->e[0].mtime,
				  tree->e[0].mtime_ns);
	for (uint32_t i = 1; i < tree->n && !ret; i++) {
		struct nwc_entry *e = &tree->e[i];

		ret = nwc_writer_add_node(wr, tree->e[e->parent].id, e->name,
					  strlen(e->name), e->mode, e->mtime,
					  e->mtime_ns, &e->id);
		if (!ret && S_ISLNK(e->mode))
			ret = nwc_writer_set_symlink(wr, e->id, e->target,
						     strlen(e->target));
		if (ret)
			nwc_err("%s: cannot add to image: %s", e->path,
				nwc_strerror(ret));
	}
	return ret;
}

/* Embed the codec models the plan uses, at the indices it gave them. */
int pack_add_models(struct nwc_writer *wr, const struct nwc_rate_models *ms)
{
	for (unsigned k = 0; k < ms->n; k++) {
		const struct nwc_rate_model *rm = &ms->m[k];
		uint32_t idx;
		uint8_t *buf;
		size_t len;
		int ret;

		if (!rm->used)
			continue;
		ret = nwc_model_to_buf(rm->model, &buf, &len);
		if (!ret) {
			ret = nwc_writer_add_codec_item(wr, NWC_CODEC_NWC, buf,
							len, &idx);
			free(buf);
		}
		if (!ret && idx != rm->index)
			ret = -EINVAL;
		if (ret) {
			nwc_err("%s: cannot embed codec model: %s", rm->name,
				nwc_strerror(ret));
			return ret;
		}
	}
	return 0;
}

/* State of the writer loop. */
struct wstate {
	struct pipe *p;
	struct nwc_writer *wr;
	struct nwc_progress prog;
	uint64_t done_bytes;
	uint64_t *stored;	/* of the current file */
};

/*
 * Write the lossless extent of @g and its blocks: the plan's jobs from
 * @j on, waited for and released (@planned), or the finished sub-jobs of
 * a lossy job.
 */
static int put_lossless(struct wstate *ws, uint32_t id, const struct seg *g,
			uint32_t tensor, struct job *j, bool planned)
{
	uint32_t block_len = ws->p->block_len, ext;
	struct nwc_wextent we = {
		.len = g->len,
		.block_len = block_len,
		.codec = PACK_LOSSLESS,
		.codec_arg = g->arg,
		.tensor = tensor,
	};
	int ret;

	if (g->len <= block_len &&
	    (planned ? pack_wait_job(ws->p, j) : j)->raw) {
		we.codec = NWC_CODEC_RAW;
		we.codec_arg = 0;
	}
	ret = nwc_writer_add_extent(ws->wr, id, &we, &ext);
	for (uint64_t o = 0; !ret && o < g->len; o += block_len, j++) {
		if (planned)
			pack_wait_job(ws->p, j);
		ret = j->err_code;
		if (!ret)
			ret = nwc_writer_add_block(ws->wr, ext, j->out,
						   j->out_len,
						   (uint32_t)j->len);
		if (!ret)
			*ws->stored += j->out_len;
		ws->done_bytes += j->len;
		if (planned)
			pack_consumed_job(ws->p, j);
		nwc_progress_update(&ws->prog, ws->done_bytes,
				    nwc_writer_data_len(ws->wr));
	}
	return ret;
}

/* Write a coded tensor: its side record, then its NWC extent. */
static int put_nwc(struct wstate *ws, uint32_t id, uint32_t tensor,
		   const struct job *j, struct nwc_pack_result *res)
{
	const struct nwc_tenc *e = j->enc;
	const struct nwc_rate_tensor *t = &ws->p->lt[j->lossy];
	struct nwc_pack_lossy_result *lr = &res->lossy;
	uint64_t payload = 0;
	uint32_t ext;
	int ret;

	ret = nwc_writer_set_tensor_side(ws->wr, tensor, NWC_CODEC_NWC, e->side,
					 e->side_len);
	/* What it costs in fidelity, for nwc info and the mount's xattrs. */
	if (!ret)
		ret = nwc_writer_set_tensor_error(ws->wr, tensor, j->sig, j->err);
	if (!ret)
		ret = nwc_writer_add_tensor_extent(ws->wr, id, tensor, e->nbands,
						e->band, e->band_len, &ext);
	if (ret) {
		nwc_err("%s: %s: cannot add the coded tensor to the image: %s",
			t->path, t->name, nwc_strerror(ret));
		return ret;
	}
	for (uint32_t b = 0; b < e->nbands; b++)
		payload += e->band_len[b];
	*ws->stored += payload + e->side_len;
	lr->tensors++;
	lr->weights += (uint64_t)t->m * t->n;
	lr->payload += payload;
	lr->side += e->side_len;
	lr->exact += e->nexact;
	lr->sig += j->sig;
	lr->err += j->err;
	lr->hsig += j->hsig;
	lr->herr += j->herr;
	lr->per_model[t->model]++;
	return 0;
}

/* Describe the tensors of safetensors file @f to the writer. */
static int add_tensors(struct nwc_writer *wr, uint32_t id,
		       const struct fplan *f, uint32_t *tidx)
{
	int ret = nwc_writer_set_flags(wr, id, NWC_INODE_F_SAFETENSORS);

	for (size_t t = 0; !ret && t < f->st->n_tensors; t++) {
		const struct nwc_st_tensor *st = &f->st->tensors[t];
		struct nwc_wtensor wt = {
			.name = st->name,
			.name_len = st->name_len,
			.dtype = st->dtype,
			.ndim = st->ndim,
			.shape = st->shape,
			.data_off = f->st->data_off + st->begin,
			.data_len = st->end - st->begin,
			.codec = PACK_LOSSLESS,
		};

		ret = nwc_writer_add_tensor(wr, id, &wt, &tidx[t]);
	}
	return ret;
}

/* Writer loop: extents in plan order, each followed by its blocks. */
int pack_write_files(struct pipe *p, struct nwc_writer *wr,
		     struct nwc_tree *tree, uint32_t n_files,
		     struct nwc_pack_result *res)
{
	struct wstate ws = { .p = p, .wr = wr };
	size_t ji = 0;
	int ret = 0;

	nwc_progress_start(&ws.prog, p->opts->progress, tree->total);
	for (uint32_t fi = 0; fi < n_files && !ret; fi++) {
		const struct fplan *f = &p->files[fi];
		uint32_t id = tree->e[f->entry].id;
		uint32_t *tidx = NULL;

		ws.stored = &res->stored[f->entry];
		if (f->st) {
			tidx = calloc(f->st->n_tensors + 1, sizeof(*tidx));
			ret = tidx ? add_tensors(wr, id, f, tidx) : -ENOMEM;
		}
		for (uint32_t s = 0; !ret && s < f->n_segs; s++) {
			const struct seg *g = &f->segs[s];
			uint32_t tensor = g->tensor < 0 ? NWC_NO_TENSOR :
							  tidx[g->tensor];
			struct job *j = &p->jobs[ji];

			if (g->lossy < 0) {
				ret = put_lossless(&ws, id, g, tensor, j, true);
				ji += (g->len + p->block_len - 1) /
				      p->block_len;
				continue;
			}
			pack_wait_job(p, j);
			ji++;
			ret = j->err_code;
			if (!ret && j->enc) {
				ret = put_nwc(&ws, id, tensor, j, res);
			} else if (!ret) {
				res->lossy.fallbacks++;
				ret = put_lossless(&ws, id, g, tensor, j->sub,
						   false);
			}
			ws.done_bytes += j->enc ? g->len : 0;
			pack_consumed_job(p, j);
			nwc_progress_update(&ws.prog, ws.done_bytes,
					    nwc_writer_data_len(wr));
		}
		free(tidx);
	}
	if (!ret)
		nwc_progress_finish(&ws.prog);
	else if (ws.prog.on)
		fputc('\n', stderr);
	return ret;
}
