# bench/local.mk - benchmarks; not part of make check.  make bench runs them.
EXTRA_PROGRAMS += bench/bench_lossless
bench_bench_lossless_SOURCES = bench/bench_lossless.c
bench_bench_lossless_LDADD = $(NWC_FS_LIB) $(NWC_CODEC_LIB) $(NWC_DEP_LIBS)
CLEANFILES += bench/bench_lossless
EXTRA_DIST += bench/run.sh

bench: all bench/bench_lossless tests/gen_model
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/run.sh
.PHONY: bench
