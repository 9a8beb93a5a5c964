/* Tests for src/proto/h1.c: CONFORMANCE.md's HTTP/1.1 rows that the parser decides, each run
 * whole, byte by byte, and split in two at every boundary (the outcome must not change). */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h1.h"

static const hb_h1_limits_t small = {
	.max_request_line = 64,
	.max_fields = 8,
	.max_field_size = 64,
	.max_header_bytes = 256,
	.max_body = 100,
};

/* ---- recording callbacks: everything the parser reports, as one string ---- */

struct rec {
	char log[16384];
	size_t len;
	bool in_body;
	int fail_on; /* 1: on_request, 2: on_body, 3: on_complete */
};

static void logf_(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->log + r->len, sizeof(r->log) - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len += (size_t)n < sizeof(r->log) - r->len ? (size_t)n
							      : sizeof(r->log) - r->len - 1;
}

static void end_body(struct rec *r)
{
	if (r->in_body)
		logf_(r, "]\n");
	r->in_body = false;
}

static bool inside(const hb_request_t *req, const char *s, uint32_t n)
{
	const char *base = (const char *)req;
	return s >= base && s + n <= base + malloc_usable_size((void *)req);
}

static const char *flag_letters(uint32_t f, char *buf)
{
	char *o = buf;
	if (f & HB_REQ_KEEP_ALIVE)
		*o++ = 'K';
	if (f & HB_REQ_CHUNKED)
		*o++ = 'C';
	if (f & HB_REQ_EXPECT_CONTINUE)
		*o++ = 'E';
	if (f & HB_REQ_UPGRADE)
		*o++ = 'U';
	if (f & HB_REQ_HAS_BODY)
		*o++ = 'B';
	if (f & HB_REQ_HEAD)
		*o++ = 'H';
	*o = 0;
	return buf;
}

static int on_request(void *ud, hb_request_t *req)
{
	struct rec *r = ud;
	char fl[8];
	end_body(r);
	cr_assert(inside(req, req->method, req->method_len) &&
		  inside(req, req->target, req->target_len) &&
		  inside(req, req->query, req->query_len));
	cr_assert(req->scheme == NULL && req->remote_addr[0] == 0 && req->server_port == 0);
	logf_(r, "REQ %.*s %.*s path=%.*s q=%.*s v=%d.%d cl=%lld fl=%s\n", (int)req->method_len,
	      req->method, (int)req->target_len, req->target, (int)req->path_len, req->path,
	      (int)req->query_len, req->query, req->http_major, req->http_minor,
	      (long long)req->content_length, flag_letters(req->flags, fl));
	for (uint32_t i = 0; i < req->nheaders; i++) {
		const hb_header_t *h = &req->headers[i];
		cr_assert(inside(req, h->name, h->name_len) && inside(req, h->value, h->value_len));
		logf_(r, "  %.*s=[%.*s]\n", (int)h->name_len, h->name, (int)h->value_len, h->value);
	}
	free(req);
	return r->fail_on == 1;
}

static int on_body(void *ud, const char *at, size_t n)
{
	struct rec *r = ud;
	cr_assert(n > 0);
	if (!r->in_body)
		logf_(r, "BODY [");
	r->in_body = true;
	logf_(r, "%.*s", (int)n, at);
	return r->fail_on == 2;
}

static int on_complete(void *ud)
{
	struct rec *r = ud;
	end_body(r);
	logf_(r, "DONE\n");
	return r->fail_on == 3;
}

static const hb_h1_callbacks_t cbs = {on_request, on_body, on_complete};

/* Feeds one piece; resumes after each message. Returns false once the parser failed. */
static bool feed_piece(hb_h1_parser_t *p, struct rec *r, const char *d, size_t n)
{
	while (n > 0) {
		size_t used = 0;
		const char *why = NULL;
		int rc = hb_h1_feed(p, d, n, &used, &why);
		cr_assert(used <= n);
		if (rc < 0) {
			end_body(r);
			cr_assert(why != NULL);
			logf_(r, "ERR %d\n", hb_h1_error_status(rc));
			return false;
		}
		if (rc == HB_H1_PAUSED) {
			cr_assert(hb_h1_idle(p));
			hb_h1_resume(p);
		} else {
			cr_assert(used == n);
		}
		d += used;
		n -= used;
	}
	return true;
}

/* Runs `in` cut at the given offsets (ascending, within len) and returns the log. */
static void run_split(const char *in, size_t len, const hb_h1_limits_t *lim, const size_t *cuts,
		      size_t ncuts, struct rec *r, int fail_on)
{
	memset(r, 0, sizeof(*r));
	r->fail_on = fail_on;
	hb_h1_parser_t *p = hb_h1_new(lim, &cbs, r);
	cr_assert(p);
	size_t prev = 0;
	bool alive = true;
	for (size_t i = 0; i <= ncuts && alive; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		alive = feed_piece(p, r, in + prev, end - prev);
		prev = end;
	}
	if (alive) {
		end_body(r);
		logf_(r, "%s\n", hb_h1_finish(p) == HB_H1_OK ? "IDLE" : "PARTIAL");
	}
	hb_h1_free(p);
}

/* The same input whole, in 1-byte pieces, and in every two-piece split must give `want`. */
static void expect_lim(const char *in, size_t len, const hb_h1_limits_t *lim, const char *want)
{
	struct rec *r = malloc(sizeof(*r));
	size_t *cuts = malloc((len + 1) * sizeof(*cuts));
	run_split(in, len, lim, NULL, 0, r, 0);
	cr_assert_str_eq(r->log, want, "whole input:\n%s\ngot:\n%s", in, r->log);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	run_split(in, len, lim, cuts, len ? len - 1 : 0, r, 0);
	cr_assert_str_eq(r->log, want, "1-byte pieces:\n%s", in);
	for (size_t c = 1; c < len; c++) {
		run_split(in, len, lim, &c, 1, r, 0);
		cr_assert_str_eq(r->log, want, "split at %zu:\n%s", c, in);
	}
	free(cuts);
	free(r);
}

#define EXPECT(in, want) expect_lim(in, sizeof(in) - 1, &small, want)
/* Only the first line of the log (the request, or the error) matters. */
#define EXPECT_ERR(in, status) EXPECT(in, "ERR " #status "\n")

#define GET_OK(target, hdrs)                                                                       \
	"REQ GET " target " path=" target " q= v=1.1 cl=-1 fl=K\n" hdrs "DONE\nIDLE\n"

/* ---- valid requests ---- */

Test(h1, simple_get)
{
	EXPECT("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", GET_OK("/a", "  Host=[x]\n"));
}

Test(h1, path_and_query)
{
	EXPECT("GET /p/q?a=1?b HTTP/1.1\r\nHost: x\r\n\r\n",
	       "REQ GET /p/q?a=1?b path=/p/q q=a=1?b v=1.1 cl=-1 fl=K\n  Host=[x]\nDONE\nIDLE\n");
}

Test(h1, leading_empty_lines_ignored)
{
	EXPECT("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", GET_OK("/", "  Host=[x]\n"));
}

Test(h1, too_many_leading_empty_lines_is_400)
{
	EXPECT_ERR("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

Test(h1, values_trimmed_and_names_as_sent)
{
	EXPECT("GET / HTTP/1.1\r\nHost:x\r\nX-A: \t a b \t \r\nx-e:\r\n\r\n",
	       GET_OK("/", "  Host=[x]\n  X-A=[a b]\n  x-e=[]\n"));
}

Test(h1, underscore_names_kept_but_not_framing)
{
	/* Not a TE header: no chunked body, so "5\r\n..." is the next (bad) request. */
	EXPECT("POST / HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\n"
	       "Content_Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	       "REQ POST / path=/ q= v=1.1 cl=-1 fl=K\n  Host=[x]\n  Transfer_Encoding=[chunked]\n"
	       "  Content_Length=[5]\nDONE\nERR 400\n");
}

Test(h1, content_length_body)
{
	EXPECT("POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	       "REQ POST /u path=/u q= v=1.1 cl=5 fl=KB\n  Host=[x]\n  Content-Length=[5]\n"
	       "BODY [hello]\nDONE\nIDLE\n");
}

Test(h1, content_length_leading_zeros_is_decimal)
{
	EXPECT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 010\r\n\r\n0123456789",
	       "REQ POST / path=/ q= v=1.1 cl=10 fl=KB\n  Host=[x]\n  Content-Length=[010]\n"
	       "BODY [0123456789]\nDONE\nIDLE\n");
}

Test(h1, content_length_zero)
{
	EXPECT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
	       "REQ POST / path=/ q= v=1.1 cl=0 fl=K\n  Host=[x]\n  Content-Length=[0]\n"
	       "DONE\nIDLE\n");
}

Test(h1, truncated_body_is_partial)
{
	EXPECT("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel",
	       "REQ POST / path=/ q= v=1.1 cl=5 fl=KB\n  Host=[x]\n  Content-Length=[5]\n"
	       "BODY [hel]\nPARTIAL\n");
}

Test(h1, truncated_head_is_partial)
{
	EXPECT("GET / HTTP/1.1\r\nHost: x\r\n", "PARTIAL\n");
}

#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
#define CHUNKED_REQ                                                                                \
	"REQ POST / path=/ q= v=1.1 cl=-1 fl=KCB\n  Host=[x]\n  Transfer-Encoding=[chunked]\n"

Test(h1, chunked_body)
{
	EXPECT(CHUNKED_HEAD "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
	       CHUNKED_REQ "BODY [hello world]\nDONE\nIDLE\n");
}

Test(h1, chunked_case_insensitive_and_hex_sizes)
{
	EXPECT("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"
	       "a\r\n0123456789\r\n0A\r\nabcdefghij\r\n000\r\n\r\n",
	       "REQ POST / path=/ q= v=1.1 cl=-1 fl=KCB\n  Host=[x]\n"
	       "  Transfer-Encoding=[ChUnKeD]\nBODY [0123456789abcdefghij]\nDONE\nIDLE\n");
}

Test(h1, chunked_extensions)
{
	EXPECT(CHUNKED_HEAD "5;a=b;c=\"d e\"\r\nhello\r\n5 ; x\r\nworld\r\n0;last\r\n\r\n",
	       CHUNKED_REQ "BODY [helloworld]\nDONE\nIDLE\n");
}

Test(h1, trailers_dropped)
{
	EXPECT(CHUNKED_HEAD "5\r\nhello\r\n0\r\nContent-Length: 7\r\nTransfer-Encoding: gzip\r\n"
			    "Host: evil\r\n\r\n",
	       CHUNKED_REQ "BODY [hello]\nDONE\nIDLE\n");
}

Test(h1, head_flag)
{
	EXPECT("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
	       "REQ HEAD / path=/ q= v=1.1 cl=-1 fl=KH\n  Host=[x]\nDONE\nIDLE\n");
}

Test(h1, upgrade_flag)
{
	EXPECT("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
	       "Upgrade: websocket\r\n\r\n",
	       "REQ GET /ws path=/ws q= v=1.1 cl=-1 fl=KU\n  Host=[x]\n"
	       "  Connection=[keep-alive, Upgrade]\n  Upgrade=[websocket]\nDONE\nIDLE\n");
}

Test(h1, upgrade_needs_connection_token)
{
	EXPECT("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
	       GET_OK("/", "  Host=[x]\n  Upgrade=[websocket]\n"));
}

Test(h1, expect_continue)
{
	EXPECT("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi",
	       "REQ POST / path=/ q= v=1.1 cl=2 fl=KEB\n  Host=[x]\n  Expect=[100-Continue]\n"
	       "  Content-Length=[2]\nBODY [hi]\nDONE\nIDLE\n");
}

Test(h1, expect_continue_with_too_large_body_is_413)
{
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
		   "Content-Length: 101\r\n\r\n",
		   413);
}

/* ---- keep-alive ---- */

Test(h1, keep_alive_rules)
{
	EXPECT("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	       "REQ GET / path=/ q= v=1.1 cl=-1 fl=\n  Host=[x]\n  Connection=[close]\n"
	       "DONE\nIDLE\n");
	EXPECT("GET / HTTP/1.0\r\n\r\n", "REQ GET / path=/ q= v=1.0 cl=-1 fl=\nDONE\nIDLE\n");
	EXPECT("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
	       "REQ GET / path=/ q= v=1.0 cl=-1 fl=K\n  Connection=[Keep-Alive]\nDONE\nIDLE\n");
	EXPECT("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
	       "REQ GET / path=/ q= v=1.0 cl=-1 fl=\n  Connection=[keep-alive, close]\n"
	       "DONE\nIDLE\n");
}

/* ---- pipelining and pause/resume ---- */

#define PIPE_A "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
#define PIPE_B "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
#define PIPE_C CHUNKED_HEAD "3\r\nxyz\r\n0\r\n\r\n"

Test(h1, pipelined_requests)
{
	EXPECT(PIPE_A PIPE_B PIPE_C,
	       "REQ GET /a path=/a q= v=1.1 cl=-1 fl=K\n  Host=[x]\nDONE\n"
	       "REQ POST /b path=/b q= v=1.1 cl=3 fl=KB\n  Host=[x]\n"
	       "  Content-Length=[3]\nBODY [abc]\nDONE\n" CHUNKED_REQ "BODY [xyz]\nDONE\nIDLE\n");
}

Test(h1, pause_reports_consumed_bytes)
{
	static const char in[] = PIPE_A PIPE_B PIPE_C;
	struct rec r = {0};
	hb_h1_parser_t *p = hb_h1_new(&small, &cbs, &r);
	size_t used, off = 0;
	const char *why;
	const size_t ends[] = {sizeof(PIPE_A) - 1, sizeof(PIPE_A PIPE_B) - 1, sizeof(in) - 1};
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(hb_h1_feed(p, in + off, sizeof(in) - 1 - off, &used, &why),
			     HB_H1_PAUSED);
		off += used;
		cr_assert_eq(off, ends[i]);
		/* Paused: nothing more is taken until resume. */
		cr_assert_eq(hb_h1_feed(p, in + off, sizeof(in) - 1 - off, &used, &why),
			     HB_H1_PAUSED);
		cr_assert_eq(used, 0);
		hb_h1_resume(p);
	}
	cr_assert_eq(hb_h1_feed(p, "", 0, &used, &why), HB_H1_OK);
	cr_assert(hb_h1_idle(p));
	hb_h1_free(p);
}

/* A parser between messages can serve another owner (the io thread's cache of them): paused
 * after a message, or having seen only blank lines, it starts clean for the new ud; in the
 * middle of a head or dead it is refused. */
Test(h1, reuse_between_messages_only)
{
	struct rec a = {0}, b = {0};
	hb_h1_parser_t *p = hb_h1_new(&small, &cbs, &a);
	size_t used;
	const char *why;

	cr_assert_eq(hb_h1_reuse(p, &b), 0, "a new parser is between messages");
	cr_assert_eq(hb_h1_feed(p, PIPE_A, sizeof(PIPE_A) - 1, &used, &why), HB_H1_PAUSED);
	cr_assert(strstr(b.log, "REQ GET /a"), "%s", b.log);
	cr_assert_eq(hb_h1_reuse(p, &a), 0, "paused after a message");
	cr_assert_eq(hb_h1_feed(p, "\r\n\r", 3, &used, &why), HB_H1_OK);
	cr_assert_eq(hb_h1_reuse(p, &a), 0, "only blank lines seen");
	/* the blank lines and the CR are forgotten: the next owner's first byte starts a head */
	cr_assert_eq(hb_h1_feed(p, PIPE_B, sizeof(PIPE_B) - 1, &used, &why), HB_H1_PAUSED, "%s",
		     why ? why : "");
	cr_assert(strstr(a.log, "REQ POST /b"), "%s", a.log);
	cr_assert_eq(hb_h1_reuse(p, &a), 0);
	cr_assert_eq(hb_h1_feed(p, "GET /x", 6, &used, &why), HB_H1_OK);
	cr_assert_eq(hb_h1_reuse(p, &b), -1, "in the middle of a head");
	cr_assert_eq(hb_h1_feed(p, " HTTP/1.1\n", 10, &used, &why), HB_H1_E_BAD);
	cr_assert_eq(hb_h1_reuse(p, &b), -1, "dead");
	hb_h1_free(p);
}

Test(h1, valid_then_invalid_pipelined)
{
	EXPECT(PIPE_A "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n" PIPE_A,
	       "REQ GET /a path=/a q= v=1.1 cl=-1 fl=K\n  Host=[x]\nDONE\nERR 400\n");
}

Test(h1, dead_parser_keeps_failing)
{
	struct rec r = {0};
	hb_h1_parser_t *p = hb_h1_new(&small, &cbs, &r);
	size_t used;
	const char *why = NULL;
	cr_assert_eq(hb_h1_feed(p, "GET\n", 4, &used, &why), HB_H1_E_BAD);
	cr_assert(why && *why);
	why = NULL;
	cr_assert_eq(hb_h1_feed(p, PIPE_A, sizeof(PIPE_A) - 1, &used, &why), HB_H1_E_BAD);
	cr_assert(why && *why);
	cr_assert_eq(used, 0);
	cr_assert_eq(hb_h1_finish(p), HB_H1_E_BAD);
	hb_h1_free(p);
}

Test(h1, callback_errors)
{
	static const char in[] = PIPE_B;
	struct rec *r = malloc(sizeof(*r));
	for (int f = 1; f <= 3; f++) {
		run_split(in, sizeof(in) - 1, &small, NULL, 0, r, f);
		cr_assert(strstr(r->log, "ERR 500\n"), "fail_on=%d: %s", f, r->log);
	}
	free(r);
}

Test(h1, idle_and_finish)
{
	struct rec r = {0};
	hb_h1_parser_t *p = hb_h1_new(NULL, &cbs, &r);
	size_t used;
	cr_assert(hb_h1_idle(p));
	cr_assert_eq(hb_h1_finish(p), HB_H1_OK);
	cr_assert_eq(hb_h1_feed(p, "\r\n", 2, &used, NULL), HB_H1_OK);
	cr_assert(hb_h1_idle(p));
	cr_assert_eq(hb_h1_feed(p, "G", 1, &used, NULL), HB_H1_OK);
	cr_assert(!hb_h1_idle(p));
	cr_assert_eq(hb_h1_finish(p), HB_H1_E_BAD);
	hb_h1_free(p);
}

/* ---- Content-Length / Transfer-Encoding smuggling ---- */

#define CL_HEAD(v) "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " v "\r\n\r\n"

Test(h1, cl_and_te_is_400)
{
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
		   "Transfer-Encoding: chunked\r\n\r\n",
		   400);
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
		   "Content-Length: 3\r\n\r\n",
		   400);
}

Test(h1, bad_content_length_is_400)
{
	EXPECT_ERR(CL_HEAD("5, 5"), 400);
	EXPECT_ERR(CL_HEAD("+1"), 400);
	EXPECT_ERR(CL_HEAD("-0"), 400);
	EXPECT_ERR(CL_HEAD("0x10"), 400);
	EXPECT_ERR(CL_HEAD("1_0"), 400);
	EXPECT_ERR(CL_HEAD(""), 400);
	EXPECT_ERR(CL_HEAD("1 0"), 400);
	EXPECT_ERR(CL_HEAD("1.0"), 400);
}

Test(h1, two_content_lengths_is_400)
{
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
		   400);
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		   400);
}

Test(h1, content_length_over_limit_is_413_before_body)
{
	EXPECT_ERR(CL_HEAD("101"), 413);
	EXPECT_ERR(CL_HEAD("9223372036854775807"), 413);
	EXPECT_ERR(CL_HEAD("9223372036854775808"), 413);
	EXPECT_ERR(CL_HEAD("18446744073709551616"), 413);
	EXPECT_ERR(CL_HEAD("99999999999999999999999"), 413);
}

Test(h1, content_length_huge_with_large_limit_is_413)
{
	hb_h1_limits_t lim = small;
	lim.max_body = UINT64_MAX;
	static const char in[] = CL_HEAD("9223372036854775808");
	expect_lim(in, sizeof(in) - 1, &lim, "ERR 413\n");
	static const char in2[] = CL_HEAD("18446744073709551615");
	expect_lim(in2, sizeof(in2) - 1, &lim, "ERR 413\n");
}

#define TE_HEAD(v) "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " v "\r\n\r\n"

Test(h1, te_not_exactly_chunked)
{
	EXPECT_ERR(TE_HEAD("gzip"), 400);
	EXPECT_ERR(TE_HEAD("chunked, gzip"), 400);
	EXPECT_ERR(TE_HEAD("chunked, chunked"), 400);
	EXPECT_ERR(TE_HEAD("chunked;q=1"), 400);
	EXPECT_ERR(TE_HEAD(""), 400);
	EXPECT_ERR(TE_HEAD("identity"), 400);
	EXPECT_ERR(TE_HEAD("gzip, chunked"), 501);
	EXPECT_ERR(TE_HEAD("gzip,chunked"), 501);
}

Test(h1, two_te_lines_is_400)
{
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
		   "Transfer-Encoding: chunked\r\n\r\n",
		   400);
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
		   "Transfer-Encoding: chunked\r\n\r\n",
		   400);
}

Test(h1, obfuscated_te_is_400)
{
	EXPECT_ERR(TE_HEAD("\x0b"
			   "chunked"),
		   400);
	EXPECT_ERR(TE_HEAD("chunked\x85"), 400);
	EXPECT_ERR(TE_HEAD("\"chunked\""), 400);
	EXPECT_ERR(TE_HEAD("chunked\x01"), 400);
	EXPECT_ERR("POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400);
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n", 400);
	EXPECT_ERR("POST / HTTP/1.1\r\nHost: x\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n",
		   400);
}

Test(h1, http10_with_te_is_400)
{
	EXPECT_ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

/* ---- chunk syntax ---- */

Test(h1, bad_chunk_sizes)
{
	EXPECT(CHUNKED_HEAD "0x5\r\nhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "+5\r\nhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD " 5\r\nhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "5 \r\nhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "-5\r\nhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "\r\nhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "g\r\n", CHUNKED_REQ "ERR 400\n");
}

Test(h1, chunk_size_overflow_is_400)
{
	hb_h1_limits_t lim = small;
	lim.max_body = UINT64_MAX;
	static const char in[] = CHUNKED_HEAD "10000000000000000\r\n";
	expect_lim(in, sizeof(in) - 1, &lim, CHUNKED_REQ "ERR 400\n");
	static const char in2[] = CHUNKED_HEAD "FFFFFFFFFFFFFFFFF\r\n";
	expect_lim(in2, sizeof(in2) - 1, &lim, CHUNKED_REQ "ERR 400\n");
}

Test(h1, bad_chunk_terminators)
{
	EXPECT(CHUNKED_HEAD "5\r\nhelloXX0\r\n\r\n", CHUNKED_REQ "BODY [hello]\nERR 400\n");
	EXPECT(CHUNKED_HEAD "5\r\nhello\n0\r\n\r\n", CHUNKED_REQ "BODY [hello]\nERR 400\n");
	EXPECT(CHUNKED_HEAD "5\r\nhello\r0\r\n\r\n", CHUNKED_REQ "BODY [hello]\nERR 400\n");
	EXPECT(CHUNKED_HEAD "5\r\nhello\r\n0\r\n\n", CHUNKED_REQ "BODY [hello]\nERR 400\n");
	EXPECT(CHUNKED_HEAD "5\r\nhello\r\n0\r\n\rX", CHUNKED_REQ "BODY [hello]\nERR 400\n");
}

Test(h1, bare_lf_chunk_lines)
{
	EXPECT(CHUNKED_HEAD "5\nhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "5;ext\nhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "0\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "5\rhello\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
}

Test(h1, oversized_chunk_extension)
{
	size_t n = 5000;
	char *in = malloc(sizeof(CHUNKED_HEAD) + n + 32);
	strcpy(in, CHUNKED_HEAD "1;");
	memset(in + strlen(in), 'a', n);
	strcpy(in + sizeof(CHUNKED_HEAD) + 1 + n, "\r\nx\r\n0\r\n\r\n");
	struct rec *r = malloc(sizeof(*r));
	size_t cut = sizeof(CHUNKED_HEAD) + 100;
	run_split(in, strlen(in), &small, NULL, 0, r, 0);
	cr_assert_str_eq(r->log, CHUNKED_REQ "ERR 400\n");
	run_split(in, strlen(in), &small, &cut, 1, r, 0);
	cr_assert_str_eq(r->log, CHUNKED_REQ "ERR 400\n");
	free(r);
	free(in);
}

Test(h1, control_chars_in_chunk_extension)
{
	EXPECT(CHUNKED_HEAD "1;a\x00"
			    "b\r\nx\r\n0\r\n\r\n",
	       CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "1;a\rb\r\nx\r\n0\r\n\r\n", CHUNKED_REQ "ERR 400\n");
}

Test(h1, chunked_total_over_limit_is_413)
{
	EXPECT(CHUNKED_HEAD "32\r\n"
			    "01234567890123456789012345678901234567890123456789\r\n"
			    "33\r\n",
	       CHUNKED_REQ "BODY [01234567890123456789012345678901234567890123456789]\n"
			   "ERR 413\n");
	EXPECT(CHUNKED_HEAD "65\r\n", CHUNKED_REQ "ERR 413\n");
}

Test(h1, bad_trailers)
{
	EXPECT(CHUNKED_HEAD "0\r\nX: y\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "0\r\nX: y\r\n z\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "0\r\nX : y\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "0\r\n: y\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "0\r\nX: a\x01\r\n\r\n", CHUNKED_REQ "ERR 400\n");
	EXPECT(CHUNKED_HEAD "0\r\nX: a\rb\r\n\r\n", CHUNKED_REQ "ERR 400\n");
}

Test(h1, too_many_trailers_is_431)
{
	EXPECT(CHUNKED_HEAD
	       "0\r\na:1\r\nb:1\r\nc:1\r\nd:1\r\ne:1\r\nf:1\r\ng:1\r\nh:1\r\ni:1\r\n\r\n",
	       CHUNKED_REQ "ERR 431\n");
}

/* ---- line framing and header syntax ---- */

Test(h1, bare_lf_line_endings_are_400)
{
	EXPECT_ERR("GET / HTTP/1.1\nHost: x\n\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\n\n", 400);
	EXPECT_ERR("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

Test(h1, bare_cr_is_400)
{
	EXPECT_ERR("GET / HTTP/1.1\rHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\n\rX", 400);
	EXPECT_ERR("GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

Test(h1, obs_fold_is_400)
{
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", 400);
}

Test(h1, space_before_colon_is_400)
{
	EXPECT_ERR("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
}

Test(h1, empty_header_name_is_400)
{
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400);
}

Test(h1, bad_header_name_chars_are_400)
{
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nX(y): v\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nX\x80: v\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400);
}

Test(h1, ctl_in_value_is_400)
{
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nX: a\x00"
		   "b\r\n\r\n",
		   400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01"
		   "b\r\n\r\n",
		   400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f"
		   "b\r\n\r\n",
		   400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nX: a\x1b"
		   "b\r\n\r\n",
		   400);
}

Test(h1, obs_text_in_value_kept)
{
	EXPECT("GET / HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n",
	       GET_OK("/", "  Host=[x]\n  X=[caf\xc3\xa9]\n"));
}

/* ---- Host ---- */

Test(h1, host_rules)
{
	EXPECT_ERR("GET / HTTP/1.1\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 400);
	EXPECT("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
	       GET_OK("/", "  Host=[example.com:8080]\n"));
	EXPECT("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", GET_OK("/", "  Host=[[::1]:80]\n"));
	EXPECT("GET / HTTP/1.1\r\nHost:\r\n\r\n", GET_OK("/", "  Host=[]\n"));
}

/* ---- request line ---- */

Test(h1, malformed_request_line_is_400)
{
	EXPECT_ERR("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET /\nHTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1\x00\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET / FOO/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET /\r\nHost: x\r\n\r\n", 400);
}

Test(h1, bad_versions)
{
	EXPECT_ERR("GET / HTTP/1.32\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
	EXPECT_ERR("GET / HTTP/2.0\r\n\r\n", 505);
	EXPECT_ERR("GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505);
	EXPECT_ERR("GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505);
	EXPECT_ERR("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
	EXPECT_ERR("GET / HTTP/12.0\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET / HTTP/1.1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET / http/1.1\r\nHost: x\r\n\r\n", 400);
}

/* ---- methods (RFC 9110 9.1: any token) and target forms (RFC 9112 3.2) ---- */

#define REQ_OK(method, target, path, query, hdrs)                                                  \
	"REQ " method " " target " path=" path " q=" query " v=1.1 cl=-1 fl=K\n" hdrs "DONE\nIDLE" \
	"\n"

Test(h1, any_method_token_reaches_the_app)
{
	EXPECT("PURGE /a HTTP/1.1\r\nHost: x\r\n\r\n",
	       REQ_OK("PURGE", "/a", "/a", "", "  Host=[x]\n"));
	EXPECT("FOO /a HTTP/1.1\r\nHost: x\r\n\r\n", REQ_OK("FOO", "/a", "/a", "", "  Host=[x]\n"));
	EXPECT("-BLARGH /a HTTP/1.1\r\nHost: x\r\n\r\n",
	       REQ_OK("-BLARGH", "/a", "/a", "", "  Host=[x]\n"));
	EXPECT("get /a HTTP/1.1\r\nHost: x\r\n\r\n", REQ_OK("get", "/a", "/a", "", "  Host=[x]\n"));
	/* methods are case-sensitive: "head" is not HEAD (its response has a body) */
	EXPECT("head /a HTTP/1.1\r\nHost: x\r\n\r\n",
	       REQ_OK("head", "/a", "/a", "", "  Host=[x]\n"));
	EXPECT("!#$%&'*+-.^_`|~09azAZ / HTTP/1.1\r\nHost: x\r\n\r\n",
	       REQ_OK("!#$%&'*+-.^_`|~09azAZ", "/", "/", "", "  Host=[x]\n"));
	EXPECT("\r\nM-SEARCH /m?q HTTP/1.1\r\nHost: x\r\n\r\n",
	       REQ_OK("M-SEARCH", "/m?q", "/m", "q", "  Host=[x]\n"));
	/* pipelined: an unknown method does not confuse the next request */
	EXPECT("FOO /1 HTTP/1.1\r\nHost: x\r\n\r\nBAR /2 HTTP/1.1\r\nHost: x\r\n\r\n",
	       "REQ FOO /1 path=/1 q= v=1.1 cl=-1 fl=K\n  Host=[x]\nDONE\n"
	       "REQ BAR /2 path=/2 q= v=1.1 cl=-1 fl=K\n  Host=[x]\nDONE\nIDLE\n");
}

Test(h1, method_with_a_non_token_character_is_400)
{
	EXPECT_ERR("GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("G,T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET: / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("G/T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("G\"T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("G\x7fT / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("G\xc3\xa9T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	/* a method too long for the request line */
	EXPECT_ERR("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / "
		   "HTTP/1.1\r\n"
		   "Host: x\r\n\r\n",
		   414);
}

Test(h1, target_in_no_allowed_form_is_400)
{
	EXPECT_ERR("PUT s://]ufd/: HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET ftp://x/y HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("POST * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400);
	EXPECT_ERR("GET *x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET ?q HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET x.example:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET http:/x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET http:// HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET http:///p HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET http://:80/p HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET http://u@h/p HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET http://h:8o/p HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET http://[::1/p HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

Test(h1, fragment_is_400)
{
	EXPECT_ERR("GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET /a?b=1#f HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET /# HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("GET http://h/p#f HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

Test(h1, asterisk_form_only_for_options)
{
	EXPECT("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	       REQ_OK("OPTIONS", "*", "*", "", "  Host=[x]\n"));
}

Test(h1, connect_is_501_and_needs_authority_form)
{
	EXPECT_ERR("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501);
	EXPECT_ERR("CONNECT [::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n", 501);
	EXPECT_ERR("CONNECT example.com HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("CONNECT example.com: HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("CONNECT http://h/ HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	EXPECT_ERR("CONNECT u@h:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400);
	/* a malformed message is a 400 before the method is looked at */
	EXPECT_ERR("CONNECT h:443 HTTP/1.1\r\n\r\n", 400);
}

Test(h1, absolute_form_host_wins_over_host_header)
{
	EXPECT("GET http://example.com/foo?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
	       REQ_OK("GET", "http://example.com/foo?x=1", "/foo", "x=1",
		      "  Host=[example.com]\n"));
	EXPECT("GET HTTP://Ex.COM:8080 HTTP/1.1\r\nA: 1\r\nHost: o\r\n\r\n",
	       REQ_OK("GET", "HTTP://Ex.COM:8080", "/", "", "  A=[1]\n  Host=[Ex.COM:8080]\n"));
	EXPECT("FOO https://[::1]:8443?q HTTP/1.1\r\nHost: o\r\n\r\n",
	       REQ_OK("FOO", "https://[::1]:8443?q", "/", "q", "  Host=[[::1]:8443]\n"));
	EXPECT("OPTIONS http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
	       REQ_OK("OPTIONS", "http://h/", "/", "", "  Host=[h]\n"));
	/* HTTP/1.0 may omit Host: the target's is added */
	EXPECT("GET http://h:81/p HTTP/1.0\r\n\r\n",
	       "REQ GET http://h:81/p path=/p q= v=1.0 cl=-1 fl=\n  Host=[h:81]\nDONE\nIDLE\n");
	/* HTTP/1.1 still needs a (valid) Host field */
	EXPECT_ERR("GET http://h/p HTTP/1.1\r\n\r\n", 400);
	EXPECT_ERR("GET http://h/p HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
}

Test(h1, request_line_too_long_is_414)
{
	/* 64-byte limit: "GET " + 47-byte target + " HTTP/1.1" = 60 passes, 65 fails. */
	EXPECT("GET /12345678901234567890123456789012345678901234567 HTTP/1.1\r\nHost: x\r\n\r\n",
	       GET_OK("/12345678901234567890123456789012345678901234567", "  Host=[x]\n"));
	EXPECT_ERR("GET /1234567890123456789012345678901234567890123456789012 HTTP/1.1\r\n\r\n",
		   414);
	EXPECT_ERR("GET /12345678901234567890123456789012345678901234567890123456789012345678",
		   414);
}

Test(h1, too_many_headers_is_431)
{
	EXPECT("GET / HTTP/1.1\r\nHost: x\r\nb:1\r\nc:1\r\nd:1\r\ne:1\r\nf:1\r\ng:1\r\nh:1\r\n\r\n",
	       GET_OK("/", "  Host=[x]\n  b=[1]\n  c=[1]\n  d=[1]\n  e=[1]\n  f=[1]\n  g=[1]\n"
			   "  h=[1]\n"));
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nb:1\r\nc:1\r\nd:1\r\ne:1\r\nf:1\r\ng:1\r\nh:1\r\n"
		   "i:1\r\n\r\n",
		   431);
}

Test(h1, header_line_too_long_is_431)
{
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\n"
		   "X: 12345678901234567890123456789012345678901234567890123456789012\r\n\r\n",
		   431);
}

Test(h1, header_section_too_large_is_431)
{
#define H55 "0123456789012345678901234567890123456789012345678901234"
#define H60 H55 "\r\n"
	EXPECT("GET / HTTP/1.1\r\nHost: x\r\nA: " H60 "B: " H60 "C: " H60 "D: " H60 "\r\n",
	       GET_OK("/",
		      "  Host=[x]\n  A=[" H55 "]\n  B=[" H55 "]\n  C=[" H55 "]\n  D=[" H55 "]\n"));
	EXPECT_ERR("GET / HTTP/1.1\r\nHost: x\r\nA: " H60 "B: " H60 "C: " H60 "D: " H60
		   "E: 12345\r\n"
		   "\r\n",
		   431);
#undef H60
#undef H55
}

/* ---- response serialization ---- */

static hb_response_t *mk_response(int status, uint32_t flags, int n, ...)
{
	/* Headers in their own block: data[] of hb_response_t is not aligned for them. */
	hb_response_t *r = calloc(1, sizeof(*r));
	r->status = status;
	r->flags = flags;
	r->headers = calloc((size_t)n + 1, sizeof(hb_header_t));
	r->nheaders = (uint32_t)n;
	r->content_length = -1;
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *name = va_arg(ap, const char *), *value = va_arg(ap, const char *);
		r->headers[i] =
			(hb_header_t){name, value, (uint32_t)strlen(name), (uint32_t)strlen(value)};
	}
	va_end(ap);
	return r;
}

static void free_response(hb_response_t *r)
{
	free(r->headers);
	free(r);
}

#define DATE "Thu, 26 Nov 2026 10:00:00 GMT"

static void check_head(const hb_response_t *r, int minor, int chunked, int ka, const char *want)
{
	char out[512];
	size_t n = hb_h1_write_head(out, sizeof(out), r, minor, chunked, ka, DATE);
	cr_assert_eq(n, strlen(want));
	cr_assert(memcmp(out, want, n) == 0, "got:\n%.*s", (int)n, out);
	/* Too small: nothing past cap is written and the needed size comes back. */
	for (size_t cap = 0; cap < n; cap += 7) {
		memset(out, '#', sizeof(out));
		cr_assert_eq(hb_h1_write_head(out, cap, r, minor, chunked, ka, DATE), n);
		cr_assert_eq(out[cap], '#');
	}
}

Test(h1_write, head_keep_alive)
{
	hb_response_t *r = mk_response(200, 0, 1, "Content-Type", "text/plain");
	check_head(r, 1, 0, 1,
		   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: " DATE "\r\n"
		   "Server: hornbeam-uring\r\n\r\n");
	free_response(r);
}

Test(h1_write, head_chunked_close)
{
	hb_response_t *r = mk_response(404, 0, 0);
	check_head(r, 1, 1, 0,
		   "HTTP/1.1 404 Not Found\r\nDate: " DATE "\r\nServer: hornbeam-uring\r\n"
		   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
	free_response(r);
}

Test(h1_write, head_http10_keep_alive)
{
	hb_response_t *r = mk_response(204, 0, 0);
	check_head(r, 0, 0, 1,
		   "HTTP/1.1 204 No Content\r\nDate: " DATE "\r\nServer: hornbeam-uring\r\n"
		   "Connection: keep-alive\r\n\r\n");
	check_head(r, 0, 0, 0,
		   "HTTP/1.1 204 No Content\r\nDate: " DATE "\r\nServer: hornbeam-uring\r\n"
		   "Connection: close\r\n\r\n");
	free_response(r);
}

Test(h1_write, head_app_date_server_close)
{
	hb_response_t *r =
		mk_response(200, HB_RESP_HAS_DATE | HB_RESP_HAS_SERVER | HB_RESP_CLOSE, 3, "Date",
			    "yesterday", "Server", "app", "Connection", "close");
	check_head(
		r, 1, 0, 0,
		"HTTP/1.1 200 OK\r\nDate: yesterday\r\nServer: app\r\nConnection: close\r\n\r\n");
	free_response(r);
}

Test(h1_write, head_unknown_status)
{
	hb_response_t *r = mk_response(299, 0, 0);
	check_head(r, 1, 0, 1,
		   "HTTP/1.1 299 Unknown\r\nDate: " DATE "\r\nServer: hornbeam-uring\r\n\r\n");
	free_response(r);
}

Test(h1_write, error_response)
{
	char out[512];
	static const char want[] = "HTTP/1.1 400 Bad Request\r\n"
				   "Content-Type: text/plain; charset=utf-8\r\n"
				   "Content-Length: 12\r\nConnection: close\r\nDate: " DATE "\r\n"
				   "Server: hornbeam-uring\r\n\r\nBad Request\n";
	size_t n = hb_h1_write_error(out, sizeof(out), 400, DATE);
	cr_assert_eq(n, sizeof(want) - 1);
	cr_assert(memcmp(out, want, n) == 0, "got:\n%.*s", (int)n, out);
	cr_assert_eq(hb_h1_write_error(out, 10, 400, DATE), n);
}

Test(h1_write, chunk_prefix)
{
	char out[20];
	cr_assert_eq(hb_h1_chunk_prefix(out, 0), 3);
	cr_assert(memcmp(out, "0\r\n", 3) == 0);
	cr_assert_eq(hb_h1_chunk_prefix(out, 0x1a2b), 6);
	cr_assert(memcmp(out, "1a2b\r\n", 6) == 0);
	cr_assert_eq(hb_h1_chunk_prefix(out, SIZE_MAX), 18);
}

Test(h1_write, interim_head_carries_only_its_fields)
{
	hb_header_t h[2] = {{"Link", "</a.css>; rel=preload", 4, 21}, {"Link", "</b.js>", 4, 7}};
	hb_response_t r = {.status = 103, .headers = h, .nheaders = 2, .content_length = -1};
	char out[256];
	static const char want[] = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
				   "Link: </b.js>\r\n\r\n";
	size_t n = hb_h1_write_interim(out, sizeof(out), &r);
	cr_assert_eq(n, sizeof(want) - 1);
	cr_assert(memcmp(out, want, n) == 0, "got:\n%.*s", (int)n, out);
	cr_assert_eq(hb_h1_write_interim(out, 8, &r), n, "counts what it needs");
}

Test(h1_write, trailer_section_ends_the_chunked_body_without_framing_fields)
{
	hb_header_t h[4] = {{"X-Checksum", "abc", 10, 3},
			    {"Content-Length", "5", 14, 1},
			    {"transfer-encoding", "chunked", 17, 7},
			    {"Server-Timing", "app;dur=3", 13, 9}};
	hb_response_t r = {.headers = h, .nheaders = 4, .content_length = -1};
	char out[256];
	static const char want[] = "0\r\nX-Checksum: abc\r\nServer-Timing: app;dur=3\r\n\r\n";
	size_t n = hb_h1_write_trailers(out, sizeof(out), &r);
	cr_assert_eq(n, sizeof(want) - 1);
	cr_assert(memcmp(out, want, n) == 0, "got:\n%.*s", (int)n, out);
	hb_response_t none = {.content_length = -1};
	cr_assert_eq(hb_h1_write_trailers(out, sizeof(out), &none), 5);
	cr_assert(memcmp(out, "0\r\n\r\n", 5) == 0);
}

Test(h1_write, status_and_reason_maps)
{
	cr_assert_eq(hb_h1_error_status(HB_H1_E_BAD), 400);
	cr_assert_eq(hb_h1_error_status(HB_H1_E_URI_TOO_LONG), 414);
	cr_assert_eq(hb_h1_error_status(HB_H1_E_HEADERS_TOO_BIG), 431);
	cr_assert_eq(hb_h1_error_status(HB_H1_E_BODY_TOO_BIG), 413);
	cr_assert_eq(hb_h1_error_status(HB_H1_E_VERSION), 505);
	cr_assert_eq(hb_h1_error_status(HB_H1_E_NOT_IMPL), 501);
	cr_assert_eq(hb_h1_error_status(HB_H1_E_NOMEM), 500);
	cr_assert_str_eq(hb_h1_reason(413), "Content Too Large");
	cr_assert_str_eq(hb_h1_reason(100), "Continue");
	cr_assert_str_eq(hb_h1_reason(103), "Early Hints");
	cr_assert_str_eq(hb_h1_reason(799), "Unknown");
}

Test(request, header_lookup)
{
	hb_header_t h[2] = {{"Host", "a", 4, 1}, {"X-Y", "b", 3, 1}};
	hb_request_t r = {.headers = h, .nheaders = 2};
	cr_assert_eq(hb_request_header(&r, "x-y"), &h[1]);
	cr_assert_eq(hb_request_header(&r, "HOST"), &h[0]);
	cr_assert_null(hb_request_header(&r, "x"));
}
