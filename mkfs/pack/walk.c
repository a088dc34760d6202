/* SPDX-License-Identifier: MIT */
/* walk.c - breadth-first scan of the input directory with sorted names. */
#include "codec/common/base.h"

#include <dirent.h>
#include <limits.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/array.h"
#include "codec/common/log.h"
#include "mkfs/pack/walk.h"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_entry(struct nwc_tree *t, size_t *cap, const char *root,
		     const char *rel, uint32_t parent, const struct stat *st)
{
	struct nwc_entry *e;
	int ret;

	ret = nwc_array_reserve_max((void **)&t->e, cap, (size_t)t->n + 1,
				    sizeof(*t->e), UINT32_MAX);
	if (ret)
		return ret;
	e = &t->e[t->n];
	memset(e, 0, sizeof(*e));
	e->path = strdup(rel);
	if (!e->path)
		return -ENOMEM;
	e->name = strrchr(e->path, '/') ? strrchr(e->path, '/') + 1 : e->path;
	e->parent = parent;
	e->mode = st->st_mode;
	e->mtime = st->st_mtim.tv_sec;
	e->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
	if (S_ISREG(st->st_mode)) {
		e->size = (uint64_t)st->st_size;
		t->total += e->size;
		t->n_files++;
	} else if (S_ISLNK(st->st_mode)) {
		char full[PATH_MAX], buf[4097];
		ssize_t n;

		snprintf(full, sizeof(full), "%s/%s", root, rel);
		n = readlink(full, buf, sizeof(buf) - 1);
		if (n < 0 || n == 0 || n >= (ssize_t)sizeof(buf) - 1) {
			ret = n < 0 ? -errno : -ENAMETOOLONG;
			nwc_err("%s: cannot read symlink: %s", full,
				strerror(-ret));
			free(e->path);
			return ret;
		}
		buf[n] = '\0';
		e->target = strdup(buf);
		if (!e->target) {
			free(e->path);
			return -ENOMEM;
		}
		e->size = (uint64_t)n;
	}
	t->n++;
	return 0;
}

/* The state of one scan. */
struct scan {
	struct nwc_tree *t;
	size_t cap;
	const char *root;
	char *root_real;		/* realpath of the root */
	struct nwc_walk_opts *o;
};

/* Whether an exclusion pattern matches @rel (name @name); counts it. */
static bool excluded(struct scan *sc, const char *rel, const char *name,
		     bool dir)
{
	const struct nwc_walk_opts *o = sc->o;
	bool hit = false;

	for (size_t i = 0; o && i < o->n_exclude; i++) {
		const char *g = o->exclude[i];
		size_t len = strlen(g);
		char pat[PATH_MAX];

		if (len && g[len - 1] == '/') {
			if (!dir || len >= sizeof(pat))
				continue;
			memcpy(pat, g, len - 1);
			pat[len - 1] = '\0';
			g = pat;
		}
		if (!fnmatch(g, rel, 0) || !fnmatch(g, name, 0)) {
			if (o->exclude_hits)
				o->exclude_hits[i]++;
			hit = true;
		}
	}
	return hit;
}

/* Whether the absolute, resolved path @real lies inside the root. */
static bool inside(const struct scan *sc, const char *real)
{
	size_t n = strlen(sc->root_real);

	if (n == 1)	/* the root is "/" */
		return true;
	return !strncmp(real, sc->root_real, n) &&
	       (real[n] == '/' || real[n] == '\0');
}

/*
 * Where the link at @path points, its own target's directories resolved
 * but not its last component (a link to a link inside the tree stays
 * inside, wherever that one leads): malloc'd, or NULL if missing.
 */
static char *link_place(const char *path)
{
	char tgt[PATH_MAX], full[2 * PATH_MAX], *slash, *dir, *out = NULL;
	ssize_t n = readlink(path, tgt, sizeof(tgt) - 1);

	if (n <= 0)
		return NULL;
	tgt[n] = '\0';
	if (tgt[0] == '/') {
		snprintf(full, sizeof(full), "%s", tgt);
	} else {
		snprintf(full, sizeof(full), "%s", path);
		slash = strrchr(full, '/');
		snprintf(slash ? slash + 1 : full,
			 sizeof(full) - (size_t)(slash ? slash + 1 - full : 0),
			 "%s", tgt);
	}
	while (strlen(full) > 1 && full[strlen(full) - 1] == '/')
		full[strlen(full) - 1] = '\0';
	slash = strrchr(full, '/');
	if (!slash)
		return realpath(".", NULL);
	*slash = '\0';
	dir = realpath(*full ? full : "/", NULL);
	if (dir && (!strcmp(slash + 1, ".") || !strcmp(slash + 1, ".."))) {
		snprintf(full, sizeof(full), "%s/%s", dir, slash + 1);
		free(dir);
		return realpath(full, NULL);
	}
	if (dir && asprintf(&out, "%s/%s", dir, slash + 1) < 0)
		out = NULL;
	free(dir);
	return out;
}

/*
 * A symlink at @path: when it leads out of the tree to a regular file,
 * *@st becomes that file's, so that the file is stored in its place.
 */
static void resolve_link(struct scan *sc, const char *path, struct stat *st)
{
	char *place = link_place(path), *real;
	struct stat ts;

	if (place && inside(sc, place)) {
		free(place);
		return;		/* the target is in the image */
	}
	free(place);
	real = realpath(path, NULL);
	if (!real) {
		nwc_warn("%s: symlink to a missing file (%s): kept as a link",
			 path, strerror(errno));
		return;
	}
	if (!inside(sc, real)) {
		if (stat(real, &ts)) {
			nwc_warn("%s: %s: %s: kept as a link", path, real,
				 strerror(errno));
		} else if (S_ISREG(ts.st_mode)) {
			*st = ts;
			sc->t->n_deref++;
		} else {
			nwc_warn("%s: symlink to %s outside the tree, not a regular file: kept as a link",
				 path, real);
		}
	}
	free(real);
}

/* Append the sorted children of directory entry @idx. */
static int scan_dir(struct scan *sc, uint32_t idx)
{
	struct nwc_tree *t = sc->t;
	const char *root = sc->root;
	char full[PATH_MAX];
	char **names = NULL;
	size_t n = 0, cap_names = 0;
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (snprintf(full, sizeof(full), "%s%s%s", root, idx ? "/" : "",
		     idx ? t->e[idx].path : "") >= (int)sizeof(full))
		return -ENAMETOOLONG;
	d = opendir(full);
	if (!d) {
		ret = -errno;
		nwc_err("%s: cannot open directory: %s", full, strerror(errno));
		return ret;
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		ret = nwc_array_reserve((void **)&names, &cap_names, n + 1,
					sizeof(*names));
		if (ret)
			goto out_free;
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			ret = -ENOMEM;
			goto out_free;
		}
		n++;
	}
	if (errno) {
		ret = -errno;
		nwc_err("%s: cannot read directory: %s", full, strerror(errno));
		goto out_free;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n && !ret; i++) {
		char rel[PATH_MAX], path[PATH_MAX];
		struct stat st;

		if (strlen(names[i]) > 255) {
			nwc_err("%s/%s: name longer than 255 bytes", full,
				names[i]);
			ret = -ENAMETOOLONG;
			break;
		}
		if (snprintf(rel, sizeof(rel), "%s%s%s",
			     idx ? t->e[idx].path : "", idx ? "/" : "",
			     names[i]) >= (int)sizeof(rel) ||
		    snprintf(path, sizeof(path), "%s/%s", root, rel) >=
			    (int)sizeof(path)) {
			ret = -ENAMETOOLONG;
			break;
		}
		if (lstat(path, &st)) {
			ret = -errno;
			nwc_err("%s: %s", path, strerror(errno));
			break;
		}
		if (excluded(sc, rel, names[i], S_ISDIR(st.st_mode))) {
			t->n_excluded++;
			continue;
		}
		if (S_ISLNK(st.st_mode) &&
		    !(sc->o && sc->o->no_dereference))
			resolve_link(sc, path, &st);
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
		    !S_ISLNK(st.st_mode)) {
			nwc_warn("%s: skipping special file", path);
			continue;
		}
		ret = add_entry(t, &sc->cap, root, rel, idx, &st);
	}
out_free:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

int nwc_walk(const char *root, struct nwc_walk_opts *o, struct nwc_tree *out)
{
	struct nwc_tree t = { 0 };
	struct scan sc = { .t = &t, .root = root, .o = o };
	struct stat st;
	int ret;

	if (stat(root, &st)) {
		ret = -errno;
		nwc_err("%s: %s", root, strerror(errno));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		nwc_err("%s: not a directory", root);
		return -ENOTDIR;
	}
	sc.root_real = realpath(root, NULL);
	if (!sc.root_real) {
		ret = -errno;
		nwc_err("%s: %s", root, strerror(errno));
		return ret;
	}
	ret = add_entry(&t, &sc.cap, root, "", 0, &st);
	/* Breadth first: entries appended while scanning are scanned later. */
	for (uint32_t i = 0; !ret && i < t.n; i++)
		if (S_ISDIR(t.e[i].mode))
			ret = scan_dir(&sc, i);
	free(sc.root_real);
	if (ret) {
		nwc_tree_free(&t);
		return ret;
	}
	*out = t;
	return 0;
}

void nwc_tree_free(struct nwc_tree *t)
{
	for (uint32_t i = 0; i < t->n; i++) {
		free(t->e[i].path);
		free(t->e[i].target);
	}
	free(t->e);
	memset(t, 0, sizeof(*t));
}

bool nwc_is_safetensors(const char *name)
{
	size_t n = strlen(name);

	return n > 12 && !strcmp(name + n - 12, ".safetensors");
}
