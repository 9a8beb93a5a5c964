#include "server/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hub.h"
#include "core/log.h"
#include "server/access_log.h"
#include "server/conn_ws.h"

#define NS 1000000000ull
#define LINGER_NS (2 * NS) /* how long a closing connection drains input after an error */

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void parse_input(hb_conn_t *c);
static void exchange_done(hb_conn_t *c);

static int on_request(void *ud, hb_request_t *req);
static int on_body(void *ud, const char *at, size_t len);
static int on_complete(void *ud);

static const hb_h1_callbacks_t h1_callbacks = {on_request, on_body, on_complete};

/* The connection's one completion callback: a named handler per op kind. */
static void on_cqe(hb_ring_t *r, hb_op_t *op, struct io_uring_cqe *cqe)
{
	hb_conn_t *c = op->owner;

	(void)r;
	switch ((hb_op_kind_t)op->kind) {
	case HB_OP_RECV:
		hb_conn_on_recv(c, cqe);
		break;
	case HB_OP_SEND:
		hb_conn_on_send(c, cqe->res);
		break;
	case HB_OP_SEND_ZC:
		hb_conn_on_send_zc(c, cqe);
		break;
	case HB_OP_SPLICE_IN:
		hb_conn_on_splice_in(c, cqe->res);
		break;
	case HB_OP_SPLICE_OUT:
		hb_conn_on_splice_out(c, cqe->res);
		break;
	case HB_OP_SHUTDOWN:
		hb_conn_on_shutdown(c, cqe->res);
		break;
	}
}

/* A deadline `secs` from now; 0 (none) when the configured timeout is 0. */
static uint64_t after_s(hb_conn_t *c, int64_t secs)
{
	return secs > 0 ? hb_io_now(c->io) + (uint64_t)secs * NS : 0;
}

void hb_conn_mark_dirty(hb_conn_t *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dirty_next = c->io->dirty;
	c->io->dirty = c;
}

static void make_limits(const hb_config_t *cfg, hb_h1_limits_t *lim)
{
	lim->max_request_line = (uint32_t)cfg->limit_request_line;
	lim->max_fields = (uint32_t)cfg->limit_request_fields;
	lim->max_field_size = (uint32_t)cfg->limit_request_field_size;
	lim->max_header_bytes = (uint32_t)cfg->limit_request_header_size;
	lim->max_body = (uint64_t)cfg->max_body_size;
}

hb_conn_t *hb_conn_new(hb_io_t *io, int fd)
{
	hb_conn_t *c = calloc(1, sizeof(*c));
	hb_h1_limits_t lim;
	int one = 1;

	if (!c) {
		close(fd);
		return NULL;
	}
	make_limits(io->cfg, &lim);
	c->parser = hb_h1_new(&lim, &h1_callbacks, c);
	if (!c->parser) {
		free(c);
		close(fd);
		return NULL;
	}
	c->io = io;
	c->fd = fd;
	c->pipefd[0] = c->pipefd[1] = -1;
	c->resp_cl = -1;
	c->recv_op = (hb_op_t){.cb = on_cqe, .kind = HB_OP_RECV, .owner = c};
	c->send_op = (hb_op_t){.cb = on_cqe, .kind = HB_OP_SEND, .owner = c};
	c->zc_op = (hb_op_t){.cb = on_cqe, .kind = HB_OP_SEND_ZC, .owner = c};
	c->splice_in_op = (hb_op_t){.cb = on_cqe, .kind = HB_OP_SPLICE_IN, .owner = c};
	c->splice_out_op = (hb_op_t){.cb = on_cqe, .kind = HB_OP_SPLICE_OUT, .owner = c};
	c->shut_op = (hb_op_t){.cb = on_cqe, .kind = HB_OP_SHUTDOWN, .owner = c};
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->next = io->conns;
	if (io->conns)
		io->conns->prev = c;
	io->conns = c;
	io->nconns++;
	c->state = HB_CONN_IDLE;
	c->deadline = after_s(c, io->cfg->header_timeout_s);
	hb_conn_update_reading(c);
	return c;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void unlink_conn(hb_conn_t *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->io->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->io->nconns--;
	atomic_fetch_sub(&c->io->srv->nconns, 1);
}

/* A dead connection keeps its stream only until the worker's END: after it nothing more comes
 * for the stream. END may have been handled while the connection was still alive (the response
 * queued, not yet written) and the connection died after (the send failed, the peer reset): no
 * later message would release the stream then, so it is released here, on every path to DEAD. */
static void drop_ended_stream(hb_conn_t *c)
{
	if (c->state != HB_CONN_DEAD || !c->stream || !c->ended)
		return;
	hb_conn_out_forget(c, c->stream);
	hb_stream_release(c->stream);
	c->stream = NULL;
}

void hb_conn_maybe_free(hb_conn_t *c)
{
	drop_ended_stream(c);
	if (c->state != HB_CONN_DEAD || c->ops > 0 || c->stream || c->dirty)
		return;
	unlink_conn(c);
	close(c->fd);
	if (c->pipefd[0] >= 0) {
		close(c->pipefd[0]);
		close(c->pipefd[1]);
	}
	hb_conn_out_free(c);
	hb_conn_ws_free(c);
	hb_h1_free(c->parser);
	free(c->in);
	free(c->body_acc);
	free(c->body_held);
	free(c);
}

/* Hard close: the socket is shut both ways, so every op in flight completes soon; the
 * connection is freed once they have and its stream (if any) has ended. */
void hb_conn_abort(hb_conn_t *c)
{
	if (c->state == HB_CONN_DEAD)
		return;
	c->state = HB_CONN_DEAD;
	if (c->stream && !c->ended)
		hb_stream_signal(c->stream, HB_ST_CLIENT_GONE);
	shutdown(c->fd, SHUT_RDWR);
}

/* Graceful close after an error or a final response: stop writing once the output is sent,
 * keep reading (and discarding) for a while so the client reads our answer, not a reset. */
void hb_conn_start_closing(hb_conn_t *c)
{
	if (c->state == HB_CONN_DEAD || c->state == HB_CONN_CLOSING)
		return;
	c->state = HB_CONN_CLOSING;
	c->drain_deadline = hb_io_now(c->io) + LINGER_NS;
	c->recv_paused = 0;
	hb_conn_update_reading(c);
	if (hb_conn_out_empty(c) && !c->send_busy)
		hb_conn_sent_all(c);
}

static void respond_error(hb_conn_t *c, int status)
{
	char buf[512];
	size_t n = hb_h1_write_error(buf, sizeof(buf), status, c->io->date);

	hb_conn_out_copy(c, buf, n < sizeof(buf) ? n : 0);
	hb_conn_mark_dirty(c);
	hb_conn_start_closing(c);
}

/* ---- reading ----------------------------------------------------------------------------- */

static int want_read(const hb_conn_t *c)
{
	if (c->state == HB_CONN_DEAD || c->peer_closed)
		return 0;
	if (c->state == HB_CONN_CLOSING)
		return 1;
	return !c->recv_paused && c->in_len - c->in_off < HB_CONN_IN_MAX;
}

void hb_conn_update_reading(hb_conn_t *c)
{
	int want = want_read(c);

	if (want && !c->recv_armed) {
		struct io_uring_sqe *sqe = hb_io_sqe(c->io);
		io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = 0;
		io_uring_sqe_set_data(sqe, &c->recv_op);
		c->recv_armed = 1;
		c->recv_cancelling = 0;
		c->ops++;
	} else if (!want && c->recv_armed && !c->recv_cancelling && c->state != HB_CONN_DEAD) {
		hb_ring_cancel(&c->io->ring, &c->recv_op);
		c->recv_cancelling = 1;
	}
}

void hb_conn_in_append(hb_conn_t *c, const char *p, size_t len)
{
	if (c->in_off > 0 && c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	if (c->in_len + len > c->in_cap) {
		if (c->in_off > 0) {
			memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		size_t cap = c->in_cap ? c->in_cap : 4096;
		while (cap < c->in_len + len)
			cap *= 2;
		char *n = realloc(c->in, cap);
		if (!n) {
			hb_conn_abort(c);
			return;
		}
		c->in = n;
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, p, len);
	c->in_len += len;
}

/* Appends ch to the chunk already waiting for room in the stream (order is kept). */
int hb_conn_hold_append(hb_conn_t *c, hb_chunk_t *ch)
{
	hb_chunk_t *n = realloc(c->body_held, sizeof(*n) + c->body_held->len + ch->len);

	if (!n) {
		free(ch);
		hb_conn_abort(c);
		return -1;
	}
	memcpy(n->data + n->len, ch->data, ch->len);
	n->len += ch->len;
	c->body_held = n;
	free(ch);
	return 0;
}

/* The stream's body queue had no free slot: keep body_held and stop reading until RESUME. If
 * the worker emptied the queue before it could see the pause flag, no RESUME would come: retry
 * the push ourselves, and whoever clears the flag first owns the resume. */
static void hold_and_pause(hb_conn_t *c)
{
	hb_stream_t *s = c->stream;

	atomic_fetch_or(&s->state, HB_ST_IO_PAUSED);
	c->recv_paused = 1;
	if (!hb_spsc_empty(&s->body) || hb_stream_body_push_chunk(s, c->body_held) < 0)
		return;
	c->body_held = NULL;
	if (atomic_fetch_and(&s->state, ~(uint32_t)HB_ST_IO_PAUSED) & HB_ST_IO_PAUSED)
		c->recv_paused = 0; /* we cleared it: no RESUME is coming, read on */
}

/* Pushes the body bytes gathered during one feed as one chunk; pauses reading when the
 * worker has enough unread body. */
static void flush_body(hb_conn_t *c)
{
	hb_chunk_t *ch = c->body_acc;

	if (!ch || ch->len == 0)
		return;
	c->body_acc = NULL;
	c->body_acc_cap = 0;
	if (!c->stream || c->ended || c->abandoned) {
		free(ch);
		return;
	}
	if (c->body_held || hb_stream_body_push_chunk(c->stream, ch) < 0) {
		if (c->body_held && hb_conn_hold_append(c, ch) < 0)
			return;
		if (!c->body_held)
			c->body_held = ch;
		hold_and_pause(c);
		return;
	}
	if (hb_stream_body_full(c->stream) && hb_stream_pause_reading(c->stream))
		c->recv_paused = 1;
}

static void protocol_error(hb_conn_t *c, int rc, const char *why)
{
	if (c->pending_error < 0) { /* the rejection is already queued (WebSocket handshake) */
		c->pending_error = 0;
		hb_conn_mark_dirty(c);
		hb_conn_start_closing(c);
		return;
	}
	int status = c->pending_error ? c->pending_error : hb_h1_error_status(rc);

	hb_debug("io %d: bad request from %s: %d %s", c->io->idx, c->remote, status,
		 why ? why : "");
	c->pending_error = 0;
	if (c->stream && !c->ended) {
		/* Broken body of a request in flight: the worker's reads fail; answer if we still
		 * can. */
		hb_stream_signal(c->stream, HB_ST_BODY_ERROR | HB_ST_CLIENT_GONE);
		if (c->head_sent) {
			hb_conn_abort(c);
			return;
		}
		c->abandoned = 1;
	}
	respond_error(c, status);
}

/* Feeds bytes to the parser; returns how many it used. */
static size_t feed(hb_conn_t *c, const char *p, size_t len)
{
	size_t used = 0;
	const char *why = NULL;

	if (c->state == HB_CONN_IDLE) {
		c->state = HB_CONN_HEAD;
		c->deadline = after_s(c, c->io->cfg->header_timeout_s);
	}
	int rc = hb_h1_feed(c->parser, p, len, &used, &why);
	flush_body(c);
	if (rc < 0) {
		protocol_error(c, rc, why);
		return len;
	}
	return used;
}

static void parse_input(hb_conn_t *c)
{
	while (!c->parser_paused && c->in_off < c->in_len &&
	       (c->state == HB_CONN_IDLE || c->state == HB_CONN_HEAD ||
		c->state == HB_CONN_SERVING)) {
		size_t used = feed(c, c->in + c->in_off, c->in_len - c->in_off);
		c->in_off += used;
		if (used == 0)
			break;
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
}

static void on_data(hb_conn_t *c, char *p, size_t len)
{
	if (c->state == HB_CONN_WS) {
		hb_conn_ws_data(c, p, len);
		return;
	}
	if (c->state == HB_CONN_CLOSING || c->state == HB_CONN_DEAD)
		return; /* draining after an error: discard */
	if (c->parser_paused || c->in_len > c->in_off) {
		hb_conn_in_append(c, p, len);
		parse_input(c);
	} else {
		size_t used = feed(c, p, len);
		if (used < len && c->state != HB_CONN_CLOSING && c->state != HB_CONN_DEAD)
			hb_conn_in_append(c, p + used, len - used);
	}
}

static void on_peer_closed(hb_conn_t *c)
{
	c->peer_closed = 1;
	switch (c->state) {
	case HB_CONN_SERVING:
		/* The client closed (or reset): as uvicorn does, the app hears it now (ASGI
		 * http.disconnect, WSGI close()), even if it had sent the whole request. */
		if (c->stream && !c->ended)
			hb_stream_signal(c->stream,
					 HB_ST_CLIENT_GONE | (c->body_done ? 0 : HB_ST_BODY_ERROR));
		hb_conn_abort(c);
		break;
	case HB_CONN_WS:
		if (c->stream && !c->ended)
			hb_stream_signal(c->stream, HB_ST_CLIENT_GONE);
		hb_conn_abort(c);
		break;
	case HB_CONN_IDLE:
	case HB_CONN_HEAD:
	case HB_CONN_CLOSING:
	case HB_CONN_DEAD:
		hb_conn_abort(c);
		break;
	}
}

void hb_conn_on_recv(hb_conn_t *c, struct io_uring_cqe *cqe)
{
	int res = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		c->recv_armed = 0;
		c->recv_cancelling = 0;
		c->ops--;
	}
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (res > 0)
			on_data(c, hb_ring_buf(&c->io->ring, bid), (size_t)res);
		hb_ring_buf_return(&c->io->ring, bid);
	}
	if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED))
		on_peer_closed(c);
	hb_conn_update_reading(c); /* arms again, or cancels the armed recv when paused */
	hb_conn_maybe_free(c);
}

/* ---- parser callbacks -------------------------------------------------------------------- */

static void fill_addr(const struct sockaddr_storage *ss, char *out, size_t cap, uint16_t *port)
{
	*port = 0;
	out[0] = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;
		inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)cap);
		*port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)cap);
		*port = ntohs(a->sin6_port);
	}
}

static void learn_addrs(hb_conn_t *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (c->addr_known)
		return;
	c->addr_known = 1;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0)
		fill_addr(&ss, c->remote, sizeof(c->remote), &c->remote_port);
	len = sizeof(ss);
	if (getsockname(c->fd, (struct sockaddr *)&ss, &len) == 0)
		fill_addr(&ss, c->local, sizeof(c->local), &c->local_port);
}

static void reset_exchange(hb_conn_t *c)
{
	c->head_sent = c->ended = c->abort = c->continue_sent = 0;
	c->body_done = c->chunked = c->no_body = c->abandoned = c->eof_pending = 0;
	c->resp_cl = -1;
	c->resp_body = 0;
	c->recv_paused = 0;
}

/* Upgrade: websocket goes to the WebSocket handshake unless the app is plain WSGI. */
static int is_websocket_upgrade(hb_io_t *io, const hb_request_t *req)
{
	const hb_header_t *h = hb_request_header(req, "upgrade");

	return io->cfg->worker_class != HB_WORKER_WSGI && h && h->value_len == 9 &&
	       strncasecmp(h->value, "websocket", 9) == 0;
}

static int on_request(void *ud, hb_request_t *req)
{
	hb_conn_t *c = ud;
	hb_io_t *io = c->io;
	uint64_t now = hb_io_now(io);

	learn_addrs(c);
	req->scheme = "http";
	memcpy(req->remote_addr, c->remote, sizeof(req->remote_addr));
	req->remote_port = c->remote_port;
	memcpy(req->server_addr, c->local, sizeof(req->server_addr));
	req->server_port = c->local_port;
	if (is_websocket_upgrade(io, req)) {
		int st = hb_conn_ws_check(c, req);
		if (st != 0) {
			free(req);
			c->pending_error = st > 0 ? -1 : 500;
			return -1;
		}
	}
	hb_stream_t *s = hb_stream_new(io->srv->hub, io->idx, req);
	if (!s) {
		free(req);
		c->pending_error = 500;
		return -1;
	}
	s->conn = c;
	s->id = ++io->next_id;
	s->t_start_ns = now;
	reset_exchange(c);
	c->requests++;
	c->stream = s;
	c->state = HB_CONN_SERVING;
	c->keep_alive = (req->flags & HB_REQ_KEEP_ALIVE) && io->cfg->keepalive_s > 0 &&
			!atomic_load(&io->srv->draining);
	c->deadline = (req->flags & HB_REQ_HAS_BODY) ? after_s(c, io->cfg->body_timeout_s) : 0;
	c->resp_deadline =
		io->cfg->timeout_ms ? now + (uint64_t)io->cfg->timeout_ms * 1000000ull : 0;
	int rc = hb_hub_dispatch(io->srv->hub, io->idx, s);
	if (rc < 0) {
		/* No worker can take it (all queues full, or none ready): overload answer. */
		c->stream = NULL;
		hb_stream_release(s);
		hb_stream_release(s);
		c->pending_error = 503;
		return -1;
	}
	return 0;
}

static int on_body(void *ud, const char *at, size_t len)
{
	hb_conn_t *c = ud;

	c->deadline = after_s(c, c->io->cfg->body_timeout_s);
	if (!c->stream || c->ended || c->abandoned)
		return 0; /* the app is done with this request: discard the rest of its body */
	size_t have = c->body_acc ? c->body_acc->len : 0;
	if (have + len > c->body_acc_cap) {
		size_t cap = c->body_acc_cap ? c->body_acc_cap : 16384;
		while (cap < have + len)
			cap *= 2;
		hb_chunk_t *n = realloc(c->body_acc, sizeof(*n) + cap);
		if (!n)
			return -1;
		n->len = have;
		c->body_acc = n;
		c->body_acc_cap = cap;
	}
	memcpy(c->body_acc->data + have, at, len);
	c->body_acc->len = have + len;
	return 0;
}

static int on_complete(void *ud)
{
	hb_conn_t *c = ud;

	flush_body(c);
	c->body_done = 1;
	c->parser_paused = 1;
	c->deadline = 0;
	/* A chunk still waiting for room is part of the body: the end is told after it. */
	if (c->body_held)
		c->eof_pending = 1;
	else if (c->stream && !c->ended)
		hb_stream_signal(c->stream, HB_ST_BODY_EOF);
	return 0;
}

/* ---- worker messages --------------------------------------------------------------------- */

static int status_has_body(int status)
{
	return !(status < 200 || status == 204 || status == 304);
}

static void on_head(hb_conn_t *c, hb_response_t *r)
{
	hb_request_t *req = c->stream->req;
	char buf[2048];

	if ((req->flags & HB_REQ_WEBSOCKET) && hb_conn_ws_head(c, r))
		return;
	c->stream->status = r->status;
	c->no_body = (req->flags & HB_REQ_HEAD) || !status_has_body(r->status);
	c->resp_cl = r->content_length;
	if (r->content_length < 0 && !c->no_body) {
		if (req->http_minor >= 1)
			c->chunked = 1;
		else
			c->keep_alive = 0; /* HTTP/1.0 without a length: the close ends the body */
	}
	if ((r->flags & HB_RESP_CLOSE) || !c->body_done || atomic_load(&c->io->srv->draining))
		c->keep_alive = 0;
	size_t n = hb_h1_write_head(buf, sizeof(buf), r, req->http_minor, c->chunked, c->keep_alive,
				    c->io->date);
	if (n <= sizeof(buf)) {
		hb_conn_out_copy(c, buf, n);
	} else {
		char *big = malloc(n);
		if (!big) {
			hb_conn_abort(c);
			return;
		}
		hb_h1_write_head(big, n, r, req->http_minor, c->chunked, c->keep_alive,
				 c->io->date);
		hb_conn_out_bytes(c, big, n, big, NULL, 0);
	}
	c->head_sent = 1;
	c->resp_deadline = 0;
}

static void on_body_msg(hb_conn_t *c, hb_chunk_t *ch, uint64_t len)
{
	size_t n = ch->len;

	if (c->resp_cl >= 0 && c->resp_body + n > (uint64_t)c->resp_cl) {
		n = (size_t)((uint64_t)c->resp_cl - c->resp_body); /* never send past the length */
		c->abort = 1;
	}
	c->resp_body += n;
	if (n == 0) {
		free(ch);
		hb_stream_out_done(c->stream, len);
		return;
	}
	if (c->chunked) {
		char pre[24];
		hb_conn_out_copy(c, pre, hb_h1_chunk_prefix(pre, n));
	}
	hb_conn_out_bytes(c, ch->data, n, ch, c->stream, len);
	if (c->chunked)
		hb_conn_out_bytes(c, "\r\n", 2, NULL, NULL, 0);
}

static void on_file_msg(hb_conn_t *c, hb_file_chunk_t *f)
{
	struct stat st;
	int64_t len = f->len;

	if (len < 0 && fstat(f->fd, &st) == 0)
		len = st.st_size - f->offset;
	if (len < 0 || c->no_body || c->abandoned || c->state == HB_CONN_DEAD) {
		close(f->fd);
		free(f);
		return;
	}
	if (c->resp_cl >= 0 && c->resp_body + (uint64_t)len > (uint64_t)c->resp_cl) {
		len = (int64_t)((uint64_t)c->resp_cl - c->resp_body);
		c->abort = 1;
	}
	c->resp_body += (uint64_t)len;
	if (c->chunked && len > 0) {
		char pre[24];
		hb_conn_out_copy(c, pre, hb_h1_chunk_prefix(pre, (size_t)len));
	}
	hb_conn_out_file(c, f->fd, f->offset, len);
	if (c->chunked && len > 0)
		hb_conn_out_bytes(c, "\r\n", 2, NULL, NULL, 0);
	free(f);
}

static void on_end(hb_conn_t *c, uint32_t flags)
{
	hb_stream_t *s = c->stream;
	hb_worker_t *wk = hb_hub_worker(c->io->srv->hub, s->worker_idx);

	atomic_fetch_sub(&wk->inflight, 1);
	atomic_fetch_add(&wk->served, 1);
	c->ended = 1;
	if (c->state == HB_CONN_DEAD || c->abandoned)
		return;
	if (c->state == HB_CONN_WS) {
		hb_conn_ws_end(c, (flags & HB_END_ABORT) != 0);
		return;
	}
	if (flags & HB_END_ABORT)
		c->abort = 1;
	if (!c->head_sent) {
		c->stream->status = 500;
		c->abandoned = 1;
		respond_error(c, 500);
		return;
	}
	if (!c->no_body && c->resp_cl >= 0 && c->resp_body != (uint64_t)c->resp_cl)
		c->abort = 1;
	if (c->abort)
		c->keep_alive = 0;
	else if (c->chunked)
		hb_conn_out_bytes(c, "0\r\n\r\n", 5, NULL, NULL, 0);
}

/* Payloads of messages that will not be sent are freed here, with the stream's accounting. */
static void drop_msg(hb_conn_t *c, hb_msg_t *m)
{
	switch ((hb_msg_type_t)m->type) {
	case HB_MSG_HEAD:
		free(m->ptr);
		break;
	case HB_MSG_BODY:
	case HB_MSG_WS_SEND:
		free(m->ptr);
		hb_stream_out_done(m->stream, m->len);
		break;
	case HB_MSG_WS_CLOSE:
		free(m->ptr);
		break;
	case HB_MSG_FILE:
		close(((hb_file_chunk_t *)m->ptr)->fd);
		free(m->ptr);
		break;
	case HB_MSG_REQUEST:
	case HB_MSG_END:
	case HB_MSG_CONTINUE:
	case HB_MSG_RESUME:
		break;
	}
}

static void on_resume(hb_conn_t *c)
{
	if (c->body_held && c->stream && !c->ended) {
		if (hb_stream_body_push_chunk(c->stream, c->body_held) < 0)
			return; /* still full: the worker will post RESUME again */
		c->body_held = NULL;
		if (c->eof_pending) {
			c->eof_pending = 0;
			hb_stream_signal(c->stream, HB_ST_BODY_EOF);
		}
	}
	c->recv_paused = 0;
	hb_conn_update_reading(c);
}

void hb_conn_on_msg(hb_conn_t *c, hb_msg_t *m)
{
	int live = c->state != HB_CONN_DEAD && !c->abandoned && c->stream == m->stream;

	switch ((hb_msg_type_t)m->type) {
	case HB_MSG_HEAD:
		if (live && !c->head_sent)
			on_head(c, m->ptr);
		free(m->ptr);
		break;
	case HB_MSG_BODY:
		if (live && !c->no_body && c->head_sent)
			on_body_msg(c, m->ptr, m->len);
		else
			drop_msg(c, m);
		break;
	case HB_MSG_FILE:
		if (live && c->head_sent)
			on_file_msg(c, m->ptr);
		else
			drop_msg(c, m);
		break;
	case HB_MSG_END:
		on_end(c, m->aux);
		break;
	case HB_MSG_CONTINUE:
		if (live && !c->head_sent && !c->continue_sent && !c->body_done) {
			hb_conn_out_bytes(c, continue_100, sizeof(continue_100) - 1, NULL, NULL, 0);
			c->continue_sent = 1;
		}
		break;
	case HB_MSG_RESUME:
		if (live && c->state == HB_CONN_WS)
			hb_conn_ws_resume(c);
		else if (live)
			on_resume(c);
		break;
	case HB_MSG_WS_SEND:
		if (live && c->state == HB_CONN_WS)
			hb_conn_ws_send(c, m->aux, m->ptr, m->len);
		else
			drop_msg(c, m);
		break;
	case HB_MSG_WS_CLOSE:
		if (live && c->state == HB_CONN_WS)
			hb_conn_ws_close(c, (uint16_t)m->aux, m->ptr);
		else
			drop_msg(c, m);
		break;
	case HB_MSG_REQUEST:
		break;
	}
	if (c->state != HB_CONN_DEAD)
		hb_conn_mark_dirty(c);
	hb_conn_maybe_free(c); /* dead: releases the stream once it has ended */
}

void hb_conn_flush_dirty(hb_conn_t *c)
{
	c->dirty = 0;
	if (c->state != HB_CONN_DEAD) {
		hb_conn_flush(c);
		if (!c->send_busy && hb_conn_out_empty(c))
			hb_conn_sent_all(c);
	}
	hb_conn_maybe_free(c);
}

/* ---- end of an exchange ------------------------------------------------------------------ */

static void exchange_done(hb_conn_t *c)
{
	hb_stream_t *s = c->stream;

	hb_access_log(c->io, c, s, hb_io_now(c->io));
	c->stream = NULL;
	hb_conn_out_forget(c, s);
	hb_stream_release(s);
	free(c->body_held);
	c->body_held = NULL;
	if (c->abort) {
		hb_conn_abort(c);
		return;
	}
	if (!c->keep_alive || c->state == HB_CONN_CLOSING) {
		hb_conn_start_closing(c);
		return;
	}
	c->state = HB_CONN_IDLE;
	c->deadline = after_s(c, c->io->cfg->keepalive_s);
	c->parser_paused = 0;
	c->recv_paused = 0;
	hb_h1_resume(c->parser);
	parse_input(c);
	hb_conn_update_reading(c);
}

/* The output queue is empty: finish the exchange, or finish closing. */
void hb_conn_sent_all(hb_conn_t *c)
{
	if (c->stream && c->ended && c->state != HB_CONN_DEAD) {
		exchange_done(c);
		if (c->state == HB_CONN_DEAD || !hb_conn_out_empty(c))
			return;
	}
	if (c->state == HB_CONN_CLOSING && (!c->stream || c->abandoned) && !c->shut_sent) {
		struct io_uring_sqe *sqe = hb_io_sqe(c->io);
		io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
		io_uring_sqe_set_data(sqe, &c->shut_op);
		c->shut_sent = 1;
		c->ops++;
	}
}

void hb_conn_on_shutdown(hb_conn_t *c, int res)
{
	c->ops--;
	if (res < 0)
		hb_conn_abort(c);
	hb_conn_maybe_free(c);
}

/* ---- deadlines and draining -------------------------------------------------------------- */

static void serving_tick(hb_conn_t *c, uint64_t now)
{
	const hb_config_t *cfg = c->io->cfg;

	if (c->resp_deadline && now >= c->resp_deadline && !c->head_sent && !c->abandoned) {
		hb_warn("request timeout: %.*s %.*s took over %lld ms; answering 504",
			(int)c->stream->req->method_len, c->stream->req->method,
			(int)c->stream->req->target_len, c->stream->req->target,
			(long long)cfg->timeout_ms);
		hb_stream_signal(c->stream, HB_ST_CLIENT_GONE);
		c->stream->status = 504;
		c->abandoned = 1;
		respond_error(c, 504);
		return;
	}
	if (!c->body_done && !c->recv_paused && c->deadline && now >= c->deadline) {
		hb_conn_abort(c); /* body stalled */
		return;
	}
	if (cfg->write_timeout_s > 0 && (c->send_busy || !hb_conn_out_empty(c)) &&
	    c->last_write_ns && now - c->last_write_ns > (uint64_t)cfg->write_timeout_s * NS)
		hb_conn_abort(c); /* client stopped reading */
}

void hb_conn_tick(hb_conn_t *c, uint64_t now)
{
	switch (c->state) {
	case HB_CONN_IDLE:
	case HB_CONN_HEAD:
		if (c->deadline && now >= c->deadline)
			hb_conn_abort(c);
		break;
	case HB_CONN_SERVING:
		serving_tick(c, now);
		break;
	case HB_CONN_WS:
		hb_conn_ws_tick(c, now, 0);
		if (c->state == HB_CONN_WS)
			serving_tick(c, now);
		break;
	case HB_CONN_CLOSING:
		if (now >= c->drain_deadline ||
		    (c->io->cfg->write_timeout_s > 0 && (c->send_busy || !hb_conn_out_empty(c)) &&
		     c->last_write_ns &&
		     now - c->last_write_ns > (uint64_t)c->io->cfg->write_timeout_s * NS))
			hb_conn_abort(c);
		break;
	case HB_CONN_DEAD:
		break;
	}
	hb_conn_maybe_free(c);
}

void hb_conn_drain(hb_conn_t *c, int force)
{
	if (force || c->state == HB_CONN_IDLE) {
		hb_conn_abort(c);
	} else if (c->state == HB_CONN_WS) {
		hb_conn_ws_tick(c, hb_io_now(c->io), 1);
	} else if (c->state == HB_CONN_SERVING) {
		c->keep_alive = 0;
		hb_conn_tick(c, hb_io_now(c->io));
		return;
	} else {
		hb_conn_tick(c, hb_io_now(c->io));
		return;
	}
	hb_conn_maybe_free(c);
}
