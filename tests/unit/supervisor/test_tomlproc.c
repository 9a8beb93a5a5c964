/* test_tomlproc.c: the configuration file parsed in a forked helper (supervisor/tomlproc.c)
 * gives the same configuration, and the same errors, as the in-process loader; this process
 * never starts Python. */
#include <Python.h>
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "supervisor/tomlproc.h"

static char path[PATH_MAX];
static char err[1024];

static void write_file(const char *text)
{
	snprintf(path, sizeof path, "/tmp/hb-tomlproc-%d.toml", (int)getpid());
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static int load(hb_config_t *cfg)
{
	char *argv[] = {"hornbeam-uring", "app:application", "--config", path, NULL};
	char *envp[] = {NULL};
	return hb_config_load(cfg, 4, argv, envp, hb_tomlproc_load, err, sizeof err);
}

static void cleanup(void)
{
	unlink(path);
}

Test(tomlproc, every_kind_of_value, .fini = cleanup)
{
	hb_config_t cfg;

	write_file("workers = 3\n"
		   "timeout = 2.5\n"
		   "websocket_deflate = false\n"
		   "bind = [\"127.0.0.1:9001\", \"unix:/tmp/x.sock\"]\n"
		   "access_log_format = \"%(h)s \\u00e9\"\n"
		   "processes = 2\n"
		   "[functions]\n"
		   "f = \"mod:fn\"\n"
		   "[cluster]\n"
		   "cookie = \"secret\"\n");
	cr_assert_eq(load(&cfg), HB_CONFIG_OK, "%s", err);
	cr_assert_eq(cfg.workers, 3);
	cr_assert_eq(cfg.timeout_ms, 2500);
	cr_assert_eq(cfg.websocket_deflate, 0);
	cr_assert_eq(cfg.nbinds, 2);
	cr_assert_str_eq(cfg.binds[1].path, "/tmp/x.sock");
	cr_assert_str_eq(cfg.access_log_format, "%(h)s \xc3\xa9");
	cr_assert_eq(cfg.processes, 2);
	cr_assert_eq(cfg.nfunctions, 1);
	cr_assert_str_eq(cfg.functions[0].target, "mod:fn");
	cr_assert_str_eq(cfg.cluster_cookie, "secret");
	hb_config_free(&cfg);
	cr_assert(!Py_IsInitialized(), "the helper's Python ran in this process");
}

Test(tomlproc, a_bad_value_names_the_file_and_line, .fini = cleanup)
{
	hb_config_t cfg;

	write_file("workers = 2\n\ntimeout = \"soon\"\n");
	cr_assert_eq(load(&cfg), -EINVAL);
	cr_assert(strstr(err, path) && strstr(err, ":3") && strstr(err, "timeout"), "%s", err);
}

Test(tomlproc, unparseable_toml_is_the_loaders_error, .fini = cleanup)
{
	hb_config_t cfg;

	write_file("workers = [\n");
	cr_assert_lt(load(&cfg), 0);
	cr_assert(strstr(err, path), "%s", err);
}

Test(tomlproc, a_missing_file, .fini = cleanup)
{
	hb_config_t cfg;

	snprintf(path, sizeof path, "/nonexistent/hb.toml");
	cr_assert_lt(load(&cfg), 0);
	cr_assert(strstr(err, "/nonexistent/hb.toml"), "%s", err);
}
