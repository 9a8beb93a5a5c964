/* test_proxyproto.c: PROXY protocol headers (src/proto/proxyproto.c): v1 and v2 in one piece
 * and byte by byte, LOCAL/UNKNOWN/UNSPEC keeping the socket's address, TLVs skipped, and every
 * malformed case refused. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>

#include "proto/proxyproto.h"

static int parse(const void *p, size_t n, hb_pp_t *out)
{
	const char *why = NULL;
	int rc = hb_pp_parse(p, n, out, &why);
	if (rc < 0)
		cr_assert_not_null(why);
	return rc;
}

/* Every proper prefix needs more bytes; the whole gives its length. */
static void whole_and_prefixes(const void *p, size_t n, size_t hdr, hb_pp_t *out)
{
	for (size_t k = 0; k < hdr; k++)
		cr_assert_eq(parse(p, k, out), 0, "prefix %zu of %zu", k, hdr);
	cr_assert_eq(parse(p, n, out), (int)hdr);
}

Test(pp, v1_tcp4)
{
	static const char h[] = "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n";
	hb_pp_t r;
	whole_and_prefixes(h, sizeof(h) - 1, 44, &r);
	cr_assert_eq(r.version, 1);
	cr_assert_not(r.local);
	cr_assert_eq(r.family, AF_INET);
	cr_assert_str_eq(r.src, "203.0.113.7");
	cr_assert_str_eq(r.dst, "192.0.2.1");
	cr_assert_eq(r.src_port, 56324);
	cr_assert_eq(r.dst_port, 443);
}

Test(pp, v1_tcp6_and_unknown)
{
	static const char h6[] = "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
	hb_pp_t r;
	cr_assert_eq(parse(h6, sizeof(h6) - 1, &r), (int)sizeof(h6) - 1);
	cr_assert_eq(r.family, AF_INET6);
	cr_assert_str_eq(r.src, "2001:db8::1");
	cr_assert_eq(r.dst_port, 65535);
	static const char u[] = "PROXY UNKNOWN\r\n";
	cr_assert_eq(parse(u, sizeof(u) - 1, &r), (int)sizeof(u) - 1);
	cr_assert(r.local);
	static const char u2[] = "PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 x y\r\nrest";
	cr_assert_eq(parse(u2, sizeof(u2) - 1, &r), (int)sizeof(u2) - 5);
	cr_assert(r.local);
	/* the longest TCP6 line is 104 bytes; 107 with a longer UNKNOWN tail is still valid */
	char max[200] = "PROXY UNKNOWN ";
	memset(max + 14, 'x', 107 - 14 - 2);
	memcpy(max + 105, "\r\n", 2);
	cr_assert_eq(parse(max, 107, &r), 107);
}

Test(pp, v1_malformed)
{
	static const char *bad[] = {
		"GET / HTTP/1.1\r\n",			  /* no header at all */
		"PROXY\r\n",				  /* no protocol */
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",	  /* case */
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",	  /* protocol */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",	  /* missing port */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",	  /* extra field */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",	  /* trailing space */
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",	  /* double space */
		"PROXY TCP4 1.2.3.4 2001:db8::1 1 2\r\n", /* family mismatch */
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",	  /* family mismatch */
		"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",	  /* bad address */
		"PROXY TCP4 host 5.6.7.8 1 2\r\n",	  /* a name */
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /* port too big */
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",	  /* sign */
		"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",	  /* leading zero */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",	  /* LF without CR */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",	  /* CR without LF */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",	  /* CR CR LF */
		"PROXY UNKNOWNX\r\n",			  /* not UNKNOWN */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n",	  /* port garbage */
		"PROXY \r\n",				  /* empty protocol */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hb_pp_t r;
		cr_assert_eq(parse(bad[i], strlen(bad[i]), &r), HB_PP_E_BAD, "accepted '%s'",
			     bad[i]);
	}
	hb_pp_t r;
	cr_assert_eq(parse("PROXY TCP4 1.2.3.4\0 5", 20, &r), HB_PP_E_BAD); /* NUL */
	cr_assert_eq(parse("PRAXY", 5, &r), HB_PP_E_BAD); /* refused before the line ends */
	char longline[200] = "PROXY UNKNOWN ";
	memset(longline + 14, 'x', sizeof(longline) - 14);
	cr_assert_eq(parse(longline, 106, &r), 0); /* could still end at 107 */
	cr_assert_eq(parse(longline, 107, &r), HB_PP_E_BAD, "no CRLF within 107 bytes");
	cr_assert_eq(parse(longline, sizeof(longline), &r), HB_PP_E_BAD);
}

/* A v2 header: command, family byte, address block, extra TLV bytes. */
static size_t v2(uint8_t *out, uint8_t cmd, uint8_t fam, const uint8_t *a, size_t alen,
		 const uint8_t *tlv, size_t tlen)
{
	static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
	memcpy(out, sig, 12);
	out[12] = cmd;
	out[13] = fam;
	out[14] = (uint8_t)((alen + tlen) >> 8);
	out[15] = (uint8_t)(alen + tlen);
	if (alen)
		memcpy(out + 16, a, alen);
	if (tlen)
		memcpy(out + 16 + alen, tlv, tlen);
	return 16 + alen + tlen;
}

static const uint8_t a4[12] = {203, 0, 113, 7, 192, 0, 2, 1, 0xdc, 0x04, 0x01, 0xbb};

Test(pp, v2_inet_and_prefixes)
{
	uint8_t b[128];
	hb_pp_t r;
	size_t n = v2(b, 0x21, 0x11, a4, sizeof(a4), NULL, 0);
	memcpy(b + n, "GET", 3);
	whole_and_prefixes(b, n + 3, n, &r);
	cr_assert_eq(r.version, 2);
	cr_assert_not(r.local);
	cr_assert_str_eq(r.src, "203.0.113.7");
	cr_assert_str_eq(r.dst, "192.0.2.1");
	cr_assert_eq(r.src_port, 56324);
	cr_assert_eq(r.dst_port, 443);
}

Test(pp, v2_inet6_with_tlvs)
{
	uint8_t a6[36] = {0x20,	       0x01,	    0x0d,	 0xb8,	      [15] = 1,
			  [16] = 0x20, [17] = 0x01, [18] = 0x0d, [19] = 0xb8, [31] = 2,
			  [32] = 0x30, [33] = 0x39, [34] = 0x00, [35] = 0x50};
	/* ALPN "h2", an empty NOOP, an AWS-style custom TLV */
	static const uint8_t tlv[] = {0x01, 0, 2, 'h', '2', 0x04, 0, 0, 0xea, 0, 3, 1, 2, 3};
	uint8_t b[256];
	hb_pp_t r;
	size_t n = v2(b, 0x21, 0x21, a6, sizeof(a6), tlv, sizeof(tlv));
	cr_assert_eq(parse(b, n, &r), (int)n);
	cr_assert_eq(r.family, AF_INET6);
	cr_assert_str_eq(r.src, "2001:db8::1");
	cr_assert_str_eq(r.dst, "2001:db8::2");
	cr_assert_eq(r.src_port, 12345);
	cr_assert_eq(r.dst_port, 80);
}

Test(pp, v2_local_unspec_unix_dgram_keep_socket)
{
	uint8_t b[512], ua[216] = {0};
	hb_pp_t r;
	size_t n = v2(b, 0x20, 0x00, NULL, 0, NULL, 0); /* LOCAL, UNSPEC: a health check */
	cr_assert_eq(parse(b, n, &r), 16);
	cr_assert(r.local);
	n = v2(b, 0x20, 0x11, a4, sizeof(a4), NULL, 0); /* LOCAL with addresses: ignored */
	cr_assert_eq(parse(b, n, &r), (int)n);
	cr_assert(r.local);
	n = v2(b, 0x21, 0x00, NULL, 0, NULL, 0); /* PROXY, UNSPEC */
	cr_assert_eq(parse(b, n, &r), 16);
	cr_assert(r.local);
	n = v2(b, 0x21, 0x31, ua, sizeof(ua), NULL, 0); /* AF_UNIX stream */
	cr_assert_eq(parse(b, n, &r), (int)n);
	cr_assert(r.local);
	n = v2(b, 0x21, 0x12, a4, sizeof(a4), NULL, 0); /* INET over DGRAM */
	cr_assert_eq(parse(b, n, &r), (int)n);
	cr_assert(r.local);
}

Test(pp, v2_malformed)
{
	uint8_t b[256];
	hb_pp_t r;
	size_t n;

	n = v2(b, 0x21, 0x11, a4, sizeof(a4), NULL, 0);
	b[11] = 0x0b; /* signature */
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
	cr_assert_eq(parse(b, 12, &r), HB_PP_E_BAD);	/* refused as soon as it differs */
	n = v2(b, 0x11, 0x11, a4, sizeof(a4), NULL, 0); /* version 1 in a v2 header */
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
	n = v2(b, 0x22, 0x11, a4, sizeof(a4), NULL, 0); /* command 2 */
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
	n = v2(b, 0x21, 0x41, a4, sizeof(a4), NULL, 0); /* family 4 */
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
	n = v2(b, 0x21, 0x13, a4, sizeof(a4), NULL, 0); /* transport 3 */
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
	n = v2(b, 0x21, 0x11, a4, 8, NULL, 0); /* INET needs 12 bytes */
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
	n = v2(b, 0x21, 0x21, a4, sizeof(a4), NULL, 0); /* INET6 needs 36 */
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
	static const uint8_t cut[] = {0x01, 0, 5, 'h', '2'}; /* TLV longer than the header */
	n = v2(b, 0x21, 0x11, a4, sizeof(a4), cut, sizeof(cut));
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
	static const uint8_t stub[] = {0x01, 0}; /* TLV header cut */
	n = v2(b, 0x21, 0x11, a4, sizeof(a4), stub, sizeof(stub));
	cr_assert_eq(parse(b, n, &r), HB_PP_E_BAD);
}

Test(pp, v2_length_bound_waits_then_completes)
{
	static uint8_t b[16 + 65535];
	static uint8_t tlv[65535 - 12];
	hb_pp_t r;
	tlv[0] = 0xee;
	tlv[1] = (uint8_t)((sizeof(tlv) - 3) >> 8);
	tlv[2] = (uint8_t)(sizeof(tlv) - 3);
	size_t n = v2(b, 0x21, 0x11, a4, sizeof(a4), tlv, sizeof(tlv));
	cr_assert_eq(n, HB_PP_V2_MAX);
	cr_assert_eq(parse(b, n - 1, &r), 0);
	cr_assert_eq(parse(b, n, &r), (int)n);
	cr_assert_str_eq(r.src, "203.0.113.7");
}
