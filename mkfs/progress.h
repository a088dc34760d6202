/* SPDX-License-Identifier: MIT */
/* mkfs/progress.h - placeholder, being written. */
