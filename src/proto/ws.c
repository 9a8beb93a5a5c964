/* ws.c: WebSocket handshake validation, incremental frame parser and frame writers (RFC 6455).
 * SHA-1 (FIPS 180-4) and base64 are written out here: the handshake needs 60 bytes hashed once
 * per connection, which does not justify a crypto library dependency. */
#include "proto/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/utf8.h"

/* ======== SHA-1 and base64 ======== */

static uint32_t rol(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *b)
{
	uint32_t w[80], a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f, k, t;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
		       (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		if (i < 20) {
			f = (bb & c) | (~bb & d);
			k = 0x5A827999;
		} else if (i < 40) {
			f = bb ^ c ^ d;
			k = 0x6ED9EBA1;
		} else if (i < 60) {
			f = (bb & c) | (bb & d) | (c & d);
			k = 0x8F1BBCDC;
		} else {
			f = bb ^ c ^ d;
			k = 0xCA62C1D6;
		}
		t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(bb, 30);
		bb = a;
		a = t;
	}
	h[0] += a;
	h[1] += bb;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

/* SHA-1 of the concatenation a + b (the key and the GUID), without building it. */
static void sha1_two(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[20])
{
	uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
	uint8_t blk[64];
	uint64_t bits = (uint64_t)(alen + blen) * 8;
	size_t fill = 0;
	const uint8_t *parts[2] = {a, b};
	size_t lens[2] = {alen, blen};

	for (int p = 0; p < 2; p++) {
		for (size_t i = 0; i < lens[p]; i++) {
			blk[fill++] = parts[p][i];
			if (fill == 64) {
				sha1_block(h, blk);
				fill = 0;
			}
		}
	}
	blk[fill++] = 0x80;
	if (fill > 56) {
		memset(blk + fill, 0, 64 - fill);
		sha1_block(h, blk);
		fill = 0;
	}
	memset(blk + fill, 0, 56 - fill);
	for (int i = 0; i < 8; i++)
		blk[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha1_block(h, blk);
	for (int i = 0; i < 20; i++)
		out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of 20 bytes: 28 characters and a NUL. */
static void base64_20(const uint8_t in[20], char out[29])
{
	size_t o = 0;
	uint32_t v;

	for (int i = 0; i < 18; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		for (int s = 18; s >= 0; s -= 6)
			out[o++] = b64[(v >> s) & 63];
	}
	v = (uint32_t)in[18] << 16 | (uint32_t)in[19] << 8;
	out[o++] = b64[(v >> 18) & 63];
	out[o++] = b64[(v >> 12) & 63];
	out[o++] = b64[(v >> 6) & 63];
	out[o++] = '=';
	out[o] = '\0';
}

void hb_ws_accept_key(const char *key, size_t key_len, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t digest[20];

	sha1_two(key, key_len, guid, sizeof(guid) - 1, digest);
	base64_20(digest, out);
}

/* ======== handshake ======== */

typedef struct hs_req {
	const char *method;
	size_t method_len;
	int major, minor;
	const hb_header_t *h;
	size_t n;
	const hb_ws_deflate_config_t *dcfg;
} hs_req_t;

static int bad(const char *reason, const char **why)
{
	*why = reason;
	return HB_WS_E_HS_BAD;
}

static int name_is(const hb_header_t *h, const char *name)
{
	size_t n = strlen(name);

	return h->name_len == n && !strncasecmp(h->name, name, n);
}

/* Iterates a comma-separated list: the next non-empty element, trimmed. 0 at the end. */
static int next_item(const char **p, const char *end, const char **item, size_t *n)
{
	const char *s = *p, *e;

	while (s < end) {
		e = memchr(s, ',', (size_t)(end - s));
		e = e ? e : end;
		*p = e < end ? e + 1 : end;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		*n = (size_t)(e - s);
		while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
			(*n)--;
		*item = s;
		if (*n)
			return 1;
		s = *p;
	}
	return 0;
}

/* True when some header `name` lists `token` (case-insensitive). */
static int header_has_token(const hs_req_t *r, const char *name, const char *token)
{
	size_t tlen = strlen(token), n;
	const char *p, *item;

	for (size_t i = 0; i < r->n; i++) {
		if (!name_is(&r->h[i], name))
			continue;
		p = r->h[i].value;
		while (next_item(&p, r->h[i].value + r->h[i].value_len, &item, &n))
			if (n == tlen && !strncasecmp(item, token, n))
				return 1;
	}
	return 0;
}

/* The only header named `name`; *count says how many there were. */
static const hb_header_t *single(const hs_req_t *r, const char *name, int *count)
{
	const hb_header_t *found = NULL;

	*count = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (name_is(&r->h[i], name)) {
			found = found ? found : &r->h[i];
			(*count)++;
		}
	}
	return found;
}

static int check_method(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why)
{
	if (r->method_len != 3 || memcmp(r->method, "GET", 3))
		return bad("WebSocket upgrade needs GET", why);
	return 0;
}

static int check_http(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why)
{
	if (r->major != 1 || r->minor < 1)
		return bad("WebSocket upgrade needs HTTP/1.1", why);
	return 0;
}

static int check_upgrade(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why)
{
	if (!header_has_token(r, "Upgrade", "websocket"))
		return bad("missing Upgrade: websocket", why);
	return 0;
}

static int check_connection(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why)
{
	if (!header_has_token(r, "Connection", "upgrade"))
		return bad("missing Connection: upgrade", why);
	return 0;
}

/* Any version but exactly one "13" (missing included) gets 426 and the version we speak. */
static int check_version(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why)
{
	int count;
	const hb_header_t *v = single(r, "Sec-WebSocket-Version", &count);

	if (count != 1 || v->value_len != 2 || memcmp(v->value, "13", 2)) {
		*why = "unsupported Sec-WebSocket-Version";
		return HB_WS_E_HS_VERSION;
	}
	return 0;
}

static int is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* The key must be base64 of 16 bytes: 22 alphabet characters then "==". */
static int check_key(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why)
{
	int count;
	const hb_header_t *k = single(r, "Sec-WebSocket-Key", &count);

	if (count == 0)
		return bad("missing Sec-WebSocket-Key", why);
	if (count > 1)
		return bad("duplicate Sec-WebSocket-Key", why);
	if (k->value_len != 24 || k->value[22] != '=' || k->value[23] != '=')
		return bad("Sec-WebSocket-Key is not base64 of 16 bytes", why);
	for (int i = 0; i < 22; i++)
		if (!is_b64(k->value[i]))
			return bad("Sec-WebSocket-Key is not base64 of 16 bytes", why);
	hb_ws_accept_key(k->value, k->value_len, hs->accept);
	return 0;
}

static int read_protocols(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why)
{
	const char *p, *item;
	size_t n;

	for (size_t i = 0; i < r->n; i++) {
		if (!name_is(&r->h[i], "Sec-WebSocket-Protocol"))
			continue;
		p = r->h[i].value;
		while (next_item(&p, r->h[i].value + r->h[i].value_len, &item, &n)) {
			if (hs->nprotocols == HB_WS_MAX_PROTOCOLS)
				return bad("too many subprotocols offered", why);
			hs->protocols[hs->nprotocols].ptr = item;
			hs->protocols[hs->nprotocols++].len = (uint32_t)n;
		}
	}
	return 0;
}

static int read_extensions(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why)
{
	hb_ws_deflate_config_t def;
	const hb_ws_deflate_config_t *c = r->dcfg;

	if (!c) {
		hb_ws_deflate_config_default(&def);
		c = &def;
	}
	for (size_t i = 0; i < r->n && !hs->deflate; i++) {
		if (name_is(&r->h[i], "Sec-WebSocket-Extensions"))
			hs->deflate = hb_ws_deflate_negotiate(c, r->h[i].value, r->h[i].value_len,
							      &hs->deflate_params);
	}
	if (hs->deflate)
		hb_ws_deflate_response(&hs->deflate_params, hs->extensions, sizeof(hs->extensions));
	return 0;
}

/* The handshake, in the order its answers are decided. */
static int (*const hs_steps[])(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why) = {
	check_method,  check_http, check_upgrade,  check_connection,
	check_version, check_key,  read_protocols, read_extensions,
};

int hb_ws_handshake_check(const char *method, size_t method_len, int http_major, int http_minor,
			  const hb_header_t *headers, size_t nheaders,
			  const hb_ws_deflate_config_t *dcfg, hb_ws_handshake_t *hs,
			  const char **why)
{
	hs_req_t r = {method, method_len, http_major, http_minor, headers, nheaders, dcfg};
	int rc;

	memset(hs, 0, sizeof(*hs));
	for (size_t i = 0; i < sizeof(hs_steps) / sizeof(hs_steps[0]); i++) {
		rc = hs_steps[i](&r, hs, why);
		if (rc)
			return rc;
	}
	return 0;
}

/* RFC 8441 5: over HTTP/2 the extended CONNECT replaces the method, Upgrade, Connection and
 * key checks (the engine validated :protocol); version, subprotocols and extensions stay. */
static int (*const hs_steps_h2[])(const hs_req_t *r, hb_ws_handshake_t *hs, const char **why) = {
	check_version,
	read_protocols,
	read_extensions,
};

int hb_ws_handshake_check_h2(const hb_header_t *headers, size_t nheaders,
			     const hb_ws_deflate_config_t *dcfg, hb_ws_handshake_t *hs,
			     const char **why)
{
	hs_req_t r = {"CONNECT", 7, 2, 0, headers, nheaders, dcfg};
	int rc;

	memset(hs, 0, sizeof(*hs));
	for (size_t i = 0; i < sizeof(hs_steps_h2) / sizeof(hs_steps_h2[0]); i++) {
		rc = hs_steps_h2[i](&r, hs, why);
		if (rc)
			return rc;
	}
	return 0;
}

int hb_ws_handshake_check_request(const hb_request_t *r, const hb_ws_deflate_config_t *dcfg,
				  hb_ws_handshake_t *hs, const char **why)
{
	return hb_ws_handshake_check(r->method, r->method_len, r->http_major, r->http_minor,
				     r->headers, r->nheaders, dcfg, hs, why);
}

int hb_ws_handshake_status(int err)
{
	return err == HB_WS_E_HS_VERSION ? 426 : 400;
}

/* Appends to a fixed buffer, counting what did not fit, so callers learn the size needed. */
typedef struct out {
	char *p;
	size_t cap, len;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
	if (o->len + n <= o->cap)
		memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void puts_(out_t *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_header(out_t *o, const char *name, size_t nlen, const char *v, size_t vlen)
{
	put(o, name, nlen);
	put(o, ": ", 2);
	put(o, v, vlen);
	put(o, "\r\n", 2);
}

static int clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 0;
	return 1;
}

size_t hb_ws_write_accept(char *out, size_t cap, const hb_ws_handshake_t *hs,
			  const char *subprotocol, size_t subprotocol_len, const hb_header_t *extra,
			  size_t nextra)
{
	out_t o = {out, cap, 0};

	if (subprotocol && !clean(subprotocol, subprotocol_len))
		return 0;
	for (size_t i = 0; i < nextra; i++)
		if (!clean(extra[i].name, extra[i].name_len) || !extra[i].name_len ||
		    memchr(extra[i].name, ':', extra[i].name_len) ||
		    !clean(extra[i].value, extra[i].value_len))
			return 0;
	puts_(&o, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		  "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
	puts_(&o, hs->accept);
	puts_(&o, "\r\n");
	if (subprotocol && subprotocol_len)
		put_header(&o, "Sec-WebSocket-Protocol", 22, subprotocol, subprotocol_len);
	if (hs->extensions[0])
		put_header(&o, "Sec-WebSocket-Extensions", 24, hs->extensions,
			   strlen(hs->extensions));
	for (size_t i = 0; i < nextra; i++)
		put_header(&o, extra[i].name, extra[i].name_len, extra[i].value,
			   extra[i].value_len);
	put(&o, "\r\n", 2);
	return o.len;
}

size_t hb_ws_write_reject(char *out, size_t cap, int err, const char *why)
{
	int vers = err == HB_WS_E_HS_VERSION;
	const char *title = vers ? "Upgrade Required" : "Bad Request";
	size_t wlen = why ? strlen(why) : 0;
	char num[24];
	out_t o = {out, cap, 0};

	snprintf(num, sizeof(num), "%zu", strlen(title) + (why ? 2 + wlen : 0) + 1);
	puts_(&o, vers ? "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
			 "Upgrade: websocket\r\nConnection: Upgrade, close\r\n"
		       : "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n");
	puts_(&o, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
	puts_(&o, num);
	puts_(&o, "\r\n\r\n");
	puts_(&o, title);
	if (why) {
		put(&o, ": ", 2);
		put(&o, why, wlen);
	}
	put(&o, "\n", 1);
	return o.len;
}

/* ======== frame parser ======== */

/* Keep at most this much reassembly buffer between messages; bigger ones are freed. */
#define KEEP_BUFFER (64u << 10)

typedef struct hb_ws_parser hb_ws_parser_t;
typedef int (*state_fn)(hb_ws_parser_t *p, uint8_t *d, size_t len, size_t *pos, hb_ws_event_t *ev);

struct hb_ws_parser {
	state_fn state;
	size_t max;	 /* message size limit, after inflate */
	size_t wire_max; /* compressed bytes allowed in one message */
	hb_ws_deflate_t *deflate;
	/* the frame being read */
	uint8_t hdr[14];
	uint8_t hdr_len, hdr_need;
	uint8_t fin, rsv1, opcode, kind;
	uint8_t mask[4];
	uint64_t flen, fpos;
	/* the data message being reassembled */
	uint8_t msg_op;	       /* HB_WS_OP_TEXT/BINARY, 0 when none is open */
	uint8_t msg_deflate;   /* its first frame had RSV1 */
	uint8_t msg_delivered; /* msg holds a message already handed out */
	uint64_t msg_wire;
	hb_ws_buf_t msg;
	hb_utf8_t utf8;
	uint8_t ctl[125]; /* a control frame split across feeds */
	int err;
	const char *why;
};

/* What each opcode is; the rules of check_start() are per kind. */
enum { K_RESERVED, K_DATA, K_CONT, K_CONTROL };
static const uint8_t op_kind[16] = {
	[HB_WS_OP_CONT] = K_CONT,     [HB_WS_OP_TEXT] = K_DATA,	   [HB_WS_OP_BINARY] = K_DATA,
	[HB_WS_OP_CLOSE] = K_CONTROL, [HB_WS_OP_PING] = K_CONTROL, [HB_WS_OP_PONG] = K_CONTROL,
};

static int st_header(hb_ws_parser_t *p, uint8_t *d, size_t len, size_t *pos, hb_ws_event_t *ev);
static int st_payload(hb_ws_parser_t *p, uint8_t *d, size_t len, size_t *pos, hb_ws_event_t *ev);

/* After a close frame: the peer may send nothing more; whatever comes is dropped. */
static int st_closed(hb_ws_parser_t *p, uint8_t *d, size_t len, size_t *pos, hb_ws_event_t *ev)
{
	*pos = len;
	return 0;
}

static int st_failed(hb_ws_parser_t *p, uint8_t *d, size_t len, size_t *pos, hb_ws_event_t *ev)
{
	return p->err;
}

static int fail(hb_ws_parser_t *p, int err, const char *why)
{
	p->err = err;
	p->why = why;
	p->state = st_failed;
	return err;
}

static int emit(hb_ws_event_t *ev, int type, const uint8_t *data, size_t len, uint16_t code)
{
	ev->type = type;
	ev->data = data ? data : (const uint8_t *)"";
	ev->len = len;
	ev->code = code;
	return HB_WS_EVENT;
}

hb_ws_parser_t *hb_ws_parser_new(const hb_ws_parser_config_t *cfg)
{
	hb_ws_parser_t *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->max = cfg && cfg->max_message_size ? cfg->max_message_size : HB_WS_DEFAULT_MAX_MESSAGE;
	if (p->max > SIZE_MAX / 4)
		p->max = SIZE_MAX / 4;
	/* Compressed bytes may exceed the text slightly (incompressible data); more than this
	 * is a sender stalling us with blocks that inflate to nothing. */
	p->wire_max = p->max + p->max / 8 + 1024;
	p->deflate = cfg ? cfg->deflate : NULL;
	p->state = st_header;
	p->hdr_need = 2;
	return p;
}

void hb_ws_parser_free(hb_ws_parser_t *p)
{
	if (!p)
		return;
	hb_ws_buf_free(&p->msg);
	free(p);
}

uint16_t hb_ws_error_close_code(int err)
{
	switch (err) {
	case HB_WS_E_UTF8:
		return HB_WS_CLOSE_BAD_DATA;
	case HB_WS_E_TOO_BIG:
		return HB_WS_CLOSE_TOO_BIG;
	case HB_WS_E_NOMEM:
		return HB_WS_CLOSE_INTERNAL;
	default:
		return HB_WS_CLOSE_PROTOCOL;
	}
}

int hb_ws_close_code_valid(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
	       (code >= 3000 && code <= 4999);
}

/* XORs n payload bytes with the mask, starting at payload offset off; 8 bytes at a time once
 * the mask phase is aligned. */
static void unmask(uint8_t *b, size_t n, const uint8_t mask[4], uint64_t off)
{
	uint8_t m8[8];
	uint64_t m, w;
	size_t i = 0;

	for (; i < n && ((off + i) & 3); i++)
		b[i] ^= mask[(off + i) & 3];
	memcpy(m8, mask, 4);
	memcpy(m8 + 4, mask, 4);
	memcpy(&m, m8, 8);
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, b + i, 8);
		w ^= m;
		memcpy(b + i, &w, 8);
	}
	for (; i < n; i++)
		b[i] ^= mask[(off + i) & 3];
}

/* Rules decidable from the first two header bytes: fail before reading any more. */
static int check_start(hb_ws_parser_t *p)
{
	uint8_t b0 = p->hdr[0], b1 = p->hdr[1], len7 = b1 & 0x7f;

	p->fin = b0 >> 7;
	p->rsv1 = (b0 >> 6) & 1;
	p->opcode = b0 & 0x0f;
	p->kind = op_kind[p->opcode];
	if (b0 & 0x30)
		return fail(p, HB_WS_E_PROTOCOL, "RSV2/RSV3 set");
	if (!(b1 & 0x80))
		return fail(p, HB_WS_E_PROTOCOL, "unmasked client frame");
	switch (p->kind) {
	case K_RESERVED:
		return fail(p, HB_WS_E_PROTOCOL, "reserved opcode");
	case K_CONTROL:
		if (!p->fin)
			return fail(p, HB_WS_E_PROTOCOL, "fragmented control frame");
		if (len7 > 125)
			return fail(p, HB_WS_E_PROTOCOL, "control frame over 125 bytes");
		if (p->rsv1)
			return fail(p, HB_WS_E_PROTOCOL, "RSV1 on a control frame");
		break;
	case K_CONT:
		if (!p->msg_op)
			return fail(p, HB_WS_E_PROTOCOL, "continuation without a message");
		if (p->rsv1)
			return fail(p, HB_WS_E_PROTOCOL, "RSV1 on a continuation frame");
		break;
	case K_DATA:
		if (p->msg_op)
			return fail(p, HB_WS_E_PROTOCOL, "new message inside a fragmented one");
		if (p->rsv1 && !p->deflate)
			return fail(p, HB_WS_E_PROTOCOL, "RSV1 without permessage-deflate");
		break;
	}
	p->hdr_need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
	return 0;
}

/* Decodes the length and mask; refuses what the message limit cannot hold, before any
 * byte of it is buffered. */
static int check_length(hb_ws_parser_t *p)
{
	uint8_t len7 = p->hdr[1] & 0x7f, ext = p->hdr_need - 6;
	int compressed = p->kind == K_DATA ? p->rsv1 : p->msg_deflate;

	p->flen = len7;
	if (ext)
		p->flen = 0;
	for (uint8_t i = 0; i < ext; i++)
		p->flen = p->flen << 8 | p->hdr[2 + i];
	memcpy(p->mask, p->hdr + 2 + ext, 4);
	if (p->flen >> 63)
		return fail(p, HB_WS_E_TOO_BIG, "64-bit length with the top bit set");
	if (p->kind == K_CONTROL)
		return 0;
	if (p->kind == K_DATA) {
		p->msg.len = 0;
		p->msg_wire = 0;
	}
	if (compressed ? p->flen > p->wire_max - p->msg_wire : p->flen > p->max - p->msg.len)
		return fail(p, HB_WS_E_TOO_BIG, "message too big");
	return 0;
}

/* What inflating appended to the message since `old`. The buffer is still NULL after an empty
 * first message, and NULL + 0 is undefined behaviour (clang's UBSan reports it). */
static const uint8_t *msg_since(const hb_ws_parser_t *p, size_t old)
{
	return p->msg.data ? p->msg.data + old : p->msg.data;
}

static int check_text(hb_ws_parser_t *p, const uint8_t *s, size_t n)
{
	if (p->msg_op == HB_WS_OP_TEXT && hb_utf8_feed(&p->utf8, s, n) == HB_UTF8_INVALID)
		return fail(p, HB_WS_E_UTF8, "invalid UTF-8 in a text message");
	return 0;
}

static int inflate_error(hb_ws_parser_t *p, int rc, const char *why)
{
	return fail(p,
		    rc == HB_WS_DEFLATE_E_TOO_BIG ? HB_WS_E_TOO_BIG
		    : rc == HB_WS_DEFLATE_E_NOMEM ? HB_WS_E_NOMEM
						  : HB_WS_E_PROTOCOL,
		    why);
}

/* Appends to the message buffer, growing it geometrically but never past the limit. */
static int msg_append(hb_ws_parser_t *p, const uint8_t *s, size_t n)
{
	hb_ws_buf_t *b = &p->msg;
	size_t cap;
	uint8_t *nd;

	if (b->cap - b->len < n) {
		cap = b->cap * 2 > 4096 ? b->cap * 2 : 4096;
		cap = cap > p->max ? p->max : cap;
		cap = cap < b->len + n ? b->len + n : cap;
		nd = realloc(b->data, cap);
		if (!nd)
			return fail(p, HB_WS_E_NOMEM, "out of memory");
		b->data = nd;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return 0;
}

/* Takes n unmasked bytes of a data frame: inflated or copied into the message, checked. */
static int data_chunk(hb_ws_parser_t *p, const uint8_t *s, size_t n)
{
	size_t old = p->msg.len;
	const char *why = NULL;
	int rc;

	if (!p->msg_deflate) {
		rc = check_text(p, s, n);
		return rc ? rc : msg_append(p, s, n);
	}
	p->msg_wire += n;
	rc = hb_ws_deflate_inflate(p->deflate, s, n, &p->msg, p->max, &why);
	if (rc)
		return inflate_error(p, rc, why);
	return check_text(p, msg_since(p, old), p->msg.len - old);
}

/* A data frame ended: a message when FIN is set. */
static int end_data(hb_ws_parser_t *p, hb_ws_event_t *ev)
{
	size_t old = p->msg.len;
	const char *why = NULL;
	int rc, type;

	if (!p->fin)
		return 0;
	if (p->msg_deflate) {
		rc = hb_ws_deflate_inflate_end(p->deflate, &p->msg, p->max, &why);
		if (rc)
			return inflate_error(p, rc, why);
		if ((rc = check_text(p, msg_since(p, old), p->msg.len - old)))
			return rc;
	}
	if (p->msg_op == HB_WS_OP_TEXT && hb_utf8_feed(&p->utf8, "", 0) != HB_UTF8_OK)
		return fail(p, HB_WS_E_UTF8, "text message ends inside a UTF-8 sequence");
	type = p->msg_op == HB_WS_OP_TEXT ? HB_WS_EV_TEXT : HB_WS_EV_BINARY;
	p->msg_op = 0;
	p->msg_delivered = 1;
	return emit(ev, type, p->msg.data, p->msg.len, 0);
}

static int end_close(hb_ws_parser_t *p, const uint8_t *s, size_t n, hb_ws_event_t *ev)
{
	unsigned code = HB_WS_CLOSE_NO_STATUS;

	if (n == 1)
		return fail(p, HB_WS_E_PROTOCOL, "close frame with a 1-byte payload");
	if (n >= 2) {
		code = (unsigned)s[0] << 8 | s[1];
		if (!hb_ws_close_code_valid(code))
			return fail(p, HB_WS_E_PROTOCOL, "invalid close code");
		if (hb_utf8_check(s + 2, n - 2) != HB_UTF8_OK)
			return fail(p, HB_WS_E_UTF8, "invalid UTF-8 in a close reason");
		s += 2;
		n -= 2;
	}
	p->state = st_closed;
	return emit(ev, HB_WS_EV_CLOSE, s, n, (uint16_t)code);
}

static int end_control(hb_ws_parser_t *p, const uint8_t *s, size_t n, hb_ws_event_t *ev)
{
	if (p->opcode == HB_WS_OP_CLOSE)
		return end_close(p, s, n, ev);
	return emit(ev, p->opcode == HB_WS_OP_PING ? HB_WS_EV_PING : HB_WS_EV_PONG, s, n, 0);
}

/* Delivers a frame that is whole in the caller's buffer without copying it: control frames,
 * and unfragmented uncompressed messages. Returns 0 when the frame does not qualify. */
static int deliver_in_place(hb_ws_parser_t *p, uint8_t *d, size_t len, size_t *pos,
			    hb_ws_event_t *ev)
{
	uint8_t *s = d + *pos;
	size_t n = (size_t)p->flen;

	if (len - *pos < p->flen)
		return 0;
	if (p->kind != K_CONTROL && (p->kind != K_DATA || !p->fin || p->rsv1))
		return 0;
	unmask(s, n, p->mask, 0);
	*pos += n;
	if (p->kind == K_CONTROL)
		return end_control(p, s, n, ev);
	if (p->opcode == HB_WS_OP_TEXT && hb_utf8_check(s, n) != HB_UTF8_OK)
		return fail(p, HB_WS_E_UTF8, "invalid UTF-8 in a text message");
	p->msg_op = 0;
	return emit(ev, p->opcode == HB_WS_OP_TEXT ? HB_WS_EV_TEXT : HB_WS_EV_BINARY, s, n, 0);
}

static int st_header(hb_ws_parser_t *p, uint8_t *d, size_t len, size_t *pos, hb_ws_event_t *ev)
{
	int rc;

	while (p->hdr_len < p->hdr_need && *pos < len) {
		p->hdr[p->hdr_len++] = d[(*pos)++];
		if (p->hdr_len == 2 && (rc = check_start(p)))
			return rc;
	}
	if (p->hdr_len < p->hdr_need)
		return 0;
	if ((rc = check_length(p)))
		return rc;
	p->hdr_len = 0;
	p->hdr_need = 2;
	p->fpos = 0;
	if (p->kind == K_DATA) {
		p->msg_op = p->opcode;
		p->msg_deflate = p->rsv1;
		hb_utf8_init(&p->utf8);
	}
	if ((rc = deliver_in_place(p, d, len, pos, ev)))
		return rc;
	if (p->flen == 0)
		return end_data(p, ev); /* control frames of length 0 went in place */
	p->state = st_payload;
	return 0;
}

static int st_payload(hb_ws_parser_t *p, uint8_t *d, size_t len, size_t *pos, hb_ws_event_t *ev)
{
	uint8_t *s = d + *pos;
	size_t n = len - *pos;
	int rc;

	if (n > p->flen - p->fpos)
		n = (size_t)(p->flen - p->fpos);
	unmask(s, n, p->mask, p->fpos);
	*pos += n;
	if (p->kind == K_CONTROL)
		memcpy(p->ctl + p->fpos, s, n);
	else if ((rc = data_chunk(p, s, n)))
		return rc;
	p->fpos += n;
	if (p->fpos < p->flen)
		return 0;
	p->state = st_header;
	if (p->kind == K_CONTROL)
		return end_control(p, p->ctl, (size_t)p->flen, ev);
	return end_data(p, ev);
}

/* Forgets the message handed out by the previous call; big buffers go back to the heap so an
 * idle connection holds little. */
static void recycle(hb_ws_parser_t *p)
{
	if (!p->msg_delivered)
		return;
	p->msg_delivered = 0;
	p->msg.len = 0;
	if (p->msg.cap > KEEP_BUFFER)
		hb_ws_buf_free(&p->msg);
}

int hb_ws_parse(hb_ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed, hb_ws_event_t *ev,
		const char **why)
{
	size_t pos = 0;
	int rc = p->err;

	recycle(p);
	while (!rc && pos < len)
		rc = p->state(p, data, len, &pos, ev);
	*consumed = pos;
	if (rc < 0)
		*why = p->why;
	return rc;
}

/* ======== writer ======== */

size_t hb_ws_header_size(uint64_t len)
{
	return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

size_t hb_ws_write_header(uint8_t *out, unsigned opcode, int rsv1, uint64_t len)
{
	size_t n = hb_ws_header_size(len);

	out[0] = (uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | (opcode & 0x0f));
	if (n == 2) {
		out[1] = (uint8_t)len;
		return 2;
	}
	out[1] = n == 4 ? 126 : 127;
	for (size_t i = 2; i < n; i++)
		out[i] = (uint8_t)(len >> (8 * (n - 1 - i)));
	return n;
}

size_t hb_ws_write_frame(uint8_t *out, size_t cap, unsigned opcode, const void *payload, size_t len)
{
	size_t need = hb_ws_header_size(len) + len, h;

	if (opcode > 0xf || op_kind[opcode] == K_RESERVED || opcode == HB_WS_OP_CONT)
		return 0;
	if (op_kind[opcode] == K_CONTROL && len > 125)
		return 0;
	if (need > cap)
		return need;
	h = hb_ws_write_header(out, opcode, 0, len);
	if (len)
		memcpy(out + h, payload, len);
	return need;
}

size_t hb_ws_write_close(uint8_t *out, size_t cap, uint16_t code, const char *reason,
			 size_t reason_len)
{
	uint8_t body[125];
	size_t n = 0, cut = reason ? reason_len : 0;

	if (code) {
		if (cut > 123) { /* cut at a code point boundary: the reason must stay UTF-8 */
			cut = 123;
			while (cut > 0 && ((uint8_t)reason[cut] & 0xC0) == 0x80)
				cut--;
		}
		body[0] = (uint8_t)(code >> 8);
		body[1] = (uint8_t)code;
		if (cut)
			memcpy(body + 2, reason, cut);
		n = 2 + cut;
	}
	return hb_ws_write_frame(out, cap, HB_WS_OP_CLOSE, body, n);
}

int hb_ws_encode_message(hb_ws_buf_t *out, size_t *start, unsigned opcode, const void *payload,
			 size_t len, hb_ws_deflate_t *d)
{
	size_t h, clen;

	if (d) {
		if (hb_ws_deflate_compress(d, payload, len, HB_WS_MAX_HEADER, out))
			return HB_WS_E_NOMEM;
		clen = out->len - HB_WS_MAX_HEADER;
		*start = HB_WS_MAX_HEADER - hb_ws_header_size(clen);
		hb_ws_write_header(out->data + *start, opcode, 1, clen);
		return 0;
	}
	out->len = 0;
	if (hb_ws_buf_reserve(out, HB_WS_MAX_HEADER + len))
		return HB_WS_E_NOMEM;
	h = hb_ws_write_header(out->data, opcode, 0, len);
	if (len)
		memcpy(out->data + h, payload, len);
	out->len = h + len;
	*start = 0;
	return 0;
}
