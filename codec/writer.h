/* SPDX-License-Identifier: MIT */
/* codec/writer.h - placeholder, being written. */
