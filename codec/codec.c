/* SPDX-License-Identifier: MIT */
/* codec/codec.c - placeholder, being written. */
