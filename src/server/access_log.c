/* access_log.c: the compiled format, the formatter, and the io thread's line buffer. */
#include "server/access_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base64.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/exchange.h"
#include "server/io.h"

typedef enum { OP_LIT, OP_ATOM, OP_HDR_IN, OP_HDR_OUT, OP_ENV } op_kind_t;

typedef struct op {
	op_kind_t kind;
	char atom;     /* OP_ATOM */
	const char *s; /* OP_LIT: text; OP_HDR_IN: name; OP_ENV: value (NULL: unset) */
	size_t len;
	int idx; /* OP_HDR_OUT: index in the kept values */
} op_t;

struct hb_access_fmt {
	int json;
	op_t *ops;
	size_t nops;
	char *text;	  /* a copy of the format the ops point into */
	char **out_names; /* %({name}o)s names, lower case */
	size_t *out_lens;
	int nout;
	char **env_vals; /* owned copies of %({name}e)s values */
	int nenv;
};

/* ---- compiling ---- */

static int add_op(hb_access_fmt_t *f, op_t op)
{
	op_t *n = realloc(f->ops, (f->nops + 1) * sizeof(*n));
	if (!n)
		return -1;
	f->ops = n;
	f->ops[f->nops++] = op;
	return 0;
}

static int add_out_name(hb_access_fmt_t *f, const char *name, size_t len)
{
	char **names = realloc(f->out_names, (size_t)(f->nout + 1) * sizeof(*names));
	if (!names)
		return -1;
	f->out_names = names;
	size_t *lens = realloc(f->out_lens, (size_t)(f->nout + 1) * sizeof(*lens));
	if (!lens)
		return -1;
	f->out_lens = lens;
	char *n = strndup(name, len);
	if (!n)
		return -1;
	f->out_names[f->nout] = n;
	f->out_lens[f->nout] = len;
	return f->nout++;
}

static int add_env(hb_access_fmt_t *f, const char *name, size_t len, op_t *op)
{
	char key[256];
	snprintf(key, sizeof(key), "%.*s", (int)(len < 255 ? len : 255), name);
	const char *v = getenv(key);
	op->s = NULL;
	op->len = 0;
	if (!v)
		return 0;
	char **vals = realloc(f->env_vals, (size_t)(f->nenv + 1) * sizeof(*vals));
	if (!vals)
		return -1;
	f->env_vals = vals;
	if (!(vals[f->nenv] = strdup(v)))
		return -1;
	op->s = vals[f->nenv++];
	op->len = strlen(op->s);
	return 0;
}

/* One %(...)s atom: a letter, or {name} followed by i, o or e. */
static int compile_atom(hb_access_fmt_t *f, const char *a, size_t alen)
{
	op_t op = {.kind = OP_ATOM, .atom = alen == 1 ? a[0] : 0};

	if (alen > 3 && a[0] == '{' && a[alen - 2] == '}') {
		const char *name = a + 1;
		size_t nlen = alen - 3;
		switch (a[alen - 1]) {
		case 'i':
			op = (op_t){.kind = OP_HDR_IN, .s = name, .len = nlen};
			break;
		case 'o':
			op = (op_t){.kind = OP_HDR_OUT, .idx = add_out_name(f, name, nlen)};
			if (op.idx < 0)
				return -1;
			break;
		case 'e':
			op.kind = OP_ENV;
			if (add_env(f, name, nlen, &op) < 0)
				return -1;
			break;
		default:
			break; /* an unknown atom: '-' */
		}
	}
	return add_op(f, op);
}

hb_access_fmt_t *hb_access_compile(const char *fmt)
{
	hb_access_fmt_t *f = calloc(1, sizeof(*f));

	if (!f || !(f->text = strdup(fmt)))
		goto fail;
	if (strcmp(fmt, "json") == 0) {
		f->json = 1;
		return f;
	}
	for (const char *p = f->text; *p;) {
		const char *end;
		if (p[0] == '%' && p[1] == '(' && (end = strstr(p + 2, ")s")) != NULL) {
			if (compile_atom(f, p + 2, (size_t)(end - (p + 2))) < 0)
				goto fail;
			p = end + 2;
			continue;
		}
		const char *next = strstr(p + 1, "%(");
		size_t n = next ? (size_t)(next - p) : strlen(p);
		if (add_op(f, (op_t){.kind = OP_LIT, .s = p, .len = n}) < 0)
			goto fail;
		p += n;
	}
	return f;
fail:
	hb_access_fmt_free(f);
	return NULL;
}

void hb_access_fmt_free(hb_access_fmt_t *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->nout; i++)
		free(f->out_names[i]);
	for (int i = 0; i < f->nenv; i++)
		free(f->env_vals[i]);
	free(f->out_names);
	free(f->out_lens);
	free(f->env_vals);
	free(f->ops);
	free(f->text);
	free(f);
}

/* The header named name in resp, or NULL. */
static const hb_header_t *resp_header(const hb_response_t *resp, const char *name, size_t len)
{
	for (uint32_t h = 0; h < resp->nheaders; h++)
		if (resp->headers[h].name_len == len &&
		    strncasecmp(resp->headers[h].name, name, len) == 0)
			return &resp->headers[h];
	return NULL;
}

char **hb_access_keep(const hb_access_fmt_t *f, const hb_response_t *resp)
{
	size_t size = (size_t)f->nout * sizeof(char *);

	if (!f->nout)
		return NULL;
	for (int i = 0; i < f->nout; i++) {
		const hb_header_t *h = resp_header(resp, f->out_names[i], f->out_lens[i]);
		size += h ? h->value_len + 1 : 0;
	}
	char **vals = malloc(size);
	if (!vals)
		return NULL;
	char *p = (char *)(vals + f->nout);
	for (int i = 0; i < f->nout; i++) {
		const hb_header_t *h = resp_header(resp, f->out_names[i], f->out_lens[i]);
		vals[i] = NULL;
		if (h) {
			vals[i] = p;
			memcpy(p, h->value, h->value_len);
			p[h->value_len] = '\0';
			p += h->value_len + 1;
		}
	}
	return vals;
}

/* ---- formatting ---- */

typedef struct out {
	char *p;
	size_t len, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
	if (n > o->cap - o->len)
		n = o->cap - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void puts_or_dash(out_t *o, const char *s, size_t n)
{
	if (s && n)
		put(o, s, n);
	else
		put(o, "-", 1);
}

static void put_u64(out_t *o, uint64_t v)
{
	char b[24];
	int i = sizeof(b);
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, b + i, sizeof(b) - (size_t)i);
}

static const hb_header_t *req_header(const hb_request_t *r, const char *name, size_t nlen)
{
	for (uint32_t i = 0; r && i < r->nheaders; i++)
		if (r->headers[i].name_len == nlen &&
		    strncasecmp(r->headers[i].name, name, nlen) == 0)
			return &r->headers[i];
	return NULL;
}

static void put_header(out_t *o, const hb_request_t *r, const char *name, size_t nlen)
{
	const hb_header_t *h = req_header(r, name, nlen);
	puts_or_dash(o, h ? h->value : NULL, h ? h->value_len : 0);
}

/* The user of "Authorization: Basic base64(user:password)" into buf; its length, 0 if none. */
static size_t basic_user(const hb_request_t *r, char *buf, size_t cap)
{
	const hb_header_t *h = req_header(r, "authorization", 13);
	size_t used, n;
	if (!h || h->value_len < 7 || strncasecmp(h->value, "basic ", 6) != 0)
		return 0;
	n = hb_base64_decode(h->value + 6, h->value_len - 6, HB_BASE64_STD, (uint8_t *)buf, cap,
			     &used);
	const char *colon = memchr(buf, ':', n);
	if (!colon)
		return 0; /* no ':' (within cap): not a user:password pair */
	n = (size_t)(colon - buf);
	for (size_t i = 0; i < n; i++) {
		char c = buf[i]; /* plain char, as the log has always compared it */
		if (c < 0x20 || c == 0x7f)
			buf[i] = '?';
	}
	return n;
}

static void put_proto(out_t *o, const hb_request_t *r)
{
	char b[16];
	int n = r->http_major >= 2
			? snprintf(b, sizeof(b), "HTTP/%d", r->http_major)
			: snprintf(b, sizeof(b), "HTTP/%d.%d", r->http_major, r->http_minor);
	put(o, b, (size_t)n);
}

static void put_clf_time(out_t *o, time_t now)
{
	char b[40];
	struct tm tm;
	gmtime_r(&now, &tm);
	put(o, b, strftime(b, sizeof(b), "[%d/%b/%Y:%H:%M:%S +0000]", &tm));
}

static void put_secs(out_t *o, uint64_t ns)
{
	char b[32];
	int n = snprintf(b, sizeof(b), "%llu.%06llu", (unsigned long long)(ns / 1000000000ull),
			 (unsigned long long)(ns % 1000000000ull / 1000ull));
	put(o, b, (size_t)n);
}

static void put_atom(out_t *o, char a, const hb_access_rec_t *rec, time_t now)
{
	const hb_request_t *r = rec->req;
	char user[128];
	size_t ulen;

	switch (a) {
	case 'h':
		puts_or_dash(o, rec->remote, rec->remote ? strlen(rec->remote) : 0);
		break;
	case 'u':
		ulen = r ? basic_user(r, user, sizeof(user)) : 0;
		puts_or_dash(o, user, ulen);
		break;
	case 't':
		put_clf_time(o, now);
		break;
	case 'r':
		if (!r) {
			put(o, "-", 1);
			break;
		}
		put(o, r->method, r->method_len);
		put(o, " ", 1);
		put(o, r->target, r->target_len);
		put(o, " ", 1);
		put_proto(o, r);
		break;
	case 'm':
		puts_or_dash(o, r ? r->method : NULL, r ? r->method_len : 0);
		break;
	case 'U':
		puts_or_dash(o, r ? r->path : NULL, r ? r->path_len : 0);
		break;
	case 'q':
		if (r)
			put(o, r->query, r->query_len);
		break;
	case 'H':
		if (r)
			put_proto(o, r);
		else
			put(o, "-", 1);
		break;
	case 's':
		put_u64(o, (uint64_t)(rec->status > 0 ? rec->status : 0));
		break;
	case 'b':
		if (rec->bytes)
			put_u64(o, rec->bytes);
		else
			put(o, "-", 1);
		break;
	case 'B':
		put_u64(o, rec->bytes);
		break;
	case 'f':
		put_header(o, r, "referer", 7);
		break;
	case 'a':
		put_header(o, r, "user-agent", 10);
		break;
	case 'T':
		put_u64(o, rec->dur_ns / 1000000000ull);
		break;
	case 'M':
		put_u64(o, rec->dur_ns / 1000000ull);
		break;
	case 'D':
		put_u64(o, rec->dur_ns / 1000ull);
		break;
	case 'L':
		put_secs(o, rec->dur_ns);
		break;
	case 'p':
		put(o, "<", 1);
		put_u64(o, (uint64_t)rec->pid);
		put(o, ">", 1);
		break;
	default: /* 'l' and unknown atoms */
		put(o, "-", 1);
		break;
	}
}

/* A JSON string (quoted, escaped) or null. */
static void put_json_str(out_t *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (!s) {
		put(o, "null", 4);
		return;
	}
	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			put(o, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			put(o, e, 6);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	put(o, "\"", 1);
}

static void put_json_hdr(out_t *o, const hb_request_t *r, const char *name, size_t nlen)
{
	const hb_header_t *h = req_header(r, name, nlen);
	put_json_str(o, h ? h->value : NULL, h ? h->value_len : 0);
}

static void format_json(out_t *o, const hb_access_rec_t *rec, time_t now)
{
	const hb_request_t *r = rec->req;
	char b[64];
	struct tm tm;

	gmtime_r(&now, &tm);
	put(o, "{\"time\":\"", 9);
	put(o, b, strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm));
	put(o, "\",\"remote_addr\":", 16);
	put_json_str(o, rec->remote, rec->remote ? strlen(rec->remote) : 0);
	put(o, ",\"method\":", 10);
	put_json_str(o, r ? r->method : NULL, r ? r->method_len : 0);
	put(o, ",\"path\":", 8);
	put_json_str(o, r ? r->path : NULL, r ? r->path_len : 0);
	put(o, ",\"query\":", 9);
	put_json_str(o, r ? r->query : NULL, r ? r->query_len : 0);
	put(o, ",\"protocol\":", 12);
	if (r) {
		put(o, "\"", 1);
		put_proto(o, r);
		put(o, "\"", 1);
	} else {
		put(o, "null", 4);
	}
	put(o, ",\"status\":", 10);
	put_u64(o, (uint64_t)(rec->status > 0 ? rec->status : 0));
	put(o, ",\"bytes\":", 9);
	put_u64(o, rec->bytes);
	put(o, ",\"duration\":", 12);
	put_secs(o, rec->dur_ns);
	put(o, ",\"referer\":", 11);
	put_json_hdr(o, r, "referer", 7);
	put(o, ",\"user_agent\":", 14);
	put_json_hdr(o, r, "user-agent", 10);
	char user[128];
	size_t ulen = r ? basic_user(r, user, sizeof(user)) : 0;
	put(o, ",\"user\":", 8);
	put_json_str(o, ulen ? user : NULL, ulen);
	put(o, ",\"pid\":", 7);
	put_u64(o, (uint64_t)rec->pid);
	put(o, "}", 1);
}

size_t hb_access_format(const hb_access_fmt_t *f, char *buf, size_t cap, const hb_access_rec_t *rec,
			time_t now)
{
	out_t o = {buf, 0, cap};

	if (f->json) {
		format_json(&o, rec, now);
		return o.len;
	}
	for (size_t i = 0; i < f->nops; i++) {
		const op_t *op = &f->ops[i];
		switch (op->kind) {
		case OP_LIT:
			put(&o, op->s, op->len);
			break;
		case OP_ATOM:
			put_atom(&o, op->atom, rec, now);
			break;
		case OP_HDR_IN:
			put_header(&o, rec->req, op->s, op->len);
			break;
		case OP_HDR_OUT: {
			const char *v = rec->resp_vals ? rec->resp_vals[op->idx] : NULL;
			puts_or_dash(&o, v, v ? strlen(v) : 0);
			break;
		}
		case OP_ENV:
			puts_or_dash(&o, op->s, op->len);
			break;
		}
	}
	return o.len;
}

/* ---- the io thread's buffer ---- */

#define LINE_MAX_BYTES 8192

void hb_access_flush(hb_io_t *io)
{
	if (io->alog_len) {
		hb_log_access_write(io->alog, io->alog_len);
		io->alog_len = 0;
	}
}

static void emit(hb_io_t *io, const hb_access_rec_t *rec)
{
	const hb_access_fmt_t *f = io->srv->access_fmt;

	if (!io->alog && !(io->alog = malloc(HB_ACCESS_BUF_BYTES)))
		return;
	if (HB_ACCESS_BUF_BYTES - io->alog_len < LINE_MAX_BYTES + 1)
		hb_access_flush(io);
	size_t n = hb_access_format(f, io->alog + io->alog_len, LINE_MAX_BYTES, rec, time(NULL));
	io->alog[io->alog_len + n] = '\n';
	io->alog_len += n + 1;
}

void hb_access_log(hb_io_t *io, const hb_exchange_t *x, const hb_stream_t *s, uint64_t now_ns)
{
	if (!io->srv->access_fmt)
		return;
	hb_access_rec_t rec = {
		.req = s->req,
		.remote = s->req->remote_addr,
		.status = s->status,
		.bytes = x->resp_body,
		.dur_ns = now_ns > s->t_start_ns ? now_ns - s->t_start_ns : 0,
		.resp_vals = x->resp_log,
		.pid = io->pid,
	};
	emit(io, &rec);
}

void hb_access_log_error(hb_io_t *io, const hb_conn_t *c, int status)
{
	if (!io->srv->access_fmt)
		return;
	hb_access_rec_t rec = {.remote = c->remote, .status = status, .pid = io->pid};
	emit(io, &rec);
}
