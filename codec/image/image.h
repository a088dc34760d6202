/* SPDX-License-Identifier: MIT */
/*
 * image.h - read side of the nwc image format (format.h gives the layout).
 *
 *	struct nwc_image *img;
 *	ret = nwc_image_open("model.nwc", nwc_codecs_read(), &img);
 *	ret = nwc_image_resolve(img, "/model.safetensors", &ino);
 *	ret = nwc_image_load_block(img, dctx, ext, j, buf, len);
 *	nwc_image_close(img);
 *
 * nwc_image_open() reads all metadata into memory and validates every
 * structure and cross reference, so the accessors below cannot fail on a
 * valid index.  That includes what belongs to the codecs of @codecs
 * (iface.h): their sections and the side records of their tensors, parsed
 * once at open by their decode tables.  Block payloads stay on disk;
 * nwc_image_load_block() checks each against its checksum before decoding
 * it.
 *
 * Validation boundary: nwc_image_open() and nwc_image_open_fd() are the
 * only functions here that check; every accessor after them trusts the
 * validated tables and assert()s its index, and nwc_image_load_block()
 * checks only the payload it reads.
 *
 * Thread safety: a struct nwc_image is immutable after open; share it
 * between threads freely.  Reads use pread(2) only.
 */
#ifndef NWC_IMAGE_H
#define NWC_IMAGE_H

#include "codec/image/format.h"
#include "codec/image/iface.h"

struct nwc_image;

struct nwc_inode {
	uint32_t mode;		/* file type and permission bits */
	uint32_t parent;	/* parent inode (root: 0) */
	const char *name;	/* not NUL-terminated; name_len bytes */
	uint32_t name_len;
	uint32_t flags;		/* NWC_INODE_F_* */
	int64_t mtime;
	uint32_t mtime_ns;
	uint64_t size;		/* file bytes, or symlink target length */
	uint32_t first;		/* first child / extent (see format.h) */
	uint32_t count;		/* children / extents */
	const char *target;	/* symlink target (not NUL-terminated) or NULL */
};

struct nwc_extent {
	uint64_t file_off;	/* first byte of the extent in its file */
	uint64_t len;		/* decoded bytes */
	uint32_t first_block;	/* first block index */
	uint32_t nblocks;
	uint32_t block_len;	/* decoded bytes per block but the last */
	uint16_t codec;		/* NWC_CODEC_* */
	uint32_t codec_arg;
	uint32_t tensor;	/* tensor index or NWC_NO_TENSOR */
};

struct nwc_block {
	uint64_t off;		/* payload offset in the image */
	uint32_t stored_len;
	uint32_t raw_len;
	uint64_t xxh;
};

struct nwc_tensor {
	uint32_t inode;
	const char *name;	/* not NUL-terminated */
	uint32_t name_len;
	uint16_t dtype;
	uint16_t ndim;
	uint64_t shape[NWC_MAX_DIMS];
	uint64_t data_off;	/* in the served file */
	uint64_t data_len;
	uint16_t codec;
	uint32_t extent;	/* the extent holding the data, or UINT32_MAX */
	uint64_t side_off;	/* side data in the image, or 0 */
	uint32_t side_len;	/* bytes of side data, or 0 */
	const void *side;	/* tensor codecs: the parsed side record */
};

struct nwc_image_info {
	uint64_t image_size;
	uint64_t data_len;	/* bytes of stored payloads */
	uint64_t compat;
	uint64_t incompat;
	uint32_t block_log2;
	uint32_t n_inodes;
	uint32_t n_extents;
	uint32_t n_blocks;
	uint32_t n_tensors;
	uint64_t total_size;	/* sum of regular file sizes */
};

/*
 * nwc_image_made() - how the image was made, from its INFO section
 * (format.h 11): creation time, and text of "key=value" lines (not
 * terminated; @len bytes).  Returns 0, or -ENOENT for an image without
 * one (made before it existed).
 */
int nwc_image_made(const struct nwc_image *img, int64_t *created,
		   const char **text, size_t *len);

/*
 * nwc_image_tensor_error() - for tensor @t, stored lossily, the sums of
 * the source's squared weights and of the squared error of what the image
 * serves (SQNR = 10 log10(sig / err)).  Returns 0, or -ENOENT when the
 * image does not say (an exact tensor, or no INFO section).
 */
int nwc_image_tensor_error(const struct nwc_image *img, uint32_t t,
			   double *sig, double *err);

/*
 * nwc_image_open() - open and validate an image.  Returns 0 and sets *out,
 * or a negative errno: from open(2)/pread(2); -NWC_ECORRUPT when a structure
 * is invalid; -NWC_ECHECKSUM when a checksum does not match; -NWC_EFEATURE
 * when the image needs a feature or codec that @codecs lacks.  @codecs
 * must outlive the image.  Each failure
 * logs one line naming @path and the problem.
 */
int nwc_image_open(const char *path, const struct nwc_codec_set *codecs,
		   struct nwc_image **out);

/* As nwc_image_open(), on an open descriptor that the image takes over. */
int nwc_image_open_fd(int fd, const char *path,
		      const struct nwc_codec_set *codecs, struct nwc_image **out);

/* Release everything; accepts NULL. */
void nwc_image_close(struct nwc_image *img);

const char *nwc_image_path(const struct nwc_image *img);
void nwc_image_get_info(const struct nwc_image *img,
			struct nwc_image_info *out);

/* Accessors; the index must be below the count in nwc_image_info. */
const struct nwc_inode *nwc_image_inode(const struct nwc_image *img,
					uint32_t ino);
const struct nwc_extent *nwc_image_extent(const struct nwc_image *img,
					  uint32_t idx);
const struct nwc_block *nwc_image_block(const struct nwc_image *img,
					uint32_t idx);
const struct nwc_tensor *nwc_image_tensor(const struct nwc_image *img,
					  uint32_t idx);

/* The per-image state of codec @codec (iface.h, open()), or NULL. */
const void *nwc_image_codec_state(const struct nwc_image *img, unsigned codec);

/* Name of @codec with @arg (and a tensor's parsed @side, or NULL) for
 * listings, written to @buf: "zstd/planes2f", "nwc/m3", "codec9/0x1". */
const char *nwc_image_codec_name(const struct nwc_image *img, unsigned codec,
				 uint32_t arg, const void *side, char *buf,
				 size_t len);

/*
 * Whether extent @ext is coded lossily (its codec serves an approximation
 * of the source), and whether any extent of file @ino is.
 */
bool nwc_image_extent_lossy(const struct nwc_image *img, uint32_t ext);
/* The short name of extent @ext's codec ("zstd", "nwc"). */
const char *nwc_image_extent_codec(const struct nwc_image *img, uint32_t ext);
bool nwc_image_file_lossy(const struct nwc_image *img, uint32_t ino);

/*
 * Stored bytes of tensor @t (its data extent's payloads and its side
 * data) and of regular file @ino (its extents' payloads and its tensors'
 * side data; 0 for anything else).
 */
uint64_t nwc_image_tensor_stored(const struct nwc_image *img, uint32_t t);
uint64_t nwc_image_file_stored(const struct nwc_image *img, uint32_t ino);

/* The path of inode @ino ("/a/b", not escaped), malloc'd, or NULL. */
char *nwc_image_inode_path(const struct nwc_image *img, uint32_t ino);

/* The distinct codecs of file @ino's extents ("zstd+nwc"; "-" for none)
 * into @buf of @cap >= 2 bytes. */
void nwc_image_file_codecs(const struct nwc_image *img, uint32_t ino,
			   char *buf, size_t cap);

/* The value of line "@key=..." of the INFO text (@len bytes, not
 * terminated), or NULL. */
const char *nwc_image_made_value(const struct nwc_image *img,
				 const char *key, size_t *len);

/* What file @ino's lossy tensors come to (nwc_image_file_fidelity). */
struct nwc_fidelity {
	bool lossy;		/* some extent of the file is lossy */
	uint32_t tensors;	/* its lossy tensors */
	uint64_t weights;	/* their elements */
	uint64_t stored;	/* their stored bytes, side data included */
	uint32_t with_err;	/* of them, those the INFO section covers */
	double sig, err;	/* and the sums it gives for them */
};
void nwc_image_file_fidelity(const struct nwc_image *img, uint32_t ino,
			     struct nwc_fidelity *out);

/* What the codecs say of their per-image state ("model m0: ..."). */
void nwc_image_print_codecs(const struct nwc_image *img, FILE *out);

/* Tensors of file @ino: the range [*first, *first + *count). */
void nwc_image_file_tensors(const struct nwc_image *img, uint32_t ino,
			    uint32_t *first, uint32_t *count);

/* Look up @name (@len bytes) in directory @dir: 0 and *ino, or -ENOENT /
 * -ENOTDIR. */
int nwc_image_lookup(const struct nwc_image *img, uint32_t dir,
		     const char *name, size_t len, uint32_t *ino);

/* Resolve an absolute or root-relative path ("/a/b", "a/b", "/"); symlinks
 * are not followed.  Returns 0 or -ENOENT / -ENOTDIR. */
int nwc_image_resolve(const struct nwc_image *img, const char *path,
		      uint32_t *ino);

/*
 * nwc_image_find_extent() - the extent of regular file @ino that holds byte
 * @off (< size).  Returns its index.
 */
uint32_t nwc_image_find_extent(const struct nwc_image *img, uint32_t ino,
			       uint64_t off);

/* Decoded length of block @j of extent @e. */
static inline uint32_t nwc_extent_block_len(const struct nwc_extent *e,
					    uint32_t j)
{
	uint64_t start = (uint64_t)j * e->block_len;

	return (uint32_t)NWC_MIN((uint64_t)e->block_len, e->len - start);
}

/*
 * nwc_image_load_block() - read block @j of extent @ext, verify its checksum
 * and decode it into @dst, which holds exactly nwc_extent_block_len() bytes
 * (@len), through the extent's codec (for a tensor codec, with the
 * tensor's side record and the codec's per-image state).  @dctx is the
 * caller's per-thread decode context.  Returns 0, -NWC_ECHECKSUM,
 * -NWC_ECORRUPT (payload does not decode), -ENOMEM or an I/O error;
 * failures are logged once per call with the image path and block index.
 */
int nwc_image_load_block(const struct nwc_image *img, struct nwc_dctx *dctx,
			 uint32_t ext, uint32_t j, void *dst, size_t len);

/* Verify block @idx's checksum only (no decode).  Returns 0 or -errno. */
int nwc_image_check_block(const struct nwc_image *img, struct nwc_dctx *dctx,
			  uint32_t idx);

/* Total stored bytes of the blocks of extent @ext. */
uint64_t nwc_image_extent_stored(const struct nwc_image *img, uint32_t ext);

#endif /* NWC_IMAGE_H */
