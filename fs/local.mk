# fs/local.mk - the FUSE-free read engine, the nwcfs daemon and fsck.nwc.
noinst_LIBRARIES += fs/libnwcfscore.a
fs_libnwcfscore_a_SOURCES = \
	fs/cache.c fs/cache.h \
	fs/workq.c fs/workq.h \
	fs/engine.c fs/engine.h

bin_PROGRAMS += fs/fsck.nwc
fs_fsck_nwc_SOURCES = fs/fsck.c
fs_fsck_nwc_LDADD = $(NWC_FS_LIB) $(NWC_CODEC_LIB) $(NWC_DEP_LIBS)

if WITH_FUSE
bin_PROGRAMS += fs/nwcfs
fs_nwcfs_SOURCES = fs/nwcfs.c fs/ops.c fs/ops.h
fs_nwcfs_CPPFLAGS = $(AM_CPPFLAGS) $(FUSE3_CFLAGS)
fs_nwcfs_LDADD = $(NWC_FS_LIB) $(NWC_CODEC_LIB) $(FUSE3_LIBS) $(NWC_DEP_LIBS)
endif
