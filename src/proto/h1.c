/* h1.c: see h1.h.
 *
 * Division of labour. llhttp tokenizes the request head (target, version, field names and
 * values, Content-Length syntax). The method is read here (any token: llhttp 8.1 knows a fixed
 * list) and the target's form is decided by h1_target.c. In front of llhttp a small line
 * scanner checks what llhttp 8.1 leaves lax unless its C file is built with LLHTTP_STRICT_MODE
 * (bare LF/CR, obs-fold, "GET  /", spaces before ':') and enforces the size limits, so the
 * answer does not depend on how llhttp.c was compiled. llhttp is paused at the end of the head; the
 * body framing (Content-Length, chunked, trailers) is decoded here, because llhttp 8.1 in its
 * default build accepts any two bytes after chunk data ("5\r\nhelloXX0\r\n") and bare-LF chunk
 * lines.
 */
#include "proto/h1.h"
#include "proto/h1_target.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LEADING_BLANK_LINES 8 /* RFC 9112 2.2: ignore at least one CRLF before a request */
#define MAX_CHUNK_EXT 4096
#define MAX_CHUNK_SIZE_DIGITS 32 /* leading zeros are legal; bound them anyway */
#define KEEP_BUF_CAP 8192	 /* larger scratch buffers are freed between requests */

typedef enum { PH_HEAD, PH_FIXED, PH_CHUNKED, PH_PAUSED, PH_DEAD } phase_t;

typedef enum {
	CK_SIZE,
	CK_SIZE_WS,
	CK_EXT,
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	TR_START,
	TR_NAME,
	TR_VALUE,
	TR_LINE_LF,
	TR_END_LF,
} chunk_state_t;

enum { SCAN_MORE = 0, SCAN_END = 1 };

/* Line framing of the head, checked byte by byte before llhttp sees the byte. */
struct head_scan {
	uint32_t line_no;     /* 0: request line */
	uint32_t line_len;    /* bytes of the current line, CRLF excluded */
	uint32_t field_bytes; /* field lines so far, with their CRLFs */
	uint32_t blank_lines; /* CRLFs before the request line */
	uint32_t spaces;      /* in the request line */
	char version[8];      /* its first bytes after the second space */
	uint32_t version_len;
	bool prev_cr, prev_sp, started;
	bool method_done; /* the method's SP was seen (its bytes never reach llhttp) */
	int err;
	const char *why;
};

/* A field as offsets into the scratch buffer (which moves when it grows). */
struct span {
	uint32_t name_off, name_len, value_off, value_len;
};

struct hb_h1_parser {
	llhttp_t ll;
	hb_h1_limits_t lim;
	hb_h1_callbacks_t cb;
	void *ud;
	phase_t phase;
	int err;
	const char *why;
	struct head_scan scan;
	/* head accumulation */
	char *buf;
	uint32_t len;
	size_t cap;
	uint32_t method_len, target_off, target_len;
	struct span *fields;
	uint32_t nfields, fields_cap;
	bool in_field;
	/* body */
	chunk_state_t ck;
	uint64_t remaining;  /* of a fixed body or of the current chunk */
	uint64_t body_total; /* chunked: sum of chunk sizes so far */
	uint64_t chunk_size;
	uint32_t ndigits, ext_len;
	uint32_t tr_fields, tr_line_len, tr_bytes;
};

static const hb_h1_limits_t default_limits = {
	.max_request_line = 8190,
	.max_fields = 100,
	.max_field_size = 8190,
	.max_header_bytes = 65536,
	.max_body = 1ull << 30,
};

static int fail(hb_h1_parser_t *p, int err, const char *why)
{
	if (!p->err) {
		p->err = err;
		p->why = why;
	}
	return err;
}

/* ---- character classes (RFC 9110 5.6.2, 5.5) ---- */

/* Field values: VCHAR, obs-text, SP, HTAB. Everything else is a CTL (NUL, CR, LF, DEL...). */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* ---- scratch buffer ---- */

static int buf_append(hb_h1_parser_t *p, const char *at, size_t n)
{
	if (n > UINT32_MAX - p->len)
		return fail(p, HB_H1_E_HEADERS_TOO_BIG, "request head too large");
	if (p->len + n > p->cap) {
		size_t cap = p->cap ? p->cap : 256;
		while (cap < p->len + n)
			cap *= 2;
		char *nb = realloc(p->buf, cap);
		if (!nb)
			return fail(p, HB_H1_E_NOMEM, "out of memory");
		p->buf = nb;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, at, n);
	p->len += (uint32_t)n;
	return 0;
}

static int push_field(hb_h1_parser_t *p)
{
	if (p->nfields == p->fields_cap) {
		uint32_t cap = p->fields_cap ? p->fields_cap * 2 : 16;
		struct span *nf = realloc(p->fields, cap * sizeof(*nf));
		if (!nf)
			return fail(p, HB_H1_E_NOMEM, "out of memory");
		p->fields = nf;
		p->fields_cap = cap;
	}
	p->fields[p->nfields++] = (struct span){.name_off = p->len, .value_off = p->len};
	return 0;
}

/* ---- llhttp callbacks: collect the head; every check that fails records why ---- */

static hb_h1_parser_t *of(llhttp_t *ll)
{
	return ll->data;
}

static int on_url(llhttp_t *ll, const char *at, size_t n)
{
	hb_h1_parser_t *p = of(ll);
	if (p->target_len == 0)
		p->target_off = p->len;
	p->target_len += (uint32_t)n;
	return buf_append(p, at, n) ? -1 : 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t n)
{
	hb_h1_parser_t *p = of(ll);
	if (!p->in_field) {
		if (push_field(p))
			return -1;
		p->in_field = true;
	}
	p->fields[p->nfields - 1].name_len += (uint32_t)n;
	return buf_append(p, at, n) ? -1 : 0;
}

/* llhttp's default build lets "Host :" and ": x" through; RFC 9112 5.1 says 400. */
static int on_header_field_complete(llhttp_t *ll)
{
	hb_h1_parser_t *p = of(ll);
	struct span *f = p->in_field ? &p->fields[p->nfields - 1] : NULL;
	if (!f || f->name_len == 0) {
		fail(p, HB_H1_E_BAD, "empty header name");
		return -1;
	}
	for (uint32_t i = 0; i < f->name_len; i++) {
		if (!hb_h1_is_tchar((unsigned char)p->buf[f->name_off + i])) {
			fail(p, HB_H1_E_BAD, "invalid character in header name");
			return -1;
		}
	}
	p->in_field = false;
	f->value_off = p->len;
	return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t n)
{
	hb_h1_parser_t *p = of(ll);
	if (p->nfields == 0)
		return -1; /* llhttp reports values only after a name */
	for (size_t i = 0; i < n; i++) {
		if (!is_value_char((unsigned char)at[i])) {
			fail(p, HB_H1_E_BAD, "control character in header value");
			return -1;
		}
	}
	p->fields[p->nfields - 1].value_len += (uint32_t)n;
	return buf_append(p, at, n) ? -1 : 0;
}

static int on_header_value_complete(llhttp_t *ll)
{
	hb_h1_parser_t *p = of(ll);
	if (p->nfields == 0)
		return -1;
	struct span *f = &p->fields[p->nfields - 1];
	while (f->value_len && is_ows(p->buf[f->value_off])) {
		f->value_off++;
		f->value_len--;
	}
	while (f->value_len && is_ows(p->buf[f->value_off + f->value_len - 1]))
		f->value_len--;
	return 0;
}

/* Stop llhttp at the end of the head: the body is framed by this file. */
static int on_headers_complete(llhttp_t *ll)
{
	(void)ll;
	return HPE_PAUSED;
}

static const llhttp_settings_t ll_settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_field_complete = on_header_field_complete,
	.on_header_value = on_header_value,
	.on_header_value_complete = on_header_value_complete,
	.on_headers_complete = on_headers_complete,
};

/* ---- the line scanner in front of llhttp ---- */

/* Held back until llhttp has seen the bytes before it: an earlier error must win. */
static int scan_fail(hb_h1_parser_t *p, int err, const char *why)
{
	p->scan.err = err;
	p->scan.why = why;
	return err;
}

static int request_line_byte(hb_h1_parser_t *p, unsigned char c)
{
	struct head_scan *s = &p->scan;
	s->started = true;
	if (c == '\t' || (c == ' ' && (s->line_len == 0 || s->prev_sp)))
		return scan_fail(p, HB_H1_E_BAD, "malformed request line");
	s->prev_sp = c == ' ';
	s->spaces += c == ' ';
	if (s->spaces == 2 && c != ' ' && s->version_len < sizeof(s->version))
		s->version[s->version_len++] = (char)c;
	if (++s->line_len > p->lim.max_request_line)
		return scan_fail(p, HB_H1_E_URI_TOO_LONG, "request line too long");
	return SCAN_MORE;
}

static int field_line_byte(hb_h1_parser_t *p, unsigned char c)
{
	struct head_scan *s = &p->scan;
	if (s->line_len == 0) {
		if (c == ' ' || c == '\t')
			return scan_fail(p, HB_H1_E_BAD,
					 "obs-fold or whitespace before a header name");
		if (s->line_no > p->lim.max_fields)
			return scan_fail(p, HB_H1_E_HEADERS_TOO_BIG, "too many headers");
	}
	if (++s->line_len > p->lim.max_field_size)
		return scan_fail(p, HB_H1_E_HEADERS_TOO_BIG, "header line too long");
	if (++s->field_bytes > p->lim.max_header_bytes)
		return scan_fail(p, HB_H1_E_HEADERS_TOO_BIG, "header section too large");
	return SCAN_MORE;
}

static int end_of_line(hb_h1_parser_t *p)
{
	struct head_scan *s = &p->scan;
	if (s->line_no > 0 && s->line_len == 0)
		return SCAN_END;
	if (s->line_no == 0 && s->line_len == 0) {
		if (++s->blank_lines > MAX_LEADING_BLANK_LINES)
			return scan_fail(p, HB_H1_E_BAD, "too many empty lines before the request");
		return SCAN_MORE;
	}
	if (s->line_no == 0 && s->spaces != 2) /* also rejects HTTP/0.9 "GET /" */
		return scan_fail(p, HB_H1_E_BAD, "malformed request line");
	if (s->line_no > 0) {
		s->field_bytes += 2;
		if (s->field_bytes > p->lim.max_header_bytes)
			return scan_fail(p, HB_H1_E_HEADERS_TOO_BIG, "header section too large");
	}
	s->line_no++;
	s->line_len = 0;
	return SCAN_MORE;
}

static int scan_byte(hb_h1_parser_t *p, unsigned char c)
{
	struct head_scan *s = &p->scan;
	if (s->prev_cr) {
		s->prev_cr = false;
		if (c != '\n')
			return scan_fail(p, HB_H1_E_BAD, "bare CR in request head");
		return end_of_line(p);
	}
	if (c == '\r') {
		s->prev_cr = true;
		return SCAN_MORE;
	}
	if (c == '\n')
		return scan_fail(p, HB_H1_E_BAD, "bare LF in request head");
	return s->line_no == 0 ? request_line_byte(p, c) : field_line_byte(p, c);
}

/* ---- head validation (RFC 9112 3.2, 6.1, 6.3, 9.3) ---- */

struct head_info {
	const struct span *host, *cl, *te;
	uint32_t nhost, ncl, nte;
	bool conn_close, conn_keep_alive, conn_upgrade, has_upgrade, expect_continue;
};

/* Calls fn on each comma-separated element with OWS trimmed (empty ones included). */
static void each_element(const char *v, size_t n, void (*fn)(void *, const char *, size_t),
			 void *arg)
{
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] != ',')
			continue;
		size_t a = start, b = i;
		while (a < b && is_ows(v[a]))
			a++;
		while (b > a && is_ows(v[b - 1]))
			b--;
		fn(arg, v + a, b - a);
		start = i + 1;
	}
}

static void connection_token(void *arg, const char *t, size_t n)
{
	struct head_info *hi = arg;
	if (ieq(t, n, "close"))
		hi->conn_close = true;
	else if (ieq(t, n, "keep-alive"))
		hi->conn_keep_alive = true;
	else if (ieq(t, n, "upgrade"))
		hi->conn_upgrade = true;
}

struct te_walk {
	uint32_t elements, chunked;
	bool last_chunked, bad;
};

static void te_element(void *arg, const char *t, size_t n)
{
	struct te_walk *w = arg;
	w->elements++;
	w->last_chunked = ieq(t, n, "chunked");
	w->chunked += w->last_chunked;
	if (n == 0)
		w->bad = true;
	for (size_t i = 0; i < n; i++)
		if (!hb_h1_is_tchar((unsigned char)t[i]))
			w->bad = true;
}

/* Exactly "chunked" is accepted. Chunked applied last after codings we do not decode (gzip)
 * is well-formed but unsupported: 501. Anything else leaves the body length unknown: 400. */
static int te_verdict(hb_h1_parser_t *p, const char *v, size_t n)
{
	struct te_walk w = {0};
	each_element(v, n, te_element, &w);
	if (!w.bad && w.chunked == 1 && w.last_chunked)
		return w.elements == 1 ? 0
				       : fail(p, HB_H1_E_NOT_IMPL, "unsupported transfer coding");
	return fail(p, HB_H1_E_BAD, "invalid Transfer-Encoding");
}

static void classify(hb_h1_parser_t *p, struct head_info *hi)
{
	for (uint32_t i = 0; i < p->nfields; i++) {
		const struct span *f = &p->fields[i];
		const char *name = p->buf + f->name_off, *val = p->buf + f->value_off;
		if (ieq(name, f->name_len, "host")) {
			hi->host = f;
			hi->nhost++;
		} else if (ieq(name, f->name_len, "content-length")) {
			hi->cl = f;
			hi->ncl++;
		} else if (ieq(name, f->name_len, "transfer-encoding")) {
			hi->te = f;
			hi->nte++;
		} else if (ieq(name, f->name_len, "connection")) {
			each_element(val, f->value_len, connection_token, hi);
		} else if (ieq(name, f->name_len, "upgrade")) {
			hi->has_upgrade = f->value_len > 0;
		} else if (ieq(name, f->name_len, "expect")) {
			hi->expect_continue = ieq(val, f->value_len, "100-continue");
		}
	}
}

/* 1*DIGIT only; past INT64_MAX is too large rather than an overflow. */
static int parse_content_length(hb_h1_parser_t *p, const struct span *f, int64_t *out)
{
	const char *v = p->buf + f->value_off;
	uint64_t n = 0;
	if (f->value_len == 0)
		return fail(p, HB_H1_E_BAD, "empty Content-Length");
	for (uint32_t i = 0; i < f->value_len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return fail(p, HB_H1_E_BAD, "invalid Content-Length");
		if (n > ((uint64_t)INT64_MAX - (uint64_t)(v[i] - '0')) / 10)
			return fail(p, HB_H1_E_BODY_TOO_BIG, "Content-Length too large");
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (n > p->lim.max_body)
		return fail(p, HB_H1_E_BODY_TOO_BIG, "Content-Length over the body limit");
	*out = (int64_t)n;
	return 0;
}

static int check_version(hb_h1_parser_t *p)
{
	if (p->ll.http_major == 1 && p->ll.http_minor <= 1)
		return 0;
	if (p->ll.http_major == 1)
		return fail(p, HB_H1_E_BAD, "invalid HTTP version");
	return fail(p, HB_H1_E_VERSION, "HTTP version not supported");
}

static int check_framing(hb_h1_parser_t *p, const struct head_info *hi, int64_t *cl)
{
	*cl = -1;
	if (hi->nte > 1)
		return fail(p, HB_H1_E_BAD, "repeated Transfer-Encoding");
	if (hi->nte && hi->ncl)
		return fail(p, HB_H1_E_BAD, "both Content-Length and Transfer-Encoding");
	if (hi->nte && p->ll.http_minor == 0)
		return fail(p, HB_H1_E_BAD, "Transfer-Encoding in an HTTP/1.0 request");
	if (hi->nte)
		return te_verdict(p, p->buf + hi->te->value_off, hi->te->value_len);
	if (hi->ncl > 1)
		return fail(p, HB_H1_E_BAD, "repeated Content-Length");
	return hi->ncl ? parse_content_length(p, hi->cl, cl) : 0;
}

static int check_host(hb_h1_parser_t *p, const struct head_info *hi)
{
	if (hi->nhost > 1)
		return fail(p, HB_H1_E_BAD, "repeated Host");
	if (hi->nhost == 0)
		return p->ll.http_minor == 0 ? 0 : fail(p, HB_H1_E_BAD, "missing Host");
	if (!hb_h1_host_valid(p->buf + hi->host->value_off, hi->host->value_len))
		return fail(p, HB_H1_E_BAD, "invalid Host");
	return 0;
}

static uint32_t request_flags(const hb_h1_parser_t *p, const struct head_info *hi, int64_t cl)
{
	bool http11 = p->ll.http_minor == 1;
	uint32_t fl = 0;
	if (http11 ? !hi->conn_close : (hi->conn_keep_alive && !hi->conn_close))
		fl |= HB_REQ_KEEP_ALIVE;
	if (hi->nte)
		fl |= HB_REQ_CHUNKED | HB_REQ_HAS_BODY;
	if (cl > 0)
		fl |= HB_REQ_HAS_BODY;
	if (http11 && hi->expect_continue)
		fl |= HB_REQ_EXPECT_CONTINUE;
	if (hi->conn_upgrade && hi->has_upgrade)
		fl |= HB_REQ_UPGRADE;
	if (p->method_len == 4 && memcmp(p->buf, "HEAD", 4) == 0) /* methods are case-sensitive */
		fl |= HB_REQ_HEAD;
	return fl;
}

/* ---- building the request: one block, headers array then the strings ---- */

/* absolute-form (RFC 9112 3.2.2): the server MUST use the target's host instead of a Host
 * field, so the request carries the target's authority as its Host (added when the request
 * had none, as an HTTP/1.0 one may). Everything built from Host follows (HTTP_HOST, SERVER_NAME,
 * the ASGI host header). Returns the header count. */
static uint32_t host_from_target(hb_request_t *r, hb_header_t *h, uint32_t n,
				 const struct head_info *hi, const hb_h1_target_t *t,
				 const hb_h1_parser_t *p)
{
	if (t->form != HB_H1_ABSOLUTE_FORM)
		return n;
	uint32_t k = hi->host ? (uint32_t)(hi->host - p->fields) : n;
	if (k == n) /* its name was stored after the head's bytes */
		h[n++] = (hb_header_t){.name = r->method + p->len, .name_len = 4};
	h[k].value = r->target + t->authority_off;
	h[k].value_len = t->authority_len;
	return n;
}

static hb_request_t *build_request(const hb_h1_parser_t *p, const struct head_info *hi,
				   const hb_h1_target_t *t)
{
	size_t base = offsetof(hb_request_t, data);
	size_t hoff =
		(base + _Alignof(hb_header_t) - 1) / _Alignof(hb_header_t) * _Alignof(hb_header_t);
	size_t soff = hoff + ((size_t)p->nfields + 1) * sizeof(hb_header_t);
	hb_request_t *r = calloc(1, soff + p->len + 4);
	if (!r)
		return NULL;
	hb_header_t *h = (hb_header_t *)((char *)r + hoff);
	char *s = (char *)r + soff;
	memcpy(s, p->buf, p->len);
	memcpy(s + p->len, "Host", 4);
	for (uint32_t i = 0; i < p->nfields; i++) {
		const struct span *f = &p->fields[i];
		h[i] = (hb_header_t){s + f->name_off, s + f->value_off, f->name_len, f->value_len};
	}
	r->method = s;
	r->method_len = p->method_len;
	r->target = s + p->target_off;
	r->target_len = p->target_len;
	r->path = t->path_len ? r->target + t->path_off : "/";
	r->path_len = t->path_len ? t->path_len : 1;
	r->query = r->target + t->query_off;
	r->query_len = t->query_len;
	r->headers = h;
	r->nheaders = host_from_target(r, h, p->nfields, hi, t, p);
	r->http_major = p->ll.http_major;
	r->http_minor = p->ll.http_minor;
	return r;
}

static int complete(hb_h1_parser_t *p)
{
	p->phase = PH_PAUSED;
	if (p->cb.on_complete && p->cb.on_complete(p->ud))
		return fail(p, HB_H1_E_CALLBACK, "on_complete failed");
	return 0;
}

static void start_body(hb_h1_parser_t *p, const hb_request_t *r)
{
	p->body_total = 0;
	if (r->flags & HB_REQ_CHUNKED) {
		p->phase = PH_CHUNKED;
		p->ck = CK_SIZE;
		p->chunk_size = 0;
		p->ndigits = p->ext_len = 0;
		p->tr_fields = p->tr_bytes = p->tr_line_len = 0;
	} else {
		p->phase = PH_FIXED;
		p->remaining = r->content_length > 0 ? (uint64_t)r->content_length : 0;
	}
}

static int head_done(hb_h1_parser_t *p)
{
	struct head_info hi = {0};
	int64_t cl;
	int rc = check_version(p);
	if (rc)
		return rc;
	classify(p, &hi);
	if ((rc = check_framing(p, &hi, &cl)) || (rc = check_host(p, &hi)))
		return rc;
	hb_h1_target_t t;
	const char *why = NULL;
	if ((rc = hb_h1_target_parse(p->buf, p->method_len, p->buf + p->target_off, p->target_len,
				     &t, &why)))
		return fail(p, rc, why);
	hb_request_t *r = build_request(p, &hi, &t);
	if (!r)
		return fail(p, HB_H1_E_NOMEM, "out of memory");
	r->content_length = cl;
	r->flags = request_flags(p, &hi, cl);
	start_body(p, r);
	bool empty = p->phase == PH_FIXED && p->remaining == 0;
	if (p->cb.on_request && p->cb.on_request(p->ud, r))
		return fail(p, HB_H1_E_CALLBACK, "on_request failed");
	if (!p->cb.on_request)
		free(r);
	return empty ? complete(p) : 0;
}

/* "HTTP/3.0" (llhttp: invalid version) and "PRI * HTTP/2.0" (llhttp: waits for the h2
 * preface) are well-formed requests for a version we do not speak. The scanner has seen the
 * version bytes by the time llhttp rejects them, however the input was split. */
static bool scanned_newer_major(const hb_h1_parser_t *p)
{
	const struct head_scan *s = &p->scan;
	return s->version_len > 5 && memcmp(s->version, "HTTP/", 5) == 0 && s->version[5] >= '2' &&
	       s->version[5] <= '9';
}

static int llhttp_failure(hb_h1_parser_t *p, llhttp_errno_t e)
{
	if (p->err)
		return p->err;
	if ((e == HPE_INVALID_VERSION || e == HPE_INTERNAL) && scanned_newer_major(p))
		return fail(p, HB_H1_E_VERSION, "HTTP version not supported");
	const char *why =
		e == HPE_INTERNAL ? "malformed request head" : llhttp_get_error_reason(&p->ll);
	if (!why)
		why = "malformed request";
	/* Only digits got this far: a value past 2^64 is too large, not malformed. */
	if (e == HPE_INVALID_CONTENT_LENGTH && strstr(why, "overflow"))
		return fail(p, HB_H1_E_BODY_TOO_BIG, "Content-Length too large");
	return fail(p, HB_H1_E_BAD, why);
}

/* llhttp 8.1 knows a fixed list of methods; RFC 9110 allows any token. The method is
 * therefore read here and llhttp is given a stand-in with the same URL rules: "CONNECT" (whose
 * target is an authority) for CONNECT, "GET" for every other method. */
static int feed_method(hb_h1_parser_t *p, const char *d, size_t n, size_t *used)
{
	size_t i = 0;
	while (i < n && !p->scan.method_done) {
		unsigned char c = (unsigned char)d[i];
		int r = scan_byte(p, c);
		if (r < 0)
			break;
		i++;
		if (c == '\r' || c == '\n')
			continue; /* an empty line before the request (the scanner counts them) */
		if (c != ' ') {
			if (!hb_h1_is_tchar(c)) {
				scan_fail(p, HB_H1_E_BAD, "invalid character in method");
				break;
			}
			if (buf_append(p, (const char *)&c, 1))
				break;
			p->method_len++;
			continue;
		}
		p->scan.method_done = true;
		bool connect = p->method_len == 7 && memcmp(p->buf, "CONNECT", 7) == 0;
		const char *stand_in = connect ? "CONNECT " : "GET ";
		llhttp_errno_t e = llhttp_execute(&p->ll, stand_in, strlen(stand_in));
		if (e != HPE_OK) {
			*used = i;
			return llhttp_failure(p, e);
		}
	}
	*used = i;
	if (p->err)
		return p->err;
	return p->scan.err ? fail(p, p->scan.err, p->scan.why) : 0;
}

/* Inside a field line (past its first byte), the bytes up to the next CR or LF that stay
 * within the line and section limits: what scan_byte() would pass one at a time, counted at
 * once. Returns how many (0: let scan_byte() take the next byte, which may be the one that
 * fails). */
static size_t field_run(hb_h1_parser_t *p, const char *d, size_t n)
{
	struct head_scan *s = &p->scan;
	size_t k = 0, room;

	if (s->line_no == 0 || s->line_len == 0 || s->prev_cr)
		return 0;
	room = p->lim.max_field_size - s->line_len;
	if (p->lim.max_header_bytes - s->field_bytes < room)
		room = p->lim.max_header_bytes - s->field_bytes;
	if (n > room)
		n = room;
	while (k < n && d[k] != '\r' && d[k] != '\n')
		k++;
	s->line_len += (uint32_t)k;
	s->field_bytes += (uint32_t)k;
	return k;
}

/* llhttp sees exactly the bytes the scanner passed, so an error llhttp finds in them comes
 * first, and the outcome does not depend on how the input was split. */
static int feed_head(hb_h1_parser_t *p, const char *d, size_t n, size_t *used)
{
	size_t i = 0, m = 0;
	int r = SCAN_MORE;
	if (!p->scan.method_done) {
		int rc = feed_method(p, d, n, &m);
		*used = m;
		if (rc || m == n)
			return rc;
		d += m;
		n -= m;
	}
	while (i < n) {
		size_t k = field_run(p, d + i, n - i);

		if (k) {
			i += k;
			continue;
		}
		r = scan_byte(p, (unsigned char)d[i]);
		if (r < 0)
			break;
		i++;
		if (r == SCAN_END)
			break;
	}
	llhttp_errno_t e = llhttp_execute(&p->ll, d, i);
	*used = m + i;
	if (e != HPE_OK && e != HPE_PAUSED)
		return llhttp_failure(p, e);
	if (r < 0)
		return fail(p, p->scan.err, p->scan.why);
	/* Both must agree where the head ends (HPE_PAUSED comes from on_headers_complete). */
	bool ll_end = e == HPE_PAUSED && llhttp_get_error_pos(&p->ll) == d + i;
	if ((r == SCAN_END) != (e == HPE_PAUSED) || (e == HPE_PAUSED && !ll_end))
		return llhttp_failure(p, HPE_INTERNAL);
	return r == SCAN_END ? head_done(p) : r;
}

/* ---- body framing ---- */

static int deliver(hb_h1_parser_t *p, const char *d, size_t n)
{
	if (n && p->cb.on_body && p->cb.on_body(p->ud, d, n))
		return fail(p, HB_H1_E_CALLBACK, "on_body failed");
	return 0;
}

static int feed_fixed(hb_h1_parser_t *p, const char *d, size_t n, size_t *used)
{
	size_t k = p->remaining < n ? (size_t)p->remaining : n;
	int rc = deliver(p, d, k);
	*used = k;
	p->remaining -= k;
	if (rc || p->remaining)
		return rc;
	return complete(p);
}

static int size_done(hb_h1_parser_t *p, chunk_state_t next)
{
	if (p->chunk_size > p->lim.max_body - p->body_total)
		return fail(p, HB_H1_E_BODY_TOO_BIG, "chunked body over the limit");
	p->body_total += p->chunk_size;
	p->ck = next;
	return 0;
}

static int size_byte(hb_h1_parser_t *p, unsigned char c)
{
	int v = hex_value(c);
	if (v >= 0) {
		if (++p->ndigits > MAX_CHUNK_SIZE_DIGITS || p->chunk_size > UINT64_MAX >> 4)
			return fail(p, HB_H1_E_BAD, "chunk size overflow");
		p->chunk_size = p->chunk_size * 16 + (uint64_t)v;
		return 0;
	}
	if (p->ndigits == 0)
		return fail(p, HB_H1_E_BAD, "invalid chunk size");
	if (c == '\r')
		return size_done(p, CK_SIZE_LF);
	if (c == ';')
		return size_done(p, CK_EXT);
	if (c == ' ' || c == '\t') /* BWS before ';' (RFC 9112 7.1.1) */
		return size_done(p, CK_SIZE_WS);
	return fail(p, HB_H1_E_BAD, "invalid chunk size");
}

static int ext_byte(hb_h1_parser_t *p, unsigned char c)
{
	if (c == '\r') {
		p->ck = CK_SIZE_LF;
		return 0;
	}
	if (!is_value_char(c))
		return fail(p, HB_H1_E_BAD, "control character in chunk extension");
	if (++p->ext_len > MAX_CHUNK_EXT)
		return fail(p, HB_H1_E_BAD, "chunk extension too long");
	return 0;
}

static int size_lf(hb_h1_parser_t *p, unsigned char c)
{
	if (c != '\n')
		return fail(p, HB_H1_E_BAD, "chunk size line not ended by CRLF");
	p->ck = p->chunk_size ? CK_DATA : TR_START;
	p->remaining = p->chunk_size;
	p->chunk_size = 0;
	p->ndigits = p->ext_len = 0;
	return 0;
}

static int expect_byte(hb_h1_parser_t *p, unsigned char c, unsigned char want, chunk_state_t next,
		       const char *why)
{
	if (c != want)
		return fail(p, HB_H1_E_BAD, why);
	p->ck = next;
	return 0;
}

/* Trailers are checked like header lines, counted against the header limits, and dropped. */
static int trailer_count(hb_h1_parser_t *p)
{
	if (++p->tr_line_len > p->lim.max_field_size || ++p->tr_bytes > p->lim.max_header_bytes)
		return fail(p, HB_H1_E_HEADERS_TOO_BIG, "trailer section too large");
	return 0;
}

static int trailer_start(hb_h1_parser_t *p, unsigned char c)
{
	if (c == '\r') {
		p->ck = TR_END_LF;
		return 0;
	}
	if (!hb_h1_is_tchar(c))
		return fail(p, HB_H1_E_BAD, "invalid trailer line");
	if (++p->tr_fields > p->lim.max_fields)
		return fail(p, HB_H1_E_HEADERS_TOO_BIG, "too many trailers");
	p->tr_line_len = 0;
	p->ck = TR_NAME;
	return trailer_count(p);
}

static int trailer_byte(hb_h1_parser_t *p, unsigned char c)
{
	if (p->ck == TR_NAME && c == ':')
		p->ck = TR_VALUE;
	else if (p->ck == TR_NAME && !hb_h1_is_tchar(c))
		return fail(p, HB_H1_E_BAD, "invalid trailer name");
	else if (p->ck == TR_VALUE && c == '\r') {
		p->ck = TR_LINE_LF;
		return 0;
	} else if (p->ck == TR_VALUE && !is_value_char(c))
		return fail(p, HB_H1_E_BAD, "control character in trailer");
	return trailer_count(p);
}

static int chunk_byte(hb_h1_parser_t *p, unsigned char c)
{
	switch (p->ck) {
	case CK_SIZE:
		return size_byte(p, c);
	case CK_SIZE_WS:
		if (c == ' ' || c == '\t')
			return ++p->ext_len > MAX_CHUNK_EXT
				       ? fail(p, HB_H1_E_BAD, "chunk size line too long")
				       : 0;
		return expect_byte(p, c, ';', CK_EXT, "invalid chunk size");
	case CK_EXT:
		return ext_byte(p, c);
	case CK_SIZE_LF:
		return size_lf(p, c);
	case CK_DATA:
		break;
	case CK_DATA_CR:
		return expect_byte(p, c, '\r', CK_DATA_LF, "chunk data not followed by CRLF");
	case CK_DATA_LF:
		return expect_byte(p, c, '\n', CK_SIZE, "chunk data not followed by CRLF");
	case TR_START:
		return trailer_start(p, c);
	case TR_NAME:
	case TR_VALUE:
		return trailer_byte(p, c);
	case TR_LINE_LF:
		return expect_byte(p, c, '\n', TR_START, "bare CR in trailers");
	case TR_END_LF:
		return c == '\n' ? complete(p) : fail(p, HB_H1_E_BAD, "bare CR after trailers");
	}
	return fail(p, HB_H1_E_BAD, "internal chunk state");
}

static int feed_chunked(hb_h1_parser_t *p, const char *d, size_t n, size_t *used)
{
	size_t i = 0;
	int rc = 0;
	while (i < n && rc == 0 && p->phase == PH_CHUNKED) {
		if (p->ck != CK_DATA) {
			rc = chunk_byte(p, (unsigned char)d[i++]);
			continue;
		}
		size_t k = p->remaining < n - i ? (size_t)p->remaining : n - i;
		rc = deliver(p, d + i, k);
		i += k;
		p->remaining -= k;
		if (p->remaining == 0)
			p->ck = CK_DATA_CR;
	}
	*used = i;
	return rc;
}

/* ---- public API ---- */

hb_h1_parser_t *hb_h1_new(const hb_h1_limits_t *lim, const hb_h1_callbacks_t *cb, void *ud)
{
	hb_h1_parser_t *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->lim = lim ? *lim : default_limits;
	if (cb)
		p->cb = *cb;
	p->ud = ud;
	llhttp_init(&p->ll, HTTP_REQUEST, &ll_settings);
	p->ll.data = p;
	p->phase = PH_HEAD;
	return p;
}

void hb_h1_free(hb_h1_parser_t *p)
{
	if (!p)
		return;
	free(p->buf);
	free(p->fields);
	free(p);
}

static int step(hb_h1_parser_t *p, const char *d, size_t n, size_t *used)
{
	switch (p->phase) {
	case PH_HEAD:
		return feed_head(p, d, n, used);
	case PH_FIXED:
		return feed_fixed(p, d, n, used);
	case PH_CHUNKED:
		return feed_chunked(p, d, n, used);
	case PH_PAUSED:
	case PH_DEAD:
		break;
	}
	*used = 0;
	return 0;
}

int hb_h1_feed(hb_h1_parser_t *p, const char *data, size_t len, size_t *consumed, const char **why)
{
	size_t off = 0, used;
	int rc = p->phase == PH_DEAD ? p->err : 0;
	while (rc >= 0 && off < len &&
	       (p->phase == PH_HEAD || p->phase == PH_FIXED || p->phase == PH_CHUNKED)) {
		used = 0;
		rc = step(p, data + off, len - off, &used);
		off += used;
	}
	if (consumed)
		*consumed = off;
	if (rc < 0) {
		p->phase = PH_DEAD;
		if (why)
			*why = p->why;
		return p->err ? p->err : rc;
	}
	if (why)
		*why = NULL;
	return p->phase == PH_PAUSED ? HB_H1_PAUSED : HB_H1_OK;
}

void hb_h1_resume(hb_h1_parser_t *p)
{
	if (p->phase != PH_PAUSED)
		return;
	llhttp_reset(&p->ll);
	memset(&p->scan, 0, sizeof(p->scan));
	p->len = p->method_len = p->target_off = p->target_len = 0;
	p->nfields = 0;
	p->in_field = false;
	/* An idle keep-alive connection should not keep a large head's scratch space. */
	if (p->cap > KEEP_BUF_CAP) {
		free(p->buf);
		p->buf = NULL;
		p->cap = 0;
	}
	if (p->fields_cap > 64) {
		free(p->fields);
		p->fields = NULL;
		p->fields_cap = 0;
	}
	p->phase = PH_HEAD;
}

int hb_h1_finish(hb_h1_parser_t *p)
{
	return hb_h1_idle(p) ? HB_H1_OK : HB_H1_E_BAD;
}

int hb_h1_idle(const hb_h1_parser_t *p)
{
	return p->phase == PH_PAUSED || (p->phase == PH_HEAD && !p->scan.started);
}

int hb_h1_reuse(hb_h1_parser_t *p, void *ud)
{
	if (!hb_h1_idle(p))
		return -1;
	/* Fresh already (no byte since the last reset: the common case, a parser resumed after
	 * its message) or reset now, with the blank lines or CR seen before a head. */
	if (p->phase == PH_PAUSED || p->scan.blank_lines || p->scan.prev_cr) {
		p->phase = PH_PAUSED;
		hb_h1_resume(p);
	}
	p->ud = ud;
	return 0;
}

int hb_h1_error_status(int err)
{
	switch (err) {
	case HB_H1_E_URI_TOO_LONG:
		return 414;
	case HB_H1_E_HEADERS_TOO_BIG:
		return 431;
	case HB_H1_E_BODY_TOO_BIG:
		return 413;
	case HB_H1_E_VERSION:
		return 505;
	case HB_H1_E_NOT_IMPL:
		return 501;
	case HB_H1_E_NOMEM:
	case HB_H1_E_CALLBACK:
		return 500;
	default:
		return 400;
	}
}

static const struct {
	int status;
	const char *reason;
} reasons[] = {
	{100, "Continue"},
	{101, "Switching Protocols"},
	{103, "Early Hints"},
	{200, "OK"},
	{201, "Created"},
	{202, "Accepted"},
	{203, "Non-Authoritative Information"},
	{204, "No Content"},
	{205, "Reset Content"},
	{206, "Partial Content"},
	{300, "Multiple Choices"},
	{301, "Moved Permanently"},
	{302, "Found"},
	{303, "See Other"},
	{304, "Not Modified"},
	{307, "Temporary Redirect"},
	{308, "Permanent Redirect"},
	{400, "Bad Request"},
	{401, "Unauthorized"},
	{402, "Payment Required"},
	{403, "Forbidden"},
	{404, "Not Found"},
	{405, "Method Not Allowed"},
	{406, "Not Acceptable"},
	{407, "Proxy Authentication Required"},
	{408, "Request Timeout"},
	{409, "Conflict"},
	{410, "Gone"},
	{411, "Length Required"},
	{412, "Precondition Failed"},
	{413, "Content Too Large"},
	{414, "URI Too Long"},
	{415, "Unsupported Media Type"},
	{416, "Range Not Satisfiable"},
	{417, "Expectation Failed"},
	{421, "Misdirected Request"},
	{422, "Unprocessable Content"},
	{426, "Upgrade Required"},
	{428, "Precondition Required"},
	{429, "Too Many Requests"},
	{431, "Request Header Fields Too Large"},
	{500, "Internal Server Error"},
	{501, "Not Implemented"},
	{502, "Bad Gateway"},
	{503, "Service Unavailable"},
	{504, "Gateway Timeout"},
	{505, "HTTP Version Not Supported"},
};

const char *hb_h1_reason(int status)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

/* ---- serialization: writes what fits, always counts what is needed ---- */

struct out {
	char *p;
	size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len < o->cap)
		memcpy(o->p + o->len, s, o->cap - o->len < n ? o->cap - o->len : n);
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_header(struct out *o, const char *name, const char *value)
{
	puts_(o, name);
	put(o, ": ", 2);
	puts_(o, value);
	put(o, "\r\n", 2);
}

static void put_status_line(struct out *o, int status)
{
	char line[32] = "HTTP/1.1 000 ";
	int n = 13;

	if (status >= 100 && status <= 999) { /* every real status: no snprintf per response */
		line[9] = (char)('0' + status / 100);
		line[10] = (char)('0' + status / 10 % 10);
		line[11] = (char)('0' + status % 10);
	} else {
		n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	}
	put(o, line, (size_t)n);
	puts_(o, hb_h1_reason(status));
	put(o, "\r\n", 2);
}

static int resp_has_header(const hb_response_t *r, const char *name, size_t len)
{
	for (uint32_t i = 0; i < r->nheaders; i++)
		if (r->headers[i].name_len == len &&
		    strncasecmp(r->headers[i].name, name, len) == 0)
			return 1;
	return 0;
}

size_t hb_h1_write_head(char *out, size_t cap, const hb_response_t *r, int minor_version,
			int chunked, int keep_alive, const char *date_str)
{
	struct out o = {out, cap, 0};
	put_status_line(&o, r->status);
	for (uint32_t i = 0; i < r->nheaders; i++) {
		put(&o, r->headers[i].name, r->headers[i].name_len);
		put(&o, ": ", 2);
		put(&o, r->headers[i].value, r->headers[i].value_len);
		put(&o, "\r\n", 2);
	}
	if (!(r->flags & HB_RESP_HAS_DATE) && date_str)
		put_header(&o, "Date", date_str);
	if (!(r->flags & HB_RESP_HAS_SERVER))
		put_header(&o, "Server", "hornbeam-uring");
	if (chunked)
		put_header(&o, "Transfer-Encoding", "chunked");
	/* The app's own Connection header (if it kept one) already says it; HB_RESP_CLOSE alone
	 * does not put one in the head. */
	if (!keep_alive && !resp_has_header(r, "connection", 10))
		put_header(&o, "Connection", "close");
	else if (keep_alive && minor_version == 0)
		put_header(&o, "Connection", "keep-alive");
	put(&o, "\r\n", 2);
	return o.len;
}

static void put_fields(struct out *o, const hb_response_t *r, int trailer)
{
	static const char *const banned[] = {
		"content-length",
		"transfer-encoding",
		"trailer",
		"te",
		"host",
		"connection",
		"keep-alive",
		"upgrade",
		"proxy-connection",
	};
	for (uint32_t i = 0; i < r->nheaders; i++) {
		const hb_header_t *h = &r->headers[i];
		int skip = 0;
		for (size_t b = 0; trailer && b < sizeof(banned) / sizeof(banned[0]); b++)
			skip |= h->name_len == strlen(banned[b]) &&
				strncasecmp(h->name, banned[b], h->name_len) == 0;
		if (skip)
			continue;
		put(o, h->name, h->name_len);
		put(o, ": ", 2);
		put(o, h->value, h->value_len);
		put(o, "\r\n", 2);
	}
}

size_t hb_h1_write_interim(char *out, size_t cap, const hb_response_t *r)
{
	struct out o = {out, cap, 0};
	put_status_line(&o, r->status);
	put_fields(&o, r, 0);
	put(&o, "\r\n", 2);
	return o.len;
}

size_t hb_h1_write_trailers(char *out, size_t cap, const hb_response_t *r)
{
	struct out o = {out, cap, 0};
	put(&o, "0\r\n", 3);
	put_fields(&o, r, 1);
	put(&o, "\r\n", 2);
	return o.len;
}

size_t hb_h1_write_error(char *out, size_t cap, int status, const char *date_str)
{
	struct out o = {out, cap, 0};
	const char *reason = hb_h1_reason(status);
	char len[24];
	snprintf(len, sizeof(len), "%zu", strlen(reason) + 1);
	put_status_line(&o, status);
	put_header(&o, "Content-Type", "text/plain; charset=utf-8");
	put_header(&o, "Content-Length", len);
	put_header(&o, "Connection", "close");
	if (date_str)
		put_header(&o, "Date", date_str);
	put_header(&o, "Server", "hornbeam-uring");
	put(&o, "\r\n", 2);
	puts_(&o, reason);
	put(&o, "\n", 1);
	return o.len;
}

size_t hb_h1_chunk_prefix(char *out, size_t len)
{
	return (size_t)snprintf(out, 20, "%zx\r\n", len);
}
