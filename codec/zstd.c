/* SPDX-License-Identifier: MIT */
/* codec/zstd.c - placeholder, being written. */
