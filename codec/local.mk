# codec/local.mk - libnwccodec.a: common helpers, image format, codecs.
# Used by every program; the only layer that touches zstd, xxHash and jansson.
noinst_LIBRARIES += codec/libnwccodec.a
codec_libnwccodec_a_CPPFLAGS = $(AM_CPPFLAGS) $(ZSTD_CFLAGS) $(XXHASH_CFLAGS) \
	$(JANSSON_CFLAGS) $(OPENBLAS_CFLAGS)
codec_libnwccodec_a_SOURCES = \
	codec/nwc.h \
	codec/log.c codec/log.h \
	codec/hash.c codec/hash.h \
	codec/io.c codec/io.h \
	codec/cli.c codec/cli.h \
	codec/format.h codec/dtype.c \
	codec/planes.c codec/planes.h \
	codec/codec.c codec/codec.h codec/zstd.c codec/zstd.h \
	codec/rans.c codec/rans.h \
	codec/entropy.c codec/entropy.h codec/convert.h codec/simd.h \
	codec/gemm.c codec/gemm.h codec/mlp.c codec/mlp.h \
	codec/prior.c codec/prior.h \
	codec/nwcmodel.c codec/nwcmodel.h \
	codec/json.c codec/json.h \
	codec/safetensors.c codec/safetensors.h \
	codec/ldlq.c codec/ldlq.h \
	codec/nwctensor.c codec/nwctensor.h \
	codec/image.c codec/image.h \
	codec/writer.c codec/writer.h

# Shipped codec models (codec/models/TRAINING.md), installed where mkfs.nwc
# looks by default; `make codec-models` retrains them (about 30 minutes
# with 2 cores).
nwcmodelsdir = $(pkgdatadir)/models
dist_nwcmodels_DATA = \
	codec/models/nwc-h32r1-l10.nwcm \
	codec/models/nwc-h32r1-l30.nwcm \
	codec/models/nwc-h32r1-l100.nwcm \
	codec/models/nwc-h32r1-l300.nwcm \
	codec/models/nwc-h32r1-l1000.nwcm \
	codec/models/nwc-h32r1-l3000.nwcm \
	codec/models/nwc-h32r1-l10000.nwcm \
	codec/models/nwc-h32r1-l30000.nwcm \
	codec/models/nwc-h32r1-l100000.nwcm
# Other decoder sizes, for --models .../models/sizes.
nwcsizesdir = $(pkgdatadir)/models/sizes
dist_nwcsizes_DATA = \
	codec/models/sizes/nwc-h32r0-l100.nwcm \
	codec/models/sizes/nwc-h64r1-l100.nwcm
EXTRA_DIST += codec/models/train.sh codec/models/trainset.py \
	codec/models/TRAINING.md codec/models/logs
codec-models: mkfs/nwc-train
	$(top_srcdir)/codec/models/train.sh -t mkfs/nwc-train -c bench/cache
.PHONY: codec-models
