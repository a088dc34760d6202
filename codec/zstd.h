/* SPDX-License-Identifier: MIT */
/* codec/zstd.h - placeholder, being written. */
