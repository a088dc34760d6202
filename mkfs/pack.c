/* SPDX-License-Identifier: MIT */
/* mkfs/pack.c - placeholder, being written. */
