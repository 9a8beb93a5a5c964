#include "server/conn_ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/log.h"

#define NS 1000000000ull

typedef struct ws {
	hb_exchange_t *x; /* the upgraded exchange (NULL once finished) */
	hb_ws_parser_t *parser;
	hb_ws_deflate_t *deflate;
	hb_chunk_t *held; /* a message the stream had no room for */
	uint32_t held_kind;
	unsigned open : 1, close_sent : 1, close_received : 1, ping_out : 1;
	uint64_t ping_sent_ns, last_recv_ns, last_active_ns;
} ws_t;

static ws_t *W(const hb_conn_t *c)
{
	return c->proto;
}

static void ws_data(hb_conn_t *c, char *p, size_t len);

static void deflate_config(const hb_config_t *cfg, hb_ws_deflate_config_t *d)
{
	hb_ws_deflate_config_default(d);
	d->enabled = cfg->websocket_deflate;
}

int hb_conn_ws_check(hb_conn_t *c, hb_request_t *req, hb_ws_handshake_t **hsp)
{
	hb_ws_deflate_config_t dcfg;
	const char *why = NULL;
	hb_ws_handshake_t *hs = calloc(1, sizeof(*hs));

	if (!hs)
		return -1;
	deflate_config(c->io->cfg, &dcfg);
	int rc = hb_ws_handshake_check_request(req, &dcfg, hs, &why);
	if (rc == 0) {
		req->flags |= HB_REQ_CHANNEL;
		*hsp = hs;
		return 0;
	}
	free(hs);
	char buf[512];
	size_t n = hb_ws_write_reject(buf, sizeof(buf), rc, why);
	hb_conn_write_copy(c, buf, n <= sizeof(buf) ? n : 0);
	hb_debug("io %d: websocket handshake refused: %s", c->io->idx, why ? why : "");
	return hb_ws_handshake_status(rc);
}

/* The app's Sec-WebSocket-Protocol choice travels as a response header; the rest are extra. */
static const hb_header_t *find_subprotocol(const hb_response_t *r)
{
	for (uint32_t i = 0; i < r->nheaders; i++)
		if (r->headers[i].name_len == 22 &&
		    strncasecmp(r->headers[i].name, "sec-websocket-protocol", 22) == 0)
			return &r->headers[i];
	return NULL;
}

static int open_codec(hb_conn_t *c, ws_t *ws, const hb_ws_handshake_t *hs)
{
	hb_ws_parser_config_t pc = {.max_message_size =
					    (uint64_t)c->io->cfg->websocket_max_frame_size};

	if (hs->deflate) {
		ws->deflate = hb_ws_deflate_new(&hs->deflate_params, 6, 5);
		if (!ws->deflate)
			return -ENOMEM;
		pc.deflate = ws->deflate;
	}
	ws->parser = hb_ws_parser_new(&pc);
	return ws->parser ? 0 : -ENOMEM;
}

static size_t write_accept(const hb_ws_handshake_t *hs, hb_response_t *r, char *buf, size_t cap)
{
	const hb_header_t *sp = find_subprotocol(r);
	hb_header_t extra[64];
	size_t n = 0;

	for (uint32_t i = 0; i < r->nheaders && n < 64; i++)
		if (&r->headers[i] != sp)
			extra[n++] = r->headers[i];
	return hb_ws_write_accept(buf, cap, hs, sp ? sp->value : NULL, sp ? sp->value_len : 0,
				  extra, n);
}

static void ws_free(hb_conn_t *c)
{
	ws_t *ws = W(c);

	hb_ws_parser_free(ws->parser);
	hb_ws_deflate_free(ws->deflate);
	free(ws->held);
	free(ws);
	c->proto = NULL;
}

int hb_conn_ws_open(hb_conn_t *c, hb_exchange_t *x, hb_ws_handshake_t *hs, hb_response_t *r)
{
	char buf[4096];
	ws_t *ws = calloc(1, sizeof(*ws));
	size_t n = 0;

	if (ws) {
		ws->x = x;
		n = write_accept(hs, r, buf, sizeof(buf));
	}
	/* the handshake (720 bytes) is not kept: an idle WebSocket should not pay for it */
	int bad = !ws || n == 0 || n > sizeof(buf) || open_codec(c, ws, hs) < 0;
	free(hs);
	if (bad) {
		if (ws) {
			hb_ws_parser_free(ws->parser);
			hb_ws_deflate_free(ws->deflate);
			free(ws);
		}
		hb_conn_abort(c); /* tells the app its client is gone */
		return -1;
	}
	hb_conn_write_copy(c, buf, n);
	x->head_sent = 1;
	x->resp_deadline = 0;
	x->stream->status = 101;
	hb_conn_set_handler(c, &hb_ws_handler, ws); /* the HTTP/1.1 state is freed */
	hb_exchange_count_as(x, HB_MP_WS);
	if (c->io->metrics)
		hb_mcount_add(&c->io->metrics->ws_opened, 1);
	ws->open = 1;
	ws->last_recv_ns = ws->last_active_ns = hb_io_now(c->io);
	hb_stream_signal(x->stream, HB_ST_MSG_OPEN);
	char *rest;
	size_t len = hb_conn_in_take(c, &rest); /* frames that came right behind the handshake */
	if (len > 0) {
		ws_data(c, rest, len);
		free(rest);
	}
	return 0;
}

/* ---- sending ---------------------------------------------------------------------------- */

static void send_control(hb_conn_t *c, unsigned op, const void *p, size_t len)
{
	uint8_t buf[HB_WS_MAX_HEADER + 125];
	size_t n = hb_ws_write_frame(buf, sizeof(buf), op, p, len);

	if (n > 0 && n <= sizeof(buf))
		hb_conn_write_copy(c, (const char *)buf, n);
	hb_conn_mark_dirty(c);
}

static void send_close(hb_conn_t *c, uint16_t code, const char *reason, size_t len)
{
	uint8_t buf[HB_WS_MAX_HEADER + 125];

	if (W(c)->close_sent)
		return;
	W(c)->close_sent = 1;
	size_t n = hb_ws_write_close(buf, sizeof(buf), code, reason, len);
	if (n <= sizeof(buf))
		hb_conn_write_copy(c, (const char *)buf, n);
	hb_conn_mark_dirty(c);
}

/* Tells the app the connection is closing with `code` (websocket.disconnect). */
static void tell_app_closed(hb_conn_t *c, uint16_t code, const uint8_t *reason, size_t len)
{
	hb_exchange_t *x = W(c)->x;

	if (x && !x->ended)
		hb_stream_msg_push_close(x->stream, code, reason, len);
}

static void ws_send(hb_conn_t *c, hb_exchange_t *x, uint32_t kind, hb_chunk_t *ch, uint64_t acct)
{
	ws_t *ws = W(c);
	unsigned op = kind == HB_MSGK_TEXT ? HB_WS_OP_TEXT : HB_WS_OP_BINARY;

	if (!ws->open || ws->close_sent) {
		free(ch);
		hb_stream_out_done(x->stream, acct);
		return;
	}
	ws->last_active_ns = hb_io_now(c->io);
	if (ws->deflate) {
		hb_ws_buf_t out = {0};
		size_t start = 0;
		int rc = hb_ws_encode_message(&out, &start, op, ch->data, ch->len, ws->deflate);
		free(ch);
		if (rc < 0) {
			hb_ws_buf_free(&out);
			hb_stream_out_done(x->stream, acct);
			hb_conn_abort(c);
			return;
		}
		hb_conn_write(c, (char *)out.data + start, out.len - start, out.data, x->stream,
			      acct);
		return;
	}
	uint8_t hdr[HB_WS_MAX_HEADER];
	size_t hn = hb_ws_write_header(hdr, op, 0, ch->len);
	hb_conn_write_copy(c, (const char *)hdr, hn);
	hb_conn_write(c, ch->data, ch->len, ch, x->stream, acct);
}

static void ws_close(hb_conn_t *c, uint16_t code, hb_chunk_t *reason)
{
	if (W(c)->open)
		send_close(c, code, reason ? reason->data : NULL, reason ? reason->len : 0);
	free(reason);
}

/* The worker ended the stream (app returned): close with 1000, or 1011 when aborted. */
static void ws_end(hb_conn_t *c, int aborted)
{
	if (W(c)->open)
		send_close(c, aborted ? HB_WS_CLOSE_INTERNAL : HB_WS_CLOSE_NORMAL, NULL, 0);
}

/* ---- receiving --------------------------------------------------------------------------- */

static int deliver(hb_conn_t *c, uint32_t kind, const uint8_t *p, size_t len)
{
	hb_exchange_t *x = W(c)->x;
	hb_chunk_t *ch = hb_exchange_chunk_copy(p, len);

	if (!ch)
		return -ENOMEM;
	if (!x || x->ended) {
		free(ch);
		return 0;
	}
	if (c->io->metrics)
		hb_mcount_add(&c->io->metrics->ws_msgs_in, 1);
	int rc = hb_exchange_msg_push(x->stream, kind, ch);
	if (rc == HB_PUSH_HELD) {
		W(c)->held = ch; /* pushed on RESUME */
		W(c)->held_kind = kind;
	}
	if (rc != HB_PUSH_OK)
		c->recv_paused = 1;
	return rc != HB_PUSH_OK;
}

static void protocol_failure(hb_conn_t *c, int rc, const char *why)
{
	uint16_t code = hb_ws_error_close_code(rc);

	hb_debug("io %d: websocket closed %u: %s", c->io->idx, code, why ? why : "");
	send_close(c, code, why, why ? strlen(why) : 0);
	W(c)->close_received = 1; /* nothing more will be read */
	tell_app_closed(c, code, NULL, 0);
	hb_conn_start_closing(c);
}

/* Handles one parsed event; returns 1 when reading must pause. */
static int on_event(hb_conn_t *c, const hb_ws_event_t *ev)
{
	ws_t *ws = W(c);

	switch (ev->type) {
	case HB_WS_EV_TEXT:
		return deliver(c, HB_MSGK_TEXT, ev->data, ev->len);
	case HB_WS_EV_BINARY:
		return deliver(c, HB_MSGK_BINARY, ev->data, ev->len);
	case HB_WS_EV_PING:
		if (!ws->close_sent)
			send_control(c, HB_WS_OP_PONG, ev->data, ev->len);
		return 0;
	case HB_WS_EV_PONG:
		ws->ping_out = 0;
		return 0;
	case HB_WS_EV_CLOSE:
		ws->close_received = 1;
		/* Echo the code (RFC 6455 5.5.1); a close without one is answered with an empty
		 * one. */
		send_close(c, ev->code == HB_WS_CLOSE_NO_STATUS ? 0 : ev->code, NULL, 0);
		tell_app_closed(c, ev->code, ev->data, ev->len);
		hb_conn_start_closing(c);
		return 1;
	default:
		return 0;
	}
}

static void ws_data(hb_conn_t *c, char *p, size_t len)
{
	ws_t *ws = W(c);

	ws->last_recv_ns = ws->last_active_ns = hb_io_now(c->io);
	while (len > 0 && !ws->close_received && c->state == HB_CONN_OPEN) {
		if (c->recv_paused) {
			hb_conn_in_append(c, p,
					  len); /* the app is behind: keep the rest for later */
			return;
		}
		size_t used = 0;
		hb_ws_event_t ev;
		const char *why = NULL;
		int rc = hb_ws_parse(ws->parser, (uint8_t *)p, len, &used, &ev, &why);
		p += used;
		len -= used;
		if (rc < 0) {
			protocol_failure(c, rc, why);
			return;
		}
		if (rc == HB_WS_EVENT)
			on_event(c, &ev);
		else if (used == 0)
			break;
	}
}

static void ws_resume(hb_conn_t *c)
{
	ws_t *ws = W(c);
	hb_exchange_t *x = ws->x;

	if (ws->held && x && !x->ended) {
		if (hb_stream_msg_push(x->stream, ws->held_kind, ws->held) < 0)
			return;
		ws->held = NULL;
	}
	c->recv_paused = 0;
	char *rest;
	size_t n = hb_conn_in_take(c, &rest);
	if (n > 0) {
		ws_data(c, rest, n);
		free(rest);
	}
	hb_conn_update_reading(c);
}

/* ---- timers ------------------------------------------------------------------------------ */

static void ws_tick(hb_conn_t *c, uint64_t now, int draining)
{
	ws_t *ws = W(c);
	const hb_config_t *cfg = c->io->cfg;

	if (draining && !ws->close_sent) {
		send_close(c, HB_WS_CLOSE_RESTART, "server shutting down", 20);
		tell_app_closed(c, HB_WS_CLOSE_RESTART, NULL, 0);
		hb_conn_start_closing(c);
		return;
	}
	if (ws->ping_out && now - ws->ping_sent_ns > (uint64_t)cfg->websocket_ping_timeout_s * NS) {
		hb_debug("io %d: websocket ping timeout", c->io->idx);
		hb_conn_abort(c);
		return;
	}
	if (cfg->websocket_timeout_s > 0 &&
	    now - ws->last_active_ns > (uint64_t)cfg->websocket_timeout_s * NS && !ws->close_sent) {
		send_close(c, HB_WS_CLOSE_GOING_AWAY, "idle timeout", 12);
		tell_app_closed(c, HB_WS_CLOSE_GOING_AWAY, NULL, 0);
		hb_conn_start_closing(c);
		return;
	}
	if (cfg->websocket_ping_interval_s > 0 && !ws->ping_out && !ws->close_sent &&
	    now - ws->last_recv_ns > (uint64_t)cfg->websocket_ping_interval_s * NS) {
		ws->ping_out = 1;
		ws->ping_sent_ns = now;
		send_control(c, HB_WS_OP_PING, "hb", 2);
	}
}

/* ---- the handler table ------------------------------------------------------------------- */

static void ws_on_message(hb_conn_t *c, hb_exchange_t *x, hb_msg_t *m)
{
	switch ((hb_msg_type_t)m->type) {
	case HB_MSG_MESSAGE:
		if (c->state == HB_CONN_OPEN && c->io->metrics)
			hb_mcount_add(&c->io->metrics->ws_msgs_out, 1);
		if (c->state == HB_CONN_OPEN)
			ws_send(c, x, m->aux, m->ptr, m->len);
		else
			hb_exchange_drop_msg(m);
		break;
	case HB_MSG_CLOSE:
		if (c->state == HB_CONN_OPEN)
			ws_close(c, (uint16_t)m->aux, m->ptr);
		else
			hb_exchange_drop_msg(m);
		break;
	case HB_MSG_END:
		if (c->state == HB_CONN_OPEN)
			ws_end(c, (m->aux & HB_END_ABORT) != 0);
		break;
	case HB_MSG_RESUME:
		ws_resume(c);
		break;
	case HB_MSG_HEAD:
	case HB_MSG_BODY:
	case HB_MSG_FILE:
	case HB_MSG_CONTINUE:
	case HB_MSG_REQUEST:
	case HB_MSG_INTERIM:
	case HB_MSG_TRAILERS:
	case HB_MSG_PROMISE:
		hb_exchange_drop_msg(m); /* the head was the 101: HTTP is over */
		break;
	}
}

/* Output drained: once the app has ended, the exchange is done and the connection closes. */
static void ws_on_sent(hb_conn_t *c)
{
	ws_t *ws = W(c);
	hb_exchange_t *x = ws->x;

	if (!x || !x->ended)
		return;
	int abort = x->abort;
	ws->x = NULL;
	hb_exchange_finish(x);
	if (abort)
		hb_conn_abort(c);
	else
		hb_conn_start_closing(c);
}

static void ws_on_tick(hb_conn_t *c, uint64_t now)
{
	ws_tick(c, now, 0);
}

static void ws_on_drain(hb_conn_t *c)
{
	ws_tick(c, hb_io_now(c->io), 1);
}

static void ws_on_peer_closed(hb_conn_t *c)
{
	if (W(c)->x)
		hb_exchange_client_gone(W(c)->x, 0);
}

const hb_proto_handler_t hb_ws_handler = {
	.name = "websocket",
	.on_data = ws_data,
	.on_message_from_worker = ws_on_message,
	.on_sent = ws_on_sent,
	.on_tick = ws_on_tick,
	.on_drain = ws_on_drain,
	.on_peer_closed = ws_on_peer_closed,
	.free = ws_free,
};
