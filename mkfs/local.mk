# mkfs/local.mk - mkfs.nwc: walk a model directory, plan, encode, write.
bin_PROGRAMS += mkfs/mkfs.nwc
mkfs_mkfs_nwc_SOURCES = mkfs/mkfs.c \
	mkfs/walk.c mkfs/walk.h \
	mkfs/pack.c mkfs/pack.h \
	mkfs/progress.c mkfs/progress.h
mkfs_mkfs_nwc_LDADD = $(NWC_CODEC_LIB) $(NWC_DEP_LIBS)
