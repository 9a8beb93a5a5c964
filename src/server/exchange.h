/* exchange.h: one request/response exchange on a connection (io thread only).
 *
 * A protocol handler (conn.h) creates an exchange for each request it hands to a worker: the
 * exchange holds the io thread's reference to the hb_stream_t, the response framing state and
 * the body bytes waiting for room in the stream. A connection carries a list of them (HTTP/1.1:
 * its pipelined requests; HTTP/2: one per stream), and is not freed while one remains.
 *
 * Finding an exchange from a worker message: the stream's `exchange` pointer (set by
 * hb_exchange_attach) is the hb_exchange_t, and its `conn` the connection. The exchange lives at
 * least until the worker's END message has been handled (after END the worker posts nothing
 * more for the stream), so every message finds it.
 *
 * Ownership: the connection owns its exchanges; hb_exchange_release() drops the stream reference
 * and frees the exchange. The handler's own per-exchange state lives in the `proto` tail
 * allocated with the exchange (it must not own other memory, or must free it before END).
 */
#ifndef HB_SERVER_EXCHANGE_H
#define HB_SERVER_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/stream.h"

struct hb_conn;
struct hb_io;

typedef struct hb_exchange {
	struct hb_exchange *prev, *next; /* the connection's list */
	struct hb_conn *conn;
	hb_stream_t *stream; /* the io thread's reference; NULL before attach */
	/* response framing (HTTP/1.1 writes Content-Length/chunked; h2 its DATA frames) */
	int64_t resp_cl;	    /* Content-Length the app declared; -1 none */
	uint64_t resp_body;	    /* body bytes accepted for sending */
	unsigned ended : 1;	    /* the worker's END was handled: nothing more will come */
	unsigned head_sent : 1;	    /* the response head was queued */
	unsigned chunked : 1;	    /* body framed as chunks */
	unsigned no_body : 1;	    /* HEAD request or 1xx/204/304: body bytes are dropped */
	unsigned abort : 1;	    /* the response is broken: close the connection after it */
	unsigned continue_sent : 1; /* 100 Continue sent */
	unsigned body_done : 1;	    /* the whole request body was read */
	unsigned abandoned : 1;	  /* the connection answered for the app (error): drop its output */
	unsigned eof_pending : 1; /* body complete, but its last chunk still waits in body_held */
	unsigned trailers : 1;	  /* the head declared trailers and the framing can carry them */
	unsigned mproto : 2;	  /* hb_metrics_proto_t it is counted under (streams gauge) */
	unsigned logged : 1;	  /* counted and access-logged already */
	unsigned undispatched : 1; /* not (yet) handed to a worker: no END will come, and the
				    * worker's stream reference is the exchange's to drop */
	char **resp_log; /* response header values the access log names (hb_access_keep) */
	/* request body, io -> worker */
	hb_chunk_t *body_acc; /* bytes parsed in the current feed, pushed as one chunk */
	size_t body_acc_cap;
	hb_chunk_t *body_held;	/* a chunk the stream had no room for: pushed on RESUME */
	uint64_t resp_deadline; /* request timeout: the head must come before (0 = none) */
	/* worker messages that came before the handler may write them (HTTP/1.1 pipelining: a
	 * response waits for the ones before it), in order; dropped with their accounting when
	 * the exchange is released */
	hb_msg_t *held;
	uint32_t nheld, held_cap;
	_Alignas(16) char proto[]; /* the handler's per-exchange tail (proto_size bytes) */
} hb_exchange_t;

/* [io] A new exchange on c, zeroed, with proto_size bytes of handler tail; linked into c's list.
 * Returns NULL on ENOMEM. */
hb_exchange_t *hb_exchange_new(struct hb_conn *c, size_t proto_size);
/* [io] Makes s (with its two references) the exchange's stream and s->exchange point back. */
void hb_exchange_attach(hb_exchange_t *x, hb_stream_t *s);
/* [io] Unlinks x, forgets its unsent output's accounting, drops the stream reference (both when
 * undispatched), drops the messages it held, frees x. Safe on an exchange without a stream. */
void hb_exchange_release(hb_exchange_t *x);
/* [io] Counts the exchange and writes its access-log line now (once; when it had a stream):
 * for an answer the connection gave for the app (504) while the app still runs. */
void hb_exchange_log_now(hb_exchange_t *x);
/* [io] The exchange is over: counted and logged (unless already), then released. */
void hb_exchange_finish(hb_exchange_t *x);
/* [io] Moves x to another protocol's streams gauge (HTTP/1.1 -> WebSocket). */
void hb_exchange_count_as(hb_exchange_t *x, int mproto);
/* [io] Counts and logs a response the connection answered without an exchange (a request it
 * could not parse or dispatch: 400, 413, 414, 431, 503). req may be NULL. */
void hb_exchange_log_error(struct hb_conn *c, const hb_request_t *req, int status);
/* [io] The response head is going out: keeps what the access log needs of it. */
void hb_exchange_head(hb_exchange_t *x, const hb_response_t *r);
/* [io] Tells the app its client is gone (unless the exchange has ended). */
void hb_exchange_client_gone(hb_exchange_t *x, uint32_t extra_bits);
/* [io] Frees the payload of a worker message that will not be sent, with its accounting. */
void hb_exchange_drop_msg(hb_msg_t *m);
/* [io] Keeps worker message m (payload and all) on x for later, after those kept before.
 * Returns 0, or -ENOMEM with m dropped (hb_exchange_drop_msg). */
int hb_exchange_hold(hb_exchange_t *x, const hb_msg_t *m);

/* [io] limit_concurrency (overload.h): returns 1, counted, when a new request on io must be
 * answered 503 at once instead of dispatched; 0 when the limit is off or not reached. */
int hb_exchange_over_limit(struct hb_io *io);
/* [io] The 503 a handler answers then, as a worker would: a head (*r) and its body (*ch), both
 * for free(). Returns 0 or -ENOMEM. */
int hb_exchange_busy_response(struct hb_io *io, hb_response_t **r, hb_chunk_t **ch);

/* [io] The response's Content-Length accounting (HTTP/1.1 and HTTP/2 alike): n body bytes of
 * the app's are about to be sent; returns how many may go, never past the declared length (the
 * excess is dropped and marks the response broken: x->abort), and counts them. */
uint64_t hb_exchange_resp_take(hb_exchange_t *x, uint64_t n);
/* [io] At the app's END: 1 when the body fell short of (or, dropped, exceeded) the declared
 * Content-Length and the response carries a body; the response is broken then. */
int hb_exchange_resp_short(const hb_exchange_t *x);

/* [io] Pushes body bytes gathered in body_acc to the stream as one chunk. Returns 1 when reading
 * must pause (the stream is full; a RESUME will follow), 0 otherwise, -1 on ENOMEM. */
int hb_exchange_flush_body(hb_exchange_t *x);
/* [io] Appends len bytes to body_acc. Returns 0 or -1 on ENOMEM. */
int hb_exchange_body_add(hb_exchange_t *x, const char *p, size_t len);
/* [io] A new chunk holding a copy of len bytes at p (p may be NULL when len is 0), for free().
 * Returns NULL on ENOMEM. */
hb_chunk_t *hb_exchange_chunk_copy(const void *p, size_t len);
/* [io] Queues ch, a message of `kind` (hb_stream_msg_push; 0 is request body bytes), on s for
 * the worker, pausing reading when the queue is full (the worker posts RESUME as it drains).
 * Returns HB_PUSH_OK (queued: read on), HB_PUSH_PAUSED (queued: pause reading until RESUME) or
 * HB_PUSH_HELD (no room: ch is not queued; the caller keeps it for RESUME and pauses). */
enum { HB_PUSH_OK, HB_PUSH_PAUSED, HB_PUSH_HELD };
int hb_exchange_msg_push(hb_stream_t *s, uint32_t kind, hb_chunk_t *ch);
/* [io] On RESUME: pushes the held chunk (and the pending end of body). Returns 1 if the stream
 * is still full (keep reading paused), 0 when reading may resume. */
int hb_exchange_resume(hb_exchange_t *x);

/* [io] 0 for a status whose response carries no body (1xx, 204, 304: RFC 9110 6.4.1), else 1. */
static inline int hb_exchange_status_has_body(int status)
{
	return !(status < 200 || status == 204 || status == 304);
}

/* [io] Request timeout: when x's head is overdue at `now` (resp_deadline, and the app has not
 * answered), warns, tells the app its client is gone, sets the status to 504, counts and logs
 * the exchange and returns 1; the handler then answers the 504 and marks x abandoned. Else 0. */
int hb_exchange_timed_out(hb_exchange_t *x, uint64_t now);

/* [io] The length of the file range f names: f->len, or to the end of the file when that is
 * negative (-1 when the file cannot be stat'ed). */
int64_t hb_exchange_file_len(const hb_file_chunk_t *f);

/* What a protocol handler does with the worker's messages for one of its exchanges; called by
 * hb_exchange_on_message only for a message the exchange can still use (below). The payload is
 * the callee's to keep for body and file, the caller's (freed after) for the heads. */
typedef struct hb_exchange_ops {
	void (*head)(struct hb_conn *c, hb_exchange_t *x, hb_response_t *r);
	void (*body)(struct hb_conn *c, hb_exchange_t *x, hb_chunk_t *ch, uint64_t acct);
	void (*file)(struct hb_conn *c, hb_exchange_t *x, hb_file_chunk_t *f);
	void (*end)(struct hb_conn *c, hb_exchange_t *x, uint32_t flags); /* every END */
	void (*send_continue)(struct hb_conn *c, hb_exchange_t *x);	  /* sets continue_sent */
	void (*resume)(struct hb_conn *c, hb_exchange_t *x);
	void (*interim)(struct hb_conn *c, hb_exchange_t *x, const hb_response_t *r);
	void (*trailers)(struct hb_conn *c, hb_exchange_t *x, const hb_response_t *r);
	void (*promise)(struct hb_conn *c, hb_exchange_t *x, const hb_promise_t *p); /* or NULL */
} hb_exchange_ops_t;

/* [io] Whether worker message m is one that x can still use, by the gates every HTTP handler
 * shares: nothing but END once x is not `live` (abandoned, reset); no body, file or trailers
 * before the head or for a bodiless response; no interim head or 100 Continue after the head;
 * no WebSocket message (message mode is the WebSocket handlers'). */
static inline int hb_exchange_msg_usable(const hb_exchange_t *x, const hb_msg_t *m, int live)
{
	switch ((hb_msg_type_t)m->type) {
	case HB_MSG_END:
		return 1;
	case HB_MSG_HEAD:
	case HB_MSG_INTERIM:
		return live && !x->head_sent;
	case HB_MSG_BODY:
	case HB_MSG_FILE:
	case HB_MSG_TRAILERS:
		return live && x->head_sent && !x->no_body;
	case HB_MSG_PROMISE:
		return live && !x->no_body; /* before the head too */
	case HB_MSG_CONTINUE:
		return live && !x->head_sent && !x->continue_sent && !x->body_done;
	case HB_MSG_RESUME:
		return live;
	case HB_MSG_MESSAGE:
	case HB_MSG_CLOSE:
	case HB_MSG_REQUEST:
		break;
	}
	return 0;
}

/* [io] One worker message m for x, on the handler's ops when hb_exchange_msg_usable; its payload
 * is then freed or dropped (hb_exchange_drop_msg) unless the callee kept it. Inline, called with
 * a static const ops table: the calls compile to direct ones. */
static inline void hb_exchange_on_message(struct hb_conn *c, hb_exchange_t *x, hb_msg_t *m,
					  int live, const hb_exchange_ops_t *ops)
{
	if (!hb_exchange_msg_usable(x, m, live)) {
		hb_exchange_drop_msg(m);
		return;
	}
	switch ((hb_msg_type_t)m->type) {
	case HB_MSG_HEAD:
		ops->head(c, x, m->ptr);
		break;
	case HB_MSG_BODY:
		ops->body(c, x, m->ptr, m->len);
		return; /* kept */
	case HB_MSG_FILE:
		ops->file(c, x, m->ptr);
		return; /* kept */
	case HB_MSG_END:
		ops->end(c, x, m->aux);
		return;
	case HB_MSG_CONTINUE:
		ops->send_continue(c, x);
		return;
	case HB_MSG_RESUME:
		ops->resume(c, x);
		return;
	case HB_MSG_INTERIM:
		ops->interim(c, x, m->ptr);
		break;
	case HB_MSG_TRAILERS:
		ops->trailers(c, x, m->ptr);
		break;
	case HB_MSG_PROMISE:
		if (ops->promise) /* else dropped below */
			ops->promise(c, x, m->ptr);
		break;
	case HB_MSG_MESSAGE:
	case HB_MSG_CLOSE:
	case HB_MSG_REQUEST:
		break; /* not usable: dropped above */
	}
	if (m->type == HB_MSG_PROMISE) /* the callee kept nothing of a head or a promise */
		hb_promise_free(m->ptr);
	else
		free(m->ptr);
}

#endif
