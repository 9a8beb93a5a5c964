/* overload.c: see overload.h. */
#include "core/overload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hb_response_t *hb_overload_response(int64_t retry_after_s)
{
	size_t hoff = (offsetof(hb_response_t, data) + _Alignof(hb_header_t) - 1) /
		      _Alignof(hb_header_t) * _Alignof(hb_header_t);
	hb_response_t *r = calloc(1, hoff + 3 * sizeof(hb_header_t) + 64);
	if (!r)
		return NULL;
	hb_header_t *h = (hb_header_t *)((char *)r + hoff);
	char *ra = (char *)(h + 3), *cl = ra + 24;
	snprintf(ra, 24, "%lld", (long long)retry_after_s);
	snprintf(cl, 24, "%zu", sizeof(HB_OVERLOAD_BODY) - 1);
	h[0] = (hb_header_t){"Retry-After", ra, 11, (uint32_t)strlen(ra)};
	h[1] = (hb_header_t){"Content-Type", "text/plain; charset=utf-8", 12, 25};
	h[2] = (hb_header_t){"Content-Length", cl, 14, (uint32_t)strlen(cl)};
	r->status = 503;
	r->headers = h;
	r->nheaders = 3;
	r->content_length = (int64_t)sizeof(HB_OVERLOAD_BODY) - 1;
	return r;
}

int hb_overload_reject_late(hb_overload_t *ov, hb_stream_t *s, uint64_t now_ns)
{
	if (!ov->max_queue_wait_ns || !s->t_start_ns || now_ns < s->t_start_ns ||
	    now_ns - s->t_start_ns <= ov->max_queue_wait_ns)
		return 0;
	hb_response_t *r = hb_overload_response(ov->retry_after_s);
	if (!r)
		return 0; /* out of memory: run it late rather than drop it */
	atomic_fetch_add_explicit(&ov->rejected_queue_wait, 1, memory_order_relaxed);
	if (hb_stream_send_head(s, r) == 0)
		hb_stream_send_body(s, HB_OVERLOAD_BODY, sizeof(HB_OVERLOAD_BODY) - 1);
	hb_stream_end(s, 0);
	return 1;
}
