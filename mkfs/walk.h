/* SPDX-License-Identifier: MIT */
/* mkfs/walk.h - placeholder, being written. */
