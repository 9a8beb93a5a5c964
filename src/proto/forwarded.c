/* forwarded.c: see forwarded.h. One pass over each header, left to right, with the state a
 * right-to-left walk would end in: the rightmost hop not trusted, else the first hop. */
#include "proto/forwarded.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "proto/h1_target.h"

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

static void trim(const char **p, size_t *n)
{
	while (*n && blank(**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n && blank((*p)[*n - 1]))
		(*n)--;
}

static int ieq(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && strncasecmp(p, lit, n) == 0;
}

const char *hb_fwd_scheme(const char *p, size_t n)
{
	if (ieq(p, n, "http") || ieq(p, n, "ws"))
		return "http";
	if (ieq(p, n, "https") || ieq(p, n, "wss"))
		return "https";
	return NULL;
}

/* ---- nodes ------------------------------------------------------------------------------- */

static int obf_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* obfnode / obfport: "_" 1*(ALPHA / DIGIT / "." / "_" / "-") */
static int obfuscated(const char *p, size_t n)
{
	if (n < 2 || p[0] != '_')
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!obf_char(p[i]))
			return 0;
	return 1;
}

static int set_addr(const char *p, size_t n, int family, hb_fwd_node_t *out)
{
	if (hb_cidr_addr_parse(p, n, &out->bin) < 0)
		return HB_FWD_E_BAD;
	/* "1.2.3.4" inside brackets, or an IPv6 address written bare where brackets are needed */
	if (family == 6 && !memchr(p, ':', n))
		return HB_FWD_E_BAD;
	if (family == 4 && memchr(p, ':', n))
		return HB_FWD_E_BAD;
	const void *a = out->bin.addr;
	inet_ntop(out->bin.family == 4 ? AF_INET : AF_INET6, a, out->addr, sizeof(out->addr));
	return 0;
}

int hb_fwd_node_parse(const char *p, size_t n, int rfc7239, hb_fwd_node_t *out)
{
	const char *name = p, *port = NULL;
	size_t name_len = n, port_len = 0;
	int family = 4;

	memset(out, 0, sizeof(*out));
	if (n > 0 && p[0] == '[') {
		const char *close = memchr(p, ']', n);
		if (!close)
			return HB_FWD_E_BAD;
		name = p + 1;
		name_len = (size_t)(close - p) - 1;
		family = 6;
		if (close + 1 < p + n) {
			if (close[1] != ':')
				return HB_FWD_E_BAD;
			port = close + 2;
			port_len = (size_t)(p + n - port);
		}
	} else {
		const char *colon = memchr(p, ':', n);
		if (colon && memchr(colon + 1, ':', (size_t)(p + n - colon - 1))) {
			if (rfc7239) /* RFC 7239 6: an IPv6 address is always in brackets */
				return HB_FWD_E_BAD;
			family = 6; /* X-Forwarded-For: a bare IPv6 address, no port */
		} else if (colon) {
			name_len = (size_t)(colon - p);
			port = colon + 1;
			port_len = (size_t)(p + n - port);
		}
	}
	if (port && hb_cidr_port_parse(port, port_len, 0, &out->port) < 0) {
		if (!rfc7239 || !obfuscated(port, port_len))
			return HB_FWD_E_BAD;
		out->port = 0;
	}
	if (family == 4 && rfc7239 &&
	    (ieq(name, name_len, "unknown") || obfuscated(name, name_len)))
		return HB_FWD_UNKNOWN;
	if (family == 4 && !rfc7239 && !port && ieq(name, name_len, "unknown"))
		return HB_FWD_UNKNOWN;
	return set_addr(name, name_len, family, out);
}

/* ---- Forwarded elements ------------------------------------------------------------------ */

/* quoted-string without quoted-pairs: returns the content's length, or -1. */
static long quoted(const char *v, size_t n, size_t i, size_t *end)
{
	size_t j = i + 1;

	for (; j < n && v[j] != '"'; j++) {
		unsigned char c = (unsigned char)v[j];
		if (c == '\\' || (c < 0x20 && c != '\t') || c == 0x7f)
			return -1; /* escapes are refused: no valid node, proto or host needs one */
	}
	if (j == n)
		return -1;
	*end = j + 1;
	return (long)(j - i - 1);
}

static int bad(const char **why, const char *reason)
{
	*why = reason;
	return HB_FWD_E_BAD;
}

/* Stores one pair's value in its slot; a parameter seen twice is an error (RFC 7239 4). */
static int store(hb_fwd_elem_t *e, const char *name, size_t nlen, const char *val, size_t vlen,
		 const char **why)
{
	const char **slot = NULL;
	size_t *len = NULL;

	if (ieq(name, nlen, "for"))
		slot = &e->for_v, len = &e->for_len;
	else if (ieq(name, nlen, "proto"))
		slot = &e->proto_v, len = &e->proto_len;
	else if (ieq(name, nlen, "host"))
		slot = &e->host_v, len = &e->host_len;
	else if (ieq(name, nlen, "by"))
		slot = &e->by_v, len = &e->by_len;
	if (!slot)
		return 0; /* an extension parameter: ignored */
	if (*slot)
		return bad(why, "Forwarded: a parameter twice in one element");
	*slot = val;
	*len = vlen;
	return 0;
}

/* token "=" ( token / quoted-string ) at v[*i]; advances *i. */
static int pair(const char *v, size_t n, size_t *i, hb_fwd_elem_t *e, const char **why)
{
	size_t s = *i, vs, vend;
	long vlen;

	while (*i < n && hb_h1_is_tchar((unsigned char)v[*i]))
		(*i)++;
	if (*i == s || *i == n || v[*i] != '=')
		return bad(why, "Forwarded: expected token=value");
	size_t nlen = *i - s;
	vs = ++(*i);
	if (*i < n && v[*i] == '"') {
		if ((vlen = quoted(v, n, *i, &vend)) < 0)
			return bad(why, "Forwarded: bad quoted-string");
		*i = vend;
		vs++;
	} else {
		while (*i < n && hb_h1_is_tchar((unsigned char)v[*i]))
			(*i)++;
		vlen = (long)(*i - vs);
		if (vlen == 0)
			return bad(why, "Forwarded: empty value");
	}
	return store(e, v + s, nlen, v + vs, (size_t)vlen, why);
}

int hb_fwd_elem_next(const char *v, size_t n, size_t *off, hb_fwd_elem_t *e, const char **why)
{
	size_t i = *off;

	memset(e, 0, sizeof(*e));
	while (i < n && (blank(v[i]) || v[i] == ',')) /* empty list elements are allowed */
		i++;
	if (i == n) {
		*off = i;
		return 0;
	}
	for (;;) {
		while (i < n && blank(v[i]))
			i++;
		if (i < n && v[i] != ';' && v[i] != ',' && pair(v, n, &i, e, why) < 0)
			return HB_FWD_E_BAD;
		while (i < n && blank(v[i]))
			i++;
		if (i == n || v[i] == ',')
			break;
		if (v[i] != ';')
			return bad(why, "Forwarded: expected ';' or ',' after a pair");
		i++;
	}
	*off = i < n ? i + 1 : i;
	return 1;
}

/* ---- the walk ---------------------------------------------------------------------------- */

typedef struct walk {
	int nhops;
	int cand;     /* 0: every hop so far trusted; 1: cand_node; 2: a hop without address */
	int first_rc; /* the leftmost hop's parse result */
	hb_fwd_node_t first, cand_node;
	hb_fwd_elem_t first_e, cand_e; /* Forwarded: the elements of those hops */
} walk_t;

static void hop(walk_t *w, int rc, const hb_fwd_node_t *nd, const hb_fwd_elem_t *e,
		const hb_cidr_set_t *trusted)
{
	if (w->nhops++ == 0) {
		w->first_rc = rc;
		w->first = *nd;
		if (e)
			w->first_e = *e;
	}
	if (rc == 0 && hb_cidr_set_match_addr(trusted, &nd->bin))
		return;
	w->cand = rc == 0 ? 1 : 2;
	w->cand_node = *nd;
	if (e)
		w->cand_e = *e;
}

/* The hop the walk chose; returns its element (Forwarded) or NULL, and the address. */
static const hb_fwd_elem_t *chosen(const walk_t *w, hb_fwd_t *out)
{
	const hb_fwd_node_t *nd = NULL;
	const hb_fwd_elem_t *e = NULL;

	if (w->nhops == 0)
		return NULL;
	if (w->cand) {
		e = &w->cand_e;
		nd = w->cand == 1 ? &w->cand_node : NULL;
	} else {
		e = &w->first_e;
		nd = w->first_rc == 0 ? &w->first : NULL;
	}
	if (nd) {
		out->have_addr = 1;
		memcpy(out->addr, nd->addr, sizeof(out->addr));
		out->port = nd->port;
	}
	return e;
}

static int is(const hb_header_t *h, const char *name)
{
	return ieq(h->name, h->name_len, name);
}

/* Every X-Forwarded-For entry, in order. */
static int walk_xff(const hb_request_t *r, const hb_cidr_set_t *trusted, walk_t *w,
		    const char **why)
{
	int rc = 0;

	for (uint32_t k = 0; k < r->nheaders; k++) {
		const hb_header_t *h = &r->headers[k];
		if (!is(h, "x-forwarded-for"))
			continue;
		const char *p = h->value, *end = h->value + h->value_len;
		while (p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *s = p;
			size_t n = (size_t)((comma ? comma : end) - p);
			p = comma ? comma + 1 : end;
			trim(&s, &n);
			if (n == 0)
				continue;
			hb_fwd_node_t nd;
			int nrc = hb_fwd_node_parse(s, n, 0, &nd);
			if (nrc < 0)
				rc = bad(why, "X-Forwarded-For: an entry is not an address");
			hop(w, nrc, &nd, NULL, trusted);
		}
	}
	return rc;
}

/* The rightmost entry of the last field named `name`; NULL when none. */
static const char *last_entry(const hb_request_t *r, const char *name, size_t *n)
{
	const hb_header_t *last = NULL;

	for (uint32_t k = 0; k < r->nheaders; k++)
		if (is(&r->headers[k], name))
			last = &r->headers[k];
	if (!last)
		return NULL;
	const char *p = last->value, *end = p + last->value_len;
	const char *c = memrchr(p, ',', last->value_len);
	const char *s = c ? c + 1 : p;
	*n = (size_t)(end - s);
	trim(&s, n);
	return s;
}

static int apply_host(const char *v, size_t n, hb_fwd_t *out)
{
	if (n == 0 || !hb_h1_host_valid(v, n))
		return -1;
	out->host = v;
	out->host_len = (uint32_t)n;
	return 0;
}

static int resolve_x(const hb_request_t *r, const hb_cidr_set_t *trusted, hb_fwd_t *out,
		     const char **why)
{
	walk_t w = {0};
	int rc = walk_xff(r, trusted, &w, why);
	const char *v;
	size_t n;

	chosen(&w, out);
	if ((v = last_entry(r, "x-forwarded-proto", &n)) && !(out->scheme = hb_fwd_scheme(v, n)))
		rc = bad(why, "X-Forwarded-Proto: not http, https, ws or wss");
	if ((v = last_entry(r, "x-forwarded-host", &n)) && apply_host(v, n, out) < 0)
		rc = bad(why, "X-Forwarded-Host: not a valid host");
	if ((v = last_entry(r, "x-forwarded-port", &n)) &&
	    (hb_cidr_port_parse(v, n, 0, &out->fwd_port) < 0 || out->fwd_port == 0)) {
		out->fwd_port = 0;
		rc = bad(why, "X-Forwarded-Port: not a port number");
	}
	return rc;
}

static int resolve_forwarded(const hb_request_t *r, const hb_cidr_set_t *trusted, hb_fwd_t *out,
			     const char **why)
{
	walk_t w = {0};
	int rc = 0;

	for (uint32_t k = 0; k < r->nheaders; k++) {
		const hb_header_t *h = &r->headers[k];
		if (!is(h, "forwarded"))
			continue;
		size_t off = 0;
		hb_fwd_elem_t e;
		int erc;
		while ((erc = hb_fwd_elem_next(h->value, h->value_len, &off, &e, why)) == 1) {
			hb_fwd_node_t nd = {0};
			int nrc = e.for_v ? hb_fwd_node_parse(e.for_v, e.for_len, 1, &nd)
					  : HB_FWD_UNKNOWN;
			if (nrc < 0)
				rc = bad(why, "Forwarded: a for= value is not a node");
			hop(&w, nrc, &nd, &e, trusted);
		}
		if (erc < 0)
			return HB_FWD_E_BAD; /* the whole field is ignored: nothing applied */
	}
	const hb_fwd_elem_t *e = chosen(&w, out);
	out->used_forwarded = w.nhops > 0;
	if (e && e->proto_v && !(out->scheme = hb_fwd_scheme(e->proto_v, e->proto_len)))
		rc = bad(why, "Forwarded: proto is not http, https, ws or wss");
	if (e && e->host_v && apply_host(e->host_v, e->host_len, out) < 0)
		rc = bad(why, "Forwarded: host is not a valid host");
	return rc;
}

int hb_fwd_resolve(const hb_request_t *req, const hb_cidr_set_t *trusted, hb_fwd_t *out,
		   const char **why)
{
	int has_x = 0;

	memset(out, 0, sizeof(*out));
	for (uint32_t k = 0; k < req->nheaders && !has_x; k++) {
		const hb_header_t *h = &req->headers[k];
		has_x = is(h, "x-forwarded-for") || is(h, "x-forwarded-proto") ||
			is(h, "x-forwarded-host") || is(h, "x-forwarded-port");
	}
	return has_x ? resolve_x(req, trusted, out, why)
		     : resolve_forwarded(req, trusted, out, why);
}
