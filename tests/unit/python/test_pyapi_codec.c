/* test_pyapi_codec.c: Python objects <-> codec bytes (src/python/pyapi_codec.c).
 *
 * Each test (its own process: Criterion forks) initializes Python, builds values by
 * evaluating Python expressions, and checks that decode(encode(v)) has the same repr (which
 * tells tuple from list, -0.0 from 0.0, 1 from True), that unsupported types raise TypeError
 * naming the type, and that every truncation of a valid encoding is a clean ValueError.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "python/pyapi_codec.h"
#include "python/pycompat.h"

static void py_start(void)
{
	Py_InitializeEx(0);
}

static void py_stop(void)
{
	Py_FinalizeEx();
}

/* eval(expr) with random, math, sys available. New reference. */
static PyObject *eval(const char *expr)
{
	PyObject *g = PyDict_New(), *v;

	PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins());
	PyRun_String("import random, math, sys", Py_file_input, g, g);
	v = PyRun_String(expr, Py_eval_input, g, g);
	Py_DECREF(g);
	if (!v)
		PyErr_Print();
	cr_assert_not_null(v, "cannot evaluate %s", expr);
	return v;
}

static const char *repr_of(PyObject *o, char *buf, size_t len)
{
	PyObject *r = PyObject_Repr(o);

	snprintf(buf, len, "%s", r ? PyUnicode_AsUTF8(r) : "?");
	Py_XDECREF(r);
	return buf;
}

static void round_trip(PyObject *v)
{
	hb_cbuf_t b;
	PyObject *back;
	char r1[2048], r2[2048];

	hb_cbuf_init(&b, NULL, 0);
	cr_assert_eq(hb_pyapi_encode(v, &b), 0, "encode failed for %s", repr_of(v, r1, sizeof(r1)));
	cr_assert_eq(hb_codec_validate(b.data, b.len, 0), 0);
	back = hb_pyapi_decode(b.data, b.len);
	cr_assert_not_null(back);
	cr_assert_str_eq(repr_of(back, r1, sizeof(r1)), repr_of(v, r2, sizeof(r2)));
	Py_DECREF(back);
	hb_cbuf_free(&b);
}

Test(pyapi_codec, scalars_and_containers, .init = py_start, .fini = py_stop)
{
	static const char *const exprs[] = {
		"None",
		"True",
		"False",
		"0",
		"-1",
		"2**63-1",
		"-2**63",
		"2**63",
		"-2**63-1",
		"2**64",
		"-(2**64)",
		"12345678901234567890123456789 ** 3",
		"-(7 ** 300)",
		"1.5",
		"-0.0",
		"float('inf')",
		"1e-320",
		"''",
		"'h\\u00e9llo \\u2603 \\U0001F600'",
		"b''",
		"bytes(range(256))",
		"[]",
		"()",
		"{}",
		"(1,)",
		"[1, (2, [3, {}]), None]",
		"{'a': 1, b'a': 2, 3: (4, 5), (1, 'x'): [b'z'], None: False}",
		"{'deep': [[[[[[[[[[1]]]]]]]]]]}",
		"[True, 1, 1.0, '1', b'1']",
	};

	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		PyObject *v = eval(exprs[i]);

		round_trip(v);
		Py_DECREF(v);
	}
}

Test(pyapi_codec, subclasses_decode_as_base_types, .init = py_start, .fini = py_stop)
{
	PyObject *v = eval("__import__('collections').OrderedDict(a=1)");
	hb_cbuf_t b;
	PyObject *back;

	hb_cbuf_init(&b, NULL, 0);
	cr_assert_eq(hb_pyapi_encode(v, &b), 0);
	back = hb_pyapi_decode(b.data, b.len);
	cr_assert(PyDict_CheckExact(back));
	Py_DECREF(back);
	Py_DECREF(v);
	hb_cbuf_free(&b);
}

Test(pyapi_codec, random_nested_values, .init = py_start, .fini = py_stop)
{
	PyObject *vals = eval(
		"(lambda r: [(lambda f: f(f, 0))(lambda f, d: r.choice([None, True, "
		"r.randint(-2**70, 2**70),"
		" r.random() * 10**r.randint(-300, 300), ''.join(chr(r.randint(1, 0x10ffff) if "
		"r.random() < .1"
		" else r.randint(32, 126)) for _ in range(r.randint(0, 20))).encode('utf-8', "
		"'replace')"
		".decode('utf-8', 'replace'), bytes(r.getrandbits(8) for _ in range(r.randint(0, "
		"30)))]"
		" + ([[f(f, d + 1) for _ in range(r.randint(0, 4))], tuple(f(f, d + 1) for _ in"
		" range(r.randint(0, 4))), {r.randint(0, 50): f(f, d + 1) for _ in "
		"range(r.randint(0, 4))}]"
		" if d < 3 else []))) for _ in range(300)])(random.Random(1234))");

	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(vals); i++)
		round_trip(PyList_GET_ITEM(vals, i));
	Py_DECREF(vals);
}

static void expect_error(const char *expr, PyObject *type, const char *needle)
{
	PyObject *v = eval(expr), *exc, *s;
	hb_cbuf_t b;

	hb_cbuf_init(&b, NULL, 0);
	cr_assert_eq(hb_pyapi_encode(v, &b), -1, "%s encoded", expr);
	cr_assert(PyErr_ExceptionMatches(type), "%s: wrong exception type", expr);
	exc = PyErr_GetRaisedException();
	s = PyObject_Str(exc);
	cr_assert(strstr(PyUnicode_AsUTF8(s), needle), "%s: message '%s' lacks '%s'", expr,
		  PyUnicode_AsUTF8(s), needle);
	Py_DECREF(s);
	Py_DECREF(exc);
	Py_DECREF(v);
	hb_cbuf_free(&b);
}

Test(pyapi_codec, unsupported_types_name_the_type, .init = py_start, .fini = py_stop)
{
	expect_error("{1, 2}", PyExc_TypeError, "'set'");
	expect_error("object()", PyExc_TypeError, "'object'");
	expect_error("1j", PyExc_TypeError, "'complex'");
	expect_error("[1, {'a': frozenset()}]", PyExc_TypeError, "'frozenset'");
	expect_error("bytearray(b'x')", PyExc_TypeError, "'bytearray'");
	expect_error("{1: len}", PyExc_TypeError, "'builtin_function_or_method'");
	expect_error("(lambda a: (a.append(a), a)[1])([])", PyExc_ValueError, "nested deeper");
	expect_error("'\\udc80'", PyExc_UnicodeEncodeError, "surrogate");
}

Test(pyapi_codec, depth_limit, .init = py_start, .fini = py_stop)
{
	PyObject *ok = eval("(lambda n: [eval('[' * n + ']' * n)])(63)");

	round_trip(ok);
	Py_DECREF(ok);
	expect_error("eval('[' * 65 + ']' * 65)", PyExc_ValueError, "nested deeper");
}

Test(pyapi_codec, truncated_and_corrupt_input_is_valueerror, .init = py_start, .fini = py_stop)
{
	PyObject *v = eval("{'a': [1, 2**100, 'xyz', b'\\x00\\x01', (None, 1.5)], 'b': {}}");
	hb_cbuf_t b;

	hb_cbuf_init(&b, NULL, 0);
	cr_assert_eq(hb_pyapi_encode(v, &b), 0);
	for (size_t n = 0; n < b.len; n++) {
		PyObject *r = hb_pyapi_decode(b.data, n);

		cr_assert_null(r, "a %zu-byte prefix decoded", n);
		cr_assert(PyErr_ExceptionMatches(PyExc_ValueError));
		PyErr_Clear();
	}
	srand(7);
	for (int i = 0; i < 2000; i++) {
		uint8_t *c = malloc(b.len);
		PyObject *r;

		memcpy(c, b.data, b.len);
		c[rand() % b.len] ^= (uint8_t)(1 + rand() % 255);
		r = hb_pyapi_decode(c, b.len);
		if (!r)
			PyErr_Clear();
		Py_XDECREF(r);
		free(c);
	}
	Py_DECREF(v);
	hb_cbuf_free(&b);
}

Test(pyapi_codec, keys_are_tagged, .init = py_start, .fini = py_stop)
{
	PyObject *s = PyUnicode_FromString("k\xc3\xa9y"), *by = PyBytes_FromString("k"),
		 *i = PyLong_FromLong(1);
	hb_pykey_t k1, k2;
	PyObject *back;

	cr_assert_eq(hb_pyapi_key(s, &k1), 0);
	cr_assert_eq(k1.len, 5);
	cr_assert_eq(k1.data[0], HB_KEY_TAG_STR);
	cr_assert_eq(hb_pyapi_key(by, &k2), 0);
	cr_assert_eq(k2.len, 2);
	cr_assert_eq(k2.data[0], HB_KEY_TAG_BYTES);
	back = hb_pyapi_key_decode(k1.data, k1.len);
	cr_assert_eq(PyUnicode_Compare(back, s), 0);
	Py_DECREF(back);
	back = hb_pyapi_key_decode(k2.data, k2.len);
	cr_assert(PyBytes_Check(back) && PyBytes_GET_SIZE(back) == 1);
	Py_DECREF(back);
	cr_assert_eq(hb_pyapi_key(i, &k1), -1);
	cr_assert(PyErr_ExceptionMatches(PyExc_TypeError));
	PyErr_Clear();
	cr_assert_null(hb_pyapi_key_decode("x", 1));
	PyErr_Clear();
	/* A long key goes to the heap. */
	PyObject *big = eval("'k' * 5000");
	cr_assert_eq(hb_pyapi_key(big, &k1), 0);
	cr_assert_eq(k1.len, 5001);
	cr_assert_not_null(k1.heap);
	hb_pyapi_key_free(&k1);
	Py_DECREF(big);
	Py_DECREF(s);
	Py_DECREF(by);
	Py_DECREF(i);
}
