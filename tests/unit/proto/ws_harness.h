/* ws_harness.h: the frame parser's test bench for test_ws.c and test_ws_deflate.c: a masked
 * client frame built from its first byte and payload, a server frame masked after the fact so
 * that the server-role parser reads our own writer's output, and run(), which feeds input in
 * pieces to a fresh parser (with a permessage-deflate codec or none) and records its events.
 * Header-only (static functions); single-threaded like the tests. */
#ifndef HB_TESTS_WS_HARNESS_H
#define HB_TESTS_WS_HARNESS_H

#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ws.h"
#include "proto/ws_deflate.h"

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

#define FIN 0x80
#define RSV1 0x40

/* Builds a masked client frame with first byte b0 into out; returns its size. The header is
 * written here, not by hb_ws_write_header, so the parser is tested against an independent
 * encoder. */
static inline size_t frame(uint8_t *out, uint8_t b0, const void *payload, size_t len)
{
	size_t h = 2;

	out[0] = b0;
	if (len < 126) {
		out[1] = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		out[1] = 0x80 | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		h = 4;
	} else {
		out[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		h = 10;
	}
	memcpy(out + h, MASK, 4);
	for (size_t i = 0; i < len; i++)
		out[h + 4 + i] = ((const uint8_t *)payload)[i] ^ MASK[i & 3];
	return h + 4 + len;
}

/* Masks a server (unmasked) frame f of n bytes into out (n + 4 bytes), so that the server-role
 * parser accepts it. */
static inline size_t mask_frame(const uint8_t *f, size_t n, uint8_t *out)
{
	size_t h = 2 + ((f[1] & 0x7f) == 126 ? 2 : (f[1] & 0x7f) == 127 ? 8 : 0);

	memcpy(out, f, h);
	out[1] |= 0x80;
	memcpy(out + h, MASK, 4);
	for (size_t i = 0; i < n - h; i++)
		out[h + 4 + i] = f[h + i] ^ MASK[i & 3];
	return n + 4;
}

typedef struct rec {
	int type;
	uint16_t code;
	size_t len;
	uint8_t *data;
} rec_t;

typedef struct result {
	rec_t ev[16];
	int n;
	int rc;
	const char *why;
	size_t consumed;
} result_t;

static inline void result_free(result_t *r)
{
	for (int i = 0; i < r->n; i++)
		free(r->ev[i].data);
	memset(r, 0, sizeof(*r));
}

/* Feeds in[] in pieces of `step` bytes (0: all at once) to a parser with max_message_size max
 * and a fresh codec for params (NULL: no extension), recording events until an error. */
static inline void run(const uint8_t *in, size_t len, size_t step, uint64_t max,
		       const hb_ws_deflate_params_t *params, result_t *r)
{
	hb_ws_deflate_t *d = params ? hb_ws_deflate_new(params, 6, 8) : NULL;
	hb_ws_parser_config_t cfg = {.max_message_size = max, .deflate = d};
	hb_ws_parser_t *p = hb_ws_parser_new(&cfg);
	uint8_t *buf = malloc(len + 1);
	size_t off = 0, end, used;
	hb_ws_event_t ev;
	const char *why = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	memcpy(buf, in, len);
	while (off < len) {
		end = step && off + step < len ? off + step : len;
		rc = hb_ws_parse(p, buf + off, end - off, &used, &ev, &why);
		off += used;
		if (rc < 0) {
			r->rc = rc;
			r->why = why;
			break;
		}
		if (rc == HB_WS_EVENT) {
			cr_assert_lt(r->n, 16);
			r->ev[r->n].type = ev.type;
			r->ev[r->n].code = ev.code;
			r->ev[r->n].len = ev.len;
			r->ev[r->n].data = malloc(ev.len + 1);
			memcpy(r->ev[r->n].data, ev.data, ev.len);
			r->n++;
		} else {
			cr_assert_eq(used, end - (off - used), "OK means all consumed");
		}
	}
	r->consumed = off;
	hb_ws_parser_free(p);
	hb_ws_deflate_free(d);
	free(buf);
}

#endif
