/* asgi_scope.c: the ASGI scope of an HTTP request or a websocket, from the hb_request_t.
 *
 * `path` is the request path as it arrived (percent-decoded, UTF-8 with replacement), not
 * prefixed with root_path: a proxy that mounts the app under root_path and forwards the full
 * path gives the full path; one that strips the prefix gives the stripped one. */
#include <string.h>
#include <strings.h>

#include "python/asgi_priv.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes p[0..len) into out (room for len bytes); malformed escapes stay. */
static size_t percent_decode(const char *p, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (p[i] == '%' && i + 2 < len && (hi = hexval(p[i + 1])) >= 0 &&
		    (lo = hexval(p[i + 2])) >= 0) {
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = p[i];
		}
	}
	return o;
}

static PyObject *decoded_path(const hb_request_t *q)
{
	char stackbuf[1024], *p = stackbuf;
	PyObject *v;
	size_t n;

	if (q->path_len == 0)
		return PyUnicode_FromStringAndSize("", 0);
	if (q->path_len > sizeof(stackbuf) && !(p = PyMem_Malloc(q->path_len)))
		return PyErr_NoMemory();
	n = percent_decode(q->path, q->path_len, p);
	v = PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "replace");
	if (p != stackbuf)
		PyMem_Free(p);
	return v;
}

/* [(lower-case name, value), ...] as bytes. */
static PyObject *headers_list(const hb_request_t *q)
{
	PyObject *list = PyList_New((Py_ssize_t)q->nheaders);

	for (uint32_t i = 0; list && i < q->nheaders; i++) {
		const hb_header_t *h = &q->headers[i];
		PyObject *name = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h->name_len);
		PyObject *value = PyBytes_FromStringAndSize(h->value, (Py_ssize_t)h->value_len);
		PyObject *pair = NULL;

		if (name && value) {
			char *d = PyBytes_AS_STRING(name);

			for (uint32_t k = 0; k < h->name_len; k++) {
				char c = h->name[k];

				d[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			}
			pair = PyTuple_Pack(2, name, value);
		}
		Py_XDECREF(name);
		Py_XDECREF(value);
		if (!pair)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, i, pair);
	}
	return list;
}

/* (host, port), or None for a unix socket (empty address). */
static PyObject *addr_tuple(const char *addr, uint16_t port)
{
	if (!addr[0])
		Py_RETURN_NONE;
	return Py_BuildValue("(sH)", addr, port);
}

/* Sec-WebSocket-Protocol values (every such header, comma separated) as a list of str. */
static PyObject *subprotocols(const hb_request_t *q)
{
	PyObject *list = PyList_New(0);

	for (uint32_t i = 0; list && i < q->nheaders; i++) {
		const hb_header_t *h = &q->headers[i];
		const char *p = h->value, *end = h->value + h->value_len;

		if (h->name_len != 22 || strncasecmp(h->name, "sec-websocket-protocol", 22) != 0)
			continue;
		while (list && p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *b = p, *e = comma ? comma : end;
			PyObject *v;

			while (b < e && (*b == ' ' || *b == '\t'))
				b++;
			while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (e > b) {
				v = PyUnicode_DecodeLatin1(b, e - b, NULL);
				if (!v || PyList_Append(list, v) < 0)
					Py_CLEAR(list);
				Py_XDECREF(v);
			}
			p = comma ? comma + 1 : end;
		}
	}
	return list;
}

static int set(PyObject *d, PyObject *k, PyObject *v)
{
	int rc = v ? PyDict_SetItem(d, k, v) : -1;

	Py_XDECREF(v);
	return rc;
}

/* The keys HTTP and websocket scopes share. */
static int common(hb_asgi_worker_t *w, PyObject *d, const hb_request_t *q)
{
	return set(d, HB_ASGI_S(w, asgi), Py_NewRef(w->asgi_info)) ||
	       set(d, HB_ASGI_S(w, http_version),
		   Py_NewRef(q->http_major == 2	  ? HB_ASGI_S(w, v_2)
			     : q->http_minor == 0 ? HB_ASGI_S(w, v_10)
						  : HB_ASGI_S(w, v_11))) ||
	       set(d, HB_ASGI_S(w, path), decoded_path(q)) ||
	       set(d, HB_ASGI_S(w, raw_path),
		   PyBytes_FromStringAndSize(q->path, (Py_ssize_t)q->path_len)) ||
	       set(d, HB_ASGI_S(w, query_string),
		   PyBytes_FromStringAndSize(q->query, (Py_ssize_t)q->query_len)) ||
	       set(d, HB_ASGI_S(w, root_path), Py_NewRef(w->root_path)) ||
	       set(d, HB_ASGI_S(w, headers), headers_list(q)) ||
	       set(d, HB_ASGI_S(w, client), addr_tuple(q->remote_addr, q->remote_port)) ||
	       set(d, HB_ASGI_S(w, server), addr_tuple(q->server_addr, q->server_port)) ||
	       set(d, HB_ASGI_S(w, state), PyDict_Copy(w->state));
}

/* The ASGI `tls` extension: {"server_cert": None, "client_cert_chain": [pem] or [],
 * "client_cert_name": str or None, "client_cert_error": None, "tls_version": int,
 * "cipher_suite": int}. A client certificate is only there once verified, so there is never an
 * error to report. */
static PyObject *tls_ext(const hb_request_tls_t *t)
{
	PyObject *chain =
		t->client_cert_pem ? Py_BuildValue("[s]", t->client_cert_pem) : PyList_New(0);
	PyObject *name = t->client_cert_name ? PyUnicode_FromString(t->client_cert_name)
					     : Py_NewRef(Py_None);
	PyObject *d = chain && name
			      ? Py_BuildValue("{s:O,s:O,s:O,s:O,s:i,s:i}", "server_cert", Py_None,
					      "client_cert_chain", chain, "client_cert_name", name,
					      "client_cert_error", Py_None, "tls_version",
					      (int)t->version, "cipher_suite", (int)t->cipher_suite)
			      : NULL;
	Py_XDECREF(chain);
	Py_XDECREF(name);
	return d;
}

/* The worker's shared extensions dict, or a copy with "tls" added for a TLS request and
 * "http.response.push" for one whose connection can push (HTTP/2, h2_push on, the client's
 * SETTINGS_ENABLE_PUSH 1). */
static PyObject *extensions(PyObject *shared, const hb_request_t *q, int websocket)
{
	int push = !websocket && (q->flags & HB_REQ_CAN_PROMISE);
	if (!q->tls && !push)
		return Py_NewRef(shared);
	PyObject *d = PyDict_Copy(shared), *t = d && q->tls ? tls_ext(q->tls) : NULL;
	if (d && q->tls && (!t || PyDict_SetItemString(d, "tls", t) < 0))
		Py_CLEAR(d);
	Py_XDECREF(t);
	PyObject *e = d && push ? PyDict_New() : NULL;
	if (d && push && (!e || PyDict_SetItemString(d, "http.response.push", e) < 0))
		Py_CLEAR(d);
	Py_XDECREF(e);
	return d;
}

PyObject *hb_asgi_scope_new(hb_asgi_worker_t *w, const hb_request_t *q, int websocket)
{
	PyObject *d = PyDict_New();
	int https = q->scheme && strcmp(q->scheme, "https") == 0;
	int rc;

	if (!d)
		return NULL;
	if (websocket)
		rc = set(d, HB_ASGI_S(w, type), Py_NewRef(HB_ASGI_S(w, v_websocket))) ||
		     set(d, HB_ASGI_S(w, scheme),
			 Py_NewRef(https ? HB_ASGI_S(w, v_wss) : HB_ASGI_S(w, v_ws))) ||
		     set(d, HB_ASGI_S(w, subprotocols), subprotocols(q)) ||
		     set(d, HB_ASGI_S(w, extensions), extensions(w->ext_ws, q, 1));
	else
		rc = set(d, HB_ASGI_S(w, type), Py_NewRef(HB_ASGI_S(w, v_http))) ||
		     set(d, HB_ASGI_S(w, method),
			 PyUnicode_DecodeLatin1(q->method, (Py_ssize_t)q->method_len, NULL)) ||
		     set(d, HB_ASGI_S(w, scheme),
			 Py_NewRef(https ? HB_ASGI_S(w, v_https) : HB_ASGI_S(w, v_http))) ||
		     set(d, HB_ASGI_S(w, extensions), extensions(w->ext_http, q, 0));
	if (rc || common(w, d, q))
		Py_CLEAR(d);
	return d;
}
