/* SPDX-License-Identifier: MIT */
/* codec/image.c - placeholder, being written. */
