# tests/local.mk - make check: unit tests, fuzz corpus replays, man lint,
# end-to-end image and mount tests.
NWC_TEST_LIBS = $(NWC_FS_LIB) $(NWC_CODEC_LIB) $(NWC_DEP_LIBS)

check_PROGRAMS += tests/test_planes tests/test_codec tests/test_rans \
	tests/test_iface \
	tests/test_safetensors \
	tests/test_image tests/test_cache tests/test_engine \
	tests/test_entropy tests/test_convert tests/test_mlp tests/test_prior \
	tests/test_nwcmodel tests/test_ldlq tests/test_llama tests/test_nwctensor \
	tests/gen_model tests/gen_deep tests/fuzz_image tests/fuzz_safetensors
# The image format layer with stub codecs, linked without any codec.
tests_test_iface_SOURCES = tests/test_iface.c tests/t.h
tests_test_iface_LDADD = codec/image/libnwcimage.a \
	codec/common/libnwccommon.a $(XXHASH_LIBS) $(LIBS)
tests_test_planes_SOURCES = tests/test_planes.c tests/t.h
tests_test_planes_LDADD = $(NWC_TEST_LIBS)
tests_test_rans_SOURCES = tests/test_rans.c tests/t.h tests/golden_rans.h \
	tests/golden_rans32.h
tests_test_rans_LDADD = $(NWC_TEST_LIBS) -lm
tests_test_codec_SOURCES = tests/test_codec.c tests/t.h
tests_test_codec_LDADD = $(NWC_TEST_LIBS)
tests_test_safetensors_SOURCES = tests/test_safetensors.c tests/t.h
tests_test_safetensors_LDADD = $(NWC_TEST_LIBS)
tests_test_image_SOURCES = tests/test_image.c tests/t.h
tests_test_image_LDADD = $(NWC_TEST_LIBS)
tests_test_cache_SOURCES = tests/test_cache.c tests/t.h
tests_test_cache_LDADD = $(NWC_TEST_LIBS)
tests_test_engine_SOURCES = tests/test_engine.c tests/t.h
tests_test_engine_LDADD = $(NWC_TEST_LIBS)
tests_test_entropy_SOURCES = tests/test_entropy.c tests/t.h
tests_test_entropy_LDADD = $(NWC_TEST_LIBS) -lm
tests_test_convert_SOURCES = tests/test_convert.c tests/t.h
tests_test_convert_LDADD = $(NWC_TEST_LIBS) -lm
tests_test_mlp_SOURCES = tests/test_mlp.c tests/t.h tests/golden_mlp.h
tests_test_mlp_LDADD = $(NWC_TEST_LIBS) -lm
tests_test_prior_SOURCES = tests/test_prior.c tests/t.h
tests_test_prior_LDADD = $(NWC_TEST_LIBS) -lm
tests_test_nwcmodel_SOURCES = tests/test_nwcmodel.c tests/t.h
tests_test_nwcmodel_LDADD = $(NWC_TEST_LIBS) -lm
tests_test_ldlq_SOURCES = tests/test_ldlq.c tests/t.h
tests_test_ldlq_LDADD = $(NWC_TEST_LIBS) -lm
tests_test_llama_SOURCES = tests/test_llama.c tests/t.h tests/golden_llama.h
tests_test_llama_LDADD = mkfs/llm/libnwcllm.a mkfs/group/libnwcgroup.a \
	$(NWC_TEST_LIBS) -lm
tests_test_nwctensor_SOURCES = tests/test_nwctensor.c tests/t.h
tests_test_nwctensor_LDADD = $(NWC_TEST_LIBS) -lm
tests_gen_model_SOURCES = tests/gen_model.c
tests_gen_model_LDADD = $(NWC_TEST_LIBS)
tests_gen_deep_SOURCES = tests/gen_deep.c
tests_gen_deep_LDADD = $(NWC_TEST_LIBS)

# Fuzz targets: linked with a replay driver for make check, and with
# libFuzzer under --enable-fuzzing (CC=clang).
tests_fuzz_image_SOURCES = tests/fuzz/fuzz_image.c tests/fuzz/fuzz.h
tests_fuzz_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c tests/fuzz/fuzz.h
if WITH_FUZZING
tests_fuzz_image_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer,address,undefined
tests_fuzz_safetensors_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer,address,undefined
else
tests_fuzz_image_SOURCES += tests/fuzz/driver.c
tests_fuzz_safetensors_SOURCES += tests/fuzz/driver.c
endif
tests_fuzz_image_LDADD = $(NWC_TEST_LIBS)
tests_fuzz_safetensors_LDADD = $(NWC_TEST_LIBS)

TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = $(SHELL)
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(top_srcdir)'; top_builddir='$(top_builddir)'; \
	export top_srcdir top_builddir;

TESTS += tests/test_iface \
	tests/test_planes tests/test_codec tests/test_rans tests/test_safetensors \
	tests/test_image tests/test_cache tests/test_engine \
	tests/test_entropy tests/test_convert tests/test_mlp tests/test_prior \
	tests/test_nwcmodel tests/test_ldlq tests/test_llama tests/test_nwctensor \
	tests/eval.sh tests/framework.sh tests/nwctrain.sh tests/fuzz-replay.sh tests/man.sh tests/roundtrip.sh tests/errors.sh \
	tests/mount.sh tests/mount-corrupt.sh tests/mount-real.sh tests/lossy.sh \
	tests/layers.sh tests/deps.sh tests/golden.sh tests/mpi.sh \
	tests/folders.sh tests/extract.sh tests/info.sh tests/clang.sh \
	tests/sensitivity.sh tests/demo.sh
EXTRA_DIST += tests/lib.sh tests/fuzz-replay.sh tests/man.sh \
	tests/roundtrip.sh tests/errors.sh tests/mount.sh \
	tests/mount-corrupt.sh tests/mount-real.sh tests/readcheck.py \
	tests/demo.sh tests/corpus tests/mlp_ref.py tests/nwctrain.sh \
	tests/eval.sh tests/framework.sh tests/llama_ref.py tests/framework.py \
	tests/lossy.sh tests/layers.sh tests/deps.sh tests/golden.sh \
	tests/mpi.sh tests/folders.sh tests/extract.sh tests/info.sh \
	tests/clang.sh tests/sensitivity.sh tests/sens_ref.py

# make demo: pack a generated model lossy and lossless, mount both, check
# what each serves (also one of the tests above).
demo: all tests/gen_model
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/tests/demo.sh
.PHONY: demo
