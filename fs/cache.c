/* SPDX-License-Identifier: MIT */
/* fs/cache.c - placeholder, being written. */
