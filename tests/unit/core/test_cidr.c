/* test_cidr.c: trusted address sets (src/core/cidr.c): parsing every form, refusing malformed
 * ones, prefix matching for IPv4, IPv6 and IPv4-mapped addresses. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/cidr.h"

static int match(const hb_cidr_set_t *s, const char *a)
{
	return hb_cidr_set_match(s, a, strlen(a));
}

Test(cidr, defaults_match_loopback_only)
{
	hb_cidr_set_t s;
	const char *why = NULL;

	cr_assert_eq(hb_cidr_set_parse("127.0.0.1,::1", &s, &why), 0);
	cr_assert_eq(s.n, 2);
	cr_assert(match(&s, "127.0.0.1"));
	cr_assert(match(&s, "::1"));
	cr_assert(match(&s, "::ffff:127.0.0.1")); /* the mapped form of a v4 peer */
	cr_assert_not(match(&s, "127.0.0.2"));
	cr_assert_not(match(&s, "10.0.0.1"));
	cr_assert_not(match(&s, "::2"));
	cr_assert_not(match(&s, ""));
	cr_assert_not(match(&s, "localhost"));
	hb_cidr_set_free(&s);
}

Test(cidr, networks_and_blanks)
{
	hb_cidr_set_t s;
	const char *why = NULL;

	cr_assert_eq(
		hb_cidr_set_parse(" 10.0.0.0/8 ,\t192.168.1.128/25, fd00::/8,0.0.0.0/0 ", &s, &why),
		0);
	cr_assert_eq(s.n, 4);
	cr_assert(match(&s, "10.255.1.2"));
	cr_assert(match(&s, "192.168.1.200"));
	cr_assert(match(&s, "8.8.8.8")); /* 0.0.0.0/0: every v4 address */
	cr_assert(match(&s, "fd12:3456::1"));
	cr_assert_not(match(&s, "fe80::1"));
	hb_cidr_set_free(&s);

	cr_assert_eq(hb_cidr_set_parse("192.168.1.128/25", &s, &why), 0);
	cr_assert_not(match(&s, "192.168.1.127"));
	cr_assert(match(&s, "192.168.1.128"));
	hb_cidr_set_free(&s);

	cr_assert_eq(hb_cidr_set_parse("2001:db8::/33,::ffff:10.0.0.0/104", &s, &why), 0);
	cr_assert(match(&s, "2001:db8:7fff::1"));
	cr_assert_not(match(&s, "2001:db8:8000::1"));
	cr_assert(match(&s, "10.1.2.3")); /* a mapped network is its v4 network */
	hb_cidr_set_free(&s);
}

Test(cidr, star_trusts_all)
{
	hb_cidr_set_t s;
	const char *why = NULL;

	cr_assert_eq(hb_cidr_set_parse("*", &s, &why), 0);
	cr_assert(s.any);
	cr_assert(match(&s, "203.0.113.9"));
	cr_assert(match(&s, "2001:db8::1"));
	hb_cidr_set_free(&s);
	cr_assert_eq(hb_cidr_set_parse("10.0.0.1, *", &s, &why), 0);
	cr_assert(s.any);
	hb_cidr_set_free(&s);
}

Test(cidr, malformed_lists)
{
	static const char *bad[] = {
		"",		     /* empty */
		",",		     /* empty items */
		"127.0.0.1,",	     /* trailing empty item */
		"127.0.0.1,,::1",    /* empty item */
		"localhost",	     /* a name */
		"127.0.0.256",	     /* bad octet */
		"127.0.0",	     /* short */
		"127.0.0.01",	     /* leading zero (octal in some parsers) */
		"10.0.0.0/33",	     /* prefix too long */
		"10.0.0.0/",	     /* no prefix */
		"10.0.0.0/-1",	     /* sign */
		"10.0.0.0/08",	     /* leading zero */
		"10.0.0.0/8/8",	     /* two slashes */
		"10.1.2.3/8",	     /* host bits set */
		"::1/129",	     /* v6 prefix too long */
		"fd00::1/8",	     /* host bits set */
		"[::1]",	     /* brackets */
		"::ffff:1.2.3.4/95", /* mapped prefix shorter than the v4 part */
		"1.2.3.4 5.6.7.8",   /* blank inside an item */
		"**",
		"0123456789012345678901234567890123456789012345678901234567890123456789",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hb_cidr_set_t s;
		const char *why = NULL;
		cr_assert_eq(hb_cidr_set_parse(bad[i], &s, &why), -EINVAL, "accepted '%s'", bad[i]);
		cr_assert_not_null(why);
		cr_assert_null(s.v);
	}
}

Test(cidr, addr_parse)
{
	hb_cidr_t c;

	cr_assert_eq(hb_cidr_addr_parse("1.2.3.4", 7, &c), 0);
	cr_assert_eq(c.family, 4);
	cr_assert_eq(c.bits, 32);
	cr_assert_eq(hb_cidr_addr_parse("2001:db8::1", 11, &c), 0);
	cr_assert_eq(c.family, 6);
	cr_assert_eq(hb_cidr_addr_parse("1.2.3.4:80", 10, &c), -EINVAL);
	cr_assert_eq(hb_cidr_addr_parse("", 0, &c), -EINVAL);
	cr_assert_eq(hb_cidr_addr_parse("1.2.3.4", 3, &c), -EINVAL); /* length is honoured */
}

static int port(const char *p, int no_lead0, uint16_t *out)
{
	return hb_cidr_port_parse(p, strlen(p), no_lead0, out);
}

Test(cidr, port_parse)
{
	uint16_t v = 7;

	cr_assert_eq(port("0", 0, &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(port("65535", 0, &v), 0);
	cr_assert_eq(v, 65535);
	cr_assert_eq(port("0080", 0, &v), 0, "leading zeros allowed unless no_lead0");
	cr_assert_eq(v, 80);
	cr_assert_eq(port("0080", 1, &v), -EINVAL);
	cr_assert_eq(port("0", 1, &v), 0, "a lone 0 is not a leading zero");
	v = 9;
	cr_assert_eq(port("65536", 0, &v), -EINVAL);
	cr_assert_eq(port("123456", 0, &v), -EINVAL);
	cr_assert_eq(port("", 0, &v), -EINVAL);
	cr_assert_eq(port("8a", 0, &v), -EINVAL);
	cr_assert_eq(port("-1", 0, &v), -EINVAL);
	cr_assert_eq(port(" 80", 0, &v), -EINVAL);
	cr_assert_eq(v, 9, "untouched on error");
	cr_assert_eq(hb_cidr_port_parse("8080x", 4, 0, &v), 0, "only n bytes are read");
	cr_assert_eq(v, 8080);
}

Test(cidr, pton)
{
	uint8_t bin[16];
	const char *v6 = "::ffff:1.2.3.4";

	cr_assert_eq(hb_cidr_pton(AF_INET, "10.1.2.3", 8, bin), 0);
	cr_assert_eq(memcmp(bin, "\x0a\x01\x02\x03", 4), 0);
	cr_assert_eq(hb_cidr_pton(AF_INET, "10.1.2.3x", 8, bin), 0, "only n bytes are read");
	cr_assert_eq(hb_cidr_pton(AF_INET6, v6, strlen(v6), bin), 0);
	cr_assert_eq(bin[10], 0xff, "no IPv4-mapped folding");
	cr_assert_eq(bin[15], 4);
	cr_assert_eq(hb_cidr_pton(AF_INET, "::1", 3, bin), -EINVAL, "family is the caller's");
	cr_assert_eq(hb_cidr_pton(AF_INET6, "1.2.3.4", 7, bin), -EINVAL);
	cr_assert_eq(hb_cidr_pton(AF_INET, "", 0, bin), -EINVAL);
	cr_assert_eq(hb_cidr_pton(AF_INET6,
				  "1:2:3:4:5:6:7:8:1:2:3:4:5:6:7:8:1:2:3:4:5:6:7:8:1:2:3:4:5:6:7:8",
				  63, bin),
		     -EINVAL);
	char longv[80];
	memset(longv, '0', sizeof longv);
	cr_assert_eq(hb_cidr_pton(AF_INET, longv, sizeof longv, bin), -EINVAL, "too long");
}
