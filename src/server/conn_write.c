/* conn_write.c: a connection's output: handler output through the transport, then the output
 * queue. Bytes go out with one sendmsg over up to HB_CONN_MAX_IOV segments; a piece of at least
 * zerocopy_threshold bytes goes alone with send_zc (its memory is kept until the kernel's
 * notification), except to a peer on this host (loopback copies anyway: perf/README.md); file
 * regions go file -> pipe -> socket with two splices, so file bytes never enter user space
 * (send_zc and splice only where the transport allows them). One send (or splice) is in flight at
 * a time, which keeps responses in order. Every submission goes through the connection's socket
 * ops (c->sock), which counts it in c->ops.
 *
 * A transport with its own `write` (TLS) pays per call (a record: header, AEAD, a wolfSSL call),
 * so small writes are gathered here (c->gather, up to HB_CONN_GATHER_MAX bytes, counted against
 * at most one stream) and handed to it as one at the next flush; anything that asks whether the
 * output is empty or idle counts the gathered bytes, so the transport's close_notify still comes
 * after them. A write of HB_CONN_GATHER_MAX or more goes straight through (after what is
 * gathered). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/conn.h"

#define SPLICE_MAX (64 * 1024)

static hb_seg_t *seg_new(hb_conn_t *c)
{
	hb_seg_t *s = calloc(1, sizeof(*s));

	if (!s) {
		hb_conn_abort(c);
		return NULL;
	}
	s->file_fd = -1;
	if (!c->out_head && !c->send_busy)
		c->last_write_ns = hb_io_now(c->io);
	if (c->out_tail)
		c->out_tail->next = s;
	else
		c->out_head = s;
	c->out_tail = s;
	return s;
}

static void seg_free(hb_seg_t *s)
{
	if (s->acct)
		hb_stream_out_done(s->acct, s->acct_len);
	if (s->file_fd >= 0)
		close(s->file_fd);
	free(s->owned);
	free(s);
}

/* Room a copied segment keeps after its bytes, so that the small pieces queued after it join it
 * instead of making segments of their own: a response's body after its head, the next pipelined
 * response's head. The send is then one iovec (a plain send, not a sendmsg) and one copy in the
 * kernel, and the body's chunk is freed at once. */
#define SEG_ROOM 1024

/* Copies p/len onto the end of the tail segment when it is a copy with that much room, belongs
 * to no send in flight and has no other stream's bytes to account. Returns 1 when it did. */
static int tail_append(hb_conn_t *c, const char *p, size_t len, hb_stream_t *acct,
		       uint64_t acct_len)
{
	hb_seg_t *t = c->out_tail;

	if (!t || !t->room_end || c->send_busy || t->zc || (acct && t->acct && t->acct != acct) ||
	    len > (size_t)(t->room_end - (t->p + t->len)))
		return 0;
	memcpy((char *)t->p + t->len, p, len);
	t->len += len;
	if (acct) {
		t->acct = acct;
		t->acct_len += acct_len;
	}
	return 1;
}

/* A segment of its own for p/len (owned freed and acct ended when sent). NULL when out of
 * memory: the connection is aborted, owned freed and acct ended. */
static hb_seg_t *seg_add(hb_conn_t *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
			 uint64_t acct_len)
{
	hb_seg_t *s = seg_new(c);

	if (!s) {
		free(owned);
		if (acct)
			hb_stream_out_done(acct, acct_len);
		return NULL;
	}
	s->p = p;
	s->len = len;
	s->owned = owned;
	s->acct = acct;
	s->acct_len = acct_len;
	return s;
}

void hb_conn_out_bytes(hb_conn_t *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
		       uint64_t acct_len)
{
	if (tail_append(c, p, len, acct, acct_len))
		free(owned);
	else
		seg_add(c, p, len, owned, acct, acct_len);
}

void hb_conn_out_copy(hb_conn_t *c, const char *p, size_t len)
{
	if (tail_append(c, p, len, NULL, 0))
		return;
	if (len <= sizeof(((hb_seg_t *)0)->inl)) {
		hb_seg_t *s = seg_new(c);
		if (!s)
			return;
		memcpy(s->inl, p, len);
		s->p = s->inl;
		s->len = len;
		return;
	}
	char *copy = malloc(len + SEG_ROOM);
	if (!copy) {
		hb_conn_abort(c);
		return;
	}
	memcpy(copy, p, len);
	hb_seg_t *s = seg_add(c, copy, len, copy, NULL, 0);
	if (s)
		s->room_end = copy + len + SEG_ROOM;
}

void hb_conn_out_file(hb_conn_t *c, int fd, int64_t off, int64_t len)
{
	hb_seg_t *s;

	if (len <= 0 || !(s = seg_new(c))) {
		close(fd);
		return;
	}
	s->file_fd = fd;
	s->file_off = off;
	s->file_left = len;
}

void hb_conn_out_forget(hb_conn_t *c, const hb_stream_t *st)
{
	for (hb_seg_t *s = c->out_head; s; s = s->next)
		if (s->acct == st)
			s->acct = NULL;
	for (hb_seg_t *s = c->zc_retired; s; s = s->next)
		if (s->acct == st)
			s->acct = NULL;
	if (c->gather_acct == st) {
		c->gather_acct = NULL;
		c->gather_acct_len = 0;
	}
}

int hb_conn_out_empty(const hb_conn_t *c)
{
	return c->out_head == NULL && c->gather_len == 0;
}

/* Hands the gathered plaintext to the transport as one write (-errno: the caller aborts). */
static int gather_seal(hb_conn_t *c)
{
	if (c->gather_len == 0)
		return 0;
	hb_stream_t *acct = c->gather_acct;
	uint64_t acct_len = c->gather_acct_len;
	size_t len = c->gather_len;
	c->gather_len = 0;
	c->gather_acct = NULL;
	c->gather_acct_len = 0;
	int rc = c->transport->write(c, c->gather, len, NULL, acct, acct_len);
	if (c->gather_cap > HB_CONN_GATHER_KEEP) { /* an idle connection keeps a small one only */
		free(c->gather);
		c->gather = NULL;
		c->gather_cap = 0;
	}
	return rc;
}

void hb_conn_out_free(hb_conn_t *c)
{
	for (hb_seg_t *s = c->zc_retired, *n; s; s = n) {
		n = s->next;
		seg_free(s);
	}
	c->zc_retired = NULL;
	for (hb_seg_t *s = c->out_head, *n; s; s = n) {
		n = s->next;
		seg_free(s);
	}
	c->out_head = c->out_tail = NULL;
	if (c->gather_acct)
		hb_stream_out_done(c->gather_acct, c->gather_acct_len);
	free(c->gather);
	c->gather = NULL;
	c->gather_len = c->gather_cap = 0;
	c->gather_acct = NULL;
}

static void pop_seg(hb_conn_t *c)
{
	hb_seg_t *s = c->out_head;

	c->out_head = s->next;
	if (!c->out_head)
		c->out_tail = NULL;
	seg_free(s);
}

static void splice_in(hb_conn_t *c)
{
	hb_seg_t *s = c->out_head;
	unsigned n = s->file_left < SPLICE_MAX ? (unsigned)s->file_left : SPLICE_MAX;

	if (c->pipefd[0] < 0 && pipe2(c->pipefd, O_CLOEXEC) < 0) {
		hb_conn_abort(c);
		return;
	}
	c->ops++;
	c->send_busy = 1;
	c->sock->splice(c, 0, s->file_fd, s->file_off, n);
}

static void splice_out(hb_conn_t *c)
{
	c->ops++;
	c->send_busy = 1;
	c->sock->splice(c, 1, c->pipefd[0], -1, (unsigned)c->splice_inflight);
}

static int want_zc(hb_conn_t *c, const hb_seg_t *s)
{
	int64_t t = c->io->cfg->zerocopy_threshold;

	if (s->zc)
		return 1;
	if (t <= 0 || c->io->zc_off || !s->owned || (int64_t)s->len < t ||
	    !(c->transport->caps & HB_TRANSPORT_SEND_ZC))
		return 0;
	hb_conn_learn_addrs(c); /* once per connection */
	return !c->peer_local;
}

static void send_zc(hb_conn_t *c, hb_seg_t *s)
{
	s->zc = 1;
	c->ops++;
	c->send_busy = 1;
	c->sock->send_zc(c, s->p, s->len);
}

void hb_conn_flush(hb_conn_t *c)
{
	if (c->state != HB_CONN_DEAD && gather_seal(c) < 0)
		hb_conn_abort(c);
	if (c->send_busy || !c->out_head || c->state == HB_CONN_DEAD)
		return;
	if (c->out_head->file_fd >= 0) {
		splice_in(c);
		return;
	}
	if (want_zc(c, c->out_head)) {
		send_zc(c, c->out_head);
		return;
	}
	if (!c->iov && !(c->iov = hb_conn_iov_get(c->io))) {
		hb_conn_abort(c);
		return;
	}
	int n = 0;
	for (hb_seg_t *s = c->out_head;
	     s && n < HB_CONN_MAX_IOV && s->file_fd < 0 && !want_zc(c, s); s = s->next) {
		c->iov[n].iov_base = (void *)s->p;
		c->iov[n].iov_len = s->len;
		n++;
	}
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = (size_t)n;
	c->ops++;
	c->send_busy = 1;
	c->sock->sendmsg(c);
}

/* Drops fully written segments and trims the first partly written one. */
static void advance(hb_conn_t *c, size_t n)
{
	while (n > 0 && c->out_head && c->out_head->file_fd < 0) {
		hb_seg_t *s = c->out_head;
		if (n < s->len) {
			s->p += n;
			s->len -= n;
			return;
		}
		n -= s->len;
		pop_seg(c);
	}
	/* zero-length segments at the front are done too */
	while (c->out_head && c->out_head->file_fd < 0 && c->out_head->len == 0)
		pop_seg(c);
}

static void after_write(hb_conn_t *c)
{
	c->last_write_ns = hb_io_now(c->io);
	if (c->out_head || c->gather_len)
		hb_conn_flush(c);
	else
		hb_conn_sent_all(c);
}

/* Bytes that left on the socket, for the metrics. */
static void count_out(hb_conn_t *c, int res)
{
	if (res > 0 && c->io->metrics)
		hb_mcount_add(&c->io->metrics->bytes_out, (uint64_t)res);
}

void hb_conn_send_done(hb_conn_t *c, int res)
{
	count_out(c, res);
	c->ops--;
	c->send_busy = 0;
	hb_conn_iov_put(c->io, c->iov); /* back to the io's cache until the next sendmsg */
	c->iov = NULL;
	c->msg.msg_iov = NULL;
	if (res < 0) {
		hb_conn_abort(c); /* peer gone (EPIPE/ECONNRESET) or shut down */
	} else if (c->state != HB_CONN_DEAD) {
		advance(c, (size_t)res);
		after_write(c);
	}
	hb_conn_maybe_free(c);
}

/* The zero-copy piece at the head was (partly) sent; once whole it waits for its
 * notifications on zc_retired, its stream told the bytes are gone. */
static void zc_advance(hb_conn_t *c, size_t n)
{
	hb_seg_t *s = c->out_head;

	if (n < s->len) {
		s->p += n;
		s->len -= n;
		return;
	}
	c->out_head = s->next;
	if (!c->out_head)
		c->out_tail = NULL;
	if (s->acct)
		hb_stream_out_done(s->acct, s->acct_len);
	s->acct = NULL;
	s->next = c->zc_retired;
	c->zc_retired = s;
}

void hb_conn_zc_notified(hb_conn_t *c)
{
	c->ops--;
	if (--c->zc_pending > 0)
		return;
	for (hb_seg_t *s = c->zc_retired, *n; s; s = n) {
		n = s->next;
		seg_free(s);
	}
	c->zc_retired = NULL;
}

void hb_conn_zc_done(hb_conn_t *c, int res, int more)
{
	count_out(c, res);
	if (more)
		c->zc_pending++; /* the op stays counted until its notification */
	else
		c->ops--;
	c->send_busy = 0;
	if ((res == -EOPNOTSUPP || res == -EINVAL) && !more) {
		c->io->zc_off = 1; /* kernel or socket without zero copy: plain sends from now on */
		c->out_head->zc = 0; /* nothing of it went out zero-copy */
		hb_conn_flush(c);
	} else if (res < 0) {
		hb_conn_abort(c);
	} else if (c->state != HB_CONN_DEAD) {
		zc_advance(c, (size_t)res);
		after_write(c);
	}
	hb_conn_maybe_free(c);
}

static void splice_in_done(hb_conn_t *c, int res)
{
	c->ops--;
	c->send_busy = 0;
	if (res <= 0 || c->state == HB_CONN_DEAD) {
		hb_conn_abort(c); /* file shorter than announced, or an error: the body is broken */
	} else {
		hb_seg_t *s = c->out_head;
		s->file_off += res;
		s->file_left -= res;
		c->splice_inflight = res;
		splice_out(c);
	}
	hb_conn_maybe_free(c);
}

static void splice_out_done(hb_conn_t *c, int res)
{
	count_out(c, res);
	c->ops--;
	c->send_busy = 0;
	if (res <= 0 || c->state == HB_CONN_DEAD) {
		hb_conn_abort(c);
	} else {
		c->splice_inflight -= res;
		c->last_write_ns = hb_io_now(c->io);
		if (c->splice_inflight > 0)
			splice_out(c);
		else if (c->out_head->file_left > 0)
			splice_in(c);
		else {
			pop_seg(c);
			after_write(c);
		}
	}
	hb_conn_maybe_free(c);
}

void hb_conn_splice_done(hb_conn_t *c, int out, int res)
{
	if (out)
		splice_out_done(c, res);
	else
		splice_in_done(c, res);
}

/* ---- handler output through the transport ------------------------------------------------ */

/* Appends a small write to c->gather (sealing first when it would not fit or counts against
 * another stream). -errno: the caller aborts; the bytes and `owned` are dropped. */
static int gather_add(hb_conn_t *c, const char *p, size_t len, hb_stream_t *acct, uint64_t acct_len)
{
	if (c->gather_len + len > HB_CONN_GATHER_MAX ||
	    (acct && c->gather_acct && acct != c->gather_acct)) {
		int rc = gather_seal(c);
		if (rc < 0)
			return rc;
	}
	if (c->gather_len + len > c->gather_cap) {
		size_t cap = c->gather_cap ? c->gather_cap : 1024;
		while (cap < c->gather_len + len)
			cap *= 2;
		if (cap > HB_CONN_GATHER_MAX)
			cap = HB_CONN_GATHER_MAX;
		char *g = realloc(c->gather, cap);
		if (!g)
			return -ENOMEM;
		c->gather = g;
		c->gather_cap = cap;
	}
	memcpy(c->gather + c->gather_len, p, len);
	c->gather_len += len;
	if (acct) {
		c->gather_acct = acct;
		c->gather_acct_len += acct_len;
	}
	return 0;
}

void hb_conn_write(hb_conn_t *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
		   uint64_t acct_len)
{
	int rc;

	if (!c->transport->write) {
		hb_conn_out_bytes(c, p, len, owned, acct, acct_len);
		return;
	}
	if (len == 0) { /* nothing to encrypt: the bytes are as good as gone */
		free(owned);
		if (acct)
			hb_stream_out_done(acct, acct_len);
		return;
	}
	if (len < HB_CONN_GATHER_MAX && c->state != HB_CONN_DEAD) {
		rc = gather_add(c, p, len, acct, acct_len);
		free(owned);
		if (rc == 0)
			return;
		if (acct)
			hb_stream_out_done(acct, acct_len);
	} else if ((rc = gather_seal(c)) == 0) {
		if (c->transport->write(c, p, len, owned, acct, acct_len) == 0)
			return; /* else it freed owned and ended acct itself */
	} else {
		free(owned);
		if (acct)
			hb_stream_out_done(acct, acct_len);
	}
	hb_conn_abort(c);
}

void hb_conn_write_copy(hb_conn_t *c, const char *p, size_t len)
{
	if (!c->transport->write)
		hb_conn_out_copy(c, p, len);
	else
		hb_conn_write(c, p, len, NULL, NULL, 0);
}

/* A transport that must see every byte (TLS) gets the file's bytes read here. */
static void write_file_bytes(hb_conn_t *c, int fd, int64_t off, int64_t len)
{
	while (len > 0 && c->state != HB_CONN_DEAD) {
		size_t n = len < SPLICE_MAX ? (size_t)len : SPLICE_MAX;
		char *buf = malloc(n);
		ssize_t got = buf ? pread(fd, buf, n, off) : -1;
		if (got <= 0) {
			free(buf);
			hb_conn_abort(c); /* file shorter than announced, or an error */
			break;
		}
		hb_conn_write(c, buf, (size_t)got, buf, NULL, 0);
		off += got;
		len -= got;
	}
	close(fd);
}

void hb_conn_write_file(hb_conn_t *c, int fd, int64_t off, int64_t len)
{
	if (c->transport->caps & HB_TRANSPORT_SPLICE)
		hb_conn_out_file(c, fd, off, len);
	else
		write_file_bytes(c, fd, off, len);
}

int hb_conn_out_idle(const hb_conn_t *c)
{
	return !c->out_head && !c->send_busy && !c->gather_len;
}
