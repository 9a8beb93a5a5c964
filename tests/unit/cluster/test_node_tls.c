/* test_node_tls.c: hb_cluster_tls_new, the node links' TLS context built from the cluster_*
 * keys of a configuration: off without cluster_tls; a plain pair, and an encrypted key with
 * cluster_keyfile_password, make a context whose client and server engines complete a mutual
 * handshake; a wrong or missing password, and a bad CA file, fail with a message naming the
 * cluster_ key and the file. Certificates come from tests/tls/make_certs.sh. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/node.h"
#include "proto/tls.h"

static char dir[64];
static char paths[8][160];
static int npath;

static char *cert(const char *name)
{
	char *p = paths[npath++ % 8];
	snprintf(p, sizeof paths[0], "%s/%s", dir, name);
	return p;
}

static void make_certs(void)
{
	char cmd[512];
	strcpy(dir, "/tmp/hb-ntls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cmd, sizeof cmd, "%s/tests/tls/make_certs.sh %s", HB_SOURCE_DIR, dir);
	cr_assert_eq(system(cmd), 0, "make_certs.sh failed");
}

static void remove_certs(void)
{
	char cmd[128];
	hb_tls_thread_cleanup();
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(node_tls, .init = make_certs, .fini = remove_certs, .timeout = 60);

static hb_config_t node_cfg(const char *pem, const char *key, char *password)
{
	return (hb_config_t){.cluster_tls = 1,
			     .cluster_certfile = cert(pem),
			     .cluster_keyfile = cert(key),
			     .cluster_keyfile_password = password,
			     .cluster_cacertfile = cert("ca.pem")};
}

static void pass(hb_tls_t *a, hb_tls_t *b)
{
	size_t n;
	const char *why;
	void *p = hb_tls_out_take(a, &n);
	if (p)
		hb_tls_feed(b, p, n, &why);
	free(p);
}

/* A link from a node on `from` to one on `to`: 1 when both handshakes completed. */
static int link_up(hb_tls_ctx_t *from, hb_tls_ctx_t *to)
{
	hb_tls_t *c = hb_tls_new_client(from), *s = hb_tls_new(to);
	const char *why;
	int cr = 0, sr = 0;
	cr_assert(c && s);
	for (int i = 0; i < 10 && (cr != 1 || sr != 1) && cr >= 0 && sr >= 0; i++) {
		cr = hb_tls_handshake(c, &why);
		pass(c, s);
		sr = hb_tls_handshake(s, &why);
		pass(s, c);
	}
	hb_tls_free(c);
	hb_tls_free(s);
	return cr == 1 && sr == 1;
}

static hb_tls_ctx_t *ok(hb_config_t *cfg)
{
	hb_tls_ctx_t *ctx = NULL;
	char err[512] = "";
	cr_assert_eq(hb_cluster_tls_new(cfg, &ctx, err, sizeof err), 0, "%s", err);
	cr_assert_not_null(ctx);
	return ctx;
}

static void fails(hb_config_t *cfg, const char *want1, const char *want2)
{
	hb_tls_ctx_t *ctx = (hb_tls_ctx_t *)1;
	char err[512] = "";
	cr_assert_eq(hb_cluster_tls_new(cfg, &ctx, err, sizeof err), -EINVAL);
	cr_assert_null(ctx);
	cr_assert(strstr(err, want1), "error '%s' lacks '%s'", err, want1);
	cr_assert(strstr(err, want2), "error '%s' lacks '%s'", err, want2);
}

Test(node_tls, off_without_cluster_tls)
{
	hb_config_t cfg = {0};
	hb_tls_ctx_t *ctx = (hb_tls_ctx_t *)1;
	char err[64] = "";
	cr_assert_eq(hb_cluster_tls_new(&cfg, &ctx, err, sizeof err), 0);
	cr_assert_null(ctx);
}

Test(node_tls, encrypted_key_with_its_password_links_both_ways)
{
	char pw[] = "n0de-pw";
	hb_config_t c1 = node_cfg("node1.pem", "node1-enc.key", pw);
	hb_config_t c2 = node_cfg("node2.pem", "node2.key", NULL);
	hb_tls_ctx_t *a = ok(&c1), *b = ok(&c2);
	memset(pw, 'x', strlen(pw)); /* the ctx keeps the decrypted key, not the password */
	cr_assert(link_up(a, b), "the encrypted-key node dials");
	cr_assert(link_up(b, a), "and accepts");
	hb_tls_ctx_unref(a);
	hb_tls_ctx_unref(b);
}

Test(node_tls, wrong_or_missing_password_names_the_key_and_file)
{
	hb_config_t cfg = node_cfg("node1.pem", "node1-enc.key", "wrong");
	char *key = cfg.cluster_keyfile;
	char want[256];
	snprintf(want, sizeof want, "cluster_keyfile %s: ", key);
	fails(&cfg, want, "cannot decrypt it: wrong cluster_keyfile_password?");
	cfg.cluster_keyfile_password = NULL;
	fails(&cfg, want, "encrypted, and no cluster_keyfile_password");
	/* a key of another certificate, a missing CA file: named with the cluster_ prefix too */
	cfg = node_cfg("node1.pem", "node2.key", NULL);
	fails(&cfg, "cluster_keyfile", "does not match cluster_certfile");
	cfg = node_cfg("node1.pem", "node1.key", NULL);
	cfg.cluster_cacertfile = cert("nope.pem");
	fails(&cfg, "cluster_cacertfile", "nope.pem: No such file");
}
