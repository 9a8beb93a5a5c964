/* config_priv.h: what config.c (the key table, setters, sources) shares with config_cli.c
 * (argv parsing, --help, --print-config). Private to those two files; like the config itself,
 * used on the main thread only, while the configuration is built.
 */
#ifndef HB_CORE_CONFIG_PRIV_H
#define HB_CORE_CONFIG_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define OFF(f) offsetof(hb_config_t, f)

enum kind {
	K_INT,	 /* int field */
	K_I64,	 /* int64_t field */
	K_SECS,	 /* int64_t field in seconds: a duration (units accepted; bare number: seconds) */
	K_MSECS, /* int64_t field in milliseconds: a duration, written as K_SECS */
	K_BOOL,	 /* int field, 0/1 */
	K_STR,	 /* char * field, owned */
	K_APP,	 /* char * field, normalized to MODULE:CALLABLE */
	K_ENUM,	 /* int-sized enum field, one of choices */
	K_BINDS, /* hb_bind_t * field + size_t count */
	K_PATHS, /* char ** field + size_t count */
	K_STRS,	 /* char ** field + size_t count, taken as given (cluster seeds) */
};

enum {
	F_NOFILE = 1,	  /* not a TOML key (the config file itself) */
	F_EMPTY_NULL = 2, /* an empty string stores NULL (access_log: off) */
	F_PATH = 4,	  /* K_STR: a relative path from a file is taken relative to the file */
	F_JOIN = 8,	  /* K_STR: a TOML list of strings is accepted, joined with commas */
	F_NUMS = 16,	  /* F_JOIN: the list may hold numbers (metrics_buckets) */
	F_OFF = 32,	  /* K_STR with F_EMPTY_NULL: --no-NAME and `false` turn it off, `true`
			   * stores the default (access_log) */
};

struct choice {
	const char *name;
	int value;
	bool later; /* accepted by the syntax, refused until a later issue implements it */
};

struct key {
	const char *name; /* TOML key; CLI --name with '-' for '_'; env HORNBEAM_NAME */
	enum kind kind;
	size_t off;
	int64_t min, max; /* K_INT, K_I64 */
	const char *def;  /* default as CLI text; NULL: none, or derived (workers) */
	const char *metavar;
	const char *help;
	const struct choice *choices; /* K_ENUM, ended by a NULL name */
	size_t count_off;	      /* K_BINDS, K_PATHS */
	char shortopt;
	unsigned flags;
	const char *(*check)(char *s); /* K_STR: may normalize s in place; returns why or NULL */
};

enum src { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_CLI };

/* Where a value came from, for the one error message. */
struct origin {
	enum src src;
	const char *file; /* SRC_FILE */
	int line;	  /* SRC_FILE, 0 when unknown */
	bool positional;  /* SRC_CLI: the APP argument */
};

/* One setter call: the target, where the value came from, where errors go. */
struct ctx {
	hb_config_t *cfg;
	struct origin o;
	char *err;
	size_t errlen;
	bool append;	     /* lists: add to the list this source began (repeated --bind) */
	const char *basedir; /* pythonpath: relative entries are joined to it (file dir) */
};

/* One parsed command-line option, applied after the file and the environment. */
struct arg {
	const struct key *k;
	const char *val;
	bool positional;
	char *owned; /* val when it was built (an alias's prefix added); freed with the args */
};

/* CHECK and PRINT load everything as RUN does, then print instead of serving. */
enum action { ACT_RUN, ACT_HELP, ACT_VERSION, ACT_CHECK, ACT_PRINT };

/* --host/--port as given, made into one bind after parsing. */
struct hostport {
	const char *host, *port;
	char spec[300];
};

#define SOURCE_LEN 160 /* one key's entry in cfg->sources */

/* The key table (config.c) and its length. */
extern const struct key keys[];
extern const size_t nkeys;

/* config.c */
const struct key *key_named(const char *name);
void dashed(const char *name, char *out, size_t size);
const char *closest_key(const char *name, bool file);
int distance(const char *a, const char *b);
__attribute__((format(printf, 3, 4))) int plain_fail(char *err, size_t errlen, const char *fmt,
						     ...);

/* config_cli.c */
/* Checks the syntax of argv into args (values are validated later, in precedence order).
 * Stops at --help or --version. */
int parse_argv(int argc, char **argv, struct arg *args, int *nargs, enum action *act,
	       struct hostport *hp, char *err, size_t errlen);

#endif
