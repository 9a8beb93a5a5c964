/* stream.h: one request/response exchange shared by an io thread and a python worker thread.
 *
 * The io thread creates a stream when a request head is complete, dispatches it to a worker
 * through the hub (hub.h), then feeds it body chunks and sends what the worker produces.
 * The worker reads the body and produces the response with the hb_stream_* calls below, which
 * push messages onto the worker->io SPSC queue and may block: call them WITHOUT the GIL.
 *
 * Threads: functions marked [io] only on the owning io thread, [worker] only on the worker
 * thread that received the stream from hb_worker_next(). Ownership: two references (io, worker);
 * hb_stream_release() drops one and the last frees the stream, its request and leftover chunks.
 *
 * Flow control: the io thread stops reading the socket while more than HB_STREAM_BODY_HIGH bytes
 * of body wait unread; the worker sends HB_MSG_RESUME when it has drained them below LOW.
 * The worker blocks in send while more than HB_STREAM_OUT_HIGH bytes wait to be written.
 */
#ifndef HB_CORE_STREAM_H
#define HB_CORE_STREAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/request.h"
#include "core/spsc.h"

#define HB_STREAM_BODY_HIGH (256u * 1024u)
#define HB_STREAM_BODY_LOW (64u * 1024u)
#define HB_STREAM_OUT_HIGH (512u * 1024u)
#define HB_STREAM_OUT_LOW (128u * 1024u)
#define HB_STREAM_BODY_SLOTS 256u
/* A message channel's queue is smaller: every idle WebSocket holds one, and a full queue only
 * pauses reading until the app has taken messages (the held-message path of conn_ws.c). 32
 * slots (1 KiB) instead of 256 (8 KiB) per connection. */
#define HB_STREAM_CHANNEL_SLOTS 32u

struct hb_hub;

/* Message types on the SPSC queues (hb_msg_t.type). */
typedef enum {
	HB_MSG_REQUEST = 1, /* io->worker: stream = new exchange */
	HB_MSG_HEAD,	    /* worker->io: ptr = hb_response_t* (io frees) */
	HB_MSG_BODY,	    /* worker->io: ptr = hb_chunk_t* (io frees), len = bytes */
	HB_MSG_FILE,	    /* worker->io: ptr = hb_file_chunk_t* (io closes fd, frees) */
	HB_MSG_END,	    /* worker->io: response complete; aux = HB_END_* flags */
	HB_MSG_CONTINUE,    /* worker->io: app started reading: send 100 Continue if expected */
	HB_MSG_RESUME,	    /* worker->io: body drained below LOW: read the socket again */
	HB_MSG_MESSAGE,	    /* worker->io: ptr = hb_chunk_t* one whole message, aux = its kind
			       (HB_MSGK_TEXT/BINARY) */
	HB_MSG_CLOSE,	/* worker->io: close a message channel: aux = code, ptr = hb_chunk_t* reason
			   (whole, the connection cuts it to what its protocol carries) or NULL */
	HB_MSG_INTERIM, /* worker->io: ptr = hb_response_t* an interim head (1xx) before HEAD */
	HB_MSG_TRAILERS, /* worker->io: ptr = hb_response_t* fields after the body, before END */
	HB_MSG_PROMISE,	 /* worker->io: ptr = hb_promise_t*: start an associated exchange */
} hb_msg_type_t;

/* Message channels (request flag HB_REQ_CHANNEL): after its head the exchange carries whole
 * messages both ways instead of a body. The worker accepts with an HB_MSG_HEAD of status 101
 * (its extra headers, e.g. the chosen subprotocol, go with the acceptance; each connection
 * protocol writes acceptance in its own form); any other head is a denial, sent as a plain
 * response. Incoming messages are body chunks whose queue entry carries the kind in aux (see
 * hb_stream_msg_recv). */
enum {
	HB_MSGK_TEXT = 1,
	HB_MSGK_BINARY = 2,
	HB_MSGK_CLOSE = 8, /* peer closed (or the connection died): chunk = 2-byte code + reason */
};

enum {
	HB_END_ABORT = 1u << 0, /* response incomplete or broken: close the connection after */
};

/* A heap byte chunk; used for body bytes in both directions. */
typedef struct hb_chunk {
	size_t len;
	char data[];
} hb_chunk_t;

/* A file region to send by splice (wsgi.file_wrapper). fd is owned by the message. */
typedef struct hb_file_chunk {
	int fd;
	int64_t offset;
	int64_t len; /* -1: to end of file */
} hb_file_chunk_t;

/* HB_MSG_PROMISE's payload: an exchange the worker asks its connection to start on its own (an
 * HTTP/2 server push), for `target` with extra request fields; the new exchange is dispatched
 * to a worker like a client's. One allocation with its fields (free() frees both). */
typedef struct hb_promise {
	hb_response_t *fields; /* status unused; a separate allocation owned by the promise */
	uint32_t target_len;
	char target[]; /* NUL-terminated */
} hb_promise_t;

/* Stream state bits (hb_stream_t.state). */
enum {
	HB_ST_BODY_EOF = 1u << 0,    /* [io sets] all body bytes have been queued */
	HB_ST_CLIENT_GONE = 1u << 1, /* [io sets] peer closed/reset or timed out: stop producing */
	HB_ST_IO_PAUSED = 1u << 2,   /* [io sets, worker clears] io paused reading for this body */
	HB_ST_CONTINUE_SENT = 1u << 3, /* [worker sets] HB_MSG_CONTINUE already posted */
	HB_ST_BODY_ERROR = 1u << 4,    /* [io sets] body was malformed or too large: reads fail */
	HB_ST_HEAD_SENT = 1u << 5,     /* [worker sets] HB_MSG_HEAD posted */
	HB_ST_ENDED = 1u << 6,	       /* [worker sets] HB_MSG_END posted */
	HB_ST_MSG_OPEN = 1u << 7,      /* [io sets] the channel is open (acceptance sent) */
};

typedef struct hb_stream {
	hb_request_t *req; /* immutable once dispatched */
	struct hb_hub *hub;
	int io_idx;	/* owning io thread */
	int worker_idx; /* set by the hub at dispatch */
	void *exchange; /* [io] the server's hb_exchange_t (its ->conn: the connection); opaque here
			 */
	uint64_t id;	/* [io] per-io-thread sequence, for logs */
	_Atomic int refs;
	_Atomic uint32_t state;	  /* HB_ST_* */
	_Atomic uint32_t wake;	  /* futex word: bumped on any change the worker may wait for */
	_Atomic uint32_t waiting; /* worker is (about to be) blocked on `wake` */
	/* async workers (ASGI) are woken per stream through the hub's ready list, not the futex */
	int async;		      /* set at dispatch from the worker's mode */
	_Atomic int wake_pending;     /* queued on the worker's ready list */
	struct hb_stream *ready_next; /* link in that list */
	void *py;		      /* [worker] the python layer's per-stream object */
	/* body, io -> worker */
	hb_spsc_t body;		      /* HB_MSG_BODY messages; ptr = hb_chunk_t* */
	_Atomic uint64_t body_queued; /* bytes in `body` not yet read by the worker */
	hb_chunk_t *cur;	      /* [worker] chunk being read */
	size_t cur_off;		      /* [worker] */
	uint64_t body_read;	      /* [worker] total bytes returned */
	/* response, worker -> io */
	_Atomic uint64_t out_pending; /* bytes posted and not yet written (or dropped) */
	uint64_t bytes_sent;	      /* [io] body bytes written, for the access log */
	int status;		      /* [io] status of the head sent, for the access log */
	uint64_t t_start_ns;	      /* [io] monotonic time the head was complete */
} hb_stream_t;

/* [io] Creates a stream owning `req`, with two references. Returns NULL on ENOMEM. */
hb_stream_t *hb_stream_new(struct hb_hub *hub, int io_idx, hb_request_t *req);
/* [any] Drops one reference; the last frees everything the stream owns. */
void hb_stream_release(hb_stream_t *s);

/* [io] Queues body bytes (copied). Returns 0, or -EAGAIN when the body queue is full (pause
 * reading and retry later), -ENOMEM. Wakes the worker if it waits. */
int hb_stream_body_push(hb_stream_t *s, const void *data, size_t len);
/* [io] Queues a heap chunk, taking ownership on success. Returns 0 or -EAGAIN (queue full:
 * the caller keeps the chunk, pauses reading and retries on HB_MSG_RESUME). */
int hb_stream_body_push_chunk(hb_stream_t *s, hb_chunk_t *c);
/* [io] Called when hb_stream_body_full(): sets HB_ST_IO_PAUSED unless the worker already drained
 * the queue meanwhile. Returns 1 if reading must pause (a HB_MSG_RESUME will follow), else 0. */
int hb_stream_pause_reading(hb_stream_t *s);
/* [io] Sets state bits (HB_ST_BODY_EOF, HB_ST_CLIENT_GONE, ...) and wakes the worker. */
void hb_stream_signal(hb_stream_t *s, uint32_t bits);
/* [io] The request body is complete: hb_stream_signal(HB_ST_BODY_EOF), without the worker's
 * wake when the request has no body (a read of it returns 0 at once: nothing waits for that). */
void hb_stream_body_eof(hb_stream_t *s);
/* [io] `n` posted bytes were written or dropped: may wake a worker blocked in send. */
void hb_stream_out_done(hb_stream_t *s, uint64_t n);
/* [io] True when the body queue holds more than the high watermark (stop reading). */
int hb_stream_body_full(hb_stream_t *s);

/* [worker] Reads up to n body bytes into buf. Blocks until some bytes, the end, or the client
 * leaving. Returns the byte count, 0 at the end of the body, -ECONNRESET if the client left,
 * -EBADMSG if the body was malformed. Posts HB_MSG_CONTINUE on first use and HB_MSG_RESUME
 * when the queue drains below the low watermark. If block is 0, returns -EAGAIN instead of
 * blocking. */
int64_t hb_stream_body_read(hb_stream_t *s, void *buf, size_t n, int block);

/* [worker] Posts the response head (ownership of resp passes to the io thread).
 * Returns 0, -ECONNRESET when the client is gone (resp is freed), -EALREADY if sent before. */
int hb_stream_send_head(hb_stream_t *s, hb_response_t *resp);
/* [worker] Posts body bytes (copied). Blocks while out_pending > HB_STREAM_OUT_HIGH.
 * Returns 0 or -ECONNRESET. */
int hb_stream_send_body(hb_stream_t *s, const void *data, size_t len);
/* [worker] Posts the head (ownership passes), the first len body bytes (copied; none when 0)
 * and, when `end`, HB_MSG_END with end_flags, as one batch the io thread takes in one go, so
 * they leave in one send (on TLS one record) instead of racing the io thread's wakeup. Never
 * blocks (nothing of this stream's output is pending before its head). Returns 0; -ECONNRESET
 * (gone), -EALREADY (head sent before) or -ENOMEM with resp freed and nothing posted. */
int hb_stream_send_head_body(hb_stream_t *s, hb_response_t *resp, const void *data, size_t len,
			     int end, uint32_t end_flags);
/* [worker] Posts a file region to send by splice; takes ownership of fd (closed on error).
 * Returns 0 or -ECONNRESET. */
int hb_stream_send_file(hb_stream_t *s, int fd, int64_t offset, int64_t len);
/* [worker] Posts an interim head (status 100..199, not 101) before the response head; ownership
 * of resp passes. Returns 0, -EALREADY after the head (resp freed), -ECONNRESET (gone). */
int hb_stream_send_interim(hb_stream_t *s, hb_response_t *resp);
/* [worker] Posts trailing fields after the body, before END (the head carried
 * HB_RESP_TRAILERS); ownership passes. The io side drops them when the client did not ask
 * (HB_REQ_TRAILERS) or the framing cannot carry them. Returns 0, -EALREADY (before the head or
 * after END: freed), -ECONNRESET. */
int hb_stream_send_trailers(hb_stream_t *s, hb_response_t *fields);
/* [worker] Asks the connection to start an associated exchange for target (copied) with
 * fields (ownership passes; may be NULL), only when the request has HB_REQ_CAN_PROMISE. The
 * connection drops it when the peer's limits refuse it by then. Returns 0, -EPERM (no
 * HB_REQ_CAN_PROMISE, or after END), -ECONNRESET, -ENOMEM; fields is freed on error. */
int hb_stream_promise(hb_stream_t *s, const char *target, size_t len, hb_response_t *fields);
/* [io] Frees a promise and its fields. */
void hb_promise_free(hb_promise_t *p);
/* [worker] Posts HB_MSG_END (flags HB_END_*). After it the worker must only release. */
int hb_stream_end(hb_stream_t *s, uint32_t flags);

/* [worker] Non-blocking send for event-loop workers: posts body bytes and returns 0, or returns
 * -EAGAIN without posting when more than HB_STREAM_OUT_HIGH bytes wait (the stream is put on
 * the ready list once they drain below LOW), or -ECONNRESET. */
int hb_stream_send_body_nb(hb_stream_t *s, const void *data, size_t len);
/* [worker] Posts body bytes (copied; none when len is 0) and, when `end`, HB_MSG_END with
 * end_flags, as one batch the io thread takes in one go (one send, on TLS one record): a
 * streamed response's last piece with its end. Never blocks and does not look at out_pending
 * (the caller bounds what it posts). Returns 0, -ECONNRESET, -ENOMEM or -EALREADY (ended
 * before), nothing posted on error. */
int hb_stream_send_body_end(hb_stream_t *s, const void *data, size_t len, int end,
			    uint32_t end_flags);
/* [worker] Takes one whole incoming message: 0 with *msg (caller frees) and *kind
 * (HB_WS_*), -EAGAIN (block = 0 and none queued), or -ECONNRESET (gone without a close frame). */
int hb_stream_msg_recv(hb_stream_t *s, hb_chunk_t **msg, uint32_t *kind, int block);
/* [worker] Sends one message (kind HB_MSGK_TEXT/BINARY, bytes copied). With block = 0
 * behaves like hb_stream_send_body_nb. Returns 0, -EAGAIN or -ECONNRESET. */
int hb_stream_msg_send(hb_stream_t *s, uint32_t kind, const void *data, size_t len, int block);
/* [worker] Closes the channel with a code and a reason (copied whole). Returns 0 or
 * -ECONNRESET. */
int hb_stream_msg_close(hb_stream_t *s, uint16_t code, const char *reason, size_t len);
/* [io] Queues one incoming message (ownership of c passes on success).
 * Returns 0 or -EAGAIN (queue full). */
int hb_stream_msg_push(hb_stream_t *s, uint32_t kind, hb_chunk_t *c);
/* [io] Tells the worker the channel is closing: queues an HB_MSGK_CLOSE message (2-byte code,
 * big-endian, then `reason`, copied) after the messages already queued. When it cannot (no
 * memory, queue full) it sets HB_ST_CLIENT_GONE instead, so the worker still hears the end
 * (as a disconnect without a close frame). Returns 0 when queued, else -ENOMEM or -EAGAIN
 * (already signalled). */
int hb_stream_msg_push_close(hb_stream_t *s, uint16_t code, const void *reason, size_t len);

/* [worker] Sends what was posted now: wakes io threads whose wake was deferred (hub.h). Call
 * before handing control back to app code that may block between chunks. */
void hb_stream_flush(hb_stream_t *s);

/* [worker] True when the client has gone away. */
int hb_stream_client_gone(hb_stream_t *s);

#endif
