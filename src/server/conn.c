/* conn.c: a connection's life, whatever its protocol: reading through the transport to the
 * handler, routing worker messages, the close handshake, the write and linger deadlines, and
 * freeing once no op and no exchange is left. Protocols live in their handlers (conn_h1.c,
 * conn_ws.c); output in conn_write.c; the io_uring side of the socket ops in conn_uring.c. */
#include "server/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/hub.h"
#include "core/log.h"
#include "proto/h1.h"
#include "server/conn_h1.h"
#include "server/conn_h2.h"
#include "server/conn_proxy.h"

#define NS 1000000000ull

uint64_t hb_conn_after_s(const hb_conn_t *c, int64_t secs)
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

hb_conn_t *hb_conn_new_with(hb_io_t *io, int fd, const hb_transport_t *t, const hb_sock_ops_t *sock)
{
	hb_conn_t *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return NULL;
	}
	c->io = io;
	c->fd = fd;
	c->sock = sock;
	c->transport = t;
	c->pipefd[0] = c->pipefd[1] = -1;
	c->state = HB_CONN_OPEN;
	/* Until a protocol is chosen the connection itself enforces header_timeout. */
	c->start_deadline = hb_conn_after_s(c, io->cfg->header_timeout_s);
	if (t->init && t->init(c) < 0) {
		sock->close(c);
		free(c);
		return NULL;
	}
	c->next = io->conns;
	if (io->conns)
		io->conns->prev = c;
	io->conns = c;
	io->nconns++;
	hb_conn_update_reading(c);
	if (!hb_conn_out_empty(c))
		hb_conn_mark_dirty(c);
	return c;
}

/* ---- per-io caches ------------------------------------------------------------------------- */

struct iovec *hb_conn_iov_get(hb_io_t *io)
{
	struct iovec *v = io->iov_cache;

	if (!v)
		return malloc(HB_CONN_MAX_IOV * sizeof(*v));
	io->iov_cache = v[0].iov_base;
	io->iov_cached--;
	return v;
}

void hb_conn_iov_put(hb_io_t *io, struct iovec *v)
{
	if (!v)
		return;
	if (io->iov_cached >= HB_IO_CACHE_MAX) {
		free(v);
		return;
	}
	v[0].iov_base = io->iov_cache;
	io->iov_cache = v;
	io->iov_cached++;
}

void hb_conn_caches_free(hb_io_t *io)
{
	while (io->iov_cache)
		free(hb_conn_iov_get(io));
	while (io->h1_cached)
		hb_h1_free(io->h1_cache[--io->h1_cached]);
	free(io->h1_cache);
	io->h1_cache = NULL;
}

hb_conn_t *hb_conn_new(hb_io_t *io, int fd, const hb_transport_t *t)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return hb_conn_new_with(io, fd, t, &hb_conn_uring_ops);
}

/* The protocol a handler is counted under in the metrics. */
static int handler_proto(const hb_proto_handler_t *h)
{
	return h->name[0] == 'w' ? HB_MP_WS : h->name[1] == '2' ? HB_MP_H2 : HB_MP_H1;
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

/* A dead connection keeps an exchange only until the worker's END: after it nothing more comes
 * for the stream. END may have been handled while the connection was still alive (the response
 * queued, not yet written) and the connection died after (the send failed, the peer reset): no
 * later message would release the exchange then, so it is released here, on every path. One
 * whose head went out is logged: the client may well have read all of it (it closed after a
 * Content-Length body, before the worker's END came). */
static void drop_ended_exchanges(hb_conn_t *c)
{
	if (c->state != HB_CONN_DEAD)
		return;
	for (hb_exchange_t *x = c->exchanges, *n; x; x = n) {
		n = x->next;
		if (x->ended && x->head_sent)
			hb_exchange_finish(x);
		else if (x->ended || x->undispatched)
			hb_exchange_release(x);
	}
}

void hb_conn_maybe_free(hb_conn_t *c)
{
	drop_ended_exchanges(c);
	if (c->state != HB_CONN_DEAD || c->ops > 0 || c->exchanges || c->dirty)
		return;
	unlink_conn(c);
	c->sock->close(c);
	if (c->pipefd[0] >= 0) {
		close(c->pipefd[0]);
		close(c->pipefd[1]);
	}
	hb_conn_out_free(c);
	hb_conn_iov_put(c->io, c->iov);
	if (c->handler && c->io->metrics)
		hb_mgauge_add(&c->io->metrics->conns[handler_proto(c->handler)], -1);
	if (c->handler)
		c->handler->free(c);
	if (c->transport->free)
		c->transport->free(c);
	free(c->in);
	free(c);
}

/* Hard close: the socket is shut both ways, so every op in flight completes soon; the
 * connection is freed once they have and its exchanges have ended. */
void hb_conn_abort(hb_conn_t *c)
{
	if (c->state == HB_CONN_DEAD)
		return;
	c->state = HB_CONN_DEAD;
	for (hb_exchange_t *x = c->exchanges; x; x = x->next)
		hb_exchange_client_gone(x, 0);
	c->sock->abort(c);
}

/* Graceful close after an error or a final response: stop writing once the output is sent,
 * keep reading (and discarding) for a while so the client reads our answer, not a reset. */
void hb_conn_start_closing(hb_conn_t *c)
{
	if (c->state != HB_CONN_OPEN)
		return;
	c->state = HB_CONN_CLOSING;
	c->drain_deadline = hb_io_now(c->io) + HB_CONN_LINGER_NS;
	c->recv_paused = 0;
	hb_conn_update_reading(c);
	if (hb_conn_out_idle(c))
		hb_conn_sent_all(c);
}

void hb_conn_set_handler(hb_conn_t *c, const hb_proto_handler_t *h, void *proto)
{
	hb_metrics_io_t *m = c->io->metrics;

	if (m && c->handler)
		hb_mgauge_add(&m->conns[handler_proto(c->handler)], -1);
	if (m && h)
		hb_mgauge_add(&m->conns[handler_proto(h)], 1);
	if (c->handler)
		c->handler->free(c);
	c->handler = h;
	c->proto = proto;
}

/* An exchange the app still works on (not ended, not answered for it by the connection). */
static int has_live_exchange(const hb_conn_t *c)
{
	for (const hb_exchange_t *x = c->exchanges; x; x = x->next)
		if (!x->ended && !x->abandoned && !x->undispatched)
			return 1;
	return 0;
}

/* The output queue is empty: the handler finishes exchanges; a closing connection shuts its
 * write side once no exchange is live (the transport may add a last record first). */
void hb_conn_sent_all(hb_conn_t *c)
{
	if (c->state != HB_CONN_DEAD && c->handler)
		c->handler->on_sent(c);
	if (c->state != HB_CONN_CLOSING || !hb_conn_out_idle(c) || c->shut_sent ||
	    has_live_exchange(c))
		return;
	if (!c->transport_shut && c->transport->shutdown) {
		c->transport_shut = 1;
		c->transport->shutdown(c);
		if (!hb_conn_out_empty(c)) {
			hb_conn_flush(c); /* the close_notify first; back here when it is sent */
			return;
		}
	}
	c->shut_sent = 1;
	c->ops++;
	c->sock->shutdown_wr(c);
}

void hb_conn_shutdown_done(hb_conn_t *c, int res)
{
	c->ops--;
	if (res < 0)
		hb_conn_abort(c);
	hb_conn_maybe_free(c);
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
		c->recv_armed = 1;
		c->recv_cancelling = 0;
		c->ops++;
		c->sock->recv_arm(c);
	} else if (!want && c->recv_armed && !c->recv_cancelling && c->state != HB_CONN_DEAD) {
		c->recv_cancelling = 1;
		c->sock->recv_cancel(c);
	}
}

void hb_conn_in_release(hb_conn_t *c)
{
	if (!c->in || c->in_len > c->in_off)
		return;
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = c->in_off = 0;
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

size_t hb_conn_in_take(hb_conn_t *c, char **p)
{
	size_t n = c->in_len - c->in_off;

	*p = NULL;
	if (n == 0)
		return 0;
	*p = malloc(n);
	if (!*p) {
		hb_conn_abort(c);
		return 0;
	}
	memcpy(*p, c->in + c->in_off, n);
	c->in_off = c->in_len = 0;
	return n;
}

/* The first plaintext chooses the protocol: ALPN where the transport negotiated one, else the
 * HTTP/2 connection preface (prior knowledge), else HTTP/1.1 (unless http_version is h2 only). */
static int start_handler(hb_conn_t *c, const char *p, size_t len)
{
	c->start_deadline = 0;
	if (c->alpn ? strcmp(c->alpn, "h2") == 0 : hb_conn_h2_sniff(c, p, len))
		return hb_conn_h2_start(c);
	if (!hb_config_http1(c->io->cfg))
		return -EPROTONOSUPPORT;
	return hb_conn_h1_start(c);
}

void hb_conn_deliver(hb_conn_t *c, char *p, size_t len)
{
	if (c->state != HB_CONN_OPEN)
		return; /* closing: input is drained and discarded */
	if (!c->handler && start_handler(c, p, len) < 0) {
		hb_conn_abort(c);
		return;
	}
	c->handler->on_data(c, p, len);
}

static void peer_closed(hb_conn_t *c)
{
	c->peer_closed = 1;
	if (c->state == HB_CONN_OPEN && c->handler)
		c->handler->on_peer_closed(c);
	hb_conn_abort(c);
}

static void transport_bytes(hb_conn_t *c, char *p, size_t len)
{
	int rc = c->transport->on_recv(c, p, len);
	if (rc == HB_TRANSPORT_CLOSED) {
		peer_closed(c);
	} else if (rc < 0) {
		hb_debug("io %d: %s transport error from %s: %d", c->io->idx, c->transport->name,
			 c->remote, rc);
		for (hb_exchange_t *x = c->exchanges; x; x = x->next) {
			hb_exchange_client_gone(x, 0);
			x->abandoned = 1;
		}
		hb_conn_start_closing(c);
	}
	if (c->state != HB_CONN_DEAD && !hb_conn_out_empty(c))
		hb_conn_mark_dirty(c);
}

/* Socket bytes: through the PROXY protocol step first when the listener wants one. */
static void on_bytes(hb_conn_t *c, char *p, size_t len)
{
	char *own = NULL;

	if (c->state == HB_CONN_DEAD)
		return;
	if (c->proxy_pending) {
		int rc = hb_conn_proxy_recv(c, &p, &len, &own);
		if (rc < 0)
			hb_conn_abort(c);
		if (rc != 0 || len == 0) {
			free(own);
			return;
		}
	}
	transport_bytes(c, p, len);
	free(own);
}

void hb_conn_recv_done(hb_conn_t *c, int res, int more, char *p)
{
	if (!more) {
		c->recv_armed = 0;
		c->recv_cancelling = 0;
		c->ops--;
	}
	if (res > 0 && c->io->metrics)
		hb_mcount_add(&c->io->metrics->bytes_in, (uint64_t)res);
	if (res > 0 && p)
		on_bytes(c, p, (size_t)res);
	if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED))
		peer_closed(c);
	hb_conn_update_reading(c); /* arms again, or cancels the armed recv when paused */
	hb_conn_maybe_free(c);
}

/* ---- addresses --------------------------------------------------------------------------- */

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

void hb_conn_learn_addrs(hb_conn_t *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (c->addr_known)
		return;
	c->addr_known = 1;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
		fill_addr(&ss, c->remote, sizeof(c->remote), &c->remote_port);
		c->peer_unix = ss.ss_family == AF_UNIX;
	}
	len = sizeof(ss);
	if (getsockname(c->fd, (struct sockaddr *)&ss, &len) == 0)
		fill_addr(&ss, c->local, sizeof(c->local), &c->local_port);
	/* A peer on this host (127/8, ::1, or our own address) is reached over loopback, where the
	 * kernel copies send_zc's pages anyway and the zero-copy bookkeeping only costs. */
	c->peer_local =
		c->remote[0] &&
		(strcmp(c->remote, c->local) == 0 || strncmp(c->remote, "127.", 4) == 0 ||
		 strcmp(c->remote, "::1") == 0 || strncmp(c->remote, "::ffff:127.", 11) == 0);
}

/* ---- worker messages --------------------------------------------------------------------- */

void hb_conn_on_msg(hb_msg_t *m)
{
	hb_exchange_t *x = ((hb_stream_t *)m->stream)->exchange;
	hb_conn_t *c = x->conn;

	if (m->type == HB_MSG_END) {
		hb_worker_t *wk = hb_hub_worker(c->io->srv->hub, x->stream->worker_idx);
		atomic_fetch_sub(&wk->inflight, 1);
		atomic_fetch_add(&wk->served, 1);
		x->ended = 1;
	}
	if (c->state == HB_CONN_DEAD || !c->handler)
		hb_exchange_drop_msg(m);
	else
		c->handler->on_message_from_worker(c, x, m);
	if (c->state != HB_CONN_DEAD)
		hb_conn_mark_dirty(c);
	hb_conn_maybe_free(c); /* dead: releases the exchange once it has ended */
}

void hb_conn_flush_dirty(hb_conn_t *c)
{
	c->dirty = 0;
	if (c->state != HB_CONN_DEAD) {
		hb_conn_flush(c);
		if (hb_conn_out_idle(c))
			hb_conn_sent_all(c);
	}
	hb_conn_maybe_free(c);
}

/* ---- deadlines and draining -------------------------------------------------------------- */

/* The client stopped reading: output waits longer than write_timeout. */
static int write_stalled(const hb_conn_t *c, uint64_t now)
{
	int64_t t = c->io->cfg->write_timeout_s;

	return t > 0 && !hb_conn_out_idle(c) && c->last_write_ns &&
	       now - c->last_write_ns > (uint64_t)t * NS;
}

void hb_conn_tick(hb_conn_t *c, uint64_t now)
{
	switch (c->state) {
	case HB_CONN_OPEN:
		if (!c->handler) {
			if (c->start_deadline && now >= c->start_deadline)
				hb_conn_abort(c);
			break;
		}
		c->handler->on_tick(c, now);
		if (c->state != HB_CONN_DEAD && write_stalled(c, now))
			hb_conn_abort(c);
		break;
	case HB_CONN_CLOSING:
		if (now >= c->drain_deadline || write_stalled(c, now))
			hb_conn_abort(c);
		break;
	case HB_CONN_DEAD:
		break;
	}
	hb_conn_maybe_free(c);
}

void hb_conn_drain(hb_conn_t *c, int force)
{
	uint64_t now = hb_io_now(c->io);

	if (force || (c->state == HB_CONN_OPEN && !c->handler)) {
		hb_conn_abort(c);
	} else if (c->state == HB_CONN_OPEN) {
		c->handler->on_drain(c);
		if (c->state != HB_CONN_DEAD && write_stalled(c, now))
			hb_conn_abort(c);
	} else {
		hb_conn_tick(c, now);
		return;
	}
	hb_conn_maybe_free(c);
}
