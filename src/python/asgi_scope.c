/* asgi_scope.c: the ASGI scope of an HTTP request or a websocket, from the hb_request_t.
 *
 * `path` is the request path as it arrived (percent-decoded, UTF-8 with replacement), not
 * prefixed with root_path: a proxy that mounts the app under root_path and forwards the full
 * path gives the full path; one that strips the prefix gives the stripped one.
 *
 * An HTTP scope is a copy of a template (a dict copy clones the key table at once, where
 * fourteen inserts grow it twice), then its mutable values are set. The template, which no app
 * sees, holds the immutable values of the last request (method, scheme, http_version, path,
 * raw_path, query_string, client, server) and is changed only where a request differs, so a
 * keep-alive client's scope costs a copy and four sets; the method, path, header pairs and
 * addresses reuse the objects of the previous request when they are the same (immutable: an
 * app cannot tell). Each scope is a fresh dict, and so are the mutable values in it: its
 * extensions (and each extension's dict), asgi, headers list and state. */
#include <stdio.h>
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

static PyObject *decoded_path(const hb_request_t *q);

/* path and raw_path: the previous request's objects when the raw path is the same (str and
 * bytes are immutable: an app cannot tell). Returns 0 or -1. */
static int paths(hb_asgi_worker_t *w, const hb_request_t *q, PyObject **path, PyObject **raw)
{
	if (w->raw_path && (size_t)PyBytes_GET_SIZE(w->raw_path) == q->path_len &&
	    memcmp(PyBytes_AS_STRING(w->raw_path), q->path, q->path_len) == 0) {
		*path = Py_NewRef(w->path);
		*raw = Py_NewRef(w->raw_path);
		return 0;
	}
	*path = decoded_path(q);
	*raw = *path ? PyBytes_FromStringAndSize(q->path, (Py_ssize_t)q->path_len) : NULL;
	if (!*raw) {
		Py_CLEAR(*path);
		return -1;
	}
	Py_XSETREF(w->path, Py_NewRef(*path));
	Py_XSETREF(w->raw_path, Py_NewRef(*raw));
	return 0;
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

#define HDR_CACHE (sizeof(((hb_asgi_worker_t *)0)->hdr_cache) / sizeof(PyObject *))

static char lower(char c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

/* pair (a tuple of two bytes) holds h's lower-case name and its value. */
static int same_pair(const hb_header_t *h, PyObject *pair)
{
	PyObject *n = PyTuple_GET_ITEM(pair, 0), *v = PyTuple_GET_ITEM(pair, 1);
	const char *nb = PyBytes_AS_STRING(n);

	if ((size_t)PyBytes_GET_SIZE(n) != h->name_len ||
	    (size_t)PyBytes_GET_SIZE(v) != h->value_len ||
	    memcmp(PyBytes_AS_STRING(v), h->value, h->value_len) != 0)
		return 0;
	for (uint32_t k = 0; k < h->name_len; k++)
		if (lower(h->name[k]) != nb[k])
			return 0;
	return 1;
}

/* The (lower-case name, value) pair of h as bytes: `cached` (borrowed, may be NULL) when it
 * holds the same bytes, else a new one. New reference or NULL. */
static PyObject *header_pair(const hb_header_t *h, PyObject *cached)
{
	PyObject *name, *value, *pair = NULL;

	if (cached && same_pair(h, cached))
		return Py_NewRef(cached);
	name = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h->name_len);
	value = PyBytes_FromStringAndSize(h->value, (Py_ssize_t)h->value_len);
	if (name && value) {
		char *d = PyBytes_AS_STRING(name);

		for (uint32_t k = 0; k < h->name_len; k++)
			d[k] = lower(h->name[k]);
		pair = PyTuple_Pack(2, name, value);
	}
	Py_XDECREF(name);
	Py_XDECREF(value);
	return pair;
}

/* [(lower-case name, value), ...] as bytes: a new list (the app may change it) of pairs that
 * are the previous request's where they repeat (a keep-alive client sends the same fields). */
static PyObject *headers_list(hb_asgi_worker_t *w, const hb_request_t *q)
{
	PyObject *list = PyList_New((Py_ssize_t)q->nheaders);

	for (uint32_t i = 0; list && i < q->nheaders; i++) {
		PyObject *pair =
			header_pair(&q->headers[i], i < HDR_CACHE ? w->hdr_cache[i] : NULL);

		if (!pair) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, i, pair);
		if (i < HDR_CACHE && w->hdr_cache[i] != pair)
			Py_XSETREF(w->hdr_cache[i], Py_NewRef(pair));
	}
	return list;
}

/* (host, port), or None for a unix socket (empty address). host: a str to reuse, or NULL. */
static PyObject *addr_tuple(const char *addr, uint16_t port, PyObject *host)
{
	PyObject *t, *p;

	if (!addr[0])
		Py_RETURN_NONE;
	if (!(t = PyTuple_New(2)))
		return NULL;
	host = host ? Py_NewRef(host) : PyUnicode_FromString(addr);
	p = PyLong_FromLong((long)port);
	if (host)
		PyTuple_SET_ITEM(t, 0, host);
	if (p)
		PyTuple_SET_ITEM(t, 1, p);
	if (!host || !p)
		Py_CLEAR(t);
	return t;
}

/* The address tuple of the last request when addr and port are the same, else a new one that
 * is kept; *host (the client's) keeps the str when only the port changed. */
static PyObject *addr_cached(PyObject **tuple, PyObject **host, char *kaddr, uint16_t *kport,
			     const char *addr, uint16_t port)
{
	int same_addr = *tuple && strcmp(kaddr, addr) == 0;
	PyObject *t;

	if (!addr[0])
		Py_RETURN_NONE;
	if (same_addr && *kport == port)
		return Py_NewRef(*tuple);
	t = addr_tuple(addr, port, same_addr && host ? *host : NULL);
	if (!t)
		return NULL;
	Py_XSETREF(*tuple, Py_NewRef(t));
	if (host)
		Py_XSETREF(*host, Py_NewRef(PyTuple_GET_ITEM(t, 0)));
	snprintf(kaddr, 64, "%s", addr);
	*kport = port;
	return t;
}

/* The method as a str: the previous request's when the same. */
static PyObject *method_str(hb_asgi_worker_t *w, const hb_request_t *q)
{
	PyObject *m = w->method;

	if (m && (size_t)PyUnicode_GET_LENGTH(m) == q->method_len &&
	    PyUnicode_IS_COMPACT_ASCII(m) &&
	    memcmp(PyUnicode_DATA(m), q->method, q->method_len) == 0)
		return Py_NewRef(m);
	m = PyUnicode_DecodeLatin1(q->method, (Py_ssize_t)q->method_len, NULL);
	if (m)
		Py_XSETREF(w->method, Py_NewRef(m));
	return m;
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

/* This request's HTTP version string (borrowed). */
static PyObject *version_of(hb_asgi_worker_t *w, const hb_request_t *q)
{
	return q->http_major == 2   ? HB_ASGI_S(w, v_2)
	       : q->http_minor == 0 ? HB_ASGI_S(w, v_10)
				    : HB_ASGI_S(w, v_11);
}

/* A websocket scope's values from path to state, in the scope's key order. */
static int request_keys(hb_asgi_worker_t *w, PyObject *d, const hb_request_t *q)
{
	PyObject *path, *raw;

	if (paths(w, q, &path, &raw) < 0)
		return -1;
	if (set(d, HB_ASGI_S(w, path), path) < 0) {
		Py_DECREF(raw);
		return -1;
	}
	return set(d, HB_ASGI_S(w, raw_path), raw) ||
	       set(d, HB_ASGI_S(w, query_string),
		   PyBytes_FromStringAndSize(q->query, (Py_ssize_t)q->query_len)) ||
	       set(d, HB_ASGI_S(w, root_path), Py_NewRef(w->root_path)) ||
	       set(d, HB_ASGI_S(w, headers), headers_list(w, q)) ||
	       set(d, HB_ASGI_S(w, client),
		   addr_cached(&w->client, &w->client_host, w->client_addr, &w->client_port,
			       q->remote_addr, q->remote_port)) ||
	       set(d, HB_ASGI_S(w, server),
		   addr_cached(&w->server, NULL, w->server_addr, &w->server_port, q->server_addr,
			       q->server_port)) ||
	       set(d, HB_ASGI_S(w, state), PyDict_Copy(w->state));
}

/* The keys a websocket scope has after its type, scheme and extensions. */
static int common(hb_asgi_worker_t *w, PyObject *d, const hb_request_t *q)
{
	return set(d, HB_ASGI_S(w, asgi), PyDict_Copy(w->asgi_info)) ||
	       set(d, HB_ASGI_S(w, http_version), Py_NewRef(version_of(w, q))) ||
	       request_keys(w, d, q);
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

/* A request's own copy of a template dict whose values are dicts (the extensions: each
 * extension's dict copied too; built key by key, which is cheaper than a copy whose values are
 * then replaced), so that an app writing into its scope's extensions or asgi
 * dict does not change what the next request sees. */
static PyObject *own_copy(PyObject *tmpl)
{
	PyObject *d = PyDict_New(), *k, *v;
	Py_ssize_t pos = 0;

	while (d && PyDict_Next(tmpl, &pos, &k, &v))
		if (set(d, k,
			!PyDict_CheckExact(v) ? Py_NewRef(v)
			: PyDict_GET_SIZE(v)  ? PyDict_Copy(v)
					      : PyDict_New()) < 0)
			Py_CLEAR(d);
	return d;
}

/* A copy of the worker's extensions template, with "tls" added for a TLS request and
 * "http.response.push" for one whose connection can push (HTTP/2, h2_push on, the client's
 * SETTINGS_ENABLE_PUSH 1). */
static PyObject *extensions(PyObject *tmpl, const hb_request_t *q, int websocket)
{
	int push = !websocket && (q->flags & HB_REQ_CAN_PROMISE);
	PyObject *d = own_copy(tmpl), *t = d && q->tls ? tls_ext(q->tls) : NULL;

	if (d && q->tls && (!t || PyDict_SetItemString(d, "tls", t) < 0))
		Py_CLEAR(d);
	Py_XDECREF(t);
	PyObject *e = d && push ? PyDict_New() : NULL;
	if (d && push && (!e || PyDict_SetItemString(d, "http.response.push", e) < 0))
		Py_CLEAR(d);
	Py_XDECREF(e);
	return d;
}

/* The template's values that change with the request (w->tmpl_vals). */
enum { T_METHOD, T_SCHEME, T_VERSION, T_PATH, T_RAW_PATH, T_QUERY, T_CLIENT, T_SERVER, T_COUNT };

/* Puts v (stolen; NULL: an error) into the HTTP template under key unless the template holds
 * that very object there already: a copy of the template then has it without a SetItem on
 * every copy. Identity is safe: the template's reference keeps the object it holds alive, so
 * no other object can have its address. Returns 0 or -1. */
static int tmpl_put(hb_asgi_worker_t *w, int slot, PyObject *key, PyObject *v)
{
	int rc = 0;

	if (!v)
		return -1;
	if (w->tmpl_vals[slot] != v) {
		rc = PyDict_SetItem(w->scope_http, key, v);
		if (rc == 0)
			w->tmpl_vals[slot] = v;
	}
	Py_DECREF(v);
	return rc;
}

/* The query string as bytes: the template's when the same. */
static PyObject *query_bytes(hb_asgi_worker_t *w, const hb_request_t *q)
{
	PyObject *b = w->tmpl_vals[T_QUERY];

	if (b && PyBytes_CheckExact(b) && (size_t)PyBytes_GET_SIZE(b) == q->query_len &&
	    memcmp(PyBytes_AS_STRING(b), q->query, q->query_len) == 0)
		return Py_NewRef(b);
	return PyBytes_FromStringAndSize(q->query, (Py_ssize_t)q->query_len);
}

/* The template's changing values set to this request's. Returns 0 or -1. */
static int tmpl_update(hb_asgi_worker_t *w, const hb_request_t *q, int https)
{
	PyObject *path, *raw;

	if (paths(w, q, &path, &raw) < 0)
		return -1;
	if (tmpl_put(w, T_PATH, HB_ASGI_S(w, path), path) < 0) {
		Py_DECREF(raw);
		return -1;
	}
	return tmpl_put(w, T_RAW_PATH, HB_ASGI_S(w, raw_path), raw) ||
	       tmpl_put(w, T_METHOD, HB_ASGI_S(w, method), method_str(w, q)) ||
	       tmpl_put(w, T_SCHEME, HB_ASGI_S(w, scheme),
			Py_NewRef(https ? HB_ASGI_S(w, v_https) : HB_ASGI_S(w, v_http))) ||
	       tmpl_put(w, T_VERSION, HB_ASGI_S(w, http_version), Py_NewRef(version_of(w, q))) ||
	       tmpl_put(w, T_QUERY, HB_ASGI_S(w, query_string), query_bytes(w, q)) ||
	       tmpl_put(w, T_CLIENT, HB_ASGI_S(w, client),
			addr_cached(&w->client, &w->client_host, w->client_addr, &w->client_port,
				    q->remote_addr, q->remote_port)) ||
	       tmpl_put(w, T_SERVER, HB_ASGI_S(w, server),
			addr_cached(&w->server, NULL, w->server_addr, &w->server_port,
				    q->server_addr, q->server_port));
}

/* The keys of an HTTP scope in their order, with the values every request starts from. */
int hb_asgi_scope_init(hb_asgi_worker_t *w)
{
	PyObject *d = PyDict_New();
	struct {
		PyObject *k, *v;
	} kv[] = {
		{HB_ASGI_S(w, type), HB_ASGI_S(w, v_http)},
		{HB_ASGI_S(w, method), Py_None},
		{HB_ASGI_S(w, scheme), HB_ASGI_S(w, v_http)},
		{HB_ASGI_S(w, extensions), w->ext_http},
		{HB_ASGI_S(w, asgi), w->asgi_info},
		{HB_ASGI_S(w, http_version), HB_ASGI_S(w, v_11)},
		{HB_ASGI_S(w, path), Py_None},
		{HB_ASGI_S(w, raw_path), Py_None},
		{HB_ASGI_S(w, query_string), Py_None},
		{HB_ASGI_S(w, root_path), w->root_path},
		{HB_ASGI_S(w, headers), Py_None},
		{HB_ASGI_S(w, client), Py_None},
		{HB_ASGI_S(w, server), Py_None},
		{HB_ASGI_S(w, state), Py_None},
	};

	for (size_t i = 0; d && i < sizeof(kv) / sizeof(kv[0]); i++)
		if (PyDict_SetItem(d, kv[i].k, kv[i].v) < 0)
			Py_CLEAR(d);
	w->scope_http = d;
	for (int i = 0; i < T_COUNT; i++)
		w->tmpl_vals[i] = Py_None;
	w->tmpl_vals[T_SCHEME] = HB_ASGI_S(w, v_http);
	w->tmpl_vals[T_VERSION] = HB_ASGI_S(w, v_11);
	return d ? 0 : -1;
}

/* An HTTP scope: a copy of the template, which holds this request's immutable values
 * (tmpl_update), with the request's own mutable ones. */
static PyObject *http_scope(hb_asgi_worker_t *w, const hb_request_t *q, int https)
{
	PyObject *d = tmpl_update(w, q, https) == 0 ? PyDict_Copy(w->scope_http) : NULL;

	if (d && (set(d, HB_ASGI_S(w, extensions), extensions(w->ext_http, q, 0)) ||
		  set(d, HB_ASGI_S(w, asgi), PyDict_Copy(w->asgi_info)) ||
		  set(d, HB_ASGI_S(w, headers), headers_list(w, q)) ||
		  set(d, HB_ASGI_S(w, state), PyDict_Copy(w->state))))
		Py_CLEAR(d);
	return d;
}

PyObject *hb_asgi_scope_new(hb_asgi_worker_t *w, const hb_request_t *q, int websocket)
{
	PyObject *d;
	int https = q->scheme && strcmp(q->scheme, "https") == 0;

	if (!websocket)
		return http_scope(w, q, https);
	if (!(d = PyDict_New()))
		return NULL;
	if (set(d, HB_ASGI_S(w, type), Py_NewRef(HB_ASGI_S(w, v_websocket))) ||
	    set(d, HB_ASGI_S(w, scheme),
		Py_NewRef(https ? HB_ASGI_S(w, v_wss) : HB_ASGI_S(w, v_ws))) ||
	    set(d, HB_ASGI_S(w, subprotocols), subprotocols(q)) ||
	    set(d, HB_ASGI_S(w, extensions), extensions(w->ext_ws, q, 1)) || common(w, d, q))
		Py_CLEAR(d);
	return d;
}
