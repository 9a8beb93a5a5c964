/* conn_ws.h: the WebSocket side of a connection (io thread only).
 *
 * conn.c calls hb_conn_ws_check() when a request asks for an upgrade; the handshake state is
 * kept until the worker answers. A 101 head from the worker switches the connection to frames:
 * incoming messages go to the worker's stream (hb_stream_ws_push), pings are answered here,
 * outgoing messages are framed (and compressed when negotiated), and the close handshake,
 * pings, idle timeout and server shutdown (close 1012) are handled here. Owned by the conn.
 */
#ifndef HB_SERVER_CONN_WS_H
#define HB_SERVER_CONN_WS_H

#include "proto/ws.h"
#include "server/conn.h"

typedef struct hb_conn_ws {
	hb_ws_handshake_t hs;
	hb_ws_parser_t *parser;
	hb_ws_deflate_t *deflate;
	hb_chunk_t *held; /* a message the stream had no room for */
	uint32_t held_kind;
	unsigned open : 1, close_sent : 1, close_received : 1, ping_out : 1;
	uint64_t ping_sent_ns, last_recv_ns, last_active_ns;
} hb_conn_ws_t;

/* A request with Upgrade: websocket. Returns 0 (valid: HB_REQ_WEBSOCKET set, c->ws created),
 * or an HTTP status (400/426) after queueing the rejection; -1 out of memory. */
int hb_conn_ws_check(hb_conn_t *c, hb_request_t *req);
/* The worker's head for a WebSocket request: 101 opens, anything else is a plain response.
 * Returns 1 if it handled the head (opened), 0 to send it as HTTP. */
int hb_conn_ws_head(hb_conn_t *c, hb_response_t *r);
/* Bytes from the socket while open. */
void hb_conn_ws_data(hb_conn_t *c, char *p, size_t len);
/* Worker messages while open. */
void hb_conn_ws_send(hb_conn_t *c, uint32_t kind, hb_chunk_t *ch, uint64_t acct);
void hb_conn_ws_close(hb_conn_t *c, uint16_t code, hb_chunk_t *reason);
/* The worker ended the stream (app returned): close with 1000, or 1011 when aborted. */
void hb_conn_ws_end(hb_conn_t *c, int aborted);
/* A RESUME from the worker: push the held message, read again. */
void hb_conn_ws_resume(hb_conn_t *c);
/* Deadlines: pings, ping timeout, idle timeout. Shutdown: close 1012. */
void hb_conn_ws_tick(hb_conn_t *c, uint64_t now, int draining);
void hb_conn_ws_free(hb_conn_t *c);

#endif
