/* conn_h2_priv.h: what the HTTP/2 handler (conn_h2.c) shares with its WebSocket part
 * (conn_h2ws.c, RFC 8441): the per-connection and per-exchange state and the response queue.
 * Not for use outside those two files. Io thread only, like conn.h.
 *
 * Ownership: the h2c_t is c->proto; each exchange's h2x_t is its proto tail. A WebSocket
 * stream's h2ws_t is owned by its exchange's h2x_t and also linked on the connection's list,
 * so the handler's free releases those of exchanges a dead connection released without it.
 */
#ifndef HB_SERVER_CONN_H2_PRIV_H
#define HB_SERVER_CONN_H2_PRIV_H

#include "proto/h2.h"
#include "server/conn.h"

/* A piece of response body waiting for the stream's window: bytes or a file region. Every item
 * is also on the connection's list, so the handler's free releases what a dead connection's
 * exchanges (released by conn.c at END) left behind. */
typedef struct qitem {
	struct qitem *next;	     /* the exchange's queue */
	struct qitem *cprev, *cnext; /* the connection's list */
	hb_chunk_t *ch;		     /* bytes (NULL: a file region) */
	size_t off;
	int fd;
	int64_t foff, fleft;
	uint64_t acct; /* the stream's output accounting, ended when the item is sent */
} qitem_t;

struct h2ws;

/* The handler's tail of each exchange. */
typedef struct h2x {
	int32_t sid;
	qitem_t *qhead, *qtail;
	unsigned closed : 1;	/* the h2 stream is closed (sent, or reset) */
	unsigned eof : 1;	/* the worker's END: nothing more is queued */
	unsigned expect : 1;	/* the request asked for 100-continue */
	unsigned busy : 1;	/* over limit_concurrency: answered 503 by the connection */
	uint64_t held_bytes;	/* request body bytes held for room, not yet credited */
	uint64_t body_deadline; /* the next body bytes must come before (body_timeout; 0 = none) */
	struct h2ws *ws;	/* a WebSocket (extended CONNECT) stream's state, else NULL */
} h2x_t;

typedef struct h2c {
	hb_h2_t *e;
	qitem_t *items;
	struct h2ws *wss;      /* every WebSocket stream's state */
	unsigned dying : 1;    /* free() runs: the exchanges are gone, ignore on_close */
	unsigned draining : 1; /* the double GOAWAY has started */
	uint64_t idle_deadline;
} h2c_t;

static inline h2c_t *hb_h2c(const hb_conn_t *c)
{
	return c->proto;
}

static inline h2x_t *hb_h2x(hb_exchange_t *x)
{
	return (h2x_t *)x->proto;
}

/* conn_h2.c: queues ch (ch->len > 0, ownership passes) on x's stream; acct is ended with
 * hb_stream_out_done once sent or dropped. */
void hb_h2c_queue(hb_conn_t *c, hb_exchange_t *x, hb_chunk_t *ch, uint64_t acct);
/* conn_h2.c: sends a response head on x's stream (has_body: DATA follows from the queue).
 * Returns 0, or -1 after resetting the stream. */
int hb_h2c_head(hb_conn_t *c, hb_exchange_t *x, hb_response_t *r, int has_body);

/* conn_h2ws.c, called by conn_h2.c. */
/* An extended CONNECT with :protocol proto: 0 when it is a valid WebSocket request (req is
 * made a message channel, *ws allocated and linked), or 1 when it was answered here (400,
 * 426, 501; req untouched, the caller frees it), -1 on ENOMEM. */
int hb_h2ws_check(hb_conn_t *c, int32_t sid, hb_request_t *req, const char *proto, size_t plen,
		  struct h2ws **ws);
/* The WebSocket's exchange is x (after dispatch). */
void hb_h2ws_bind(struct h2ws *ws, hb_exchange_t *x);
/* Frees a stream's WebSocket state (unlinks it). */
void hb_h2ws_free(hb_conn_t *c, struct h2ws *ws);
/* The client's DATA / END_STREAM on a WebSocket stream. */
void hb_h2ws_data(hb_conn_t *c, hb_exchange_t *x, const uint8_t *d, size_t len);
void hb_h2ws_end_stream(hb_conn_t *c, hb_exchange_t *x);
/* A worker message on a WebSocket stream: 1 when handled here, 0 when the plain HTTP/2 path
 * must handle it (a denial response, or the end of a stream already closed). */
int hb_h2ws_message(hb_conn_t *c, hb_exchange_t *x, hb_msg_t *m);
/* Deadlines (idle timeout, the lingering end) and the server's drain (close 1012). */
void hb_h2ws_tick(hb_conn_t *c, hb_exchange_t *x, uint64_t now);
void hb_h2ws_drain(hb_conn_t *c, hb_exchange_t *x);

#endif
