/* h1_target.h: the request-target and method rules of HTTP/1.1 (RFC 9112 3.2, RFC 9110 9.1),
 * for proto/h1.c. Pure functions of their arguments: no I/O, no state, callable from any thread.
 *
 * Forms: origin-form ("/p?q") for any method; absolute-form ("http://host/p?q", schemes http and
 * https only) for any method except CONNECT; authority-form ("host:port") only for CONNECT, which
 * this server does not implement (it is no proxy): 501; asterisk-form ("*") only for OPTIONS.
 * Anything else, and a fragment ('#') anywhere in the target, is a 400. A method is any token
 * (RFC 9110 5.6.2): "PURGE", "FOO", "-BLARGH" reach the app.
 */
#ifndef HB_PROTO_H1_TARGET_H
#define HB_PROTO_H1_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	HB_H1_ORIGIN_FORM,
	HB_H1_ABSOLUTE_FORM,
	HB_H1_AUTHORITY_FORM,
	HB_H1_ASTERISK_FORM,
} hb_h1_form_t;

/* Where the parts are, as offsets into the target. An absolute-form target without a path
 * ("http://h" or "http://h?q") has path_len 0: its path is "/". */
typedef struct hb_h1_target {
	hb_h1_form_t form;
	uint32_t path_off, path_len;
	uint32_t query_off, query_len; /* after the '?'; query_off = target length when none */
	uint32_t authority_off, authority_len; /* absolute- and authority-form: host[:port] */
} hb_h1_target_t;

/* tchar (RFC 9110 5.6.2): the characters of a token (methods, field names). */
bool hb_h1_is_tchar(unsigned char c);
/* Host = uri-host [ ":" port ] (RFC 3986 3.2.2); empty is valid (RFC 9112 3.2). */
bool hb_h1_host_valid(const char *s, size_t n);
/* Classifies and splits target `t` (n bytes) of a request with method `m` (mlen bytes, a
 * token). Returns 0, HB_H1_E_BAD (400) or HB_H1_E_NOT_IMPL (501: CONNECT), with a static
 * reason in *why. */
int hb_h1_target_parse(const char *m, size_t mlen, const char *t, size_t n, hb_h1_target_t *out,
		       const char **why);

#endif
