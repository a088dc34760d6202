/* SPDX-License-Identifier: MIT */
/*
 * cli.h - parsing of command-line values shared by the front ends, so that
 * "-b 256K" and "-o cache_size=2G" mean the same thing everywhere.
 * Pure functions; thread-safe.
 */
#ifndef NWC_CLI_H
#define NWC_CLI_H

#include "codec/common/base.h"

/*
 * nwc_parse_size() - a byte count: digits, optionally followed by K, M or G
 * (powers of 1024, either case) and an optional "iB" or "B".  Returns 0, or
 * -EINVAL for anything else or a value of 2^63 or more.
 */
int nwc_parse_size(const char *s, uint64_t *out);

/* nwc_parse_uint() - a decimal number in [lo, hi]; 0 or -EINVAL. */
int nwc_parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out);

#endif /* NWC_CLI_H */
