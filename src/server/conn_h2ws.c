/* conn_h2ws.c: WebSocket over HTTP/2 (RFC 8441), the part of the HTTP/2 handler that runs a
 * WebSocket inside one stream.
 *
 * An extended CONNECT with :protocol websocket becomes a message channel (HB_REQ_CHANNEL) for
 * the same app that serves WebSocket over HTTP/1.1. The app's acceptance (a 101 head) goes out
 * as :status 200 with the chosen subprotocol and extensions; any other head is a denial, sent
 * as a plain response (a 2xx one as 403: on HTTP/2 a 2xx would open the tunnel). From then the
 * stream's DATA carries WebSocket frames both ways: client frames masked, server frames not
 * (RFC 8441 5), parsed and written by proto/ws as on HTTP/1.1.
 *
 * Flow control joins the backpressure of messages: received bytes are credited to the
 * stream's window only as the parser takes them, and the parser stops while the app's message
 * queue is full, so an app that does not read stops its own stream's WINDOW_UPDATEs. Outgoing
 * frames wait in the stream's response queue (conn_h2.c) for its send window, which holds the
 * app at the usual output watermark. The app's end (after a close frame) ends the stream; the
 * client's END_STREAM without a close frame, or its RST_STREAM, is a disconnect for the app.
 *
 * The io thread's timers run per stream as on HTTP/1.1: websocket_ping_interval without bytes
 * from the client sends a ping; no pong within websocket_ping_timeout resets the stream (the
 * connection and its other streams live on) and the app hears a disconnect; websocket_timeout
 * closes an idle one with 1001.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proto/ws.h"
#include "server/conn_h2_priv.h"

#define NS 1000000000ull

typedef struct h2ws {
	struct h2ws *prev, *next; /* the connection's list */
	hb_exchange_t *x;
	hb_ws_handshake_t hs; /* subprotocols point into the request's header storage */
	hb_ws_parser_t *parser;
	hb_ws_deflate_t *deflate;
	hb_chunk_t *held; /* a message the stream had no room for */
	uint32_t held_kind;
	uint8_t *in; /* received bytes not yet parsed (and not yet credited) */
	size_t in_len, in_cap;
	unsigned open : 1, denied : 1, close_sent : 1, close_received : 1, paused : 1;
	unsigned peer_ended : 1; /* the client's END_STREAM came */
	unsigned ping_out : 1;	 /* our ping waits for its pong (websocket_ping_timeout) */
	uint64_t last_active_ns; /* a message either way (websocket_timeout) */
	uint64_t last_recv_ns;	 /* bytes from the client (websocket_ping_interval) */
	uint64_t ping_sent_ns;
	uint64_t linger_deadline; /* our side ended: the client must end its side before */
} h2ws_t;

static int ieq(const char *a, size_t n, const char *b)
{
	return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* Answers the stream alone, with a short text body saying why. */
static int refuse(hb_conn_t *c, int32_t sid, int status, const char *why)
{
	hb_header_t h[2] = {{"content-type", "text/plain", 12, 10},
			    {"sec-websocket-version", "13", 21, 2}};
	hb_response_t r = {.status = status,
			   .headers = h,
			   .nheaders = status == 426 ? 2 : 1,
			   .content_length = -1};

	hb_debug("h2: websocket on stream %d refused (%d): %s", sid, status, why);
	hb_h2_submit_response(hb_h2c(c)->e, sid, &r, c->io->date, 0);
	return 1;
}

int hb_h2ws_check(hb_conn_t *c, int32_t sid, hb_request_t *req, const char *proto, size_t plen,
		  struct h2ws **out)
{
	hb_ws_deflate_config_t dcfg;
	const char *why = NULL;

	if (!ieq(proto, plen, "websocket"))
		return refuse(c, sid, 501, "unknown :protocol");
	h2ws_t *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -1;
	hb_ws_deflate_config_default(&dcfg);
	dcfg.enabled = c->io->cfg->websocket_deflate;
	int rc = hb_ws_handshake_check_h2(req->headers, req->nheaders, &dcfg, &ws->hs, &why);
	if (rc < 0) {
		free(ws);
		return refuse(c, sid, hb_ws_handshake_status(rc), why ? why : "bad handshake");
	}
	/* A channel, not a body: the DATA that follows is frames for the message queue. */
	req->flags = (req->flags &
		      ~(uint32_t)(HB_REQ_HAS_BODY | HB_REQ_CHUNKED | HB_REQ_EXPECT_CONTINUE)) |
		     HB_REQ_CHANNEL;
	h2c_t *h = hb_h2c(c);
	ws->next = h->wss;
	if (h->wss)
		h->wss->prev = ws;
	h->wss = ws;
	ws->last_active_ns = ws->last_recv_ns = hb_io_now(c->io);
	*out = ws;
	return 0;
}

void hb_h2ws_bind(struct h2ws *ws, hb_exchange_t *x)
{
	ws->x = x;
}

void hb_h2ws_free(hb_conn_t *c, struct h2ws *ws)
{
	h2c_t *h = hb_h2c(c);

	if (ws->prev)
		ws->prev->next = ws->next;
	else
		h->wss = ws->next;
	if (ws->next)
		ws->next->prev = ws->prev;
	hb_ws_parser_free(ws->parser);
	hb_ws_deflate_free(ws->deflate);
	free(ws->held);
	free(ws->in);
	free(ws);
}

/* ---- sending ---------------------------------------------------------------------------- */

/* Queues a copy of p; acct: the stream's accounting that ends when it is sent. */
static void queue_copy(hb_conn_t *c, hb_exchange_t *x, const void *p, size_t n, uint64_t acct)
{
	hb_chunk_t *ch = hb_exchange_chunk_copy(p, n);

	if (!ch) {
		hb_stream_out_done(x->stream, acct);
		hb_h2_reset(hb_h2c(c)->e, hb_h2x(x)->sid, HB_H2_INTERNAL_ERROR);
		return;
	}
	hb_h2c_queue(c, x, ch, acct);
}

static void send_control(hb_conn_t *c, hb_exchange_t *x, unsigned op, const void *p, size_t n)
{
	uint8_t buf[HB_WS_MAX_HEADER + 125];
	size_t len = hb_ws_write_frame(buf, sizeof(buf), op, p, n);

	if (len > 0 && len <= sizeof(buf))
		queue_copy(c, x, buf, len, 0);
}

static void send_close(hb_conn_t *c, hb_exchange_t *x, uint16_t code, const char *reason,
		       size_t len)
{
	h2ws_t *ws = hb_h2x(x)->ws;
	uint8_t buf[HB_WS_MAX_HEADER + 125];

	if (ws->close_sent || !ws->open)
		return;
	ws->close_sent = 1;
	size_t n = hb_ws_write_close(buf, sizeof(buf), code, reason, len);
	if (n <= sizeof(buf))
		queue_copy(c, x, buf, n, 0);
}

/* One message of the app as a frame; acct is the stream's accounting of its bytes. */
static void send_message(hb_conn_t *c, hb_exchange_t *x, uint32_t kind, hb_chunk_t *ch,
			 uint64_t acct)
{
	h2ws_t *ws = hb_h2x(x)->ws;
	unsigned op = kind == HB_MSGK_TEXT ? HB_WS_OP_TEXT : HB_WS_OP_BINARY;
	hb_ws_buf_t out = {0};
	size_t start = 0;

	if (!ws->open || ws->close_sent || hb_h2x(x)->closed) {
		free(ch);
		hb_stream_out_done(x->stream, acct);
		return;
	}
	ws->last_active_ns = hb_io_now(c->io);
	if (!ws->deflate) { /* header, then the app's bytes as they are */
		uint8_t hdr[HB_WS_MAX_HEADER];
		queue_copy(c, x, hdr, hb_ws_write_header(hdr, op, 0, ch->len), 0);
		if (ch->len)
			hb_h2c_queue(c, x, ch, acct);
		else {
			free(ch);
			hb_stream_out_done(x->stream, acct);
		}
		return;
	}
	int rc = hb_ws_encode_message(&out, &start, op, ch->data, ch->len, ws->deflate);
	free(ch);
	if (rc == 0) {
		queue_copy(c, x, out.data + start, out.len - start, acct);
	} else {
		hb_stream_out_done(x->stream, acct);
		hb_h2_reset(hb_h2c(c)->e, hb_h2x(x)->sid, HB_H2_INTERNAL_ERROR);
	}
	hb_ws_buf_free(&out);
}

/* Tells the app the WebSocket is closing with `code` (websocket.disconnect). */
static void tell_app_closed(hb_exchange_t *x, uint16_t code, const uint8_t *reason, size_t len)
{
	if (!x->ended)
		hb_stream_msg_push_close(x->stream, code, reason, len);
}

/* ---- receiving --------------------------------------------------------------------------- */

/* Queues one message for the app; pauses the parser when the queue is full. */
static int deliver(hb_exchange_t *x, uint32_t kind, const uint8_t *p, size_t len)
{
	h2ws_t *ws = hb_h2x(x)->ws;
	hb_chunk_t *ch = hb_exchange_chunk_copy(p, len);

	if (!ch)
		return -ENOMEM;
	if (x->ended) {
		free(ch);
		return 0;
	}
	int rc = hb_exchange_msg_push(x->stream, kind, ch);
	if (rc == HB_PUSH_HELD) {
		ws->held = ch; /* pushed on RESUME */
		ws->held_kind = kind;
	}
	if (rc != HB_PUSH_OK)
		ws->paused = 1;
	return 0;
}

static void protocol_failure(hb_conn_t *c, hb_exchange_t *x, int rc, const char *why)
{
	uint16_t code = hb_ws_error_close_code(rc);

	hb_debug("h2: websocket on stream %d closed %u: %s", hb_h2x(x)->sid, code, why ? why : "");
	send_close(c, x, code, why, why ? strlen(why) : 0);
	hb_h2x(x)->ws->close_received = 1; /* nothing more is read */
	tell_app_closed(x, code, NULL, 0);
}

static void on_event(hb_conn_t *c, hb_exchange_t *x, const hb_ws_event_t *ev)
{
	h2ws_t *ws = hb_h2x(x)->ws;

	switch (ev->type) {
	case HB_WS_EV_TEXT:
	case HB_WS_EV_BINARY:
		if (deliver(x, ev->type == HB_WS_EV_TEXT ? HB_MSGK_TEXT : HB_MSGK_BINARY, ev->data,
			    ev->len) < 0)
			protocol_failure(c, x, HB_WS_E_NOMEM, "out of memory");
		break;
	case HB_WS_EV_PING:
		if (!ws->close_sent)
			send_control(c, x, HB_WS_OP_PONG, ev->data, ev->len);
		break;
	case HB_WS_EV_PONG:
		ws->ping_out = 0;
		break;
	case HB_WS_EV_CLOSE:
		ws->close_received = 1;
		/* Echo the code (RFC 6455 5.5.1); none is answered with an empty close. */
		send_close(c, x, ev->code == HB_WS_CLOSE_NO_STATUS ? 0 : ev->code, NULL, 0);
		tell_app_closed(x, ev->code, ev->data, ev->len);
		break;
	default:
		break;
	}
}

/* The client's side ended without a close frame: once the app has every message sent before,
 * it hears 1006 (RFC 6455 7.1.5: closed abnormally). */
static void peer_gone(hb_exchange_t *x)
{
	h2ws_t *ws = hb_h2x(x)->ws;

	if (ws->open && ws->peer_ended && !ws->close_received && !ws->in_len && !ws->held) {
		ws->close_received = 1;
		tell_app_closed(x, 1006, NULL, 0);
	}
}

/* Parses what was received, as far as the app's queue allows; credits what was parsed. */
static void parse_input(hb_conn_t *c, hb_exchange_t *x)
{
	h2ws_t *ws = hb_h2x(x)->ws;
	size_t off = 0;

	while (off < ws->in_len && !ws->paused && !ws->close_received) {
		size_t used = 0;
		hb_ws_event_t ev;
		const char *why = NULL;
		int rc = hb_ws_parse(ws->parser, ws->in + off, ws->in_len - off, &used, &ev, &why);
		off += used;
		if (rc < 0)
			protocol_failure(c, x, rc, why);
		else if (rc == HB_WS_EVENT)
			on_event(c, x, &ev);
		else if (used == 0)
			break;
	}
	if (ws->close_received)
		off = ws->in_len; /* after the close every byte is ignored */
	if (off) {
		hb_h2_consume(hb_h2c(c)->e, hb_h2x(x)->sid, off);
		memmove(ws->in, ws->in + off, ws->in_len - off);
		ws->in_len -= off;
	}
	peer_gone(x);
}

void hb_h2ws_data(hb_conn_t *c, hb_exchange_t *x, const uint8_t *d, size_t len)
{
	h2ws_t *ws = hb_h2x(x)->ws;

	if (ws->denied || ws->close_received) {
		hb_h2_consume(hb_h2c(c)->e, hb_h2x(x)->sid, len); /* not a WebSocket any more */
		return;
	}
	/* Kept until parsed: the stream's window (credited only as bytes are parsed) bounds it. */
	if (ws->in_len + len > ws->in_cap) {
		size_t cap = ws->in_cap ? ws->in_cap : 16384;
		while (cap < ws->in_len + len)
			cap *= 2;
		uint8_t *n = realloc(ws->in, cap);
		if (!n) {
			hb_h2_reset(hb_h2c(c)->e, hb_h2x(x)->sid, HB_H2_INTERNAL_ERROR);
			return;
		}
		ws->in = n;
		ws->in_cap = cap;
	}
	memcpy(ws->in + ws->in_len, d, len);
	ws->in_len += len;
	ws->last_active_ns = ws->last_recv_ns = hb_io_now(c->io);
	if (ws->open)
		parse_input(c, x);
}

void hb_h2ws_end_stream(hb_conn_t *c, hb_exchange_t *x)
{
	x->body_done = 1;
	hb_h2x(x)->ws->peer_ended = 1;
	peer_gone(x);
}

static void on_resume(hb_conn_t *c, hb_exchange_t *x)
{
	h2ws_t *ws = hb_h2x(x)->ws;

	if (ws->held && !x->ended) {
		if (hb_stream_msg_push(x->stream, ws->held_kind, ws->held) < 0)
			return;
		ws->held = NULL;
	}
	ws->paused = 0;
	parse_input(c, x);
}

/* ---- the app's answer -------------------------------------------------------------------- */

/* 101 from the app: :status 200 with its headers, the extensions, and the stream is open. */
static void accept_ws(hb_conn_t *c, hb_exchange_t *x, hb_response_t *r)
{
	h2ws_t *ws = hb_h2x(x)->ws;
	hb_header_t h[64];
	uint32_t n = 0;
	hb_ws_parser_config_t pc = {.max_message_size =
					    (uint64_t)c->io->cfg->websocket_max_frame_size};

	for (uint32_t i = 0; i < r->nheaders && n < 63; i++)
		h[n++] = r->headers[i];
	if (ws->hs.extensions[0])
		h[n++] = (hb_header_t){"sec-websocket-extensions", ws->hs.extensions, 24,
				       (uint32_t)strlen(ws->hs.extensions)};
	if (ws->hs.deflate) {
		ws->deflate = hb_ws_deflate_new(&ws->hs.deflate_params, 6, 5);
		pc.deflate = ws->deflate;
	}
	ws->parser = (!ws->hs.deflate || ws->deflate) ? hb_ws_parser_new(&pc) : NULL;
	hb_response_t ok = {.status = 200,
			    .headers = h,
			    .nheaders = n,
			    .content_length = -1,
			    .flags = r->flags};
	if (!ws->parser) {
		hb_h2_reset(hb_h2c(c)->e, hb_h2x(x)->sid, HB_H2_INTERNAL_ERROR);
		hb_exchange_client_gone(x, 0);
		x->abandoned = 1;
		return;
	}
	x->stream->status = 200;
	x->resp_cl = -1;
	if (hb_h2c_head(c, x, &ok, 1) < 0) {
		hb_exchange_client_gone(x, 0);
		return;
	}
	ws->open = 1;
	ws->last_active_ns = ws->last_recv_ns = hb_io_now(c->io);
	hb_stream_signal(x->stream, HB_ST_MSG_OPEN);
	parse_input(c, x); /* frames that came right behind the request */
}

/* The app ended: close with 1000 (1011 after an abort) unless it closed, then END_STREAM. */
static void end_ws(hb_conn_t *c, hb_exchange_t *x, uint32_t flags)
{
	h2x_t *hx = hb_h2x(x);

	send_close(c, x, (flags & HB_END_ABORT) ? HB_WS_CLOSE_INTERNAL : HB_WS_CLOSE_NORMAL, NULL,
		   0);
	hx->eof = 1;
	hx->ws->linger_deadline = hb_io_now(c->io) + HB_CONN_LINGER_NS;
	hb_h2_resume(hb_h2c(c)->e, hx->sid);
}

int hb_h2ws_message(hb_conn_t *c, hb_exchange_t *x, hb_msg_t *m)
{
	h2ws_t *ws = hb_h2x(x)->ws;
	int live = !x->abandoned && !hb_h2x(x)->closed;

	if (!ws->open) {
		if (m->type == HB_MSG_HEAD && live && !x->head_sent && !ws->denied) {
			hb_response_t *r = m->ptr;
			if (r->status == 101) {
				accept_ws(c, x, r);
				free(r);
				return 1;
			}
			ws->denied = 1;
			if (r->status >= 200 && r->status < 300)
				r->status = 403; /* a 2xx would accept the tunnel */
			ws->in_len = 0;
		}
		if (m->type == HB_MSG_MESSAGE || m->type == HB_MSG_CLOSE) {
			hb_exchange_drop_msg(m);
			return 1;
		}
		return 0; /* a denial: plain HTTP/2 */
	}
	switch ((hb_msg_type_t)m->type) {
	case HB_MSG_MESSAGE:
		send_message(c, x, m->aux, m->ptr, m->len);
		return 1;
	case HB_MSG_CLOSE:
		if (live) {
			hb_chunk_t *why = m->ptr;
			send_close(c, x, (uint16_t)m->aux, why ? why->data : NULL,
				   why ? why->len : 0);
		}
		free(m->ptr);
		return 1;
	case HB_MSG_END:
		if (!live)
			return 0; /* reset meanwhile: the plain path finishes the exchange */
		end_ws(c, x, m->aux);
		return 1;
	case HB_MSG_RESUME:
		if (live)
			on_resume(c, x);
		return 1;
	case HB_MSG_HEAD:
	case HB_MSG_BODY:
	case HB_MSG_FILE:
	case HB_MSG_CONTINUE:
	case HB_MSG_REQUEST:
	case HB_MSG_INTERIM:
	case HB_MSG_TRAILERS:
	case HB_MSG_PROMISE:
		hb_exchange_drop_msg(m); /* the head was the acceptance: HTTP is over */
		return 1;
	}
	return 0;
}

/* ---- timers ------------------------------------------------------------------------------ */

void hb_h2ws_tick(hb_conn_t *c, hb_exchange_t *x, uint64_t now)
{
	h2ws_t *ws = hb_h2x(x)->ws;
	h2x_t *hx = hb_h2x(x);
	const hb_config_t *cfg = c->io->cfg;
	int64_t idle = cfg->websocket_timeout_s;

	if (!ws->open || hx->closed)
		return;
	if (ws->linger_deadline && now >= ws->linger_deadline) {
		/* Our side is over and the client did not end its own: done with the stream. */
		ws->linger_deadline = 0;
		hb_h2_reset(hb_h2c(c)->e, hx->sid, hx->qhead ? HB_H2_CANCEL : HB_H2_NO_ERROR);
		return;
	}
	if (ws->ping_out && now - ws->ping_sent_ns > (uint64_t)cfg->websocket_ping_timeout_s * NS) {
		/* No pong: the peer is gone (HTTP/1.1 drops the connection; here only the stream).
		 * The app hears a disconnect (1006). */
		hb_debug("h2: websocket on stream %d: ping timeout", hx->sid);
		ws->ping_out = 0;
		ws->close_received = 1;
		hb_exchange_client_gone(x, 0);
		hb_h2_reset(hb_h2c(c)->e, hx->sid, HB_H2_CANCEL);
		return;
	}
	if (idle > 0 && !ws->close_sent && now - ws->last_active_ns > (uint64_t)idle * NS) {
		send_close(c, x, HB_WS_CLOSE_GOING_AWAY, "idle timeout", 12);
		tell_app_closed(x, HB_WS_CLOSE_GOING_AWAY, NULL, 0);
		return;
	}
	if (cfg->websocket_ping_interval_s > 0 && !ws->ping_out && !ws->close_sent &&
	    !ws->close_received &&
	    now - ws->last_recv_ns > (uint64_t)cfg->websocket_ping_interval_s * NS) {
		ws->ping_out = 1;
		ws->ping_sent_ns = now;
		send_control(c, x, HB_WS_OP_PING, "hb", 2);
	}
}

void hb_h2ws_drain(hb_conn_t *c, hb_exchange_t *x)
{
	h2ws_t *ws = hb_h2x(x)->ws;

	if (!ws->open || ws->close_sent || hb_h2x(x)->closed)
		return;
	send_close(c, x, HB_WS_CLOSE_RESTART, "server shutting down", 20);
	tell_app_closed(x, HB_WS_CLOSE_RESTART, NULL, 0);
}
