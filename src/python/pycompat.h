/* pycompat.h: the few CPython 3.12/3.13 C-API calls this code uses, for a build against 3.11
 * (HB_PYTHON_CONFIG=/usr/bin/python3.11-config), written with the 3.11 API. On 3.12+ it adds
 * nothing. 3.11 has no per-interpreter GIL: HB_PY_SUBINTERPRETERS is 0 there, and every worker
 * runs in the main interpreter (interpreter = "main", the default of such a build). Same thread
 * rules as the calls it stands for (GIL held).
 */
#ifndef HB_PYTHON_PYCOMPAT_H
#define HB_PYTHON_PYCOMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX >= 0x030C0000
#define HB_PY_SUBINTERPRETERS 1
#else
#define HB_PY_SUBINTERPRETERS 0

/* The current exception as one object (its traceback attached), cleared; NULL when none. */
static inline PyObject *hb_compat_get_raised(void)
{
	PyObject *type, *value, *tb;

	PyErr_Fetch(&type, &value, &tb);
	if (!type)
		return NULL;
	PyErr_NormalizeException(&type, &value, &tb);
	if (tb && value)
		PyException_SetTraceback(value, tb);
	Py_XDECREF(type);
	Py_XDECREF(tb);
	return value;
}

/* Sets exc (a reference stolen) as the current exception; NULL clears it. */
static inline void hb_compat_set_raised(PyObject *exc)
{
	if (!exc) {
		PyErr_Clear();
		return;
	}
	PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}

#define PyErr_GetRaisedException hb_compat_get_raised
#define PyErr_SetRaisedException hb_compat_set_raised
#endif

#if PY_VERSION_HEX < 0x030D0000
/* 3.13's PyModule_Add: like PyModule_AddObjectRef, but steals value (NULL: an error is set). */
static inline int hb_compat_module_add(PyObject *mod, const char *name, PyObject *value)
{
	int rc;

	if (!value)
		return -1;
	rc = PyModule_AddObjectRef(mod, name, value);
	Py_DECREF(value);
	return rc;
}
#define PyModule_Add hb_compat_module_add
#define PyThreadState_GetUnchecked _PyThreadState_UncheckedGet
#endif

#endif
