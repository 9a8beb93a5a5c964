/* test_base64.c: hb_base64_decode (src/core/base64.c): RFC 4648 test vectors in both alphabets,
 * stopping at the first byte outside the alphabet, at '=' and at the output's capacity. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/base64.h"

static size_t dec(const char *in, int alphabet, uint8_t *out, size_t cap, size_t *used)
{
	return hb_base64_decode(in, strlen(in), alphabet, out, cap, used);
}

Test(base64, rfc4648_vectors)
{
	static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	uint8_t out[16];
	size_t used;

	for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++) {
		size_t n = dec(enc[i], HB_BASE64_STD, out, sizeof(out), &used);
		cr_assert_eq(n, i, "%s", enc[i]);
		cr_assert_eq(memcmp(out, "foobar", n), 0, "%s", enc[i]);
		cr_assert_eq(used, strlen(enc[i]));
	}
}

Test(base64, alphabets_differ_in_62_and_63)
{
	uint8_t out[8];
	size_t used;

	cr_assert_eq(dec("+/+/", HB_BASE64_STD, out, sizeof(out), &used), 3);
	cr_assert_eq(memcmp(out, "\xfb\xff\xbf", 3), 0);
	cr_assert_eq(dec("-_-_", HB_BASE64_URL, out, sizeof(out), &used), 3);
	cr_assert_eq(memcmp(out, "\xfb\xff\xbf", 3), 0);
	cr_assert_eq(dec("-_-_", HB_BASE64_STD, out, sizeof(out), &used), 0);
	cr_assert_eq(used, 0, "'-' is not standard base64");
	cr_assert_eq(dec("ab+/", HB_BASE64_URL, out, sizeof(out), &used), 1);
	cr_assert_eq(used, 2, "'+' is not base64url");
}

Test(base64, stops_at_padding_and_capacity)
{
	uint8_t out[8];
	size_t used;

	cr_assert_eq(dec("Zm8=", HB_BASE64_STD, out, sizeof(out), &used), 2);
	cr_assert_eq(used, 3, "stops at '='");
	cr_assert_eq(dec("dXNlcjpwdw", HB_BASE64_STD, out, 4, &used), 4, "user:pw, cap 4");
	cr_assert_eq(memcmp(out, "user", 4), 0);
	cr_assert_lt(used, strlen("dXNlcjpwdw"));
	cr_assert_eq(dec("Zm9v", HB_BASE64_STD, out, 0, &used), 0);
	cr_assert_eq(used, 0);
}
