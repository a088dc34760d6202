/* SPDX-License-Identifier: MIT */
/* tokens.c - read a file of 16-bit token ids. */
#include "codec/common/base.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/io.h"
#include "codec/common/log.h"
#include "mkfs/llm/llama.h"

int nwc_llama_read_tokens(const char *path, uint64_t max, uint32_t **tok,
		       size_t *n)
{
	struct stat sb;
	uint8_t *raw = NULL;
	size_t bytes;
	int fd, ret;

	*tok = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb)) {
		ret = -errno;
		nwc_err("%s: %s", path, nwc_strerror(ret));
		goto out_close;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size % 2 || !sb.st_size) {
		nwc_err("%s: %s", path, !S_ISREG(sb.st_mode) ?
			"not a regular file" : sb.st_size ?
			"odd size: not a file of 16-bit tokens" : "empty");
		ret = -EINVAL;
		goto out_close;
	}
	*n = (size_t)sb.st_size / 2;
	if (max && max < *n)
		*n = (size_t)max;
	bytes = *n * 2;
	raw = malloc(bytes);
	*tok = malloc(*n * sizeof(**tok));
	if (!raw || !*tok) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = nwc_pread_full(fd, raw, bytes, 0);
	if (ret) {
		if (ret == -NWC_ECORRUPT)
			ret = -EIO;
		nwc_err("%s: read failed: %s", path, nwc_strerror(ret));
		goto out_free;
	}
	for (size_t i = 0; i < *n; i++)
		(*tok)[i] = nwc_get_le16(raw + 2 * i);
	free(raw);
	close(fd);
	return 0;

out_free:
	free(raw);
	free(*tok);
	*tok = NULL;
out_close:
	if (fd >= 0)
		close(fd);
	return ret;
}
