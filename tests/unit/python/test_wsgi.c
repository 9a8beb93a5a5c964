/* test_wsgi.c: the python host and WSGI, with the test playing the io thread.
 *
 * Each test (its own process: Criterion forks) initializes Python, starts the pool over a hub
 * with one io side, builds requests by hand, dispatches them, feeds bodies and collects the
 * response messages. The app is tests/unit/python/wsgi_app.py (one route per behaviour).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/hub.h"
#include "core/log.h"
#include "core/stream.h"
#include "python/pyhost.h"

#define MAXREQ 16

typedef struct {
	hb_stream_t *s;
	const char *body; /* request body still to push */
	size_t body_len, body_off;
	int eof_sent;
	int gone_after_body; /* mark the client gone after this many response body messages */
	/* response */
	hb_response_t *head;
	char *out;
	size_t out_len;
	int nbody, nfile, ncontinue;
	int ninterim, nlinks; /* interim heads before the head, their fields */
	char promised[64];    /* target of the last promise */
	int promise_fields;
	int ended;
	uint32_t end_flags;
} xreq_t;

static hb_config_t cfg;
static hb_hub_t *hub;
static hb_pyhost_t *host;
static char *pypath[2];
static char srcdir[PATH_MAX];
static uint32_t extra_flags;	    /* HB_REQ_* added to the next requests */
static hb_request_tls_t *extra_tls; /* set: the next requests come over TLS */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void setup_cfg(void)
{
#ifdef HB_SOURCE_DIR
	snprintf(srcdir, sizeof(srcdir), "%s/tests/unit/python", HB_SOURCE_DIR);
#else
	char file[PATH_MAX];

	snprintf(file, sizeof(file), "%s", __FILE__);
	snprintf(srcdir, sizeof(srcdir), "%s", dirname(file));
#endif
	memset(&cfg, 0, sizeof(cfg));
	cfg.app = "wsgi_app:application";
	cfg.workers = 1;
	cfg.threads = 1;
	pypath[0] = srcdir;
	cfg.pythonpath = pypath;
	cfg.npythonpath = 1;
	cfg.root_path = "";
#ifdef HB_DEFAULT_INTERPRETER /* a build against Python 3.11: no per-interpreter GIL */
	cfg.interpreter = HB_INTERP_MAIN;
#endif
	hb_log_init(HB_LOG_INFO, NULL);
}

static void start_host(void)
{
	cr_assert_eq(hb_py_init(), 0);
	hub = hb_hub_new(1, hb_py_max_workers(&cfg));
	cr_assert(hub);
	cr_assert_eq(hb_py_start(&cfg, hub, &host), 0, "hb_py_start failed");
}

static void stop_host(void)
{
	hb_py_stop(host, now_ns() + 5000000000u);
	hb_py_finalize();
	hb_hub_free(hub);
}

/* A request in one allocation, as proto/h1 builds it. hdrs: name, value, ..., NULL. */
static hb_request_t *make_req(const char *method, const char *target, const char **hdrs,
			      int64_t clen, uint32_t flags)
{
	size_t nh = 0, bytes = strlen(method) + strlen(target) + 2;
	hb_request_t *r;
	char *p;

	for (; hdrs && hdrs[2 * nh]; nh++)
		bytes += strlen(hdrs[2 * nh]) + strlen(hdrs[2 * nh + 1]) + 2;
	size_t pad = (8 - offsetof(hb_request_t, data) % 8) % 8;
	r = calloc(1, sizeof(*r) + pad + nh * sizeof(hb_header_t) + bytes);
	r->headers = (hb_header_t *)(void *)(r->data + pad);
	p = r->data + pad + nh * sizeof(hb_header_t);
	r->method = memcpy(p, method, strlen(method) + 1);
	r->method_len = (uint32_t)strlen(method);
	p += r->method_len + 1;
	r->target = memcpy(p, target, strlen(target) + 1);
	r->target_len = (uint32_t)strlen(target);
	p += r->target_len + 1;
	const char *q = strchr(r->target, '?');
	r->path = r->target;
	r->path_len = q ? (uint32_t)(q - r->target) : r->target_len;
	r->query = q ? q + 1 : "";
	r->query_len = q ? (uint32_t)strlen(q + 1) : 0;
	for (size_t i = 0; i < nh; i++) {
		hb_header_t *h = &r->headers[i];
		h->name = memcpy(p, hdrs[2 * i], strlen(hdrs[2 * i]) + 1);
		h->name_len = (uint32_t)strlen(hdrs[2 * i]);
		p += h->name_len + 1;
		h->value = memcpy(p, hdrs[2 * i + 1], strlen(hdrs[2 * i + 1]) + 1);
		h->value_len = (uint32_t)strlen(hdrs[2 * i + 1]);
		p += h->value_len + 1;
	}
	r->nheaders = (uint32_t)nh;
	r->http_major = 1;
	r->http_minor = 1;
	r->flags = flags | HB_REQ_KEEP_ALIVE;
	if (strcmp(method, "HEAD") == 0)
		r->flags |= HB_REQ_HEAD;
	r->content_length = clen;
	r->scheme = "http";
	strcpy(r->remote_addr, "10.1.2.3");
	r->remote_port = 54321;
	strcpy(r->server_addr, "127.0.0.1");
	r->server_port = 8000;
	return r;
}

static void submit(xreq_t *x, const char *method, const char *target, const char **hdrs,
		   const char *body, size_t body_len)
{
	uint32_t flags = (body ? HB_REQ_HAS_BODY : 0) | extra_flags;
	int64_t clen = body && !(flags & HB_REQ_CHUNKED) ? (int64_t)body_len : -1;
	hb_request_t *r = make_req(method, target, hdrs, clen, flags);
	int rc;

	if (extra_tls) {
		r->scheme = "https";
		r->tls = hb_request_tls_ref(extra_tls);
	}
	memset(x, 0, sizeof(*x));
	x->body = body;
	x->body_len = body_len;
	x->s = hb_stream_new(hub, 0, r);
	cr_assert(x->s);
	for (int i = 0; (rc = hb_hub_dispatch(hub, 0, x->s)) != 0 && i < 5000; i++)
		usleep(1000);
	cr_assert_eq(rc, 0, "dispatch failed: %d", rc);
}

static xreq_t *find(xreq_t *xs, int n, hb_stream_t *s)
{
	for (int i = 0; i < n; i++)
		if (xs[i].s == s)
			return &xs[i];
	cr_assert_fail("message for an unknown stream");
	return NULL;
}

static void push_body(xreq_t *x)
{
	while (x->body && x->body_off < x->body_len && !hb_stream_body_full(x->s)) {
		size_t k = x->body_len - x->body_off;

		if (k > 16384)
			k = 16384;
		if (hb_stream_body_push(x->s, x->body + x->body_off, k) != 0)
			return;
		x->body_off += k;
	}
	if (!x->eof_sent && (!x->body || x->body_off == x->body_len)) {
		hb_stream_signal(x->s, HB_ST_BODY_EOF);
		x->eof_sent = 1;
	}
}

static void on_msg(xreq_t *x, const hb_msg_t *m)
{
	switch (m->type) {
	case HB_MSG_HEAD:
		cr_assert_null(x->head, "two heads");
		x->head = m->ptr;
		break;
	case HB_MSG_BODY: {
		hb_chunk_t *c = m->ptr;
		x->out = realloc(x->out, x->out_len + c->len + 1);
		memcpy(x->out + x->out_len, c->data, c->len);
		x->out_len += c->len;
		x->out[x->out_len] = '\0';
		x->nbody++;
		hb_stream_out_done(x->s, m->len);
		free(c);
		if (x->gone_after_body && x->nbody == x->gone_after_body)
			hb_stream_signal(x->s, HB_ST_CLIENT_GONE);
		break;
	}
	case HB_MSG_FILE: {
		hb_file_chunk_t *f = m->ptr;
		char buf[65536];
		ssize_t n =
			pread(f->fd, buf, f->len < 0 ? (ssize_t)sizeof(buf) : f->len, f->offset);
		cr_assert(n >= 0);
		x->out = realloc(x->out, x->out_len + (size_t)n + 1);
		memcpy(x->out + x->out_len, buf, (size_t)n);
		x->out_len += (size_t)n;
		x->out[x->out_len] = '\0';
		x->nfile++;
		close(f->fd);
		free(f);
		break;
	}
	case HB_MSG_END:
		cr_assert_eq(x->ended, 0, "two ends");
		x->ended = 1;
		x->end_flags = m->aux;
		atomic_fetch_sub(&hb_hub_worker(hub, x->s->worker_idx)->inflight, 1);
		break;
	case HB_MSG_CONTINUE:
		x->ncontinue++;
		break;
	case HB_MSG_INTERIM: {
		hb_response_t *r = m->ptr;
		cr_assert_null(x->head, "an interim head after the head");
		cr_assert_eq(r->status, 103);
		x->ninterim++;
		x->nlinks += (int)r->nheaders;
		free(r);
		break;
	}
	case HB_MSG_PROMISE: {
		hb_promise_t *p = m->ptr;
		snprintf(x->promised, sizeof(x->promised), "%s", p->target);
		x->promise_fields = p->fields ? (int)p->fields->nheaders : -1;
		hb_promise_free(p);
		break;
	}
	default:
		break;
	}
}

/* Plays the io thread until every request ended (or 10 s). */
static void pump(xreq_t *xs, int n)
{
	uint64_t deadline = now_ns() + 10000000000u;
	int left = n;
	hb_msg_t m;

	while (left > 0) {
		for (int i = 0; i < n; i++)
			if (!xs[i].ended)
				push_body(&xs[i]);
		if (hb_hub_io_pop(hub, 0, &m) != 0) {
			if (now_ns() >= deadline)
				for (int j = 0; j < n; j++)
					fprintf(stderr,
						"req %s %d ended %d head %p nbody %d eof %d off "
						"%zu cont %d\n",
						xs[j].s->req->target, j, xs[j].ended,
						(void *)xs[j].head, xs[j].nbody, xs[j].eof_sent,
						xs[j].body_off, xs[j].ncontinue);
			cr_assert(now_ns() < deadline, "timed out waiting for responses");
			usleep(20);
			continue;
		}
		xreq_t *x = find(xs, n, m.stream);
		on_msg(x, &m);
		if (m.type == HB_MSG_END)
			left--;
	}
}

static void done(xreq_t *x)
{
	hb_stream_release(x->s);
	free(x->head);
	free(x->out);
}

/* One request, start to end. */
static void run1(xreq_t *x, const char *method, const char *target, const char **hdrs,
		 const char *body, size_t body_len)
{
	submit(x, method, target, hdrs, body, body_len);
	pump(x, 1);
}

static const char *hval(const hb_response_t *r, const char *name)
{
	for (uint32_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

#define HAS(x, text)                                                                               \
	cr_assert(strstr((x)->out ? (x)->out : "", text), "missing %s in %s", text,                \
		  (x)->out ? (x)->out : "(no body)")

TestSuite(wsgi, .init = setup_cfg, .timeout = 60);

Test(wsgi, environ_basics)
{
	const char *h[] = {"Host",
			   "example.com:8080",
			   "Content-Type",
			   "text/x-test",
			   "X-Dup",
			   "a",
			   "X-Dup",
			   "b",
			   "Cookie",
			   "c=1",
			   "Cookie",
			   "d=2",
			   "X_Smuggle",
			   "1",
			   "User-Agent",
			   "t",
			   NULL};
	xreq_t x;

	start_host();
	run1(&x, "GET", "/env/a%20b/%C3%A9?q=1&r=%20", h, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	cr_assert_eq(x.end_flags, 0);
	HAS(&x, "('REQUEST_METHOD', 'GET')");
	HAS(&x, "('PATH_INFO', '/env/a b/\xc3\x83\xc2\xa9')"); /* latin-1 of UTF-8 bytes */
	HAS(&x, "('QUERY_STRING', 'q=1&r=%20')");
	HAS(&x, "('RAW_URI', '/env/a%20b/%C3%A9?q=1&r=%20')");
	HAS(&x, "('SCRIPT_NAME', '')");
	HAS(&x, "('SERVER_NAME', 'example.com')");
	HAS(&x, "('SERVER_PORT', '8080')");
	HAS(&x, "('SERVER_PROTOCOL', 'HTTP/1.1')");
	HAS(&x, "('REMOTE_ADDR', '10.1.2.3')");
	HAS(&x, "('REMOTE_PORT', '54321')");
	HAS(&x, "('CONTENT_TYPE', 'text/x-test')");
	HAS(&x, "('HTTP_X_DUP', 'a, b')");
	HAS(&x, "('HTTP_COOKIE', 'c=1; d=2')");
	HAS(&x, "('HTTP_HOST', 'example.com:8080')");
	HAS(&x, "('HTTP_USER_AGENT', 't')");
	HAS(&x, "('wsgi.url_scheme', 'http')");
	HAS(&x, "('wsgi.version', (1, 0))");
	HAS(&x, "('wsgi.multithread', False)");
	HAS(&x, "('wsgi.multiprocess', False)");
	HAS(&x, "('wsgi.run_once', False)");
	HAS(&x, "('wsgi.input_terminated', True)");
	HAS(&x, "('errors', 'ErrorStream')");
	HAS(&x, "('input', 'InputStream')");
	cr_assert_null(strstr(x.out, "SMUGGLE"));
	cr_assert_null(strstr(x.out, "HTTP_CONTENT_TYPE"));
	cr_assert_null(strstr(x.out, "CONTENT_LENGTH"));
	done(&x);
	stop_host();
}

Test(wsgi, tls_environ)
{
	const char *h[] = {"Host", "example.com", NULL};
	hb_request_tls_t *t = calloc(1, sizeof(*t));
	xreq_t x;

	t->refs = 1;
	t->version = 0x0304;
	t->cipher_suite = 0x1301;
	t->client_cert_name = strdup("CN=client.test,O=Hornbeam Test");
	t->client_cert_pem =
		strdup("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n");
	extra_tls = t;
	start_host();
	run1(&x, "GET", "/env", h, NULL, 0);
	extra_tls = NULL;
	cr_assert_eq(x.head->status, 200);
	HAS(&x, "('wsgi.url_scheme', 'https')");
	HAS(&x, "('HTTPS', 'on')");
	HAS(&x, "('SSL_PROTOCOL', 'TLSv1.3')");
	HAS(&x, "('SSL_CLIENT_S_DN', 'CN=client.test,O=Hornbeam Test')");
	HAS(&x, "('SSL_CLIENT_CERT', '-----BEGIN CERTIFICATE-----\\nAA==");
	done(&x);
	hb_request_tls_unref(t); /* the request's reference went with its stream */
	stop_host();
}

Test(wsgi, early_hint_and_push_callables)
{
	const char *h[] = {"Host", "example.com", NULL};
	xreq_t x;

	start_host();
	run1(&x, "GET", "/extras", h, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	HAS(&x, "(True, None, False, 'TypeError')");
	cr_assert_eq(x.ninterim, 1);
	cr_assert_eq(x.nlinks, 2);
	cr_assert_eq(x.promised[0], '\0', "no hornbeam.push without HB_REQ_CAN_PROMISE");
	done(&x);
	extra_flags = HB_REQ_CAN_PROMISE;
	run1(&x, "GET", "/extras", h, NULL, 0);
	extra_flags = 0;
	HAS(&x, "(True, True, False, 'TypeError')");
	cr_assert_str_eq(x.promised, "/a.css?v=1");
	cr_assert_eq(x.promise_fields, 1);
	done(&x);
	stop_host();
}

Test(wsgi, root_path_and_server_fallback)
{
	const char *h[] = {"Content-Length", "0", NULL};
	xreq_t x;

	cfg.root_path = "/app";
	start_host();
	run1(&x, "POST", "/app/env/x", h, NULL, 0);
	HAS(&x, "('SCRIPT_NAME', '/app')");
	HAS(&x, "('PATH_INFO', '/env/x')");
	HAS(&x, "('SERVER_NAME', '127.0.0.1')");
	HAS(&x, "('SERVER_PORT', '8000')");
	HAS(&x, "('CONTENT_LENGTH', '0')");
	HAS(&x, "('REQUEST_METHOD', 'POST')");
	done(&x);
	stop_host();
}

Test(wsgi, input_streams_in_pieces)
{
	size_t n = 1000 * 1000 + 7;
	char *body = malloc(n);
	xreq_t x;

	for (size_t i = 0; i < n; i++)
		body[i] = (char)('a' + i % 26);
	start_host();
	run1(&x, "POST", "/echo", NULL, body, n);
	cr_assert_eq(x.head->status, 200);
	cr_assert_eq(x.out_len, n);
	cr_assert(memcmp(x.out, body, n) == 0);
	cr_assert_str_eq(hval(x.head, "X-Parts"), "1001");
	cr_assert_eq(x.ncontinue, 0, "no Expect: no 100 Continue");
	done(&x);
	extra_flags = HB_REQ_EXPECT_CONTINUE;
	run1(&x, "POST", "/echo", NULL, body, 5000);
	cr_assert_eq(x.ncontinue, 1, "Expect: 100-continue and the app reads");
	cr_assert_eq(x.out_len, 5000);
	done(&x);
	run1(&x, "POST", "/token", NULL, body, 5000);
	cr_assert_eq(x.ncontinue, 0, "the app never read the body");
	done(&x);
	free(body);
	stop_host();
}

Test(wsgi, input_read_all_and_lines)
{
	const char *text = "line one\nline two\nthird\n\nlast";
	xreq_t x;

	start_host();
	run1(&x, "POST", "/readall", NULL, text, strlen(text));
	cr_assert_eq(x.out_len, strlen(text) + 4, "%s", x.out);
	cr_assert(strncmp(x.out, text, strlen(text)) == 0);
	HAS(&x, "|b''");
	done(&x);
	run1(&x, "POST", "/lines", NULL, text, strlen(text));
	HAS(&x, "[b'line one\\n', b'lin', b'e two\\n', [b'third\\n', b'\\n', b'last'], "
		"[b'', b'', b'']]");
	done(&x);
	run1(&x, "POST", "/iter", NULL, text, strlen(text));
	HAS(&x, "[b'line one\\n', b'line two\\n', b'third\\n', b'\\n', b'last']");
	done(&x);
	run1(&x, "GET", "/readall", NULL, NULL, 0);
	cr_assert_str_eq(x.out, "|b''");
	done(&x);
	extra_flags = HB_REQ_CHUNKED; /* no Content-Length: read() grows as bytes come */
	char *big = malloc(300000);
	memset(big, 'z', 300000);
	run1(&x, "POST", "/readall", NULL, big, 300000);
	cr_assert_eq(x.out_len, 300004);
	done(&x);
	run1(&x, "POST", "/lines", NULL, text, strlen(text));
	HAS(&x, "[b'line one\\n', b'lin'");
	done(&x);
	free(big);
	extra_flags = 0; /* past the first allocation read() trusts a Content-Length for */
	big = malloc(3000000);
	memset(big, 'y', 3000000);
	run1(&x, "POST", "/readall", NULL, big, 3000000);
	cr_assert_eq(x.out_len, 3000004);
	cr_assert(memcmp(x.out, big, 3000000) == 0);
	done(&x);
	free(big);
	stop_host();
}

Test(wsgi, app_exception_is_500)
{
	xreq_t x;

	start_host();
	run1(&x, "GET", "/raise", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 500);
	cr_assert(x.head->flags & HB_RESP_CLOSE);
	cr_assert_eq(x.end_flags, 0);
	HAS(&x, "Internal Server Error");
	done(&x);
	run1(&x, "GET", "/notbytes", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 500);
	done(&x);
	run1(&x, "GET", "/nostart", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 500);
	done(&x);
	run1(&x, "GET", "/iterfail?0", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 500);
	done(&x);
	stop_host();
}

Test(wsgi, invalid_status_or_headers_are_500)
{
	static const char *routes[] = {"/badheader", "/badname", "/badstatus", "/nonlatin",
				       "/caught"};
	xreq_t x;

	start_host();
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		run1(&x, "GET", routes[i], NULL, NULL, 0);
		cr_assert_eq(x.head->status, 500, "%s", routes[i]);
		cr_assert_null(hval(x.head, "X-Bad"));
		cr_assert_null(hval(x.head, "Injected"));
		cr_assert_null(strstr(x.out, "should not"));
		done(&x);
	}
	stop_host();
}

Test(wsgi, close_is_always_called)
{
	xreq_t x;

	start_host();
	run1(&x, "GET", "/close?first", NULL, NULL, 0);
	cr_assert_str_eq(x.out, "ab");
	done(&x);
	run1(&x, "GET", "/iterfail?1", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	cr_assert_str_eq(x.out, "a");
	cr_assert_eq(x.end_flags, HB_END_ABORT);
	done(&x);
	/* The client leaves after the second body message. */
	submit(&x, "GET", "/slowiter", NULL, NULL, 0);
	x.gone_after_body = 2;
	pump(&x, 1);
	cr_assert_eq(x.end_flags, HB_END_ABORT);
	cr_assert(x.nbody < 50);
	done(&x);
	run1(&x, "GET", "/closed", NULL, NULL, 0);
	HAS(&x, "['first', 'iterfail1', 'slow']");
	done(&x);
	stop_host();
}

Test(wsgi, content_length_mismatch_aborts)
{
	xreq_t x;

	start_host();
	run1(&x, "GET", "/short", NULL, NULL, 0);
	cr_assert_eq(x.head->content_length, 10);
	cr_assert_eq(x.end_flags, HB_END_ABORT);
	done(&x);
	run1(&x, "GET", "/long", NULL, NULL, 0);
	cr_assert_eq(x.end_flags, HB_END_ABORT);
	cr_assert_eq(x.out_len, 3, "never more than Content-Length: %zu", x.out_len);
	done(&x);
	run1(&x, "GET", "/write", NULL, NULL, 0);
	cr_assert_eq(x.end_flags, 0);
	cr_assert_str_eq(x.out, "hello world");
	done(&x);
	run1(&x, "GET", "/closed", NULL, NULL, 0);
	HAS(&x, "['short', 'long']");
	done(&x);
	stop_host();
}

Test(wsgi, exc_info_rules)
{
	xreq_t x;

	start_host();
	run1(&x, "GET", "/exc-before", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 503);
	cr_assert_null(hval(x.head, "X-First"));
	cr_assert_str_eq(hval(x.head, "X-Second"), "1");
	cr_assert_str_eq(x.out, "replaced");
	done(&x);
	run1(&x, "GET", "/exc-after", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	cr_assert_str_eq(x.out, "partial;more");
	done(&x);
	run1(&x, "GET", "/twice", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	done(&x);
	run1(&x, "GET", "/closed", NULL, NULL, 0);
	HAS(&x, "['reraised', 'twice-refused']");
	done(&x);
	stop_host();
}

Test(wsgi, empty_bodies_and_hop_headers)
{
	xreq_t x;

	start_host();
	run1(&x, "GET", "/empty", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 204);
	cr_assert_str_eq(hval(x.head, "X-Empty"), "yes");
	cr_assert_eq(x.out_len, 0);
	done(&x);
	run1(&x, "GET", "/gen-empty", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	cr_assert(x.head->flags & HB_RESP_CLOSE);
	cr_assert(x.head->flags & HB_RESP_HAS_DATE);
	cr_assert_null(hval(x.head, "Transfer-Encoding"));
	cr_assert_null(hval(x.head, "Connection"));
	cr_assert_eq(x.head->content_length, -1);
	done(&x);
	run1(&x, "HEAD", "/token", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	cr_assert_eq(x.out_len, 0, "HEAD: no body bytes");
	cr_assert_eq(x.end_flags, 0);
	done(&x);
	stop_host();
}

Test(wsgi, file_wrapper)
{
	char path[] = "/tmp/hbwsgiXXXXXX", target[64];
	int fd = mkstemp(path);
	xreq_t x;

	cr_assert(write(fd, "0123456789", 10) == 10);
	close(fd);
	start_host();
	snprintf(target, sizeof(target), "/file?%s", path);
	run1(&x, "GET", target, NULL, NULL, 0);
	cr_assert_eq(x.nfile, 1, "regular file goes by splice");
	cr_assert_str_eq(x.out, "23456789");
	done(&x);
	run1(&x, "GET", "/filelike", NULL, NULL, 0);
	cr_assert_eq(x.nfile, 0);
	cr_assert_str_eq(x.out, "0123456789");
	done(&x);
	stop_host();
	unlink(path);
}

Test(wsgi, wsgiref_validator_accepts_the_server)
{
	const char *text = "hello world\nsecond\nthird";
	xreq_t x;

	start_host();
	run1(&x, "POST", "/validated", NULL, text, strlen(text));
	cr_assert_eq(x.head->status, 200, "validator failed (see the error log)");
	cr_assert_str_eq(x.out, "ok:hello world\nsecond\nthird");
	cr_assert_eq(x.end_flags, 0);
	done(&x);
	run1(&x, "GET", "/validated", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	done(&x);
	stop_host();
}

Test(wsgi, errors_stream)
{
	xreq_t x;

	start_host();
	run1(&x, "GET", "/errors", NULL, NULL, 0);
	cr_assert_str_eq(x.out, "logged");
	done(&x);
	stop_host();
}

Test(wsgi, threads_run_concurrently)
{
	xreq_t xs[4];
	uint64_t t0;

	cfg.threads = 2;
	start_host();
	t0 = now_ns();
	submit(&xs[0], "GET", "/sleep", NULL, NULL, 0);
	submit(&xs[1], "GET", "/sleep", NULL, NULL, 0);
	pump(xs, 2);
	cr_assert(now_ns() - t0 < 550000000u, "two 0.3 s requests took %llu ms",
		  (unsigned long long)((now_ns() - t0) / 1000000u));
	cr_assert_str_neq(xs[0].out, xs[1].out, "served by two threads");
	done(&xs[0]);
	done(&xs[1]);
	run1(&xs[2], "GET", "/env", NULL, NULL, 0);
	HAS(&xs[2], "('wsgi.multithread', True)");
	done(&xs[2]);
	stop_host();
}

Test(wsgi, workers_are_separate_interpreters)
{
	xreq_t xs[2];

	cfg.workers = 2;
	start_host();
	/* The hub prefers the worker with fewer in flight: two at once go to both. */
	submit(&xs[0], "GET", "/sleep", NULL, NULL, 0);
	submit(&xs[1], "GET", "/sleep", NULL, NULL, 0);
	cr_assert_neq(xs[0].s->worker_idx, xs[1].s->worker_idx);
	pump(xs, 2);
	done(&xs[0]);
	done(&xs[1]);
	stop_host();
}

#ifndef HB_DEFAULT_INTERPRETER /* sub-interpreters only: not in a build against Python 3.11 */
Test(wsgi, max_requests_replaces_the_interpreter)
{
	char tokens[12][32];
	xreq_t x;
	int changes = 0;

	cfg.max_requests = 3;
	cfg.threads = 2;
	start_host();
	for (int i = 0; i < 12; i++) {
		run1(&x, "GET", "/token", NULL, NULL, 0);
		cr_assert_eq(x.head->status, 200);
		snprintf(tokens[i], sizeof(tokens[i]), "%s", x.out);
		if (i > 0 && strcmp(tokens[i], tokens[i - 1]) != 0)
			changes++;
		done(&x);
		usleep(i % 3 == 2 ? 300000 : 0); /* let the replacement happen */
	}
	cr_assert(changes >= 2, "tokens changed %d times", changes);
	cr_assert_str_eq(tokens[0], tokens[2]);
	cr_assert_str_neq(tokens[2], tokens[3]);
	stop_host();
}
#endif

Test(wsgi, import_failure_is_reported)
{
	cfg.app = "no_such_module_hb:application";
	cr_assert_eq(hb_py_init(), 0);
	hub = hb_hub_new(1, hb_py_max_workers(&cfg));
	cr_assert_eq(hb_py_start(&cfg, hub, &host), -1);
	hb_py_finalize();
	hb_hub_free(hub);
}

Test(wsgi, dotted_callable_and_pinning)
{
	static int cpus[1] = {0};
	xreq_t x;

	cfg.app = "wsgi_app:Holder.Inner.app";
	cfg.cpu_affinity = 1;
	cfg.cpus = cpus;
	cfg.ncpus = 1;
	start_host();
	run1(&x, "GET", "/token", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	done(&x);
	stop_host();
}

Test(wsgi, module_alone_means_application)
{
	xreq_t x;

	cfg.app = "wsgi_app";
	start_host();
	run1(&x, "GET", "/token", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	done(&x);
	stop_host();
}

Test(wsgi, not_callable_is_an_import_failure)
{
	cfg.app = "wsgi_app:TOKEN";
	cr_assert_eq(hb_py_init(), 0);
	hub = hb_hub_new(1, hb_py_max_workers(&cfg));
	cr_assert_eq(hb_py_start(&cfg, hub, &host), -1);
	hb_py_finalize();
	hb_hub_free(hub);
}

Test(wsgi, main_interpreter_mode)
{
	xreq_t x;

	cfg.interpreter = HB_INTERP_MAIN;
	cfg.workers = 2;
	cfg.threads = 2;
	start_host();
	for (int i = 0; i < 4; i++) {
		run1(&x, "GET", "/token", NULL, NULL, 0);
		cr_assert_eq(x.head->status, 200);
		done(&x);
	}
	stop_host();
}

/* An app importing a single-phase extension falls back to the main interpreter. */
#ifndef HB_DEFAULT_INTERPRETER /* sub-interpreters only: not in a build against Python 3.11 */
Test(wsgi, single_phase_extension_falls_back)
{
	char dir[] = "/tmp/hbextXXXXXX", cmd[PATH_MAX * 2], app[PATH_MAX];
	xreq_t x;
	FILE *f;

	cr_assert(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "sh %s/../../integration/ext/build.sh %s >/dev/null 2>&1",
		 srcdir, dir);
	if (system(cmd) != 0)
		cr_skip_test("cannot build the test extension (no compiler?)");
	snprintf(app, sizeof(app), "%s/spapp.py", dir);
	f = fopen(app, "w");
	fputs("import hbtest_singlephase\n"
	      "def application(environ, start_response):\n"
	      "    body = str(hbtest_singlephase.answer()).encode()\n"
	      "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
	      "    return [body]\n",
	      f);
	fclose(f);
	pypath[0] = dir;
	cfg.app = "spapp";
	cfg.workers = 2;
	start_host();
	run1(&x, "GET", "/", NULL, NULL, 0);
	cr_assert_eq(x.head->status, 200);
	cr_assert_str_eq(x.out, "42");
	done(&x);
	stop_host();
}
#endif

/* Replacement under load: nothing dispatched is lost while interpreters come and go. */
Test(wsgi, max_requests_under_load_loses_nothing)
{
	xreq_t xs[MAXREQ];

	cfg.max_requests = 5;
	cfg.max_requests_jitter = 3;
	cfg.workers = 2;
	start_host();
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < MAXREQ; i++)
			submit(&xs[i], "GET", i % 2 ? "/token" : "/write", NULL, NULL, 0);
		pump(xs, MAXREQ);
		for (int i = 0; i < MAXREQ; i++) {
			cr_assert_eq(xs[i].head->status, 200);
			cr_assert_eq(xs[i].end_flags, 0);
			done(&xs[i]);
		}
	}
	stop_host();
}

/* Not a benchmark (STYLE.md): a smoke check that the request loop has no pathological cost. */
Test(wsgi, many_small_requests)
{
	xreq_t x, xs[MAXREQ];
	uint64_t t0;

	start_host();
	t0 = now_ns();
	for (int i = 0; i < 2000; i++) {
		run1(&x, "GET", "/token", NULL, NULL, 0);
		cr_assert_eq(x.head->status, 200);
		done(&x);
	}
	cr_log_info("2000 sequential requests: %llu ms",
		    (unsigned long long)((now_ns() - t0) / 1000000u));
	t0 = now_ns();
	for (int round = 0; round < 250; round++) {
		for (int i = 0; i < MAXREQ; i++)
			submit(&xs[i], "GET", "/token", NULL, NULL, 0);
		pump(xs, MAXREQ);
		for (int i = 0; i < MAXREQ; i++)
			done(&xs[i]);
	}
	cr_log_info("4000 requests, 16 at a time: %llu ms",
		    (unsigned long long)((now_ns() - t0) / 1000000u));
	stop_host();
}

Test(wsgi, client_gone_while_reading_the_body)
{
	static const char part[] = "0123456789";
	xreq_t x;
	hb_msg_t m;

	start_host();
	extra_flags = HB_REQ_CHUNKED | HB_REQ_HAS_BODY;
	submit(&x, "POST", "/readgone", NULL, NULL, 0);
	cr_assert_eq(hb_stream_body_push(x.s, part, 10), 0);
	usleep(100000);
	hb_stream_signal(x.s, HB_ST_CLIENT_GONE);
	x.eof_sent = 1; /* never send EOF: the client is gone */
	while (!x.ended) {
		if (hb_hub_io_pop(hub, 0, &m) == 0)
			on_msg(&x, &m);
		else
			usleep(100);
	}
	cr_assert_eq(x.end_flags, HB_END_ABORT);
	done(&x);
	extra_flags = 0;
	run1(&x, "GET", "/closed", NULL, NULL, 0);
	HAS(&x, "['reset']");
	done(&x);
	stop_host();
}

/* A worker stuck past the deadline is left running and finalization is skipped: no crash. */
Test(wsgi, stop_deadline_leaves_stuck_workers)
{
	xreq_t x;
	uint64_t t0;

	start_host();
	submit(&x, "GET", "/stuck", NULL, NULL, 0);
	usleep(100000);
	t0 = now_ns();
	hb_py_stop(host, now_ns() + 200000000u);
	hb_py_finalize();
	cr_assert(now_ns() - t0 < 1000000000u, "stop waited past its deadline");
	/* Once the stuck request ends (the io side sees it end), stopping again finishes the job:
	 * nothing is left behind (LeakSanitizer checks this process at exit). */
	pump(&x, 1);
	done(&x);
	hb_py_stop(host, now_ns() + 10000000000u);
	hb_py_finalize();
	hb_hub_free(hub);
}
