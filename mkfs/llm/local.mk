# mkfs/llm/local.mk - libnwcllm.a: the F32 runtime of Llama-family models
# that calibration (mkfs/pack/calib.c) and `nwc eval` run.  Uses the codec
# archives only.
noinst_LIBRARIES += mkfs/llm/libnwcllm.a
mkfs_llm_libnwcllm_a_SOURCES = \
	mkfs/llm/llama.h mkfs/llm/llm_impl.h \
	mkfs/llm/config.c \
	mkfs/llm/weights.c \
	mkfs/llm/forward.c \
	mkfs/llm/calibrate.c \
	mkfs/llm/sensitivity.c \
	mkfs/llm/tokens.c
