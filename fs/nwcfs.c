/* SPDX-License-Identifier: MIT */
/*
 * nwcfs.c - main() of the nwcfs daemon: parse options, open and validate
 * the image before mounting (so a bad image fails on the terminal), then
 * hand the read engine to fuse_main().
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "codec/common/cli.h"
#include "codec/image/format.h"
#include "codec/common/log.h"
#include "fs/engine.h"
#include "fs/ops.h"

#include <fuse_lowlevel.h>	/* fuse_parse_cmdline(), to learn -f */


struct nwcfs_opts {
	char *image;
	char *cache_size;
	unsigned threads;
	unsigned readahead;
	char *loglevel;
	int syslog;
	int help;
	int version;
};

#define OPT(t, p) { t, offsetof(struct nwcfs_opts, p), 1 }
static const struct fuse_opt opt_spec[] = {
	OPT("cache_size=%s", cache_size),
	OPT("threads=%u", threads),
	OPT("readahead=%u", readahead),
	OPT("loglevel=%s", loglevel),
	OPT("syslog", syslog),
	OPT("-h", help),
	OPT("--help", help),
	OPT("-V", version),
	OPT("--version", version),
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("Usage: %s IMAGE MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d] [-s]\n"
	       "Mount an nwc image read-only with FUSE.\n"
	       "\n"
	       "nwcfs options:\n"
	       "    -o cache_size=SIZE     decoded block cache budget (default 256M)\n"
	       "    -o threads=N           prefetch worker threads (default 2, 0: none)\n"
	       "    -o readahead=N         blocks prefetched ahead of a sequential\n"
	       "                           reader (default 4)\n"
	       "    -o loglevel=LEVEL      err, warn, info or debug (default warn)\n"
	       "    -o syslog              log to syslog (default in the background)\n"
	       "    -h, --help             show this help\n"
	       "    -V, --version          show the version\n"
	       "\n"
	       "Exit status: 0 after a clean unmount, 1 usage error, 2 image cannot\n"
	       "be opened or mount failed, 3 image corrupt or unsupported.\n"
	       "\n"
	       "FUSE options:\n", prog);
}

/* The first non-option is the image; the second (mountpoint) goes to FUSE. */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct nwcfs_opts *o = data;

	(void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT && !o->image) {
		o->image = strdup(arg);
		return 0;
	}
	return 1;
}


/* fuse_daemonize() points fds 0-2 at /dev/null: never let the image be one. */
static void reserve_std_fds(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct nwc_engine_opts eopts = NWC_ENGINE_OPTS_DEFAULT;
	struct nwcfs_opts o = { .threads = 2, .readahead = 4 };
	struct fuse_cmdline_opts cl = { 0 };
	struct fuse_args probe = FUSE_ARGS_INIT(0, NULL);
	struct nwc_engine *eng = NULL;
	struct nwcfs_ctx *ctx = NULL;
	enum nwc_log_level level;
	int ret;

	reserve_std_fds();
	nwc_log_set_prefix("nwcfs");
	if (fuse_opt_parse(&args, &o, opt_spec, opt_proc)) {
		ret = NWC_EXIT_USAGE;
		goto out_args;
	}
	if (o.help) {
		usage(argv[0]);
		fuse_lib_help(&args);
		ret = 0;
		goto out_args;
	}
	if (o.version) {
		printf("nwcfs %s, image format %u, libfuse %s\n", PACKAGE_VERSION,
		       NWC_VERSION, fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (o.loglevel) {
		if (nwc_log_parse_level(o.loglevel, &level)) {
			nwc_err("loglevel: '%s' is not err, warn, info or debug",
				o.loglevel);
			ret = NWC_EXIT_USAGE;
			goto out_args;
		}
		nwc_log_set_level(level);
	}
	if (o.cache_size) {
		uint64_t bytes;

		if (nwc_parse_size(o.cache_size, &bytes) || bytes > SIZE_MAX / 2) {
			nwc_err("cache_size: '%s' is not a size (e.g. 512M, 2G)",
				o.cache_size);
			ret = NWC_EXIT_USAGE;
			goto out_args;
		}
		eopts.cache_bytes = (size_t)bytes;
	}
	if (o.threads > 64) {
		nwc_err("threads: at most 64");
		ret = NWC_EXIT_USAGE;
		goto out_args;
	}
	eopts.threads = o.threads;
	eopts.readahead = o.readahead;
	if (!o.image) {
		nwc_err("expected IMAGE and MOUNTPOINT (see --help)");
		ret = NWC_EXIT_USAGE;
		goto out_args;
	}
	/* Learn whether we stay in the foreground, on a copy of the args. */
	for (int i = 0; i < args.argc; i++)
		fuse_opt_add_arg(&probe, args.argv[i]);
	if (fuse_parse_cmdline(&probe, &cl)) {
		ret = NWC_EXIT_USAGE;
		goto out_args;
	}
	if (!cl.mountpoint) {
		nwc_err("expected a MOUNTPOINT after %s", o.image);
		ret = NWC_EXIT_USAGE;
		goto out_args;
	}

	ret = nwc_engine_open(o.image, &eopts, &eng);
	if (ret) {
		ret = ret == -NWC_ECORRUPT || ret == -NWC_ECHECKSUM ||
		      ret == -NWC_EFEATURE ? NWC_EXIT_DATA : NWC_EXIT_IO;
		goto out_args;
	}
	if (nwcfs_ctx_create(eng, getuid(), getgid(), &ctx)) {
		nwc_err("out of memory");
		ret = NWC_EXIT_IO;
		goto out_engine;
	}
	if (o.syslog || !cl.foreground)
		nwc_log_use_syslog("nwcfs");
	/* libfuse 3.14 logs a bogus error when max_idle_threads is unset. */
	fuse_opt_insert_arg(&args, 1, "-omax_idle_threads=8");
	fuse_opt_add_arg(&args, "-oro");
	fuse_opt_add_arg(&args, "-osubtype=nwcfs");
	fuse_opt_add_arg(&args, "-odefault_permissions");
	/*
	 * fuse_main() returns 1 for bad arguments, 2 for a missing mountpoint,
	 * 3 when fuse_new() rejects an option, higher for mount failures.
	 */
	ret = fuse_main(args.argc, args.argv, &nwcfs_ops, ctx);
	ret = ret == 0 ? 0 : ret <= 3 ? NWC_EXIT_USAGE : NWC_EXIT_IO;
	nwcfs_ctx_free(ctx);
out_engine:
	nwc_engine_close(eng);
out_args:
	free(cl.mountpoint);
	fuse_opt_free_args(&probe);
	fuse_opt_free_args(&args);
	free(o.image);
	free(o.cache_size);
	free(o.loglevel);
	return ret;
}
