/* config_harness.h: the harness shared by the config tests (test_config.c, test_config_tls.c):
 * one hb_config_t and error buffer per test process, loading from an argv/envp list, and a
 * temporary directory with a hornbeam.toml that the TOML suites write and load through
 * CPython's tomllib. Single-threaded, as Criterion runs each test; the statics below belong to
 * the including test file (each test file is its own executable). Include it first: it
 * includes <Python.h>. */
#ifndef HB_TESTS_UNIT_CORE_CONFIG_HARNESS_H
#define HB_TESTS_UNIT_CORE_CONFIG_HARNESS_H

#include <Python.h>
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "python/pyhost.h"

#define MAXARGS 32

static hb_config_t cfg;
static char err[512];
static char dir[PATH_MAX];
static char toml[PATH_MAX + 32];

/* Loads from a NULL-terminated argv (without argv[0]) and envp. */
static inline int load_with(const char *const *args, const char *const *env,
			    hb_toml_loader_fn loader)
{
	char *argv[MAXARGS] = {"hornbeam-uring"};
	char *envp[MAXARGS] = {NULL};
	int argc = 1;
	for (; args && args[argc - 1]; argc++)
		argv[argc] = (char *)args[argc - 1];
	for (int i = 0; env && env[i]; i++)
		envp[i] = (char *)env[i];
	return hb_config_load(&cfg, argc, argv, envp, loader, err, sizeof err);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define LOAD(...) load_with(ARGS(__VA_ARGS__), NULL, NULL)

static inline void cleanup(void)
{
	hb_config_free(&cfg);
}

#define assert_err(rc, text)                                                                       \
	do {                                                                                       \
		cr_assert_eq((rc), -EINVAL, "rc %d", (rc));                                        \
		cr_assert(strstr(err, (text)), "error '%s' lacks '%s'", err, (text));              \
	} while (0)

/* ---- real TOML files through tomllib: TestSuite(x, .init = py_up, .fini = py_down) ---- */

static inline void py_up(void)
{
	Py_InitializeEx(0);
	snprintf(dir, sizeof dir, "/tmp/hb_cfg_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(toml, sizeof toml, "%s/hornbeam.toml", dir);
}

static inline void py_down(void)
{
	char cmd[PATH_MAX + 16];
	hb_config_free(&cfg);
	Py_FinalizeEx();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static inline void write_toml(const char *text)
{
	FILE *f = fopen(toml, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* Loads `--config <toml>` followed by args (NULL-terminated, may be NULL) and env. */
static inline int load_toml(const char *const *args, const char *const *env)
{
	const char *argv[MAXARGS] = {"--config", toml};
	for (int i = 0; args && args[i]; i++)
		argv[i + 2] = args[i];
	return load_with(argv, env, hb_py_toml_load);
}

/* "<toml>:<line>: <rest>" must appear in err. */
static inline void assert_file_err(int rc, int line, const char *rest)
{
	char want[PATH_MAX + 600];
	snprintf(want, sizeof want, "%s:%d: %s", toml, line, rest);
	cr_assert_eq(rc, -EINVAL, "rc %d", rc);
	cr_assert(strstr(err, want), "error '%s' lacks '%s'", err, want);
}

#endif
