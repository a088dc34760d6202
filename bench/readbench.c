/* SPDX-License-Identifier: MIT */
/* readbench.c - time sequential and random reads of files, for bench/run.sh */

/*
 * readbench seq [--bs SIZE] [--procs N] [--offset O] [--length L] FILE...
 *	Read the files, taken as one concatenated stream, from byte O for L
 *	bytes (default: all) with pread(2) calls of SIZE bytes (default 1M).
 *	With N > 1, N processes each read one contiguous, disjoint share of
 *	the range; the time is from the first fork to the last exit.  Prints
 *	"bytes=B secs=S MBps=R cpu=C" (MB = 10^6 bytes; C: the user and
 *	system CPU seconds of the readers, kernel copies included).
 *
 * readbench rand [--size S] [--count N] [--seed X] [--time T] FILE
 *	N preads (default 2000) of S bytes (default 4096) at random S-aligned
 *	offsets, each timed alone, stopping early after T seconds if given.
 *	Prints "count=N p50_us=.. p99_us=.. max_us=.. mean_us=..".
 *
 * Stand-alone on purpose: it links libc only, so it measures the file system
 * and not the project's libraries.  Exit status: 0 ok, 1 usage, 2 I/O error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64
#define MAX_COUNT 10000000

struct seq_opts {
	uint64_t bs;		/* bytes per pread */
	uint64_t offset;	/* start in the concatenated stream */
	uint64_t length;	/* bytes to read; UINT64_MAX: to the end */
	unsigned int procs;	/* reader processes */
};

struct rand_opts {
	uint64_t size;		/* bytes per pread, also the alignment */
	uint64_t count;		/* reads to do */
	uint64_t seed;
	double time_limit;	/* seconds; 0: none */
};

struct input {
	const char *path;
	uint64_t size;		/* bytes, from stat(2) */
};

static const char *prog = "readbench";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s seq [--bs SIZE] [--procs N] [--offset O] [--length L] FILE...\n"
		"       %s rand [--size S] [--count N] [--seed X] [--time SECS] FILE\n"
		"SIZE, O, L and S take the suffix K, M or G (units of 1024).\n",
		prog, prog);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parse a byte count with an optional K, M or G suffix. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned int shift = 0;
	char *end;
	uint64_t v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	if (*end) {
		const char *units = "KMG", *u = strchr(units, *end);

		if (!u || end[1])
			return -EINVAL;
		shift = 10 * (u - units + 1);
	}
	if (shift && v > UINT64_MAX >> shift)
		return -ERANGE;
	*out = v << shift;
	return 0;
}

static int parse_opt_size(const char *name, const char *s, uint64_t *out)
{
	if (parse_size(s, out) == 0)
		return 0;
	fprintf(stderr, "%s: invalid %s '%s'\n", prog, name, s);
	return -EINVAL;
}

/* Read [off, off + len) of @fd into @buf in chunks of @bs bytes. */
static int read_range(int fd, const char *path, char *buf, uint64_t bs,
		      uint64_t off, uint64_t len)
{
	while (len) {
		size_t want = len < bs ? len : bs;
		ssize_t n = pread(fd, buf, want, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: %s: read at %" PRIu64 ": %s\n",
				prog, path, off, strerror(errno));
			return -errno;
		}
		if (n == 0) {
			fprintf(stderr, "%s: %s: unexpected end of file at %"
				PRIu64 "\n", prog, path, off);
			return -EIO;
		}
		off += n;
		len -= n;
	}
	return 0;
}

/* Read [off, off + len) of the concatenation of @in. */
static int read_stream(const struct input *in, int n_in, uint64_t bs,
		       uint64_t off, uint64_t len)
{
	uint64_t start = 0;
	char *buf;
	int i, ret = 0;

	buf = malloc(bs);
	if (!buf) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -ENOMEM;
	}
	for (i = 0; i < n_in && len; i++) {
		uint64_t end = start + in[i].size;
		uint64_t lo, hi;
		int fd;

		if (off >= end) {
			start = end;
			continue;
		}
		lo = off - start;
		hi = len < end - off ? lo + len : in[i].size;
		fd = open(in[i].path, O_RDONLY);
		if (fd < 0) {
			ret = -errno;
			fprintf(stderr, "%s: %s: %s\n", prog, in[i].path,
				strerror(errno));
			break;
		}
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		ret = read_range(fd, in[i].path, buf, bs, lo, hi - lo);
		close(fd);
		if (ret)
			break;
		off += hi - lo;
		len -= hi - lo;
		start = end;
	}
	free(buf);
	return ret;
}

/* CPU time of this process and its waited-for children. */
static double cpu_seconds(void)
{
	struct rusage self, kids;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec +
			kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
	       (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec +
			kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) * 1e-6;
}

/* Fork @procs readers over disjoint shares of [off, off + len); wait all. */
static int read_parallel(const struct input *in, int n_in,
			 const struct seq_opts *o, uint64_t off, uint64_t len)
{
	uint64_t share = (len + o->procs - 1) / o->procs;
	pid_t pids[MAX_PROCS];
	unsigned int i, started = 0;
	int ret = 0;

	/* Whole buffers per share, so no pread straddles two readers. */
	share = (share + o->bs - 1) / o->bs * o->bs;
	for (i = 0; i < o->procs; i++) {
		uint64_t lo = share * i < len ? share * i : len;
		uint64_t n = len - lo < share ? len - lo : share;
		pid_t pid = fork();

		if (pid < 0) {
			ret = -errno;
			fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
			break;
		}
		if (pid == 0)
			_exit(read_stream(in, n_in, o->bs, off + lo, n) ? 2 : 0);
		pids[started++] = pid;
	}
	for (i = 0; i < started; i++) {
		int status;

		while (waitpid(pids[i], &status, 0) < 0) {
			if (errno != EINTR) {
				fprintf(stderr, "%s: waitpid: %s\n", prog,
					strerror(errno));
				return -errno;
			}
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			ret = -EIO;
	}
	return ret;
}

static int stat_inputs(char **paths, int n, struct input *in, uint64_t *total)
{
	struct stat st;
	int i;

	*total = 0;
	for (i = 0; i < n; i++) {
		if (stat(paths[i], &st) < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, paths[i],
				strerror(errno));
			return -errno;
		}
		if (!S_ISREG(st.st_mode)) {
			fprintf(stderr, "%s: %s: not a regular file\n", prog,
				paths[i]);
			return -EINVAL;
		}
		in[i].path = paths[i];
		in[i].size = st.st_size;
		*total += st.st_size;
	}
	return 0;
}

static int cmd_seq(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bs", required_argument, NULL, 'b' },
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ "procs", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct seq_opts o = {
		.bs = 1 << 20, .length = UINT64_MAX, .procs = 1,
	};
	struct input *in;
	uint64_t total, len, v;
	double t0, secs;
	int c, n_in, ret;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (parse_opt_size("--bs", optarg, &o.bs))
				return 1;
			break;
		case 'o':
			if (parse_opt_size("--offset", optarg, &o.offset))
				return 1;
			break;
		case 'l':
			if (parse_opt_size("--length", optarg, &o.length))
				return 1;
			break;
		case 'p':
			if (parse_opt_size("--procs", optarg, &v))
				return 1;
			if (v < 1 || v > MAX_PROCS) {
				fprintf(stderr, "%s: --procs must be 1 to %d\n",
					prog, MAX_PROCS);
				return 1;
			}
			o.procs = v;
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (o.bs < 1 || o.bs > 1 << 30) {
		fprintf(stderr, "%s: --bs must be 1 to 1G\n", prog);
		return 1;
	}
	n_in = argc - optind;
	if (n_in < 1) {
		usage(stderr);
		return 1;
	}
	in = calloc(n_in, sizeof(*in));
	if (!in) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 2;
	}
	ret = stat_inputs(argv + optind, n_in, in, &total);
	if (ret)
		goto out_free_in;
	if (o.offset > total) {
		fprintf(stderr, "%s: --offset %" PRIu64 " is past the end (%"
			PRIu64 " bytes)\n", prog, o.offset, total);
		ret = -EINVAL;
		goto out_free_in;
	}
	len = total - o.offset;
	if (o.length < len)
		len = o.length;

	t0 = now();
	if (o.procs == 1)
		ret = read_stream(in, n_in, o.bs, o.offset, len);
	else
		ret = read_parallel(in, n_in, &o, o.offset, len);
	secs = now() - t0;
	if (!ret)
		printf("bytes=%" PRIu64 " secs=%.6f MBps=%.1f cpu=%.3f\n", len,
		       secs, secs > 0 ? len / secs / 1e6 : 0.0, cpu_seconds());
out_free_in:
	free(in);
	return ret ? 2 : 0;
}

/* splitmix64: a small, well-mixed generator so runs repeat exactly. */
static uint64_t next_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted @v. */
static double percentile(const double *v, uint64_t n, unsigned int pct)
{
	uint64_t rank = (n * pct + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

/*
 * Each read is timed alone, so the numbers are latencies, not throughput.
 * POSIX_FADV_RANDOM turns kernel readahead off, as a random reader would;
 * otherwise a 4K read could pull in 128K and hide the cost we measure.
 */
static int rand_reads(const char *path, const struct rand_opts *o)
{
	uint64_t slots, state = o->seed, n, i;
	double *lat, t_end, sum = 0;
	struct stat st;
	char *buf;
	int fd, ret = 0;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		goto out_close;
	}
	slots = (uint64_t)st.st_size / o->size;
	if (!S_ISREG(st.st_mode) || slots == 0) {
		fprintf(stderr, "%s: %s: need a regular file of at least %"
			PRIu64 " bytes\n", prog, path, o->size);
		ret = -EINVAL;
		goto out_close;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	lat = malloc(o->count * sizeof(*lat));
	buf = malloc(o->size);
	if (!lat || !buf) {
		fprintf(stderr, "%s: out of memory\n", prog);
		ret = -ENOMEM;
		goto out_free;
	}

	t_end = o->time_limit > 0 ? now() + o->time_limit : 0;
	for (n = 0; n < o->count; n++) {
		uint64_t off = next_rand(&state) % slots * o->size;
		double t0 = now();

		ret = read_range(fd, path, buf, o->size, off, o->size);
		if (ret)
			goto out_free;
		lat[n] = (now() - t0) * 1e6;
		if (t_end && now() > t_end) {
			n++;
			break;
		}
	}
	qsort(lat, n, sizeof(*lat), cmp_double);
	for (i = 0; i < n; i++)
		sum += lat[i];
	printf("count=%" PRIu64 " p50_us=%.1f p99_us=%.1f max_us=%.1f"
	       " mean_us=%.1f\n", n, percentile(lat, n, 50),
	       percentile(lat, n, 99), lat[n - 1], sum / n);
out_free:
	free(buf);
	free(lat);
out_close:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int cmd_rand(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 'x' },
		{ "time", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct rand_opts o = { .size = 4096, .count = 2000, .seed = 1 };
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_opt_size("--size", optarg, &o.size))
				return 1;
			break;
		case 'n':
			if (parse_opt_size("--count", optarg, &o.count))
				return 1;
			break;
		case 'x':
			if (parse_opt_size("--seed", optarg, &o.seed))
				return 1;
			break;
		case 't':
			o.time_limit = strtod(optarg, &end);
			if (*end || !(o.time_limit >= 0)) {
				fprintf(stderr, "%s: invalid --time '%s'\n",
					prog, optarg);
				return 1;
			}
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (o.size < 1 || o.size > 1 << 30 || o.count < 1 ||
	    o.count > MAX_COUNT) {
		fprintf(stderr, "%s: --size must be 1 to 1G, --count 1 to %d\n",
			prog, MAX_COUNT);
		return 1;
	}
	if (argc - optind != 1) {
		usage(stderr);
		return 1;
	}
	return rand_reads(argv[optind], &o) ? 2 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	/* getopt_long() sees the subcommand as argv[0]. */
	if (!strcmp(argv[1], "seq"))
		return cmd_seq(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rand"))
		return cmd_rand(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[1]);
	usage(stderr);
	return 1;
}
