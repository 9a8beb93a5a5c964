/* conn_addr.h: the addresses and scheme a request carries to the app, on the io thread.
 *
 * A request's client is the socket's peer, or the address a PROXY protocol header gave the
 * connection (conn_proxy.c), or, when proxy_headers is on and that client is trusted
 * (forwarded_allow_ips, parsed once per io thread into io->trusted), what its forwarding headers
 * say (proto/forwarded.h): REMOTE_ADDR/REMOTE_PORT and the ASGI client, wsgi.url_scheme and the
 * ASGI scheme, the Host (so HTTP_HOST, SERVER_NAME, SERVER_PORT and the ASGI host header). The
 * ASGI `server` stays the listening socket, as the ASGI spec defines it. A peer on a unix socket
 * is trusted (its file permissions decide who connects), as gunicorn does.
 */
#ifndef HB_SERVER_CONN_ADDR_H
#define HB_SERVER_CONN_ADDR_H

#include "core/request.h"

struct hb_conn;

/* [io] Fills req's connection facts (scheme, TLS reference, client and server addresses) and
 * applies a trusted proxy's forwarding headers. A rewritten Host lives in req->extra. */
void hb_conn_fill_request(struct hb_conn *c, hb_request_t *req);
/* [io] Whether the connection's client (after PROXY) is a trusted proxy. */
int hb_conn_peer_trusted(struct hb_conn *c);

#endif
