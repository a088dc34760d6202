/* SPDX-License-Identifier: MIT */
/*
 * io.h - whole-buffer I/O, atomic file replacement and small error helpers.
 * Loops over EINTR and short transfers; returns 0 or -errno.  Thread-safe
 * (pread/pwrite only, no shared file offset).
 */
#ifndef NWC_IO_H
#define NWC_IO_H

#include "codec/common/base.h"

/* Read exactly @len bytes at @off; a short file gives -NWC_ECORRUPT. */
int nwc_pread_full(int fd, void *buf, size_t len, uint64_t off);

/*
 * nwc_read_file() - the whole regular file @path, of at most @max bytes,
 * into a malloc'd *buf of *len bytes plus a terminating NUL.  Logs nothing:
 * -EINVAL (not a regular file), -EFBIG (larger than @max), -NWC_ECORRUPT
 * (it shrank while read), or another negative errno.
 */
int nwc_read_file(const char *path, size_t max, uint8_t **buf, size_t *len);

/* Write exactly @len bytes at @off. */
int nwc_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Write exactly @len bytes at the current offset. */
int nwc_write_full(int fd, const void *buf, size_t len);

/*
 * nwc_open_unnamed() - a new file without a name in directory @dir
 * (O_TMPFILE, read-write, close-on-exec, @mode less the umask), so that
 * nothing is left behind however the process ends; linkat() can name it.
 * -EOPNOTSUPP where @dir's file system cannot; other errors as open(2)
 * gives them.  Logs nothing.
 */
int nwc_open_unnamed(const char *dir, unsigned mode, int *fd);

/*
 * nwc_write_file_atomic() - replace @path by @len bytes at @buf: written to
 * a temporary file beside it, fsync'd, made mode 0644 and renamed over
 * @path, so readers see the old file or the whole new one.  Errors are
 * logged with the path; returns 0 or a negative errno.
 */
int nwc_write_file_atomic(const char *path, const void *buf, size_t len);

#endif /* NWC_IO_H */
