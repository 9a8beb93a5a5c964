/* transport_tls.h: the TLS transport (transport.h) of TLS listeners: wolfSSL over memory
 * buffers (src/proto/tls.h) between the socket and the protocol handler.
 *
 * Everything runs on the connection's io thread. The connection's engine is made from the
 * server's live TLS context (server.h: srv->tls) when the connection starts and keeps that
 * context for its whole life (a SIGHUP reload only affects new connections).
 */
#ifndef HB_SERVER_TRANSPORT_TLS_H
#define HB_SERVER_TRANSPORT_TLS_H

#include "core/request.h"
#include "server/transport.h"

struct hb_conn;

/* Encrypts and decrypts; no splice, no send_zc; secure (https/wss). */
extern const hb_transport_t hb_transport_tls;

/* [io] What the connection's requests are told about TLS (borrowed: take a reference with
 * hb_request_tls_ref), or NULL on a plain connection or before the handshake is done. */
hb_request_tls_t *hb_transport_tls_info(struct hb_conn *c);

#endif
