/* test_ws.c: WebSocket handshake, frame parser and writers (src/proto/ws.c).
 * Every parser input is fed whole, one byte at a time and in 7-byte pieces; results must agree. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ws.h"
#include "ws_harness.h"

/* ---- helpers ---- */

static const size_t steps[] = {0, 1, 7};

/* Runs every split and asserts the error's close code. */
static void expect_close(const uint8_t *in, size_t len, uint16_t code)
{
	result_t r;

	for (size_t s = 0; s < 3; s++) {
		run(in, len, steps[s], 0, NULL, &r);
		cr_assert_lt(r.rc, 0, "step %zu: no error", steps[s]);
		cr_assert_eq(hb_ws_error_close_code(r.rc), code, "step %zu: %s -> %u", steps[s],
			     r.why, hb_ws_error_close_code(r.rc));
		cr_assert_not_null(r.why);
		result_free(&r);
	}
}

/* Runs every split and asserts one event of this type and payload. */
static void expect_one(const uint8_t *in, size_t len, int type, const void *data, size_t dlen)
{
	result_t r;

	for (size_t s = 0; s < 3; s++) {
		run(in, len, steps[s], 0, NULL, &r);
		cr_assert_eq(r.rc, 0, "step %zu: %s", steps[s], r.why ? r.why : "");
		cr_assert_eq(r.n, 1, "step %zu: %d events", steps[s], r.n);
		cr_assert_eq(r.ev[0].type, type);
		cr_assert_eq(r.ev[0].len, dlen);
		cr_assert(dlen == 0 || !memcmp(r.ev[0].data, data, dlen));
		result_free(&r);
	}
}

/* ---- handshake ---- */

#define H(n, v)                                                                                    \
	{                                                                                          \
		n, v, sizeof(n) - 1, sizeof(v) - 1                                                 \
	}

static int hs(const hb_header_t *h, size_t n, hb_ws_handshake_t *out, const char **why)
{
	return hb_ws_handshake_check("GET", 3, 1, 1, h, n, NULL, out, why);
}

Test(ws_handshake, rfc6455_sample_key)
{
	char out[29];

	hb_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws_handshake, valid_upgrade)
{
	hb_header_t h[] = {
		H("Host", "example.com"),
		H("upgrade", "WebSocket"),
		H("CONNECTION", "keep-alive, Upgrade"),
		H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
		H("Sec-WebSocket-Version", "13"),
		H("Sec-WebSocket-Protocol", "chat, superchat"),
		H("sec-websocket-protocol", " v2 ,,"),
		H("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
	};
	hb_ws_handshake_t out;
	const char *why = NULL;

	cr_assert_eq(hs(h, 8, &out, &why), 0, "%s", why);
	cr_assert_str_eq(out.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	cr_assert_eq(out.nprotocols, 3);
	cr_assert(out.protocols[0].len == 4 && !memcmp(out.protocols[0].ptr, "chat", 4));
	cr_assert(out.protocols[1].len == 9 && !memcmp(out.protocols[1].ptr, "superchat", 9));
	cr_assert(out.protocols[2].len == 2 && !memcmp(out.protocols[2].ptr, "v2", 2));
	cr_assert_eq(out.deflate, 1);
	cr_assert_str_eq(out.extensions, "permessage-deflate; server_max_window_bits=12");
}

Test(ws_handshake, deflate_disabled_or_absent)
{
	hb_header_t h[] = {
		H("Upgrade", "websocket"),
		H("Connection", "Upgrade"),
		H("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="),
		H("Sec-WebSocket-Version", "13"),
		H("Sec-WebSocket-Extensions", "permessage-deflate"),
	};
	hb_ws_deflate_config_t c;
	hb_ws_handshake_t out;
	const char *why;

	hb_ws_deflate_config_default(&c);
	c.enabled = 0;
	cr_assert_eq(hb_ws_handshake_check("GET", 3, 1, 1, h, 5, &c, &out, &why), 0);
	cr_assert_eq(out.deflate, 0);
	cr_assert_str_eq(out.extensions, "");
	cr_assert_eq(hs(h, 4, &out, &why), 0);
	cr_assert_eq(out.deflate, 0);
	cr_assert_eq(out.nprotocols, 0);
}

static void expect_hs(const hb_header_t *h, size_t n, int err)
{
	hb_ws_handshake_t out;
	const char *why = NULL;

	cr_assert_eq(hs(h, n, &out, &why), err);
	cr_assert_not_null(why);
}

Test(ws_handshake, bad_keys_400)
{
	hb_header_t h[] = {
		H("Upgrade", "websocket"),
		H("Connection", "Upgrade"),
		H("Sec-WebSocket-Version", "13"),
		H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
	};
	static const char *bad[] = {
		"",
		"dGhlIHNhbXBsZQ==",	    /* 10 bytes */
		"dGhlIHNhbXBsZSBub25jZQ",   /* no padding */
		"dGhlIHNhbXBsZSBub25jZQ!=", /* bad character */
		"dGhlIHNhbXBsZSBub25j*Q==",
		"dGhlIHNhbXBsZSBub25jZSBub25jZQ==", /* 22 bytes */
	};

	expect_hs(h, 3, HB_WS_E_HS_BAD); /* missing */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h[3].value = bad[i];
		h[3].value_len = (uint32_t)strlen(bad[i]);
		expect_hs(h, 4, HB_WS_E_HS_BAD);
	}
}

Test(ws_handshake, duplicate_key_400)
{
	hb_header_t h[] = {
		H("Upgrade", "websocket"),
		H("Connection", "Upgrade"),
		H("Sec-WebSocket-Version", "13"),
		H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
		H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
	};

	expect_hs(h, 5, HB_WS_E_HS_BAD);
}

Test(ws_handshake, version_8_is_426)
{
	hb_header_t h[] = {
		H("Upgrade", "websocket"),
		H("Connection", "Upgrade"),
		H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
		H("Sec-WebSocket-Version", "8"),
	};
	hb_ws_handshake_t out;
	const char *why = NULL;
	char buf[512];
	size_t n;

	cr_assert_eq(hs(h, 4, &out, &why), HB_WS_E_HS_VERSION);
	cr_assert_eq(hb_ws_handshake_status(HB_WS_E_HS_VERSION), 426);
	n = hb_ws_write_reject(buf, sizeof(buf), HB_WS_E_HS_VERSION, why);
	cr_assert_lt(n, sizeof(buf));
	buf[n] = 0;
	cr_assert(!strncmp(buf, "HTTP/1.1 426 Upgrade Required\r\n", 31));
	cr_assert_not_null(strstr(buf, "\r\nSec-WebSocket-Version: 13\r\n"));
	cr_assert_eq(hs(h, 3, &out, &why), HB_WS_E_HS_VERSION, "missing version");
}

Test(ws_handshake, request_line_and_upgrade_headers_400)
{
	hb_header_t h[] = {
		H("Upgrade", "websocket"),
		H("Connection", "Upgrade"),
		H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
		H("Sec-WebSocket-Version", "13"),
	};
	hb_ws_handshake_t out;
	const char *why;

	cr_assert_eq(hb_ws_handshake_check("POST", 4, 1, 1, h, 4, NULL, &out, &why),
		     HB_WS_E_HS_BAD);
	cr_assert_eq(hb_ws_handshake_check("get", 3, 1, 1, h, 4, NULL, &out, &why), HB_WS_E_HS_BAD);
	cr_assert_eq(hb_ws_handshake_check("GET", 3, 1, 0, h, 4, NULL, &out, &why), HB_WS_E_HS_BAD);
	cr_assert_eq(hb_ws_handshake_check("GET", 3, 2, 0, h, 4, NULL, &out, &why), HB_WS_E_HS_BAD);
	expect_hs(h + 1, 3, HB_WS_E_HS_BAD); /* no Upgrade */
	h[0].value = "h2c";
	h[0].value_len = 3;
	expect_hs(h, 4, HB_WS_E_HS_BAD);
	h[0].value = "websocket";
	h[0].value_len = 9;
	h[1].value = "keep-alive";
	h[1].value_len = 10;
	expect_hs(h, 4, HB_WS_E_HS_BAD);
	cr_assert_eq(hb_ws_handshake_status(HB_WS_E_HS_BAD), 400);
}

Test(ws_handshake, too_many_protocols_400)
{
	hb_header_t h[] = {
		H("Upgrade", "websocket"),
		H("Connection", "Upgrade"),
		H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
		H("Sec-WebSocket-Version", "13"),
		H("Sec-WebSocket-Protocol", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,"
					    "A,B,C,D,E,F,G"),
	};

	expect_hs(h, 5, HB_WS_E_HS_BAD);
}

Test(ws_handshake, write_accept)
{
	hb_ws_handshake_t out = {0};
	hb_header_t extra[] = {H("X-Extra", "1")};
	static const char want[] =
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Accept: "
		"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
		"Sec-WebSocket-Extensions: permessage-deflate\r\nX-Extra: 1\r\n\r\n";
	char buf[512];
	size_t n;

	strcpy(out.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	strcpy(out.extensions, "permessage-deflate");
	n = hb_ws_write_accept(buf, sizeof(buf), &out, "chat", 4, extra, 1);
	cr_assert_eq(n, sizeof(want) - 1);
	cr_assert(!memcmp(buf, want, n));
	cr_assert_eq(hb_ws_write_accept(buf, 10, &out, "chat", 4, extra, 1), n, "size needed");
	cr_assert_eq(hb_ws_write_accept(buf, sizeof(buf), &out, "a\r\nb", 4, NULL, 0), 0);
	extra[0].value = "x\ny";
	extra[0].value_len = 3;
	cr_assert_eq(hb_ws_write_accept(buf, sizeof(buf), &out, NULL, 0, extra, 1), 0);
}

/* ---- parser: valid input ---- */

Test(ws_parse, rfc6455_masked_hello)
{
	static const uint8_t in[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
				     0x7f, 0x9f, 0x4d, 0x51, 0x58};

	expect_one(in, sizeof(in), HB_WS_EV_TEXT, "Hello", 5);
}

static void sized(int op, int type, size_t n)
{
	uint8_t *payload = malloc(n + 1), *buf = malloc(n + 14);
	size_t len;

	for (size_t i = 0; i < n; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	len = frame(buf, (uint8_t)(FIN | op), payload, n);
	expect_one(buf, len, type, payload, n);
	free(payload);
	free(buf);
}

Test(ws_parse, sizes)
{
	static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 1u << 20};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		sized(HB_WS_OP_TEXT, HB_WS_EV_TEXT, sizes[i]);
		sized(HB_WS_OP_BINARY, HB_WS_EV_BINARY, sizes[i]);
	}
}

Test(ws_parse, fragments_with_interleaved_control)
{
	uint8_t in[256];
	size_t n = 0;
	result_t r;

	n += frame(in + n, HB_WS_OP_TEXT, "Hel", 3);
	n += frame(in + n, FIN | HB_WS_OP_PING, "p", 1);
	n += frame(in + n, HB_WS_OP_CONT, "lo \xe2\x82", 5); /* a euro sign split across frames */
	n += frame(in + n, FIN | HB_WS_OP_PONG, "", 0);
	n += frame(in + n, HB_WS_OP_CONT, "", 0);
	n += frame(in + n, FIN | HB_WS_OP_CONT, "\xac World", 7);
	n += frame(in + n, FIN | HB_WS_OP_BINARY, "\x00\xff", 2);
	for (size_t s = 0; s < 3; s++) {
		run(in, n, steps[s], 0, NULL, &r);
		cr_assert_eq(r.rc, 0, "%s", r.why ? r.why : "");
		cr_assert_eq(r.n, 4);
		cr_assert_eq(r.ev[0].type, HB_WS_EV_PING);
		cr_assert(r.ev[0].len == 1 && r.ev[0].data[0] == 'p');
		cr_assert_eq(r.ev[1].type, HB_WS_EV_PONG);
		cr_assert_eq(r.ev[1].len, 0);
		cr_assert_eq(r.ev[2].type, HB_WS_EV_TEXT);
		cr_assert_eq(r.ev[2].len, 15);
		cr_assert(!memcmp(r.ev[2].data, "Hello \xe2\x82\xac World", 15));
		cr_assert_eq(r.ev[3].type, HB_WS_EV_BINARY);
		cr_assert(r.ev[3].len == 2 && r.ev[3].data[1] == 0xff);
		result_free(&r);
	}
}

Test(ws_parse, close_events_and_after_close)
{
	uint8_t in[64];
	size_t n = frame(in, FIN | HB_WS_OP_CLOSE,
			 "\x03\xe8"
			 "bye",
			 5);
	result_t r;

	n += frame(in + n, FIN | HB_WS_OP_TEXT, "ignored", 7);
	for (size_t s = 0; s < 3; s++) {
		run(in, n, steps[s], 0, NULL, &r);
		cr_assert_eq(r.rc, 0);
		cr_assert_eq(r.n, 1);
		cr_assert_eq(r.ev[0].type, HB_WS_EV_CLOSE);
		cr_assert_eq(r.ev[0].code, 1000);
		cr_assert(r.ev[0].len == 3 && !memcmp(r.ev[0].data, "bye", 3));
		cr_assert_eq(r.consumed, n, "bytes after a close are dropped");
		result_free(&r);
	}
	n = frame(in, FIN | HB_WS_OP_CLOSE, "", 0);
	run(in, n, 0, 0, NULL, &r);
	cr_assert(r.n == 1 && r.ev[0].code == HB_WS_CLOSE_NO_STATUS);
	result_free(&r);
}

Test(ws_parse, valid_close_codes)
{
	static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
				      1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
	uint8_t in[16], code[2];
	size_t n;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		code[0] = (uint8_t)(ok[i] >> 8);
		code[1] = (uint8_t)ok[i];
		n = frame(in, FIN | HB_WS_OP_CLOSE, code, 2);
		expect_one(in, n, HB_WS_EV_CLOSE, "", 0);
	}
}

Test(ws_parse, in_place_delivery_for_whole_frames)
{
	uint8_t in[32];
	size_t n = frame(in, FIN | HB_WS_OP_BINARY, "abcdef", 6), used;
	hb_ws_parser_t *p = hb_ws_parser_new(NULL);
	hb_ws_event_t ev;
	const char *why;

	cr_assert_eq(hb_ws_parse(p, in, n, &used, &ev, &why), HB_WS_EVENT);
	cr_assert_eq(used, n);
	cr_assert_eq(ev.data, in + 6, "no copy: points into the fed buffer, unmasked");
	cr_assert(!memcmp(ev.data, "abcdef", 6));
	hb_ws_parser_free(p);
}

/* ---- parser: CONFORMANCE.md rows ---- */

Test(ws_conformance, unmasked_frame_1002)
{
	static const uint8_t in[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};

	expect_close(in, sizeof(in), 1002);
}

Test(ws_conformance, rsv_bits_without_extension_1002)
{
	uint8_t in[32];

	for (int bit = 0x10; bit <= 0x40; bit <<= 1) {
		size_t n = frame(in, (uint8_t)(FIN | bit | HB_WS_OP_TEXT), "x", 1);
		expect_close(in, n, 1002);
	}
}

Test(ws_conformance, reserved_opcodes_1002)
{
	static const int ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
	uint8_t in[32];

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		size_t n = frame(in, (uint8_t)(FIN | ops[i]), "", 0);
		expect_close(in, n, 1002);
	}
}

Test(ws_conformance, control_frames_1002)
{
	uint8_t big[126] = {0}, in[256];
	size_t n;

	n = frame(in, FIN | HB_WS_OP_PING, big, 126);
	expect_close(in, n, 1002);
	n = frame(in, FIN | HB_WS_OP_CLOSE, big, 126);
	expect_close(in, n, 1002);
	n = frame(in, HB_WS_OP_PING, "x", 1); /* FIN=0 */
	expect_close(in, n, 1002);
	n = frame(in, HB_WS_OP_PONG, "", 0);
	expect_close(in, n, 1002);
}

Test(ws_conformance, stray_continuation_1002)
{
	uint8_t in[32];
	size_t n = frame(in, FIN | HB_WS_OP_CONT, "x", 1);

	expect_close(in, n, 1002);
	n = frame(in, FIN | HB_WS_OP_TEXT, "a", 1);
	n += frame(in + n, FIN | HB_WS_OP_CONT, "b", 1);
	expect_close(in, n, 1002);
}

Test(ws_conformance, data_frame_inside_fragmented_message_1002)
{
	uint8_t in[32];
	size_t n = frame(in, HB_WS_OP_TEXT, "a", 1);

	n += frame(in + n, FIN | HB_WS_OP_BINARY, "b", 1);
	expect_close(in, n, 1002);
}

Test(ws_conformance, invalid_utf8_text_1007)
{
	uint8_t in[64];
	size_t n;

	n = frame(in, FIN | HB_WS_OP_TEXT, "ab\xc0\xaf", 4);
	expect_close(in, n, 1007);
	n = frame(in, FIN | HB_WS_OP_TEXT, "\xed\xa0\x80", 3); /* surrogate */
	expect_close(in, n, 1007);
	n = frame(in, FIN | HB_WS_OP_TEXT, "ab\xe2\x82", 4); /* ends inside a code point */
	expect_close(in, n, 1007);
	/* split across fragments */
	n = frame(in, HB_WS_OP_TEXT, "ab\xe2\x82", 4);
	n += frame(in + n, FIN | HB_WS_OP_CONT, "(", 1);
	expect_close(in, n, 1007);
	n = frame(in, HB_WS_OP_TEXT, "ab\xe2", 3);
	n += frame(in + n, FIN | HB_WS_OP_CONT, "", 0);
	expect_close(in, n, 1007);
}

Test(ws_conformance, invalid_utf8_fails_fast)
{
	uint8_t in[2048], payload[1000];
	size_t n, used;
	hb_ws_parser_t *p = hb_ws_parser_new(NULL);
	hb_ws_event_t ev;
	const char *why;

	memset(payload, 'a', sizeof(payload));
	payload[3] = 0xff;
	n = frame(in, FIN | HB_WS_OP_TEXT, payload, sizeof(payload));
	(void)n;
	/* Only the header and 10 payload bytes have arrived: the error must already show. */
	cr_assert_eq(hb_ws_parse(p, in, 8 + 10, &used, &ev, &why), HB_WS_E_UTF8);
	cr_assert_eq(hb_ws_parse(p, in, 8 + 10, &used, &ev, &why), HB_WS_E_UTF8, "sticky");
	hb_ws_parser_free(p);
}

Test(ws_conformance, close_payloads_1002_1007)
{
	static const unsigned bad[] = {0,    1,	   999,	 1004, 1005, 1006, 1015,
				       1016, 1100, 2000, 2999, 5000, 65535};
	uint8_t in[32], code[2];
	size_t n;

	n = frame(in, FIN | HB_WS_OP_CLOSE, "\x03", 1);
	expect_close(in, n, 1002);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		code[0] = (uint8_t)(bad[i] >> 8);
		code[1] = (uint8_t)bad[i];
		n = frame(in, FIN | HB_WS_OP_CLOSE, code, 2);
		expect_close(in, n, 1002);
	}
	n = frame(in, FIN | HB_WS_OP_CLOSE, "\x03\xe8\xff\xfe", 4);
	expect_close(in, n, 1007);
}

Test(ws_conformance, too_big_1009_before_payload)
{
	uint8_t hdr[14], *payload = calloc(1, 2000), *in = malloc(4200);
	size_t n;
	result_t r;

	/* Only the header of an oversized frame: refused without reading (or buffering) on. */
	n = frame(in, FIN | HB_WS_OP_BINARY, payload, 1001);
	for (size_t s = 0; s < 3; s++) {
		run(in, 8, steps[s], 1000, NULL, &r);
		cr_assert_eq(r.rc, HB_WS_E_TOO_BIG);
		result_free(&r);
	}
	/* Reassembly past the limit. */
	n = frame(in, HB_WS_OP_BINARY, payload, 600);
	n += frame(in + n, FIN | HB_WS_OP_CONT, payload, 600);
	run(in, n, 0, 1000, NULL, &r);
	cr_assert_eq(r.rc, HB_WS_E_TOO_BIG);
	result_free(&r);
	run(in, n, 1, 1000, NULL, &r);
	cr_assert_eq(r.rc, HB_WS_E_TOO_BIG);
	result_free(&r);
	/* 64-bit length with the top bit set; and 2^63-1. */
	memcpy(hdr,
	       "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00"
	       "abcd",
	       14);
	expect_close(hdr, 14, 1009);
	memcpy(hdr,
	       "\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff"
	       "abcd",
	       14);
	expect_close(hdr, 14, 1009);
	free(payload);
	free(in);
}

/* ---- writer ---- */

Test(ws_write, headers)
{
	uint8_t out[16];

	cr_assert_eq(hb_ws_header_size(0), 2);
	cr_assert_eq(hb_ws_header_size(125), 2);
	cr_assert_eq(hb_ws_header_size(126), 4);
	cr_assert_eq(hb_ws_header_size(65535), 4);
	cr_assert_eq(hb_ws_header_size(65536), 10);
	cr_assert_eq(hb_ws_write_header(out, HB_WS_OP_TEXT, 0, 126), 4);
	cr_assert(!memcmp(out, "\x81\x7e\x00\x7e", 4));
	cr_assert_eq(hb_ws_write_header(out, HB_WS_OP_BINARY, 1, 65536), 10);
	cr_assert(!memcmp(out, "\xc2\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
}

Test(ws_write, frames)
{
	uint8_t out[256], big[126] = {0};

	cr_assert_eq(hb_ws_write_frame(out, sizeof(out), HB_WS_OP_TEXT, "Hello", 5), 7);
	cr_assert(!memcmp(out, "\x81\x05Hello", 7));
	cr_assert_eq(hb_ws_write_frame(out, sizeof(out), HB_WS_OP_PING, "Hello", 5), 7);
	cr_assert(!memcmp(out, "\x89\x05Hello", 7));
	cr_assert_eq(hb_ws_write_frame(out, sizeof(out), HB_WS_OP_PONG, "", 0), 2);
	cr_assert(!memcmp(out, "\x8a\x00", 2));
	cr_assert_eq(hb_ws_write_frame(out, sizeof(out), HB_WS_OP_PING, big, 126), 0);
	cr_assert_eq(hb_ws_write_frame(out, sizeof(out), 3, "", 0), 0);
	cr_assert_eq(hb_ws_write_frame(out, 3, HB_WS_OP_TEXT, "Hello", 5), 7, "size needed");
}

Test(ws_write, close)
{
	uint8_t out[256];
	char reason[200];

	cr_assert_eq(hb_ws_write_close(out, sizeof(out), 0, NULL, 0), 2);
	cr_assert(!memcmp(out, "\x88\x00", 2));
	cr_assert_eq(hb_ws_write_close(out, sizeof(out), 1000, "bye", 3), 7);
	cr_assert(!memcmp(out,
			  "\x88\x05\x03\xe8"
			  "bye",
			  7));
	/* 122 ASCII bytes then a euro sign: cut before it, never inside it. */
	memset(reason, 'a', 122);
	memcpy(reason + 122, "\xe2\x82\xac", 3);
	cr_assert_eq(hb_ws_write_close(out, sizeof(out), 1011, reason, 125), 2 + 2 + 122);
	cr_assert_eq(out[1], 124);
}

Test(ws_write, encode_round_trip)
{
	static const size_t sizes[] = {0, 125, 126, 70000};
	hb_ws_buf_t out = {0};
	uint8_t *payload = malloc(70000), *in = malloc(70100);
	size_t start, n;

	for (size_t i = 0; i < 70000; i++)
		payload[i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		cr_assert_eq(hb_ws_encode_message(&out, &start, HB_WS_OP_BINARY, payload, sizes[i],
						  NULL),
			     0);
		n = mask_frame(out.data + start, out.len - start, in);
		expect_one(in, n, HB_WS_EV_BINARY, payload, sizes[i]);
	}
	hb_ws_buf_free(&out);
	free(payload);
	free(in);
}

/* ---- RFC 8441: the WebSocket part of an HTTP/2 extended CONNECT ---- */

Test(ws_handshake, h2_needs_only_version_13)
{
	hb_header_t h[] = {
		H("sec-websocket-version", "13"),
		H("sec-websocket-protocol", "chat, v2"),
		H("sec-websocket-extensions", "permessage-deflate"),
	};
	hb_ws_handshake_t out;
	const char *why = NULL;

	cr_assert_eq(hb_ws_handshake_check_h2(h, 3, NULL, &out, &why), 0, "%s", why);
	cr_assert_str_eq(out.accept, "", "no key, no accept over HTTP/2");
	cr_assert_eq(out.nprotocols, 2);
	cr_assert(out.protocols[1].len == 2 && !memcmp(out.protocols[1].ptr, "v2", 2));
	cr_assert_eq(out.deflate, 1);
	cr_assert_str_eq(out.extensions, "permessage-deflate; server_max_window_bits=12");
	cr_assert_eq(hb_ws_handshake_check_h2(h, 1, NULL, &out, &why), 0);
	cr_assert_eq(out.nprotocols, 0);
	cr_assert_eq(out.deflate, 0);
}

Test(ws_handshake, h2_other_versions_are_426)
{
	hb_header_t v8[] = {H("sec-websocket-version", "8")};
	hb_header_t twice[] = {H("sec-websocket-version", "13"), H("sec-websocket-version", "13")};
	hb_ws_handshake_t out;
	const char *why = NULL;

	cr_assert_eq(hb_ws_handshake_check_h2(v8, 1, NULL, &out, &why), HB_WS_E_HS_VERSION);
	cr_assert_eq(hb_ws_handshake_check_h2(twice, 2, NULL, &out, &why), HB_WS_E_HS_VERSION);
	cr_assert_eq(hb_ws_handshake_check_h2(NULL, 0, NULL, &out, &why), HB_WS_E_HS_VERSION);
	cr_assert_eq(hb_ws_handshake_status(HB_WS_E_HS_VERSION), 426);
}
