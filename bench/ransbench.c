/* SPDX-License-Identifier: MIT */
/*
 * ransbench.c - decode speed of the byte planes' rANS stage on the plane
 * that matters most: the exponent plane of BF16 weights (normal, std 0.02,
 * rotated as the codec does), one 128 KiB plane (a 256 KiB block) decoded
 * over and over on one thread, by the 4-state coder and by each kernel of
 * the 32-state one this CPU runs; the best of 5 rounds.  Prints bits/symbol and MB/s of decoded
 * bytes.  Usage: ransbench [REPEATS]
 */
#include "codec/common/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "codec/rans.h"

#define PLANE (128u << 10)
#define ROUNDS 5	/* best of: this VM's timings drift +-25% */

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 2000;
	uint8_t *src = malloc(PLANE), *dst = malloc(PLANE);
	size_t cap = nwc_rans8_bound(PLANE);
	uint8_t *enc = malloc(cap);
	uint64_t rng = 1;
	ssize_t len;
	double t0, t;

	printf("exponent plane of N(0, 0.02) BF16 weights, %u bytes, one thread, best of %d rounds of %d decodes\n\n"
	       "| coder | kernel | bits/symbol | decode MB/s |\n|---|---|---:|---:|\n",
	       PLANE, ROUNDS, reps);

	if (!src || !dst || !enc || reps < 1)
		return 2;
	for (size_t i = 0; i < PLANE; i++) {
		double u1, u2;
		uint32_t b;
		uint16_t h;
		float f;

		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		u1 = ((double)(rng >> 11) + 1) / 9007199254740993.0;
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		u2 = (double)(rng >> 11) / 9007199254740992.0;
		f = (float)(0.02 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
		memcpy(&b, &f, 4);
		h = (uint16_t)(b >> 16);
		h = (uint16_t)(h << 1 | h >> 15);
		src[i] = (uint8_t)(h >> 8);
	}
	len = nwc_rans8_encode(src, PLANE, enc, cap);
	if (len < 0)
		return 2;
	t = 1e30;
	for (int round = 0; round < ROUNDS; round++) {
		t0 = now();
		for (int r = 0; r < reps; r++)
			if (nwc_rans8_decode(enc, (size_t)len, dst, PLANE))
				return 1;
		t = fmin(t, now() - t0);
	}
	if (memcmp(src, dst, PLANE))
		return 1;
	printf("| rans8 (4 states) | scalar | %.3f | %.0f |\n",
	       8.0 * (double)len / PLANE, (double)PLANE * reps / t / 1e6);

	cap = nwc_rans8w_bound(PLANE);
	free(enc);
	enc = malloc(cap);
	if (!enc)
		return 2;
	len = nwc_rans8w_encode(src, PLANE, enc, cap);
	if (len < 0)
		return 2;
	for (int k = NWC_RANS_KERNEL_SCALAR; k <= NWC_RANS_KERNEL_AVX2; k++) {
		if (!nwc_rans8w_kernel_ok(k))
			continue;
		memset(dst, 0, PLANE);
		t = 1e30;
		for (int round = 0; round < ROUNDS; round++) {
			t0 = now();
			for (int r = 0; r < reps; r++)
				if (nwc_rans8w_decode_with(k, enc, (size_t)len,
							   dst, PLANE))
					return 1;
			t = fmin(t, now() - t0);
		}
		if (memcmp(src, dst, PLANE))
			return 1;
		printf("| rans8w (32 states) | %s | %.3f | %.0f |\n",
		       nwc_rans8w_kernel_name(k), 8.0 * (double)len / PLANE,
		       (double)PLANE * reps / t / 1e6);
	}
	return 0;
}
