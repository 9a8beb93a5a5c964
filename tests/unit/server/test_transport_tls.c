/* test_transport_tls.c: the TLS transport (src/server/transport_tls.c) in a real connection
 * driven through fake socket ops (no socket, no ring; the harness of test_conn.c) against a
 * wolfSSL client over memory: the handshake, an HTTP/1.1 exchange whose request carries the TLS
 * facts (scheme https, version, cipher), the response decrypted by the client, keep-alive, the
 * handshake timeout, a failed handshake answered with an alert and counted, close_notify from
 * the client, and file bodies going through the cipher (no splice). */
#include <wolfssl/options.h>

#include <wolfssl/ssl.h>

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/hub.h"
#include "server/conn.h"
#include "server/conn_h1.h"
#include "server/tls_setup.h"
#include "server/transport_tls.h"

#define NS 1000000000ull

/* ---- the fake socket ---------------------------------------------------------------------- */

typedef struct {
	int recv_arms, recv_cancels, sendmsgs, zcs, splices[2], shutdowns, aborts, closes;
	int send_pending, zc_pending; /* submitted, not completed */
	char offer[1 << 21];	      /* bytes of the sendmsg/send_zc in flight */
	size_t offer_len;
	char wire[1 << 21]; /* what was sent */
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

/* ---- TLS: certificates, the server's context, a wolfSSL client over memory ---------------- */

static char dir[64];
static hb_tls_setup_t tls_setup;

static void tls_up(void)
{
	char cmd[512], cert[128], key[128], err[256];
	setup();
	strcpy(dir, "/tmp/hb-ttls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cmd, sizeof cmd, "%s/tests/tls/make_certs.sh %s", HB_SOURCE_DIR, dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(cert, sizeof cert, "%s/server.pem", dir);
	snprintf(key, sizeof key, "%s/server.key", dir);
	cfg.ssl = 1;
	cfg.certfile = strdup(cert);
	cfg.keyfile = strdup(key);
	cr_assert_eq(hb_tls_setup_init(&tls_setup, &cfg, HB_TLS_SERVED_ALPN, err, sizeof err), 0,
		     "%s", err);
	srv.tls = &tls_setup;
}

static void tls_down(void)
{
	char cmd[128];
	hb_tls_setup_free(&tls_setup);
	hb_config_free(&cfg);
	teardown();
	hb_tls_thread_cleanup();
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(tls_transport, .init = tls_up, .fini = tls_down, .timeout = 30);

typedef struct client {
	WOLFSSL_CTX *ctx;
	WOLFSSL *ssl;
	uint8_t in[1 << 21]; /* from the server (F.wire), read position in_off */
	size_t in_off;
	uint8_t out[1 << 16]; /* to the server */
	size_t out_len;
} client_t;

static client_t CL;

static int c_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	size_t avail = F.wire_len - CL.in_off;
	if (!avail)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = avail < (size_t)sz ? avail : (size_t)sz;
	memcpy(buf, F.wire + CL.in_off, n);
	CL.in_off += n;
	return (int)n;
}

static int c_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	memcpy(CL.out + CL.out_len, buf, (size_t)sz);
	CL.out_len += (size_t)sz;
	return sz;
}

static void client_new_method(WOLFSSL_METHOD *m)
{
	char ca[128];
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	CL.ctx = wolfSSL_CTX_new(m);
	cr_assert_eq(wolfSSL_CTX_load_verify_locations(CL.ctx, ca, NULL), WOLFSSL_SUCCESS);
	CL.ssl = wolfSSL_new(CL.ctx);
	wolfSSL_SSLSetIORecv(CL.ssl, c_recv);
	wolfSSL_SSLSetIOSend(CL.ssl, c_send);
	cr_assert_eq(wolfSSL_check_domain_name(CL.ssl, "localhost"), WOLFSSL_SUCCESS);
}

static void client_new(void)
{
	client_new_method(wolfSSLv23_client_method());
}

static void client_free(void)
{
	wolfSSL_free(CL.ssl);
	wolfSSL_CTX_free(CL.ctx);
}

/* What the client wrote goes to the connection as one recv completion. */
static void to_conn(hb_conn_t *c)
{
	if (!CL.out_len)
		return;
	hb_conn_recv_done(c, (int)CL.out_len, 1, (char *)CL.out);
	CL.out_len = 0;
}

/* The connection's queued output goes on the wire (every sendmsg completes). */
static void flush(hb_conn_t *c)
{
	pump();
	send_everything(c);
}

static void handshake(hb_conn_t *c)
{
	int r = 0;
	for (int i = 0; i < 6 && r != WOLFSSL_SUCCESS; i++) {
		r = wolfSSL_connect(CL.ssl);
		to_conn(c);
		flush(c);
	}
	cr_assert_eq(r, WOLFSSL_SUCCESS, "client handshake: %d", wolfSSL_get_error(CL.ssl, r));
}

static void client_write(hb_conn_t *c, const char *s)
{
	cr_assert_eq(wolfSSL_write(CL.ssl, s, (int)strlen(s)), (int)strlen(s));
	to_conn(c);
}

/* Decrypts everything the server sent so far. */
static size_t client_read(char *buf, size_t cap)
{
	size_t n = 0;
	int r;
	while (n < cap - 1 && (r = wolfSSL_read(CL.ssl, buf + n, (int)(cap - 1 - n))) > 0)
		n += (size_t)r;
	buf[n] = 0;
	return n;
}

static hb_conn_t *open_tls(void)
{
	hb_conn_t *c = hb_conn_new_with(&io, 99, &hb_transport_tls, &fake_ops);
	cr_assert_not_null(c);
	client_new();
	return c;
}

static const char GET_A[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";

Test(tls_transport, https_exchange_with_tls_facts_and_keep_alive)
{
	hb_conn_t *c = open_tls();
	char got[4096];

	handshake(c);
	cr_assert_eq(atomic_load(&tls_setup.handshakes_ok), 1);
	client_write(c, GET_A);
	cr_assert_eq(c->handler, &hb_h1_handler, "no ALPN: HTTP/1.1");
	hb_stream_t *s = worker_takes();
	cr_assert_str_eq(s->req->scheme, "https");
	cr_assert_not_null(s->req->tls);
	cr_assert_eq(s->req->tls->version, 0x0304);
	cr_assert_eq(s->req->tls->cipher_suite >> 8, 0x13, "a TLS 1.3 suite");
	cr_assert_null(s->req->tls->client_cert_name);
	worker_answers(s, 200, "hello", 5);
	flush(c);
	client_read(got, sizeof got);
	cr_assert(strstr(got, "HTTP/1.1 200 OK\r\n") && strstr(got, "\r\n\r\nhello"), "%s", got);
	hb_stream_release(s);

	client_write(c, GET_A); /* keep-alive on the same TLS session */
	s = worker_takes();
	worker_answers(s, 200, "again", 5);
	flush(c);
	client_read(got, sizeof got);
	cr_assert(strstr(got, "\r\n\r\nagain"), "%s", got);
	hb_stream_release(s);

	wolfSSL_shutdown(CL.ssl); /* close_notify: the peer closed */
	to_conn(c);
	cr_assert_eq(F.aborts, 1);
	hb_conn_recv_done(c, -ECANCELED, 0, NULL); /* the armed recv ends */
	cr_assert_eq(F.closes, 1);
	client_free();
}

Test(tls_transport, a_big_body_and_a_file_body_go_through_the_cipher)
{
	hb_conn_t *c = open_tls();
	static char got[1 << 20];
	char path[128];

	handshake(c);
	client_write(c, GET_A);
	hb_stream_t *s = worker_takes();
	size_t big = 300000;
	char *body = malloc(big + 1);
	memset(body, 'b', big);
	body[big] = 0;
	worker_answers(s, 200, body, (int64_t)big);
	flush(c);
	size_t n = client_read(got, sizeof got);
	cr_assert_gt(n, big);
	cr_assert_eq(memcmp(got + n - big, body, big), 0);
	free(body);
	hb_stream_release(s);

	snprintf(path, sizeof path, "%s/body.txt", dir);
	FILE *f = fopen(path, "w");
	fputs("0123456789file body", f);
	fclose(f);
	client_write(c, GET_A);
	s = worker_takes();
	cr_assert_eq(hb_stream_send_head(s, response(200, 10)), 0);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(hb_stream_send_file(s, fd, 5, 10), 0);
	cr_assert_eq(hb_stream_end(s, 0), 0);
	flush(c);
	cr_assert_eq(F.splices[0] + F.splices[1] + F.zcs, 0, "no splice, no send_zc under TLS");
	client_read(got, sizeof got);
	cr_assert(strstr(got, "\r\n\r\n56789file "), "%s", got);
	hb_stream_release(s);
	hb_conn_recv_done(c, 0, 0, NULL);
	client_free();
}

Test(tls_transport, handshake_timeout_closes_a_silent_client)
{
	hb_conn_t *c = open_tls();

	hb_conn_tick(c, io.ring.now_ns + (uint64_t)(cfg.ssl_handshake_timeout_s - 1) * NS);
	cr_assert_eq(F.aborts, 0);
	hb_conn_tick(c, io.ring.now_ns + (uint64_t)cfg.ssl_handshake_timeout_s * NS);
	cr_assert_eq(F.aborts, 1, "closed at ssl_handshake_timeout");
	hb_conn_recv_done(c, -ECANCELED, 0, NULL);
	cr_assert_eq(F.closes, 1);
	cr_assert_eq(atomic_load(&tls_setup.handshakes_timed_out), 1);
	client_free();
}

Test(tls_transport, a_tls11_client_gets_an_alert_and_is_counted)
{
	hb_conn_t *c = hb_conn_new_with(&io, 99, &hb_transport_tls, &fake_ops);

	client_new_method(wolfTLSv1_1_client_method());
	wolfSSL_connect(CL.ssl);
	to_conn(c);
	flush(c);
	cr_assert_gt(F.wire_len, 0);
	cr_assert_eq((unsigned char)F.wire[0], 0x15, "an alert record");
	cr_assert_eq(F.shutdowns, 1, "then the write side is shut");
	cr_assert_eq(atomic_load(&tls_setup.handshakes_failed), 1);
	cr_assert_null(c->handler, "no protocol ever started");
	hb_conn_shutdown_done(c, 0);
	hb_conn_recv_done(c, 0, 0, NULL); /* the client closes too */
	cr_assert_eq(F.closes, 1);
	client_free();
}

Test(tls_transport, plaintext_http_is_refused_and_counted)
{
	hb_conn_t *c = open_tls();
	char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	hb_conn_recv_done(c, (int)strlen(junk), 1, junk);
	flush(c);
	cr_assert_null(strstr(F.wire, "HTTP/1.1"), "never answered in plaintext");
	cr_assert_eq(atomic_load(&tls_setup.handshakes_failed), 1);
	cr_assert_null(c->handler);
	cr_assert_eq(F.shutdowns, 1, "the connection closes");
	hb_conn_shutdown_done(c, 0);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
	client_free();
}
