/* SPDX-License-Identifier: MIT */
/* io.c - whole-buffer I/O loops and nwc_strerror(). */
#include "codec/nwc.h"

#include <unistd.h>

#include "codec/io.h"

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
