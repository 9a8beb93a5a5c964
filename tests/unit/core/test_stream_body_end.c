/* test_stream_body_end.c: hb_stream_send_body_end, a streamed response's last body bytes with its
 * end posted as one batch (asgi_http.c joins the pieces it held with the end): the messages and
 * their order, the output accounting, the end taken once, the bytes alone without `end`, and the
 * refusals (gone, ended before). The test thread plays both sides (nothing blocks). */
#include "stream_harness.h"

#include <errno.h>

Test(stream_body_end, bytes_then_end_in_order)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	hb_msg_t m;

	cr_assert_eq(hb_stream_send_body_end(s, "tail", 4, 1, HB_END_ABORT), 0);
	cr_assert_eq(atomic_load(&s->out_pending), 4, "the bytes count against the watermark");
	pop_body(hub, s, "tail");
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_END);
	cr_assert_eq(m.aux, HB_END_ABORT);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(hb_stream_end(s, 0), -EALREADY, "the end was taken");
	cr_assert_eq(hb_stream_send_body_end(s, "x", 1, 1, 0), -EALREADY);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN, "a refused call posts nothing");
	cr_assert_eq(atomic_load(&s->out_pending), 0);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream_body_end, without_end_the_bytes_alone_and_nothing_for_nothing)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	hb_msg_t m;

	cr_assert_eq(hb_stream_send_body_end(s, "ab", 2, 0, 0), 0);
	pop_body(hub, s, "ab");
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(hb_stream_send_body_end(s, NULL, 0, 0, 0), 0);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN, "no bytes, no end: nothing posted");
	cr_assert_eq(hb_stream_send_body_end(s, NULL, 0, 1, 0), 0);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_END, "no bytes: the end alone");
	release_both(s);
	hb_hub_free(hub);
}

Test(stream_body_end, refused_when_gone)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	hb_msg_t m;

	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	cr_assert_eq(hb_stream_send_body_end(s, "x", 1, 1, 0), -ECONNRESET);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(atomic_load(&s->out_pending), 0);
	cr_assert_eq(atomic_load(&s->state) & HB_ST_ENDED, 0, "a refused end is not taken");
	release_both(s);
	hb_hub_free(hub);
}
