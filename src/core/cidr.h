/* cidr.h: a set of trusted addresses (IPv4/IPv6 networks in CIDR form), as forwarded_allow_ips
 * writes it: "127.0.0.1, ::1, 10.0.0.0/8, fd00::/8", or "*" for every address.
 *
 * Pure: parsing and matching do no I/O and keep no state beyond the set. A set is built once on
 * the main thread (config, server start) and read-only afterwards, so any thread may match
 * against it without locks. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches as its IPv4
 * address, so a dual-stack proxy's form of a v4 peer is trusted like the v4 form. The set owns
 * its array; hb_cidr_set_free releases it. Errors are -EINVAL (with a static reason) / -ENOMEM.
 * Also the address and port literal parsers the protocol layer shares (hb_cidr_pton,
 * hb_cidr_port_parse).
 */
#ifndef HB_CORE_CIDR_H
#define HB_CORE_CIDR_H

#include <stddef.h>
#include <stdint.h>

typedef struct hb_cidr {
	uint8_t family; /* 4 or 6 */
	uint8_t bits;	/* prefix length: 0..32 or 0..128 */
	uint8_t addr[16];
} hb_cidr_t;

typedef struct hb_cidr_set {
	int any; /* "*": every address matches */
	size_t n;
	hb_cidr_t *v;
} hb_cidr_set_t;

/* Parses a comma-separated list (blanks around items ignored; empty items refused) into *out
 * (zeroed first). Each item is an address or ADDR/BITS; "*" alone or among others trusts all.
 * Host bits set below the prefix (10.1.2.3/8) are refused: they are a typo more often than not.
 * Returns 0, -EINVAL with *why, or -ENOMEM. */
int hb_cidr_set_parse(const char *list, hb_cidr_set_t *out, const char **why);
void hb_cidr_set_free(hb_cidr_set_t *s);

/* The address literals and ports that proto/forwarded.c, proto/proxyproto.c and core/config.c
 * read, parsed in one place. */

/* Parses a numeric address of the given family (AF_INET or AF_INET6, no brackets, no port) of n
 * bytes into bin (4 or 16 bytes, network order): 0, or -EINVAL. No IPv4-mapped folding. */
int hb_cidr_pton(int family, const char *p, size_t n, void *bin);
/* Parses a decimal port of n bytes (1 to 5 digits, at most 65535; with no_lead0 a leading zero
 * is refused, as in "0080"): 0 with *port, or -EINVAL. */
int hb_cidr_port_parse(const char *p, size_t n, int no_lead0, uint16_t *port);

/* Parses one numeric address (no brackets, no port) of n bytes: 0 with *c (bits = full length),
 * or -EINVAL. */
int hb_cidr_addr_parse(const char *p, size_t n, hb_cidr_t *c);
/* Whether the numeric address p (n bytes) is in the set; 0 for anything that is not an
 * address (unless the set is "*"). */
int hb_cidr_set_match(const hb_cidr_set_t *s, const char *p, size_t n);
/* The same for a parsed address. */
int hb_cidr_set_match_addr(const hb_cidr_set_t *s, const hb_cidr_t *a);

#endif
