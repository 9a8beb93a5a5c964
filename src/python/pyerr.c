/* pyerr.c: tracebacks as text, through the traceback module of the current interpreter. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "python/pycompat.h"
#include "python/pyerr.h"

/* "".join(traceback.format_exception(exc)) as a new str, or NULL with an exception set. */
static PyObject *format_exc(PyObject *exc)
{
	PyObject *tbmod, *lines, *empty, *text = NULL;

	tbmod = PyImport_ImportModule("traceback");
	if (!tbmod)
		return NULL;
	lines = PyObject_CallMethod(tbmod, "format_exception", "O", exc);
	Py_DECREF(tbmod);
	if (!lines)
		return NULL;
	empty = PyUnicode_FromString("");
	if (empty)
		text = PyUnicode_Join(empty, lines);
	Py_XDECREF(empty);
	Py_DECREF(lines);
	return text;
}

char *hb_pyerr_format(void)
{
	PyObject *exc = PyErr_GetRaisedException();
	PyObject *text = exc ? format_exc(exc) : NULL;
	const char *utf8 = text ? PyUnicode_AsUTF8(text) : NULL;
	char *out;

	if (!utf8) {
		PyErr_Clear();
		utf8 = exc ? "(traceback unavailable)\n" : "(no exception)\n";
	}
	out = strdup(utf8);
	Py_XDECREF(text);
	Py_XDECREF(exc);
	return out;
}

void hb_pyerr_log(hb_log_level_t level, const char *what)
{
	char *tb = hb_pyerr_format();

	hb_log(level, "%s", what);
	if (tb) {
		size_t len = strlen(tb);

		while (len && tb[len - 1] == '\n')
			len--;
		hb_log_block(level, tb, len);
	}
	free(tb);
}
