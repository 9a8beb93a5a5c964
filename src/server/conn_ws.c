#include "server/conn_ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/log.h"

#define NS 1000000000ull

static hb_conn_ws_t *ws_new(hb_conn_t *c)
{
	if (!c->ws)
		c->ws = calloc(1, sizeof(hb_conn_ws_t));
	return c->ws;
}

static void deflate_config(const hb_config_t *cfg, hb_ws_deflate_config_t *d)
{
	hb_ws_deflate_config_default(d);
	d->enabled = cfg->websocket_deflate;
}

int hb_conn_ws_check(hb_conn_t *c, hb_request_t *req)
{
	hb_ws_deflate_config_t dcfg;
	const char *why = NULL;
	hb_conn_ws_t *ws = ws_new(c);

	if (!ws)
		return -1;
	deflate_config(c->io->cfg, &dcfg);
	int rc = hb_ws_handshake_check_request(req, &dcfg, &ws->hs, &why);
	if (rc == 0) {
		req->flags |= HB_REQ_WEBSOCKET;
		return 0;
	}
	char buf[512];
	size_t n = hb_ws_write_reject(buf, sizeof(buf), rc, why);
	hb_conn_out_copy(c, buf, n <= sizeof(buf) ? n : 0);
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

static int open_codec(hb_conn_t *c)
{
	hb_conn_ws_t *ws = c->ws;
	hb_ws_parser_config_t pc = {.max_message_size =
					    (uint64_t)c->io->cfg->websocket_max_frame_size};

	if (ws->hs.deflate) {
		ws->deflate = hb_ws_deflate_new(&ws->hs.deflate_params, 6, 5);
		if (!ws->deflate)
			return -ENOMEM;
		pc.deflate = ws->deflate;
	}
	ws->parser = hb_ws_parser_new(&pc);
	return ws->parser ? 0 : -ENOMEM;
}

static size_t write_accept(hb_conn_t *c, hb_response_t *r, char *buf, size_t cap)
{
	const hb_header_t *sp = find_subprotocol(r);
	hb_header_t extra[64];
	size_t n = 0;

	for (uint32_t i = 0; i < r->nheaders && n < 64; i++)
		if (&r->headers[i] != sp)
			extra[n++] = r->headers[i];
	return hb_ws_write_accept(buf, cap, &c->ws->hs, sp ? sp->value : NULL,
				  sp ? sp->value_len : 0, extra, n);
}

int hb_conn_ws_head(hb_conn_t *c, hb_response_t *r)
{
	char buf[4096];

	if (!c->ws || r->status != 101)
		return 0;
	size_t n = write_accept(c, r, buf, sizeof(buf));
	if (n == 0 || n > sizeof(buf) || open_codec(c) < 0) {
		hb_stream_signal(c->stream, HB_ST_CLIENT_GONE);
		hb_conn_abort(c);
		return 1;
	}
	hb_conn_out_copy(c, buf, n);
	c->head_sent = 1;
	c->resp_deadline = 0;
	c->stream->status = 101;
	c->state = HB_CONN_WS;
	c->keep_alive = 0;
	c->ws->open = 1;
	c->ws->last_recv_ns = c->ws->last_active_ns = hb_io_now(c->io);
	c->parser_paused = 1; /* the HTTP parser is done with this connection */
	hb_stream_signal(c->stream, HB_ST_WS_OPEN);
	if (c->in_len > c->in_off) { /* frames that came right behind the handshake */
		size_t len = c->in_len - c->in_off;
		char *copy = malloc(len);
		if (copy) {
			memcpy(copy, c->in + c->in_off, len);
			c->in_off = c->in_len = 0;
			hb_conn_ws_data(c, copy, len);
			free(copy);
		}
	}
	return 1;
}

/* ---- sending ---------------------------------------------------------------------------- */

static void send_control(hb_conn_t *c, unsigned op, const void *p, size_t len)
{
	uint8_t buf[HB_WS_MAX_HEADER + 125];
	size_t n = hb_ws_write_frame(buf, sizeof(buf), op, p, len);

	if (n > 0 && n <= sizeof(buf))
		hb_conn_out_copy(c, (const char *)buf, n);
	hb_conn_mark_dirty(c);
}

static void send_close(hb_conn_t *c, uint16_t code, const char *reason, size_t len)
{
	uint8_t buf[HB_WS_MAX_HEADER + 125];

	if (c->ws->close_sent)
		return;
	c->ws->close_sent = 1;
	size_t n = hb_ws_write_close(buf, sizeof(buf), code, reason, len);
	if (n <= sizeof(buf))
		hb_conn_out_copy(c, (const char *)buf, n);
	hb_conn_mark_dirty(c);
}

/* Tells the app the connection is closing with `code` (websocket.disconnect). */
static void tell_app_closed(hb_conn_t *c, uint16_t code, const uint8_t *reason, size_t len)
{
	hb_chunk_t *ch;

	if (!c->stream || c->ended)
		return;
	ch = malloc(sizeof(*ch) + 2 + len);
	if (ch) {
		ch->len = 2 + len;
		ch->data[0] = (char)(code >> 8);
		ch->data[1] = (char)(code & 0xff);
		if (len)
			memcpy(ch->data + 2, reason, len);
		if (hb_stream_ws_push(c->stream, HB_WS_CLOSE, ch) == 0)
			return;
		free(ch);
	}
	hb_stream_signal(c->stream, HB_ST_CLIENT_GONE);
}

void hb_conn_ws_send(hb_conn_t *c, uint32_t kind, hb_chunk_t *ch, uint64_t acct)
{
	hb_conn_ws_t *ws = c->ws;
	unsigned op = kind == HB_WS_TEXT ? HB_WS_OP_TEXT : HB_WS_OP_BINARY;

	if (!ws || !ws->open || ws->close_sent) {
		free(ch);
		hb_stream_out_done(c->stream, acct);
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
			hb_stream_out_done(c->stream, acct);
			hb_conn_abort(c);
			return;
		}
		hb_conn_out_bytes(c, (char *)out.data + start, out.len - start, out.data, c->stream,
				  acct);
		return;
	}
	uint8_t hdr[HB_WS_MAX_HEADER];
	size_t hn = hb_ws_write_header(hdr, op, 0, ch->len);
	hb_conn_out_copy(c, (const char *)hdr, hn);
	hb_conn_out_bytes(c, ch->data, ch->len, ch, c->stream, acct);
}

void hb_conn_ws_close(hb_conn_t *c, uint16_t code, hb_chunk_t *reason)
{
	if (c->ws && c->ws->open)
		send_close(c, code, reason ? reason->data : NULL, reason ? reason->len : 0);
	free(reason);
}

void hb_conn_ws_end(hb_conn_t *c, int aborted)
{
	hb_conn_ws_t *ws = c->ws;

	if (!ws || !ws->open)
		return;
	send_close(c, aborted ? HB_WS_CLOSE_INTERNAL : HB_WS_CLOSE_NORMAL, NULL, 0);
}

/* ---- receiving --------------------------------------------------------------------------- */

static int deliver(hb_conn_t *c, uint32_t kind, const uint8_t *p, size_t len)
{
	hb_chunk_t *ch = malloc(sizeof(*ch) + len);

	if (!ch)
		return -ENOMEM;
	ch->len = len;
	memcpy(ch->data, p, len);
	if (!c->stream || c->ended) {
		free(ch);
		return 0;
	}
	if (hb_stream_ws_push(c->stream, kind, ch) < 0) {
		/* No free slot: pause. If the app drained the queue before it could see the flag,
		 * no RESUME would come: retry, and whoever clears the flag owns the resume. */
		atomic_fetch_or(&c->stream->state, HB_ST_IO_PAUSED);
		c->recv_paused = 1;
		if (hb_spsc_empty(&c->stream->body) &&
		    hb_stream_ws_push(c->stream, kind, ch) == 0) {
			if (atomic_fetch_and(&c->stream->state, ~(uint32_t)HB_ST_IO_PAUSED) &
			    HB_ST_IO_PAUSED)
				c->recv_paused = 0;
			return c->recv_paused;
		}
		c->ws->held = ch;
		c->ws->held_kind = kind;
		return 1;
	}
	if (hb_stream_body_full(c->stream) && hb_stream_pause_reading(c->stream)) {
		c->recv_paused = 1;
		return 1;
	}
	return 0;
}

static void protocol_failure(hb_conn_t *c, int rc, const char *why)
{
	uint16_t code = hb_ws_error_close_code(rc);

	hb_debug("io %d: websocket closed %u: %s", c->io->idx, code, why ? why : "");
	send_close(c, code, why, why ? strlen(why) : 0);
	c->ws->close_received = 1; /* nothing more will be read */
	tell_app_closed(c, code, NULL, 0);
	hb_conn_start_closing(c);
}

/* Handles one parsed event; returns 1 when reading must pause. */
static int on_event(hb_conn_t *c, const hb_ws_event_t *ev)
{
	hb_conn_ws_t *ws = c->ws;

	switch (ev->type) {
	case HB_WS_EV_TEXT:
		return deliver(c, HB_WS_TEXT, ev->data, ev->len);
	case HB_WS_EV_BINARY:
		return deliver(c, HB_WS_BINARY, ev->data, ev->len);
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

void hb_conn_ws_data(hb_conn_t *c, char *p, size_t len)
{
	hb_conn_ws_t *ws = c->ws;

	ws->last_recv_ns = ws->last_active_ns = hb_io_now(c->io);
	while (len > 0 && !ws->close_received && c->state == HB_CONN_WS) {
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

void hb_conn_ws_resume(hb_conn_t *c)
{
	hb_conn_ws_t *ws = c->ws;

	if (ws->held && c->stream && !c->ended) {
		if (hb_stream_ws_push(c->stream, ws->held_kind, ws->held) < 0)
			return;
		ws->held = NULL;
	}
	c->recv_paused = 0;
	if (c->in_len > c->in_off) {
		size_t n = c->in_len - c->in_off;
		char *copy = malloc(n);
		if (!copy) {
			hb_conn_abort(c);
			return;
		}
		memcpy(copy, c->in + c->in_off, n);
		c->in_off = c->in_len = 0;
		hb_conn_ws_data(c, copy, n);
		free(copy);
	}
	hb_conn_update_reading(c);
}

/* ---- timers ------------------------------------------------------------------------------ */

void hb_conn_ws_tick(hb_conn_t *c, uint64_t now, int draining)
{
	hb_conn_ws_t *ws = c->ws;
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

void hb_conn_ws_free(hb_conn_t *c)
{
	hb_conn_ws_t *ws = c->ws;

	if (!ws)
		return;
	hb_ws_parser_free(ws->parser);
	hb_ws_deflate_free(ws->deflate);
	free(ws->held);
	free(ws);
	c->ws = NULL;
}
