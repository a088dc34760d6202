/* SPDX-License-Identifier: MIT */
/* quant.c - RTN and ECSQ baselines shared by codecbench and quantize. */
#include "codec/common/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/quant.h"
#include "codec/common/convert.h"
#include "codec/nwc/entropy.h"

static float f16_round(float x)
{
	return nwc_f16_to_f32(nwc_f32_to_f16(x));
}

void nwc_quant_rtn(const float *w, size_t rows, size_t cols,
		   unsigned int bits, size_t group, float *what,
		   uint64_t *total_bits, double *err2)
{
	const float qmax = (float)((1u << bits) - 1);

	for (size_t r = 0; r < rows; r++) {
		const float *row = w + r * cols;

		for (size_t j = 0; j < cols; j += group) {
			size_t len = NWC_MIN(group, cols - j);
			float mn = row[j], mx = row[j], s, m, inv;

			for (size_t k = 1; k < len; k++) {
				mn = fminf(mn, row[j + k]);
				mx = fmaxf(mx, row[j + k]);
			}
			s = f16_round((mx - mn) / qmax);
			m = f16_round(mn);
			inv = s > 0 ? 1.0f / s : 0;
			for (size_t k = 0; k < len; k++) {
				float q = nearbyintf((row[j + k] - m) * inv);
				float v;
				double e;

				q = fminf(fmaxf(q, 0), qmax);
				v = q * s + m;
				if (what)
					what[r * cols + j + k] = v;
				e = (double)row[j + k] - v;
				*err2 += e * e;
			}
			*total_bits += len * bits + 32;
		}
	}
}

void nwc_quant_row_scales(const float *w, size_t rows, size_t cols,
			  float *scale)
{
	for (size_t r = 0; r < rows; r++) {
		const float *row = w + r * cols;
		double sum = 0, sq = 0, var;

		for (size_t j = 0; j < cols; j++) {
			sum += row[j];
			sq += (double)row[j] * row[j];
		}
		var = sq / cols - (sum / cols) * (sum / cols);
		scale[r] = f16_round((float)sqrt(fmax(var, 0)));
		if (!(scale[r] > 0))
			scale[r] = f16_round((float)sqrt(sq / cols));
	}
}

int nwc_quant_ecsq_create(size_t max_n, struct nwc_quant_ecsq **out)
{
	struct nwc_quant_ecsq *eb;

	if (!max_n || max_n > SIZE_MAX / sizeof(int32_t))
		return -EINVAL;
	eb = calloc(1, sizeof(*eb));
	if (!eb)
		return -ENOMEM;
	eb->max_n = max_n;
	eb->cap = nwc_ents_bound(max_n);
	eb->q = malloc(max_n * sizeof(*eb->q));
	eb->dec = malloc(max_n * sizeof(*eb->dec));
	eb->stream = malloc(eb->cap);
	if (!eb->q || !eb->dec || !eb->stream) {
		nwc_quant_ecsq_free(eb);
		return -ENOMEM;
	}
	*out = eb;
	return 0;
}

void nwc_quant_ecsq_free(struct nwc_quant_ecsq *eb)
{
	if (!eb)
		return;
	free(eb->q);
	free(eb->dec);
	free(eb->stream);
	free(eb);
}

/* Bits of an escaped value: a 3-bit nibble count and the nibbles. */
static uint32_t nibbles(int32_t v)
{
	uint32_t u = (uint32_t)v << 1 ^ (uint32_t)(v >> 31);

	return u ? (35 - (uint32_t)__builtin_clz(u)) / 4 : 1;
}

/* n log2(T / n), 0 for n = 0. */
static double info(double n, double total)
{
	return n > 0 ? n * log2(total / n) : 0;
}

/*
 * Pick the table range for @q: [qmin, qmax] cut to 4095 values around 0,
 * then ends dropped to the escape while that saves bits (ideal code
 * lengths plus 16 bits per table entry).  Fills @cnt (4095 entries).
 */
static void choose_range(const int32_t *q, size_t n, int32_t *lo_out,
			 uint32_t *n_out, uint64_t *cnt, uint64_t *esc_out)
{
	int32_t qmin = q[0], qmax = q[0], lo, hi;
	uint64_t esc = 0;
	double total = (double)n;

	for (size_t i = 1; i < n; i++) {
		qmin = NWC_MIN(qmin, q[i]);
		qmax = NWC_MAX(qmax, q[i]);
	}
	lo = NWC_MAX(qmin, -NWC_QUANT_HALF_WINDOW);
	hi = NWC_MIN(qmax, lo + 2 * NWC_QUANT_HALF_WINDOW);
	memset(cnt, 0, (size_t)(hi - lo + 1) * sizeof(*cnt));
	for (size_t i = 0; i < n; i++) {
		if (q[i] >= lo && q[i] <= hi)
			cnt[q[i] - lo]++;
		else
			esc++;
	}
	while (hi > lo) {
		uint64_t cl = cnt[0], ch = cnt[hi - lo];
		double base = info((double)esc, total);
		double dl = info((double)(esc + cl), total) - base -
			    info((double)cl, total) +
			    cl * (3 + 4.0 * nibbles(lo)) - 16;
		double dh = info((double)(esc + ch), total) - base -
			    info((double)ch, total) +
			    ch * (3 + 4.0 * nibbles(hi)) - 16;

		if (dl >= 0 && dh >= 0)
			break;
		if (dl < dh) {
			esc += cl;
			memmove(cnt, cnt + 1, (size_t)(hi - lo) * sizeof(*cnt));
			lo++;
		} else {
			esc += ch;
			hi--;
		}
	}
	*lo_out = lo;
	*n_out = (uint32_t)(hi - lo + 1);
	*esc_out = esc;
}

int nwc_quant_ecsq(struct nwc_quant_ecsq *eb, const float *w, size_t rows,
		   size_t cols, const float *scale, double step, float *what,
		   uint64_t *total_bits, double *err2)
{
	const size_t n = rows * cols;
	struct nwc_qdist *d;
	uint64_t esc;
	uint32_t nsym;
	int32_t lo;
	ssize_t len;
	int ret;

	if (!n || n / cols != rows || n > eb->max_n)
		return -EINVAL;
	for (size_t r = 0; r < rows; r++) {
		const float *row = w + r * cols;
		double s = scale[r] * step, inv = s > 0 ? 1 / s : 0;

		for (size_t j = 0; j < cols; j++) {
			double q = nearbyint(row[j] * inv), e;

			q = fmin(fmax(q, -1e9), 1e9);
			eb->q[r * cols + j] = (int32_t)q;
			if (what)
				what[r * cols + j] = (float)(q * s);
			e = row[j] - q * s;
			*err2 += e * e;
		}
	}
	choose_range(eb->q, n, &lo, &nsym, eb->cnt, &esc);
	ret = nwc_qdist_from_counts(lo, nsym, eb->cnt, esc, &d);
	if (ret)
		return ret;
	len = nwc_ents_encode((const struct nwc_qdist *const *)&d, NULL, eb->q,
			      n, eb->stream, eb->cap);
	if (len < 0) {
		ret = (int)len;
		goto out_free_d;
	}
	/* Decode too: the rate is only real if the stream decodes. */
	ret = nwc_ents_decode((const struct nwc_qdist *const *)&d, NULL,
			      eb->dec, n, eb->stream, (size_t)len);
	if (!ret && memcmp(eb->q, eb->dec, n * sizeof(*eb->q)))
		ret = -NWC_ECORRUPT;
	*total_bits += 8 * ((uint64_t)len + nwc_qdist_saved_size(d)) +
		       16 * (uint64_t)rows;
out_free_d:
	nwc_qdist_free(d);
	return ret;
}
