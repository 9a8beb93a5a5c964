/* node_link.c: the cluster thread's links (see node_priv.h): a link's life from the dial or
 * the accept to the free (only once no op is in flight), its I/O on the ring (every completion
 * goes through on_op's switch), TLS over its buffers, the cookie handshake, and the dispatch of
 * an authenticated link's frames to SWIM and the data plane. Cluster thread only. */
#include "cluster/node.h"
#include "cluster/node_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/auth.h"
#include "cluster/frame.h"
#include "core/codec.h"
#include "core/log.h"
#include "core/ring.h"

static void on_op(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe);

/* ---- addresses ---- */

/* "1.2.3.4:5" or "[::1]:5" into a sockaddr. */
int hb_cl_addr_parse(const char *s, struct sockaddr_storage *sa, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon = strrchr(s, ':');
	if (!colon)
		return -EINVAL;
	const char *h = s;
	size_t n = (size_t)(colon - s);
	if (*h == '[' && n >= 2 && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof host)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = 0;
	long port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof *sa);
	struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof *v4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof *v6;
		return 0;
	}
	return -EINVAL;
}

void hb_cl_addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
		snprintf(out, cap, "[%s]:%u", host, ntohs(v6->sin6_port));
	} else {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
		snprintf(out, cap, "%s:%u", host, ntohs(v4->sin_port));
	}
}

/* ---- links ---- */

/* Who is at the other end, for log lines: the authenticated name, else the name it claimed and
 * its address. */
static const char *link_name(link_t *l, char *buf, size_t cap)
{
	if (l->peer[0])
		return l->peer;
	if (l->auth.peer[0])
		snprintf(buf, cap, "%s (unverified) at %s", l->auth.peer, l->addr);
	else
		snprintf(buf, cap, "%s", l->addr[0] ? l->addr : "an unknown peer");
	return buf;
}

static link_t *link_new(hb_cluster_t *cl, int fd, int outgoing)
{
	hb_frame_limits_t lim = {.max_frame = cl->c.max_frame_size};
	link_t *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->cl = cl;
	l->fd = fd;
	l->outgoing = outgoing;
	l->parser = hb_frame_parser_new(&lim);
	l->out = hb_frame_out_new(0);
	l->rbuf = malloc(RBUF_SIZE);
	l->wbuf = malloc(WBUF_SIZE);
	if (cl->c.tls)
		l->tls = outgoing ? hb_tls_new_client(cl->c.tls) : hb_tls_new(cl->c.tls);
	if (!l->parser || !l->out || !l->rbuf || !l->wbuf || (cl->c.tls && !l->tls)) {
		hb_tls_free(l->tls);
		hb_frame_parser_free(l->parser);
		hb_frame_out_free(l->out);
		free(l->rbuf);
		free(l->wbuf);
		free(l);
		return NULL;
	}
	l->op_connect = (hb_ring_op_t){.cb = on_op, .owner = l, .kind = OP_CONNECT};
	l->op_recv = (hb_ring_op_t){.cb = on_op, .owner = l, .kind = OP_RECV};
	l->op_send = (hb_ring_op_t){.cb = on_op, .owner = l, .kind = OP_SEND};
	l->born = hb_cl_now_ms(cl);
	l->serial = ++cl->link_serial;
	l->next_stream = outgoing ? 1 : 2;
	l->next = cl->links;
	cl->links = l;
	return l;
}

static void link_free_if_idle(link_t *l)
{
	if (l->state != L_CLOSING || l->busy)
		return;
	hb_cluster_t *cl = l->cl;
	for (link_t **p = &cl->links; *p; p = &(*p)->next) {
		if (*p == l) {
			*p = l->next;
			break;
		}
	}
	close(l->fd);
	hb_tls_free(l->tls);
	free(l->tx);
	hb_auth_clear(&l->auth);
	hb_frame_parser_free(l->parser);
	hb_frame_out_free(l->out);
	free(l->rbuf);
	free(l->wbuf);
	free(l);
}

/* Closes a link; `why` (static) is logged as a warning naming the peer, NULL closes quietly. */
void hb_cl_link_close(link_t *l, const char *why)
{
	if (l->state == L_CLOSING)
		return;
	char who[HB_AUTH_MAX_NAME + HB_SWIM_MAX_ADDR + 32];
	if (why)
		hb_warn("cluster: closing the link with %s: %s", link_name(l, who, sizeof who),
			why);
	if (l->tls && !l->sending) {
		/* a last word, best effort and without waiting: close_notify, or the alert that
		 * tells the peer why its handshake failed */
		if (l->state == L_AUTH || l->state == L_UP)
			hb_tls_shutdown(l->tls);
		size_t n;
		void *p = hb_tls_out_take(l->tls, &n);
		if (p && send(l->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			hb_debug("cluster: last TLS record not sent: %s", strerror(errno));
		free(p);
	}
	l->state = L_CLOSING;
	hb_dp_link_closed(l);
	shutdown(l->fd, SHUT_RDWR);
	if (l->busy) {
		hb_ring_cancel(&l->cl->ring, &l->op_connect);
		hb_ring_cancel(&l->cl->ring, &l->op_recv);
	}
	link_free_if_idle(l);
}

static void arm_recv(link_t *l)
{
	struct io_uring_sqe *sqe = hb_ring_sqe_for(&l->cl->ring, &l->op_recv);
	io_uring_prep_recv(sqe, l->fd, l->rbuf, RBUF_SIZE, 0);
	l->busy++;
}

/* With TLS: what wbuf holds (or the frame queue refills it with) is encrypted at once and the
 * engine's ciphertext goes out from tx. An engine failure here (out of memory) shuts the
 * socket down, so the pending receive ends the link on the usual path (the caller's link must
 * stay valid). */
static void tls_flush(link_t *l)
{
	if (l->txoff == l->txlen) {
		free(l->tx);
		l->tx = NULL;
		l->txoff = l->txlen = 0;
		if (hb_tls_done(l->tls)) {
			if (l->woff == l->wlen && l->state == L_UP) {
				l->woff = 0;
				l->wlen = hb_frame_out_fill(l->out, l->wbuf, WBUF_SIZE);
			}
			const char *why = NULL;
			if (l->woff < l->wlen &&
			    hb_tls_write(l->tls, l->wbuf + l->woff, l->wlen - l->woff, &why) < 0) {
				hb_warn("cluster: TLS on the link with %s failed: %s",
					l->peer[0] ? l->peer : l->addr, why);
				shutdown(l->fd, SHUT_RDWR);
			}
			l->woff = l->wlen = 0;
		}
		l->tx = hb_tls_out_take(l->tls, &l->txlen);
		if (!l->tx)
			return;
	}
	struct io_uring_sqe *sqe = hb_ring_sqe_for(&l->cl->ring, &l->op_send);
	io_uring_prep_send(sqe, l->fd, l->tx + l->txoff, l->txlen - l->txoff, MSG_NOSIGNAL);
	l->sending = 1;
	l->busy++;
}

/* Sends what is buffered, refilling the buffer from the frame queue once authenticated. */
void hb_cl_flush(link_t *l)
{
	if (l->sending || l->state == L_CLOSING || l->state == L_CONNECTING)
		return;
	if (l->tls) {
		tls_flush(l);
		return;
	}
	if (l->woff == l->wlen) {
		l->woff = l->wlen = 0;
		if (l->state == L_UP)
			l->wlen = hb_frame_out_fill(l->out, l->wbuf, WBUF_SIZE);
	}
	if (l->woff == l->wlen)
		return;
	struct io_uring_sqe *sqe = hb_ring_sqe_for(&l->cl->ring, &l->op_send);
	io_uring_prep_send(sqe, l->fd, l->wbuf + l->woff, l->wlen - l->woff, MSG_NOSIGNAL);
	l->sending = 1;
	l->busy++;
}

/* Appends one small frame (the handshake) to the write buffer. */
static int send_raw(link_t *l, uint8_t type, const uint8_t *p, size_t len)
{
	if ((l->sending && !l->tls) || WBUF_SIZE - l->wlen < HB_FRAME_HEADER_SIZE + len)
		return -ENOBUFS; /* cannot happen in the handshake's lock step; checked anyway */
	hb_frame_header_encode(l->wbuf + l->wlen, type, 0, 0, (uint32_t)len);
	memcpy(l->wbuf + l->wlen + HB_FRAME_HEADER_SIZE, p, len);
	l->wlen += HB_FRAME_HEADER_SIZE + len;
	return 0;
}

static int auth_begin(link_t *l, hb_auth_role_t role)
{
	hb_cluster_t *cl = l->cl;
	uint8_t nonce[HB_AUTH_NONCE_SIZE];
	if (hb_auth_nonce(nonce) < 0 ||
	    hb_auth_init(&l->auth, role, cl->name, cl->cookie, cl->c.cookie_len, nonce) < 0)
		return -EIO;
	l->state = L_AUTH;
	if (role == HB_AUTH_SERVER)
		return 0;
	uint8_t stack[512], type;
	hb_cbuf_t b;
	hb_cbuf_init(&b, stack, sizeof stack);
	int rc = hb_auth_start(&l->auth, &b, &type);
	if (rc == 0)
		rc = send_raw(l, type, b.data, b.len);
	hb_cbuf_free(&b);
	return rc;
}

/* The address a member advertises, to find links by peer name. */
typedef struct by_addr {
	const char *addr;
	char name[HB_SWIM_MAX_NAME + 1];
} by_addr_t;

static void match_addr(const char *name, const char *addr, hb_swim_state_t st, uint64_t inc,
		       void *ud)
{
	by_addr_t *b = ud;
	(void)st;
	(void)inc;
	if (!strcmp(addr, b->addr))
		snprintf(b->name, sizeof b->name, "%s", name);
}

link_t *hb_cl_link_to(hb_cluster_t *cl, const char *addr)
{
	by_addr_t b = {.addr = addr};
	hb_swim_members(cl->swim, match_addr, &b);
	link_t *dial = NULL;
	for (link_t *l = cl->links; l; l = l->next) {
		if (l->state == L_CLOSING)
			continue;
		if (b.name[0] && l->state == L_UP && !strcmp(l->peer, b.name))
			return l;
		if (l->outgoing && !strcmp(l->addr, addr))
			dial = l;
	}
	if (dial)
		return dial;
	struct sockaddr_storage sa;
	socklen_t salen;
	if (hb_cl_addr_parse(addr, &sa, &salen) < 0)
		return NULL;
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	link_t *l = link_new(cl, fd, 1);
	if (!l) {
		close(fd);
		return NULL;
	}
	snprintf(l->addr, sizeof l->addr, "%s", addr);
	l->sa = sa;
	l->salen = salen;
	l->state = L_CONNECTING;
	struct io_uring_sqe *sqe = hb_ring_sqe_for(&cl->ring, &l->op_connect);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&l->sa, l->salen);
	l->busy++;
	return l;
}

/* ---- completions ---- */

static void handle(link_t *l, const hb_frame_msg_t *m)
{
	hb_cluster_t *cl = l->cl;
	if (l->state == L_AUTH) {
		uint8_t stack[512], type = 0;
		const char *why = NULL;
		hb_cbuf_t b;
		hb_cbuf_init(&b, stack, sizeof stack);
		int rc = hb_auth_input(&l->auth, m->type, m->data, m->len, &b, &type, &why);
		if (rc >= 0 && (rc & HB_AUTH_SEND) && send_raw(l, type, b.data, b.len) < 0)
			rc = -ENOBUFS, why = "handshake buffer full";
		hb_cbuf_free(&b);
		if (rc < 0) {
			hb_cl_link_close(l, why);
			return;
		}
		if (rc & HB_AUTH_DONE) {
			snprintf(l->peer, sizeof l->peer, "%s", hb_auth_peer(&l->auth));
			l->state = L_UP;
			hb_debug("cluster: link with %s up", l->peer);
			hb_dp_link_up(l);
		}
		return;
	}
	switch (m->type) {
	case HB_FRAME_SWIM:
		hb_swim_input(cl->swim, hb_cl_now_ms(cl), m->data, m->len);
		break;
	case HB_FRAME_CLOSE:
		hb_cl_link_close(l, NULL);
		break;
	case HB_FRAME_CALL:
	case HB_FRAME_CAST:
	case HB_FRAME_REPLY:
	case HB_FRAME_PUBLISH:
	case HB_FRAME_TABLES:
		hb_dp_input(l, m);
		break;
	default: /* a handshake frame after the handshake */
		hb_debug("cluster: %s sent frame type %u, ignored", l->peer, m->type);
		break;
	}
}

static void parse(link_t *l, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n && l->state != L_CLOSING) {
		hb_frame_msg_t m;
		size_t used;
		const char *why = NULL;
		int rc = hb_frame_feed(l->parser, p + off, n - off, &used, &m, &why);
		off += used;
		if (rc < 0) {
			hb_cl_link_close(l, why);
			return;
		}
		if (rc == 1)
			handle(l, &m);
	}
}

/* A TLS failure: logged with who and why (for a handshake, what both ends need), then the link
 * closes (sending the engine's alert, so the peer's log says why as well). */
static void tls_fail(link_t *l, const char *why)
{
	char who[HB_AUTH_MAX_NAME + HB_SWIM_MAX_ADDR + 32];
	if (l->state == L_TLS || l->state == L_AUTH) /* TLS 1.3: a client learns late */
		hb_warn("cluster: TLS handshake %s %s failed: %s (every node needs a certificate "
			"that chains to cluster_cacertfile)",
			l->outgoing ? "to" : "from", link_name(l, who, sizeof who), why);
	else
		hb_warn("cluster: TLS error on the link with %s: %s", link_name(l, who, sizeof who),
			why);
	hb_cl_link_close(l, NULL);
}

/* The TLS handshake is done: the peer's certificate is verified; the cookie handshake starts
 * inside TLS. */
static void tls_up(link_t *l)
{
	char *subject = NULL, *pem = NULL;
	if (hb_tls_peer_cert(l->tls, &subject, &pem) == 1)
		hb_debug("cluster: TLS link %s %s, peer certificate %s",
			 l->outgoing ? "to" : "from", l->addr, subject);
	free(subject);
	free(pem);
	if (auth_begin(l, l->outgoing ? HB_AUTH_CLIENT : HB_AUTH_SERVER) < 0)
		hb_cl_link_close(l, "cannot start the handshake");
}

/* Ciphertext in rbuf[0..n): fed to the engine (which copies it), then rbuf takes the plaintext
 * read back, which is parsed as frames. */
static void tls_input(link_t *l, size_t n)
{
	const char *why = NULL;
	int first = !l->tls_rx;
	l->tls_rx = 1;
	if (first && l->rbuf[0] != 0x16 && l->rbuf[0] != 0x15) {
		/* neither a handshake nor an alert record: a peer without TLS (a frame header) */
		char who[HB_AUTH_MAX_NAME + HB_SWIM_MAX_ADDR + 32];
		hb_warn("cluster: closing the link with %s: it speaks no TLS (a node without "
			"cluster_tls?)",
			link_name(l, who, sizeof who));
		hb_cl_link_close(l, NULL);
		return;
	}
	if (hb_tls_feed(l->tls, l->rbuf, n, &why) < 0) {
		tls_fail(l, why);
		return;
	}
	if (l->state == L_TLS) {
		int rc = hb_tls_handshake(l->tls, &why);
		if (rc <= 0) {
			if (rc < 0)
				tls_fail(l, why);
			return;
		}
		tls_up(l);
	}
	while (l->state != L_CLOSING) {
		ssize_t got = hb_tls_read(l->tls, l->rbuf, RBUF_SIZE, &why);
		if (got == 0)
			return;
		if (got == HB_TLS_EOF) {
			hb_cl_link_close(l, NULL);
			return;
		}
		if (got < 0) {
			tls_fail(l, why);
			return;
		}
		parse(l, l->rbuf, (size_t)got);
	}
}

static void on_recv(link_t *l, int res)
{
	if (l->state == L_CLOSING)
		return;
	if (res <= 0 && l->state == L_AUTH) /* the other end refused us (or crashed) */
		hb_cl_link_close(l, "closed by the peer during the handshake (a wrong cookie, or "
				    "cluster_tls on one side only?)");
	if (res <= 0) {
		hb_cl_link_close(l, res == 0 || res == -ECONNRESET ? NULL : "receive failed");
		return;
	}
	if (l->tls)
		tls_input(l, (size_t)res);
	else
		parse(l, l->rbuf, (size_t)res);
	if (l->state != L_CLOSING) {
		arm_recv(l);
		hb_cl_flush(l);
	}
}

static void on_accept(hb_cluster_t *cl, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		cl->accept_armed = 0;
	if (cqe->res < 0)
		return;
	int one = 1;
	setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	link_t *l = link_new(cl, cqe->res, 0);
	if (!l) {
		close(cqe->res);
		return;
	}
	struct sockaddr_storage sa;
	socklen_t salen = sizeof sa;
	if (getpeername(l->fd, (struct sockaddr *)&sa, &salen) == 0)
		hb_cl_addr_format((struct sockaddr *)&sa, l->addr, sizeof l->addr);
	if (l->tls)
		l->state = L_TLS; /* the cookie handshake waits for TLS (tls_up) */
	else if (auth_begin(l, HB_AUTH_SERVER) < 0) {
		hb_cl_link_close(l, "cannot start the handshake");
		return;
	}
	arm_recv(l);
}

static void on_op(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe)
{
	(void)r;
	if (op->kind == OP_ACCEPT) {
		on_accept(op->owner, cqe);
		return;
	}
	link_t *l = op->owner;
	/* this op still counts as busy while it is handled, so a close inside cannot free l */
	switch (op->kind) {
	case OP_CONNECT:
		if (l->state != L_CLOSING && cqe->res < 0)
			hb_cl_link_close(l, NULL); /* a member that is down: SWIM notices */
		else if (l->state != L_CLOSING && l->tls) {
			const char *why = NULL;
			l->state = L_TLS;
			if (hb_tls_handshake(l->tls, &why) < 0) { /* the ClientHello */
				tls_fail(l, why);
			} else {
				arm_recv(l);
				hb_cl_flush(l);
			}
		} else if (l->state != L_CLOSING && auth_begin(l, HB_AUTH_CLIENT) < 0)
			hb_cl_link_close(l, "cannot start the handshake");
		else if (l->state != L_CLOSING) {
			arm_recv(l);
			hb_cl_flush(l);
		}
		break;
	case OP_RECV:
		on_recv(l, cqe->res);
		break;
	case OP_SEND:
		l->sending = 0;
		if (cqe->res < 0)
			hb_cl_link_close(l, NULL);
		else {
			*(l->tls ? &l->txoff : &l->woff) += (size_t)cqe->res;
			hb_cl_flush(l);
		}
		break;
	}
	l->busy--;
	link_free_if_idle(l);
}

/* ---- the listener ---- */

void hb_cl_accept_start(hb_cluster_t *cl)
{
	cl->op_accept = (hb_ring_op_t){.cb = on_op, .owner = cl, .kind = OP_ACCEPT};
	hb_cl_arm_accept(cl);
}

void hb_cl_arm_accept(hb_cluster_t *cl)
{
	struct io_uring_sqe *sqe = hb_ring_sqe_for(&cl->ring, &cl->op_accept);
	io_uring_prep_multishot_accept(sqe, cl->lfd, NULL, NULL, SOCK_CLOEXEC);
	cl->accept_armed = 1;
}
