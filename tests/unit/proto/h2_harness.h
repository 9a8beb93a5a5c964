/* h2_harness.h: drives src/proto/h2 for the unit tests: a scripted app on the server side, and
 * either an nghttp2 *client* session over memory or raw frame bytes on the client side, with
 * the server's output parsed back into frames. Header-only (static functions) for test_h2*.c. */
#ifndef HB_TESTS_H2_HARNESS_H
#define HB_TESTS_H2_HARNESS_H

#include <criterion/criterion.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h2.h"

#define MAXS 64
#define BODY_MAX (1u << 20)

/* ---- the server side: engine + scripted app ---- */

typedef struct sstream {
	bool used;
	int32_t sid;
	hb_request_t *req;
	uint8_t *in; /* request body received */
	size_t inlen;
	bool ended, closed, by_peer;
	uint32_t close_code;
	const uint8_t *out; /* response body to serve */
	size_t outlen, outoff;
	bool out_eof;  /* after out: the end */
	size_t pulled; /* bytes handed to the engine */
} sstream_t;

typedef struct app {
	hb_h2_t *e;
	sstream_t s[MAXS];
	int nreq, nclosed;
	bool consume; /* credit body bytes to the engine as they arrive */
	bool respond; /* answer each request at its end: 200 + body "hello" */
	bool refuse;  /* on_request returns -1 */
	int goaways;  /* GOAWAY frames from the client */
	uint32_t goaway_code;
	uint64_t now;
} app_t;

static sstream_t *slot(app_t *a, int32_t sid)
{
	for (int i = 0; i < MAXS; i++)
		if (a->s[i].used && a->s[i].sid == sid && !a->s[i].closed)
			return &a->s[i];
	return NULL;
}

static const char HELLO[] = "hello";

static void app_respond(app_t *a, sstream_t *st, const void *body, size_t len, bool eof)
{
	hb_header_t h[] = {{"Content-Type", "text/plain", 12, 10}};
	hb_response_t r = {.status = 200, .headers = h, .nheaders = 1, .content_length = -1};
	st->out = body;
	st->outlen = len;
	st->out_eof = eof;
	cr_assert_eq(hb_h2_submit_response(a->e, st->sid, &r, "Thu, 01 Jan 2026 00:00:00 GMT", 1),
		     0);
}

static int on_request(void *ud, int32_t sid, hb_request_t *req)
{
	app_t *a = ud;
	a->nreq++;
	if (a->refuse) {
		free(req);
		return -1;
	}
	for (int i = 0; i < MAXS; i++) {
		if (a->s[i].used)
			continue;
		a->s[i] = (sstream_t){.used = true, .sid = sid, .req = req};
		a->s[i].in = malloc(BODY_MAX);
		hb_h2_set_stream_data(a->e, sid, &a->s[i]);
		return 0;
	}
	free(req);
	return -1;
}

static int on_data(void *ud, int32_t sid, void *sud, const uint8_t *d, size_t len)
{
	app_t *a = ud;
	sstream_t *st = sud;
	cr_assert_not_null(st);
	cr_assert_eq(st->sid, sid);
	if (st->inlen + len <= BODY_MAX)
		memcpy(st->in + st->inlen, d, len);
	st->inlen += len;
	if (a->consume)
		hb_h2_consume(a->e, sid, len);
	return 0;
}

static void on_end_stream(void *ud, int32_t sid, void *sud)
{
	app_t *a = ud;
	sstream_t *st = sud;
	st->ended = true;
	if (a->respond)
		app_respond(a, st, HELLO, 5, true);
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code, int by_peer)
{
	app_t *a = ud;
	sstream_t *st = sud;
	cr_assert_not_null(st, "on_close without stream data (sid %d)", sid);
	st->closed = true;
	st->close_code = code;
	st->by_peer = by_peer;
	a->nclosed++;
}

static ssize_t on_read_body(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t len, int *eof)
{
	sstream_t *st = sud;
	size_t n = st->outlen - st->outoff;
	if (n > len)
		n = len;
	memcpy(buf, st->out + st->outoff, n);
	st->outoff += n;
	st->pulled += n;
	*eof = st->outoff == st->outlen && st->out_eof;
	return (ssize_t)n;
}

static void on_goaway(void *ud, uint32_t code, int32_t last)
{
	app_t *a = ud;
	a->goaways++;
	a->goaway_code = code;
}

static const hb_h2_callbacks_t app_cb = {on_request, on_data,	   on_end_stream,
					 on_close,   on_read_body, on_goaway};

static void app_init(app_t *a, const hb_h2_limits_t *lim)
{
	memset(a, 0, sizeof *a);
	a->consume = true;
	a->respond = true;
	a->e = hb_h2_new(lim, &app_cb, a);
	cr_assert_not_null(a->e);
}

static void app_free(app_t *a)
{
	hb_h2_free(a->e);
	for (int i = 0; i < MAXS; i++) {
		free(a->s[i].req);
		free(a->s[i].in);
	}
}

/* ---- raw client bytes ---- */

typedef struct buf {
	uint8_t *b;
	size_t n, cap;
} buf_t;

static void put(buf_t *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->b = realloc(b->b, b->cap);
	}
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put8(buf_t *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put32(buf_t *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	put(b, x, 4);
}

static void frame(buf_t *b, uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t n)
{
	uint8_t h[9] = {
		(uint8_t)(n >> 16),   (uint8_t)(n >> 8),    (uint8_t)n,		 type,	      flags,
		(uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
	put(b, h, 9);
	if (n)
		put(b, p, n);
}

/* HPACK literal without indexing, new name, no Huffman (RFC 7541 6.2.2); lengths < 127. */
static void lit(buf_t *hb, const char *name, const char *value)
{
	put8(hb, 0);
	put8(hb, (uint8_t)strlen(name));
	put(hb, name, strlen(name));
	put8(hb, (uint8_t)strlen(value));
	put(hb, value, strlen(value));
}

static void req_block(buf_t *hb, const char *method, const char *path)
{
	lit(hb, ":method", method);
	lit(hb, ":scheme", "http");
	lit(hb, ":path", path);
	lit(hb, ":authority", "localhost");
}

enum {
	T_DATA,
	T_HEADERS,
	T_PRIORITY,
	T_RST,
	T_SETTINGS,
	T_PUSH,
	T_PING,
	T_GOAWAY,
	T_WINDOW,
	T_CONT
};
enum { F_ES = 1, F_ACK = 1, F_EH = 4, F_PADDED = 8, F_PRIO = 0x20 };

static void headers(buf_t *b, uint32_t sid, uint8_t flags, const buf_t *hb)
{
	frame(b, T_HEADERS, flags, sid, hb->b, hb->n);
}

/* A GET (or method) on sid in one HEADERS frame. */
static void get(buf_t *b, uint32_t sid, const char *method, uint8_t flags)
{
	buf_t hb = {0};
	req_block(&hb, method, "/");
	headers(b, sid, flags | F_EH, &hb);
	free(hb.b);
}

static void settings(buf_t *b, uint8_t flags, const uint16_t *ids, const uint32_t *vals, int n)
{
	buf_t p = {0};
	for (int i = 0; i < n; i++) {
		put8(&p, (uint8_t)(ids[i] >> 8));
		put8(&p, (uint8_t)ids[i]);
		put32(&p, vals[i]);
	}
	frame(b, T_SETTINGS, flags, 0, p.b, p.n);
	free(p.b);
}

static void window(buf_t *b, uint32_t sid, uint32_t inc)
{
	buf_t p = {0};
	put32(&p, inc);
	frame(b, T_WINDOW, 0, sid, p.b, p.n);
	free(p.b);
}

static void rst(buf_t *b, uint32_t sid, uint32_t code)
{
	buf_t p = {0};
	put32(&p, code);
	frame(b, T_RST, 0, sid, p.b, p.n);
	free(p.b);
}

/* The client preface and an empty SETTINGS (and the ACK of the server's). */
static void preface(buf_t *b)
{
	put(b, HB_H2_PREFACE, HB_H2_PREFACE_LEN);
	settings(b, 0, NULL, NULL, 0);
	settings(b, F_ACK, NULL, NULL, 0);
}

/* ---- the server's output, parsed ---- */

typedef struct out {
	int goaways;
	uint32_t goaway_code;
	int32_t goaway_last;
	int32_t first_goaway_last;
	int nrst;
	int32_t rst_sid[256];
	uint32_t rst_code[256];
	int ping_acks, settings, settings_acks, headers, data, window_updates;
	size_t data_bytes;
	uint8_t partial[16];
	size_t plen, skip;
} out_t;

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parses whole frames (the engine emits whole frames per hb_h2_send). */
static void parse_out(out_t *o, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i + 9 <= n) {
		uint32_t len = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		uint8_t type = p[i + 3], flags = p[i + 4];
		uint32_t sid = rd32(p + i + 5) & 0x7fffffffu;
		const uint8_t *pl = p + i + 9;
		cr_assert_leq(i + 9 + len, n, "truncated frame in output");
		switch (type) {
		case T_GOAWAY:
			if (!o->goaways)
				o->first_goaway_last = (int32_t)(rd32(pl) & 0x7fffffffu);
			o->goaways++;
			o->goaway_last = (int32_t)(rd32(pl) & 0x7fffffffu);
			o->goaway_code = rd32(pl + 4);
			break;
		case T_RST:
			if (o->nrst < 256) {
				o->rst_sid[o->nrst] = (int32_t)sid;
				o->rst_code[o->nrst++] = rd32(pl);
			}
			break;
		case T_PING:
			o->ping_acks += flags & F_ACK;
			break;
		case T_SETTINGS:
			if (flags & F_ACK)
				o->settings_acks++;
			else
				o->settings++;
			break;
		case T_HEADERS:
			o->headers++;
			break;
		case T_DATA:
			o->data++;
			o->data_bytes += len;
			break;
		case T_WINDOW:
			o->window_updates++;
			break;
		default:
			break;
		}
		i += 9 + len;
	}
	cr_assert_eq(i, n, "output not whole frames");
}

/* Sends everything the engine has into o. */
static void drain(app_t *a, out_t *o)
{
	const uint8_t *p;
	ssize_t n;
	while ((n = hb_h2_send(a->e, &p)) > 0)
		parse_out(o, p, (size_t)n);
	cr_assert_geq(n, 0);
}

/* Feeds raw bytes (in pieces of step, 0 = whole) and drains. Returns the first error. */
static int feed(app_t *a, const buf_t *b, size_t step, out_t *o, const char **why)
{
	int rc = 0;
	for (size_t off = 0; off < b->n && rc == 0;) {
		size_t n = step && off + step < b->n ? step : b->n - off;
		rc = hb_h2_recv(a->e, b->b + off, n, a->now, why);
		off += n;
		drain(a, o);
	}
	drain(a, o);
	return rc;
}

static int rst_code_of(const out_t *o, int32_t sid)
{
	for (int i = 0; i < o->nrst; i++)
		if (o->rst_sid[i] == sid)
			return (int)o->rst_code[i];
	return -1;
}

#endif
