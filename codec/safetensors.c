/* SPDX-License-Identifier: MIT */
/* codec/safetensors.c - placeholder, being written. */
