/* pyapi_codec.h: Python objects <-> codec bytes (core/codec.h, docs/codec.md), and map keys.
 *
 * Values: None, bool, int (any size), float, str, bytes, list, tuple, dict (and subclasses of
 * those, which decode as the base type), nested at most HB_CODEC_MAX_DEPTH deep. Anything else
 * raises TypeError naming the type ("cannot encode 'set' ..."). Map keys are str or bytes,
 * tagged with one leading byte ('s' + UTF-8, 'b' + raw bytes) so that "a" and b"a" are
 * different keys; hb_pyapi_key_decode turns a tagged key back into str/bytes.
 * CPython conventions: -1/NULL with an exception set. Call with the GIL held; no state.
 */
#ifndef HB_PYTHON_PYAPI_CODEC_H
#define HB_PYTHON_PYAPI_CODEC_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "core/codec.h"

#define HB_KEY_TAG_STR 's'
#define HB_KEY_TAG_BYTES 'b'

/* Encodes o as one complete value (hb_codec_begin included). Returns 0, or -1 with TypeError
 * (unsupported type), ValueError (too deeply nested), OverflowError (a str, bytes or
 * container over the codec's 4 GiB / 2^32 limits), MemoryError or UnicodeEncodeError. */
int hb_pyapi_encode(PyObject *o, hb_cbuf_t *b);
/* Decodes one complete value. Returns a new reference, or NULL with ValueError on malformed
 * input (or MemoryError). */
PyObject *hb_pyapi_decode(const void *buf, size_t len);

/* A tagged key, built in `stack` when it fits, else on the heap. */
typedef struct hb_pykey {
	const char *data;
	size_t len;
	char *heap;
	char stack[256];
} hb_pykey_t;

/* Builds the tagged form of a str or bytes key. Returns 0 or -1 with TypeError naming the
 * type. Release with hb_pyapi_key_free. */
int hb_pyapi_key(PyObject *key, hb_pykey_t *k);
void hb_pyapi_key_free(hb_pykey_t *k);
/* The str/bytes of a tagged key (new reference), or NULL with ValueError. */
PyObject *hb_pyapi_key_decode(const void *key, size_t len);

#endif
