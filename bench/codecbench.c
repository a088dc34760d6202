/* SPDX-License-Identifier: MIT */
/* codecbench.c - rate/distortion baselines (RTN, ECSQ) for the NWC codec. */

/*
 * codecbench [--bits LIST] [--tensors REGEX] [--model M]... [--levels L]
 *            [--mu LIST] [--threads LIST] [--f32-scales] [--no-baselines]
 *            FILE.safetensors...
 *
 * Quantizes the selected weight matrices of the files and prints, per
 * method, bits per weight against SQNR = 10 log10(sum w^2 / sum (w - w')^2),
 * both over all selected tensors together:
 *
 *	RTN-gG	asymmetric round-to-nearest with min/max per group of G
 *		consecutive weights of a row (G = 32, 128), scale and minimum
 *		stored as fp16 (and used rounded); b + 32/G bits.  --bits
 *		gives the widths b (default 2,3,4,5,6,7,8).
 *	ECSQ	uniform scalar quantization of each row over its fp16 std,
 *		q = round(w / (s_r D)), one 16-bit table per tensor from q's
 *		histogram and the project's rANS coder: the real stream bytes
 *		plus the saved table plus 16 bits per row.  D sweeps half
 *		octaves from 2 down to 2^-7 (about 1 to 10 bits).
 *
 * Then a summary line per method with SQNR interpolated at 3, 4, 5 and 6
 * bits per weight.  Each --model M is measured first, through the image
 * codec (side records and band streams, real bytes): every level of
 * --levels (default all), rounding and TCQ with each mu, encode and decode
 * MB/s of BF16 for each thread count, and, with the baselines, ECSQ's SQNR
 * interpolated at the same bits and the difference.  Default selection:
 * every 2-D float tensor whose name contains neither "embed" nor
 * "lm_head" (the linear layers); --tensors
 * selects the 2-D float tensors matching a POSIX extended regex instead.
 * Exit status: 0 ok, 1 usage, 2 input or coding error.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/quant.h"
#include "codec/common/array.h"
#include "codec/common/convert.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwctensor.h"
#include "codec/nwc/tenc.h"
#include "codec/input/safetensors.h"

#define MAX_BITS 16
#define N_STEPS 19		/* D = 2^(1 - k/2), k = 0 .. 18 */

struct tensor {
	char *name;
	size_t rows, cols;
	float *w;		/* rows x cols, row-major */
};

struct point {
	double param;		/* b for RTN, D for ECSQ */
	uint64_t bits;		/* total over all tensors */
	double err2;		/* sum of squared errors */
};

struct bench {
	struct tensor *t;
	size_t nt, cap;
	uint64_t nweights;
	double energy;		/* sum of w^2 */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool selected(const struct nwc_st_tensor *st, const regex_t *re)
{
	if (st->ndim != 2 || !st->shape[0] || !st->shape[1])
		return false;
	if (st->dtype != NWC_DTYPE_F32 && st->dtype != NWC_DTYPE_F16 &&
	    st->dtype != NWC_DTYPE_BF16 && st->dtype != NWC_DTYPE_F64)
		return false;
	if (re)
		return !regexec(re, st->name, 0, NULL, 0);
	return !strstr(st->name, "embed") && !strstr(st->name, "lm_head");
}

/* Read the selected tensors of @path into @b as floats. */
static int load_file(struct bench *b, const char *path, const regex_t *re)
{
	struct nwc_st *st = NULL;
	uint8_t *raw = NULL;
	int fd, ret;

	ret = nwc_st_open(path, &fd, &st);	/* logs its errors */
	if (ret)
		return ret;
	for (size_t i = 0; i < st->n_tensors; i++) {
		const struct nwc_st_tensor *s = &st->tensors[i];
		struct tensor *t;
		size_t n;

		if (!selected(s, re))
			continue;
		ret = nwc_array_reserve((void **)&b->t, &b->cap, b->nt + 1,
					sizeof(*b->t));
		if (ret)
			goto out_free_st;
		t = &b->t[b->nt];
		t->rows = s->shape[0];
		t->cols = s->shape[1];
		n = t->rows * t->cols;
		t->name = strdup(s->name);
		t->w = malloc(n * sizeof(*t->w));
		raw = malloc(s->end - s->begin);
		if (!t->name || !t->w || !raw) {
			free(t->name);
			free(t->w);
			ret = -ENOMEM;
			goto out_free_raw;
		}
		ret = nwc_pread_full(fd, raw, s->end - s->begin,
				st->data_off + s->begin);
		if (!ret)
			ret = nwc_to_f32(s->dtype, raw, n, t->w);
		free(raw);
		raw = NULL;
		if (ret) {
			free(t->name);
			free(t->w);
			goto out_free_st;
		}
		b->nt++;
		b->nweights += n;
		for (size_t k = 0; k < n; k++)
			b->energy += (double)t->w[k] * t->w[k];
	}
out_free_raw:
	free(raw);
out_free_st:
	nwc_st_free(st);
	close(fd);
	if (ret)
		fprintf(stderr, "codecbench: %s: %s\n", path, nwc_strerror(ret));
	return ret;
}

static double sqnr(const struct bench *b, const struct point *p)
{
	return p->err2 > 0 ? 10 * log10(b->energy / p->err2) : INFINITY;
}

static void print_table(const struct bench *b, const char *title,
			const char *param, const struct point *pts, size_t n)
{
	printf("\n## %s\n\n| %s | bits/weight | SQNR dB |\n|---:|---:|---:|\n",
	       title, param);
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(param, "b"))
			printf("| %.0f", pts[i].param);
		else
			printf("| %.4g", pts[i].param);
		printf(" | %.3f | %.2f |\n", (double)pts[i].bits / b->nweights,
		       sqnr(b, &pts[i]));
	}
}

/*
 * SQNR of a method at @at bits per weight, linear between its two points
 * around it; false outside its sweep.
 */
static bool interp_sqnr(const struct bench *b, const struct point *pts,
			size_t n, double at, double *out)
{
	double x[N_STEPS + MAX_BITS], y[N_STEPS + MAX_BITS];
	size_t i = 0;

	/* Sorted by rate (insertion sort: a few dozen points). */
	for (size_t k = 0; k < n; k++) {
		double xk = (double)pts[k].bits / b->nweights;
		double yk = sqnr(b, &pts[k]);
		size_t j = k;

		for (; j > 0 && x[j - 1] > xk; j--) {
			x[j] = x[j - 1];
			y[j] = y[j - 1];
		}
		x[j] = xk;
		y[j] = yk;
	}
	while (i + 1 < n && !(x[i] <= at && at <= x[i + 1]))
		i++;
	if (i + 1 >= n)
		return false;
	*out = x[i + 1] > x[i] ? y[i] + (y[i + 1] - y[i]) * (at - x[i]) /
				 (x[i + 1] - x[i]) : y[i];
	return true;
}

/* SQNR at 3, 4, 5, 6 bits per weight. */
static void print_summary(const struct bench *b, const char *name,
			  const struct point *pts, size_t n)
{
	static const double at[] = { 3.0, 4.0, 5.0, 6.0 };

	printf("summary %-9s", name);
	for (size_t k = 0; k < NWC_ARRAY_SIZE(at); k++) {
		double v;

		if (interp_sqnr(b, pts, n, at[k], &v))
			printf("  @%.1f: %6.2f dB", at[k], v);
		else
			printf("  @%.1f:    n/a   ", at[k]);
	}
	printf("\n");
}

#define MAX_MODELS 32
#define MAX_MU 8
#define BENCH_BLOCK (256u << 10)	/* mkfs's default block size */
#define MAX_THREADS 64u

struct nwc_run {
	const char *path;
	struct nwc_model *model;
};

/* Work shared by the threads of one NWC rate point. */
struct nwc_work {
	const struct bench *b;
	const struct nwc_model *model;
	struct nwc_tenc_opts o;
	unsigned int q, nthreads;
	struct nwc_tenc **enc;		/* per tensor */
	struct nwc_tside **side;	/* per tensor */
	int *err;			/* per thread */
};

struct nwc_thread {
	struct nwc_work *w;
	unsigned int id;
	bool decode;
};

/* Encode tensors i = id, id + T, ... (encode) or decode their bands. */
static void *nwc_thread_main(void *arg)
{
	struct nwc_thread *th = arg;
	struct nwc_work *w = th->w;
	struct nwc_tensor_scratch *s = NULL;
	uint8_t *buf = NULL;
	size_t cap = 0;
	int ret = 0;

	if (th->decode)
		ret = nwc_tensor_scratch_create(&s);
	for (size_t i = th->id; i < w->b->nt && !ret; i += w->nthreads) {
		const struct tensor *t = &w->b->t[i];
		struct nwc_tenc_opts o = w->o;
		uint8_t *lv;

		o.band_rows = nwc_tside_band_rows_for((uint32_t)t->rows,
						      (uint32_t)t->cols, 2,
						      BENCH_BLOCK);
		if (!th->decode) {
			lv = malloc(t->cols);
			if (!lv) {
				ret = -ENOMEM;
				break;
			}
			memset(lv, (int)w->q, t->cols);
			ret = nwc_tenc_encode(w->model, 0, t->w,
					      (uint32_t)t->rows,
					      (uint32_t)t->cols, lv, &o,
					      &w->enc[i]);
			free(lv);
			if (!ret)
				ret = nwc_tside_parse(w->enc[i]->side,
						      w->enc[i]->side_len,
						      &w->side[i]);
			continue;
		}
		for (uint32_t bd = 0; !ret && bd < w->enc[i]->nbands; bd++) {
			size_t len = (size_t)nwc_tside_band_rows(w->side[i],
								 bd) *
				     t->cols * 2;

			if (len > cap) {
				free(buf);
				buf = malloc(len);
				cap = buf ? len : 0;
				if (!buf) {
					ret = -ENOMEM;
					break;
				}
			}
			ret = nwc_band_decode(w->model, w->side[i], bd,
					      w->enc[i]->band[bd],
					      w->enc[i]->band_len[bd],
					      NWC_DTYPE_BF16, buf, len, s);
		}
	}
	free(buf);
	nwc_tensor_scratch_free(s);
	w->err[th->id] = ret;
	return NULL;
}

static int nwc_run_threads(struct nwc_work *w, bool decode, double *secs)
{
	pthread_t tid[MAX_THREADS];
	struct nwc_thread th[MAX_THREADS];
	double t0 = now();
	int ret = 0;

	for (unsigned int i = 0; i < w->nthreads; i++) {
		th[i] = (struct nwc_thread){ .w = w, .id = i, .decode = decode };
		if (pthread_create(&tid[i], NULL, nwc_thread_main, &th[i]))
			return -EAGAIN;
	}
	for (unsigned int i = 0; i < w->nthreads; i++) {
		pthread_join(tid[i], NULL);
		if (w->err[i] && !ret)
			ret = w->err[i];
	}
	*secs = now() - t0;
	return ret;
}

/*
 * One NWC rate point: every tensor coded with @model, every column at
 * level @q, through the image codec (nwc_tenc_encode: side data and
 * per-band streams, real bytes), on @nthreads threads; then every band
 * decoded to BF16, timed on its own (the best of three passes).
 */
static int nwc_point(const struct bench *b, const struct nwc_model *model,
		     unsigned int q, const struct nwc_tenc_opts *o,
		     unsigned int nthreads, struct point *p, double *enc_s,
		     double *dec_s)
{
	struct nwc_work w = { .b = b, .model = model, .o = *o, .q = q,
			      .nthreads = nthreads };
	int ret = -ENOMEM;

	w.enc = calloc(b->nt, sizeof(*w.enc));
	w.side = calloc(b->nt, sizeof(*w.side));
	w.err = calloc(nthreads, sizeof(*w.err));
	if (!w.enc || !w.side || !w.err)
		goto out_free;
	ret = nwc_run_threads(&w, false, enc_s);
	if (ret)
		goto out_free;
	/* decoding is fast: the best of three passes, warm buffers included */
	for (int pass = 0; pass < 3 && !ret; pass++) {
		double secs;

		ret = nwc_run_threads(&w, true, &secs);
		if (!pass || secs < *dec_s)
			*dec_s = secs;
	}
	if (ret)
		goto out_free;
	p->bits = 0;
	p->err2 = 0;
	for (size_t i = 0; i < b->nt; i++) {
		const struct tensor *t = &b->t[i];

		p->bits += 8 * (uint64_t)w.enc[i]->coded_bytes;
		for (size_t k = 0; k < t->rows * t->cols; k++) {
			double d = (double)t->w[k] - w.enc[i]->what[k];

			p->err2 += d * d;
		}
	}
out_free:
	for (size_t i = 0; w.enc && i < b->nt; i++) {
		nwc_tenc_free(w.enc[i]);
		free(w.side ? w.side[i] : NULL);
	}
	free(w.enc);
	free(w.side);
	free(w.err);
	return ret;
}

struct nwc_cfg {
	const float *mus;
	size_t nmu;
	unsigned int threads[2];	/* thread counts to time */
	size_t nthreads;
	bool f32_scales;		/* also measure f32 row scales */
	uint32_t levels;		/* bit q: measure level q */
	const struct point *ecsq;	/* ECSQ sweep, or NULL */
};

/* The columns of one NWC point, with ECSQ at its rate if given. */
static void print_point(const struct bench *b, const struct point *p,
			bool f32, const struct point *ecsq)
{
	double bpw = (double)p->bits / b->nweights, e;

	printf(" | %s | %.3f | %.2f", f32 ? "f32" : "f16", bpw, sqnr(b, p));
	if (ecsq && interp_sqnr(b, ecsq, N_STEPS, bpw, &e))
		printf(" | %.2f | %+.2f", e, sqnr(b, p) - e);
	else if (ecsq)
		printf(" | n/a | n/a");
}

static int run_nwc(const struct bench *b, const struct nwc_run *runs,
		   size_t nruns, const struct nwc_cfg *cfg)
{
	for (size_t r = 0; r < nruns; r++) {
		const struct nwc_model *m = runs[r].model;

		printf("\n## NWC %s (H %u, R %u, lambda %g)\n\n"
		       "| level | quantizer | scales | bits/weight | SQNR dB |%s",
		       runs[r].path, m->h, m->r, m->lambda,
		       cfg->ecsq ? " ECSQ dB | vs ECSQ |" : "");
		for (size_t t = 0; t < cfg->nthreads; t++)
			printf(" enc MB/s %ut | dec MB/s %ut |",
			       cfg->threads[t], cfg->threads[t]);
		printf("\n|---:|---|---|---:|---:|%s",
		       cfg->ecsq ? "---:|---:|" : "");
		for (size_t t = 0; t < cfg->nthreads; t++)
			printf("---:|---:|");
		printf("\n");
		for (unsigned int q = 0; q < m->nq; q++) {
			if (!(cfg->levels >> q & 1))
				continue;
			for (size_t k = 0; k <= cfg->nmu; k++) {
				for (int f32 = 0; f32 <= (int)cfg->f32_scales;
				     f32++) {
					struct nwc_tenc_opts o;
					struct point p = { .param = q };
					double mb = 2.0 * (double)b->nweights /
						    1e6;

					nwc_tenc_opts_init(&o);
					o.quant = k ? NWC_QUANT_TCQ
						    : NWC_QUANT_ROUND;
					o.tcq_mu = k ? cfg->mus[k - 1] : 0;
					o.scale_f16 = !f32;
					if (k)
						printf("| %u | TCQ mu %g", q,
						       o.tcq_mu);
					else
						printf("| %u | round", q);
					for (size_t t = 0; t < cfg->nthreads;
					     t++) {
						double es = 0, ds = 0;
						int ret;

						ret = nwc_point(b, m, q, &o,
							cfg->threads[t], &p,
							&es, &ds);
						if (ret) {
							fprintf(stderr, "codecbench: %s: %s\n",
								runs[r].path,
								nwc_strerror(ret));
							return ret;
						}
						if (!t)
							print_point(b, &p, f32,
								    cfg->ecsq);
						printf(" | %.1f | %.1f",
						       mb / es, mb / ds);
					}
					printf(" |\n");
					fflush(stdout);
				}
			}
		}
	}
	return 0;
}

static int parse_bits(const char *s, unsigned *bits, size_t *n)
{
	char *end;

	*n = 0;
	for (;;) {
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || v < 1 || v > MAX_BITS || *n == MAX_BITS)
			return -EINVAL;
		bits[(*n)++] = (unsigned)v;
		if (!*end)
			return 0;
		if (*end != ',')
			return -EINVAL;
		s = end + 1;
	}
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: codecbench [OPTIONS] FILE.safetensors...\n"
"  --bits LIST      RTN widths, e.g. 2,3,4 (default 2..8)\n"
"  --tensors REGEX  2-D float tensors to use (POSIX ERE); default: names\n"
"                   without \"embed\" or \"lm_head\"\n"
"  --model FILE     an NWC codec model to measure (repeatable)\n"
"  --levels LIST    its importance levels to measure (default all)\n"
"  --mu LIST        trellis rate weights mu to measure (default 0)\n"
"  --threads LIST   one or two thread counts to time (default 1)\n"
"  --f32-scales     also measure f32 row scales\n"
"  --no-baselines   no RTN and ECSQ (and no ECSQ column)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bits", required_argument, NULL, 'b' },
		{ "tensors", required_argument, NULL, 't' },
		{ "model", required_argument, NULL, 'm' },
		{ "mu", required_argument, NULL, 'u' },
		{ "no-baselines", no_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 'T' },
		{ "f32-scales", no_argument, NULL, 'F' },
		{ "levels", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const size_t groups[] = { 32, 128 };
	unsigned bits[MAX_BITS] = { 2, 3, 4, 5, 6, 7, 8 };
	size_t nbits = 7, maxn = 0, maxrows = 0;
	struct point rtn_pts[2][MAX_BITS] = { { { 0 } } };
	struct point ecsq_pts[N_STEPS] = { { 0 } };
	struct bench b = { 0 };
	struct nwc_quant_ecsq *eb = NULL;
	const char *pattern = NULL;
	struct nwc_run runs[MAX_MODELS];
	float mus[MAX_MU] = { 0.0f };
	struct nwc_cfg cfg = { .mus = mus, .nmu = 1, .threads = { 1 },
			       .nthreads = 1, .levels = UINT32_MAX };
	size_t nruns = 0;
	bool baselines = true;
	regex_t re;
	float *scale = NULL;
	double t0 = now();
	int opt, ret = 2;

	nwc_log_set_prefix("codecbench");
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			if (parse_bits(optarg, bits, &nbits)) {
				fprintf(stderr, "codecbench: bad --bits: %s\n",
					optarg);
				return 1;
			}
			break;
		case 't':
			pattern = optarg;
			break;
		case 'm':
			if (nruns == MAX_MODELS ||
			    nwc_model_load(optarg, &runs[nruns].model))
				return 1;
			/* older models lack the trellis tables: rebuild */
			if (!(runs[nruns].model->flags & NWC_MODEL_F_TCQ) &&
			    nwc_model_finalize(runs[nruns].model))
				return 1;
			runs[nruns++].path = optarg;
			break;
		case 'u': {
			char *end, *p = optarg;

			for (cfg.nmu = 0; cfg.nmu < MAX_MU && *p; cfg.nmu++) {
				mus[cfg.nmu] = strtof(p, &end);
				if (end == p || mus[cfg.nmu] < 0)
					return 1;
				p = *end == ',' ? end + 1 : end;
			}
			break;
		}
		case 'T': {
			char *end, *p = optarg;

			for (cfg.nthreads = 0; cfg.nthreads < 2 && *p;
			     cfg.nthreads++) {
				unsigned long v = strtoul(p, &end, 10);

				if (end == p || !v || v > MAX_THREADS)
					return 1;
				cfg.threads[cfg.nthreads] = (unsigned int)v;
				p = *end == ',' ? end + 1 : end;
			}
			break;
		}
		case 'F':
			cfg.f32_scales = true;
			break;
		case 'L': {
			char *end, *p = optarg;

			cfg.levels = 0;
			while (*p) {
				unsigned long v = strtoul(p, &end, 10);

				if (end == p || v >= 32) {
					fprintf(stderr, "codecbench: bad --levels: %s\n",
						optarg);
					return 1;
				}
				cfg.levels |= 1u << v;
				p = *end == ',' ? end + 1 : end;
			}
			break;
		}
		case 'n':
			baselines = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 1;
	}
	if (pattern && regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB)) {
		fprintf(stderr, "codecbench: bad regex: %s\n", pattern);
		return 1;
	}

	printf("# codecbench\n\ncommand:");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	for (int i = optind; i < argc; i++)
		if (load_file(&b, argv[i], pattern ? &re : NULL))
			goto out_free;
	if (!b.nt || !(b.energy > 0)) {
		fprintf(stderr, "codecbench: no (nonzero) tensor selected\n");
		goto out_free;
	}
	for (size_t i = 0; i < b.nt; i++) {
		maxn = NWC_MAX(maxn, b.t[i].rows * b.t[i].cols);
		maxrows = NWC_MAX(maxrows, b.t[i].rows);
	}
	printf("tensors: %zu, %" PRIu64 " weights (largest %zu), e.g. %s\n",
	       b.nt, b.nweights, maxn, b.t[0].name);

	scale = malloc(maxrows * sizeof(*scale));
	if (!scale || nwc_quant_ecsq_create(maxn, &eb))
		goto out_free;

	for (size_t i = 0; i < b.nt && baselines; i++) {
		const struct tensor *t = &b.t[i];

		for (size_t g = 0; g < 2; g++) {
			for (size_t k = 0; k < nbits; k++) {
				struct point *p = &rtn_pts[g][k];

				p->param = bits[k];
				nwc_quant_rtn(t->w, t->rows, t->cols, bits[k],
					      groups[g], NULL, &p->bits,
					      &p->err2);
			}
		}
		nwc_quant_row_scales(t->w, t->rows, t->cols, scale);
		for (size_t k = 0; k < N_STEPS; k++) {
			struct point *p = &ecsq_pts[k];
			int err;

			p->param = exp2(1 - 0.5 * (double)k);
			err = nwc_quant_ecsq(eb, t->w, t->rows, t->cols, scale,
					     p->param, NULL, &p->bits,
					     &p->err2);
			if (err) {
				fprintf(stderr, "codecbench: %s: ECSQ: %s\n",
					b.t[i].name, nwc_strerror(err));
				goto out_free;
			}
		}
	}

	cfg.ecsq = baselines ? ecsq_pts : NULL;
	if (run_nwc(&b, runs, nruns, &cfg))
		goto out_free;
	if (!baselines)
		goto out_done;
	print_table(&b, "RTN-g32: min/max per 32, fp16 scale and min", "b",
		    rtn_pts[0], nbits);
	print_table(&b, "RTN-g128: min/max per 128, fp16 scale and min", "b",
		    rtn_pts[1], nbits);
	print_table(&b, "ECSQ: step D over fp16 row std, rANS, one table "
		    "per tensor", "D", ecsq_pts, N_STEPS);
	printf("\n");
	print_summary(&b, "RTN-g32", rtn_pts[0], nbits);
	print_summary(&b, "RTN-g128", rtn_pts[1], nbits);
	print_summary(&b, "ECSQ", ecsq_pts, N_STEPS);
out_done:
	printf("time: %.2f s\n", now() - t0);
	ret = 0;
out_free:
	nwc_quant_ecsq_free(eb);
	free(scale);
	for (size_t i = 0; i < b.nt; i++) {
		free(b.t[i].name);
		free(b.t[i].w);
	}
	free(b.t);
	for (size_t r = 0; r < nruns; r++)
		nwc_model_free(runs[r].model);
	if (pattern)
		regfree(&re);
	return ret;
}
