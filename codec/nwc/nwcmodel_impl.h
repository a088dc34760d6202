/* SPDX-License-Identifier: MIT */
/*
 * nwcmodel_impl.h - private to nwcmodel.c (decode side, libnwcdec.a) and
 * nwcmodel_enc.c (encode side, libnwcenc.a): the chunk scratch and the
 * two internal functions of nwcmodel.c that the encode side also calls.
 * Not for other files.
 *
 * Thread safety: as nwcmodel.h; a scratch belongs to one thread.
 */
#ifndef NWC_NWCMODEL_IMPL_H
#define NWC_NWCMODEL_IMPL_H

#include "codec/common/base.h"

#include <math.h>

#include "codec/nwc/mlp.h"
#include "codec/nwc/nwcmodel.h"

struct nwc_model_scratch {
	struct nwc_net_scratch *net;
	float *buf;
	size_t cap;		/* floats in @buf */
};

/*
 * nwc_model_alloc() - nwc_model_create() with the level-table layout of
 * @flags (a file's, when parsing).  0, -EINVAL or -ENOMEM.
 */
int nwc_model_alloc(unsigned int h, unsigned int r, unsigned int nq,
		    uint32_t flags, struct nwc_model **out);

/* nwc_model_scratch_reserve() - room for @n chunks of latents in s->buf;
 * 0, -EINVAL (@n overflows) or -ENOMEM. */
int nwc_model_scratch_reserve(struct nwc_model_scratch *s, size_t n);

/* Every float of @v finite? (Files and models must have no others.) */
static inline bool all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i]))
			return false;
	}
	return true;
}

#endif /* NWC_NWCMODEL_IMPL_H */
