/* SPDX-License-Identifier: MIT */
/*
 * nwc.c - main() of nwc: `nwc eval` prints the perplexity of a Llama-family
 * model directory (or a mounted image) on a token file; `nwc calib` writes
 * the calibration statistics that mkfs.nwc uses; `nwc info` (info.c)
 * describes an image.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/cli.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/gemm.h"
#include "mkfs/llm/llama.h"
#include "mkfs/pack/calib.h"
#include "mkfs/pack/progress.h"
#include "mkfs/tools/info.h"

#define PROG "nwc"
#define MAX_THREADS 256u


enum { OPT_MAX_TOKENS = 256, OPT_CTX, OPT_SENS };

enum cmd { CMD_EVAL, CMD_CALIB };

struct opts {
	enum cmd cmd;
	const char *model, *tokens, *output;
	uint64_t sens_tokens;	/* calib --sensitivity */
	struct nwc_llama_opts run;
	bool quiet;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: nwc eval [OPTIONS] MODEL_DIR TOKENS.u16\n"
"       nwc calib [OPTIONS] MODEL_DIR TOKENS.u16 -o STATS.safetensors\n"
"       nwc info [--json] IMAGE   (see nwc info --help)\n"
"Run a Llama-family model (llama, mistral, qwen2, qwen3) of a model\n"
"directory or a mounted image on a token file: little-endian 16-bit token\n"
"ids, a new sequence at every BOS (id 1).\n"
"\n"
"  eval     print perplexity, mean negative log-likelihood and token count\n"
"  calib    write the input second-moment matrix of every linear layer to\n"
"           STATS.safetensors (one F32 tensor \"<weight>.H\" per weight)\n"
"           and with --sensitivity the sensitivity of each output row\n"
"           (\"<weight>.G\", one F32 per row)\n"
"\n"
"  -o, --output=FILE      the statistics file of calib\n"
"      --sensitivity=N    calib: also the mean square loss gradient of\n"
"                         every output of every linear layer, from a\n"
"                         backward pass over the first N tokens\n"
"  -j, --threads=N        threads (default: online CPUs)\n"
"      --max-tokens=N     use only the first N tokens of the file\n"
"      --ctx=N            window length: longer sequences are cut\n"
"                         (default: max_position_embeddings, at most 2048)\n"
"  -q, --quiet            no progress line\n"
"  -h, --help             show this help\n"
"  -V, --version          show the version\n"
"\n"
"Exit status: 0 success, 1 usage error, 2 I/O error, 3 bad model or\n"
"tokens.\n");
}

static int exit_code(int err)
{
	return err == -NWC_EFORMAT || err == -NWC_EFEATURE || err == -EINVAL ?
	       NWC_EXIT_DATA : NWC_EXIT_IO;
}

/*
 * One tensor of the statistics file header at hdr + *hlen: "NAME.SUFFIX",
 * F32, @dims (1 or 2) extents of @n, its data at *data, which it moves on.
 */
static void put_tensor(char *hdr, size_t hcap, size_t *hlen, const char *name,
		       size_t nl, char suffix, uint32_t n, unsigned dims,
		       size_t *data)
{
	size_t bytes = (size_t)n * (dims == 2 ? n : 1) * sizeof(float);
	char shape[32];

	if (dims == 2)
		snprintf(shape, sizeof(shape), "%" PRIu32 ",%" PRIu32, n, n);
	else
		snprintf(shape, sizeof(shape), "%" PRIu32, n);
	*hlen += (size_t)snprintf(hdr + *hlen, hcap - *hlen,
		",\"%.*s.%c\":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}",
		(int)nl, name, suffix, shape, *data, *data + bytes);
	*data += bytes;
}

/*
 * The statistics file header: safetensors JSON (padded with spaces to 8
 * bytes so the data is aligned) naming every weight's H in name order,
 * then every weight's sensitivities.
 */
static int stats_header(const struct nwc_calib *c, char **out, size_t *len)
{
	size_t hcap = 64, hlen, data = 0, nl;
	uint32_t n;
	char *hdr;

	for (size_t i = 0; i < nwc_calib_count(c); i++) {
		nwc_calib_entry(c, i, &nl, &n);
		hcap += nl + 128;
	}
	for (size_t i = 0; i < nwc_calib_sens_count(c); i++) {
		nwc_calib_sens_entry(c, i, &nl, &n);
		hcap += nl + 128;
	}
	hdr = malloc(hcap);
	if (!hdr)
		return -ENOMEM;
	hlen = (size_t)snprintf(hdr, hcap,
				"{\"__metadata__\":{\"tokens\":\"%" PRIu64
				"\"}", nwc_calib_tokens(c));
	for (size_t i = 0; i < nwc_calib_count(c); i++) {
		const char *name = nwc_calib_entry(c, i, &nl, &n);

		put_tensor(hdr, hcap, &hlen, name, nl, 'H', n, 2, &data);
	}
	for (size_t i = 0; i < nwc_calib_sens_count(c); i++) {
		const char *name = nwc_calib_sens_entry(c, i, &nl, &n);

		put_tensor(hdr, hcap, &hlen, name, nl, 'G', n, 1, &data);
	}
	hdr[hlen++] = '}';
	while (hlen % 8)
		hdr[hlen++] = ' ';
	*out = hdr;
	*len = hlen;
	return 0;
}

/* @count floats of @v (converted in place) to @fd at *@pos, moved on. */
static int write_floats(int fd, float *v, size_t count, uint64_t *pos)
{
	int ret;

	for (size_t k = 0; k < count; k++)	/* little-endian */
		nwc_put_lef32((uint8_t *)&v[k], v[k]);
	ret = nwc_pwrite_full(fd, v, count * sizeof(float), *pos);
	*pos += count * sizeof(float);
	return ret;
}

/* The header, then every H and every G in turn: one in memory at a time. */
static int stats_write(const struct nwc_calib *c, int fd)
{
	uint8_t len8[8];
	uint64_t pos;
	size_t hlen, nl;
	uint32_t n;
	char *hdr;
	float *v;
	int ret;

	ret = stats_header(c, &hdr, &hlen);
	if (ret)
		return ret;
	nwc_put_le64(len8, hlen);
	ret = nwc_pwrite_full(fd, len8, 8, 0);
	if (!ret)
		ret = nwc_pwrite_full(fd, hdr, hlen, 8);
	free(hdr);
	pos = 8 + hlen;
	for (size_t i = 0; !ret && i < nwc_calib_count(c); i++) {
		nwc_calib_entry(c, i, &nl, &n);
		ret = nwc_calib_get_at(c, i, &v);
		if (!ret)
			ret = write_floats(fd, v, (size_t)n * n, &pos);
		free(v);
	}
	for (size_t i = 0; !ret && i < nwc_calib_sens_count(c); i++) {
		nwc_calib_sens_entry(c, i, &nl, &n);
		ret = nwc_calib_get_sens_at(c, i, &v);
		if (!ret)
			ret = write_floats(fd, v, n, &pos);
		free(v);
	}
	return ret;
}

static int do_calib(const struct opts *o)
{
	char *dir = strdup(o->output), *tmp = NULL;
	struct nwc_calib_opts co = {
		.max_tokens = o->run.max_tokens,
		.ctx = o->run.ctx,
		.threads = o->run.threads ? o->run.threads : 1,
		.progress = !o->quiet && isatty(STDERR_FILENO),
		.lines = !o->quiet && !isatty(STDERR_FILENO),
		.sens_tokens = o->sens_tokens,
	};
	struct nwc_calib *c = NULL;
	int fd = -1, ret;

	if (!dir)
		return NWC_EXIT_IO;
	co.spill_dir = dirname(dir);
	ret = nwc_calib_run(o->model, o->tokens, &co, &c);
	if (ret) {
		free(dir);
		return exit_code(ret);
	}
	/* Written beside @o->output, renamed over it when whole. */
	ret = asprintf(&tmp, "%s.tmp.XXXXXX", o->output) < 0 ? -ENOMEM : 0;
	if (!ret) {
		fd = mkstemp(tmp);
		ret = fd < 0 ? -errno : 0;
	}
	if (!ret)
		ret = stats_write(c, fd);
	if (!ret && fsync(fd))
		ret = -errno;
	if (fd >= 0 && close(fd) && !ret)
		ret = -errno;
	if (!ret && (chmod(tmp, 0644) || rename(tmp, o->output)))
		ret = -errno;
	if (ret) {
		nwc_err("%s: cannot write: %s", o->output, nwc_strerror(ret));
		if (fd >= 0)
			unlink(tmp);
	} else if (!o->quiet) {
		printf("%s: H of %zu weights from %" PRIu64 " tokens\n",
		       o->output, nwc_calib_count(c), nwc_calib_tokens(c));
		if (o->sens_tokens)
			printf("%s: sensitivities of %zu weights\n", o->output,
			       nwc_calib_sens_count(c));
	}
	free(tmp);
	free(dir);
	nwc_calib_free(c);
	return ret ? NWC_EXIT_IO : 0;
}

static int do_eval(const struct opts *o, const struct nwc_llama *m,
		   const uint32_t *tok, size_t n)
{
	struct nwc_llama_eval ev;
	double mean;
	int ret;

	ret = nwc_llama_eval(m, tok, n, &o->run, &ev);
	if (ret) {
		if (ret == -ENOMEM)
			nwc_err("out of memory");
		return exit_code(ret);
	}
	if (!ev.count) {
		nwc_err("%s: no token to predict (every window is one token long)",
			o->tokens);
		return NWC_EXIT_DATA;
	}
	mean = ev.nll / (double)ev.count;
	printf("perplexity: %.6f\n", exp(mean));
	printf("nll/token: %.8f\n", mean);
	printf("tokens: %" PRIu64 " predicted of %" PRIu64 " read\n",
	       ev.count, ev.tokens);
	return 0;
}

static int run(struct opts *o)
{
	struct nwc_token_progress pr = {
		.what = o->cmd == CMD_EVAL ? PROG " eval" : PROG " calib",
	};
	struct nwc_llama *m;
	uint32_t *tok = NULL;
	size_t n = 0;
	int ret;

	if (o->cmd == CMD_CALIB)
		return do_calib(o);
	ret = nwc_llama_read_tokens(o->tokens, o->run.max_tokens, &tok, &n);
	if (ret)
		return exit_code(ret);
	ret = nwc_llama_open(o->model, &m);
	if (ret) {
		free(tok);
		return exit_code(ret);
	}
	if (!o->quiet && isatty(STDERR_FILENO)) {
		pr.t0 = nwc_now();
		o->run.progress = nwc_token_progress;
		o->run.progress_arg = &pr;
	}
	ret = do_eval(o, m, tok, n);
	nwc_llama_free(m);
	free(tok);
	return ret;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "threads", required_argument, NULL, 'j' },
		{ "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
		{ "ctx", required_argument, NULL, OPT_CTX },
		{ "sensitivity", required_argument, NULL, OPT_SENS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct opts o = {
		.run.threads = ncpu > 0 ?
			       (unsigned)NWC_MIN(ncpu, (long)MAX_THREADS) : 1,
	};
	bool have_cmd = false;
	int c, bad = 0;

	nwc_log_set_prefix(PROG);
	if (argc > 1 && !strcmp(argv[1], "info")) {
		argv[1] = argv[0];
		return nwc_info_main(argc - 1, argv + 1);
	}
	if (argc > 1 && (!strcmp(argv[1], "eval") || !strcmp(argv[1], "calib"))) {
		o.cmd = strcmp(argv[1], "eval") ? CMD_CALIB : CMD_EVAL;
		have_cmd = true;
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	while ((c = getopt_long(argc, argv, "o:j:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o.output = optarg;
			break;
		case 'j':
			bad |= nwc_parse_uint(optarg, 1, MAX_THREADS,
					      &o.run.threads);
			break;
		case OPT_MAX_TOKENS:
			bad |= parse_u64(optarg, &o.run.max_tokens);
			bad |= !o.run.max_tokens;
			break;
		case OPT_CTX:
			bad |= nwc_parse_uint(optarg, 2, 1u << 20, &o.run.ctx);
			break;
		case OPT_SENS:
			bad |= parse_u64(optarg, &o.sens_tokens);
			bad |= !o.sens_tokens;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf(PROG " (nwcfs) %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return NWC_EXIT_USAGE;
		}
		if (bad) {
			nwc_err("invalid value for %s: %s", argv[optind - 1],
				optarg);
			return NWC_EXIT_USAGE;
		}
	}
	if (!have_cmd) {
		nwc_err("expected a command, eval, calib or info (see --help)");
		return NWC_EXIT_USAGE;
	}
	if (argc - optind != 2) {
		nwc_err("expected MODEL_DIR and TOKENS.u16 (see --help)");
		return NWC_EXIT_USAGE;
	}
	if (o.sens_tokens && o.cmd != CMD_CALIB) {
		nwc_err("--sensitivity is an option of calib only");
		return NWC_EXIT_USAGE;
	}
	if ((o.cmd == CMD_CALIB) != !!o.output) {
		nwc_err(o.output ? "--output is an option of calib only" :
			"calib needs -o STATS.safetensors");
		return NWC_EXIT_USAGE;
	}
	o.model = argv[optind];
	o.tokens = argv[optind + 1];
	nwc_gemm_check_core();
	return run(&o);
}
