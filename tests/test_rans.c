/* SPDX-License-Identifier: MIT */
/*
 * test_rans.c - order-0 rANS, both layouts (4 states; 32 states with each
 * decode kernel this CPU runs): round trips, edge cases, hostile streams,
 * and every kernel giving the same answer to every stream.
 */
#include "codec/common/base.h"

#include <math.h>

#include "codec/rans.h"
#include "tests/t.h"

/* The layout under test: every test runs once for each. */
static bool wide;

static size_t bound(size_t n)
{
	return wide ? nwc_rans8w_bound(n) : nwc_rans8_bound(n);
}

static ssize_t encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
	return wide ? nwc_rans8w_encode(src, n, dst, cap)
		    : nwc_rans8_encode(src, n, dst, cap);
}

/*
 * Decode; for the wide layout, with every kernel this machine runs, each
 * of which must return the same and (on success) write the same bytes.
 */
static int decode(const uint8_t *src, size_t srclen, uint8_t *dst, size_t n)
{
	uint8_t *other;
	int ret;

	if (!wide)
		return nwc_rans8_decode(src, srclen, dst, n);
	ret = nwc_rans8w_decode_with(NWC_RANS_KERNEL_SCALAR, src, srclen, dst,
				     n);
	other = malloc(n ? n : 1);
	T_CHECK(other != NULL);
	for (int k = NWC_RANS_KERNEL_SCALAR + 1;
	     other && k <= NWC_RANS_KERNEL_AVX2; k++) {
		if (!nwc_rans8w_kernel_ok(k)) {
			T_EQ(nwc_rans8w_decode_with(k, src, srclen, other, n),
			     -ENOTSUP);
			continue;
		}
		T_EQ(nwc_rans8w_decode_with(k, src, srclen, other, n), ret);
		if (!ret)
			T_MEMEQ(dst, other, n);
	}
	free(other);
	return ret;
}

/*
 * Encode @n bytes, decode them back, compare; returns the stream length.
 * The wide layout has no form for one symbol repeated (0 then).
 */
static size_t roundtrip(const uint8_t *src, size_t n)
{
	size_t cap = bound(n), same = 1;
	uint8_t *enc = malloc(cap), *dec = malloc(n);
	ssize_t len;

	T_CHECK(enc && dec);
	while (same < n && src[same] == src[0])
		same++;
	if (wide && same == n) {
		T_EQ(encode(src, n, enc, cap), -ENOSPC);
		free(enc);
		free(dec);
		return 0;
	}
	len = encode(src, n, enc, cap);
	T_CHECK(len > 0 && (size_t)len <= cap);
	if (len > 0) {
		T_EQ(decode(enc, (size_t)len, dec, n), 0);
		T_MEMEQ(src, dec, n);
	}
	free(enc);
	free(dec);
	return len > 0 ? (size_t)len : 0;
}

static void test_edge_cases(void)
{
	uint8_t one = 7, two[2] = { 7, 8 }, buf[4096];
	uint8_t enc[1024];

	T_EQ(encode(&one, 0, enc, sizeof(enc)), -EINVAL);
	T_EQ(encode(two, 2, enc, 10), -ENOBUFS);
	roundtrip(&one, 1);
	/* One symbol repeated codes to the header and states alone (4
	 * states), or has no wide form. */
	memset(buf, 0xab, sizeof(buf));
	T_CHECK(roundtrip(buf, sizeof(buf)) < 64);
	/* Every symbol once, every length from 1 to 300. */
	for (unsigned i = 0; i < 256; i++)
		buf[i] = (uint8_t)i;
	roundtrip(buf, 256);
	for (size_t n = 1; n <= 300; n++)
		roundtrip(buf + 1, n);
	/* Around the vector kernels' group of 32 symbols and 64 word bytes. */
	for (size_t n = 1; n <= 4096; n += n < 200 ? 1 : 97) {
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)(i * 7 % 5 + (i % 3 ? 0 : 200));
		roundtrip(buf, n);
	}
}

static void test_random_tables(void)
{
	uint64_t seed = 42;
	const size_t n = 200000;
	uint8_t *src = malloc(n);

	for (int round = 0; round < 20; round++) {
		/* A random distribution over a random subset of symbols. */
		double w[256], total = 0;
		unsigned nsym = 1 + (unsigned)(t_rand(&seed) % 256);

		for (unsigned s = 0; s < 256; s++) {
			w[s] = s < nsym ? pow((double)(t_rand(&seed) % 1000 + 1), 2) : 0;
			total += w[s];
		}
		for (size_t i = 0; i < n; i++) {
			double u = (double)(t_rand(&seed) >> 11) / 9007199254740992.0 * total;
			unsigned s = 0;

			while (s < nsym - 1 && u >= w[s])
				u -= w[s++];
			src[i] = (uint8_t)s;
		}
		roundtrip(src, n);
	}
	free(src);
}

/* The coder gets within 1% of the order-0 entropy on a skewed source. */
static void test_near_entropy(void)
{
	uint64_t seed = 7;
	const size_t n = 1 << 20;
	uint8_t *src = malloc(n);
	double h = 0, cnt[256] = { 0 };
	size_t len;

	for (size_t i = 0; i < n; i++) {
		/* Geometric-ish: like the exponent byte of Gaussian weights. */
		unsigned s = 120;

		while (s > 100 && (t_rand(&seed) & 1))
			s--;
		src[i] = (uint8_t)s;
		cnt[s]++;
	}
	for (unsigned s = 0; s < 256; s++)
		if (cnt[s])
			h -= cnt[s] / n * log2(cnt[s] / n);
	len = roundtrip(src, n);
	printf("  entropy %.4f bits/symbol, coded %.4f\n", h, len * 8.0 / n);
	T_CHECK(len * 8.0 / n < h * 1.01 + 0.001);
	free(src);
}

static void test_hostile_streams(void)
{
	uint64_t seed = 3;
	uint8_t src[5000], dec[5000], bad[16384];
	ssize_t len;
	int ok = 0, corrupt = 0;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(t_rand(&seed) % 17);
	len = encode(src, sizeof(src), bad, sizeof(bad));
	T_CHECK(len > 0);
	/* Every truncation fails cleanly. */
	for (ssize_t cut = 0; cut < len; cut++)
		T_EQ(decode(bad, (size_t)cut, dec, sizeof(dec)),
		     -NWC_ECORRUPT);
	/* A wrong output length fails (states or words do not line up). */
	T_EQ(decode(bad, (size_t)len, dec, sizeof(dec) - 1),
	     -NWC_ECORRUPT);
	/* Single-byte flips: success or -NWC_ECORRUPT, nothing else. */
	for (int k = 0; k < 5000; k++) {
		uint8_t copy[16384];
		size_t pos = t_rand(&seed) % (size_t)len;
		int ret;

		memcpy(copy, bad, (size_t)len);
		copy[pos] ^= (uint8_t)(1 + t_rand(&seed) % 255);
		ret = decode(copy, (size_t)len, dec, sizeof(dec));
		T_CHECK(ret == 0 || ret == -NWC_ECORRUPT);
		ret ? corrupt++ : ok++;
	}
	printf("  5000 flips: %d decoded, %d rejected\n", ok, corrupt);
	/* A wide stream whose one symbol has frequency 2^P. */
	if (wide) {
		uint8_t one[33 + 2 + 4 * NWC_RANS_WIDE] = { 12 };

		one[1 + 5 / 8] = 1u << 5;
		one[33] = 0x80;		/* varint 4096 */
		one[34] = 0x20;
		for (unsigned k = 0; k < NWC_RANS_WIDE; k++)
			one[35 + 4 * k + 2] = 1;	/* L = 0x10000 */
		T_EQ(decode(one, sizeof(one), dec, 0), -NWC_ECORRUPT);
		T_EQ(nwc_rans8_decode(one, 33 + 2 + 16, dec, 0), 0);
	}
	/* Bad precision byte and bad frequency sums. */
	bad[0] = 3;
	T_EQ(decode(bad, (size_t)len, dec, sizeof(dec)), -NWC_ECORRUPT);
	bad[0] = 16;
	T_EQ(decode(bad, (size_t)len, dec, sizeof(dec)), -NWC_ECORRUPT);
	/* Random garbage. */
	for (int k = 0; k < 2000; k++) {
		size_t n = t_rand(&seed) % 600;
		int ret;

		for (size_t i = 0; i < n; i++)
			bad[i] = (uint8_t)t_rand(&seed);
		if (n)
			bad[0] = (uint8_t)(NWC_RANS_PREC_MIN + t_rand(&seed) % 8);
		ret = decode(bad, n, dec, 1 + t_rand(&seed) % 100);
		T_CHECK(ret == 0 || ret == -NWC_ECORRUPT);
	}
}

/*
 * Golden vectors: the stream formats are part of the image format.  The
 * wide one codes 100 symbols, so that the vector kernels decode groups.
 */
static void test_golden(void)
{
	static const uint8_t abra[] = "abracadabra";
	static const uint8_t want4[] = {
#include "tests/golden_rans.h"
	};
	static const uint8_t want32[] = {
#include "tests/golden_rans32.h"
	};
	const uint8_t *want = wide ? want32 : want4;
	const size_t want_len = wide ? sizeof(want32) : sizeof(want4);
	uint8_t src[100], enc[2048];
	size_t n = wide ? sizeof(src) : sizeof(abra) - 1;
	ssize_t len;

	for (size_t i = 0; i < n; i++)
		src[i] = abra[i % (sizeof(abra) - 1)];
	len = encode(src, n, enc, sizeof(enc));
	roundtrip(src, n);

	if (getenv("NWC_PRINT_GOLDEN")) {
		for (ssize_t i = 0; i < len; i++)
			printf("0x%02x,%s", enc[i], i % 12 == 11 ? "\n" : " ");
		printf("\n");
	}
	T_EQ(len, (ssize_t)want_len);
	if (len == (ssize_t)want_len)
		T_MEMEQ(enc, want, want_len);
	if (t_failed)
		fprintf(stderr, "If the rANS stream format changed on purpose, regenerate "
			"tests/golden_rans%s.h with: NWC_PRINT_GOLDEN=1 tests/test_rans\n",
			wide ? "32" : "");
}

int main(void)
{
	printf("wide layout kernels here: scalar%s\n",
	       nwc_rans8w_kernel_ok(NWC_RANS_KERNEL_AVX2) ? ", avx2" : "");
	for (int w = 0; w < 2; w++) {
		wide = w;
		printf("%s layout\n", wide ? "32-state" : "4-state");
		T_RUN(test_edge_cases);
		T_RUN(test_random_tables);
		T_RUN(test_near_entropy);
		T_RUN(test_hostile_streams);
		T_RUN(test_golden);
	}
	T_EXIT();
}
