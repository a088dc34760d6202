/* SPDX-License-Identifier: MIT */
/* codec/image.h - placeholder, being written. */
