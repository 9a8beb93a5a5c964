/* test_stream_head_body.c: hb_stream_send_head_body, a response's head with its first body bytes
 * (and its end) posted as one batch: the messages and their order, the output accounting, the
 * state bits that make a later head or end a no-op, and the refusals (gone, head sent before).
 * That the io thread takes a batch whole is test_spsc's (push_n). The test thread plays both
 * sides (nothing blocks). */
#include "stream_harness.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

Test(stream_head_body, head_body_and_end_in_order)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	hb_response_t *resp = fields_of(200);
	hb_msg_t m;

	cr_assert_eq(hb_stream_send_head_body(s, resp, "hello", 5, 1, HB_END_ABORT), 0);
	cr_assert_eq(atomic_load(&s->out_pending), 5, "the body counts against the watermark");
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_HEAD);
	cr_assert_eq(m.ptr, resp);
	cr_assert_eq(m.stream, s);
	free(m.ptr);
	pop_body(hub, s, "hello");
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_END);
	cr_assert_eq(m.aux, HB_END_ABORT);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	/* head and end are taken: later ones are refused */
	cr_assert_eq(hb_stream_send_head(s, fields_of(500)), -EALREADY);
	cr_assert_eq(hb_stream_end(s, 0), -EALREADY);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream_head_body, no_bytes_no_end_is_the_head_alone)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	hb_msg_t m;

	cr_assert_eq(hb_stream_send_head_body(s, fields_of(204), NULL, 0, 0, 0), 0);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_HEAD);
	free(m.ptr);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(atomic_load(&s->out_pending), 0);
	cr_assert_eq(hb_stream_end(s, 0), 0, "the end is still the worker's to post");
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_END);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream_head_body, refused_when_gone_or_head_sent)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	hb_msg_t m;

	cr_assert_eq(hb_stream_send_head(s, fields_of(200)), 0);
	cr_assert_eq(hb_stream_send_head_body(s, fields_of(200), "x", 1, 1, 0), -EALREADY);
	cr_assert_eq(atomic_load(&s->out_pending), 0, "nothing counted");
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_HEAD);
	free(m.ptr);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN, "nothing of the refused batch posted");
	cr_assert_eq(hb_stream_end(s, 0), 0, "a refused batch does not take the end");
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	release_both(s);

	s = new_stream(hub, 0);
	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	cr_assert_eq(hb_stream_send_head_body(s, fields_of(200), "x", 1, 1, 0), -ECONNRESET);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(atomic_load(&s->state) & HB_ST_HEAD_SENT, 0);
	release_both(s);
	hb_hub_free(hub);
}
