/* SPDX-License-Identifier: MIT */
/*
 * cpu.h - which vector instructions this CPU runs, for the kernels that
 * pick an AVX2 path at run time (one binary for every x86-64 machine).
 * Asked once per process; false on other architectures.
 *
 *	if (nwc_cpu_has(NWC_CPU_AVX2 | NWC_CPU_FMA))
 *		kernel_avx2(...);
 *
 * Thread safety: any thread, any time.
 */
#ifndef NWC_CPU_H
#define NWC_CPU_H

#include "codec/common/base.h"

enum nwc_cpu_feature {
	NWC_CPU_AVX2 = 1u << 0,
	NWC_CPU_FMA = 1u << 1,
	NWC_CPU_BMI2 = 1u << 2,
	NWC_CPU_AVX512F = 1u << 3,
};

/* Whether the CPU (and the kernel, for AVX state) has all of @features. */
bool nwc_cpu_has(unsigned features);

#endif /* NWC_CPU_H */
