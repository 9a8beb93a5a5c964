/* forwarded.h: what a trusted proxy says about the client, read from the request's forwarding
 * headers: X-Forwarded-For/-Proto/-Host/-Port (de facto) and Forwarded (RFC 7239). No I/O.
 *
 * The connection layer (src/server/conn_addr.c) calls hb_fwd_resolve only for a request whose
 * peer is trusted (forwarded_allow_ips) and applies the result to the request: REMOTE_ADDR and
 * the ASGI client, the scheme, the Host. Pure functions of their inputs: any thread may call
 * them; results point into the request's header values (they live as long as the request).
 *
 * The rules (docs/proxies.md):
 *  - Which headers: when any X-Forwarded-For/-Proto/-Host/-Port field is present, those are
 *    read and Forwarded is not; otherwise Forwarded. (Most proxies set X-Forwarded-*; one that
 *    sets only Forwarded should strip the X-Forwarded-* fields a client may send, and the other
 *    way round.) Repeated fields are one comma-separated list, in order.
 *  - The client: the rightmost hop that is not trusted (walking from the proxy next to us
 *    toward the client, every trusted hop is skipped); when every hop is trusted, the leftmost
 *    (so with "*" the leftmost). A hop that is not an address ("unknown", an obfuscated
 *    identifier, or garbage) at that place keeps the socket's address. The port is the hop's
 *    (Forwarded "for" may carry one; X-Forwarded-For entries may be ADDR:PORT or [V6]:PORT),
 *    else 0, as uvicorn gives it.
 *  - X-Forwarded-Proto/-Host/-Port: the rightmost entry (set by the proxy next to us).
 *    Forwarded: the proto and host of the element that named the client (written by the first
 *    trusted proxy, describing its connection from the client).
 *  - Scheme: http, https, ws, wss (any case): ws is http, wss https. Anything else is ignored.
 *  - Host: must be a valid Host value (host[:port]); X-Forwarded-Port (1..65535) replaces the
 *    port of the host that results.
 *  - A malformed field is ignored as a whole (the others still apply) and reported in *why.
 */
#ifndef HB_PROTO_FORWARDED_H
#define HB_PROTO_FORWARDED_H

#include <stddef.h>
#include <stdint.h>

#include "core/cidr.h"
#include "core/request.h"

#define HB_FWD_E_BAD (-1)
#define HB_FWD_UNKNOWN 1 /* hb_fwd_node_parse: a valid node that names no address */

#define HB_FWD_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

/* One hop's address. */
typedef struct hb_fwd_node {
	hb_cidr_t bin;
	char addr[HB_FWD_ADDR_MAX]; /* normalized text (inet_ntop), no brackets */
	uint16_t port;		    /* 0: none or obfuscated */
} hb_fwd_node_t;

typedef struct hb_fwd {
	int have_addr;		    /* the client address below applies */
	char addr[HB_FWD_ADDR_MAX]; /* numeric, no brackets */
	uint16_t port;
	const char *scheme; /* "http" or "https" (static), NULL: unchanged */
	const char *host;   /* the Host to use (into a header value), NULL: unchanged */
	uint32_t host_len;
	uint16_t fwd_port;  /* X-Forwarded-Port, 0: none */
	int used_forwarded; /* the values came from Forwarded (else X-Forwarded-*) */
} hb_fwd_t;

/* Reads req's forwarding headers; hops in `trusted` are skipped when looking for the client.
 * Fills *out (zeroed first). Returns 0, or HB_FWD_E_BAD when a field was malformed and ignored
 * (*why says which; what was valid is still in *out). */
int hb_fwd_resolve(const hb_request_t *req, const hb_cidr_set_t *trusted, hb_fwd_t *out,
		   const char **why);

/* One node (p, n bytes, blanks trimmed, unquoted). rfc7239: Forwarded's "for" grammar
 * (IPv4[:port], "[IPv6]"[:port], unknown, _obfuscated, ports maybe obfuscated); otherwise an
 * X-Forwarded-For entry (IPv4, IPv6 with or without brackets, IPv4:port, [IPv6]:port).
 * Returns 0 (*out filled), HB_FWD_UNKNOWN (valid, no address), or HB_FWD_E_BAD. */
int hb_fwd_node_parse(const char *p, size_t n, int rfc7239, hb_fwd_node_t *out);

/* One element of a Forwarded value: its parameters (pointers into the value, unquoted). */
typedef struct hb_fwd_elem {
	const char *for_v, *proto_v, *host_v, *by_v;
	size_t for_len, proto_len, host_len, by_len;
} hb_fwd_elem_t;

/* Parses the element of Forwarded value v (n bytes) at *off, advancing *off past it and its
 * comma. Returns 1 with *e filled, 0 at the end, HB_FWD_E_BAD with *why (bad syntax, a
 * parameter twice, an escaped quoted-string). */
int hb_fwd_elem_next(const char *v, size_t n, size_t *off, hb_fwd_elem_t *e, const char **why);

/* "http"/"https" for a proto value (http, https, ws, wss in any case), else NULL. */
const char *hb_fwd_scheme(const char *p, size_t n);

#endif
