/* test_h2.c: src/proto/h2 driven by an nghttp2 client session over memory (requests, bodies,
 * flow control, trailers, 1xx, resets, GOAWAY, graceful shutdown, push, h2c upgrade, limits),
 * and the floods as raw frames: each ends in GOAWAY ENHANCE_YOUR_CALM with memory bounded. */
#include <stdio.h>

#include "h2_harness.h"

/* ---- the client ---- */

typedef struct cstream {
	int32_t sid;
	int status, info_status;
	char body[1 << 18];
	size_t blen;
	int trailers;
	bool in_trailers; /* the block being decoded follows the final response */
	char trailer_value[32];
	uint32_t rst;
	bool closed;
	char server[64], ctype[64];
} cstream_t;

typedef struct client {
	nghttp2_session *c;
	cstream_t s[16];
	int n;
	int goaways, promises;
	int32_t goaway_last[4];
	const uint8_t *upload;
	size_t upload_len, upload_off;
} client_t;

static cstream_t *cs(client_t *c, int32_t sid)
{
	for (int i = 0; i < c->n; i++)
		if (c->s[i].sid == sid)
			return &c->s[i];
	cr_assert_lt(c->n, 16);
	c->s[c->n].sid = sid;
	return &c->s[c->n++];
}

static int c_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		    const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	client_t *c = ud;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	cstream_t *st = cs(c, f->hd.stream_id);
	if (nl == 7 && !memcmp(name, ":status", 7)) {
		int v = atoi((const char *)value);
		if (v < 200)
			st->info_status = v;
		else
			st->status = v;
	} else if (st->in_trailers) {
		st->trailers++;
		snprintf(st->trailer_value, sizeof st->trailer_value, "%.*s", (int)vl, value);
	} else if (nl == 6 && !memcmp(name, "server", 6)) {
		snprintf(st->server, sizeof st->server, "%.*s", (int)vl, value);
	} else if (nl == 12 && !memcmp(name, "content-type", 12)) {
		snprintf(st->ctype, sizeof st->ctype, "%.*s", (int)vl, value);
	}
	return 0;
}

static int c_begin(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	if (f->hd.type == NGHTTP2_HEADERS) {
		cstream_t *st = cs(ud, f->hd.stream_id);
		st->in_trailers = st->status != 0;
	}
	return 0;
}

static int c_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d, size_t len,
		  void *ud)
{
	cstream_t *st = cs(ud, sid);
	if (st->blen + len <= sizeof st->body)
		memcpy(st->body + st->blen, d, len);
	st->blen += len;
	return 0;
}

static int c_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
	cstream_t *st = cs(ud, sid);
	st->closed = true;
	st->rst = code;
	return 0;
}

static int c_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	client_t *c = ud;
	if (f->hd.type == NGHTTP2_GOAWAY && c->goaways < 4)
		c->goaway_last[c->goaways++] = f->goaway.last_stream_id;
	if (f->hd.type == NGHTTP2_PUSH_PROMISE)
		c->promises++;
	return 0;
}

static void client_init(client_t *c, bool auto_window)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *o;
	memset(c, 0, sizeof *c);
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, c_begin);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
	nghttp2_option_new(&o);
	nghttp2_option_set_no_auto_window_update(o, !auto_window);
	cr_assert_eq(nghttp2_session_client_new2(&c->c, cb, c, o), 0);
	nghttp2_option_del(o);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(c->c, NGHTTP2_FLAG_NONE, NULL, 0);
}

/* Moves bytes both ways until neither side has anything to say. */
static void pump(app_t *a, client_t *c)
{
	for (int round = 0; round < 10000; round++) {
		const uint8_t *p;
		ssize_t n = hb_h2_send(a->e, &p), m, total = 0;
		cr_assert_geq(n, 0);
		if (n > 0)
			cr_assert_eq(nghttp2_session_mem_recv(c->c, p, (size_t)n), n);
		total += n;
		while ((m = nghttp2_session_mem_send(c->c, &p)) > 0) {
			hb_h2_recv(a->e, p, (size_t)m, a->now, NULL);
			total += m;
		}
		if (total == 0)
			return;
	}
	cr_assert_fail("pump never settled");
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)n, (uint8_t *)v, sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE     \
	}

static ssize_t c_upload(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *ud)
{
	client_t *c = ud;
	size_t n = c->upload_len - c->upload_off;
	if (n > len)
		n = len;
	memcpy(buf, c->upload + c->upload_off, n);
	c->upload_off += n;
	if (c->upload_off == c->upload_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int32_t request(client_t *c, const char *method, const char *path, bool body)
{
	nghttp2_nv nv[] = {{(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
			   NV(":scheme", "http"),
			   {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
			   NV(":authority", "example.org"),
			   NV("x-foo", "bar")};
	nghttp2_data_provider d = {.read_callback = c_upload};
	int32_t sid = nghttp2_submit_request(c->c, NULL, nv, 5, body ? &d : NULL, NULL);
	cr_assert_gt(sid, 0);
	return sid;
}

static sstream_t *only(app_t *a, int32_t sid)
{
	sstream_t *st = NULL;
	for (int i = 0; i < MAXS; i++)
		if (a->s[i].used && a->s[i].sid == sid)
			st = &a->s[i];
	cr_assert_not_null(st, "stream %d never reached the app", sid);
	return st;
}

/* ---- exchanges ---- */

/* The engine with an app that answers only when the test says (a.respond off), and a client
 * that opens its windows as it reads. */
static void start_held(app_t *a, client_t *c)
{
	app_init(a, NULL);
	a->respond = false;
	client_init(c, true);
}

static void stop(app_t *a, client_t *c)
{
	nghttp2_session_del(c->c);
	app_free(a);
}

Test(h2, get_becomes_a_request_and_gets_the_response)
{
	app_t a;
	client_t c;
	app_init(&a, NULL);
	client_init(&c, true);
	int32_t sid = request(&c, "GET", "/a/b?x=1&y", false);
	pump(&a, &c);
	hb_request_t *r = only(&a, sid)->req;
	cr_assert_eq(r->method_len, 3);
	cr_assert(!memcmp(r->method, "GET", 3));
	cr_assert(!memcmp(r->path, "/a/b", r->path_len) && r->path_len == 4);
	cr_assert(!memcmp(r->query, "x=1&y", r->query_len) && r->query_len == 5);
	cr_assert(!memcmp(r->target, "/a/b?x=1&y", r->target_len));
	cr_assert_eq(r->http_major, 2);
	cr_assert_eq(r->content_length, -1);
	cr_assert_not(r->flags & HB_REQ_HAS_BODY);
	const hb_header_t *h = hb_request_header(r, "host");
	cr_assert(h && h->value_len == 11 && !memcmp(h->value, "example.org", 11));
	h = hb_request_header(r, "x-foo");
	cr_assert(h && h->value_len == 3 && !memcmp(h->value, "bar", 3));
	cstream_t *st = cs(&c, sid);
	cr_assert_eq(st->status, 200);
	cr_assert_eq(st->blen, 5);
	cr_assert(!memcmp(st->body, "hello", 5));
	cr_assert_str_eq(st->server, "hornbeam-uring");
	cr_assert_str_eq(st->ctype, "text/plain", "names are lower-cased: %s", st->ctype);
	cr_assert(st->closed && st->rst == 0);
	cr_assert(only(&a, sid)->closed);
	cr_assert_eq(only(&a, sid)->close_code, HB_H2_NO_ERROR);
	cr_assert_eq(hb_h2_nstreams(a.e), 0);
	stop(&a, &c);
}

Test(h2, post_body_larger_than_the_window_arrives_whole)
{
	app_t a;
	client_t c;
	static uint8_t up[200000];
	for (size_t i = 0; i < sizeof up; i++)
		up[i] = (uint8_t)(i * 7);
	app_init(&a, NULL);
	client_init(&c, true);
	c.upload = up;
	c.upload_len = sizeof up;
	int32_t sid = request(&c, "POST", "/up", true);
	pump(&a, &c);
	sstream_t *st = only(&a, sid);
	cr_assert(st->req->flags & HB_REQ_HAS_BODY);
	cr_assert(st->req->flags & HB_REQ_CHUNKED, "no content-length: length unknown");
	cr_assert_eq(st->inlen, sizeof up);
	cr_assert(!memcmp(st->in, up, sizeof up));
	cr_assert(st->ended);
	cr_assert_eq(cs(&c, sid)->status, 200);
	stop(&a, &c);
}

Test(h2, an_app_that_does_not_read_stops_only_its_own_stream)
{
	app_t a;
	client_t c;
	static uint8_t up[300000];
	app_init(&a, NULL);
	a.consume = false;
	client_init(&c, true);
	c.upload = up;
	c.upload_len = sizeof up;
	int32_t s1 = request(&c, "POST", "/slow", true);
	pump(&a, &c);
	cr_assert_eq(only(&a, s1)->inlen, 65535, "exactly one stream window: %zu",
		     only(&a, s1)->inlen);
	int32_t s3 = request(&c, "GET", "/fast", false);
	pump(&a, &c);
	cr_assert_eq(cs(&c, s3)->status, 200, "the other stream is served");
	cr_assert_eq(only(&a, s1)->inlen, 65535);
	/* the app reads: the window reopens */
	hb_h2_consume(a.e, s1, only(&a, s1)->inlen);
	pump(&a, &c);
	cr_assert_gt(only(&a, s1)->inlen, 65535);
	stop(&a, &c);
}

Test(h2, deferred_body_resumes_when_the_app_posts)
{
	app_t a;
	client_t c;
	start_held(&a, &c);
	int32_t sid = request(&c, "GET", "/", false);
	pump(&a, &c);
	sstream_t *st = only(&a, sid);
	app_respond(&a, st, "", 0, false);
	pump(&a, &c);
	cr_assert_eq(cs(&c, sid)->status, 200);
	cr_assert_not(cs(&c, sid)->closed);
	st->out = (const uint8_t *)"later";
	st->outlen = 5;
	st->out_eof = true;
	cr_assert_eq(hb_h2_resume(a.e, sid), 0);
	pump(&a, &c);
	cr_assert_eq(cs(&c, sid)->blen, 5);
	cr_assert(cs(&c, sid)->closed);
	stop(&a, &c);
}

Test(h2, send_window_says_how_much_a_stream_may_send)
{
	app_t a;
	client_t c;
	static uint8_t big[100000];
	app_init(&a, NULL);
	a.respond = false;
	client_init(&c, false); /* the client never opens its windows */
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1000};
	nghttp2_submit_settings(c.c, NGHTTP2_FLAG_NONE, &iv, 1);
	int32_t s1 = request(&c, "GET", "/big", false);
	pump(&a, &c);
	cr_assert_eq(hb_h2_send_window(a.e, s1), 1000);
	app_respond(&a, only(&a, s1), big, sizeof big, true);
	pump(&a, &c);
	cr_assert_eq(hb_h2_send_window(a.e, s1), 0);
	cr_assert_eq(only(&a, s1)->pulled, 1000, "pulled only what the window allows");
	int32_t s3 = request(&c, "GET", "/small", false);
	pump(&a, &c);
	app_respond(&a, only(&a, s3), HELLO, 5, true);
	pump(&a, &c);
	cr_assert_eq(cs(&c, s3)->blen, 5, "a stalled stream does not stall the others");
	cr_assert(cs(&c, s3)->closed);
	nghttp2_session_consume(c.c, s1, 1000);
	pump(&a, &c);
	cr_assert_eq(only(&a, s1)->pulled, 2000);
	stop(&a, &c);
}

Test(h2, trailers_and_early_hints)
{
	app_t a;
	client_t c;
	start_held(&a, &c);
	int32_t sid = request(&c, "GET", "/", false);
	pump(&a, &c);
	hb_header_t link = {"Link", "</s.css>; rel=preload", 4, 21};
	cr_assert_eq(hb_h2_submit_info(a.e, sid, 103, &link, 1), 0);
	hb_header_t tr = {"X-Checksum", "abc123", 10, 6};
	cr_assert_eq(hb_h2_submit_trailers(a.e, sid, &tr, 1), 0);
	app_respond(&a, only(&a, sid), HELLO, 5, true);
	pump(&a, &c);
	cstream_t *st = cs(&c, sid);
	cr_assert_eq(st->info_status, 103);
	cr_assert_eq(st->status, 200);
	cr_assert_eq(st->blen, 5);
	cr_assert_eq(st->trailers, 1);
	cr_assert_str_eq(st->trailer_value, "abc123");
	cr_assert(st->closed && st->rst == 0);
	stop(&a, &c);
}

Test(h2, client_reset_closes_the_stream_by_the_peer)
{
	app_t a;
	client_t c;
	start_held(&a, &c);
	int32_t sid = request(&c, "GET", "/", false);
	pump(&a, &c);
	nghttp2_submit_rst_stream(c.c, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
	pump(&a, &c);
	sstream_t *st = only(&a, sid);
	cr_assert(st->closed);
	cr_assert_eq(st->close_code, HB_H2_CANCEL);
	cr_assert(st->by_peer);
	cr_assert_eq(hb_h2_nstreams(a.e), 0);
	stop(&a, &c);
}

Test(h2, app_reset_is_not_the_clients_fault)
{
	app_t a;
	client_t c;
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	lim.max_resets = 3;
	app_init(&a, &lim);
	a.respond = false;
	client_init(&c, true);
	for (int i = 0; i < 10; i++) {
		int32_t sid = request(&c, "GET", "/", false);
		pump(&a, &c);
		cr_assert_eq(hb_h2_reset(a.e, sid, HB_H2_INTERNAL_ERROR), 0);
		pump(&a, &c);
		cr_assert_eq(cs(&c, sid)->rst, HB_H2_INTERNAL_ERROR);
		cr_assert_not(only(&a, sid)->by_peer);
	}
	cr_assert_eq(c.goaways, 0);
	cr_assert(hb_h2_want_read(a.e));
	stop(&a, &c);
}

Test(h2, client_goaway_is_reported)
{
	app_t a;
	client_t c;
	app_init(&a, NULL);
	client_init(&c, true);
	pump(&a, &c);
	nghttp2_submit_goaway(c.c, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
	pump(&a, &c);
	cr_assert_eq(a.goaways, 1);
	cr_assert_eq(a.goaway_code, 0);
	cr_assert_not(hb_h2_want_read(a.e));
	stop(&a, &c);
}

Test(h2, graceful_shutdown_sends_two_goaways_and_lets_streams_finish)
{
	app_t a;
	client_t c;
	start_held(&a, &c);
	int32_t s1 = request(&c, "GET", "/", false);
	pump(&a, &c);
	hb_h2_shutdown(a.e);
	pump(&a, &c);
	cr_assert_eq(c.goaways, 2);
	cr_assert_eq(c.goaway_last[0], INT32_MAX, "first: 2^31-1");
	cr_assert_eq(c.goaway_last[1], s1, "then: the last stream accepted");
	cr_assert(hb_h2_want_read(a.e), "a stream is still in flight");
	app_respond(&a, only(&a, s1), HELLO, 5, true);
	pump(&a, &c);
	cr_assert_eq(cs(&c, s1)->status, 200);
	cr_assert_eq(cs(&c, s1)->blen, 5);
	cr_assert_not(hb_h2_want_read(a.e), "done: close");
	cr_assert_not(hb_h2_want_write(a.e));
	stop(&a, &c);
}

/* ---- push ---- */

static int32_t try_push(bool enabled, bool client_allows, hb_request_t **req, client_t *c, app_t *a)
{
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	lim.push = enabled;
	app_init(a, &lim);
	a->respond = false;
	client_init(c, true);
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_ENABLE_PUSH, client_allows};
	nghttp2_submit_settings(c->c, NGHTTP2_FLAG_NONE, &iv, 1);
	int32_t sid = request(c, "GET", "/page", false);
	pump(a, c);
	hb_header_t h = {"Accept", "text/css", 6, 8};
	return hb_h2_push(a->e, sid, "/s.css?v=1", 10, &h, 1, req);
}

Test(h2, push_promises_a_get_when_enabled_and_allowed)
{
	app_t a;
	client_t c;
	hb_request_t *req = NULL;
	int32_t psid = try_push(true, true, &req, &c, &a);
	cr_assert_eq(psid, 2);
	cr_assert_not_null(req);
	cr_assert(!memcmp(req->method, "GET", 3));
	cr_assert(req->path_len == 6 && !memcmp(req->path, "/s.css", 6));
	cr_assert(req->query_len == 3 && !memcmp(req->query, "v=1", 3));
	const hb_header_t *h = hb_request_header(req, "host");
	cr_assert(h && h->value_len == 11 && !memcmp(h->value, "example.org", 11));
	cr_assert_not_null(hb_request_header(req, "accept"));
	/* serve the pushed stream, then the parent */
	cr_assert_eq(on_request(&a, psid, req), 0);
	app_respond(&a, only(&a, psid), "css", 3, true);
	app_respond(&a, only(&a, 1), HELLO, 5, true);
	pump(&a, &c);
	cr_assert_eq(c.promises, 1);
	cr_assert_eq(cs(&c, psid)->status, 200);
	cr_assert_eq(cs(&c, psid)->blen, 3);
	cr_assert_eq(cs(&c, 1)->blen, 5);
	cr_assert(only(&a, psid)->closed);
	stop(&a, &c);
}

Test(h2, push_is_refused_when_off_or_disabled_by_the_client)
{
	app_t a;
	client_t c;
	hb_request_t *req = NULL;
	cr_assert_eq(try_push(false, true, &req, &c, &a), HB_H2_E_REFUSED, "h2_push off");
	stop(&a, &c);
	cr_assert_eq(try_push(true, false, &req, &c, &a), HB_H2_E_REFUSED, "ENABLE_PUSH 0");
	cr_assert_null(req);
	cr_assert_not(hb_h2_can_push(a.e));
	stop(&a, &c);
}

Test(h2, can_push_follows_config_client_settings_and_the_end)
{
	app_t a;
	client_t c;
	hb_request_t *req = NULL;
	int32_t psid = try_push(true, true, &req, &c, &a);
	cr_assert_gt(psid, 0);
	cr_assert_eq(on_request(&a, psid, req), 0);
	cr_assert(hb_h2_can_push(a.e));
	hb_h2_shutdown(a.e);
	cr_assert_not(hb_h2_can_push(a.e), "no promises once the GOAWAY went out");
	stop(&a, &c);
	cr_assert_eq(try_push(false, true, &req, &c, &a), HB_H2_E_REFUSED);
	cr_assert_not(hb_h2_can_push(a.e));
	stop(&a, &c);
}

Test(h2, pushes_stop_at_the_clients_concurrent_stream_limit)
{
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	lim.push = 1;
	app_t a;
	client_t c;
	app_init(&a, &lim);
	a.respond = false;
	client_init(&c, true);
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 2};
	nghttp2_submit_settings(c.c, NGHTTP2_FLAG_NONE, &iv, 1);
	int32_t sid = request(&c, "GET", "/page", false);
	pump(&a, &c);
	hb_request_t *r1 = NULL, *r2 = NULL, *r3 = NULL;
	int32_t p1 = hb_h2_push(a.e, sid, "/a.css", 6, NULL, 0, &r1);
	int32_t p2 = hb_h2_push(a.e, sid, "/b.css", 6, NULL, 0, &r2);
	cr_assert(p1 > 0 && p2 > 0);
	cr_assert_eq(hb_h2_push(a.e, sid, "/c.css", 6, NULL, 0, &r3), HB_H2_E_REFUSED,
		     "a third promised stream is over the client's limit of 2");
	cr_assert_null(r3);
	/* once a promised stream is done, there is room for another */
	cr_assert_eq(on_request(&a, p1, r1), 0);
	app_respond(&a, only(&a, p1), "a", 1, true);
	pump(&a, &c);
	cr_assert(only(&a, p1)->closed);
	int32_t p3 = hb_h2_push(a.e, sid, "/c.css", 6, NULL, 0, &r3);
	cr_assert_gt(p3, p2);
	cr_assert_eq(on_request(&a, p2, r2), 0);
	cr_assert_eq(on_request(&a, p3, r3), 0);
	stop(&a, &c);
}

/* ---- h2c ---- */

Test(h2, upgrade_answers_the_http1_request_on_stream_1)
{
	app_t a;
	client_t c;
	uint8_t payload[64];
	char b64[128];
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 50};
	ssize_t n = nghttp2_pack_settings_payload(payload, sizeof payload, &iv, 1);
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (ssize_t i = 0; i < n; i += 3) { /* base64url, no padding */
		uint32_t v = (uint32_t)payload[i] << 16 | (i + 1 < n ? payload[i + 1] << 8 : 0) |
			     (i + 2 < n ? payload[i + 2] : 0);
		for (int k = 0; k < 4 && (k < 2 || i + k - 1 < n); k++)
			b64[o++] = al[v >> (18 - 6 * k) & 63];
	}
	app_init(&a, NULL);
	client_init(&c, true);
	cr_assert_eq(nghttp2_session_upgrade2(c.c, payload, (size_t)n, 0, NULL), 0);
	hb_header_t host = {"Host", "example.org", 4, 11};
	hb_request_t h1 = {.headers = &host, .nheaders = 1, .scheme = "http"};
	sstream_t *st = &a.s[0];
	*st = (sstream_t){.used = true, .sid = 1};
	cr_assert_eq(hb_h2_upgrade(a.e, b64, o, &h1, st), 0);
	cr_assert_eq(hb_h2_upgrade(a.e, "!!", 2, &h1, st), HB_H2_E_PROTOCOL);
	app_respond(&a, st, HELLO, 5, true);
	pump(&a, &c);
	cr_assert_eq(cs(&c, 1)->status, 200);
	cr_assert_eq(cs(&c, 1)->blen, 5);
	cr_assert(st->closed);
	stop(&a, &c);
}

/* ---- limits ---- */

Test(h2, settings_carry_the_configured_limits)
{
	app_t a;
	client_t c;
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	cr_assert_eq(lim.max_concurrent_streams, 100);
	cr_assert_eq(lim.push, 0);
	lim.max_concurrent_streams = 7;
	lim.initial_window = 100000;
	lim.max_frame_size = 32768;
	lim.max_header_list = 8192;
	app_init(&a, &lim);
	client_init(&c, true);
	pump(&a, &c);
	nghttp2_session *s = c.c;
	cr_assert_eq(
		nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 7);
	cr_assert_eq(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE),
		     100000);
	cr_assert_eq(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_FRAME_SIZE),
		     32768);
	cr_assert_eq(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE),
		     8192);
	cr_assert_geq(nghttp2_session_get_remote_window_size(s), 1 << 20, "connection window");
	stop(&a, &c);
}

Test(h2, streams_past_max_concurrent_are_refused)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	lim.max_concurrent_streams = 2;
	app_init(&a, &lim);
	a.respond = false;
	preface(&b);
	get(&b, 1, "GET", F_ES);
	get(&b, 3, "GET", F_ES);
	get(&b, 5, "GET", F_ES);
	feed(&a, &b, 0, &o, NULL);
	cr_assert_eq(a.nreq, 2);
	cr_assert(rst_code_of(&o, 5) == HB_H2_REFUSED_STREAM ||
		  (o.goaways && o.goaway_code == HB_H2_PROTOCOL_ERROR));
	app_free(&a);
	free(b.b);
}

Test(h2, body_over_max_body_is_413_or_reset)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0}, hb = {0};
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	lim.max_body = 10;
	app_init(&a, &lim);
	preface(&b);
	req_block(&hb, "POST", "/");
	lit(&hb, "content-length", "11");
	headers(&b, 1, F_EH, &hb);
	get(&b, 3, "POST", 0); /* no content-length: reset once past the limit */
	frame(&b, T_DATA, 0, 3, "0123456789", 10);
	frame(&b, T_DATA, 0, 3, "x", 1);
	feed(&a, &b, 0, &o, NULL);
	cr_assert_eq(a.nreq, 1, "the 413 never reached the app");
	cr_assert_eq(o.headers, 1, "the 413");
	cr_assert_eq(only(&a, 3)->inlen, 10);
	cr_assert_eq(rst_code_of(&o, 3), HB_H2_CANCEL);
	cr_assert(only(&a, 3)->closed);
	app_free(&a);
	free(b.b);
	free(hb.b);
}

Test(h2, refused_by_the_app_is_refused_stream)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	app_init(&a, NULL);
	a.refuse = true;
	preface(&b);
	get(&b, 1, "GET", F_ES);
	feed(&a, &b, 0, &o, NULL);
	cr_assert_eq(rst_code_of(&o, 1), HB_H2_REFUSED_STREAM);
	app_free(&a);
	free(b.b);
}

Test(h2, is_preface)
{
	cr_assert_eq(hb_h2_is_preface(HB_H2_PREFACE "xx", 26), 1);
	cr_assert_eq(hb_h2_is_preface("PRI * HT", 8), -1);
	cr_assert_eq(hb_h2_is_preface("GET / HTTP/1.1\r\n", 16), 0);
}

Test(h2, free_with_streams_open_closes_them_for_the_caller)
{
	app_t a;
	client_t c;
	start_held(&a, &c);
	request(&c, "GET", "/1", false);
	request(&c, "GET", "/2", false);
	pump(&a, &c);
	cr_assert_eq(hb_h2_nstreams(a.e), 2);
	cr_assert_gt(hb_h2_mem(a.e), 0);
	hb_h2_free(a.e);
	a.e = NULL;
	cr_assert_eq(a.nclosed, 2);
	cr_assert_eq(a.s[0].close_code, HB_H2_CANCEL);
	nghttp2_session_del(c.c);
	for (int i = 0; i < MAXS; i++) {
		free(a.s[i].req);
		free(a.s[i].in);
	}
}
