/* SPDX-License-Identifier: MIT */
/*
 * pack.h - turn a scanned model directory into an image: plan the extents
 * of every file (safetensors files are split into header, tensors and any
 * gaps), compress blocks on worker threads and hand them to the image
 * writer in a fixed order, so the output does not depend on the number of
 * threads.  Used by mkfs.nwc's main thread.
 */
#ifndef NWC_PACK_H
#define NWC_PACK_H

#include "codec/nwc.h"
#include "mkfs/walk.h"

struct nwc_pack_opts {
	unsigned block_log2;	/* decoded block size (log2) */
	int level;		/* zstd level */
	unsigned jobs;		/* compression threads, >= 1 */
	bool force;		/* replace an existing image */
	bool progress;		/* draw a progress bar */
};

struct nwc_pack_result {
	uint64_t *stored;	/* per tree entry: stored bytes (files) */
	uint64_t image_size;
	double seconds;
};

/*
 * nwc_pack() - build @image from @root (scanned into @tree).  Every
 * safetensors file is parsed before anything is written.  On success fills
 * @res (free res->stored with free()).  Returns 0, -NWC_EFORMAT for a
 * malformed input file, or another negative errno; each failure is logged
 * with the file it concerns, and no image is left behind.
 */
int nwc_pack(const char *root, struct nwc_tree *tree, const char *image,
	     const struct nwc_pack_opts *opts, struct nwc_pack_result *res);

#endif /* NWC_PACK_H */
