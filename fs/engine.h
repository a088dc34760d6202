/* SPDX-License-Identifier: MIT */
/* fs/engine.h - placeholder, being written. */
