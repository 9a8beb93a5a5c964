/* h2_msg.c: HTTP/2 message heads: decoded request fields -> hb_request_t, response heads ->
 * nghttp2 name/value arrays. nghttp2's HTTP messaging checks already ran on every field
 * (pseudo-header order and duplicates, connection-specific fields, upper case, te, content-length
 * syntax); what is left here is what it does not know: the limits, :authority vs Host, and the
 * project's request shape. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/h2_priv.h"

#define SERVER_NAME "hornbeam-uring"

static bool ieq(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	return an == bn && strncasecmp(a, b, bn) == 0;
}

/* Appends bytes to the stream's block buffer; returns their offset, or -1 on ENOMEM. */
static int64_t append(hb_h2_t *e, struct h2s *st, const void *p, size_t n)
{
	if (st->len + n > st->cap) {
		size_t cap = st->cap ? st->cap : 256;
		while (cap < st->len + n)
			cap *= 2;
		char *b = h2_realloc(e, st->buf, cap);
		if (!b)
			return -1;
		st->buf = b;
		st->cap = (uint32_t)cap;
	}
	memcpy(st->buf + st->len, p, n);
	st->len += (uint32_t)n;
	return st->len - (int64_t)n;
}

static int pseudo_index(const uint8_t *name, size_t nl)
{
	static const char *const names[PS_COUNT] = {":method", ":scheme", ":authority", ":path",
						    ":protocol"};
	for (int i = 0; i < PS_COUNT; i++)
		if (ieq((const char *)name, nl, names[i]))
			return i;
	return -1;
}

static int too_much(hb_h2_t *e, const char *why)
{
	h2_fail(e, HB_H2_E_CALM, HB_H2_ENHANCE_YOUR_CALM, why);
	return NGHTTP2_ERR_CALLBACK_FAILURE;
}

int h2_msg_field(hb_h2_t *e, struct h2s *st, const uint8_t *name, size_t nl, const uint8_t *value,
		 size_t vl)
{
	st->list_bytes += (uint32_t)(nl + vl + 32);
	if (st->list_bytes > e->lim.max_header_list)
		return too_much(e, "header list over the limit (HPACK bomb?)");
	if (st->in_trailers)
		return 0; /* checked by nghttp2, then dropped, as HTTP/1.1 trailers are */
	int ps = nl && name[0] == ':' ? pseudo_index(name, nl) : -1;
	if (nl && name[0] == ':' && ps < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* a pseudo-header nghttp2 let by */
	if (ps < 0 && st->nf >= e->lim.max_fields)
		return too_much(e, "too many header fields");
	int64_t no = append(e, st, name, nl), vo = append(e, st, value, vl);
	if (no < 0 || vo < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	struct h2_field f = {(uint32_t)no, (uint32_t)nl, (uint32_t)vo, (uint32_t)vl};
	if (ps >= 0) {
		st->ps[ps] = f;
		st->have_ps |= (uint8_t)(1u << ps);
		return 0;
	}
	if (st->nf == st->fcap) {
		uint32_t cap = st->fcap ? st->fcap * 2 : 16;
		struct h2_field *nf = h2_realloc(e, st->f, cap * sizeof *nf);
		if (!nf)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		st->f = nf;
		st->fcap = cap;
	}
	st->f[st->nf++] = f;
	return 0;
}

void h2_msg_reset(hb_h2_t *e, struct h2s *st)
{
	h2_free(e, st->buf);
	h2_free(e, st->f);
	st->buf = NULL;
	st->f = NULL;
	st->len = st->cap = st->nf = st->fcap = 0;
}

/* ---- request ---- */

static bool reg_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("-._~!$&'()*+,;=%", c) != NULL;
}

/* RFC 9113 8.3.1: :authority is host[:port]; userinfo is not allowed for http(s). */
static bool authority_valid(const char *s, size_t n)
{
	size_t i = 0;
	if (n == 0)
		return false;
	if (s[0] == '[') {
		for (i = 1; i < n && s[i] != ']'; i++)
			if (!strchr("0123456789abcdefABCDEF:.", s[i]) || !s[i])
				return false;
		if (i++ == n)
			return false;
	} else {
		for (; i < n && s[i] != ':'; i++)
			if (!s[i] || !reg_name_char((unsigned char)s[i]))
				return false;
	}
	if (i == n)
		return true;
	if (s[i++] != ':')
		return false;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static const struct h2_field *find(const struct h2s *st, const char *name)
{
	for (uint32_t i = 0; i < st->nf; i++)
		if (ieq(st->buf + st->f[i].no, st->f[i].nl, name))
			return &st->f[i];
	return NULL;
}

static int64_t parse_length(const char *s, size_t n)
{
	int64_t v = 0;
	if (n == 0 || n > 18)
		return n ? INT64_MAX : -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static bool is_connect(const struct h2s *st)
{
	const struct h2_field *m = &st->ps[PS_METHOD];
	return (st->have_ps & 1u << PS_METHOD) && m->vl == 7 &&
	       memcmp(st->buf + m->vo, "CONNECT", 7) == 0;
}

/* Checks what nghttp2 leaves to us; sets *why and returns false when malformed. An extended
 * CONNECT (RFC 8441 4: :protocol, only when we sent SETTINGS_ENABLE_CONNECT_PROTOCOL) carries
 * :scheme, :path and :authority like any request; a plain CONNECT (a tunnel) is refused. */
static bool check_request(const struct h2s *st, const char **why)
{
	const uint8_t need = 1u << PS_METHOD | 1u << PS_SCHEME | 1u << PS_PATH;
	bool ext = st->have_ps & 1u << PS_PROTOCOL;
	if (ext && (!is_connect(st) || !(st->have_ps & 1u << PS_AUTHORITY) ||
		    st->ps[PS_PROTOCOL].vl == 0)) {
		*why = ":protocol needs CONNECT with :authority";
		return false;
	}
	if ((st->have_ps & need) != need || (is_connect(st) && !ext)) {
		*why = "CONNECT (or a request without :scheme/:path) is not supported";
		return false;
	}
	const struct h2_field *host = find(st, "host");
	if (st->have_ps & 1u << PS_AUTHORITY) {
		const struct h2_field *a = &st->ps[PS_AUTHORITY];
		if (!authority_valid(st->buf + a->vo, a->vl)) {
			*why = "invalid :authority";
			return false;
		}
		if (host && (host->vl != a->vl ||
			     strncasecmp(st->buf + host->vo, st->buf + a->vo, a->vl) != 0)) {
			*why = ":authority and Host differ";
			return false;
		}
	} else if (!host || !authority_valid(st->buf + host->vo, host->vl)) {
		*why = "no :authority and no valid Host";
		return false;
	}
	return true;
}

static hb_request_t *alloc_request(uint32_t nheaders, size_t nbytes, hb_header_t **h, char **s)
{
	size_t base = offsetof(hb_request_t, data);
	size_t hoff =
		(base + _Alignof(hb_header_t) - 1) / _Alignof(hb_header_t) * _Alignof(hb_header_t);
	size_t soff = hoff + (size_t)nheaders * sizeof(hb_header_t);
	hb_request_t *r = calloc(1, soff + nbytes + 1);
	if (!r)
		return NULL;
	*h = (hb_header_t *)((char *)r + hoff);
	*s = (char *)r + soff;
	r->headers = *h;
	r->nheaders = nheaders;
	r->http_major = 2;
	r->http_minor = 0;
	r->content_length = -1;
	return r;
}

static void set_target(hb_request_t *r, const char *t, uint32_t n)
{
	r->target = t;
	r->target_len = n;
	const char *q = memchr(t, '?', n);
	r->path = t;
	r->path_len = q ? (uint32_t)(q - t) : n;
	r->query = q ? q + 1 : t + n;
	r->query_len = n - r->path_len - (q ? 1 : 0);
}

int h2_msg_keep_origin(hb_h2_t *e, struct h2s *st, const char *scheme, size_t sl,
		       const char *authority, size_t al)
{
	st->origin = h2_alloc(e, sl + 1 + al + 1);
	if (!st->origin)
		return -1;
	memcpy(st->origin, scheme, sl);
	st->origin[sl] = 0;
	memcpy(st->origin + sl + 1, authority, al);
	st->origin[sl + 1 + al] = 0;
	st->scheme_len = (uint32_t)sl;
	st->authority_len = (uint32_t)al;
	return 0;
}

hb_request_t *h2_msg_request(hb_h2_t *e, struct h2s *st, bool end, const char **why)
{
	if (!check_request(st, why))
		return NULL;
	bool add_host = (st->have_ps & 1u << PS_AUTHORITY) && !find(st, "host");
	hb_header_t *h;
	char *s;
	hb_request_t *r = alloc_request(st->nf + add_host, st->len, &h, &s);
	if (!r) {
		*why = "out of memory";
		return NULL;
	}
	memcpy(s, st->buf, st->len);
	for (uint32_t i = 0; i < st->nf; i++) {
		const struct h2_field *f = &st->f[i];
		h[i] = (hb_header_t){s + f->no, s + f->vo, f->nl, f->vl};
	}
	if (add_host) {
		const struct h2_field *a = &st->ps[PS_AUTHORITY];
		h[st->nf] = (hb_header_t){"host", s + a->vo, 4, a->vl};
	}
	const struct h2_field *m = &st->ps[PS_METHOD], *p = &st->ps[PS_PATH];
	r->method = s + m->vo;
	r->method_len = m->vl;
	set_target(r, s + p->vo, p->vl);
	const hb_header_t *cl = hb_request_header(r, "content-length");
	r->content_length = cl ? parse_length(cl->value, cl->value_len) : -1;
	st->content_length = r->content_length;
	if (!end)
		r->flags |= HB_REQ_HAS_BODY | (r->content_length < 0 ? HB_REQ_CHUNKED : 0);
	if (ieq(r->method, r->method_len, "HEAD"))
		r->flags |= HB_REQ_HEAD;
	const hb_header_t *ex = hb_request_header(r, "expect");
	if (ex && ieq(ex->value, ex->value_len, "100-continue") && !end)
		r->flags |= HB_REQ_EXPECT_CONTINUE;
	if (st->have_ps & 1u << PS_PROTOCOL) {
		const struct h2_field *pr = &st->ps[PS_PROTOCOL];
		st->protocol = h2_alloc(e, pr->vl);
		if (!st->protocol) {
			free(r);
			*why = "out of memory";
			return NULL;
		}
		memcpy(st->protocol, st->buf + pr->vo, pr->vl);
		st->protocol_len = pr->vl;
	}
	const hb_header_t *host = hb_request_header(r, "host");
	const struct h2_field *sc = &st->ps[PS_SCHEME];
	if (h2_msg_keep_origin(e, st, st->buf + sc->vo, sc->vl, host ? host->value : "",
			       host ? host->value_len : 0) < 0) {
		free(r);
		*why = "out of memory";
		return NULL;
	}
	return r;
}

hb_request_t *h2_msg_push_request(const struct h2s *parent, const char *path, size_t path_len,
				  const hb_header_t *h, uint32_t n)
{
	size_t bytes = path_len + parent->authority_len + parent->scheme_len + 3;
	for (uint32_t i = 0; i < n; i++)
		bytes += h[i].name_len + h[i].value_len;
	hb_header_t *hd;
	char *s;
	hb_request_t *r = alloc_request(n + 1, bytes, &hd, &s);
	if (!r)
		return NULL;
	memcpy(s, path, path_len);
	set_target(r, s, (uint32_t)path_len);
	s += path_len;
	memcpy(s, parent->origin + parent->scheme_len + 1, parent->authority_len);
	hd[0] = (hb_header_t){"host", s, 4, parent->authority_len};
	s += parent->authority_len;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(s, h[i].name, h[i].name_len);
		memcpy(s + h[i].name_len, h[i].value, h[i].value_len);
		hd[i + 1] = (hb_header_t){s, s + h[i].name_len, h[i].name_len, h[i].value_len};
		s += h[i].name_len + h[i].value_len;
	}
	r->method = "GET";
	r->method_len = 3;
	return r;
}

/* ---- response ---- */

/* Fields RFC 9113 8.2.2 forbids, which an app written for HTTP/1.1 may still set. */
static bool connection_specific(const hb_header_t *h)
{
	static const char *const names[] = {"connection",	 "keep-alive", "proxy-connection",
					    "transfer-encoding", "upgrade",    "te"};
	if (h->name_len && h->name[0] == ':')
		return true;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ieq(h->name, h->name_len, names[i]))
			return true;
	return false;
}

static nghttp2_nv nv(const char *name, size_t nl, const char *value, size_t vl)
{
	return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE};
}

nghttp2_nv *h2_msg_response_nv(int status, const hb_header_t *h, uint32_t n, uint32_t resp_flags,
			       const char *date, size_t *nnv)
{
	size_t bytes = 4;
	for (uint32_t i = 0; i < n; i++)
		bytes += h[i].name_len;
	size_t max = (size_t)n + 3;
	nghttp2_nv *a = malloc(max * sizeof *a + bytes);
	if (!a)
		return NULL;
	char *s = (char *)(a + max);
	size_t k = 0;
	s[0] = (char)('0' + status / 100 % 10);
	s[1] = (char)('0' + status / 10 % 10);
	s[2] = (char)('0' + status % 10);
	a[k++] = nv(":status", 7, s, 3);
	s += 4;
	for (uint32_t i = 0; i < n; i++) {
		if (connection_specific(&h[i]))
			continue;
		for (uint32_t j = 0; j < h[i].name_len; j++) {
			char c = h[i].name[j];
			s[j] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		a[k++] = nv(s, h[i].name_len, h[i].value, h[i].value_len);
		s += h[i].name_len;
	}
	if (date && !(resp_flags & HB_RESP_HAS_DATE))
		a[k++] = nv("date", 4, date, strlen(date));
	if (!(resp_flags & HB_RESP_HAS_SERVER) && status >= 200)
		a[k++] = nv("server", 6, SERVER_NAME, sizeof SERVER_NAME - 1);
	*nnv = k;
	return a;
}
