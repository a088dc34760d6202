/* SPDX-License-Identifier: MIT */
/*
 * chunk.h - the one name for the NWC chunk size.
 *
 * The codec works on chunks: NWC_CHUNK consecutive rows of one column of a
 * weight matrix.  A chunk is what the networks map (NWC_CHUNK floats in,
 * NWC_CHUNK out), it has NWC_CHUNK latents (the model file's C), a band of
 * a coded tensor is a whole number of chunk rows, and the trainer cuts its
 * data into chunks.  Every file that means this number uses this name.
 * Changing it changes the image and model formats (the model file stores
 * C and rejects any other value).
 *
 * Thread safety: a constant.
 */
#ifndef NWC_CHUNK_H
#define NWC_CHUNK_H

#define NWC_CHUNK 16		/* rows per chunk = latents per chunk */

#endif /* NWC_CHUNK_H */
