/* SPDX-License-Identifier: MIT */
/*
 * nwcfs.c - main() of the nwcfs daemon: parse options, open and validate
 * the image before mounting (so a bad image fails on the terminal), then
 * hand the read engine to fuse_main().
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
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
	int nonempty;
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
	OPT("nonempty", nonempty),
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
	       "    -o threads=N           prefetch worker threads (default: the online\n"
	       "                           CPUs, at most 64; 0: no prefetch)\n"
	       "    -o readahead=N         blocks prefetched ahead of a sequential\n"
	       "                           reader (default: the threads, at least 4)\n"
	       "    -o loglevel=LEVEL      err, warn, info or debug (default warn)\n"
	       "    -o syslog              log to syslog (default in the background)\n"
	       "    -o nonempty            mount even where something is mounted\n"
	       "                           already (hiding it)\n"
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


/* Undo the octal escapes (\040) of a /proc/self/mountinfo field. */
static void unescape_field(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/*
 * What is mounted at @mnt already, from /proc/self/mountinfo (the last,
 * topmost mount): a malloc'd "SOURCE (TYPE)", or NULL if nothing is.
 */
static char *mounted_at(const char *mnt)
{
	char *real = realpath(mnt, NULL), *line = NULL, *found = NULL;
	size_t cap = 0;
	FILE *f;

	if (!real)
		return NULL;
	f = fopen("/proc/self/mountinfo", "re");
	while (f && getline(&line, &cap, f) > 0) {
		char *field[10] = { 0 }, *save = NULL, *tok = line;
		int n = 0, dash = -1;

		while (n < 10 && (tok = strtok_r(tok, " \n", &save))) {
			field[n] = tok;
			if (!strcmp(tok, "-") && dash < 0)
				dash = n;
			n++;
			tok = NULL;
			/* optional fields end at "-": keep only what follows */
			if (dash >= 0 && n >= dash + 3)
				break;
		}
		if (n < 5 || dash < 0 || n < dash + 3)
			continue;
		unescape_field(field[4]);
		if (strcmp(field[4], real))
			continue;
		unescape_field(field[dash + 2]);
		free(found);
		if (asprintf(&found, "%s (%s)", field[dash + 2],
			     field[dash + 1]) < 0)
			found = NULL;
	}
	if (f)
		fclose(f);
	free(line);
	free(real);
	return found;
}

/* "-ofsname=PATH" with the commas of PATH escaped for FUSE's parser. */
static char *fsname_arg(const char *image)
{
	char *real = realpath(image, NULL), *out, *q;

	if (!real)
		return NULL;
	out = malloc(strlen(real) * 2 + sizeof("-ofsname="));
	if (out) {
		q = out + sprintf(out, "-ofsname=");
		for (const char *p = real; *p; p++) {
			if (*p == ',' || *p == '\\')
				*q++ = '\\';
			*q++ = *p;
		}
		*q = '\0';
	}
	free(real);
	return out;
}

/* Whether the FUSE arguments already name option @name ("fsname="). */
static bool has_option(const struct fuse_args *args, const char *name)
{
	for (int i = 0; i < args->argc; i++)
		if (strstr(args->argv[i], name))
			return true;
	return false;
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
	struct nwcfs_opts o = { .threads = UINT_MAX, .readahead = UINT_MAX };
	struct fuse_cmdline_opts cl = { 0 };
	struct fuse_args probe = FUSE_ARGS_INIT(0, NULL);
	struct nwc_engine *eng = NULL;
	struct nwcfs_ctx *ctx = NULL;
	enum nwc_log_level level;
	int ret;

	reserve_std_fds();
	nwc_log_set_prefix("nwcfs");
	/*
	 * Decoded blocks (256 KiB) and libfuse's read buffers (up to 1 MiB)
	 * come and go by the thousand per second, on threads libfuse starts
	 * and ends.  By default glibc maps such sizes afresh or returns them
	 * with whole per-thread heaps, and the daemon spends a tenth of its
	 * time faulting in and zeroing pages.  One arena that keeps what is
	 * freed: 14,300 page faults become 8,200 on a 100 MB cold read with
	 * cache_size=16M (most of the rest fill the cache).
	 */
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
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
	/* By default a worker per core, and a block ahead for each. */
	if (o.threads == UINT_MAX) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		o.threads = n > 0 ? (unsigned)NWC_MIN(n, 64L) : 2;
	}
	if (o.threads > 64) {
		nwc_err("threads: at most 64");
		ret = NWC_EXIT_USAGE;
		goto out_args;
	}
	if (o.readahead == UINT_MAX)
		o.readahead = NWC_MAX(o.threads, 4u);
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

	/* Mounting over a mount hides it: only when asked. */
	if (!o.nonempty) {
		char *what = mounted_at(cl.mountpoint);

		if (what) {
			nwc_err("%s: %s is mounted there already; unmount it first, or pass -o nonempty to mount over it",
				cl.mountpoint, what);
			free(what);
			ret = NWC_EXIT_USAGE;
			goto out_args;
		}
	}

	ret = nwc_engine_open(o.image, &eopts, &eng);
	if (ret) {
		ret = ret == -NWC_ECORRUPT || ret == -NWC_ECHECKSUM ||
		      ret == -NWC_EFEATURE ? NWC_EXIT_DATA : NWC_EXIT_IO;
		goto out_args;
	}
	{
		struct nwc_image_info ii;

		nwc_image_get_info(nwc_engine_image(eng), &ii);
		nwc_info("%s: %u inodes, %u blocks of up to %u bytes, %llu bytes in files; cache %zu MiB, %u prefetch threads",
			 o.image, ii.n_inodes, ii.n_blocks, 1u << ii.block_log2,
			 (unsigned long long)ii.total_size,
			 eopts.cache_bytes >> 20, eopts.threads);
	}
	if (nwcfs_ctx_create(eng, getuid(), getgid(), &ctx)) {
		nwc_err("out of memory");
		ret = NWC_EXIT_IO;
		goto out_engine;
	}
	if (o.syslog || !cl.foreground)
		nwc_log_use_syslog("nwcfs");
	nwcfs_ctx_set_mountpoint(ctx, cl.mountpoint);
	/* libfuse 3.14 logs a bogus error when max_idle_threads is unset. */
	fuse_opt_insert_arg(&args, 1, "-omax_idle_threads=8");
	if (!has_option(&args, "max_read=")) {
		char arg[32];

		snprintf(arg, sizeof(arg), "-omax_read=%u", NWCFS_MAX_REQUEST);
		fuse_opt_add_arg(&args, arg);
	}
	fuse_opt_add_arg(&args, "-oro");
	fuse_opt_add_arg(&args, "-osubtype=nwcfs");
	/* mount(8) and df(1) then name the image rather than "nwcfs". */
	if (!has_option(&args, "fsname=")) {
		char *fsname = fsname_arg(o.image);

		if (fsname)
			fuse_opt_add_arg(&args, fsname);
		free(fsname);
	}
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
