/* test_ws_deflate.c: permessage-deflate (src/proto/ws_deflate.c) and its use by the frame
 * parser and writer (src/proto/ws.c): negotiation, the RFC 7692 examples, round trips, bombs.
 * Every parser input is fed whole, one byte at a time and in 7-byte pieces. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "proto/ws.h"
#include "proto/ws_deflate.h"
#include "ws_harness.h"

static const size_t steps[] = {0, 1, 7};
static const hb_ws_deflate_params_t plain = {0};

/* Asserts that every split yields exactly the given text messages, in order. */
static void expect_texts(const uint8_t *in, size_t len, const hb_ws_deflate_params_t *params,
			 const char *const *texts, int count)
{
	result_t r;

	for (size_t s = 0; s < 3; s++) {
		run(in, len, steps[s], 0, params, &r);
		cr_assert_eq(r.rc, 0, "step %zu: %s", steps[s], r.why ? r.why : "");
		cr_assert_eq(r.n, count, "step %zu", steps[s]);
		for (int i = 0; i < count; i++) {
			cr_assert_eq(r.ev[i].type, HB_WS_EV_TEXT);
			cr_assert_eq(r.ev[i].len, strlen(texts[i]));
			cr_assert(!memcmp(r.ev[i].data, texts[i], r.ev[i].len));
		}
		result_free(&r);
	}
}

static void expect_close(const uint8_t *in, size_t len, uint64_t max,
			 const hb_ws_deflate_params_t *params, uint16_t code)
{
	result_t r;

	for (size_t s = 0; s < 3; s++) {
		run(in, len, steps[s], max, params, &r);
		cr_assert_lt(r.rc, 0, "step %zu", steps[s]);
		cr_assert_eq(hb_ws_error_close_code(r.rc), code, "step %zu: %s", steps[s], r.why);
		result_free(&r);
	}
}

/* ---- negotiation ---- */

static int nego(const char *offer, hb_ws_deflate_params_t *p, char *resp)
{
	hb_ws_deflate_config_t c;

	hb_ws_deflate_config_default(&c);
	c.server_max_window_bits = 15;
	if (!hb_ws_deflate_negotiate(&c, offer, strlen(offer), p))
		return 0;
	hb_ws_deflate_response(p, resp, 160);
	return 1;
}

Test(ws_deflate_negotiate, accepted_offers)
{
	hb_ws_deflate_params_t p;
	char resp[160];

	cr_assert(nego("permessage-deflate", &p, resp));
	cr_assert_str_eq(resp, "permessage-deflate");
	cr_assert(nego("permessage-deflate; client_max_window_bits", &p, resp));
	cr_assert_str_eq(resp, "permessage-deflate");
	cr_assert(nego("permessage-deflate;client_max_window_bits=10", &p, resp));
	cr_assert_str_eq(resp, "permessage-deflate; client_max_window_bits=10");
	cr_assert_eq(p.client_max_window_bits, 10);
	cr_assert(nego("Permessage-Deflate; server_max_window_bits=\"8\"; "
		       "client_no_context_takeover; server_no_context_takeover",
		       &p, resp));
	cr_assert_str_eq(resp, "permessage-deflate; server_no_context_takeover; "
			       "client_no_context_takeover; server_max_window_bits=8");
	cr_assert(nego("x-webkit-deflate-frame, permessage-deflate; foo=1, "
		       "permessage-deflate; server_max_window_bits=15",
		       &p, resp),
		  "first valid offer wins");
	cr_assert_str_eq(resp, "permessage-deflate; server_max_window_bits=15");
}

Test(ws_deflate_negotiate, declined_offers)
{
	static const char *bad[] = {
		"permessage-deflate; server_max_window_bits",
		"permessage-deflate; server_max_window_bits=16",
		"permessage-deflate; server_max_window_bits=7",
		"permessage-deflate; server_max_window_bits=010",
		"permessage-deflate; client_max_window_bits=16",
		"permessage-deflate; server_no_context_takeover=1",
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
		"permessage-deflate; unknown",
		"permessage-deflate; server_max_window_bits=\"1\\0\"",
		"permessage-deflate; ; x",
		"permessage-deflate; server_max_window_bits=\"10",
		"x-webkit-deflate-frame",
		"",
	};
	hb_ws_deflate_params_t p;
	char resp[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(nego(bad[i], &p, resp), 0, "%s", bad[i]);
}

Test(ws_deflate_negotiate, config)
{
	hb_ws_deflate_config_t c;
	hb_ws_deflate_params_t p;
	char resp[160];
	static const char offer[] = "permessage-deflate; client_max_window_bits";

	hb_ws_deflate_config_default(&c);
	cr_assert(hb_ws_deflate_negotiate(&c, offer, sizeof(offer) - 1, &p));
	cr_assert_eq(p.server_max_window_bits, 12, "default as websockets: 12");
	c.client_max_window_bits = 9;
	c.server_no_context_takeover = 1;
	cr_assert(hb_ws_deflate_negotiate(&c, offer, sizeof(offer) - 1, &p));
	hb_ws_deflate_response(&p, resp, sizeof(resp));
	cr_assert_str_eq(resp, "permessage-deflate; server_no_context_takeover; "
			       "server_max_window_bits=12; client_max_window_bits=9");
	cr_assert_eq(hb_ws_deflate_response(&p, NULL, 0), strlen(resp), "size needed");
	c.enabled = 0;
	cr_assert_eq(hb_ws_deflate_negotiate(&c, offer, sizeof(offer) - 1, &p), 0);
}

/* ---- RFC 7692 section 7.2.3 examples ---- */

Test(ws_deflate_rfc7692, one_block)
{
	static const uint8_t f[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
	static const char *const texts[] = {"Hello"};
	uint8_t in[64];
	size_t n = mask_frame(f, sizeof(f), in);

	expect_texts(in, n, &plain, texts, 1);
	expect_close(in, n, 0, NULL, 1002); /* RSV1 without the extension */
}

Test(ws_deflate_rfc7692, fragmented)
{
	static const uint8_t f1[] = {0x41, 0x03, 0xf2, 0x48, 0xcd};
	static const uint8_t f2[] = {0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00};
	static const char *const texts[] = {"Hello"};
	uint8_t in[64];
	size_t n = mask_frame(f1, sizeof(f1), in);

	n += mask_frame(f2, sizeof(f2), in + n);
	expect_texts(in, n, &plain, texts, 1);
}

Test(ws_deflate_rfc7692, shared_window)
{
	static const uint8_t f1[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
	static const uint8_t f2[] = {0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00};
	static const char *const texts[] = {"Hello", "Hello"};
	hb_ws_deflate_params_t nct = {.client_no_context_takeover = 1};
	uint8_t in[64];
	size_t n = mask_frame(f1, sizeof(f1), in);

	n += mask_frame(f2, sizeof(f2), in + n);
	expect_texts(in, n, &plain, texts, 2);
	/* Without context takeover the back-reference has nothing to point at. */
	expect_close(in, n, 0, &nct, 1002);
}

Test(ws_deflate_rfc7692, stored_final_and_two_blocks)
{
	static const uint8_t stored[] = {0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff,
					 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
	static const uint8_t bfinal[] = {0xc1, 0x08, 0xf3, 0x48, 0xcd,
					 0xc9, 0xc9, 0x07, 0x00, 0x00};
	static const uint8_t two[] = {0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00,
				      0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
	static const char *const texts[] = {"Hello", "Hello", "Hello", "Hello"};
	uint8_t in[128];
	size_t n = mask_frame(stored, sizeof(stored), in);

	n += mask_frame(bfinal, sizeof(bfinal), in + n);
	n += mask_frame(two, sizeof(two), in + n);
	n += mask_frame(stored, sizeof(stored), in + n);
	expect_texts(in, n, &plain, texts, 4);
}

Test(ws_deflate_rfc7692, empty_messages)
{
	static const uint8_t empty0[] = {0xc1, 0x01, 0x00}; /* the RFC's single 0x00 */
	static const uint8_t none[] = {0xc1, 0x00};
	static const uint8_t f[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
	static const char *const texts[] = {"", "", "Hello"};
	uint8_t in[64];
	size_t n = mask_frame(empty0, sizeof(empty0), in);

	n += mask_frame(none, sizeof(none), in + n);
	n += mask_frame(f, sizeof(f), in + n);
	expect_texts(in, n, &plain, texts, 3);
}

/* A compressed message with no payload at all, first on the connection: the message buffer is
 * still unallocated (found by tests/fuzz/fuzz_ws.c: NULL + 0 under clang's UBSan). */
Test(ws_deflate_rfc7692, empty_first_message)
{
	static const uint8_t none[] = {0xc1, 0x00};
	static const uint8_t f[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
	static const char *const texts[] = {"", "Hello"};
	uint8_t in[64];
	size_t n = mask_frame(none, sizeof(none), in);

	n += mask_frame(f, sizeof(f), in + n);
	expect_texts(in, n, &plain, texts, 2);
}

/* ---- protocol rules with the extension ---- */

Test(ws_deflate_rules, rsv1_only_on_first_data_frame)
{
	static const uint8_t f1[] = {0x41, 0x03, 0xf2, 0x48, 0xcd};
	static const uint8_t f2[] = {0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00}; /* RSV1 on CONT */
	static const uint8_t ping[] = {0xc9, 0x00};			  /* RSV1 on PING */
	uint8_t in[64];
	size_t n = mask_frame(f1, sizeof(f1), in);

	n += mask_frame(f2, sizeof(f2), in + n);
	expect_close(in, n, 0, &plain, 1002);
	n = mask_frame(ping, sizeof(ping), in);
	expect_close(in, n, 0, &plain, 1002);
}

Test(ws_deflate_rules, corrupt_data_1002)
{
	static const uint8_t f[] = {0xc1, 0x04, 0xff, 0xff, 0xff, 0xff};
	uint8_t in[64];
	size_t n = mask_frame(f, sizeof(f), in);

	expect_close(in, n, 0, &plain, 1002);
}

/* ---- codec ---- */

static size_t compress_frame(hb_ws_deflate_t *d, int op, const void *msg, size_t len, uint8_t *in,
			     hb_ws_buf_t *out)
{
	size_t start;

	cr_assert_eq(hb_ws_encode_message(out, &start, (unsigned)op, msg, len, d), 0);
	cr_assert_eq(out->data[start] & 0x40, 0x40, "RSV1 set");
	return mask_frame(out->data + start, out->len - start, in);
}

static void round_trip(const hb_ws_deflate_params_t *params)
{
	static const char *const texts[] = {
		"Hello", "Hello", "",
		"a longer message with Hello in it, Hello again, \xe2\x82\xac", "Hello"};
	hb_ws_deflate_t *d = hb_ws_deflate_new(params, 6, 8);
	hb_ws_buf_t out = {0};
	uint8_t *in = malloc(4096);
	size_t n = 0;

	for (int i = 0; i < 5; i++)
		n += compress_frame(d, HB_WS_OP_TEXT, texts[i], strlen(texts[i]), in + n, &out);
	expect_texts(in, n, params, texts, 5);
	hb_ws_buf_free(&out);
	hb_ws_deflate_free(d);
	free(in);
}

Test(ws_deflate_codec, round_trips)
{
	hb_ws_deflate_params_t p = {0};

	round_trip(&p);
	p.server_no_context_takeover = 1;
	p.client_no_context_takeover = 1;
	round_trip(&p);
	p = (hb_ws_deflate_params_t){.server_max_window_bits = 8, .client_max_window_bits = 8};
	round_trip(&p);
	p = (hb_ws_deflate_params_t){.server_max_window_bits = 10, .client_max_window_bits = 12};
	round_trip(&p);
}

Test(ws_deflate_codec, takeover_shrinks_repeats)
{
	static const char msg[] = "a message that repeats itself, a message that repeats itself";
	hb_ws_deflate_params_t keep = {0}, reset = {.server_no_context_takeover = 1};
	hb_ws_deflate_t *a = hb_ws_deflate_new(&keep, 6, 8), *b = hb_ws_deflate_new(&reset, 6, 8);
	hb_ws_buf_t out = {0};
	size_t first, second;

	cr_assert_eq(hb_ws_deflate_compress(a, msg, sizeof(msg) - 1, 0, &out), 0);
	first = out.len;
	cr_assert_eq(hb_ws_deflate_compress(a, msg, sizeof(msg) - 1, 0, &out), 0);
	second = out.len;
	cr_assert_lt(second, first, "context takeover reuses the window");
	cr_assert_eq(hb_ws_deflate_compress(b, msg, sizeof(msg) - 1, 0, &out), 0);
	first = out.len;
	cr_assert_eq(hb_ws_deflate_compress(b, msg, sizeof(msg) - 1, 0, &out), 0);
	cr_assert_eq(out.len, first, "no takeover: every message alone");
	hb_ws_buf_free(&out);
	hb_ws_deflate_free(a);
	hb_ws_deflate_free(b);
}

/* The 8-bit window promise holds: what we send inflates with a 256-byte window. */
Test(ws_deflate_codec, window_8_is_honoured)
{
	hb_ws_deflate_params_t p = {.server_max_window_bits = 8};
	hb_ws_deflate_t *d = hb_ws_deflate_new(&p, 9, 9);
	hb_ws_buf_t out = {0};
	uint8_t *msg = malloc(100000), *back = malloc(100000);
	z_stream z = {0};

	for (size_t i = 0; i < 100000; i++)
		msg[i] = (uint8_t)("abcdefghij"[(i * i) % 10] + (i % 300 == 0));
	cr_assert_eq(hb_ws_deflate_compress(d, msg, 100000, 0, &out), 0);
	cr_assert_eq(hb_ws_buf_reserve(&out, 4), 0);
	memcpy(out.data + out.len, "\x00\x00\xff\xff", 4);
	cr_assert_eq(inflateInit2(&z, -8), Z_OK);
	z.next_in = out.data;
	z.avail_in = (uInt)out.len + 4;
	z.next_out = back;
	z.avail_out = 100000;
	cr_assert(inflate(&z, Z_SYNC_FLUSH) >= 0);
	cr_assert_eq(z.total_out, 100000);
	cr_assert(!memcmp(msg, back, 100000));
	inflateEnd(&z);
	hb_ws_buf_free(&out);
	hb_ws_deflate_free(d);
	free(msg);
	free(back);
}

Test(ws_deflate_codec, large_binary_round_trip)
{
	hb_ws_deflate_params_t p = {0};
	hb_ws_deflate_t *d = hb_ws_deflate_new(&p, 6, 8);
	hb_ws_buf_t out = {0};
	size_t len = 1u << 20, n;
	uint8_t *msg = malloc(len), *in = malloc(len + 4096);
	result_t r;

	for (size_t i = 0; i < len; i++)
		msg[i] = (uint8_t)(i % 251 ^ i >> 12);
	n = compress_frame(d, HB_WS_OP_BINARY, msg, len, in, &out);
	for (size_t s = 0; s < 3; s++) {
		run(in, n, steps[s], 0, &p, &r);
		cr_assert_eq(r.rc, 0);
		cr_assert(r.n == 1 && r.ev[0].type == HB_WS_EV_BINARY && r.ev[0].len == len);
		cr_assert(!memcmp(r.ev[0].data, msg, len));
		result_free(&r);
	}
	run(in, n, 0, len - 1, &p, &r);
	cr_assert_eq(r.rc, HB_WS_E_TOO_BIG, "one byte over the limit");
	result_free(&r);
	hb_ws_buf_free(&out);
	hb_ws_deflate_free(d);
	free(msg);
	free(in);
}

/* ---- bombs and bad text ---- */

Test(ws_deflate_limits, bomb_1009_quickly)
{
	hb_ws_deflate_params_t p = {0};
	hb_ws_deflate_t *d = hb_ws_deflate_new(&p, 9, 9);
	hb_ws_buf_t out = {0};
	size_t big = 64u << 20, n;
	uint8_t *zeros = calloc(1, big), *in;
	clock_t t0;
	result_t r;

	cr_assert_eq(hb_ws_deflate_compress(d, zeros, big, HB_WS_MAX_HEADER, &out), 0);
	free(zeros);
	cr_assert_lt(out.len, 128u << 10, "64 MiB of zeros is a small input");
	in = malloc(out.len + 32);
	{ /* the frame header goes right before the payload, in the headroom */
		size_t clen = out.len - HB_WS_MAX_HEADER, h = hb_ws_header_size(clen);
		uint8_t *f = out.data + HB_WS_MAX_HEADER - h;

		hb_ws_write_header(f, HB_WS_OP_BINARY, 1, clen);
		n = mask_frame(f, h + clen, in);
	}
	t0 = clock();
	run(in, n, 0, 1u << 20, &p, &r);
	cr_assert_eq(r.rc, HB_WS_E_TOO_BIG);
	result_free(&r);
	run(in, n, 1, 1u << 20, &p, &r);
	cr_assert_eq(r.rc, HB_WS_E_TOO_BIG);
	cr_assert_lt(r.consumed, n / 8, "stopped right after passing 1 MiB of output");
	result_free(&r);
	cr_assert_lt((double)(clock() - t0) / CLOCKS_PER_SEC, 5.0);
	hb_ws_buf_free(&out);
	hb_ws_deflate_free(d);
	free(in);
}

Test(ws_deflate_limits, invalid_utf8_after_inflate_1007)
{
	static const char bad[] = "valid start \xf0\x28\x8c\x28 then junk";
	hb_ws_deflate_params_t p = {0};
	hb_ws_deflate_t *d = hb_ws_deflate_new(&p, 6, 8);
	hb_ws_buf_t out = {0};
	uint8_t in[256];
	size_t n = compress_frame(d, HB_WS_OP_TEXT, bad, sizeof(bad) - 1, in, &out);

	expect_close(in, n, 0, &p, 1007);
	hb_ws_buf_free(&out);
	hb_ws_deflate_free(d);
}

Test(ws_deflate_limits, uncompressed_frames_still_work)
{
	static const char *const texts[] = {"plain", "Hello"};
	static const uint8_t f[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
	uint8_t in[64];
	size_t n = frame(in, 0x81, "plain", 5);

	n += mask_frame(f, sizeof(f), in + n);
	expect_texts(in, n, &plain, texts, 2);
}
