/* proxyproto.h: the PROXY protocol header (HAProxy's spec, versions 1 and 2) that a proxy in
 * front sends at the very start of a connection, before TLS or HTTP, to say who the client is.
 * No I/O, no state: the connection layer (src/server/conn_proxy.c) buffers the first bytes of
 * a connection on a proxy_protocol listener and calls hb_pp_parse until it says the header is
 * whole, too long or malformed. Any thread may call it.
 *
 * What is accepted (docs/proxies.md):
 *  - v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" (single spaces, numeric addresses of the
 *    family, ports 0..65535 without leading zeros), or "PROXY UNKNOWN ...\r\n"; at most 107
 *    bytes with the CRLF.
 *  - v2: the 12-byte signature, version 2, command LOCAL or PROXY, family UNSPEC/INET/INET6/
 *    UNIX over UNSPEC/STREAM/DGRAM, a length that holds the family's addresses; TLVs after the
 *    addresses are skipped but must be well framed (type, 2-byte length, value, inside the
 *    header). At most 16 + 65535 bytes (the length field's own bound).
 *  - LOCAL (v2), UNKNOWN (v1), an UNSPEC or UNIX family, or a DGRAM transport: the connection
 *    keeps its socket's addresses (local = 1).
 */
#ifndef HB_PROTO_PROXYPROTO_H
#define HB_PROTO_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>

#define HB_PP_E_BAD (-1)
#define HB_PP_V1_MAX 107u
#define HB_PP_V2_MAX (16u + 65535u)

typedef struct hb_pp {
	int version;	       /* 1 or 2 */
	int local;	       /* keep the socket's addresses */
	int family;	       /* AF_INET or AF_INET6 when !local */
	char src[46], dst[46]; /* numeric (inet_ntop) */
	uint16_t src_port, dst_port;
} hb_pp_t;

/* Parses the PROXY header at the start of p (len bytes so far). Returns the header's length
 * (> 0, *out filled; the bytes after it are the connection's own), 0 when more bytes are needed
 * (what came so far is a valid beginning), or HB_PP_E_BAD with a static reason in *why (not a
 * PROXY header, malformed, or too long). */
int hb_pp_parse(const uint8_t *p, size_t len, hb_pp_t *out, const char **why);

#endif
