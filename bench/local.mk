# bench/local.mk - benchmarks; not part of make check.  make bench runs them.
EXTRA_PROGRAMS += bench/readbench
bench_readbench_SOURCES = bench/readbench.c
bench_readbench_LDADD = $(LIBS)
CLEANFILES += bench/readbench
EXTRA_DIST += bench/run.sh bench/get-minilm.py

bench: all bench/readbench tests/gen_model
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/run.sh
.PHONY: bench
