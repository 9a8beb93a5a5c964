/* h1.h: HTTP/1.1 request parsing (llhttp, strict) and response head serialization. No I/O.
 *
 * Bytes in, callbacks out. The parser enforces CONFORMANCE.md's HTTP/1.1 table on top of llhttp:
 * limits (414/431/413), Content-Length/Transfer-Encoding smuggling rules, Host rules, bare CR/LF,
 * obs-fold, bad chunk syntax, request-target forms and method tokens (proto/h1_target.h; the
 * table is in docs/architecture.md). It stops (pauses) after each complete message so the
 * connection layer decides whether to read the next one (pipelining) or wait; unconsumed bytes
 * stay with the caller.
 * One parser per connection; used only by the connection's io thread.
 */
#ifndef HB_PROTO_H1_H
#define HB_PROTO_H1_H

#include <stddef.h>
#include <stdint.h>

#include "core/request.h"

typedef struct hb_h1_limits {
	uint32_t max_request_line; /* bytes of "METHOD target HTTP/x.y" -> 414 */
	uint32_t max_fields;	   /* header count -> 431 */
	uint32_t max_field_size;   /* one header line -> 431 */
	uint32_t max_header_bytes; /* field lines with their CRLFs (not the request line) -> 431 */
	uint64_t max_body;	   /* Content-Length or chunked total -> 413 */
} hb_h1_limits_t;

typedef struct hb_h1_callbacks {
	/* The head is complete and valid. `req` is one malloc block; ownership passes to the
	 * callee, also when it returns non-zero (which fails the parser: HB_H1_E_CALLBACK). */
	int (*on_request)(void *ud, hb_request_t *req);
	/* Body bytes (decoded from chunked); `at` points into the fed buffer. */
	int (*on_body)(void *ud, const char *at, size_t len);
	/* The message (body and trailers) is complete. The parser pauses after this call.
	 * Trailers are checked (syntax, header limits) and dropped, never reported. */
	int (*on_complete)(void *ud);
} hb_h1_callbacks_t;

typedef struct hb_h1_parser hb_h1_parser_t;

/* Errors (negative). hb_h1_error_status() maps them to the HTTP status to answer with. */
enum {
	HB_H1_OK = 0,
	HB_H1_PAUSED = 1,	      /* stopped after a complete message; call hb_h1_resume() */
	HB_H1_E_BAD = -1,	      /* 400 */
	HB_H1_E_URI_TOO_LONG = -2,    /* 414 */
	HB_H1_E_HEADERS_TOO_BIG = -3, /* 431 */
	HB_H1_E_BODY_TOO_BIG = -4,    /* 413 */
	HB_H1_E_VERSION = -5,	      /* 505 */
	HB_H1_E_NOT_IMPL = -6,	      /* 501 */
	HB_H1_E_NOMEM = -7,	      /* 500 */
	HB_H1_E_CALLBACK = -8,	      /* a callback returned non-zero */
};

/* lim NULL: 8190 request line, 100 fields, 8190 per line, 64 KiB section, 1 GiB body.
 * Returns NULL when out of memory. */
hb_h1_parser_t *hb_h1_new(const hb_h1_limits_t *lim, const hb_h1_callbacks_t *cb, void *ud);
void hb_h1_free(hb_h1_parser_t *p);

/* Feeds bytes. *consumed says how many were used. Returns HB_H1_OK (all consumed),
 * HB_H1_PAUSED (a message completed; the rest is unconsumed), or an HB_H1_E_* error with a
 * static reason in *why. After an error the parser is dead (feeding it returns the same error).
 * Calls the callbacks synchronously. Transfer-Encoding: exactly "chunked" is accepted;
 * "gzip, chunked" (codings we do not decode, chunked last) is HB_H1_E_NOT_IMPL (501); any
 * other value, a repeated TE line, TE with Content-Length or in HTTP/1.0 is HB_H1_E_BAD.
 * consumed and why may be NULL. */
int hb_h1_feed(hb_h1_parser_t *p, const char *data, size_t len, size_t *consumed, const char **why);
/* Lets the parser continue with the next message after HB_H1_PAUSED. */
void hb_h1_resume(hb_h1_parser_t *p);
/* The peer closed: returns HB_H1_OK if that ends no message (or ends a read-until-close body,
 * which requests never have), else HB_H1_E_BAD (a truncated request). */
int hb_h1_finish(hb_h1_parser_t *p);
/* True while between messages (no byte of the next request seen yet). */
int hb_h1_idle(const hb_h1_parser_t *p);
/* Readies a parser that is between messages for its next user: resumed if paused, callbacks'
 * ud set, its scratch buffers kept (a cache of parsers spares idle connections one each).
 * Returns 0, or -1 when p is not between messages (free it instead). */
int hb_h1_reuse(hb_h1_parser_t *p, void *ud);

/* Maps an HB_H1_E_* code to 400/413/414/431/500/501/505. */
int hb_h1_error_status(int err);
/* Standard reason phrase for a status ("OK", "Not Found"); "Unknown" for others. */
const char *hb_h1_reason(int status);

/* Serializes a response head: status line, the app's headers, Date (date_str, when the app set
 * none), Server, "Transfer-Encoding: chunked" when chunked, "Connection: close" when !keep_alive,
 * and the blank line. Returns the bytes written, or the bytes needed if cap is too small. */
size_t hb_h1_write_head(char *out, size_t cap, const hb_response_t *r, int minor_version,
			int chunked, int keep_alive, const char *date_str);
/* Serializes an interim head (1xx, e.g. 103 Early Hints): the status line, r's headers and the
 * blank line, nothing added. Returns the bytes written, or needed if cap is too small. */
size_t hb_h1_write_interim(char *out, size_t cap, const hb_response_t *r);
/* Serializes the end of a chunked body with a trailer section (RFC 9112 7.1.2): "0\r\n", r's
 * fields except those a trailer must not carry (framing, connection, Host), the blank line.
 * Returns the bytes written, or needed if cap is too small. */
size_t hb_h1_write_trailers(char *out, size_t cap, const hb_response_t *r);
/* Writes a simple complete error response (text/plain body, Connection: close). */
size_t hb_h1_write_error(char *out, size_t cap, int status, const char *date_str);
/* Chunk framing: writes "<hex>\r\n" into out (>= 20 bytes); returns its length. */
size_t hb_h1_chunk_prefix(char *out, size_t len);

#endif
