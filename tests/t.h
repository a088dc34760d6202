/* SPDX-License-Identifier: MIT */
/*
 * t.h - the unit-test harness: include once per test program.
 *
 *	static void test_x(void) { T_CHECK(1 + 1 == 2); T_EQ(f(), 0); }
 *	int main(void) { T_RUN(test_x); T_EXIT(); }
 *
 * Exit status follows automake: 0 pass, 1 fail, 77 skip, 99 hard error.
 */
#ifndef NWC_T_H
#define NWC_T_H

#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int t_failed;

#define T_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n",		\
			__FILE__, __LINE__, #cond);			\
		t_failed++;						\
	}								\
} while (0)

/* Compare two integers and print both on failure. */
#define T_EQ(a, b) do {							\
	long long a_ = (long long)(a), b_ = (long long)(b);		\
	if (a_ != b_) {							\
		fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
			__FILE__, __LINE__, #a, #b, a_, b_);		\
		t_failed++;						\
	}								\
} while (0)

#define T_MEMEQ(a, b, n) do {						\
	if (memcmp((a), (b), (n))) {					\
		fprintf(stderr, "%s:%d: memory differs: %s vs %s\n",	\
			__FILE__, __LINE__, #a, #b);			\
		t_failed++;						\
	}								\
} while (0)

#define T_RUN(fn) do {							\
	int before_ = t_failed;						\
	fn();								\
	printf("%s %s\n", t_failed == before_ ? "ok" : "FAIL", #fn);	\
	fflush(stdout);							\
} while (0)

#define T_EXIT() return t_failed ? 1 : 0

/*
 * t_tmpdir() - create a fresh directory $TMPDIR/nwc-@name.XXXXXX (/tmp
 * without TMPDIR) into @dir; 0, or -1 after perror().
 */
static inline int t_tmpdir(char *dir, size_t len, const char *name)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, len, "%s/nwc-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
		 name);
	if (!mkdtemp(dir)) {
		perror(dir);
		return -1;
	}
	return 0;
}

static inline void t_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(77);
}

/* malloc() that never returns NULL: running out of memory is a hard error. */
static inline void *t_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(99);
	}
	return p;
}

/*
 * Hide stderr between t_quiet(true) and t_quiet(false): the error lines of
 * failures a test provokes on purpose.  NWC_TEST_VERBOSE=1 keeps them.
 */
static inline void t_quiet(bool on)
{
	static int saved = -1;
	int fd;

	fflush(stderr);
	if (getenv("NWC_TEST_VERBOSE"))
		return;
	if (on) {
		saved = dup(STDERR_FILENO);
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
	} else if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
		saved = -1;
	}
}

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static inline uint64_t t_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif /* NWC_T_H */
