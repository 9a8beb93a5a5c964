/* test_utf8.c: the incremental UTF-8 validator (src/proto/utf8.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/utf8.h"

#define CHECK(lit) hb_utf8_check(lit, sizeof(lit) - 1)

Test(utf8, valid_boundaries)
{
	cr_assert_eq(CHECK(""), HB_UTF8_OK);
	cr_assert_eq(CHECK("hello, world"), HB_UTF8_OK);
	cr_assert_eq(CHECK("\x7f"), HB_UTF8_OK);	     /* U+007F */
	cr_assert_eq(CHECK("\xc2\x80"), HB_UTF8_OK);	     /* U+0080 */
	cr_assert_eq(CHECK("\xdf\xbf"), HB_UTF8_OK);	     /* U+07FF */
	cr_assert_eq(CHECK("\xe0\xa0\x80"), HB_UTF8_OK);     /* U+0800 */
	cr_assert_eq(CHECK("\xed\x9f\xbf"), HB_UTF8_OK);     /* U+D7FF */
	cr_assert_eq(CHECK("\xee\x80\x80"), HB_UTF8_OK);     /* U+E000 */
	cr_assert_eq(CHECK("\xef\xbf\xbf"), HB_UTF8_OK);     /* U+FFFF */
	cr_assert_eq(CHECK("\xf0\x90\x80\x80"), HB_UTF8_OK); /* U+10000 */
	cr_assert_eq(CHECK("\xf4\x8f\xbf\xbf"), HB_UTF8_OK); /* U+10FFFF */
	cr_assert_eq(CHECK("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), HB_UTF8_OK);
}

Test(utf8, invalid)
{
	static const char *bad[] = {
		"\x80",
		"\xbf",
		"\xc0\x80",
		"\xc1\xbf",
		"\xe0\x80\x80",
		"\xe0\x9f\xbf",
		"\xed\xa0\x80",
		"\xed\xbf\xbf",
		"\xf0\x80\x80\x80",
		"\xf0\x8f\xbf\xbf",
		"\xf4\x90\x80\x80",
		"\xf5\x80\x80\x80",
		"\xf8\x88\x80\x80\x80",
		"\xfe",
		"\xff",
		"a\xe2\x28\xa1",
		"\xc2\x41",
		"\xe2\x82\x41",
		"\xf0\x90\x80\x41",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(hb_utf8_check(bad[i], strlen(bad[i])), HB_UTF8_INVALID, "case %zu", i);
}

Test(utf8, incomplete_is_not_invalid)
{
	hb_utf8_t u;

	cr_assert_eq(CHECK("\xe2\x82"), HB_UTF8_INCOMPLETE);
	cr_assert_eq(CHECK("\xf0\x90\x80"), HB_UTF8_INCOMPLETE);
	cr_assert_eq(CHECK("\xc2"), HB_UTF8_INCOMPLETE);
	/* Fail fast: a prefix that no continuation can fix is invalid at once. */
	cr_assert_eq(CHECK("\xe0\x80"), HB_UTF8_INVALID);
	cr_assert_eq(CHECK("\xed\xa0"), HB_UTF8_INVALID);
	cr_assert_eq(CHECK("\xf4\x90"), HB_UTF8_INVALID);
	hb_utf8_init(&u);
	cr_assert_eq(hb_utf8_feed(&u, "\xe2", 1), HB_UTF8_INCOMPLETE);
	cr_assert_eq(hb_utf8_feed(&u, "\x82", 1), HB_UTF8_INCOMPLETE);
	cr_assert_eq(hb_utf8_feed(&u, "\xac", 1), HB_UTF8_OK);
	cr_assert_eq(hb_utf8_feed(&u, "\xff", 1), HB_UTF8_INVALID);
	cr_assert_eq(hb_utf8_feed(&u, "a", 1), HB_UTF8_INVALID, "sticky");
	hb_utf8_init(&u);
	cr_assert_eq(hb_utf8_feed(&u, "a", 1), HB_UTF8_OK);
}

Test(utf8, every_split_of_a_mixed_text)
{
	static const char s[] = "ascii \xc2\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 more ascii text "
				"\xf4\x8f\xbf\xbf\xed\x9f\xbf end";
	size_t n = sizeof(s) - 1;
	hb_utf8_t u;
	int rc;

	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			hb_utf8_init(&u);
			cr_assert_neq(hb_utf8_feed(&u, s, a), HB_UTF8_INVALID);
			cr_assert_neq(hb_utf8_feed(&u, s + a, b - a), HB_UTF8_INVALID);
			rc = hb_utf8_feed(&u, s + b, n - b);
			cr_assert_eq(rc, HB_UTF8_OK, "split %zu/%zu", a, b);
		}
	}
}

/* Reference: decodes code points by the definition and range-checks each one. */
static int ref_valid(const uint8_t *s, size_t n)
{
	uint32_t cp;
	size_t need;

	for (size_t i = 0; i < n; i += need) {
		if (s[i] < 0x80) {
			need = 1;
			continue;
		}
		if (s[i] >= 0xc0 && s[i] < 0xe0) {
			need = 2;
			cp = s[i] & 0x1f;
		} else if (s[i] >= 0xe0 && s[i] < 0xf0) {
			need = 3;
			cp = s[i] & 0x0f;
		} else if (s[i] >= 0xf0 && s[i] < 0xf8) {
			need = 4;
			cp = s[i] & 0x07;
		} else {
			return 0;
		}
		if (n - i < need)
			return 0;
		for (size_t k = 1; k < need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) ||
		    (need == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	return 1;
}

Test(utf8, exhaustive_up_to_three_bytes)
{
	uint8_t s[3];

	for (unsigned a = 0; a < 256; a++) {
		s[0] = (uint8_t)a;
		cr_assert_eq(hb_utf8_check(s, 1) == HB_UTF8_OK, ref_valid(s, 1), "%02x", a);
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (uint8_t)b;
			if ((hb_utf8_check(s, 2) == HB_UTF8_OK) != ref_valid(s, 2))
				cr_assert_fail("%02x %02x", a, b);

			for (unsigned c = 0; c < 256; c++) {
				s[2] = (uint8_t)c;
				if ((hb_utf8_check(s, 3) == HB_UTF8_OK) != ref_valid(s, 3))
					cr_assert_fail("%02x %02x %02x", a, b, c);
			}
		}
	}
}

Test(utf8, four_byte_leads)
{
	uint8_t s[4] = {0, 0, 0x80, 0x80};

	for (unsigned a = 0xf0; a < 0x100; a++) {
		for (unsigned b = 0; b < 256; b++) {
			s[0] = (uint8_t)a;
			s[1] = (uint8_t)b;
			if ((hb_utf8_check(s, 4) == HB_UTF8_OK) != ref_valid(s, 4))
				cr_assert_fail("%02x %02x 80 80", a, b);
		}
	}
}
