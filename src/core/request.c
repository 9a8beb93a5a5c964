/* request.c: see request.h. */
#include "core/request.h"

#include <string.h>
#include <strings.h>

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
