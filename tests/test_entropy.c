/* SPDX-License-Identifier: MIT */
/* test_entropy.c - 16-bit tables and the context rANS coder: round trips,
 * rates, escapes, hostile streams and tables, golden bytes, decode speed. */
#include "codec/common/base.h"

#include <math.h>
#include <time.h>

#include "codec/nwc/entropy.h"
#include "codec/common/hash.h"
#include "tests/t.h"

#define M 65536u

/* Largest (bits - cost) / cost seen by roundtrip() on 10000+ values. */
static double worst_excess;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Frequencies are >= 1, sum to 2^16, and the escape is symbol n. */
static bool table_ok(const struct nwc_qdist *d)
{
	uint32_t n = nwc_qdist_n(d), sum = 0;

	for (uint32_t s = 0; s <= n; s++) {
		if (!nwc_qdist_freq(d, s))
			return false;
		sum += nwc_qdist_freq(d, s);
	}
	return sum == M && nwc_qdist_freq(d, n + 1) == 0;
}

/* A random table over @n values: Laplacian, flat or spiky counts. */
static struct nwc_qdist *random_table(uint64_t *seed, int32_t lo, uint32_t n)
{
	uint64_t *cnt = malloc(n * sizeof(*cnt));
	struct nwc_qdist *d = NULL;
	unsigned shape = (unsigned)(t_rand(seed) % 3);
	double b = 0.5 + (double)(t_rand(seed) % 1000) / 1000.0 * n / 4;
	uint32_t c = (uint32_t)(t_rand(seed) % n);

	for (uint32_t k = 0; k < n; k++) {
		if (shape == 0)
			cnt[k] = (uint64_t)(1e6 * exp(-fabs((double)k - c) / b));
		else if (shape == 1)
			cnt[k] = t_rand(seed) % 100;
		else
			cnt[k] = t_rand(seed) % 8 ? 0 : t_rand(seed) % 100000;
	}
	T_EQ(nwc_qdist_from_counts(lo, n, cnt, t_rand(seed) % 1000, &d), 0);
	if (d)
		T_CHECK(table_ok(d));
	free(cnt);
	return d;
}

/* Slot -> symbol of a table, for sampling values from it. */
static void slot_map(const struct nwc_qdist *d, uint16_t *map)
{
	uint32_t c = 0;

	for (uint32_t s = 0; s <= nwc_qdist_n(d); s++)
		for (uint32_t k = nwc_qdist_freq(d, s); k > 0; k--)
			map[c++] = (uint16_t)s;
}

/*
 * An out-of-range value: int32 extremes, just outside either end, or any
 * magnitude.  Mostly distinct: long runs of one escape are the coder's
 * worst case (test_escape_runs).
 */
static int32_t escape_value(uint64_t *seed, const struct nwc_qdist *d)
{
	int64_t lo = nwc_qdist_lo(d), hi = lo + nwc_qdist_n(d);
	int64_t v;

	for (;;) {
		uint64_t r = t_rand(seed);

		switch (r % 16) {
		case 0:
			v = INT32_MIN;
			break;
		case 1:
			v = INT32_MAX;
			break;
		case 2:
		case 3:
			v = lo - 1 - (int64_t)(r >> 8 & 3);
			break;
		case 4:
		case 5:
			v = hi + (int64_t)(r >> 8 & 3);
			break;
		default:
			v = (int32_t)(r >> 32) >> (r >> 8 & 31);
			break;
		}
		if (v >= INT32_MIN && v <= INT32_MAX && (v < lo || v >= hi))
			return (int32_t)v;
	}
}

/*
 * Encode, decode, compare; check the length against the sum of the
 * tables' costs (within 0.5% + 64 bytes).  Returns the stream length.
 */
static size_t roundtrip(const struct nwc_qdist *const *dists,
			const uint8_t *ctx, const int32_t *vals, size_t n)
{
	size_t cap = nwc_ents_bound(n);
	uint8_t *enc = malloc(cap);
	int32_t *dec = malloc((n + 1) * sizeof(*dec));
	double cost = 0;
	ssize_t len;

	for (size_t i = 0; i < n; i++)
		cost += nwc_qdist_cost(dists[ctx ? ctx[i] : 0], vals[i]);
	len = nwc_ents_encode(dists, ctx, vals, n, enc, cap);
	T_CHECK(len >= 16 && (size_t)len <= cap);
	if (len >= 16) {
		double bits = (double)(len - 16) * 8;

		T_EQ(nwc_ents_decode(dists, ctx, dec, n, enc, (size_t)len), 0);
		T_MEMEQ(vals, dec, n * sizeof(*dec));
		if (n >= 10000)
			worst_excess = fmax(worst_excess, (bits - cost) / cost);
		if (fabs(bits - cost) > cost * 0.005 + 64 * 8) {
			fprintf(stderr, "  %zu values: %.0f bits, cost %.0f\n",
				n, bits, cost);
			T_CHECK(!"rate off the cost sum");
		}
	}
	free(enc);
	free(dec);
	return len > 0 ? (size_t)len : 0;
}

static void test_table_args(void)
{
	uint64_t cnt[4096] = { 0 };
	double pmf[4] = { 1, 2, 3, 4 };
	struct nwc_qdist *d = NULL;

	T_EQ(nwc_qdist_from_counts(0, 0, cnt, 1, &d), -EINVAL);
	T_EQ(nwc_qdist_from_counts(0, 4096, cnt, 1, &d), -EINVAL);
	T_EQ(nwc_qdist_from_counts(INT32_MAX - 2, 4, cnt, 1, &d), -EINVAL);
	T_EQ(nwc_qdist_from_pmf(0, 0, pmf, 1, &d), -EINVAL);
	pmf[2] = NAN;
	T_EQ(nwc_qdist_from_pmf(0, 4, pmf, 1, &d), -EINVAL);
	pmf[2] = -1;
	T_EQ(nwc_qdist_from_pmf(0, 4, pmf, 1, &d), -EINVAL);
	pmf[2] = INFINITY;
	T_EQ(nwc_qdist_from_pmf(0, 4, pmf, 1, &d), -EINVAL);
	T_EQ(nwc_qdist_from_pmf(0, 4, (double[]){ 1, 1, 1, 1 }, NAN, &d),
	     -EINVAL);
	T_CHECK(d == NULL);

	/* The largest ranges, at both ends of int32. */
	T_EQ(nwc_qdist_from_counts(INT32_MAX - 4094, 4095, cnt, 0, &d), 0);
	T_CHECK(d && table_ok(d) && nwc_qdist_n(d) == 4095);
	/* Nothing seen: uniform over 4096 symbols. */
	for (uint32_t s = 0; d && s <= 4095; s++)
		T_EQ(nwc_qdist_freq(d, s), 16);
	nwc_qdist_free(d);
	T_EQ(nwc_qdist_from_counts(INT32_MIN, 4095, cnt, 0, &d), 0);
	nwc_qdist_free(d);
}

static void test_table_scaling(void)
{
	uint64_t cnt[4096];
	struct nwc_qdist *d, *d2;
	uint64_t seed = 5;

	/* Exact proportions stay exact. */
	T_EQ(nwc_qdist_from_counts(-1, 2, (uint64_t[]){ 1, 1 }, 2, &d), 0);
	T_EQ(nwc_qdist_freq(d, 0), 16384);
	T_EQ(nwc_qdist_freq(d, 1), 16384);
	T_EQ(nwc_qdist_freq(d, 2), 32768);
	T_CHECK(nwc_qdist_cost(d, -1) == 2.0 && nwc_qdist_cost(d, 0) == 2.0);
	/* Escapes: 1 bit + 3 + 4 g; zigzag(1) = 2, zigzag(-9) = 17. */
	T_CHECK(nwc_qdist_cost(d, 1) == 1.0 + 3 + 4);
	T_CHECK(nwc_qdist_cost(d, -9) == 1.0 + 3 + 8);
	T_CHECK(nwc_qdist_cost(d, INT32_MIN) == 1.0 + 3 + 32);
	nwc_qdist_free(d);

	/* No escapes seen: the escape still gets 1, the value the rest. */
	T_EQ(nwc_qdist_from_counts(7, 1, (uint64_t[]){ 99 }, 0, &d), 0);
	T_EQ(nwc_qdist_freq(d, 0), M - 1);
	T_EQ(nwc_qdist_freq(d, 1), 1);
	nwc_qdist_free(d);

	/* Huge counts (sum overflows 64 bits) and many tiny ones. */
	for (uint32_t k = 0; k < 4095; k++)
		cnt[k] = k % 7 ? 1 : UINT64_MAX / 3;
	T_EQ(nwc_qdist_from_counts(0, 4095, cnt, UINT64_MAX, &d), 0);
	T_CHECK(d && table_ok(d));
	nwc_qdist_free(d);
	/* One dominant count and 4094 singletons: lifting them costs it. */
	for (uint32_t k = 0; k < 4095; k++)
		cnt[k] = k ? 1 : 1000000000;
	T_EQ(nwc_qdist_from_counts(0, 4095, cnt, 0, &d), 0);
	T_CHECK(d && table_ok(d));
	T_EQ(nwc_qdist_freq(d, 0), M - 4095);
	nwc_qdist_free(d);

	/* Random counts: deterministic, and close to proportional. */
	for (int round = 0; round < 200; round++) {
		uint32_t n = 1 + (uint32_t)(t_rand(&seed) % 4095);
		uint64_t esc = t_rand(&seed) % 50, total = esc;
		double worst = 0;

		for (uint32_t k = 0; k < n; k++) {
			cnt[k] = t_rand(&seed) % 3 ? t_rand(&seed) % 5000 : 0;
			total += cnt[k];
		}
		T_EQ(nwc_qdist_from_counts(3, n, cnt, esc, &d), 0);
		T_EQ(nwc_qdist_from_counts(3, n, cnt, esc, &d2), 0);
		T_CHECK(table_ok(d));
		for (uint32_t s = 0; s <= n; s++) {
			double want = (s < n ? cnt[s] : esc) * (double)M / total;

			T_EQ(nwc_qdist_freq(d, s), nwc_qdist_freq(d2, s));
			worst = fmax(worst, fabs(nwc_qdist_freq(d, s) - want));
		}
		/* The lift of zero counts to 1 shifts others by a few. */
		if (worst > 2 + 4096.0 * (n + 1) / M)
			T_CHECK(!"frequency far from proportional");
		nwc_qdist_free(d);
		nwc_qdist_free(d2);
	}

	/* A pmf: frequencies follow it; zeros still get 1. */
	{
		double pmf[101];

		for (int k = 0; k < 101; k++)
			pmf[k] = exp(-fabs(k - 50.0) / 4) * 0.3;
		pmf[0] = 0;
		T_EQ(nwc_qdist_from_pmf(-50, 101, pmf, 1e-9, &d), 0);
		T_CHECK(d && table_ok(d));
		T_EQ(nwc_qdist_freq(d, 0), 1);
		T_EQ(nwc_qdist_freq(d, 101), 1);
		/* Normalized: the centre carries 1 / sum of the pmf. */
		{
			double s = 0;

			for (int k = 0; k < 101; k++)
				s += pmf[k];
			T_CHECK(fabs(nwc_qdist_freq(d, 50) - M * pmf[50] / s)
				< 2);
		}
		nwc_qdist_free(d);
		/* All zero: uniform. */
		memset(pmf, 0, sizeof(pmf));
		T_EQ(nwc_qdist_from_pmf(0, 3, pmf, 0, &d), 0);
		T_EQ(nwc_qdist_freq(d, 0), 16384);
		T_EQ(nwc_qdist_freq(d, 3), 16384);
		nwc_qdist_free(d);
	}
}

static void test_sizes(void)
{
	static const uint32_t sizes[] = { 1, 2, 3, 4, 5, 15, 16, 17, 100, 255,
					  256, 257, 1000, 2048, 4094, 4095 };
	uint64_t seed = 1;
	uint16_t *map = malloc(M * sizeof(*map));
	int32_t *vals = malloc(20000 * sizeof(*vals));

	for (size_t t = 0; t < NWC_ARRAY_SIZE(sizes) + 40; t++) {
		uint32_t n = t < NWC_ARRAY_SIZE(sizes) ? sizes[t] :
			     1 + (uint32_t)(t_rand(&seed) % 4095);
		int32_t lo;
		struct nwc_qdist *d;
		size_t len = (size_t)(t_rand(&seed) % 20000);

		switch (t % 4) {
		case 0:
			lo = INT32_MIN;
			break;
		case 1:
			lo = (int32_t)(INT32_MAX - (n - 1));
			break;
		default:
			lo = -(int32_t)(t_rand(&seed) % (2 * n + 10));
			break;
		}
		d = random_table(&seed, lo, n);
		if (!d)
			continue;
		slot_map(d, map);
		for (size_t i = 0; i < len; i++) {
			uint16_t s = map[t_rand(&seed) % M];

			if (s == n || t_rand(&seed) % 50 == 0)
				vals[i] = escape_value(&seed, d);
			else
				vals[i] = lo + (int32_t)s;
		}
		roundtrip((const struct nwc_qdist *const *)&d, NULL, vals,
			  len);
		/* Short arrays exercise the tail loop alone. */
		for (size_t k = 0; k < 9 && k <= len; k++)
			roundtrip((const struct nwc_qdist *const *)&d, NULL,
				  vals, k);
		nwc_qdist_free(d);
	}
	printf("  largest excess over the cost sum: %.3f%%\n",
	       worst_excess * 100);
	free(vals);
	free(map);
}

/*
 * The coder's worst case: with states in [2^16, 2^32) and 16-bit
 * frequencies, a cheap symbol can cost up to 1 bit more than its share when
 * the state sits low, and a run of identical escapes (payload exactly whole
 * bits) keeps it there.  Bounded by 1 bit per value; still decodes.
 */
static void test_escape_runs(void)
{
	const size_t n = 20000;
	int32_t *vals = malloc(n * sizeof(*vals));
	struct nwc_qdist *d;
	double cost = 0;
	size_t len;

	T_EQ(nwc_qdist_from_counts(0, 2, (uint64_t[]){ 1, 1 }, 30, &d), 0);
	for (size_t i = 0; i < n; i++) {
		vals[i] = i % 1000 ? INT32_MAX : 0;
		cost += nwc_qdist_cost(d, vals[i]);
	}
	{
		uint8_t *enc = malloc(nwc_ents_bound(n));
		int32_t *dec = malloc(n * sizeof(*dec));
		const struct nwc_qdist *const *dd =
			(const struct nwc_qdist *const *)&d;
		ssize_t l = nwc_ents_encode(dd, NULL, vals, n, enc,
					    nwc_ents_bound(n));

		T_CHECK(l > 16);
		len = l > 16 ? (size_t)l : 16;
		T_EQ(nwc_ents_decode(dd, NULL, dec, n, enc, len), 0);
		T_MEMEQ(dec, vals, n * sizeof(*dec));
		free(enc);
		free(dec);
	}
	printf("  run of one escape: %.4f bits/value, cost %.4f\n",
	       (len - 16) * 8.0 / n, cost / n);
	T_CHECK((len - 16) * 8.0 <= cost + n + 64 * 8);
	nwc_qdist_free(d);
	free(vals);
}

static void test_contexts(void)
{
	const size_t n = 400000;
	struct nwc_qdist *d[16];
	uint16_t *map[16];
	uint8_t *ctx = malloc(n);
	int32_t *vals = malloc(n * sizeof(*vals));
	uint64_t seed = 9;
	size_t len;
	double cost = 0;

	for (int c = 0; c < 16; c++) {
		uint32_t sz = 1 + (uint32_t)(t_rand(&seed) % 600);

		d[c] = random_table(&seed, -(int32_t)(sz / 2), sz);
		map[c] = malloc(M * sizeof(*map[c]));
		slot_map(d[c], map[c]);
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(t_rand(&seed) % 16);
		uint16_t s = map[c][t_rand(&seed) % M];

		ctx[i] = c;
		if (s == nwc_qdist_n(d[c]) || t_rand(&seed) % 200 == 0)
			vals[i] = escape_value(&seed, d[c]);
		else
			vals[i] = nwc_qdist_lo(d[c]) + (int32_t)s;
		cost += nwc_qdist_cost(d[c], vals[i]);
	}
	len = roundtrip((const struct nwc_qdist *const *)d, ctx, vals, n);
	printf("  16 contexts, %zu values: %.4f bits/value, cost %.4f\n", n,
	       len * 8.0 / n, cost / n);
	/* The wrong contexts do not decode back the same values. */
	{
		uint8_t *enc = malloc(nwc_ents_bound(n));
		int32_t *dec = malloc(n * sizeof(*dec));
		ssize_t l = nwc_ents_encode((const struct nwc_qdist *const *)d,
					    ctx, vals, n, enc,
					    nwc_ents_bound(n));
		int ret;

		ctx[0] ^= 1;
		ret = nwc_ents_decode((const struct nwc_qdist *const *)d, ctx,
				      dec, n, enc, (size_t)l);
		T_CHECK(ret == -NWC_ECORRUPT ||
			(ret == 0 && memcmp(dec, vals, n * sizeof(*dec))));
		free(enc);
		free(dec);
	}
	for (int c = 0; c < 16; c++) {
		nwc_qdist_free(d[c]);
		free(map[c]);
	}
	free(ctx);
	free(vals);
}

/* The tables of test_fsm() for the vector kernel. */
static struct nwc_ents_flat *flat16;

/*
 * Decode a lanes stream with and without the flattened tables (the vector
 * kernel, where this CPU has it, and the scalar loop): the same verdict,
 * values and table sets.  Returns the verdict.
 */
static int lanes_decode(const struct nwc_ents_fsm *f,
			struct nwc_qdist *const *d, int32_t *dec, uint8_t *sel,
			size_t n, const uint8_t *enc, size_t len)
{
	int32_t *dec2 = malloc((n + 1) * sizeof(*dec2));
	uint8_t *sel2 = malloc(n + 1);
	int ret, ret2;

	ret = nwc_ents_decode_fsm_lanes((const struct nwc_qdist *const *)d,
					NULL, f, dec, sel, n, enc, len);
	ret2 = nwc_ents_decode_fsm_lanes((const struct nwc_qdist *const *)d,
					 flat16, f, dec2, sel2, n, enc, len);
	T_EQ(ret2, ret);
	if (!ret && !ret2) {
		T_MEMEQ(dec2, dec, n * sizeof(*dec));
		T_MEMEQ(sel2, sel, n);
	}
	free(dec2);
	free(sel2);
	return ret;
}

/*
 * The same values and contexts (in sequence order) coded in the lanes
 * layout: the lanes decoder gives them back in stream order.
 */
static int lanes_case(const struct nwc_ents_fsm *f, struct nwc_qdist *const *d,
		      const uint8_t *ctx, const int32_t *vals, size_t n)
{
	uint8_t *lctx = malloc(n + 1), *enc = malloc(nwc_ents_bound(n));
	uint8_t *sel = malloc(n + 1);
	int32_t *lvals = malloc((n + 1) * sizeof(*lvals));
	int32_t *dec = malloc((n + 1) * sizeof(*dec));
	ssize_t len;
	int ret = 0;

	if (n % f->seq) {
		T_EQ(nwc_ents_decode_fsm_lanes((const struct nwc_qdist *const *)d,
					       NULL, f, dec, sel, n, enc, 0),
		     -EINVAL);
		goto out_free;
	}
	for (size_t p = 0; p < n; p++) {
		size_t i = nwc_ents_lane_index(p, f->seq, n);

		T_CHECK(i < n);
		lctx[p] = ctx[i];
		lvals[p] = vals[i];
	}
	len = nwc_ents_encode_lanes((const struct nwc_qdist *const *)d, lctx,
				    lvals, n, enc, nwc_ents_bound(n));
	T_CHECK(len > 0);
	ret = lanes_decode(f, d, dec, sel, n, enc, (size_t)len);
	if (!ret) {
		T_MEMEQ(dec, lvals, n * sizeof(*dec));
		for (size_t p = 0; p < n; p++)
			T_EQ(sel[p], lctx[p] / f->period);
	}
	/* Cut short, or a word changed: both decoders agree, never overrun. */
	if (len > 40) {
		T_EQ(lanes_decode(f, d, dec, sel, n, enc, (size_t)len - 2),
		     -NWC_ECORRUPT);
		enc[len / 2] ^= 0x5a;
		lanes_decode(f, d, dec, sel, n, enc, (size_t)len);
	}
out_free:
	free(lctx);
	free(sel);
	free(enc);
	free(lvals);
	free(dec);
	return ret;
}

/* One FSM-coded stream: values drawn from their own contexts, which the
 * test computes as the encoder does; returns the decoder's verdict. */
static int fsm_case(uint64_t *seed, const struct nwc_ents_fsm *f,
		    struct nwc_qdist *const *d, size_t n)
{
	uint8_t *ctx = malloc(n + 1), *enc = malloc(nwc_ents_bound(n));
	uint8_t *sel = malloc(n + 1);
	int32_t *vals = malloc((n + 1) * sizeof(*vals));
	int32_t *dec = malloc((n + 1) * sizeof(*dec));
	unsigned int st = 0;
	ssize_t len;
	int ret;

	for (size_t i = 0; i < n; i++) {
		const struct nwc_qdist *di;

		if (i % f->seq == 0)
			st = 0;
		ctx[i] = (uint8_t)((i % f->seq) % f->period +
				   f->period * f->sel[st]);
		di = d[ctx[i]];
		if (t_rand(seed) % 50 == 0)
			vals[i] = escape_value(seed, di);
		else
			vals[i] = nwc_qdist_lo(di) +
				  (int32_t)(t_rand(seed) % nwc_qdist_n(di));
		st = f->next[st][(uint32_t)vals[i] & 1];
	}
	len = nwc_ents_encode((const struct nwc_qdist *const *)d, ctx, vals, n,
			      enc, nwc_ents_bound(n));
	T_CHECK(len > 0);
	ret = nwc_ents_decode_fsm((const struct nwc_qdist *const *)d, f, dec,
				  sel, n, enc, (size_t)len);
	if (!ret) {
		T_CHECK(!memcmp(dec, vals, n * sizeof(*dec)));
		for (size_t i = 0; i < n; i++)
			T_EQ(sel[i], ctx[i] / f->period);
	}
	/* Cut short, the stream is refused, never overrun. */
	if (len > 20)
		T_EQ(nwc_ents_decode_fsm((const struct nwc_qdist *const *)d, f,
					 dec, NULL, n, enc, (size_t)len - 2),
		     -NWC_ECORRUPT);
	if (!ret)
		ret = lanes_case(f, d, ctx, vals, n);
	free(ctx);
	free(sel);
	free(enc);
	free(vals);
	free(dec);
	return ret;
}

/* nwc_ents_decode_fsm() against contexts computed the plain way. */
static void test_fsm(void)
{
	static const size_t sizes[] = { 0, 1, 3, 4, 5, 7, 64, 1001, 50000,
					240, 960, 8000 };
	struct nwc_ents_fsm f;
	struct nwc_qdist *d[16];
	uint64_t seed = 77;

	for (int c = 0; c < 16; c++) {
		uint32_t sz = 1 + (uint32_t)(t_rand(&seed) % 40);

		d[c] = random_table(&seed, -(int32_t)(sz / 2), sz);
	}
	T_EQ(nwc_ents_flat_build((const struct nwc_qdist *const *)d, 16,
				 &flat16), 0);
	for (int round = 0; round < 60; round++) {
		memset(&f, 0, sizeof(f));
		f.period = 1 + (uint32_t)(t_rand(&seed) % 8);
		f.seq = 1 + t_rand(&seed) % 40;
		if (round % 2) {	/* the decoder's aligned fast path */
			f.period = 4 * (1 + (uint32_t)(t_rand(&seed) % 2));
			f.seq = f.period * (1 + t_rand(&seed) % 5);
		}
		for (unsigned int t = 0; t < NWC_ENTS_FSM_STATES; t++) {
			f.next[t][0] = (uint8_t)(t_rand(&seed) % 8);
			f.next[t][1] = (uint8_t)(t_rand(&seed) % 8);
			/* every 4th round one table set only */
			f.sel[t] = round % 4 ? (uint8_t)(t_rand(&seed) % 2) : 0;
		}
		for (size_t k = 0; k < NWC_ARRAY_SIZE(sizes); k++)
			T_EQ(fsm_case(&seed, &f, d, sizes[k]), 0);
	}
	/* Malformed machines. */
	f = (struct nwc_ents_fsm){ .period = 0, .seq = 4 };
	T_EQ(nwc_ents_decode_fsm((const struct nwc_qdist *const *)d, &f,
				 NULL, NULL, 0, (const uint8_t *)"", 0),
	     -EINVAL);
	f = (struct nwc_ents_fsm){ .period = 2, .seq = 0 };
	T_EQ(nwc_ents_decode_fsm((const struct nwc_qdist *const *)d, &f,
				 NULL, NULL, 0, (const uint8_t *)"", 0),
	     -EINVAL);
	f = (struct nwc_ents_fsm){ .period = 2, .seq = 4 };
	f.sel[3] = 2;
	T_EQ(nwc_ents_decode_fsm((const struct nwc_qdist *const *)d, &f,
				 NULL, NULL, 0, (const uint8_t *)"", 0),
	     -EINVAL);
	f.sel[3] = 1;
	f.next[5][1] = 8;
	T_EQ(nwc_ents_decode_fsm((const struct nwc_qdist *const *)d, &f,
				 NULL, NULL, 0, (const uint8_t *)"", 0),
	     -EINVAL);
	nwc_ents_flat_free(flat16);
	flat16 = NULL;
	for (int c = 0; c < 16; c++)
		nwc_qdist_free(d[c]);
}

/*
 * Symbols that start and end at every kind of place in the decoder's
 * buckets of 256 slots: one symbol filling a bucket, two sharing one,
 * three or more, a bucket edge exactly on a symbol edge.  Values are drawn
 * slot by slot (so each symbol as often as its frequency), which puts
 * decoder states all over each interval.
 */
static void test_bucket_edges(void)
{
	static const uint32_t pattern[] = { 1, 255, 256, 257, 2, 3, 511,
					    1, 1, 1, 250, 768, 4, 252, 1000 };
	uint64_t cnt[256], used = 0, seed = 5;
	uint32_t n = 0, cum[257];
	struct nwc_qdist *d;
	const struct nwc_qdist *const *dd = (const struct nwc_qdist *const *)&d;
	const size_t nv = 200000;
	int32_t *v = malloc(nv * sizeof(*v));

	while (used + pattern[n % NWC_ARRAY_SIZE(pattern)] < M - 1 && n < 255) {
		cnt[n] = pattern[n % NWC_ARRAY_SIZE(pattern)];
		cum[n] = (uint32_t)used;
		used += cnt[n++];
	}
	cnt[n] = M - 1 - used;	/* the rest, then 1 for the escape */
	cum[n] = (uint32_t)used;
	n++;
	cum[n] = M - 1;
	T_EQ(nwc_qdist_from_counts(-40, n, cnt, 1, &d), 0);
	for (uint32_t s = 0; s < n; s++)
		T_EQ(nwc_qdist_freq(d, s), (uint32_t)cnt[s]);
	for (size_t i = 0; i < nv; i++) {
		uint32_t slot = (uint32_t)(t_rand(&seed) % M), s = 0;

		while (s < n && slot >= cum[s + 1])
			s++;
		v[i] = s < n ? -40 + (int32_t)s : 1000000;	/* escape */
	}
	roundtrip(dd, NULL, v, nv);
	/*
	 * The same values in the lanes layout, one table throughout: the
	 * vector kernel steps through the buckets of three or more symbols
	 * and must give what the scalar loop gives.
	 */
	{
		struct nwc_qdist *d2[2] = { d, d };
		struct nwc_ents_fsm f = { .period = 1, .seq = 40 };
		uint8_t *ctx = calloc(nv, 1);

		for (unsigned int t = 0; t < NWC_ENTS_FSM_STATES; t++) {
			f.next[t][0] = (uint8_t)((t + 1) % 8);
			f.next[t][1] = (uint8_t)((t * 3) % 8);
		}
		T_EQ(nwc_ents_flat_build((const struct nwc_qdist *const *)d2,
					 2, &flat16), 0);
		T_EQ(lanes_case(&f, d2, ctx, v, nv), 0);
		nwc_ents_flat_free(flat16);
		flat16 = NULL;
		free(ctx);
	}
	nwc_qdist_free(d);
	free(v);
}

static void test_edge_cases(void)
{
	static const int32_t specials[] = { INT32_MIN, INT32_MIN + 1, -9, -8,
					    -1, 0, 1, 2, 3, 7, 8, 9, 100,
					    INT32_MAX - 1, INT32_MAX };
	struct nwc_qdist *d;
	const struct nwc_qdist *const *dd = (const struct nwc_qdist *const *)&d;
	uint8_t enc[4096];
	int32_t v[64], dec[64];
	ssize_t len;

	T_EQ(nwc_qdist_from_counts(1, 2, (uint64_t[]){ 5, 3 }, 1, &d), 0);
	/* No values: the four initial states and nothing else. */
	T_EQ(nwc_ents_encode(dd, NULL, NULL, 0, enc, sizeof(enc)), 16);
	T_EQ(nwc_ents_decode(dd, NULL, NULL, 0, enc, 16), 0);
	T_EQ(nwc_ents_decode(dd, NULL, dec, 1, enc, 16), -NWC_ECORRUPT);
	T_EQ(nwc_ents_encode(dd, NULL, NULL, 0, enc, 15), -ENOBUFS);
	/* Each special value alone, then all of them in every rotation. */
	for (size_t k = 0; k < NWC_ARRAY_SIZE(specials); k++)
		roundtrip(dd, NULL, &specials[k], 1);
	for (size_t r = 0; r < NWC_ARRAY_SIZE(specials); r++) {
		for (size_t k = 0; k < NWC_ARRAY_SIZE(specials); k++)
			v[k] = specials[(k + r) % NWC_ARRAY_SIZE(specials)];
		roundtrip(dd, NULL, v, NWC_ARRAY_SIZE(specials) - r % 3);
	}
	/* Capacity: the exact length works, one word less does not. */
	len = nwc_ents_encode(dd, NULL, specials, NWC_ARRAY_SIZE(specials),
			      enc, sizeof(enc));
	T_CHECK(len > 16);
	T_EQ(nwc_ents_encode(dd, NULL, specials, NWC_ARRAY_SIZE(specials),
			     enc, (size_t)len), len);
	T_EQ(nwc_ents_encode(dd, NULL, specials, NWC_ARRAY_SIZE(specials),
			     enc, (size_t)len - 2), -ENOBUFS);
	/* A wrong count fails: states or words do not line up. */
	T_EQ(nwc_ents_decode(dd, NULL, dec, NWC_ARRAY_SIZE(specials) - 1, enc,
			     (size_t)len), -NWC_ECORRUPT);
	T_EQ(nwc_ents_decode(dd, NULL, dec, NWC_ARRAY_SIZE(specials) + 1, enc,
			     (size_t)len), -NWC_ECORRUPT);
	/* The worst case fits the bound: every value a full 8-nibble escape
	 * through the rarest escape possible. */
	nwc_qdist_free(d);
	{
		uint64_t cnt[4095];
		size_t n = 1000;
		int32_t *w = malloc(n * sizeof(*w));

		for (size_t k = 0; k < 4095; k++)
			cnt[k] = 1000000;
		T_EQ(nwc_qdist_from_counts(0, 4095, cnt, 0, &d), 0);
		T_EQ(nwc_qdist_freq(d, 4095), 1);
		for (size_t i = 0; i < n; i++)
			w[i] = i % 2 ? INT32_MIN : INT32_MAX;
		len = (ssize_t)roundtrip(dd, NULL, w, n);
		printf("  worst case: %.2f bytes/value, bound %.2f\n",
		       (double)len / n, (double)nwc_ents_bound(n) / n);
		T_CHECK((size_t)len <= nwc_ents_bound(n));
		free(w);
	}
	nwc_qdist_free(d);
}

/*
 * The stream format written independently of entropy.c: push (f, c) pairs
 * for one value on state 0, others idle.  Used to check the library's
 * bytes and to build escapes the encoder never writes.
 */
struct mini {
	uint32_t x;
	uint16_t words[64];
	int nw;
};

static void mini_put(struct mini *m, uint32_t f, uint32_t c)
{
	if (m->x >= (uint64_t)f << 16) {
		m->words[m->nw++] = (uint16_t)m->x;
		m->x >>= 16;
	}
	m->x = (m->x / f) * M + m->x % f + c;
}

/*
 * Escape symbol of @d, then g, then the g nibbles of @u, low first, coded
 * from initial state @x0 (the encoder's is 2^16).
 */
static size_t mini_escape_from(const struct nwc_qdist *d, uint32_t u,
			       uint32_t g, uint32_t x0, uint8_t *out)
{
	uint32_t n = nwc_qdist_n(d), cum = M - nwc_qdist_freq(d, n);
	struct mini m = { .x = x0 };
	size_t len = 16;

	for (uint32_t j = g; j-- > 0;)
		mini_put(&m, 4096, (u >> 4 * j & 15) * 4096);
	mini_put(&m, 8192, (g - 1) * 8192);
	mini_put(&m, nwc_qdist_freq(d, n), cum);
	nwc_put_le32(out, m.x);
	for (int k = 1; k < 4; k++)
		nwc_put_le32(out + 4 * k, 1u << 16);
	while (m.nw > 0) {
		nwc_put_le16(out + len, m.words[--m.nw]);
		len += 2;
	}
	return len;
}

static size_t mini_escape(const struct nwc_qdist *d, uint32_t u, uint32_t g,
			  uint8_t *out)
{
	return mini_escape_from(d, u, g, 1u << 16, out);
}

static void test_escape_format(void)
{
	struct nwc_qdist *d;
	const struct nwc_qdist *const *dd = (const struct nwc_qdist *const *)&d;
	uint8_t a[256], b[256];
	int32_t v, out;
	size_t la;
	ssize_t lb;

	T_EQ(nwc_qdist_from_counts(-3, 7, (uint64_t[]){ 1, 2, 3, 4, 3, 2, 1 },
				   3, &d), 0);
	/* The library writes exactly what the format says. */
	v = -1000;	/* zigzag 1999 = 0x7cf: three nibbles */
	la = mini_escape(d, 1999, 3, a);
	lb = nwc_ents_encode(dd, NULL, &v, 1, b, sizeof(b));
	T_EQ(lb, (ssize_t)la);
	T_MEMEQ(a, b, la);
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), 0);
	T_EQ(out, -1000);
	v = INT32_MIN;	/* zigzag 0xffffffff */
	la = mini_escape(d, 0xffffffffu, 8, a);
	lb = nwc_ents_encode(dd, NULL, &v, 1, b, sizeof(b));
	T_EQ(lb, (ssize_t)la);
	T_MEMEQ(a, b, la);
	/* A leading zero nibble is not canonical. */
	la = mini_escape(d, 0x7cf, 4, a);
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), -NWC_ECORRUPT);
	la = mini_escape(d, 0x0f, 8, a);
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), -NWC_ECORRUPT);
	/* A lone zero nibble is canonical: value 0, but that is in range. */
	la = mini_escape(d, 0, 1, a);
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), -NWC_ECORRUPT);
	/* Values the table codes directly, escaped: -3 and 3 are its ends. */
	la = mini_escape(d, 5, 1, a);		/* -3 */
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), -NWC_ECORRUPT);
	la = mini_escape(d, 6, 1, a);		/* 3 */
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), -NWC_ECORRUPT);
	la = mini_escape(d, 7, 1, a);		/* -4: fine */
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), 0);
	T_EQ(out, -4);
	la = mini_escape(d, 8, 1, a);		/* 4: fine */
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), 0);
	T_EQ(out, 4);
	/* Started off L, it decodes to the right value and ends off L. */
	la = mini_escape_from(d, 8, 1, (1u << 16) + 1, a);
	T_EQ(nwc_ents_decode(dd, NULL, &out, 1, a, la), -NWC_ECORRUPT);
	nwc_qdist_free(d);
}

static void test_hostile_streams(void)
{
	uint64_t seed = 3;
	const size_t n = 3000;
	struct nwc_qdist *d[2];
	const struct nwc_qdist *const *dd = (const struct nwc_qdist *const *)d;
	uint8_t ctx[3000], enc[32768];
	int32_t vals[3000], dec[3000];
	int ok = 0, corrupt = 0;
	ssize_t len;

	d[0] = random_table(&seed, -20, 41);
	d[1] = random_table(&seed, 0, 300);
	for (size_t i = 0; i < n; i++) {
		ctx[i] = (uint8_t)(t_rand(&seed) % 2);
		if (t_rand(&seed) % 10)
			vals[i] = (int32_t)(t_rand(&seed) % 40) - 20;
		else
			vals[i] = escape_value(&seed, d[ctx[i]]);
	}
	len = nwc_ents_encode(dd, ctx, vals, n, enc, sizeof(enc));
	T_CHECK(len > 0);
	T_EQ(nwc_ents_decode(dd, ctx, dec, n, enc, (size_t)len), 0);
	/* Every truncation fails cleanly (exact-size copies for ASan). */
	for (ssize_t cut = 0; cut < len; cut++) {
		uint8_t *t = malloc((size_t)cut + 1);

		memcpy(t, enc, (size_t)cut);
		T_EQ(nwc_ents_decode(dd, ctx, dec, n, t, (size_t)cut),
		     -NWC_ECORRUPT);
		free(t);
	}
	/*
	 * The lowest bit of an initial state: the first slot moves by one
	 * and the state stays off by one to the end.  (Higher bits carry
	 * values: flipping them can give another valid stream.)
	 */
	for (int k = 0; k < 16; k += 4) {
		enc[k] ^= 1;
		T_EQ(nwc_ents_decode(dd, ctx, dec, n, enc, (size_t)len),
		     -NWC_ECORRUPT);
		enc[k] ^= 1;
	}
	nwc_put_le32(enc, 0xffff);	/* below L: never written */
	T_EQ(nwc_ents_decode(dd, ctx, dec, n, enc, (size_t)len), -NWC_ECORRUPT);
	len = nwc_ents_encode(dd, ctx, vals, n, enc, sizeof(enc));
	/* Extra bytes fail too. */
	enc[len] = enc[len + 1] = 0;
	T_EQ(nwc_ents_decode(dd, ctx, dec, n, enc, (size_t)len + 2),
	     -NWC_ECORRUPT);
	/* Byte flips: success or -NWC_ECORRUPT, nothing else. */
	for (int k = 0; k < 3000; k++) {
		size_t pos = t_rand(&seed) % (size_t)len;
		uint8_t *t = malloc((size_t)len);
		int ret;

		memcpy(t, enc, (size_t)len);
		t[pos] ^= (uint8_t)(1 + t_rand(&seed) % 255);
		ret = nwc_ents_decode(dd, ctx, dec, n, t, (size_t)len);
		T_CHECK(ret == 0 || ret == -NWC_ECORRUPT);
		ret ? corrupt++ : ok++;
		free(t);
	}
	printf("  3000 flips: %d decoded, %d rejected\n", ok, corrupt);
	/* Garbage of every shape. */
	for (int k = 0; k < 3000; k++) {
		size_t l = t_rand(&seed) % 400, cnt = t_rand(&seed) % 200;
		uint8_t *t = malloc(l + 1);
		int ret;

		for (size_t i = 0; i < l; i++)
			t[i] = (uint8_t)t_rand(&seed);
		ret = nwc_ents_decode(dd, ctx, dec, cnt, t, l);
		T_CHECK(ret == 0 || ret == -NWC_ECORRUPT);
		free(t);
	}
	nwc_qdist_free(d[0]);
	nwc_qdist_free(d[1]);
}

/* Rewrite the checksum of a saved table of @size bytes. */
static void reseal(uint8_t *buf, size_t size)
{
	nwc_put_le64(buf + size - 8, nwc_hash64(buf, size - 8));
}

static void test_save_load(void)
{
	uint64_t seed = 17;
	struct nwc_qdist *d, *e = NULL;
	uint8_t *buf = malloc(24 + 2 * 4097 + 16), *bad;
	size_t size, used = 0;

	for (int round = 0; round < 30; round++) {
		uint32_t n = round ? 1 + (uint32_t)(t_rand(&seed) % 4095) : 4095;
		int32_t lo = (int32_t)(t_rand(&seed) % 1000) - 500;

		d = random_table(&seed, lo, n);
		size = nwc_qdist_saved_size(d);
		T_EQ(size, 16 + 2 * (n + 1) + 8);
		nwc_qdist_save(d, buf);
		buf[size] = 0xee;	/* trailing bytes are not its business */
		T_EQ(nwc_qdist_load(buf, size + 1, &used, &e), 0);
		T_EQ(used, size);
		T_EQ(nwc_qdist_lo(e), nwc_qdist_lo(d));
		T_EQ(nwc_qdist_n(e), n);
		for (uint32_t s = 0; s <= n; s++)
			T_EQ(nwc_qdist_freq(e, s), nwc_qdist_freq(d, s));
		nwc_qdist_free(e);
		e = NULL;
		T_EQ(nwc_qdist_load(buf, size - 1, &used, &e), -NWC_ECORRUPT);
		nwc_qdist_free(d);
	}

	/* A small table: every byte corrupted, every truncation. */
	d = random_table(&seed, -5, 11);
	size = nwc_qdist_saved_size(d);
	nwc_qdist_save(d, buf);
	bad = malloc(size);
	for (size_t pos = 0; pos < size; pos++) {
		for (unsigned x = 1; x < 256; x += 17) {
			memcpy(bad, buf, size);
			bad[pos] ^= (uint8_t)x;
			T_EQ(nwc_qdist_load(bad, size, &used, &e),
			     -NWC_ECORRUPT);
		}
	}
	for (size_t cut = 0; cut < size; cut++) {
		uint8_t *t = malloc(cut + 1);	/* exact size, for ASan */

		memcpy(t, buf, cut);
		T_EQ(nwc_qdist_load(t, cut, &used, &e), -NWC_ECORRUPT);
		free(t);
	}

	/* Structurally wrong tables with a valid checksum. */
#define EXPECT_BAD(edit) do {						\
		memcpy(bad, buf, size);					\
		edit;							\
		reseal(bad, size);					\
		T_EQ(nwc_qdist_load(bad, size, &used, &e), -NWC_ECORRUPT); \
	} while (0)
	EXPECT_BAD(nwc_put_le16(bad + 4, 2));			/* version */
	EXPECT_BAD(nwc_put_le16(bad + 6, 1));			/* reserved */
	EXPECT_BAD(bad[0] = 'X');				/* magic */
	EXPECT_BAD(nwc_put_le32(bad + 12, 0));			/* n = 0 */
	EXPECT_BAD(nwc_put_le32(bad + 12, 10));			/* n shorter */
	EXPECT_BAD(nwc_put_le32(bad + 8, INT32_MAX - 5));	/* lo + n */
	EXPECT_BAD(nwc_put_le16(bad + 16, nwc_get_le16(bad + 16) + 1));
	EXPECT_BAD(nwc_put_le16(bad + 16, nwc_get_le16(bad + 16) - 1));
	/* A zero frequency whose mass moved to a neighbour: sum still 2^16. */
	EXPECT_BAD({
		uint16_t f0 = nwc_get_le16(bad + 16);

		nwc_put_le16(bad + 16, 0);
		nwc_put_le16(bad + 18, nwc_get_le16(bad + 18) + f0);
	});
	/* Sum wrapping in 16 bits must not pass: 2^16 + 2^16 from two. */
	EXPECT_BAD({
		for (size_t s = 0; s < 12; s++)
			nwc_put_le16(bad + 16 + 2 * s, s < 2 ? 32768 : 1);
	});
#undef EXPECT_BAD
	free(bad);
	nwc_qdist_free(d);

	/* n too big: a table of 4096 direct symbols, sealed properly. */
	size = 16 + 2 * 4097 + 8;
	memcpy(buf, "NWQD", 4);
	nwc_put_le16(buf + 4, 1);
	nwc_put_le16(buf + 6, 0);
	nwc_put_le32(buf + 8, 0);
	nwc_put_le32(buf + 12, 4096);
	for (size_t s = 0; s < 4097; s++)
		nwc_put_le16(buf + 16 + 2 * s, s < 4096 ? 16 : 0);
	nwc_put_le16(buf + 16, 15);
	nwc_put_le16(buf + 16 + 2 * 4096, 1);
	reseal(buf, size);
	T_EQ(nwc_qdist_load(buf, size, &used, &e), -NWC_ECORRUPT);
	/* The same with n = 4095 and the escape folded in is valid. */
	nwc_put_le32(buf + 12, 4095);
	nwc_put_le16(buf + 16 + 2 * 4095, 17);
	reseal(buf, size - 2);
	T_EQ(nwc_qdist_load(buf, size - 2, &used, &e), 0);
	nwc_qdist_free(e);
	free(buf);
}

/* Golden vector: the table and stream formats are part of the image. */
static void test_golden(void)
{
	static const int32_t vals[] = { 0, 1, -1, 0, 2, -2, 100, 0, INT32_MIN,
					0, 3, -3, 0, 0, 1, INT32_MAX, -1 };
	/* Frequencies 3121, 12483, 31207, 12483, 3121 and escape 3121. */
	static const uint8_t want_table[] = {
		0x4e, 0x57, 0x51, 0x44, 0x01, 0x00, 0x00, 0x00, 0xfe, 0xff,
		0xff, 0xff, 0x05, 0x00, 0x00, 0x00, 0x31, 0x0c, 0xc3, 0x30,
		0xe7, 0x79, 0xc3, 0x30, 0x31, 0x0c, 0x31, 0x0c, 0xbe, 0x03,
		0x1a, 0x9f, 0x41, 0x61, 0xec, 0x7c,
	};
	static const uint8_t want_stream[] = {
		0xa1, 0x5a, 0x01, 0x00, 0x11, 0xc3, 0xf8, 0x01, 0x48, 0x39,
		0x80, 0xd0, 0x7e, 0x9b, 0x3d, 0x00, 0x91, 0xf2, 0x9d, 0xf4,
		0xff, 0xf9, 0x50, 0xf2, 0xe0, 0x1b, 0xff, 0xf0, 0x00, 0xf0,
	};
	int32_t dec[NWC_ARRAY_SIZE(vals)];
	struct nwc_qdist *d;
	const struct nwc_qdist *const *dd = (const struct nwc_qdist *const *)&d;
	uint8_t table[64], enc[256];
	int failed = t_failed;
	ssize_t len;
	size_t tlen;

	T_EQ(nwc_qdist_from_counts(-2, 5, (uint64_t[]){ 1, 4, 10, 4, 1 }, 1,
				   &d), 0);
	tlen = nwc_qdist_saved_size(d);
	nwc_qdist_save(d, table);
	len = nwc_ents_encode(dd, NULL, vals, NWC_ARRAY_SIZE(vals), enc,
			      sizeof(enc));
	if (getenv("NWC_PRINT_GOLDEN")) {
		printf("table:\n");
		for (size_t i = 0; i < tlen; i++)
			printf("0x%02x,%s", table[i], i % 10 == 9 ? "\n" : " ");
		printf("\nstream:\n");
		for (ssize_t i = 0; i < len; i++)
			printf("0x%02x,%s", enc[i], i % 10 == 9 ? "\n" : " ");
		printf("\n");
	}
	T_EQ(tlen, sizeof(want_table));
	if (tlen == sizeof(want_table))
		T_MEMEQ(table, want_table, tlen);
	T_EQ(len, (ssize_t)sizeof(want_stream));
	if (len == (ssize_t)sizeof(want_stream))
		T_MEMEQ(enc, want_stream, sizeof(want_stream));
	T_EQ(nwc_ents_decode(dd, NULL, dec, NWC_ARRAY_SIZE(vals), want_stream,
			     sizeof(want_stream)), 0);
	T_MEMEQ(dec, vals, sizeof(vals));
	if (t_failed > failed)
		fprintf(stderr, "If the table or stream format changed on "
			"purpose, regenerate want_table and want_stream in "
			"test_golden() with: NWC_PRINT_GOLDEN=1 "
			"tests/test_entropy\n");
	nwc_qdist_free(d);
}

/* A rough standard Laplacian sample from the PRNG. */
static double laplace(uint64_t *seed)
{
	double u = ((double)(t_rand(seed) >> 11) + 0.5) / 9007199254740992.0;

	return u < 0.5 ? log(2 * u) : -log(2 - 2 * u);
}

/* Latents of 16 channels of different spreads, as NWC decodes them. */
static void test_decode_speed(void)
{
	const size_t n = 1 << 20;
	int32_t *vals = malloc(n * sizeof(*vals));
	int32_t *dec = malloc(n * sizeof(*dec));
	uint8_t *ctx = malloc(n), *enc = malloc(nwc_ents_bound(n));
	struct nwc_qdist *d[16];
	const struct nwc_qdist *const *dd = (const struct nwc_qdist *const *)d;
	uint64_t cnt[16][128] = { { 0 } }, esc[16] = { 0 }, seed = 23;
	double t0, best = 1e9, tenc;
	ssize_t len;

	for (size_t i = 0; i < n; i++) {
		int c = (int)(i % 16);
		double v = laplace(&seed) * (0.3 + c * 0.6);

		ctx[i] = (uint8_t)c;
		vals[i] = (int32_t)lrint(v);
		if (vals[i] >= -64 && vals[i] < 64)
			cnt[c][vals[i] + 64]++;
		else
			esc[c]++;
	}
	for (int c = 0; c < 16; c++)
		T_EQ(nwc_qdist_from_counts(-64, 128, cnt[c], esc[c], &d[c]), 0);
	t0 = now();
	len = nwc_ents_encode(dd, ctx, vals, n, enc, nwc_ents_bound(n));
	tenc = now() - t0;
	T_CHECK(len > 0);
	for (int rep = 0; rep < 3; rep++) {
		t0 = now();
		T_EQ(nwc_ents_decode(dd, ctx, dec, n, enc, (size_t)len), 0);
		best = fmin(best, now() - t0);
	}
	T_MEMEQ(vals, dec, n * sizeof(*dec));
	printf("  1M values, 16 contexts: %.3f bits/value; encode %.0f, "
	       "decode %.0f M values/s\n", len * 8.0 / n, n / tenc / 1e6,
	       n / best / 1e6);
	for (int c = 0; c < 16; c++)
		nwc_qdist_free(d[c]);
	free(vals);
	free(dec);
	free(ctx);
	free(enc);
}

int main(void)
{
	T_RUN(test_table_args);
	T_RUN(test_table_scaling);
	T_RUN(test_sizes);
	T_RUN(test_escape_runs);
	T_RUN(test_contexts);
	T_RUN(test_fsm);
	T_RUN(test_edge_cases);
	T_RUN(test_bucket_edges);
	T_RUN(test_escape_format);
	T_RUN(test_hostile_streams);
	T_RUN(test_save_load);
	T_RUN(test_golden);
	T_RUN(test_decode_speed);
	T_EXIT();
}
