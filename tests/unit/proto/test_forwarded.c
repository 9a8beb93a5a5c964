/* test_forwarded.c: forwarding headers (src/proto/forwarded.c): X-Forwarded-For's rightmost
 * untrusted hop, X-Forwarded-Proto/-Host/-Port, RFC 7239 Forwarded with quoted and IPv6 forms,
 * and every malformed form ignored without touching the rest. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/forwarded.h"

#define MAXH 8

static hb_request_t *req;
static hb_header_t hdrs[MAXH];
static hb_cidr_set_t trusted;

static void setup(void)
{
	const char *why;
	req = calloc(1, sizeof(*req));
	req->headers = hdrs;
	req->nheaders = 0;
	cr_assert_eq(hb_cidr_set_parse("127.0.0.1,::1,10.0.0.0/8", &trusted, &why), 0);
}

static void teardown(void)
{
	free(req);
	hb_cidr_set_free(&trusted);
}

static void add(const char *name, const char *value)
{
	cr_assert_lt(req->nheaders, MAXH);
	hdrs[req->nheaders++] =
		(hb_header_t){name, value, (uint32_t)strlen(name), (uint32_t)strlen(value)};
}

static int resolve(hb_fwd_t *f)
{
	const char *why = NULL;
	int rc = hb_fwd_resolve(req, &trusted, f, &why);
	if (rc < 0)
		cr_assert_not_null(why);
	return rc;
}

TestSuite(fwd, .init = setup, .fini = teardown);

Test(fwd, nothing_without_headers)
{
	hb_fwd_t f;
	add("Host", "example.com");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_not(f.have_addr);
	cr_assert_null(f.scheme);
	cr_assert_null(f.host);
	cr_assert_eq(f.fwd_port, 0);
}

Test(fwd, xff_single_client)
{
	hb_fwd_t f;
	add("X-Forwarded-For", "203.0.113.7");
	cr_assert_eq(resolve(&f), 0);
	cr_assert(f.have_addr);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	cr_assert_eq(f.port, 0);
}

Test(fwd, xff_rightmost_untrusted_hop)
{
	hb_fwd_t f;
	/* a client-forged first entry, then the real client, then two trusted proxies */
	add("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.2 ,10.1.1.1");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "203.0.113.7");
}

Test(fwd, xff_repeated_fields_are_one_list)
{
	hb_fwd_t f;
	add("X-Forwarded-For", "198.51.100.1");
	add("X-Forwarded-For", "203.0.113.7, 10.0.0.2");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "203.0.113.7");
}

Test(fwd, xff_all_trusted_gives_leftmost)
{
	hb_fwd_t f;
	add("X-Forwarded-For", "10.9.9.9, 127.0.0.1");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "10.9.9.9");
}

Test(fwd, xff_star_gives_leftmost)
{
	hb_fwd_t f;
	const char *why;
	hb_cidr_set_free(&trusted);
	cr_assert_eq(hb_cidr_set_parse("*", &trusted, &why), 0);
	add("X-Forwarded-For", "198.51.100.1, 203.0.113.7");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "198.51.100.1");
}

Test(fwd, xff_ipv6_and_ports)
{
	hb_fwd_t f;
	add("X-Forwarded-For", "2001:DB8::0:1");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "2001:db8::1"); /* normalized */
	req->nheaders = 0;
	add("X-Forwarded-For", "[2001:db8::2]:4711");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "2001:db8::2");
	cr_assert_eq(f.port, 4711);
	req->nheaders = 0;
	add("X-Forwarded-For", "203.0.113.7:5555");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	cr_assert_eq(f.port, 5555);
	req->nheaders = 0;
	add("X-Forwarded-For", "::ffff:203.0.113.8");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "203.0.113.8");
}

Test(fwd, xff_garbage_at_the_client_hop_keeps_the_socket_address)
{
	static const char *bad[] = {
		"foo",		 "203.0.113.7, garbage",
		"1.2.3.4:99999", "1.2.3.4:",
		"[2001:db8::1",	 "[2001:db8::1]x",
		"[1.2.3.4]",	 "1.2.3.4:80:81x",
		"1.2.3.4/8",	 "unknown",
		"_hidden",	 "1.2.3.4 5.6.7.8",
		"300.1.1.1",	 "[::1]:",
		"[::1]:abc",	 "\x01",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hb_fwd_t f;
		req->nheaders = 0;
		add("X-Forwarded-For", bad[i]);
		resolve(&f);
		cr_assert_not(f.have_addr, "'%s' gave %s", bad[i], f.addr);
	}
}

Test(fwd, xff_garbage_left_of_the_client_is_not_reached)
{
	hb_fwd_t f;
	add("X-Forwarded-For", "garbage, 203.0.113.7, 10.0.0.1");
	cr_assert_eq(resolve(&f), HB_FWD_E_BAD); /* reported, yet the client is found */
	cr_assert(f.have_addr);
	cr_assert_str_eq(f.addr, "203.0.113.7");
}

Test(fwd, xff_empty_items_skipped)
{
	hb_fwd_t f;
	add("X-Forwarded-For", " , 203.0.113.7,, ");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	req->nheaders = 0;
	add("X-Forwarded-For", "");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_not(f.have_addr);
}

Test(fwd, x_proto_host_port)
{
	hb_fwd_t f;
	add("X-Forwarded-Proto", "HTTPS");
	add("X-Forwarded-Host", "shop.example.com");
	add("X-Forwarded-Port", "8443");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.scheme, "https");
	cr_assert_eq(f.host_len, strlen("shop.example.com"));
	cr_assert_eq(memcmp(f.host, "shop.example.com", f.host_len), 0);
	cr_assert_eq(f.fwd_port, 8443);
	cr_assert_not(f.have_addr);
}

Test(fwd, x_proto_takes_the_rightmost_entry)
{
	hb_fwd_t f;
	add("X-Forwarded-Proto", "http");
	add("X-Forwarded-Proto", "https , wss");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.scheme, "https");
	req->nheaders = 0;
	add("X-Forwarded-Proto", "ws");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.scheme, "http");
}

Test(fwd, x_malformed_each_ignored_alone)
{
	hb_fwd_t f;
	add("X-Forwarded-For", "203.0.113.7");
	add("X-Forwarded-Proto", "ftp");
	add("X-Forwarded-Host", "bad host");
	add("X-Forwarded-Port", "70000");
	cr_assert_eq(resolve(&f), HB_FWD_E_BAD);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	cr_assert_null(f.scheme);
	cr_assert_null(f.host);
	cr_assert_eq(f.fwd_port, 0);
	static const char *ports[] = {"0", "", "-1", "80a", "123456", " "};
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		req->nheaders = 0;
		add("X-Forwarded-Port", ports[i]);
		cr_assert_eq(resolve(&f), HB_FWD_E_BAD, "port '%s'", ports[i]);
		cr_assert_eq(f.fwd_port, 0);
	}
	static const char *hosts[] = {"", "a b", "ex@mple.com", "[::1", "h:x", "a/b"};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		req->nheaders = 0;
		add("X-Forwarded-Host", hosts[i]);
		cr_assert_eq(resolve(&f), HB_FWD_E_BAD, "host '%s'", hosts[i]);
		cr_assert_null(f.host);
	}
}

Test(fwd, forwarded_basic_and_quoted_ipv6)
{
	hb_fwd_t f;
	add("Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43;host=\"ex.com:8080\"");
	cr_assert_eq(resolve(&f), 0);
	cr_assert(f.used_forwarded);
	cr_assert_str_eq(f.addr, "192.0.2.60");
	cr_assert_str_eq(f.scheme, "https");
	cr_assert_eq(memcmp(f.host, "ex.com:8080", f.host_len), 0);
	req->nheaders = 0;
	add("Forwarded", "For=\"[2001:db8:cafe::17]:4711\"");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "2001:db8:cafe::17");
	cr_assert_eq(f.port, 4711);
}

Test(fwd, forwarded_rightmost_untrusted_element_gives_proto_and_host)
{
	hb_fwd_t f;
	add("Forwarded", "for=198.51.100.9;proto=http, for=203.0.113.7;proto=https;host=a.example");
	add("Forwarded", "for=10.0.0.3;proto=http;host=internal");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	cr_assert_str_eq(f.scheme, "https");
	cr_assert_eq(memcmp(f.host, "a.example", f.host_len), 0);
}

Test(fwd, forwarded_unknown_and_obfuscated_keep_address)
{
	hb_fwd_t f;
	add("Forwarded", "for=unknown;proto=https");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_not(f.have_addr);
	cr_assert_str_eq(f.scheme, "https");
	req->nheaders = 0;
	add("Forwarded", "for=_hidden, for=\"_x:_port\"");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_not(f.have_addr);
	req->nheaders = 0;
	add("Forwarded", "for=\"203.0.113.7:_obf\"");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	cr_assert_eq(f.port, 0);
	req->nheaders = 0;
	add("Forwarded", "proto=https"); /* no for: the proto still applies */
	cr_assert_eq(resolve(&f), 0);
	cr_assert_not(f.have_addr);
	cr_assert_str_eq(f.scheme, "https");
}

Test(fwd, forwarded_empty_elements_and_pairs_allowed)
{
	hb_fwd_t f;
	add("Forwarded", " , for=203.0.113.7;;proto=https ; ext=1 ,, ");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	cr_assert_str_eq(f.scheme, "https");
}

Test(fwd, forwarded_malformed_ignored_whole)
{
	static const char *bad[] = {
		"for",				    /* no '=' */
		"for=",				    /* empty value */
		"=1.2.3.4",			    /* no name */
		"for=1.2.3.4 proto=https",	    /* no separator */
		"for=\"1.2.3.4",		    /* open quote */
		"for=\"1.2\\.3.4\"",		    /* quoted-pair refused */
		"for=1.2.3.4;for=5.6.7.8",	    /* a parameter twice */
		"for=[2001:db8::1]",		    /* brackets need quotes */
		"for=1.2.3.4;proto=https, for=\"a", /* a later element broken */
		"f(r=1.2.3.4",			    /* non-token name */
		"for=\"\x01\"",			    /* control character */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hb_fwd_t f;
		req->nheaders = 0;
		add("Forwarded", bad[i]);
		cr_assert_eq(resolve(&f), HB_FWD_E_BAD, "accepted '%s'", bad[i]);
		cr_assert_not(f.have_addr, "'%s'", bad[i]);
		cr_assert_null(f.scheme, "'%s'", bad[i]);
		cr_assert_null(f.host, "'%s'", bad[i]);
	}
}

Test(fwd, forwarded_bad_values_reported_not_applied)
{
	static const char *bad[] = {
		"for=\"2001:db8::1\"",	 /* IPv6 without brackets */
		"for=\"[1.2.3.4]\"",	 /* IPv4 in brackets */
		"for=\"1.2.3.4:99999\"", /* port too large */
		"for=1.2.3",		 /* not an address */
		"for=\"[::1]:x\"",	 /* bad port */
		"for=_",		 /* obfuscated needs a character */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hb_fwd_t f;
		req->nheaders = 0;
		add("Forwarded", bad[i]);
		cr_assert_eq(resolve(&f), HB_FWD_E_BAD, "accepted '%s'", bad[i]);
		cr_assert_not(f.have_addr, "'%s'", bad[i]);
	}
	hb_fwd_t f;
	req->nheaders = 0;
	add("Forwarded", "for=203.0.113.7;proto=gopher;host=\"a b\"");
	cr_assert_eq(resolve(&f), HB_FWD_E_BAD);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	cr_assert_null(f.scheme);
	cr_assert_null(f.host);
}

Test(fwd, x_forwarded_wins_over_forwarded)
{
	hb_fwd_t f;
	add("Forwarded", "for=198.51.100.1;proto=https");
	add("X-Forwarded-For", "203.0.113.7");
	cr_assert_eq(resolve(&f), 0);
	cr_assert_not(f.used_forwarded);
	cr_assert_str_eq(f.addr, "203.0.113.7");
	cr_assert_null(f.scheme);
}

Test(fwd, node_parse_forms)
{
	hb_fwd_node_t n;
	cr_assert_eq(hb_fwd_node_parse("unknown", 7, 1, &n), HB_FWD_UNKNOWN);
	cr_assert_eq(hb_fwd_node_parse("UNKNOWN", 7, 0, &n), HB_FWD_UNKNOWN);
	cr_assert_eq(hb_fwd_node_parse("_a.b-c_d", 8, 1, &n), HB_FWD_UNKNOWN);
	cr_assert_eq(hb_fwd_node_parse("_a.b-c_d", 8, 0, &n), HB_FWD_E_BAD);
	cr_assert_eq(hb_fwd_node_parse("::1", 3, 1, &n), HB_FWD_E_BAD);
	cr_assert_eq(hb_fwd_node_parse("::1", 3, 0, &n), 0);
	cr_assert_eq(hb_fwd_node_parse("[::1]:0", 7, 1, &n), 0);
	cr_assert_eq(n.port, 0);
	cr_assert_eq(hb_fwd_node_parse("", 0, 0, &n), HB_FWD_E_BAD);
	cr_assert_str_eq(hb_fwd_scheme("WSS", 3), "https");
	cr_assert_null(hb_fwd_scheme("httpss", 6));
}
