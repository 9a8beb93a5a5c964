/* pyapi_codec.c: Python objects <-> codec bytes, and tagged map keys (pyapi_codec.h). */
#include "python/pyapi_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ---- */

static int encode(PyObject *o, hb_cbuf_t *b, int depth);

/* An int outside int64: sign + little-endian magnitude. */
static int encode_bigint(PyObject *o, hb_cbuf_t *b)
{
	PyObject *mag = PyNumber_Absolute(o);
	int neg = PyObject_RichCompareBool(o, mag, Py_NE), rc = -1;
	int64_t bits;
	size_t n;
	uint8_t *buf;

	if (!mag || neg < 0)
		goto out;
	bits = _PyLong_NumBits(mag);
	if (bits < 0)
		goto out;
	n = (size_t)(bits + 7) / 8;
	buf = PyMem_Malloc(n ? n : 1);
	if (!buf) {
		PyErr_NoMemory();
		goto out;
	}
#if PY_VERSION_HEX >= 0x030D0000
	rc = _PyLong_AsByteArray((PyLongObject *)mag, buf, n, 1, 0, 1);
#else
	rc = _PyLong_AsByteArray((PyLongObject *)mag, buf, n, 1, 0);
#endif
	if (rc == 0)
		hb_codec_put_bigint(b, neg, buf, n);
	PyMem_Free(buf);
out:
	Py_XDECREF(mag);
	return rc < 0 ? -1 : 0;
}

static int check_count(Py_ssize_t n, const char *what)
{
	if ((uint64_t)n > UINT32_MAX) {
		PyErr_Format(PyExc_OverflowError, "%s too large to encode (%zd items)", what, n);
		return -1;
	}
	return 0;
}

static int encode_seq(PyObject *o, hb_cbuf_t *b, int depth, int tuple)
{
	PyObject *fast = PySequence_Fast(o, "not a sequence");
	Py_ssize_t n;
	int rc = 0;

	if (!fast)
		return -1;
	n = PySequence_Fast_GET_SIZE(fast);
	if (check_count(n, tuple ? "tuple" : "list") < 0) {
		Py_DECREF(fast);
		return -1;
	}
	if (tuple)
		hb_codec_put_tuple_begin(b, (uint32_t)n);
	else
		hb_codec_put_list_begin(b, (uint32_t)n);
	/* Items are read through `fast` (a new reference): a list mutated by a __hash__ or
	 * __eq__ elsewhere cannot free them under us. */
	for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
		if (i >= PySequence_Fast_GET_SIZE(fast)) {
			PyErr_SetString(PyExc_RuntimeError, "list changed size during encoding");
			rc = -1;
			break;
		}
		rc = encode(PySequence_Fast_GET_ITEM(fast, i), b, depth + 1);
	}
	Py_DECREF(fast);
	return rc;
}

static int encode_dict(PyObject *o, hb_cbuf_t *b, int depth)
{
	PyObject *items = PyDict_Items(o);
	Py_ssize_t n;
	int rc = 0;

	if (!items)
		return -1;
	n = PyList_GET_SIZE(items);
	if (check_count(n, "dict") < 0) {
		Py_DECREF(items);
		return -1;
	}
	hb_codec_put_dict_begin(b, (uint32_t)n);
	for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
		PyObject *kv = PyList_GET_ITEM(items, i);

		rc = encode(PyTuple_GET_ITEM(kv, 0), b, depth + 1);
		if (rc == 0)
			rc = encode(PyTuple_GET_ITEM(kv, 1), b, depth + 1);
	}
	Py_DECREF(items);
	return rc;
}

static int encode_scalar(PyObject *o, hb_cbuf_t *b)
{
	if (PyLong_Check(o)) {
		int overflow = 0;
		long long v = PyLong_AsLongLongAndOverflow(o, &overflow);

		if (v == -1 && PyErr_Occurred())
			return -1;
		if (overflow)
			return encode_bigint(o, b);
		return hb_codec_put_int64(b, v), 0;
	}
	if (PyFloat_Check(o))
		return hb_codec_put_float(b, PyFloat_AS_DOUBLE(o)), 0;
	if (PyUnicode_Check(o)) {
		Py_ssize_t n;
		const char *s = PyUnicode_AsUTF8AndSize(o, &n);

		if (!s)
			return -1;
		if (check_count(n, "str") < 0)
			return -1;
		return hb_codec_put_str(b, s, (size_t)n), 0;
	}
	if (PyBytes_Check(o)) {
		if (check_count(PyBytes_GET_SIZE(o), "bytes") < 0)
			return -1;
		return hb_codec_put_bytes(b, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o)), 0;
	}
	PyErr_Format(PyExc_TypeError,
		     "cannot encode '%.200s' object: hornbeam values are None, bool, int, float, "
		     "str, bytes, list, tuple and dict",
		     Py_TYPE(o)->tp_name);
	return -1;
}

static int encode(PyObject *o, hb_cbuf_t *b, int depth)
{
	int rc;

	if (depth >= HB_CODEC_MAX_DEPTH) {
		PyErr_Format(PyExc_ValueError, "value nested deeper than %d levels (or recursive)",
			     HB_CODEC_MAX_DEPTH);
		return -1;
	}
	if (o == Py_None)
		return hb_codec_put_none(b), 0;
	if (PyBool_Check(o))
		return hb_codec_put_bool(b, o == Py_True), 0;
	if (PyList_Check(o) || PyTuple_Check(o)) {
		if (Py_EnterRecursiveCall(" while encoding a hornbeam value"))
			return -1;
		rc = encode_seq(o, b, depth, PyTuple_Check(o));
		Py_LeaveRecursiveCall();
		return rc;
	}
	if (PyDict_Check(o)) {
		if (Py_EnterRecursiveCall(" while encoding a hornbeam value"))
			return -1;
		rc = encode_dict(o, b, depth);
		Py_LeaveRecursiveCall();
		return rc;
	}
	return encode_scalar(o, b);
}

int hb_pyapi_encode(PyObject *o, hb_cbuf_t *b)
{
	hb_codec_begin(b);
	if (encode(o, b, 0) < 0)
		return -1;
	if (b->err == -ENOMEM) {
		PyErr_NoMemory();
		return -1;
	}
	if (b->err) {
		PyErr_SetString(PyExc_OverflowError, "value too large to encode (over 4 GiB)");
		return -1;
	}
	return 0;
}

/* ---- decoding ---- */

static PyObject *decode(hb_codec_reader_t *r);

static PyObject *bad_input(void)
{
	PyErr_SetString(PyExc_ValueError, "malformed hornbeam codec value");
	return NULL;
}

static PyObject *decode_bigint(const hb_codec_tok_t *t)
{
	PyObject *v = _PyLong_FromByteArray(t->data, t->len, 1, 0);

	if (v && t->neg)
		Py_SETREF(v, PyNumber_Negative(v));
	return v;
}

static PyObject *decode_seq(hb_codec_reader_t *r, uint32_t n, int tuple)
{
	PyObject *seq = tuple ? PyTuple_New(n) : PyList_New(n);

	for (uint32_t i = 0; seq && i < n; i++) {
		PyObject *item = decode(r);

		if (!item) {
			Py_CLEAR(seq);
			break;
		}
		if (tuple)
			PyTuple_SET_ITEM(seq, i, item);
		else
			PyList_SET_ITEM(seq, i, item);
	}
	return seq;
}

static PyObject *decode_dict(hb_codec_reader_t *r, uint32_t n)
{
	PyObject *d = PyDict_New();

	for (uint32_t i = 0; d && i < n; i++) {
		PyObject *k = decode(r), *v = k ? decode(r) : NULL;

		if (!v || PyDict_SetItem(d, k, v) < 0)
			Py_CLEAR(d);
		Py_XDECREF(k);
		Py_XDECREF(v);
	}
	return d;
}

static PyObject *decode(hb_codec_reader_t *r)
{
	hb_codec_tok_t t;

	if (hb_codec_next(r, &t) != 1)
		return bad_input();
	switch (t.type) {
	case HB_CODEC_NONE:
		Py_RETURN_NONE;
	case HB_CODEC_BOOL:
		return PyBool_FromLong(t.v.b);
	case HB_CODEC_INT:
		return PyLong_FromLongLong(t.v.i);
	case HB_CODEC_BIGINT:
		return decode_bigint(&t);
	case HB_CODEC_FLOAT:
		return PyFloat_FromDouble(t.v.f);
	case HB_CODEC_STR:
		return PyUnicode_DecodeUTF8((const char *)t.data, (Py_ssize_t)t.len, "strict");
	case HB_CODEC_BYTES:
		return PyBytes_FromStringAndSize((const char *)t.data, (Py_ssize_t)t.len);
	case HB_CODEC_LIST:
		return decode_seq(r, t.v.n, 0);
	case HB_CODEC_TUPLE:
		return decode_seq(r, t.v.n, 1);
	case HB_CODEC_DICT:
		return decode_dict(r, t.v.n);
	}
	return bad_input();
}

PyObject *hb_pyapi_decode(const void *buf, size_t len)
{
	hb_codec_reader_t r;
	hb_codec_tok_t t;
	PyObject *v;

	if (hb_codec_reader_init(&r, buf, len, 0) < 0)
		return bad_input();
	v = decode(&r);
	if (v && hb_codec_next(&r, &t) != 0) {
		Py_DECREF(v);
		return bad_input();
	}
	return v;
}

/* ---- keys ---- */

int hb_pyapi_key(PyObject *key, hb_pykey_t *k)
{
	const char *p;
	Py_ssize_t n;
	char tag;

	k->heap = NULL;
	if (PyUnicode_Check(key)) {
		p = PyUnicode_AsUTF8AndSize(key, &n);
		if (!p)
			return -1;
		tag = HB_KEY_TAG_STR;
	} else if (PyBytes_Check(key)) {
		p = PyBytes_AS_STRING(key);
		n = PyBytes_GET_SIZE(key);
		tag = HB_KEY_TAG_BYTES;
	} else {
		PyErr_Format(PyExc_TypeError, "keys must be str or bytes, not '%.200s'",
			     Py_TYPE(key)->tp_name);
		return -1;
	}
	if ((size_t)n + 1 > sizeof(k->stack)) {
		k->heap = PyMem_Malloc((size_t)n + 1);
		if (!k->heap) {
			PyErr_NoMemory();
			return -1;
		}
	}
	char *out = k->heap ? k->heap : k->stack;
	out[0] = tag;
	memcpy(out + 1, p, (size_t)n);
	k->data = out;
	k->len = (size_t)n + 1;
	return 0;
}

void hb_pyapi_key_free(hb_pykey_t *k)
{
	PyMem_Free(k->heap);
	k->heap = NULL;
}

PyObject *hb_pyapi_key_decode(const void *key, size_t len)
{
	const char *p = key;

	if (len >= 1 && p[0] == HB_KEY_TAG_STR)
		return PyUnicode_DecodeUTF8(p + 1, (Py_ssize_t)len - 1, "strict");
	if (len >= 1 && p[0] == HB_KEY_TAG_BYTES)
		return PyBytes_FromStringAndSize(p + 1, (Py_ssize_t)len - 1);
	PyErr_SetString(PyExc_ValueError, "malformed key in the shared map");
	return NULL;
}
