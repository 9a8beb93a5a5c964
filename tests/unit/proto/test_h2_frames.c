/* test_h2_frames.c: src/proto/h2 against malformed input, as raw frame bytes: each class of
 * RFC 9113 (and RFC 7541) violation that h2spec checks, with the error code h2spec expects,
 * fed whole and one byte at a time; a malformed request never reaches the app. */
#include "h2_harness.h"

enum { GOAWAY, RST, EITHER, NOTHING };

typedef struct mcase {
	const char *name;
	void (*build)(buf_t *b);
	int kind;
	uint32_t code;
	int32_t sid; /* RST / EITHER */
	bool no_preface;
} mcase_t;

static void hb_get(buf_t *hb)
{
	req_block(hb, "GET", "/");
}

/* ---- 3.4 / 3.5 preface ---- */
static void c_bad_magic(buf_t *b)
{
	put(b, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 24);
	settings(b, 0, NULL, NULL, 0);
}
static void c_no_settings_first(buf_t *b)
{
	put(b, HB_H2_PREFACE, HB_H2_PREFACE_LEN);
	frame(b, T_PING, 0, 0, "12345678", 8);
}

/* ---- 4.2 frame size ---- */
static void c_data_too_big(buf_t *b)
{
	static uint8_t big[16385];
	get(b, 1, "POST", 0);
	frame(b, T_DATA, 0, 1, big, sizeof big);
}
static void c_headers_too_big(buf_t *b)
{
	buf_t hb = {0};
	req_block(&hb, "GET", "/");
	char v[120];
	memset(v, 'a', sizeof v - 1);
	v[sizeof v - 1] = 0;
	while (hb.n <= 16384)
		lit(&hb, "x-pad", v);
	headers(b, 1, F_EH | F_ES, &hb);
	free(hb.b);
}

/* ---- 4.3 / RFC 7541 HPACK ---- */
static void block_then(buf_t *b, const uint8_t *tail, size_t n)
{
	buf_t hb = {0};
	put(&hb, tail, n);
	hb_get(&hb);
	headers(b, 1, F_EH | F_ES, &hb);
	free(hb.b);
}
static void c_hpack_index0(buf_t *b)
{
	block_then(b, (const uint8_t[]){0x80}, 1);
}
static void c_hpack_index_range(buf_t *b)
{
	block_then(b, (const uint8_t[]){0xbe}, 1); /* 62: the dynamic table is empty */
}
static void c_hpack_table_size_too_big(buf_t *b)
{
	block_then(b, (const uint8_t[]){0x3f, 0xe2, 0x1f}, 3); /* size update 4097 > 4096 */
}
static void c_hpack_size_update_late(buf_t *b)
{
	buf_t hb = {0};
	hb_get(&hb);
	put8(&hb, 0x20); /* size update after a field */
	headers(b, 1, F_EH | F_ES, &hb);
	free(hb.b);
}
static void c_hpack_huffman_eos(buf_t *b)
{
	buf_t hb = {0};
	hb_get(&hb);
	put(&hb, "\x00\x01x\x84\xff\xff\xff\xff", 8); /* a value holding the EOS symbol */
	headers(b, 1, F_EH | F_ES, &hb);
	free(hb.b);
}
static void c_priority_inside_block(buf_t *b)
{
	buf_t hb = {0};
	hb_get(&hb);
	headers(b, 1, F_ES, &hb);
	frame(b, T_PRIORITY, 0, 1, "\x00\x00\x00\x03\x10", 5);
	free(hb.b);
}

/* ---- 5.1 stream states ---- */
static void c_data_idle(buf_t *b)
{
	frame(b, T_DATA, 0, 1, "x", 1);
}
static void c_rst_idle(buf_t *b)
{
	rst(b, 1, 8);
}
static void c_window_idle(buf_t *b)
{
	window(b, 1, 100);
}
static void c_cont_idle(buf_t *b)
{
	buf_t hb = {0};
	hb_get(&hb);
	frame(b, T_CONT, F_EH, 1, hb.b, hb.n);
	free(hb.b);
}
static void c_data_half_closed(buf_t *b)
{
	get(b, 1, "GET", F_ES);
	frame(b, T_DATA, F_ES, 1, "x", 1);
}
static void c_headers_half_closed(buf_t *b)
{
	get(b, 1, "GET", F_ES);
	get(b, 1, "GET", F_ES);
}
static void c_data_after_rst(buf_t *b)
{
	get(b, 1, "POST", 0);
	rst(b, 1, 8);
	frame(b, T_DATA, 0, 1, "x", 1);
}
static void c_even_stream(buf_t *b)
{
	get(b, 2, "GET", F_ES);
}
/* ---- 5.3.1 dependencies, 5.5 extensions ---- */
static void c_depends_on_itself_headers(buf_t *b)
{
	buf_t hb = {0};
	put(&hb, "\x00\x00\x00\x01\x10", 5);
	hb_get(&hb);
	headers(b, 1, F_EH | F_ES | F_PRIO, &hb);
	free(hb.b);
}
static void c_depends_on_itself_priority(buf_t *b)
{
	frame(b, T_PRIORITY, 0, 1, "\x00\x00\x00\x01\x10", 5);
}
static void c_unknown_inside_block(buf_t *b)
{
	buf_t hb = {0};
	hb_get(&hb);
	headers(b, 1, F_ES, &hb);
	frame(b, 0x42, 0, 0, "ext", 3);
	free(hb.b);
}

/* ---- 6.x frame definitions ---- */
static void c_data_stream0(buf_t *b)
{
	frame(b, T_DATA, 0, 0, "x", 1);
}
static void c_data_bad_padding(buf_t *b)
{
	get(b, 1, "POST", 0);
	frame(b, T_DATA, F_PADDED, 1, "\x05xx", 3);
}
static void c_headers_stream0(buf_t *b)
{
	buf_t hb = {0};
	hb_get(&hb);
	headers(b, 0, F_EH | F_ES, &hb);
	free(hb.b);
}
static void c_headers_bad_padding(buf_t *b)
{
	buf_t hb = {0};
	put8(&hb, 0xff);
	hb_get(&hb);
	headers(b, 1, F_EH | F_ES | F_PADDED, &hb);
	free(hb.b);
}
static void c_headers_then_data(buf_t *b)
{
	buf_t hb = {0};
	hb_get(&hb);
	headers(b, 1, 0, &hb);
	frame(b, T_DATA, 0, 1, "x", 1);
	free(hb.b);
}
static void c_priority_stream0(buf_t *b)
{
	frame(b, T_PRIORITY, 0, 0, "\x00\x00\x00\x01\x10", 5);
}
static void c_priority_len4(buf_t *b)
{
	frame(b, T_PRIORITY, 0, 1, "\x00\x00\x00\x03", 4);
}
static void c_rst_stream0(buf_t *b)
{
	rst(b, 0, 8);
}
static void c_rst_len3(buf_t *b)
{
	get(b, 1, "POST", 0);
	frame(b, T_RST, 0, 1, "\x00\x00\x08", 3);
}
static void c_settings_ack_payload(buf_t *b)
{
	frame(b, T_SETTINGS, F_ACK, 0, "\x00\x01\x00\x00\x10\x00", 6);
}
static void c_settings_stream1(buf_t *b)
{
	frame(b, T_SETTINGS, 0, 1, "\x00\x01\x00\x00\x10\x00", 6);
}
static void c_settings_len3(buf_t *b)
{
	frame(b, T_SETTINGS, 0, 0, "\x00\x01\x00", 3);
}
static void c_settings_push2(buf_t *b)
{
	settings(b, 0, (const uint16_t[]){2}, (const uint32_t[]){2}, 1);
}
static void c_settings_window_too_big(buf_t *b)
{
	settings(b, 0, (const uint16_t[]){4}, (const uint32_t[]){0x80000000u}, 1);
}
static void c_settings_frame_too_small(buf_t *b)
{
	settings(b, 0, (const uint16_t[]){5}, (const uint32_t[]){16383}, 1);
}
static void c_settings_frame_too_big(buf_t *b)
{
	settings(b, 0, (const uint16_t[]){5}, (const uint32_t[]){16777216}, 1);
}
static void c_ping_stream1(buf_t *b)
{
	frame(b, T_PING, 0, 1, "12345678", 8);
}
static void c_ping_len6(buf_t *b)
{
	frame(b, T_PING, 0, 0, "123456", 6);
}
static void c_goaway_stream1(buf_t *b)
{
	frame(b, T_GOAWAY, 0, 1, "\x00\x00\x00\x00\x00\x00\x00\x00", 8);
}
static void c_window_zero_conn(buf_t *b)
{
	window(b, 0, 0);
}
static void c_window_zero_stream(buf_t *b)
{
	get(b, 1, "POST", 0);
	window(b, 1, 0);
}
static void c_window_len3(buf_t *b)
{
	frame(b, T_WINDOW, 0, 0, "\x00\x00\x01", 3);
}
static void c_window_overflow_conn(buf_t *b)
{
	window(b, 0, 0x7fffffff);
	window(b, 0, 0x7fffffff);
}
static void c_window_overflow_stream(buf_t *b)
{
	get(b, 1, "POST", 0);
	window(b, 1, 0x7fffffff);
	window(b, 1, 0x7fffffff);
}
static void c_settings_window_overflow(buf_t *b)
{
	get(b, 1, "POST", 0);
	window(b, 1, 0x7fffffff - 65535);
	settings(b, 0, (const uint16_t[]){4}, (const uint32_t[]){65536}, 1);
}
static void c_cont_after_end_headers(buf_t *b)
{
	get(b, 1, "POST", 0);
	buf_t hb = {0};
	lit(&hb, "x-a", "b");
	frame(b, T_CONT, F_EH, 1, hb.b, hb.n);
	free(hb.b);
}
static void c_cont_stream0(buf_t *b)
{
	buf_t hb = {0};
	lit(&hb, ":method", "GET");
	headers(b, 1, F_ES, &hb);
	hb.n = 0;
	lit(&hb, ":scheme", "http");
	frame(b, T_CONT, F_EH, 0, hb.b, hb.n);
	free(hb.b);
}
static void c_cont_other_stream(buf_t *b)
{
	buf_t hb = {0};
	lit(&hb, ":method", "GET");
	headers(b, 1, F_ES, &hb);
	hb.n = 0;
	lit(&hb, ":scheme", "http");
	frame(b, T_CONT, F_EH, 3, hb.b, hb.n);
	free(hb.b);
}

/* ---- 8.1 HTTP message rules (stream errors; never reach the app) ---- */
static void one_block(buf_t *b, const char *const *kv, int n)
{
	buf_t hb = {0};
	for (int i = 0; i < n; i += 2)
		lit(&hb, kv[i], kv[i + 1]);
	headers(b, 1, F_EH | F_ES, &hb);
	free(hb.b);
}
#define BLOCK(fn, ...)                                                                             \
	static void fn(buf_t *b)                                                                   \
	{                                                                                          \
		static const char *const kv[] = {__VA_ARGS__};                                     \
		one_block(b, kv, sizeof kv / sizeof kv[0]);                                        \
	}
#define BASE ":method", "GET", ":scheme", "http", ":path", "/", ":authority", "localhost"
BLOCK(c_uppercase, BASE, "X-Upper", "1")
BLOCK(c_unknown_pseudo, BASE, ":foo", "bar")
BLOCK(c_status_in_request, BASE, ":status", "200")
BLOCK(c_dup_method, BASE, ":method", "GET")
BLOCK(c_pseudo_after_regular, ":method", "GET", ":scheme", "http", "x-a", "b", ":path", "/",
      ":authority", "localhost")
BLOCK(c_connection_header, BASE, "connection", "keep-alive")
BLOCK(c_transfer_encoding, BASE, "transfer-encoding", "chunked")
BLOCK(c_te_gzip, BASE, "te", "gzip")
BLOCK(c_empty_path, ":method", "GET", ":scheme", "http", ":path", "", ":authority", "localhost")
BLOCK(c_no_method, ":scheme", "http", ":path", "/", ":authority", "localhost")
BLOCK(c_no_scheme, ":method", "GET", ":path", "/", ":authority", "localhost")
BLOCK(c_no_path, ":method", "GET", ":scheme", "http", ":authority", "localhost")
BLOCK(c_dup_path, BASE, ":path", "/x")
BLOCK(c_authority_host_differ, BASE, "host", "evil.example")
BLOCK(c_bad_authority, ":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a b@c")
BLOCK(c_no_authority_no_host, ":method", "GET", ":scheme", "http", ":path", "/")
BLOCK(c_space_in_name, BASE, "x a", "b")
BLOCK(c_nul_in_value, BASE, "x-a", "b\x7f")

static void c_pseudo_in_trailers(buf_t *b)
{
	get(b, 1, "POST", 0);
	buf_t hb = {0};
	lit(&hb, ":method", "GET");
	headers(b, 1, F_EH | F_ES, &hb);
	free(hb.b);
}
static void c_trailers_without_end_stream(buf_t *b)
{
	get(b, 1, "POST", 0);
	buf_t hb = {0};
	lit(&hb, "x-trailer", "1");
	headers(b, 1, F_EH, &hb);
	free(hb.b);
}
static void cl_block(buf_t *b, const char *cl)
{
	buf_t hb = {0};
	req_block(&hb, "POST", "/");
	lit(&hb, "content-length", cl);
	headers(b, 1, F_EH, &hb);
	free(hb.b);
}
static void c_content_length_short(buf_t *b)
{
	cl_block(b, "10");
	frame(b, T_DATA, F_ES, 1, "abc", 3);
}
static void c_content_length_long(buf_t *b)
{
	cl_block(b, "2");
	frame(b, T_DATA, F_ES, 1, "abc", 3);
}

#define G(n, fn, code)                                                                             \
	{                                                                                          \
		n, fn, GOAWAY, code, 0, false                                                      \
	}
#define R(n, fn, code)                                                                             \
	{                                                                                          \
		n, fn, RST, code, 1, false                                                         \
	}
#define E(n, fn, code, sid)                                                                        \
	{                                                                                          \
		n, fn, EITHER, code, sid, false                                                    \
	}

static const mcase_t cases[] = {
	{"3.5 bad client magic", c_bad_magic, GOAWAY, HB_H2_PROTOCOL_ERROR, 0, true},
	{"3.5 first frame not SETTINGS", c_no_settings_first, GOAWAY, HB_H2_PROTOCOL_ERROR, 0,
	 true},
	E("4.2 DATA over SETTINGS_MAX_FRAME_SIZE", c_data_too_big, HB_H2_FRAME_SIZE_ERROR, 1),
	G("4.2 HEADERS over SETTINGS_MAX_FRAME_SIZE", c_headers_too_big, HB_H2_FRAME_SIZE_ERROR),
	G("hpack index 0", c_hpack_index0, HB_H2_COMPRESSION_ERROR),
	G("hpack index past the tables", c_hpack_index_range, HB_H2_COMPRESSION_ERROR),
	G("hpack table size update over the limit", c_hpack_table_size_too_big,
	  HB_H2_COMPRESSION_ERROR),
	G("hpack table size update after a field", c_hpack_size_update_late,
	  HB_H2_COMPRESSION_ERROR),
	G("hpack huffman EOS", c_hpack_huffman_eos, HB_H2_COMPRESSION_ERROR),
	G("4.3 PRIORITY inside a header block", c_priority_inside_block, HB_H2_PROTOCOL_ERROR),
	G("5.1 DATA on idle", c_data_idle, HB_H2_PROTOCOL_ERROR),
	G("5.1 RST_STREAM on idle", c_rst_idle, HB_H2_PROTOCOL_ERROR),
	G("5.1 WINDOW_UPDATE on idle", c_window_idle, HB_H2_PROTOCOL_ERROR),
	G("5.1 CONTINUATION on idle", c_cont_idle, HB_H2_PROTOCOL_ERROR),
	E("5.1 DATA on half-closed (remote)", c_data_half_closed, HB_H2_STREAM_CLOSED, 1),
	E("5.1 HEADERS on half-closed (remote)", c_headers_half_closed, HB_H2_STREAM_CLOSED, 1),
	E("5.1 DATA after RST_STREAM", c_data_after_rst, HB_H2_STREAM_CLOSED, 1),
	G("5.1.1 even stream id", c_even_stream, HB_H2_PROTOCOL_ERROR),
	E("5.3.1 HEADERS depending on itself", c_depends_on_itself_headers, HB_H2_PROTOCOL_ERROR,
	  1),
	E("5.3.1 PRIORITY depending on itself", c_depends_on_itself_priority, HB_H2_PROTOCOL_ERROR,
	  1),
	G("5.5 unknown frame inside a header block", c_unknown_inside_block, HB_H2_PROTOCOL_ERROR),
	G("6.1 DATA on stream 0", c_data_stream0, HB_H2_PROTOCOL_ERROR),
	G("6.1 DATA padding past the payload", c_data_bad_padding, HB_H2_PROTOCOL_ERROR),
	G("6.2 HEADERS on stream 0", c_headers_stream0, HB_H2_PROTOCOL_ERROR),
	G("6.2 HEADERS padding past the payload", c_headers_bad_padding, HB_H2_PROTOCOL_ERROR),
	G("6.2 HEADERS without END_HEADERS, then DATA", c_headers_then_data, HB_H2_PROTOCOL_ERROR),
	G("6.3 PRIORITY on stream 0", c_priority_stream0, HB_H2_PROTOCOL_ERROR),
	E("6.3 PRIORITY of 4 bytes", c_priority_len4, HB_H2_FRAME_SIZE_ERROR, 1),
	G("6.4 RST_STREAM on stream 0", c_rst_stream0, HB_H2_PROTOCOL_ERROR),
	G("6.4 RST_STREAM of 3 bytes", c_rst_len3, HB_H2_FRAME_SIZE_ERROR),
	G("6.5 SETTINGS ACK with a payload", c_settings_ack_payload, HB_H2_FRAME_SIZE_ERROR),
	G("6.5 SETTINGS on stream 1", c_settings_stream1, HB_H2_PROTOCOL_ERROR),
	G("6.5 SETTINGS of 3 bytes", c_settings_len3, HB_H2_FRAME_SIZE_ERROR),
	G("6.5.2 ENABLE_PUSH 2", c_settings_push2, HB_H2_PROTOCOL_ERROR),
	G("6.5.2 INITIAL_WINDOW_SIZE 2^31", c_settings_window_too_big, HB_H2_FLOW_CONTROL_ERROR),
	G("6.5.2 MAX_FRAME_SIZE 16383", c_settings_frame_too_small, HB_H2_PROTOCOL_ERROR),
	G("6.5.2 MAX_FRAME_SIZE 2^24", c_settings_frame_too_big, HB_H2_PROTOCOL_ERROR),
	G("6.7 PING on stream 1", c_ping_stream1, HB_H2_PROTOCOL_ERROR),
	G("6.7 PING of 6 bytes", c_ping_len6, HB_H2_FRAME_SIZE_ERROR),
	G("6.8 GOAWAY on stream 1", c_goaway_stream1, HB_H2_PROTOCOL_ERROR),
	G("6.9 WINDOW_UPDATE 0 on the connection", c_window_zero_conn, HB_H2_PROTOCOL_ERROR),
	E("6.9 WINDOW_UPDATE 0 on a stream", c_window_zero_stream, HB_H2_PROTOCOL_ERROR, 1),
	G("6.9 WINDOW_UPDATE of 3 bytes", c_window_len3, HB_H2_FRAME_SIZE_ERROR),
	G("6.9.1 connection window past 2^31-1", c_window_overflow_conn, HB_H2_FLOW_CONTROL_ERROR),
	E("6.9.1 stream window past 2^31-1", c_window_overflow_stream, HB_H2_FLOW_CONTROL_ERROR, 1),
	E("6.9.2 INITIAL_WINDOW_SIZE pushes a window past 2^31-1", c_settings_window_overflow,
	  HB_H2_FLOW_CONTROL_ERROR, 1),
	G("6.10 CONTINUATION after END_HEADERS", c_cont_after_end_headers, HB_H2_PROTOCOL_ERROR),
	G("6.10 CONTINUATION on stream 0", c_cont_stream0, HB_H2_PROTOCOL_ERROR),
	G("6.10 CONTINUATION on another stream", c_cont_other_stream, HB_H2_PROTOCOL_ERROR),
	R("8.2 upper-case field name", c_uppercase, HB_H2_PROTOCOL_ERROR),
	R("8.2 space in a field name", c_space_in_name, HB_H2_PROTOCOL_ERROR),
	R("8.2.1 DEL in a field value", c_nul_in_value, HB_H2_PROTOCOL_ERROR),
	R("8.3 unknown pseudo-header", c_unknown_pseudo, HB_H2_PROTOCOL_ERROR),
	R("8.3 :status in a request", c_status_in_request, HB_H2_PROTOCOL_ERROR),
	R("8.3 duplicate :method", c_dup_method, HB_H2_PROTOCOL_ERROR),
	R("8.3 duplicate :path", c_dup_path, HB_H2_PROTOCOL_ERROR),
	R("8.3 pseudo-header after a regular field", c_pseudo_after_regular, HB_H2_PROTOCOL_ERROR),
	R("8.2.2 connection field", c_connection_header, HB_H2_PROTOCOL_ERROR),
	R("8.2.2 transfer-encoding field", c_transfer_encoding, HB_H2_PROTOCOL_ERROR),
	R("8.2.2 te other than trailers", c_te_gzip, HB_H2_PROTOCOL_ERROR),
	R("8.3.1 empty :path", c_empty_path, HB_H2_PROTOCOL_ERROR),
	R("8.3.1 no :method", c_no_method, HB_H2_PROTOCOL_ERROR),
	R("8.3.1 no :scheme", c_no_scheme, HB_H2_PROTOCOL_ERROR),
	R("8.3.1 no :path", c_no_path, HB_H2_PROTOCOL_ERROR),
	R("8.3.1 :authority and Host differ", c_authority_host_differ, HB_H2_PROTOCOL_ERROR),
	R("8.3.1 invalid :authority", c_bad_authority, HB_H2_PROTOCOL_ERROR),
	R("8.3.1 neither :authority nor Host", c_no_authority_no_host, HB_H2_PROTOCOL_ERROR),
	R("8.1 pseudo-header in trailers", c_pseudo_in_trailers, HB_H2_PROTOCOL_ERROR),
	E("8.1 trailers without END_STREAM", c_trailers_without_end_stream, HB_H2_PROTOCOL_ERROR,
	  1),
	R("8.1.1 content-length above the DATA", c_content_length_short, HB_H2_PROTOCOL_ERROR),
	R("8.1.1 content-length below the DATA", c_content_length_long, HB_H2_PROTOCOL_ERROR),
};

/* True for the cases whose request head itself is malformed: the app must never see it. */
static bool head_malformed(const mcase_t *c)
{
	return strncmp(c->name, "8.2", 3) == 0 || strncmp(c->name, "8.3", 3) == 0 ||
	       strncmp(c->name, "hpack", 5) == 0 || strstr(c->name, "HEADERS over") != NULL;
}

static void check_case(const mcase_t *c, size_t step)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	const char *why = NULL;

	app_init(&a, NULL);
	a.respond = false; /* streams stay half-closed (remote) */
	if (!c->no_preface)
		preface(&b);
	c->build(&b);
	int rc = feed(&a, &b, step, &o, &why);
	int rcode = rst_code_of(&o, c->sid);
	switch (c->kind) {
	case GOAWAY:
		cr_expect(!hb_h2_want_read(a.e), "%s (step %zu): still reading", c->name, step);
		cr_expect_neq(hb_h2_failure(a.e, NULL, NULL), 0, "%s: no failure", c->name);
		cr_expect_eq(o.goaways, 1, "%s (step %zu): %d GOAWAY", c->name, step, o.goaways);
		cr_expect_eq(o.goaway_code, c->code, "%s (step %zu): GOAWAY code %u (%s)", c->name,
			     step, o.goaway_code, why ? why : "");
		break;
	case RST:
		cr_expect_eq(rc, 0, "%s (step %zu): connection error %s", c->name, step,
			     why ? why : "");
		cr_expect_eq(rcode, (int)c->code, "%s (step %zu): RST code %d", c->name, step,
			     rcode);
		break;
	case EITHER:
		cr_expect(rcode == (int)c->code || (o.goaways && o.goaway_code == c->code),
			  "%s (step %zu): rst %d goaway %u", c->name, step, rcode,
			  o.goaways ? o.goaway_code : 0);
		break;
	default:
		break;
	}
	if (head_malformed(c))
		cr_expect_eq(a.nreq, 0, "%s: the malformed request reached the app", c->name);
	app_free(&a);
	free(b.b);
}

Test(h2_frames, every_malformed_class_gets_its_code)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_case(&cases[i], 0);
}

Test(h2_frames, same_codes_fed_one_byte_at_a_time)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_case(&cases[i], 1);
}

/* ---- things that are not errors ---- */

Test(h2_frames, unknown_frame_type_and_flags_are_ignored)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	app_init(&a, NULL);
	preface(&b);
	frame(&b, 0x42, 0xff, 0, "ext", 3);
	frame(&b, T_PING, 0xf0, 0, "12345678", 8); /* unknown flags */
	get(&b, 1, "GET", F_ES | 0x40);
	cr_assert_eq(feed(&a, &b, 0, &o, NULL), 0);
	cr_assert_eq(o.goaways, 0);
	cr_assert_eq(o.ping_acks, 1);
	cr_assert_eq(a.nreq, 1);
	cr_assert_eq(o.headers, 1);
	app_free(&a);
	free(b.b);
}

Test(h2_frames, settings_are_acked_and_unknown_settings_ignored)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	app_init(&a, NULL);
	preface(&b);
	settings(&b, 0, (const uint16_t[]){0xff, 1}, (const uint32_t[]){7, 100}, 2);
	cr_assert_eq(feed(&a, &b, 0, &o, NULL), 0);
	cr_assert_eq(o.settings, 1, "the server's own SETTINGS");
	cr_assert_eq(o.settings_acks, 2);
	cr_assert_eq(o.goaways, 0);
	app_free(&a);
	free(b.b);
}

Test(h2_frames, ping_ack_is_not_answered)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	app_init(&a, NULL);
	preface(&b);
	frame(&b, T_PING, F_ACK, 0, "12345678", 8);
	cr_assert_eq(feed(&a, &b, 0, &o, NULL), 0);
	cr_assert_eq(o.ping_acks, 0);
	app_free(&a);
	free(b.b);
}

Test(h2_frames, trailers_end_the_request_and_are_dropped)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	app_init(&a, NULL);
	preface(&b);
	get(&b, 1, "POST", 0);
	frame(&b, T_DATA, 0, 1, "abc", 3);
	buf_t hb = {0};
	lit(&hb, "x-checksum", "1");
	headers(&b, 1, F_EH | F_ES, &hb);
	cr_assert_eq(feed(&a, &b, 0, &o, NULL), 0);
	cr_assert_eq(a.nreq, 1);
	cr_assert(a.s[0].ended);
	cr_assert_eq(a.s[0].inlen, 3);
	cr_assert_null(hb_request_header(a.s[0].req, "x-checksum"));
	cr_assert_eq(o.headers, 1, "the response");
	app_free(&a);
	free(b.b);
	free(hb.b);
}
