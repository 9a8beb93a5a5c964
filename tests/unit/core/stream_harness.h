/* stream_harness.h: what the hb_stream tests (test_stream.c, test_stream_close.c,
 * test_stream_head_body.c) share: a stream already "dispatched" to worker 0 of a 1x1 hub, its
 * release (the io's and the worker's references), a chunk holding a string, a response head
 * or trailer section, and the io side's pop of one body message. The test thread calls them; what
 * they return is the test's to free. Header-only (static inline) for those test files and
 * test_stream_body_end.c. */
#ifndef HB_TESTS_UNIT_CORE_STREAM_HARNESS_H
#define HB_TESTS_UNIT_CORE_STREAM_HARNESS_H

#include "../hb_test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hub.h"
#include "core/stream.h"

/* A stream on io 0 already "dispatched" to worker 0 of a 1x1 hub; flags: HB_REQ_*. */
static inline hb_stream_t *new_stream(hb_hub_t *hub, uint32_t flags)
{
	hb_request_t *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	r->flags = flags;
	r->content_length = -1;
	hb_stream_t *s = hb_stream_new(hub, 0, r);
	cr_assert_not_null(s);
	s->worker_idx = 0;
	return s;
}

static inline void release_both(hb_stream_t *s)
{
	hb_stream_release(s);
	hb_stream_release(s);
}

static inline hb_chunk_t *chunk_of(const char *text)
{
	size_t n = strlen(text);
	hb_chunk_t *c = malloc(sizeof(*c) + n);

	cr_assert_not_null(c);
	c->len = n;
	memcpy(c->data, text, n);
	return c;
}

/* A response head (or trailer section) with the status and no fields. */
static inline hb_response_t *fields_of(int status)
{
	hb_response_t *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	r->status = status;
	r->content_length = -1;
	return r;
}

/* Pops the next io message: a body of s carrying exactly want; frees it and counts it sent. */
static inline void pop_body(hb_hub_t *hub, hb_stream_t *s, const char *want)
{
	hb_msg_t m;
	size_t n = strlen(want);

	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_BODY);
	cr_assert_eq(m.stream, s);
	cr_assert_eq(m.len, n);
	cr_assert_eq(((hb_chunk_t *)m.ptr)->len, n);
	cr_assert_arr_eq(((hb_chunk_t *)m.ptr)->data, want, n);
	free(m.ptr);
	hb_stream_out_done(s, n);
}

#endif
