/* base64.c: see base64.h. */
#include "core/base64.h"

/* The 6-bit value of c, or -1 when it is not in the alphabet. */
static int value(unsigned char c, int alphabet)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (alphabet == HB_BASE64_URL)
		return c == '-' ? 62 : c == '_' ? 63 : -1;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

size_t hb_base64_decode(const char *in, size_t len, int alphabet, uint8_t *out, size_t cap,
			size_t *used)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t i = 0, o = 0;

	for (; i < len && o < cap; i++) {
		int v = value((unsigned char)in[i], alphabet);
		if (v < 0)
			break;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	*used = i;
	return o;
}
