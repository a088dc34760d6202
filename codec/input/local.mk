# codec/input/local.mk - libnwcinput.a: parsers of the model files mkfs
# reads (safetensors headers through jansson, the only archive that
# includes <jansson.h>, in json.c).
noinst_LIBRARIES += codec/input/libnwcjson.a codec/input/libnwcinput.a
codec_input_libnwcjson_a_CPPFLAGS = $(AM_CPPFLAGS) $(JANSSON_CFLAGS)
codec_input_libnwcjson_a_SOURCES = codec/input/json.c codec/input/json.h
codec_input_libnwcinput_a_LIBADD = $(codec_input_libnwcjson_a_OBJECTS)
codec_input_libnwcinput_a_DEPENDENCIES = $(codec_input_libnwcjson_a_OBJECTS)
codec_input_libnwcinput_a_SOURCES = \
	codec/input/safetensors.c codec/input/safetensors.h
