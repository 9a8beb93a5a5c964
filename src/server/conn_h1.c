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

/* Pipelining. The requests a client sent ahead are parsed and handed to the workers together
 * (up to pipeline_depth), so a burst costs one wake and its responses go out in one send. The
 * exchanges of the requests parsed and not yet finished form the pipeline, in request order:
 *
 *   first ... (END written, output not yet sent) ... writer ... (responses held) ... last
 *
 * The writer's worker messages are written as they come; those of the exchanges after it are
 * held on them (hb_exchange_hold) and written when it becomes the writer, so responses leave
 * in order. Exchanges before the writer are finished (logged, released) when the output has
 * been sent. Only a "simple" request (no body, no Upgrade, keep-alive) lets the parser read
 * past it; any other request waits undispatched until it is the first (the exchanges before it
 * sent), so bodies, 100 Continue, upgrades and the close are served one at a time as before. A
 * bad request after the pipeline is answered (and the connection closed) once it is empty. */
typedef struct h1 {
	hb_h1_parser_t *parser; /* from the io's cache while a request is read or served; NULL
				 * while idle between requests (take_parser, park_parser) */
	h1_phase_t phase;
	hb_exchange_t *first, *writer, *last; /* the pipeline (above); NULL when empty */
	uint32_t depth;			      /* exchanges in the pipeline */
	hb_ws_handshake_t *ws_hs; /* a valid WebSocket upgrade waiting for the app's answer */
	unsigned parser_paused : 1;
	int pending_error;  /* status to answer on the parser error that follows; -1: queued */
	int deferred_error; /* a bad request behind the pipeline: answered when it is empty */
	hb_request_t *h2c;  /* a complete request with Upgrade: h2c, switched after the feed */
	uint64_t deadline;  /* header, body or keep-alive deadline (0 = none) */
} h1_t;

/* Per exchange (its proto tail). */
typedef struct h1x {
	hb_exchange_t *next;	 /* the next request of the pipeline */
	unsigned keep_alive : 1; /* the connection may serve another request after this one */
	unsigned simple : 1;	 /* no body, no Upgrade, keep-alive: the parser may read past it */
	unsigned launched : 1;	 /* handed to a worker, or refused (busy, error) */
	unsigned busy : 1;	 /* limit_concurrency refused it: answer 503 in its turn */
	unsigned done : 1;	 /* its END was written */
	int error;		 /* answer this status (and close) in its turn */
} h1x_t;

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

static h1x_t *X(const hb_exchange_t *x)
{
	return (h1x_t *)(void *)x->proto;
}

/* Whether the parser may go on past the request just read: it is simple and handed on, there
 * is room in the pipeline, and the connection stays. */
static int may_read_ahead(const hb_conn_t *c, const h1_t *h)
{
	const hb_exchange_t *x = h->last;

	return x && X(x)->simple && X(x)->launched && x->body_done && !x->abandoned &&
	       h->depth < (uint32_t)c->io->cfg->pipeline_depth && c->state == HB_CONN_OPEN &&
	       !h->deferred_error && !atomic_load(&c->io->srv->draining);
}

/* Unlinks x from the pipeline (wherever it is). */
static void pipe_remove(h1_t *h, hb_exchange_t *x)
{
	hb_exchange_t *prev = NULL;

	for (hb_exchange_t *y = h->first; y && y != x; y = X(y)->next)
		prev = y;
	if (prev)
		X(prev)->next = X(x)->next;
	else if (h->first == x)
		h->first = X(x)->next;
	else
		return; /* not in the pipeline */
	if (h->last == x)
		h->last = prev;
	if (h->writer == x)
		h->writer = X(x)->next;
	X(x)->next = NULL;
	h->depth--;
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
	hb_exchange_t *x = H(c)->last;
	int rc = x ? hb_exchange_flush_body(x) : 0;

	if (rc < 0)
		hb_conn_abort(c);
	else if (rc > 0)
		c->recv_paused = 1;
}

static void protocol_error(hb_conn_t *c, int rc, const char *why)
{
	h1_t *h = H(c);
	hb_exchange_t *x = h->last; /* NULL, the request whose body is read, or one before */

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
	if (x && !x->body_done && !x->ended) {
		/* Broken body of a request in flight: the worker's reads fail; answer if we still
		 * can. */
		hb_stream_signal(x->stream, HB_ST_BODY_ERROR | HB_ST_CLIENT_GONE);
		if (!X(x)->launched) { /* behind the pipeline: answered in its turn */
			x->abandoned = 1;
			X(x)->error = status;
			h->parser_paused = 1;
			return;
		}
		if (x->head_sent) {
			hb_conn_abort(c);
			return;
		}
		x->abandoned = 1;
		x->stream->status = status;
		hb_exchange_log_now(x);
	} else if (h->first && (!x || x->body_done)) {
		/* A bad request after pipelined ones: their responses go first. */
		h->deferred_error = status;
		h->parser_paused = 1;
		return;
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
	if (rc == HB_H1_PAUSED && !h->parser_paused && c->proto == h)
		hb_h1_resume(h->parser); /* reading ahead (on_complete): the next request goes on */
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
		h->last->body_done = 1;
		hb_stream_signal(h->last->stream, HB_ST_BODY_EOF);
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
		return;
	}
	while (len > 0) {
		size_t used = feed(c, p, len);
		if (H(c)->h2c && switch_to_h2c(c, p + used, len - used))
			return;
		p += used;
		len -= used;
		if (c->state != HB_CONN_OPEN || H(c)->parser_paused || used == 0)
			break;
	}
	if (len > 0 && c->state == HB_CONN_OPEN)
		hb_conn_in_append(c, p, len);
}

static void h1_on_peer_closed(hb_conn_t *c)
{
	h1_t *h = H(c);

	/* The client closed (or reset): as uvicorn does, the app hears it now (ASGI
	 * http.disconnect, WSGI close()), even if it had sent the whole request. */
	for (hb_exchange_t *x = h->first; x; x = X(x)->next)
		if (X(x)->launched)
			hb_exchange_client_gone(x, x->body_done ? 0 : HB_ST_BODY_ERROR);
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

static void writer_ended(hb_conn_t *c, h1_t *h);
static void abandon_after(h1_t *h, hb_exchange_t *x);

/* A new exchange for req at the end of the pipeline, not yet dispatched. Returns it, or NULL
 * with pending_error set. */
static hb_exchange_t *new_exchange(hb_conn_t *c, h1_t *h, hb_request_t *req)
{
	hb_io_t *io = c->io;
	uint64_t now = hb_io_now(io);
	hb_exchange_t *x = hb_exchange_new(c, sizeof(h1x_t));
	hb_stream_t *s = x ? hb_stream_new(io->srv->hub, io->idx, req) : NULL;

	if (!s) {
		if (x)
			hb_exchange_release(x);
		hb_request_free(req);
		h->pending_error = 500;
		return NULL;
	}
	hb_exchange_attach(x, s);
	x->undispatched = 1;
	s->id = ++io->next_id;
	s->t_start_ns = now;
	c->requests++;
	c->recv_paused = 0;
	h->phase = H1_SERVING;
	h1x_t *e = X(x);
	e->keep_alive = (req->flags & HB_REQ_KEEP_ALIVE) && io->cfg->keepalive_s > 0 &&
			!atomic_load(&io->srv->draining);
	e->simple = e->keep_alive && !(req->flags & HB_REQ_HAS_BODY) &&
		    !hb_request_header(req, "upgrade");
	h->deadline =
		(req->flags & HB_REQ_HAS_BODY) ? hb_conn_after_s(c, io->cfg->body_timeout_s) : 0;
	x->resp_deadline =
		io->cfg->timeout_ms ? now + (uint64_t)io->cfg->timeout_ms * 1000000ull : 0;
	if (h->last)
		X(h->last)->next = x;
	else
		h->first = x;
	h->last = x;
	if (!h->writer)
		h->writer = x; /* every exchange before it has written its END */
	h->depth++;
	return x;
}

/* Hands x to a worker. One that cannot go (limit_concurrency, no worker) is answered now when
 * it is the writer, else in its turn. Returns 0, or -1 with pending_error set and x released
 * (the writer could not be answered). */
static int launch(hb_conn_t *c, h1_t *h, hb_exchange_t *x)
{
	hb_io_t *io = c->io;
	hb_stream_t *s = x->stream;

	X(x)->launched = 1;
	x->undispatched = 0;
	if (hb_exchange_over_limit(io)) {
		hb_stream_release(s); /* never dispatched: the worker's reference goes now */
		x->ended = 1;
		if (x != h->writer) {
			X(x)->busy = 1;
			return 0;
		}
		if (answer_busy(c, x) == 0) {
			writer_ended(c, h);
			return 0;
		}
	} else if (hb_hub_dispatch_batched(io->srv->hub, io->idx, s) == 0) {
		return 0;
	} else {
		/* No worker can take it (all queues full, or none ready): overload answer. */
		hb_stream_release(s); /* the worker's reference; the exchange drops the other */
		x->ended = 1;
		if (x != h->writer) {
			X(x)->error = 503;
			return 0;
		}
	}
	pipe_remove(h, x);
	hb_exchange_release(x);
	h->pending_error = 503;
	return -1;
}

/* A new exchange for req, dispatched. Returns 0, or -1 with pending_error set. */
static int start_exchange(hb_conn_t *c, h1_t *h, hb_request_t *req)
{
	hb_exchange_t *x = new_exchange(c, h, req);

	return x ? launch(c, h, x) : -1;
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
	if (h->first) {
		/* Behind pipelined requests: a simple one goes now; any other waits to be the
		 * first (h1_on_sent), and an Upgrade: h2c is then ignored (served as HTTP/1.1). */
		hb_exchange_t *x = new_exchange(c, h, req);
		if (!x)
			return -1;
		return X(x)->simple ? launch(c, h, x) : 0;
	}
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
	hb_exchange_t *x = h->last;

	h->deadline = hb_conn_after_s(c, c->io->cfg->body_timeout_s);
	if (!x || x->ended || x->abandoned)
		return 0; /* the app is done with this request: discard the rest of its body */
	return hb_exchange_body_add(x, at, len);
}

static int on_complete(void *ud)
{
	hb_conn_t *c = ud;
	h1_t *h = H(c);
	hb_exchange_t *x = h->last;

	flush_body(c);
	h->parser_paused = 1;
	h->deadline = 0;
	if (!x || x->body_done) /* h2c (switched after the feed), or an earlier request's */
		return 0;
	x->body_done = 1;
	/* A chunk still waiting for room is part of the body: the end is told after it. */
	if (x->body_held)
		x->eof_pending = 1;
	else if (!x->ended)
		hb_stream_body_eof(x->stream);
	h->parser_paused = !may_read_ahead(c, h);
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
		pipe_remove(h, x);	      /* the only one: an upgrade waits to be the first */
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
			X(x)->keep_alive = 0; /* HTTP/1.0 without a length: the close ends */
	}
	if ((r->flags & HB_RESP_CLOSE) || !x->body_done || atomic_load(&c->io->srv->draining))
		X(x)->keep_alive = 0;
	size_t n = hb_h1_write_head(buf, sizeof(buf), r, req->http_minor, x->chunked,
				    X(x)->keep_alive, c->io->date);
	if (n <= sizeof(buf)) {
		hb_conn_write_copy(c, buf, n);
	} else {
		char *big = malloc(n);
		if (!big) {
			hb_conn_abort(c);
			return;
		}
		hb_h1_write_head(big, n, r, req->http_minor, x->chunked, X(x)->keep_alive,
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
		X(x)->keep_alive = 0;
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

/* x's turn has come, its held messages are written (or its refusal answered). Returns 1 when
 * that wrote its END. */
static int start_writing(hb_conn_t *c, hb_exchange_t *x)
{
	if (X(x)->busy) {
		if (answer_busy(c, x) == 0)
			return 1;
		X(x)->error = 503;
	}
	if (X(x)->error) {
		x->abandoned = 1;
		x->stream->status = X(x)->error;
		hb_exchange_log_now(x);
		respond_error(c, X(x)->error);
		return 1;
	}
	hb_msg_t *held = x->held;
	uint32_t n = x->nheld;
	int ended = 0;
	x->held = NULL;
	x->nheld = x->held_cap = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (ended || c->handler != &hb_h1_handler || c->state == HB_CONN_DEAD) {
			hb_exchange_drop_msg(&held[i]);
			continue;
		}
		ended = held[i].type == HB_MSG_END;
		hb_exchange_on_message(c, x, &held[i], !x->abandoned, &h1_ops);
	}
	free(held);
	return ended;
}

/* The exchanges after `x`, whose responses will not be written (the connection closes after
 * x): the apps hear the client is gone; those no worker has are released now, the others when
 * their END comes (h1_on_message). */
static void abandon_after(h1_t *h, hb_exchange_t *x)
{
	for (hb_exchange_t *y = X(x)->next, *n; y; y = n) {
		n = X(y)->next;
		if (y->ended || y->undispatched) {
			pipe_remove(h, y);
			hb_exchange_release(y);
			continue;
		}
		y->abandoned = 1;
		hb_exchange_client_gone(y, 0);
	}
}

/* The writer's END was written: the next exchange writes what it holds, and so on while those
 * ended too. A response that closes the connection stops the pipeline. */
static void writer_ended(hb_conn_t *c, h1_t *h)
{
	for (hb_exchange_t *x = h->writer; x; x = h->writer) {
		X(x)->done = 1;
		if (x->abandoned || x->abort || !X(x)->keep_alive || c->state != HB_CONN_OPEN) {
			h->writer = NULL;
			abandon_after(h, x);
			return;
		}
		h->writer = X(x)->next;
		/* one not yet handed on waits until the ones before it are sent (h1_on_sent) */
		if (!h->writer || !X(h->writer)->launched || !start_writing(c, h->writer))
			return;
		if (c->handler != &hb_h1_handler)
			return;
	}
}

static void h1_on_message(hb_conn_t *c, hb_exchange_t *x, hb_msg_t *m)
{
	h1_t *h = H(c);
	uint32_t type = m->type;

	if (x != h->writer) {
		if (!x->abandoned) {
			if (hb_exchange_hold(x, m) < 0) /* written in its turn (writer_ended) */
				hb_conn_abort(c);
			return;
		}
		hb_exchange_drop_msg(m); /* after a close: nothing of it is written */
		if (type == HB_MSG_END) {
			pipe_remove(h, x);
			hb_exchange_release(x);
		}
		return;
	}
	hb_exchange_on_message(c, x, m, !x->abandoned, &h1_ops);
	if (type == HB_MSG_END && c->handler == &hb_h1_handler)
		writer_ended(c, h);
}

/* ---- end of an exchange ------------------------------------------------------------------ */

/* x is the first and has not been handed on (a request that waited for the ones before it). */
static void launch_waiting(hb_conn_t *c, h1_t *h, hb_exchange_t *x)
{
	hb_request_t *req = x->stream->req;

	if (X(x)->error) {
		X(x)->launched = 1;
		if (start_writing(c, x))
			writer_ended(c, h);
		return;
	}
	if (is_websocket_upgrade(c->io, req)) {
		free(h->ws_hs);
		h->ws_hs = NULL;
		int st = hb_conn_ws_check(c, req, &h->ws_hs);
		if (st != 0) { /* > 0: the rejection is queued */
			pipe_remove(h, x);
			hb_exchange_release(x);
			if (st < 0) {
				hb_exchange_log_error(c, NULL, 500);
				respond_error(c, 500);
				return;
			}
			hb_conn_mark_dirty(c);
			hb_conn_start_closing(c);
			return;
		}
	}
	if (launch(c, h, x) < 0) {
		hb_exchange_log_error(c, NULL, h->pending_error);
		respond_error(c, h->pending_error);
		h->pending_error = 0;
	}
}

/* The pipeline is empty: the connection waits for the next request, or answers the bad one. */
static void pipeline_empty(hb_conn_t *c, h1_t *h)
{
	if (h->deferred_error) {
		int status = h->deferred_error;
		h->deferred_error = 0;
		hb_exchange_log_error(c, NULL, status);
		respond_error(c, status);
		return;
	}
	h->parser_paused = 0;
	c->recv_paused = 0;
	hb_h1_resume(h->parser);
	if (hb_h1_idle(h->parser)) {
		h->phase = H1_IDLE;
		h->deadline = hb_conn_after_s(c, c->io->cfg->keepalive_s);
	} else { /* read ahead: part of the next head is in the parser already */
		h->phase = H1_HEAD;
		h->deadline = hb_conn_after_s(c, c->io->cfg->header_timeout_s);
	}
	parse_input(c);
	hb_conn_update_reading(c);
	if (h->phase == H1_IDLE && c->state == HB_CONN_OPEN) { /* no byte of a next request yet */
		park_parser(c, h);
		hb_conn_in_release(c);
	}
}

/* The parser had stopped at the pipeline's depth: room again. */
static void read_ahead(hb_conn_t *c, h1_t *h)
{
	h->parser_paused = 0;
	hb_h1_resume(h->parser);
	parse_input(c);
	hb_conn_update_reading(c);
}

/* Output drained: the exchanges whose responses are written out are finished; the pipeline
 * moves on (a request that waited goes, the parser reads ahead again). */
static void h1_on_sent(hb_conn_t *c)
{
	h1_t *h = H(c);
	hb_exchange_t *x;

	while ((x = h->first) && X(x)->done) {
		int abort = x->abort, close = !X(x)->keep_alive;
		pipe_remove(h, x);
		hb_exchange_finish(x);
		if (abort) {
			hb_conn_abort(c);
			return;
		}
		if (close || c->state != HB_CONN_OPEN) {
			hb_conn_start_closing(c);
			return;
		}
	}
	if (c->state != HB_CONN_OPEN)
		return;
	if (x && !X(x)->launched)
		launch_waiting(c, h, x);
	else if (!x)
		pipeline_empty(c, h);
	else if (h->parser_paused && may_read_ahead(c, h))
		read_ahead(c, h);
	if (c->state != HB_CONN_DEAD && !hb_conn_out_empty(c))
		hb_conn_mark_dirty(c); /* what this wrote goes out with the next batch */
}

/* ---- deadlines and draining -------------------------------------------------------------- */

static void serving_tick(hb_conn_t *c, h1_t *h, uint64_t now)
{
	hb_exchange_t *x = h->writer; /* the ones after it are timed when their turn comes */
	hb_exchange_t *t = h->last;   /* the one whose body is read */

	if (x && X(x)->launched && !x->ended && hb_exchange_timed_out(x, now)) {
		x->abandoned = 1;
		respond_error(c, 504);
		abandon_after(h, x); /* the close comes now: the requests after it go unanswered */
		return;
	}
	if (t && !t->body_done && !c->recv_paused && h->deadline && now >= h->deadline)
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
	if (h->phase == H1_SERVING && h->last)
		X(h->last)->keep_alive = 0;
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
