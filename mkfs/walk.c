/* SPDX-License-Identifier: MIT */
/* mkfs/walk.c - placeholder, being written. */
