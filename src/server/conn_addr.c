/* conn_addr.c: see conn_addr.h. */
#include "server/conn_addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proto/forwarded.h"
#include "server/conn.h"
#include "server/transport_tls.h"

/* Once per connection (again after a PROXY header changed the client), not per request. */
int hb_conn_peer_trusted(hb_conn_t *c)
{
	if (!c->trust_known) {
		hb_conn_learn_addrs(c);
		c->trusted = c->peer_unix ||
			     hb_cidr_set_match(&c->io->trusted, c->remote, strlen(c->remote));
		c->trust_known = 1;
	}
	return c->trusted;
}

/* The name part of a Host value (without its port). */
static size_t host_name_len(const char *v, size_t n)
{
	if (n > 0 && v[0] == '[') {
		const char *close = memchr(v, ']', n);
		return close ? (size_t)(close - v) + 1 : n;
	}
	const char *colon = memchr(v, ':', n);
	return colon ? (size_t)(colon - v) : n;
}

/* A copy of the header array with Host set to host[:port] (added when absent), kept in
 * req->extra with the new value's bytes. */
static void set_host(hb_request_t *req, const char *host, size_t len, uint16_t port)
{
	uint32_t n = req->nheaders, k = n;

	for (uint32_t i = 0; i < n; i++)
		if (req->headers[i].name_len == 4 &&
		    strncasecmp(req->headers[i].name, "host", 4) == 0)
			k = i;
	if (!host) {
		if (k == n)
			return; /* only a port, and no host to put it on */
		host = req->headers[k].value;
		len = req->headers[k].value_len;
	}
	if (port)
		len = host_name_len(host, len);
	size_t hsz = (size_t)(n + 1) * sizeof(hb_header_t);
	hb_header_t *h = malloc(hsz + len + 8);
	if (!h)
		return; /* out of memory: the request keeps its own Host */
	char *val = (char *)h + hsz;
	memcpy(h, req->headers, n * sizeof(hb_header_t));
	memcpy(val, host, len);
	if (port)
		len += (size_t)snprintf(val + len, 8, ":%u", port);
	if (k == n)
		h[n] = (hb_header_t){.name = "Host", .name_len = 4};
	h[k].value = val;
	h[k].value_len = (uint32_t)len;
	free(req->extra);
	req->extra = h;
	req->headers = h;
	req->nheaders = k == n ? n + 1 : n;
}

static void apply_forwarded(hb_conn_t *c, hb_request_t *req)
{
	hb_fwd_t f;
	const char *why = NULL;

	if (hb_fwd_resolve(req, &c->io->trusted, &f, &why) < 0)
		hb_debug("io %d: forwarding header from %s ignored: %s", c->io->idx, c->remote,
			 why);
	if (f.have_addr) {
		snprintf(req->remote_addr, sizeof(req->remote_addr), "%s", f.addr);
		req->remote_port = f.port;
	}
	if (f.scheme)
		req->scheme = f.scheme;
	if (f.host || f.fwd_port)
		set_host(req, f.host, f.host_len, f.fwd_port);
}

void hb_conn_fill_request(hb_conn_t *c, hb_request_t *req)
{
	hb_conn_learn_addrs(c);
	req->scheme = c->transport->secure ? "https" : "http";
	req->tls = hb_request_tls_ref(hb_transport_tls_info(c));
	memcpy(req->remote_addr, c->remote, sizeof(req->remote_addr));
	req->remote_port = c->remote_port;
	memcpy(req->server_addr, c->local, sizeof(req->server_addr));
	req->server_port = c->local_port;
	if (c->io->cfg->proxy_headers && hb_conn_peer_trusted(c))
		apply_forwarded(c, req);
}
