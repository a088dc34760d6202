# codec/registry/local.mk - libnwcregistry.a: every codec by id, as the
# codec sets the image reader and writer take (registry.c: decoders only,
# for the read path; registry_enc.c: with the encoders), and the
# block-at-a-time calls over them (codec.c, codec_enc.c).  The top of the
# codec layers: it links the block codecs and the neural codec.
noinst_LIBRARIES += codec/registry/libnwcregistry.a
codec_registry_libnwcregistry_a_SOURCES = \
	codec/registry/registry.c codec/registry/registry_enc.c \
	codec/registry/registry.h \
	codec/registry/codec.c codec/registry/codec_enc.c codec/registry/codec.h
