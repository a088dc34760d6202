/* SPDX-License-Identifier: MIT */
/*
 * image.c - open an image, validate every structure (format.h, "Validation")
 * and serve lookups and verified block reads.
 *
 * Open reads the superblock, the section directory and every section into
 * memory, checking each checksum, then parses the tables into native arrays
 * and checks each cross reference once.  What belongs to a codec (its
 * section, the side records of its tensors, its extents' arguments) is
 * checked there too, through the codec's decode table (iface.h), so a
 * decode only meets validated metadata.  After that the accessors trust the
 * arrays; only block payloads are read later, each verified when read.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/hash.h"
#include "codec/image/iface.h"
#include "codec/image/image.h"
#include "codec/image/record.h"
#include "codec/common/io.h"
#include "codec/common/log.h"

struct section {
	uint64_t off;
	uint64_t len;
	uint8_t *data;		/* loaded bytes */
	bool present;
};

struct nwc_image {
	char *path;
	int fd;
	uint64_t image_size;
	uint64_t data_off;
	uint64_t data_len;
	uint64_t compat;
	uint64_t incompat;
	uint32_t block_log2;
	struct section sect[NWC_SECT_LAST + 1];	/* by type; [0] unused */
	uint32_t n_inodes, n_extents, n_blocks, n_tensors;
	struct nwc_inode *inodes;
	struct nwc_extent *extents;
	struct nwc_block *blocks;
	struct nwc_tensor *tensors;
	const struct nwc_codec_set *codecs;
	void **cstate;			/* per decoder of @codecs: its state */
	uint8_t *eslot;		/* per extent: its decoder's index in @codecs */
	uint32_t *tfirst;		/* per inode: first tensor */
	uint32_t *tcount;		/* per inode: number of tensors */
	atomic_uchar *reported;		/* per block: damage already logged */
	uint64_t total_size;
	struct section info;		/* INFO, version 1, if present */
	int64_t created;		/* from INFO */
	const char *info_text;		/* into info.data */
	size_t info_len;
	double *tsig, *terr;		/* per tensor from INFO, or NAN */
};

#define corrupt(...) (nwc_err(__VA_ARGS__), -NWC_ECORRUPT)

static int read_super(struct nwc_image *img, uint64_t *dir_off,
		      uint32_t *dir_count, uint64_t *dir_xxh)
{
	uint8_t sb[NWC_SB_SIZE];
	struct nwc_rec_super r;
	uint64_t unknown;
	int ret;

	if (img->image_size < NWC_SB_SIZE)
		return corrupt("%s: too small to be an nwc image (%llu bytes)",
			       img->path, (unsigned long long)img->image_size);
	ret = nwc_pread_full(img->fd, sb, sizeof(sb), 0);
	if (ret) {
		nwc_err("%s: cannot read superblock: %s", img->path,
			nwc_strerror(ret));
		return ret;
	}
	if (memcmp(sb + NWC_SB_MAGIC, NWC_MAGIC, NWC_MAGIC_LEN))
		return corrupt("%s: not an nwc image (bad magic)", img->path);
	if (nwc_get_le64(sb + NWC_SB_XXH) != nwc_hash64(sb, NWC_SB_XXH)) {
		nwc_err("%s: superblock checksum mismatch", img->path);
		return -NWC_ECHECKSUM;
	}
	nwc_rec_super_decode(sb, &r);
	if (r.version != NWC_VERSION) {
		nwc_err("%s: image format version %u, this build reads version %u",
			img->path, r.version, NWC_VERSION);
		return -NWC_EFEATURE;
	}
	if (r.sb_size != NWC_SB_SIZE)
		return corrupt("%s: bad superblock size", img->path);
	img->compat = r.compat;
	img->incompat = r.incompat;
	unknown = img->incompat & ~nwc_codec_set_incompat(img->codecs);
	if (unknown) {
		nwc_err("%s: image needs unknown features (incompat bits 0x%llx)",
			img->path, (unsigned long long)unknown);
		return -NWC_EFEATURE;
	}
	if (r.image_size != img->image_size)
		return corrupt("%s: image is %llu bytes but its superblock says %llu (truncated or extended)",
			       img->path,
			       (unsigned long long)img->image_size,
			       (unsigned long long)r.image_size);
	img->data_off = r.data_off;
	img->data_len = r.data_len;
	if (img->data_off < NWC_SB_SIZE || img->data_off % NWC_DATA_ALIGN ||
	    !nwc_range_ok(img->data_off, img->data_len, img->image_size))
		return corrupt("%s: data region out of bounds", img->path);
	*dir_off = r.dir_off;
	*dir_count = r.dir_count;
	*dir_xxh = r.dir_xxh;
	img->block_log2 = r.block_log2;
	if (!r.reserved_zero)
		return corrupt("%s: reserved superblock bytes are not zero",
			       img->path);
	return 0;
}

/* True if [a, a+alen) and [b, b+blen) intersect (both non-empty). */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

/* The INFO section's bytes (format.h 11), checked by parse_info(). */
static int read_info(struct nwc_image *img, const struct nwc_rec_dirent *de)
{
	struct section *s = &img->info;

	if (s->present || de->off % 8 || de->len < NWC_INFO_HDR_SIZE ||
	    de->len > NWC_INFO_HDR_SIZE + NWC_INFO_TEXT_MAX +
			      (uint64_t)NWC_INFO_ENT_SIZE * UINT32_MAX)
		return corrupt("%s: INFO section duplicated, misaligned or of a bad size",
			       img->path);
	s->off = de->off;
	s->len = de->len;
	s->present = true;
	s->data = malloc(de->len);
	if (!s->data)
		return -ENOMEM;
	if (nwc_pread_full(img->fd, s->data, de->len, de->off))
		return corrupt("%s: cannot read the INFO section", img->path);
	if (nwc_hash64(s->data, de->len) != de->xxh) {
		nwc_err("%s: INFO section checksum mismatch", img->path);
		return -NWC_ECHECKSUM;
	}
	return 0;
}

static int read_sections(struct nwc_image *img, uint64_t dir_off,
			 uint32_t dir_count, uint64_t dir_xxh)
{
	uint64_t dir_len = (uint64_t)dir_count * NWC_SECT_SIZE;
	uint8_t *dir;
	int ret;

	if (dir_count == 0 || dir_count > NWC_SECT_MAX_COUNT ||
	    !nwc_range_ok(dir_off, dir_len, img->image_size) ||
	    overlaps(dir_off, dir_len, 0, NWC_SB_SIZE) ||
	    overlaps(dir_off, dir_len, img->data_off, img->data_len))
		return corrupt("%s: section directory out of bounds",
			       img->path);
	dir = malloc(dir_len);
	if (!dir)
		return -ENOMEM;
	ret = nwc_pread_full(img->fd, dir, dir_len, dir_off);
	if (ret)
		goto out_free;
	if (nwc_hash64(dir, dir_len) != dir_xxh) {
		nwc_err("%s: section directory checksum mismatch", img->path);
		ret = -NWC_ECHECKSUM;
		goto out_free;
	}
	for (uint32_t i = 0; i < dir_count; i++) {
		struct nwc_rec_dirent de;
		uint32_t type;
		uint64_t off, len;
		struct section *s;

		nwc_rec_dirent_decode(dir + (size_t)i * NWC_SECT_SIZE, &de);
		type = de.type;
		off = de.off;
		len = de.len;
		if (type >= NWC_SECT_OPTIONAL) {
			/* Maybe not used by this version, but in place. */
			if (!nwc_range_ok(off, len, img->image_size) ||
			    overlaps(off, len, 0, NWC_SB_SIZE) ||
			    overlaps(off, len, img->data_off, img->data_len) ||
			    overlaps(off, len, dir_off, dir_len)) {
				ret = corrupt("%s: section %u out of bounds",
					      img->path, type);
				goto out_free;
			}
			/* INFO of a later version: skipped like the rest. */
			if (type == NWC_SECT_INFO && de.version == 1) {
				ret = read_info(img, &de);
				if (ret)
					goto out_free;
			}
			continue;
		}
		if (type == 0 || type > NWC_SECT_LAST ||
		    (type > NWC_SECT_PARAMS &&
		     !nwc_codec_set_section(img->codecs, type))) {
			nwc_err("%s: unknown required section type %u",
				img->path, type);
			ret = -NWC_EFEATURE;
			goto out_free;
		}
		s = &img->sect[type];
		if (s->present || de.version != 1 || off % 8 ||
		    !nwc_range_ok(off, len, img->image_size) ||
		    overlaps(off, len, 0, NWC_SB_SIZE) ||
		    overlaps(off, len, img->data_off, img->data_len) ||
		    overlaps(off, len, dir_off, dir_len) ||
		    len > SIZE_MAX / 2) {
			ret = corrupt("%s: section %u is duplicated, of an unknown version or out of bounds",
				      img->path, type);
			goto out_free;
		}
		for (uint32_t t = 1; t <= NWC_SECT_LAST; t++) {
			if (img->sect[t].present &&
			    overlaps(off, len, img->sect[t].off,
				     img->sect[t].len)) {
				ret = corrupt("%s: sections %u and %u overlap",
					      img->path, t, type);
				goto out_free;
			}
		}
		s->off = off;
		s->len = len;
		s->present = true;
		s->data = malloc(len ? len : 1);
		if (!s->data) {
			ret = -ENOMEM;
			goto out_free;
		}
		ret = nwc_pread_full(img->fd, s->data, len, off);
		if (ret)
			goto out_free;
		if (nwc_hash64(s->data, len) != de.xxh) {
			nwc_err("%s: section %u checksum mismatch", img->path,
				type);
			ret = -NWC_ECHECKSUM;
			goto out_free;
		}
	}
	for (uint32_t t = 1; t <= NWC_SECT_PARAMS; t++) {
		if (!img->sect[t].present) {
			ret = corrupt("%s: required section %u missing",
				      img->path, t);
			goto out_free;
		}
	}
	for (unsigned i = 0; i < img->codecs->n_dec; i++) {
		const struct nwc_codec_dec *dec = img->codecs->dec[i];

		if (dec->section && img->sect[dec->section].present !=
					    !!(img->incompat & dec->incompat)) {
			ret = corrupt("%s: the %s feature bit and section %u go together",
				      img->path, dec->name, dec->section);
			break;
		}
	}
out_free:
	free(dir);
	return ret;
}

/*
 * Each codec's per-image state, from its section (read_sections() paired
 * sections and feature bits); section bytes are freed once parsed.
 */
static int open_codecs(struct nwc_image *img)
{
	img->cstate = calloc(img->codecs->n_dec ? img->codecs->n_dec : 1,
			     sizeof(*img->cstate));
	if (!img->cstate)
		return -ENOMEM;
	for (unsigned i = 0; i < img->codecs->n_dec; i++) {
		const struct nwc_codec_dec *dec = img->codecs->dec[i];
		struct section *s = dec->section ? &img->sect[dec->section]
						 : NULL;
		int ret;

		if (!dec->open)
			continue;
		if (s && !s->present)
			s = NULL;
		ret = dec->open(img->path, s ? s->data : NULL, s ? s->off : 0,
				s ? s->len : 0, &img->cstate[i]);
		if (ret)
			return ret;
		if (s) {
			free(s->data);
			s->data = NULL;
		}
	}
	return 0;
}

/* The index in @img's set of the decoder of codec @id, or -1. */
static int codec_slot(const struct nwc_image *img, unsigned id)
{
	for (unsigned i = 0; i < img->codecs->n_dec; i++)
		if (img->codecs->dec[i]->id == id)
			return (int)i;
	return -1;
}

/* The per-image state of decoder @dec of @img's set. */
static const void *codec_state(const struct nwc_image *img,
			       const struct nwc_codec_dec *dec)
{
	int i = codec_slot(img, dec->id);

	return i < 0 ? NULL : img->cstate[i];
}

static void codec_tensor(const struct nwc_tensor *t,
			 struct nwc_codec_tensor *ct)
{
	ct->dtype = t->dtype;
	ct->ndim = t->ndim;
	ct->shape = t->shape;
	ct->data_len = t->data_len;
}

/* Resolve a (offset, length) reference into STRINGS. */
static const char *string_ref(const struct nwc_image *img, uint32_t off,
			      uint32_t len)
{
	const struct section *s = &img->sect[NWC_SECT_STRINGS];

	if (!nwc_range_ok(off, len, s->len))
		return NULL;
	return (const char *)s->data + off;
}

static int parse_inodes(struct nwc_image *img)
{
	const struct section *s = &img->sect[NWC_SECT_INODES];
	uint32_t expect = 1;

	if (s->len % NWC_INODE_SIZE || s->len == 0 ||
	    s->len / NWC_INODE_SIZE > INT32_MAX)
		return corrupt("%s: bad inode table size", img->path);
	img->n_inodes = (uint32_t)(s->len / NWC_INODE_SIZE);
	img->inodes = calloc(img->n_inodes, sizeof(*img->inodes));
	if (!img->inodes)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->n_inodes; i++) {
		struct nwc_inode *n = &img->inodes[i];
		struct nwc_rec_inode r;

		nwc_rec_inode_decode(s->data + (size_t)i * NWC_INODE_SIZE, &r);
		n->mode = r.mode;
		n->parent = r.parent;
		n->name_len = r.name_len;
		n->mtime = r.mtime;
		n->mtime_ns = r.mtime_ns;
		n->flags = r.flags;
		n->size = r.size;
		n->first = r.first;
		n->count = r.count;
		n->name = string_ref(img, r.name_off, n->name_len);
		/* Inode i must lie in the child range of an earlier directory. */
		if (i && i >= expect)
			return corrupt("%s: inode %u: not reachable from the root",
				       img->path, i);
		if (!n->name || n->mtime_ns >= 1000000000u ||
		    (n->mode & ~(uint32_t)(S_IFMT | 07777)))
			return corrupt("%s: inode %u: bad name or attributes",
				       img->path, i);
		if (i == 0 ? (n->name_len || n->parent || !S_ISDIR(n->mode))
			   : !nwc_name_valid(n->name, n->name_len))
			return corrupt("%s: inode %u: bad name", img->path, i);
		if (S_ISDIR(n->mode)) {
			if (n->size || n->flags || n->first != expect ||
			    n->count > img->n_inodes - expect)
				return corrupt("%s: inode %u: bad directory",
					       img->path, i);
			expect += n->count;
		} else if (S_ISLNK(n->mode)) {
			n->target = string_ref(img, n->first, n->count);
			if (!n->target || n->count == 0 || n->count > 4096 ||
			    n->size != n->count || n->flags)
				return corrupt("%s: inode %u: bad symlink",
					       img->path, i);
		} else if (S_ISREG(n->mode)) {
			if (n->flags & ~NWC_INODE_F_SAFETENSORS)
				return corrupt("%s: inode %u: unknown flags",
					       img->path, i);
			img->total_size += n->size;
		} else {
			return corrupt("%s: inode %u: bad file type",
				       img->path, i);
		}
	}
	if (expect != img->n_inodes)
		return corrupt("%s: directory tree does not cover every inode",
			       img->path);
	/* Children: parent link back and strictly sorted names. */
	for (uint32_t i = 0; i < img->n_inodes; i++) {
		const struct nwc_inode *d = &img->inodes[i];

		if (!S_ISDIR(d->mode))
			continue;
		for (uint32_t k = 0; k < d->count; k++) {
			const struct nwc_inode *c = &img->inodes[d->first + k];

			if (c->parent != i)
				return corrupt("%s: inode %u: wrong parent",
					       img->path, d->first + k);
			if (k && nwc_name_cmp(c[-1].name, c[-1].name_len, c->name,
					  c->name_len) >= 0)
				return corrupt("%s: directory %u: names not sorted",
					       img->path, i);
		}
	}
	return 0;
}

static int parse_blocks(struct nwc_image *img)
{
	const struct section *s = &img->sect[NWC_SECT_BLOCKS];

	if (s->len % NWC_BLOCK_SIZE || s->len / NWC_BLOCK_SIZE > INT32_MAX)
		return corrupt("%s: bad block table size", img->path);
	img->n_blocks = (uint32_t)(s->len / NWC_BLOCK_SIZE);
	img->blocks = calloc(img->n_blocks ? img->n_blocks : 1,
			     sizeof(*img->blocks));
	img->reported = calloc(img->n_blocks ? img->n_blocks : 1, 1);
	if (!img->blocks || !img->reported)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->n_blocks; i++) {
		struct nwc_block *b = &img->blocks[i];
		struct nwc_rec_block r;

		nwc_rec_block_decode(s->data + (size_t)i * NWC_BLOCK_SIZE, &r);
		b->off = r.off;
		b->stored_len = r.stored_len;
		b->raw_len = r.raw_len;
		b->xxh = r.xxh;
		if (b->off < img->data_off ||
		    !nwc_range_ok(b->off - img->data_off, b->stored_len,
				  img->data_len) ||
		    b->raw_len == 0 || b->raw_len > NWC_BLOCK_MAX)
			return corrupt("%s: block %u out of bounds",
				       img->path, i);
	}
	return 0;
}

/*
 * Read, verify and parse the side record of tensor @i of tensor codec @dec
 * (shape already parsed), and check it against the codec's state.
 */
static int parse_side(struct nwc_image *img, uint32_t i,
		      const struct nwc_codec_dec *dec, uint64_t xxh)
{
	struct nwc_tensor *t = &img->tensors[i];
	struct nwc_codec_tensor ct;
	uint32_t block_len, nblocks;
	uint8_t *buf;
	void *side;
	int ret;

	codec_tensor(t, &ct);
	if (!(img->incompat & dec->incompat))
		return corrupt("%s: tensor %u: codec %s without its feature bit",
			       img->path, i, dec->name);
	if (dec->check_tensor(&ct))
		return corrupt("%s: tensor %u: codec %s does not code a %s tensor of %u dimensions",
			       img->path, i, dec->name,
			       nwc_dtype_name(t->dtype), t->ndim);
	if (!t->side_len || t->side_off < img->data_off ||
	    !nwc_range_ok(t->side_off - img->data_off, t->side_len,
			  img->data_len))
		return corrupt("%s: tensor %u: side data out of bounds",
			       img->path, i);
	buf = malloc(t->side_len);
	if (!buf)
		return -ENOMEM;
	ret = nwc_pread_full(img->fd, buf, t->side_len, t->side_off);
	if (ret) {
		nwc_err("%s: tensor %u: cannot read side data: %s", img->path,
			i, nwc_strerror(ret));
		goto out_free_buf;
	}
	if (nwc_hash64(buf, t->side_len) != xxh) {
		nwc_err("%s: tensor %u: side data checksum mismatch", img->path,
			i);
		ret = -NWC_ECHECKSUM;
		goto out_free_buf;
	}
	ret = dec->side_parse(&ct, buf, t->side_len, &side);
	if (ret) {
		nwc_err("%s: tensor %u: bad side record: %s", img->path, i,
			nwc_strerror(ret));
		goto out_free_buf;
	}
	t->side = side;
	if (dec->tensor_geometry(&ct, side, &block_len, &nblocks))
		ret = corrupt("%s: tensor %u: side record does not match the tensor",
			      img->path, i);
	else
		ret = dec->side_check(codec_state(img, dec), side);
	if (ret)
		nwc_err("%s: tensor %u: side record does not fit the image's %s section: %s",
			img->path, i, dec->name, nwc_strerror(ret));
out_free_buf:
	free(buf);
	return ret;
}

static int parse_tensors(struct nwc_image *img)
{
	const struct section *s = &img->sect[NWC_SECT_TENSORS];
	const struct section *p = &img->sect[NWC_SECT_PARAMS];

	if (s->len % NWC_TENSOR_SIZE || s->len / NWC_TENSOR_SIZE > INT32_MAX)
		return corrupt("%s: bad tensor table size", img->path);
	img->n_tensors = (uint32_t)(s->len / NWC_TENSOR_SIZE);
	img->tensors = calloc(img->n_tensors ? img->n_tensors : 1,
			      sizeof(*img->tensors));
	if (!img->tensors)
		return -ENOMEM;
	for (uint32_t i = 0; i < img->n_tensors; i++) {
		struct nwc_tensor *t = &img->tensors[i];
		const struct nwc_codec_dec *dec;
		struct nwc_rec_tensor r;
		uint32_t shape_off;
		unsigned esize;
		uint64_t n;

		nwc_rec_tensor_decode(s->data + (size_t)i * NWC_TENSOR_SIZE, &r);
		shape_off = r.shape_off;
		t->inode = r.inode;
		t->name_len = r.name_len;
		t->name = string_ref(img, r.name_off, t->name_len);
		t->dtype = r.dtype;
		t->ndim = r.ndim;
		t->data_off = r.data_off;
		t->data_len = r.data_len;
		t->codec = r.codec;
		t->extent = UINT32_MAX;
		esize = nwc_dtype_size(t->dtype);
		t->side_off = r.side_off;
		t->side_len = r.side_len;
		if (t->inode >= img->n_inodes ||
		    !S_ISREG(img->inodes[t->inode].mode) || !t->name ||
		    !t->name_len || !esize || t->ndim > NWC_MAX_DIMS ||
		    r.reserved16 || r.reserved32)
			return corrupt("%s: tensor %u: bad record", img->path, i);
		if (i && (t[-1].inode > t->inode ||
			  (t[-1].inode == t->inode && t[-1].data_off > t->data_off)))
			return corrupt("%s: tensor table not sorted", img->path);
		if (t->ndim && (shape_off % 8 ||
				!nwc_range_ok(shape_off, t->ndim * 8ull, p->len)))
			return corrupt("%s: tensor %u: bad shape reference",
				       img->path, i);
		n = esize;
		for (unsigned d = 0; d < t->ndim; d++) {
			t->shape[d] = nwc_get_le64(p->data + shape_off + d * 8);
			if (t->shape[d] && n > UINT64_MAX / t->shape[d])
				return corrupt("%s: tensor %u: shape overflows",
					       img->path, i);
			n *= t->shape[d];
		}
		if (n != t->data_len ||
		    !nwc_range_ok(t->data_off, t->data_len,
				  img->inodes[t->inode].size))
			return corrupt("%s: tensor %u: size or offset does not fit its file",
				       img->path, i);
		dec = nwc_codec_set_dec(img->codecs, t->codec);
		if (dec && dec->tensor_codec) {
			int ret = parse_side(img, i, dec, r.side_xxh);

			if (ret)
				return ret;
		} else if (t->side_off || t->side_len || r.side_xxh) {
			return corrupt("%s: tensor %u: side data on a tensor of codec %u",
				       img->path, i, t->codec);
		}
	}
	img->tfirst = calloc(img->n_inodes, sizeof(*img->tfirst));
	img->tcount = calloc(img->n_inodes, sizeof(*img->tcount));
	if (!img->tfirst || !img->tcount)
		return -ENOMEM;
	for (uint32_t i = img->n_tensors; i-- > 0;) {
		img->tfirst[img->tensors[i].inode] = i;
		img->tcount[img->tensors[i].inode]++;
	}
	return 0;
}

/*
 * The codec of extent @idx takes its argument and geometry; an extent of a
 * tensor codec is the data extent of a tensor of that codec, whose side
 * record (parse_side() checked it) fixes its blocks.  Sets *unit to the
 * byte count every decoded length is a multiple of.
 */
static int check_extent(struct nwc_image *img, uint32_t idx, unsigned *unit)
{
	const struct nwc_extent *e = &img->extents[idx];
	const struct nwc_codec_dec *dec;
	const struct nwc_tensor *t = NULL;
	struct nwc_codec_tensor ct;
	int slot = codec_slot(img, e->codec);

	if (slot < 0) {
		nwc_err("%s: extent %u uses codec %u, which this build does not support",
			img->path, idx, e->codec);
		return -NWC_EFEATURE;
	}
	dec = img->codecs->dec[slot];
	img->eslot[idx] = (uint8_t)slot;
	if (dec->incompat && !(img->incompat & dec->incompat))
		return corrupt("%s: extent %u: codec %s without its feature bit",
			       img->path, idx, dec->name);
	if (dec->tensor_codec) {
		if (e->tensor >= img->n_tensors ||
		    img->tensors[e->tensor].codec != e->codec)
			return corrupt("%s: extent %u: codec %s outside a tensor of that codec",
				       img->path, idx, dec->name);
		t = &img->tensors[e->tensor];
		codec_tensor(t, &ct);
	}
	if (nwc_codec_check_extent(dec, e->codec_arg, e->block_len,
				   e->nblocks, t ? &ct : NULL,
				   t ? t->side : NULL, unit)) {
		if (t)
			return corrupt("%s: extent %u: blocks are not those tensor %u's side record gives",
				       img->path, idx, e->tensor);
		*unit = 0;	/* reported as an inconsistent extent */
	}
	return 0;
}

/* Extents of every regular file; also links tensors to their extents. */
static int parse_extents(struct nwc_image *img)
{
	const struct section *s = &img->sect[NWC_SECT_EXTENTS];
	const struct nwc_codec_dec *dec;
	uint8_t *owned;
	int ret = 0;

	/* eslot[] holds decoder indices in a byte */
	assert(img->codecs->n_dec <= UINT8_MAX + 1u);
	if (s->len % NWC_EXTENT_SIZE || s->len / NWC_EXTENT_SIZE > INT32_MAX)
		return corrupt("%s: bad extent table size", img->path);
	img->n_extents = (uint32_t)(s->len / NWC_EXTENT_SIZE);
	img->extents = calloc(img->n_extents ? img->n_extents : 1,
			      sizeof(*img->extents));
	owned = calloc(img->n_extents ? img->n_extents : 1, 1);
	img->eslot = calloc(img->n_extents ? img->n_extents : 1,
			    sizeof(*img->eslot));
	if (!img->extents || !owned || !img->eslot) {
		free(owned);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < img->n_extents; i++) {
		struct nwc_extent *e = &img->extents[i];
		struct nwc_rec_extent r;

		nwc_rec_extent_decode(s->data + (size_t)i * NWC_EXTENT_SIZE, &r);
		e->file_off = r.file_off;
		e->len = r.len;
		e->first_block = r.first_block;
		e->nblocks = r.nblocks;
		e->block_len = r.block_len;
		e->codec = r.codec;
		e->codec_arg = r.codec_arg;
		e->tensor = r.tensor;
		if (r.flags || r.reserved) {
			ret = corrupt("%s: extent %u: reserved fields set",
				      img->path, i);
			goto out_free;
		}
	}
	for (uint32_t ino = 0; ino < img->n_inodes; ino++) {
		const struct nwc_inode *n = &img->inodes[ino];
		uint64_t pos = 0;

		if (!S_ISREG(n->mode))
			continue;
		if (n->first > img->n_extents ||
		    n->count > img->n_extents - n->first) {
			ret = corrupt("%s: inode %u: extents out of bounds",
				      img->path, ino);
			goto out_free;
		}
		for (uint32_t k = 0; k < n->count; k++) {
			uint32_t idx = n->first + k;
			const struct nwc_extent *e = &img->extents[idx];
			uint64_t nb;
			unsigned unit;

			ret = check_extent(img, idx, &unit);
			if (ret)
				goto out_free;
			nb = e->block_len ? (e->len + e->block_len - 1) /
						    e->block_len : 0;
			if (ret || owned[idx] || e->file_off != pos ||
			    e->len == 0 || e->len > n->size - pos ||
			    !unit || e->len % unit || nb != e->nblocks ||
			    e->first_block > img->n_blocks ||
			    e->nblocks > img->n_blocks - e->first_block) {
				ret = corrupt("%s: extent %u of inode %u is inconsistent",
					      img->path, idx, ino);
				goto out_free;
			}
			owned[idx] = 1;
			pos += e->len;
			dec = img->codecs->dec[img->eslot[idx]];
			for (uint32_t j = 0; j < e->nblocks; j++) {
				const struct nwc_block *b =
					&img->blocks[e->first_block + j];

				if (b->raw_len != nwc_extent_block_len(e, j) ||
				    (dec->block_ok &&
				     !dec->block_ok(e->codec_arg,
						    b->stored_len,
						    b->raw_len))) {
					ret = corrupt("%s: block %u: length disagrees with extent %u",
						      img->path, e->first_block + j, idx);
					goto out_free;
				}
			}
			if (e->tensor != NWC_NO_TENSOR) {
				struct nwc_tensor *t;

				if (e->tensor >= img->n_tensors) {
					ret = corrupt("%s: extent %u: bad tensor index",
						      img->path, idx);
					goto out_free;
				}
				t = &img->tensors[e->tensor];
				if (t->extent != UINT32_MAX || t->inode != ino ||
				    t->data_off != e->file_off ||
				    t->data_len != e->len || t->codec != e->codec) {
					ret = corrupt("%s: extent %u does not match tensor %u",
						      img->path, idx, e->tensor);
					goto out_free;
				}
				t->extent = idx;
			}
		}
		if (pos != n->size) {
			ret = corrupt("%s: inode %u: extents cover %llu of %llu bytes",
				      img->path, ino, (unsigned long long)pos,
				      (unsigned long long)n->size);
			goto out_free;
		}
	}
	for (uint32_t i = 0; i < img->n_extents; i++) {
		if (!owned[i]) {
			ret = corrupt("%s: extent %u belongs to no file",
				      img->path, i);
			goto out_free;
		}
	}
	for (uint32_t i = 0; i < img->n_tensors; i++) {
		const struct nwc_tensor *t = &img->tensors[i];

		if ((t->data_len != 0) != (t->extent != UINT32_MAX)) {
			ret = corrupt("%s: tensor %u has no extent",
				      img->path, i);
			goto out_free;
		}
	}
out_free:
	free(owned);
	return ret;
}

static bool finite_nonneg(double v)
{
	return v >= 0 && v <= DBL_MAX;
}

/* INFO against the tensors: header, entries in order, text (format.h 11). */
static int parse_info(struct nwc_image *img)
{
	const uint8_t *p = img->info.data;
	struct nwc_rec_info_hdr h;
	uint64_t want;

	if (!img->info.present)
		return 0;
	for (uint32_t t = 1; t <= NWC_SECT_LAST; t++)
		if (img->sect[t].present &&
		    overlaps(img->info.off, img->info.len, img->sect[t].off,
			     img->sect[t].len))
			return corrupt("%s: sections %u and INFO overlap",
				       img->path, t);
	nwc_rec_info_hdr_decode(p, &h);
	want = NWC_INFO_HDR_SIZE + (uint64_t)h.count * NWC_INFO_ENT_SIZE +
	       h.text_len;
	if (h.count > img->n_tensors || h.text_len > NWC_INFO_TEXT_MAX ||
	    want != img->info.len)
		return corrupt("%s: INFO section: %u entries and %u bytes of text do not fill its %llu bytes",
			       img->path, h.count, h.text_len,
			       (unsigned long long)img->info.len);
	img->tsig = malloc(NWC_MAX(img->n_tensors, 1) * sizeof(double));
	img->terr = malloc(NWC_MAX(img->n_tensors, 1) * sizeof(double));
	if (!img->tsig || !img->terr)
		return -ENOMEM;
	for (uint32_t t = 0; t < img->n_tensors; t++)
		img->tsig[t] = img->terr[t] = NAN;
	for (uint32_t i = 0; i < h.count; i++) {
		const uint8_t *q = p + NWC_INFO_HDR_SIZE +
				   (size_t)i * NWC_INFO_ENT_SIZE;
		struct nwc_rec_info_ent e;
		double sig, err;

		nwc_rec_info_ent_decode(q, &e);
		memcpy(&sig, &e.sig, sizeof(sig));
		memcpy(&err, &e.err, sizeof(err));
		if (e.tensor >= img->n_tensors || e.reserved ||
		    (i && e.tensor <= nwc_get_le32(q - NWC_INFO_ENT_SIZE)) ||
		    !finite_nonneg(sig) || !finite_nonneg(err))
			return corrupt("%s: INFO section: entry %u is out of order, out of range or not a finite error",
				       img->path, i);
		img->tsig[e.tensor] = sig;
		img->terr[e.tensor] = err;
	}
	img->info_text = (const char *)p + want - h.text_len;
	img->info_len = h.text_len;
	if (memchr(img->info_text, '\0', img->info_len))
		return corrupt("%s: INFO section: a NUL byte in its text",
			       img->path);
	img->created = (int64_t)h.created;
	return 0;
}

int nwc_image_made(const struct nwc_image *img, int64_t *created,
		   const char **text, size_t *len)
{
	if (!img->info.present)
		return -ENOENT;
	*created = img->created;
	*text = img->info_text;
	*len = img->info_len;
	return 0;
}

int nwc_image_tensor_error(const struct nwc_image *img, uint32_t t,
			   double *sig, double *err)
{
	assert(t < img->n_tensors);
	if (!img->tsig || isnan(img->tsig[t]))
		return -ENOENT;
	*sig = img->tsig[t];
	*err = img->terr[t];
	return 0;
}

int nwc_image_open_fd(int fd, const char *path,
		      const struct nwc_codec_set *codecs, struct nwc_image **out)
{
	struct nwc_image *img;
	uint64_t dir_off, dir_xxh;
	uint32_t dir_count;
	struct stat st;
	int ret;

	img = calloc(1, sizeof(*img));
	if (!img) {
		close(fd);
		return -ENOMEM;
	}
	img->fd = fd;
	img->codecs = codecs;
	img->path = strdup(path);
	if (!img->path) {
		ret = -ENOMEM;
		goto out_close;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		nwc_err("%s: %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		nwc_err("%s: not a regular file", path);
		ret = -EINVAL;
		goto out_close;
	}
	img->image_size = (uint64_t)st.st_size;
	ret = read_super(img, &dir_off, &dir_count, &dir_xxh);
	if (!ret)
		ret = read_sections(img, dir_off, dir_count, dir_xxh);
	if (!ret)
		ret = open_codecs(img);
	if (!ret)
		ret = parse_inodes(img);
	if (!ret)
		ret = parse_blocks(img);
	if (!ret)
		ret = parse_tensors(img);
	if (!ret)
		ret = parse_extents(img);
	if (!ret)
		ret = parse_info(img);
	if (ret)
		goto out_close;
	*out = img;
	return 0;

out_close:
	nwc_image_close(img);
	return ret;
}

int nwc_image_open(const char *path, const struct nwc_codec_set *codecs,
		   struct nwc_image **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int ret = -errno;

		nwc_err("%s: %s", path, strerror(errno));
		return ret;
	}
	return nwc_image_open_fd(fd, path, codecs, out);
}

void nwc_image_close(struct nwc_image *img)
{
	if (!img)
		return;
	if (img->fd >= 0)
		close(img->fd);
	for (unsigned i = 0; i < NWC_ARRAY_SIZE(img->sect); i++)
		free(img->sect[i].data);
	free(img->inodes);
	free(img->extents);
	free(img->blocks);
	for (uint32_t i = 0; img->tensors && i < img->n_tensors; i++)
		free((void *)img->tensors[i].side);
	free(img->tensors);
	for (unsigned i = 0; img->cstate && i < img->codecs->n_dec; i++)
		if (img->cstate[i])
			img->codecs->dec[i]->close(img->cstate[i]);
	free(img->cstate);
	free(img->eslot);
	free(img->tfirst);
	free(img->tcount);
	free(img->reported);
	free(img->info.data);
	free(img->tsig);
	free(img->terr);
	free(img->path);
	free(img);
}

const char *nwc_image_path(const struct nwc_image *img)
{
	return img->path;
}

void nwc_image_get_info(const struct nwc_image *img,
			struct nwc_image_info *out)
{
	out->image_size = img->image_size;
	out->data_len = img->data_len;
	out->compat = img->compat;
	out->incompat = img->incompat;
	out->block_log2 = img->block_log2;
	out->n_inodes = img->n_inodes;
	out->n_extents = img->n_extents;
	out->n_blocks = img->n_blocks;
	out->n_tensors = img->n_tensors;
	out->total_size = img->total_size;
}

const struct nwc_inode *nwc_image_inode(const struct nwc_image *img,
					uint32_t ino)
{
	assert(ino < img->n_inodes);
	return &img->inodes[ino];
}

const struct nwc_extent *nwc_image_extent(const struct nwc_image *img,
					  uint32_t idx)
{
	assert(idx < img->n_extents);
	return &img->extents[idx];
}

const struct nwc_block *nwc_image_block(const struct nwc_image *img,
					uint32_t idx)
{
	assert(idx < img->n_blocks);
	return &img->blocks[idx];
}

const struct nwc_tensor *nwc_image_tensor(const struct nwc_image *img,
					  uint32_t idx)
{
	assert(idx < img->n_tensors);
	return &img->tensors[idx];
}

const void *nwc_image_codec_state(const struct nwc_image *img, unsigned codec)
{
	int i = codec_slot(img, codec);

	return i < 0 ? NULL : img->cstate[i];
}

const char *nwc_image_codec_name(const struct nwc_image *img, unsigned codec,
				 uint32_t arg, const void *side, char *buf,
				 size_t len)
{
	const struct nwc_codec_dec *dec = nwc_codec_set_dec(img->codecs, codec);

	if (!dec) {
		snprintf(buf, len, "codec%u/0x%x", codec, (unsigned)arg);
		return buf;
	}
	return dec->describe(arg, side, buf, len);
}

bool nwc_image_extent_lossy(const struct nwc_image *img, uint32_t ext)
{
	assert(ext < img->n_extents);
	return img->codecs->dec[img->eslot[ext]]->lossy;
}

const char *nwc_image_extent_codec(const struct nwc_image *img, uint32_t ext)
{
	assert(ext < img->n_extents);
	return img->codecs->dec[img->eslot[ext]]->name;
}

char *nwc_image_inode_path(const struct nwc_image *img, uint32_t ino)
{
	size_t len = 0, pos;
	char *p;

	assert(ino < img->n_inodes);
	for (uint32_t i = ino; i; i = img->inodes[i].parent)
		len += 1 + img->inodes[i].name_len;
	if (!len)
		return strdup("/");
	p = malloc(len + 1);
	if (!p)
		return NULL;
	pos = len;
	p[len] = '\0';
	for (uint32_t i = ino; i; i = img->inodes[i].parent) {
		const struct nwc_inode *n = &img->inodes[i];

		pos -= n->name_len;
		memcpy(p + pos, n->name, n->name_len);
		p[--pos] = '/';
	}
	return p;
}

void nwc_image_file_codecs(const struct nwc_image *img, uint32_t ino,
			   char *buf, size_t cap)
{
	const struct nwc_inode *n = &img->inodes[ino];
	size_t w = 0;

	assert(cap >= 2);
	snprintf(buf, cap, "-");
	for (uint32_t k = 0; k < n->count; k++) {
		const char *c = nwc_image_extent_codec(img, n->first + k);
		bool seen = false;

		for (uint32_t i = 0; i < k && !seen; i++)
			seen = !strcmp(c, nwc_image_extent_codec(img,
								 n->first + i));
		if (!seen && w + strlen(c) + 2 <= cap)
			w += (size_t)snprintf(buf + w, cap - w, "%s%s",
					      w ? "+" : "", c);
	}
}

const char *nwc_image_made_value(const struct nwc_image *img,
				 const char *key, size_t *len)
{
	size_t klen = strlen(key);
	const char *p, *end;

	if (!img->info.present)
		return NULL;
	for (p = img->info_text, end = p + img->info_len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;

		if ((size_t)(eol - p) > klen && !memcmp(p, key, klen) &&
		    p[klen] == '=') {
			*len = (size_t)(eol - p) - klen - 1;
			return p + klen + 1;
		}
		p = eol + 1;
	}
	return NULL;
}

bool nwc_image_file_lossy(const struct nwc_image *img, uint32_t ino)
{
	const struct nwc_inode *n = &img->inodes[ino];

	if (!S_ISREG(n->mode))
		return false;
	for (uint32_t k = 0; k < n->count; k++)
		if (nwc_image_extent_lossy(img, n->first + k))
			return true;
	return false;
}

uint64_t nwc_image_tensor_stored(const struct nwc_image *img, uint32_t t)
{
	const struct nwc_tensor *x = &img->tensors[t];

	assert(t < img->n_tensors);
	return x->side_len + (x->extent == UINT32_MAX ? 0 :
			      nwc_image_extent_stored(img, x->extent));
}

uint64_t nwc_image_file_stored(const struct nwc_image *img, uint32_t ino)
{
	const struct nwc_inode *n = &img->inodes[ino];
	uint64_t sum = 0;

	assert(ino < img->n_inodes);
	if (!S_ISREG(n->mode))
		return 0;
	for (uint32_t k = 0; k < n->count; k++)
		sum += nwc_image_extent_stored(img, n->first + k);
	for (uint32_t t = img->tfirst[ino]; t < img->tfirst[ino] + img->tcount[ino];
	     t++)
		sum += img->tensors[t].side_len;
	return sum;
}

void nwc_image_file_fidelity(const struct nwc_image *img, uint32_t ino,
			     struct nwc_fidelity *out)
{
	memset(out, 0, sizeof(*out));
	out->lossy = nwc_image_file_lossy(img, ino);
	for (uint32_t t = img->tfirst[ino]; t < img->tfirst[ino] + img->tcount[ino];
	     t++) {
		const struct nwc_tensor *x = &img->tensors[t];
		uint64_t w = 1;

		if (x->extent == UINT32_MAX ||
		    !nwc_image_extent_lossy(img, x->extent))
			continue;
		for (unsigned d = 0; d < x->ndim; d++)
			w *= x->shape[d];
		out->tensors++;
		out->weights += w;
		out->stored += nwc_image_tensor_stored(img, t);
		if (img->tsig && !isnan(img->tsig[t])) {
			out->with_err++;
			out->sig += img->tsig[t];
			out->err += img->terr[t];
		}
	}
}

void nwc_image_print_codecs(const struct nwc_image *img, FILE *out)
{
	for (unsigned i = 0; i < img->codecs->n_dec; i++)
		if (img->cstate[i] && img->codecs->dec[i]->print_state)
			img->codecs->dec[i]->print_state(img->cstate[i], out);
}

void nwc_image_file_tensors(const struct nwc_image *img, uint32_t ino,
			    uint32_t *first, uint32_t *count)
{
	assert(ino < img->n_inodes);
	*first = img->tfirst[ino];
	*count = img->tcount[ino];
}

int nwc_image_lookup(const struct nwc_image *img, uint32_t dir,
		     const char *name, size_t len, uint32_t *ino)
{
	const struct nwc_inode *d = &img->inodes[dir];
	uint32_t lo = 0, hi;

	assert(dir < img->n_inodes);
	if (!S_ISDIR(d->mode))
		return -ENOTDIR;
	if (len > NWC_NAME_MAX)
		return -ENOENT;
	hi = d->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct nwc_inode *c = &img->inodes[d->first + mid];
		int cmp = nwc_name_cmp(name, (uint32_t)len, c->name, c->name_len);

		if (!cmp) {
			*ino = d->first + mid;
			return 0;
		}
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -ENOENT;
}

int nwc_image_resolve(const struct nwc_image *img, const char *path,
		      uint32_t *ino)
{
	uint32_t cur = 0;

	while (*path) {
		const char *end;
		int ret;

		while (*path == '/')
			path++;
		if (!*path)
			break;
		end = strchr(path, '/');
		if (!end)
			end = path + strlen(path);
		ret = nwc_image_lookup(img, cur, path, (size_t)(end - path),
				       &cur);
		if (ret)
			return ret;
		path = end;
	}
	*ino = cur;
	return 0;
}

uint32_t nwc_image_find_extent(const struct nwc_image *img, uint32_t ino,
			       uint64_t off)
{
	const struct nwc_inode *n = &img->inodes[ino];
	uint32_t lo = 0, hi;

	/* open gave every regular file extents that cover its bytes */
	assert(ino < img->n_inodes && S_ISREG(n->mode) && off < n->size);
	hi = n->count;
	/* Largest extent whose file_off <= off. */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (img->extents[n->first + mid].file_off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return n->first + lo;
}

/* Why block @idx could not be read, said plainly. */
static void report_read_error(const struct nwc_image *img, uint32_t idx,
			      int err)
{
	const struct nwc_block *b = &img->blocks[idx];
	struct stat st;

	if (err == -NWC_ECORRUPT && !fstat(img->fd, &st))
		nwc_err("%s: block %u (bytes %llu..%llu): the image is shorter than its tables say (%llu bytes now; truncated after it was opened?)",
			img->path, idx, (unsigned long long)b->off,
			(unsigned long long)(b->off + b->stored_len - 1),
			(unsigned long long)st.st_size);
	else
		nwc_err("%s: block %u (offset %llu, %u bytes): read failed: %s",
			img->path, idx, (unsigned long long)b->off,
			b->stored_len, nwc_strerror(err));
}

static int fetch_block(const struct nwc_image *img, struct nwc_dctx *dctx,
		       uint32_t idx, const uint8_t **payload)
{
	const struct nwc_block *b = &img->blocks[idx];
	uint8_t *buf;
	int ret;

	assert(idx < img->n_blocks);
	buf = nwc_dctx_scratch(dctx, b->stored_len ? b->stored_len : 1);
	if (!buf)
		return -ENOMEM;
	ret = nwc_pread_full(img->fd, buf, b->stored_len, b->off);
	if (ret) {
		/* One line per bad block, however often it is read. */
		if (!atomic_exchange(&img->reported[idx], 1))
			report_read_error(img, idx, ret);
		return ret;
	}
	if (nwc_hash64(buf, b->stored_len) != b->xxh) {
		if (!atomic_exchange(&img->reported[idx], 1))
			nwc_err("%s: block %u (offset %llu, %u bytes): checksum mismatch",
				img->path, idx, (unsigned long long)b->off,
				b->stored_len);
		return -NWC_ECHECKSUM;
	}
	*payload = buf;
	return 0;
}

int nwc_image_check_block(const struct nwc_image *img, struct nwc_dctx *dctx,
			  uint32_t idx)
{
	const uint8_t *payload;

	return fetch_block(img, dctx, idx, &payload);
}

/* Block @j of extent @e through its codec, all validated at open. */
static int decode_block(const struct nwc_image *img, struct nwc_dctx *dctx,
			uint32_t ext, uint32_t j, const uint8_t *payload,
			size_t stored_len, void *dst, size_t len)
{
	const struct nwc_extent *e = &img->extents[ext];
	const unsigned slot = img->eslot[ext];
	const struct nwc_codec_dec *dec = img->codecs->dec[slot];
	const struct nwc_tensor *t = NULL;
	struct nwc_codec_tensor ct;
	void *scratch;
	int ret;

	ret = nwc_dctx_codec(dctx, dec, &scratch);
	if (ret)
		return ret;
	if (dec->tensor_codec) {
		/* check_extent(): a tensor of this codec, with its side */
		assert(e->tensor < img->n_tensors &&
		       img->tensors[e->tensor].side);
		t = &img->tensors[e->tensor];
		codec_tensor(t, &ct);
	}
	return dec->decode(img->cstate[slot], scratch, e->codec_arg,
			   t ? &ct : NULL, t ? t->side : NULL, j, payload,
			   stored_len, dst, len);
}

int nwc_image_load_block(const struct nwc_image *img, struct nwc_dctx *dctx,
			 uint32_t ext, uint32_t j, void *dst, size_t len)
{
	const struct nwc_extent *e = &img->extents[ext];
	uint32_t idx = e->first_block + j;
	const uint8_t *payload;
	int ret;

	if (j >= e->nblocks || len != nwc_extent_block_len(e, j))
		return -EINVAL;
	ret = fetch_block(img, dctx, idx, &payload);
	if (ret)
		return ret;
	ret = decode_block(img, dctx, ext, j, payload,
			   img->blocks[idx].stored_len, dst, len);
	if (ret && !atomic_exchange(&img->reported[idx], 1))
		nwc_err("%s: block %u: payload does not decode: %s", img->path,
			idx, nwc_strerror(ret));
	return ret;
}

uint64_t nwc_image_extent_stored(const struct nwc_image *img, uint32_t ext)
{
	const struct nwc_extent *e = &img->extents[ext];
	uint64_t sum = 0;

	assert(ext < img->n_extents);
	for (uint32_t j = 0; j < e->nblocks; j++)
		sum += img->blocks[e->first_block + j].stored_len;
	return sum;
}
