/* SPDX-License-Identifier: MIT */
/*
 * ops.h - the FUSE callbacks of nwcfs over a read engine.
 *
 * Thread safety: the callbacks run on many FUSE worker threads at once; the
 * context is immutable after nwcfs_ctx_create() (and the mount point is
 * set before fuse_main()), and the engine is internally synchronized.
 */
#ifndef NWC_OPS_H
#define NWC_OPS_H

#define FUSE_USE_VERSION 31
#include <fuse.h>

#include "fs/engine.h"

struct nwcfs_ctx;

/* Wrap @eng (not owned) for the callbacks; serves files as @uid/@gid. */
int nwcfs_ctx_create(struct nwc_engine *eng, uid_t uid, gid_t gid,
		     struct nwcfs_ctx **out);
void nwcfs_ctx_free(struct nwcfs_ctx *ctx);

/* The mount point (not copied; before fuse_main()), for the readahead. */
void nwcfs_ctx_set_mountpoint(struct nwcfs_ctx *ctx, const char *mnt);

/* The largest read request nwcfs asks the kernel for. */
#define NWCFS_MAX_REQUEST (1u << 20)

extern const struct fuse_operations nwcfs_ops;

#endif /* NWC_OPS_H */
