/* SPDX-License-Identifier: MIT */
/* codec/writer.c - placeholder, being written. */
