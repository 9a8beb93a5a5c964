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

#define FAKE_OFFER_CAP (1 << 21)
#define FAKE_WIRE_CAP (1 << 21)
#include "fake_sock.h"

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
	cr_assert_eq(hb_tls_setup_init(&tls_setup, &cfg, "h2,http/1.1", err, sizeof err), 0, "%s",
		     err);
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

/* ---- small writes gathered into records ---------------------------------------------------- */

/* Counts the TLS records on the wire from `off` (each whole, none over a record's size). */
static int records_since(size_t off)
{
	int n = 0;
	while (off < F.wire_len) {
		cr_assert_leq(off + 5, F.wire_len, "a whole record header");
		size_t len = ((size_t)(uint8_t)F.wire[off + 3] << 8) | (uint8_t)F.wire[off + 4];
		cr_assert_leq(len, 16384 + 256, "a record within TLS's limit");
		off += 5 + len;
		n++;
	}
	cr_assert_eq(off, F.wire_len, "whole records only");
	return n;
}

static hb_conn_t *open_and_ask(const char *req)
{
	hb_conn_t *c = open_tls();
	handshake(c);
	client_write(c, req);
	return c;
}

Test(tls_transport, small_writes_of_one_iteration_go_out_as_one_record)
{
	hb_conn_t *c = open_and_ask(GET_A);
	char got[4096];
	hb_stream_t *s = worker_takes();

	/* no Content-Length: chunked, so head, and prefix + data + CRLF per chunk, and the last
	 * chunk: 17 writes of the handler, all in one loop iteration */
	cr_assert_eq(hb_stream_send_head(s, response(200, -1)), 0);
	for (int i = 0; i < 5; i++) {
		char part[16];
		snprintf(part, sizeof part, "part%d;", i);
		cr_assert_eq(hb_stream_send_body(s, part, strlen(part)), 0);
	}
	cr_assert_eq(hb_stream_end(s, 0), 0);
	size_t before = F.wire_len;
	flush(c);
	cr_assert_eq(records_since(before), 1, "one record for the whole response");
	cr_assert_eq(atomic_load(&s->out_pending), 0, "the body's bytes were accounted as sent");
	client_read(got, sizeof got);
	cr_assert(strstr(got, "HTTP/1.1 200 OK\r\n") &&
			  strstr(got, "\r\n\r\n6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n6\r\n"
				      "part3;\r\n6\r\npart4;\r\n0\r\n\r\n"),
		  "intact and in order: %s", got);
	hb_stream_release(s);
	hb_conn_recv_done(c, 0, 0, NULL);
	client_free();
}

Test(tls_transport, large_writes_go_through_in_full_records_after_what_was_gathered)
{
	hb_conn_t *c = open_and_ask(GET_A);
	static char got[1 << 17];
	size_t big = 40000, mid = 6000;
	char *body = malloc(big + 3 * mid);
	for (size_t i = 0; i < big + 3 * mid; i++)
		body[i] = (char)('a' + i % 26);
	hb_stream_t *s = worker_takes();

	cr_assert_eq(hb_stream_send_head(s, response(200, (int64_t)(big + 3 * mid))), 0);
	cr_assert_eq(hb_stream_send_body(s, body, big), 0); /* straight through: 3 records */
	for (int i = 0; i < 3; i++)			    /* gathered: 12000 + 6000 > 16 KiB */
		cr_assert_eq(hb_stream_send_body(s, body + big + (size_t)i * mid, mid), 0);
	cr_assert_eq(hb_stream_end(s, 0), 0);
	size_t before = F.wire_len;
	flush(c);
	cr_assert_eq(records_since(before), 1 + 3 + 2, "head, 16K+16K+7232, then 12000 and 6000");
	cr_assert_null(c->gather, "a gather buffer that grew is not kept while idle");
	cr_assert_eq(atomic_load(&s->out_pending), 0);
	size_t n = client_read(got, sizeof got);
	cr_assert_gt(n, big + 3 * mid);
	cr_assert_eq(memcmp(got + n - (big + 3 * mid), body, big + 3 * mid), 0, "intact, in order");
	free(body);
	hb_stream_release(s);
	hb_conn_recv_done(c, 0, 0, NULL);
	client_free();
}

Test(tls_transport, close_notify_comes_after_the_gathered_response)
{
	hb_conn_t *c = open_and_ask("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	char got[4096];
	hb_stream_t *s = worker_takes();

	worker_answers(s, 200, "bye", 3);
	size_t before = F.wire_len;
	flush(c);
	cr_assert_eq(records_since(before), 2, "the response, then the close_notify");
	cr_assert_eq(F.shutdowns, 1, "then the write side is shut");
	client_read(got, sizeof got);
	cr_assert(strstr(got, "Connection: close\r\n") && strstr(got, "\r\n\r\nbye"), "%s", got);
	cr_assert_eq(wolfSSL_get_error(CL.ssl, 0), WOLFSSL_ERROR_ZERO_RETURN,
		     "the session ended with close_notify after the data");
	hb_stream_release(s);
	hb_conn_shutdown_done(c, 0);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
	client_free();
}
