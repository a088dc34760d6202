# mkfs/pack/local.mk - libnwcpack.a: what mkfs.nwc does between its options
# and its summary: walk a model directory, plan, rate and code the lossy
# tensors, calibrate, compress and write the image; and the progress bar
# the tools share.  Uses libnwcllm.a (calibration) and the codec archives.
noinst_LIBRARIES += mkfs/pack/libnwcpack.a
mkfs_pack_libnwcpack_a_SOURCES = \
	mkfs/pack/walk.c mkfs/pack/walk.h \
	mkfs/pack/pack.c mkfs/pack/pack.h mkfs/pack/pack_impl.h \
	mkfs/pack/plan.c mkfs/pack/pipeline.c mkfs/pack/emit.c \
	mkfs/pack/report.c mkfs/pack/spread.c \
	mkfs/pack/rate.c mkfs/pack/rate.h \
	mkfs/pack/lossy.c mkfs/pack/lossy.h \
	mkfs/pack/calib.c mkfs/pack/calib.h mkfs/pack/tune.c \
	mkfs/pack/progress.c mkfs/pack/progress.h
