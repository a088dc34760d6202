/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - shared by the fuzz targets.  Each target defines
 * LLVMFuzzerTestOneInput(); driver.c replays corpus files through it in
 * make check, libFuzzer drives it under --enable-fuzzing.  FUZZ_ASSERT
 * states a property that must hold for every input; it aborts, which both
 * libFuzzer and the replay driver report as a failure.
 */
#ifndef NWC_FUZZ_H
#define NWC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: fuzz property failed: %s\n",	\
			__FILE__, __LINE__, #cond);			\
		abort();						\
	}								\
} while (0)

#endif /* NWC_FUZZ_H */
