/* utf8.h: an incremental UTF-8 validator (RFC 3629, Unicode table 3-7). No I/O, no allocation.
 *
 * Carries its state across calls so a text message can be checked while its bytes arrive, split
 * anywhere (inside a code point, across WebSocket fragments), and rejected at the first bad byte.
 * Rejects overlong forms, surrogates (U+D800-U+DFFF) and code points above U+10FFFF.
 * An hb_utf8_t is a small value owned by its user (embed it); any thread may use its own one.
 */
#ifndef HB_PROTO_UTF8_H
#define HB_PROTO_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef struct hb_utf8 {
	uint8_t need; /* continuation bytes still expected for the current code point */
	uint8_t lo;   /* allowed range of the next continuation byte */
	uint8_t hi;
	uint8_t bad; /* sticky: an invalid byte was seen */
} hb_utf8_t;

enum {
	HB_UTF8_INVALID = -1,	/* a byte that no continuation could make valid: fail now */
	HB_UTF8_OK = 0,		/* everything fed so far is complete, valid UTF-8 */
	HB_UTF8_INCOMPLETE = 1, /* valid so far, but stops inside a code point */
};

/* Resets a validator to the start of a new text. */
void hb_utf8_init(hb_utf8_t *u);
/* Feeds more bytes. Returns HB_UTF8_OK, HB_UTF8_INCOMPLETE or HB_UTF8_INVALID (sticky: every
 * later call returns it too, until hb_utf8_init). */
int hb_utf8_feed(hb_utf8_t *u, const void *data, size_t len);
/* One-shot check of a whole text: HB_UTF8_OK, HB_UTF8_INCOMPLETE (truncated) or HB_UTF8_INVALID. */
int hb_utf8_check(const void *data, size_t len);

#endif
