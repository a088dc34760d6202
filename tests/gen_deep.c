/* SPDX-License-Identifier: MIT */
/*
 * gen_deep.c - write an nwc image of a tree DEPTH directories deep ("d"
 * inside "d" ...), with a file "leaf.txt" at the bottom and a setuid file
 * "suid" and a file whose name holds control characters at the top: the
 * inputs that mkfs.nwc cannot take from a real directory (paths longer
 * than PATH_MAX) but a crafted image can hold.  Usage: gen_deep DEPTH IMAGE
 */
#include "codec/common/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "codec/common/log.h"
#include "codec/image/writer.h"
#include "codec/registry/registry.h"

static int add_file(struct nwc_writer *w, uint32_t dir, const char *name,
		    size_t name_len, uint32_t mode, const char *text)
{
	struct nwc_wextent e = {
		.len = strlen(text),
		.block_len = 4096,
		.codec = NWC_CODEC_RAW,
		.tensor = NWC_NO_TENSOR,
	};
	uint32_t id, ext;
	int ret;

	ret = nwc_writer_add_node(w, dir, name, name_len, S_IFREG | mode, 0, 0,
				  &id);
	if (!ret)
		ret = nwc_writer_add_extent(w, id, &e, &ext);
	if (!ret)
		ret = nwc_writer_add_block(w, ext, text, e.len,
					   (uint32_t)e.len);
	return ret;
}

int main(int argc, char **argv)
{
	struct nwc_writer *w;
	uint32_t dir = 0;
	long depth;
	int ret;

	nwc_log_set_prefix("gen_deep");
	if (argc != 3 || (depth = strtol(argv[1], NULL, 10)) < 1) {
		fprintf(stderr, "usage: gen_deep DEPTH IMAGE\n");
		return 1;
	}
	ret = nwc_writer_create(argv[2], 12, true, nwc_codecs_write(), &w);
	if (ret)
		return 2;
	ret = add_file(w, 0, "suid", 4, 04755, "setuid\n");
	if (!ret)
		ret = add_file(w, 0, "bell\a\nname", 10, 0644, "control\n");
	for (long i = 0; i < depth && !ret; i++)
		ret = nwc_writer_add_node(w, dir, "d", 1, S_IFDIR | 0755, 0, 0,
					  &dir);
	if (!ret)
		ret = add_file(w, dir, "leaf.txt", 8, 0644, "bottom\n");
	if (!ret)
		ret = nwc_writer_finish(w);
	else
		nwc_writer_abort(w);
	if (ret) {
		fprintf(stderr, "gen_deep: %s\n", nwc_strerror(ret));
		return 2;
	}
	return 0;
}
