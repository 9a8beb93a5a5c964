/* conn_h1.h: the HTTP/1.1 protocol handler of a connection (io thread only).
 *
 * Parses with proto/h1 and hands each request to a worker as an exchange (exchange.h); the
 * requests a client pipelined go on together (up to pipeline_depth) and their responses are
 * written in request order (the pipeline: conn_h1.c), frames what the worker sends back
 * (Content-Length or chunked, 100 Continue, error answers), and keeps the connection alive between
 * requests. A request with Upgrade: websocket is checked here; the worker's 101 swaps the
 * connection to the WebSocket handler (conn_ws.h), which takes the exchange over. Its state is
 * c->proto, freed by the table's `free`.
 */
#ifndef HB_SERVER_CONN_H1_H
#define HB_SERVER_CONN_H1_H

#include "server/conn.h"

extern const hb_proto_handler_t hb_h1_handler;

/* Makes HTTP/1.1 the connection's handler. Returns 0 or -ENOMEM. */
int hb_conn_h1_start(hb_conn_t *c);

#endif
