/* ws_harness.h: client-side WebSocket frames for the parser tests (test_ws.c,
 * test_ws_deflate.c): a masked client frame built from its first byte and payload, and a server
 * frame masked after the fact so that the server-role parser reads our own writer's output.
 * Header-only (static functions); single-threaded like the tests. */
#ifndef HB_TESTS_WS_HARNESS_H
#define HB_TESTS_WS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

#endif
