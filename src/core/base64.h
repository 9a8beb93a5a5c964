/* base64.h: decoding base64 (RFC 4648 4, as in "Authorization: Basic") and base64url (RFC 4648
 * 5, as in HTTP2-Settings). Pure and stateless: any thread. The caller owns both buffers. */
#ifndef HB_CORE_BASE64_H
#define HB_CORE_BASE64_H

#include <stddef.h>
#include <stdint.h>

enum { HB_BASE64_STD = 0, HB_BASE64_URL = 1 };

/* Decodes in[0..len) into out, at most cap bytes, stopping at the first byte that is not in
 * the alphabet (HB_BASE64_STD: A-Z a-z 0-9 + /; HB_BASE64_URL: - _ for + /), padding '='
 * included, or once out is full. Returns the bytes written; *used gets how many input bytes
 * were read (len when all of in was alphabet and out had room). Trailing partial bits are
 * dropped, as padding-free base64 needs. */
size_t hb_base64_decode(const char *in, size_t len, int alphabet, uint8_t *out, size_t cap,
			size_t *used);

#endif
