/* fuzz_proxyproto.c: libFuzzer target for the PROXY protocol header parser
 * (src/proto/proxyproto.c).
 *
 * Input: the first bytes of a connection. Fed whole and then in every prefix length up to 128
 * (and every 97th beyond): a prefix of a header that parsed may only need more bytes, never be
 * refused, and the whole must give the same length. Invariants: a length within the input and
 * the protocol's bounds, errors carry a reason, addresses are NUL-terminated numeric text.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const hb_pp_t *r)
{
	unsigned char bin[16];

	if (r->local)
		return;
	if (r->family != AF_INET && r->family != AF_INET6)
		abort();
	if (inet_pton(r->family, r->src, bin) != 1 || inet_pton(r->family, r->dst, bin) != 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hb_pp_t r;
	const char *why = NULL;
	int whole = hb_pp_parse(data, size, &r, &why);

	if (whole < 0 && !why)
		abort();
	if (whole > 0) {
		if ((size_t)whole > size || (size_t)whole > HB_PP_V2_MAX)
			abort();
		if (r.version == 1 && (size_t)whole > HB_PP_V1_MAX)
			abort();
		check(&r);
	}
	for (size_t k = 0; k < size; k = k < 128 ? k + 1 : k + 97) {
		why = NULL;
		int rc = hb_pp_parse(data, k, &r, &why);
		if (whole > 0 && (size_t)whole > k && rc != 0)
			abort(); /* a prefix of a good header only waits */
		if (whole > 0 && (size_t)whole <= k && rc != whole)
			abort();
		if (rc < 0 && !why)
			abort();
	}
	return 0;
}
