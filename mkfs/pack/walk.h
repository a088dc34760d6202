/* SPDX-License-Identifier: MIT */
/*
 * walk.h - scan a model directory into a flat list of entries, parents
 * before children and names sorted, so mkfs output does not depend on
 * readdir order.  Regular files, directories and symlinks are kept; other
 * types are skipped with a warning.
 *
 * A symlink whose target lies outside the tree (a Hugging Face cache
 * snapshot links every file into ../../blobs/) is taken as the regular
 * file it points to, unless @no_dereference; links that stay inside the
 * tree, dangling ones and links to directories outside stay links.
 * Entries that an exclusion pattern matches are left out, directories
 * with everything under them.  Not thread-safe; used by main only.
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
	uint32_t n_deref;	/* symlinks taken as the files they name */
	uint32_t n_excluded;	/* entries left out (directories count 1) */
};

struct nwc_walk_opts {
	bool no_dereference;	/* keep every symlink as a link */
	/*
	 * Shell patterns (fnmatch) of entries to leave out, matched against
	 * the path relative to the root and against the name alone; one
	 * ending in '/' matches directories only.  @exclude_hits counts the
	 * entries each one matched (for the warnings of unmatched ones).
	 */
	const char *const *exclude;
	size_t n_exclude;
	uint32_t *exclude_hits;		/* n_exclude counters, or NULL */
};

/*
 * Scan @root as @o says (NULL: defaults).  Returns 0, or -errno after
 * logging what failed.
 */
int nwc_walk(const char *root, struct nwc_walk_opts *o, struct nwc_tree *out);
void nwc_tree_free(struct nwc_tree *t);

/* Whether file name @name is parsed as safetensors (".safetensors"). */
bool nwc_is_safetensors(const char *name);

#endif /* NWC_WALK_H */
