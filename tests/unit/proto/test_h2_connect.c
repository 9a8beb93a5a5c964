/* test_h2_connect.c: the engine's side of RFC 8441 (WebSocket over HTTP/2): the SETTINGS that
 * offers extended CONNECT, an extended CONNECT becoming a request with its :protocol, its DATA
 * as a tunnel (no max_body), the malformed forms reset with PROTOCOL_ERROR, a plain CONNECT
 * still refused, and a request the caller answers alone. Raw client frames (h2_harness.h). */
#include "h2_harness.h"

enum { S_ENABLE_CONNECT_PROTOCOL = 0x8 };

/* The value of a setting in the server's first SETTINGS frame; -1 when absent. */
static int64_t server_setting(app_t *a, uint16_t id)
{
	const uint8_t *p;
	ssize_t n = hb_h2_send(a->e, &p);
	cr_assert_gt(n, 9);
	cr_assert_eq(p[3], T_SETTINGS);
	size_t len = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
	for (size_t i = 9; i + 6 <= 9 + len; i += 6)
		if (((uint16_t)p[i] << 8 | p[i + 1]) == id)
			return rd32(p + i + 2);
	return -1;
}

/* An extended CONNECT on sid from the fields kv (name, value pairs), without END_STREAM. */
static void block(buf_t *b, uint32_t sid, const char *const *kv, size_t n)
{
	buf_t hb = {0};
	for (size_t i = 0; i + 1 < n; i += 2)
		lit(&hb, kv[i], kv[i + 1]);
	headers(b, sid, F_EH, &hb);
	free(hb.b);
}

static const char *const WS[] = {":method",
				 "CONNECT",
				 ":protocol",
				 "websocket",
				 ":scheme",
				 "https",
				 ":path",
				 "/chat?room=1",
				 ":authority",
				 "localhost",
				 "sec-websocket-version",
				 "13"};

Test(h2_connect, settings_offer_extended_connect_unless_off)
{
	app_t a;
	hb_h2_limits_t lim;

	app_init(&a, NULL);
	cr_assert_eq(server_setting(&a, S_ENABLE_CONNECT_PROTOCOL), 1);
	app_free(&a);
	hb_h2_limits_default(&lim);
	lim.connect_protocol = 0;
	app_init(&a, &lim);
	cr_assert_eq(server_setting(&a, S_ENABLE_CONNECT_PROTOCOL), -1);
	app_free(&a);
}

Test(h2_connect, extended_connect_is_a_request_with_its_protocol)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	hb_h2_limits_t lim;
	size_t plen;

	hb_h2_limits_default(&lim);
	lim.max_body = 10; /* a tunnel's bytes are no body: not held to it */
	app_init(&a, &lim);
	a.respond = false;
	preface(&b);
	block(&b, 1, WS, sizeof WS / sizeof WS[0]);
	frame(&b, T_DATA, 0, 1, "0123456789", 10);
	frame(&b, T_DATA, 0, 1, "abcdefghij", 10);
	get(&b, 3, "GET", F_ES);
	feed(&a, &b, 0, &o, NULL);
	cr_assert_eq(a.nreq, 2);
	sstream_t *st = slot(&a, 1);
	cr_assert_not_null(st);
	hb_request_t *r = st->req;
	cr_assert(r->method_len == 7 && !memcmp(r->method, "CONNECT", 7));
	cr_assert(r->path_len == 5 && !memcmp(r->path, "/chat", 5));
	cr_assert(r->query_len == 6 && !memcmp(r->query, "room=1", 6));
	const hb_header_t *h = hb_request_header(r, "host");
	cr_assert(h && h->value_len == 9 && !memcmp(h->value, "localhost", 9));
	cr_assert_null(hb_request_header(r, ":protocol"), "pseudo-headers stay out of the list");
	cr_assert(r->flags & HB_REQ_HAS_BODY);
	const char *p = hb_h2_stream_protocol(a.e, 1, &plen);
	cr_assert(p && plen == 9 && !memcmp(p, "websocket", 9));
	cr_assert_null(hb_h2_stream_protocol(a.e, 3, &plen), "a GET has no :protocol");
	cr_assert_eq(plen, 0);
	cr_assert_eq(st->inlen, 20);
	cr_assert_eq(rst_code_of(&o, 1), -1, "20 bytes over max_body: still not reset");
	cr_assert_not(st->ended);
	app_free(&a);
	free(b.b);
}

static const char *const NO_PATH[] = {":method", "CONNECT", ":protocol",  "websocket",
				      ":scheme", "http",    ":authority", "localhost"};
static const char *const NO_SCHEME[] = {":method", "CONNECT", ":protocol",  "websocket",
					":path",   "/",	      ":authority", "localhost"};
static const char *const NO_AUTHORITY[] = {":method", "CONNECT", ":protocol", "websocket",
					   ":scheme", "http",	 ":path",     "/"};
static const char *const NOT_CONNECT[] = {":method",	"GET",	    ":protocol", "websocket",
					  ":scheme",	"http",	    ":path",	 "/",
					  ":authority", "localhost"};
static const char *const EMPTY_PROTOCOL[] = {":method",	   "CONNECT",  ":protocol", "",
					     ":scheme",	   "http",     ":path",	    "/",
					     ":authority", "localhost"};
static const char *const TUNNEL[] = {":method", "CONNECT", ":authority", "example.org:443"};

static void refused(const char *const *kv, size_t n, int connect_protocol)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	hb_h2_limits_t lim;

	hb_h2_limits_default(&lim);
	lim.connect_protocol = connect_protocol;
	app_init(&a, &lim);
	preface(&b);
	block(&b, 1, kv, n);
	get(&b, 3, "GET", F_ES);
	feed(&a, &b, 0, &o, NULL);
	cr_assert_eq(rst_code_of(&o, 1), HB_H2_PROTOCOL_ERROR, "%s %s", kv[0], kv[1]);
	cr_assert_eq(a.nreq, 1, "only the GET reached the app");
	cr_assert_eq(o.goaways, 0, "a stream error, not the connection's");
	app_free(&a);
	free(b.b);
}

#define REFUSED(kv, on) refused(kv, sizeof kv / sizeof kv[0], on)

Test(h2_connect, malformed_extended_connect_is_reset)
{
	REFUSED(NO_PATH, 1);
	REFUSED(NO_SCHEME, 1);
	REFUSED(NO_AUTHORITY, 1);
	REFUSED(NOT_CONNECT, 1);
	REFUSED(EMPTY_PROTOCOL, 1);
}

Test(h2_connect, protocol_not_offered_is_reset)
{
	REFUSED(WS, 0);
}

Test(h2_connect, plain_connect_stays_refused)
{
	REFUSED(TUNNEL, 1);
	REFUSED(TUNNEL, 0);
}

/* ---- a request the caller answers alone (on_request > 0) ---- */

static int answer_alone(void *ud, int32_t sid, hb_request_t *req)
{
	app_t *a = ud;
	hb_response_t r = {.status = 426, .content_length = -1};
	a->nreq++;
	free(req);
	cr_assert_eq(hb_h2_submit_response(a->e, sid, &r, NULL, 0), 0);
	return 1;
}

static int no_data(void *ud, int32_t sid, void *sud, const uint8_t *d, size_t len)
{
	cr_assert_fail("DATA of an answered stream reached the caller");
	return 0;
}

static void no_end(void *ud, int32_t sid, void *sud)
{
	cr_assert_fail("END_STREAM of an answered stream reached the caller");
}

static void no_close(void *ud, int32_t sid, void *sud, uint32_t code, int by_peer)
{
	cr_assert_fail("on_close of an answered stream");
}

Test(h2_connect, a_request_answered_alone_gets_no_more_events)
{
	static const hb_h2_callbacks_t cb = {answer_alone, no_data,	 no_end,
					     no_close,	   on_read_body, on_goaway};
	app_t a;
	out_t o = {0};
	buf_t b = {0};

	memset(&a, 0, sizeof a);
	a.e = hb_h2_new(NULL, &cb, &a);
	cr_assert_not_null(a.e);
	preface(&b);
	block(&b, 1, WS, sizeof WS / sizeof WS[0]);
	frame(&b, T_DATA, F_ES, 1, "late", 4);
	feed(&a, &b, 0, &o, NULL);
	cr_assert_eq(a.nreq, 1);
	cr_assert_eq(o.headers, 1, "the 426");
	cr_assert_eq(o.goaways, 0);
	cr_assert_eq(hb_h2_nstreams(a.e), 0, "the stream is over");
	hb_h2_free(a.e);
	free(b.b);
}
