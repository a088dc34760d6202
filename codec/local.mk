# codec/local.mk - libnwccodec.a: the block codecs (raw, zstd byte planes)
# and the rANS core both entropy coders use (ranscore.h); the only archive
# that includes <zstd.h> (zstd.c).  The folders below codec/ hold the other
# layers: common/, image/, nwc/ (the neural codec), registry/ (every codec
# by id), input/.
noinst_LIBRARIES += codec/libnwczstd.a codec/libnwccodec.a
codec_libnwczstd_a_CPPFLAGS = $(AM_CPPFLAGS) $(ZSTD_CFLAGS)
codec_libnwczstd_a_SOURCES = codec/zstd.c codec/zstd.h
codec_libnwccodec_a_LIBADD = $(codec_libnwczstd_a_OBJECTS)
codec_libnwccodec_a_DEPENDENCIES = $(codec_libnwczstd_a_OBJECTS)
codec_libnwccodec_a_SOURCES = \
	codec/lossless.h codec/raw.c codec/bplanes.c \
	codec/ranscore.h \
	codec/planes.c codec/planes.h \
	codec/rans.c codec/rans.h codec/ranswide.h codec/ransvec.h \
	codec/rans_avx2.c

# Shipped codec models (codec/models/TRAINING.md), installed where mkfs.nwc
# looks by default; `make codec-models` retrains them (about 30 minutes
# with 2 cores).  The default set is the MLP models and, as its highest
# rates, the linear models from lambda 30000 up (links into linear/; the
# MLP decoder saturates there).  Installed as copies.
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
	codec/models/nwc-h32r1-l100000.nwcm \
	codec/models/nwc-lin-l30000.nwcm \
	codec/models/nwc-lin-l100000.nwcm \
	codec/models/nwc-lin-l300000.nwcm \
	codec/models/nwc-lin-l1000000.nwcm
# Other decoder sizes, for --models .../models/sizes.
nwcsizesdir = $(pkgdatadir)/models/sizes
dist_nwcsizes_DATA = \
	codec/models/sizes/nwc-h32r0-l100.nwcm \
	codec/models/sizes/nwc-h64r1-l100.nwcm
# Linear models (nwc-train --init-branch 0), for --models .../models/linear.
nwclineardir = $(pkgdatadir)/models/linear
dist_nwclinear_DATA = \
	codec/models/linear/nwc-lin-l10.nwcm \
	codec/models/linear/nwc-lin-l30.nwcm \
	codec/models/linear/nwc-lin-l100.nwcm \
	codec/models/linear/nwc-lin-l300.nwcm \
	codec/models/linear/nwc-lin-l1000.nwcm \
	codec/models/linear/nwc-lin-l3000.nwcm \
	codec/models/linear/nwc-lin-l10000.nwcm \
	codec/models/linear/nwc-lin-l30000.nwcm \
	codec/models/linear/nwc-lin-l100000.nwcm \
	codec/models/linear/nwc-lin-l300000.nwcm \
	codec/models/linear/nwc-lin-l1000000.nwcm
EXTRA_DIST += codec/models/train.sh codec/models/trainset.py \
	codec/models/TRAINING.md codec/models/logs
codec-models: mkfs/tools/nwc-train
	$(top_srcdir)/codec/models/train.sh -t mkfs/tools/nwc-train -c bench/cache
.PHONY: codec-models
