/* SPDX-License-Identifier: MIT */
/*
 * mkfs.c - main() of mkfs.nwc: options and exit statuses; the work (walk,
 * codec models and calibration, pack, the summary) is libnwcpack.a's.
 */
#include "codec/common/base.h"

#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec/common/cli.h"
#include "codec/image/format.h"
#include "codec/common/log.h"
#include "codec/nwc/gemm.h"
#include "mkfs/group/group.h"
#include "mkfs/pack/calib.h"
#include "mkfs/pack/pack.h"
#include "mkfs/pack/progress.h"
#include "mkfs/pack/rate.h"
#include "mkfs/pack/walk.h"

/* The installed codec models; the build may set another directory. */
#ifndef NWC_MODELS_DIR
#define NWC_MODELS_DIR "/usr/local/share/nwcfs/models"
#endif
/* The build tree, and the models of the source tree it was built from. */
#ifndef NWC_BUILD_DIR
#define NWC_BUILD_DIR "/nonexistent"
#endif
#ifndef NWC_SOURCE_MODELS_DIR
#define NWC_SOURCE_MODELS_DIR "/nonexistent"
#endif

#define DEFAULT_BITS 5.0
#define DEFAULT_CALIB_TOKENS 65536u
#define DEFAULT_CALIB_SENS 16384u
/* Without --calib-sens, fewer tokens if their layer inputs (the backward
 * pass's spill file) would pass this. */
#define DEFAULT_SENS_SPILL (8ull << 30)
/*
 * --calib-shrink: on SmolLM2-135M calibrated on 65,536 TinyStories tokens
 * and scored on 8,192 held-out ones and 8,192 of technical prose, 0.5
 * against 0 moved perplexity at 4 bits from +3.3% / +8.9% to +2.9% /
 * +6.7%, at 3 bits from +12.2% / +50.1% to +13.2% / +34.6%
 * (bench/shrink-sweep.sh): the prose gains far more than the calibration
 * domain gives back.
 */
#define DEFAULT_CALIB_SHRINK 0.5
/* --calib-tune: Adam's step size, relative to each tensor's coding error,
 * and the tokens of a step (see README, tuning). */
#define DEFAULT_TUNE_RATE 0.01
#define DEFAULT_EXACT_SD 0.0
#define DEFAULT_CALIB_LOUD 10000.0
#define DEFAULT_TUNE_TOKENS 4096u


enum {
	OPT_LOSSLESS = 256, OPT_PROGRESS, OPT_NO_PROGRESS, OPT_BITS, OPT_KEEP,
	OPT_MODELS, OPT_MODEL_SET, OPT_CALIB, OPT_CALIB_TOKENS, OPT_CALIB_STATS,
	OPT_QUANT, OPT_CALIB_MODE, OPT_EXCLUDE, OPT_NO_DEREFERENCE,
	OPT_CALIB_SHRINK, OPT_CALIB_DAMP, OPT_EXACT_SD, OPT_CALIB_LOUD,
	OPT_CALIB_PROMOTE, OPT_CALIB_SENS, OPT_CALIB_SENS_POWER, OPT_EXACT_TENSORS, OPT_CALIB_TUNE, OPT_CALIB_TUNE_TOKENS,
	OPT_CALIB_TUNE_FILE, OPT_CALIB_TUNE_RATE,
};

#define MAX_EXCLUDES 64u

/*
 * Whether this program runs from the build tree it was built in (not
 * installed): then the codec models are those beside the sources.
 */
static bool in_build_tree(void)
{
	char exe[PATH_MAX];
	size_t n = strlen(NWC_BUILD_DIR);
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (len <= 0)
		return false;
	exe[len] = '\0';
	return !strncmp(exe, NWC_BUILD_DIR, n) && exe[n] == '/';
}

/* Options of the lossy mode, as given. */
struct lossy_args {
	bool lossless;
	bool any;		/* a lossy option was given */
	struct nwc_pack_lossy pl;
	const char *models_dir;
	const char *model_set;	/* --model-set: a subdirectory of it */
	char models_path[PATH_MAX];	/* models_dir/model_set */
	const char *calib;
	const char *calib_stats;
	unsigned calib_tokens;
	bool calib_tokens_set;
	unsigned sens_tokens;	/* --calib-sens */
	bool sens_set;
	bool sens_power_set;	/* --calib-sens-power (in pl.sens_power) */
	bool sequential;	/* --calib-mode=sequential */
	bool calib_mode_set;
	double shrink;		/* --calib-shrink */
	bool promote_set;	/* --calib-promote (in pl.promote) */
	bool loud_set;		/* --calib-loud (in pl.exact_loud) */
	bool shrink_set;
	/* --calib-tune (in pl.tune) */
	bool tune_tokens_set, tune_file_set, tune_rate_set;
	char *spill_dir;	/* beside the image */
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: mkfs.nwc [OPTIONS] MODEL_DIR IMAGE\n"
"Pack a model directory into a compressed read-only nwc image.\n"
"\n"
"      --lossless          store every file losslessly (by default, weight\n"
"                          matrices go through the lossy neural codec)\n"
"      --bits=B            average bits per weight of the lossy tensors,\n"
"                          1..16 (default 5)\n"
"      --bits=GLOB=B       fixed rate for the tensors whose name matches GLOB\n"
"                          (repeatable; later rules win)\n"
"      --keep=GLOB         store the tensors matching GLOB losslessly\n"
"                          (repeatable)\n"
"      --models=DIR        codec models (*.nwcm), one per rate point\n"
"                          (default: $NWC_MODELS_DIR, else the source\n"
"                          tree's when run from the build tree, else\n"
"                          " NWC_MODELS_DIR ")\n"
"      --model-set=NAME    the models of its subdirectory NAME: linear (a\n"
"                          cheaper decoder: faster reads, lower quality\n"
"                          below 4 bits) or sizes\n"
"      --calib=TOKENS.u16  run the model (Llama family) on these tokens to\n"
"                          weigh the columns and correct the errors (LDLQ)\n"
"      --calib-tokens=N    use the first N tokens (default 65536)\n"
"      --calib-sens=N      a backward pass over the first N tokens measures\n"
"                          each output's effect on the loss, to spend the\n"
"                          bits where they lower it most (default 16384,\n"
"                          fewer if their layer inputs pass 8 GiB, at most\n"
"                          --calib-tokens; 0: by relative error alone)\n"
"      --calib-sens-power=P\n"
"                          weigh each tensor's error by its sensitivity to\n"
"                          the power P, 0..2 (default 0.5)\n"
"      --calib-mode=MODE   one-pass: statistics of the original model\n"
"                          (default); sequential: each layer's statistics\n"
"                          on the outputs of the layers coded before it\n"
"      --calib-stats=FILE  calibration statistics from `nwc calib` instead\n"
"      --calib-shrink=A    scale the statistics' off-diagonal entries by\n"
"                          1 - A, 0..1 (default 0.5): trust the calibration\n"
"                          text's correlations less\n"
"      --calib-promote=F   the share of input columns, by calibration energy,\n"
"                          coded at the next quality level, 0..1\n"
"                          (default 0.111)\n"
"      --calib-loud=R      store exactly every weight of the input channels\n"
"                          whose calibration energy passes R times the\n"
"                          median channel's, 0 or 10..1e9 (default 10000;\n"
"                          0: none): LDLQ cannot serve the other weights\n"
"                          around such massive activations\n"
"      --calib-damp=D      LDLQ damping, a share of H's mean diagonal added\n"
"                          to it, 0 < D <= 10 (default 0.01)\n"
"      --calib-tune=STEPS  tune the coded tensors' row scales end to end:\n"
"                          STEPS passes forward and backward through the\n"
"                          model, towards the original's predictions on\n"
"                          the calibration tokens (default 0: none)\n"
"      --calib-tune-tokens=N  N tokens a step, the next N each step\n"
"                          (default 4096)\n"
"      --calib-tune-file=TOKENS.u16\n"
"                          the tokens to tune on with --calib-stats\n"
"                          (default: those of --calib)\n"
"      --calib-tune-rate=R the step size, a share of each tensor's relative\n"
"                          error, 0 < R <= 1 (default 0.01)\n"
"      --quant=tcq|round   latent quantizer (default tcq)\n"
"      --exact-sd=R        store exactly the weights further than R standard\n"
"                          deviations from their row's mean, 0 or 8..1000\n"
"                          (default 0: none)\n"
"      --exact-tensors     let the allocation store whole tensors exactly\n"
"                          (their byte planes, counted in --bits) where\n"
"                          that lowers the estimated loss most per bit;\n"
"                          needs the calibration's sensitivities\n"
"      --exclude=GLOB      leave out the files and directories whose path\n"
"                          or name matches GLOB; a trailing / matches\n"
"                          directories only (repeatable)\n"
"      --no-dereference    store symlinks that lead out of MODEL_DIR as\n"
"                          links (by default, as the files they point to)\n"
"  -b, --block-size=SIZE   decoded block size, a power of two from 4K to 64M\n"
"                          (default 256K)\n"
"  -l, --level=N           zstd level, 1..19 (default 3)\n"
"  -j, --jobs=N            threads: compression, coding, calibration\n"
"                          (default: online CPUs)\n"
"  -f, --force             replace IMAGE if it exists\n"
"  -q, --quiet             no progress bar and no summary\n"
"      --progress          always draw the progress bar\n"
"      --no-progress       never draw the progress bar\n"
"  -v, --verbose           more log lines\n"
"  -h, --help              show this help\n"
"  -V, --version           show the version\n"
"\n"
"Exit status: 0 success, 1 usage error, 2 I/O error, 3 malformed input.\n");
}

/* A bit rate from 1 to 16; 0 or -EINVAL. */
/* A decimal number in [@lo, @hi] (--bits, --calib-shrink, --calib-damp,
 * --calib-promote, --calib-sens-power). */
static int parse_real(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

/* 0 (off), or a decimal number from @least to @most (--exact-sd,
 * --calib-loud). */
static int parse_off_or(const char *s, double least, double most,
			double *out)
{
	if (parse_real(s, 0, most, out) || (*out != 0 && *out < least))
		return -EINVAL;
	return 0;
}

static int add_rule(struct lossy_args *la, const char *glob, double bits)
{
	struct nwc_lossy_policy *pol = &la->pl.policy;

	if (pol->nrules == NWC_LOSSY_MAX_RULES) {
		nwc_err("more than %u --keep and --bits GLOB=B rules",
			NWC_LOSSY_MAX_RULES);
		return -EINVAL;
	}
	pol->rule[pol->nrules].glob = glob;
	pol->rule[pol->nrules].bits = bits;
	pol->nrules++;
	return 0;
}

/* --bits B or --bits GLOB=B; the '=' of GLOB=B is cut in place. */
static int opt_bits(struct lossy_args *la, char *arg)
{
	char *eq = strrchr(arg, '=');
	double bits;

	if (parse_real(eq ? eq + 1 : arg, 1, 16, &bits) || (eq && eq == arg)) {
		nwc_err("--bits: '%s' is not B or GLOB=B with B a number from 1 to 16",
			arg);
		return -EINVAL;
	}
	if (!eq) {
		la->pl.bits = bits;
		return 0;
	}
	*eq = '\0';
	return add_rule(la, arg, bits);
}

static int opt_quant(struct lossy_args *la, const char *arg)
{
	if (!strcmp(arg, "tcq")) {
		la->pl.quant = NWC_QUANT_TCQ;
	} else if (!strcmp(arg, "round")) {
		la->pl.quant = NWC_QUANT_ROUND;
	} else {
		nwc_err("--quant: '%s' is not tcq or round", arg);
		return -EINVAL;
	}
	return 0;
}

/* Options that only make sense together, checked after parsing. */
static int check_lossy_args(struct lossy_args *la)
{
	if (la->lossless && la->any) {
		nwc_err("--lossless excludes the options of the lossy mode (--bits, --keep, --models, --calib*, --quant)");
		return -EINVAL;
	}
	if (la->calib && la->calib_stats) {
		nwc_err("--calib and --calib-stats exclude each other");
		return -EINVAL;
	}
	if (la->calib_tokens_set && !la->calib) {
		nwc_err("--calib-tokens needs --calib");
		return -EINVAL;
	}
	if (la->sens_set && !la->calib) {
		nwc_err("--calib-sens needs --calib");
		return -EINVAL;
	}
	if (la->sens_power_set && !la->calib && !la->calib_stats) {
		nwc_err("--calib-sens-power needs --calib or --calib-stats");
		return -EINVAL;
	}
	if (la->pl.exact_tensors && !la->calib && !la->calib_stats) {
		nwc_err("--exact-tensors needs --calib or --calib-stats (the sensitivities)");
		return -EINVAL;
	}
	if (la->calib_mode_set && !la->calib) {
		nwc_err("--calib-mode needs --calib");
		return -EINVAL;
	}
	if (la->shrink_set && !la->calib && !la->calib_stats) {
		nwc_err("--calib-shrink needs --calib or --calib-stats");
		return -EINVAL;
	}
	if (la->pl.damp > 0 && !la->calib && !la->calib_stats) {
		nwc_err("--calib-damp needs --calib or --calib-stats");
		return -EINVAL;
	}
	if (la->loud_set && !la->calib && !la->calib_stats) {
		nwc_err("--calib-loud needs --calib or --calib-stats");
		return -EINVAL;
	}
	if (la->promote_set && !la->calib && !la->calib_stats) {
		nwc_err("--calib-promote needs --calib or --calib-stats");
		return -EINVAL;
	}
	if ((la->tune_tokens_set || la->tune_file_set || la->tune_rate_set) &&
	    !la->pl.tune.steps) {
		nwc_err("--calib-tune-tokens, --calib-tune-file and --calib-tune-rate need --calib-tune");
		return -EINVAL;
	}
	if (la->pl.tune.steps && !la->calib && !la->calib_stats) {
		nwc_err("--calib-tune needs --calib, or --calib-stats with --calib-tune-file");
		return -EINVAL;
	}
	if (la->pl.tune.steps && la->calib_stats && !la->tune_file_set) {
		nwc_err("--calib-tune with --calib-stats needs --calib-tune-file (the tokens to tune on)");
		return -EINVAL;
	}
	if (la->tune_file_set && la->calib) {
		nwc_err("--calib-tune-file is for --calib-stats: with --calib, the tuning reads its tokens");
		return -EINVAL;
	}
	if (!la->models_dir) {
		la->models_dir = getenv("NWC_MODELS_DIR");
		if (!la->models_dir || !*la->models_dir)
			la->models_dir = in_build_tree() ? NWC_SOURCE_MODELS_DIR :
							   NWC_MODELS_DIR;
	}
	if (la->model_set) {
		int n = snprintf(la->models_path, sizeof(la->models_path),
				 "%s/%s", la->models_dir, la->model_set);

		if (n < 0 || (size_t)n >= sizeof(la->models_path)) {
			nwc_err("--model-set: %s/%s: path too long",
				la->models_dir, la->model_set);
			return -EINVAL;
		}
		la->models_dir = la->models_path;
	}
	return 0;
}

/*
 * The tokens of the sensitivity pass: calibration tokens only, and without
 * --calib-sens, fewer if their layer inputs would pass DEFAULT_SENS_SPILL.
 */
static void sens_tokens(struct lossy_args *la, const char *model_dir)
{
	struct nwc_llama_config cfg;
	uint64_t fit;

	la->sens_tokens = NWC_MIN(la->sens_tokens, la->calib_tokens);
	/* A config that does not read fails in the calibration. */
	if (la->sens_set || !la->sens_tokens ||
	    nwc_llama_read_config(model_dir, &cfg))
		return;
	fit = DEFAULT_SENS_SPILL / (4ull * cfg.hidden * cfg.layers);
	if (fit >= la->sens_tokens)
		return;
	la->sens_tokens = (unsigned)NWC_MAX(fit, 1);
	nwc_info("sensitivity pass on %u tokens, so that its file of layer inputs stays within %llu GiB (--calib-sens sets it)",
		 la->sens_tokens, DEFAULT_SENS_SPILL >> 30);
}

/* Load the codec models and the calibration; returns an exit status. */
static int prepare_lossy(struct lossy_args *la, const char *model_dir,
			 const char *image, bool quiet,
			 const struct nwc_pack_opts *opts,
			 struct nwc_rate_models *models,
			 struct nwc_calib **calib)
{
	int ret;

	ret = nwc_rate_load_models(la->models_dir, la->pl.quant, models);
	if (ret)
		return ret == -ENOENT ? NWC_EXIT_USAGE :
		       ret == -NWC_EFORMAT ? NWC_EXIT_DATA : NWC_EXIT_IO;
	la->pl.models = models;
	*calib = NULL;
	if (la->calib)
		sens_tokens(la, model_dir);
	if (la->calib) {
		/* Statistics spill beside the image, where there is room. */
		char *copy = strdup(image);
		struct nwc_calib_opts co = {
			.max_tokens = la->calib_tokens,
			.threads = opts->jobs,
			.progress = opts->progress,
			.lines = !quiet && !opts->progress,
			.spill_dir = copy ? dirname(copy) : NULL,
			.sens_tokens = la->sens_tokens,
		};
		double t0 = nwc_now();

		if (!copy)
			return NWC_EXIT_IO;
		ret = nwc_calib_run(model_dir, la->calib, &co, calib);
		la->pl.calib_seconds = nwc_now() - t0;
		if (!ret && la->sequential)
			la->pl.sequential = *calib;
		free(copy);
		if (ret)
			return ret == -NWC_EFEATURE ? NWC_EXIT_USAGE :
			       ret == -EINVAL || ret == -NWC_EFORMAT ?
			       NWC_EXIT_DATA : NWC_EXIT_IO;
	} else if (la->calib_stats) {
		ret = nwc_calib_open_stats(la->calib_stats, calib);
		if (ret)
			return ret == -NWC_EFORMAT ? NWC_EXIT_DATA : NWC_EXIT_IO;
	}
	if (*calib && la->shrink > 0)
		nwc_calib_set_shrink(*calib, la->shrink);
	la->pl.calib = *calib;
	if (la->pl.tune.steps) {
		la->spill_dir = strdup(image);
		if (!la->spill_dir)
			return NWC_EXIT_IO;
		la->pl.tune.spill_dir = dirname(la->spill_dir);
		la->pl.tune.lines = !quiet;
		la->pl.tune.dir = model_dir;
		if (la->calib)
			la->pl.tune.tokens = la->calib;
	}
	return 0;
}

/*
 * What the walk found, against what the options expect: exclusions that
 * matched nothing and lossy options without a safetensors file are
 * warnings (with a real path to compare), a source without a single file
 * or symlink an error.  Returns an exit status.
 */
static int check_tree(const struct nwc_tree *tree,
		      const struct nwc_walk_opts *wo,
		      const struct lossy_args *la, const char *root)
{
	const char *example = NULL;
	bool safetensors = false;
	uint32_t links = 0;

	for (uint32_t i = 1; i < tree->n; i++) {
		const struct nwc_entry *e = &tree->e[i];

		links += S_ISLNK(e->mode);
		if (!S_ISREG(e->mode))
			continue;
		if (!example)
			example = e->path;
		safetensors |= nwc_is_safetensors(e->name);
	}
	for (size_t i = 0; i < wo->n_exclude; i++)
		if (!wo->exclude_hits[i])
			nwc_warn("--exclude '%s' matches nothing in %s (paths look like '%s')",
				 wo->exclude[i], root,
				 example ? example : "(no file)");
	if (!tree->n_files && !links) {
		nwc_err("%s: no files to pack%s", root,
			tree->n_excluded ? " (all of them excluded)" : "");
		return NWC_EXIT_USAGE;
	}
	if (la->any && !la->lossless && !safetensors)
		nwc_warn("%s: no .safetensors file: the lossy options do not apply, every file is stored losslessly",
			 root);
	return 0;
}

/* The last component of @path, for the stored command (no local dirs). */
static const char *last_part(const char *path)
{
	const char *end = path + strlen(path), *p;

	while (end > path + 1 && end[-1] == '/')
		end--;
	for (p = end; p > path && p[-1] != '/'; p--)
		;
	return p;
}

/* "ARG", quoted for a shell when it needs it. */
static void put_arg(FILE *f, const char *opt, const char *val, size_t len)
{
	bool plain = len > 0;

	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/=+,:@%", val[i]))
			plain = false;
	fprintf(f, " %s", opt);
	if (plain) {
		fprintf(f, "%.*s", (int)len, val);
		return;
	}
	fputc('\'', f);
	for (size_t i = 0; i < len; i++) {
		if (val[i] == '\'')
			fputs("'\\''", f);
		else if (val[i] == '\n')
			fputs("?", f);	/* a line of the text stays a line */
		else
			fputc(val[i], f);
	}
	fputc('\'', f);
}

#define PUT_PATH(f, opt, path) \
	put_arg(f, opt, last_part(path), strcspn(last_part(path), "/"))

/*
 * The INFO text (format.h 11): the tool, and the command that makes this
 * image, normalized: every option that shapes the image, defaults
 * included, paths of option values reduced to their last component and
 * the source and image named MODEL_DIR and IMAGE, so that neither -j nor
 * -q nor where the files lie changes the image.  Returns a malloc'd
 * string or NULL.
 */
static char *info_text(const struct lossy_args *la,
		       const struct nwc_walk_opts *wo,
		       const struct nwc_pack_opts *opts)
{
	const struct nwc_lossy_policy *pol = &la->pl.policy;
	char *buf = NULL, num[64];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "tool=mkfs.nwc (nwcfs) %s\ncommand=mkfs.nwc", PACKAGE_VERSION);
	if (la->lossless) {
		fputs(" --lossless", f);
	} else {
		fprintf(f, " --bits=%g", la->pl.bits);
		for (unsigned r = 0; r < pol->nrules; r++) {
			const char *g = pol->rule[r].glob;

			if (pol->rule[r].bits < 0) {
				put_arg(f, "--keep=", g, strlen(g));
				continue;
			}
			snprintf(num, sizeof(num), "=%g", pol->rule[r].bits);
			put_arg(f, "--bits=", g, strlen(g));
			fputs(num, f);
		}
		fprintf(f, " --quant=%s", la->pl.quant == NWC_QUANT_TCQ ?
					  "tcq" : "round");
		if (la->pl.exact_sd > 0)
			fprintf(f, " --exact-sd=%g", la->pl.exact_sd);
		if (la->pl.exact_tensors)
			fprintf(f, " --exact-tensors");
		PUT_PATH(f, "--models=", la->models_dir);
		if (la->calib) {
			PUT_PATH(f, "--calib=", la->calib);
			fprintf(f, " --calib-tokens=%u --calib-mode=%s --calib-sens=%u",
				la->calib_tokens,
				la->sequential ? "sequential" : "one-pass",
				la->sens_tokens);
		}
		if (la->calib_stats)
			PUT_PATH(f, "--calib-stats=", la->calib_stats);
		if (la->calib || la->calib_stats)
			fprintf(f, " --calib-shrink=%g", la->shrink);
		if (la->pl.damp > 0)
			fprintf(f, " --calib-damp=%g", la->pl.damp);
		if (la->calib || la->calib_stats)
			fprintf(f, " --calib-loud=%g --calib-promote=%g --calib-sens-power=%g",
				la->pl.exact_loud, la->pl.promote,
				la->pl.sens_power);
		if (la->pl.tune.steps) {
			fprintf(f, " --calib-tune=%u --calib-tune-tokens=%llu",
				la->pl.tune.steps,
				(unsigned long long)la->pl.tune.max_tokens);
			if (la->tune_file_set)
				PUT_PATH(f, "--calib-tune-file=",
					 la->pl.tune.tokens);
			fprintf(f, " --calib-tune-rate=%g", la->pl.tune.lr);
		}
	}
	for (size_t i = 0; i < wo->n_exclude; i++)
		put_arg(f, "--exclude=", wo->exclude[i],
			strlen(wo->exclude[i]));
	if (wo->no_dereference)
		fputs(" --no-dereference", f);
	fprintf(f, " --block-size=%u --level=%d", 1u << opts->block_log2,
		opts->level);
	/* Where the files lie is their holder's business. */
	fputs(" MODEL_DIR IMAGE\n", f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Creation time: $SOURCE_DATE_EPOCH (reproducible images), else now. */
static int64_t created_time(void)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	char *end;
	long long v;

	if (s && *s) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (!errno && !*end && v >= 0)
			return v;
		nwc_warn("SOURCE_DATE_EPOCH='%s' is not a number of seconds: using the time now",
			 s);
	}
	return (int64_t)time(NULL);
}

static int mkfs_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "lossless", no_argument, NULL, OPT_LOSSLESS },
		{ "bits", required_argument, NULL, OPT_BITS },
		{ "keep", required_argument, NULL, OPT_KEEP },
		{ "models", required_argument, NULL, OPT_MODELS },
		{ "model-set", required_argument, NULL, OPT_MODEL_SET },
		{ "calib", required_argument, NULL, OPT_CALIB },
		{ "calib-tokens", required_argument, NULL, OPT_CALIB_TOKENS },
		{ "calib-stats", required_argument, NULL, OPT_CALIB_STATS },
		{ "quant", required_argument, NULL, OPT_QUANT },
		{ "exact-sd", required_argument, NULL, OPT_EXACT_SD },
		{ "calib-mode", required_argument, NULL, OPT_CALIB_MODE },
		{ "calib-shrink", required_argument, NULL, OPT_CALIB_SHRINK },
		{ "calib-damp", required_argument, NULL, OPT_CALIB_DAMP },
		{ "calib-loud", required_argument, NULL, OPT_CALIB_LOUD },
		{ "calib-promote", required_argument, NULL, OPT_CALIB_PROMOTE },
		{ "calib-sens", required_argument, NULL, OPT_CALIB_SENS },
		{ "calib-sens-power", required_argument, NULL,
		  OPT_CALIB_SENS_POWER },
		{ "exact-tensors", no_argument, NULL, OPT_EXACT_TENSORS },
		{ "calib-tune", required_argument, NULL, OPT_CALIB_TUNE },
		{ "calib-tune-tokens", required_argument, NULL,
		  OPT_CALIB_TUNE_TOKENS },
		{ "calib-tune-file", required_argument, NULL,
		  OPT_CALIB_TUNE_FILE },
		{ "calib-tune-rate", required_argument, NULL,
		  OPT_CALIB_TUNE_RATE },
		{ "exclude", required_argument, NULL, OPT_EXCLUDE },
		{ "no-dereference", no_argument, NULL, OPT_NO_DEREFERENCE },
		{ "block-size", required_argument, NULL, 'b' },
		{ "level", required_argument, NULL, 'l' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "force", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct nwc_pack_opts opts = {
		.block_log2 = 18,	/* 256 KiB: see README, Benchmarks */
		.level = 3,
		.jobs = 0,
	};
	struct lossy_args la = {
		.pl = {
			.policy.keep_default = true,
			.bits = DEFAULT_BITS,
			.quant = NWC_QUANT_TCQ,
			.promote = NWC_LOSSY_PROMOTE,
			.exact_sd = DEFAULT_EXACT_SD,
			.exact_loud = DEFAULT_CALIB_LOUD,
			.sens_power = NWC_LOSSY_SENS_POWER,
			.tune = { .lr = DEFAULT_TUNE_RATE,
				  .max_tokens = DEFAULT_TUNE_TOKENS },
		},
		.calib_tokens = DEFAULT_CALIB_TOKENS,
		.sens_tokens = DEFAULT_CALIB_SENS,
		.shrink = DEFAULT_CALIB_SHRINK,
	};
	const char *exclude[MAX_EXCLUDES];
	uint32_t exclude_hits[MAX_EXCLUDES] = { 0 };
	struct nwc_walk_opts wo = {
		.exclude = exclude, .exclude_hits = exclude_hits,
	};
	struct nwc_rate_models models = { 0 };
	struct nwc_calib *calib = NULL;
	struct nwc_pack_result res;
	struct nwc_tree tree;
	struct stat sb;
	char *info = NULL;
	int progress = -1, quiet = 0, c, ret, status;
	long ncpu;

	while ((c = getopt_long(argc, argv, "b:l:j:fqvhV", longopts, NULL)) != -1) {
		uint64_t size;
		unsigned v;

		switch (c) {
		case OPT_LOSSLESS:
			la.lossless = true;
			break;
		case OPT_BITS:
			la.any = true;
			if (opt_bits(&la, optarg))
				return NWC_EXIT_USAGE;
			break;
		case OPT_KEEP:
			la.any = true;
			if (!*optarg) {
				nwc_err("--keep: empty pattern");
				return NWC_EXIT_USAGE;
			}
			if (add_rule(&la, optarg, -1))
				return NWC_EXIT_USAGE;
			break;
		case OPT_MODELS:
			la.any = true;
			la.models_dir = optarg;
			break;
		case OPT_MODEL_SET:
			la.any = true;
			if (!*optarg || strchr(optarg, '/') ||
			    !strcmp(optarg, ".") || !strcmp(optarg, "..")) {
				nwc_err("--model-set=%s: a subdirectory of the models directory is named without a slash (linear, sizes)",
					optarg);
				return NWC_EXIT_USAGE;
			}
			la.model_set = optarg;
			break;
		case OPT_CALIB:
			la.any = true;
			la.calib = optarg;
			break;
		case OPT_CALIB_MODE:
			la.any = true;
			la.calib_mode_set = true;
			if (!strcmp(optarg, "sequential")) {
				la.sequential = true;
			} else if (strcmp(optarg, "one-pass")) {
				nwc_err("--calib-mode: '%s' is neither one-pass nor sequential",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_CALIB_TOKENS:
			la.any = true;
			la.calib_tokens_set = true;
			if (nwc_parse_uint(optarg, 2, UINT32_MAX,
					   &la.calib_tokens)) {
				nwc_err("--calib-tokens: '%s' is not a number of at least 2",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_EXACT_TENSORS:
			la.any = true;
			la.pl.exact_tensors = true;
			break;
		case OPT_CALIB_SENS_POWER:
			la.any = true;
			la.sens_power_set = true;
			if (parse_real(optarg, 0, 2, &la.pl.sens_power)) {
				nwc_err("--calib-sens-power: '%s' is not a number from 0 to 2",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_CALIB_SENS:
			la.any = true;
			la.sens_set = true;
			if (nwc_parse_uint(optarg, 0, UINT32_MAX,
					   &la.sens_tokens)) {
				nwc_err("--calib-sens: '%s' is not a number of tokens",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_CALIB_SHRINK:
			la.any = true;
			la.shrink_set = true;
			if (parse_real(optarg, 0, 1, &la.shrink)) {
				nwc_err("--calib-shrink: '%s' is not a number from 0 to 1",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_EXACT_SD:
			la.any = true;
			if (parse_off_or(optarg, NWC_TENC_MIN_EXACT_SD, 1000,
					 &la.pl.exact_sd)) {
				nwc_err("--exact-sd: '%s' is not 0 or a number from %g to 1000",
					optarg, (double)NWC_TENC_MIN_EXACT_SD);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_CALIB_LOUD:
			la.any = true;
			la.loud_set = true;
			if (parse_off_or(optarg, NWC_TENC_MIN_EXACT_LOUD, 1e9,
					 &la.pl.exact_loud)) {
				nwc_err("--calib-loud: '%s' is not 0 or a number from %g to 1e9",
					optarg, (double)NWC_TENC_MIN_EXACT_LOUD);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_CALIB_DAMP:
			la.any = true;
			if (parse_real(optarg, 0, 10, &la.pl.damp) ||
			    !(la.pl.damp > 0)) {
				nwc_err("--calib-damp: '%s' is not a number above 0 and at most 10",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_CALIB_PROMOTE:
			la.any = true;
			la.promote_set = true;
			if (parse_real(optarg, 0, 1, &la.pl.promote)) {
				nwc_err("--calib-promote: '%s' is not a number from 0 to 1",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_CALIB_STATS:
			la.any = true;
			la.calib_stats = optarg;
			break;
		case OPT_CALIB_TUNE:
			la.any = true;
			if (nwc_parse_uint(optarg, 0, 100000,
					   &la.pl.tune.steps)) {
				nwc_err("--calib-tune: '%s' is not a number of steps (0 to 100000)",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_CALIB_TUNE_TOKENS:
			la.any = true;
			la.tune_tokens_set = true;
			if (nwc_parse_uint(optarg, 2, UINT32_MAX, &v)) {
				nwc_err("--calib-tune-tokens: '%s' is not a number of at least 2",
					optarg);
				return NWC_EXIT_USAGE;
			}
			la.pl.tune.max_tokens = v;
			break;
		case OPT_CALIB_TUNE_FILE:
			la.any = true;
			la.tune_file_set = true;
			la.pl.tune.tokens = optarg;
			break;
		case OPT_CALIB_TUNE_RATE:
			la.any = true;
			la.tune_rate_set = true;
			if (parse_real(optarg, 0, 1, &la.pl.tune.lr) ||
			    !(la.pl.tune.lr > 0)) {
				nwc_err("--calib-tune-rate: '%s' is not a number above 0 and at most 1",
					optarg);
				return NWC_EXIT_USAGE;
			}
			break;
		case OPT_QUANT:
			la.any = true;
			if (opt_quant(&la, optarg))
				return NWC_EXIT_USAGE;
			break;
		case OPT_EXCLUDE:
			if (!*optarg || wo.n_exclude == MAX_EXCLUDES) {
				nwc_err("--exclude: %s", *optarg ? "more than 64 patterns" :
					"empty pattern");
				return NWC_EXIT_USAGE;
			}
			exclude[wo.n_exclude++] = optarg;
			break;
		case OPT_NO_DEREFERENCE:
			wo.no_dereference = true;
			break;
		case 'b':
			if (nwc_parse_size(optarg, &size) || size < 4096 ||
			    size > (64u << 20) || (size & (size - 1))) {
				nwc_err("--block-size: '%s' is not a power of two from 4K to 64M",
					optarg);
				return NWC_EXIT_USAGE;
			}
			opts.block_log2 = (unsigned)__builtin_ctzll(size);
			break;
		case 'l':
			if (nwc_parse_uint(optarg, 1, 19, &v)) {
				nwc_err("--level: '%s' is not a number from 1 to 19",
					optarg);
				return NWC_EXIT_USAGE;
			}
			opts.level = (int)v;
			break;
		case 'j':
			if (nwc_parse_uint(optarg, 1, 1024, &v)) {
				nwc_err("--jobs: '%s' is not a number from 1 to 1024",
					optarg);
				return NWC_EXIT_USAGE;
			}
			opts.jobs = v;
			break;
		case 'f':
			opts.force = true;
			break;
		case 'q':
			quiet = 1;
			break;
		case OPT_PROGRESS:
			progress = 1;
			break;
		case OPT_NO_PROGRESS:
			progress = 0;
			break;
		case 'v':
			nwc_log_set_level(NWC_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mkfs.nwc (nwcfs) %s, image format %u%s\n",
			       PACKAGE_VERSION, NWC_VERSION,
			       nwc_group_have_mpi() ? ", MPI" : "");
			return 0;
		default:
			usage(stderr);
			return NWC_EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		nwc_err("expected MODEL_DIR and IMAGE (see --help)");
		return NWC_EXIT_USAGE;
	}
	if (check_lossy_args(&la))
		return NWC_EXIT_USAGE;
	if (!opts.jobs) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		opts.jobs = ncpu > 0 ? (unsigned)NWC_MIN(ncpu, 64L) : 1;
	}
	/* Rank 0 of a group speaks for all: the others only log problems. */
	if (nwc_group_rank())
		quiet = 1, progress = 0;
	opts.progress = progress < 0 ? (!quiet && isatty(STDERR_FILENO))
				     : progress;

	ret = nwc_walk(argv[optind], &wo, &tree);
	if (ret)
		return NWC_EXIT_IO;
	status = check_tree(&tree, &wo, &la, argv[optind]);
	if (status)
		goto out_free;
	/* Before a calibration run that may take minutes; the writer
	 * checks again. */
	if (!opts.force && !lstat(argv[optind + 1], &sb)) {
		nwc_err("%s: already exists (use --force to replace it)",
			argv[optind + 1]);
		status = NWC_EXIT_USAGE;
		goto out_free;
	}
	if (!lstat(argv[optind + 1], &sb) && !S_ISREG(sb.st_mode)) {
		nwc_err("%s: exists and is not a regular file: not replaced",
			argv[optind + 1]);
		status = NWC_EXIT_USAGE;
		goto out_free;
	}
	/* Calibration and LDLQ spend their time in OpenBLAS. */
	if (!la.lossless && (la.calib || la.calib_stats) && !nwc_group_rank())
		nwc_gemm_check_core();
	if (!la.lossless) {
		status = prepare_lossy(&la, argv[optind], argv[optind + 1],
				       quiet, &opts, &models, &calib);
		if (status) {
			nwc_err("%s: not written", argv[optind + 1]);
			goto out_free;
		}
		opts.lossy = &la.pl;
	}
	info = info_text(&la, &wo, &opts);
	if (!info) {
		nwc_err("out of memory");
		status = NWC_EXIT_IO;
		goto out_free;
	}
	opts.info = info;
	opts.created = created_time();
	ret = nwc_pack(argv[optind], &tree, argv[optind + 1], &opts, &res);
	if (ret) {
		nwc_err("%s: not written", argv[optind + 1]);
		status = ret == -NWC_EFORMAT ? NWC_EXIT_DATA :
			 ret == -EEXIST ? NWC_EXIT_USAGE : NWC_EXIT_IO;
		goto out_free;
	}
	if (!quiet) {
		nwc_pack_print_summary(&tree, &res);
		if (opts.lossy)
			nwc_pack_print_lossy(&la.pl, &res.lossy);
	}
	nwc_pack_result_free(&res);
	status = 0;
out_free:
	free(info);
	free(la.spill_dir);
	nwc_calib_free(calib);
	nwc_rate_models_free(&models);
	nwc_tree_free(&tree);
	return status;
}

int main(int argc, char **argv)
{
	static char prefix[32];
	int status;

	nwc_log_set_prefix("mkfs.nwc");
	if (nwc_group_init(&argc, &argv))
		return NWC_EXIT_USAGE;
	if (nwc_group_rank()) {
		snprintf(prefix, sizeof(prefix), "mkfs.nwc[rank %u]",
			 nwc_group_rank());
		nwc_log_set_prefix(prefix);
	}
	status = mkfs_main(argc, argv);
	/* A rank that failed cannot leave the others waiting for it. */
	if (status && nwc_group_size() > 1)
		nwc_group_abort(status);
	nwc_group_finish();
	return status;
}
