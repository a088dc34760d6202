/* SPDX-License-Identifier: MIT */
/* quantize.c - copy a model directory with its linear weights quantized. */

/*
 * quantize METHOD PARAM IN_DIR OUT_DIR [--stats STATS.safetensors]
 *	    [--keep GLOB]...
 *
 * Writes OUT_DIR (created; must not exist), a copy of IN_DIR in which every
 * tensor that mkfs.nwc's default lossy policy selects (nwc_lossy_select:
 * 2-D F32/F16/BF16 of at least 1024 weights, not an embedding or output
 * head) holds its quantized-dequantized values, in its own dtype; the
 * safetensors headers and all other bytes are copied unchanged.  Methods:
 *
 *	rtn-g32 B, rtn-g128 B	bench/quant.h RTN, B bits, groups of 32 or
 *				128 weights of a row: B + 32 bits per group
 *	ecsq D			bench/quant.h ECSQ at step D times the row
 *				std: real rANS bytes + table + 16 bits per row
 *	gptq B			nwc_ldlq_gptq() with H from --stats: B bits
 *				per weight, plus per row an fp16 scale and a
 *				B-bit zero point (the scale is used in f32)
 *
 * Prints one line of key=value pairs: method, param, tensors, weights
 * (of the selected tensors), bits (what they would take in all), bpw
 * (bits per weight) and sqnr_db over them all, measured on the values
 * written.  Exit status: 0 ok, 1 usage, 2 I/O error, 3 bad input.
 */
#include "codec/common/base.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/quant.h"
#include "codec/common/convert.h"
#include "codec/common/cli.h"
#include "codec/common/io.h"
#include "codec/nwc/ldlq.h"
#include "codec/common/log.h"
#include "codec/input/safetensors.h"
#include "mkfs/pack/calib.h"
#include "mkfs/pack/lossy.h"

#define PROG "quantize"


enum method { M_RTN32, M_RTN128, M_ECSQ, M_GPTQ };

struct job {
	enum method method;
	const char *method_name;
	unsigned int bits;		/* RTN, GPTQ */
	double step;			/* ECSQ */
	double param;
	struct nwc_calib *stats;	/* GPTQ */
	struct nwc_lossy_policy pol;
	/* totals over the selected tensors */
	size_t tensors;
	uint64_t weights, total_bits;
	double energy, err2;
};

static int exit_code(int err)
{
	return err == -NWC_EFORMAT || err == -NWC_EFEATURE ||
	       err == -EINVAL || err == -EDOM ?
	       NWC_EXIT_DATA : NWC_EXIT_IO;
}

static bool all_finite(const float *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(w[i]))
			return false;
	}
	return true;
}

/* Quantize W (m x n) into @what; adds to the job's bit count. */
static int quantize_matrix(struct job *j, const char *name, const float *w,
			   uint32_t m, uint32_t n, float *what)
{
	struct nwc_quant_ecsq *eb;
	float *scale, *h;
	double unused = 0;
	int ret;

	switch (j->method) {
	case M_RTN32:
	case M_RTN128:
		nwc_quant_rtn(w, m, n, j->bits, j->method == M_RTN32 ? 32 : 128,
			      what, &j->total_bits, &unused);
		return 0;
	case M_ECSQ:
		scale = malloc((size_t)m * sizeof(*scale));
		if (!scale)
			return -ENOMEM;
		ret = nwc_quant_ecsq_create((size_t)m * n, &eb);
		if (!ret) {
			nwc_quant_row_scales(w, m, n, scale);
			ret = nwc_quant_ecsq(eb, w, m, n, scale, j->step, what,
					     &j->total_bits, &unused);
			nwc_quant_ecsq_free(eb);
		}
		free(scale);
		return ret;
	case M_GPTQ:
		ret = nwc_calib_get(j->stats, name, n, &h);
		if (ret == -ENOENT) {	/* bad input, not I/O */
			nwc_err("%s: no statistics for %s",
				nwc_calib_source(j->stats), name);
			return -EINVAL;
		}
		if (ret)
			return ret;
		ret = nwc_ldlq_gptq(w, m, n, h, j->bits, what);
		free(h);
		j->total_bits += (uint64_t)m * n * j->bits +
				 (uint64_t)m * (16 + j->bits);
		return ret;
	}
	return -EINVAL;
}

/* Replace each selected tensor of the safetensors image @buf in place. */
static int quantize_st(struct job *j, const char *path, uint8_t *buf,
		       size_t len)
{
	struct nwc_st *st;
	float *w = NULL, *what = NULL;
	size_t cap = 0;
	int ret;

	ret = nwc_st_parse(buf, len, len, path, &st);
	if (ret)
		return ret;
	for (size_t i = 0; i < st->n_tensors; i++) {
		const struct nwc_st_tensor *t = &st->tensors[i];
		uint8_t *data = buf + st->data_off + t->begin;
		uint32_t m, n;
		double fixed;
		size_t nw;

		if (!nwc_lossy_select(&j->pol, t->name, t->dtype, t->ndim,
				      t->shape, &fixed))
			continue;
		m = (uint32_t)t->shape[0];
		n = (uint32_t)t->shape[1];
		nw = (size_t)m * n;
		if (nw > cap) {
			free(w);
			free(what);
			w = malloc(nw * sizeof(*w));
			what = malloc(nw * sizeof(*what));
			cap = nw;
			if (!w || !what) {
				ret = -ENOMEM;
				goto out_free;
			}
		}
		ret = nwc_to_f32(t->dtype, data, nw, w);
		if (ret)
			goto out_free;
		if (!all_finite(w, nw)) {
			/* as mkfs.nwc does: such a tensor stays lossless */
			nwc_warn("%s: %s: not finite, left unchanged", path,
				 t->name);
			continue;
		}
		ret = quantize_matrix(j, t->name, w, m, n, what);
		if (ret) {
			nwc_err("%s: %s: %s", path, t->name, nwc_strerror(ret));
			goto out_free;
		}
		ret = nwc_from_f32(t->dtype, what, nw, data);
		if (!ret)	/* the values served, after narrowing */
			ret = nwc_to_f32(t->dtype, data, nw, what);
		if (ret)
			goto out_free;
		for (size_t k = 0; k < nw; k++) {
			double e = (double)w[k] - what[k];

			j->energy += (double)w[k] * w[k];
			j->err2 += e * e;
		}
		j->tensors++;
		j->weights += nw;
	}
out_free:
	free(w);
	free(what);
	nwc_st_free(st);
	return ret;
}

static int copy_file(struct job *j, const char *in, const char *out)
{
	size_t len = 0, nl = strlen(in);
	uint8_t *buf = NULL;
	int ret;

	ret = nwc_read_file(in, SIZE_MAX, &buf, &len);
	if (ret) {
		nwc_err("%s: %s%s", in, ret == -NWC_ECORRUPT ?
			"read failed: " : "", nwc_strerror(ret));
		return ret;
	}
	if (nl >= 12 && !strcmp(in + nl - 12, ".safetensors"))
		ret = quantize_st(j, in, buf, len);
	if (!ret)
		ret = nwc_write_file_atomic(out, buf, len);
	free(buf);
	return ret;
}

static int copy_tree(struct job *j, const char *in, const char *out)
{
	char src[PATH_MAX], dst[PATH_MAX], link[PATH_MAX];
	struct dirent **ents;
	struct stat sb;
	ssize_t ll;
	int n, ret = 0;

	/* sorted, so that the totals add up in the same order every run */
	n = scandir(in, &ents, NULL, alphasort);
	if (n < 0) {
		ret = -errno;
		nwc_err("%s: %s", in, nwc_strerror(ret));
		return ret;
	}
	if (mkdir(out, 0755)) {
		ret = -errno;
		nwc_err("%s: %s", out, nwc_strerror(ret));
		goto out_free;
	}
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;

		if (ret || !strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if ((size_t)snprintf(src, sizeof(src), "%s/%s", in, name) >=
		    sizeof(src) ||
		    (size_t)snprintf(dst, sizeof(dst), "%s/%s", out, name) >=
		    sizeof(dst)) {
			ret = -ENAMETOOLONG;
			nwc_err("%s/%s: %s", in, name, nwc_strerror(ret));
			continue;
		}
		if (lstat(src, &sb)) {
			ret = -errno;
			nwc_err("%s: %s", src, nwc_strerror(ret));
		} else if (S_ISDIR(sb.st_mode)) {
			ret = copy_tree(j, src, dst);
		} else if (S_ISREG(sb.st_mode)) {
			ret = copy_file(j, src, dst);
		} else if (S_ISLNK(sb.st_mode)) {
			ll = readlink(src, link, sizeof(link) - 1);
			if (ll >= 0) {
				link[ll] = '\0';
				if (symlink(link, dst))
					ll = -1;
			}
			if (ll < 0) {
				ret = -errno;
				nwc_err("%s: %s", dst, nwc_strerror(ret));
			}
		} else {
			nwc_warn("%s: not a file, directory or link: skipped",
				 src);
		}
	}
out_free:
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return ret;
}

static int parse_method(struct job *j, const char *method, const char *arg)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (end == arg || *end || errno || !isfinite(v))
		return -EINVAL;
	j->method_name = method;
	j->param = v;
	if (!strcmp(method, "ecsq")) {
		j->method = M_ECSQ;
		j->step = v;
		return v > 0 ? 0 : -EINVAL;
	}
	if (!strcmp(method, "rtn-g32"))
		j->method = M_RTN32;
	else if (!strcmp(method, "rtn-g128"))
		j->method = M_RTN128;
	else if (!strcmp(method, "gptq"))
		j->method = M_GPTQ;
	else
		return -EINVAL;
	if (v != floor(v) || v < 1 || v > NWC_LDLQ_MAX_BITS)
		return -EINVAL;
	j->bits = (unsigned int)v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: quantize METHOD PARAM IN_DIR OUT_DIR [--stats STATS.safetensors]\n"
"                [--keep GLOB]...\n"
"Copy the model directory IN_DIR to OUT_DIR (created) with every weight\n"
"matrix that mkfs.nwc would code lossily quantized and dequantized.\n"
"\n"
"  rtn-g32 BITS    round to nearest, min/max per 32 weights of a row\n"
"  rtn-g128 BITS   the same per 128\n"
"  ecsq STEP       uniform step STEP x row std, rANS-coded (real bytes)\n"
"  gptq BITS       GPTQ, min/max grid per row; needs --stats\n"
"\n"
"  -k, --keep=GLOB    leave the tensors matching GLOB exact, as\n"
"                     mkfs.nwc --keep does (repeatable)\n"
"  -s, --stats=FILE   second moments H (\"<weight>.H\", as nwc calib\n"
"                     writes them)\n"
"  -h, --help         show this help\n"
"\n"
"Prints method, param, tensors, weights, bits, bpw and sqnr_db as\n"
"key=value pairs.  Exit status: 0 success, 1 usage error, 2 I/O error,\n"
"3 bad input.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "stats", required_argument, NULL, 's' },
		{ "keep", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct job j = { .pol = { .keep_default = true } };
	const char *stats = NULL;
	int opt, ret;

	nwc_log_set_prefix(PROG);
	while ((opt = getopt_long(argc, argv, "s:k:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			stats = optarg;
			break;
		case 'k':
			if (!*optarg || j.pol.nrules == NWC_LOSSY_MAX_RULES) {
				nwc_err("--keep: empty pattern or more than %u",
					NWC_LOSSY_MAX_RULES);
				return NWC_EXIT_USAGE;
			}
			j.pol.rule[j.pol.nrules++] =
				(struct nwc_lossy_rule){ .glob = optarg,
							 .bits = -1 };
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return NWC_EXIT_USAGE;
		}
	}
	if (argc - optind != 4) {
		usage(stderr);
		return NWC_EXIT_USAGE;
	}
	if (parse_method(&j, argv[optind], argv[optind + 1])) {
		nwc_err("bad method or parameter: %s %s", argv[optind],
			argv[optind + 1]);
		return NWC_EXIT_USAGE;
	}
	if (j.method == M_GPTQ && !stats) {
		nwc_err("gptq needs --stats");
		return NWC_EXIT_USAGE;
	}
	if (stats) {
		ret = nwc_calib_open_stats(stats, &j.stats);
		if (ret)
			return exit_code(ret);
	}
	ret = copy_tree(&j, argv[optind + 2], argv[optind + 3]);
	nwc_calib_free(j.stats);
	if (ret)
		return exit_code(ret);
	if (!j.weights) {
		nwc_err("%s: no tensor to quantize", argv[optind + 2]);
		return NWC_EXIT_DATA;
	}
	printf("method=%s param=%g tensors=%zu weights=%" PRIu64
	       " bits=%" PRIu64 " bpw=%.4f sqnr_db=%.2f\n", j.method_name,
	       j.param, j.tensors, j.weights, j.total_bits,
	       (double)j.total_bits / (double)j.weights,
	       j.err2 > 0 ? 10 * log10(j.energy / j.err2) : INFINITY);
	return 0;
}
