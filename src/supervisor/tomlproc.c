/* tomlproc.c: the TOML file parsed by tomllib in a forked helper (tomlproc.h).
 *
 * The wire format is private to this file (both ends are this binary): records of
 *   'K' str key, str file, i32 line, tval
 *   'E' i32 rc, str message          (the loader failed)
 *   'Z'                              (done)
 * where str is u32 length + bytes (length 0xffffffff: NULL) and tval is u8 kind, i64 i, f64 f,
 * str str, u32 nitems, nitems tvals.
 */
#include "supervisor/tomlproc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "python/pyhost.h"

#define NULL_LEN 0xffffffffu
#define MAX_DEPTH 8

/* ---- the child: record ---- */

typedef struct wbuf {
	char *p;
	size_t len, cap;
	int oom;
} wbuf_t;

static void put(wbuf_t *b, const void *src, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + n)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void put_str(wbuf_t *b, const char *s)
{
	uint32_t n = s ? (uint32_t)strlen(s) : NULL_LEN;
	put(b, &n, sizeof n);
	if (s)
		put(b, s, n);
}

static void put_tval(wbuf_t *b, const hb_tval_t *v)
{
	uint8_t kind = (uint8_t)v->kind;
	uint32_t n = (uint32_t)v->nitems;

	put(b, &kind, 1);
	put(b, &v->i, sizeof v->i);
	put(b, &v->f, sizeof v->f);
	put_str(b, v->str);
	put(b, &n, sizeof n);
	for (size_t i = 0; i < v->nitems; i++)
		put_tval(b, &v->items[i]);
}

/* The setter the child hands the loader: each key goes into child_buf (the child's own copy of
 * this static; the dummy config it is handed stays untouched). */
static wbuf_t *child_buf;

static int record(hb_config_t *cfg, const char *key, const hb_tval_t *v, const char *file, int line,
		  char *err, size_t errlen)
{
	int32_t l = line;

	(void)cfg, (void)err, (void)errlen;
	put(child_buf, "K", 1);
	put_str(child_buf, key);
	put_str(child_buf, file);
	put(child_buf, &l, sizeof l);
	put_tval(child_buf, v);
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static _Noreturn void child(const char *path, int fd)
{
	wbuf_t b = {0};
	hb_config_t dummy;
	char err[1024] = "";

	memset(&dummy, 0, sizeof dummy);
	child_buf = &b;
	if (hb_py_init() < 0)
		_exit(3);
	int32_t rc = hb_py_toml_load(path, &dummy, record, err, sizeof err);
	if (rc < 0) {
		put(&b, "E", 1);
		put(&b, &rc, sizeof rc);
		put_str(&b, err);
	} else {
		put(&b, "Z", 1);
	}
	_exit(b.oom || write_all(fd, b.p, b.len) < 0 ? 4 : 0);
}

/* ---- the master: replay ---- */

typedef struct rbuf {
	const char *p;
	size_t len, off;
	int bad;
} rbuf_t;

static void get(rbuf_t *r, void *dst, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = 1;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->p + r->off, n);
	r->off += n;
}

/* Returns a malloc'd copy (NULL for a NULL string or on error). */
static char *get_str(rbuf_t *r)
{
	uint32_t n;
	get(r, &n, sizeof n);
	if (r->bad || n == NULL_LEN)
		return NULL;
	if (r->len - r->off < n) {
		r->bad = 1;
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, r->p + r->off, n);
	s[n] = '\0';
	r->off += n;
	return s;
}

static void free_tval(hb_tval_t *v)
{
	for (size_t i = 0; i < v->nitems && v->items; i++)
		free_tval(&v->items[i]);
	free(v->items);
	free((char *)v->str);
	memset(v, 0, sizeof *v);
}

static void get_tval(rbuf_t *r, hb_tval_t *v, int depth)
{
	uint8_t kind;
	uint32_t n;

	memset(v, 0, sizeof *v);
	get(r, &kind, 1);
	get(r, &v->i, sizeof v->i);
	get(r, &v->f, sizeof v->f);
	v->kind = (hb_tv_kind_t)kind;
	v->str = get_str(r);
	get(r, &n, sizeof n);
	if (r->bad || n == 0)
		return;
	if (depth >= MAX_DEPTH || n > r->len - r->off) {
		r->bad = 1;
		return;
	}
	v->items = calloc(n, sizeof *v->items);
	if (!v->items) {
		r->bad = 1;
		return;
	}
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		v->nitems = i + 1;
		get_tval(r, &v->items[i], depth + 1);
	}
}

static int replay(rbuf_t *r, hb_config_t *cfg, hb_config_set_fn set, char *err, size_t errlen)
{
	for (;;) {
		char tag = 0;
		get(r, &tag, 1);
		if (r->bad)
			break;
		if (tag == 'Z')
			return 0;
		if (tag == 'E') {
			int32_t rc;
			get(r, &rc, sizeof rc);
			char *msg = get_str(r);
			snprintf(err, errlen, "%s",
				 msg ? msg : "cannot load the configuration file");
			free(msg);
			return rc < 0 ? rc : -EINVAL;
		}
		if (tag != 'K')
			break;
		char *key = get_str(r), *file = get_str(r);
		int32_t line;
		hb_tval_t v;
		get(r, &line, sizeof line);
		get_tval(r, &v, 0);
		int rc = r->bad ? 0 : set(cfg, key, &v, file, line, err, errlen);
		free_tval(&v);
		free(key);
		free(file);
		if (rc < 0)
			return rc;
	}
	snprintf(err, errlen, "the configuration loader sent a truncated answer");
	return -EINVAL;
}

/* Reads until EOF into a malloc'd buffer. */
static char *read_all(int fd, size_t *len)
{
	size_t cap = 8192;
	char *p = malloc(cap);

	*len = 0;
	while (p) {
		if (*len == cap) {
			char *np = realloc(p, cap * 2);
			if (!np)
				break;
			p = np;
			cap *= 2;
		}
		ssize_t n = read(fd, p + *len, cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? p : (free(p), NULL);
		*len += (size_t)n;
	}
	free(p);
	return NULL;
}

int hb_tomlproc_load(const char *path, hb_config_t *cfg, hb_config_set_fn set, char *err,
		     size_t errlen)
{
	int fds[2], status = 0;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return snprintf(err, errlen, "%s: pipe: %s", path, strerror(errno)), -errno;
	fflush(NULL); /* nothing buffered may be written twice */
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		return snprintf(err, errlen, "%s: fork: %s", path, strerror(e)), -e;
	}
	if (pid == 0) {
		close(fds[0]);
		child(path, fds[1]);
	}
	close(fds[1]);
	size_t len = 0;
	char *data = read_all(fds[0], &len);
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!data || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free(data);
		snprintf(err, errlen, "%s: the TOML loader process failed (%s %d)", path,
			 WIFSIGNALED(status) ? "signal" : "status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		return -ECHILD;
	}
	rbuf_t r = {data, len, 0, 0};
	int rc = replay(&r, cfg, set, err, errlen);
	free(data);
	return rc;
}
