/* fake_sock.h: the fake socket ops the server unit tests drive a connection through (no
 * socket, no ring): the test completes each submitted op itself and reads what would have gone
 * on the wire. Shared by test_conn.c and test_transport_tls.c; static, one copy per test binary.
 * FAKE_OFFER_CAP / FAKE_WIRE_CAP may be defined before including it for larger transfers. */
#ifndef HB_TEST_FAKE_SOCK_H
#define HB_TEST_FAKE_SOCK_H

#ifndef FAKE_OFFER_CAP
#define FAKE_OFFER_CAP (1 << 16)
#endif
#ifndef FAKE_WIRE_CAP
#define FAKE_WIRE_CAP (1 << 17)
#endif

/* ---- the fake socket ---------------------------------------------------------------------- */

typedef struct {
	int recv_arms, recv_cancels, sendmsgs, zcs, splices[2], shutdowns, aborts, closes;
	size_t last_iovlen;	      /* iovecs of the last sendmsg */
	int send_pending, zc_pending; /* submitted, not completed */
	char offer[FAKE_OFFER_CAP];   /* bytes of the sendmsg/send_zc in flight */
	size_t offer_len;
	char wire[FAKE_WIRE_CAP]; /* what was sent */
	size_t wire_len;
	int splice_fd[2];
	unsigned splice_len[2];
	int64_t splice_off;
} fake_t;

static fake_t F;

static void f_recv_arm(hb_conn_t *c)
{
	F.recv_arms++;
}

static void f_recv_cancel(hb_conn_t *c)
{
	F.recv_cancels++;
}

static void f_sendmsg(hb_conn_t *c)
{
	cr_assert_eq(F.send_pending + F.zc_pending, 0, "one send in flight at a time");
	F.sendmsgs++;
	F.last_iovlen = c->msg.msg_iovlen;
	F.send_pending = 1;
	F.offer_len = 0;
	for (size_t i = 0; i < c->msg.msg_iovlen; i++) {
		memcpy(F.offer + F.offer_len, c->msg.msg_iov[i].iov_base,
		       c->msg.msg_iov[i].iov_len);
		F.offer_len += c->msg.msg_iov[i].iov_len;
	}
}

static void f_send_zc(hb_conn_t *c, const void *p, size_t len)
{
	cr_assert_eq(F.send_pending + F.zc_pending, 0, "one send in flight at a time");
	F.zcs++;
	F.zc_pending = 1;
	memcpy(F.offer, p, len);
	F.offer_len = len;
}

static void f_splice(hb_conn_t *c, int out, int fd_in, int64_t off, unsigned len)
{
	F.splices[out]++;
	F.splice_fd[out] = fd_in;
	F.splice_len[out] = len;
	if (!out)
		F.splice_off = off;
}

static void f_shutdown_wr(hb_conn_t *c)
{
	F.shutdowns++;
}

static void f_abort(hb_conn_t *c)
{
	F.aborts++;
}

static void f_close(hb_conn_t *c)
{
	F.closes++;
}

static const hb_sock_ops_t fake_ops = {
	.recv_arm = f_recv_arm,
	.recv_cancel = f_recv_cancel,
	.sendmsg = f_sendmsg,
	.send_zc = f_send_zc,
	.splice = f_splice,
	.shutdown_wr = f_shutdown_wr,
	.abort = f_abort,
	.close = f_close,
};

/* ---- the fake io thread and worker --------------------------------------------------------- */

static hb_config_t cfg;
static hb_server_t srv;
static hb_io_t io;

static void setup(void)
{
	char *argv[] = {"hornbeam-uring", "app:app", NULL};
	char *envp[] = {NULL};
	char err[256];

	memset(&F, 0, sizeof(F));
	cr_assert_eq(hb_config_load(&cfg, 2, argv, envp, NULL, err, sizeof(err)), 0, "%s", err);
	srv = (hb_server_t){.cfg = &cfg, .nio = 1};
	srv.hub = hb_hub_new(1, 1);
	cr_assert_not_null(srv.hub);
	atomic_store(&hb_hub_worker(srv.hub, 0)->accepting, 1);
	atomic_store(&srv.nconns, 1);
	memset(&io, 0, sizeof(io));
	io.srv = &srv;
	io.cfg = &cfg;
	io.ring.now_ns = 1000 * NS;
	snprintf(io.date, sizeof(io.date), "Thu, 01 Jan 2026 00:00:00 GMT");
}

static void teardown(void)
{
	hb_conn_caches_free(&io);
	hb_hub_free(srv.hub);
}

TestSuite(conn, .init = setup, .fini = teardown, .timeout = 20);

static hb_conn_t *open_conn(const hb_transport_t *t)
{
	hb_conn_t *c = hb_conn_new_with(&io, 99, t ? t : &hb_transport_plain, &fake_ops);

	cr_assert_not_null(c);
	cr_assert_eq(F.recv_arms, 1, "reading is armed at once");
	cr_assert_eq(c->ops, 1);
	return c;
}

/* The client sends bytes (one recv completion, the multishot recv stays armed). */
static void client_sends(hb_conn_t *c, const char *s)
{
	char buf[4096];
	size_t n = strlen(s);

	memcpy(buf, s, n); /* like a provided buffer: writable, gone after the call */
	hb_conn_recv_done(c, (int)n, 1, buf);
	memset(buf, 'X', n);
}

/* What the io loop does with worker messages: route them, then flush dirty connections. */
static void pump(void)
{
	hb_msg_t m;

	while (hb_hub_io_pop(srv.hub, 0, &m) == 0)
		hb_conn_on_msg(&m);
	while (io.dirty) {
		hb_conn_t *c = io.dirty;
		io.dirty = c->dirty_next;
		hb_conn_flush_dirty(c);
	}
}

/* The kernel sends n bytes of the sendmsg in flight. */
static void send_completes(hb_conn_t *c, size_t n)
{
	cr_assert(F.send_pending, "a sendmsg is in flight");
	cr_assert_leq(n, F.offer_len);
	memcpy(F.wire + F.wire_len, F.offer, n);
	F.wire_len += n;
	F.send_pending = 0;
	hb_conn_send_done(c, (int)n);
}

/* Completes every sendmsg until none is submitted any more. */
static void send_everything(hb_conn_t *c)
{
	while (F.send_pending)
		send_completes(c, F.offer_len);
}

static hb_stream_t *worker_takes(void)
{
	hb_stream_t *s = NULL;

	cr_assert_eq(hb_hub_worker_poll(srv.hub, 0, &s), 0, "a request was dispatched");
	return s;
}

static int worker_has_request(void)
{
	hb_stream_t *s = NULL;

	if (hb_hub_worker_poll(srv.hub, 0, &s) != 0)
		return 0;
	cr_assert_fail("unexpected request %.*s", (int)s->req->target_len, s->req->target);
	return 1;
}

static hb_response_t *response(int status, int64_t cl)
{
	hb_response_t *r = calloc(1, sizeof(*r) + sizeof(hb_header_t) + 24);

	r->status = status;
	r->content_length = cl;
	if (cl >= 0) { /* the app's Content-Length header, as the python layer passes it */
		hb_header_t *h = (hb_header_t *)r->data;
		char *v = r->data + sizeof(hb_header_t);
		h->name = "Content-Length";
		h->name_len = 14;
		h->value = v;
		h->value_len = (uint32_t)snprintf(v, 24, "%lld", (long long)cl);
		r->headers = h;
		r->nheaders = 1;
	}
	return r;
}

/* The worker answers s with status, Content-Length len (or none if len < 0) and body. */
static void worker_answers(hb_stream_t *s, int status, const char *body, int64_t cl)
{
	cr_assert_eq(hb_stream_send_head(s, response(status, cl)), 0);
	if (body)
		cr_assert_eq(hb_stream_send_body(s, body, strlen(body)), 0);
	cr_assert_eq(hb_stream_end(s, 0), 0);
}

static int wire_has(const char *needle)
{
	F.wire[F.wire_len] = 0;
	return strstr(F.wire, needle) != NULL;
}

#endif
