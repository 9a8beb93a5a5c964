#include "python/resphead.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar. */
int hb_resphead_is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int lower_eq(const char *s, size_t len, const char *lit)
{
	return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* Connection, Transfer-Encoding and friends describe the hop, which the io side owns. */
static int is_hop_by_hop(const char *n, size_t len)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
		"te",	      "trailer",    "trailers",		  "transfer-encoding",
		"upgrade",    NULL};

	for (int i = 0; hop[i]; i++)
		if (lower_eq(n, len, hop[i]))
			return 1;
	return 0;
}

/* Digits only, at most 18 of them, so the value fits an int64 without an overflow check. */
static int parse_length(const char *v, size_t len, int64_t *out)
{
	int64_t n = 0;

	if (len == 0 || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	*out = n;
	return 0;
}

/* Reads what the headers say about the response: flags, Content-Length, which to keep.
 * Returns the number kept, or -1 with an exception set. */
Py_ssize_t hb_resphead_scan(hb_resphead_hdr_t *h, Py_ssize_t n, uint32_t *flags, int64_t *clen)
{
	Py_ssize_t kept = 0;

	for (Py_ssize_t i = 0; i < n; i++) {
		int64_t v;

		if (lower_eq(h[i].name, h[i].name_len, "content-length")) {
			if (parse_length(h[i].value, h[i].value_len, &v) < 0 ||
			    (*clen >= 0 && *clen != v)) {
				PyErr_SetString(PyExc_ValueError, "invalid Content-Length header");
				return -1;
			}
			if (*clen == v)
				continue; /* a repeated identical value: keep one */
			*clen = v;
		} else if (is_hop_by_hop(h[i].name, h[i].name_len)) {
			if (lower_eq(h[i].name, h[i].name_len, "connection") &&
			    lower_eq(h[i].value, h[i].value_len, "close"))
				*flags |= HB_RESP_CLOSE;
			continue;
		} else if (lower_eq(h[i].name, h[i].name_len, "date")) {
			*flags |= HB_RESP_HAS_DATE;
		} else if (lower_eq(h[i].name, h[i].name_len, "server")) {
			*flags |= HB_RESP_HAS_SERVER;
		}
		h[kept++] = h[i];
	}
	return kept;
}

/* Copies the kept headers into one allocation. */
hb_response_t *hb_resphead_pack(int code, const hb_resphead_hdr_t *h, size_t n, uint32_t flags,
				int64_t clen)
{
	/* data[] follows an odd-sized head: align the header array inside it. */
	size_t pad =
		(_Alignof(hb_header_t) - offsetof(hb_response_t, data) % _Alignof(hb_header_t)) %
		_Alignof(hb_header_t);
	size_t bytes = sizeof(hb_response_t) + pad + (size_t)n * sizeof(hb_header_t);
	hb_response_t *r;
	char *p;

	for (size_t i = 0; i < n; i++)
		bytes += h[i].name_len + h[i].value_len + 2;
	r = malloc(bytes);
	if (!r)
		return NULL;
	r->status = code;
	r->nheaders = (uint32_t)n;
	r->content_length = clen;
	r->flags = flags;
	r->headers = (hb_header_t *)(void *)(r->data + pad);
	p = r->data + pad + (size_t)n * sizeof(hb_header_t);
	for (size_t i = 0; i < n; i++) {
		hb_header_t *o = &r->headers[i];

		memcpy(p, h[i].name, h[i].name_len);
		p[h[i].name_len] = '\0';
		o->name = p;
		o->name_len = (uint32_t)h[i].name_len;
		p += h[i].name_len + 1;
		memcpy(p, h[i].value, h[i].value_len);
		p[h[i].value_len] = '\0';
		o->value = p;
		o->value_len = (uint32_t)h[i].value_len;
		p += h[i].value_len + 1;
	}
	return r;
}
