/* codec.h: the one binary format for values that cross interpreters, processes and nodes.
 *
 * A value is a format byte (HB_CODEC_VERSION) followed by exactly one tagged item: None, bool,
 * int (int64 fast form or sign + magnitude big form), float, str (UTF-8), bytes, list, tuple,
 * dict, nested. Little-endian throughout; docs/codec.md is the normative description.
 *
 * Writer: an hb_cbuf_t growable buffer owned by the caller; hb_codec_put_* append one item each.
 * Errors are sticky (b->err), so a recursive encoder may check once at the end. The writer does
 * not check structure (a list_begin(n) must be followed by n items): the reader does.
 * Reader: hb_codec_reader_t walks a buffer it does not own, one token at a time, with bounds,
 * depth, count and UTF-8 checks, so hostile bytes yield -EBADMSG, never an overrun.
 * Both are plain data with no shared state: any thread may use its own instances.
 */
#ifndef HB_CORE_CODEC_H
#define HB_CORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define HB_CODEC_VERSION 0x01
#define HB_CODEC_MAX_DEPTH 64  /* hard nesting ceiling of the reader */
#define HB_CODEC_INT64_SIZE 10 /* encoded size of a top-level int64: version, tag, 8 bytes */

/* Wire tags (one byte before each item). */
enum {
	HB_CODEC_TAG_NONE = 0x00,
	HB_CODEC_TAG_FALSE = 0x01,
	HB_CODEC_TAG_TRUE = 0x02,
	HB_CODEC_TAG_INT64 = 0x03,
	HB_CODEC_TAG_BIGINT = 0x04,
	HB_CODEC_TAG_FLOAT = 0x05,
	HB_CODEC_TAG_STR = 0x06,
	HB_CODEC_TAG_BYTES = 0x07,
	HB_CODEC_TAG_LIST = 0x08,
	HB_CODEC_TAG_TUPLE = 0x09,
	HB_CODEC_TAG_DICT = 0x0a,
};

/* Token types the reader yields. */
typedef enum hb_codec_type {
	HB_CODEC_NONE,
	HB_CODEC_BOOL,
	HB_CODEC_INT,	 /* v.i */
	HB_CODEC_BIGINT, /* neg, data/len: magnitude, little-endian, top byte non-zero */
	HB_CODEC_FLOAT,	 /* v.f */
	HB_CODEC_STR,	 /* data/len: valid UTF-8, not NUL-terminated */
	HB_CODEC_BYTES,	 /* data/len */
	HB_CODEC_LIST,	 /* v.n items follow */
	HB_CODEC_TUPLE,	 /* v.n items follow */
	HB_CODEC_DICT,	 /* v.n pairs follow: key, value, key, value, ... */
} hb_codec_type_t;

typedef struct hb_codec_tok {
	hb_codec_type_t type;
	union {
		int b;
		int64_t i;
		double f;
		uint32_t n;
	} v;
	int neg;	     /* BIGINT: 1 when negative */
	const uint8_t *data; /* STR/BYTES/BIGINT: points into the reader's input */
	size_t len;
} hb_codec_tok_t;

/* Growable output buffer. `data` is heap memory once it outgrows the caller's initial buffer. */
typedef struct hb_cbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
	int err;   /* first error (-ENOMEM, -E2BIG); puts are no-ops once set */
	int owned; /* data was malloc'ed by us */
} hb_cbuf_t;

/* Starts an empty buffer writing into `initial` (may be NULL, cap 0); grows onto the heap. */
void hb_cbuf_init(hb_cbuf_t *b, void *initial, size_t cap);
/* Releases heap memory, if any. The caller's initial buffer is left alone. */
void hb_cbuf_free(hb_cbuf_t *b);
/* Makes room for n more bytes. Returns 0, -ENOMEM or the sticky error. */
int hb_cbuf_reserve(hb_cbuf_t *b, size_t n);
/* Empties the buffer, clears the error and appends the format byte: call before each value. */
int hb_codec_begin(hb_cbuf_t *b);

/* Each appends one item and returns 0 or the sticky error (-ENOMEM; -E2BIG past 4 GiB - 1). */
int hb_codec_put_none(hb_cbuf_t *b);
int hb_codec_put_bool(hb_cbuf_t *b, int v);
int hb_codec_put_int64(hb_cbuf_t *b, int64_t v);
/* Magnitude `mag` (len bytes, little-endian); high zero bytes are dropped and a value that fits
 * in int64 is written in the int64 form, so each int has one encoding. */
int hb_codec_put_bigint(hb_cbuf_t *b, int neg, const void *mag, size_t len);
int hb_codec_put_float(hb_cbuf_t *b, double v);
/* `s` must be UTF-8 (the reader rejects anything else). */
int hb_codec_put_str(hb_cbuf_t *b, const void *s, size_t len);
int hb_codec_put_bytes(hb_cbuf_t *b, const void *p, size_t len);
/* Container headers: the next n items (dict: n key/value pairs) are its contents. */
int hb_codec_put_list_begin(hb_cbuf_t *b, uint32_t n);
int hb_codec_put_tuple_begin(hb_cbuf_t *b, uint32_t n);
int hb_codec_put_dict_begin(hb_cbuf_t *b, uint32_t n);

typedef struct hb_codec_reader {
	const uint8_t *p;
	const uint8_t *end;
	uint32_t depth;
	uint32_t max_depth;
	int failed;			       /* sticky: every later next() is -EBADMSG */
	uint64_t left[HB_CODEC_MAX_DEPTH + 1]; /* items still to read at each open level */
} hb_codec_reader_t;

/* Checks the format byte and prepares to read one value from buf[0..len).
 * max_depth 0 means HB_CODEC_MAX_DEPTH. Returns 0, -EBADMSG, or -EINVAL (max_depth too big). */
int hb_codec_reader_init(hb_codec_reader_t *r, const void *buf, size_t len, uint32_t max_depth);
/* Reads the next token in pre-order. Returns 1 with *t filled, 0 once the whole value has been
 * read and no bytes remain, -EBADMSG on malformed, truncated or too-deep input (and stays so). */
int hb_codec_next(hb_codec_reader_t *r, hb_codec_tok_t *t);
/* Walks a whole encoding. Returns 0 or -EBADMSG. */
int hb_codec_validate(const void *buf, size_t len, uint32_t max_depth);

/* Writes the HB_CODEC_INT64_SIZE-byte encoding of a top-level int64 (what shmap counters hold). */
void hb_codec_int64_encode(uint8_t out[HB_CODEC_INT64_SIZE], int64_t v);
/* Reads a top-level int64-form int. Returns 0, or -EINVAL if buf is anything else. */
int hb_codec_int64_decode(const void *buf, size_t len, int64_t *v);
/* 1 if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF), else 0. */
int hb_codec_utf8_valid(const void *s, size_t len);

#endif
