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
	codec/entropy.c codec/entropy.h codec/convert.h \
	codec/gemm.c codec/gemm.h codec/mlp.c codec/mlp.h \
	codec/prior.c codec/prior.h \
	codec/nwcmodel.c codec/nwcmodel.h \
	codec/json.c codec/json.h \
	codec/safetensors.c codec/safetensors.h \
	codec/ldlq.c codec/ldlq.h \
	codec/nwctensor.c codec/nwctensor.h \
	codec/image.c codec/image.h \
	codec/writer.c codec/writer.h
