/* fuzz_forwarded.c: libFuzzer target for the forwarding headers (src/proto/forwarded.c) and the
 * address sets behind forwarded_allow_ips (src/core/cidr.c).
 *
 * Input: byte 0 picks the trusted set (none, loopback, 10/8 + fd00::/8, "*") or, when odd,
 * also parses the first line as an address list; the rest is header lines "Name: value\n"
 * (at most 16). Invariants: a client address found is a valid numeric address, the scheme is
 * "http" or "https", a host is a valid Host value, errors carry a reason.
 */
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"
#include "proto/forwarded.h"
#include "proto/h1_target.h"

#define MAXH 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const hb_fwd_t *f, int rc, const char *why)
{
	hb_cidr_t a;

	if (rc < 0 && !why)
		abort();
	if (f->have_addr && hb_cidr_addr_parse(f->addr, strlen(f->addr), &a) < 0)
		abort();
	if (f->scheme && strcmp(f->scheme, "http") != 0 && strcmp(f->scheme, "https") != 0)
		abort();
	if (f->host && (f->host_len == 0 || !hb_h1_host_valid(f->host, f->host_len)))
		abort();
}

static void list_parse(const char *s, size_t n)
{
	char *z = malloc(n + 1);
	hb_cidr_set_t set;
	const char *why = NULL;

	if (!z)
		return;
	memcpy(z, s, n);
	z[n] = 0;
	if (hb_cidr_set_parse(z, &set, &why) == 0) {
		hb_cidr_set_match(&set, z, n);
		hb_cidr_set_free(&set);
	} else if (!why) {
		abort();
	}
	free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *sets[] = {"", "127.0.0.1,::1", "10.0.0.0/8,fd00::/8,127.0.0.1", "*"};
	hb_header_t h[MAXH];
	hb_request_t *req;
	hb_cidr_set_t trusted = {0};
	const char *why = NULL;
	hb_fwd_t f;

	if (size < 1)
		return 0;
	char *buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	const char *p = buf, *end = buf + size - 1;
	if (data[0] & 1) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		list_parse(p, (size_t)((nl ? nl : end) - p));
	}
	if (sets[(data[0] >> 1) & 3][0])
		hb_cidr_set_parse(sets[(data[0] >> 1) & 3], &trusted, &why);
	req = calloc(1, sizeof(*req));
	req->headers = h;
	while (p < end && req->nheaders < MAXH) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end, *colon = memchr(p, ':', (size_t)(e - p));
		if (colon) {
			const char *v = colon + 1;
			while (v < e && *v == ' ')
				v++;
			h[req->nheaders++] =
				(hb_header_t){p, v, (uint32_t)(colon - p), (uint32_t)(e - v)};
		}
		p = e + 1;
	}
	why = NULL;
	int rc = hb_fwd_resolve(req, &trusted, &f, &why);
	check(&f, rc, why);
	free(req);
	hb_cidr_set_free(&trusted);
	free(buf);
	return 0;
}
