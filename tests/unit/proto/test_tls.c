/* test_tls.c: the TLS engine (src/proto/tls.c) against a wolfSSL client, both over memory
 * buffers, no sockets: versions, ALPN, SNI, tickets across engines and their rotation, mutual
 * TLS, encrypted keys, refusals (old versions, plaintext, garbage, bad ciphers), truncated and
 * corrupted records. Certificates come from tests/tls/make_certs.sh in a fresh directory per
 * test; under ASan every error path is also a leak check. */
#include <wolfssl/options.h>

#include <wolfssl/ssl.h>

#include "tls_harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void make_certs(void)
{
	make_certs_in("/tmp/hb-tls-XXXXXX");
	wolfSSL_Init();
}

TestSuite(tls, .init = make_certs, .fini = remove_certs, .timeout = 60);

/* ---- server contexts ---- */

static hb_tls_conf_t base_conf(hb_tls_cert_conf_t *certs)
{
	certs[0] = (hb_tls_cert_conf_t){NULL, cert("server.pem"), cert("server.key"), NULL};
	return (hb_tls_conf_t){.certs = certs, .ncerts = 1};
}

static hb_tls_ctx_t *ctx_ok(const hb_tls_conf_t *conf)
{
	char err[256] = "";
	hb_tls_ctx_t *ctx = hb_tls_ctx_new(conf, NULL, err, sizeof err);
	cr_assert_not_null(ctx, "ctx: %s", err);
	return ctx;
}

static hb_tls_ctx_t *default_ctx(void)
{
	hb_tls_cert_conf_t certs[1];
	hb_tls_conf_t conf = base_conf(certs);
	return ctx_ok(&conf);
}

/* ---- a wolfSSL client over memory ---- */

struct mem {
	uint8_t *p;
	size_t len, off;
};

typedef struct client {
	WOLFSSL_CTX *cctx;
	WOLFSSL *ssl;
	struct mem in;	/* from the server */
	struct mem out; /* to the server */
} client_t;

static int c_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	client_t *c = arg;
	(void)ssl;
	size_t avail = c->in.len - c->in.off;
	if (!avail)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = avail < (size_t)sz ? avail : (size_t)sz;
	memcpy(buf, c->in.p + c->in.off, n);
	c->in.off += n;
	return (int)n;
}

static void mem_add(struct mem *m, const void *p, size_t n)
{
	m->p = realloc(m->p, m->len + n + 1);
	cr_assert_not_null(m->p);
	memcpy(m->p + m->len, p, n);
	m->len += n;
}

static int c_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	client_t *c = arg;
	(void)ssl;
	mem_add(&c->out, buf, (size_t)sz);
	return sz;
}

typedef struct client_opts {
	int version;	  /* 0: TLS 1.2 or 1.3; 11, 12, 13: only that one */
	const char *alpn; /* comma-separated, NULL: none */
	const char *sni;
	const char *certfile, *keyfile;
	const char *ciphers;
	const char *verify_name; /* the certificate must name this host */
	WOLFSSL_SESSION *session;
	int tickets12; /* offer TLS 1.2 session tickets */
} client_opts_t;

static client_t *client_new(const client_opts_t *o)
{
	client_t *c = calloc(1, sizeof *c);
	WOLFSSL_METHOD *m = o->version == 11   ? wolfTLSv1_1_client_method()
			    : o->version == 12 ? wolfTLSv1_2_client_method()
			    : o->version == 13 ? wolfTLSv1_3_client_method()
					       : wolfSSLv23_client_method();
	c->cctx = wolfSSL_CTX_new(m);
	cr_assert_not_null(c->cctx);
	cr_assert_eq(wolfSSL_CTX_load_verify_locations(c->cctx, cert("ca.pem"), NULL),
		     WOLFSSL_SUCCESS);
	if (o->certfile) {
		cr_assert_eq(wolfSSL_CTX_use_certificate_file(c->cctx, o->certfile,
							      WOLFSSL_FILETYPE_PEM),
			     WOLFSSL_SUCCESS);
		cr_assert_eq(
			wolfSSL_CTX_use_PrivateKey_file(c->cctx, o->keyfile, WOLFSSL_FILETYPE_PEM),
			WOLFSSL_SUCCESS);
	}
	if (o->ciphers)
		cr_assert_eq(wolfSSL_CTX_set_cipher_list(c->cctx, o->ciphers), WOLFSSL_SUCCESS);
	c->ssl = wolfSSL_new(c->cctx);
	cr_assert_not_null(c->ssl);
	wolfSSL_SSLSetIORecv(c->ssl, c_recv);
	wolfSSL_SSLSetIOSend(c->ssl, c_send);
	wolfSSL_SetIOReadCtx(c->ssl, c);
	wolfSSL_SetIOWriteCtx(c->ssl, c);
	if (o->alpn) {
		char list[128];
		snprintf(list, sizeof list, "%s", o->alpn);
		cr_assert_eq(wolfSSL_UseALPN(c->ssl, list, (unsigned)strlen(list),
					     WOLFSSL_ALPN_FAILED_ON_MISMATCH),
			     WOLFSSL_SUCCESS);
	}
	if (o->sni)
		cr_assert_eq(wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, o->sni,
					    (unsigned short)strlen(o->sni)),
			     WOLFSSL_SUCCESS);
	if (o->verify_name)
		cr_assert_eq(wolfSSL_check_domain_name(c->ssl, o->verify_name), WOLFSSL_SUCCESS);
	if (o->tickets12)
		cr_assert_eq(wolfSSL_UseSessionTicket(c->ssl), WOLFSSL_SUCCESS);
	if (o->session)
		cr_assert_eq(wolfSSL_set_session(c->ssl, o->session), WOLFSSL_SUCCESS);
	return c;
}

static void client_free(client_t *c)
{
	wolfSSL_free(c->ssl);
	wolfSSL_CTX_free(c->cctx);
	free(c->in.p);
	free(c->out.p);
	free(c);
}

/* Moves the server's ciphertext to the client. */
static void to_client(hb_tls_t *s, client_t *c)
{
	size_t n;
	void *p = hb_tls_out_take(s, &n);
	if (p)
		mem_add(&c->in, p, n);
	free(p);
}

/* Moves the client's ciphertext to the server, `piece` bytes per feed (0: all at once). */
static int to_server(client_t *c, hb_tls_t *s, size_t piece)
{
	const char *why = NULL;
	int rc = HB_TLS_OK;
	size_t n = c->out.len - c->out.off;
	while (n && rc == HB_TLS_OK) {
		size_t k = piece && piece < n ? piece : n;
		rc = hb_tls_feed(s, c->out.p + c->out.off, k, &why);
		c->out.off += k;
		n -= k;
		if (piece && rc == HB_TLS_OK && !hb_tls_done(s))
			rc = hb_tls_handshake(s, &why) < 0 ? -1 : HB_TLS_OK;
	}
	return rc;
}

/* Runs the handshake both ways. Returns 1 when both ends are done, else the server's error (or
 * 0 when the server is done/waiting but the client failed). */
static int handshake_split(client_t *c, hb_tls_t *s, size_t piece, const char **why)
{
	int srv = 0, cli = 0;
	*why = NULL;
	for (int i = 0; i < 20; i++) {
		if (cli != 1) {
			int r = wolfSSL_connect(c->ssl);
			if (r == WOLFSSL_SUCCESS)
				cli = 1;
			else if (wolfSSL_get_error(c->ssl, r) != WOLFSSL_ERROR_WANT_READ)
				cli = -1;
		}
		to_server(c, s, piece);
		srv = hb_tls_handshake(s, why);
		to_client(s, c);
		if (srv < 0)
			return srv;
		if (cli < 0)
			return 0;
		if (srv == 1 && cli == 1)
			return 1;
	}
	return 0;
}

static int handshake(client_t *c, hb_tls_t *s, const char **why)
{
	return handshake_split(c, s, 0, why);
}

/* Client -> server plaintext; returns what the server read. */
static size_t echo_to_server(client_t *c, hb_tls_t *s, const char *msg, char *got, size_t cap)
{
	const char *why = NULL;
	cr_assert_eq(wolfSSL_write(c->ssl, msg, (int)strlen(msg)), (int)strlen(msg));
	to_server(c, s, 0);
	size_t n = 0;
	ssize_t r;
	while ((r = hb_tls_read(s, got + n, cap - n, &why)) > 0)
		n += (size_t)r;
	cr_assert_eq(r, 0, "read: %zd %s", r, why ? why : "");
	return n;
}

/* Server -> client plaintext; the client must read exactly `len` bytes of `msg`. */
static void check_to_client(hb_tls_t *s, client_t *c, const void *msg, size_t len)
{
	char *got = malloc(len + 1);
	size_t n = 0;
	to_client(s, c);
	while (n < len) {
		int r = wolfSSL_read(c->ssl, got + n, (int)(len - n));
		cr_assert_gt(r, 0, "client read failed after %zu of %zu", n, len);
		n += (size_t)r;
	}
	cr_assert_eq(memcmp(got, msg, len), 0);
	free(got);
}

/* Lets the client process what came after the handshake (TLS 1.3 NewSessionTicket). */
static void client_drain(client_t *c)
{
	char b[64];
	int r = wolfSSL_read(c->ssl, b, sizeof b);
	cr_assert_leq(r, 0);
	cr_assert_eq(wolfSSL_get_error(c->ssl, r), WOLFSSL_ERROR_WANT_READ);
}

/* One full connection with these options; returns the server's handshake result. The engine
 * is returned in *sp when sp is not NULL (else freed). */
static int connect_with(hb_tls_ctx_t *ctx, const client_opts_t *o, hb_tls_t **sp, client_t **cp,
			const char **why)
{
	hb_tls_t *s = hb_tls_new(ctx);
	cr_assert_not_null(s);
	client_t *c = client_new(o);
	int rc = handshake(c, s, why);
	if (sp)
		*sp = s;
	else
		hb_tls_free(s);
	if (cp)
		*cp = c;
	else
		client_free(c);
	return rc;
}

/* A server engine on the default context and a client with default options, handshaken; the
 * client has read what the handshake left for it. */
static void connected(hb_tls_ctx_t **ctx, hb_tls_t **s, client_t **c)
{
	const char *why;

	*ctx = default_ctx();
	cr_assert_eq(connect_with(*ctx, &(client_opts_t){0}, s, c, &why), 1, "handshake: %s", why);
	client_drain(*c);
}

static void free_all(hb_tls_ctx_t *ctx, hb_tls_t *s, client_t *c)
{
	hb_tls_free(s);
	client_free(c);
	hb_tls_ctx_unref(ctx);
}

/* ---- versions and data ---- */

Test(tls, tls13_handshake_and_data_both_ways)
{
	hb_tls_ctx_t *ctx = default_ctx();
	hb_tls_t *s;
	client_t *c;
	const char *why;
	client_opts_t o = {.verify_name = "localhost"};
	cr_assert_eq(connect_with(ctx, &o, &s, &c, &why), 1, "handshake: %s", why);
	hb_tls_info_t info;
	cr_assert_eq(hb_tls_get_info(s, &info), HB_TLS_OK);
	cr_assert_eq(info.version, 0x0304);
	cr_assert_eq(info.cipher_suite, 0x1301, "suite %04x", info.cipher_suite);
	cr_assert_str_eq(info.version_name, "TLSv1.3");
	cr_assert_null(hb_tls_alpn(s), "no ALPN offered: none chosen (HTTP/1.1)");
	cr_assert_null(hb_tls_sni(s));
	cr_assert_eq(hb_tls_resumed(s), 0);
	client_drain(c);

	char got[256];
	size_t n = echo_to_server(c, s, "GET / HTTP/1.1\r\n\r\n", got, sizeof got);
	cr_assert_eq(n, 18);
	cr_assert_eq(memcmp(got, "GET / HTTP/1.1\r\n\r\n", 18), 0);
	const char *why2;
	cr_assert_eq(hb_tls_write(s, "HTTP/1.1 200 OK\r\n\r\n", 19, &why2), HB_TLS_OK);
	check_to_client(s, c, "HTTP/1.1 200 OK\r\n\r\n", 19);
	free_all(ctx, s, c);
}

Test(tls, tls12_handshake_uses_ecdhe_aead)
{
	hb_tls_ctx_t *ctx = default_ctx();
	hb_tls_t *s;
	client_t *c;
	const char *why;
	client_opts_t o = {.version = 12};
	cr_assert_eq(connect_with(ctx, &o, &s, &c, &why), 1, "handshake: %s", why);
	hb_tls_info_t info;
	cr_assert_eq(hb_tls_get_info(s, &info), HB_TLS_OK);
	cr_assert_eq(info.version, 0x0303);
	cr_assert_str_eq(info.cipher_name, "ECDHE-ECDSA-AES128-GCM-SHA256");
	cr_assert_eq(info.cipher_suite, 0xc02b, "suite %04x", info.cipher_suite);
	char got[64];
	cr_assert_eq(echo_to_server(c, s, "ping", got, sizeof got), 4);
	free_all(ctx, s, c);
}

Test(tls, tls11_client_is_refused_with_an_alert)
{
	hb_tls_ctx_t *ctx = default_ctx();
	hb_tls_t *s = hb_tls_new(ctx);
	client_t *c = client_new(&(client_opts_t){.version = 11});
	const char *why = NULL;
	cr_assert_eq(wolfSSL_connect(c->ssl), WOLFSSL_FATAL_ERROR);
	to_server(c, s, 0);
	cr_assert_eq(hb_tls_handshake(s, &why), HB_TLS_E_HANDSHAKE);
	cr_assert_not_null(why);
	cr_assert_gt(hb_tls_out_pending(s), 0, "an alert is left to send");
	cr_assert_eq(hb_tls_handshake(s, &why), HB_TLS_E_HANDSHAKE, "errors are sticky");
	char b[8];
	cr_assert_eq(hb_tls_read(s, b, sizeof b, &why), HB_TLS_E_HANDSHAKE);
	free_all(ctx, s, c);
}

Test(tls, min_version_13_refuses_tls12)
{
	hb_tls_cert_conf_t certs[1];
	hb_tls_conf_t conf = base_conf(certs);
	conf.min_version = HB_TLS_V1_3;
	hb_tls_ctx_t *ctx = ctx_ok(&conf);
	const char *why;
	client_opts_t o12 = {.version = 12};
	cr_assert_lt(connect_with(ctx, &o12, NULL, NULL, &why), 0);
	cr_assert_eq(connect_with(ctx, &(client_opts_t){0}, NULL, NULL, &why), 1);
	hb_tls_ctx_unref(ctx);
}

Test(tls, cbc_only_client_is_refused)
{
	hb_tls_ctx_t *ctx = default_ctx();
	const char *why;
	client_opts_t o = {.version = 12,
			   .ciphers = "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA"};
	cr_assert_eq(connect_with(ctx, &o, NULL, NULL, &why), HB_TLS_E_HANDSHAKE);
	hb_tls_ctx_unref(ctx);
}

Test(tls, handshake_fed_one_byte_at_a_time)
{
	hb_tls_ctx_t *ctx = default_ctx();
	hb_tls_t *s = hb_tls_new(ctx);
	client_t *c = client_new(&(client_opts_t){.alpn = "h2"});
	const char *why;
	cr_assert_eq(handshake_split(c, s, 1, &why), 1, "handshake: %s", why);
	cr_assert_str_eq(hb_tls_alpn(s), "h2");
	free_all(ctx, s, c);
}

Test(tls, large_writes_and_gathered_small_pieces)
{
	hb_tls_ctx_t *ctx;
	hb_tls_t *s;
	client_t *c;
	const char *why;
	connected(&ctx, &s, &c);
	size_t big = 100000;
	char *b = malloc(big);
	for (size_t i = 0; i < big; i++)
		b[i] = (char)(i * 7);
	cr_assert_eq(hb_tls_write(s, b, big, &why), HB_TLS_OK);
	check_to_client(s, c, b, big);

	/* 40 small pieces and one big one, as a response head + chunks would come */
	struct iovec iov[41];
	size_t total = 0;
	for (int i = 0; i < 40; i++) {
		iov[i].iov_base = b + total;
		iov[i].iov_len = 10 + (size_t)i;
		total += iov[i].iov_len;
	}
	iov[40].iov_base = b + total;
	iov[40].iov_len = 40000;
	total += 40000;
	cr_assert_eq(hb_tls_writev(s, iov, 41, &why), HB_TLS_OK);
	size_t out = hb_tls_out_pending(s);
	cr_assert_lt(out, total + 4 * 64, "pieces were packed into few records (%zu)", out);
	check_to_client(s, c, b, total);
	free(b);
	free_all(ctx, s, c);
}

Test(tls, out_take_hands_over_a_buffer_that_survives_more_output)
{
	hb_tls_ctx_t *ctx;
	hb_tls_t *s;
	client_t *c;
	const char *why;
	connected(&ctx, &s, &c);
	cr_assert_eq(hb_tls_write(s, "first", 5, &why), HB_TLS_OK);
	size_t n1, n2;
	void *p1 = hb_tls_out_take(s, &n1);
	cr_assert_not_null(p1);
	cr_assert_eq(hb_tls_out_pending(s), 0);
	cr_assert_eq(hb_tls_write(s, "second", 6, &why), HB_TLS_OK);
	void *p2 = hb_tls_out_take(s, &n2);
	mem_add(&c->in, p1, n1); /* "sent" after the engine made more */
	mem_add(&c->in, p2, n2);
	free(p1);
	free(p2);
	char got[16] = "";
	cr_assert_eq(wolfSSL_read(c->ssl, got, 5), 5);
	cr_assert_eq(wolfSSL_read(c->ssl, got + 5, 6), 6);
	cr_assert_str_eq(got, "firstsecond");
	cr_assert_null(hb_tls_out_take(s, &n1));
	cr_assert_eq(n1, 0);
	free_all(ctx, s, c);
}

Test(tls, close_notify_is_eof_and_shutdown_sends_one)
{
	hb_tls_ctx_t *ctx;
	hb_tls_t *s;
	client_t *c;
	const char *why;
	connected(&ctx, &s, &c);
	hb_tls_shutdown(s);
	cr_assert_gt(hb_tls_out_pending(s), 0);
	to_client(s, c);
	char b[8];
	int r = wolfSSL_read(c->ssl, b, sizeof b);
	cr_assert_eq(wolfSSL_get_error(c->ssl, r), WOLFSSL_ERROR_ZERO_RETURN);
	cr_assert_eq(hb_tls_write(s, "x", 1, &why), HB_TLS_E_STATE);
	wolfSSL_shutdown(c->ssl);
	to_server(c, s, 0);
	cr_assert_eq(hb_tls_read(s, b, sizeof b, &why), HB_TLS_EOF);
	free_all(ctx, s, c);
}

/* ---- ALPN ---- */

static const char *alpn_with(hb_tls_ctx_t *ctx, const char *offer, int *rc)
{
	static char chosen[32];
	hb_tls_t *s;
	const char *why;
	*rc = connect_with(ctx, &(client_opts_t){.alpn = offer}, &s, NULL, &why);
	const char *a = hb_tls_alpn(s);
	snprintf(chosen, sizeof chosen, "%s", a ? a : "(none)");
	hb_tls_free(s);
	return chosen;
}

Test(tls, alpn_h2_http11_none_and_mismatch)
{
	hb_tls_ctx_t *ctx = default_ctx(); /* default list: h2, http/1.1 */
	int rc;
	cr_assert_str_eq(alpn_with(ctx, "http/1.1,h2", &rc), "h2", "server preference wins");
	cr_assert_eq(rc, 1);
	cr_assert_str_eq(alpn_with(ctx, "http/1.1", &rc), "http/1.1");
	cr_assert_str_eq(alpn_with(ctx, NULL, &rc), "(none)");
	cr_assert_eq(rc, 1, "no ALPN offered is fine (HTTP/1.1)");
	alpn_with(ctx, "spdy/3,imap", &rc);
	cr_assert_eq(rc, HB_TLS_E_HANDSHAKE, "no overlap: no_application_protocol");
	hb_tls_ctx_unref(ctx);
}

Test(tls, alpn_follows_the_configured_order)
{
	hb_tls_cert_conf_t certs[1];
	hb_tls_conf_t conf = base_conf(certs);
	const char *const order[] = {"http/1.1", "h2"};
	conf.alpn = order;
	conf.nalpn = 2;
	hb_tls_ctx_t *ctx = ctx_ok(&conf);
	int rc;
	cr_assert_str_eq(alpn_with(ctx, "h2,http/1.1", &rc), "http/1.1");
	cr_assert_str_eq(alpn_with(ctx, "h2", &rc), "h2");
	hb_tls_ctx_unref(ctx);

	const char *const h1only[] = {"http/1.1"};
	conf.alpn = h1only;
	conf.nalpn = 1;
	ctx = ctx_ok(&conf);
	alpn_with(ctx, "h2", &rc);
	cr_assert_eq(rc, HB_TLS_E_HANDSHAKE);
	hb_tls_ctx_unref(ctx);
}

/* ---- SNI ---- */

static hb_tls_ctx_t *sni_ctx(void)
{
	static hb_tls_cert_conf_t certs[3];
	certs[0] = (hb_tls_cert_conf_t){"other.test", cert("other.pem"), cert("other.key"), NULL};
	certs[1] = (hb_tls_cert_conf_t){NULL, cert("server.pem"), cert("server.key"), NULL};
	certs[2] = (hb_tls_cert_conf_t){"*.wild.test", cert("other.pem"), cert("other.key"), NULL};
	hb_tls_conf_t conf = {.certs = certs, .ncerts = 3};
	return ctx_ok(&conf);
}

/* The subject CN of the certificate the client got. */
static void served_cn(hb_tls_ctx_t *ctx, const char *sni, char *cn, size_t cap, const char *v)
{
	client_t *c;
	hb_tls_t *s;
	const char *why;
	client_opts_t o = {.sni = sni, .verify_name = v};
	cr_assert_eq(connect_with(ctx, &o, &s, &c, &why), 1, "sni %s: %s", sni, why);
	if (sni)
		cr_assert_str_eq(hb_tls_sni(s), sni);
	else
		cr_assert_null(hb_tls_sni(s));
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(c->ssl);
	cr_assert_not_null(x);
	wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn,
					  (int)cap);
	wolfSSL_X509_free(x);
	hb_tls_free(s);
	client_free(c);
}

Test(tls, sni_picks_the_pair_and_the_default_without_sni)
{
	hb_tls_ctx_t *ctx = sni_ctx();
	char cn[64];
	served_cn(ctx, "other.test", cn, sizeof cn, "other.test");
	cr_assert_str_eq(cn, "other.test");
	served_cn(ctx, NULL, cn, sizeof cn, "localhost");
	cr_assert_str_eq(cn, "localhost", "no SNI: the default pair (unnamed, not the first)");
	served_cn(ctx, "localhost", cn, sizeof cn, "localhost");
	cr_assert_str_eq(cn, "localhost");
	served_cn(ctx, "a.wild.test", cn, sizeof cn, NULL);
	cr_assert_str_eq(cn, "other.test", "wildcard pair");
	served_cn(ctx, "unknown.example", cn, sizeof cn, NULL);
	cr_assert_str_eq(cn, "localhost", "unknown name: the default");
	hb_tls_ctx_unref(ctx);
}

/* ---- resumption ---- */

struct resume_arg {
	hb_tls_ctx_t *ctx;
	client_opts_t o;
	int rc, resumed;
};

static void *resume_on_thread(void *p)
{
	struct resume_arg *a = p;
	hb_tls_t *s;
	const char *why;
	a->rc = connect_with(a->ctx, &a->o, &s, NULL, &why);
	a->resumed = hb_tls_resumed(s);
	hb_tls_free(s);
	hb_tls_thread_cleanup();
	return NULL;
}

/* A first full handshake; returns the client's session (with its ticket). */
static WOLFSSL_SESSION *first_session(hb_tls_ctx_t *ctx, client_opts_t o)
{
	client_t *c;
	hb_tls_t *s;
	const char *why;
	cr_assert_eq(connect_with(ctx, &o, &s, &c, &why), 1, "%s", why);
	cr_assert_eq(hb_tls_resumed(s), 0);
	client_drain(c);
	WOLFSSL_SESSION *sess = wolfSSL_get1_session(c->ssl);
	cr_assert_not_null(sess);
	hb_tls_free(s);
	client_free(c);
	return sess;
}

/* Resumes `sess` on a new engine run by another thread (another io thread). */
static int resume(hb_tls_ctx_t *ctx, client_opts_t o, WOLFSSL_SESSION *sess)
{
	pthread_t th;
	struct resume_arg a = {.ctx = ctx, .o = o};
	a.o.session = sess;
	cr_assert_eq(pthread_create(&th, NULL, resume_on_thread, &a), 0);
	pthread_join(th, NULL);
	cr_assert_eq(a.rc, 1);
	return a.resumed;
}

Test(tls, ticket_from_one_engine_resumes_on_another_thread_tls13)
{
	hb_tls_ctx_t *ctx = default_ctx();
	client_opts_t o = {0};
	WOLFSSL_SESSION *sess = first_session(ctx, o);
	cr_assert_eq(resume(ctx, o, sess), 1);
	wolfSSL_SESSION_free(sess);
	hb_tls_ctx_unref(ctx);
}

Test(tls, ticket_and_session_id_resumption_tls12)
{
	hb_tls_ctx_t *ctx = default_ctx();
	client_opts_t o = {.version = 12, .tickets12 = 1};
	WOLFSSL_SESSION *sess = first_session(ctx, o);
	cr_assert_eq(resume(ctx, o, sess), 1, "TLS 1.2 ticket");
	wolfSSL_SESSION_free(sess);
	o.tickets12 = 0; /* no ticket: the session cache */
	sess = first_session(ctx, o);
	cr_assert_eq(resume(ctx, o, sess), 1, "TLS 1.2 session ID");
	wolfSSL_SESSION_free(sess);
	hb_tls_ctx_unref(ctx);
}

static uint64_t fake_now;
static uint64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

Test(tls, ticket_keys_rotate_and_old_ones_expire)
{
	hb_tls_cert_conf_t certs[1];
	hb_tls_conf_t conf = base_conf(certs);
	conf.ticket_lifetime_s = 100;
	conf.clock_s = fake_clock;
	fake_now = 1000;
	hb_tls_ctx_t *ctx = ctx_ok(&conf);
	client_opts_t o = {0};
	WOLFSSL_SESSION *sess = first_session(ctx, o);
	fake_now = 1050;
	cr_assert_eq(resume(ctx, o, sess), 1, "same key");
	fake_now = 1150; /* key rotated now: the old one still opens its tickets */
	cr_assert_eq(resume(ctx, o, sess), 1, "previous key");
	fake_now = 1260; /* the previous key retired at 1150 + 100 */
	cr_assert_eq(resume(ctx, o, sess), 0, "expired key: a full handshake");
	wolfSSL_SESSION_free(sess);
	/* a ticket from the new key resumes */
	sess = first_session(ctx, o);
	cr_assert_eq(resume(ctx, o, sess), 1);
	wolfSSL_SESSION_free(sess);
	hb_tls_ctx_unref(ctx);
}

Test(tls, a_reloaded_ctx_shares_ticket_keys_and_old_engines_live_on)
{
	hb_tls_ctx_t *ctx = default_ctx();
	hb_tls_live_t *live = hb_tls_live_new(ctx);
	hb_tls_ctx_t *cur = hb_tls_live_acquire(live);
	client_opts_t o = {0};
	WOLFSSL_SESSION *sess = first_session(cur, o);
	hb_tls_t *old = hb_tls_new(cur);
	hb_tls_ctx_unref(cur);

	hb_tls_cert_conf_t certs[1];
	hb_tls_conf_t conf = base_conf(certs);
	char err[256];
	hb_tls_ctx_t *next = hb_tls_ctx_new(&conf, ctx, err, sizeof err);
	cr_assert_not_null(next, "%s", err);
	hb_tls_live_swap(live, next); /* ctx now lives only through `old` */
	cur = hb_tls_live_acquire(live);
	cr_assert_eq(cur, next);
	cr_assert_eq(resume(cur, o, sess), 1, "ticket from before the reload");
	hb_tls_ctx_unref(cur);

	client_t *c = client_new(&o);
	const char *why;
	cr_assert_eq(handshake(c, old, &why), 1, "an engine of the old ctx still works");
	client_free(c);
	hb_tls_free(old);
	wolfSSL_SESSION_free(sess);
	hb_tls_live_free(live);
}

/* ---- mutual TLS ---- */

static hb_tls_ctx_t *mtls_ctx(hb_tls_verify_t v)
{
	hb_tls_cert_conf_t certs[1];
	hb_tls_conf_t conf = base_conf(certs);
	conf.cacertfile = cert("ca.pem");
	conf.verify_client = v;
	return ctx_ok(&conf);
}

static int with_client_cert(hb_tls_ctx_t *ctx, const char *name, char **subject)
{
	char c[32], k[32];
	snprintf(c, sizeof c, "%s.pem", name);
	snprintf(k, sizeof k, "%s.key", name);
	client_opts_t o = {0};
	if (name) {
		o.certfile = cert(c);
		o.keyfile = cert(k);
	}
	hb_tls_t *s;
	const char *why;
	int rc = connect_with(ctx, &o, &s, NULL, &why);
	char *pem = NULL;
	*subject = NULL;
	if (rc == 1 && hb_tls_peer_cert(s, subject, &pem) == 1) {
		cr_assert(strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0, "%s", pem);
		free(pem);
	}
	hb_tls_free(s);
	return rc;
}

Test(tls, verify_client_required)
{
	hb_tls_ctx_t *ctx = mtls_ctx(HB_TLS_VERIFY_REQUIRED);
	char *subj;
	cr_assert_eq(with_client_cert(ctx, "client", &subj), 1);
	cr_assert_not_null(subj);
	cr_assert(strstr(subj, "CN=client.test") != NULL, "subject %s", subj);
	cr_assert(strstr(subj, "O=Hornbeam Test") != NULL, "subject %s", subj);
	free(subj);
	cr_assert_lt(with_client_cert(ctx, NULL, &subj), 0, "no certificate");
	cr_assert_lt(with_client_cert(ctx, "rogue", &subj), 0, "unknown CA");
	hb_tls_ctx_unref(ctx);
}

Test(tls, verify_client_optional)
{
	hb_tls_ctx_t *ctx = mtls_ctx(HB_TLS_VERIFY_OPTIONAL);
	char *subj;
	cr_assert_eq(with_client_cert(ctx, NULL, &subj), 1, "no certificate is fine");
	cr_assert_null(subj);
	cr_assert_eq(with_client_cert(ctx, "client", &subj), 1);
	cr_assert_not_null(subj);
	free(subj);
	cr_assert_lt(with_client_cert(ctx, "rogue", &subj), 0, "a bad one is not");
	hb_tls_ctx_unref(ctx);
}

Test(tls, verify_client_none_asks_for_nothing)
{
	hb_tls_ctx_t *ctx = default_ctx();
	char *subj;
	cr_assert_eq(with_client_cert(ctx, "client", &subj), 1);
	cr_assert_null(subj, "no certificate was requested");
	cr_assert_eq(with_client_cert(ctx, "rogue", &subj), 1);
	hb_tls_ctx_unref(ctx);
}

/* ---- configuration errors ---- */

static void ctx_fails(const hb_tls_conf_t *conf, const char *needle, const char *needle2)
{
	char err[512] = "";
	hb_tls_ctx_t *ctx = hb_tls_ctx_new(conf, NULL, err, sizeof err);
	cr_assert_null(ctx, "expected a failure naming '%s'", needle);
	cr_assert(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
	if (needle2)
		cr_assert(strstr(err, needle2) != NULL, "error '%s' lacks '%s'", err, needle2);
}

Test(tls, encrypted_key_with_password)
{
	hb_tls_cert_conf_t certs[1];
	hb_tls_conf_t conf = base_conf(certs);
	char pw[] = "s3cret";
	certs[0].keyfile = cert("server-enc.key");
	certs[0].password = pw;
	hb_tls_ctx_t *ctx = ctx_ok(&conf);
	memset(pw, 'x', 6); /* the ctx does not keep the password */
	const char *why;
	cr_assert_eq(connect_with(ctx, &(client_opts_t){0}, NULL, NULL, &why), 1);
	hb_tls_ctx_unref(ctx);

	certs[0].password = "wrong";
	ctx_fails(&conf, "server-enc.key", "wrong keyfile_password");
	certs[0].password = NULL;
	ctx_fails(&conf, "server-enc.key", "no keyfile_password");
}

Test(tls, bad_files_are_named)
{
	hb_tls_cert_conf_t certs[2];
	hb_tls_conf_t conf = base_conf(certs);
	certs[0].certfile = cert("missing.pem");
	ctx_fails(&conf, "certfile", "missing.pem");
	conf = base_conf(certs);
	certs[0].keyfile = cert("other.key");
	ctx_fails(&conf, "does not match", "other.key");
	conf = base_conf(certs);
	certs[0].certfile = cert("server.key"); /* a key where a certificate should be */
	ctx_fails(&conf, "server.key", "no PEM certificate");
	conf = base_conf(certs);
	certs[0].keyfile = cert("server.pem");
	ctx_fails(&conf, "server.pem", "no PEM private key");
	/* a good first pair does not hide a bad second one */
	conf = base_conf(certs);
	certs[1] = (hb_tls_cert_conf_t){"b.test", cert("other.pem"), cert("nope.key"), NULL};
	conf.ncerts = 2;
	ctx_fails(&conf, "nope.key", NULL);
	conf = base_conf(certs);
	conf.verify_client = HB_TLS_VERIFY_REQUIRED;
	ctx_fails(&conf, "cacertfile", NULL);
	conf.cacertfile = cert("nothing.pem");
	ctx_fails(&conf, "nothing.pem", NULL);
	conf = base_conf(certs);
	conf.ciphers = "NOT-A-CIPHER";
	ctx_fails(&conf, "ssl_ciphers", "NOT-A-CIPHER");
	conf = base_conf(certs);
	conf.ncerts = 0;
	ctx_fails(&conf, "certificate", NULL);
	conf = base_conf(certs);
	const char *const empty[] = {""};
	conf.alpn = empty;
	conf.nalpn = 1;
	ctx_fails(&conf, "alpn", NULL);
}

/* ---- hostile input ---- */

static int feed_raw(hb_tls_ctx_t *ctx, const void *p, size_t n, size_t *alert)
{
	hb_tls_t *s = hb_tls_new(ctx);
	const char *why = NULL;
	cr_assert_eq(hb_tls_feed(s, p, n, &why), HB_TLS_OK);
	int rc = hb_tls_handshake(s, &why);
	if (rc < 0)
		cr_assert_not_null(why);
	*alert = hb_tls_out_pending(s);
	hb_tls_free(s);
	return rc;
}

Test(tls, plaintext_http_is_fatal)
{
	hb_tls_ctx_t *ctx = default_ctx();
	const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t alert;
	cr_assert_eq(feed_raw(ctx, req, sizeof req - 1, &alert), HB_TLS_E_HANDSHAKE);
	hb_tls_ctx_unref(ctx);
}

Test(tls, garbage_is_fatal_and_frees)
{
	hb_tls_ctx_t *ctx = default_ctx();
	uint8_t junk[4096];
	size_t alert;
	srand(7);
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = (uint8_t)rand();
		if (round % 2) { /* a plausible handshake record header over junk */
			junk[0] = 0x16, junk[1] = 3, junk[2] = 1, junk[3] = 0x0f, junk[4] = 0xf0;
			junk[5] = 1;
		}
		cr_assert_lt(feed_raw(ctx, junk, sizeof junk, &alert), 0, "round %d", round);
	}
	hb_tls_ctx_unref(ctx);
}

Test(tls, truncated_client_hello_waits_then_frees)
{
	hb_tls_ctx_t *ctx = default_ctx();
	client_t *c = client_new(&(client_opts_t){.alpn = "h2", .sni = "localhost"});
	cr_assert_eq(wolfSSL_connect(c->ssl), WOLFSSL_FATAL_ERROR);
	size_t n = c->out.len;
	cr_assert_gt(n, 50);
	for (size_t cut = 1; cut < n; cut += 13) {
		size_t alert;
		cr_assert_eq(feed_raw(ctx, c->out.p, cut, &alert), 0, "cut at %zu", cut);
		cr_assert_eq(alert, 0);
	}
	client_free(c);
	hb_tls_ctx_unref(ctx);
}

Test(tls, corrupted_and_truncated_records_after_the_handshake)
{
	hb_tls_ctx_t *ctx = default_ctx();
	hb_tls_t *s;
	client_t *c;
	const char *why;
	cr_assert_eq(connect_with(ctx, &(client_opts_t){0}, &s, &c, &why), 1);
	cr_assert_eq(wolfSSL_write(c->ssl, "hello world", 11), 11);
	size_t n = c->out.len - c->out.off;
	/* the record minus its last byte: nothing yet */
	cr_assert_eq(hb_tls_feed(s, c->out.p + c->out.off, n - 1, &why), HB_TLS_OK);
	char b[64];
	cr_assert_eq(hb_tls_read(s, b, sizeof b, &why), 0);
	/* the last byte, flipped: the AEAD tag fails */
	uint8_t last = c->out.p[c->out.off + n - 1] ^ 0x55;
	cr_assert_eq(hb_tls_feed(s, &last, 1, &why), HB_TLS_OK);
	cr_assert_eq(hb_tls_read(s, b, sizeof b, &why), HB_TLS_E_PROTOCOL);
	cr_assert_not_null(why);
	cr_assert_eq(hb_tls_feed(s, "x", 1, &why), HB_TLS_E_PROTOCOL, "the engine stays dead");
	free_all(ctx, s, c);
}

Test(tls, write_before_the_handshake_is_refused)
{
	hb_tls_ctx_t *ctx = default_ctx();
	hb_tls_t *s = hb_tls_new(ctx);
	const char *why;
	hb_tls_info_t info;
	cr_assert_eq(hb_tls_write(s, "x", 1, &why), HB_TLS_E_STATE);
	cr_assert_eq(hb_tls_get_info(s, &info), HB_TLS_E_STATE);
	cr_assert_null(hb_tls_alpn(s));
	hb_tls_free(s);
	hb_tls_ctx_unref(ctx);
}
