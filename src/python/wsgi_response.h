/* wsgi_response.h: start_response, write, and the response head they build.
 *
 * start_response validates the status and headers (latin-1 str, no CR/LF/NUL, token names) and
 * turns them into one hb_response_t allocation that the request holds until the head is sent
 * (lazily: with the first body bytes or at the end). Hop-by-hop headers are dropped (framing is
 * the io side's job); `Connection: close` becomes HB_RESP_CLOSE. The callable object points at
 * the request (hb_wsgi_req_t, wsgi.h) and is detached when the request ends.
 */
#ifndef HB_PYTHON_WSGI_RESPONSE_H
#define HB_PYTHON_WSGI_RESPONSE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "core/request.h"
#include "python/module.h"

struct hb_wsgi_req;

/* [GIL held] Creates the start_response type for `module`. Returns a new reference or NULL. */
PyTypeObject *hb_wsgi_start_response_type_new(PyObject *module);
/* [GIL held] A start_response callable for req. Returns a new reference or NULL. */
PyObject *hb_wsgi_start_response_new(hb_modstate_t *st, struct hb_wsgi_req *req);
/* [GIL held] Detaches it from its request: later calls raise RuntimeError. */
void hb_wsgi_start_response_detach(PyObject *sr);

/* A plain error response (status, text/plain body `body`, Connection: close). NULL on ENOMEM. */
hb_response_t *hb_wsgi_response_plain(int status, const char *body);

#endif
