/* proxyproto.c: see proxyproto.h. */
#include "proto/proxyproto.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "core/cidr.h"

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

static int bad(const char **why, const char *reason)
{
	*why = reason;
	return HB_PP_E_BAD;
}

/* ---- version 1 --------------------------------------------------------------------------- */

/* Next space-separated field of line[*i..end); returns its length (0: none). */
static size_t field(const char *line, size_t end, size_t *i, const char **f)
{
	size_t s = *i;

	while (*i < end && line[*i] != ' ')
		(*i)++;
	*f = line + s;
	size_t n = *i - s;
	if (*i < end)
		(*i)++; /* the one space */
	return n;
}

static int v1_addr(int family, const char *p, size_t n, char *out, size_t cap)
{
	unsigned char bin[16];

	if (hb_cidr_pton(family, p, n, bin) < 0)
		return -1;
	inet_ntop(family, bin, out, (socklen_t)cap);
	return 0;
}

/* The line without its CRLF: "PROXY " already checked. */
static int v1_line(const char *line, size_t end, hb_pp_t *out, const char **why)
{
	size_t i = 6;
	const char *f[5];
	size_t n[5];

	n[0] = field(line, end, &i, &f[0]);
	if (n[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
		out->local = 1; /* the rest of the line is to be ignored */
		return 0;
	}
	if (n[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
		out->family = AF_INET;
	else if (n[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
		out->family = AF_INET6;
	else
		return bad(why, "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
	for (int k = 1; k < 5; k++) {
		if (i >= end || line[i - 1] != ' ')
			return bad(why, "PROXY v1: missing field");
		n[k] = field(line, end, &i, &f[k]);
	}
	if (i != end || line[end - 1] == ' ')
		return bad(why, "PROXY v1: extra bytes or spaces");
	if (v1_addr(out->family, f[1], n[1], out->src, sizeof(out->src)) < 0 ||
	    v1_addr(out->family, f[2], n[2], out->dst, sizeof(out->dst)) < 0)
		return bad(why, "PROXY v1: bad address for the protocol");
	if (hb_cidr_port_parse(f[3], n[3], 1, &out->src_port) < 0 ||
	    hb_cidr_port_parse(f[4], n[4], 1, &out->dst_port) < 0)
		return bad(why, "PROXY v1: bad port");
	return 0;
}

static int parse_v1(const uint8_t *p, size_t len, hb_pp_t *out, const char **why)
{
	const char *s = (const char *)p;
	size_t lim = len < HB_PP_V1_MAX ? len : HB_PP_V1_MAX;

	for (size_t i = 0; i < lim; i++) {
		if (s[i] == '\r') {
			if (i + 1 == len)
				return 0; /* the LF may follow */
			if (s[i + 1] != '\n')
				return bad(why, "PROXY v1: CR not followed by LF");
			int rc = v1_line(s, i, out, why);
			return rc < 0 ? rc : (int)(i + 2);
		}
		if (s[i] == '\n')
			return bad(why, "PROXY v1: LF without CR");
		if (s[i] == 0)
			return bad(why, "PROXY v1: NUL byte");
	}
	if (len >= HB_PP_V1_MAX)
		return bad(why, "PROXY v1: header longer than 107 bytes");
	return 0;
}

/* ---- version 2 --------------------------------------------------------------------------- */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* TLVs: type, 2-byte length, value; they must end exactly at the header's end. */
static int tlvs_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (n - i < 3)
			return 0;
		size_t l = be16(p + i + 1);
		if (n - i - 3 < l)
			return 0;
		i += 3 + l;
	}
	return 1;
}

static int v2_addrs(const uint8_t *a, size_t alen, unsigned fam, hb_pp_t *out, const char **why)
{
	size_t need = fam == 1 ? 12 : fam == 2 ? 36 : 216;

	if (alen < need)
		return bad(why, "PROXY v2: length too short for the address family");
	if (!tlvs_ok(a + need, alen - need))
		return bad(why, "PROXY v2: malformed TLV");
	if (fam == 3) { /* AF_UNIX: nothing an app could use */
		out->local = 1;
		return 0;
	}
	int af = fam == 1 ? AF_INET : AF_INET6;
	size_t al = fam == 1 ? 4 : 16;
	out->family = af;
	inet_ntop(af, a, out->src, sizeof(out->src));
	inet_ntop(af, a + al, out->dst, sizeof(out->dst));
	out->src_port = be16(a + 2 * al);
	out->dst_port = be16(a + 2 * al + 2);
	return 0;
}

static int parse_v2(const uint8_t *p, size_t len, hb_pp_t *out, const char **why)
{
	if (len < 16)
		return 0;
	unsigned ver = p[12] >> 4, cmd = p[12] & 0xf, fam = p[13] >> 4, proto = p[13] & 0xf;
	size_t total = 16u + be16(p + 14);

	if (ver != 2)
		return bad(why, "PROXY v2: version is not 2");
	if (cmd > 1)
		return bad(why, "PROXY v2: command is not LOCAL or PROXY");
	if (fam > 3 || proto > 2)
		return bad(why, "PROXY v2: unknown address family or transport");
	if (len < total)
		return 0;
	out->version = 2;
	if (cmd == 0 || fam == 0 || proto != 1) {
		/* LOCAL (a health check from the proxy itself), UNSPEC, or not a stream: the
		 * addresses, if any, are not the client's */
		out->local = 1;
		return (int)total;
	}
	int rc = v2_addrs(p + 16, total - 16, fam, out, why);
	return rc < 0 ? rc : (int)total;
}

int hb_pp_parse(const uint8_t *p, size_t len, hb_pp_t *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;
	if (p[0] == v2_sig[0]) {
		size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
		if (memcmp(p, v2_sig, n) != 0)
			return bad(why, "PROXY v2: bad signature");
		return parse_v2(p, len, out, why);
	}
	size_t n = len < 6 ? len : 6;
	if (memcmp(p, v1_sig, n) != 0)
		return bad(why, "not a PROXY protocol header");
	if (len < 6)
		return 0;
	out->version = 1;
	return parse_v1(p, len, out, why);
}
