/* SPDX-License-Identifier: MIT */
/* codec/dtype.c - placeholder, being written. */
