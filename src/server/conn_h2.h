/* conn_h2.h: the HTTP/2 protocol handler of a connection (io thread only).
 *
 * Drives the proto/h2 engine: every stream becomes an exchange (exchange.h) dispatched to a
 * worker exactly like an HTTP/1.1 request, so many streams of one connection run on several
 * workers at once. Request bodies go to the stream's body queue; a stream's receive window is
 * credited only as bytes enter that queue, so an app that does not read stops its own stream.
 * Response bodies wait in a per-exchange queue the engine pulls from as the stream's send window
 * allows; a stream with window 0 keeps its queue full, which blocks its worker at the usual
 * watermark while the other streams go on. A client RST_STREAM tells the app its client is gone.
 * Draining sends the double GOAWAY; the connection closes when no stream is left.
 *
 * Started by ALPN "h2" on TLS, by the connection preface on plaintext (prior knowledge), or by
 * an HTTP/1.1 request with Upgrade: h2c (hb_conn_h2_upgrade). The `http_version` key switches
 * HTTP/2 off. Its state is c->proto, freed by the table's `free`.
 */
#ifndef HB_SERVER_CONN_H2_H
#define HB_SERVER_CONN_H2_H

#include "core/config.h"
#include "proto/h2.h"
#include "server/conn.h"

extern const hb_proto_handler_t hb_h2_handler;

/* Makes HTTP/2 the connection's handler (prior knowledge or ALPN). Returns 0 or -ENOMEM. */
int hb_conn_h2_start(hb_conn_t *c);
/* h2c: the HTTP/1.1 request req (with HTTP2-Settings settings/len, no body) is answered
 * with 101 and becomes stream 1; the handler switches to HTTP/2. req passes to the callee.
 * Returns 0, or -1 (req untouched; serve it as HTTP/1.1). */
int hb_conn_h2_upgrade(hb_conn_t *c, hb_request_t *req, const char *settings, size_t len);
/* True when req (a complete HTTP/1.1 request) asks for h2c and may get it: HTTP/2 on, plaintext,
 * Upgrade: h2c with HTTP2-Settings, and no body (a body would have to be read as HTTP/1.1 first;
 * such a request is served as HTTP/1.1, which RFC 7540 3.2 allows). */
int hb_conn_h2_wants_upgrade(const hb_conn_t *c, const hb_request_t *req);
/* True when the first plaintext of a connection starts an HTTP/2 connection preface. */
int hb_conn_h2_sniff(const hb_conn_t *c, const char *p, size_t len);
/* The engine limits from the configuration. */
void hb_conn_h2_limits(const hb_config_t *cfg, hb_h2_limits_t *lim);

#endif
