/* toml_load.c: the TOML configuration file, parsed by CPython's tomllib.
 *
 * Runs in the main interpreter with the GIL held, before any worker exists. tomllib gives
 * values but not the lines they sit on, so the line of each key is found by scanning the text
 * (first `key =`, `"key" =`, `key.` or `[key]`); that is what error messages cite.
 * Top-level tables are handed over as HB_TV_OTHER "table", except `[functions]` and
 * `[cluster]`, whose entries go to set() as "functions.NAME" and "cluster.NAME" (emit_keys),
 * and `[tls]`, whose [[tls.certificate]] tables go as "tls.certificate.N.FIELD" (emit_tls).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/pycompat.h"
#include "python/pyhost.h"

/* The file, NUL-terminated, or NULL with err set. */
static char *read_all(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rbe");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	int oom = 0;
	if (!f) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	for (size_t got = 1; got > 0; n += got) {
		if (n + 4096 + 1 > cap) {
			char *b = realloc(buf, cap ? cap * 2 : 8192);
			if (!b) {
				oom = 1;
				break;
			}
			buf = b;
			cap = cap ? cap * 2 : 8192;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
	}
	int failed = ferror(f);
	fclose(f);
	if (failed || oom) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
			 oom ? "out of memory" : "I/O error");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* ---- where a key sits ---- */

static const char *skip_blank(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Does the line start a definition of key: `key =`, `"key" =`, `'key'.x =`, `[key]`? */
static int line_defines(const char *p, const char *key, size_t klen)
{
	p = skip_blank(p);
	if (*p == '[') {
		p = skip_blank(p + (p[1] == '[' ? 2 : 1));
	}
	char quote = (*p == '"' || *p == '\'') ? *p : 0;
	if (quote)
		p++;
	if (strncmp(p, key, klen) != 0)
		return 0;
	p += klen;
	if (quote && *p++ != quote)
		return 0;
	p = skip_blank(p);
	return *p == '=' || *p == '.' || *p == ']';
}

/* 1-based line of the key's first definition, 0 when not found. */
static int key_line(const char *text, const char *key)
{
	size_t klen = strlen(key);
	int line = 1;
	for (const char *p = text; p; line++) {
		if (line_defines(p, key, klen))
			return line;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

static int count_lines(const char *text)
{
	int n = 1;
	for (const char *p = text; (p = strchr(p, '\n')) && p[1]; p++)
		n++;
	return n;
}

/* ---- tomllib's errors ---- */

/* TOMLDecodeError: 3.14 has .msg and .lineno; before, the message ends with
 * "(at line N, column M)" or "(at end of document)". */
static void decode_error(const char *path, const char *text, char *err, size_t errlen)
{
	PyObject *exc = PyErr_GetRaisedException();
	PyObject *str = exc ? PyObject_Str(exc) : NULL;
	const char *msg = str ? PyUnicode_AsUTF8(str) : NULL;
	int line = 0, col = 0;
	if (!msg) {
		PyErr_Clear();
		msg = "unknown error";
	}
	const char *at = strstr(msg, " (at line ");
	const char *end = strstr(msg, " (at end of document)");
	int mlen = (int)strlen(msg);
	if (at && sscanf(at, " (at line %d, column %d)", &line, &col) >= 1)
		mlen = (int)(at - msg);
	else if (end) {
		line = count_lines(text);
		mlen = (int)(end - msg);
	}
	if (line > 0)
		snprintf(err, errlen, "%s:%d: invalid TOML: %.*s", path, line, mlen, msg);
	else
		snprintf(err, errlen, "%s: invalid TOML: %.*s", path, mlen, msg);
	Py_XDECREF(str);
	Py_XDECREF(exc);
}

/* ---- Python values to hb_tval_t ---- */

static void free_tval(hb_tval_t *v)
{
	for (size_t i = 0; v->kind == HB_TV_LIST && i < v->nitems; i++)
		free_tval(&v->items[i]);
	if (v->kind == HB_TV_LIST)
		free(v->items);
	v->items = NULL;
	v->nitems = 0;
}

/* "datetime.date" -> "date"; a dict is a TOML table. */
static const char *type_name(PyObject *o)
{
	if (PyDict_Check(o))
		return "table";
	const char *name = Py_TYPE(o)->tp_name;
	const char *dot = strrchr(name, '.');
	return dot ? dot + 1 : name;
}

static int convert(PyObject *o, hb_tval_t *v);

static int convert_list(PyObject *o, hb_tval_t *v)
{
	Py_ssize_t n = PyList_GET_SIZE(o);
	v->kind = HB_TV_LIST;
	v->items = calloc(n ? (size_t)n : 1, sizeof *v->items);
	if (!v->items)
		return -1;
	for (Py_ssize_t i = 0; i < n; i++) {
		v->nitems = (size_t)i + 1;
		if (convert(PyList_GET_ITEM(o, i), &v->items[i]) < 0)
			return -1;
	}
	v->nitems = (size_t)n;
	return 0;
}

/* Borrowed strings point into o, which the parsed document keeps alive. Returns -1 only when
 * out of memory; values config cannot use become HB_TV_OTHER with a type name. */
static int convert(PyObject *o, hb_tval_t *v)
{
	int overflow = 0;
	Py_ssize_t len;
	memset(v, 0, sizeof *v);
	if (PyBool_Check(o)) {
		v->kind = HB_TV_BOOL;
		v->i = o == Py_True;
	} else if (PyLong_Check(o)) {
		v->kind = HB_TV_INT;
		v->i = PyLong_AsLongLongAndOverflow(o, &overflow);
		if (overflow) {
			v->kind = HB_TV_OTHER;
			v->str = "integer out of range";
		}
	} else if (PyFloat_Check(o)) {
		v->kind = HB_TV_FLOAT;
		v->f = PyFloat_AS_DOUBLE(o);
	} else if (PyUnicode_Check(o)) {
		v->kind = HB_TV_STR;
		v->str = PyUnicode_AsUTF8AndSize(o, &len);
		if (!v->str || strlen(v->str) != (size_t)len) {
			PyErr_Clear();
			v->kind = HB_TV_OTHER;
			v->str = "string holding a NUL or a lone surrogate";
		}
	} else if (PyList_Check(o)) {
		return convert_list(o, v);
	} else {
		v->kind = HB_TV_OTHER;
		v->str = type_name(o);
	}
	return 0;
}

/* ---- the walk ---- */

/* What every step of the walk hands on: where the values come from and where they go. */
typedef struct walk {
	const char *path, *text;
	hb_config_t *cfg;
	hb_config_set_fn set;
	char *err;
	size_t errlen;
} walk_t;

/* The key as UTF-8, or NULL with err set. */
static const char *key_utf8(const walk_t *w, PyObject *k)
{
	const char *key = PyUnicode_AsUTF8(k);
	if (!key) {
		PyErr_Clear();
		snprintf(w->err, w->errlen, "%s: a key is not valid UTF-8", w->path);
	}
	return key;
}

/* Converts o and hands it to set() as name; line is what messages cite. */
static int emit_value(const walk_t *w, const char *name, PyObject *o, int line)
{
	hb_tval_t v;
	int rc = convert(o, &v);
	if (rc == 0) {
		rc = w->set(w->cfg, name, &v, w->path, line, w->err, w->errlen);
	} else {
		snprintf(w->err, w->errlen, "%s: out of memory", w->path);
		rc = -ENOMEM;
	}
	free_tval(&v);
	return rc;
}

/* Every key of table to set() as "PREFIX.key" ([cluster] enabled -> "cluster.enabled",
 * [functions] name -> "functions.name", which config.c keeps in cfg->functions). Messages cite
 * line, or each key's own line when line is 0. */
static int emit_keys(const walk_t *w, PyObject *table, const char *prefix, int line)
{
	PyObject *k, *o;
	Py_ssize_t pos = 0;
	while (PyDict_Next(table, &pos, &k, &o)) {
		char name[1100];
		const char *key = key_utf8(w, k);
		if (!key)
			return -EINVAL;
		snprintf(name, sizeof name, "%s.%s", prefix, key);
		int rc = emit_value(w, name, o, line ? line : key_line(w->text, key));
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The line of the n-th (0-based) "[[tls.certificate]]" header, for messages. */
static int cert_table_line(const char *text, Py_ssize_t n)
{
	int line = 1;
	for (const char *p = text; p && *p; line++) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "[[tls.certificate]]", 19) == 0 && n-- == 0)
			return line;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

/* [tls]: only [[tls.certificate]] tables, each field going to set() as
 * "tls.certificate.N.FIELD" (config.c keeps them in cfg->ssl_certs). */
static int emit_tls(const walk_t *w, PyObject *table)
{
	PyObject *certs = PyDict_GetItemString(table, "certificate");
	if (PyDict_Size(table) != 1 || !certs || !PyList_Check(certs)) {
		snprintf(w->err, w->errlen, "%s:%d: [tls] holds only [[tls.certificate]] tables",
			 w->path, key_line(w->text, "tls"));
		return -EINVAL;
	}
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(certs); i++) {
		PyObject *t = PyList_GET_ITEM(certs, i);
		int line = cert_table_line(w->text, i);
		char prefix[64];
		if (!PyDict_Check(t) || PyDict_Size(t) == 0) {
			snprintf(w->err, w->errlen,
				 "%s:%d: [[tls.certificate]] number %zd is empty", w->path, line,
				 i + 1);
			return -EINVAL;
		}
		snprintf(prefix, sizeof prefix, "tls.certificate.%zd", i);
		int rc = emit_keys(w, t, prefix, line);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The top level: [functions], [cluster] and [tls] are walked into; any other value, tables
 * included (as HB_TV_OTHER "table"), goes to set() under its own key. */
static int emit_table(const walk_t *w, PyObject *table)
{
	PyObject *k, *o;
	Py_ssize_t pos = 0;
	while (PyDict_Next(table, &pos, &k, &o)) {
		const char *key = key_utf8(w, k);
		if (!key)
			return -EINVAL;
		int rc, section = PyDict_Check(o);
		if (section && (strcmp(key, "functions") == 0 || strcmp(key, "cluster") == 0))
			rc = emit_keys(w, o, key, 0);
		else if (section && strcmp(key, "tls") == 0)
			rc = emit_tls(w, o);
		else
			rc = emit_value(w, key, o, key_line(w->text, key));
		if (rc < 0)
			return rc;
	}
	return 0;
}

static PyObject *parse(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
	PyObject *doc = NULL, *str = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "strict");
	PyObject *mod = str ? PyImport_ImportModule("tomllib") : NULL;
	if (!str) {
		PyErr_Clear();
		snprintf(err, errlen, "%s: not UTF-8 text", path);
	} else if (!mod) {
		PyErr_Clear();
		snprintf(err, errlen, "%s: cannot import tomllib (Python >= 3.11 needed)", path);
	} else {
		doc = PyObject_CallMethod(mod, "loads", "O", str);
		if (!doc)
			decode_error(path, text, err, errlen);
	}
	Py_XDECREF(mod);
	Py_XDECREF(str);
	return doc;
}

int hb_py_toml_load(const char *path, hb_config_t *cfg, hb_config_set_fn set, char *err,
		    size_t errlen)
{
	size_t len = 0;
	char *text = read_all(path, &len, err, errlen);
	if (!text)
		return -EINVAL;
	PyObject *doc = parse(path, text, len, err, errlen);
	int rc = -EINVAL;
	if (doc && PyDict_Check(doc)) {
		walk_t w = {.path = path,
			    .text = text,
			    .cfg = cfg,
			    .set = set,
			    .err = err,
			    .errlen = errlen};
		rc = emit_table(&w, doc);
	}
	Py_XDECREF(doc);
	free(text);
	return rc;
}
