/* codec.c: writer and validating reader of the value format (docs/codec.md). */
#include "core/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- little-endian helpers (byte-wise, so host order and alignment do not matter) ---- */

static void le_put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le_get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- writer ---- */

void hb_cbuf_init(hb_cbuf_t *b, void *initial, size_t cap)
{
	b->data = initial;
	b->len = 0;
	b->cap = initial ? cap : 0;
	b->err = 0;
	b->owned = 0;
}

void hb_cbuf_free(hb_cbuf_t *b)
{
	if (b->owned)
		free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->owned = 0;
}

int hb_cbuf_reserve(hb_cbuf_t *b, size_t n)
{
	if (b->err)
		return b->err;
	if (n <= b->cap - b->len)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return b->err = -ENOMEM;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *d = b->owned ? realloc(b->data, cap) : malloc(cap);
	if (!d)
		return b->err = -ENOMEM;
	if (!b->owned && b->len)
		memcpy(d, b->data, b->len);
	b->data = d;
	b->cap = cap;
	b->owned = 1;
	return 0;
}

static int put_raw(hb_cbuf_t *b, const void *p, size_t n)
{
	int rc = hb_cbuf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* A tag followed by an n-byte little-endian integer. */
static int put_tag_le(hb_cbuf_t *b, uint8_t tag, uint64_t v, int n)
{
	uint8_t tmp[9];
	tmp[0] = tag;
	le_put(tmp + 1, v, n);
	return put_raw(b, tmp, 1 + (size_t)n);
}

/* tag, u32 length, payload. */
static int put_blob(hb_cbuf_t *b, uint8_t tag, const void *p, size_t len)
{
	if (b->err)
		return b->err;
	if (len > UINT32_MAX)
		return b->err = -E2BIG;
	int rc = put_tag_le(b, tag, len, 4);
	return rc ? rc : put_raw(b, p, len);
}

int hb_codec_begin(hb_cbuf_t *b)
{
	b->len = 0;
	b->err = 0;
	uint8_t v = HB_CODEC_VERSION;
	return put_raw(b, &v, 1);
}

int hb_codec_put_none(hb_cbuf_t *b)
{
	uint8_t t = HB_CODEC_TAG_NONE;
	return put_raw(b, &t, 1);
}

int hb_codec_put_bool(hb_cbuf_t *b, int v)
{
	uint8_t t = v ? HB_CODEC_TAG_TRUE : HB_CODEC_TAG_FALSE;
	return put_raw(b, &t, 1);
}

int hb_codec_put_int64(hb_cbuf_t *b, int64_t v)
{
	return put_tag_le(b, HB_CODEC_TAG_INT64, (uint64_t)v, 8);
}

int hb_codec_put_bigint(hb_cbuf_t *b, int neg, const void *mag, size_t len)
{
	const uint8_t *m = mag;
	while (len && m[len - 1] == 0)
		len--;
	if (len <= 8) {
		uint64_t u = le_get(m, (int)len);
		if (!neg && u <= (uint64_t)INT64_MAX)
			return hb_codec_put_int64(b, (int64_t)u);
		if (neg && u <= (uint64_t)INT64_MAX + 1)
			return hb_codec_put_int64(b, (int64_t)(0 - u));
	}
	if (b->err)
		return b->err;
	if (len > UINT32_MAX)
		return b->err = -E2BIG;
	uint8_t hdr[6] = {HB_CODEC_TAG_BIGINT, neg ? 1 : 0};
	le_put(hdr + 2, len, 4);
	int rc = put_raw(b, hdr, sizeof hdr);
	return rc ? rc : put_raw(b, m, len);
}

int hb_codec_put_float(hb_cbuf_t *b, double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	return put_tag_le(b, HB_CODEC_TAG_FLOAT, u, 8);
}

int hb_codec_put_str(hb_cbuf_t *b, const void *s, size_t len)
{
	return put_blob(b, HB_CODEC_TAG_STR, s, len);
}

int hb_codec_put_bytes(hb_cbuf_t *b, const void *p, size_t len)
{
	return put_blob(b, HB_CODEC_TAG_BYTES, p, len);
}

int hb_codec_put_list_begin(hb_cbuf_t *b, uint32_t n)
{
	return put_tag_le(b, HB_CODEC_TAG_LIST, n, 4);
}

int hb_codec_put_tuple_begin(hb_cbuf_t *b, uint32_t n)
{
	return put_tag_le(b, HB_CODEC_TAG_TUPLE, n, 4);
}

int hb_codec_put_dict_begin(hb_cbuf_t *b, uint32_t n)
{
	return put_tag_le(b, HB_CODEC_TAG_DICT, n, 4);
}

/* ---- int64 helpers for the shared map ---- */

void hb_codec_int64_encode(uint8_t out[HB_CODEC_INT64_SIZE], int64_t v)
{
	out[0] = HB_CODEC_VERSION;
	out[1] = HB_CODEC_TAG_INT64;
	le_put(out + 2, (uint64_t)v, 8);
}

int hb_codec_int64_decode(const void *buf, size_t len, int64_t *v)
{
	const uint8_t *p = buf;
	if (len != HB_CODEC_INT64_SIZE || p[0] != HB_CODEC_VERSION || p[1] != HB_CODEC_TAG_INT64)
		return -EINVAL;
	*v = (int64_t)le_get(p + 2, 8);
	return 0;
}

/* ---- UTF-8 ---- */

/* Length of the sequence starting at s[0..n), or 0 if it is not well-formed (RFC 3629). */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	if (c < 0x80)
		return 1;
	size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (c < 0xc2 || c > 0xf4 || n < len)
		return 0;
	uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* > U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

int hb_codec_utf8_valid(const void *s, size_t len)
{
	const uint8_t *p = s, *end = p + len;
	while (p < end) {
		size_t n = utf8_seq(p, (size_t)(end - p));
		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

/* ---- reader ---- */

int hb_codec_reader_init(hb_codec_reader_t *r, const void *buf, size_t len, uint32_t max_depth)
{
	if (max_depth > HB_CODEC_MAX_DEPTH)
		return -EINVAL;
	const uint8_t *p = buf;
	r->p = p;
	r->end = len ? p + len : p;
	r->depth = 0;
	r->max_depth = max_depth ? max_depth : HB_CODEC_MAX_DEPTH;
	r->left[0] = 1;
	r->failed = 0;
	if (len < 1 || p[0] != HB_CODEC_VERSION) {
		r->failed = 1; /* next() reports -EBADMSG */
		return -EBADMSG;
	}
	r->p++;
	return 0;
}

static int fail(hb_codec_reader_t *r)
{
	r->failed = 1;
	return -EBADMSG;
}

static size_t avail(const hb_codec_reader_t *r)
{
	return (size_t)(r->end - r->p);
}

/* Reads a u32 length and checks `min_per * n` bytes remain. */
static int read_count(hb_codec_reader_t *r, uint64_t min_per, uint64_t *n)
{
	if (avail(r) < 4)
		return -EBADMSG;
	*n = le_get(r->p, 4);
	r->p += 4;
	return *n * min_per > avail(r) ? -EBADMSG : 0;
}

static int read_blob(hb_codec_reader_t *r, hb_codec_tok_t *t)
{
	uint64_t n;
	if (read_count(r, 1, &n))
		return -EBADMSG;
	t->data = r->p;
	t->len = (size_t)n;
	r->p += n;
	return 0;
}

static int read_bigint(hb_codec_reader_t *r, hb_codec_tok_t *t)
{
	if (avail(r) < 1 || r->p[0] > 1)
		return -EBADMSG;
	t->neg = r->p[0];
	r->p++;
	if (read_blob(r, t) || t->len == 0 || t->data[t->len - 1] == 0)
		return -EBADMSG;
	return 0;
}

static int open_container(hb_codec_reader_t *r, hb_codec_tok_t *t, hb_codec_type_t type,
			  uint64_t per)
{
	uint64_t n;
	if (read_count(r, per, &n) || r->depth >= r->max_depth)
		return -EBADMSG;
	t->type = type;
	t->v.n = (uint32_t)n;
	r->left[++r->depth] = n * per;
	return 0;
}

/* INT64 or FLOAT: eight little-endian bytes. */
static int read_fixed8(hb_codec_reader_t *r, hb_codec_tok_t *t, uint8_t tag)
{
	if (avail(r) < 8)
		return -EBADMSG;
	uint64_t u = le_get(r->p, 8);
	r->p += 8;
	if (tag == HB_CODEC_TAG_INT64) {
		t->type = HB_CODEC_INT;
		t->v.i = (int64_t)u;
	} else {
		t->type = HB_CODEC_FLOAT;
		memcpy(&t->v.f, &u, sizeof u);
	}
	return 0;
}

/* Decodes the item at r->p into *t; the caller has counted it. */
static int read_item(hb_codec_reader_t *r, hb_codec_tok_t *t)
{
	uint8_t tag = *r->p++;
	switch (tag) {
	case HB_CODEC_TAG_NONE:
		t->type = HB_CODEC_NONE;
		return 0;
	case HB_CODEC_TAG_FALSE:
	case HB_CODEC_TAG_TRUE:
		t->type = HB_CODEC_BOOL;
		t->v.b = tag == HB_CODEC_TAG_TRUE;
		return 0;
	case HB_CODEC_TAG_INT64:
	case HB_CODEC_TAG_FLOAT:
		return read_fixed8(r, t, tag);
	case HB_CODEC_TAG_BIGINT:
		t->type = HB_CODEC_BIGINT;
		return read_bigint(r, t);
	case HB_CODEC_TAG_STR:
		t->type = HB_CODEC_STR;
		return read_blob(r, t) || !hb_codec_utf8_valid(t->data, t->len) ? -EBADMSG : 0;
	case HB_CODEC_TAG_BYTES:
		t->type = HB_CODEC_BYTES;
		return read_blob(r, t);
	case HB_CODEC_TAG_LIST:
		return open_container(r, t, HB_CODEC_LIST, 1);
	case HB_CODEC_TAG_TUPLE:
		return open_container(r, t, HB_CODEC_TUPLE, 1);
	case HB_CODEC_TAG_DICT:
		return open_container(r, t, HB_CODEC_DICT, 2);
	default:
		return -EBADMSG;
	}
}

int hb_codec_next(hb_codec_reader_t *r, hb_codec_tok_t *t)
{
	if (r->failed)
		return -EBADMSG;
	while (r->depth > 0 && r->left[r->depth] == 0)
		r->depth--;
	if (r->depth == 0 && r->left[0] == 0)
		return r->p == r->end ? 0 : fail(r);
	if (r->p == r->end)
		return fail(r);
	memset(t, 0, sizeof *t);
	r->left[r->depth]--;
	return read_item(r, t) ? fail(r) : 1;
}

int hb_codec_validate(const void *buf, size_t len, uint32_t max_depth)
{
	hb_codec_reader_t r;
	hb_codec_tok_t t;
	int rc = hb_codec_reader_init(&r, buf, len, max_depth);
	while (rc == 0 && (rc = hb_codec_next(&r, &t)) == 1)
		rc = 0;
	return rc == 0 ? 0 : -EBADMSG;
}
