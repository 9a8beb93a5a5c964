/* fuzz_cluster_frame.c: libFuzzer target for the cluster link framing and the auth handshake
 * messages (src/cluster/frame.c, auth.c).
 *
 * Input: byte 0 picks the limits (low bits: max_frame, max_streams), byte 1 the feed step
 * (0: all at once), the rest is fed to a parser. Every message it yields is also handed to a
 * server-side and a client-side auth state machine as whatever frame type it came in, and a
 * SWIM frame to a membership state machine.
 * Invariants checked: a message never exceeds the limits and is a valid codec value, errors carry
 * a reason and are sticky, reassembly never holds more than max_streams messages.
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_cluster_frame.c
 *        src/cluster/frame.c src/cluster/auth.c src/cluster/swim.c src/cluster/swim_gossip.c
 *        src/cluster/swim_msg.c src/core/codec.c -lwolfssl -lm
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/auth.h"
#include "cluster/frame.h"
#include "cluster/swim.h"
#include "core/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void poke_auth(const hb_frame_msg_t *m)
{
	static const uint8_t nonce[HB_AUTH_NONCE_SIZE] = {1};
	hb_auth_t a;
	hb_cbuf_t b;
	uint8_t t;
	const char *why = NULL;
	hb_cbuf_init(&b, NULL, 0);
	for (int role = 0; role < 2; role++) {
		hb_auth_init(&a, role ? HB_AUTH_SERVER : HB_AUTH_CLIENT, "fuzz@x", "cookie", 6,
			     nonce);
		if (role == 0 && hb_auth_start(&a, &b, &t) != 0)
			abort();
		int rc = hb_auth_input(&a, m->type, m->data, m->len, &b, &t, &why);
		if (rc < 0 && !why)
			abort();
		if (rc & HB_AUTH_DONE) /* one message can never complete a handshake */
			abort();
		hb_auth_clear(&a);
	}
	hb_cbuf_free(&b);
}

static void poke_swim(const hb_frame_msg_t *m)
{
	hb_swim_config_t c = {.name = "fuzz@x", .addr = "127.0.0.1:7946", .seed = 1};
	hb_swim_t *s = hb_swim_new(&c, 0);
	if (!s)
		return;
	int rc = hb_swim_input(s, 0, m->data, m->len);
	if (rc != 0 && rc != -EBADMSG && rc != -ENOMEM)
		abort();
	for (int64_t t = 0; t < 3000; t += 250)
		hb_swim_tick(s, t);
	hb_swim_out_t *o;
	while ((o = hb_swim_pop_out(s))) {
		if (hb_codec_validate(o->data, o->len, 0) != 0)
			abort();
		free(o);
	}
	hb_swim_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	hb_frame_limits_t lim = {
		.max_frame = 64u << (data[0] & 7),
		.max_message = 4096,
		.max_streams = 1 + ((data[0] >> 3) & 3),
	};
	size_t step = data[1];
	data += 2;
	size -= 2;
	hb_frame_parser_t *p = hb_frame_parser_new(&lim);
	if (!p)
		return 0;
	size_t off = 0;
	int err = 0;
	const char *why = NULL;
	while (off < size && !err) {
		size_t n = step && step < size - off ? step : size - off;
		size_t done = 0;
		while (done < n) {
			hb_frame_msg_t m;
			size_t used;
			int rc = hb_frame_feed(p, data + off + done, n - done, &used, &m, &why);
			if (used > n - done)
				abort();
			done += used;
			if (rc < 0) {
				if (!why)
					abort();
				err = rc;
				break;
			}
			if (rc == 0) {
				if (done != n)
					abort();
				break;
			}
			if (m.len > lim.max_message || m.type == 0 || m.type > HB_FRAME_TYPE_MAX)
				abort();
			if (hb_codec_validate(m.data, m.len, 0) != 0)
				abort();
			poke_auth(&m);
			if (m.type == HB_FRAME_SWIM)
				poke_swim(&m);
		}
		if (hb_frame_parser_partial(p) > lim.max_streams)
			abort();
		off += n;
	}
	if (err) {
		hb_frame_msg_t m;
		size_t used;
		const char *why2 = NULL;
		uint8_t x = 0;
		if (hb_frame_feed(p, &x, 1, &used, &m, &why2) != err || why2 != why)
			abort();
	}
	hb_frame_parser_free(p);
	return 0;
}
