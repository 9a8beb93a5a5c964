/* wsgi.c: environ, the call into the app, and the response loop. */
#include "python/wsgi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "python/pyerr.h"
#include "python/wsgi_input.h"
#include "python/wsgi_response.h"

#ifndef HB_VERSION
#define HB_VERSION "0.0.0"
#endif

/* ---- per worker ---- */

static int base_set(hb_wsgi_app_t *a, int key, PyObject *v)
{
	int rc = v ? PyDict_SetItem(a->base_environ, a->st->str[key], v) : -1;

	Py_XDECREF(v);
	return rc;
}

/* The keys build_environ() sets on every request, in its order. */
static const int request_keys[] = {
	HB_S_REQUEST_METHOD,  HB_S_PATH_INFO,	    HB_S_QUERY_STRING, HB_S_RAW_URI,
	HB_S_SERVER_PROTOCOL, HB_S_REMOTE_ADDR,	    HB_S_REMOTE_PORT,  HB_S_SERVER_NAME,
	HB_S_SERVER_PORT,     HB_S_wsgi_url_scheme, HB_S_wsgi_input,   HB_S_hb_early_hint,
};

/* The base environ holds the keys every request sets (None until then) and room for headers:
 * its copy (a clone of the key table) then takes a request's keys without growing, where the
 * 9-key copy grew twice (16 -> 32 -> 64 slots) on every request. The 22nd key of a dict grows
 * its table from 32 to 64 slots (42 usable): fillers get it there and are deleted, and the table
 * keeps its size. */
#define BASE_ROOM_KEYS 22

static int base_room(hb_wsgi_app_t *a)
{
	PyObject *d = a->base_environ, *fillers = PyList_New(0), *f;
	int rc = fillers ? 0 : -1;

	for (size_t i = 0; rc == 0 && i < sizeof(request_keys) / sizeof(request_keys[0]); i++)
		rc = PyDict_SetItem(d, a->st->str[request_keys[i]], Py_None);
	for (int i = 0; rc == 0 && PyDict_GET_SIZE(d) < BASE_ROOM_KEYS; i++) {
		f = PyUnicode_FromFormat("hornbeam.room.%d", i);
		rc = f && PyList_Append(fillers, f) == 0 ? PyDict_SetItem(d, f, Py_None) : -1;
		Py_XDECREF(f);
	}
	for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(fillers); i++)
		rc = PyDict_DelItem(d, PyList_GET_ITEM(fillers, i));
	Py_XDECREF(fillers);
	return rc;
}

int hb_wsgi_app_init(hb_wsgi_app_t *a, PyObject *app, const hb_config_t *cfg, int multithread)
{
	memset(a, 0, sizeof(*a));
	a->module = hb_module_import();
	if (!a->module)
		return -1;
	a->st = hb_module_state(a->module);
	a->app = Py_NewRef(app);
	a->root_path = cfg->root_path ? cfg->root_path : "";
	a->root_len = strlen(a->root_path);
	while (a->root_len && a->root_path[a->root_len - 1] == '/')
		a->root_len--; /* "/app/" mounts like "/app" */
	a->base_environ = PyDict_New();
	if (!a->base_environ ||
	    base_set(a, HB_S_SCRIPT_NAME,
		     PyUnicode_DecodeLatin1(a->root_path, (Py_ssize_t)a->root_len, NULL)) ||
	    base_set(a, HB_S_SERVER_SOFTWARE, PyUnicode_FromString("hornbeam-uring/" HB_VERSION)) ||
	    base_set(a, HB_S_wsgi_version, Py_NewRef(a->st->wsgi_version)) ||
	    base_set(a, HB_S_wsgi_errors, Py_NewRef(a->st->errors)) ||
	    base_set(a, HB_S_wsgi_multithread, PyBool_FromLong(multithread)) ||
	    base_set(a, HB_S_wsgi_multiprocess, Py_NewRef(Py_False)) ||
	    base_set(a, HB_S_wsgi_run_once, Py_NewRef(Py_False)) ||
	    base_set(a, HB_S_wsgi_input_terminated, Py_NewRef(Py_True)) ||
	    base_set(a, HB_S_wsgi_file_wrapper, Py_NewRef((PyObject *)a->st->file_wrapper_type)) ||
	    base_room(a)) {
		hb_wsgi_app_clear(a);
		return -1;
	}
	return 0;
}

void hb_wsgi_app_clear(hb_wsgi_app_t *a)
{
	Py_CLEAR(a->app);
	Py_CLEAR(a->base_environ);
	Py_CLEAR(a->remote_addr_s);
	Py_CLEAR(a->host_s);
	Py_CLEAR(a->server_name_s);
	Py_CLEAR(a->server_port_s);
	a->host_len = 0;
	Py_CLEAR(a->module);
	a->st = NULL;
}

/* ---- environ ---- */

static int set_str(PyObject *env, PyObject *key, const char *s, size_t len)
{
	PyObject *v = PyUnicode_DecodeLatin1(s, (Py_ssize_t)len, NULL);
	int rc = v ? PyDict_SetItem(env, key, v) : -1;

	Py_XDECREF(v);
	return rc;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes in place; malformed escapes stay as they are. Returns the new length. */
static size_t percent_decode(char *p, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (p[i] == '%' && i + 2 < len && (hi = hexval(p[i + 1])) >= 0 &&
		    (lo = hexval(p[i + 2])) >= 0) {
			p[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			p[o++] = p[i];
		}
	}
	return o;
}

/* PATH_INFO: the decoded path, without SCRIPT_NAME when it is mounted there. */
static int set_path_info(hb_wsgi_app_t *a, PyObject *env, const hb_request_t *r)
{
	char stackbuf[1024], *p = stackbuf, *start;
	size_t len;
	int rc;

	if (r->path_len > sizeof(stackbuf) && !(p = PyMem_Malloc(r->path_len))) {
		PyErr_NoMemory();
		return -1;
	}
	memcpy(p, r->path, r->path_len);
	len = percent_decode(p, r->path_len);
	start = p;
	if (a->root_len && len >= a->root_len && memcmp(p, a->root_path, a->root_len) == 0 &&
	    (len == a->root_len || p[a->root_len] == '/')) {
		start += a->root_len;
		len -= a->root_len;
	}
	rc = set_str(env, a->st->str[HB_S_PATH_INFO], start, len);
	if (p != stackbuf)
		PyMem_Free(p);
	return rc;
}

/* The decimal digits of port (0..65535) at the end of buf[5]; returns where they start. */
static char *port_digits(char buf[5], unsigned port)
{
	char *p = buf + 5;

	do
		*--p = (char)('0' + port % 10);
	while ((port /= 10) && p > buf);
	return p;
}

static int set_port(PyObject *env, PyObject *key, unsigned port)
{
	char buf[5], *p = port_digits(buf, port);

	return set_str(env, key, p, (size_t)(buf + 5 - p));
}

/* REMOTE_ADDR: the previous request's str when the address is the same. */
static int set_remote_addr(hb_wsgi_app_t *a, PyObject *env, const char *addr)
{
	if (!a->remote_addr_s || strcmp(a->remote_addr, addr) != 0) {
		PyObject *v = PyUnicode_DecodeLatin1(addr, (Py_ssize_t)strlen(addr), NULL);

		if (!v)
			return -1;
		Py_XSETREF(a->remote_addr_s, v);
		snprintf(a->remote_addr, sizeof(a->remote_addr), "%s", addr);
	}
	return PyDict_SetItem(env, a->st->str[HB_S_REMOTE_ADDR], a->remote_addr_s);
}

/* HTTP_HOST, SERVER_NAME and SERVER_PORT of a Host value ("name", "name:port", "[v6]:port"),
 * kept in a for the next request; a value too long to remember is not matched again. */
static int cache_host(hb_wsgi_app_t *a, const hb_header_t *h, int https)
{
	const char *v = h->value, *colon = NULL;
	size_t len = h->value_len;
	char buf[5], *p = NULL;
	PyObject *name, *port, *host;

	if (v[0] == '[') {
		const char *end = memchr(v, ']', len);

		if (end && end + 1 < v + len && end[1] == ':')
			colon = end + 1;
	} else {
		colon = memrchr(v, ':', len);
	}
	if (!colon)
		p = port_digits(buf, https ? 443 : 80);
	name = PyUnicode_DecodeLatin1(v, colon ? colon - v : (Py_ssize_t)len, NULL);
	port = colon ? PyUnicode_DecodeLatin1(colon + 1, v + len - colon - 1, NULL)
		     : PyUnicode_DecodeLatin1(p, buf + 5 - p, NULL);
	host = PyUnicode_DecodeLatin1(v, (Py_ssize_t)len, NULL);
	if (!name || !port || !host) {
		Py_XDECREF(name);
		Py_XDECREF(port);
		Py_XDECREF(host);
		return -1;
	}
	Py_XSETREF(a->server_name_s, name);
	Py_XSETREF(a->server_port_s, port);
	Py_XSETREF(a->host_s, host);
	a->host_len = len <= sizeof(a->host) ? len : 0;
	memcpy(a->host, v, a->host_len);
	a->host_https = https;
	return 0;
}

/* Whether a's strings are those of this Host value. */
static int host_cached(const hb_wsgi_app_t *a, const hb_header_t *h)
{
	return a->host_len && a->host_len == h->value_len &&
	       memcmp(a->host, h->value, h->value_len) == 0;
}

/* SERVER_NAME and SERVER_PORT from Host, else the socket. */
static int set_server(hb_wsgi_app_t *a, PyObject *env, const hb_request_t *r, int https)
{
	const hb_header_t *h = hb_request_header(r, "host");
	PyObject **k = a->st->str;

	if (!h || h->value_len == 0) {
		if (set_str(env, k[HB_S_SERVER_NAME], r->server_addr, strlen(r->server_addr)))
			return -1;
		return set_port(env, k[HB_S_SERVER_PORT], r->server_port);
	}
	if (!(host_cached(a, h) && a->host_https == https) && cache_host(a, h, https) < 0)
		return -1;
	return PyDict_SetItem(env, k[HB_S_SERVER_NAME], a->server_name_s) ||
	       PyDict_SetItem(env, k[HB_S_SERVER_PORT], a->server_port_s);
}

/* "HTTP_" + the name upper-cased with '-' as '_'. NULL (no exception) when the name must be
 * dropped: it holds '_' (it could pose as another header) or a non-token byte. */
static PyObject *http_key(const hb_header_t *h, int *dropped)
{
	PyObject *key;
	Py_UCS1 *out;

	*dropped = 1;
	for (uint32_t i = 0; i < h->name_len; i++)
		if (h->name[i] == '_' || (unsigned char)h->name[i] >= 0x80 ||
		    (unsigned char)h->name[i] <= ' ')
			return NULL;
	*dropped = 0;
	key = PyUnicode_New(5 + (Py_ssize_t)h->name_len, 127);
	if (!key)
		return NULL;
	out = PyUnicode_1BYTE_DATA(key);
	memcpy(out, "HTTP_", 5);
	for (uint32_t i = 0; i < h->name_len; i++) {
		char c = h->name[i];

		out[5 + i] = (Py_UCS1)(c == '-' ? '_' : (c >= 'a' && c <= 'z') ? c - 32 : c);
	}
	return key;
}

/* Adds one header; a repeated one is joined with ", " ("; " for Cookie). */
static int add_http_header(PyObject *env, const hb_header_t *h)
{
	PyObject *key, *val, *old;
	int dropped, rc = -1;

	key = http_key(h, &dropped);
	if (!key)
		return dropped ? 0 : -1;
	val = PyUnicode_DecodeLatin1(h->value, (Py_ssize_t)h->value_len, NULL);
	if (!val)
		goto out;
	old = PyDict_GetItemWithError(env, key);
	if (old) {
		int cookie = h->name_len == 6 && strncasecmp(h->name, "cookie", 6) == 0;
		PyObject *joined = PyUnicode_FromFormat("%U%s%U", old, cookie ? "; " : ", ", val);

		Py_SETREF(val, joined);
		if (!val)
			goto out;
	} else if (PyErr_Occurred()) {
		goto out;
	}
	rc = PyDict_SetItem(env, key, val);
out:
	Py_XDECREF(val);
	Py_DECREF(key);
	return rc;
}

static int set_headers(hb_wsgi_app_t *a, PyObject *env, const hb_request_t *r)
{
	PyObject **k = a->st->str;
	int host_done = 0; /* a Host header was added: a second one is joined to it */

	for (uint32_t i = 0; i < r->nheaders; i++) {
		const hb_header_t *h = &r->headers[i];
		int rc;

		if (h->name_len == 12 && strncasecmp(h->name, "content-type", 12) == 0)
			rc = PyDict_Contains(env, k[HB_S_CONTENT_TYPE])
				     ? 0
				     : set_str(env, k[HB_S_CONTENT_TYPE], h->value, h->value_len);
		else if (h->name_len == 14 && strncasecmp(h->name, "content-length", 14) == 0)
			rc = set_str(env, k[HB_S_CONTENT_LENGTH], h->value, h->value_len);
		else if (!host_done && h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0 &&
			 host_cached(a, h) && (host_done = 1))
			rc = PyDict_SetItem(env, k[HB_S_HTTP_HOST], a->host_s); /* set_server's */
		else
			rc = add_http_header(env, h);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static PyObject *method_str(hb_modstate_t *st, const hb_request_t *r)
{
	static const struct {
		const char *name;
		int key;
	} common[] = {{"GET", HB_S_v_GET}, {"POST", HB_S_v_POST}, {"HEAD", HB_S_v_HEAD}};

	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		if (strlen(common[i].name) == r->method_len &&
		    memcmp(common[i].name, r->method, r->method_len) == 0)
			return Py_NewRef(st->str[common[i].key]);
	return PyUnicode_DecodeLatin1(r->method, (Py_ssize_t)r->method_len, NULL);
}

static int set_owned(PyObject *env, PyObject *key, PyObject *v)
{
	int rc = v ? PyDict_SetItem(env, key, v) : -1;

	Py_XDECREF(v);
	return rc;
}

/* The request's environ, input included. Returns a new dict or NULL. */
/* HTTPS=on and mod_ssl's names for what TLS told the connection. */
static int set_tls(PyObject *env, const hb_request_tls_t *t)
{
	PyObject *v;
	int rc;
	if (!t)
		return 0;
	rc = PyDict_SetItemString(env, "HTTPS", (v = PyUnicode_FromString("on"))) < 0;
	Py_XDECREF(v);
	rc = rc || PyDict_SetItemString(
			   env, "SSL_PROTOCOL",
			   (v = PyUnicode_FromString(hb_request_tls_version_name(t->version)))) < 0;
	Py_XDECREF(v);
	if (!rc && t->client_cert_name) {
		rc = PyDict_SetItemString(env, "SSL_CLIENT_S_DN",
					  (v = PyUnicode_FromString(t->client_cert_name))) < 0;
		Py_XDECREF(v);
	}
	if (!rc && t->client_cert_pem) {
		rc = PyDict_SetItemString(env, "SSL_CLIENT_CERT",
					  (v = PyUnicode_FromString(t->client_cert_pem))) < 0;
		Py_XDECREF(v);
	}
	return rc ? -1 : 0;
}

static PyObject *build_environ(hb_wsgi_app_t *a, hb_stream_t *s, PyObject *input)
{
	const hb_request_t *r = s->req;
	PyObject **k = a->st->str, *env = PyDict_Copy(a->base_environ);
	int https = r->scheme && strcmp(r->scheme, "https") == 0;
	int http10 = r->http_major == 1 && r->http_minor == 0;

	if (!env)
		return NULL;
	if (set_owned(env, k[HB_S_REQUEST_METHOD], method_str(a->st, r)) ||
	    set_path_info(a, env, r) ||
	    set_str(env, k[HB_S_QUERY_STRING], r->query, r->query_len) ||
	    set_str(env, k[HB_S_RAW_URI], r->target, r->target_len) ||
	    PyDict_SetItem(env, k[HB_S_SERVER_PROTOCOL],
			   k[r->http_major == 2 ? HB_S_v_HTTP2
			     : http10		? HB_S_v_HTTP10
						: HB_S_v_HTTP11]) ||
	    set_remote_addr(a, env, r->remote_addr) ||
	    set_port(env, k[HB_S_REMOTE_PORT], r->remote_port) || set_server(a, env, r, https) ||
	    PyDict_SetItem(env, k[HB_S_wsgi_url_scheme], k[https ? HB_S_v_https : HB_S_v_http]) ||
	    PyDict_SetItem(env, k[HB_S_wsgi_input], input) || set_headers(a, env, r) ||
	    set_tls(env, r->tls)) {
		Py_DECREF(env);
		return NULL;
	}
	return env;
}

/* ---- sending ---- */

/* Logs an error line naming the request. */
static void req_error(const hb_wsgi_req_t *req, const char *what)
{
	const hb_request_t *r = req->s->req;

	hb_error("wsgi: %.*s %.*s: %s", (int)r->method_len, r->method,
		 (int)(r->target_len > 160 ? 160 : r->target_len), r->target, what);
}

/* Body bytes allowed by Content-Length; marks the response broken past it. */
static size_t clamp_to_length(hb_wsgi_req_t *req, size_t len)
{
	if (req->declared_len >= 0 && !req->is_head &&
	    req->body_sent + len > (uint64_t)req->declared_len) {
		len = (size_t)((uint64_t)req->declared_len - req->body_sent);
		req->broken = 1;
	}
	req->body_sent += len;
	return len;
}

/* The flags the response ends with. */
static uint32_t end_flags(const hb_wsgi_req_t *req)
{
	if (req->broken || req->gone)
		return HB_END_ABORT;
	if (req->declared_len >= 0 && !req->is_head &&
	    req->body_sent != (uint64_t)req->declared_len)
		return HB_END_ABORT;
	return 0;
}

/* [GIL released] Posts the pending head, then len bytes, then the end when `end`. A head with
 * bytes goes as one batch with them (and the end), written in one send (one TLS record). */
static int post(hb_wsgi_req_t *req, hb_response_t *head, const char *data, size_t len, int end)
{
	int rc = 0;

	if (head && len && !req->is_head) {
		rc = hb_stream_send_head_body(req->s, head, data, len, end,
					      end ? end_flags(req) : 0);
		if (rc < 0 && end)
			hb_stream_end(req->s, HB_END_ABORT);
		return rc;
	}
	if (head)
		rc = hb_stream_send_head(req->s, head);
	if (rc == 0 && len && !req->is_head)
		rc = hb_stream_send_body(req->s, data, len);
	if (end)
		hb_stream_end(req->s, rc ? HB_END_ABORT : end_flags(req));
	return rc;
}

/* Sends with the GIL released; `end` also ends the stream. */
static int send_locked(hb_wsgi_req_t *req, const char *data, size_t len, int end)
{
	hb_response_t *head = NULL;
	int rc;

	if (!req->head_sent) {
		head = req->resp;
		req->resp = NULL;
		req->head_sent = 1;
	}
	Py_BEGIN_ALLOW_THREADS rc = post(req, head, data, len, end);
	Py_END_ALLOW_THREADS if (end) req->ended = 1;
	if (rc < 0) {
		req->gone = 1;
		return -1;
	}
	return 0;
}

int hb_wsgi_send(hb_wsgi_req_t *req, const char *data, size_t len)
{
	if (req->gone || req->broken || req->ended)
		return -1;
	if (!req->head_sent && (req->invalid || !req->resp)) {
		if (!req->invalid)
			req_error(req, "body before start_response(): answering 500");
		req->invalid = 1;
		return -1;
	}
	len = clamp_to_length(req, len);
	if (len == 0 && !req->broken)
		return 0; /* an empty chunk does not send the head yet */
	if (send_locked(req, data, len, 0) < 0)
		return -1;
	return req->broken ? -1 : 0;
}

/* Ends the response: the head if still pending (500 when the app failed before it). */
static void finish(hb_wsgi_req_t *req)
{
	static const char body[] = "Internal Server Error\n";

	if (req->ended)
		return;
	if (req->head_sent || (req->resp && !req->invalid)) {
		send_locked(req, NULL, 0, 1);
		return;
	}
	if (!req->resp && !req->invalid)
		req_error(req, "the app returned without calling start_response(): answering 500");
	free(req->resp);
	req->resp = hb_wsgi_response_plain(500, body);
	req->declared_len = (int64_t)sizeof(body) - 1;
	req->body_sent = 0;
	if (!req->resp) {
		/* No memory for a head: an aborted end makes the io side close. */
		req->head_sent = 1;
		req->broken = 1;
		send_locked(req, NULL, 0, 1);
		return;
	}
	send_locked(req, body, clamp_to_length(req, sizeof(body) - 1), 1);
}

/* The app raised (or returned something unusable): log it, answer 500 or abort. */
static void app_failed(hb_wsgi_req_t *req, const char *what)
{
	if (req->gone || hb_stream_client_gone(req->s)) {
		req->gone = 1;
		PyErr_Clear(); /* the client left: nothing to report */
	} else if (req->invalid) {
		PyErr_Clear(); /* start_response already logged why */
	} else {
		const hb_request_t *r = req->s->req;
		char msg[256];

		snprintf(msg, sizeof(msg), "wsgi: %.*s %.*s: %s", (int)r->method_len, r->method,
			 (int)(r->target_len > 160 ? 160 : r->target_len), r->target, what);
		hb_pyerr_log(HB_LOG_ERROR, msg);
	}
	if (req->head_sent) {
		req->broken = 1;
	} else {
		req->invalid = 1;
	}
}

/* ---- the result ---- */

static int send_item(hb_wsgi_req_t *req, PyObject *item)
{
	if (!PyBytes_Check(item)) {
		PyErr_Format(PyExc_TypeError, "response body items must be bytes, not %.100s",
			     Py_TYPE(item)->tp_name);
		app_failed(req, "bad body item");
		return -1;
	}
	return hb_wsgi_send(req, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item));
}

/* A list or tuple: no iterator; a single item goes out with the head and the end at once. */
static void send_sequence(hb_wsgi_req_t *req, PyObject *seq)
{
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);

	if (n == 1 && !req->head_sent && req->resp && !req->invalid) {
		PyObject *item = PySequence_Fast_GET_ITEM(seq, 0);

		if (PyBytes_Check(item)) {
			size_t len = clamp_to_length(req, (size_t)PyBytes_GET_SIZE(item));

			Py_INCREF(item);
			send_locked(req, PyBytes_AS_STRING(item), len, 1);
			Py_DECREF(item);
			return;
		}
	}
	for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
		PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
		int rc = send_item(req, item);

		Py_DECREF(item);
		if (rc < 0)
			return;
	}
}

static void send_iterable(hb_wsgi_req_t *req, PyObject *result)
{
	PyObject *it = PyObject_GetIter(result), *item;

	if (!it) {
		app_failed(req, "the result is not iterable");
		return;
	}
	/* A generator may block before its next chunk (a stream of events): what it gave so far
	 * goes out first. A list or tuple is all there already. */
	int streaming = !PyList_CheckExact(result) && !PyTuple_CheckExact(result);
	while ((item = PyIter_Next(it))) {
		int rc = send_item(req, item);

		Py_DECREF(item);
		if (rc < 0)
			break;
		if (streaming)
			hb_stream_flush(req->s);
	}
	if (PyErr_Occurred())
		app_failed(req, "exception while iterating the response");
	Py_DECREF(it);
}

/* The fd of a wrapped regular file and the logical position in it; -1 when not one. */
static int file_region(hb_modstate_t *st, PyObject *filelike, int64_t *offset, int64_t *size)
{
	PyObject *r = PyObject_CallMethodNoArgs(filelike, st->str[HB_S_fileno]);
	struct stat sb;
	long fd;

	if (!r)
		goto no;
	fd = PyLong_AsLong(r);
	Py_DECREF(r);
	if (fd < 0 || fd > 0x7fffffff || fstat((int)fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		goto no;
	/* tell(), not lseek(): a buffered file reads ahead of its logical position. */
	r = PyObject_CallMethodNoArgs(filelike, st->str[HB_S_tell]);
	*offset = r ? PyLong_AsLongLong(r) : lseek((int)fd, 0, SEEK_CUR);
	Py_XDECREF(r);
	if (*offset < 0)
		goto no;
	*size = (int64_t)sb.st_size > *offset ? (int64_t)sb.st_size - *offset : 0;
	return (int)fd;
no:
	PyErr_Clear();
	return -1;
}

/* wsgi.file_wrapper over a regular file: the io side splices it. Returns -1 to iterate. */
static int send_file(hb_wsgi_req_t *req, hb_file_wrapper_t *fw)
{
	int64_t offset, size, len;
	int fd, dupfd, rc = 0;
	hb_response_t *head = NULL;

	if (req->invalid || !req->resp || req->gone || req->broken)
		return -1;
	fd = file_region(req->st, fw->filelike, &offset, &size);
	if (fd < 0)
		return -1;
	len = (int64_t)clamp_to_length(req, (size_t)size);
	dupfd = (len > 0 && !req->is_head) ? dup(fd) : -1;
	if (len > 0 && !req->is_head && dupfd < 0)
		return -1;
	if (!req->head_sent) {
		head = req->resp;
		req->resp = NULL;
		req->head_sent = 1;
	}
	Py_BEGIN_ALLOW_THREADS if (head) rc = hb_stream_send_head(req->s, head);
	if (dupfd >= 0) {
		if (rc == 0)
			rc = hb_stream_send_file(req->s, dupfd, offset, len);
		else
			close(dupfd);
	}
	Py_END_ALLOW_THREADS if (rc < 0) req->gone = 1;
	return 0;
}

static void send_result(hb_wsgi_req_t *req, PyObject *result)
{
	if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
		send_sequence(req, result);
		return;
	}
	if (Py_IS_TYPE(result, req->st->file_wrapper_type) &&
	    send_file(req, (hb_file_wrapper_t *)result) == 0)
		return;
	send_iterable(req, result);
}

/* PEP 3333: close() is called whatever happened, client disconnects included. */
static void close_result(hb_wsgi_req_t *req, PyObject *result)
{
	PyObject *meth, *r;

	if (PyList_CheckExact(result) || PyTuple_CheckExact(result) || PyBytes_Check(result))
		return;
	meth = PyObject_GetAttr(result, req->st->str[HB_S_close]);
	if (!meth) {
		if (PyErr_ExceptionMatches(PyExc_AttributeError))
			PyErr_Clear();
		else
			app_failed(req, "exception looking up the result's close()");
		return;
	}
	r = PyObject_CallNoArgs(meth);
	Py_DECREF(meth);
	if (r)
		Py_DECREF(r);
	else
		app_failed(req, "exception in the result's close()");
}

/* environ["hornbeam.early_hint"] always, environ["hornbeam.push"] only where the connection can
 * push (HTTP/2, h2_push on, the client's SETTINGS_ENABLE_PUSH 1): bound methods of the
 * start_response object, so they die with the request. */
static int set_extensions(hb_modstate_t *st, PyObject *env, PyObject *sr, const hb_stream_t *s)
{
	PyObject **k = st->str;
	PyObject *hint = PyObject_GetAttr(sr, k[HB_S_early_hint]), *push = NULL;
	int rc = hint ? PyDict_SetItem(env, k[HB_S_hb_early_hint], hint) : -1;

	if (rc == 0 && (s->req->flags & HB_REQ_CAN_PROMISE)) {
		push = PyObject_GetAttr(sr, k[HB_S_push]);
		rc = push ? PyDict_SetItem(env, k[HB_S_hb_push], push) : -1;
	}
	Py_XDECREF(hint);
	Py_XDECREF(push);
	return rc;
}

void hb_wsgi_serve(hb_wsgi_app_t *a, hb_stream_t *s)
{
	hb_wsgi_req_t req = {.s = s,
			     .st = a->st,
			     .declared_len = -1,
			     .is_head = (s->req->flags & HB_REQ_HEAD) != 0};
	PyObject *input = hb_wsgi_input_new(a->st, s);
	PyObject *sr = hb_wsgi_start_response_new(a->st, &req);
	PyObject *env = input ? build_environ(a, s, input) : NULL;
	PyObject *result = NULL;

	if (env && sr && set_extensions(a->st, env, sr, s) < 0)
		Py_CLEAR(env);
	if (env && sr)
		result = PyObject_CallFunctionObjArgs(a->app, env, sr, NULL);
	if (!result) {
		app_failed(&req, "exception in the app");
	} else {
		send_result(&req, result);
		close_result(&req, result);
		Py_DECREF(result);
	}
	finish(&req);
	free(req.resp);
	if (sr)
		hb_wsgi_start_response_detach(sr);
	if (input)
		hb_wsgi_input_detach(input);
	Py_XDECREF(env);
	Py_XDECREF(sr);
	Py_XDECREF(input);
	if (PyErr_Occurred())
		PyErr_Clear();
}
