/* SPDX-License-Identifier: MIT */
/* codec/planes.c - placeholder, being written. */
