#include "server/conn_h1.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/hub.h"
#include "core/log.h"
#include "proto/h1.h"
#include "server/conn_addr.h"
#include "server/conn_h2.h"
#include "server/conn_ws.h"
#include "server/transport_tls.h"

typedef enum {
	H1_IDLE = 0, /* between requests (or before the first) */
	H1_HEAD,     /* some bytes of a request head seen */
	H1_SERVING,  /* an exchange is in flight */
} h1_phase_t;

typedef struct h1 {
	hb_h1_parser_t *parser; /* from the io's cache while a request is read or served; NULL
				 * while idle between requests (take_parser, park_parser) */
	h1_phase_t phase;
	hb_exchange_t *x;	  /* the exchange in flight; NULL between requests */
	hb_ws_handshake_t *ws_hs; /* a valid WebSocket upgrade waiting for the app's answer */
	unsigned keep_alive : 1;  /* the connection may serve another request after this one */
	unsigned parser_paused : 1;
	int pending_error; /* status to answer on the parser error that follows; -1: queued */
	hb_request_t *h2c; /* a complete request with Upgrade: h2c, switched after the feed */
	uint64_t deadline; /* header, body or keep-alive deadline (0 = none) */
} h1_t;

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void parse_input(hb_conn_t *c);

static int on_request(void *ud, hb_request_t *req);
static int on_body(void *ud, const char *at, size_t len);
static int on_complete(void *ud);

static const hb_h1_callbacks_t h1_callbacks = {on_request, on_body, on_complete};

static h1_t *H(const hb_conn_t *c)
{
	return c->proto;
}

static void make_limits(const hb_config_t *cfg, hb_h1_limits_t *lim)
{
	lim->max_request_line = (uint32_t)cfg->limit_request_line;
	lim->max_fields = (uint32_t)cfg->limit_request_fields;
	lim->max_field_size = (uint32_t)cfg->limit_request_field_size;
	lim->max_header_bytes = (uint32_t)cfg->limit_request_header_size;
	lim->max_body = (uint64_t)cfg->max_body_size;
}

/* An idle keep-alive connection holds no parser (its state, head buffer and field table are
 * ~900 bytes): one comes from the io thread's cache when a request's first bytes arrive and
 * goes back when the connection is idle again. */
static int take_parser(hb_conn_t *c, h1_t *h)
{
	hb_io_t *io = c->io;

	if (io->h1_cached) {
		h->parser = io->h1_cache[--io->h1_cached];
		hb_h1_reuse(h->parser, c); /* cached parsers are between messages */
		return 0;
	}
	hb_h1_limits_t lim;
	make_limits(io->cfg, &lim);
	h->parser = hb_h1_new(&lim, &h1_callbacks, c);
	return h->parser ? 0 : -ENOMEM;
}

static void park_parser(hb_conn_t *c, h1_t *h)
{
	hb_io_t *io = c->io;
	hb_h1_parser_t *p = h->parser;

	if (!p)
		return;
	h->parser = NULL;
	if (!io->h1_cache)
		io->h1_cache = malloc(HB_IO_CACHE_MAX * sizeof(*io->h1_cache));
	if (!io->h1_cache || io->h1_cached >= HB_IO_CACHE_MAX || hb_h1_reuse(p, NULL) < 0) {
		hb_h1_free(p);
		return;
	}
	io->h1_cache[io->h1_cached++] = p;
}

int hb_conn_h1_start(hb_conn_t *c)
{
	h1_t *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->phase = H1_IDLE;
	h->deadline = hb_conn_after_s(c, c->io->cfg->header_timeout_s);
	hb_conn_set_handler(c, &hb_h1_handler, h);
	return 0;
}

static void h1_free(hb_conn_t *c)
{
	h1_t *h = H(c);

	park_parser(c, h); /* freed unless it is between requests */
	free(h->ws_hs);
	hb_request_free(h->h2c);
	free(h);
	c->proto = NULL;
}

static void respond_error(hb_conn_t *c, int status)
{
	char buf[512];
	size_t n = hb_h1_write_error(buf, sizeof(buf), status, c->io->date);

	hb_conn_write_copy(c, buf, n < sizeof(buf) ? n : 0);
	hb_conn_mark_dirty(c);
	hb_conn_start_closing(c);
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Pushes the body bytes gathered during one feed to the stream; pauses reading when the worker
 * has enough unread body. */
static void flush_body(hb_conn_t *c)
{
	hb_exchange_t *x = H(c)->x;
	int rc = x ? hb_exchange_flush_body(x) : 0;

	if (rc < 0)
		hb_conn_abort(c);
	else if (rc > 0)
		c->recv_paused = 1;
}

static void protocol_error(hb_conn_t *c, int rc, const char *why)
{
	h1_t *h = H(c);
	hb_exchange_t *x = h->x;

	if (h->pending_error < 0) { /* the rejection is already queued (WebSocket handshake) */
		h->pending_error = 0;
		hb_conn_mark_dirty(c);
		hb_conn_start_closing(c);
		return;
	}
	int status = h->pending_error ? h->pending_error : hb_h1_error_status(rc);

	hb_debug("io %d: bad request from %s: %d %s", c->io->idx, c->remote, status,
		 why ? why : "");
	h->pending_error = 0;
	if (x && !x->ended) {
		/* Broken body of a request in flight: the worker's reads fail; answer if we still
		 * can. */
		hb_stream_signal(x->stream, HB_ST_BODY_ERROR | HB_ST_CLIENT_GONE);
		if (x->head_sent) {
			hb_conn_abort(c);
			return;
		}
		x->abandoned = 1;
		x->stream->status = status;
		hb_exchange_log_now(x);
	} else {
		hb_exchange_log_error(c, NULL, status);
	}
	respond_error(c, status);
}

/* Feeds bytes to the parser; returns how many it used. */
static size_t feed(hb_conn_t *c, const char *p, size_t len)
{
	h1_t *h = H(c);
	size_t used = 0;
	const char *why = NULL;

	if (h->phase == H1_IDLE) {
		h->phase = H1_HEAD;
		h->deadline = hb_conn_after_s(c, c->io->cfg->header_timeout_s);
	}
	if (!h->parser && take_parser(c, h) < 0) {
		hb_conn_abort(c);
		return len;
	}
	int rc = hb_h1_feed(h->parser, p, len, &used, &why);
	flush_body(c);
	if (rc < 0) {
		protocol_error(c, rc, why);
		return len;
	}
	return used;
}

static int start_exchange(hb_conn_t *c, h1_t *h, hb_request_t *req);
static void on_head(hb_conn_t *c, hb_exchange_t *x, hb_response_t *r);
static void on_body_msg(hb_conn_t *c, hb_exchange_t *x, hb_chunk_t *ch, uint64_t len);
static void on_end(hb_conn_t *c, hb_exchange_t *x, uint32_t flags);

/* Upgrade: h2c (RFC 7540 3.2) on a request without a body: the switch happens after the feed
 * that completed it (the parser is not freed under its own callback); the bytes after the
 * request are the HTTP/2 connection's. Returns 1 when the handler was swapped. */
static int switch_to_h2c(hb_conn_t *c, const char *rest, size_t n)
{
	h1_t *h = H(c);
	hb_request_t *req = h->h2c;
	if (!req)
		return 0;
	h->h2c = NULL;
	const hb_header_t *st = hb_request_header(req, "http2-settings");
	char *backlog = NULL;
	size_t blen = hb_conn_in_take(c, &backlog);
	if (hb_conn_h2_upgrade(c, req, st->value, st->value_len) != 0) {
		/* a bad HTTP2-Settings: served as HTTP/1.1, the upgrade ignored */
		if (blen)
			hb_conn_in_append(c, backlog, blen);
		free(backlog);
		if (start_exchange(c, h, req) != 0) {
			hb_exchange_log_error(c, NULL, h->pending_error);
			respond_error(c, h->pending_error);
			return 1;
		}
		h->x->body_done = 1;
		hb_stream_signal(h->x->stream, HB_ST_BODY_EOF);
		return 0;
	}
	/* h is freed: the HTTP/2 handler takes the rest */
	if (n)
		c->handler->on_data(c, (char *)rest, n);
	if (blen && c->state == HB_CONN_OPEN)
		c->handler->on_data(c, backlog, blen);
	free(backlog);
	return 1;
}

static void parse_input(hb_conn_t *c)
{
	while (c->state == HB_CONN_OPEN && !H(c)->parser_paused && c->in_off < c->in_len) {
		size_t used = feed(c, c->in + c->in_off, c->in_len - c->in_off);
		c->in_off += used;
		if (H(c)->h2c) {
			switch_to_h2c(c, NULL, 0); /* the backlog after the request goes along */
			return;
		}
		if (used == 0)
			break;
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
}

static void h1_on_data(hb_conn_t *c, char *p, size_t len)
{
	if (H(c)->parser_paused || c->in_len > c->in_off) {
		hb_conn_in_append(c, p, len);
		parse_input(c);
	} else {
		size_t used = feed(c, p, len);
		if (H(c)->h2c && switch_to_h2c(c, p + used, len - used))
			return;
		if (used < len && c->state == HB_CONN_OPEN)
			hb_conn_in_append(c, p + used, len - used);
	}
}

static void h1_on_peer_closed(hb_conn_t *c)
{
	h1_t *h = H(c);

	/* The client closed (or reset): as uvicorn does, the app hears it now (ASGI
	 * http.disconnect, WSGI close()), even if it had sent the whole request. */
	if (h->phase == H1_SERVING && h->x)
		hb_exchange_client_gone(h->x, h->x->body_done ? 0 : HB_ST_BODY_ERROR);
}

/* ---- parser callbacks -------------------------------------------------------------------- */

/* Upgrade: websocket goes to the WebSocket handshake unless the app is plain WSGI. */
static int is_websocket_upgrade(hb_io_t *io, const hb_request_t *req)
{
	const hb_header_t *h = hb_request_header(req, "upgrade");

	return io->srv->app_class == HB_WORKER_ASGI && h && h->value_len == 9 &&
	       strncasecmp(h->value, "websocket", 9) == 0;
}

/* limit_concurrency: the request is answered here, as a worker would answer it (head, body,
 * end), and logged; the connection stays open when the request has no body to skip. */
static int answer_busy(hb_conn_t *c, hb_exchange_t *x)
{
	hb_response_t *r;
	hb_chunk_t *ch;

	if (hb_exchange_busy_response(c->io, &r, &ch) < 0)
		return -1;
	x->ended = 1; /* no worker: nothing more will come */
	x->body_done = !(x->stream->req->flags & HB_REQ_HAS_BODY);
	on_head(c, x, r);
	free(r);
	on_body_msg(c, x, ch, 0);
	on_end(c, x, 0);
	return 0;
}

/* A new exchange for req, dispatched to a worker. Returns 0, or -1 with pending_error set. */
static int start_exchange(hb_conn_t *c, h1_t *h, hb_request_t *req)
{
	hb_io_t *io = c->io;
	uint64_t now = hb_io_now(io);
	hb_exchange_t *x = hb_exchange_new(c, 0);
	hb_stream_t *s = x ? hb_stream_new(io->srv->hub, io->idx, req) : NULL;

	if (!s) {
		if (x)
			hb_exchange_release(x);
		hb_request_free(req);
		h->pending_error = 500;
		return -1;
	}
	hb_exchange_attach(x, s);
	s->id = ++io->next_id;
	s->t_start_ns = now;
	h->x = x;
	c->requests++;
	c->recv_paused = 0;
	h->phase = H1_SERVING;
	h->keep_alive = (req->flags & HB_REQ_KEEP_ALIVE) && io->cfg->keepalive_s > 0 &&
			!atomic_load(&io->srv->draining);
	h->deadline =
		(req->flags & HB_REQ_HAS_BODY) ? hb_conn_after_s(c, io->cfg->body_timeout_s) : 0;
	x->resp_deadline =
		io->cfg->timeout_ms ? now + (uint64_t)io->cfg->timeout_ms * 1000000ull : 0;
	if (hb_exchange_over_limit(io)) {
		hb_stream_release(s); /* never dispatched: the worker's reference goes now */
		if (answer_busy(c, x) == 0)
			return 0;
		hb_exchange_release(x);
		h->x = NULL;
		h->pending_error = 503;
		return -1;
	}
	if (hb_hub_dispatch_batched(io->srv->hub, io->idx, s) < 0) {
		/* No worker can take it (all queues full, or none ready): overload answer. */
		hb_stream_release(s); /* the worker's reference; the exchange drops the other */
		hb_exchange_release(x);
		h->x = NULL;
		h->pending_error = 503;
		return -1;
	}
	return 0;
}

/* True when a TE header lists "trailers" (RFC 9110 10.1.4), ASCII case-insensitive. */
static int te_trailers(const hb_request_t *req)
{
	for (uint32_t i = 0; i < req->nheaders; i++) {
		const hb_header_t *h = &req->headers[i];
		if (h->name_len != 2 || strncasecmp(h->name, "te", 2) != 0)
			continue;
		for (const char *p = h->value, *end = p + h->value_len; p < end;) {
			while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
				p++;
			const char *q = p;
			while (q < end && *q != ',' && *q != ';' && *q != ' ' && *q != '\t')
				q++;
			if (q - p == 8 && strncasecmp(p, "trailers", 8) == 0)
				return 1;
			while (q < end && *q != ',')
				q++;
			p = q;
		}
	}
	return 0;
}

static int on_request(void *ud, hb_request_t *req)
{
	hb_conn_t *c = ud;
	h1_t *h = H(c);

	hb_conn_fill_request(c, req);
	/* A trailer section needs chunked framing (HTTP/1.1) and a client that said it takes one:
	 * without TE: trailers the app's trailers are dropped, as uvicorn and hypercorn do. */
	if (req->http_minor >= 1 && te_trailers(req))
		req->flags |= HB_REQ_TRAILERS;
	if (hb_conn_h2_wants_upgrade(c, req)) {
		hb_request_free(h->h2c);
		h->h2c = req; /* switched once the feed returns */
		return 0;
	}
	if (is_websocket_upgrade(c->io, req)) {
		free(h->ws_hs);
		h->ws_hs = NULL;
		int st = hb_conn_ws_check(c, req, &h->ws_hs);
		if (st != 0) {
			hb_request_free(req);
			h->pending_error = st > 0 ? -1 : 500;
			return -1;
		}
	}
	return start_exchange(c, h, req);
}

static int on_body(void *ud, const char *at, size_t len)
{
	hb_conn_t *c = ud;
	h1_t *h = H(c);
	hb_exchange_t *x = h->x;

	h->deadline = hb_conn_after_s(c, c->io->cfg->body_timeout_s);
	if (!x || x->ended || x->abandoned)
		return 0; /* the app is done with this request: discard the rest of its body */
	return hb_exchange_body_add(x, at, len);
}

static int on_complete(void *ud)
{
	hb_conn_t *c = ud;
	h1_t *h = H(c);
	hb_exchange_t *x = h->x;

	flush_body(c);
	h->parser_paused = 1;
	h->deadline = 0;
	if (!x)
		return 0;
	x->body_done = 1;
	/* A chunk still waiting for room is part of the body: the end is told after it. */
	if (x->body_held)
		x->eof_pending = 1;
	else if (!x->ended)
		hb_stream_signal(x->stream, HB_ST_BODY_EOF);
	return 0;
}

/* ---- worker messages --------------------------------------------------------------------- */

/* Trailers go after a chunked body: a Content-Length the app set gives way to chunking. */
static void use_trailers(hb_exchange_t *x, hb_response_t *r)
{
	uint32_t kept = 0;
	for (uint32_t i = 0; i < r->nheaders; i++)
		if (r->headers[i].name_len != 14 ||
		    strncasecmp(r->headers[i].name, "content-length", 14) != 0)
			r->headers[kept++] = r->headers[i];
	r->nheaders = kept;
	r->content_length = -1;
	x->trailers = 1;
}

/* 103 Early Hints and other interim heads: HTTP/1.1 clients only (RFC 9110 15.2). */
static void on_interim(hb_conn_t *c, hb_exchange_t *x, const hb_response_t *r)
{
	const hb_request_t *req = x->stream->req;
	if (req->http_minor < 1 || r->status < 100 || r->status > 199 || r->status == 101)
		return;
	size_t n = hb_h1_write_interim(NULL, 0, r);
	char *buf = malloc(n);
	if (!buf)
		return; /* a hint only: the response goes on without it */
	hb_h1_write_interim(buf, n, r);
	hb_conn_write(c, buf, n, buf, NULL, 0);
}

/* The trailer section ends the chunked body now: what the worker posts after it is dropped. */
static void on_trailers(hb_conn_t *c, hb_exchange_t *x, const hb_response_t *r)
{
	if (!x->trailers || !x->chunked)
		return;
	size_t n = hb_h1_write_trailers(NULL, 0, r);
	char *buf = malloc(n);
	if (!buf)
		return; /* END writes the plain last chunk */
	hb_h1_write_trailers(buf, n, r);
	hb_conn_write(c, buf, n, buf, NULL, 0);
	x->chunked = 0;
	x->no_body = 1;
}

static void on_head(hb_conn_t *c, hb_exchange_t *x, hb_response_t *r)
{
	h1_t *h = H(c);
	hb_request_t *req = x->stream->req;
	char buf[2048];

	if ((req->flags & HB_REQ_CHANNEL) && h->ws_hs && r->status == 101) {
		hb_ws_handshake_t *hs = h->ws_hs;
		h->ws_hs = NULL;
		h->x = NULL;
		hb_conn_ws_open(c, x, hs, r); /* swaps the handler: h is freed */
		return;
	}
	x->stream->status = r->status;
	hb_exchange_head(x, r);
	x->no_body = (req->flags & HB_REQ_HEAD) || !hb_exchange_status_has_body(r->status);
	if ((r->flags & HB_RESP_TRAILERS) && (req->flags & HB_REQ_TRAILERS) && !x->no_body)
		use_trailers(x, r);
	x->resp_cl = r->content_length;
	if (r->content_length < 0 && !x->no_body) {
		if (req->http_minor >= 1)
			x->chunked = 1;
		else
			h->keep_alive = 0; /* HTTP/1.0 without a length: the close ends the body */
	}
	if ((r->flags & HB_RESP_CLOSE) || !x->body_done || atomic_load(&c->io->srv->draining))
		h->keep_alive = 0;
	size_t n = hb_h1_write_head(buf, sizeof(buf), r, req->http_minor, x->chunked, h->keep_alive,
				    c->io->date);
	if (n <= sizeof(buf)) {
		hb_conn_write_copy(c, buf, n);
	} else {
		char *big = malloc(n);
		if (!big) {
			hb_conn_abort(c);
			return;
		}
		hb_h1_write_head(big, n, r, req->http_minor, x->chunked, h->keep_alive,
				 c->io->date);
		hb_conn_write(c, big, n, big, NULL, 0);
	}
	x->head_sent = 1;
	x->resp_deadline = 0;
}

static void on_body_msg(hb_conn_t *c, hb_exchange_t *x, hb_chunk_t *ch, uint64_t len)
{
	size_t n = (size_t)hb_exchange_resp_take(x, ch->len);

	if (n == 0) {
		free(ch);
		hb_stream_out_done(x->stream, len);
		return;
	}
	if (x->chunked) {
		char pre[24];
		hb_conn_write_copy(c, pre, hb_h1_chunk_prefix(pre, n));
	}
	hb_conn_write(c, ch->data, n, ch, x->stream, len);
	if (x->chunked)
		hb_conn_write(c, "\r\n", 2, NULL, NULL, 0);
}

static void on_file_msg(hb_conn_t *c, hb_exchange_t *x, hb_file_chunk_t *f)
{
	int64_t len = hb_exchange_file_len(f);

	if (len < 0 || x->no_body || x->abandoned) {
		close(f->fd);
		free(f);
		return;
	}
	len = (int64_t)hb_exchange_resp_take(x, (uint64_t)len);
	if (x->chunked && len > 0) {
		char pre[24];
		hb_conn_write_copy(c, pre, hb_h1_chunk_prefix(pre, (size_t)len));
	}
	if (len > 0)
		hb_conn_write_file(c, f->fd, f->offset, len);
	else
		close(f->fd);
	if (x->chunked && len > 0)
		hb_conn_write(c, "\r\n", 2, NULL, NULL, 0);
	free(f);
}

static void on_end(hb_conn_t *c, hb_exchange_t *x, uint32_t flags)
{
	if (x->abandoned)
		return;
	if (flags & HB_END_ABORT)
		x->abort = 1;
	if (!x->head_sent) {
		x->stream->status = 500;
		x->abandoned = 1;
		respond_error(c, 500);
		return;
	}
	if (hb_exchange_resp_short(x))
		x->abort = 1;
	if (x->abort)
		H(c)->keep_alive = 0;
	else if (x->chunked)
		hb_conn_write(c, "0\r\n\r\n", 5, NULL, NULL, 0);
}

static void on_resume(hb_conn_t *c, hb_exchange_t *x)
{
	if (hb_exchange_resume(x))
		return; /* still full: the worker will post RESUME again */
	c->recv_paused = 0;
	hb_conn_update_reading(c);
}

static void send_continue(hb_conn_t *c, hb_exchange_t *x)
{
	hb_conn_write(c, continue_100, sizeof(continue_100) - 1, NULL, NULL, 0);
	x->continue_sent = 1;
}

/* HEAD may swap the handler (a WebSocket upgrade): nothing of h1_t is used after it. */
/* clang-format off */
static const hb_exchange_ops_t h1_ops = {
	.head = on_head, .interim = on_interim, .send_continue = send_continue,
	.body = on_body_msg, .file = on_file_msg, .trailers = on_trailers,
	.end = on_end, .resume = on_resume, /* no pushes over HTTP/1.1 */
};
/* clang-format on */

static void h1_on_message(hb_conn_t *c, hb_exchange_t *x, hb_msg_t *m)
{
	hb_exchange_on_message(c, x, m, !x->abandoned, &h1_ops);
}

/* ---- end of an exchange ------------------------------------------------------------------ */

static void exchange_done(hb_conn_t *c, h1_t *h)
{
	hb_exchange_t *x = h->x;
	int abort = x->abort;

	h->x = NULL;
	hb_exchange_finish(x);
	if (abort) {
		hb_conn_abort(c);
		return;
	}
	if (!h->keep_alive || c->state != HB_CONN_OPEN) {
		hb_conn_start_closing(c);
		return;
	}
	h->phase = H1_IDLE;
	h->deadline = hb_conn_after_s(c, c->io->cfg->keepalive_s);
	h->parser_paused = 0;
	c->recv_paused = 0;
	hb_h1_resume(h->parser);
	parse_input(c);
	hb_conn_update_reading(c);
	if (h->phase == H1_IDLE && c->state == HB_CONN_OPEN) { /* no byte of a next request yet */
		park_parser(c, h);
		hb_conn_in_release(c);
	}
}

/* Output drained: the exchange whose response is complete is done; the next request may go. */
static void h1_on_sent(hb_conn_t *c)
{
	h1_t *h = H(c);

	if (h->x && h->x->ended)
		exchange_done(c, h);
}

/* ---- deadlines and draining -------------------------------------------------------------- */

static void serving_tick(hb_conn_t *c, h1_t *h, uint64_t now)
{
	hb_exchange_t *x = h->x;

	if (!x)
		return;
	if (hb_exchange_timed_out(x, now)) {
		x->abandoned = 1;
		respond_error(c, 504);
		return;
	}
	if (!x->body_done && !c->recv_paused && h->deadline && now >= h->deadline)
		hb_conn_abort(c); /* body stalled */
}

static void h1_on_tick(hb_conn_t *c, uint64_t now)
{
	h1_t *h = H(c);

	switch (h->phase) {
	case H1_IDLE:
	case H1_HEAD:
		if (h->deadline && now >= h->deadline)
			hb_conn_abort(c);
		break;
	case H1_SERVING:
		serving_tick(c, h, now);
		break;
	}
}

static void h1_on_drain(hb_conn_t *c)
{
	h1_t *h = H(c);

	if (h->phase == H1_IDLE) {
		hb_conn_abort(c);
		return;
	}
	if (h->phase == H1_SERVING)
		h->keep_alive = 0;
	h1_on_tick(c, hb_io_now(c->io));
}

const hb_proto_handler_t hb_h1_handler = {
	.name = "http/1.1",
	.on_data = h1_on_data,
	.on_message_from_worker = h1_on_message,
	.on_sent = h1_on_sent,
	.on_tick = h1_on_tick,
	.on_drain = h1_on_drain,
	.on_peer_closed = h1_on_peer_closed,
	.free = h1_free,
};
