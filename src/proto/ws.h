/* ws.h: WebSocket (RFC 6455), server side: handshake validation, an incremental frame parser
 * and frame writers. No I/O: bytes in, events and bytes out.
 *
 * Handshake: hb_ws_handshake_check() validates an upgrade request (method, version, headers),
 * computes Sec-WebSocket-Accept, lists the offered subprotocols and negotiates permessage-deflate
 * (ws_deflate.h); hb_ws_write_accept() writes the 101 head, hb_ws_write_reject() the 400/426.
 * Parser: feed it what the socket gave, split anywhere; it returns one event at a time (pull
 * style: the caller stops reading when it wants to). It enforces CONFORMANCE.md's WebSocket table:
 * on a protocol error it returns a negative HB_WS_E_* with a static reason, and
 * hb_ws_error_close_code() gives the close code to send (1002, 1007, 1009, 1011).
 * A parser belongs to one connection and is used only by that connection's io thread. It
 * UNMASKS PAYLOAD IN PLACE in the caller's buffer; an unfragmented, uncompressed frame that is
 * whole in one feed is delivered as a pointer into that buffer (no copy); anything else is
 * reassembled in the parser's own buffer, which never grows past max_message_size.
 * Writers produce unmasked server frames; link with -lz (permessage-deflate).
 */
#ifndef HB_PROTO_WS_H
#define HB_PROTO_WS_H

#include <stddef.h>
#include <stdint.h>

#include "core/request.h"
#include "proto/ws_deflate.h"

enum {
	HB_WS_OP_CONT = 0x0,
	HB_WS_OP_TEXT = 0x1,
	HB_WS_OP_BINARY = 0x2,
	HB_WS_OP_CLOSE = 0x8,
	HB_WS_OP_PING = 0x9,
	HB_WS_OP_PONG = 0xA,
};

/* Close codes this module produces or the connection layer sends (RFC 6455 7.4.1). */
enum {
	HB_WS_CLOSE_NORMAL = 1000,
	HB_WS_CLOSE_GOING_AWAY = 1001,
	HB_WS_CLOSE_PROTOCOL = 1002,
	HB_WS_CLOSE_NO_STATUS = 1005, /* reported for a close frame without a code; never sent */
	HB_WS_CLOSE_BAD_DATA = 1007,
	HB_WS_CLOSE_TOO_BIG = 1009,
	HB_WS_CLOSE_INTERNAL = 1011,
	HB_WS_CLOSE_RESTART = 1012,
};

/* Errors (negative). Parser errors are sticky: a failed parser returns the same one again. */
enum {
	HB_WS_OK = 0,
	HB_WS_EVENT = 1,	 /* hb_ws_parse filled an event */
	HB_WS_E_PROTOCOL = -1,	 /* close 1002 */
	HB_WS_E_UTF8 = -2,	 /* close 1007 */
	HB_WS_E_TOO_BIG = -3,	 /* close 1009 */
	HB_WS_E_NOMEM = -4,	 /* close 1011 */
	HB_WS_E_HS_BAD = -5,	 /* handshake: answer 400 */
	HB_WS_E_HS_VERSION = -6, /* handshake: answer 426 with Sec-WebSocket-Version: 13 */
};

#define HB_WS_DEFAULT_MAX_MESSAGE (16u << 20)
#define HB_WS_MAX_HEADER 10    /* longest server frame header (unmasked, 64-bit length) */
#define HB_WS_MAX_PROTOCOLS 32 /* more offered subprotocols than this: 400 */

/* ---- handshake ---- */

typedef struct hb_ws_str {
	const char *ptr; /* points into the request's header storage */
	uint32_t len;
} hb_ws_str_t;

typedef struct hb_ws_handshake {
	char accept[32];			    /* Sec-WebSocket-Accept value, NUL-ended */
	hb_ws_str_t protocols[HB_WS_MAX_PROTOCOLS]; /* offered subprotocols, in order */
	uint32_t nprotocols;
	int deflate; /* 1 when permessage-deflate was accepted */
	hb_ws_deflate_params_t deflate_params;
	char extensions[160]; /* Sec-WebSocket-Extensions reply, or "" */
} hb_ws_handshake_t;

/* Validates a WebSocket upgrade: GET, HTTP/1.1+, Upgrade: websocket, Connection: upgrade,
 * one Sec-WebSocket-Key that is base64 of 16 bytes, Sec-WebSocket-Version: 13. dcfg is the
 * deflate policy (NULL: defaults, enabled). Returns 0 with *hs filled, HB_WS_E_HS_BAD (400) or
 * HB_WS_E_HS_VERSION (426), with a static reason in *why. hs points into the headers. */
int hb_ws_handshake_check(const char *method, size_t method_len, int http_major, int http_minor,
			  const hb_header_t *headers, size_t nheaders,
			  const hb_ws_deflate_config_t *dcfg, hb_ws_handshake_t *hs,
			  const char **why);
/* The same, reading a parsed request. */
int hb_ws_handshake_check_request(const hb_request_t *r, const hb_ws_deflate_config_t *dcfg,
				  hb_ws_handshake_t *hs, const char **why);
/* The same for an HTTP/2 extended CONNECT with :protocol websocket (RFC 8441 5): only
 * Sec-WebSocket-Version (13, else HB_WS_E_HS_VERSION), the offered subprotocols and
 * permessage-deflate; there is no key, and hs->accept stays empty. */
int hb_ws_handshake_check_h2(const hb_header_t *headers, size_t nheaders,
			     const hb_ws_deflate_config_t *dcfg, hb_ws_handshake_t *hs,
			     const char **why);
/* Computes Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 chars + NUL in out. */
void hb_ws_accept_key(const char *key, size_t key_len, char out[29]);
/* Writes the 101 response head: Upgrade, Connection, Sec-WebSocket-Accept, the chosen
 * subprotocol (NULL/0: none), hs->extensions when set, the extra headers, blank line.
 * Returns bytes written, bytes needed when cap is too small, 0 if a string holds CR/LF/NUL. */
size_t hb_ws_write_accept(char *out, size_t cap, const hb_ws_handshake_t *hs,
			  const char *subprotocol, size_t subprotocol_len, const hb_header_t *extra,
			  size_t nextra);
/* Writes a complete 400 or 426 (per err; 426 carries Sec-WebSocket-Version: 13) response with
 * a text/plain body naming why (NULL: none) and Connection: close. Returns bytes written or
 * needed. */
size_t hb_ws_write_reject(char *out, size_t cap, int err, const char *why);
/* HTTP status for a handshake error: 400 or 426. */
int hb_ws_handshake_status(int err);

/* ---- parser ---- */

typedef struct hb_ws_parser_config {
	uint64_t max_message_size; /* whole message after reassembly and inflate; 0: 16 MiB */
	hb_ws_deflate_t *deflate;  /* negotiated codec, borrowed; NULL: RSV1 is an error */
} hb_ws_parser_config_t;

enum { HB_WS_EV_TEXT = 1, HB_WS_EV_BINARY, HB_WS_EV_PING, HB_WS_EV_PONG, HB_WS_EV_CLOSE };

typedef struct hb_ws_event {
	int type;	     /* HB_WS_EV_* */
	const uint8_t *data; /* message, ping/pong payload, or close reason (UTF-8 checked) */
	size_t len;
	uint16_t code; /* CLOSE: the peer's code, 1005 when its frame had none */
} hb_ws_event_t;

typedef struct hb_ws_parser hb_ws_parser_t;

/* Creates a parser (cfg NULL: defaults, no deflate). Returns NULL when out of memory. */
hb_ws_parser_t *hb_ws_parser_new(const hb_ws_parser_config_t *cfg);
void hb_ws_parser_free(hb_ws_parser_t *p);
/* Consumes bytes until one event is complete or data runs out. *consumed says how many were
 * used (feed the rest again). Returns HB_WS_EVENT with *ev filled (ev->data valid until the
 * next call, and while data is untouched), HB_WS_OK (all consumed, need more), or an
 * HB_WS_E_* error with *why. Unmasks payload in data in place. After a CLOSE event every
 * further byte is consumed and ignored. */
int hb_ws_parse(hb_ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed, hb_ws_event_t *ev,
		const char **why);
/* The close code to send for a parse error: 1002, 1007, 1009 or 1011. */
uint16_t hb_ws_error_close_code(int err);
/* True when a peer's close code may appear on the wire (1000-1003, 1007-1014, 3000-4999). */
int hb_ws_close_code_valid(unsigned code);

/* ---- writer (server frames: FIN set, unmasked) ---- */

/* Bytes of header for a payload of len bytes: 2, 4 or 10. */
size_t hb_ws_header_size(uint64_t len);
/* Writes a frame header into out (room for hb_ws_header_size(len)); rsv1 marks a compressed
 * message. Returns its size. */
size_t hb_ws_write_header(uint8_t *out, unsigned opcode, int rsv1, uint64_t len);
/* Writes a whole frame. Returns bytes written, bytes needed when cap is too small, or 0 for a
 * control frame over 125 bytes or an unknown opcode. */
size_t hb_ws_write_frame(uint8_t *out, size_t cap, unsigned opcode, const void *payload,
			 size_t len);
/* Writes a close frame: code (0: an empty body), reason cut to 123 bytes at a UTF-8 boundary.
 * Returns bytes written or needed (at most 127). */
size_t hb_ws_write_close(uint8_t *out, size_t cap, uint16_t code, const char *reason,
			 size_t reason_len);
/* Builds one complete text/binary frame in out, compressed (RSV1) when d is non-NULL.
 * The frame is out->data + *start .. out->len. Returns 0 or HB_WS_E_NOMEM. */
int hb_ws_encode_message(hb_ws_buf_t *out, size_t *start, unsigned opcode, const void *payload,
			 size_t len, hb_ws_deflate_t *d);

#endif
