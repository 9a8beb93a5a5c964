/* wsgi_input.h: the wsgi.input object, a file-like reader over a stream's request body.
 *
 * read(n=-1), readline(size=-1), readlines(hint=-1), iteration. Bytes come from
 * hb_stream_body_read with the GIL released, as the client sends them; only what the app asks
 * for is held (read() with no size holds the whole body, because the app asked). At the end of
 * the body reads return b"". An input object belongs to the request that made it: it is
 * detached when the request ends, and reads on it then return b"".
 */
#ifndef HB_PYTHON_WSGI_INPUT_H
#define HB_PYTHON_WSGI_INPUT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "core/stream.h"
#include "python/module.h"

/* [GIL held] Creates the wsgi.input type for `module`. Returns a new reference or NULL. */
PyTypeObject *hb_wsgi_input_type_new(PyObject *module);
/* [GIL held] A new input object reading s. Returns a new reference or NULL. */
PyObject *hb_wsgi_input_new(hb_modstate_t *st, hb_stream_t *s);
/* [GIL held] Forgets the stream: later reads return b"". */
void hb_wsgi_input_detach(PyObject *input);

#endif
