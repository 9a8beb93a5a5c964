/* h2_priv.h: the HTTP/2 engine's internals, shared by h2.c (session and API), h2_msg.c (request
 * and response heads) and h2_guard.c (the frame scanner that enforces the flood budgets).
 * Not for use outside src/proto/h2*.c. Same thread rules as h2.h.
 */
#ifndef HB_PROTO_H2_PRIV_H
#define HB_PROTO_H2_PRIV_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/h2.h"

/* A field of a header block in progress: offsets into h2s.buf. */
struct h2_field {
	uint32_t no, nl, vo, vl;
};

enum { PS_METHOD, PS_SCHEME, PS_AUTHORITY, PS_PATH, PS_PROTOCOL, PS_COUNT };

/* Per-stream state, from the first HEADERS until nghttp2 closes the stream. */
struct h2s {
	struct h2s *prev, *next; /* hb_h2.streams */
	int32_t id;
	void *sud;
	bool delivered;	  /* on_request accepted it: the caller has state for it */
	bool in_trailers; /* the block being decoded is the request's trailers */
	bool deferred;	  /* its data provider returned NGHTTP2_ERR_DEFERRED */
	bool responded;	  /* a final response head was submitted */
	bool app_reset;	  /* the server's own RST_STREAM (app failure): not the client's fault */
	bool peer_reset;  /* the client sent RST_STREAM */
	bool pushed;	  /* a stream the server promised (counted in hb_h2.npushed) */
	/* header block being decoded */
	char *buf;
	uint32_t len, cap;
	struct h2_field *f;
	uint32_t nf, fcap;
	struct h2_field ps[PS_COUNT];
	uint8_t have_ps; /* 1 << PS_* */
	uint32_t list_bytes;
	int64_t content_length; /* -1: none */
	uint64_t body_rx;
	/* response trailers, one block: the nv array then the strings */
	nghttp2_nv *trailers;
	size_t ntrailers;
	/* the request's :protocol (RFC 8441 extended CONNECT), or NULL */
	char *protocol;
	uint32_t protocol_len;
	/* kept for pushes: "scheme\0authority" of the request */
	char *origin;
	uint32_t scheme_len, authority_len;
};

/* The frame scanner's state: it sees every frame header before nghttp2 does. */
struct h2_guard {
	uint32_t preface_left; /* client magic bytes still to skip */
	uint8_t hd[9];
	uint8_t hdlen;
	uint32_t payload_left;
	bool in_block; /* a header block lacks END_HEADERS */
	uint32_t ncont, block_bytes;
	uint64_t win_start;
	uint32_t resets, control;
};

struct hb_h2 {
	nghttp2_session *s;
	hb_h2_limits_t lim;
	hb_h2_callbacks_t cb;
	void *ud;
	struct h2s *streams;
	uint32_t nstreams;
	uint32_t npushed; /* promised streams not yet closed */
	size_t mem;	  /* bytes allocated through h2_alloc / nghttp2_mem */
	struct h2_guard g;
	uint64_t now_ms;
	/* the end of the connection */
	int fail;	    /* HB_H2_E_* decided inside a callback or by the guard */
	uint32_t fail_code; /* its GOAWAY code */
	const char *why;    /* static */
	bool terminated;    /* a final GOAWAY was submitted */
	bool peer_goaway;   /* the client sent GOAWAY */
	bool shutting_down; /* first GOAWAY of a graceful shutdown sent, waiting for the PING */
	int lib_error;	    /* last nghttp2 error reported by error_callback2 */
	uint8_t *obuf;	    /* hb_h2_send's aggregate */
	size_t ocap;
};

/* Allocation that counts into e->mem (a size header precedes the block). */
void *h2_alloc(hb_h2_t *e, size_t n);
void *h2_realloc(hb_h2_t *e, void *p, size_t n);
void h2_free(hb_h2_t *e, void *p);

/* The engine's state of a stream; NULL when it has none. */
struct h2s *h2_stream_of(const hb_h2_t *e, int32_t sid);
/* Creates a stream's state and attaches it to nghttp2's stream. NULL on ENOMEM. */
struct h2s *h2_stream_new(hb_h2_t *e, int32_t sid);
/* The response data provider: pulls from on_read_body (nghttp2_data_source_read_callback). */
ssize_t h2_read_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
		     nghttp2_data_source *src, void *ud);

/* Marks the connection failed (first reason wins). */
void h2_fail(hb_h2_t *e, int err, uint32_t code, const char *why);

/* h2_msg.c: a decoded field of a request block; 0 or NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
 * (stream error) or NGHTTP2_ERR_CALLBACK_FAILURE (connection ends: h2_fail was called). */
int h2_msg_field(hb_h2_t *e, struct h2s *st, const uint8_t *name, size_t nl, const uint8_t *value,
		 size_t vl);
/* Builds the request of a complete block; NULL with *why when it is malformed (stream error
 * PROTOCOL_ERROR) or memory ran out (*why "out of memory"). end: the block ended the stream. */
hb_request_t *h2_msg_request(hb_h2_t *e, struct h2s *st, bool end, const char **why);
/* Builds a GET request for a pushed stream with the parent stream's scheme and authority. */
hb_request_t *h2_msg_push_request(const struct h2s *parent, const char *path, size_t path_len,
				  const hb_header_t *h, uint32_t n);
/* Response head -> nv array in one block owned by the caller (free()); NULL on ENOMEM. */
nghttp2_nv *h2_msg_response_nv(int status, const hb_header_t *h, uint32_t n, uint32_t resp_flags,
			       const char *date, size_t *nnv);
/* Keeps "scheme\0authority" in st->origin for pushes. 0 or -1 on ENOMEM. */
int h2_msg_keep_origin(hb_h2_t *e, struct h2s *st, const char *scheme, size_t sl,
		       const char *authority, size_t al);
/* Frees the header-block buffers of a stream. */
void h2_msg_reset(hb_h2_t *e, struct h2s *st);

/* h2_guard.c: scans len bytes before nghttp2 sees them. Returns len, or 0 when a budget ran out
 * (h2_fail was called: none of them is fed). */
size_t h2_guard_scan(hb_h2_t *e, const uint8_t *data, size_t len);
/* Counts a reset against the client (one it sent or one it provoked). */
void h2_guard_reset(hb_h2_t *e);

#endif
