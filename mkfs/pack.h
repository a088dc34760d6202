/* SPDX-License-Identifier: MIT */
/* mkfs/pack.h - placeholder, being written. */
