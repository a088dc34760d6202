/* SPDX-License-Identifier: MIT */
/* fs/workq.c - placeholder, being written. */
