# mkfs/local.mk - mkfs.nwc: walk a model directory, plan, encode, write.
bin_PROGRAMS += mkfs/mkfs.nwc
mkfs_mkfs_nwc_SOURCES = mkfs/mkfs.c \
	mkfs/walk.c mkfs/walk.h \
	mkfs/pack.c mkfs/pack.h \
	mkfs/progress.c mkfs/progress.h \
	mkfs/llama.c mkfs/llama.h \
	mkfs/lossy.c mkfs/lossy.h \
	mkfs/rate.c mkfs/rate.h \
	mkfs/calib.c mkfs/calib.h
mkfs_mkfs_nwc_CPPFLAGS = $(AM_CPPFLAGS) -DNWC_MODELS_DIR='"$(pkgdatadir)/models"'
mkfs_mkfs_nwc_LDADD = $(NWC_CODEC_LIB) $(NWC_DEP_LIBS)

# nwc-train: trains a neural weight codec model on weights of real models.
bin_PROGRAMS += mkfs/nwc-train
mkfs_nwc_train_SOURCES = mkfs/train.c mkfs/progress.c mkfs/progress.h
mkfs_nwc_train_LDADD = $(NWC_CODEC_LIB) $(NWC_DEP_LIBS) -lm

# nwc: model tools on the pack side; `nwc eval` scores a model directory
# (or a mounted image) by perplexity, `nwc calib` writes calibration stats.
bin_PROGRAMS += mkfs/nwc
mkfs_nwc_SOURCES = mkfs/nwc.c mkfs/llama.c mkfs/llama.h \
	mkfs/progress.c mkfs/progress.h
mkfs_nwc_LDADD = $(NWC_CODEC_LIB) $(NWC_DEP_LIBS) -lm
dist_bin_SCRIPTS += mkfs/nwc-calib-stats.py
