/* SPDX-License-Identifier: MIT */
/* mkfs.c - main() of mkfs.nwc: options, then walk, pack and a summary. */
#include "codec/nwc.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/cli.h"
#include "codec/format.h"
#include "codec/log.h"
#include "mkfs/pack.h"
#include "mkfs/walk.h"

enum { EXIT_USAGE = 1, EXIT_IO = 2, EXIT_INPUT = 3 };

enum { OPT_LOSSLESS = 256, OPT_PROGRESS, OPT_NO_PROGRESS };

static void usage(FILE *f)
{
	fprintf(f,
"Usage: mkfs.nwc [OPTIONS] MODEL_DIR IMAGE\n"
"Pack a model directory into a compressed read-only nwc image.\n"
"\n"
"      --lossless          store every file losslessly (default; the only\n"
"                          mode in this version)\n"
"  -b, --block-size=SIZE   decoded block size, a power of two from 4K to 64M\n"
"                          (default 256K)\n"
"  -l, --level=N           zstd level, 1..19 (default 3)\n"
"  -j, --jobs=N            compression threads (default: online CPUs)\n"
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



static void print_summary(const struct nwc_tree *tree,
			  const struct nwc_pack_result *res)
{
	uint64_t stored = 0;

	printf("%14s %14s %7s  %s\n", "size", "stored", "ratio", "file");
	for (uint32_t i = 0; i < tree->n; i++) {
		const struct nwc_entry *e = &tree->e[i];

		if (!S_ISREG(e->mode))
			continue;
		stored += res->stored[i];
		printf("%14llu %14llu %6.1f%%  %s\n",
		       (unsigned long long)e->size,
		       (unsigned long long)res->stored[i],
		       e->size ? 100.0 * (double)res->stored[i] / (double)e->size
			       : 100.0,
		       e->path);
	}
	printf("%14llu %14llu %6.1f%%  total payload, %u files\n",
	       (unsigned long long)tree->total, (unsigned long long)stored,
	       tree->total ? 100.0 * (double)stored / (double)tree->total : 100.0,
	       tree->n_files);
	printf("%14s %14llu %6.1f%%  image file (with metadata), %.2f s, %.1f MB/s\n",
	       "", (unsigned long long)res->image_size,
	       tree->total ? 100.0 * (double)res->image_size /
				     (double)tree->total : 100.0,
	       res->seconds,
	       res->seconds > 0 ? (double)tree->total / res->seconds / 1e6 : 0);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "lossless", no_argument, NULL, OPT_LOSSLESS },
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
	struct nwc_pack_result res;
	struct nwc_tree tree;
	int progress = -1, quiet = 0, c, ret;
	long ncpu;

	nwc_log_set_prefix("mkfs.nwc");
	while ((c = getopt_long(argc, argv, "b:l:j:fqvhV", longopts, NULL)) != -1) {
		uint64_t size;
		unsigned v;

		switch (c) {
		case OPT_LOSSLESS:
			break;
		case 'b':
			if (nwc_parse_size(optarg, &size) || size < 4096 ||
			    size > (64u << 20) || (size & (size - 1))) {
				nwc_err("--block-size: '%s' is not a power of two from 4K to 64M",
					optarg);
				return EXIT_USAGE;
			}
			opts.block_log2 = (unsigned)__builtin_ctzll(size);
			break;
		case 'l':
			if (nwc_parse_uint(optarg, 1, 19, &v)) {
				nwc_err("--level: '%s' is not a number from 1 to 19",
					optarg);
				return EXIT_USAGE;
			}
			opts.level = (int)v;
			break;
		case 'j':
			if (nwc_parse_uint(optarg, 1, 1024, &v)) {
				nwc_err("--jobs: '%s' is not a number from 1 to 1024",
					optarg);
				return EXIT_USAGE;
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
			printf("mkfs.nwc (nwcfs) %s, image format %u\n",
			       PACKAGE_VERSION, NWC_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		nwc_err("expected MODEL_DIR and IMAGE (see --help)");
		return EXIT_USAGE;
	}
	if (!opts.jobs) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		opts.jobs = ncpu > 0 ? (unsigned)NWC_MIN(ncpu, 64L) : 1;
	}
	opts.progress = progress < 0 ? (!quiet && isatty(STDERR_FILENO))
				     : progress;

	ret = nwc_walk(argv[optind], &tree);
	if (ret)
		return EXIT_IO;
	ret = nwc_pack(argv[optind], &tree, argv[optind + 1], &opts, &res);
	if (ret) {
		nwc_err("%s: not written", argv[optind + 1]);
		nwc_tree_free(&tree);
		return ret == -NWC_EFORMAT ? EXIT_INPUT :
		       ret == -EEXIST ? EXIT_USAGE : EXIT_IO;
	}
	if (!quiet)
		print_summary(&tree, &res);
	free(res.stored);
	nwc_tree_free(&tree);
	return 0;
}
