/* ws_deflate.h: WebSocket permessage-deflate (RFC 7692) on zlib. No I/O.
 *
 * Three parts: negotiation (parse a client's Sec-WebSocket-Extensions offer, choose the response
 * from a read-only config), per-message inflate for the frame parser (hard output limit: it stops
 * as soon as a message would pass max bytes and never allocates past that, so bombs cost nothing),
 * and per-message deflate for outgoing frames. Window bits and context takeover are honoured as
 * negotiated; zlib cannot deflate with an 8-bit window, so 9 is used (its longest match distance,
 * 250, still fits a 256-byte window), as other servers do.
 * One hb_ws_deflate_t per connection, used only by that connection's io thread; it owns its two
 * zlib streams, created on first use. Link with -lz.
 */
#ifndef HB_PROTO_WS_DEFLATE_H
#define HB_PROTO_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer; data is malloc'd and owned by whoever holds the struct. */
typedef struct hb_ws_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} hb_ws_buf_t;

/* Server policy; read-only, shared by all threads. */
typedef struct hb_ws_deflate_config {
	int enabled;			/* accept permessage-deflate offers (default 1) */
	int server_no_context_takeover; /* reset our compressor per message even if not asked */
	uint8_t server_max_window_bits; /* our compressor's window, 8..15 (default 12) */
	uint8_t client_max_window_bits; /* ask the client for at most this, if it allows (15) */
	int level;			/* zlib level 0..9 (default 6) */
	int mem_level;			/* zlib memLevel 1..9 (default 5, as websockets) */
} hb_ws_deflate_config_t;

/* The negotiated parameters, exactly as sent in the response; a window of 0 means the
 * parameter is absent (15 bits). */
typedef struct hb_ws_deflate_params {
	uint8_t server_no_context_takeover;
	uint8_t client_no_context_takeover;
	uint8_t server_max_window_bits;
	uint8_t client_max_window_bits;
} hb_ws_deflate_params_t;

typedef struct hb_ws_deflate hb_ws_deflate_t;

enum {
	HB_WS_DEFLATE_OK = 0,
	HB_WS_DEFLATE_E_TOO_BIG = -1, /* inflated message passes the limit (close 1009) */
	HB_WS_DEFLATE_E_DATA = -2,    /* corrupt compressed data (close 1002) */
	HB_WS_DEFLATE_E_NOMEM = -3,   /* allocation failed (close 1011) */
};

/* Grows b so that `extra` more bytes fit. Returns 0, or HB_WS_DEFLATE_E_NOMEM. */
int hb_ws_buf_reserve(hb_ws_buf_t *b, size_t extra);
/* Frees b's storage and zeroes it. */
void hb_ws_buf_free(hb_ws_buf_t *b);

/* Fills c with the defaults: enabled, server window 12, client window 15, level 6, memLevel 5. */
void hb_ws_deflate_config_default(hb_ws_deflate_config_t *c);
/* Reads one Sec-WebSocket-Extensions value and accepts its first valid permessage-deflate offer
 * (offers with unknown, duplicate or out-of-range parameters are declined, per RFC 7692 7.1).
 * Returns 1 with *out filled, 0 when nothing was accepted (or c->enabled is 0). */
int hb_ws_deflate_negotiate(const hb_ws_deflate_config_t *c, const char *value, size_t len,
			    hb_ws_deflate_params_t *out);
/* Writes the Sec-WebSocket-Extensions response value for p, NUL-terminated. Returns its length,
 * or the length needed (without the NUL) when cap is too small. At most 128 bytes. */
size_t hb_ws_deflate_response(const hb_ws_deflate_params_t *p, char *out, size_t cap);

/* Creates a codec for negotiated p with zlib level and mem_level (out of range: defaults).
 * Returns NULL when out of memory. */
hb_ws_deflate_t *hb_ws_deflate_new(const hb_ws_deflate_params_t *p, int level, int mem_level);
void hb_ws_deflate_free(hb_ws_deflate_t *d);

/* Inflates more (unmasked) payload of the current message, appending to out, which never grows
 * past max bytes. Returns 0, HB_WS_DEFLATE_E_TOO_BIG as soon as the output would pass max,
 * HB_WS_DEFLATE_E_DATA or HB_WS_DEFLATE_E_NOMEM; *why gets a static reason. */
int hb_ws_deflate_inflate(hb_ws_deflate_t *d, const uint8_t *in, size_t len, hb_ws_buf_t *out,
			  size_t max, const char **why);
/* Ends the current message (feeds the 00 00 ff ff tail; resets the stream without client
 * context takeover). Same returns as hb_ws_deflate_inflate. */
int hb_ws_deflate_inflate_end(hb_ws_deflate_t *d, hb_ws_buf_t *out, size_t max, const char **why);

/* Compresses a whole message into out->data + headroom (leaving room for a frame header in
 * front), tail stripped, ready to send with RSV1. out->len is set to headroom + compressed size.
 * Returns 0, or HB_WS_DEFLATE_E_NOMEM / HB_WS_DEFLATE_E_DATA. */
int hb_ws_deflate_compress(hb_ws_deflate_t *d, const void *in, size_t len, size_t headroom,
			   hb_ws_buf_t *out);

#endif
