/* conn_proxy.h: the PROXY protocol step (HAProxy's v1 and v2) of a connection accepted on a
 * proxy_protocol listener, on its io thread, before the transport. See conn_proxy.c and
 * docs/proxies.md. Sets c->remote and c->local (the client's and the proxy's front addresses) from
 * the header; hb_conn_fill_request then gives them to every request.
 */
#ifndef HB_SERVER_CONN_PROXY_H
#define HB_SERVER_CONN_PROXY_H

#include <stddef.h>

struct hb_conn;

/* [io] Socket bytes p/len while c->proxy_pending. Returns 1 while the header is incomplete
 * (the bytes are kept), 0 once it is parsed, with *p and *len the bytes after it (maybe none; *own,
 * when set, holds them and is the caller's to free), or -1: close the connection (peer not
 * trusted, malformed or too long header, ENOMEM). */
int hb_conn_proxy_recv(struct hb_conn *c, char **p, size_t *len, char **own);

#endif
