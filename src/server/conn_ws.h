/* conn_ws.h: the WebSocket protocol handler of a connection (io thread only).
 *
 * The HTTP/1.1 handler checks an upgrade request with hb_conn_ws_check() and keeps the handshake
 * until the worker answers. A 101 head from the worker calls hb_conn_ws_open(), which sends the
 * accept, takes the exchange over and swaps the connection's handler to this one: incoming
 * messages go to the worker's stream (hb_stream_msg_push), pings are answered here, outgoing
 * messages (HB_MSG_MESSAGE) are framed (and compressed when negotiated), and the close
 * handshake (HB_MSG_CLOSE, close frames), pings, idle timeout and server shutdown (close 1012)
 * are handled here. Its state is c->proto, freed by the table's `free`.
 */
#ifndef HB_SERVER_CONN_WS_H
#define HB_SERVER_CONN_WS_H

#include "proto/ws.h"
#include "server/conn.h"

extern const hb_proto_handler_t hb_ws_handler;

/* A request with Upgrade: websocket. Returns 0 (valid: HB_REQ_CHANNEL set, *hs allocated for
 * the caller), or an HTTP status (400/426) after queueing the rejection; -1 out of memory. */
int hb_conn_ws_check(hb_conn_t *c, hb_request_t *req, hb_ws_handshake_t **hs);
/* The worker's 101 for exchange x: queues the accept, opens the codec and makes WebSocket the
 * connection's handler (the previous handler's state is freed). Takes hs. Returns 0, or -1 when
 * it could not open (the connection is aborted). */
int hb_conn_ws_open(hb_conn_t *c, hb_exchange_t *x, hb_ws_handshake_t *hs, hb_response_t *r);

#endif
