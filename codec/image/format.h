/* SPDX-License-Identifier: MIT */
/*
 * format.h - the nwc image format, version 1.  This comment is the normative
 * specification; man/nwc.5 is its user-facing summary.
 *
 * An image is one file holding a read-only directory tree.  All integers are
 * little-endian and read from byte buffers with nwc_get_le*() (never by
 * casting a struct onto the bytes).  Every checksum is XXH3-64 with seed 0.
 * Every offset is absolute (from the start of the image) unless said
 * otherwise.
 *
 * Layout, in file order:
 *
 *   [0, 4096)             superblock (NWC_SB_SIZE bytes) and zero padding
 *   [data_off, +data_len) block data: stored payloads, back to back
 *   [.., sections)        metadata sections, each 8-byte aligned
 *   [dir_off, +dir_len)   section directory
 *
 * The writer emits the superblock last, so an interrupted mkfs leaves a file
 * that fails validation rather than one that looks whole.
 *
 * 1. Superblock (NWC_SB_SIZE = 128 bytes at offset 0)
 *
 *     0  u8[8]  magic        "NWCFSIMG"
 *     8  u32    version      NWC_VERSION; bumped only on incompatible change
 *    12  u32    sb_size      NWC_SB_SIZE
 *    16  u64    compat       feature bits a reader may ignore
 *    24  u64    incompat     feature bits a reader must know, or refuse
 *    32  u64    image_size   size of the whole file in bytes
 *    40  u64    data_off     start of block data (NWC_DATA_ALIGN aligned)
 *    48  u64    data_len     length of block data
 *    56  u64    dir_off      section directory
 *    64  u32    dir_count    number of section entries
 *    68  u32    block_log2   nominal block size (log2) used by mkfs; advisory
 *    72  u64    dir_xxh      checksum of the directory bytes
 *    80  u64    created_by   NWC_VERSION_CODE of the writer; advisory
 *    88  u8[32] reserved     zero
 *   120  u64    sb_xxh       checksum of bytes [0, 120)
 *
 * 2. Section directory: dir_count entries of NWC_SECT_SIZE = 32 bytes
 *
 *     0  u32  type      NWC_SECT_*
 *     4  u32  version   layout version of that section (1 for all today)
 *     8  u64  off       start (8-byte aligned, outside the superblock and
 *                       block data, inside image_size)
 *    16  u64  len       length in bytes
 *    24  u64  xxh       checksum of the section bytes
 *
 *    Types 1 to 6 (STRINGS, INODES, EXTENTS, BLOCKS, TENSORS, PARAMS) are
 *    required and appear exactly once each.  Type 7 (MODELS) appears exactly
 *    once when the superblock sets NWC_INCOMPAT_NWC and never otherwise.
 *    Types >= NWC_SECT_OPTIONAL may be skipped by readers that do not know
 *    them; any other unknown type is an error.  Sections must not overlap
 *    each other, the superblock, the block data or the directory.
 *
 * 3. STRINGS: raw bytes referenced by (offset, length) pairs from the other
 *    tables: names, symlink targets, tensor names.  No terminators.
 *
 * 4. INODES: n_inodes records of NWC_INODE_SIZE = 48 bytes
 *
 *     0  u32  mode       S_IFDIR, S_IFREG or S_IFLNK plus permission bits
 *     4  u32  parent     inode index of the parent (root: 0)
 *     8  u32  name_off   name in STRINGS (root: empty)
 *    12  u32  name_len   1..255 bytes, no '/' or NUL, not "." or ".."
 *    16  i64  mtime      seconds since the epoch
 *    24  u32  mtime_ns   nanoseconds, < 1e9
 *    28  u32  flags      NWC_INODE_F_*
 *    32  u64  size       regular file: bytes; symlink: target length;
 *                        directory: 0
 *    40  u32  first      directory: first child inode; regular file: first
 *                        extent; symlink: target offset in STRINGS
 *    44  u32  count      directory: number of children; regular file:
 *                        number of extents; symlink: target length
 *
 *    Inode 0 is the root directory.  Inodes are numbered breadth first: the
 *    children of each directory are the consecutive range [first,
 *    first+count), sorted by name (bytewise, shorter first on a tie of the
 *    common prefix), and the ranges of successive directories follow each
 *    other from inode 1 to the last inode, so every inode but the root has
 *    exactly one parent and lookup is a binary search.
 *
 * 5. EXTENTS: records of NWC_EXTENT_SIZE = 48 bytes.  A regular file is the
 *    concatenation of its extents [first, first+count): the first starts at
 *    file offset 0, each next one where the previous ends, the last ends at
 *    the file size; no extent is empty.
 *
 *     0  u64  file_off     offset of the extent in the served file
 *     8  u64  len          decoded length in bytes
 *    16  u32  first_block  first entry in BLOCKS
 *    20  u32  nblocks      = ceil(len / block_len)
 *    24  u32  block_len    decoded bytes per block (the last block holds the
 *                          remainder); a multiple of the codec's unit
 *    28  u16  codec        NWC_CODEC_*
 *    30  u16  flags        zero
 *    32  u32  codec_arg    codec parameter, see section 8
 *    36  u32  tensor       index into TENSORS, or NWC_NO_TENSOR
 *    40  u64  reserved     zero
 *
 * 6. BLOCKS: records of NWC_BLOCK_SIZE = 24 bytes
 *
 *     0  u64  off         stored payload, inside the block data region
 *     8  u32  stored_len  payload bytes
 *    12  u32  raw_len     decoded bytes; must equal what the extent geometry
 *                         gives for that block, and <= NWC_BLOCK_MAX
 *    16  u64  xxh         checksum of the stored payload
 *
 *    The checksum covers stored bytes, which are bit-exact on every machine;
 *    lossless codecs are also exact after decoding, lossy ones are not
 *    required to be bit-exact across machines.
 *
 * 7. TENSORS: one record of NWC_TENSOR_SIZE = 64 bytes per tensor of every
 *    served .safetensors file, in file order then data order.
 *
 *     0  u32  inode       the regular file holding the tensor
 *     4  u32  name_off    tensor name in STRINGS
 *     8  u32  name_len
 *    12  u16  dtype       NWC_DTYPE_*
 *    14  u16  ndim        0..NWC_MAX_DIMS
 *    16  u64  data_off    offset of the tensor data in the served file
 *    24  u64  data_len    = product(shape) * dtype size
 *    32  u32  shape_off   offset in PARAMS of ndim u64 dimensions (8-aligned)
 *    36  u16  codec       codec of the tensor's data extent
 *    38  u16  reserved    zero
 *    40  u64  side_off    per-tensor codec side data inside the block data
 *                         region; 0 when there is none
 *    48  u32  side_len    bytes of side data; 0 when there is none
 *    52  u32  reserved    zero
 *    56  u64  side_xxh    checksum of the side data; 0 when there is none
 *
 *    A tensor with data_len > 0 has exactly one extent whose tensor field
 *    names it, and that extent spans [data_off, data_off + data_len).  The
 *    served file's bytes are the original file's bytes: its header (8-byte
 *    length and JSON) is stored verbatim in an ordinary extent.  Only a
 *    tensor of codec NWC_CODEC_NWC has side data (its side record, section
 *    8); for every other tensor the three side fields are zero.
 *
 * 8. Codecs (extent field codec, argument codec_arg).  The stored payload of
 *    one block is decoded on its own.  The reader and the writer reach a
 *    codec only through its tables (codec/image/iface.h), which check what
 *    this section says of it; codec/registry/ lists the codecs below.
 *
 *    NWC_CODEC_RAW (0): payload is the decoded bytes; stored_len = raw_len.
 *      codec_arg is 0.
 *
 *    NWC_CODEC_ZSTD (1): byte planes, each zstd-compressed or stored.
 *      codec_arg bits 0-7: element size E in bytes (1, 2, 4 or 8);
 *      bit 8: NWC_ZSTD_ARG_FLOAT, rotate each element left by one bit before
 *      splitting, so the sign moves to bit 0 and the exponent fills the top
 *      byte (E must be 2 or 4 or 8).  raw_len is a multiple of E.  The block
 *      is E planes, plane p holding byte p of every element (little-endian
 *      byte order; for a float, plane E-1 holds the exponent's top bits).
 *      Payload: E u32 words, then the planes in order.  Word p: bits 0-29 the
 *      stored length of plane p; bit 31 (NWC_PLANE_STORED) set when the
 *      plane is stored verbatim (its length is then raw_len / E); bit 30
 *      (NWC_PLANE_RANS) set when it is an order-0 rANS stream (codec/rans.h
 *      defines that stream); neither set when it is one zstd frame whose
 *      content size is raw_len / E.  Both set is invalid.  E = 1 is plain
 *      zstd (or rANS, or verbatim).
 *
 *    NWC_CODEC_PLANES (2): as NWC_CODEC_ZSTD, argument and payload alike,
 *      except that an NWC_PLANE_RANS plane is a rANS stream of the wide
 *      layout (32 states, codec/rans.h), which vector units decode several
 *      times faster.  Only an image that sets NWC_INCOMPAT_PLANES has such
 *      extents; mkfs.nwc writes them for every compressed lossless block.
 *
 *    NWC_CODEC_NWC (16): a lossy weight matrix coded by the neural weight
 *      codec; codec/nwc/nwctensor.h defines the side record and the band
 *      payloads.  Only an image that sets NWC_INCOMPAT_NWC has such extents.
 *      An NWC extent is the data extent of a tensor (its tensor field is
 *      set) and so covers exactly the tensor's data.  codec_arg is 0.  The
 *      tensor has dtype F32, F16 or BF16 (element size E), ndim 2 and shape
 *      [m, n]; its side data is one side record giving the same m and n,
 *      the band height R (a multiple of 16) and a model index below the
 *      MODELS count, whose model has more quality levels than any column
 *      level and the tables the record's quantizer needs.  Block b of the
 *      extent is row band b, rows [b R, min(m, (b + 1) R)): the band height
 *      lives in the extent's block_len, which must be R * n * E (<=
 *      NWC_BLOCK_MAX), so that the usual geometry gives nblocks = the
 *      number of bands and raw_len = rows(b) * n * E.  A block's payload is
 *      the band's coded stream and decodes to the band's rows in the
 *      tensor's dtype.  Unlike the lossless codecs, decoded values are
 *      deterministic for a given machine type but not required to be
 *      bit-exact across machines; the stored bytes are.
 *
 * 9. PARAMS: 8-byte aligned bytes referenced by offset from other tables
 *    (tensor shapes today).
 *
 * 10. MODELS (type 7): the codec models of the NWC tensors, each the bytes
 *    of one .nwcm file (codec/nwc/nwcmodel.h), which carries its own checksum
 *    in its last 8 bytes.  The model index in a side record is the index
 *    of an entry here.
 *
 *     0  u32  count      number of models, 1..NWC_MODELS_MAX
 *     4  u32  reserved   zero
 *     8  count entries of NWC_MODEL_ENT_SIZE = 16 bytes:
 *        0  u64  off     start of the model's bytes, relative to the
 *                        section (8-byte aligned)
 *        8  u64  len     length of the model's bytes (> 0)
 *
 *    The layout is canonical: model 0 starts at the first 8-byte aligned
 *    offset after the entries, each next model at the first 8-byte aligned
 *    offset after the end of the previous one, the gaps are zero bytes and
 *    the section ends where the last model ends.  Every model must parse
 *    (nwc_model_from_buf), its own checksum included.
 *
 * 11. INFO (type NWC_SECT_INFO, optional, version 1): how the image was
 *    made, for people (nwc info, the mount's extended attributes).  At most
 *    one; images without it (older ones) lack only that.
 *
 *     0  u64  created    Unix seconds (mkfs.nwc: $SOURCE_DATE_EPOCH when
 *                        set, so that images can be reproduced)
 *     8  u32  count      entries that follow, 0..n_tensors
 *    12  u32  text_len   bytes of text after the entries
 *    16  count entries of NWC_INFO_ENT_SIZE = 24 bytes, by ascending tensor:
 *        0  u32  tensor  index into TENSORS: a tensor the image stores lossily
 *        4  u32  reserved zero
 *        8  u64  sig     sum of the source's w^2 (IEEE double bits)
 *       16  u64  err     sum of (w - served)^2 (IEEE double bits; finite,
 *                        >= 0, as is sig)
 *    then text_len bytes: lines "key=value\n" without NUL bytes (mkfs.nwc
 *    writes tool, command and options); the section ends there.
 *
 * Validation (nwc_image_open) checks all of the above before any read: the
 * superblock checksum, size and feature bits, every section's placement and
 * checksum, every name and string reference, the tree shape, every extent's
 * coverage and block geometry, every block's placement, every tensor's extent
 * and shape, every codec model, and every NWC tensor's side record (read
 * from the block data region, checked against side_xxh, parsed and matched
 * to its shape, extent and model).  After a successful open, block payloads
 * are the only untrusted bytes left; each is checked against its checksum
 * when read.
 */
#ifndef NWC_FORMAT_H
#define NWC_FORMAT_H

#include "codec/common/base.h"
#include "codec/common/dtype.h"

#define NWC_MAGIC "NWCFSIMG"
#define NWC_MAGIC_LEN 8
#define NWC_VERSION 1u
#define NWC_VERSION_CODE 0x000100u	/* 0.1.0, recorded as created_by */

#define NWC_SB_SIZE 128u
#define NWC_DATA_ALIGN 4096u
#define NWC_SECT_SIZE 32u
#define NWC_INODE_SIZE 48u
#define NWC_EXTENT_SIZE 48u
#define NWC_BLOCK_SIZE 24u
#define NWC_TENSOR_SIZE 64u

/* Superblock field offsets. */
#define NWC_SB_MAGIC 0
#define NWC_SB_VERSION 8
#define NWC_SB_SBSIZE 12
#define NWC_SB_COMPAT 16
#define NWC_SB_INCOMPAT 24
#define NWC_SB_IMAGE_SIZE 32
#define NWC_SB_DATA_OFF 40
#define NWC_SB_DATA_LEN 48
#define NWC_SB_DIR_OFF 56
#define NWC_SB_DIR_COUNT 64
#define NWC_SB_BLOCK_LOG2 68
#define NWC_SB_DIR_XXH 72
#define NWC_SB_CREATED_BY 80
#define NWC_SB_XXH 120

/*
 * The fields of each fixed-size record, in record order, as X(bits, field,
 * offset): the one place their offsets are written.  codec/image/record.c
 * expands them into the encode and decode functions of record.h.
 */
#define NWC_SB_FIELDS(X)						\
	X(32, version, NWC_SB_VERSION)					\
	X(32, sb_size, NWC_SB_SBSIZE)					\
	X(64, compat, NWC_SB_COMPAT)					\
	X(64, incompat, NWC_SB_INCOMPAT)				\
	X(64, image_size, NWC_SB_IMAGE_SIZE)				\
	X(64, data_off, NWC_SB_DATA_OFF)				\
	X(64, data_len, NWC_SB_DATA_LEN)				\
	X(64, dir_off, NWC_SB_DIR_OFF)					\
	X(32, dir_count, NWC_SB_DIR_COUNT)				\
	X(32, block_log2, NWC_SB_BLOCK_LOG2)				\
	X(64, dir_xxh, NWC_SB_DIR_XXH)					\
	X(64, created_by, NWC_SB_CREATED_BY)

#define NWC_DIRENT_FIELDS(X)						\
	X(32, type, 0) X(32, version, 4) X(64, off, 8) X(64, len, 16)	\
	X(64, xxh, 24)

#define NWC_INODE_FIELDS(X)						\
	X(32, mode, 0) X(32, parent, 4) X(32, name_off, 8)		\
	X(32, name_len, 12) X(64, mtime, 16) X(32, mtime_ns, 24)	\
	X(32, flags, 28) X(64, size, 32) X(32, first, 40)		\
	X(32, count, 44)

#define NWC_EXTENT_FIELDS(X)						\
	X(64, file_off, 0) X(64, len, 8) X(32, first_block, 16)	\
	X(32, nblocks, 20) X(32, block_len, 24) X(16, codec, 28)	\
	X(16, flags, 30) X(32, codec_arg, 32) X(32, tensor, 36)	\
	X(64, reserved, 40)

#define NWC_BLOCK_FIELDS(X)						\
	X(64, off, 0) X(32, stored_len, 8) X(32, raw_len, 12)		\
	X(64, xxh, 16)

#define NWC_TENSOR_FIELDS(X)						\
	X(32, inode, 0) X(32, name_off, 4) X(32, name_len, 8)		\
	X(16, dtype, 12) X(16, ndim, 14) X(64, data_off, 16)		\
	X(64, data_len, 24) X(32, shape_off, 32) X(16, codec, 36)	\
	X(16, reserved16, 38) X(64, side_off, 40) X(32, side_len, 48)	\
	X(32, reserved32, 52) X(64, side_xxh, 56)

#define NWC_INFO_HDR_FIELDS(X)						\
	X(64, created, 0) X(32, count, 8) X(32, text_len, 12)

#define NWC_INFO_ENT_FIELDS(X)						\
	X(32, tensor, 0) X(32, reserved, 4) X(64, sig, 8) X(64, err, 16)

/* Feature bits. */
#define NWC_INCOMPAT_NWC (1ull << 0)	/* MODELS section, NWC_CODEC_NWC */
#define NWC_INCOMPAT_PLANES (1ull << 1)	/* NWC_CODEC_PLANES extents */

/* Section types. */
enum nwc_sect_type {
	NWC_SECT_STRINGS = 1,
	NWC_SECT_INODES = 2,
	NWC_SECT_EXTENTS = 3,
	NWC_SECT_BLOCKS = 4,
	NWC_SECT_TENSORS = 5,
	NWC_SECT_PARAMS = 6,
	NWC_SECT_MODELS = 7,		/* embedded codec models (lossy images) */
	NWC_SECT_LAST = NWC_SECT_MODELS,	/* highest type of this version */
	NWC_SECT_OPTIONAL = 0x8000,	/* types from here on may be skipped */
	NWC_SECT_INFO = NWC_SECT_OPTIONAL,	/* how it was made */
};
#define NWC_SECT_MAX_COUNT 64u

/* INFO section. */
#define NWC_INFO_HDR_SIZE 16u
#define NWC_INFO_ENT_SIZE 24u
#define NWC_INFO_TEXT_MAX (1u << 20)

/* MODELS section. */
#define NWC_MODELS_HDR 8u
#define NWC_MODEL_ENT_SIZE 16u
#define NWC_MODELS_MAX 64u	/* each parsed model holds ~4 MiB of tables */

/* Inode flags. */
#define NWC_INODE_F_SAFETENSORS 1u	/* regular file parsed as safetensors */

/* Codecs. */
enum nwc_codec_id {
	NWC_CODEC_RAW = 0,
	NWC_CODEC_ZSTD = 1,
	NWC_CODEC_PLANES = 2,
	NWC_CODEC_NWC = 16,
};
#define NWC_ZSTD_ARG_ESIZE_MASK 0xffu
#define NWC_ZSTD_ARG_FLOAT (1u << 8)
#define NWC_PLANE_STORED (1u << 31)
#define NWC_PLANE_RANS (1u << 30)

#define NWC_NO_TENSOR 0xffffffffu
#define NWC_NAME_MAX 255u
#define NWC_BLOCK_MAX (64u << 20)	/* largest decoded block */
#define NWC_BLOCK_LOG2_MIN 12u
#define NWC_BLOCK_LOG2_MAX 26u

/* A valid entry name: 1..255 bytes, no '/' or NUL, not "." or "..". */
static inline bool nwc_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > NWC_NAME_MAX)
		return false;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return false;
	return !((len == 1 && name[0] == '.') ||
		 (len == 2 && name[0] == '.' && name[1] == '.'));
}

/* The order of names in a directory: bytewise, a prefix sorts first. */
static inline int nwc_name_cmp(const char *a, size_t alen, const char *b,
			       size_t blen)
{
	int c = memcmp(a, b, NWC_MIN(alen, blen));

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

#endif /* NWC_FORMAT_H */
