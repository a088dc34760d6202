# codec/image/local.mk - libnwcimage.a: the image format (format.h), its
# reader and its writer.
noinst_LIBRARIES += codec/image/libnwcimage.a
codec_image_libnwcimage_a_SOURCES = \
	codec/image/format.h \
	codec/image/image.c codec/image/image.h \
	codec/image/writer.c codec/image/writer.h
