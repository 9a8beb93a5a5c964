/* utf8.c: incremental UTF-8 validation, driven by a table of lead-byte ranges. */
#include "proto/utf8.h"

#include <string.h>

/* Well-formed byte sequences (Unicode 15, table 3-7): for each lead byte range, how many
 * continuation bytes follow and the allowed range of the first one (the others are 80..BF).
 * The narrowed first ranges are what exclude overlongs (E0, F0), surrogates (ED) and
 * code points past U+10FFFF (F4). C0, C1 and F5..FF appear in no row: always invalid. */
static const struct lead {
	uint8_t first, last, need, lo, hi;
} leads[] = {
	{0xC2, 0xDF, 1, 0x80, 0xBF}, {0xE0, 0xE0, 2, 0xA0, 0xBF}, {0xE1, 0xEC, 2, 0x80, 0xBF},
	{0xED, 0xED, 2, 0x80, 0x9F}, {0xEE, 0xEF, 2, 0x80, 0xBF}, {0xF0, 0xF0, 3, 0x90, 0xBF},
	{0xF1, 0xF3, 3, 0x80, 0xBF}, {0xF4, 0xF4, 3, 0x80, 0x8F},
};

void hb_utf8_init(hb_utf8_t *u)
{
	memset(u, 0, sizeof(*u));
}

/* Skips ASCII eight bytes at a time: most text is ASCII, and this is the hot loop. */
static const uint8_t *skip_ascii(const uint8_t *s, const uint8_t *end)
{
	uint64_t w;

	while (end - s >= 8) {
		memcpy(&w, s, 8);
		if (w & 0x8080808080808080ull)
			break;
		s += 8;
	}
	while (s < end && *s < 0x80)
		s++;
	return s;
}

/* Starts a multi-byte code point at lead byte c. Returns 0 when c can start none. */
static int start(hb_utf8_t *u, uint8_t c)
{
	for (size_t i = 0; i < sizeof(leads) / sizeof(leads[0]); i++) {
		if (c >= leads[i].first && c <= leads[i].last) {
			u->need = leads[i].need;
			u->lo = leads[i].lo;
			u->hi = leads[i].hi;
			return 1;
		}
	}
	return 0;
}

static int fail(hb_utf8_t *u)
{
	u->bad = 1;
	return HB_UTF8_INVALID;
}

int hb_utf8_feed(hb_utf8_t *u, const void *data, size_t len)
{
	const uint8_t *s = data, *end = len ? s + len : s; /* (NULL, 0) is valid */

	if (u->bad)
		return HB_UTF8_INVALID;
	while (s < end) {
		if (u->need == 0) {
			s = skip_ascii(s, end);
			if (s == end)
				break;
			if (!start(u, *s++))
				return fail(u);
			continue;
		}
		if (*s < u->lo || *s > u->hi)
			return fail(u);
		s++;
		u->need--;
		u->lo = 0x80;
		u->hi = 0xBF;
	}
	return u->need ? HB_UTF8_INCOMPLETE : HB_UTF8_OK;
}

int hb_utf8_check(const void *data, size_t len)
{
	hb_utf8_t u;

	hb_utf8_init(&u);
	return hb_utf8_feed(&u, data, len);
}
