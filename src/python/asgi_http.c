/* asgi_http.c: the HTTP side of receive() and send(), and the response head they build.
 *
 * The head from http.response.start is held until the first body message, so that a response
 * sent in one piece goes out with a Content-Length (no chunking) and an app that fails before
 * any body still gets a clean 500; the head then goes with that body (and the end, when the
 * body is complete) as one batch, written in one send (one TLS record). Streamed pieces of up to
 * HOLD_MAX bytes are held until the app's step is over (a loop callback posts them) or the next
 * body message comes: the last piece and the end the app sends right after it then leave as one
 * batch too, as do small pieces sent back to back. Each step is non-blocking:
 * it returns HB_ASGI_WAIT_* when the stream has nothing to read or too much output pending, and is
 * retried after a wakeup. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "python/asgi_priv.h"
#include "python/resphead.h"

/* The most body bytes one http.request message carries. */
#define RECV_MAX (1u << 20)

/* ---- the response head ---- */

typedef hb_resphead_hdr_t hdr_t;

/* One (name, value) pair of bytes: borrowed views, valid while `pair` lives. */
static int check_header(PyObject *pair, hdr_t *h)
{
	PyObject *name, *value;

	if (!PySequence_Check(pair) || PySequence_Size(pair) != 2) {
		PyErr_Format(PyExc_TypeError, "ASGI header must be a [name, value] pair, not %R",
			     pair);
		return -1;
	}
	name = PySequence_Fast_GET_ITEM(pair, 0);
	value = PySequence_Fast_GET_ITEM(pair, 1);
	if (!PyBytes_Check(name) || !PyBytes_Check(value)) {
		PyErr_Format(PyExc_TypeError, "ASGI header name and value must be bytes: %R", pair);
		return -1;
	}
	h->name = PyBytes_AS_STRING(name);
	h->name_len = (size_t)PyBytes_GET_SIZE(name);
	h->value = PyBytes_AS_STRING(value);
	h->value_len = (size_t)PyBytes_GET_SIZE(value);
	for (size_t i = 0; i < h->name_len; i++) {
		unsigned char c = (unsigned char)h->name[i];

		if (!((c >= 'a' && c <= 'z') || c == '-') && !hb_resphead_is_tchar(c))
			goto bad;
	}
	for (size_t i = 0; i < h->value_len; i++) {
		unsigned char c = (unsigned char)h->value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			goto bad;
	}
	if (h->name_len)
		return 0;
bad:
	PyErr_Format(PyExc_ValueError, "invalid ASGI header %R (token name, no CR/LF/NUL)", pair);
	return -1;
}

/* Validates every pair into h (n of them + one spare slot). Returns 0 or -1. */
static int collect(PyObject *seq, hdr_t *h, Py_ssize_t n, PyObject **items)
{
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);

		items[i] = PyTuple_CheckExact(pair) || PyList_CheckExact(pair)
				   ? Py_NewRef(pair)
				   : PySequence_Fast(pair, "header pair");
		if (!items[i] || check_header(items[i], &h[i]) < 0)
			return -1;
	}
	return 0;
}

/* Headers up to this many are gathered on the stack. */
#define STACK_HEADERS 16

hb_response_t *hb_asgi_response_new(int status, PyObject *headers, const char *xname,
				    const char *xvalue, size_t xlen)
{
	PyObject *seq = PySequence_Fast(headers, "ASGI headers must be iterable");
	PyObject *items_stack[STACK_HEADERS + 1], **items = items_stack;
	hdr_t h_stack[STACK_HEADERS + 1], *h = h_stack;
	hb_response_t *r = NULL;
	Py_ssize_t n = seq ? PySequence_Fast_GET_SIZE(seq) : 0, kept;
	uint32_t flags = 0;
	int64_t clen = -1;

	if (!seq)
		return NULL;
	if (n > STACK_HEADERS) {
		h = PyMem_Calloc((size_t)n + 1, sizeof(*h));
		items = PyMem_Calloc((size_t)n + 1, sizeof(*items));
		if (!h || !items) {
			PyErr_NoMemory();
			goto out;
		}
	}
	memset(items, 0, ((size_t)n + 1) * sizeof(*items));
	if (collect(seq, h, n, items) < 0 || (kept = hb_resphead_scan(h, n, &flags, &clen)) < 0)
		goto out;
	if (xname)
		h[kept++] = (hdr_t){xname, xvalue, strlen(xname), xlen};
	if (!(r = hb_resphead_pack(status, h, (size_t)kept, flags, clen)))
		PyErr_NoMemory();
out:
	for (Py_ssize_t i = 0; items && i < n; i++)
		Py_XDECREF(items[i]);
	if (items != items_stack)
		PyMem_Free(items);
	if (h != h_stack)
		PyMem_Free(h);
	Py_DECREF(seq);
	return r;
}

/* The held head plus Content-Length: len (a response sent in one piece). */
static hb_response_t *with_length(hb_response_t *r, uint64_t len)
{
	hdr_t stackv[33], *h = stackv;
	char num[24];
	hb_response_t *out;
	size_t n = r->nheaders;

	if (n + 1 > 33 && !(h = malloc((n + 1) * sizeof(*h))))
		return NULL;
	for (size_t i = 0; i < n; i++)
		h[i] = (hdr_t){r->headers[i].name, r->headers[i].value, r->headers[i].name_len,
			       r->headers[i].value_len};
	h[n] = (hdr_t){"content-length", num, 14,
		       (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)len)};
	out = hb_resphead_pack(r->status, h, n + 1, r->flags, (int64_t)len);
	if (h != stackv)
		free(h);
	return out;
}

/* ---- receive ---- */

/* True when the io side queued the whole body and we took all of it. */
static int body_drained(hb_asgi_req_t *r)
{
	hb_stream_t *s = r->s;
	const hb_request_t *q = s->req;

	if (q->content_length >= 0 && !(q->flags & HB_REQ_CHUNKED))
		return s->body_read >= (uint64_t)q->content_length;
	return (atomic_load(&s->state) & HB_ST_BODY_EOF) && hb_spsc_empty(&s->body) &&
	       (!s->cur || s->cur_off == s->cur->len);
}

/* The end came before Content-Length bytes: the io side still holds some (it flushes them
 * once the queue drains) unless the client is gone. */
static int short_body(hb_stream_t *s)
{
	const hb_request_t *q = s->req;

	return q->content_length >= 0 && !(q->flags & HB_REQ_CHUNKED) &&
	       s->body_read < (uint64_t)q->content_length && !hb_stream_client_gone(s);
}

static PyObject *request_msg(hb_asgi_worker_t *w, PyObject *body, int more)
{
	return hb_asgi_msg(w, HB_ASGI_S(w, http_request), 2, HB_ASGI_S(w, body), body,
			   HB_ASGI_S(w, more_body), PyBool_FromLong(more));
}

static int disconnect(hb_asgi_req_t *r, PyObject **out)
{
	*out = hb_asgi_msg(r->w, HB_ASGI_S(r->w, http_disconnect), 0);
	return *out ? HB_ASGI_DONE : HB_ASGI_ERR;
}

/* Reads what is queued (up to RECV_MAX) into one http.request message. */
static int read_body(hb_asgi_req_t *r, PyObject **out)
{
	hb_stream_t *s = r->s;
	uint64_t avail = atomic_load(&s->body_queued) + (s->cur ? s->cur->len - s->cur_off : 0);
	size_t cap = avail == 0 ? 16384 : avail > RECV_MAX ? RECV_MAX : (size_t)avail;
	PyObject *buf;
	int64_t n;

	if (!(s->req->flags & HB_REQ_HAS_BODY)) { /* GET and friends: no read, no buffer */
		r->body_eof = 1;
		*out = request_msg(r->w, PyBytes_FromStringAndSize("", 0), 0);
		return *out ? HB_ASGI_DONE : HB_ASGI_ERR;
	}
	if (!(buf = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap)))
		return HB_ASGI_ERR;
	n = hb_stream_body_read(s, PyBytes_AS_STRING(buf), cap, 0);
	if (n == 0 && short_body(s))
		n = -EAGAIN;
	if (n == -EAGAIN || n < 0) {
		Py_DECREF(buf);
		if (n == -EAGAIN)
			return HB_ASGI_WAIT_RECV;
		r->gone = 1; /* reset, or a malformed body the io side answers itself */
		r->body_eof = 1;
		return disconnect(r, out);
	}
	if (n == 0 || body_drained(r))
		r->body_eof = 1;
	if ((size_t)n != cap && _PyBytes_Resize(&buf, (Py_ssize_t)n) < 0)
		return HB_ASGI_ERR;
	*out = request_msg(r->w, buf, !r->body_eof);
	return *out ? HB_ASGI_DONE : HB_ASGI_ERR;
}

int hb_asgi_http_receive(hb_asgi_req_t *r, PyObject **out)
{
	if (!r->s || r->complete || r->gone)
		return disconnect(r, out);
	if (!r->body_eof)
		return read_body(r, out);
	if (hb_stream_client_gone(r->s)) {
		r->gone = 1;
		return disconnect(r, out);
	}
	return HB_ASGI_WAIT_RECV; /* until the client leaves or the response is complete */
}

/* ---- send ---- */

static int int_item(PyObject *msg, PyObject *key, long dflt, long *out)
{
	PyObject *v = PyDict_GetItemWithError(msg, key);

	if (!v) {
		if (PyErr_Occurred())
			return -1;
		*out = dflt;
		return 0;
	}
	*out = PyLong_AsLong(v);
	return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int bad_state(const char *what)
{
	PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message %s", what);
	return HB_ASGI_ERR;
}

int hb_asgi_http_start(hb_asgi_req_t *r, PyObject *msg)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *headers, *empty = NULL;
	long status;

	if (r->started)
		return bad_state("http.response.start: the response already started");
	if (r->gone || hb_stream_client_gone(r->s)) {
		r->gone = 1;
		return hb_asgi_raise_gone(r);
	}
	if (int_item(msg, HB_ASGI_S(w, status), -1, &status) < 0)
		return HB_ASGI_ERR;
	if (status < 200 || status > 999) {
		PyErr_Format(PyExc_ValueError, "invalid ASGI response status %ld", status);
		return HB_ASGI_ERR;
	}
	headers = PyDict_GetItemWithError(msg, HB_ASGI_S(w, headers));
	if (!headers && (PyErr_Occurred() || !(headers = empty = PyTuple_New(0))))
		return HB_ASGI_ERR;
	r->resp = hb_asgi_response_new((int)status, headers, NULL, NULL, 0);
	Py_XDECREF(empty);
	if (!r->resp)
		return HB_ASGI_ERR;
	PyObject *tr = r->websocket ? NULL : PyDict_GetItemWithError(msg, HB_ASGI_S(w, trailers));
	int want_trailers = tr ? PyObject_IsTrue(tr) : PyErr_Occurred() ? -1 : 0;
	if (want_trailers < 0)
		return HB_ASGI_ERR;
	if (want_trailers) {
		r->trailers = 1;
		r->resp->flags |= HB_RESP_TRAILERS;
	}
	r->started = 1;
	r->declared_len = r->resp->content_length;
	r->last_ns = hb_asgi_now_ns();
	return HB_ASGI_DONE;
}

static int status_has_body(int status)
{
	return status >= 200 && status != 204 && status != 304;
}

/* Takes the held head; when `last` (the body is this one piece of len bytes) and the app set
 * no Content-Length, with one. */
static hb_response_t *take_head(hb_asgi_req_t *r, int last, uint64_t len)
{
	hb_response_t *resp = r->resp, *l;

	r->resp = NULL;
	if (last && resp->content_length < 0 && status_has_body(resp->status) &&
	    (l = with_length(resp, len))) {
		free(resp);
		resp = l;
	}
	r->head_posted = 1;
	return resp;
}

/* Posts the held head (see take_head). Returns 0 or -1 (client gone). */
static int post_head(hb_asgi_req_t *r, int last, uint64_t len)
{
	if (hb_stream_send_head(r->s, take_head(r, last, len)) < 0) {
		r->gone = 1;
		return -1;
	}
	return 0;
}

/* The response is complete: end the stream now (the app may go on: background tasks). */
static void complete(hb_asgi_req_t *r)
{
	r->complete = 1;
	r->last_ns = hb_asgi_now_ns();
	hb_asgi_req_end(r, 0);
	hb_asgi_req_wake(r); /* a pending receive() now gets http.disconnect */
}

/* The last body bytes are out: the response is complete, unless trailers were declared. */
static void body_complete(hb_asgi_req_t *r)
{
	if (r->trailers)
		r->body_done = 1;
	else
		complete(r);
}

static int more_flag(PyObject *msg, PyObject *key)
{
	PyObject *v = PyDict_GetItemWithError(msg, key);

	return v ? PyObject_IsTrue(v) : PyErr_Occurred() ? -1 : 0;
}

static int more_body(hb_asgi_worker_t *w, PyObject *msg)
{
	return more_flag(msg, HB_ASGI_S(w, more_body));
}

/* A post to the stream failed with rc (< 0, not -EAGAIN): out of memory raises MemoryError,
 * anything else means the client is gone. Returns ERR, or what hb_asgi_raise_gone returns. */
static int post_failed(hb_asgi_req_t *r, int rc)
{
	if (rc == -ENOMEM) {
		PyErr_NoMemory();
		return HB_ASGI_ERR;
	}
	r->gone = 1;
	return hb_asgi_raise_gone(r);
}

/* The first http.response.body: the held head, its bytes (none for HEAD) and, when the
 * response ends with them, the end, posted as one batch: the io thread writes them in one send
 * (on TLS one record) instead of the head alone when it wakes before the body is posted.
 * Returns DONE or ERR. */
static int post_head_body(hb_asgi_req_t *r, int more, const Py_buffer *view)
{
	int end = !more && !r->trailers;
	size_t len = r->is_head ? 0 : (size_t)view->len;
	hb_response_t *resp = take_head(r, !more, (uint64_t)view->len);
	int rc = hb_stream_send_head_body(r->s, resp, view->buf, len, end, 0);

	if (rc == -ENOMEM)
		r->head_posted = 0; /* nothing went: the failure can still answer 500 */
	if (rc < 0)
		return post_failed(r, rc);
	if (end)
		r->ended = 1; /* hb_stream_end is posted */
	return HB_ASGI_DONE;
}

/* Posts view's bytes unless HEAD. Returns DONE, WAIT_SEND or ERR. */
static int post_body(hb_asgi_req_t *r, const Py_buffer *view)
{
	int rc;

	if (view->len == 0 || r->is_head)
		return HB_ASGI_DONE;
	rc = hb_stream_send_body_nb(r->s, view->buf, (size_t)view->len);
	if (rc == -EAGAIN)
		return HB_ASGI_WAIT_SEND;
	return rc < 0 ? post_failed(r, rc) : HB_ASGI_DONE;
}

/* ---- held body pieces ---- */

/* Streamed pieces up to this many bytes in all are held (one TLS record's worth). */
#define HOLD_MAX 16384u

/* Posts data (the held bytes first) and, when `end`, the end, as one batch. Never waits (what
 * is held is bounded). Returns 0, -ECONNRESET or -ENOMEM (nothing posted, the held bytes kept). */
static int post_with_held(hb_asgi_req_t *r, const void *data, size_t len, int end)
{
	size_t held_before = r->held_len;
	int rc;

	if (r->held_len && len && r->held_len + len <= HOLD_MAX) {
		memcpy(r->held + r->held_len, data, len);
		r->held_len += len;
		len = 0;
	}
	if (r->held_len && len) { /* too much to join: the held bytes go first, alone */
		if ((rc = hb_stream_send_body_end(r->s, r->held, r->held_len, 0, 0)) < 0)
			return rc;
		r->held_len = 0;
	}
	if (r->held_len) {
		data = r->held;
		len = r->held_len;
	}
	rc = hb_stream_send_body_end(r->s, data, len, end, 0);
	if (rc == 0) {
		r->held_len = 0;
		if (end)
			r->ended = 1;
	} else if (r->held_len > held_before) {
		r->held_len = held_before; /* this call's bytes were not taken: the app may retry */
	}
	return rc == -EALREADY ? 0 : rc;
}

/* Posts what is held (the step that held it is over, or something must follow it). */
static void flush_held(hb_asgi_req_t *r)
{
	if (r->held_len && r->s && !r->gone && post_with_held(r, NULL, 0, 0) == -ECONNRESET)
		r->gone = 1;
}

static PyObject *flush_cb(PyObject *self, PyObject *unused)
{
	hb_asgi_req_t *r = (hb_asgi_req_t *)self;

	r->flush_armed = 0;
	flush_held(r);
	Py_RETURN_NONE;
}

static PyMethodDef flush_def = {"_flush", flush_cb, METH_NOARGS, "posts held body bytes"};

/* Holds len bytes (the held total stays <= HOLD_MAX) and makes sure a loop callback posts them
 * once the app's step is over. Returns DONE or ERR. */
static int hold(hb_asgi_req_t *r, const void *data, size_t len)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *cb, *res = NULL;

	if (!r->held && !(r->held = malloc(HOLD_MAX))) {
		PyErr_NoMemory();
		return HB_ASGI_ERR;
	}
	memcpy(r->held + r->held_len, data, len);
	r->held_len += len;
	if (r->flush_armed)
		return HB_ASGI_DONE;
	cb = PyCFunction_NewEx(&flush_def, (PyObject *)r, NULL);
	if (cb)
		res = PyObject_CallMethodOneArg(w->loop, HB_ASGI_S(w, call_soon), cb);
	Py_XDECREF(cb);
	if (!res) {
		r->held_len -= len; /* not taken: the app sees the error */
		return HB_ASGI_ERR;
	}
	Py_DECREF(res);
	r->flush_armed = 1;
	return HB_ASGI_DONE;
}

/* A body message after the head (HTTP, no trailers declared): small pieces are held, the last
 * piece goes with the held bytes and the end. Returns DONE, WAIT_SEND or ERR. */
static int body_piece(hb_asgi_req_t *r, int more, const Py_buffer *view)
{
	size_t len = r->is_head ? 0 : (size_t)view->len;
	int rc;

	if (len && atomic_load(&r->s->out_pending) > HB_STREAM_OUT_HIGH)
		return HB_ASGI_WAIT_SEND; /* as hb_stream_send_body_nb: woken below LOW */
	if (more && r->held_len + len <= HOLD_MAX)
		return len ? hold(r, view->buf, len) : HB_ASGI_DONE;
	if (more && len <= HOLD_MAX) { /* the held bytes go, this piece is held */
		if ((rc = post_with_held(r, NULL, 0, 0)) == 0)
			return hold(r, view->buf, len);
	} else {
		rc = post_with_held(r, view->buf, len, !more);
	}
	return rc < 0 ? post_failed(r, rc) : HB_ASGI_DONE;
}

int hb_asgi_http_body(hb_asgi_req_t *r, PyObject *msg)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *body;
	Py_buffer view = {.buf = NULL, .len = 0};
	int more, rc;

	if (!r->started || r->complete || r->body_done)
		return bad_state(
			"http.response.body: no response started, or its body is complete");
	if (r->gone || hb_stream_client_gone(r->s)) {
		r->gone = 1;
		return hb_asgi_raise_gone(r);
	}
	body = PyDict_GetItemWithError(msg, HB_ASGI_S(w, body));
	if ((!body && PyErr_Occurred()) || (more = more_body(w, msg)) < 0)
		return HB_ASGI_ERR;
	if (body && PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0)
		return HB_ASGI_ERR;
	if (r->resp)
		rc = post_head_body(r, more, &view);
	else if (!r->websocket && !r->trailers)
		rc = body_piece(r, more, &view);
	else
		rc = post_body(r, &view);
	if (body)
		PyBuffer_Release(&view);
	if (rc != HB_ASGI_DONE)
		return rc;
	r->body_sent += (uint64_t)view.len;
	r->last_ns = hb_asgi_now_ns();
	if (!more)
		body_complete(r);
	return HB_ASGI_DONE;
}

/* http.response.pathsend: the file goes out by splice from the io thread. */
static int pathsend(hb_asgi_req_t *r, PyObject *msg)
{
	PyObject *path = PyDict_GetItemWithError(msg, HB_ASGI_S(r->w, path)), *fs = NULL;
	struct stat st;
	int fd;

	if (!r->started || r->complete || r->body_done)
		return bad_state(
			"http.response.pathsend: no response started, or its body is complete");
	if (!path) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_KeyError, "http.response.pathsend without 'path'");
		return HB_ASGI_ERR;
	}
	if (!PyUnicode_FSConverter(path, &fs))
		return HB_ASGI_ERR;
	fd = open(PyBytes_AS_STRING(fs), O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
		if (fd >= 0)
			close(fd);
		Py_DECREF(fs);
		return HB_ASGI_ERR;
	}
	Py_DECREF(fs);
	flush_held(r);
	if (r->resp && post_head(r, 1, (uint64_t)st.st_size) < 0) {
		close(fd);
		return hb_asgi_raise_gone(r);
	}
	if (r->is_head) {
		close(fd);
	} else if (hb_stream_send_file(r->s, fd, 0, -1) < 0) { /* it closed fd */
		r->gone = 1;
		return hb_asgi_raise_gone(r);
	}
	body_complete(r);
	return HB_ASGI_DONE;
}

/* ---- extensions: trailers, early hints, server push ---- */

/* http.response.trailers: gathered while more_trailers, then posted at once; the io side sends
 * them when the client takes them (HTTP/2; HTTP/1.1 with TE: trailers), else drops them. */
static int trailers(hb_asgi_req_t *r, PyObject *msg)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *headers, *seq;
	int more;

	if (!r->trailers || !r->body_done || r->complete)
		return bad_state("http.response.trailers: not declared (trailers: true in "
				 "http.response.start), before the last body, or after the end");
	if (r->gone || hb_stream_client_gone(r->s)) {
		r->gone = 1;
		return hb_asgi_raise_gone(r);
	}
	headers = PyDict_GetItemWithError(msg, HB_ASGI_S(w, headers));
	if (!headers && PyErr_Occurred())
		return HB_ASGI_ERR;
	more = more_flag(msg, HB_ASGI_S(w, more_trailers));
	if (more < 0 || (!r->trailer_list && !(r->trailer_list = PyList_New(0))))
		return HB_ASGI_ERR;
	if (headers) {
		if (!(seq = PySequence_Fast(headers, "ASGI trailers must be iterable")))
			return HB_ASGI_ERR;
		for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
			if (PyList_Append(r->trailer_list, PySequence_Fast_GET_ITEM(seq, i)) < 0) {
				Py_DECREF(seq);
				return HB_ASGI_ERR;
			}
		Py_DECREF(seq);
	}
	if (more)
		return HB_ASGI_DONE;
	hb_response_t *t = hb_asgi_response_new(0, r->trailer_list, NULL, NULL, 0);
	Py_CLEAR(r->trailer_list);
	if (!t)
		return HB_ASGI_ERR;
	if (r->is_head)
		free(t);
	else if (hb_stream_send_trailers(r->s, t) == -ECONNRESET) {
		r->gone = 1;
		return hb_asgi_raise_gone(r);
	}
	complete(r);
	return HB_ASGI_DONE;
}

/* A header value as RFC 9110 allows it (no CR, LF, NUL or other controls but HTAB). */
static int field_value_ok(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

/* http.response.early_hint: a 103 with one Link field per entry of links, before the head.
 * Once the head went out (or for an HTTP/1.0 client, which the io side knows) it is dropped. */
static int early_hint(hb_asgi_req_t *r, PyObject *msg)
{
	PyObject *links = PyDict_GetItemWithError(msg, HB_ASGI_S(r->w, links)), *seq;
	hb_resphead_hdr_t *h = NULL;
	Py_ssize_t n;
	int rc = HB_ASGI_ERR;

	if (!links) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_KeyError, "http.response.early_hint without 'links'");
		return HB_ASGI_ERR;
	}
	if (!(seq = PySequence_Fast(links, "early hint links must be a list of bytes")))
		return HB_ASGI_ERR;
	n = PySequence_Fast_GET_SIZE(seq);
	if (n > 0 && !(h = PyMem_Calloc((size_t)n, sizeof(*h)))) {
		PyErr_NoMemory();
		goto out;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *l = PySequence_Fast_GET_ITEM(seq, i);
		if (!PyBytes_Check(l) ||
		    !field_value_ok(PyBytes_AS_STRING(l), (size_t)PyBytes_GET_SIZE(l))) {
			PyErr_Format(PyExc_ValueError,
				     "invalid early hint link %R (bytes, no CR/LF)", l);
			goto out;
		}
		h[i] = (hb_resphead_hdr_t){"link", PyBytes_AS_STRING(l), 4,
					   (size_t)PyBytes_GET_SIZE(l)};
	}
	rc = HB_ASGI_DONE;
	if (n == 0 || r->head_posted || r->gone)
		goto out;
	hb_response_t *hint = hb_resphead_pack(103, h, (size_t)n, HB_RESP_HAS_SERVER, -1);
	if (!hint) {
		PyErr_NoMemory();
		rc = HB_ASGI_ERR;
	} else if (hb_stream_send_interim(r->s, hint) == -ECONNRESET) {
		r->gone = 1;
		rc = hb_asgi_raise_gone(r);
	}
out:
	PyMem_Free(h);
	Py_DECREF(seq);
	return rc;
}

/* The request-target of a push: the path as UTF-8, with what a target cannot carry
 * (controls, space, non-ASCII) percent-encoded. NULL with an exception set. */
static PyObject *push_target(PyObject *path)
{
	static const char hex[] = "0123456789ABCDEF";
	Py_ssize_t n;
	const char *p = PyUnicode_Check(path) ? PyUnicode_AsUTF8AndSize(path, &n) : NULL;
	if (!p) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_TypeError, "http.response.push 'path' must be a str");
		return NULL;
	}
	if (n == 0 || p[0] != '/') {
		PyErr_Format(PyExc_ValueError, "http.response.push path %R must start with '/'",
			     path);
		return NULL;
	}
	PyObject *out = PyBytes_FromStringAndSize(NULL, n * 3);
	if (!out)
		return NULL;
	char *o = PyBytes_AS_STRING(out), *start = o;
	for (Py_ssize_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f || c == '#') {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else {
			*o++ = (char)c;
		}
	}
	if (_PyBytes_Resize(&out, o - start) < 0)
		return NULL;
	return out;
}

/* http.response.push: the connection promises a GET of path and serves it like a request.
 * Ignored where the scope has no "http.response.push" extension or the response is complete;
 * the io side also drops it when the client's limits refuse it by then. */
static int push(hb_asgi_req_t *r, PyObject *msg)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *path = PyDict_GetItemWithError(msg, HB_ASGI_S(w, path)), *target, *headers;
	hb_response_t *fields = NULL;

	if (!path) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_KeyError, "http.response.push without 'path'");
		return HB_ASGI_ERR;
	}
	if (!(target = push_target(path)))
		return HB_ASGI_ERR;
	headers = PyDict_GetItemWithError(msg, HB_ASGI_S(w, headers));
	if ((!headers && PyErr_Occurred()) ||
	    (headers && !(fields = hb_asgi_response_new(0, headers, NULL, NULL, 0)))) {
		Py_DECREF(target);
		return HB_ASGI_ERR;
	}
	int rc = HB_ASGI_DONE;
	if (!(r->s->req->flags & HB_REQ_CAN_PROMISE) || r->complete || r->gone)
		free(fields);
	else if (hb_stream_promise(r->s, PyBytes_AS_STRING(target),
				   (size_t)PyBytes_GET_SIZE(target), fields) == -ECONNRESET) {
		r->gone = 1;
		rc = hb_asgi_raise_gone(r);
	}
	Py_DECREF(target);
	return rc;
}

int hb_asgi_http_send(hb_asgi_req_t *r, PyObject *msg, PyObject *type)
{
	hb_asgi_worker_t *w = r->w;

	if (!r->s)
		return r->gone ? hb_asgi_raise_gone(r)
			       : bad_state("after the response completed and the app returned");
	if (hb_asgi_is(type, HB_ASGI_S(w, http_response_start)))
		return hb_asgi_http_start(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, http_response_body)))
		return hb_asgi_http_body(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, http_response_pathsend)))
		return pathsend(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, http_response_trailers)))
		return trailers(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, http_response_early_hint)))
		return early_hint(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, http_response_push)))
		return push(r, msg);
	PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message type %R in an HTTP scope", type);
	return HB_ASGI_ERR;
}

/* ---- the end ---- */

void hb_asgi_http_finish(hb_asgi_req_t *r, int failed)
{
	if (r->complete)
		return;
	if (r->body_done && !failed) { /* declared trailers never sent: the body is whole */
		complete(r);
		return;
	}
	flush_held(r); /* what the app sent goes before the abort */
	if (hb_stream_client_gone(r->s))
		r->gone = 1;
	if (!failed && !r->gone)
		hb_error("asgi: the ASGI application returned without %s",
			 r->started ? "completing the response" : "starting a response");
	if (r->head_posted || r->gone) {
		hb_asgi_req_end(r, HB_END_ABORT);
		return;
	}
	free(r->resp);
	r->resp = NULL;
	r->head_posted = 1;
	if (hb_asgi_post_plain(r->s, failed == 2 ? 504 : 500) < 0) {
		hb_asgi_req_end(r, HB_END_ABORT);
		return;
	}
	hb_asgi_req_end(r, 0);
}
