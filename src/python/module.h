/* module.h: the built-in `_hornbeam` module, one instance per interpreter.
 *
 * Registered with PyImport_AppendInittab before the main interpreter starts, so every
 * interpreter (main and sub-interpreters) can import it. Multi-phase init with
 * Py_MOD_PER_INTERPRETER_GIL_SUPPORTED: all Python objects live in the module state of the
 * interpreter that imported it (heap types, interned environ keys, the wsgi.errors object),
 * never in static storage. Every function here runs with the GIL of the calling interpreter.
 */
#ifndef HB_PYTHON_MODULE_H
#define HB_PYTHON_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Interned strings kept in module state: environ keys and constant values. */
#define HB_MODSTR_LIST(X)                                                                          \
	X(REQUEST_METHOD, "REQUEST_METHOD")                                                        \
	X(SCRIPT_NAME, "SCRIPT_NAME")                                                              \
	X(PATH_INFO, "PATH_INFO")                                                                  \
	X(QUERY_STRING, "QUERY_STRING")                                                            \
	X(CONTENT_TYPE, "CONTENT_TYPE")                                                            \
	X(CONTENT_LENGTH, "CONTENT_LENGTH")                                                        \
	X(SERVER_NAME, "SERVER_NAME")                                                              \
	X(SERVER_PORT, "SERVER_PORT")                                                              \
	X(SERVER_PROTOCOL, "SERVER_PROTOCOL")                                                      \
	X(SERVER_SOFTWARE, "SERVER_SOFTWARE")                                                      \
	X(REMOTE_ADDR, "REMOTE_ADDR")                                                              \
	X(REMOTE_PORT, "REMOTE_PORT")                                                              \
	X(RAW_URI, "RAW_URI")                                                                      \
	X(HTTP_COOKIE, "HTTP_COOKIE")                                                              \
	X(HTTP_HOST, "HTTP_HOST")                                                                  \
	X(hb_early_hint, "hornbeam.early_hint")                                                    \
	X(hb_push, "hornbeam.push")                                                                \
	X(early_hint, "early_hint")                                                                \
	X(push, "push")                                                                            \
	X(wsgi_version, "wsgi.version")                                                            \
	X(wsgi_url_scheme, "wsgi.url_scheme")                                                      \
	X(wsgi_input, "wsgi.input")                                                                \
	X(wsgi_input_terminated, "wsgi.input_terminated")                                          \
	X(wsgi_errors, "wsgi.errors")                                                              \
	X(wsgi_multithread, "wsgi.multithread")                                                    \
	X(wsgi_multiprocess, "wsgi.multiprocess")                                                  \
	X(wsgi_run_once, "wsgi.run_once")                                                          \
	X(wsgi_file_wrapper, "wsgi.file_wrapper")                                                  \
	X(v_GET, "GET")                                                                            \
	X(v_POST, "POST")                                                                          \
	X(v_HEAD, "HEAD")                                                                          \
	X(v_http, "http")                                                                          \
	X(v_https, "https")                                                                        \
	X(v_HTTP11, "HTTP/1.1")                                                                    \
	X(v_HTTP10, "HTTP/1.0")                                                                    \
	X(v_HTTP2, "HTTP/2")                                                                       \
	X(v_empty, "")                                                                             \
	X(close, "close")                                                                          \
	X(read, "read")                                                                            \
	X(fileno, "fileno")                                                                        \
	X(tell, "tell")                                                                            \
	X(write, "write")

enum {
#define HB_MODSTR_ENUM(id, text) HB_S_##id,
	HB_MODSTR_LIST(HB_MODSTR_ENUM)
#undef HB_MODSTR_ENUM
		HB_S_COUNT
};

typedef struct hb_modstate {
	PyTypeObject *input_type;	   /* wsgi.input (wsgi_input.c) */
	PyTypeObject *start_response_type; /* start_response/write (wsgi_response.c) */
	PyTypeObject *errors_type;	   /* wsgi.errors */
	PyTypeObject *file_wrapper_type;   /* wsgi.file_wrapper */
	PyObject *errors;		   /* the interpreter's one wsgi.errors object */
	PyObject *wsgi_version;		   /* (1, 0) */
	PyObject *WorkerTimeout;	   /* TimeoutError raised in a request past `timeout` */
	PyObject *str[HB_S_COUNT];
} hb_modstate_t;

/* A FileWrapper instance (wsgi.file_wrapper(filelike, blksize)). */
typedef struct hb_file_wrapper {
	PyObject_HEAD PyObject *filelike;
	Py_ssize_t blksize;
} hb_file_wrapper_t;

/* The init function given to PyImport_AppendInittab("_hornbeam", ...). */
PyObject *hb_module_init(void);

/* Imports `_hornbeam` in the current interpreter. Returns a new reference or NULL. */
PyObject *hb_module_import(void);

/* The state of a `_hornbeam` module object (borrowed). */
hb_modstate_t *hb_module_state(PyObject *module);

#endif
