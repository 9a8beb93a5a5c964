/* libFuzzer target for src/proto/h1.c.
 *
 * Beyond "no crash, no sanitizer report", it checks that the parser's events do not depend on
 * how the bytes were split: the input is fed whole, byte by byte, and in two pieces, and the
 * three event digests must match. Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -I/usr/share/include/llhttp \
 *     tests/fuzz/fuzz_h1.c src/proto/h1.c /usr/share/llhttp/{llhttp,api,http}.c -o fuzz_h1
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct digest {
	uint64_t h;
	bool in_body;
};

static void mix(struct digest *d, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		d->h = (d->h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
}

static void mark(struct digest *d, char c)
{
	mix(d, &c, 1);
}

static void end_body(struct digest *d)
{
	if (d->in_body)
		mark(d, ']');
	d->in_body = false;
}

static void check_inside(const hb_request_t *r, size_t size, const char *s, uint32_t n)
{
	if (s < (const char *)r || s + n > (const char *)r + size)
		abort();
}

static int on_request(void *ud, hb_request_t *r)
{
	struct digest *d = ud;
	end_body(d);
	mark(d, 'R');
	/* One block: every string must lie inside it. */
	size_t size = malloc_usable_size(r);
	check_inside(r, size, r->method, r->method_len);
	check_inside(r, size, r->target, r->target_len);
	check_inside(r, size, r->query, r->query_len);
	check_inside(r, size, (const char *)r->headers,
		     r->nheaders * (uint32_t)sizeof(hb_header_t));
	mix(d, r->method, r->method_len);
	mix(d, r->target, r->target_len);
	mix(d, r->query, r->query_len);
	mix(d, &r->flags, sizeof(r->flags));
	mix(d, &r->content_length, sizeof(r->content_length));
	for (uint32_t i = 0; i < r->nheaders; i++) {
		check_inside(r, size, r->headers[i].name, r->headers[i].name_len);
		check_inside(r, size, r->headers[i].value, r->headers[i].value_len);
		mix(d, r->headers[i].name, r->headers[i].name_len);
		mark(d, ':');
		mix(d, r->headers[i].value, r->headers[i].value_len);
	}
	free(r);
	return 0;
}

static int on_body(void *ud, const char *at, size_t n)
{
	struct digest *d = ud;
	if (!d->in_body)
		mark(d, '[');
	d->in_body = true;
	mix(d, at, n);
	return 0;
}

static int on_complete(void *ud)
{
	struct digest *d = ud;
	end_body(d);
	mark(d, 'D');
	return 0;
}

static const hb_h1_callbacks_t cbs = {on_request, on_body, on_complete};

static bool feed(hb_h1_parser_t *p, struct digest *d, const uint8_t *b, size_t n)
{
	while (n > 0) {
		size_t used = 0;
		const char *why = NULL;
		int rc = hb_h1_feed(p, (const char *)b, n, &used, &why);
		if (used > n)
			abort();
		if (rc < 0) {
			if (!why)
				abort();
			end_body(d);
			mark(d, 'E');
			mix(d, &rc, sizeof(rc));
			return false;
		}
		if (rc == HB_H1_PAUSED)
			hb_h1_resume(p);
		else if (used != n)
			abort();
		b += used;
		n -= used;
	}
	return true;
}

/* mode 0: whole; 1: byte by byte; 2: cut once at `cut`. */
static uint64_t run(const hb_h1_limits_t *lim, const uint8_t *b, size_t n, int mode, size_t cut)
{
	struct digest d = {0xcbf29ce484222325ull, false};
	hb_h1_parser_t *p = hb_h1_new(lim, &cbs, &d);
	if (!p)
		abort();
	bool alive = true;
	if (mode == 0) {
		alive = feed(p, &d, b, n);
	} else if (mode == 1) {
		for (size_t i = 0; i < n && alive; i++)
			alive = feed(p, &d, b + i, 1);
	} else {
		alive = feed(p, &d, b, cut) && feed(p, &d, b + cut, n - cut);
	}
	if (alive) {
		end_body(&d);
		mark(&d, hb_h1_finish(p) == HB_H1_OK ? 'I' : 'P');
	}
	hb_h1_free(p);
	return d.h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	/* The first byte picks small or default limits, the second the cut. */
	static const hb_h1_limits_t small = {64, 8, 64, 256, 100};
	const hb_h1_limits_t *lim = (data[0] & 1) ? &small : NULL;
	size_t n = size - 2;
	size_t cut = n ? data[1] % (n + 1) : 0;
	const uint8_t *b = data + 2;
	uint64_t whole = run(lim, b, n, 0, 0);
	if (run(lim, b, n, 1, 0) != whole || run(lim, b, n, 2, cut) != whole)
		abort();
	return 0;
}
