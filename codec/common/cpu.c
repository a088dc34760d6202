/* SPDX-License-Identifier: MIT */
/* cpu.c - nwc_cpu_has(): the CPU's features, asked once (cpu.h). */
#include "codec/common/base.h"

#include <pthread.h>

#include "codec/common/cpu.h"

static unsigned features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void features_init(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	/* AVX2 includes the operating system's support for YMM state. */
	if (__builtin_cpu_supports("avx2"))
		features |= NWC_CPU_AVX2;
	if (__builtin_cpu_supports("fma"))
		features |= NWC_CPU_FMA;
	if (__builtin_cpu_supports("bmi2"))
		features |= NWC_CPU_BMI2;
	/* libgcc checks that the OS saves the ZMM state too. */
	if (__builtin_cpu_supports("avx512f"))
		features |= NWC_CPU_AVX512F;
#endif
}

bool nwc_cpu_has(unsigned want)
{
	pthread_once(&features_once, features_init);
	return (features & want) == want;
}
