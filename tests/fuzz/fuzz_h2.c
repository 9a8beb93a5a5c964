/* libFuzzer target for the HTTP/2 engine (src/proto/h2*.c).
 *
 * The input is what a client sends after the connection preface (the first byte, when odd,
 * also drops the preface so bad prefaces are reached). A small app answers each request,
 * reads bodies, defers and resumes some responses and resets others, so the send side runs
 * too. Beyond "no crash, no sanitizer report, no leak", it checks that the engine's memory
 * stays bounded and that it holds no stream state once it is freed.
 * Run: scripts/fuzz.sh fuzz_h2 (seeds in tests/fuzz/corpus/fuzz_h2/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fstream {
	int32_t sid;
	int served;
	size_t left;
};

struct fapp {
	hb_h2_t *e;
	int nopen;
	unsigned seed;
};

static int on_request(void *ud, int32_t sid, hb_request_t *req)
{
	struct fapp *a = ud;
	struct fstream *s = calloc(1, sizeof *s);
	int head = (req->flags & HB_REQ_HEAD) != 0;
	free(req);
	if (!s)
		return -1;
	s->sid = sid;
	s->left = (a->seed++ % 3) * 7000;
	a->nopen++;
	hb_h2_set_stream_data(a->e, sid, s);
	hb_header_t h = {"content-type", "text/plain", 12, 10};
	hb_response_t r = {.status = 200, .headers = &h, .nheaders = 1, .content_length = -1};
	if (a->seed % 5 == 0)
		hb_h2_reset(a->e, sid, 2);
	else
		hb_h2_submit_response(a->e, sid, &r, NULL, !head);
	return 0;
}

static int on_data(void *ud, int32_t sid, void *sud, const uint8_t *d, size_t len)
{
	struct fapp *a = ud;
	if (a->seed++ % 4)
		hb_h2_consume(a->e, sid, len);
	return 0;
}

static void on_end_stream(void *ud, int32_t sid, void *sud)
{
	struct fapp *a = ud;
	hb_h2_resume(a->e, sid);
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code, int by_peer)
{
	struct fapp *a = ud;
	a->nopen--;
	free(sud);
}

static ssize_t on_read_body(void *ud, int32_t sid, void *sud, uint8_t *buf, size_t len, int *eof)
{
	struct fapp *a = ud;
	struct fstream *s = sud;
	if (a->seed++ % 7 == 0)
		return 0; /* deferred until the end of the request resumes it */
	size_t n = s->left < len ? s->left : len;
	memset(buf, 'x', n);
	s->left -= n;
	*eof = s->left == 0;
	return (ssize_t)n;
}

static const hb_h2_callbacks_t cb = {on_request, on_data,      on_end_stream,
				     on_close,	 on_read_body, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fapp a = {0};
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	lim.push = 1;
	a.e = hb_h2_new(&lim, &cb, &a);
	if (!a.e)
		return 0;
	int raw = size && (data[0] & 1);
	if (!raw)
		hb_h2_recv(a.e, (const uint8_t *)HB_H2_PREFACE, HB_H2_PREFACE_LEN, 0, NULL);
	if (size) {
		data++;
		size--;
	}
	uint64_t now = 0;
	for (size_t off = 0; off < size;) {
		size_t n = size - off < 1000 ? size - off : 1000; /* a few reads */
		if (hb_h2_recv(a.e, data + off, n, now, NULL) < 0)
			break;
		off += n;
		now += 10;
		const uint8_t *out;
		while (hb_h2_send(a.e, &out) > 0)
			;
		if (hb_h2_mem(a.e) > 64u << 20)
			abort(); /* memory must stay bounded */
	}
	const uint8_t *out;
	while (hb_h2_send(a.e, &out) > 0)
		;
	hb_h2_free(a.e);
	if (a.nopen != 0)
		abort(); /* every stream the app held was closed for it */
	return 0;
}
