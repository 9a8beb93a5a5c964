#include "server/conn_h2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/hub.h"
#include "core/log.h"
#include "server/conn_addr.h"
#include "server/conn_h2_priv.h"
#include "server/transport_tls.h"

#define OUT_BATCH (256u * 1024u) /* engine output queued per flush; the rest after on_sent */

static h2c_t *C(const hb_conn_t *c)
{
	return hb_h2c(c);
}

static h2x_t *X(hb_exchange_t *x)
{
	return hb_h2x(x);
}

void hb_conn_h2_limits(const hb_config_t *cfg, hb_h2_limits_t *lim)
{
	hb_h2_limits_default(lim);
	lim->max_concurrent_streams = (uint32_t)cfg->h2_max_concurrent_streams;
	lim->max_header_list = (uint32_t)cfg->h2_max_header_list_size;
	lim->max_fields = (uint32_t)cfg->limit_request_fields;
	lim->initial_window = (uint32_t)cfg->h2_initial_window_size;
	lim->max_frame_size = (uint32_t)cfg->h2_max_frame_size;
	lim->max_body = (uint64_t)cfg->max_body_size;
	lim->push = cfg->h2_push;
	lim->max_resets = (uint32_t)cfg->h2_max_resets;
	lim->max_control = (uint32_t)cfg->h2_max_control_frames;
	lim->max_continuations = (uint32_t)cfg->h2_max_continuations;
}

/* ---- the response body queue ---- */

static void item_unlink(h2c_t *h, qitem_t *q)
{
	if (q->cprev)
		q->cprev->cnext = q->cnext;
	else
		h->items = q->cnext;
	if (q->cnext)
		q->cnext->cprev = q->cprev;
}

static void item_free(h2c_t *h, qitem_t *q)
{
	item_unlink(h, q);
	if (q->fd >= 0)
		close(q->fd);
	free(q->ch);
	free(q);
}

static void enqueue(h2c_t *h, h2x_t *hx, qitem_t *q)
{
	q->cnext = h->items;
	if (h->items)
		h->items->cprev = q;
	h->items = q;
	if (hx->qtail)
		hx->qtail->next = q;
	else
		hx->qhead = q;
	hx->qtail = q;
}

/* Drops what will never be sent, ending its output accounting (the worker may wait on it). */
static void drop_queue(h2c_t *h, hb_exchange_t *x)
{
	h2x_t *hx = X(x);
	while (hx->qhead) {
		qitem_t *q = hx->qhead;
		hx->qhead = q->next;
		if (x->stream)
			hb_stream_out_done(x->stream, q->acct);
		item_free(h, q);
	}
	hx->qtail = NULL;
}

static ssize_t read_item(qitem_t *q, uint8_t *buf, size_t len)
{
	if (q->ch) {
		size_t n = q->ch->len - q->off < len ? q->ch->len - q->off : len;
		memcpy(buf, q->ch->data + q->off, n);
		q->off += n;
		return (ssize_t)n;
	}
	size_t want = (uint64_t)q->fleft < len ? (size_t)q->fleft : len;
	ssize_t n = pread(q->fd, buf, want, q->foff);
	if (n <= 0)
		return -1; /* the file shrank or failed: the stream is reset */
	q->foff += n;
	q->fleft -= n;
	return n;
}

static int item_done(const qitem_t *q)
{
	return q->ch ? q->off == q->ch->len : q->fleft == 0;
}

static ssize_t on_read_body(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t len, int *eof)
{
	hb_conn_t *c = ud;
	hb_exchange_t *x = sud;
	h2x_t *hx = X(x);
	size_t got = 0;

	while (hx->qhead && got < len) {
		qitem_t *q = hx->qhead;
		ssize_t n = read_item(q, buf + got, len - got);
		if (n < 0)
			return -1;
		got += (size_t)n;
		if (!item_done(q))
			break;
		hx->qhead = q->next;
		if (!hx->qhead)
			hx->qtail = NULL;
		hb_stream_out_done(x->stream, q->acct);
		item_free(C(c), q);
	}
	*eof = !hx->qhead && hx->eof;
	return (ssize_t)got;
}

/* ---- engine output ---- */

/* Hands what the engine has to send to the transport, then closes when the engine is done. */
static void pump(hb_conn_t *c)
{
	h2c_t *h = C(c);
	size_t queued = 0;

	while (c->state != HB_CONN_DEAD && queued < OUT_BATCH) {
		const uint8_t *p;
		ssize_t n = hb_h2_send(h->e, &p);
		if (n < 0) {
			hb_conn_abort(c);
			return;
		}
		if (n == 0)
			break;
		hb_conn_write_copy(c, (const char *)p, (size_t)n);
		queued += (size_t)n;
	}
	if (c->state == HB_CONN_OPEN && !hb_h2_want_read(h->e) && !hb_h2_want_write(h->e)) {
		for (hb_exchange_t *x = c->exchanges; x; x = x->next)
			hb_exchange_client_gone(x, 0);
		hb_conn_start_closing(c);
	}
	if (queued)
		hb_conn_mark_dirty(c);
}

/* ---- engine events ---- */

/* The connection's facts (conn_addr.h), and trailers: HTTP/2 always frames them (a HEADERS
 * after DATA). */
static void fill_request(hb_conn_t *c, hb_request_t *req)
{
	hb_conn_fill_request(c, req);
	req->flags |= HB_REQ_TRAILERS;
}

static void on_head(hb_conn_t *c, hb_exchange_t *x, hb_response_t *r);
static void queue_bytes(hb_conn_t *c, hb_exchange_t *x, hb_chunk_t *ch, uint64_t acct);
static void on_end(hb_conn_t *c, hb_exchange_t *x, uint32_t flags);

/* limit_concurrency: the stream is answered here, as a worker would answer it, and logged. */
static void answer_busy(hb_conn_t *c, hb_exchange_t *x)
{
	hb_response_t *r;
	hb_chunk_t *ch;

	x->ended = 1; /* no worker: nothing more will come */
	if (hb_exchange_busy_response(c->io, &r, &ch) < 0) {
		hb_h2_reset(C(c)->e, X(x)->sid, HB_H2_REFUSED_STREAM);
		return;
	}
	on_head(c, x, r);
	free(r);
	if (x->head_sent && !x->no_body)
		queue_bytes(c, x, ch, 0);
	else
		free(ch);
	on_end(c, x, 0);
}

/* A new exchange for req on stream sid, dispatched to a worker; NULL when it cannot be. */
static hb_exchange_t *start_exchange(hb_conn_t *c, int32_t sid, hb_request_t *req)
{
	hb_io_t *io = c->io;
	uint64_t now = hb_io_now(io);
	hb_exchange_t *x = hb_exchange_new(c, sizeof(h2x_t));
	hb_stream_t *s = x ? hb_stream_new(io->srv->hub, io->idx, req) : NULL;

	if (!s) {
		if (x)
			hb_exchange_release(x);
		hb_request_free(req); /* filled: it holds a TLS reference */
		return NULL;
	}
	X(x)->sid = sid;
	X(x)->expect = (req->flags & HB_REQ_EXPECT_CONTINUE) != 0;
	if (req->flags & HB_REQ_HAS_BODY)
		X(x)->body_deadline = hb_conn_after_s(c, io->cfg->body_timeout_s);
	hb_exchange_attach(x, s);
	s->id = ++io->next_id;
	s->t_start_ns = now;
	c->requests++;
	x->resp_deadline =
		io->cfg->timeout_ms ? now + (uint64_t)io->cfg->timeout_ms * 1000000ull : 0;
	if (hb_exchange_over_limit(io)) {
		hb_stream_release(s); /* never dispatched: the worker's reference goes now */
		X(x)->busy = 1;	      /* answered by on_request once the stream knows x */
		return x;
	}
	if (hb_hub_dispatch_batched(io->srv->hub, io->idx, s) < 0) {
		hb_stream_release(s); /* the worker's reference; the exchange drops the other */
		hb_exchange_release(x);
		return NULL;
	}
	return x;
}

/* The exchange is over: its WebSocket state goes with it. */
static void finish(hb_conn_t *c, hb_exchange_t *x)
{
	if (X(x)->ws) {
		hb_h2ws_free(c, X(x)->ws);
		X(x)->ws = NULL;
	}
	hb_exchange_finish(x);
}

static int on_request(void *ud, int32_t sid, hb_request_t *req)
{
	hb_conn_t *c = ud;
	struct h2ws *ws = NULL;
	size_t plen;
	const char *proto = hb_h2_stream_protocol(C(c)->e, sid, &plen);

	fill_request(c, req);
	if (proto) { /* RFC 8441 extended CONNECT */
		int rc = hb_h2ws_check(c, sid, req, proto, plen, &ws);
		if (rc != 0) {
			hb_request_free(req); /* filled: it holds a TLS reference */
			return rc;
		}
	} else if (hb_h2_can_push(C(c)->e))
		req->flags |= HB_REQ_CAN_PROMISE;
	hb_exchange_t *x = start_exchange(c, sid, req);
	if (!x) {
		if (ws)
			hb_h2ws_free(c, ws);
		return -1; /* REFUSED_STREAM: the client may retry it */
	}
	if (ws && X(x)->busy) {
		hb_h2ws_free(c, ws); /* answered 503: no WebSocket */
	} else if (ws) {
		X(x)->ws = ws;
		hb_h2ws_bind(ws, x);
	}
	hb_h2_set_stream_data(C(c)->e, sid, x);
	C(c)->idle_deadline = 0;
	if (X(x)->busy)
		answer_busy(c, x);
	return 0;
}

/* Credits the stream's window for bytes that reached the worker's queue. */
static void push_body(hb_conn_t *c, hb_exchange_t *x)
{
	h2x_t *hx = X(x);
	size_t n = x->body_acc ? x->body_acc->len : 0;
	size_t held_before = x->body_held ? x->body_held->len : 0;

	if (hb_exchange_flush_body(x) < 0) {
		hb_h2_reset(C(c)->e, hx->sid, HB_H2_INTERNAL_ERROR);
		return;
	}
	size_t held_after = x->body_held ? x->body_held->len : 0;
	size_t newly_held = held_after > held_before ? held_after - held_before : 0;
	hx->held_bytes += newly_held;
	if (n > newly_held)
		hb_h2_consume(C(c)->e, hx->sid, n - newly_held);
}

static int on_data(void *ud, int32_t sid, void *sud, const uint8_t *d, size_t len)
{
	hb_conn_t *c = ud;
	hb_exchange_t *x = sud;

	if (x->ended || x->abandoned) {
		hb_h2_consume(C(c)->e, sid,
			      len); /* the app is done: discard, keep the window open */
		return 0;
	}
	if (X(x)->ws) {
		hb_h2ws_data(c, x, d, len);
		return 0;
	}
	if (X(x)->body_deadline)
		X(x)->body_deadline = hb_conn_after_s(c, c->io->cfg->body_timeout_s);
	if (hb_exchange_body_add(x, (const char *)d, len) < 0)
		return -1;
	push_body(c, x);
	return 0;
}

static void on_end_stream(void *ud, int32_t sid, void *sud)
{
	hb_exchange_t *x = sud;

	if (X(x)->ws) {
		hb_h2ws_end_stream(ud, x);
		return;
	}
	push_body(ud, x);
	x->body_done = 1;
	X(x)->body_deadline = 0;
	if (x->body_held)
		x->eof_pending = 1;
	else if (x->stream && !x->ended)
		hb_stream_body_eof(x->stream);
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code, int by_peer)
{
	hb_conn_t *c = ud;
	hb_exchange_t *x = sud;

	if (C(c)->dying || !x)
		return; /* freeing, or an h2c stream 1 that never got an exchange */
	X(x)->closed = 1;
	drop_queue(C(c), x);
	if (!x->ended) {
		hb_exchange_client_gone(x, 0); /* reset, or the response was cut: stop the app */
		return;
	}
	finish(c, x);
}

static void on_goaway(void *ud, uint32_t code, int32_t last_sid)
{
	hb_debug("h2: client GOAWAY code %u last stream %d", code, last_sid);
}

static const hb_h2_callbacks_t callbacks = {on_request, on_data,      on_end_stream,
					    on_close,	on_read_body, on_goaway};

/* ---- start ---- */

/* An HTTP/2 connection without streams is kept keepalive seconds (the header timeout when
 * keep-alive is off: a connection must be able to send one request). */
static int64_t idle_s(const hb_conn_t *c)
{
	const hb_config_t *cfg = c->io->cfg;
	return cfg->keepalive_s > 0 ? cfg->keepalive_s : cfg->header_timeout_s;
}

static h2c_t *h2c_new(hb_conn_t *c)
{
	hb_h2_limits_t lim;
	h2c_t *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	hb_conn_h2_limits(c->io->cfg, &lim);
	h->e = hb_h2_new(&lim, &callbacks, c);
	if (!h->e) {
		free(h);
		return NULL;
	}
	h->idle_deadline = hb_conn_after_s(c, idle_s(c));
	return h;
}

int hb_conn_h2_start(hb_conn_t *c)
{
	h2c_t *h = h2c_new(c);
	if (!h)
		return -ENOMEM;
	hb_conn_set_handler(c, &hb_h2_handler, h);
	pump(c); /* the server's SETTINGS go first */
	return 0;
}

int hb_conn_h2_sniff(const hb_conn_t *c, const char *p, size_t len)
{
	if (!hb_config_http2(c->io->cfg))
		return 0;
	/* The PRI method exists only to start this preface (RFC 9113 3.4): a wrong one is the
	 * engine's to refuse with GOAWAY PROTOCOL_ERROR. */
	return len >= 4 && memcmp(p, "PRI ", 4) == 0;
}

/* A token in a comma-separated header value (ASCII case-insensitive). */
static int has_token(const hb_header_t *h, const char *tok)
{
	size_t n = strlen(tok);
	const char *p = h->value, *end = h->value + h->value_len;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		const char *q = p;
		while (q < end && *q != ',' && *q != ' ' && *q != '\t')
			q++;
		if ((size_t)(q - p) == n && strncasecmp(p, tok, n) == 0)
			return 1;
		p = q;
	}
	return 0;
}

int hb_conn_h2_wants_upgrade(const hb_conn_t *c, const hb_request_t *req)
{
	const hb_header_t *up = hb_request_header(req, "upgrade");
	return hb_config_http2(c->io->cfg) && !c->transport->secure &&
	       !(req->flags & HB_REQ_HAS_BODY) && up && has_token(up, "h2c") &&
	       hb_request_header(req, "http2-settings") != NULL;
}

static const char switching[] = "HTTP/1.1 101 Switching Protocols\r\n"
				"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

int hb_conn_h2_upgrade(hb_conn_t *c, hb_request_t *req, const char *settings, size_t len)
{
	if (!hb_config_http2(c->io->cfg) || (req->flags & HB_REQ_HAS_BODY))
		return -1;
	h2c_t *h = h2c_new(c);
	if (!h)
		return -1;
	fill_request(c, req);
	if (hb_h2_upgrade(h->e, settings, len, req, NULL) != 0) {
		hb_h2_free(h->e);
		free(h);
		return -1;
	}
	if (hb_h2_can_push(h->e))
		req->flags |= HB_REQ_CAN_PROMISE;
	hb_conn_write_copy(c, switching, sizeof(switching) - 1);
	hb_conn_set_handler(c, &hb_h2_handler, h);
	hb_exchange_t *x = start_exchange(c, 1, req);
	if (!x) {
		hb_h2_reset(h->e, 1, HB_H2_REFUSED_STREAM);
	} else {
		hb_h2_set_stream_data(h->e, 1, x);
		x->body_done = 1;
		hb_stream_signal(x->stream, HB_ST_BODY_EOF);
	}
	pump(c);
	return 0;
}

/* ---- the handler table ---- */

static void h2_on_data(hb_conn_t *c, char *p, size_t len)
{
	h2c_t *h = C(c);
	const char *why = NULL;
	int rc = hb_h2_recv(h->e, (const uint8_t *)p, len, hb_io_now(c->io) / 1000000u, &why);
	if (rc < 0)
		hb_debug("h2: closing connection: %s", why ? why : "error");
	pump(c);
}

static void on_head(hb_conn_t *c, hb_exchange_t *x, hb_response_t *r)
{
	hb_request_t *req = x->stream->req;

	if (r->status == 101) { /* an upgrade answer to a request that asked for none */
		r->status = 500;
		r->nheaders = 0;
		r->content_length = -1;
	}
	x->stream->status = r->status;
	hb_exchange_head(x, r);
	x->no_body = (req->flags & HB_REQ_HEAD) || !hb_exchange_status_has_body(r->status);
	x->resp_cl = r->content_length;
	hb_h2c_head(c, x, r, !x->no_body);
}

int hb_h2c_head(hb_conn_t *c, hb_exchange_t *x, hb_response_t *r, int has_body)
{
	h2c_t *h = C(c);

	if (hb_h2_submit_response(h->e, X(x)->sid, r, c->io->date, has_body) != 0) {
		hb_h2_reset(h->e, X(x)->sid, HB_H2_INTERNAL_ERROR);
		x->abandoned = 1;
		return -1;
	}
	x->head_sent = 1;
	x->resp_deadline = 0;
	return 0;
}

static void queue_bytes(hb_conn_t *c, hb_exchange_t *x, hb_chunk_t *ch, uint64_t acct)
{
	ch->len = (size_t)hb_exchange_resp_take(x, ch->len);
	hb_h2c_queue(c, x, ch, acct);
}

void hb_h2c_queue(hb_conn_t *c, hb_exchange_t *x, hb_chunk_t *ch, uint64_t acct)
{
	qitem_t *q = ch->len ? calloc(1, sizeof(*q)) : NULL;
	if (!q) {
		free(ch);
		hb_stream_out_done(x->stream, acct);
		return;
	}
	*q = (qitem_t){.ch = ch, .fd = -1, .acct = acct};
	enqueue(C(c), X(x), q);
	hb_h2_resume(C(c)->e, X(x)->sid);
}

static void queue_file(hb_conn_t *c, hb_exchange_t *x, hb_file_chunk_t *f)
{
	int64_t len = hb_exchange_file_len(f);
	if (len > 0)
		len = (int64_t)hb_exchange_resp_take(x, (uint64_t)len);
	qitem_t *q = len > 0 ? calloc(1, sizeof(*q)) : NULL;
	if (!q) {
		if (len > 0)
			x->abort = 1; /* ENOMEM: counted but not sent, so the body is broken */
		close(f->fd);
		free(f);
		return;
	}
	*q = (qitem_t){.fd = f->fd, .foff = f->offset, .fleft = len};
	free(f);
	enqueue(C(c), X(x), q);
	hb_h2_resume(C(c)->e, X(x)->sid);
}

static void on_end(hb_conn_t *c, hb_exchange_t *x, uint32_t flags)
{
	h2c_t *h = C(c);
	h2x_t *hx = X(x);

	if (hx->closed) {
		finish(c, x); /* reset before the app ended: nothing more to send */
		return;
	}
	if (x->abandoned)
		return;
	if (!x->head_sent) {
		hb_header_t ct = {"content-type", "text/plain", 12, 10};
		hb_response_t r = {
			.status = 500, .headers = &ct, .nheaders = 1, .content_length = -1};
		x->stream->status = 500;
		x->no_body = 1;
		hb_h2_submit_response(h->e, hx->sid, &r, c->io->date, 0);
		x->head_sent = 1;
		return;
	}
	if ((flags & HB_END_ABORT) || x->abort || hb_exchange_resp_short(x)) {
		hb_h2_reset(h->e, hx->sid, HB_H2_INTERNAL_ERROR); /* the body is broken */
		return;
	}
	hx->eof = 1;
	hb_h2_resume(h->e, hx->sid);
}

static void on_resume(hb_conn_t *c, hb_exchange_t *x)
{
	h2x_t *hx = X(x);
	if (hb_exchange_resume(x))
		return; /* still full: the worker will post RESUME again */
	if (hx->held_bytes) {
		hb_h2_consume(C(c)->e, hx->sid, hx->held_bytes);
		hx->held_bytes = 0;
	}
}

/* ---- interim heads, trailers, pushes ---- */

static void on_interim(hb_conn_t *c, hb_exchange_t *x, const hb_response_t *r)
{
	hb_h2_submit_info(C(c)->e, X(x)->sid, r->status, r->headers, r->nheaders);
}

static void on_trailers(hb_conn_t *c, hb_exchange_t *x, const hb_response_t *r)
{
	if (!X(x)->eof)
		hb_h2_submit_trailers(C(c)->e, X(x)->sid, r->headers, r->nheaders);
}

/* A push the app asked for: a promised stream whose GET is served like a client's request. The
 * client's limits may refuse it by now (ENABLE_PUSH turned 0, streams at its maximum): then it
 * is dropped, as the app was told it might be. */
static void on_promise(hb_conn_t *c, hb_exchange_t *x, const hb_promise_t *p)
{
	h2c_t *h = C(c);
	const hb_response_t *f = p->fields;
	hb_request_t *req = NULL;
	if (X(x)->eof)
		return;
	int32_t psid = hb_h2_push(h->e, X(x)->sid, p->target, p->target_len, f ? f->headers : NULL,
				  f ? f->nheaders : 0, &req);
	if (psid < 0) {
		hb_debug("h2: push of %s on stream %d dropped (%d)", p->target, X(x)->sid,
			 (int)psid);
		return;
	}
	fill_request(c, req);
	hb_exchange_t *px = start_exchange(c, psid, req);
	if (!px) {
		hb_h2_reset(h->e, psid, HB_H2_REFUSED_STREAM);
		return;
	}
	hb_h2_set_stream_data(h->e, psid, px);
	px->body_done = 1;
	hb_stream_signal(px->stream, HB_ST_BODY_EOF);
}

/* 100 Continue only to a request that asked for it (RFC 9110 10.1.1). */
static void send_continue(hb_conn_t *c, hb_exchange_t *x)
{
	if (X(x)->expect) {
		hb_h2_submit_info(C(c)->e, X(x)->sid, 100, NULL, 0);
		x->continue_sent = 1;
	}
}

/* clang-format off */
static const hb_exchange_ops_t h2_ops = {
	.head = on_head, .interim = on_interim, .send_continue = send_continue,
	.body = queue_bytes, .file = queue_file, .trailers = on_trailers,
	.end = on_end, .resume = on_resume, .promise = on_promise,
};
/* clang-format on */

static void h2_on_message(hb_conn_t *c, hb_exchange_t *x, hb_msg_t *m)
{
	h2x_t *hx = X(x);

	if (hx->ws && hb_h2ws_message(c, x, m)) {
		if (c->state != HB_CONN_DEAD)
			pump(c);
		return;
	}
	hb_exchange_on_message(c, x, m, !x->abandoned && !hx->closed, &h2_ops);
	if (c->state != HB_CONN_DEAD)
		pump(c);
}

static void h2_on_sent(hb_conn_t *c)
{
	pump(c); /* more of the streams' bodies, as windows allow */
}

static void h2_on_tick(hb_conn_t *c, uint64_t now)
{
	h2c_t *h = C(c);
	int busy = 0;

	for (hb_exchange_t *x = c->exchanges, *n; x; x = n) {
		n = x->next;
		busy = 1;
		if (hb_exchange_timed_out(x, now)) {
			hb_response_t r = {.status = 504, .content_length = -1};
			hb_h2_submit_response(h->e, X(x)->sid, &r, c->io->date, 0);
			x->head_sent = 1;
			x->abandoned = 1;
		}
		h2x_t *hx = X(x);
		if (hx->ws)
			hb_h2ws_tick(c, x, now);
		if (hx->body_deadline && !x->body_done && !x->body_held &&
		    now >= hx->body_deadline && !hx->closed) {
			/* the request body stalled (body_timeout): this stream only */
			hx->body_deadline = 0;
			hb_exchange_client_gone(x, HB_ST_BODY_ERROR);
			hb_h2_reset(h->e, hx->sid, HB_H2_CANCEL);
		}
	}
	if (busy || hb_h2_nstreams(h->e))
		h->idle_deadline = 0;
	else if (!h->idle_deadline)
		h->idle_deadline = hb_conn_after_s(c, idle_s(c));
	if (h->idle_deadline && now >= h->idle_deadline)
		hb_h2_goaway(h->e, HB_H2_NO_ERROR); /* idle: say goodbye, then close */
	pump(c);
}

static void h2_on_drain(hb_conn_t *c)
{
	h2c_t *h = C(c);
	if (!h->draining) {
		h->draining = 1;
		hb_h2_shutdown(h->e);
		for (hb_exchange_t *x = c->exchanges; x; x = x->next)
			if (X(x)->ws)
				hb_h2ws_drain(c, x);
	}
	if (!c->exchanges && !hb_h2_nstreams(h->e))
		hb_h2_goaway(h->e, HB_H2_NO_ERROR);
	pump(c);
}

static void h2_on_peer_closed(hb_conn_t *c)
{
	for (hb_exchange_t *x = c->exchanges; x; x = x->next)
		hb_exchange_client_gone(x, 0);
}

static void h2_free(hb_conn_t *c)
{
	h2c_t *h = C(c);
	h->dying = 1;
	hb_h2_free(h->e);
	while (h->items)
		item_free(h, h->items);
	while (h->wss)
		hb_h2ws_free(c, h->wss);
	free(h);
	c->proto = NULL;
}

const hb_proto_handler_t hb_h2_handler = {
	.name = "h2",
	.on_data = h2_on_data,
	.on_message_from_worker = h2_on_message,
	.on_sent = h2_on_sent,
	.on_tick = h2_on_tick,
	.on_drain = h2_on_drain,
	.on_peer_closed = h2_on_peer_closed,
	.free = h2_free,
};
