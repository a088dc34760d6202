/* SPDX-License-Identifier: MIT */
/* io.c - whole-buffer I/O loops, atomic file replacement, nwc_strerror(). */
#include "codec/common/base.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/common/io.h"
#include "codec/common/log.h"

int nwc_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -NWC_ECORRUPT;	/* file shorter than its tables say */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int nwc_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int nwc_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int nwc_write_file_atomic(const char *path, const void *buf, size_t len)
{
	size_t plen = strlen(path);
	char *tmp;
	int fd, ret;

	tmp = malloc(plen + sizeof(".tmp.XXXXXX"));
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
	fd = mkstemp(tmp);
	if (fd < 0) {
		ret = -errno;
		nwc_err("%s: cannot create a temporary file: %s", path,
			nwc_strerror(ret));
		goto out_free_tmp;
	}
	ret = nwc_write_full(fd, buf, len);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (ret) {
		nwc_err("%s: cannot write %s: %s", path, tmp, nwc_strerror(ret));
		goto out_unlink_tmp;
	}
	/* mkstemp makes 0600; a model file is as readable as any output */
	if (chmod(tmp, 0644) || rename(tmp, path)) {
		ret = -errno;
		nwc_err("%s: cannot replace it with %s: %s", path, tmp,
			nwc_strerror(ret));
		goto out_unlink_tmp;
	}
	free(tmp);
	return 0;

out_unlink_tmp:
	unlink(tmp);
out_free_tmp:
	free(tmp);
	return ret;
}

const char *nwc_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case NWC_ECORRUPT:
		return "corrupt structure";
	case NWC_ECHECKSUM:
		return "checksum mismatch";
	case NWC_EFEATURE:
		return "unsupported feature";
	case NWC_EFORMAT:
		return "malformed input";
	default:
		return strerror(err);
	}
}

int nwc_read_file(const char *path, size_t max, uint8_t **buf, size_t *len)
{
	struct stat sb;
	int fd, ret;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb)) {
		ret = -errno;
		goto out_close;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size < 0 ||
	    (uint64_t)sb.st_size > max || (uint64_t)sb.st_size > SIZE_MAX - 1) {
		ret = S_ISREG(sb.st_mode) ? -EFBIG : -EINVAL;
		goto out_close;
	}
	*len = (size_t)sb.st_size;
	*buf = malloc(*len + 1);
	if (!*buf) {
		ret = -ENOMEM;
		goto out_close;
	}
	ret = nwc_pread_full(fd, *buf, *len, 0);
	if (ret) {
		free(*buf);
		*buf = NULL;
		goto out_close;
	}
	(*buf)[*len] = '\0';
out_close:
	close(fd);
	return ret;
}

int nwc_open_unnamed(const char *dir, unsigned mode, int *fd)
{
	int ret;

	*fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, (mode_t)mode);
	if (*fd >= 0)
		return 0;
	ret = -errno;
	/* What kernels and file systems without O_TMPFILE answer. */
	if (ret == -EOPNOTSUPP || ret == -EISDIR || ret == -EINVAL)
		ret = -EOPNOTSUPP;
	return ret;
}
