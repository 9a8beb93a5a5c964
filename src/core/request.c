/* request.c: see request.h. */
#include "core/request.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void hb_request_free(hb_request_t *r)
{
	if (!r)
		return;
	hb_request_tls_unref(r->tls);
	free(r->extra);
	free(r);
}

hb_request_tls_t *hb_request_tls_ref(hb_request_tls_t *t)
{
	if (t)
		atomic_fetch_add(&t->refs, 1);
	return t;
}

void hb_request_tls_unref(hb_request_tls_t *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	free(t->client_cert_name);
	free(t->client_cert_pem);
	free(t);
}

const char *hb_request_tls_version_name(int version)
{
	return version == 0x0304 ? "TLSv1.3" : version == 0x0303 ? "TLSv1.2" : "TLS";
}

const hb_header_t *hb_request_header(const hb_request_t *r, const char *name)
{
	size_t n = strlen(name);
	for (uint32_t i = 0; i < r->nheaders; i++) {
		const hb_header_t *h = &r->headers[i];
		if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
			return h;
	}
	return NULL;
}
