/* toml_load.c: the TOML configuration file, parsed by CPython's tomllib.
 *
 * Runs in the main interpreter with the GIL held, before any worker exists. tomllib gives
 * values but not the lines they sit on, so the line of each key is found by scanning the text
 * (first `key =`, `"key" =`, `key.` or `[key]`); that is what error messages cite.
 * Top-level tables are handed over as HB_TV_OTHER "table", except `[functions]`, whose entries
 * go to set() as "functions.NAME" (emit_functions); when `[cluster]` arrives, emit_table() is
 * the place to walk into it with a "cluster." prefix the same way.
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

/* The [functions] table: each `name = "module:function"` goes to set() as "functions.name"
 * (config.c keeps them in cfg->functions). */
static int emit_functions(PyObject *table, const char *path, const char *text, hb_config_t *cfg,
			  hb_config_set_fn set, char *err, size_t errlen)
{
	PyObject *k, *o;
	Py_ssize_t pos = 0;
	while (PyDict_Next(table, &pos, &k, &o)) {
		char name[1100];
		hb_tval_t v;
		const char *key = PyUnicode_AsUTF8(k);
		if (!key) {
			PyErr_Clear();
			snprintf(err, errlen, "%s: a key is not valid UTF-8", path);
			return -EINVAL;
		}
		snprintf(name, sizeof name, "functions.%s", key);
		int rc = convert(o, &v);
		if (rc == 0)
			rc = set(cfg, name, &v, path, key_line(text, key), err, errlen);
		free_tval(&v);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A table whose keys go to set() as "PREFIX.key" ([cluster] enabled -> "cluster.enabled"). */
static int emit_prefixed(PyObject *table, const char *prefix, const char *path, const char *text,
			 hb_config_t *cfg, hb_config_set_fn set, char *err, size_t errlen)
{
	PyObject *k, *o;
	Py_ssize_t pos = 0;
	while (PyDict_Next(table, &pos, &k, &o)) {
		hb_tval_t v;
		char name[128];
		const char *key = PyUnicode_AsUTF8(k);
		if (!key) {
			PyErr_Clear();
			snprintf(err, errlen, "%s: a key is not valid UTF-8", path);
			return -EINVAL;
		}
		snprintf(name, sizeof name, "%s%s", prefix, key);
		int rc = convert(o, &v);
		if (rc == 0) {
			rc = set(cfg, name, &v, path, key_line(text, key), err, errlen);
		} else {
			snprintf(err, errlen, "%s: out of memory", path);
			rc = -ENOMEM;
		}
		free_tval(&v);
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
static int emit_tls(PyObject *table, const char *path, const char *text, hb_config_t *cfg,
		    hb_config_set_fn set, char *err, size_t errlen)
{
	PyObject *certs = PyDict_GetItemString(table, "certificate");
	if (PyDict_Size(table) != 1 || !certs || !PyList_Check(certs)) {
		snprintf(err, errlen, "%s:%d: [tls] holds only [[tls.certificate]] tables", path,
			 key_line(text, "tls"));
		return -EINVAL;
	}
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(certs); i++) {
		PyObject *t = PyList_GET_ITEM(certs, i), *k, *o;
		Py_ssize_t pos = 0;
		int line = cert_table_line(text, i);
		if (!PyDict_Check(t) || PyDict_Size(t) == 0) {
			snprintf(err, errlen, "%s:%d: [[tls.certificate]] number %zd is empty",
				 path, line, i + 1);
			return -EINVAL;
		}
		while (PyDict_Next(t, &pos, &k, &o)) {
			char name[256];
			hb_tval_t v;
			const char *key = PyUnicode_AsUTF8(k);
			if (!key) {
				PyErr_Clear();
				snprintf(err, errlen, "%s: a key is not valid UTF-8", path);
				return -EINVAL;
			}
			snprintf(name, sizeof name, "tls.certificate.%zd.%s", i, key);
			int rc = convert(o, &v);
			if (rc == 0)
				rc = set(cfg, name, &v, path, line, err, errlen);
			free_tval(&v);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static int emit_table(PyObject *table, const char *path, const char *text, hb_config_t *cfg,
		      hb_config_set_fn set, char *err, size_t errlen)
{
	PyObject *k, *o;
	Py_ssize_t pos = 0;
	while (PyDict_Next(table, &pos, &k, &o)) {
		hb_tval_t v;
		const char *key = PyUnicode_AsUTF8(k);
		if (!key) {
			PyErr_Clear();
			snprintf(err, errlen, "%s: a key is not valid UTF-8", path);
			return -EINVAL;
		}
		if (strcmp(key, "functions") == 0 && PyDict_Check(o)) {
			int rc = emit_functions(o, path, text, cfg, set, err, errlen);
			if (rc < 0)
				return rc;
			continue;
		}
		if (strcmp(key, "cluster") == 0 && PyDict_Check(o)) {
			int rc = emit_prefixed(o, "cluster.", path, text, cfg, set, err, errlen);
			if (rc < 0)
				return rc;
			continue;
		}
		if (strcmp(key, "tls") == 0 && PyDict_Check(o)) {
			int rc = emit_tls(o, path, text, cfg, set, err, errlen);
			if (rc < 0)
				return rc;
			continue;
		}
		int rc = convert(o, &v);
		if (rc == 0) {
			rc = set(cfg, key, &v, path, key_line(text, key), err, errlen);
		} else {
			snprintf(err, errlen, "%s: out of memory", path);
			rc = -ENOMEM;
		}
		free_tval(&v);
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
	if (doc && PyDict_Check(doc))
		rc = emit_table(doc, path, text, cfg, set, err, errlen);
	Py_XDECREF(doc);
	free(text);
	return rc;
}
