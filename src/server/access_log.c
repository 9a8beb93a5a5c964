#include "server/access_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "server/exchange.h"
#include "server/io.h"

typedef struct out {
	char *p;
	size_t len, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
	if (o->len + n > o->cap)
		n = o->cap - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void putf(out_t *o, const char *fmt, long long v)
{
	char b[32];
	int n = snprintf(b, sizeof(b), fmt, v);
	put(o, b, (size_t)n);
}

static void put_header(out_t *o, const hb_request_t *r, const char *name, size_t nlen)
{
	for (uint32_t i = 0; i < r->nheaders; i++)
		if (r->headers[i].name_len == nlen &&
		    strncasecmp(r->headers[i].name, name, nlen) == 0) {
			put(o, r->headers[i].value, r->headers[i].value_len);
			return;
		}
	put(o, "-", 1);
}

static void put_time(out_t *o)
{
	char b[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	size_t n = strftime(b, sizeof(b), "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
	put(o, b, n);
}

static void put_atom(out_t *o, const char *a, size_t alen, const hb_stream_t *s, uint64_t bytes,
		     uint64_t dur_ns)
{
	const hb_request_t *r = s->req;
	char c = alen == 1 ? a[0] : 0;

	if (alen > 3 && a[0] == '{' && a[alen - 1] == 'i' && a[alen - 2] == '}') {
		put_header(o, r, a + 1, alen - 3);
		return;
	}
	switch (c) {
	case 'h':
		put(o, r->remote_addr[0] ? r->remote_addr : "-",
		    r->remote_addr[0] ? strlen(r->remote_addr) : 1);
		break;
	case 'l':
	case 'u':
		put(o, "-", 1);
		break;
	case 't':
		put_time(o);
		break;
	case 'r':
		put(o, r->method, r->method_len);
		put(o, " ", 1);
		put(o, r->target, r->target_len);
		putf(o, " HTTP/%lld", r->http_major);
		putf(o, ".%lld", r->http_minor);
		break;
	case 'm':
		put(o, r->method, r->method_len);
		break;
	case 'U':
		put(o, r->path, r->path_len);
		break;
	case 'q':
		put(o, r->query, r->query_len);
		break;
	case 'H':
		putf(o, "HTTP/%lld", r->http_major);
		putf(o, ".%lld", r->http_minor);
		break;
	case 's':
		putf(o, "%lld", s->status);
		break;
	case 'b':
		if (bytes)
			putf(o, "%lld", (long long)bytes);
		else
			put(o, "-", 1);
		break;
	case 'B':
		putf(o, "%lld", (long long)bytes);
		break;
	case 'f':
		put_header(o, r, "referer", 7);
		break;
	case 'a':
		put_header(o, r, "user-agent", 10);
		break;
	case 'T':
		putf(o, "%lld", (long long)(dur_ns / 1000000000ull));
		break;
	case 'M':
		putf(o, "%lld", (long long)(dur_ns / 1000000ull));
		break;
	case 'D':
		putf(o, "%lld", (long long)(dur_ns / 1000ull));
		break;
	case 'L': {
		char b[32];
		int n = snprintf(b, sizeof(b), "%.6f", (double)dur_ns / 1e9);
		put(o, b, (size_t)n);
		break;
	}
	case 'p':
		putf(o, "<%lld>", (long long)getpid());
		break;
	default:
		put(o, "-", 1);
		break;
	}
}

size_t hb_access_format(char *buf, size_t cap, const char *fmt, const hb_stream_t *s,
			uint64_t bytes, uint64_t now_ns)
{
	out_t o = {buf, 0, cap};
	uint64_t dur = now_ns > s->t_start_ns ? now_ns - s->t_start_ns : 0;

	for (const char *p = fmt; *p;) {
		const char *end;
		if (p[0] == '%' && p[1] == '(' && (end = strstr(p + 2, ")s")) != NULL) {
			put_atom(&o, p + 2, (size_t)(end - (p + 2)), s, bytes, dur);
			p = end + 2;
		} else {
			put(&o, p, 1);
			p++;
		}
	}
	return o.len;
}

void hb_access_log(struct hb_io *io, const struct hb_exchange *x, const hb_stream_t *s,
		   uint64_t now_ns)
{
	char line[4096];

	if (!hb_log_access_enabled())
		return;
	size_t n = hb_access_format(line, sizeof(line), io->cfg->access_log_format, s, x->resp_body,
				    now_ns);
	hb_log_access_line(line, n);
}
