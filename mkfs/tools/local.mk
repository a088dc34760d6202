# mkfs/tools/local.mk - the model tools on the pack side.

# nwc: `nwc eval` scores a model directory (or a mounted image) by
# perplexity, `nwc calib` writes calibration stats.
bin_PROGRAMS += mkfs/tools/nwc
mkfs_tools_nwc_SOURCES = mkfs/tools/nwc.c mkfs/tools/info.c mkfs/tools/info.h
mkfs_tools_nwc_LDADD = $(NWC_MKFS_LIB) $(NWC_CODEC_LIB) $(NWC_DEP_LIBS) -lm
dist_bin_SCRIPTS += mkfs/tools/nwc-calib-stats.py

# nwc-train: trains a neural weight codec model on weights of real models.
bin_PROGRAMS += mkfs/tools/nwc-train
mkfs_tools_nwc_train_SOURCES = mkfs/tools/train.c
mkfs_tools_nwc_train_LDADD = $(NWC_MKFS_LIB) $(NWC_CODEC_LIB) \
	$(NWC_DEP_LIBS) -lm
