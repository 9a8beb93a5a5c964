/* hbtest_singlephase.c: a legacy single-phase-init extension module, for tests only.
 *
 * CPython refuses to load a single-phase module in a sub-interpreter that has its own GIL
 * ("module hbtest_singlephase does not support loading in subinterpreters"), which is what
 * extension modules such as numpy do today. The server must then fall back to the main
 * interpreter; an app importing this module exercises that path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *answer(PyObject *self, PyObject *unused)
{
	return PyLong_FromLong(42);
}

static PyMethodDef methods[] = {
	{"answer", answer, METH_NOARGS, "Returns 42."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef def = {
	PyModuleDef_HEAD_INIT, "hbtest_singlephase", "Single-phase init test module.", -1, methods,
};

PyMODINIT_FUNC PyInit_hbtest_singlephase(void)
{
	return PyModule_Create(&def);
}
