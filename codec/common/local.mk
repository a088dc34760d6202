# codec/common/local.mk - libnwccommon.a: the base header, logging, I/O,
# checksums, command-line values, dtypes.  Depends on nothing in the tree;
# the only archive that includes <xxhash.h> (hash.c).
noinst_LIBRARIES += codec/common/libnwccommon.a
codec_common_libnwccommon_a_CPPFLAGS = $(AM_CPPFLAGS) $(XXHASH_CFLAGS)
codec_common_libnwccommon_a_SOURCES = \
	codec/common/base.h \
	codec/common/log.c codec/common/log.h \
	codec/common/hash.c codec/common/hash.h \
	codec/common/io.c codec/common/io.h \
	codec/common/cli.c codec/common/cli.h \
	codec/common/dtype.c codec/common/dtype.h \
	codec/common/array.h codec/common/convert.h codec/common/simd.h
