/* module.c: the `_hornbeam` built-in module: state, wsgi.errors and wsgi.file_wrapper. */
#include "python/module.h"

#include "core/log.h"
#include "python/asgi.h"
#include "python/pyapi.h"
#include "python/pycompat.h"
#include "python/wsgi_input.h"
#include "python/wsgi_response.h"

static const char *const modstr_text[HB_S_COUNT] = {
#define HB_MODSTR_TEXT(id, text) text,
	HB_MODSTR_LIST(HB_MODSTR_TEXT)
#undef HB_MODSTR_TEXT
};

/* ---- wsgi.errors: a text stream whose writes go to the server's error log. ---- */

typedef struct {
	PyObject_HEAD
} errors_t;

static PyObject *errors_write(PyObject *self, PyObject *arg)
{
	Py_ssize_t len;
	const char *text;

	if (!PyUnicode_Check(arg)) {
		PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s",
			     Py_TYPE(arg)->tp_name);
		return NULL;
	}
	text = PyUnicode_AsUTF8AndSize(arg, &len);
	if (!text)
		return NULL;
	/* A lone newline (print()'s end) would log an empty line. */
	if (len > 0 && !(len == 1 && text[0] == '\n'))
		hb_log_block(HB_LOG_ERROR, text, (size_t)len);
	return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

static PyObject *errors_writelines(PyObject *self, PyObject *seq)
{
	PyObject *it = PyObject_GetIter(seq), *line, *r;

	if (!it)
		return NULL;
	while ((line = PyIter_Next(it))) {
		r = errors_write(self, line);
		Py_DECREF(line);
		if (!r) {
			Py_DECREF(it);
			return NULL;
		}
		Py_DECREF(r);
	}
	Py_DECREF(it);
	if (PyErr_Occurred())
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *errors_flush(PyObject *self, PyObject *unused)
{
	Py_RETURN_NONE;
}

static PyMethodDef errors_methods[] = {
	{"write", errors_write, METH_O, "Write text to the server error log."},
	{"writelines", errors_writelines, METH_O, "Write each string of a sequence."},
	{"flush", errors_flush, METH_NOARGS, "No-op: every write is logged at once."},
	{NULL, NULL, 0, NULL},
};

static int heap_traverse(PyObject *self, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static void errors_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyType_Slot errors_slots[] = {
	{Py_tp_methods, errors_methods},
	{Py_tp_traverse, heap_traverse},
	{Py_tp_dealloc, errors_dealloc},
	{0, NULL},
};

static PyType_Spec errors_spec = {
	.name = "_hornbeam.ErrorStream",
	.basicsize = sizeof(errors_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = errors_slots,
};

/* ---- wsgi.file_wrapper(filelike, blksize=8192) ---- */

static PyObject *fw_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"filelike", "blksize", NULL};
	PyObject *filelike;
	Py_ssize_t blksize = 8192;
	hb_file_wrapper_t *fw;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:FileWrapper", kwlist, &filelike, &blksize))
		return NULL;
	if (blksize <= 0) {
		PyErr_SetString(PyExc_ValueError, "blksize must be positive");
		return NULL;
	}
	fw = (hb_file_wrapper_t *)tp->tp_alloc(tp, 0);
	if (!fw)
		return NULL;
	fw->filelike = Py_NewRef(filelike);
	fw->blksize = blksize;
	return (PyObject *)fw;
}

static PyObject *fw_next(PyObject *self)
{
	hb_file_wrapper_t *fw = (hb_file_wrapper_t *)self;
	PyObject *chunk = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);

	if (!chunk)
		return NULL;
	if (PyObject_Length(chunk) == 0) {
		if (PyErr_Occurred())
			PyErr_Clear();
		Py_DECREF(chunk);
		return NULL; /* StopIteration */
	}
	return chunk;
}

static PyObject *fw_close(PyObject *self, PyObject *unused)
{
	hb_file_wrapper_t *fw = (hb_file_wrapper_t *)self;

	if (PyObject_HasAttrString(fw->filelike, "close"))
		return PyObject_CallMethod(fw->filelike, "close", NULL);
	Py_RETURN_NONE;
}

static int fw_traverse(PyObject *self, visitproc visit, void *arg)
{
	Py_VISIT(((hb_file_wrapper_t *)self)->filelike);
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static int fw_clear(PyObject *self)
{
	Py_CLEAR(((hb_file_wrapper_t *)self)->filelike);
	return 0;
}

static void fw_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	fw_clear(self);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyMethodDef fw_methods[] = {
	{"close", fw_close, METH_NOARGS, "Close the wrapped file-like object."},
	{NULL, NULL, 0, NULL},
};

static PyType_Slot fw_slots[] = {
	{Py_tp_new, fw_new},	       {Py_tp_iter, PyObject_SelfIter},
	{Py_tp_iternext, fw_next},     {Py_tp_methods, fw_methods},
	{Py_tp_traverse, fw_traverse}, {Py_tp_clear, fw_clear},
	{Py_tp_dealloc, fw_dealloc},   {0, NULL},
};

static PyType_Spec fw_spec = {
	.name = "_hornbeam.FileWrapper",
	.basicsize = sizeof(hb_file_wrapper_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
	.slots = fw_slots,
};

/* ---- the module ---- */

hb_modstate_t *hb_module_state(PyObject *module)
{
	return (hb_modstate_t *)PyModule_GetState(module);
}

static int add_type(PyObject *m, PyTypeObject **slot, PyTypeObject *tp)
{
	*slot = tp;
	if (!tp)
		return -1;
	return PyModule_AddType(m, tp);
}

static int module_exec(PyObject *m)
{
	hb_modstate_t *st = hb_module_state(m);

	for (int i = 0; i < HB_S_COUNT; i++) {
		st->str[i] = PyUnicode_InternFromString(modstr_text[i]);
		if (!st->str[i])
			return -1;
	}
	st->wsgi_version = Py_BuildValue("(ii)", 1, 0);
	if (!st->wsgi_version)
		return -1;
	if (add_type(m, &st->errors_type,
		     (PyTypeObject *)PyType_FromModuleAndSpec(m, &errors_spec, NULL)) < 0 ||
	    add_type(m, &st->file_wrapper_type,
		     (PyTypeObject *)PyType_FromModuleAndSpec(m, &fw_spec, NULL)) < 0 ||
	    add_type(m, &st->input_type, hb_wsgi_input_type_new(m)) < 0 ||
	    add_type(m, &st->start_response_type, hb_wsgi_start_response_type_new(m)) < 0 ||
	    hb_asgi_module_exec(m) < 0)
		return -1;
	st->errors = PyType_GenericAlloc(st->errors_type, 0);
	if (!st->errors)
		return -1;
	/* Raised in a WSGI request's thread past `timeout` (python/watchdog.h). */
	st->WorkerTimeout =
		PyErr_NewExceptionWithDoc("hornbeam_erlang.WorkerTimeout",
					  "The request ran past the server's `timeout`: raised in "
					  "its thread so that it stops.",
					  PyExc_TimeoutError, NULL);
	if (!st->WorkerTimeout || PyModule_AddObjectRef(m, "WorkerTimeout", st->WorkerTimeout) < 0)
		return -1;
	/* State, pub/sub, call/cast: the native half of hornbeam_erlang (pyapi.h). */
	return hb_pyapi_add(m);
}

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
	hb_modstate_t *st = hb_module_state(m);

	if (!st)
		return 0;
	Py_VISIT(st->input_type);
	Py_VISIT(st->start_response_type);
	Py_VISIT(st->errors_type);
	Py_VISIT(st->file_wrapper_type);
	Py_VISIT(st->errors);
	Py_VISIT(st->wsgi_version);
	Py_VISIT(st->WorkerTimeout);
	return 0;
}

static int module_clear(PyObject *m)
{
	hb_modstate_t *st = hb_module_state(m);

	if (!st)
		return 0;
	Py_CLEAR(st->input_type);
	Py_CLEAR(st->start_response_type);
	Py_CLEAR(st->errors_type);
	Py_CLEAR(st->file_wrapper_type);
	Py_CLEAR(st->errors);
	Py_CLEAR(st->wsgi_version);
	Py_CLEAR(st->WorkerTimeout);
	for (int i = 0; i < HB_S_COUNT; i++)
		Py_CLEAR(st->str[i]);
	return 0;
}

static void module_free(void *m)
{
	module_clear((PyObject *)m);
}

static PyModuleDef_Slot module_slots[] = {
	{Py_mod_exec, (void *)module_exec},
#if HB_PY_SUBINTERPRETERS
	{Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
	{0, NULL},
};

static PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "_hornbeam",
	.m_doc = "hornbeam-uring server internals (one instance per interpreter).",
	.m_size = sizeof(hb_modstate_t),
	.m_slots = module_slots,
	.m_traverse = module_traverse,
	.m_clear = module_clear,
	.m_free = module_free,
};

PyObject *hb_module_init(void)
{
	return PyModuleDef_Init(&module_def);
}

PyObject *hb_module_import(void)
{
	return PyImport_ImportModule("_hornbeam");
}
