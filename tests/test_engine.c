/* SPDX-License-Identifier: MIT */
/*
 * tests/test_engine.c - the read engine: byte ranges against the expected
 * bytes, sequential, random and concurrent, with prefetch and eviction, and
 * with a damaged block; lossy (NWC) tensors read across their row bands.
 */
#include "codec/common/base.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec/registry/codec.h"
#include "codec/common/convert.h"
#include "codec/common/io.h"
#include "codec/common/log.h"
#include "codec/nwc/mlp.h"
#include "codec/nwc/nwcmodel.h"
#include "codec/nwc/nwctensor.h"
#include "codec/nwc/tenc.h"
#include "codec/nwc/prior.h"
#include "codec/image/writer.h"
#include "codec/registry/registry.h"
#include "fs/engine.h"
#include "tests/t.h"

#define ZF(e) ((e) | NWC_ZSTD_ARG_FLOAT)
#define BUDGET (16u << 10)	/* a few blocks: reads keep evicting */
#define MAXREAD (256u << 10)

/* Inodes of the test image (root children sorted, then d's). */
enum {
	INO_ROOT, INO_D, INO_EMPTY, INO_F0, INO_LOSSY, INO_TINY, INO_F1,
	N_INO
};

struct xext {
	uint32_t ino;
	uint64_t len;
	uint32_t block_len;
	uint16_t codec;
	uint32_t arg;
};

static const struct xext xexts[] = {
	{ INO_F0, 50000, 4096, NWC_CODEC_RAW, 0 },
	{ INO_F0, 70001, 4096, NWC_CODEC_ZSTD, 1 },
	{ INO_F0, 40000, 8192, NWC_CODEC_ZSTD, ZF(4) },
	{ INO_F1, 30000, 4096, NWC_CODEC_ZSTD, 2 },
	{ INO_TINY, 1, 4096, NWC_CODEC_RAW, 0 },
};
#define NXE NWC_ARRAY_SIZE(xexts)

/*
 * "lossy": a raw header, two NWC tensors and a raw tail.  Its extents follow
 * those of xexts[] in the table: header, the tensors, tail.
 */
#define LHDR 40u
#define LTAIL 24u

struct ltensor {
	unsigned dtype;
	uint32_t m, n, band_rows;
};

static const struct ltensor ltens[] = {
	{ NWC_DTYPE_F32, 100, 40, 16 },	/* 7 bands: 2560 bytes, last 640 */
	{ NWC_DTYPE_BF16, 50, 24, 32 },	/* 2 bands: 1536 and 864 bytes */
};
#define NLT NWC_ARRAY_SIZE(ltens)
#define LEXT(k) (NXE + 1 + (k))	/* extent of ltens[k] */

static uint64_t ldata_off[NLT];

static const uint32_t files[] = {
	INO_EMPTY, INO_F0, INO_TINY, INO_F1, INO_LOSSY,
};

static uint64_t xsize[N_INO];
static uint8_t *xdata[N_INO];
static uint64_t xfile_off[NXE];

/* File ranges whose block is damaged in the image being read, if any. */
struct range {
	uint32_t ino;
	uint64_t off, len;
};
static struct range bad[3];
static unsigned n_bad;

static char tdir[256], good_path[512], bad_path[512];

static void gen_bytes(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t s = seed;

	for (size_t i = 0; i < len; i++) {
		if ((i / 1000) % 3 == 1)
			p[i] = (uint8_t)t_rand(&s);
		else
			p[i] = (uint8_t)(i % 509 < 300 ? 'A' + i % 13 : i >> 4);
	}
}

static void setup_expected(void)
{
	for (uint32_t k = 0; k < NXE; k++) {
		xfile_off[k] = xsize[xexts[k].ino];
		xsize[xexts[k].ino] += xexts[k].len;
	}
	xsize[INO_LOSSY] = LHDR;
	for (uint32_t k = 0; k < NLT; k++) {
		ldata_off[k] = xsize[INO_LOSSY];
		xsize[INO_LOSSY] += (uint64_t)ltens[k].m * ltens[k].n *
				    nwc_dtype_size(ltens[k].dtype);
	}
	xsize[INO_LOSSY] += LTAIL;
	for (uint32_t i = 0; i < N_INO; i++) {
		xdata[i] = t_xmalloc(xsize[i]);
		gen_bytes(xdata[i], xsize[i], 77 + i);
	}
}

static int write_extent(struct nwc_writer *w, struct nwc_cctx *cc,
			uint32_t id, const struct xext *x, const uint8_t *src)
{
	struct nwc_wextent e = {
		x->len, x->block_len, x->codec, x->arg, NWC_NO_TENSOR,
	};
	uint32_t ext;
	int ret;

	ret = nwc_writer_add_extent(w, id, &e, &ext);
	for (uint64_t pos = 0; !ret && pos < x->len; pos += x->block_len) {
		size_t n = (size_t)NWC_MIN((uint64_t)x->block_len,
					   x->len - pos);
		size_t cap = nwc_codec_bound(x->codec, x->arg, n);
		uint8_t *buf = t_xmalloc(cap);
		ssize_t s;

		s = nwc_codec_encode(cc, x->codec, x->arg, src + pos, n, buf,
				     cap);
		ret = s < 0 ? (int)s :
			      nwc_writer_add_block(w, ext, buf, (size_t)s,
						   (uint32_t)n);
		free(buf);
	}
	return ret;
}

/* A small untrained codec model, finalized. */
static struct nwc_model *small_model(uint64_t seed)
{
	struct nwc_model *m;

	if (nwc_model_create(8, 1, NWC_NET_Q, &m))
		return NULL;
	nwc_net_init(m->enc, 8, 1, seed);
	nwc_net_init(m->dec, 8, 1, seed + 1);
	nwc_emb_init(m->emb, NWC_NET_Q, 8);
	nwc_emb_init(m->emb_dec, NWC_NET_Q, 8);
	nwc_prior_init(m->prior, m->quantiles, m->c, seed + 2);
	if (nwc_model_finalize(m)) {
		nwc_model_free(m);
		return NULL;
	}
	return m;
}

/*
 * Code lossy tensor @k and add it (tensor, side record, extent) to file
 * @id; what the decoder gives becomes the expected bytes.
 */
static int write_ltensor(struct nwc_writer *w, const struct nwc_model *model,
			 uint32_t id, uint32_t k)
{
	const struct ltensor *x = &ltens[k];
	size_t mn = (size_t)x->m * x->n;
	uint64_t shape[2] = { x->m, x->n }, seed = 900 + k;
	struct nwc_wtensor t = {
		.name = k ? "b" : "a", .name_len = 1, .dtype = x->dtype,
		.ndim = 2, .shape = shape, .data_off = ldata_off[k],
		.data_len = mn * nwc_dtype_size(x->dtype),
	};
	float *wt = t_xmalloc(mn * sizeof(*wt));
	uint8_t *level = t_xmalloc(x->n);
	struct nwc_tenc_opts o;
	struct nwc_tenc *enc;
	uint32_t ti, ext;
	int ret;

	for (size_t i = 0; i < mn; i++)
		wt[i] = (float)((int)(t_rand(&seed) % 2001) - 1000) / 500.0f;
	for (uint32_t j = 0; j < x->n; j++)
		level[j] = (uint8_t)(j % NWC_NET_Q);
	nwc_tenc_opts_init(&o);
	o.band_rows = x->band_rows;
	o.dtype = x->dtype;
	ret = nwc_tenc_encode(model, 0, wt, x->m, x->n, level, &o, &enc);
	free(level);
	free(wt);
	if (ret)
		return ret;
	ret = nwc_from_f32(x->dtype, enc->what, mn,
			   xdata[INO_LOSSY] + ldata_off[k]);
	if (!ret)
		ret = nwc_writer_add_tensor(w, id, &t, &ti);
	if (!ret)
		ret = nwc_writer_set_tensor_side(w, ti, NWC_CODEC_NWC, enc->side,
						 enc->side_len);
	if (!ret)
		ret = nwc_writer_add_tensor_extent(w, id, ti, enc->nbands,
						enc->band, enc->band_len, &ext);
	if (!ret && ext != LEXT(k))
		ret = -EINVAL;
	nwc_tenc_free(enc);
	return ret;
}

/* The lossy file, after every other extent. */
static int write_lossy(struct nwc_writer *w, struct nwc_cctx *cc, uint32_t id)
{
	static const struct xext hdr = { INO_LOSSY, LHDR, 4096,
					 NWC_CODEC_RAW, 0 };
	static const struct xext tail = { INO_LOSSY, LTAIL, 4096,
					  NWC_CODEC_RAW, 0 };
	struct nwc_model *model = small_model(5);
	uint8_t *blob = NULL;
	uint32_t mi;
	size_t len;
	int ret;

	if (!model)
		return -ENOMEM;
	ret = nwc_model_to_buf(model, &blob, &len);
	if (!ret)
		ret = nwc_writer_add_codec_item(w, NWC_CODEC_NWC, blob, len, &mi);
	if (!ret)
		ret = write_extent(w, cc, id, &hdr, xdata[INO_LOSSY]);
	for (uint32_t k = 0; !ret && k < NLT; k++)
		ret = write_ltensor(w, model, id, k);
	if (!ret)
		ret = write_extent(w, cc, id, &tail,
				   xdata[INO_LOSSY] + xsize[INO_LOSSY] - LTAIL);
	free(blob);
	nwc_model_free(model);
	return ret;
}

static int build_image(const char *path)
{
	struct nwc_writer *w;
	struct nwc_cctx *cc;
	uint32_t id[N_INO];
	int ret;

	ret = nwc_cctx_create(1, &cc);
	if (ret)
		return ret;
	ret = nwc_writer_create(path, 12, false, nwc_codecs_write(), &w);
	if (ret)
		goto out_cctx;
	id[INO_ROOT] = 0;
	ret = nwc_writer_add_node(w, 0, "tiny", 4, S_IFREG | 0644, 0, 0,
				  &id[INO_TINY]);
	if (!ret)
		ret = nwc_writer_add_node(w, 0, "f0", 2, S_IFREG | 0644, 0, 0,
					  &id[INO_F0]);
	if (!ret)
		ret = nwc_writer_add_node(w, 0, "d", 1, S_IFDIR | 0755, 0, 0,
					  &id[INO_D]);
	if (!ret)
		ret = nwc_writer_add_node(w, id[INO_D], "f1", 2,
					  S_IFREG | 0644, 0, 0, &id[INO_F1]);
	if (!ret)
		ret = nwc_writer_add_node(w, 0, "empty", 5, S_IFREG | 0644, 0,
					  0, &id[INO_EMPTY]);
	if (!ret)
		ret = nwc_writer_add_node(w, 0, "lossy", 5, S_IFREG | 0644, 0,
					  0, &id[INO_LOSSY]);
	for (uint32_t k = 0; !ret && k < NXE; k++)
		ret = write_extent(w, cc, id[xexts[k].ino], &xexts[k],
				   xdata[xexts[k].ino] + xfile_off[k]);
	if (!ret)
		ret = write_lossy(w, cc, id[INO_LOSSY]);
	if (ret)
		nwc_writer_abort(w);
	else
		ret = nwc_writer_finish(w);
out_cctx:
	nwc_cctx_free(cc);
	return ret;
}

/* A copy of the image with one byte flipped in three block payloads. */
static int build_damaged(const struct nwc_engine *eng)
{
	const struct nwc_image *img = nwc_engine_image(eng);
	static const uint32_t which[][2] = { { 0, 5 }, { 3, 3 },
					     { LEXT(0), 3 } };
	int in, out, ret = 0;
	struct stat st;
	uint8_t *p;

	in = open(good_path, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st))
		return -errno;
	p = t_xmalloc((size_t)st.st_size);
	ret = nwc_pread_full(in, p, (size_t)st.st_size, 0);
	close(in);
	for (unsigned i = 0; !ret && i < NWC_ARRAY_SIZE(which); i++) {
		uint32_t ext = which[i][0], j = which[i][1];
		const struct nwc_extent *e = nwc_image_extent(img, ext);
		const struct nwc_block *b =
			nwc_image_block(img, e->first_block + j);

		p[b->off + b->stored_len / 3] ^= 0x20;
		bad[i].ino = ext < NXE ? xexts[ext].ino : INO_LOSSY;
		bad[i].off = e->file_off + (uint64_t)j * e->block_len;
		bad[i].len = nwc_extent_block_len(e, j);
	}
	n_bad = NWC_ARRAY_SIZE(which);
	out = open(bad_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		ret = -errno;
	else if (!ret)
		ret = nwc_pwrite_full(out, p, (size_t)st.st_size, 0);
	if (out >= 0)
		close(out);
	free(p);
	return ret;
}

static bool touches_bad(uint32_t ino, uint64_t off, uint64_t len)
{
	for (unsigned i = 0; i < n_bad; i++)
		if (bad[i].ino == ino && off < bad[i].off + bad[i].len &&
		    bad[i].off < off + len)
			return true;
	return false;
}

/*
 * Read [off, off + len) of @ino and compare with what it must give: the
 * bytes up to end of file, or -NWC_ECHECKSUM when a damaged block lies in
 * the range.  Thread-safe; returns 0 or -1 after printing the mismatch.
 */
static int check_read(struct nwc_engine *eng, uint32_t ino, uint64_t off,
		      size_t len, struct nwc_stream *st, uint8_t *buf)
{
	uint64_t size = xsize[ino];
	size_t want = off >= size ? 0 : (size_t)NWC_MIN((uint64_t)len,
							 size - off);
	ssize_t n;

	n = nwc_engine_read(eng, ino, buf, len, off, st);
	if (want && touches_bad(ino, off, want)) {
		if (n == -NWC_ECHECKSUM)
			return 0;
		fprintf(stderr, "ino %u [%llu, +%zu): got %zd, want %d\n", ino,
			(unsigned long long)off, len, n, -NWC_ECHECKSUM);
		return -1;
	}
	if (n != (ssize_t)want) {
		fprintf(stderr, "ino %u [%llu, +%zu): got %zd, want %zu\n", ino,
			(unsigned long long)off, len, n, want);
		return -1;
	}
	if (memcmp(buf, xdata[ino] + (want ? off : 0), want)) {
		fprintf(stderr, "ino %u [%llu, +%zu): wrong bytes\n", ino,
			(unsigned long long)off, len);
		return -1;
	}
	return 0;
}

static struct nwc_engine *open_engine(const char *path, size_t budget,
				      unsigned threads, bool start)
{
	struct nwc_engine_opts opts = { budget, threads, 4 };
	struct nwc_engine *eng = NULL;

	T_EQ(nwc_engine_open(path, &opts, &eng), 0);
	if (!eng)
		exit(1);
	if (start)
		T_EQ(nwc_engine_start(eng), 0);
	return eng;
}

/* A random read: often near a block edge, sometimes empty or past EOF. */
static int random_read(struct nwc_engine *eng, uint64_t *seed,
		       struct nwc_stream *st, uint8_t *buf)
{
	uint32_t ino = files[t_rand(seed) % NWC_ARRAY_SIZE(files)];
	uint64_t size = xsize[ino], off;
	size_t len;

	switch (t_rand(seed) % 8) {
	case 0:
		len = 0;
		break;
	case 1:
		len = (size_t)(t_rand(seed) % 8192);
		break;
	case 2:
		len = (size_t)(t_rand(seed) % MAXREAD);
		break;
	default:
		len = (size_t)(t_rand(seed) % 20000);
		break;
	}
	switch (t_rand(seed) % 6) {
	case 0:		/* around a 4 KiB multiple */
		off = (t_rand(seed) % (size / 4096 + 2)) * 4096;
		off -= NWC_MIN(off, t_rand(seed) % 3);
		break;
	case 1:		/* at or past end of file */
		off = size + t_rand(seed) % 3 * (t_rand(seed) % 10000);
		break;
	default:
		off = t_rand(seed) % (size + 1);
		break;
	}
	return check_read(eng, ino, off, len, st, buf);
}

static void test_sequential(void)
{
	static const size_t chunks[] = { 333, 4096, 5000, 65536, 200000 };
	struct nwc_engine *eng = open_engine(good_path, BUDGET, 2, true);
	struct nwc_engine_stats s;
	uint8_t *buf = t_xmalloc(MAXREAD);
	int bad_reads = 0;

	for (size_t c = 0; c < NWC_ARRAY_SIZE(chunks); c++) {
		for (size_t f = 0; f < NWC_ARRAY_SIZE(files); f++) {
			uint32_t ino = files[f];
			struct nwc_stream st;
			uint64_t off;

			nwc_stream_init(&st);
			for (off = 0; off < xsize[ino]; off += chunks[c])
				bad_reads += !!check_read(eng, ino, off,
							  chunks[c], &st, buf);
			bad_reads += !!check_read(eng, ino, off, chunks[c],
						  &st, buf);
		}
	}
	T_EQ(bad_reads, 0);
	nwc_engine_get_stats(eng, &s);
	T_CHECK(s.prefetched > 0);
	T_CHECK(s.misses > 0);
	T_CHECK(s.hits > 0);
	/* Blocks leave the budget: evicted, or dropped once served whole;
	 * which of the two depends on how far prefetch runs ahead, so on
	 * the machine's load. */
	T_CHECK(s.evictions + s.used_up > 0);
	T_EQ(s.fill_errors, 0);
	nwc_engine_close(eng);
	free(buf);
}

/* Every block and extent edge of f0, from both sides. */
static void test_boundaries(void)
{
	struct nwc_engine *eng = open_engine(good_path, BUDGET, 2, true);
	const struct nwc_image *img = nwc_engine_image(eng);
	const struct nwc_inode *n = nwc_image_inode(img, INO_F0);
	uint8_t *buf = t_xmalloc(MAXREAD);
	int bad_reads = 0, edges = 0;

	for (uint32_t k = n->first; k < n->first + n->count; k++) {
		const struct nwc_extent *e = nwc_image_extent(img, k);

		for (uint32_t j = 0; j <= e->nblocks; j++) {
			uint64_t b = e->file_off +
				     NWC_MIN((uint64_t)j * e->block_len,
					     e->len);
			uint64_t lo = b - NWC_MIN(b, 4097);

			bad_reads += !!check_read(eng, INO_F0, b, 1, NULL, buf);
			bad_reads += !!check_read(eng, INO_F0, b - !!b, 1,
						  NULL, buf);
			bad_reads += !!check_read(eng, INO_F0, b - !!b, 2,
						  NULL, buf);
			bad_reads += !!check_read(eng, INO_F0, lo, 8194, NULL,
						  buf);
			bad_reads += !!check_read(eng, INO_F0, b, 0, NULL, buf);
			edges++;
		}
	}
	T_EQ(edges, 14 + 19 + 6);
	T_EQ(bad_reads, 0);
	nwc_engine_close(eng);
	free(buf);
}

static void test_random(void)
{
	struct nwc_engine *eng = open_engine(good_path, BUDGET, 2, true);
	uint8_t *buf = t_xmalloc(MAXREAD);
	struct nwc_stream st;
	uint64_t seed = 42;
	int bad_reads = 0;

	nwc_stream_init(&st);
	for (int i = 0; i < 2000; i++)
		bad_reads += !!random_read(eng, &seed, i % 2 ? &st : NULL, buf);
	T_EQ(bad_reads, 0);
	nwc_engine_close(eng);
	free(buf);
}

static void test_edges(void)
{
	struct nwc_engine *eng = open_engine(good_path, BUDGET, 2, true);
	uint8_t buf[64];

	T_EQ(nwc_engine_read(eng, INO_ROOT, buf, 1, 0, NULL), -EISDIR);
	T_EQ(nwc_engine_read(eng, INO_D, buf, 1, 0, NULL), -EISDIR);
	T_EQ(nwc_engine_read(eng, INO_EMPTY, buf, 1, 0, NULL), 0);
	T_EQ(nwc_engine_read(eng, INO_TINY, buf, 64, 0, NULL), 1);
	T_EQ(buf[0], xdata[INO_TINY][0]);
	T_EQ(nwc_engine_read(eng, INO_TINY, buf, 64, 1, NULL), 0);
	T_EQ(nwc_engine_read(eng, INO_F0, buf, 0, 100, NULL), 0);
	T_EQ(nwc_engine_read(eng, INO_F0, buf, 64, xsize[INO_F0], NULL), 0);
	T_EQ(nwc_engine_read(eng, INO_F0, buf, 64, UINT64_MAX, NULL), 0);
	T_EQ(nwc_engine_read(eng, INO_F0, buf, 64, xsize[INO_F0] - 10, NULL),
	     10);
	T_MEMEQ(buf, xdata[INO_F0] + xsize[INO_F0] - 10, 10);
	nwc_engine_close(eng);
}

struct worker {
	pthread_t tid;
	struct nwc_engine *eng;
	uint64_t seed;
	int reads;
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	uint8_t *buf = malloc(MAXREAD);
	struct nwc_stream st;

	if (!buf) {
		wk->failures = -1;
		return NULL;
	}
	nwc_stream_init(&st);
	for (int i = 0; i < wk->reads; i++) {
		/* Stretches of sequential reads keep the prefetcher busy. */
		if (t_rand(&wk->seed) % 4 == 0) {
			uint32_t ino = t_rand(&wk->seed) % 2 ? INO_F0 : INO_F1;
			uint64_t off = t_rand(&wk->seed) % xsize[ino];

			nwc_stream_init(&st);
			for (int k = 0; k < 8; k++, off += 4096)
				wk->failures += !!check_read(wk->eng, ino, off,
							     4096, &st, buf);
		} else {
			wk->failures += !!random_read(wk->eng, &wk->seed, &st,
						      buf);
		}
	}
	free(buf);
	return NULL;
}

static void run_workers(struct nwc_engine *eng, unsigned n, int reads)
{
	struct worker wk[8];

	for (unsigned i = 0; i < n; i++) {
		wk[i] = (struct worker){ .eng = eng, .seed = 1000 + i,
					 .reads = reads };
		T_EQ(pthread_create(&wk[i].tid, NULL, worker_main, &wk[i]), 0);
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(wk[i].tid, NULL);
		T_EQ(wk[i].failures, 0);
	}
}

static void test_threads(void)
{
	struct nwc_engine *eng = open_engine(good_path, BUDGET, 2, true);
	struct nwc_engine_stats s;

	run_workers(eng, 8, 300);
	nwc_engine_get_stats(eng, &s);
	T_CHECK(s.misses > 0);
	T_CHECK(s.evictions + s.used_up > 0);
	T_CHECK(s.prefetched > 0);
	T_EQ(s.fill_errors, 0);
	nwc_engine_close(eng);
}

/* Poll until @n blocks were decoded (prefetch runs asynchronously). */
static bool wait_decoded(struct nwc_engine *eng, uint64_t n)
{
	struct timespec ts = { 0, 1000000 };
	struct nwc_engine_stats s;

	for (int i = 0; i < 10000; i++) {
		nwc_engine_get_stats(eng, &s);
		if (s.misses >= n)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

static void test_prefetch(void)
{
	struct nwc_engine *eng = open_engine(good_path, 1u << 20, 2, true);
	uint8_t *buf = t_xmalloc(MAXREAD);
	struct nwc_engine_stats s0, s1;
	struct nwc_stream st;

	/* One sequential read of block 0 queues blocks 1..4. */
	nwc_stream_init(&st);
	T_EQ(check_read(eng, INO_F0, 0, 4096, &st, buf), 0);
	T_CHECK(wait_decoded(eng, 5));
	nwc_engine_get_stats(eng, &s0);
	T_EQ(s0.prefetched, 4);
	T_EQ(s0.misses, 5);
	/* Reading them (without a stream: no new prefetch) only hits. */
	T_EQ(check_read(eng, INO_F0, 4096, 4 * 4096, NULL, buf), 0);
	nwc_engine_get_stats(eng, &s1);
	T_EQ(s1.misses, s0.misses);
	T_EQ(s1.hits - s0.hits, 4);
	/* Across the end of an extent, into the next one. */
	nwc_stream_init(&st);
	T_EQ(check_read(eng, INO_F0, 45000, 1000, &st, buf), 0);
	T_EQ(check_read(eng, INO_F0, 46000, 4000, &st, buf), 0);
	T_CHECK(wait_decoded(eng, 5 + 3 + 4));
	nwc_engine_get_stats(eng, &s0);
	T_EQ(check_read(eng, INO_F0, 50000, 3 * 4096, NULL, buf), 0);
	nwc_engine_get_stats(eng, &s1);
	T_EQ(s1.misses, s0.misses);
	nwc_engine_close(eng);

	/* Not started, or no workers: reads work without prefetch. */
	for (unsigned threads = 0; threads < 2; threads++) {
		eng = open_engine(good_path, BUDGET, threads, !threads);
		nwc_stream_init(&st);
		for (uint64_t off = 0; off < xsize[INO_F0]; off += 4096)
			T_EQ(check_read(eng, INO_F0, off, 4096, &st, buf), 0);
		nwc_engine_get_stats(eng, &s0);
		T_EQ(s0.prefetched, 0);
		nwc_engine_close(eng);
	}
	free(buf);
}

/* Without prefetch one thread's counts are exact. */
static void test_stats(void)
{
	struct nwc_engine *eng = open_engine(good_path, BUDGET, 2, false);
	uint8_t *buf = t_xmalloc(MAXREAD);
	struct nwc_engine_stats s;
	uint64_t seed = 7;
	int bad_reads = 0;

	for (int i = 0; i < 500; i++)
		bad_reads += !!random_read(eng, &seed, NULL, buf);
	T_EQ(bad_reads, 0);
	nwc_engine_get_stats(eng, &s);
	T_CHECK(s.misses > 0);
	T_CHECK(s.hits > 0);
	T_CHECK(s.evictions > 0);
	T_EQ(s.waits, 0);
	T_EQ(s.fill_errors, 0);
	T_EQ(s.prefetched, 0);
	T_CHECK(s.cache_bytes <= BUDGET);
	T_CHECK(s.cache_entries > 0);
	T_EQ(s.misses - s.evictions - s.used_up, s.cache_entries);
	nwc_engine_close(eng);
	free(buf);
}

/*
 * A block whose every byte went to readers leaves the cache at once (the
 * kernel's page cache has it); one asked for again is decoded again, to
 * the same bytes.  Blocks of f0 are 4096 bytes.
 */
static void test_used_up(void)
{
	struct nwc_engine *eng = open_engine(good_path, BUDGET, 0, false);
	uint8_t *buf = t_xmalloc(MAXREAD);
	struct nwc_engine_stats s;

	/* Whole: decoded and gone. */
	T_EQ(check_read(eng, INO_F0, 0, 4096, NULL, buf), 0);
	nwc_engine_get_stats(eng, &s);
	T_EQ(s.misses, 1);
	T_EQ(s.used_up, 1);
	T_EQ(s.cache_entries, 0);
	T_EQ(s.cache_bytes, 0);
	/* In two halves, the second first: it stays until the other half. */
	T_EQ(check_read(eng, INO_F0, 4096 + 2048, 2048, NULL, buf), 0);
	nwc_engine_get_stats(eng, &s);
	T_EQ(s.cache_entries, 1);
	T_EQ(s.used_up, 1);
	T_EQ(check_read(eng, INO_F0, 4096, 2048, NULL, buf), 0);
	nwc_engine_get_stats(eng, &s);
	T_EQ(s.misses, 2);
	T_EQ(s.hits, 1);
	T_EQ(s.used_up, 2);
	T_EQ(s.cache_entries, 0);
	/* Asked for again: decoded again, the same bytes (check_read). */
	T_EQ(check_read(eng, INO_F0, 0, 3 * 4096, NULL, buf), 0);
	nwc_engine_get_stats(eng, &s);
	T_EQ(s.misses, 5);
	T_EQ(s.used_up, 5);
	nwc_engine_close(eng);
	free(buf);
}

/* Every band edge of the lossy tensors, from both sides and across. */
static void test_nwc_bands(void)
{
	struct nwc_engine *eng = open_engine(good_path, BUDGET, 2, true);
	const struct nwc_image *img = nwc_engine_image(eng);
	uint8_t *buf = t_xmalloc(MAXREAD);
	struct nwc_engine_stats s;
	int bad_reads = 0, edges = 0;

	for (uint32_t k = 0; k < NLT; k++) {
		const struct nwc_extent *e = nwc_image_extent(img, LEXT(k));
		uint32_t bl = ltens[k].band_rows * ltens[k].n *
			      nwc_dtype_size(ltens[k].dtype);

		T_EQ(e->codec, NWC_CODEC_NWC);
		T_EQ(e->file_off, ldata_off[k]);
		T_EQ(e->block_len, bl);
		T_EQ(e->nblocks, (ltens[k].m + ltens[k].band_rows - 1) /
					 ltens[k].band_rows);
		for (uint32_t j = 0; j <= e->nblocks; j++) {
			uint64_t b = e->file_off +
				     NWC_MIN((uint64_t)j * bl, e->len);

			bad_reads += !!check_read(eng, INO_LOSSY, b, 1, NULL,
						  buf);
			bad_reads += !!check_read(eng, INO_LOSSY, b - 1, 1,
						  NULL, buf);
			bad_reads += !!check_read(eng, INO_LOSSY, b - 1, 2,
						  NULL, buf);
			bad_reads += !!check_read(eng, INO_LOSSY, b - 7, 14,
						  NULL, buf);
			/* Three bands (or into the next extent) at once. */
			bad_reads += !!check_read(eng, INO_LOSSY, b - bl / 2,
						  2 * bl, NULL, buf);
			edges++;
		}
		/* The whole tensor in one read, and one element. */
		bad_reads += !!check_read(eng, INO_LOSSY, e->file_off, e->len,
					  NULL, buf);
		bad_reads += !!check_read(eng, INO_LOSSY,
					  e->file_off + e->len - 4, 4, NULL,
					  buf);
	}
	T_EQ(edges, 8 + 3);
	/* The whole file, from before the first band past the last. */
	bad_reads += !!check_read(eng, INO_LOSSY, 0, xsize[INO_LOSSY] + 100,
				  NULL, buf);
	T_EQ(bad_reads, 0);
	nwc_engine_get_stats(eng, &s);
	T_EQ(s.fill_errors, 0);
	nwc_engine_close(eng);
	free(buf);
}

/* A band is one cache entry; a sequential reader prefetches bands. */
static void test_nwc_prefetch(void)
{
	struct nwc_engine *eng = open_engine(good_path, 1u << 20, 2, false);
	uint32_t bl = ltens[0].band_rows * ltens[0].n * 4;
	uint8_t *buf = t_xmalloc(MAXREAD);
	struct nwc_engine_stats s0, s1;
	struct nwc_stream st;

	/* Without workers: one read inside band 2 fills exactly that band. */
	T_EQ(check_read(eng, INO_LOSSY, ldata_off[0] + 2 * bl + 100, 10, NULL,
			buf), 0);
	nwc_engine_get_stats(eng, &s0);
	T_EQ(s0.misses, 1);
	T_EQ(s0.cache_entries, 1);
	T_EQ(s0.cache_bytes, bl);
	/* The last band is short: 4 of 16 rows. */
	T_EQ(check_read(eng, INO_LOSSY, ldata_off[0] + 6 * bl, 1, NULL, buf),
	     0);
	nwc_engine_get_stats(eng, &s1);
	T_EQ(s1.cache_bytes - s0.cache_bytes, 4 * ltens[0].n * 4);
	nwc_engine_close(eng);

	/* With workers: a sequential run queues the following bands. */
	eng = open_engine(good_path, 1u << 20, 2, true);
	nwc_stream_init(&st);
	T_EQ(check_read(eng, INO_LOSSY, ldata_off[0], 1000, &st, buf), 0);
	T_EQ(check_read(eng, INO_LOSSY, ldata_off[0] + 1000, 1000, &st, buf),
	     0);
	T_CHECK(wait_decoded(eng, 1 + 4));
	nwc_engine_get_stats(eng, &s0);
	T_EQ(s0.prefetched, 4);
	T_EQ(check_read(eng, INO_LOSSY, ldata_off[0] + bl, 4 * bl, NULL, buf),
	     0);
	nwc_engine_get_stats(eng, &s1);
	T_EQ(s1.misses, s0.misses);
	T_EQ(s1.hits - s0.hits, 4);
	/* Sequentially through both tensors into the tail. */
	nwc_stream_init(&st);
	for (uint64_t off = 0; off < xsize[INO_LOSSY]; off += 777)
		T_EQ(check_read(eng, INO_LOSSY, off, 777, &st, buf), 0);
	nwc_engine_get_stats(eng, &s1);
	T_EQ(s1.fill_errors, 0);
	nwc_engine_close(eng);
	free(buf);
}

static void test_damage(void)
{
	struct nwc_engine *eng = open_engine(bad_path, BUDGET, 2, true);
	uint8_t *buf = t_xmalloc(MAXREAD);
	struct nwc_engine_stats s0, s1;
	struct nwc_stream st;
	int bad_reads = 0;

	/* Inside, across either edge, around, and the whole file. */
	for (unsigned i = 0; i < n_bad; i++) {
		uint64_t off = bad[i].off, len = bad[i].len;
		uint32_t ino = bad[i].ino;

		T_EQ(nwc_engine_read(eng, ino, buf, 1, off + len / 2, NULL),
		     -NWC_ECHECKSUM);
		T_EQ(nwc_engine_read(eng, ino, buf, 2, off - 1, NULL),
		     -NWC_ECHECKSUM);
		T_EQ(nwc_engine_read(eng, ino, buf, 2, off + len - 1, NULL),
		     -NWC_ECHECKSUM);
		T_EQ(nwc_engine_read(eng, ino, buf, len + 2000, off - 1000,
				     NULL),
		     -NWC_ECHECKSUM);
		T_EQ(nwc_engine_read(eng, ino, buf, MAXREAD, 0, NULL),
		     -NWC_ECHECKSUM);
		/* Right next to it is fine. */
		T_EQ(check_read(eng, ino, off - 3000, 3000, NULL, buf), 0);
		T_EQ(check_read(eng, ino, off + len, 3000, NULL, buf), 0);
	}
	/* The error is not cached: every read retries and fails again. */
	nwc_engine_get_stats(eng, &s0);
	for (int i = 0; i < 5; i++)
		T_EQ(nwc_engine_read(eng, bad[0].ino, buf, 10, bad[0].off,
				     NULL),
		     -NWC_ECHECKSUM);
	nwc_engine_get_stats(eng, &s1);
	T_EQ(s1.fill_errors - s0.fill_errors, 5);
	T_EQ(s1.misses - s0.misses, 5);

	/* A sequential reader meets the damage and gets past it. */
	nwc_stream_init(&st);
	for (uint64_t off = 0; off < xsize[INO_F0]; off += 4096)
		bad_reads += !!check_read(eng, INO_F0, off, 4096, &st, buf);
	T_EQ(bad_reads, 0);

	/* Concurrent readers, damaged and not. */
	run_workers(eng, 8, 150);

	/* And every undamaged range still reads back. */
	for (size_t f = 0; f < NWC_ARRAY_SIZE(files); f++) {
		uint32_t ino = files[f];

		for (uint64_t off = 0; off < xsize[ino]; off += 1000)
			bad_reads += !!check_read(eng, ino, off, 1000, NULL,
						  buf);
	}
	T_EQ(bad_reads, 0);
	nwc_engine_get_stats(eng, &s1);
	T_CHECK(s1.fill_errors > s0.fill_errors + 5);
	nwc_engine_close(eng);
	free(buf);
}

/*
 * What the daemon does: open (validate) in the parent, fork, start the
 * workers in the child and serve reads there, damaged blocks included.
 */
static void test_fork(void)
{
	struct nwc_engine *eng = open_engine(bad_path, BUDGET, 2, false);
	int status = -1;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		uint8_t *buf = malloc(MAXREAD);
		int fails = !buf || nwc_engine_start(eng);
		uint64_t seed = 99;

		for (int i = 0; buf && i < 300; i++)
			fails += !!random_read(eng, &seed, NULL, buf);
		run_workers(eng, 4, 50);
		nwc_engine_close(eng);
		free(buf);
		_exit(fails || t_failed ? 1 : 0);
	}
	T_CHECK(pid > 0);
	T_EQ(waitpid(pid, &status, 0), pid);
	T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	nwc_engine_close(eng);
}

static void test_open_errors(void)
{
	struct nwc_engine_opts opts = NWC_ENGINE_OPTS_DEFAULT;
	struct nwc_engine *eng = NULL;
	char path[600];
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
	int r1, r2;

	snprintf(path, sizeof(path), "%s/missing.nwc", tdir);
	fflush(stderr);
	dup2(null, STDERR_FILENO);
	r1 = nwc_engine_open(path, &opts, &eng);
	r2 = nwc_engine_open(tdir, &opts, &eng);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
	T_EQ(r1, -ENOENT);
	T_EQ(r2, -EINVAL);
	T_CHECK(!eng);
	nwc_engine_close(NULL);
}

int main(void)
{
	struct nwc_engine *eng;
	int ret;

	if (t_tmpdir(tdir, sizeof(tdir), "test-engine"))
		return 99;
	snprintf(good_path, sizeof(good_path), "%s/good.nwc", tdir);
	snprintf(bad_path, sizeof(bad_path), "%s/bad.nwc", tdir);
	setup_expected();
	ret = build_image(good_path);
	if (!ret) {
		eng = open_engine(good_path, BUDGET, 0, false);
		ret = build_damaged(eng);
		nwc_engine_close(eng);
	}
	if (ret) {
		fprintf(stderr, "cannot build the test images: %s\n",
			nwc_strerror(ret));
		return 99;
	}

	/* Undamaged image: no range may touch a "bad" block. */
	n_bad = 0;
	T_RUN(test_open_errors);
	T_RUN(test_edges);
	T_RUN(test_sequential);
	T_RUN(test_boundaries);
	T_RUN(test_random);
	T_RUN(test_threads);
	T_RUN(test_prefetch);
	T_RUN(test_stats);
	T_RUN(test_used_up);
	T_RUN(test_nwc_bands);
	T_RUN(test_nwc_prefetch);
	n_bad = NWC_ARRAY_SIZE(bad);
	/* Each damaged block logs one line per engine; that is expected. */
	T_RUN(test_damage);
	T_RUN(test_fork);

	unlink(good_path);
	unlink(bad_path);
	rmdir(tdir);
	for (uint32_t i = 0; i < N_INO; i++)
		free(xdata[i]);
	T_EXIT();
}
