/* fuzz_ws.c: libFuzzer target for the WebSocket frame parser, permessage-deflate inflate and
 * extension negotiation (src/proto/ws.c, ws_deflate.c, utf8.c).
 *
 * Input: byte 0 picks the mode and options, byte 1 the feed step (0: all at once), the rest is
 * fed to the parser (server role) or, in negotiation mode, read as a Sec-WebSocket-Extensions
 * value. Invariants checked: events never exceed the limit, text is valid UTF-8, errors carry a
 * reason, a failed parser stays failed.
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_ws.c
 *        src/proto/ws.c src/proto/ws_deflate.c src/proto/utf8.c -lz
 */
#include <stdlib.h>
#include <string.h>

#include "proto/utf8.h"
#include "proto/ws.h"
#include "proto/ws_deflate.h"

#define MAX_MESSAGE (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_event(const hb_ws_event_t *ev)
{
	if (ev->len > MAX_MESSAGE)
		abort();
	if (ev->type == HB_WS_EV_TEXT && hb_utf8_check(ev->data, ev->len) != HB_UTF8_OK)
		abort();
	if ((ev->type == HB_WS_EV_PING || ev->type == HB_WS_EV_PONG) && ev->len > 125)
		abort();
	if (ev->type == HB_WS_EV_CLOSE && ev->code != HB_WS_CLOSE_NO_STATUS &&
	    !hb_ws_close_code_valid(ev->code))
		abort();
}

static void fuzz_negotiate(const uint8_t *data, size_t size)
{
	hb_ws_deflate_config_t c;
	hb_ws_deflate_params_t p;
	char resp[160];

	hb_ws_deflate_config_default(&c);
	if (hb_ws_deflate_negotiate(&c, (const char *)data, size, &p) &&
	    hb_ws_deflate_response(&p, resp, sizeof(resp)) >= sizeof(resp))
		abort();
}

static void fuzz_parse(uint8_t opts, size_t step, uint8_t *buf, size_t size)
{
	hb_ws_deflate_params_t params = {.client_no_context_takeover = opts & 2,
					 .client_max_window_bits = (opts & 4) ? 9 : 0};
	hb_ws_deflate_t *d = (opts & 1) ? hb_ws_deflate_new(&params, 6, 8) : NULL;
	hb_ws_parser_config_t cfg = {.max_message_size = MAX_MESSAGE, .deflate = d};
	hb_ws_parser_t *p = hb_ws_parser_new(&cfg);
	size_t off = 0, end, used;
	hb_ws_event_t ev;
	const char *why;
	int rc;

	while (p && off < size) {
		end = step && off + step < size ? off + step : size;
		why = NULL;
		rc = hb_ws_parse(p, buf + off, end - off, &used, &ev, &why);
		if (used > end - off)
			abort();
		off += used;
		if (rc == HB_WS_EVENT) {
			check_event(&ev);
			continue;
		}
		if (rc < 0) {
			if (!why || hb_ws_parse(p, buf, size, &used, &ev, &why) != rc)
				abort();
			break;
		}
	}
	hb_ws_parser_free(p);
	hb_ws_deflate_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;

	if (size < 2)
		return 0;
	if (data[0] & 0x80) {
		fuzz_negotiate(data + 2, size - 2);
		return 0;
	}
	buf = malloc(size - 2 + 1); /* the parser unmasks in place: give it a writable copy */
	if (!buf)
		return 0;
	memcpy(buf, data + 2, size - 2);
	fuzz_parse(data[0], data[1], buf, size - 2);
	free(buf);
	return 0;
}
