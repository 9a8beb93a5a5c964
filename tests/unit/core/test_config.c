/* test_config.c: defaults, CLI forms, environment, TOML (through CPython's tomllib),
 * precedence, bind syntax and every error class with its message. */
#include "config_harness.h"

#include <criterion/redirect.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/log.h"

/* ---- defaults ---- */

Test(config, defaults, .fini = cleanup)
{
	cr_assert_eq(LOAD("app:application"), HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.app, "app:application");
	cr_assert_null(cfg.config_file);
	cr_assert_eq(cfg.nbinds, 1);
	cr_assert_str_eq(cfg.binds[0].spec, "127.0.0.1:8000");
	cr_assert_eq(cfg.binds[0].family, AF_INET);
	cr_assert_str_eq(cfg.binds[0].host, "127.0.0.1");
	cr_assert_eq(cfg.binds[0].port, 8000);
	cr_assert_eq(cfg.workers, hb_cpu_count() > 1024 ? 1024 : hb_cpu_count());
	cr_assert_eq(cfg.ncpus, hb_cpu_count());
	cr_assert_not_null(cfg.cpus);
	cr_assert_eq(cfg.threads, 1);
	cr_assert_eq(cfg.worker_class, HB_WORKER_AUTO);
	cr_assert_eq(cfg.npythonpath, 0);
	cr_assert_eq(cfg.timeout_ms, 30000);
	cr_assert_eq(cfg.graceful_timeout_s, 30);
	cr_assert_eq(cfg.keepalive_s, 5);
	cr_assert_eq(cfg.header_timeout_s, 10);
	cr_assert_eq(cfg.body_timeout_s, 30);
	cr_assert_eq(cfg.write_timeout_s, 30);
	cr_assert_eq(cfg.max_requests, 0);
	cr_assert_eq(cfg.max_requests_jitter, 0);
	cr_assert_eq(cfg.limit_request_line, 8190);
	cr_assert_eq(cfg.limit_request_fields, 100);
	cr_assert_eq(cfg.limit_request_field_size, 8190);
	cr_assert_eq(cfg.limit_request_header_size, 65536);
	cr_assert_eq(cfg.max_body_size, INT64_C(1) << 30);
	cr_assert_eq(cfg.max_connections, 10000);
	cr_assert_str_eq(cfg.root_path, "");
#ifdef HB_DEFAULT_INTERPRETER /* a build against Python 3.11: no per-interpreter GIL */
	cr_assert_eq(cfg.interpreter, HB_INTERP_MAIN);
#else
	cr_assert_eq(cfg.interpreter, HB_INTERP_ISOLATED);
#endif
	cr_assert_eq(cfg.cpu_affinity, 0);
	cr_assert_eq(cfg.log_level, HB_LOG_INFO);
	cr_assert_str_eq(cfg.access_log, "-", "on by default, to stdout");
	cr_assert_str_eq(cfg.access_log_format,
			 "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"");
}

Test(config, app_module_alone, .fini = cleanup)
{
	cr_assert_eq(LOAD("myapp.wsgi"), HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.app, "myapp.wsgi:application");
}

Test(config, free_twice_is_safe)
{
	cr_assert_eq(LOAD("a:b"), HB_CONFIG_OK, "%s", err);
	hb_config_free(&cfg);
	hb_config_free(&cfg);
	cr_assert_null(cfg.app);
}

/* ---- command line ---- */

Test(config, cli_forms, .fini = cleanup)
{
	int rc = LOAD("--workers", "3", "--threads=4", "-b", "0.0.0.0:9000", "-b[::1]:9001",
		      "--bind=unix:/tmp/hb.sock", "--cpu-affinity", "--log-level", "DEBUG",
		      "--timeout=0", "--access-log", "-", "--root-path", "/api/", "--pythonpath",
		      ".", "--pythonpath=/tmp", "--interpreter", "main", "--max-body-size", "1024",
		      "--", "pkg.mod:create_app()");
	cr_assert_eq(rc, HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.app, "pkg.mod:create_app()");
	cr_assert_eq(cfg.workers, 3);
	cr_assert_eq(cfg.threads, 4);
	cr_assert_eq(cfg.nbinds, 3, "CLI binds replace the default and accumulate");
	cr_assert_eq(cfg.binds[0].port, 9000);
	cr_assert_eq(cfg.binds[1].family, AF_INET6);
	cr_assert_eq(cfg.binds[2].family, AF_UNIX);
	cr_assert_eq(cfg.cpu_affinity, 1);
	cr_assert_eq(cfg.log_level, HB_LOG_DEBUG);
	cr_assert_eq(cfg.timeout_ms, 0);
	cr_assert_str_eq(cfg.access_log, "-");
	cr_assert_str_eq(cfg.root_path, "/api", "trailing slash dropped");
	cr_assert_eq(cfg.npythonpath, 2);
	cr_assert_str_eq(cfg.pythonpath[0], ".", "CLI paths stay as given");
	cr_assert_str_eq(cfg.pythonpath[1], "/tmp");
	cr_assert_eq(cfg.interpreter, HB_INTERP_MAIN);
	cr_assert_eq(cfg.max_body_size, 1024);
}

Test(config, cli_short_and_bool_forms, .fini = cleanup)
{
	cr_assert_eq(LOAD("-w2", "-k", "wsgi", "--cpu-affinity", "--no-cpu-affinity", "a:b"),
		     HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.workers, 2);
	cr_assert_eq(cfg.cpu_affinity, 0, "the last flag wins");
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--cpu-affinity=yes"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.cpu_affinity, 1);
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--access-log="), HB_CONFIG_OK, "%s", err);
	cr_assert_null(cfg.access_log, "empty access log means off");
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--no-access-log", "--access-logformat", "json"), HB_CONFIG_OK,
		     "%s", err);
	cr_assert_null(cfg.access_log, "--no-access-log");
	cr_assert_str_eq(cfg.access_log_format, "json", "gunicorn's --access-logformat");
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--no-access-log=x"), -EINVAL);
	cr_assert_eq(LOAD("a:b", "--no-timeout"), -EINVAL, "only flags and access_log negate");
}

Test(config, help_and_version, .init = cr_redirect_stdout)
{
	cr_assert_eq(LOAD("--version"), HB_CONFIG_VERSION);
	cr_assert_eq(LOAD("--workers", "2", "--help"), HB_CONFIG_EXIT);
	cr_assert_eq(LOAD("-h"), HB_CONFIG_EXIT);
	fflush(stdout);
	cr_assert_stdout_neq_str("");
}

Test(config, version_text, .init = cr_redirect_stdout)
{
	cr_assert_eq(LOAD("--version"), HB_CONFIG_VERSION);
	fflush(stdout);
	cr_assert_stdout_eq_str("hornbeam-uring " HB_VERSION "\n");
}

Test(config, usage_lists_every_option)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	hb_config_usage(f);
	fclose(f);
	static const char *const opts[] = {
		"--config FILE",
		"--bind ADDR",
		"--workers N",
		"--threads K",
		"--worker-class",
		"--pythonpath DIR",
		"--timeout SECONDS",
		"--graceful-timeout SECONDS",
		"--keepalive SECONDS",
		"--max-requests N",
		"--max-requests-jitter N",
		"--limit-request-line N",
		"--limit-request-fields N",
		"--limit-request-field-size N",
		"--limit-request-header-size N",
		"--max-body-size BYTES",
		"--header-timeout SECONDS",
		"--body-timeout SECONDS",
		"--write-timeout SECONDS",
		"--max-connections N",
		"--backlog N",
		"--root-path P",
		"--interpreter",
		"--[no-]cpu-affinity",
		"--log-level",
		"--[no-]access-log FILE|-",
		"--access-log-format FMT",
		"--version",
		"--help",
		"[default: 127.0.0.1:8000]",
		"[default: 30]",
		"a bare number is seconds",
		"[default: %(h)s",
	};
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
		cr_assert(strstr(text, opts[i]), "usage lacks %s", opts[i]);
	free(text);
}

/* ---- durations ---- */

Test(duration, parse_units)
{
	static const struct {
		const char *text;
		int64_t ms;
	} ok[] = {
		{"0", 0},
		{"30", 30000},
		{"30s", 30000},
		{"250ms", 250},
		{"1.5", 1500},
		{"1.5s", 1500},
		{"0.25s", 250},
		{"2m", 120000},
		{"1h", 3600000},
		{"1.5m", 90000},
		{"0.001", 1},
		{"90ms", 90},
		{"86400", 86400000},
		{"0.5h", 1800000},
	};
	static const char *const bad[] = {
		"",
		"s",
		"-1",
		"1.",
		"1.0001",
		"0.5ms",
		"30 s",
		" 30",
		"30x",
		"1e3",
		"1,5",
		"30S",
		"99999999999999999999",
		"1d",
		".5",
	};
	int64_t ms;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ms = -7;
		cr_assert_eq(hb_config_parse_duration(ok[i].text, &ms), 0, "%s", ok[i].text);
		cr_assert_eq(ms, ok[i].ms, "%s -> %lld", ok[i].text, (long long)ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(hb_config_parse_duration(bad[i], &ms), -EINVAL, "'%s' accepted",
			     bad[i]);
}

/* A bare --timeout is seconds, as gunicorn; the field keeps milliseconds. */
Test(duration, timeout_bare_is_seconds, .fini = cleanup)
{
	cr_assert_eq(LOAD("a:b", "--timeout", "30"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.timeout_ms, 30000);
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--timeout=250ms"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.timeout_ms, 250);
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--timeout=2m", "--keepalive=1m", "--graceful-timeout=1500ms"),
		     -EINVAL);
	cr_assert(strstr(err, "--graceful-timeout: expected whole seconds, got '1500ms'"), "%s",
		  err);
	cr_assert_eq(LOAD("a:b", "--timeout=2m", "--keepalive=1m", "--graceful-timeout=2000ms",
			  "--lifespan-timeout=0.5h", "--websocket-ping-interval=90s"),
		     HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.timeout_ms, 120000);
	cr_assert_eq(cfg.keepalive_s, 60);
	cr_assert_eq(cfg.graceful_timeout_s, 2);
	cr_assert_eq(cfg.lifespan_timeout_s, 1800);
	cr_assert_eq(cfg.websocket_ping_interval_s, 90);
}

Test(duration, range_in_units, .fini = cleanup)
{
	assert_err(LOAD("a:b", "--keepalive=2h"),
		   "--keepalive: expected a duration <= 3600s, got '2h'");
	assert_err(LOAD("a:b", "--timeout=25h"),
		   "--timeout: expected a duration <= 86400s, got '25h'");
	assert_err(LOAD("a:b", "--lifespan-timeout=0"),
		   "--lifespan-timeout: expected a duration >= 1s, got '0'");
	assert_err(load_with(ARGS("a:b"), ARGS("HORNBEAM_TIMEOUT=1e3"), NULL),
		   "HORNBEAM_TIMEOUT: expected a duration");
	cr_assert_eq(load_with(ARGS("a:b"), ARGS("HORNBEAM_TIMEOUT=45"), NULL), HB_CONFIG_OK, "%s",
		     err);
	cr_assert_eq(cfg.timeout_ms, 45000, "environment: bare seconds too");
}

/* ---- gunicorn/uvicorn spellings, --check-config, --print-config ---- */

Test(aliases, same_keys, .fini = cleanup)
{
	cr_assert_eq(LOAD("a:b", "--keep-alive", "7", "--access-logfile=-"), HB_CONFIG_OK, "%s",
		     err);
	cr_assert_eq(cfg.keepalive_s, 7);
	cr_assert_str_eq(cfg.access_log, "-");
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--timeout-keep-alive=1m"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.keepalive_s, 60);
	hb_config_free(&cfg);
	assert_err(LOAD("a:b", "--keep-alive=2h"), "--keepalive: expected a duration <= 3600s");
}

Test(aliases, host_and_port_make_one_bind, .fini = cleanup)
{
	cr_assert_eq(LOAD("a:b", "--host", "0.0.0.0", "--port", "9001"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.nbinds, 1);
	cr_assert_str_eq(cfg.binds[0].host, "0.0.0.0");
	cr_assert_eq(cfg.binds[0].port, 9001);
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--port=9002"), HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.binds[0].spec, "127.0.0.1:9002");
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--host=::1"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.binds[0].family, AF_INET6);
	cr_assert_eq(cfg.binds[0].port, 8000);
	hb_config_free(&cfg);
	assert_err(LOAD("a:b", "--host", "h", "-b", ":1"), "--host/--port: not with --bind");
	assert_err(LOAD("a:b", "--port"), "--port: missing value");
	assert_err(LOAD("a:b", "--port", "x"), "invalid address '127.0.0.1:x'");
}

Test(aliases, misspelled_alias_hints)
{
	assert_err(LOAD("a:b", "--acess-logfile", "-"), "did you mean '--access-logfile'?");
	assert_err(LOAD("a:b", "--prnt-config"), "did you mean '--print-config'?");
	assert_err(LOAD("a:b", "--hots", "x"), "did you mean '--host'?");
}

Test(aliases, check_config, .init = cr_redirect_stdout)
{
	cr_assert_eq(LOAD("a:b", "--check-config", "--workers", "3"), HB_CONFIG_EXIT, "%s", err);
	cr_assert_null(cfg.app, "freed: nothing to serve");
	fflush(stdout);
	cr_assert_stdout_eq_str("ok\n");
}

Test(aliases, check_config_error)
{
	assert_err(LOAD("a:b", "--check-config", "--workers", "0"), "--workers: expected");
}

static char *printed_with(const char *const *args, const char *const *env, hb_toml_loader_fn loader)
{
	static char buf[8192];
	FILE *f = tmpfile();
	int saved = dup(1);
	fflush(stdout);
	dup2(fileno(f), 1);
	int rc = load_with(args, env, loader);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	cr_assert_eq(rc, HB_CONFIG_EXIT, "%s", err);
	rewind(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}
#define printed(args, env) printed_with(args, env, NULL)

Test(aliases, print_config_names_each_source)
{
	const char *out = printed(ARGS("a:b", "--print-config", "--timeout", "250ms", "-w", "3"),
				  ARGS("HORNBEAM_KEEPALIVE=9", "HORNBEAM_ROOT_PATH=/x\"y"));
	cr_assert(strstr(out, "app = \"a:b\"  # cli APP\n"), "%s", out);
	cr_assert(strstr(out, "workers = 3  # cli --workers\n"), "%s", out);
	cr_assert(strstr(out, "timeout = \"250ms\"  # cli --timeout\n"), "%s", out);
	cr_assert(strstr(out, "keepalive = 9  # env HORNBEAM_KEEPALIVE\n"), "%s", out);
	cr_assert(strstr(out, "root_path = \"/x\\\"y\"  # env HORNBEAM_ROOT_PATH\n"), "%s", out);
	cr_assert(strstr(out, "bind = [\"127.0.0.1:8000\"]  # default\n"), "%s", out);
	cr_assert(strstr(out, "graceful_timeout = 30  # default\n"), "%s", out);
	cr_assert(strstr(out, "cpu_affinity = false  # default\n"), "%s", out);
	cr_assert(strstr(out, "worker_class = \""), "%s", out);
	out = printed(ARGS("a:b", "--print-config", "--timeout=2m"), NULL);
	cr_assert(strstr(out, "timeout = 120  # cli --timeout\n"), "whole seconds bare: %s", out);
}

Test(config_errors, pythonpath_must_exist)
{
	assert_err(LOAD("a:b", "--pythonpath", "/tmp", "--pythonpath", "/no/such/hb-dir"),
		   "pythonpath: '/no/such/hb-dir' is not a directory (No such file or directory; "
		   "from cli --pythonpath)");
	assert_err(load_with(ARGS("a:b"), ARGS("HORNBEAM_PYTHONPATH=/etc/passwd"), NULL),
		   "pythonpath: '/etc/passwd' is not a directory (not a directory; from env "
		   "HORNBEAM_PYTHONPATH)");
}

/* ---- CLI errors ---- */

Test(config_errors, cli_values)
{
	assert_err(LOAD("a:b", "--workers", "abc"),
		   "--workers: expected an integer >= 1, got 'abc'");
	assert_err(LOAD("a:b", "--workers=0"), "--workers: expected an integer >= 1, got '0'");
	assert_err(LOAD("a:b", "--workers=1025"), "--workers: expected an integer <= 1024");
	assert_err(LOAD("a:b", "--threads=257"), "--threads: expected an integer <= 256");
	assert_err(LOAD("a:b", "--timeout=-1"),
		   "--timeout: expected a duration (30, 30s, 250ms, 2m, 1h), got '-1'");
	assert_err(LOAD("a:b", "--keepalive=5 s"), "--keepalive: expected a duration");
	assert_err(LOAD("a:b", "--limit-request-line=65537"),
		   "--limit-request-line: expected an integer <= 65536");
	assert_err(LOAD("a:b", "--limit-request-fields=0"), "--limit-request-fields");
	assert_err(LOAD("a:b", "--max-requests=99999999999999999999999"),
		   "--max-requests: expected an integer <=");
	assert_err(LOAD("a:b", "--cpu-affinity=maybe"),
		   "--cpu-affinity: expected true or false, got 'maybe'");
	assert_err(LOAD("a:b", "--log-level", "verbose"),
		   "--log-level: expected one of debug, info, warning, error, critical, got "
		   "'verbose'");
	assert_err(LOAD("a:b", "--interpreter=shared"), "expected one of isolated, main");
	assert_err(LOAD("a:b", "--root-path", "api"),
		   "--root-path: must be empty or start with '/'");
}

Test(config_errors, worker_class_choices)
{
	assert_err(LOAD("a:b", "--worker-class", "uvicorn"),
		   "--worker-class: expected one of wsgi, asgi, auto, got 'uvicorn'");
	assert_err(LOAD("a:b", "--worker-class=gevent"),
		   "--worker-class: expected one of wsgi, asgi, auto, got 'gevent'");
}

Test(config_errors, cli_syntax)
{
	assert_err(LOAD("a:b", "--wrokers", "2"),
		   "unknown option '--wrokers' (did you mean '--workers'?)");
	assert_err(LOAD("a:b", "--frobnicate"), "unknown option '--frobnicate'");
	cr_assert_null(strstr(err, "did you mean"));
	assert_err(LOAD("a:b", "-x"), "unknown option '-x'");
	assert_err(LOAD("a:b", "--workers"), "--workers: missing value");
	assert_err(LOAD("a:b", "--bind", "--workers", "2"), "--bind: missing value");
	assert_err(LOAD("a:b", "--no-cpu-affinity=1"), "--no-cpu-affinity: takes no value");
	assert_err(LOAD("--no-workers"), "unknown option '--no-workers'");
	assert_err(LOAD("a:b", "c:d"), "unexpected argument 'c:d'");
}

Test(config_errors, app)
{
	assert_err(LOAD("--workers", "2"),
		   "no application given: pass MODULE:CALLABLE or set 'app'");
	assert_err(LOAD("app:"), "APP: expected MODULE:CALLABLE, got 'app:'");
	assert_err(LOAD(":app"), "expected MODULE:CALLABLE");
	assert_err(LOAD("--app", "my app"), "--app: expected MODULE:CALLABLE");
	cr_assert_null(cfg.app, "the config is freed on error");
}

/* ---- binds ---- */

Test(bind, forms)
{
	hb_bind_t b;
	const char *why = NULL;
	cr_assert_eq(hb_config_parse_bind("0.0.0.0:80", &b, &why), 0);
	cr_assert_eq(b.family, AF_INET);
	cr_assert_str_eq(b.host, "0.0.0.0");
	cr_assert_eq(b.port, 80);
	cr_assert_eq(hb_config_parse_bind("[::]:8443", &b, &why), 0);
	cr_assert_eq(b.family, AF_INET6);
	cr_assert_str_eq(b.host, "::");
	cr_assert_eq(b.port, 8443);
	cr_assert_eq(hb_config_parse_bind("[fe80::1%eth0]", &b, &why), 0);
	cr_assert_str_eq(b.host, "fe80::1%eth0");
	cr_assert_eq(b.port, 8000);
	cr_assert_eq(hb_config_parse_bind("unix:/run/hb.sock", &b, &why), 0);
	cr_assert_eq(b.family, AF_UNIX);
	cr_assert_str_eq(b.path, "/run/hb.sock");
	cr_assert_str_eq(b.spec, "unix:/run/hb.sock");
	cr_assert_eq(hb_config_parse_bind("unix:///run/hb.sock", &b, &why), 0);
	cr_assert_str_eq(b.path, "/run/hb.sock");
	cr_assert_eq(hb_config_parse_bind("LocalHost", &b, &why), 0, "host alone: port 8000");
	cr_assert_eq(b.family, AF_UNSPEC, "a name, resolved by the listener");
	cr_assert_str_eq(b.host, "localhost");
	cr_assert_eq(b.port, 8000);
	cr_assert_eq(hb_config_parse_bind(":9000", &b, &why), 0);
	cr_assert_str_eq(b.host, "0.0.0.0");
	cr_assert_eq(b.port, 9000);
	cr_assert_eq(hb_config_parse_bind("tcp://127.0.0.1:1", &b, &why), 0);
	cr_assert_eq(b.port, 1);
	cr_assert_eq(hb_config_parse_bind("10.0.0.1:65535", &b, &why), 0);
	cr_assert_eq(hb_config_parse_bind("127.0.0.1:0", &b, &why), 0, "port 0: any free port");
	cr_assert_eq(b.port, 0);
	cr_assert_eq(hb_config_parse_bind("[::1]:0", &b, &why), 0);
	cr_assert_eq(b.port, 0);
	cr_assert_eq(hb_config_parse_bind("fd://7", &b, &why), 0);
	cr_assert(b.fd_bind);
	cr_assert_eq(b.fd, 7);
	cr_assert_str_eq(b.spec, "fd://7");
}

Test(aliases, uds_and_fd_are_binds, .fini = cleanup)
{
	cr_assert_eq(LOAD("a:b", "--uds", "/tmp/x.sock", "--fd=5"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.nbinds, 2);
	cr_assert_str_eq(cfg.binds[0].spec, "unix:/tmp/x.sock");
	cr_assert_eq(cfg.binds[0].family, AF_UNIX);
	cr_assert_str_eq(cfg.binds[0].path, "/tmp/x.sock");
	cr_assert_str_eq(cfg.binds[1].spec, "fd://5");
	cr_assert_eq(cfg.binds[1].fd, 5);
	hb_config_free(&cfg);
	assert_err(LOAD("a:b", "--uds"), "--bind: missing value");
	assert_err(LOAD("a:b", "--fd", "1"), "descriptors 0, 1 and 2");
	assert_err(LOAD("a:b", "--cluster-bind", "0.0.0.0:0"), "port 0 is not a port");
}

Test(bind, errors)
{
	hb_bind_t b;
	const char *why = NULL;
	static const char *const bad[] = {
		"",	     "1.2.3.4:65536", "1.2.3.4:http", "host:", "::1:8000",    "[::1",
		"[::1]8000", "[nope]:80",     "unix:",	      "8000",  "bad host:80", "fd://",
		"fd://x",    "fd://2",	      "fd://3x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		cr_assert_eq(hb_config_parse_bind(bad[i], &b, &why), -EINVAL, "'%s' accepted",
			     bad[i]);
		cr_assert_not_null(why);
	}
	char longpath[200] = "unix:/";
	memset(longpath + 6, 't', 120);
	cr_assert_eq(hb_config_parse_bind(longpath, &b, &why), -EINVAL);
	cr_assert_str_eq(why, "unix socket path longer than 107 bytes");
	longpath[6 + 100] = '\0';
	cr_assert_eq(hb_config_parse_bind(longpath, &b, &why), 0);
}

Test(config_errors, bind_message)
{
	assert_err(LOAD("a:b", "--bind", "::1:8000"),
		   "--bind: invalid address '::1:8000': an IPv6 address must be in brackets");
	assert_err(LOAD("a:b", "-b", "host:99999"),
		   "invalid address 'host:99999': port must be a number from 0 to 65535");
	assert_err(LOAD("a:b", "-b", "8000"), "write :PORT or HOST:PORT");
}

/* ---- environment ---- */

Test(config, environment, .fini = cleanup)
{
	const char *env[] = {"HORNBEAM_APP=envapp:app",
			     "HORNBEAM_WORKERS=5",
			     "HORNBEAM_BIND= 0.0.0.0:81 ,unix:/tmp/x.sock,",
			     "HORNBEAM_CPU_AFFINITY=Yes",
			     "HORNBEAM_PYTHONPATH=.,/tmp",
			     "HORNBEAM_LOG_LEVEL=warning",
			     "HORNBEAM_MAX_REQUESTS=",
			     "HORNBEAM_PORT=tcp://10.0.0.1:80",
			     "HORNBEAM_ACCESS_LOG_FORMAT=%(h)s %(r)s",
			     "PATH=/bin",
			     NULL};
	cr_assert_eq(load_with(NULL, env, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.app, "envapp:app");
	cr_assert_eq(cfg.workers, 5);
	cr_assert_eq(cfg.nbinds, 2);
	cr_assert_str_eq(cfg.binds[0].host, "0.0.0.0");
	cr_assert_eq(cfg.binds[0].port, 81);
	cr_assert_str_eq(cfg.binds[1].path, "/tmp/x.sock");
	cr_assert_eq(cfg.cpu_affinity, 1);
	cr_assert_eq(cfg.npythonpath, 2);
	cr_assert_str_eq(cfg.pythonpath[0], ".");
	cr_assert_eq(cfg.log_level, HB_LOG_WARNING);
	cr_assert_eq(cfg.max_requests, 0, "empty variable: unset");
	cr_assert_str_eq(cfg.access_log_format, "%(h)s %(r)s");
}

Test(config_errors, environment)
{
	const char *env[] = {"HORNBEAM_WORKERS=abc", NULL};
	assert_err(load_with(ARGS("a:b"), env, NULL),
		   "HORNBEAM_WORKERS: expected an integer >= 1, got 'abc'");
	const char *env2[] = {"HORNBEAM_CPU_AFFINITY=2", NULL};
	assert_err(load_with(ARGS("a:b"), env2, NULL),
		   "HORNBEAM_CPU_AFFINITY: expected true or false");
	const char *env3[] = {"HORNBEAM_BIND=,", NULL};
	assert_err(load_with(ARGS("a:b"), env3, NULL),
		   "HORNBEAM_BIND: expected at least one address");
	const char *env4[] = {"HORNBEAM_WORKER_CLASS=trio", NULL};
	assert_err(load_with(ARGS("a:b"), env4, NULL),
		   "HORNBEAM_WORKER_CLASS: expected one of wsgi, asgi, auto, got 'trio'");
}

/* ---- files through a fake loader (no Python) ---- */

static int fake_loader(const char *path, hb_config_t *c, hb_config_set_fn set, char *e, size_t elen)
{
	hb_tval_t workers = {.kind = HB_TV_INT, .i = 2};
	hb_tval_t items[] = {{.kind = HB_TV_STR, .str = "10.0.0.1:1"},
			     {.kind = HB_TV_STR, .str = "10.0.0.2:2"}};
	hb_tval_t bind = {.kind = HB_TV_LIST, .items = items, .nitems = 2};
	hb_tval_t threads = {.kind = HB_TV_INT, .i = 7};
	hb_tval_t app = {.kind = HB_TV_STR, .str = "fileapp:app"};
	int rc = set(c, "workers", &workers, path, 1, e, elen);
	if (rc == 0)
		rc = set(c, "bind", &bind, path, 2, e, elen);
	if (rc == 0)
		rc = set(c, "threads", &threads, path, 3, e, elen);
	if (rc == 0)
		rc = set(c, "app", &app, path, 4, e, elen);
	return rc;
}

Test(config, precedence_cli_env_file_defaults, .fini = cleanup)
{
	const char *env[] = {"HORNBEAM_WORKERS=3", "HORNBEAM_CONFIG=fake.toml", NULL};
	cr_assert_eq(load_with(ARGS("--workers", "4"), env, fake_loader), 0, "%s", err);
	cr_assert_str_eq(cfg.config_file, "fake.toml", "--config from HORNBEAM_CONFIG");
	cr_assert_eq(cfg.workers, 4, "CLI over env");
	cr_assert_eq(cfg.threads, 7, "file over defaults");
	cr_assert_eq(cfg.nbinds, 2, "file list replaces the default");
	cr_assert_eq(cfg.keepalive_s, 5, "defaults");
	cr_assert_str_eq(cfg.app, "fileapp:app");
	hb_config_free(&cfg);

	cr_assert_eq(load_with(ARGS("x:y"), env, fake_loader), 0, "%s", err);
	cr_assert_eq(cfg.workers, 3, "env over file");
	cr_assert_str_eq(cfg.app, "x:y", "CLI APP over file");
	hb_config_free(&cfg);

	cr_assert_eq(load_with(ARGS("--config", "other.toml", "-b", ":1"), NULL, fake_loader), 0,
		     "%s", err);
	cr_assert_str_eq(cfg.config_file, "other.toml");
	cr_assert_eq(cfg.workers, 2, "file over derived default");
	cr_assert_eq(cfg.nbinds, 1, "CLI list replaces the file's");
	cr_assert_eq(cfg.binds[0].port, 1);
}

Test(config_errors, config_without_loader)
{
	assert_err(LOAD("a:b", "--config", "x.toml"), "x.toml: no TOML loader available");
}

/* ---- real TOML files through tomllib ---- */

TestSuite(toml, .init = py_up, .fini = py_down);

Test(toml, every_kind)
{
	char src[PATH_MAX + 8];
	snprintf(src, sizeof src, "%s/src", dir);
	cr_assert(mkdir(src, 0700) == 0 || errno == EEXIST, "mkdir %s", src);
	write_toml("# hornbeam\n"
		   "app = \"site.wsgi:application\"\n"
		   "bind = [\"0.0.0.0:8080\", \"[::]:8080\", \"unix:/tmp/s\"]\n"
		   "workers = 3\n"
		   "threads = 2\n"
		   "worker_class = \"wsgi\"\n"
		   "pythonpath = [\"src\", \"/tmp\"]\n"
		   "timeout = \"1500ms\"\n"
		   "graceful_timeout = 4\n"
		   "keepalive = 0\n"
		   "max_requests = 1000\n"
		   "max_requests_jitter = 50\n"
		   "limit_request_line = 4096\n"
		   "limit_request_fields = 50\n"
		   "limit_request_field_size = 4096\n"
		   "limit_request_header_size = 32768\n"
		   "max_body_size = 1_048_576\n"
		   "header_timeout = 7\n"
		   "body_timeout = 8\n"
		   "write_timeout = 9\n"
		   "max_connections = 500\n"
		   "root_path = \"/app\"\n"
		   "interpreter = \"main\"\n"
		   "cpu_affinity = true\n"
		   "log_level = \"error\"\n"
		   "access_log = \"/var/log/a.log\"\n"
		   "access_log_format = '%(h)s \"%(r)s\"'\n");
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.app, "site.wsgi:application");
	cr_assert_eq(cfg.nbinds, 3);
	cr_assert_eq(cfg.binds[1].family, AF_INET6);
	cr_assert_eq(cfg.workers, 3);
	cr_assert_eq(cfg.threads, 2);
	cr_assert_eq(cfg.npythonpath, 2);
	char *real = realpath(dir, NULL);
	char want[PATH_MAX + 8];
	snprintf(want, sizeof want, "%s/src", real);
	free(real);
	cr_assert_str_eq(cfg.pythonpath[0], want, "relative to the file's directory");
	cr_assert_str_eq(cfg.pythonpath[1], "/tmp");
	cr_assert_eq(cfg.timeout_ms, 1500);
	cr_assert_eq(cfg.graceful_timeout_s, 4);
	cr_assert_eq(cfg.keepalive_s, 0);
	cr_assert_eq(cfg.max_requests, 1000);
	cr_assert_eq(cfg.max_requests_jitter, 50);
	cr_assert_eq(cfg.limit_request_line, 4096);
	cr_assert_eq(cfg.limit_request_fields, 50);
	cr_assert_eq(cfg.limit_request_field_size, 4096);
	cr_assert_eq(cfg.limit_request_header_size, 32768);
	cr_assert_eq(cfg.max_body_size, 1048576);
	cr_assert_eq(cfg.header_timeout_s, 7);
	cr_assert_eq(cfg.body_timeout_s, 8);
	cr_assert_eq(cfg.write_timeout_s, 9);
	cr_assert_eq(cfg.max_connections, 500);
	cr_assert_str_eq(cfg.root_path, "/app");
	cr_assert_eq(cfg.interpreter, HB_INTERP_MAIN);
	cr_assert_eq(cfg.cpu_affinity, 1);
	cr_assert_eq(cfg.log_level, HB_LOG_ERROR);
	cr_assert_str_eq(cfg.access_log, "/var/log/a.log");
	cr_assert_str_eq(cfg.access_log_format, "%(h)s \"%(r)s\"");
}

Test(toml, single_string_bind)
{
	write_toml("app = 'a:b'\nbind = \"unix:/tmp/one.sock\"\n");
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.nbinds, 1);
	cr_assert_str_eq(cfg.binds[0].path, "/tmp/one.sock");
}

Test(toml, precedence)
{
	write_toml("app = 'a:b'\nworkers = 2\nthreads = 3\nkeepalive = 9\n");
	const char *env[] = {"HORNBEAM_WORKERS=4", "HORNBEAM_THREADS=5", NULL};
	cr_assert_eq(load_toml(ARGS("--threads", "6"), env), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.workers, 4, "env over file");
	cr_assert_eq(cfg.threads, 6, "CLI over env");
	cr_assert_eq(cfg.keepalive_s, 9, "file over default");
	cr_assert_eq(cfg.timeout_ms, 30000, "default");
}

Test(toml, durations)
{
	write_toml("app = 'a:b'\ntimeout = 30\nkeepalive = \"1m\"\nbody_timeout = 2.0\n");
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.timeout_ms, 30000, "a bare TOML number is seconds");
	cr_assert_eq(cfg.keepalive_s, 60);
	cr_assert_eq(cfg.body_timeout_s, 2);
	hb_config_free(&cfg);
	write_toml("app = 'a:b'\ntimeout = 0.25\n");
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.timeout_ms, 250);
	hb_config_free(&cfg);
	write_toml("app = 'a:b'\ntimeout = \"30000ms\"\n");
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.timeout_ms, 30000, "the seed's millisecond form, spelled out");
}

Test(toml, print_config_names_file_and_line)
{
	write_toml("app = 'a:b'\n\nkeepalive = \"2m\"\n");
	const char *out =
		printed_with(ARGS("--config", toml, "--print-config"), NULL, hb_py_toml_load);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof want, "keepalive = 120  # %s:3\n", toml);
	cr_assert(strstr(out, want), "no '%s' in:\n%s", want, out);
	snprintf(want, sizeof want, "# config: %s\n", toml);
	cr_assert(strstr(out, want), "no '%s' in:\n%s", want, out);
}

Test(toml, config_from_environment)
{
	write_toml("app = 'a:b'\nworkers = 2\n");
	char var[sizeof toml + 32];
	snprintf(var, sizeof var, "HORNBEAM_CONFIG=%s", toml);
	const char *env[] = {var, NULL};
	cr_assert_eq(load_with(NULL, env, hb_py_toml_load), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.workers, 2);
	cr_assert_str_eq(cfg.config_file, toml);
}

Test(toml, wrong_type)
{
	write_toml("app = 'a:b'\n\n\n\n\n\n\n\n\n\n\n   workers = \"4\"\n");
	assert_file_err(load_toml(NULL, NULL), 12,
			"key 'workers': expected an integer >= 1, got string");
}

Test(toml, errors_name_key_and_line)
{
	write_toml("app = 'a:b'\n\nwrokers = 4\n");
	assert_file_err(load_toml(NULL, NULL), 3,
			"unknown key 'wrokers' (did you mean 'workers'?)");
	write_toml("app = 'a:b'\nzzz = 1\n");
	assert_file_err(load_toml(NULL, NULL), 2, "unknown key 'zzz'");
	write_toml("\"workers\" = 0\n");
	assert_file_err(load_toml(NULL, NULL), 1, "key 'workers': expected an integer >= 1, got 0");
	write_toml("workers = 2000\n");
	assert_file_err(load_toml(NULL, NULL), 1,
			"key 'workers': expected an integer <= 1024, got 2000");
	write_toml("timeout = true\n");
	assert_file_err(load_toml(NULL, NULL), 1, "key 'timeout': expected a duration");
	write_toml("keepalive = 1.5\n");
	assert_file_err(load_toml(NULL, NULL), 1,
			"key 'keepalive': expected whole seconds, got 1.5");
	write_toml("keepalive = 3601\n");
	assert_file_err(load_toml(NULL, NULL), 1,
			"key 'keepalive': expected a duration <= 3600s, got 3601");
	write_toml("timeout = -1\n");
	assert_file_err(load_toml(NULL, NULL), 1, "key 'timeout': expected a duration >= 0s");
	write_toml("cpu_affinity = 1\n");
	assert_file_err(load_toml(NULL, NULL), 1,
			"key 'cpu_affinity': expected true or false, got integer");
	write_toml("threads = true\n");
	assert_file_err(load_toml(NULL, NULL), 1,
			"key 'threads': expected an integer >= 1, got boolean");
	write_toml("bind = [\"a:1\", 2]\n");
	assert_file_err(load_toml(NULL, NULL), 1,
			"key 'bind': expected a list of strings, got an array holding integer");
	write_toml("bind = []\n");
	assert_file_err(load_toml(NULL, NULL), 1, "key 'bind': expected at least one address");
	write_toml("bind = ['nope:port']\n");
	assert_file_err(load_toml(NULL, NULL), 1, "key 'bind': invalid address 'nope:port'");
	write_toml("worker_class = 'rsgi'\n");
	assert_file_err(load_toml(NULL, NULL), 1,
			"key 'worker_class': expected one of wsgi, asgi, auto");
	write_toml("log_level = 3\n");
	assert_file_err(load_toml(NULL, NULL), 1, "key 'log_level': expected one of debug");
	write_toml("app = 'a:b'\nroot_path = 1979-05-27\n");
	assert_file_err(load_toml(NULL, NULL), 2, "key 'root_path': expected a string, got date");
	write_toml("max_requests = 99999999999999999999\n");
	cr_assert_eq(load_toml(NULL, NULL), -EINVAL);
	cr_assert(strstr(err, "key 'max_requests'"), "%s", err);
	write_toml("config = 'other.toml'\n");
	assert_file_err(load_toml(NULL, NULL), 1, "unknown key 'config'");
}

Test(toml, cluster_table)
{
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c00kie'\n"
		   "seeds = ['10.0.0.1:7946', 'hb.svc.local:7946']\nbind = '127.0.0.1:7000'\n"
		   "probe_interval = '250ms'\n");
	cr_assert_eq(load_toml(NULL, NULL), 0, "%s", err);
	cr_assert(cfg.cluster_enabled);
	cr_assert_str_eq(cfg.cluster_cookie, "c00kie");
	cr_assert_eq(cfg.ncluster_seeds, 2);
	cr_assert_str_eq(cfg.cluster_seeds[1], "hb.svc.local:7946");
	cr_assert_str_eq(cfg.cluster_bind, "127.0.0.1:7000");
	cr_assert_eq(cfg.cluster_probe_interval_ms, 250);
	cr_assert_eq(cfg.cluster_probe_timeout_ms, 500);
	cr_assert_eq(cfg.cluster_max_frame_size, 1 << 20);
	hb_config_free(&cfg);
	/* the environment overrides the file, as for every key */
	cr_assert_eq(load_toml(NULL, ARGS("HORNBEAM_CLUSTER_COOKIE=from-env")), 0, "%s", err);
	cr_assert_str_eq(cfg.cluster_cookie, "from-env");
	hb_config_free(&cfg);
	write_toml("app = 'a:b'\n\n[cluster]\nname = 'x'\n");
	assert_file_err(load_toml(NULL, NULL), 4, "unknown key 'cluster_name'");
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\n");
	cr_assert_eq(load_toml(NULL, NULL), -EINVAL);
	cr_assert(strstr(err, "HORNBEAM_CLUSTER_COOKIE"), "%s", err);
	write_toml("app = 'a:b'\n\n[cluster]\nbind = 'example.com:7946'\n");
	cr_assert_eq(load_toml(NULL, NULL), -EINVAL);
	cr_assert(strstr(err, "numeric"), "%s", err);
}

/* the process bus's member-name region (core/xbus.h members_bytes): 64 KiB, the bus's bounds */
Test(toml, cluster_member_names_size)
{
	write_toml("app = 'a:b'\n\n[cluster]\nmember_names_size = 4096\n");
	cr_assert_eq(load_toml(NULL, NULL), 0, "%s", err);
	cr_assert_eq(cfg.cluster_member_names_size, 4096);
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b"), 0, "%s", err);
	cr_assert_eq(cfg.cluster_member_names_size, 65536);
	hb_config_free(&cfg);
	cr_assert_eq(load_with(ARGS("a:b"), ARGS("HORNBEAM_CLUSTER_MEMBER_NAMES_SIZE=1"), NULL), 0,
		     "%s", err);
	cr_assert_eq(cfg.cluster_member_names_size, 1);
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--cluster-member-names-size", "67108864"), 0, "%s", err);
	cr_assert_eq(cfg.cluster_member_names_size, 64 << 20);
	hb_config_free(&cfg);
	assert_err(LOAD("a:b", "--cluster-member-names-size=67108865"),
		   "--cluster-member-names-size: expected an integer <= 67108864");
	assert_err(load_with(ARGS("a:b"), ARGS("HORNBEAM_CLUSTER_MEMBER_NAMES_SIZE=0"), NULL),
		   "HORNBEAM_CLUSTER_MEMBER_NAMES_SIZE: expected an integer >= 1, got '0'");
	write_toml("app = 'a:b'\n\n[cluster]\nmember_names_size = -5\n");
	assert_file_err(load_toml(NULL, NULL), 4,
			"key 'cluster_member_names_size': expected an integer >= 1, got -5");
}

Test(toml, cluster_tls_keys)
{
	/* the files resolve beside the configuration file; cluster_certfile turns TLS on */
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c'\n"
		   "certfile = 'node.pem'\nkeyfile = 'node.key'\ncacertfile = '/etc/ca.pem'\n");
	cr_assert_eq(load_toml(NULL, NULL), 0, "%s", err);
	cr_assert(cfg.cluster_tls);
	cr_assert(strstr(cfg.cluster_certfile, "/node.pem") && cfg.cluster_certfile[0] == '/', "%s",
		  cfg.cluster_certfile);
	cr_assert_str_eq(cfg.cluster_cacertfile, "/etc/ca.pem");
	hb_config_free(&cfg);
	/* off by default */
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c'\n");
	cr_assert_eq(load_toml(NULL, NULL), 0, "%s", err);
	cr_assert(!cfg.cluster_tls && !cfg.cluster_certfile);
	hb_config_free(&cfg);
	/* a bad value names file, line and key */
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c'\ntls = 'maybe'\n");
	assert_file_err(load_toml(NULL, NULL), 6, "key 'cluster_tls'");
	/* TLS on needs all three files; the two others need the certificate */
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c'\ntls = true\n"
		   "certfile = 'n.pem'\nkeyfile = 'n.key'\n");
	cr_assert_eq(load_toml(NULL, NULL), -EINVAL);
	cr_assert(strstr(err, "cluster_cacertfile is missing"), "%s", err);
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c'\ntls = true\n");
	cr_assert_eq(load_toml(NULL, NULL), -EINVAL);
	cr_assert(strstr(err, "cluster_certfile is missing"), "%s", err);
	write_toml("app = 'a:b'\n\n[cluster]\nenabled = true\ncookie = 'c'\n"
		   "cacertfile = 'ca.pem'\n");
	cr_assert_eq(load_toml(NULL, NULL), -EINVAL);
	cr_assert(strstr(err, "need cluster_certfile"), "%s", err);
}

Test(toml, syntax_error_line)
{
	write_toml("app = 'a:b'\nworkers = \n");
	assert_file_err(load_toml(NULL, NULL), 2, "invalid TOML: Invalid value");
	cr_assert_null(strstr(err, "(at line"), "position moved to the prefix: %s", err);
	write_toml("app = 'a:b'\nworkers = 1\nworkers = 2\n");
	assert_file_err(load_toml(NULL, NULL), 3, "invalid TOML: ");
	write_toml("app = \"a:b\n");
	cr_assert_eq(load_toml(NULL, NULL), -EINVAL);
	cr_assert(strstr(err, "invalid TOML"), "%s", err);
}

Test(toml, unreadable_file)
{
	snprintf(toml, sizeof toml, "%s/missing.toml", dir);
	cr_assert_eq(load_toml(NULL, NULL), -EINVAL);
	cr_assert(strstr(err, "missing.toml: cannot read: No such file or directory"), "%s", err);
}

Test(toml, cli_error_after_file_names_the_flag)
{
	write_toml("app = 'a:b'\nworkers = 2\n");
	assert_err(load_toml(ARGS("--workers", "abc"), NULL),
		   "--workers: expected an integer >= 1, got 'abc'");
}

Test(config, h2_keys, .fini = cleanup)
{
	cr_assert_eq(LOAD("app"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.h2_max_concurrent_streams, 100);
	cr_assert_eq(cfg.h2_max_header_list_size, 65536);
	cr_assert_eq(cfg.h2_initial_window_size, 65535);
	cr_assert_eq(cfg.h2_max_frame_size, 16384);
	cr_assert_eq(cfg.h2_push, 0);
	cr_assert_eq(cfg.h2_max_resets, 100);
	cr_assert_eq(cfg.h2_max_control_frames, 1000);
	cr_assert_eq(cfg.h2_max_continuations, 8);
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("app", "--h2-push", "--h2-max-concurrent-streams", "7",
			  "--h2-max-frame-size", "32768", "--h2-max-resets", "5"),
		     HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.h2_push, 1);
	cr_assert_eq(cfg.h2_max_concurrent_streams, 7);
	cr_assert_eq(cfg.h2_max_frame_size, 32768);
	cr_assert_eq(cfg.h2_max_resets, 5);
	hb_config_free(&cfg);
	assert_err(LOAD("app", "--h2-max-frame-size", "16383"), "h2-max-frame-size");
	assert_err(LOAD("app", "--h2-initial-window-size", "2147483648"), "h2-initial-window-size");
}

/* ---- backlog (listen queue per listener) ---- */

Test(config, backlog_key, .fini = cleanup)
{
	cr_assert_eq(LOAD("a:b"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.backlog, 4096, "default");
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--backlog", "7"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.backlog, 7);
	hb_config_free(&cfg);
	const char *env[] = {"HORNBEAM_BACKLOG=9", NULL};
	cr_assert_eq(load_with(ARGS("a:b"), env, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.backlog, 9);
	hb_config_free(&cfg);
	assert_err(LOAD("a:b", "--backlog", "0"), "backlog");
	assert_err(LOAD("a:b", "--backlog", "65536"), "backlog");
}

/* ---- pipeline_depth (HTTP/1.1 requests of one connection handed on at once) ---- */

Test(config, pipeline_depth_key, .fini = cleanup)
{
	cr_assert_eq(LOAD("a:b"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.pipeline_depth, 32, "default");
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("a:b", "--pipeline-depth", "1"), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.pipeline_depth, 1);
	hb_config_free(&cfg);
	const char *env[] = {"HORNBEAM_PIPELINE_DEPTH=1024", NULL};
	cr_assert_eq(load_with(ARGS("a:b"), env, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.pipeline_depth, 1024);
	hb_config_free(&cfg);
	assert_err(LOAD("a:b", "--pipeline-depth", "0"),
		   "--pipeline-depth: expected an integer >= 1, got '0'");
	assert_err(LOAD("a:b", "--pipeline-depth", "1025"),
		   "--pipeline-depth: expected an integer <= 1024");
}

Test(toml, pipeline_depth)
{
	write_toml("app = 'a:b'\npipeline_depth = 8\n");
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.pipeline_depth, 8);
}

Test(toml, backlog)
{
	write_toml("app = 'a:b'\nbacklog = 128\n");
	cr_assert_eq(load_toml(NULL, NULL), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.backlog, 128);
}

Test(config, http_version, .fini = cleanup)
{
	cr_assert_eq(LOAD("app"), HB_CONFIG_OK, "%s", err);
	cr_assert_str_eq(cfg.http_version, "h1,h2");
	cr_assert(hb_config_http1(&cfg) && hb_config_http2(&cfg));
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("app", "--http-version", "2"), HB_CONFIG_OK, "%s", err);
	cr_assert(!hb_config_http1(&cfg) && hb_config_http2(&cfg));
	hb_config_free(&cfg);
	cr_assert_eq(LOAD("app", "--http-version", "http/1.1"), HB_CONFIG_OK, "%s", err);
	cr_assert(hb_config_http1(&cfg) && !hb_config_http2(&cfg));
	hb_config_free(&cfg);
	assert_err(LOAD("app", "--http-version", "h3"), "http-version");
	assert_err(LOAD("app", "--http-version", ","), "http-version");
	assert_err(LOAD("app", "--http-version", "h1,h3"), "http-version");
	cr_assert_eq(LOAD("app", "--http-version", "H2, h1"), HB_CONFIG_OK, "%s", err);
	cr_assert(hb_config_http1(&cfg) && hb_config_http2(&cfg));
}
