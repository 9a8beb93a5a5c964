/* test_tls_setup.c: the server's TLS context from the configuration (src/server/tls_setup.c):
 * the default pair plus [[tls.certificate]] pairs, ALPN filtered to what this build serves,
 * and reloads: a good one swaps the context in (open engines keep theirs), a bad file is an
 * error naming it with the old context still live. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/tls_setup.h"

static char dir[64];
static char paths[8][160];

static char *file(int i, const char *name)
{
	snprintf(paths[i], sizeof paths[i], "%s/%s", dir, name);
	return paths[i];
}

static void setup(void)
{
	char cmd[512];
	strcpy(dir, "/tmp/hb-tlss-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cmd, sizeof cmd, "%s/tests/tls/make_certs.sh %s", HB_SOURCE_DIR, dir);
	cr_assert_eq(system(cmd), 0);
}

static void teardown(void)
{
	char cmd[128];
	hb_tls_thread_cleanup();
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(tls_setup, .init = setup, .fini = teardown, .timeout = 60);

static hb_config_t tls_config(void)
{
	static hb_config_cert_t sni[1];
	sni[0] = (hb_config_cert_t){"other.test", file(2, "other.pem"), file(3, "other.key"), NULL};
	return (hb_config_t){.ssl = 1,
			     .certfile = file(0, "server.pem"),
			     .keyfile = file(1, "server.key"),
			     .alpn = "h2,http/1.1",
			     .ssl_min_version = 12,
			     .ssl_ticket_lifetime_s = 3600,
			     .ssl_certs = sni,
			     .nssl_certs = 1};
}

Test(tls_setup, off_builds_nothing)
{
	hb_tls_setup_t st;
	hb_config_t cfg = {0};
	char err[256];
	cr_assert_eq(hb_tls_setup_init(&st, &cfg, "h2,http/1.1", err, sizeof err), 0);
	cr_assert_null(st.live);
	cr_assert_eq(hb_tls_setup_reload(&st, &cfg, "h2,http/1.1", err, sizeof err), 0);
	hb_tls_setup_free(&st);
}

Test(tls_setup, reload_swaps_and_a_bad_file_keeps_the_old_context)
{
	hb_tls_setup_t st;
	hb_config_t cfg = tls_config();
	char err[256] = "";
	cr_assert_eq(hb_tls_setup_init(&st, &cfg, "h2,http/1.1", err, sizeof err), 0, "%s", err);
	hb_tls_ctx_t *first = hb_tls_live_acquire(st.live);
	hb_tls_t *open = hb_tls_new(first); /* an open connection of the first generation */

	cr_assert_eq(hb_tls_setup_reload(&st, &cfg, "h2,http/1.1", err, sizeof err), 0, "%s", err);
	hb_tls_ctx_t *second = hb_tls_live_acquire(st.live);
	cr_assert_neq(second, first);
	cr_assert_eq(st.reloads, 1);

	/* the certificate file is replaced by garbage: the reload fails, naming it */
	FILE *f = fopen(cfg.certfile, "w");
	fputs("not a certificate\n", f);
	fclose(f);
	cr_assert_eq(hb_tls_setup_reload(&st, &cfg, "h2,http/1.1", err, sizeof err), -EINVAL);
	cr_assert(strstr(err, cfg.certfile) != NULL, "%s", err);
	hb_tls_ctx_t *still = hb_tls_live_acquire(st.live);
	cr_assert_eq(still, second, "the old context stays live");
	cr_assert_eq(st.reloads_failed, 1);
	hb_tls_ctx_unref(still);
	hb_tls_ctx_unref(second);
	hb_tls_ctx_unref(first);
	hb_tls_free(open);
	hb_tls_setup_free(&st);
}

Test(tls_setup, alpn_keeps_only_served_protocols)
{
	hb_tls_setup_t st;
	hb_config_t cfg = tls_config();
	char err[256] = "";
	cfg.alpn = "h2";
	cr_assert_eq(hb_tls_setup_init(&st, &cfg, "http/1.1", err, sizeof err), -EINVAL);
	cr_assert(strstr(err, "serves only http/1.1") != NULL, "%s", err);
	cr_assert_eq(hb_tls_setup_init(&st, &cfg, "http/1.1,h2", err, sizeof err), 0, "%s", err);
	hb_tls_setup_free(&st);
}

Test(tls_setup, a_bad_sni_pair_is_named)
{
	hb_tls_setup_t st;
	hb_config_t cfg = tls_config();
	char err[256] = "";
	cfg.ssl_certs[0].keyfile = file(4, "server.key");
	cr_assert_eq(hb_tls_setup_init(&st, &cfg, "h2,http/1.1", err, sizeof err), -EINVAL);
	cr_assert(strstr(err, "does not match") != NULL, "%s", err);
	cr_assert_null(st.live);
}
