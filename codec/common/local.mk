# codec/common/local.mk - libnwccommon.a: the base header, logging, I/O,
# checksums, command-line values, dtypes, CPU features.  Depends on nothing in the tree;
# the only archive that includes <xxhash.h> (hash.c).
#
# An external library's flags go to its one file only: that file is built
# on its own (a one-object archive, never linked) and its object added to
# the layer's archive.  The other local.mk files do the same.
noinst_LIBRARIES += codec/common/libnwcxxh.a codec/common/libnwccommon.a
codec_common_libnwcxxh_a_CPPFLAGS = $(AM_CPPFLAGS) $(XXHASH_CFLAGS)
codec_common_libnwcxxh_a_SOURCES = codec/common/hash.c codec/common/hash.h
codec_common_libnwccommon_a_LIBADD = \
	$(codec_common_libnwcxxh_a_OBJECTS)
codec_common_libnwccommon_a_DEPENDENCIES = $(codec_common_libnwcxxh_a_OBJECTS)
codec_common_libnwccommon_a_SOURCES = \
	codec/common/base.h \
	codec/common/log.c codec/common/log.h \
	codec/common/io.c codec/common/io.h \
	codec/common/cli.c codec/common/cli.h \
	codec/common/dtype.c codec/common/dtype.h \
	codec/common/cpu.c codec/common/cpu.h \
	codec/common/array.h codec/common/convert.h codec/common/simd.h
