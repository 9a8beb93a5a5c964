/* h1_target.c: see h1_target.h.
 *
 * llhttp 8.1 (non-strict) lets through targets no form allows ("s://]x/:", "ftp://x/y", "*" for
 * GET) and fragments, so the form is decided here, once the whole target is known. Characters
 * inside the path and query stay llhttp's business (it already refuses SP and CTLs).
 */
#include "proto/h1_target.h"

#include <string.h>
#include <strings.h>

#include "proto/h1.h"

bool hb_h1_is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool reg_name_char(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != 0 && strchr("-._~!$&'()*+,;=%", c) != NULL;
}

bool hb_h1_host_valid(const char *s, size_t n)
{
	size_t i = 0;
	if (n > 0 && s[0] == '[') {
		for (i = 1; i < n && s[i] != ']'; i++)
			if (!is_hex((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
				return false;
		if (i == n)
			return false;
		i++;
	} else {
		for (; i < n && s[i] != ':'; i++)
			if (!reg_name_char((unsigned char)s[i]))
				return false;
	}
	if (i == n)
		return true;
	if (s[i] != ':')
		return false;
	for (i++; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool method_is(const char *m, size_t mlen, const char *want)
{
	return mlen == strlen(want) && memcmp(m, want, mlen) == 0; /* methods are case-sensitive */
}

static int bad(const char **why, const char *reason)
{
	*why = reason;
	return HB_H1_E_BAD;
}

/* path-abempty [ "?" query ] from offset `from` to the end. */
static void split_path(const char *t, size_t n, size_t from, hb_h1_target_t *out)
{
	const char *q = memchr(t + from, '?', n - from);
	size_t end = q ? (size_t)(q - t) : n;
	out->path_off = (uint32_t)from;
	out->path_len = (uint32_t)(end - from);
	out->query_off = (uint32_t)(q ? end + 1 : n);
	out->query_len = (uint32_t)(q ? n - end - 1 : 0);
}

/* An authority for http(s): a non-empty host with an optional port, no userinfo. */
static bool authority_valid(const char *a, size_t n, bool need_port)
{
	const char *colon;
	size_t hostlen;
	if (n == 0 || memchr(a, '@', n))
		return false;
	if (!hb_h1_host_valid(a, n))
		return false;
	if (a[0] == '[') {
		const char *close = memchr(a, ']', n);
		colon = close && (size_t)(close - a) + 1 < n ? close + 1 : NULL;
	} else {
		colon = memchr(a, ':', n);
	}
	hostlen = colon ? (size_t)(colon - a) : n;
	if (hostlen == 0)
		return false;
	return !need_port || (colon && colon + 1 < a + n);
}

/* absolute-URI = scheme ":" hier-part; for http(s), "//" authority path-abempty [ "?" query ]. */
static int absolute_form(const char *t, size_t n, hb_h1_target_t *out, const char **why)
{
	size_t s;
	if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
		s = 7;
	else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
		s = 8;
	else
		return bad(why, "request target is not origin-form or an http(s) URI");
	size_t a = s;
	while (a < n && t[a] != '/' && t[a] != '?')
		a++;
	if (!authority_valid(t + s, a - s, false))
		return bad(why, "invalid authority in the request target");
	out->form = HB_H1_ABSOLUTE_FORM;
	out->authority_off = (uint32_t)s;
	out->authority_len = (uint32_t)(a - s);
	split_path(t, n, a, out);
	return 0;
}

int hb_h1_target_parse(const char *m, size_t mlen, const char *t, size_t n, hb_h1_target_t *out,
		       const char **why)
{
	bool connect = method_is(m, mlen, "CONNECT");
	memset(out, 0, sizeof(*out));
	if (n == 0)
		return bad(why, "empty request target");
	if (memchr(t, '#', n))
		return bad(why, "fragment in the request target");
	if (connect) {
		if (!authority_valid(t, n, true) || memchr(t, '/', n) || memchr(t, '?', n))
			return bad(why, "CONNECT needs an authority-form target (host:port)");
		out->form = HB_H1_AUTHORITY_FORM;
		out->authority_len = (uint32_t)n;
		*why = "CONNECT is not implemented";
		return HB_H1_E_NOT_IMPL;
	}
	if (t[0] == '/') {
		out->form = HB_H1_ORIGIN_FORM;
		split_path(t, n, 0, out);
		return 0;
	}
	if (n == 1 && t[0] == '*') {
		if (!method_is(m, mlen, "OPTIONS"))
			return bad(why, "asterisk-form target for a method other than OPTIONS");
		out->form = HB_H1_ASTERISK_FORM;
		split_path(t, n, 0, out);
		return 0;
	}
	return absolute_form(t, n, out, why);
}
