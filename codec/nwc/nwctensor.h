/* SPDX-License-Identifier: MIT */
/*
 * nwctensor.h - NWC coding of one 2-D weight matrix: per-row scales,
 * per-column importance levels, chunks of NWC_CHUNK (16) rows of one column
 * through a codec model, and row bands coded as independent streams so that
 * a read decodes only the bands it touches.
 *
 *	// mkfs: the encoder, codec/nwc/tenc.h
 *	nwc_tenc_encode(model, 3, w, m, n, level, &opts, &enc);
 *	write enc->side (enc->side_len bytes) and each band enc->band[b]
 *	nwc_tenc_free(enc);
 *
 *	// reader: this header
 *	nwc_tside_parse(side, side_len, &ts);
 *	nwc_tside_check_model(ts, model);
 *	nwc_band_decode(model, ts, b, payload, len, dtype, dst, raw_len, s);
 *
 * A matrix W has m rows (output channels) and n columns (inputs), stored
 * row-major in the served file.  Row r is divided by its scale s_r; the
 * chunk (k, j) is rows 16k .. 16k+15 of column j, padded with zeros past
 * row m (those latents are coded and their outputs dropped).  Band b is
 * rows [b R, min(m, (b+1) R)) for R = band_rows, a multiple of NWC_CHUNK,
 * so a band is a contiguous byte range of the served tensor.
 *
 * Side data (normative), little-endian, NWC_TSIDE_HDR bytes then arrays:
 *
 *	off size
 *	0   4    magic "NWCT"
 *	4   2    u16 version (2)
 *	6   2    u16 flags: NWC_TSIDE_F16 = scales are binary16, else f32;
 *		 NWC_TSIDE_LANES = band payloads in the lanes layout (below);
 *		 NWC_TSIDE_EXACT = exact weights follow the levels (below);
 *		 any other bit is an unknown feature
 *	8   4    u32 m, rows (>= 1)
 *	12  4    u32 n, columns (>= 1)
 *	16  4    u32 R, band rows (multiple of 16, >= 16)
 *	20  2    u16 model, index into the image's MODELS section
 *	22  1    u8 quantizer: NWC_QUANT_ROUND or NWC_QUANT_TCQ
 *	23  1    u8 B, bits per level: 1, 2, 4 or 8
 *	24       m scales (f32 or f16, finite), then n levels (each < the
 *		 model's Q) of B bits, level j at bit B j of the array
 *		 counted from the least significant bit of its first byte:
 *		 ceil(n B / 8) bytes, unused high bits 0.  The encoder uses
 *		 the smallest B that holds its largest level, so the usual
 *		 4 levels cost a quarter of a byte per column.
 *	     With NWC_TSIDE_EXACT only: u32 K, 1 <= K <= NWC_TSIDE_MAX_EXACT(m,
 *		 n), then K entries of 12 bytes: u32 row (< m), u32 column
 *		 (< n), f32 value (finite), in strictly increasing order of
 *		 row * n + column.  The decoder writes each value, rounded to
 *		 the tensor's dtype, in place of what the codec gives there:
 *		 weights far outside their row's spread (mkfs.nwc --exact-sd)
 *		 would otherwise set the row's scale and drown the rest.
 *
 * Band payload (normative): one nwc_ents stream (entropy.h) of the band's
 * latent symbols.  Each column's latents in the band, chunk k then latent
 * channel c, are one sequence v_0, v_1, ...  Without NWC_TSIDE_LANES the
 * sequences follow each other, column j after column j - 1
 * (nwc_ents_encode()); with it the stream has the lanes layout
 * (nwc_ents_encode_lanes(): columns 16g .. 16g + 15 side by side, value
 * by value, sixteen rANS states), which mkfs.nwc writes since 2026-12 and
 * a vector decoder reads sixteen columns at a time.  With NWC_QUANT_ROUND symbol v of
 * channel c is coded with table c and means latent v + median_c.  With
 * NWC_QUANT_TCQ each sequence runs an 8-state trellis from state 0 (see
 * codec/nwc/nwctensor.c): in state t the symbol is coded with table c if
 * union(t) = 0, else with the model's half-offset table c, and means latent
 * v + union(t) / 2 + median_c; the next state follows from t and v.
 * Decoded latents go through the model's decoder with the column's level,
 * and are multiplied by the row scale and rounded to the tensor's dtype.
 *
 * Decoding is deterministic for a given machine type; the entropy-coded
 * symbols are bit-exact everywhere.
 *
 * This header is the reader's: the side record and band decoding,
 * nwctensor.c in libnwcdec.a.  The encoder (nwc_tenc_*) is tenc.h, tenc.c
 * in libnwcenc.a, which the read-only daemon does not link.
 *
 * Validation: nwc_tside_parse() checks a record whole and
 * nwc_tside_check_model() checks it against its model, once, when an
 * image is opened; nwc_band_decode() trusts the parsed record, repeats
 * only the cheap checks of its arguments (band, lengths, model fit) and
 * checks every payload byte.
 *
 * Thread safety: a parsed side is immutable; a scratch belongs to one
 * thread.
 */
#ifndef NWC_NWCTENSOR_H
#define NWC_NWCTENSOR_H

#include "codec/common/base.h"
#include "codec/image/format.h"
#include "codec/nwc/nwcmodel.h"

#define NWC_TSIDE_MAGIC "NWCT"
#define NWC_TSIDE_VERSION 2u
#define NWC_TSIDE_HDR 24u
#define NWC_TSIDE_F16 0x1u
#define NWC_TSIDE_LANES 0x2u
#define NWC_TSIDE_EXACT 0x4u
#define NWC_TSIDE_EXACT_BYTES 12u	/* one exact weight's entry */
/* At most n / 64 + 1 exact weights a row on average: an encoder that
 * wants more has a matrix the codec does not suit. */
#define NWC_TSIDE_MAX_EXACT(m, n) ((uint64_t)(m) * ((n) / 64 + 1))

enum nwc_quant {
	NWC_QUANT_ROUND = 0,	/* latents rounded around the medians */
	NWC_QUANT_TCQ = 1,	/* 8-state trellis-coded quantization */
};

/* One weight stored exactly (NWC_TSIDE_EXACT). */
struct nwc_exact {
	uint32_t row, col;
	float value;
};

/* A parsed, validated side record; arrays point into the same allocation. */
struct nwc_tside {
	uint32_t m, n, band_rows;
	uint16_t model;
	uint8_t quant;
	bool scale_f16;
	bool lanes;		/* NWC_TSIDE_LANES */
	float *scale;		/* m row scales, as the decoder uses them */
	uint8_t *level;		/* n column levels */
	uint32_t nexact;	/* exact weights, in row-major order */
	struct nwc_exact *exact;
};

/* Bytes of a side record for this shape, bits per level and number of
 * exact weights (0: no NWC_TSIDE_EXACT). */
size_t nwc_tside_size(uint32_t m, uint32_t n, bool scale_f16,
		      unsigned int level_bits, uint32_t nexact);

/*
 * nwc_tside_parse() - validate @len bytes (magic, version, flags, shape,
 * band rows, lengths, finite scales, exact weights) and return a malloc'd copy in *out
 * (free with free()).  -NWC_ECORRUPT for malformed data, -NWC_EFEATURE for
 * an unknown version, flag or quantizer, -ENOMEM.
 */
int nwc_tside_parse(const uint8_t *buf, size_t len, struct nwc_tside **out);

/* nwc_tside_check_model() - the levels fit @model (-NWC_ECORRUPT if not)
 * and the model has what the quantizer needs (-NWC_EFEATURE if not). */
int nwc_tside_check_model(const struct nwc_tside *ts,
			  const struct nwc_model *model);

/* Number of bands, and the rows of band @b (0 if out of range). */
uint32_t nwc_tside_bands(const struct nwc_tside *ts);
uint32_t nwc_tside_band_rows(const struct nwc_tside *ts, uint32_t b);

/*
 * nwc_tside_band_rows_for() - the default band height for a block size:
 * the largest multiple of NWC_CHUNK rows whose bytes (rows * n * elem) fit
 * @block_size, but at least 16 and at most m rounded up to 16.
 */
uint32_t nwc_tside_band_rows_for(uint32_t m, uint32_t n, size_t elem,
				 size_t block_size);

struct nwc_tensor_scratch;
int nwc_tensor_scratch_create(struct nwc_tensor_scratch **out);
void nwc_tensor_scratch_free(struct nwc_tensor_scratch *s);

/*
 * Tests: with @on, band decodes through @s transpose the lanes layout's
 * latents and run the decoder network row-major (a folded one as on CPUs
 * without the lanes kernel, nwc_model_lanes_ok(); a linear one through
 * nwc_net_forward_linear()), then transpose the rows back; the bytes are
 * the same.
 */
void nwc_tensor_scratch_rowmajor(struct nwc_tensor_scratch *s, bool on);

/*
 * nwc_band_decode() - decode band @b from its payload into @dst: the band's
 * rows in the tensor's @dtype (NWC_DTYPE_F32, F16 or BF16), exactly
 * @dst_len = rows * n * elem bytes.  -NWC_ECORRUPT for a bad stream,
 * -EINVAL for a bad band, dtype or length, -ENOMEM.
 */
int nwc_band_decode(const struct nwc_model *model, const struct nwc_tside *ts,
		    uint32_t b, const uint8_t *src, size_t len,
		    enum nwc_dtype dtype, uint8_t *dst, size_t dst_len,
		    struct nwc_tensor_scratch *s);

#endif /* NWC_NWCTENSOR_H */
