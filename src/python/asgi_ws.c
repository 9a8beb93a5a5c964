/* asgi_ws.c: the websocket side of receive() and send() (ASGI websocket scope, spec 2.4).
 *
 * The io side has already validated the upgrade; websocket.accept posts a 101 head (the app's
 * headers plus Sec-WebSocket-Protocol), after which messages flow through the stream's
 * hb_stream_ws_* calls. Before accept, websocket.close answers 403 and
 * websocket.http.response.* sends an ordinary HTTP response. Framing, masking, UTF-8
 * validation, pings and compression are the io side's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "python/asgi_priv.h"

/* ---- receive ---- */

static int disconnect(hb_asgi_req_t *r, PyObject **out, int code, PyObject *reason)
{
	hb_asgi_worker_t *w = r->w;

	r->peer_closed = 1;
	if (!r->close_code)
		r->close_code = code;
	*out = hb_asgi_msg(w, HB_ASGI_S(w, ws_disconnect), 2, HB_ASGI_S(w, code),
			   PyLong_FromLong(r->close_code), HB_ASGI_S(w, reason),
			   reason ? reason : PyUnicode_FromStringAndSize("", 0));
	return *out ? HB_ASGI_DONE : HB_ASGI_ERR;
}

/* A close frame's payload: 2-byte big-endian code, then the reason (valid UTF-8). */
static int peer_close(hb_asgi_req_t *r, const hb_chunk_t *c, PyObject **out)
{
	const unsigned char *p = (const unsigned char *)c->data;
	int code = c->len >= 2 ? (p[0] << 8) | p[1] : 1005;
	PyObject *reason = PyUnicode_DecodeUTF8(c->len > 2 ? c->data + 2 : "",
						c->len > 2 ? (Py_ssize_t)c->len - 2 : 0, "replace");

	if (!reason)
		return HB_ASGI_ERR;
	r->close_code = code;
	return disconnect(r, out, code, reason);
}

static int message(hb_asgi_req_t *r, hb_chunk_t *c, uint32_t kind, PyObject **out)
{
	hb_asgi_worker_t *w = r->w;
	int text = kind == HB_MSGK_TEXT;
	PyObject *v;

	if (kind == HB_MSGK_CLOSE)
		return peer_close(r, c, out);
	v = text ? PyUnicode_DecodeUTF8(c->data, (Py_ssize_t)c->len, "surrogateescape")
		 : PyBytes_FromStringAndSize(c->data, (Py_ssize_t)c->len);
	*out = hb_asgi_msg(w, HB_ASGI_S(w, ws_receive), 1,
			   text ? HB_ASGI_S(w, text) : HB_ASGI_S(w, bytes), v);
	return *out ? HB_ASGI_DONE : HB_ASGI_ERR;
}

int hb_asgi_ws_receive(hb_asgi_req_t *r, PyObject **out)
{
	hb_asgi_worker_t *w = r->w;
	hb_chunk_t *c = NULL;
	uint32_t kind = 0;
	int rc;

	if (!r->connect_sent) {
		r->connect_sent = 1;
		*out = hb_asgi_msg(w, HB_ASGI_S(w, ws_connect), 0);
		return *out ? HB_ASGI_DONE : HB_ASGI_ERR;
	}
	if (!r->s || r->peer_closed || r->gone)
		return disconnect(r, out, 1006, NULL);
	if (!r->accepted) {
		if (!r->head_posted && !hb_stream_client_gone(r->s))
			return HB_ASGI_WAIT_RECV;
		r->gone = 1;
		return disconnect(r, out, 1006, NULL);
	}
	rc = hb_stream_msg_recv(r->s, &c, &kind, 0);
	if (rc == -EAGAIN)
		return HB_ASGI_WAIT_RECV;
	if (rc < 0) {
		r->gone = 1;
		return disconnect(r, out, 1006, NULL);
	}
	rc = message(r, c, kind, out);
	free(c);
	return rc;
}

/* ---- send ---- */

static int bad_state(const char *what)
{
	PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message %s", what);
	return HB_ASGI_ERR;
}

static int gone(hb_asgi_req_t *r)
{
	r->gone = 1;
	return hb_asgi_raise_gone(r);
}

/* msg[key] or NULL (no exception) when absent or None. */
static PyObject *opt_item(PyObject *msg, PyObject *key)
{
	PyObject *v = PyDict_GetItemWithError(msg, key);

	return v == Py_None ? NULL : v;
}

/* The chosen subprotocol as a header value: a token (no separators). */
static const char *subprotocol(PyObject *v, Py_ssize_t *len)
{
	const char *s;

	if (!PyUnicode_Check(v)) {
		PyErr_Format(PyExc_TypeError, "websocket subprotocol must be str, not %.100s",
			     Py_TYPE(v)->tp_name);
		return NULL;
	}
	if (!(s = PyUnicode_AsUTF8AndSize(v, len)))
		return NULL;
	for (Py_ssize_t i = 0; i < *len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f ||
		    strchr("\",;()<>@:\\/[]?={}", s[i])) {
			PyErr_Format(PyExc_ValueError, "invalid websocket subprotocol %R", v);
			return NULL;
		}
	return s;
}

static int accept_ws(hb_asgi_req_t *r, PyObject *msg)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *sub = opt_item(msg, HB_ASGI_S(w, subprotocol)), *headers, *empty = NULL;
	const char *sp = NULL;
	Py_ssize_t splen = 0;
	hb_response_t *resp;

	if (r->accepted || r->head_posted || r->started)
		return bad_state("websocket.accept: already accepted, closed or answered");
	if (PyErr_Occurred() || (sub && !(sp = subprotocol(sub, &splen))))
		return HB_ASGI_ERR;
	headers = opt_item(msg, HB_ASGI_S(w, headers));
	if (!headers && (PyErr_Occurred() || !(headers = empty = PyTuple_New(0))))
		return HB_ASGI_ERR;
	resp = hb_asgi_response_new(101, headers, sp ? "Sec-WebSocket-Protocol" : NULL, sp,
				    (size_t)splen);
	Py_XDECREF(empty);
	if (!resp)
		return HB_ASGI_ERR;
	r->accepted = 1;
	r->head_posted = 1;
	r->last_ns = hb_asgi_now_ns();
	if (hb_stream_send_head(r->s, resp) < 0)
		return gone(r);
	return HB_ASGI_DONE;
}

static int send_ws(hb_asgi_req_t *r, PyObject *msg)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *b = opt_item(msg, HB_ASGI_S(w, bytes));
	PyObject *t = b ? NULL : opt_item(msg, HB_ASGI_S(w, text));
	Py_buffer view;
	const char *data;
	Py_ssize_t len;
	int rc;

	if (!r->accepted || r->closed)
		return bad_state("websocket.send: not accepted yet, or closed by the app");
	if (r->gone || r->peer_closed || hb_stream_client_gone(r->s))
		return gone(r);
	if (PyErr_Occurred())
		return HB_ASGI_ERR;
	if (b) {
		if (PyObject_GetBuffer(b, &view, PyBUF_SIMPLE) < 0)
			return HB_ASGI_ERR;
		rc = hb_stream_msg_send(r->s, HB_MSGK_BINARY, view.buf, (size_t)view.len, 0);
		PyBuffer_Release(&view);
	} else if (t && PyUnicode_Check(t)) {
		if (!(data = PyUnicode_AsUTF8AndSize(t, &len)))
			return HB_ASGI_ERR;
		rc = hb_stream_msg_send(r->s, HB_MSGK_TEXT, data, (size_t)len, 0);
	} else {
		PyErr_SetString(PyExc_TypeError, "websocket.send needs 'bytes' or 'text' (str)");
		return HB_ASGI_ERR;
	}
	if (rc == -EAGAIN)
		return HB_ASGI_WAIT_SEND;
	if (rc == -ENOMEM) {
		PyErr_NoMemory();
		return HB_ASGI_ERR;
	}
	if (rc < 0)
		return gone(r);
	r->last_ns = hb_asgi_now_ns();
	return HB_ASGI_DONE;
}

/* Before accept: 403 (a denial). After: a close frame; the peer's reply ends receive(). */
static int close_ws(hb_asgi_req_t *r, PyObject *msg)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *c = opt_item(msg, HB_ASGI_S(w, code)), *why;
	const char *reason = "";
	Py_ssize_t len = 0;
	long code = 1000;

	if (!r->accepted) {
		if (r->head_posted || r->started)
			return bad_state("websocket.close: the denial response already started");
		r->head_posted = r->complete = 1;
		if (hb_asgi_post_plain(r->s, 403) < 0)
			return gone(r);
		hb_asgi_req_end(r, 0);
		return HB_ASGI_DONE;
	}
	if (c && ((code = PyLong_AsLong(c)) == -1 && PyErr_Occurred()))
		return HB_ASGI_ERR;
	/* RFC 6455 7.4: what an endpoint may send (1005, 1006, 1015 are never sent). */
	if (code < 1000 || code > 4999 || code == 1004 || code == 1005 || code == 1006 ||
	    code == 1015 || (code > 1014 && code < 3000)) {
		PyErr_Format(PyExc_ValueError, "invalid websocket close code %ld", code);
		return HB_ASGI_ERR;
	}
	why = opt_item(msg, HB_ASGI_S(w, reason));
	if (PyErr_Occurred() || (why && !(reason = PyUnicode_AsUTF8AndSize(why, &len))))
		return HB_ASGI_ERR;
	if (r->closed || r->peer_closed || r->gone)
		return HB_ASGI_DONE; /* already closing or closed: nothing to say */
	r->closed = 1;
	if (hb_stream_msg_close(r->s, (uint16_t)code, reason, (size_t)len) < 0)
		r->gone = 1;
	return HB_ASGI_DONE;
}

int hb_asgi_ws_send(hb_asgi_req_t *r, PyObject *msg, PyObject *type)
{
	hb_asgi_worker_t *w = r->w;

	if (!r->s)
		return hb_asgi_raise_gone(r);
	if (hb_asgi_is(type, HB_ASGI_S(w, ws_send)))
		return send_ws(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, ws_accept)))
		return accept_ws(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, ws_close)))
		return close_ws(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, ws_http_response_start)))
		return r->accepted ? bad_state("websocket.http.response.start after accept")
				   : hb_asgi_http_start(r, msg);
	if (hb_asgi_is(type, HB_ASGI_S(w, ws_http_response_body)))
		return hb_asgi_http_body(r, msg);
	PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message type %R in a websocket scope",
		     type);
	return HB_ASGI_ERR;
}

/* ---- the end ---- */

void hb_asgi_ws_finish(hb_asgi_req_t *r, int failed)
{
	if (r->accepted) {
		/* The io side closes with 1000, or 1011 after an abort, unless the app closed. */
		hb_asgi_req_end(r, failed ? HB_END_ABORT : 0);
		return;
	}
	if (r->started || r->head_posted) {
		hb_asgi_http_finish(r, failed);
		return;
	}
	/* Nothing answered: 500/504 after an error, 403 when the app returned without accepting. */
	r->head_posted = 1;
	if (hb_asgi_post_plain(r->s, failed == 2 ? 504 : failed ? 500 : 403) < 0) {
		hb_asgi_req_end(r, HB_END_ABORT);
		return;
	}
	hb_asgi_req_end(r, 0);
}
