/* h2.h: the HTTP/2 server engine (RFC 9113) on nghttp2. No I/O: bytes in, events and bytes out.
 *
 * The connection layer feeds what it read with hb_h2_recv() and writes what hb_h2_send() hands
 * it. A new stream's complete request head comes out as an hb_request_t (core/request.h) built
 * like proto/h1 builds one (pseudo-headers validated, :authority becomes a Host header), then its
 * body chunks, its end, and its close (normal, or reset by either side). Responses go in as an
 * hb_response_t; body bytes are pulled from the caller through on_read_body when the stream's
 * send window allows, so the caller holds them and flow control needs no second copy.
 *
 * Flow control: the connection window is credited as soon as bytes arrive (they are the caller's
 * to buffer, bounded by the stream windows), but a stream's window only when the caller says the
 * app read the bytes (hb_h2_consume), so an app that does not read stops the WINDOW_UPDATEs of
 * its stream and no other. Limits and flood budgets (rapid reset, CONTINUATION, HPACK bomb,
 * SETTINGS/PING/PRIORITY/empty-frame floods, resets the client provokes) end the connection with
 * GOAWAY ENHANCE_YOUR_CALM; protocol violations with the code RFC 9113 names.
 *
 * Threads: one engine per connection, used only by the connection's io thread. Ownership: the
 * engine owns its nghttp2 session and per-stream state; requests it hands out belong to the
 * callee; everything is freed by hb_h2_free(), whatever state the connection is in.
 */
#ifndef HB_PROTO_H2_H
#define HB_PROTO_H2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/request.h"

/* RFC 9113 section 7 error codes, as they appear in RST_STREAM and GOAWAY. */
enum {
	HB_H2_NO_ERROR = 0x0,
	HB_H2_PROTOCOL_ERROR = 0x1,
	HB_H2_INTERNAL_ERROR = 0x2,
	HB_H2_FLOW_CONTROL_ERROR = 0x3,
	HB_H2_STREAM_CLOSED = 0x5,
	HB_H2_FRAME_SIZE_ERROR = 0x6,
	HB_H2_REFUSED_STREAM = 0x7,
	HB_H2_CANCEL = 0x8,
	HB_H2_COMPRESSION_ERROR = 0x9,
	HB_H2_ENHANCE_YOUR_CALM = 0xb,
};

/* Engine errors (negative). */
enum {
	HB_H2_OK = 0,
	HB_H2_E_PROTOCOL = -1, /* the peer broke the protocol: GOAWAY queued, then close */
	HB_H2_E_CALM = -2,     /* a limit or flood budget was exceeded: GOAWAY ENHANCE_YOUR_CALM */
	HB_H2_E_NOMEM = -3,
	HB_H2_E_STREAM = -4,  /* no such stream, or not in a state that allows the call */
	HB_H2_E_REFUSED = -5, /* push off in config or refused by the client's SETTINGS */
	HB_H2_E_CLOSED = -6,  /* the engine already ended (GOAWAY sent or received, fatal error) */
};

typedef struct hb_h2_limits {
	uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS; 100 */
	uint32_t max_header_list;	 /* decoded fields, name+value+32 each; 65536 */
	uint32_t max_fields;		 /* header fields per block; 100 */
	uint32_t initial_window;	 /* SETTINGS_INITIAL_WINDOW_SIZE; 65535 */
	uint32_t max_frame_size;	 /* SETTINGS_MAX_FRAME_SIZE, 16384..16777215; 16384 */
	uint64_t max_body;		 /* request body bytes; larger: 413 / RST_STREAM; 1 GiB */
	int push;		    /* server push allowed (still needs the client's consent) */
	uint32_t max_resets;	    /* client resets + resets it provoked, per second; 100 */
	uint32_t max_control;	    /* SETTINGS/PING/PRIORITY/empty frames per second; 1000 */
	uint32_t max_continuations; /* CONTINUATION frames per header block; 8 */
	int connect_protocol;	    /* SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441); 1 */
} hb_h2_limits_t;

typedef struct hb_h2_callbacks {
	/* A stream's request head is valid. `req` (one malloc block) passes to the callee, also
	 * when it returns non-zero: negative resets the stream with REFUSED_STREAM; positive says
	 * the callee answered it alone (hb_h2_submit_response without a body; else a 500 goes)
	 * and wants no more events for it. The request has HB_REQ_HAS_BODY unless the HEADERS
	 * frame ended the stream. An extended CONNECT (RFC 8441) comes with method CONNECT and
	 * its :protocol from hb_h2_stream_protocol(); its DATA is a tunnel, not held to max_body.
	 */
	int (*on_request)(void *ud, int32_t sid, hb_request_t *req);
	/* Request body bytes of a stream on_request accepted. Returning non-zero resets the stream
	 * (INTERNAL_ERROR). Call hb_h2_consume() once the app has read them. */
	int (*on_data)(void *ud, int32_t sid, void *sud, const uint8_t *data, size_t len);
	/* The request body is complete (always follows on_request, also without a body). */
	void (*on_end_stream)(void *ud, int32_t sid, void *sud);
	/* A stream on_request accepted is closed: error_code is HB_H2_NO_ERROR after a complete
	 * exchange, else the RST_STREAM / GOAWAY code (reset: which side sent it is in by_peer).
	 * The stream's id is dead after this returns; free what sud points to. */
	void (*on_close)(void *ud, int32_t sid, void *sud, uint32_t error_code, int by_peer);
	/* Pulls response body bytes for a stream: copy at most len into buf and return the count;
	 * set *eof when nothing follows. Returning 0 without *eof defers the stream until
	 * hb_h2_resume(). A negative return resets the stream (INTERNAL_ERROR). */
	ssize_t (*on_read_body)(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t len,
				int *eof);
	/* The peer sent GOAWAY (may be NULL). Streams above last_sid never reach the app. */
	void (*on_goaway)(void *ud, uint32_t error_code, int32_t last_sid);
} hb_h2_callbacks_t;

typedef struct hb_h2 hb_h2_t;

/* Fills lim with the defaults above. */
void hb_h2_limits_default(hb_h2_limits_t *lim);
/* Creates a server engine and queues its SETTINGS. lim NULL: defaults. NULL when out of memory. */
hb_h2_t *hb_h2_new(const hb_h2_limits_t *lim, const hb_h2_callbacks_t *cb, void *ud);
/* Frees the engine, its session and every stream's state; streams the caller still holds get
 * on_close(HB_H2_CANCEL, by_peer 0) first. */
void hb_h2_free(hb_h2_t *e);

/* h2c (RFC 7540 3.2): takes over an HTTP/1.1 request `req` (still the caller's) that carried
 * Upgrade: h2c and the HTTP2-Settings value (base64url). Stream 1 becomes that request's
 * exchange, already ended from the client's side, with stream data sud (on_close will report
 * it); answer it with hb_h2_submit_response(1, ...). Call before the first hb_h2_recv().
 * Returns 0, HB_H2_E_PROTOCOL for a bad settings value, HB_H2_E_NOMEM. */
int hb_h2_upgrade(hb_h2_t *e, const char *settings_b64, size_t len, const hb_request_t *req,
		  void *sud);

/* Feeds received bytes (the client preface first). now_ms: a monotonic clock, for the flood
 * budgets. Calls the callbacks synchronously. Returns 0 when all were processed, or a negative
 * HB_H2_E_* with a static reason in *why (may be NULL) when the engine ended the connection (a
 * limit, a flood, a fatal error): a GOAWAY is then queued. A protocol error nghttp2 finds also
 * queues its GOAWAY but shows only once that is sent: hb_h2_want_read() turns false and
 * hb_h2_failure() tells the code. Either way: send what hb_h2_send() gives, then close. */
int hb_h2_recv(hb_h2_t *e, const uint8_t *data, size_t len, uint64_t now_ms, const char **why);
/* Serializes pending frames; *out points at them until the next call into the engine.
 * Returns the byte count (0: nothing to send now), or HB_H2_E_* on a fatal error. May call
 * on_read_body and on_close. */
ssize_t hb_h2_send(hb_h2_t *e, const uint8_t **out);
/* True while the engine wants more input / has output pending. Neither: close the connection. */
int hb_h2_want_read(const hb_h2_t *e);
int hb_h2_want_write(const hb_h2_t *e);

/* Why the engine ended the connection: 0, or the HB_H2_E_* with the GOAWAY code sent (or queued)
 * and a static reason. code and why may be NULL. */
int hb_h2_failure(const hb_h2_t *e, uint32_t *code, const char **why);

/* Associates caller data with a stream (the on_* callbacks pass it back as sud). */
int hb_h2_set_stream_data(hb_h2_t *e, int32_t sid, void *sud);

/* Sends a response head. date: an IMF-fixdate added as "date" unless the app set one; the
 * server header likewise. Names are lower-cased; connection-specific fields are dropped.
 * has_body: pull the body with on_read_body, else the head ends the stream.
 * Returns 0, HB_H2_E_STREAM, HB_H2_E_NOMEM. */
int hb_h2_submit_response(hb_h2_t *e, int32_t sid, const hb_response_t *r, const char *date,
			  int has_body);
/* An informational head (1xx, e.g. 103 Early Hints) before the final response. */
int hb_h2_submit_info(hb_h2_t *e, int32_t sid, int status, const hb_header_t *h, uint32_t n);
/* Sets trailers sent after the body (call before on_read_body reports eof). Copies them. */
int hb_h2_submit_trailers(hb_h2_t *e, int32_t sid, const hb_header_t *h, uint32_t n);
/* A deferred stream has body bytes (or its end) again: on_read_body will be called. */
int hb_h2_resume(hb_h2_t *e, int32_t sid);
/* Resets a stream (the app failed, or gave up on it). Does not count against the client. */
int hb_h2_reset(hb_h2_t *e, int32_t sid, uint32_t error_code);
/* The app read n body bytes of a stream: its window may be opened again. */
int hb_h2_consume(hb_h2_t *e, int32_t sid, size_t n);
/* Bytes the stream may send now (the smaller of its and the connection's window); <0: no
 * such stream. */
int64_t hb_h2_send_window(const hb_h2_t *e, int32_t sid);

/* True when a push could be promised now: push on in config, the client's SETTINGS_ENABLE_PUSH
 * is 1, and the connection is not ending (GOAWAY either way, or a graceful shutdown). */
int hb_h2_can_push(const hb_h2_t *e);
/* Server push (RFC 9113 8.4): promises a GET of path (with the parent's :authority and scheme
 * and the extra headers) on stream sid. On success returns the promised stream id and the
 * request to serve on it in *req (the caller's, as from on_request; no on_end_stream follows).
 * HB_H2_E_REFUSED when hb_h2_can_push() is false or as many promised streams are open as the
 * client's SETTINGS_MAX_CONCURRENT_STREAMS (or our own limit, if lower) allows;
 * HB_H2_E_STREAM, HB_H2_E_NOMEM. */
int32_t hb_h2_push(hb_h2_t *e, int32_t sid, const char *path, size_t path_len, const hb_header_t *h,
		   uint32_t n, hb_request_t **req);

/* Graceful shutdown, as h2o does it: a GOAWAY with the last stream id 2^31-1 and a PING; when
 * the PING's ACK shows the client has seen it, the final GOAWAY with the last stream accepted.
 * Streams in flight finish; new ones are refused. */
void hb_h2_shutdown(hb_h2_t *e);
/* Ends the connection now: GOAWAY(error_code) with the last stream processed. */
void hb_h2_goaway(hb_h2_t *e, uint32_t error_code);

/* The :protocol of a stream's extended CONNECT (len bytes, not NUL-ended), or NULL (*len 0)
 * for any other request. Valid from on_request until the stream closes. */
const char *hb_h2_stream_protocol(const hb_h2_t *e, int32_t sid, size_t *len);

/* Streams the engine holds state for (open, or closing). */
uint32_t hb_h2_nstreams(const hb_h2_t *e);
/* Bytes the engine and its nghttp2 session hold right now. */
size_t hb_h2_mem(const hb_h2_t *e);

/* The client connection preface (24 bytes). */
#define HB_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define HB_H2_PREFACE_LEN 24
/* 1: data starts with the whole preface, 0: it cannot be the preface, -1: a prefix of it. */
int hb_h2_is_preface(const void *data, size_t len);

#endif
