/* ws_deflate.c: permessage-deflate negotiation and the per-message zlib codec (RFC 7692). */
#include "proto/ws_deflate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

struct hb_ws_deflate {
	hb_ws_deflate_params_t p;
	int level, mem_level;
	z_stream zin, zout;
	uint8_t zin_ready;  /* inflateInit2 done (lazily: many connections never receive deflate) */
	uint8_t zin_fed;    /* the current message fed compressed bytes: its end needs the tail */
	uint8_t zin_ended;  /* the sender closed the stream with a BFINAL block */
	uint8_t zout_ready; /* deflateInit2 done */
};

/* What a sender strips from each message and the receiver appends back (RFC 7692 7.2.1). */
static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* zlib calls take uInt lengths; feeding at most this much per call keeps them exact. */
#define ZCHUNK ((size_t)1 << 30)

/* ---- growable buffer ---- */

int hb_ws_buf_reserve(hb_ws_buf_t *b, size_t extra)
{
	size_t want = b->len + extra, cap = b->cap * 2;
	uint8_t *n;

	if (want < b->len)
		return HB_WS_DEFLATE_E_NOMEM;
	if (want <= b->cap)
		return 0;
	cap = cap < want ? want : cap; /* geometric, but never more than twice what is asked */
	n = realloc(b->data, cap);
	if (!n)
		return HB_WS_DEFLATE_E_NOMEM;
	b->data = n;
	b->cap = cap;
	return 0;
}

void hb_ws_buf_free(hb_ws_buf_t *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- negotiation ---- */

void hb_ws_deflate_config_default(hb_ws_deflate_config_t *c)
{
	memset(c, 0, sizeof(*c));
	c->enabled = 1;
	c->server_max_window_bits = 12;
	c->client_max_window_bits = 15;
	c->level = 6;
	c->mem_level = 5;
}

/* One offer's parameters; `seen` catches duplicates (which make the offer invalid). */
typedef struct offer {
	uint8_t seen;
	uint8_t snct, cnct;
	uint8_t smwb, cmwb; /* 0: absent, or (cmwb only) present without a value */
	uint8_t bad;
} offer_t;

typedef struct cur {
	const char *p, *end;
} cur_t;

static void skip_ows(cur_t *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static int is_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Takes a token (after optional whitespace); returns its length, 0 when none is there. */
static size_t take_token(cur_t *c, const char **tok)
{
	skip_ows(c);
	*tok = c->p;
	while (c->p < c->end && is_tchar((unsigned char)*c->p))
		c->p++;
	return (size_t)(c->p - *tok);
}

static int take_char(cur_t *c, char ch)
{
	skip_ows(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
	return 0;
}

/* Takes a token or a quoted-string (its inner text, escapes left in: a value with a backslash
 * is then simply not a number). Returns 0, or -1 on a syntax error. */
static int take_value(cur_t *c, const char **v, size_t *n)
{
	if (!take_char(c, '"')) {
		*n = take_token(c, v);
		return *n ? 0 : -1;
	}
	*v = c->p;
	while (c->p < c->end && *c->p != '"')
		c->p += (*c->p == '\\' && c->p + 1 < c->end) ? 2 : 1;
	if (c->p >= c->end)
		return -1;
	*n = (size_t)(c->p++ - *v);
	return 0;
}

/* A window size value: 8..15, plain decimal. Returns it, or 0 when invalid. */
static uint8_t parse_bits(const char *v, size_t n)
{
	if (n == 1 && v[0] >= '8' && v[0] <= '9')
		return (uint8_t)(v[0] - '0');
	if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
		return (uint8_t)(10 + v[1] - '0');
	return 0;
}

static int set_snct(offer_t *o, const char *v, size_t n, int has_value)
{
	o->snct = 1;
	return has_value ? -1 : 0;
}

static int set_cnct(offer_t *o, const char *v, size_t n, int has_value)
{
	o->cnct = 1;
	return has_value ? -1 : 0;
}

static int set_smwb(offer_t *o, const char *v, size_t n, int has_value)
{
	o->smwb = has_value ? parse_bits(v, n) : 0;
	return o->smwb ? 0 : -1;
}

static int set_cmwb(offer_t *o, const char *v, size_t n, int has_value)
{
	if (!has_value)
		return 0;
	o->cmwb = parse_bits(v, n);
	return o->cmwb ? 0 : -1;
}

static const struct param {
	const char *name;
	int (*set)(offer_t *o, const char *v, size_t n, int has_value);
} params[] = {
	{"server_no_context_takeover", set_snct},
	{"client_no_context_takeover", set_cnct},
	{"server_max_window_bits", set_smwb},
	{"client_max_window_bits", set_cmwb},
};

/* Applies one extension parameter to an offer; unknown, duplicate or bad ones spoil it. */
static void offer_param(offer_t *o, const char *name, size_t nlen, const char *v, size_t vlen,
			int has_value)
{
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		if (strlen(params[i].name) != nlen || strncasecmp(params[i].name, name, nlen))
			continue;
		if ((o->seen & (1u << i)) || params[i].set(o, v, vlen, has_value) < 0)
			o->bad = 1;
		o->seen |= (uint8_t)(1u << i);
		return;
	}
	o->bad = 1;
}

static uint8_t clamp_bits(uint8_t b)
{
	return b < 8 ? 8 : b > 15 ? 15 : b;
}

/* Chooses the response to a valid offer (RFC 7692 7.1.1-7.1.2). */
static void choose(const hb_ws_deflate_config_t *c, const offer_t *o, hb_ws_deflate_params_t *out)
{
	uint8_t b = clamp_bits(c->server_max_window_bits);

	out->server_no_context_takeover = o->snct || c->server_no_context_takeover;
	out->client_no_context_takeover = o->cnct;
	if (o->smwb && o->smwb < b)
		b = o->smwb;
	/* An offered server_max_window_bits must be answered; otherwise only a smaller window. */
	out->server_max_window_bits = (o->smwb || b < 15) ? b : 0;
	out->client_max_window_bits = 0;
	if (o->seen & (1u << 3)) { /* client_max_window_bits offered: we may limit the client */
		b = clamp_bits(c->client_max_window_bits);
		if (o->cmwb && o->cmwb < b)
			b = o->cmwb;
		out->client_max_window_bits = b < 15 ? b : 0;
	}
}

/* Parses one element's parameters ("; name[=value]")*; returns -1 on a syntax error. */
static int parse_params(cur_t *cur, offer_t *o, int mine)
{
	const char *name, *v = NULL;
	size_t nlen, vlen = 0;
	int has;

	while (take_char(cur, ';')) {
		nlen = take_token(cur, &name);
		if (!nlen)
			return -1;
		has = take_char(cur, '=');
		if (has && take_value(cur, &v, &vlen) < 0)
			return -1;
		if (mine)
			offer_param(o, name, nlen, v, vlen, has);
	}
	return 0;
}

int hb_ws_deflate_negotiate(const hb_ws_deflate_config_t *c, const char *value, size_t len,
			    hb_ws_deflate_params_t *out)
{
	cur_t cur = {value, value + len};
	const char *tok;
	size_t n;
	int mine;

	if (!c->enabled)
		return 0;
	for (;;) {
		offer_t o = {0};

		n = take_token(&cur, &tok);
		mine = n == 18 && !strncasecmp(tok, "permessage-deflate", 18);
		if (parse_params(&cur, &o, mine) < 0)
			return 0; /* malformed header: decline everything, serve uncompressed */
		if (mine && !o.bad) {
			memset(out, 0, sizeof(*out));
			choose(c, &o, out);
			return 1;
		}
		skip_ows(&cur);
		if (cur.p == cur.end || !take_char(&cur, ','))
			return 0;
	}
}

size_t hb_ws_deflate_response(const hb_ws_deflate_params_t *p, char *out, size_t cap)
{
	char sb[32] = "", cb[32] = "";
	int n;

	if (p->server_max_window_bits)
		snprintf(sb, sizeof(sb), "; server_max_window_bits=%u", p->server_max_window_bits);
	if (p->client_max_window_bits)
		snprintf(cb, sizeof(cb), "; client_max_window_bits=%u", p->client_max_window_bits);
	n = snprintf(out, cap, "permessage-deflate%s%s%s%s",
		     p->server_no_context_takeover ? "; server_no_context_takeover" : "",
		     p->client_no_context_takeover ? "; client_no_context_takeover" : "", sb, cb);
	return n < 0 ? 0 : (size_t)n;
}

/* ---- codec ---- */

/* zlib window for a negotiated size; 8 becomes 9 (see the header). */
static int zbits(uint8_t negotiated)
{
	return negotiated == 0 ? 15 : negotiated < 9 ? 9 : negotiated;
}

hb_ws_deflate_t *hb_ws_deflate_new(const hb_ws_deflate_params_t *p, int level, int mem_level)
{
	hb_ws_deflate_t *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->p = *p;
	d->level = level >= 0 && level <= 9 ? level : 6;
	d->mem_level = mem_level >= 1 && mem_level <= 9 ? mem_level : 5;
	return d;
}

void hb_ws_deflate_free(hb_ws_deflate_t *d)
{
	if (!d)
		return;
	if (d->zin_ready)
		inflateEnd(&d->zin);
	if (d->zout_ready)
		deflateEnd(&d->zout);
	free(d);
}

/* Room left in b below max, growing b geometrically but never past max bytes.
 * Returns 0 when b already holds max bytes, SIZE_MAX when out of memory. */
static size_t room(hb_ws_buf_t *b, size_t max)
{
	size_t cap;
	uint8_t *n;

	if (b->len >= max)
		return 0;
	if (b->len == b->cap) {
		cap = b->cap ? b->cap * 2 : 4096;
		cap = cap > max ? max : cap;
		n = realloc(b->data, cap);
		if (!n)
			return SIZE_MAX;
		b->data = n;
		b->cap = cap;
	}
	cap = b->cap > max ? max : b->cap;
	return cap - b->len > ZCHUNK ? ZCHUNK : cap - b->len;
}

static int fail(int err, const char *reason, const char **why)
{
	*why = reason;
	return err;
}

/* Inflates in[0..len) into out. Once out holds max bytes, inflation goes on into a one-byte
 * spare: a byte landing there means the message is too big, detected without allocating. */
static int inflate_some(hb_ws_deflate_t *d, const uint8_t *in, size_t len, hb_ws_buf_t *out,
			size_t max, const char **why)
{
	z_stream *z = &d->zin;
	uint8_t spare;
	size_t n, made;
	int zrc;

	z->next_in = (Bytef *)in;
	z->avail_in = (uInt)len;
	for (;;) {
		n = room(out, max);
		if (n == SIZE_MAX)
			return fail(HB_WS_DEFLATE_E_NOMEM, "out of memory", why);
		z->next_out = n ? out->data + out->len : &spare;
		z->avail_out = n ? (uInt)n : 1;
		made = z->avail_out;
		zrc = inflate(z, Z_SYNC_FLUSH);
		made -= z->avail_out;
		if (!n && made)
			return fail(HB_WS_DEFLATE_E_TOO_BIG, "inflated message too big", why);
		out->len += made;
		if (zrc == Z_STREAM_END) {
			d->zin_ended = 1;
			if (z->avail_in == 0)
				return 0;
			inflateReset(z); /* another stream follows the final block */
			d->zin_ended = 0;
			continue;
		}
		if (zrc != Z_OK && zrc != Z_BUF_ERROR)
			return fail(HB_WS_DEFLATE_E_DATA, "invalid compressed data", why);
		if (z->avail_in == 0 && z->avail_out > 0)
			return 0;
		if (zrc == Z_BUF_ERROR && z->avail_out > 0) /* no progress possible: never spin */
			return fail(HB_WS_DEFLATE_E_DATA, "invalid compressed data", why);
	}
}

int hb_ws_deflate_inflate(hb_ws_deflate_t *d, const uint8_t *in, size_t len, hb_ws_buf_t *out,
			  size_t max, const char **why)
{
	size_t n;
	int rc;

	if (!d->zin_ready) {
		if (inflateInit2(&d->zin, -zbits(d->p.client_max_window_bits)) != Z_OK)
			return fail(HB_WS_DEFLATE_E_NOMEM, "out of memory", why);
		d->zin_ready = 1;
	}
	if (len)
		d->zin_fed = 1;
	for (; len; in += n, len -= n) {
		n = len > ZCHUNK ? ZCHUNK : len;
		if (d->zin_ended) { /* data after a final block starts a new stream */
			inflateReset(&d->zin);
			d->zin_ended = 0;
		}
		rc = inflate_some(d, in, n, out, max, why);
		if (rc)
			return rc;
	}
	return 0;
}

int hb_ws_deflate_inflate_end(hb_ws_deflate_t *d, hb_ws_buf_t *out, size_t max, const char **why)
{
	int rc = 0;

	if (!d->zin_fed) /* an empty message: the tail alone would be a truncated block */
		return 0;
	d->zin_fed = 0;
	if (!d->zin_ended)
		rc = inflate_some(d, tail, sizeof(tail), out, max, why);
	if (rc == 0 && (d->p.client_no_context_takeover || d->zin_ended)) {
		inflateReset(&d->zin);
		d->zin_ended = 0;
	}
	return rc;
}

static int deflate_ready(hb_ws_deflate_t *d)
{
	if (d->zout_ready)
		return 0;
	if (deflateInit2(&d->zout, d->level, Z_DEFLATED, -zbits(d->p.server_max_window_bits),
			 d->mem_level, Z_DEFAULT_STRATEGY) != Z_OK)
		return HB_WS_DEFLATE_E_NOMEM;
	d->zout_ready = 1;
	return 0;
}

/* Runs deflate over in[0..len) and a sync flush, appending to out. */
static int deflate_all(z_stream *z, const uint8_t *in, size_t len, hb_ws_buf_t *out)
{
	size_t n, made;
	int flush, zrc;

	for (;;) {
		if (z->avail_in == 0 && len) {
			n = len > ZCHUNK ? ZCHUNK : len;
			z->next_in = (Bytef *)in;
			z->avail_in = (uInt)n;
			in += n;
			len -= n;
		}
		flush = len ? Z_NO_FLUSH : Z_SYNC_FLUSH;
		if (out->cap - out->len < 64 && hb_ws_buf_reserve(out, out->cap / 2 + 64))
			return HB_WS_DEFLATE_E_NOMEM;
		n = out->cap - out->len > ZCHUNK ? ZCHUNK : out->cap - out->len;
		z->next_out = out->data + out->len;
		z->avail_out = (uInt)n;
		zrc = deflate(z, flush);
		made = n - z->avail_out;
		out->len += made;
		if (zrc == Z_STREAM_ERROR)
			return HB_WS_DEFLATE_E_DATA;
		if (!len && z->avail_in == 0 && z->avail_out > 0)
			return 0;
	}
}

int hb_ws_deflate_compress(hb_ws_deflate_t *d, const void *in, size_t len, size_t headroom,
			   hb_ws_buf_t *out)
{
	int rc = deflate_ready(d);
	size_t bound;

	if (rc)
		return rc;
	/* Start from the worst case for small messages; big ones usually shrink, so grow. */
	bound = deflateBound(&d->zout, len) + 16;
	out->len = 0;
	if (hb_ws_buf_reserve(out, headroom + (bound < 65536 ? bound : 65536)))
		return HB_WS_DEFLATE_E_NOMEM;
	out->len = headroom;
	d->zout.avail_in = 0;
	rc = deflate_all(&d->zout, in, len, out);
	if (rc)
		return rc;
	if (out->len == headroom) {
		/* An empty message right after a flush: zlib emits nothing (a repeated flush is a
		 * no-op). Send 0x00, the start of an empty stored block that the receiver's
		 * appended 00 00 ff ff completes: what RFC 7692 shows for an empty message. */
		out->data[out->len++] = 0x00;
		return 0;
	}
	/* A sync flush ends with the empty stored block's 00 00 ff ff: strip it (7.2.1). */
	if (out->len - headroom < sizeof(tail) ||
	    memcmp(out->data + out->len - sizeof(tail), tail, sizeof(tail)))
		return HB_WS_DEFLATE_E_DATA;
	out->len -= sizeof(tail);
	if (d->p.server_no_context_takeover)
		deflateReset(&d->zout);
	return 0;
}
