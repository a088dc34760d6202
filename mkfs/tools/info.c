/* SPDX-License-Identifier: MIT */
/*
 * info.c - `nwc info IMAGE [--json]`: what an image holds and how it was
 * made, from its tables and its INFO section (format.h 11): version and
 * features, creation time, tool and command, every file with its size,
 * stored bytes, codecs and whether it is lossy or exact, every tensor
 * with its codec, bits per weight and SQNR, the codec models, totals.
 * Reads the metadata only (nwc_image_open validates it); no block is
 * decoded.
 */
#include "codec/common/base.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "codec/common/cli.h"
#include "codec/common/log.h"
#include "codec/image/format.h"
#include "codec/image/image.h"
#include "codec/registry/registry.h"
#include "mkfs/tools/info.h"

/* Output: plain text for people, or JSON. */
struct out {
	FILE *f;
	bool json;
};

/* @len bytes of @s as a JSON string. */
static void jstr(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void jnum(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

static double sqnr(double sig, double err)
{
	return err > 0 ? 10 * log10(sig / err) : INFINITY;
}

static void put_tensor(const struct out *o, const struct nwc_image *img,
		       uint32_t t, bool first)
{
	const struct nwc_tensor *x = nwc_image_tensor(img, t);
	bool lossy = x->extent != UINT32_MAX &&
		     nwc_image_extent_lossy(img, x->extent);
	uint64_t w = 1, stored = nwc_image_tensor_stored(img, t);
	double sig, err, bits;
	char codec[32], *name;
	bool known;

	for (unsigned d = 0; d < x->ndim; d++)
		w *= x->shape[d];
	bits = w ? 8.0 * (double)stored / (double)w : 0;
	nwc_image_codec_name(img, x->extent != UINT32_MAX ?
				      nwc_image_extent(img, x->extent)->codec :
				      NWC_CODEC_RAW,
			     x->extent != UINT32_MAX ?
				     nwc_image_extent(img, x->extent)->codec_arg : 0,
			     x->side, codec, sizeof(codec));
	if (x->extent == UINT32_MAX)
		snprintf(codec, sizeof(codec), "-");
	known = !nwc_image_tensor_error(img, t, &sig, &err);
	if (o->json) {
		fputs(first ? "\n" : ",\n", o->f);
		fputs("        {\"name\": ", o->f);
		jstr(o->f, x->name, x->name_len);
		fprintf(o->f, ", \"dtype\": \"%s\", \"shape\": [",
			nwc_dtype_name(x->dtype));
		for (unsigned d = 0; d < x->ndim; d++)
			fprintf(o->f, "%s%llu", d ? ", " : "",
				(unsigned long long)x->shape[d]);
		fprintf(o->f, "], \"codec\": \"%s\", \"lossy\": %s, \"bytes\": %llu, \"stored\": %llu, \"bits_per_weight\": ",
			codec, lossy ? "true" : "false",
			(unsigned long long)x->data_len,
			(unsigned long long)stored);
		jnum(o->f, bits);
		fputs(", \"sqnr_db\": ", o->f);
		if (known)
			jnum(o->f, sqnr(sig, err));
		else
			fputs(lossy ? "null" : "\"exact\"", o->f);
		fputc('}', o->f);
		return;
	}
	name = nwc_escape(x->name, x->name_len);
	fprintf(o->f, "    %-5s %-13s %8.3f  ", nwc_dtype_name(x->dtype), codec,
		bits);
	if (!lossy)
		fprintf(o->f, "%9s", "exact");
	else if (known && err > 0)
		fprintf(o->f, "%6.2f dB", sqnr(sig, err));
	else
		fprintf(o->f, "%9s", known ? "inf" : "?");
	fprintf(o->f, "  %s\n", name ? name : "?");
	free(name);
}

static void put_files(const struct out *o, const struct nwc_image *img,
		      struct nwc_fidelity *total, uint64_t *stored_total)
{
	struct nwc_image_info info;
	bool first = true;

	nwc_image_get_info(img, &info);
	memset(total, 0, sizeof(*total));
	*stored_total = 0;
	if (o->json)
		fputs("  \"files\": [", o->f);
	else
		fprintf(o->f, "\n%-6s %14s %14s %-13s %s\n", "", "size",
			"stored", "codec", "path");
	for (uint32_t ino = 0; ino < info.n_inodes; ino++) {
		const struct nwc_inode *n = nwc_image_inode(img, ino);
		uint32_t tf, tc;
		struct nwc_fidelity fd;
		uint64_t stored;
		char codecs[64], *path;

		if (!S_ISREG(n->mode))
			continue;
		stored = nwc_image_file_stored(img, ino);
		nwc_image_file_tensors(img, ino, &tf, &tc);
		*stored_total += stored;
		nwc_image_file_fidelity(img, ino, &fd);
		total->tensors += fd.tensors;
		total->weights += fd.weights;
		total->stored += fd.stored;
		total->with_err += fd.with_err;
		total->sig += fd.sig;
		total->err += fd.err;
		nwc_image_file_codecs(img, ino, codecs, sizeof(codecs));
		path = nwc_image_inode_path(img, ino);
		if (o->json) {
			fputs(first ? "\n    {\"path\": " : ",\n    {\"path\": ",
			      o->f);
			jstr(o->f, path ? path : "?", path ? strlen(path) : 1);
			fprintf(o->f, ", \"size\": %llu, \"stored\": %llu, \"codecs\": \"%s\", \"lossy\": %s",
				(unsigned long long)n->size,
				(unsigned long long)stored, codecs,
				fd.lossy ? "true" : "false");
			if (tc) {
				fputs(", \"tensors\": [", o->f);
				for (uint32_t t = tf; t < tf + tc; t++)
					put_tensor(o, img, t, t == tf);
				fputs("\n      ]", o->f);
			}
			fputc('}', o->f);
		} else {
			char *e = path ? nwc_escape(path, strlen(path)) : NULL;

			fprintf(o->f, "%-6s %14llu %14llu %-13s %s\n",
				fd.lossy ? "LOSSY" : "exact",
				(unsigned long long)n->size,
				(unsigned long long)stored, codecs,
				e ? e : "?");
			free(e);
			for (uint32_t t = tf; t < tf + tc; t++)
				put_tensor(o, img, t, t == tf);
		}
		free(path);
		first = false;
	}
	if (o->json)
		fputs("\n  ],\n", o->f);
}

/* The INFO text's "key=value" lines, as text or JSON members. */
static void put_made(const struct out *o, const struct nwc_image *img)
{
	const char *text, *p, *end;
	int64_t created;
	size_t len;
	char when[64] = "?";

	if (nwc_image_made(img, &created, &text, &len)) {
		if (o->json)
			fputs("  \"created\": null,\n", o->f);
		else
			fputs("created:    unknown (made before images recorded it)\n",
			      o->f);
		return;
	}
	nwc_format_utc(created, when, sizeof(when));
	if (o->json)
		fprintf(o->f, "  \"created\": \"%s\",\n", when);
	else
		fprintf(o->f, "created:    %s\n", when);
	for (p = text, end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *eq;

		eq = memchr(p, '=', (size_t)(eol - p));
		if (eq && o->json) {
			fputs("  ", o->f);
			jstr(o->f, p, (size_t)(eq - p));
			fputs(": ", o->f);
			jstr(o->f, eq + 1, (size_t)(eol - eq - 1));
			fputs(",\n", o->f);
		} else if (eq) {
			char *k = nwc_escape(p, (size_t)(eq - p));
			char *v = nwc_escape(eq + 1, (size_t)(eol - eq - 1));

			if (k && v)
				fprintf(o->f, "%-11s %s\n", strcat(k, ":"), v);
			free(k);
			free(v);
		}
		p = eol + 1;
	}
}

/* The names of the codecs whose feature bits @incompat sets: "nwc+planes". */
static const char *feature_names(uint64_t incompat, char *buf, size_t len)
{
	const struct nwc_codec_set *set = nwc_codecs_read();
	size_t n = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < set->n_dec && n < len; i++)
		if (set->dec[i]->incompat & incompat)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
					      n ? "+" : "", set->dec[i]->name);
	return n ? buf : "none";
}

static void put_image(const struct out *o, const struct nwc_image *img,
		      const char *path)
{
	struct nwc_image_info info;
	struct nwc_fidelity tot;
	uint64_t stored;

	nwc_image_get_info(img, &info);
	if (o->json) {
		fputs("{\n  \"image\": ", o->f);
		jstr(o->f, path, strlen(path));
		fprintf(o->f, ",\n  \"format\": %u,\n  \"incompat\": %llu,\n  \"image_size\": %llu,\n  \"block_size\": %u,\n",
			NWC_VERSION, (unsigned long long)info.incompat,
			(unsigned long long)info.image_size,
			1u << info.block_log2);
	} else {
		char *e = nwc_escape(path, strlen(path));
		char names[64];

		fprintf(o->f, "image:      %s, %llu bytes, format %u, features %s, blocks of %u bytes\n",
			e ? e : "?", (unsigned long long)info.image_size,
			NWC_VERSION,
			feature_names(info.incompat, names, sizeof(names)),
			1u << info.block_log2);
		free(e);
	}
	put_made(o, img);
	put_files(o, img, &tot, &stored);
	if (o->json) {
		fprintf(o->f, "  \"totals\": {\"files_bytes\": %llu, \"stored\": %llu, \"lossy_tensors\": %u, \"lossy_weights\": %llu, \"bits_per_weight\": ",
			(unsigned long long)info.total_size,
			(unsigned long long)stored, tot.tensors,
			(unsigned long long)tot.weights);
		jnum(o->f, tot.weights ? 8.0 * (double)tot.stored /
						 (double)tot.weights : 0);
		fputs(", \"sqnr_db\": ", o->f);
		if (tot.tensors && tot.with_err == tot.tensors)
			jnum(o->f, sqnr(tot.sig, tot.err));
		else
			fputs("null", o->f);
		fputs("}\n}\n", o->f);
		return;
	}
	fputc('\n', o->f);
	nwc_image_print_codecs(img, o->f);
	fprintf(o->f, "total:      %llu bytes in files, %llu stored (%.1f%%)\n",
		(unsigned long long)info.total_size,
		(unsigned long long)stored,
		info.total_size ? 100.0 * (double)stored /
					  (double)info.total_size : 100.0);
	if (!tot.tensors) {
		fputs("lossy:      none: every file is exact\n", o->f);
		return;
	}
	fprintf(o->f, "lossy:      %u tensors, %llu weights, %.3f bits/weight",
		tot.tensors, (unsigned long long)tot.weights,
		8.0 * (double)tot.stored / (double)tot.weights);
	if (tot.with_err == tot.tensors)
		fprintf(o->f, ", SQNR %.2f dB", sqnr(tot.sig, tot.err));
	fputc('\n', o->f);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: nwc info [--json] IMAGE\n"
"Print what an nwc image holds and how it was made: format and features,\n"
"creation time, tool and command, every file (size, stored bytes, codecs,\n"
"LOSSY or exact) with its tensors (dtype, codec, bits per weight, SQNR),\n"
"the codec models and the totals.  Reads the metadata only.\n"
"\n"
"  --json      the same as one JSON object\n"
"  -h, --help  show this help\n"
"\n"
"Exit status: 0 success, 1 usage error, 2 I/O error, 3 not a valid image.\n");
}

int nwc_info_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct out o = { .f = stdout };
	struct nwc_image *img;
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'J':
			o.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return NWC_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		nwc_err("info: expected one IMAGE (see nwc info --help)");
		return NWC_EXIT_USAGE;
	}
	ret = nwc_image_open(argv[optind], nwc_codecs_read(), &img);
	if (ret)
		return ret == -NWC_ECORRUPT || ret == -NWC_ECHECKSUM ||
		       ret == -NWC_EFEATURE ? NWC_EXIT_DATA : NWC_EXIT_IO;
	put_image(&o, img, argv[optind]);
	nwc_image_close(img);
	if (fflush(stdout)) {
		nwc_err("info: cannot write the output");
		return NWC_EXIT_IO;
	}
	return 0;
}
