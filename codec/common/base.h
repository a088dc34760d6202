/* SPDX-License-Identifier: MIT */
/*
 * base.h - base header of the project, included first by every .c file.
 *
 * Holds config.h, the fixed-width types, a few macros, the project's error
 * aliases and the little-endian load/store helpers used for every on-disk
 * structure.  Nothing here allocates or has state.
 *
 * Errors: every function returns 0 (or a count) on success and a negative
 * errno on failure.  Project meanings are errno aliases, so they pass through
 * a FUSE reply unchanged; nwc_strerror() gives their text.
 */
#ifndef NWC_BASE_H
#define NWC_BASE_H

#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define NWC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NWC_UNUSED __attribute__((unused))
#define NWC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define NWC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define NWC_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Project error meanings, returned negated like any errno. */
#define NWC_ECORRUPT EUCLEAN	/* a structure failed validation */
#define NWC_ECHECKSUM EBADMSG	/* stored checksum does not match */
#define NWC_EFEATURE ENOTSUP	/* image needs a feature this build lacks */
#define NWC_EFORMAT EPROTO	/* malformed input file (safetensors, JSON) */

/* nwc_strerror() - text for a negative (or positive) errno, aliases included. */
const char *nwc_strerror(int err);

static inline uint16_t nwc_get_le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t nwc_get_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline uint64_t nwc_get_le64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)nwc_get_le32(b) | (uint64_t)nwc_get_le32(b + 4) << 32;
}

static inline void nwc_put_le16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void nwc_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

static inline void nwc_put_le64(void *p, uint64_t v)
{
	nwc_put_le32(p, (uint32_t)v);
	nwc_put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

static inline float nwc_get_lef32(const void *p)
{
	uint32_t u = nwc_get_le32(p);
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static inline void nwc_put_lef32(void *p, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	nwc_put_le32(p, u);
}

/* True when off + len lies inside [0, size), computed without overflow. */
static inline bool nwc_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

#endif /* NWC_BASE_H */
