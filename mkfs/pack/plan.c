/* SPDX-License-Identifier: MIT */
/*
 * plan.c - nwc_pack()'s plan: the extents of every file (a safetensors
 * file is cut into its header, its tensors and any gaps), the tensors the
 * lossy policy hands to the codec and their rate plan, and the jobs, in
 * image order: one per block, one per lossy tensor.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/array.h"
#include "codec/common/log.h"
#include "mkfs/pack/pack_impl.h"
#include "mkfs/pack/progress.h"

static int add_seg(struct fplan *f, size_t *cap, uint64_t off, uint64_t len,
		   uint16_t codec, uint32_t arg, int32_t tensor)
{
	int ret;

	if (!len)
		return 0;
	ret = nwc_array_reserve_max((void **)&f->segs, cap,
				    (size_t)f->n_segs + 1, sizeof(*f->segs),
				    UINT32_MAX);
	if (ret)
		return ret;
	f->segs[f->n_segs++] = (struct seg){ off, len, codec, arg, tensor, -1 };
	return 0;
}

/* Read and parse a safetensors header; plan header, tensors and gaps. */
static int plan_safetensors(struct fplan *f, uint64_t size, size_t *cap)
{
	uint64_t pos;
	int fd, ret;

	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		nwc_err("%s: %s", f->path, strerror(errno));
		return ret;
	}
	ret = nwc_st_read_fd(fd, size, f->path, &f->st);
	if (ret)
		goto out_close;
	ret = add_seg(f, cap, 0, f->st->data_off, PACK_LOSSLESS, 1, -1);
	pos = f->st->data_off;
	for (size_t i = 0; !ret && i < f->st->n_tensors; i++) {
		const struct nwc_st_tensor *t = &f->st->tensors[i];
		uint64_t b = f->st->data_off + t->begin;

		if (t->end == t->begin)
			continue;
		if (b > pos)	/* bytes no tensor claims: kept verbatim */
			ret = add_seg(f, cap, pos, b - pos, PACK_LOSSLESS, 1, -1);
		if (!ret)
			ret = add_seg(f, cap, b, t->end - t->begin,
				      PACK_LOSSLESS,
				      nwc_codec_arg_for_dtype(t->dtype),
				      (int32_t)i);
		pos = b + (t->end - t->begin);
	}
	if (!ret && pos < size)
		ret = add_seg(f, cap, pos, size - pos, PACK_LOSSLESS, 1, -1);
out_close:
	close(fd);
	return ret;
}

int pack_plan_files(const char *root, const struct nwc_tree *tree,
		    struct fplan **out, uint32_t *n_out)
{
	struct fplan *files;
	uint32_t n = 0;
	int ret = 0;

	files = calloc(tree->n_files ? tree->n_files : 1, sizeof(*files));
	if (!files)
		return -ENOMEM;
	for (uint32_t i = 0; i < tree->n && !ret; i++) {
		const struct nwc_entry *e = &tree->e[i];
		struct fplan *f;
		size_t cap = 0;
		size_t len;

		if (!S_ISREG(e->mode))
			continue;
		f = &files[n++];
		f->entry = i;
		len = strlen(root) + strlen(e->path) + 2;
		f->path = malloc(len);
		if (!f->path) {
			ret = -ENOMEM;
			break;
		}
		snprintf(f->path, len, "%s/%s", root, e->path);
		if (nwc_is_safetensors(e->name))
			ret = plan_safetensors(f, e->size, &cap);
		else
			ret = add_seg(f, &cap, 0, e->size, PACK_LOSSLESS, 1, -1);
	}
	*out = files;
	*n_out = n;
	return ret;
}

void pack_free_plan(struct fplan *files, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free(files[i].path);
		free(files[i].segs);
		nwc_st_free(files[i].st);
	}
	free(files);
}

/* Whether the writer can hold the bands of a matrix of @n columns. */
static bool bands_fit(uint64_t n, unsigned dtype)
{
	return (uint64_t)NWC_CHUNK * n * nwc_dtype_size(dtype) <=
	       NWC_BLOCK_MAX;
}

/* Mark the tensors the policy hands to the codec; list them in p->lt. */
static int select_lossy(struct pipe *p, uint32_t n_files)
{
	const struct nwc_lossy_policy *pol = &p->opts->lossy->policy;
	size_t n = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t fi = 0; fi < n_files; fi++) {
			struct fplan *f = &p->files[fi];

			for (uint32_t s = 0; s < f->n_segs; s++) {
				struct seg *g = &f->segs[s];
				const struct nwc_st_tensor *t;
				struct nwc_rate_tensor *lt;
				double fixed;

				if (g->tensor < 0)
					continue;
				t = &f->st->tensors[g->tensor];
				if (!nwc_lossy_select(pol, t->name, t->dtype,
						      t->ndim, t->shape,
						      &fixed) ||
				    !bands_fit(t->shape[1], t->dtype))
					continue;
				if (!pass) {
					n++;
					continue;
				}
				g->codec = NWC_CODEC_NWC;
				g->lossy = (int32_t)p->n_lt;
				lt = &p->lt[p->n_lt++];
				*lt = (struct nwc_rate_tensor){
					.path = f->path,
					.name = t->name,
					.dtype = t->dtype,
					.m = (uint32_t)t->shape[0],
					.n = (uint32_t)t->shape[1],
					.off = g->off,
					.fixed_bits = fixed,
				};
			}
		}
		if (!pass) {
			if (n > INT32_MAX)
				return -E2BIG;
			p->lt = calloc(NWC_MAX(n, 1), sizeof(*p->lt));
			if (!p->lt)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Tensors the rate plan gave up on go back to the lossless codec. */
static uint32_t unselect_lossless(struct pipe *p, uint32_t n_files)
{
	uint32_t n = 0;

	for (uint32_t fi = 0; fi < n_files; fi++) {
		for (uint32_t s = 0; s < p->files[fi].n_segs; s++) {
			struct seg *g = &p->files[fi].segs[s];

			if (g->lossy >= 0 && p->lt[g->lossy].lossless) {
				g->codec = PACK_LOSSLESS;
				g->lossy = -1;
				n++;
			}
		}
	}
	return n;
}

/* The summary's line for each tensor that the allocation stores exactly
 * (nwc_pack_print_lossy()), which bench/quality-lib.sh reads. */
#define EXACT_LINE "lossy: exact: %s: %s\n"
static int exact_lines(const struct pipe *p, struct nwc_pack_lossy_result *lr)
{
	size_t len = 1, off = 0;

	for (size_t i = 0; i < p->n_lt; i++)
		if (p->lt[i].exact) {
			lr->exact_tensors++;
			len += (size_t)snprintf(NULL, 0, EXACT_LINE,
						p->lt[i].path, p->lt[i].name);
		}
	if (!lr->exact_tensors)
		return 0;
	lr->exact_lines = malloc(len);
	if (!lr->exact_lines)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_lt; i++)
		if (p->lt[i].exact)
			off += (size_t)snprintf(lr->exact_lines + off, len - off,
						EXACT_LINE, p->lt[i].path,
						p->lt[i].name);
	return 0;
}

/* Working memory of a lossy job: the values, the encoder's copies, H. */
static uint64_t lossy_cost(const struct nwc_rate_tensor *t)
{
	uint64_t mn = (uint64_t)t->m * t->n, nn = (uint64_t)t->n * t->n;

	return mn * (24 + nwc_dtype_size(t->dtype)) + (t->have_h ? 8 * nn : 0);
}

int pack_make_jobs(struct pipe *p, uint32_t n_files, uint32_t block_len)
{
	size_t n = 0, k = 0;

	for (uint32_t f = 0; f < n_files; f++) {
		for (uint32_t s = 0; s < p->files[f].n_segs; s++) {
			const struct seg *g = &p->files[f].segs[s];

			n += g->lossy >= 0 ? 1 :
			     (g->len + block_len - 1) / block_len;
		}
	}
	p->jobs = calloc(n ? n : 1, sizeof(*p->jobs));
	if (!p->jobs)
		return -ENOMEM;
	for (uint32_t f = 0; f < n_files; f++) {
		for (uint32_t s = 0; s < p->files[f].n_segs; s++) {
			const struct seg *g = &p->files[f].segs[s];

			if (g->lossy >= 0) {
				p->jobs[k++] = (struct job){
					.file = f, .off = g->off, .len = g->len,
					.codec = g->codec, .arg = g->arg,
					.lossy = g->lossy,
					.cost = lossy_cost(&p->lt[g->lossy]),
				};
				continue;
			}
			for (uint64_t o = 0; o < g->len; o += block_len) {
				struct job *j = &p->jobs[k++];

				j->file = f;
				j->off = g->off + o;
				j->len = NWC_MIN((uint64_t)block_len, g->len - o);
				j->codec = g->codec;
				j->arg = g->arg;
				j->lossy = -1;
				j->cost = 2 * j->len;
				j->single = g->len <= block_len;
			}
		}
	}
	p->n_jobs = n;
	return 0;
}

/*
 * A --keep or --bits GLOB=B rule that names no tensor of any file is most
 * likely a typo: say so, with a real name to compare it with.
 */
static void warn_unmatched_rules(const struct pipe *p, uint32_t n_files)
{
	const struct nwc_lossy_policy *pol = &p->opts->lossy->policy;
	const struct nwc_st_tensor *example = NULL;

	/* A matrix's name, else any tensor's. */
	for (uint32_t fi = 0; fi < n_files; fi++) {
		const struct nwc_st *st = p->files[fi].st;

		for (size_t t = 0; st && t < st->n_tensors; t++)
			if (!example || (example->ndim != 2 &&
					 st->tensors[t].ndim == 2))
				example = &st->tensors[t];
	}
	for (unsigned r = 0; r < pol->nrules; r++) {
		bool hit = false;

		for (uint32_t fi = 0; fi < n_files && !hit; fi++) {
			const struct nwc_st *st = p->files[fi].st;

			for (size_t t = 0; st && t < st->n_tensors && !hit; t++)
				hit = !fnmatch(pol->rule[r].glob,
					       st->tensors[t].name, 0);
		}
		if (!hit)
			nwc_warn("--%s '%s' matches no tensor (tensor names look like '%s')",
				 pol->rule[r].bits < 0 ? "keep" : "bits",
				 pol->rule[r].glob,
				 example ? example->name : "(no safetensors file)");
	}
}

/* The lossy part of the plan: select, estimate and allocate. */
int pack_plan_lossy(struct pipe *p, uint32_t n_files,
		    struct nwc_pack_result *res)
{
	const struct nwc_pack_lossy *lo = p->opts->lossy;
	struct nwc_rate_opts ro = {
		.bits = lo->bits,
		.quant = lo->quant,
		.calib = lo->calib,
		.promote = lo->promote,
		.exact_sd = lo->exact_sd,
		.sens_power = lo->sens_power,
		.exact_tensors = lo->exact_tensors,
		.jobs = p->opts->jobs,
		.progress = p->opts->progress,
	};
	double t0 = nwc_now();
	int ret;

	if (!p->rank)
		warn_unmatched_rules(p, n_files);
	ret = select_lossy(p, n_files);
	if (ret)
		return ret;
	res->lossy.per_model = calloc(NWC_MAX(lo->models->n, 1),
				      sizeof(*res->lossy.per_model));
	if (!res->lossy.per_model)
		return -ENOMEM;
	if (!p->n_lt)
		return 0;
	ret = nwc_rate_plan(p->lt, p->n_lt, &ro, lo->models);
	if (ret)
		return ret;
	res->lossy.fallbacks = unselect_lossless(p, n_files);
	ret = exact_lines(p, &res->lossy);
	if (ret)
		return ret;
	res->lossy.plan_seconds = nwc_now() - t0;
	return 0;
}
