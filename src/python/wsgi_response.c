/* wsgi_response.c: start_response and write; validation of the app's status and headers. */
#include "python/wsgi_response.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "python/pycompat.h"
#include "python/resphead.h"
#include "python/wsgi.h"

typedef struct {
	PyObject_HEAD hb_wsgi_req_t *req; /* NULL once the request ended */
} sr_t;

/* One header as validated: latin-1 bytes borrowed from the app's str objects. */
typedef hb_resphead_hdr_t hdr_view_t;

/* A str's latin-1 bytes without copying: a 1-byte-kind str is latin-1. NULL if not latin-1. */
static const char *latin1_view(PyObject *o, size_t *len)
{
	if (!PyUnicode_Check(o) || PyUnicode_KIND(o) != PyUnicode_1BYTE_KIND)
		return NULL;
	*len = (size_t)PyUnicode_GET_LENGTH(o);
	return (const char *)PyUnicode_1BYTE_DATA(o);
}

static int bad_value_byte(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static int parse_status(PyObject *status, int *code)
{
	size_t len;
	const char *s = latin1_view(status, &len);

	if (!PyUnicode_Check(status)) {
		PyErr_Format(PyExc_TypeError, "status must be str, not %.100s",
			     Py_TYPE(status)->tp_name);
		return -1;
	}
	if (!s || len < 3 || (len > 3 && s[3] != ' ') || s[0] < '1' || s[0] > '9' || s[1] < '0' ||
	    s[1] > '9' || s[2] < '0' || s[2] > '9')
		goto bad;
	for (size_t i = 3; i < len; i++)
		if (bad_value_byte((unsigned char)s[i]))
			goto bad;
	*code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	return 0;
bad:
	PyErr_Format(PyExc_ValueError, "invalid status %R (expected 'NNN reason', latin-1)",
		     status);
	return -1;
}

/* Validates one (name, value) pair into *h. Returns 0, or -1 with an exception set. */
static int check_header(PyObject *item, hdr_view_t *h)
{
	PyObject *name, *value;

	if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
		PyErr_Format(PyExc_TypeError, "header must be a (name, value) tuple, not %R", item);
		return -1;
	}
	name = PyTuple_GET_ITEM(item, 0);
	value = PyTuple_GET_ITEM(item, 1);
	if (!PyUnicode_Check(name) || !PyUnicode_Check(value)) {
		PyErr_Format(PyExc_TypeError, "header name and value must be str: %R", item);
		return -1;
	}
	h->name = latin1_view(name, &h->name_len);
	h->value = latin1_view(value, &h->value_len);
	if (!h->name || !h->value || h->name_len == 0)
		goto bad;
	for (size_t i = 0; i < h->name_len; i++)
		if (!hb_resphead_is_tchar((unsigned char)h->name[i]))
			goto bad;
	for (size_t i = 0; i < h->value_len; i++)
		if (bad_value_byte((unsigned char)h->value[i]))
			goto bad;
	while (h->value_len && (h->value[0] == ' ' || h->value[0] == '\t'))
		h->value++, h->value_len--;
	while (h->value_len &&
	       (h->value[h->value_len - 1] == ' ' || h->value[h->value_len - 1] == '\t'))
		h->value_len--;
	return 0;
bad:
	PyErr_Format(PyExc_ValueError, "invalid header %R (latin-1 token name, no CR/LF/NUL)",
		     item);
	return -1;
}

/* Validates a list of (name, value) headers into a head of status code. NULL with an exception
 * set. */
static hb_response_t *pack_headers(int code, PyObject *headers)
{
	hdr_view_t stackv[32], *h = stackv;
	hb_response_t *r = NULL;
	uint32_t flags = 0;
	int64_t clen = -1;
	Py_ssize_t n, kept;

	if (!PyList_Check(headers)) {
		PyErr_Format(PyExc_TypeError, "headers must be a list, not %.100s",
			     Py_TYPE(headers)->tp_name);
		return NULL;
	}
	n = PyList_GET_SIZE(headers);
	if (n > 32 && !(h = PyMem_Malloc((size_t)n * sizeof(*h))))
		return (hb_response_t *)PyErr_NoMemory();
	/* The views borrow the items' data: nothing below runs Python code that could
	 * change the list. */
	for (Py_ssize_t i = 0; i < n; i++)
		if (check_header(PyList_GET_ITEM(headers, i), &h[i]) < 0)
			goto out;
	kept = hb_resphead_scan(h, n, &flags, &clen);
	if (kept < 0)
		goto out;
	r = hb_resphead_pack(code, kept ? h : NULL, (size_t)kept, flags, clen);
	if (!r)
		PyErr_NoMemory();
out:
	if (h != stackv)
		PyMem_Free(h);
	return r;
}

/* Validates status and headers into a response head. NULL with an exception set. */
static hb_response_t *build_response(PyObject *status, PyObject *headers)
{
	int code;

	return parse_status(status, &code) < 0 ? NULL : pack_headers(code, headers);
}

hb_response_t *hb_wsgi_response_plain(int status, const char *body)
{
	char len[24];
	hdr_view_t h[2] = {
		{"Content-Type", "text/plain; charset=utf-8", 12, 25},
		{"Content-Length", len, 14, 0},
	};

	h[1].value_len = (size_t)snprintf(len, sizeof(len), "%zu", strlen(body));
	return hb_resphead_pack(status, h, 2, HB_RESP_CLOSE, (int64_t)strlen(body));
}

/* Logs why start_response refused its arguments; the request will answer 500. */
static void log_invalid(void)
{
	PyObject *exc = PyErr_GetRaisedException();
	PyObject *msg = exc ? PyObject_Str(exc) : NULL;
	const char *text = msg ? PyUnicode_AsUTF8(msg) : NULL;

	if (!text)
		PyErr_Clear();
	hb_error("wsgi: start_response: %s: answering 500", text ? text : "invalid arguments");
	Py_XDECREF(msg);
	PyErr_SetRaisedException(exc);
}

/* exc_info given: after the head was sent, re-raise it (PEP 3333); before, replace the head. */
static int apply_exc_info(hb_wsgi_req_t *req, PyObject *exc_info)
{
	if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
		PyErr_SetString(PyExc_TypeError, "exc_info must be a 3-tuple or None");
		return -1;
	}
	if (req->head_sent) {
		PyObject *value = PyTuple_GET_ITEM(exc_info, 1);

		if (PyExceptionInstance_Check(value)) {
			PyObject *tb = PyTuple_GET_ITEM(exc_info, 2);

			if (tb != Py_None)
				PyException_SetTraceback(value, tb);
			PyErr_SetObject((PyObject *)Py_TYPE(value), value);
		} else
			PyErr_SetString(PyExc_RuntimeError, "start_response: headers already sent");
		return -1;
	}
	free(req->resp);
	req->resp = NULL;
	req->invalid = 0;
	return 0;
}

static PyObject *sr_call(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"status", "headers", "exc_info", NULL};
	hb_wsgi_req_t *req = ((sr_t *)self)->req;
	PyObject *status, *headers, *exc_info = Py_None;
	hb_response_t *resp;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:start_response", kwlist, &status, &headers,
					 &exc_info))
		return NULL;
	if (!req) {
		PyErr_SetString(PyExc_RuntimeError, "start_response called after the response");
		return NULL;
	}
	if (exc_info != Py_None) {
		if (apply_exc_info(req, exc_info) < 0)
			return NULL;
	} else if (req->resp || req->head_sent || req->invalid) {
		PyErr_SetString(PyExc_AssertionError,
				"start_response called a second time without exc_info");
		return NULL;
	}
	resp = build_response(status, headers);
	if (!resp) {
		req->invalid = 1;
		log_invalid();
		return NULL;
	}
	req->resp = resp;
	req->declared_len = resp->content_length;
	return PyObject_GetAttr(self, req->st->str[HB_S_write]);
}

static PyObject *sr_write(PyObject *self, PyObject *arg)
{
	hb_wsgi_req_t *req = ((sr_t *)self)->req;
	Py_buffer view;
	int rc;

	if (!req || (!req->resp && !req->head_sent)) {
		PyErr_SetString(PyExc_RuntimeError, "write() before start_response()");
		return NULL;
	}
	if (!PyBytes_Check(arg)) {
		PyErr_Format(PyExc_TypeError, "write() argument must be bytes, not %.100s",
			     Py_TYPE(arg)->tp_name);
		return NULL;
	}
	if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
		return NULL;
	rc = hb_wsgi_send(req, view.buf, (size_t)view.len);
	PyBuffer_Release(&view);
	if (rc == 0)
		hb_stream_flush(req->s); /* the app runs on after write(): the bytes go out now */
	if (rc < 0) {
		if (req->gone)
			PyErr_SetString(PyExc_ConnectionResetError, "client disconnected");
		else
			PyErr_SetString(PyExc_RuntimeError, "response body exceeds Content-Length");
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *detached(void)
{
	PyErr_SetString(PyExc_RuntimeError, "called after the response");
	return NULL;
}

/* environ["hornbeam.early_hint"](links): a 103 Early Hints interim response with one Link field
 * per str, before the head. False when it cannot go out any more (the head went, the client
 * left); the io side also drops it for an HTTP/1.0 client. */
static PyObject *sr_early_hint(PyObject *self, PyObject *links)
{
	hb_wsgi_req_t *req = ((sr_t *)self)->req;
	PyObject *seq;
	hdr_view_t *h = NULL;
	hb_response_t *hint = NULL;
	int rc = -1;

	if (!req)
		return detached();
	if (PyUnicode_Check(links) ||
	    !(seq = PySequence_Fast(links, "early_hint() takes a list of Link values (str)")))
		return PyErr_Occurred()
			       ? NULL
			       : (PyErr_SetString(PyExc_TypeError,
						  "early_hint() takes a list of str, not a str"),
				  NULL);
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if (n && !(h = PyMem_Calloc((size_t)n, sizeof(*h)))) {
		PyErr_NoMemory();
		goto out;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *l = PySequence_Fast_GET_ITEM(seq, i);
		h[i] = (hdr_view_t){.name = "Link", .name_len = 4};
		h[i].value = latin1_view(l, &h[i].value_len);
		for (size_t k = 0; h[i].value && k < h[i].value_len; k++)
			if (bad_value_byte((unsigned char)h[i].value[k]))
				h[i].value = NULL;
		if (!h[i].value) {
			PyErr_Format(PyExc_ValueError, "invalid Link value %R (latin-1, no CR/LF)",
				     l);
			goto out;
		}
	}
	rc = 0;
	if (n == 0 || req->head_sent || req->gone || req->ended)
		goto out;
	if (!(hint = hb_resphead_pack(103, h, (size_t)n, HB_RESP_HAS_SERVER, -1))) {
		PyErr_NoMemory();
		rc = -1;
		goto out;
	}
	Py_BEGIN_ALLOW_THREADS rc = hb_stream_send_interim(req->s, hint) == 0 ? 1 : 0;
	Py_END_ALLOW_THREADS out : PyMem_Free(h);
	Py_DECREF(seq);
	return rc < 0 ? NULL : PyBool_FromLong(rc);
}

/* environ["hornbeam.push"](path, headers=None): asks the HTTP/2 connection to push a GET of
 * path (a WSGI latin-1 str, with an optional query) that the app then serves like a request.
 * True when asked; False when it cannot be (no push on this request, the response ended, the
 * client left). The connection may still drop it when the client's limits refuse it. */
static PyObject *sr_push(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"path", "headers", NULL};
	hb_wsgi_req_t *req = ((sr_t *)self)->req;
	PyObject *path, *headers = Py_None;
	hb_response_t *fields = NULL;
	size_t len = 0;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|O:push", kwlist, &path, &headers))
		return NULL;
	if (!req)
		return detached();
	const char *p = latin1_view(path, &len);
	for (size_t i = 0; p && i < len; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] == 0x7f)
			p = NULL;
	if (!p || len == 0 || p[0] != '/') {
		PyErr_Format(PyExc_ValueError, "invalid push path %R (latin-1, starts with '/')",
			     path);
		return NULL;
	}
	if (headers != Py_None && !(fields = pack_headers(0, headers)))
		return NULL;
	if (!(req->s->req->flags & HB_REQ_CAN_PROMISE) || req->gone || req->ended) {
		free(fields);
		Py_RETURN_FALSE;
	}
	Py_BEGIN_ALLOW_THREADS rc = hb_stream_promise(req->s, p, len, fields);
	Py_END_ALLOW_THREADS return PyBool_FromLong(rc == 0);
}

static PyMethodDef sr_methods[] = {
	{"write", sr_write, METH_O, "write(data): send body bytes (PEP 3333 write callable)."},
	{"early_hint", sr_early_hint, METH_O,
	 "early_hint(links): a 103 Early Hints response with these Link values."},
	{"push", (PyCFunction)(void (*)(void))sr_push, METH_VARARGS | METH_KEYWORDS,
	 "push(path, headers=None): HTTP/2 server push of a GET of path."},
	{NULL, NULL, 0, NULL},
};

static int sr_traverse(PyObject *self, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static void sr_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyType_Slot sr_slots[] = {
	{Py_tp_call, sr_call},
	{Py_tp_methods, sr_methods},
	{Py_tp_traverse, sr_traverse},
	{Py_tp_dealloc, sr_dealloc},
	{0, NULL},
};

static PyType_Spec sr_spec = {
	.name = "_hornbeam.StartResponse",
	.basicsize = sizeof(sr_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = sr_slots,
};

PyTypeObject *hb_wsgi_start_response_type_new(PyObject *module)
{
	return (PyTypeObject *)PyType_FromModuleAndSpec(module, &sr_spec, NULL);
}

PyObject *hb_wsgi_start_response_new(hb_modstate_t *st, struct hb_wsgi_req *req)
{
	sr_t *sr = (sr_t *)PyType_GenericAlloc(st->start_response_type, 0);

	if (sr)
		sr->req = req;
	return (PyObject *)sr;
}

void hb_wsgi_start_response_detach(PyObject *sr)
{
	((sr_t *)sr)->req = NULL;
}
