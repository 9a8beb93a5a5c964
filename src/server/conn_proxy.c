/* conn_proxy.c: the PROXY protocol step of a connection on a proxy_protocol listener, before
 * its transport (TLS) and protocol see a byte. The header (src/proto/proxyproto) is required:
 * a peer not trusted (forwarded_allow_ips), a malformed or too long header, or none within
 * header_timeout (the connection's start deadline, ssl_handshake_timeout on TLS) closes the
 * connection. Partial headers wait in c->in, which no handler uses yet. */
#include "server/conn_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/proxyproto.h"
#include "server/conn.h"
#include "server/conn_addr.h"

static void take_addrs(hb_conn_t *c, const hb_pp_t *pp)
{
	if (pp->local)
		return; /* LOCAL, UNKNOWN, UNSPEC: the socket's addresses stay */
	snprintf(c->remote, sizeof(c->remote), "%s", pp->src);
	c->remote_port = pp->src_port;
	snprintf(c->local, sizeof(c->local), "%s", pp->dst);
	c->local_port = pp->dst_port;
	c->peer_unix = 0;
	c->trust_known = 0; /* the client is someone else now */
}

int hb_conn_proxy_recv(hb_conn_t *c, char **p, size_t *len, char **own)
{
	const char *why = NULL;
	hb_pp_t pp;

	*own = NULL;
	if (!c->in_len && !hb_conn_peer_trusted(c)) {
		hb_debug("io %d: PROXY header from %s, not in forwarded_allow_ips: closed",
			 c->io->idx, c->remote);
		return -1;
	}
	const uint8_t *buf = (const uint8_t *)*p;
	size_t n = *len;
	if (c->in_len) { /* an earlier part is waiting */
		hb_conn_in_append(c, *p, *len);
		buf = (const uint8_t *)c->in;
		n = c->in_len;
	}
	int rc = hb_pp_parse(buf, n, &pp, &why);
	if (rc < 0) {
		hb_debug("io %d: bad PROXY header from %s: %s", c->io->idx, c->remote, why);
		return -1;
	}
	if (rc == 0) {
		if (!c->in_len)
			hb_conn_in_append(c, *p, *len);
		return c->state == HB_CONN_DEAD ? -1 : 1;
	}
	c->proxy_pending = 0;
	take_addrs(c, &pp);
	if (c->in_len) { /* the bytes after the header move out of c->in, the handler's */
		*len = c->in_len - (size_t)rc;
		*own = *len ? malloc(*len) : NULL;
		if (*len && !*own)
			return -1;
		if (*len)
			memcpy(*own, c->in + rc, *len);
		*p = *own;
		c->in_len = c->in_off = 0;
	} else {
		*p += rc;
		*len -= (size_t)rc;
	}
	return 0;
}
