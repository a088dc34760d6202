/* SPDX-License-Identifier: MIT */
/*
 * walk.h - scan a model directory into a flat list of entries, parents
 * before children and names sorted, so mkfs output does not depend on
 * readdir order.  Regular files, directories and symlinks are kept; other
 * types are skipped with a warning.  Not thread-safe; used by main only.
 */
#ifndef NWC_WALK_H
#define NWC_WALK_H

#include "codec/common/base.h"

struct nwc_entry {
	char *path;		/* relative to the root, e.g. "sub/a.bin" */
	char *name;		/* last component (points into path) */
	uint32_t parent;	/* index of the parent entry; root is entry 0 */
	uint32_t mode;
	int64_t mtime;
	uint32_t mtime_ns;
	uint64_t size;
	char *target;		/* symlink target, NUL-terminated */
	uint32_t id;		/* writer node id, set by the packer */
};

struct nwc_tree {
	struct nwc_entry *e;	/* e[0] is the root directory itself */
	uint32_t n;
	uint64_t total;		/* bytes of regular files */
	uint32_t n_files;
};

/* Scan @root.  Returns 0, or -errno after logging what failed. */
int nwc_walk(const char *root, struct nwc_tree *out);
void nwc_tree_free(struct nwc_tree *t);

#endif /* NWC_WALK_H */
