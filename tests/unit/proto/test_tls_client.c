/* test_tls_client.c: the TLS engine's client side (hb_tls_new_client), as the cluster's node
 * links use it: two engines of src/proto/tls.c talk over memory buffers, both with `client`
 * and verify_client required (mutual TLS). A handshake both ways with data and the peers'
 * certificates; a node certificate from another CA refused by the server, a server from another
 * CA refused by the client (no client certificate at all: test_tls.c's verify_client_required),
 * a ctx without a client side makes no client engine, and a client side needs its CA file.
 * Certificates come from tests/tls/make_certs.sh in a fresh directory per test. */
#include "tls_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void make_certs(void)
{
	make_certs_in("/tmp/hb-tlsc-XXXXXX");
}

TestSuite(tls_client, .init = make_certs, .fini = remove_certs, .timeout = 60);

static const char *const alpn[] = {"hornbeam-cluster/1"};

/* A node's ctx: its pair (name.pem/.key), trusting ca (a file name in the directory). */
static hb_tls_ctx_t *node_ctx(const char *name, const char *ca)
{
	char pem[32], key[32], err[256] = "";
	snprintf(pem, sizeof pem, "%s.pem", name);
	snprintf(key, sizeof key, "%s.key", name);
	hb_tls_cert_conf_t pair = {NULL, cert(pem), cert(key), NULL};
	hb_tls_conf_t conf = {.certs = &pair,
			      .ncerts = 1,
			      .cacertfile = cert(ca),
			      .verify_client = HB_TLS_VERIFY_REQUIRED,
			      .min_version = HB_TLS_V1_3,
			      .alpn = alpn,
			      .nalpn = 1,
			      .client = 1};
	hb_tls_ctx_t *ctx = hb_tls_ctx_new(&conf, NULL, err, sizeof err);
	cr_assert_not_null(ctx, "ctx: %s", err);
	return ctx;
}

/* Moves a's pending ciphertext into b. */
static int pass(hb_tls_t *a, hb_tls_t *b, const char **why)
{
	size_t n;
	void *p = hb_tls_out_take(a, &n);
	int rc = p ? hb_tls_feed(b, p, n, why) : HB_TLS_OK;
	free(p);
	return rc;
}

/* Runs both handshakes to the end or the first failure: 1 when both are done, else the first
 * error; *cwhy/*swhy say each side's reason. Reads once after (a TLS 1.3 client learns of a
 * refused certificate only from the server's alert after its own handshake is done). */
static int run(hb_tls_t *c, hb_tls_t *s, const char **cwhy, const char **swhy)
{
	char buf[64];
	*cwhy = *swhy = NULL;
	for (int i = 0; i < 10; i++) {
		int cr = hb_tls_handshake(c, cwhy);
		if (pass(c, s, swhy) < 0)
			return HB_TLS_E_HANDSHAKE;
		int sr = hb_tls_handshake(s, swhy);
		pass(s, c, cwhy);
		if (sr < 0) {
			hb_tls_read(c, buf, sizeof buf, cwhy); /* takes the alert */
			return sr;
		}
		if (cr < 0)
			return cr;
		if (cr == 1 && sr == 1) {
			ssize_t r =
				hb_tls_read(c, buf, sizeof buf, cwhy); /* tickets, nothing else */
			return r < 0 ? (int)r : 1;
		}
	}
	return 0;
}

static int cn_of(hb_tls_t *t, const char *cn)
{
	char *subject = NULL, *pem = NULL;
	int rc = hb_tls_peer_cert(t, &subject, &pem);
	int ok = rc == 1 && strstr(subject, cn) != NULL;
	free(subject);
	free(pem);
	return ok;
}

Test(tls_client, mutual_handshake_data_both_ways_and_peer_certificates)
{
	hb_tls_ctx_t *a = node_ctx("node1", "ca.pem"), *b = node_ctx("node2", "ca.pem");
	hb_tls_t *c = hb_tls_new_client(b), *s = hb_tls_new(a);
	cr_assert(c && s);
	const char *cwhy, *swhy;
	cr_assert_eq(run(c, s, &cwhy, &swhy), 1, "client: %s, server: %s", cwhy, swhy);
	cr_assert(hb_tls_done(c) && hb_tls_done(s));
	cr_assert_str_eq(hb_tls_alpn(c), "hornbeam-cluster/1");
	cr_assert_str_eq(hb_tls_alpn(s), "hornbeam-cluster/1");
	cr_assert(cn_of(s, "node2.cluster.test"), "the server sees the client's certificate");
	cr_assert(cn_of(c, "node1.cluster.test"), "the client sees the server's certificate");
	hb_tls_info_t info;
	cr_assert_eq(hb_tls_get_info(c, &info), HB_TLS_OK);
	cr_assert_eq(info.version, 0x0304);
	/* frames both ways */
	char buf[64];
	cr_assert_eq(hb_tls_write(c, "ping from b", 11, &cwhy), HB_TLS_OK);
	pass(c, s, &swhy);
	cr_assert_eq(hb_tls_read(s, buf, sizeof buf, &swhy), 11);
	cr_assert(memcmp(buf, "ping from b", 11) == 0);
	cr_assert_eq(hb_tls_write(s, "pong from a", 11, &swhy), HB_TLS_OK);
	pass(s, c, &cwhy);
	cr_assert_eq(hb_tls_read(c, buf, sizeof buf, &cwhy), 11);
	cr_assert(memcmp(buf, "pong from a", 11) == 0);
	/* close_notify ends it */
	hb_tls_shutdown(c);
	pass(c, s, &swhy);
	cr_assert_eq(hb_tls_read(s, buf, sizeof buf, &swhy), HB_TLS_EOF);
	hb_tls_free(c);
	hb_tls_free(s);
	hb_tls_ctx_unref(a);
	hb_tls_ctx_unref(b);
}

Test(tls_client, a_client_certificate_from_another_ca_is_refused)
{
	/* the rogue trusts our CA (so it gets as far as presenting its certificate) */
	hb_tls_ctx_t *a = node_ctx("node1", "ca.pem"), *r = node_ctx("roguenode", "ca.pem");
	hb_tls_t *c = hb_tls_new_client(r), *s = hb_tls_new(a);
	const char *cwhy, *swhy;
	int rc = run(c, s, &cwhy, &swhy);
	cr_assert_eq(rc, HB_TLS_E_HANDSHAKE, "rc %d", rc);
	cr_assert(!hb_tls_done(s));
	cr_assert_not_null(swhy);
	cr_assert_not_null(cwhy, "the client hears why (an alert)");
	cr_assert(!cn_of(s, "roguenode"));
	hb_tls_free(c);
	hb_tls_free(s);
	hb_tls_ctx_unref(a);
	hb_tls_ctx_unref(r);
}

Test(tls_client, a_server_from_another_ca_is_refused_by_the_client)
{
	hb_tls_ctx_t *a = node_ctx("node1", "ca.pem"), *r = node_ctx("roguenode", "rogueca.pem");
	hb_tls_t *c = hb_tls_new_client(a), *s = hb_tls_new(r);
	const char *cwhy, *swhy;
	int rc = run(c, s, &cwhy, &swhy);
	cr_assert_lt(rc, 0);
	cr_assert(!hb_tls_done(c), "the client never finishes with an untrusted server");
	cr_assert_not_null(cwhy);
	char buf[16];
	cr_assert_lt(hb_tls_write(c, "x", 1, &cwhy), 0);
	cr_assert_lt(hb_tls_read(c, buf, sizeof buf, &cwhy), 0, "the failure is sticky");
	hb_tls_free(c);
	hb_tls_free(s);
	hb_tls_ctx_unref(a);
	hb_tls_ctx_unref(r);
}

Test(tls_client, a_ctx_without_a_client_side_makes_no_client_engine)
{
	hb_tls_cert_conf_t pair = {NULL, cert("server.pem"), cert("server.key"), NULL};
	hb_tls_conf_t plain = {.certs = &pair, .ncerts = 1};
	char err[256] = "";
	hb_tls_ctx_t *p = hb_tls_ctx_new(&plain, NULL, err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	cr_assert_null(hb_tls_new_client(p), "no client side was built");
	hb_tls_ctx_unref(p);
}

Test(tls_client, a_client_side_needs_its_ca_file)
{
	hb_tls_cert_conf_t pair = {NULL, cert("node1.pem"), cert("node1.key"), NULL};
	hb_tls_conf_t conf = {.certs = &pair, .ncerts = 1, .client = 1};
	char err[256] = "";
	cr_assert_null(hb_tls_ctx_new(&conf, NULL, err, sizeof err));
	cr_assert(strstr(err, "cacertfile"), "%s", err);
	conf.cacertfile = cert("missing-ca.pem");
	conf.verify_client = HB_TLS_VERIFY_REQUIRED;
	cr_assert_null(hb_tls_ctx_new(&conf, NULL, err, sizeof err));
	cr_assert(strstr(err, "missing-ca.pem"), "%s", err);
}
