# bench/local.mk - benchmarks; not part of make check.  make bench runs them.
EXTRA_PROGRAMS += bench/readbench bench/codecbench
bench_codecbench_SOURCES = bench/codecbench.c
bench_codecbench_LDADD = $(NWC_CODEC_LIB) $(NWC_DEP_LIBS) -lm
CLEANFILES += bench/codecbench
bench_readbench_SOURCES = bench/readbench.c
bench_readbench_LDADD = $(LIBS)
CLEANFILES += bench/readbench
EXTRA_DIST += bench/run.sh bench/get-minilm.py bench/context-gain.py

bench: all bench/readbench bench/codecbench tests/gen_model
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/run.sh
.PHONY: bench
