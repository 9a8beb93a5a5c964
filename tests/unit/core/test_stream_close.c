/* test_stream_close.c: hb_stream_msg_push_close, the io side's "the channel is closing" for
 * the worker (both WebSocket connection protocols use it): the close message's layout and its
 * place behind queued messages, an empty reason, and the fallback to HB_ST_CLIENT_GONE when
 * the message queue is full. The test thread plays both sides (nothing blocks). */
#include "stream_harness.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

Test(stream_close, close_follows_queued_messages_with_code_and_reason)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_CHANNEL);
	hb_chunk_t *msg;
	uint32_t kind;

	cr_assert_eq(hb_stream_msg_push(s, HB_MSGK_TEXT, chunk_of("before")), 0);
	cr_assert_eq(hb_stream_msg_push_close(s, 4321, "bye now", 7), 0);
	cr_assert_eq(atomic_load(&s->state) & HB_ST_CLIENT_GONE, 0, "a queued close is no gone");
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), 0);
	cr_assert_eq(kind, HB_MSGK_TEXT, "messages sent before the close come first");
	free(msg);
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), 0);
	cr_assert_eq(kind, HB_MSGK_CLOSE);
	cr_assert_eq(msg->len, 9);
	cr_assert_eq((uint8_t)msg->data[0], 4321 >> 8, "code, big-endian");
	cr_assert_eq((uint8_t)msg->data[1], 4321 & 0xff);
	cr_assert_arr_eq(msg->data + 2, "bye now", 7);
	free(msg);
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), -EAGAIN);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream_close, empty_reason_is_the_code_alone)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_CHANNEL);
	hb_chunk_t *msg;
	uint32_t kind;

	cr_assert_eq(hb_stream_msg_push_close(s, 1006, NULL, 0), 0);
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), 0);
	cr_assert_eq(kind, HB_MSGK_CLOSE);
	cr_assert_eq(msg->len, 2);
	cr_assert_eq((uint8_t)msg->data[0], 0x03);
	cr_assert_eq((uint8_t)msg->data[1], 0xee);
	free(msg);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream_close, full_queue_falls_back_to_client_gone)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_CHANNEL);
	hb_chunk_t *msg;
	uint32_t kind;
	unsigned n = 0;

	while (n < 4 * HB_STREAM_BODY_SLOTS) {
		hb_chunk_t *c = chunk_of("m");
		if (hb_stream_msg_push(s, HB_MSGK_TEXT, c) < 0) {
			free(c);
			break;
		}
		n++;
	}
	cr_assert_lt(n, 4 * HB_STREAM_BODY_SLOTS, "the queue has a bound");
	cr_assert_eq(hb_stream_msg_push_close(s, 1000, "x", 1), -EAGAIN);
	cr_assert_neq(atomic_load(&s->state) & HB_ST_CLIENT_GONE, 0, "the worker still hears it");
	/* what was queued is delivered, then the end: no close message, a disconnect */
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), 0);
		cr_assert_eq(kind, HB_MSGK_TEXT);
		free(msg);
	}
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), -ECONNRESET);
	release_both(s);
	hb_hub_free(hub);
}
