# codec/image/local.mk - libnwcimage.a: the image format (format.h), the
# codec interface (iface.h), the reader and the writer.
noinst_LIBRARIES += codec/image/libnwcimage.a
codec_image_libnwcimage_a_SOURCES = \
	codec/image/format.h \
	codec/image/iface.c codec/image/iface.h \
	codec/image/record.c codec/image/record.h \
	codec/image/image.c codec/image/image.h \
	codec/image/writer.c codec/image/writer.h
