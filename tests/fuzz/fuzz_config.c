/* fuzz_config.c: libFuzzer target for the configuration front (src/core/config.c): the
 * command line, HORNBEAM_* variables and the values of the TOML file, without Python.
 *
 * Input: three sections split by a line holding only "%%": argv (one argument per line, after
 * the program name), the environment (one NAME=VALUE per line) and a TOML-ish file that a fake
 * loader (what src/python/toml_load.c does with tomllib's result) turns into set() calls:
 * `key = value` per line, value a "string", true/false, an integer, a float, a [list, ...] of
 * those (nested up to 3 deep), anything else a value of another TOML type ("datetime").
 * The loader runs when argv or the environment names a config file (--config X,
 * HORNBEAM_CONFIG=X). The error buffer is sized by the first byte (0-255), heap-allocated to
 * the byte so an overrun is caught.
 * Invariants: the result is OK, EXIT or a negative errno; an error leaves a NUL-terminated
 * message (when there is room); a loaded config holds an app, at least one bind with a valid
 * family, at least one worker and CPU; hb_config_free releases it all (LeakSanitizer).
 * Build: scripts/fuzz.sh (CMake -DHB_FUZZ=ON); seeds in tests/fuzz/corpus/fuzz_config/.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

#define MAX_LINES 64
#define MAX_ITEMS 16

/* The file section, as the fake loader reads it (no globals in the library; one here, because
 * the loader callback has no user pointer). */
static char *toml_text;

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

static void free_tval(hb_tval_t *v)
{
	for (size_t i = 0; v->kind == HB_TV_LIST && i < v->nitems; i++)
		free_tval(&v->items[i]);
	if (v->kind == HB_TV_LIST)
		free(v->items);
}

/* Parses the text at *p (NUL-terminated, modified in place) into v; advances *p. */
static void parse_value(char **p, hb_tval_t *v, int depth)
{
	char *s = *p, *end;
	memset(v, 0, sizeof *v);
	while (*s == ' ')
		s++;
	if (*s == '"') {
		char *q = strchr(s + 1, '"');
		v->kind = HB_TV_STR;
		v->str = s + 1;
		if (q) {
			*q = '\0';
			*p = q + 1;
		} else {
			*p = s + strlen(s);
		}
		return;
	}
	if (*s == '[' && depth < 3) {
		v->kind = HB_TV_LIST;
		v->items = calloc(MAX_ITEMS, sizeof *v->items);
		if (!v->items)
			abort();
		s++;
		while (*s && *s != ']' && v->nitems < MAX_ITEMS) {
			parse_value(&s, &v->items[v->nitems++], depth + 1);
			while (*s == ' ' || *s == ',')
				s++;
		}
		*p = *s == ']' ? s + 1 : s;
		return;
	}
	size_t n = strcspn(s, ",]");
	char save = s[n];
	s[n] = '\0';
	char *word = trim(s);
	*p = s + n;
	if (strcmp(word, "true") == 0 || strcmp(word, "false") == 0) {
		v->kind = HB_TV_BOOL;
		v->i = word[0] == 't';
	} else if (*word && (v->i = strtoll(word, &end, 0), *end == '\0')) {
		v->kind = HB_TV_INT;
	} else if (*word && (v->f = strtod(word, &end), *end == '\0')) {
		v->kind = HB_TV_FLOAT;
	} else {
		v->kind = HB_TV_OTHER;
		v->str = "datetime";
	}
	s[n] = save;
	if (save == '\0')
		*p = s + n;
}

static int fake_loader(const char *path, hb_config_t *cfg, hb_config_set_fn set, char *err,
		       size_t errlen)
{
	char *text = strdup(toml_text ? toml_text : ""), *line, *next;
	int rc = 0, lineno = 0;
	if (!text)
		abort();
	for (line = text; rc == 0 && line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		char *eq = strchr(line, '=');
		if (!eq || line[0] == '#')
			continue;
		*eq = '\0';
		char *key = trim(line), *rest = eq + 1;
		hb_tval_t v;
		parse_value(&rest, &v, 0);
		rc = set(cfg, key, &v, path, lineno % 7 ? lineno : 0, err, errlen);
		free_tval(&v);
		if (rc < 0)
			CHECK(errlen == 0 || memchr(err, '\0', errlen));
	}
	free(text);
	return rc;
}

/* Splits s (NUL-terminated, modified) at '\n' into out[0..max), returns the count. */
static int split_lines(char *s, char **out, int max)
{
	int n = 0;
	while (s && *s && n < max) {
		out[n++] = s;
		s = strchr(s, '\n');
		if (s)
			*s++ = '\0';
	}
	return n;
}

static void check_loaded(const hb_config_t *cfg)
{
	CHECK(cfg->app && cfg->nbinds >= 1 && cfg->binds);
	for (size_t i = 0; i < cfg->nbinds; i++) {
		int f = cfg->binds[i].family;
		CHECK(f == AF_INET || f == AF_INET6 || f == AF_UNIX || f == AF_UNSPEC);
		CHECK(memchr(cfg->binds[i].spec, '\0', sizeof cfg->binds[i].spec));
		CHECK(memchr(cfg->binds[i].host, '\0', sizeof cfg->binds[i].host));
		CHECK(memchr(cfg->binds[i].path, '\0', sizeof cfg->binds[i].path));
	}
	CHECK(cfg->workers >= 1 && cfg->ncpus >= 1 && cfg->cpus);
	CHECK(cfg->threads >= 1);
	for (size_t i = 0; i < cfg->npythonpath; i++)
		CHECK(cfg->pythonpath[i]);
	for (size_t i = 0; i < cfg->nfunctions; i++)
		CHECK(cfg->functions[i].name && cfg->functions[i].target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_LINES + 2], *envp[MAX_LINES + 1];
	hb_config_t cfg;

	if (size < 1 || size > 8192)
		return 0;
	size_t errlen = data[0];
	char *text = malloc(size), *err = malloc(errlen ? errlen : 1);
	if (!text || !err)
		abort();
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	char *env_part = strstr(text, "\n%%\n"), *file_part = NULL;
	if (env_part) {
		*env_part = '\0';
		env_part += 4;
		file_part = strstr(env_part, "\n%%\n");
		if (file_part) {
			*file_part = '\0';
			file_part += 4;
		}
	}
	argv[0] = "hornbeam-uring";
	int argc = 1 + split_lines(text, argv + 1, MAX_LINES);
	argv[argc] = NULL;
	int nenv = split_lines(env_part, envp, MAX_LINES);
	envp[nenv] = NULL;
	toml_text = file_part;

	/* --help and --version print to stdout: scripts/fuzz.sh runs with -close_fd_mask=1. */
	int rc = hb_config_load(&cfg, argc, argv, envp, fake_loader, err, errlen);
	CHECK(rc == HB_CONFIG_OK || rc == HB_CONFIG_EXIT || rc == HB_CONFIG_VERSION ||
	      rc == -EINVAL || rc == -ENOMEM);
	if (rc < 0)
		CHECK(errlen == 0 || memchr(err, '\0', errlen));
	if (rc < 0 && errlen > 1)
		CHECK(err[0] != '\0'); /* says why */
	if (rc == HB_CONFIG_OK)
		check_loaded(&cfg);
	if (rc >= 0)
		hb_config_free(&cfg);
	toml_text = NULL;
	free(text);
	free(err);
	return 0;
}
