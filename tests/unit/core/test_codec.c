/* test_codec.c: writer/reader round trips, canonical ints, hostile inputs. */
#include "core/codec.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- a seeded PRNG (splitmix64) ---- */

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- random values: written and recorded as the expected token stream ---- */

typedef struct expect {
	hb_codec_tok_t tok[4096];
	uint8_t pool[1 << 16];
	size_t ntok, npool;
} expect_t;

static void record(expect_t *x, const hb_codec_tok_t *t, const void *data, size_t len)
{
	cr_assert_lt(x->ntok, 4096);
	x->tok[x->ntok] = *t;
	if (data) {
		cr_assert_leq(x->npool + len, sizeof x->pool);
		memcpy(x->pool + x->npool, data, len);
		x->tok[x->ntok].data = x->pool + x->npool;
		x->tok[x->ntok].len = len;
		x->npool += len;
	}
	x->ntok++;
}

static void gen_blob(uint64_t *s, uint8_t *buf, size_t *len, int utf8)
{
	static const char *const pieces[] = {
		"a", "Z", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " "};
	*len = 0;
	size_t n = rnd(s) % 24;
	for (size_t i = 0; i < n; i++) {
		if (utf8) {
			const char *p = pieces[rnd(s) % 6];
			memcpy(buf + *len, p, strlen(p));
			*len += strlen(p);
		} else {
			buf[(*len)++] = (uint8_t)rnd(s);
		}
	}
}

static void gen_bigint(uint64_t *s, hb_cbuf_t *b, expect_t *x)
{
	uint8_t mag[40];
	size_t len = 9 + rnd(s) % 30;
	for (size_t i = 0; i < len; i++)
		mag[i] = (uint8_t)rnd(s);
	mag[len - 1] |= 1; /* keep it big and canonical */
	hb_codec_tok_t t = {.type = HB_CODEC_BIGINT, .neg = (int)(rnd(s) & 1)};
	cr_assert_eq(hb_codec_put_bigint(b, t.neg, mag, len), 0);
	record(x, &t, mag, len);
}

static void gen_value(uint64_t *s, hb_cbuf_t *b, expect_t *x, int depth);

static void gen_container(uint64_t *s, hb_cbuf_t *b, expect_t *x, int depth, hb_codec_type_t type)
{
	hb_codec_tok_t t = {.type = type};
	t.v.n = (uint32_t)(rnd(s) % 5);
	if (type == HB_CODEC_LIST)
		hb_codec_put_list_begin(b, t.v.n);
	else if (type == HB_CODEC_TUPLE)
		hb_codec_put_tuple_begin(b, t.v.n);
	else
		hb_codec_put_dict_begin(b, t.v.n);
	record(x, &t, NULL, 0);
	uint32_t items = type == HB_CODEC_DICT ? t.v.n * 2 : t.v.n;
	for (uint32_t i = 0; i < items; i++)
		gen_value(s, b, x, depth + 1);
}

static void gen_value(uint64_t *s, hb_cbuf_t *b, expect_t *x, int depth)
{
	hb_codec_tok_t t = {0};
	uint8_t blob[128];
	size_t len;
	int kind = (int)(rnd(s) % (depth < 5 ? 11 : 8));
	switch (kind) {
	case 0:
		t.type = HB_CODEC_NONE;
		hb_codec_put_none(b);
		break;
	case 1:
		t.type = HB_CODEC_BOOL;
		t.v.b = (int)(rnd(s) & 1);
		hb_codec_put_bool(b, t.v.b);
		break;
	case 2:
		t.type = HB_CODEC_INT;
		t.v.i = (int64_t)rnd(s) >> (rnd(s) % 64);
		hb_codec_put_int64(b, t.v.i);
		break;
	case 3:
		t.type = HB_CODEC_FLOAT;
		t.v.f = (double)(int64_t)rnd(s) / 7.0;
		hb_codec_put_float(b, t.v.f);
		break;
	case 4:
	case 5:
		t.type = kind == 4 ? HB_CODEC_STR : HB_CODEC_BYTES;
		gen_blob(s, blob, &len, kind == 4);
		(kind == 4 ? hb_codec_put_str : hb_codec_put_bytes)(b, blob, len);
		record(x, &t, blob, len);
		return;
	case 6:
	case 7:
		gen_bigint(s, b, x);
		return;
	default:
		gen_container(s, b, x, depth,
			      kind == 8	  ? HB_CODEC_LIST
			      : kind == 9 ? HB_CODEC_TUPLE
					  : HB_CODEC_DICT);
		return;
	}
	record(x, &t, NULL, 0);
}

static void tok_equal(const hb_codec_tok_t *a, const hb_codec_tok_t *e)
{
	cr_assert_eq(a->type, e->type);
	switch (e->type) {
	case HB_CODEC_NONE:
		break;
	case HB_CODEC_BOOL:
		cr_assert_eq(!!a->v.b, !!e->v.b);
		break;
	case HB_CODEC_INT:
		cr_assert_eq(a->v.i, e->v.i);
		break;
	case HB_CODEC_FLOAT:
		cr_assert(memcmp(&a->v.f, &e->v.f, sizeof(double)) == 0);
		break;
	case HB_CODEC_BIGINT:
		cr_assert_eq(a->neg, e->neg);
		/* fallthrough */
	case HB_CODEC_STR:
	case HB_CODEC_BYTES:
		cr_assert_eq(a->len, e->len);
		cr_assert(a->len == 0 || memcmp(a->data, e->data, a->len) == 0);
		break;
	case HB_CODEC_LIST:
	case HB_CODEC_TUPLE:
	case HB_CODEC_DICT:
		cr_assert_eq(a->v.n, e->v.n);
		break;
	}
}

/* Reads buf back and compares token by token. */
static void check_stream(const uint8_t *buf, size_t len, const expect_t *x)
{
	hb_codec_reader_t r;
	hb_codec_tok_t t;
	cr_assert_eq(hb_codec_reader_init(&r, buf, len, 0), 0);
	for (size_t i = 0; i < x->ntok; i++) {
		cr_assert_eq(hb_codec_next(&r, &t), 1, "token %zu", i);
		tok_equal(&t, &x->tok[i]);
	}
	cr_assert_eq(hb_codec_next(&r, &t), 0);
}

/* Runs every strict prefix and a few corruptions of buf through the reader. */
static void check_hostile(uint64_t *s, const uint8_t *buf, size_t len)
{
	for (size_t n = 0; n < len; n++) {
		uint8_t *p = malloc(n ? n : 1); /* exact size: ASan sees any overrun */
		memcpy(p, buf, n);
		cr_assert_eq(hb_codec_validate(p, n, 0), -EBADMSG, "prefix %zu of %zu", n, len);
		free(p);
	}
	uint8_t *p = malloc(len);
	for (int k = 0; k < 64; k++) {
		memcpy(p, buf, len);
		for (int f = 0; f < 3; f++)
			p[rnd(s) % len] = (uint8_t)rnd(s);
		int rc = hb_codec_validate(p, len, 0);
		cr_assert(rc == 0 || rc == -EBADMSG);
	}
	free(p);
}

Test(codec, random_round_trips_and_hostile_prefixes)
{
	uint64_t seed = 12345;
	static expect_t x;
	for (int iter = 0; iter < 300; iter++) {
		hb_cbuf_t b;
		uint8_t stack[64];
		hb_cbuf_init(&b, stack, sizeof stack);
		x.ntok = x.npool = 0;
		hb_codec_begin(&b);
		gen_value(&seed, &b, &x, 0);
		cr_assert_eq(b.err, 0);
		check_stream(b.data, b.len, &x);
		check_hostile(&seed, b.data, b.len);
		hb_cbuf_free(&b);
	}
}

Test(codec, scalars)
{
	hb_cbuf_t b;
	hb_codec_reader_t r;
	hb_codec_tok_t t;
	hb_cbuf_init(&b, NULL, 0);
	hb_codec_begin(&b);
	hb_codec_put_tuple_begin(&b, 5);
	hb_codec_put_float(&b, INFINITY);
	hb_codec_put_float(&b, -0.0);
	hb_codec_put_int64(&b, INT64_MIN);
	hb_codec_put_str(&b, "", 0);
	hb_codec_put_bytes(&b, "\0\1", 2);
	cr_assert_eq(b.err, 0);
	cr_assert_eq(hb_codec_reader_init(&r, b.data, b.len, 0), 0);
	cr_assert_eq(hb_codec_next(&r, &t), 1);
	cr_assert_eq(t.type, HB_CODEC_TUPLE);
	cr_assert_eq(t.v.n, 5);
	cr_assert_eq(hb_codec_next(&r, &t), 1);
	cr_assert(isinf(t.v.f) && t.v.f > 0);
	cr_assert_eq(hb_codec_next(&r, &t), 1);
	cr_assert(t.v.f == 0 && signbit(t.v.f));
	cr_assert_eq(hb_codec_next(&r, &t), 1);
	cr_assert_eq(t.v.i, INT64_MIN);
	cr_assert_eq(hb_codec_next(&r, &t), 1);
	cr_assert_eq(t.type, HB_CODEC_STR);
	cr_assert_eq(t.len, 0);
	cr_assert_eq(hb_codec_next(&r, &t), 1);
	cr_assert_eq(t.type, HB_CODEC_BYTES);
	cr_assert_eq(t.len, 2);
	cr_assert_eq(hb_codec_next(&r, &t), 0);
	cr_assert_eq(hb_codec_next(&r, &t), 0);
	hb_cbuf_free(&b);
}

Test(codec, bigint_is_canonical)
{
	hb_cbuf_t b;
	uint8_t out[HB_CODEC_INT64_SIZE];
	int64_t v;
	hb_cbuf_init(&b, NULL, 0);
	uint8_t small[12] = {0x2a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; /* 42 with high zero bytes */
	hb_codec_begin(&b);
	hb_codec_put_bigint(&b, 1, small, sizeof small);
	cr_assert_eq(hb_codec_int64_decode(b.data, b.len, &v), 0);
	cr_assert_eq(v, -42);
	uint8_t min[8] = {0, 0, 0, 0, 0, 0, 0, 0x80}; /* -2^63 fits int64 */
	hb_codec_begin(&b);
	hb_codec_put_bigint(&b, 1, min, sizeof min);
	cr_assert_eq(hb_codec_int64_decode(b.data, b.len, &v), 0);
	cr_assert_eq(v, INT64_MIN);
	hb_codec_begin(&b); /* +2^63 does not */
	hb_codec_put_bigint(&b, 0, min, sizeof min);
	cr_assert_eq(b.len, 1 + 6 + 8);
	cr_assert_eq(b.data[1], HB_CODEC_TAG_BIGINT);
	cr_assert_eq(hb_codec_validate(b.data, b.len, 0), 0);
	hb_codec_int64_encode(out, -7);
	cr_assert_eq(hb_codec_int64_decode(out, sizeof out, &v), 0);
	cr_assert_eq(v, -7);
	cr_assert_eq(hb_codec_int64_decode(out, sizeof out - 1, &v), -EINVAL);
	out[1] = HB_CODEC_TAG_FLOAT;
	cr_assert_eq(hb_codec_int64_decode(out, sizeof out, &v), -EINVAL);
	hb_cbuf_free(&b);
}

Test(codec, rejects_bad_input)
{
	static const struct {
		const char *bytes;
		size_t len;
	} bad[] = {
		{"", 0},
		{"\x02\x00", 2},				  /* unknown version */
		{"\x01", 1},					  /* no item */
		{"\x01\x00\x00", 3},				  /* trailing byte */
		{"\x01\x0b", 2},				  /* unknown tag */
		{"\x01\x08\xff\xff\xff\xff\x00", 7},		  /* count larger than input */
		{"\x01\x0a\x01\x00\x00\x00\x00", 7},		  /* dict pair half missing */
		{"\x01\x06\x02\x00\x00\x00\xc0\xaf", 8},	  /* overlong UTF-8 */
		{"\x01\x06\x03\x00\x00\x00\xed\xa0\x80", 9},	  /* surrogate */
		{"\x01\x06\x04\x00\x00\x00\xf4\x90\x80\x80", 10}, /* > U+10FFFF */
		{"\x01\x04\x00\x00\x00\x00\x00", 7},		  /* empty bigint magnitude */
		{"\x01\x04\x00\x02\x00\x00\x00\x01\x00", 9},	  /* high zero byte */
		{"\x01\x04\x02\x01\x00\x00\x00\x01", 8},	  /* bad sign byte */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(hb_codec_validate(bad[i].bytes, bad[i].len, 0), -EBADMSG, "case %zu",
			     i);
	cr_assert_eq(hb_codec_validate("\x01\x06\x04\x00\x00\x00\xf0\x9f\x98\x80", 10, 0), 0);
	hb_codec_reader_t r; /* a failed reader stays failed */
	hb_codec_tok_t t;
	cr_assert_eq(hb_codec_reader_init(&r, "\x01\x0b\x00", 3, 0), 0);
	cr_assert_eq(hb_codec_next(&r, &t), -EBADMSG);
	cr_assert_eq(hb_codec_next(&r, &t), -EBADMSG);
	cr_assert_eq(hb_codec_reader_init(&r, NULL, 0, 0), -EBADMSG);
	cr_assert_eq(hb_codec_next(&r, &t), -EBADMSG);
}

Test(codec, depth_limit)
{
	uint8_t buf[1 + 5 * 70 + 1];
	size_t n = 0;
	buf[n++] = HB_CODEC_VERSION;
	for (int d = 0; d < 65; d++) {
		buf[n++] = HB_CODEC_TAG_LIST;
		memcpy(buf + n, "\x01\x00\x00\x00", 4);
		n += 4;
	}
	buf[n++] = HB_CODEC_TAG_NONE;
	cr_assert_eq(hb_codec_validate(buf, n, 0), -EBADMSG);	      /* 65 deep */
	cr_assert_eq(hb_codec_validate(buf + 5, n - 5, 0), -EBADMSG); /* no version byte */
	buf[5] = HB_CODEC_VERSION;
	cr_assert_eq(hb_codec_validate(buf + 5, n - 5, 0), 0); /* 64 deep */
	cr_assert_eq(hb_codec_validate(buf + 5, n - 5, 3), -EBADMSG);
	hb_codec_reader_t r;
	cr_assert_eq(hb_codec_reader_init(&r, buf, n, HB_CODEC_MAX_DEPTH + 1), -EINVAL);
}

Test(codec, writer_errors_are_sticky)
{
	hb_cbuf_t b;
	uint8_t small[4];
	hb_cbuf_init(&b, small, sizeof small);
	hb_codec_begin(&b);
	cr_assert_eq(hb_codec_put_str(&b, "hello world", 11), 0); /* grows onto the heap */
	cr_assert_eq(hb_codec_validate(b.data, b.len, 0), 0);
	cr_assert(b.owned);
	b.err = -ENOMEM;
	cr_assert_eq(hb_codec_put_none(&b), -ENOMEM);
	cr_assert_eq(hb_codec_begin(&b), 0);
	cr_assert_eq(b.len, 1);
	hb_cbuf_free(&b);
}

Test(codec, golden_bytes_match_the_doc)
{
	/* {"a": [1, None]} as docs/codec.md spells it. */
	static const uint8_t want[] = {0x01, 0x0a, 1, 0,    0, 0, 0x06, 1, 0, 0, 0, 'a', 0x08, 2,
				       0,    0,	   0, 0x03, 1, 0, 0,	0, 0, 0, 0, 0,	 0x00};
	hb_cbuf_t b;
	hb_cbuf_init(&b, NULL, 0);
	hb_codec_begin(&b);
	hb_codec_put_dict_begin(&b, 1);
	hb_codec_put_str(&b, "a", 1);
	hb_codec_put_list_begin(&b, 2);
	hb_codec_put_int64(&b, 1);
	hb_codec_put_none(&b);
	cr_assert_eq(b.len, sizeof want);
	cr_assert(memcmp(b.data, want, sizeof want) == 0);
	hb_cbuf_free(&b);
}
