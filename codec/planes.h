/* SPDX-License-Identifier: MIT */
/* codec/planes.h - placeholder, being written. */
