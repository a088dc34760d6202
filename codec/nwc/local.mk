# codec/nwc/local.mk - the neural weight codec, split by direction so that
# the read path links no training or encoding code:
#   libnwcdec.a  tables and rANS decoding, network inference, model load
#                and finalize, side records and band decoding, sgemm
#   libnwcenc.a  rANS encoding, tensor encoder (TCQ, LDLQ), prior and
#                network training, model create and save, Cholesky
# Encoders link both, encode archive first (it calls into the decode one).
# gemm.c (<cblas.h>) and cholesky.c (LAPACK) are the only OpenBLAS users.
noinst_LIBRARIES += codec/nwc/libnwcblas.a codec/nwc/libnwclapack.a \
	codec/nwc/libnwcdec.a codec/nwc/libnwcenc.a
codec_nwc_libnwcblas_a_CPPFLAGS = $(AM_CPPFLAGS) $(OPENBLAS_CFLAGS)
codec_nwc_libnwcblas_a_SOURCES = codec/nwc/gemm.c codec/nwc/gemm.h
codec_nwc_libnwclapack_a_CPPFLAGS = $(AM_CPPFLAGS) $(OPENBLAS_CFLAGS)
codec_nwc_libnwclapack_a_SOURCES = codec/nwc/cholesky.c codec/nwc/cholesky.h

codec_nwc_libnwcdec_a_LIBADD = $(codec_nwc_libnwcblas_a_OBJECTS)
codec_nwc_libnwcdec_a_DEPENDENCIES = $(codec_nwc_libnwcblas_a_OBJECTS)
codec_nwc_libnwcdec_a_SOURCES = \
	codec/nwc/chunk.h \
	codec/nwc/entropy.c codec/nwc/entropy.h codec/nwc/entropy_impl.h \
	codec/nwc/linear.c codec/nwc/linear.h \
	codec/nwc/mlp.c codec/nwc/mlp.h codec/nwc/mlp_impl.h \
	codec/nwc/mlp_lanes.c \
	codec/nwc/prior.c codec/nwc/prior.h codec/nwc/prior_impl.h \
	codec/nwc/nwcmodel.c codec/nwc/nwcmodel.h codec/nwc/nwcmodel_impl.h \
	codec/nwc/nwctensor.c codec/nwc/nwctensor.h \
	codec/nwc/nwctensor_impl.h \
	codec/nwc/nwccodec.c codec/nwc/nwccodec.h

codec_nwc_libnwcenc_a_LIBADD = $(codec_nwc_libnwclapack_a_OBJECTS)
codec_nwc_libnwcenc_a_DEPENDENCIES = $(codec_nwc_libnwclapack_a_OBJECTS)
codec_nwc_libnwcenc_a_SOURCES = \
	codec/nwc/entropy_enc.c \
	codec/nwc/ldlq.c codec/nwc/ldlq.h \
	codec/nwc/mlp_train.c \
	codec/nwc/prior_train.c \
	codec/nwc/nwcmodel_enc.c \
	codec/nwc/tenc.c codec/nwc/tenc.h \
	codec/nwc/nwccodec_enc.c
