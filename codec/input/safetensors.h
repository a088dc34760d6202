/* SPDX-License-Identifier: MIT */
/*
 * safetensors.h - parse and validate the header of a .safetensors file.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON (an object mapping tensor names to {"dtype", "shape",
 * "data_offsets": [begin, end]}, plus an optional "__metadata__" object of
 * strings), then the data buffer; offsets are relative to the buffer.
 *
 *	struct nwc_st *st;
 *	ret = nwc_st_parse(buf, len, file_size, "model.safetensors", &st);
 *	for (i = 0; i < st->n_tensors; i++) ... st->tensors[i] ...
 *	nwc_st_free(st);
 *
 * Every check that fails logs one line naming the file and, where there is
 * one, the tensor, and returns -NWC_EFORMAT.  Thread safety: a parsed
 * struct nwc_st is immutable; parsing uses no shared state.
 */
#ifndef NWC_SAFETENSORS_H
#define NWC_SAFETENSORS_H

#include "codec/common/dtype.h"

#define NWC_ST_HEADER_MAX (100u << 20)	/* the safetensors library's limit */

struct nwc_st_tensor {
	char *name;			/* NUL-terminated, owned */
	size_t name_len;
	unsigned dtype;			/* NWC_DTYPE_* */
	unsigned ndim;			/* <= NWC_MAX_DIMS */
	uint64_t shape[NWC_MAX_DIMS];
	uint64_t begin;			/* offset in the data buffer */
	uint64_t end;			/* begin + nelem * dtype size */
};

struct nwc_st {
	uint64_t header_len;		/* N: JSON bytes after the length word */
	uint64_t data_off;		/* 8 + N: where the data buffer starts */
	uint64_t data_len;		/* file_size - data_off */
	size_t n_tensors;
	struct nwc_st_tensor *tensors;	/* sorted by begin, then by name */
};

/*
 * nwc_st_header_len() - read the 8-byte length word from @buf (@len >= 8)
 * and check it against @file_size and NWC_ST_HEADER_MAX.  Sets *out to N.
 * Returns 0 or -NWC_EFORMAT (logged with @path).
 */
int nwc_st_header_len(const void *buf, size_t len, uint64_t file_size,
		      const char *path, uint64_t *out);

/*
 * nwc_st_parse() - validate and parse a header.  @buf holds at least the
 * first 8 + N bytes of the file (@len bytes); @file_size is the size of the
 * whole file.  Checks: N within limits and the file; JSON well-formed, an
 * object, no duplicate keys; each entry an object with exactly dtype, shape
 * and data_offsets; known dtype; shape of <= NWC_MAX_DIMS non-negative
 * integers; element count * dtype size == end - begin without overflow;
 * begin <= end <= data_len; no two tensors overlap.  Gaps between tensors
 * are allowed (mkfs stores them verbatim).  "__metadata__" must be an
 * object of strings.  Returns 0 and sets *out, or -NWC_EFORMAT / -ENOMEM.
 */
int nwc_st_parse(const void *buf, size_t len, uint64_t file_size,
		 const char *path, struct nwc_st **out);

/*
 * nwc_st_open() - open the regular file @path read-only and parse its
 * header (nwc_st_read_fd).  On success *fd is the open file (the caller
 * closes it) and *out the header; on failure nothing is left open, the
 * error is logged with the path, and the return is -errno, -NWC_EFORMAT
 * (not a regular file, malformed header) or -ENOMEM.
 */
int nwc_st_open(const char *path, int *fd, struct nwc_st **out);

/*
 * nwc_st_read_fd() - read the header of the safetensors file open on @fd
 * (@file_size bytes; @path names it in messages) and parse it as
 * nwc_st_parse() does.  Read errors are logged and returned as -errno;
 * a malformed file gives -NWC_EFORMAT.
 */
int nwc_st_read_fd(int fd, uint64_t file_size, const char *path,
		   struct nwc_st **out);

void nwc_st_free(struct nwc_st *st);

#endif /* NWC_SAFETENSORS_H */
