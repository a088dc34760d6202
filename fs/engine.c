/* SPDX-License-Identifier: MIT */
/* fs/engine.c - placeholder, being written. */
