/* cidr.c: see cidr.h. inet_pton does the address syntax (it is pure: no resolver, no I/O). */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_MAX 64 /* longest item: an IPv6 address with a prefix is at most 43 bytes */

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int hb_cidr_pton(int family, const char *p, size_t n, void *bin)
{
	char buf[ITEM_MAX];

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, p, n);
	buf[n] = 0;
	return inet_pton(family, buf, bin) == 1 ? 0 : -EINVAL;
}

int hb_cidr_port_parse(const char *p, size_t n, int no_lead0, uint16_t *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5 || (no_lead0 && n > 1 && p[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int hb_cidr_addr_parse(const char *p, size_t n, hb_cidr_t *c)
{
	if (n == 0)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	if (memchr(p, ':', n)) {
		if (hb_cidr_pton(AF_INET6, p, n, c->addr) < 0)
			return -EINVAL;
		c->family = 6;
		c->bits = 128;
		if (memcmp(c->addr, v4_mapped, 12) == 0) { /* ::ffff:a.b.c.d is a.b.c.d */
			memmove(c->addr, c->addr + 12, 4);
			memset(c->addr + 4, 0, 12);
			c->family = 4;
			c->bits = 32;
		}
		return 0;
	}
	if (hb_cidr_pton(AF_INET, p, n, c->addr) < 0)
		return -EINVAL;
	c->family = 4;
	c->bits = 32;
	return 0;
}

/* Whether the first `bits` bits of a and b agree. */
static int prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

static int host_bits_zero(const hb_cidr_t *c)
{
	unsigned len = c->family == 4 ? 4 : 16;

	for (unsigned b = c->bits; b < len * 8; b++)
		if (c->addr[b / 8] & (0x80u >> (b % 8)))
			return 0;
	return 1;
}

static int parse_bits(const char *p, size_t n, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (n == 0 || n > 3)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > max || (n > 1 && p[0] == '0'))
		return -EINVAL;
	*out = v;
	return 0;
}

/* One item: ADDR or ADDR/BITS. */
static int parse_item(const char *p, size_t n, hb_cidr_t *c, const char **why)
{
	const char *slash = memchr(p, '/', n);
	size_t alen = slash ? (size_t)(slash - p) : n;
	unsigned bits;

	if (hb_cidr_addr_parse(p, alen, c) < 0)
		return *why = "not an IPv4 or IPv6 address (or ADDR/BITS)", -EINVAL;
	if (!slash)
		return 0;
	/* a mapped v4 address was turned into v4: its prefix counts from the v6 form */
	int mapped = c->family == 4 && memchr(p, ':', alen);
	unsigned max = c->family == 4 && !mapped ? 32 : 128;
	if (parse_bits(slash + 1, n - alen - 1, max, &bits) < 0)
		return *why = "bad prefix length after '/'", -EINVAL;
	if (mapped) {
		if (bits < 96)
			return *why = "prefix of an IPv4-mapped network shorter than 96", -EINVAL;
		bits -= 96;
	}
	c->bits = (uint8_t)bits;
	if (!host_bits_zero(c))
		return *why = "address has bits set past the prefix length", -EINVAL;
	return 0;
}

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

int hb_cidr_set_parse(const char *list, hb_cidr_set_t *out, const char **why)
{
	size_t cap = 1;
	const char *p = list;

	memset(out, 0, sizeof(*out));
	for (const char *q = list; *q; q++)
		cap += *q == ',';
	out->v = calloc(cap, sizeof(hb_cidr_t));
	if (!out->v)
		return *why = "out of memory", -ENOMEM;
	for (;;) {
		const char *end = strchr(p, ',');
		const char *b = p, *e = end ? end : p + strlen(p);
		while (b < e && is_blank(*b))
			b++;
		while (e > b && is_blank(e[-1]))
			e--;
		if (e == b) {
			hb_cidr_set_free(out);
			return *why = "empty item in the address list", -EINVAL;
		}
		if (e - b == 1 && *b == '*') {
			out->any = 1;
		} else if (parse_item(b, (size_t)(e - b), &out->v[out->n], why) < 0) {
			hb_cidr_set_free(out);
			return -EINVAL;
		} else {
			out->n++;
		}
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

void hb_cidr_set_free(hb_cidr_set_t *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

int hb_cidr_set_match_addr(const hb_cidr_set_t *s, const hb_cidr_t *a)
{
	if (s->any)
		return 1;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].family == a->family && prefix_eq(s->v[i].addr, a->addr, s->v[i].bits))
			return 1;
	return 0;
}

int hb_cidr_set_match(const hb_cidr_set_t *s, const char *p, size_t n)
{
	hb_cidr_t a;

	if (s->any)
		return 1;
	return hb_cidr_addr_parse(p, n, &a) == 0 && hb_cidr_set_match_addr(s, &a);
}
