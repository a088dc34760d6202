# bench/local.mk - benchmarks; not part of make check.  make bench runs them.
EXTRA_PROGRAMS += bench/readbench bench/codecbench bench/ransbench
bench_ransbench_SOURCES = bench/ransbench.c
bench_ransbench_LDADD = $(NWC_CODEC_LIB) $(NWC_DEP_LIBS) -lm
CLEANFILES += bench/ransbench
bench_codecbench_SOURCES = bench/codecbench.c bench/quant.c bench/quant.h
bench_codecbench_LDADD = $(NWC_CODEC_LIB) $(NWC_DEP_LIBS) -lm
CLEANFILES += bench/codecbench
bench_readbench_SOURCES = bench/readbench.c
bench_readbench_LDADD = $(LIBS)
CLEANFILES += bench/readbench
EXTRA_DIST += bench/bench-lib.sh bench/run.sh bench/readpath.sh bench/get-minilm.py bench/context-gain.py \
	bench/scale.sh bench/get-smollm2.py

bench: all bench/readbench bench/codecbench tests/gen_model
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/run.sh
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/readpath.sh

# make bench-read: the read path alone, against squashfuse and
# squashfuse_ll, with a perf breakdown (bench/out/readpath.md).
bench-read: all bench/readbench tests/gen_model
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/readpath.sh
.PHONY: bench bench-read

# make quality: perplexity of lossy stories260K images, and output
# similarity of lossy all-MiniLM-L6-v2 images, against RTN, ECSQ and GPTQ
# baselines at matched bits (bench/out/quality*.md, .tsv, .png).
EXTRA_PROGRAMS += bench/quantize
bench_quantize_SOURCES = bench/quantize.c bench/quant.c bench/quant.h
bench_quantize_LDADD = $(NWC_MKFS_LIB) $(NWC_CODEC_LIB) $(NWC_DEP_LIBS) -lm
CLEANFILES += bench/quantize
EXTRA_DIST += bench/quality.sh bench/quality-plot.py bench/quality-lib.sh \
	bench/quality-minilm.sh bench/minilm-sim.py bench/results
quality: all bench/quantize
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/quality.sh
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/quality-minilm.sh
.PHONY: quality

# make quality-smollm2: the same on SmolLM2-135M, on held-out TinyStories
# and on out-of-domain technical prose (bench/out/quality-smollm2.*).
quality-smollm2: all bench/quantize
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/quality-smollm2.sh
.PHONY: quality-smollm2
EXTRA_DIST += bench/quality-smollm2.sh bench/ood-text.sh bench/shrink-sweep.sh \
	bench/mix-tensors.py

# make bench-scale: pack generated models of 0.1, 0.5 and 2 GB lossless,
# lossy and calibrated; time, MB/s and peak RSS (bench/out/scale.md).
bench-scale: all tests/gen_model
	top_srcdir='$(top_srcdir)' top_builddir='$(top_builddir)' \
		$(SHELL) $(top_srcdir)/bench/scale.sh
.PHONY: bench-scale
