# fs/local.mk - the FUSE-free read engine, the nwcfs daemon and fsck.nwc.
# They read images and never encode: their codec list leaves out the NWC
# encode archive (codec/nwc/libnwcenc.a), and tests/layers.sh checks that
# they define none of its symbols.
NWC_READ_CODEC_LIB = codec/registry/libnwcregistry.a codec/nwc/libnwcdec.a \
	codec/libnwccodec.a codec/image/libnwcimage.a \
	codec/common/libnwccommon.a

noinst_LIBRARIES += fs/libnwcfscore.a
fs_libnwcfscore_a_SOURCES = \
	fs/cache.c fs/cache.h \
	fs/workq.c fs/workq.h \
	fs/engine.c fs/engine.h

bin_PROGRAMS += fs/fsck.nwc
fs_fsck_nwc_SOURCES = fs/fsck.c
fs_fsck_nwc_LDADD = $(NWC_FS_LIB) $(NWC_READ_CODEC_LIB) $(NWC_DEP_LIBS)

if WITH_FUSE
bin_PROGRAMS += fs/nwcfs
fs_nwcfs_SOURCES = fs/nwcfs.c fs/ops.c fs/ops.h
fs_nwcfs_CPPFLAGS = $(AM_CPPFLAGS) $(FUSE3_CFLAGS)
fs_nwcfs_LDADD = $(NWC_FS_LIB) $(NWC_READ_CODEC_LIB) $(FUSE3_LIBS) \
	$(NWC_DEP_LIBS)
endif
