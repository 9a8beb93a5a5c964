/* config_cli.c: the command line: argv into options (aliases, --host/--port, "did you mean"),
 * and the two texts it prints: --help and --print-config.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_priv.h"
#include "core/cpu.h"

#define NKEYS nkeys

/* Spellings gunicorn and uvicorn users type, each the same as one key. --host/--port are
 * handled apart: together they make one bind. */
static const struct alias {
	const char *option; /* without the dashes */
	const char *key;
	const char *prefix; /* put before the value: --uds P is --bind unix:P */
} aliases[] = {
	{"keep-alive", "keepalive", NULL},		 /* gunicorn */
	{"timeout-keep-alive", "keepalive", NULL},	 /* uvicorn */
	{"access-logfile", "access_log", NULL},		 /* gunicorn */
	{"uds", "bind", "unix:"},			 /* uvicorn */
	{"fd", "bind", "fd://"},			 /* uvicorn */
	{"pid", "pidfile", NULL},			 /* gunicorn */
	{"access-logformat", "access_log_format", NULL}, /* gunicorn */
	{"error-logfile", "error_log", NULL},		 /* gunicorn */
	{"reload-dir", "reload_dirs", NULL},		 /* uvicorn */
};
#define NALIASES (sizeof aliases / sizeof aliases[0])

/* Options that are not keys, for "did you mean". */
static const char *const actions[] = {"help",	      "version", "check-config",
				      "print-config", "host",	 "port"};

/* ---- the command line ---- */

static const struct key *option_key(const char *name, size_t len, bool *negated)
{
	char d[64];
	*negated = false;
	if (len > 3 && strncmp(name, "no-", 3) == 0) {
		const struct key *k = option_key(name + 3, len - 3, negated);
		if (k && (k->kind == K_BOOL || (k->flags & F_OFF))) {
			*negated = true;
			return k;
		}
	}
	for (size_t i = 0; i < NKEYS; i++) {
		dashed(keys[i].name, d, sizeof d);
		if (strlen(d) == len && strncmp(d, name, len) == 0)
			return &keys[i];
	}
	for (size_t i = 0; i < NALIASES; i++)
		if (strlen(aliases[i].option) == len && strncmp(aliases[i].option, name, len) == 0)
			return key_named(aliases[i].key);
	return NULL;
}

/* The value prefix of an alias option ("unix:" for --uds), NULL for the others. */
static const char *alias_prefix(const char *name, size_t len)
{
	for (size_t i = 0; i < NALIASES; i++)
		if (strlen(aliases[i].option) == len && strncmp(aliases[i].option, name, len) == 0)
			return aliases[i].prefix;
	return NULL;
}

/* a->val = prefix + a->val, owned by a (freed with the args). */
static int prefixed(struct arg *a, const char *prefix, char *err, size_t errlen)
{
	size_t n = strlen(prefix) + strlen(a->val) + 1;
	if (!(a->owned = malloc(n)))
		return plain_fail(err, errlen, "out of memory"), -ENOMEM;
	snprintf(a->owned, n, "%s%s", prefix, a->val);
	a->val = a->owned;
	return 0;
}

/* The option spelling (a key, an alias or an action) closest to a misspelled one. */
static const char *closest_option(const char *name, char *buf, size_t size)
{
	const char *near = NULL;
	int bestd = strlen(name) < 4 ? 1 : 2;
	for (size_t i = 0; i < NALIASES + sizeof actions / sizeof actions[0]; i++) {
		const char *o = i < NALIASES ? aliases[i].option : actions[i - NALIASES];
		int d = distance(name, o);
		if (d <= bestd) {
			near = o;
			bestd = d - 1;
		}
	}
	if (near)
		snprintf(buf, size, "%s", near);
	return near;
}

static int unknown_option(const char *opt, size_t len, char *err, size_t errlen)
{
	char name[64], d[64];
	snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), opt);
	const char *near = NULL;
	for (char *p = name; *p; p++)
		*p = *p == '-' ? '_' : *p;
	if ((near = closest_key(name, false)))
		dashed(near, d, sizeof d);
	dashed(name, name, sizeof name);
	if (!near)
		near = closest_option(name, d, sizeof d);
	if (!near)
		return plain_fail(err, errlen, "unknown option '--%.*s'", (int)len, opt);
	return plain_fail(err, errlen, "unknown option '--%.*s' (did you mean '--%s'?)", (int)len,
			  opt, d);
}

/* A following argument that is itself an option means the value was forgotten. */
static bool looks_like_option(const char *s)
{
	return s[0] == '-' && s[1] == '-' && s[2];
}

static int take_value(int argc, char **argv, int *i, const struct key *k, const char **val,
		      char *err, size_t errlen)
{
	char d[64];
	if (*i + 1 >= argc || looks_like_option(argv[*i + 1])) {
		dashed(k->name, d, sizeof d);
		return plain_fail(err, errlen, "--%s: missing value", d);
	}
	*val = argv[++*i];
	return 0;
}

/* "--name", "--name=value", "--name value", "--no-flag". */
static bool is_option(const char *name, size_t len, const char *option)
{
	return strlen(option) == len && strncmp(name, option, len) == 0;
}

/* --host H / --port P (uvicorn's spelling), kept for one bind made after parsing. */
static int host_or_port(int argc, char **argv, int *i, const char *eq, struct hostport *hp,
			char *err, size_t errlen)
{
	bool host = argv[*i][2] == 'h';
	const char *v = eq ? eq + 1 : NULL;
	if (!v && (*i + 1 >= argc || looks_like_option(argv[*i + 1])))
		return plain_fail(err, errlen, "--%s: missing value", host ? "host" : "port");
	if (!v)
		v = argv[++*i];
	*(host ? &hp->host : &hp->port) = v;
	return 0;
}

static int long_option(int argc, char **argv, int *i, struct arg *a, enum action *act,
		       struct hostport *hp, char *err, size_t errlen)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	bool negated;
	if (is_option(name, len, "help"))
		return *act = ACT_HELP, 0;
	if (is_option(name, len, "version"))
		return *act = ACT_VERSION, 0;
	if (is_option(name, len, "check-config") && !eq)
		return *act = *act == ACT_RUN ? ACT_CHECK : *act, 0;
	if (is_option(name, len, "print-config") && !eq)
		return *act = ACT_PRINT, 0;
	if (is_option(name, len, "host") || is_option(name, len, "port"))
		return host_or_port(argc, argv, i, eq, hp, err, errlen);
	const struct key *k = option_key(name, len, &negated);
	if (!k)
		return unknown_option(name, len, err, errlen);
	a->k = k;
	if (negated && eq)
		return plain_fail(err, errlen, "--%.*s: takes no value", (int)len, name);
	if (k->kind == K_BOOL) {
		a->val = eq ? eq + 1 : negated ? "false" : "true";
		return 0;
	}
	if (negated) { /* F_OFF: the empty value is off */
		a->val = "";
		return 0;
	}
	const char *prefix = alias_prefix(name, len);
	int rc = 0;
	if (eq)
		a->val = eq + 1;
	else
		rc = take_value(argc, argv, i, k, &a->val, err, errlen);
	return rc == 0 && prefix ? prefixed(a, prefix, err, errlen) : rc;
}

/* "-b ADDR", "-bADDR" and friends, for the options gunicorn users type by hand. */
static int short_option(int argc, char **argv, int *i, struct arg *a, enum action *act, char *err,
			size_t errlen)
{
	char o = argv[*i][1];
	if (o == 'h' && !argv[*i][2])
		return *act = ACT_HELP, 0;
	for (size_t j = 0; j < NKEYS; j++) {
		if (keys[j].shortopt != o || !o)
			continue;
		a->k = &keys[j];
		if (argv[*i][2]) {
			a->val = argv[*i] + 2;
			return 0;
		}
		return take_value(argc, argv, i, a->k, &a->val, err, errlen);
	}
	return plain_fail(err, errlen, "unknown option '%s'", argv[*i]);
}

static int positional(const char *s, struct arg *args, int n, char *err, size_t errlen)
{
	for (int j = 0; j < n; j++)
		if (args[j].positional)
			return plain_fail(err, errlen,
					  "unexpected argument '%s' (the application is '%s')", s,
					  args[j].val);
	args[n] = (struct arg){key_named("app"), s, true};
	return 0;
}

/* Checks the syntax of argv into args (values are validated later, in precedence order).
 * Stops at --help or --version. */
/* --host and --port make one bind (defaults 127.0.0.1 and 8000, as uvicorn), which a --bind
 * would contradict. args has room: --host/--port took argv slots without taking args. */
static int add_hostport(struct hostport *hp, struct arg *args, int *n, char *err, size_t errlen)
{
	const struct key *bind = key_named("bind");
	if (!hp->host && !hp->port)
		return 0;
	for (int j = 0; j < *n; j++)
		if (args[j].k == bind)
			return plain_fail(err, errlen,
					  "--host/--port: not with --bind (give one "
					  "or the other)");
	const char *host = hp->host ? hp->host : "127.0.0.1";
	bool v6 = strchr(host, ':') && host[0] != '[';
	snprintf(hp->spec, sizeof hp->spec, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
		 hp->port ? hp->port : "8000");
	args[(*n)++] = (struct arg){bind, hp->spec, false};
	return 0;
}

int parse_argv(int argc, char **argv, struct arg *args, int *nargs, enum action *act,
	       struct hostport *hp, char *err, size_t errlen)
{
	bool options = true;
	int n = 0, rc = 0;
	*act = ACT_RUN;
	for (int i = 1; i < argc && rc == 0 && *act != ACT_HELP && *act != ACT_VERSION; i++) {
		const char *s = argv[i];
		args[n] = (struct arg){NULL, NULL, false};
		if (options && strcmp(s, "--") == 0) {
			options = false;
			continue;
		}
		if (options && s[0] == '-' && s[1] == '-')
			rc = long_option(argc, argv, &i, &args[n], act, hp, err, errlen);
		else if (options && s[0] == '-' && s[1])
			rc = short_option(argc, argv, &i, &args[n], act, err, errlen);
		else
			rc = positional(s, args, n, err, errlen);
		if (rc == 0 && args[n].k)
			n++;
	}
	if (rc == 0)
		rc = add_hostport(hp, args, &n, err, errlen);
	*nargs = n;
	return rc;
}

/* ---- --print-config ---- */

/* A TOML basic string. */
static void toml_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void print_value(FILE *out, const hb_config_t *cfg, const struct key *k)
{
	const void *f = (const char *)cfg + k->off;
	bool is_int = k->kind == K_INT || k->kind == K_BOOL || k->kind == K_ENUM;
	int64_t v = 0;
	if (is_int)
		v = *(const int *)f;
	else if (k->kind == K_I64 || k->kind == K_SECS || k->kind == K_MSECS)
		v = *(const int64_t *)f;
	switch (k->kind) {
	case K_INT:
	case K_I64:
	case K_SECS:
		fprintf(out, "%lld", (long long)v);
		break;
	case K_MSECS:
		if (v % 1000)
			fprintf(out, "\"%lldms\"", (long long)v);
		else
			fprintf(out, "%lld", (long long)(v / 1000));
		break;
	case K_BOOL:
		fputs(v ? "true" : "false", out);
		break;
	case K_ENUM:
		for (const struct choice *ch = k->choices; ch->name; ch++)
			if (ch->value == v) {
				toml_str(out, ch->name);
				break;
			}
		break;
	case K_STR:
	case K_APP:
		toml_str(out, *(char *const *)f);
		break;
	case K_BINDS:
	case K_PATHS:
		fputc('[', out);
		for (size_t i = 0; i < *(const size_t *)((const char *)cfg + k->count_off); i++) {
			fputs(i ? ", " : "", out);
			toml_str(out, k->kind == K_BINDS ? cfg->binds[i].spec
							 : (*(char *const *const *)f)[i]);
		}
		fputc(']', out);
		break;
	case K_STRS:
		fputc('[', out);
		for (size_t i = 0; i < *(const size_t *)((const char *)cfg + k->count_off); i++) {
			fputs(i ? ", " : "", out);
			toml_str(out, (*(char *const *const *)f)[i]);
		}
		fputc(']', out);
		break;
	}
}

void hb_config_print(const hb_config_t *cfg, FILE *out)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const char *src = cfg->sources ? cfg->sources + i * SOURCE_LEN : "";
		if (k->flags & F_NOFILE) {
			if (cfg->config_file)
				fprintf(out, "# %s: %s\n", k->name, cfg->config_file);
			continue;
		}
		fprintf(out, "%s = ", k->name);
		print_value(out, cfg, k);
		fprintf(out, "  # %s\n",
			*src			 ? src
			: k->off == OFF(workers) ? "default (CPUs)"
						 : "default");
	}
	if (cfg->nfunctions)
		fputs("\n[functions]\n", out);
	for (size_t i = 0; i < cfg->nfunctions; i++) {
		toml_str(out, cfg->functions[i].name);
		fputs(" = ", out);
		toml_str(out, cfg->functions[i].target);
		fputc('\n', out);
	}
}

/* ---- --help ---- */

/* Writes text word-wrapped at 79 columns, each line indented by 8. */
static void wrapped(FILE *out, const char *text)
{
	enum { INDENT = 8, WIDTH = 79 };
	int col = 0;
	while (*text) {
		size_t word = strcspn(text, " ");
		if (col > 0 && col + 1 + (int)word > WIDTH) {
			fputc('\n', out);
			col = 0;
		}
		if (col == 0)
			col = fprintf(out, "%*s", INDENT, "");
		else
			col += fprintf(out, " ");
		col += fprintf(out, "%.*s", (int)word, text);
		text += word;
		while (*text == ' ')
			text++;
	}
	fputc('\n', out);
}

static void usage_key(FILE *out, const struct key *k, int ncpus)
{
	char d[64], text[512];
	dashed(k->name, d, sizeof d);
	if (k->shortopt)
		fprintf(out, "  -%c, ", k->shortopt);
	else
		fputs("      ", out);
	if (k->kind == K_BOOL)
		fprintf(out, "--[no-]%s\n", d);
	else if (k->flags & F_OFF)
		fprintf(out, "--[no-]%s %s\n", d, k->metavar ? k->metavar : "VALUE");
	else
		fprintf(out, "--%s %s\n", d, k->metavar ? k->metavar : "VALUE");
	if (k->off == OFF(workers))
		snprintf(text, sizeof text, "%s [%d here]", k->help, ncpus);
	else if (k->def && *k->def)
		snprintf(text, sizeof text, "%s [default: %s]", k->help, k->def);
	else
		snprintf(text, sizeof text, "%s", k->help);
	wrapped(out, text);
}

void hb_config_usage(FILE *out)
{
	int ncpus = hb_cpu_count();
	fputs("usage: hornbeam-uring [APP] [options]\n\n"
	      "Serves the WSGI application APP (MODULE:CALLABLE; MODULE alone means\n"
	      "MODULE:application). Every option is also a key of the TOML file given by\n"
	      "--config (dashes written as underscores) and a HORNBEAM_<KEY> environment\n"
	      "variable (lists comma-separated). Precedence: options > environment > file >\n"
	      "defaults. A SECONDS value is a duration: a bare number is seconds, or give the\n"
	      "unit: 250ms, 30s, 1.5s, 2m, 1h.\n\n",
	      out);
	for (size_t i = 0; i < NKEYS; i++)
		usage_key(out, &keys[i], ncpus);
	fputs("      --host HOST\n        alias, with --port, of one --bind HOST:PORT (not with "
	      "--bind)\n        [default: 127.0.0.1]\n"
	      "      --port PORT\n        alias, with --host, of one --bind HOST:PORT (not with "
	      "--bind)\n        [default: 8000]\n",
	      out);
	for (size_t i = 0; i < NALIASES; i++) {
		char d[64];
		dashed(aliases[i].key, d, sizeof d);
		if (aliases[i].prefix)
			fprintf(out, "      --%s VALUE\n        alias of --%s %sVALUE\n",
				aliases[i].option, d, aliases[i].prefix);
		else
			fprintf(out, "      --%s\n        alias of --%s\n", aliases[i].option, d);
	}
	fputs("      --check-config\n        load and validate the configuration, print ok, "
	      "exit\n        (0; 2 with the error)\n"
	      "      --print-config\n        print the effective configuration as TOML, each "
	      "value with\n        where it came from (default, FILE:LINE, env, cli)\n"
	      "  -h, --help\n        this text\n"
	      "      --version\n        print the version and exit\n",
	      out);
}
