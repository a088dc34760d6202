/* SPDX-License-Identifier: MIT */
/* mkfs/progress.c - placeholder, being written. */
