/* SPDX-License-Identifier: MIT */
/*
 * io.h - whole-buffer I/O and small error helpers.
 * Loops over EINTR and short transfers; returns 0 or -errno.  Thread-safe
 * (pread/pwrite only, no shared file offset).
 */
#ifndef NWC_IO_H
#define NWC_IO_H

#include "codec/nwc.h"

/* Read exactly @len bytes at @off; a short file gives -NWC_ECORRUPT. */
int nwc_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Write exactly @len bytes at @off. */
int nwc_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Write exactly @len bytes at the current offset. */
int nwc_write_full(int fd, const void *buf, size_t len);

#endif /* NWC_IO_H */
