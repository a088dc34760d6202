/* SPDX-License-Identifier: MIT */
/* fs/ops.h - placeholder, being written. */
