/* test_overload.c: backpressure (src/core/overload.c and the hub's max_queue_wait check): the
 * 503 head, a late request answered through its stream and skipped by the worker, a fresh one
 * run, and the counters and in-flight sum the io threads read. */
#include "../hb_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hub.h"
#include "core/overload.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static hb_stream_t *new_stream(hb_hub_t *hub, uint64_t t_start)
{
	hb_request_t *req = calloc(1, sizeof(*req));
	hb_stream_t *s = hb_stream_new(hub, 0, req);
	cr_assert_not_null(s);
	s->t_start_ns = t_start;
	return s;
}

static const char *hdr(const hb_response_t *r, const char *name)
{
	for (uint32_t i = 0; i < r->nheaders; i++)
		if (strlen(name) == r->headers[i].name_len &&
		    strncmp(r->headers[i].name, name, r->headers[i].name_len) == 0)
			return r->headers[i].value;
	return NULL;
}

Test(overload, response_head)
{
	hb_response_t *r = hb_overload_response(7);
	cr_assert_not_null(r);
	cr_assert_eq(r->status, 503);
	cr_assert_eq(r->content_length, (int64_t)strlen(HB_OVERLOAD_BODY));
	cr_assert_eq(strncmp(hdr(r, "Retry-After"), "7", 1), 0);
	cr_assert_eq(strncmp(hdr(r, "Content-Length"), "20", 2), 0);
	cr_assert_not_null(hdr(r, "Content-Type"));
	free(r);
}

/* The io side's view of one stream's messages: HEAD 503, BODY, END. */
static void expect_503(hb_hub_t *hub, hb_stream_t *s)
{
	hb_msg_t m;
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_HEAD);
	cr_assert_eq(m.stream, s);
	cr_assert_eq(((hb_response_t *)m.ptr)->status, 503);
	free(m.ptr);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_BODY);
	cr_assert_eq(((hb_chunk_t *)m.ptr)->len, strlen(HB_OVERLOAD_BODY));
	free(m.ptr);
	hb_stream_out_done(s, m.len);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_END);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
}

Test(overload, reject_late_only_past_the_limit)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_overload_t *ov = hb_hub_overload(hub);
	uint64_t now = mono_ns();
	hb_stream_t *s = new_stream(hub, now - 2000000000ull); /* waited 2 s */

	s->worker_idx = 0;
	cr_assert_eq(hb_overload_reject_late(ov, s, now), 0, "off by default");
	ov->max_queue_wait_ns = 3000000000ull;
	cr_assert_eq(hb_overload_reject_late(ov, s, now), 0, "2 s is within 3 s");
	s->t_start_ns = 0;
	ov->max_queue_wait_ns = 1000000000ull;
	cr_assert_eq(hb_overload_reject_late(ov, s, now), 0, "no start time: never late");
	s->t_start_ns = now - 2000000000ull;
	ov->retry_after_s = 3;
	cr_assert_eq(hb_overload_reject_late(ov, s, now), 1);
	cr_assert_eq(atomic_load(&ov->rejected_queue_wait), 1);
	expect_503(hub, s);
	hb_stream_release(s);
	hb_stream_release(s);
	hb_hub_free(hub);
}

Test(overload, worker_skips_late_requests)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_overload_t *ov = hb_hub_overload(hub);
	hb_stream_t *late = new_stream(hub, mono_ns() - 5000000000ull);
	hb_stream_t *fresh = new_stream(hub, mono_ns());
	hb_stream_t *got = NULL;

	ov->max_queue_wait_ns = 1000000000ull;
	atomic_store(&hb_hub_worker(hub, 0)->accepting, 1);
	cr_assert_eq(hb_hub_dispatch(hub, 0, late), 0);
	cr_assert_eq(hb_hub_dispatch(hub, 0, fresh), 0);
	cr_assert_eq(hb_hub_inflight(hub), 2);
	cr_assert_eq(hb_hub_worker_poll(hub, 0, &got), 0);
	cr_assert_eq(got, fresh, "the late one was answered, the fresh one runs");
	cr_assert_eq(atomic_load(&ov->rejected_queue_wait), 1);
	expect_503(hub, late);
	cr_assert_eq(hb_hub_worker_poll(hub, 0, &got), -EAGAIN);
	hb_stream_release(late); /* the io thread's reference (the worker's went with the 503) */
	hb_stream_release(fresh);
	hb_stream_release(fresh);
	hb_hub_free(hub);
}
