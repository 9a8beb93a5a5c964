/* test_config_tls.c: the TLS keys of src/core/config.c: defaults, certfile implying ssl, plain
 * and TLS listeners side by side (bind + ssl_bind), the checks that need the default pair or a
 * CA file, ALPN lists, and [[tls.certificate]] SNI tables from a real TOML file (tomllib), with
 * paths taken relative to the file. */
#include "config_harness.h"

Test(config_tls, off_by_default, .fini = cleanup)
{
	cr_assert_eq(LOAD("a:b"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.ssl, 0);
	cr_assert_eq(cfg.binds[0].tls, 0);
	cr_assert_null(cfg.certfile);
	cr_assert_eq(cfg.nssl_binds, 0);
	cr_assert_eq(cfg.verify_client, HB_VERIFY_NONE);
	cr_assert_eq(cfg.ssl_min_version, 12);
	cr_assert_null(cfg.ssl_ciphers);
	cr_assert_str_eq(cfg.alpn, "h2,http/1.1");
	cr_assert_eq(cfg.ssl_handshake_timeout_s, 10);
	cr_assert_eq(cfg.ssl_ticket_lifetime_s, 3600);
	cr_assert_eq(cfg.nssl_certs, 0);
}

Test(config_tls, certfile_implies_ssl_on_every_bind, .fini = cleanup)
{
	cr_assert_eq(LOAD("a:b", "--certfile", "/c.pem", "--keyfile", "/k.pem", "--bind", ":8443"),
		     HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.ssl, 1);
	cr_assert_str_eq(cfg.certfile, "/c.pem");
	cr_assert_str_eq(cfg.keyfile, "/k.pem");
	cr_assert_eq(cfg.nbinds, 1);
	cr_assert_eq(cfg.nssl_binds, 0, "no ssl_bind: the bind list itself is TLS");
	cr_assert_eq(cfg.binds[0].tls, 1);
}

Test(config_tls, plain_and_tls_listeners, .fini = cleanup)
{
	const char *env[] = {"HORNBEAM_SSL_BIND=:8443, [::1]:9443", "HORNBEAM_KEYFILE_PASSWORD=pw",
			     NULL};
	cr_assert_eq(load_with(ARGS("a:b", "--bind", ":8080", "--certfile", "c.pem", "--keyfile",
				    "k.pem", "--verify-client", "optional", "--cacertfile",
				    "ca.pem", "--ssl-min-version", "1.3", "--alpn", "http/1.1, h2",
				    "--ssl-handshake-timeout", "3", "--ssl-ticket-lifetime", "10m",
				    "--ssl-ciphers", "TLS13-AES128-GCM-SHA256"),
			       env, NULL),
		     HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.nbinds, 3, "listeners: the plain bind, then the ssl_bind ones");
	cr_assert_eq(cfg.binds[0].port, 8080);
	cr_assert_eq(cfg.binds[0].tls, 0);
	cr_assert_eq(cfg.binds[1].port, 8443);
	cr_assert_eq(cfg.binds[1].tls, 1);
	cr_assert_eq(cfg.binds[2].tls, 1);
	cr_assert_eq(cfg.nssl_binds, 2);
	cr_assert_eq(cfg.ssl_binds[0].port, 8443);
	cr_assert_eq(cfg.ssl_binds[1].port, 9443);
	cr_assert_str_eq(cfg.keyfile_password, "pw");
	cr_assert_eq(cfg.verify_client, HB_VERIFY_OPTIONAL);
	cr_assert_eq(cfg.ssl_min_version, 13);
	cr_assert_str_eq(cfg.alpn, "http/1.1,h2", "blanks dropped, order kept");
	cr_assert_eq(cfg.ssl_handshake_timeout_s, 3);
	cr_assert_eq(cfg.ssl_ticket_lifetime_s, 600);
	cr_assert_str_eq(cfg.ssl_ciphers, "TLS13-AES128-GCM-SHA256");
}

Test(config_tls, errors)
{
	assert_err(LOAD("a:b", "--ssl"), "ssl needs certfile and keyfile");
	assert_err(LOAD("a:b", "--certfile", "c.pem"), "ssl needs certfile and keyfile");
	assert_err(LOAD("a:b", "--ssl-bind", ":8443"), "need certfile");
	assert_err(LOAD("a:b", "--certfile", "c", "--keyfile", "k", "--verify-client", "required"),
		   "verify_client = required needs cacertfile");
	assert_err(LOAD("a:b", "--verify-client", "sometimes"),
		   "--verify-client: expected one of none, optional, required");
	assert_err(LOAD("a:b", "--ssl-min-version", "1.1"),
		   "--ssl-min-version: expected one of 1.2, 1.3");
	assert_err(LOAD("a:b", "--alpn", "h2,,http/1.1"), "--alpn: expected protocol names");
	assert_err(LOAD("a:b", "--alpn", "a,b,c,d,e,f,g,h,i"), "at most 8 protocols");
	assert_err(LOAD("a:b", "--ssl-handshake-timeout", "0"),
		   "--ssl-handshake-timeout: expected a duration >= 1s");
	assert_err(LOAD("a:b", "--ssl-ticket-lifetime", "200h"),
		   "--ssl-ticket-lifetime: expected a duration <=");
	assert_err(LOAD("a:b", "--ssl-bind", "nope:x"), "--ssl-bind: invalid address");
}

/* ---- TOML ---- */

TestSuite(toml_tls, .init = py_up, .fini = py_down);

Test(toml_tls, sni_tables_and_relative_paths)
{
	write_toml("app = 'a:b'\n"
		   "bind = ['127.0.0.1:8080']\n"
		   "ssl_bind = ['127.0.0.1:8443']\n"
		   "certfile = 'certs/default.pem'\n"
		   "keyfile = '/abs/default.key'\n"
		   "alpn = ['http/1.1', 'h2']\n"
		   "\n"
		   "[[tls.certificate]]\n"
		   "server_name = 'api.example.com'\n"
		   "certfile = 'api.pem'\n"
		   "keyfile = 'api.key'\n"
		   "\n"
		   "[[tls.certificate]]\n"
		   "server_name = '*.example.org'\n"
		   "certfile = '/etc/org.pem'\n"
		   "keyfile = '/etc/org.key'\n"
		   "keyfile_password = 'pw'\n");
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	char want[PATH_MAX + 64];
	char *real = realpath(dir, NULL);
	snprintf(want, sizeof want, "%s/certs/default.pem", real);
	cr_assert_str_eq(cfg.certfile, want, "relative to the file");
	cr_assert_str_eq(cfg.keyfile, "/abs/default.key");
	cr_assert_str_eq(cfg.alpn, "http/1.1,h2");
	cr_assert_eq(cfg.nssl_binds, 1);
	cr_assert_eq(cfg.nssl_certs, 2);
	cr_assert_str_eq(cfg.ssl_certs[0].server_name, "api.example.com");
	snprintf(want, sizeof want, "%s/api.pem", real);
	cr_assert_str_eq(cfg.ssl_certs[0].certfile, want);
	cr_assert_null(cfg.ssl_certs[0].keyfile_password);
	cr_assert_str_eq(cfg.ssl_certs[1].server_name, "*.example.org");
	cr_assert_str_eq(cfg.ssl_certs[1].keyfile_password, "pw");
	free(real);
}

Test(toml_tls, sni_table_errors)
{
	write_toml("app = 'a:b'\ncertfile = 'c'\nkeyfile = 'k'\n\n"
		   "[[tls.certificate]]\nserver_name = 'a'\ncertfile = 'x'\nkeyfile = 'y'\n\n"
		   "[[tls.certificate]]\nserver_name = 'b'\ncert = 'x'\n");
	assert_file_err(load_toml(NULL, NULL), 10, "[[tls.certificate]]: unknown key 'cert'");
	write_toml("app = 'a:b'\ncertfile = 'c'\nkeyfile = 'k'\n"
		   "[[tls.certificate]]\nserver_name = 'a'\ncertfile = 'x'\n");
	assert_err(load_toml(NULL, NULL), "[[tls.certificate]] number 1 lacks keyfile");
	write_toml("app = 'a:b'\ncertfile = 'c'\nkeyfile = 'k'\n"
		   "[[tls.certificate]]\nserver_name = 3\n");
	assert_file_err(load_toml(NULL, NULL), 4,
			"[[tls.certificate]] server_name: expected a non-empty string");
	write_toml("app = 'a:b'\n[tls]\nversion = 3\n");
	assert_file_err(load_toml(NULL, NULL), 2, "[tls] holds only [[tls.certificate]] tables");
	write_toml("app = 'a:b'\n[[tls.certificate]]\nserver_name = 'a'\ncertfile = 'x'\n"
		   "keyfile = 'y'\n");
	assert_err(load_toml(NULL, NULL), "need certfile, the default certificate");
	write_toml("app = 'a:b'\nalpn = ['h2', 2]\n");
	assert_file_err(load_toml(NULL, NULL), 2, "key 'alpn': expected a list of strings");
}

Test(toml_tls, cluster_keyfile_password)
{
	/* [cluster] keyfile_password, as keyfile_password is for HTTPS: file, environment, CLI */
	const char *base = "app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c'\n"
			   "certfile = 'n.pem'\nkeyfile = 'n.key'\ncacertfile = 'ca.pem'\n";
	char text[512];
	snprintf(text, sizeof text, "%skeyfile_password = 'from-file'\n", base);
	write_toml(text);
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert(cfg.cluster_tls);
	cr_assert_str_eq(cfg.cluster_keyfile_password, "from-file");
	cr_assert_null(cfg.keyfile_password, "the HTTPS key stays apart");
	hb_config_free(&cfg);
	cr_assert_eq(load_toml(NULL, ARGS("HORNBEAM_CLUSTER_KEYFILE_PASSWORD=from-env")),
		     HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.cluster_keyfile_password, "from-env", "the environment overrides");
	hb_config_free(&cfg);
	cr_assert_eq(load_toml(ARGS("--cluster-keyfile-password", "from-cli"),
			       ARGS("HORNBEAM_CLUSTER_KEYFILE_PASSWORD=from-env")),
		     HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.cluster_keyfile_password, "from-cli", "the CLI overrides");
	hb_config_free(&cfg);
	write_toml(base);
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_null(cfg.cluster_keyfile_password, "none by default");
	hb_config_free(&cfg);
	/* a bad value names file, line and key; a password without the certificate is refused */
	snprintf(text, sizeof text, "%skeyfile_password = 7\n", base);
	write_toml(text);
	assert_file_err(load_toml(NULL, NULL), 9, "key 'cluster_keyfile_password'");
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c'\n"
		   "keyfile_password = 'pw'\n");
	assert_err(load_toml(NULL, NULL), "need cluster_certfile (cluster_tls)");
}
