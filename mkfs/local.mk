# mkfs/local.mk - mkfs.nwc: options, then libnwcpack.a walks a model
# directory, plans, encodes and writes the image.
bin_PROGRAMS += mkfs/mkfs.nwc
mkfs_mkfs_nwc_SOURCES = mkfs/mkfs.c
mkfs_mkfs_nwc_CPPFLAGS = $(AM_CPPFLAGS) -DNWC_MODELS_DIR='"$(pkgdatadir)/models"' \
	-DNWC_BUILD_DIR='"$(abs_top_builddir)"' \
	-DNWC_SOURCE_MODELS_DIR='"$(abs_top_srcdir)/codec/models"'
mkfs_mkfs_nwc_LDADD = $(NWC_MKFS_LIB) $(NWC_CODEC_LIB) $(NWC_DEP_LIBS)
