# codec/nwc/local.mk - the neural weight codec; the only archive that
# includes OpenBLAS (gemm.c).
noinst_LIBRARIES += codec/nwc/libnwcnwc.a
codec_nwc_libnwcnwc_a_CPPFLAGS = $(AM_CPPFLAGS) $(OPENBLAS_CFLAGS)
codec_nwc_libnwcnwc_a_SOURCES = \
	codec/nwc/entropy.c codec/nwc/entropy.h \
	codec/nwc/entropy_enc.c codec/nwc/entropy_impl.h \
	codec/nwc/gemm.c codec/nwc/gemm.h \
	codec/nwc/cholesky.c codec/nwc/cholesky.h \
	codec/nwc/mlp.c codec/nwc/mlp.h \
	codec/nwc/mlp_train.c codec/nwc/mlp_impl.h \
	codec/nwc/prior.c codec/nwc/prior.h \
	codec/nwc/prior_train.c codec/nwc/prior_impl.h \
	codec/nwc/nwcmodel.c codec/nwc/nwcmodel.h \
	codec/nwc/nwcmodel_enc.c codec/nwc/nwcmodel_impl.h \
	codec/nwc/ldlq.c codec/nwc/ldlq.h \
	codec/nwc/nwctensor.c codec/nwc/nwctensor.h \
	codec/nwc/tenc.c codec/nwc/tenc.h codec/nwc/nwctensor_impl.h
