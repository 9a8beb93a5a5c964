/* test_h2_floods.c: the HTTP/2 attacks of recent years against src/proto/h2, as raw frames:
 * each ends with GOAWAY ENHANCE_YOUR_CALM, the app sees nothing it should not, memory stays
 * bounded, and the same traffic spread over time (under the budget) is served. */
#include "h2_harness.h"

static void expect_calm(app_t *a, const out_t *o, int rc, const char *what)
{
	uint32_t code = 0;
	const char *why = NULL;
	cr_assert_eq(hb_h2_failure(a->e, &code, &why), HB_H2_E_CALM, "%s: failure %d", what,
		     hb_h2_failure(a->e, NULL, NULL));
	cr_assert_eq(code, HB_H2_ENHANCE_YOUR_CALM);
	cr_assert_not_null(why);
	cr_assert_eq(o->goaways, 1, "%s: %d GOAWAY", what, o->goaways);
	cr_assert_eq(o->goaway_code, HB_H2_ENHANCE_YOUR_CALM, "%s: code %u", what, o->goaway_code);
	cr_assert_not(hb_h2_want_read(a->e));
	(void)rc;
}

/* CVE-2023-44487: HEADERS + RST_STREAM, over and over. */
static int rapid_reset(app_t *a, out_t *o, int n, int per_ms_step)
{
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		buf_t b = {0};
		if (i == 0)
			preface(&b);
		get(&b, (uint32_t)(2 * i + 1), "GET", F_ES);
		rst(&b, (uint32_t)(2 * i + 1), HB_H2_CANCEL);
		rc = feed(a, &b, 0, o, NULL);
		a->now += (uint64_t)per_ms_step;
		free(b.b);
	}
	return rc;
}

Test(h2_floods, rapid_reset_ends_in_enhance_your_calm)
{
	app_t a;
	out_t o = {0};
	app_init(&a, NULL);
	a.respond = false;
	int rc = rapid_reset(&a, &o, 500, 0);
	expect_calm(&a, &o, rc, "rapid reset");
	cr_assert_leq(a.nreq, 101, "at most the budget reached the app: %d", a.nreq);
	app_free(&a);
}

Test(h2_floods, resets_under_the_budget_are_served)
{
	app_t a;
	out_t o = {0};
	app_init(&a, NULL);
	a.respond = false;
	rapid_reset(&a, &o, 500, 20); /* 50 a second, budget 100 */
	cr_assert_eq(o.goaways, 0);
	cr_assert_eq(a.nreq, 500);
	app_free(&a);
}

Test(h2_floods, rapid_reset_memory_stays_bounded)
{
	app_t a;
	out_t o = {0};
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	lim.max_resets = UINT32_MAX;
	app_init(&a, &lim);
	a.respond = false;
	size_t peak = 0;
	for (int i = 0; i < 3000; i++) {
		buf_t b = {0};
		if (i == 0)
			preface(&b);
		get(&b, (uint32_t)(2 * i + 1), "GET", F_ES);
		rst(&b, (uint32_t)(2 * i + 1), HB_H2_CANCEL);
		feed(&a, &b, 0, &o, NULL);
		free(b.b);
		if (hb_h2_mem(a.e) > peak)
			peak = hb_h2_mem(a.e);
		/* the app side forgets closed streams */
		for (int k = 0; k < MAXS; k++)
			if (a.s[k].closed) {
				free(a.s[k].req);
				free(a.s[k].in);
				memset(&a.s[k], 0, sizeof a.s[k]);
			}
	}
	cr_assert_eq(hb_h2_nstreams(a.e), 0);
	cr_assert_lt(peak, 512 * 1024, "engine memory peaked at %zu", peak);
	app_free(&a);
}

/* CVE-2024-28182: a header block that never ends. */
Test(h2_floods, continuation_flood)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0}, hb = {0};
	app_init(&a, NULL);
	preface(&b);
	lit(&hb, ":method", "GET");
	headers(&b, 1, F_ES, &hb);
	for (int i = 0; i < 50; i++) {
		hb.n = 0;
		lit(&hb, "x-a", "b");
		frame(&b, T_CONT, 0, 1, hb.b, hb.n);
	}
	expect_calm(&a, &o, feed(&a, &b, 0, &o, NULL), "CONTINUATION flood");
	cr_assert_eq(a.nreq, 0);
	app_free(&a);
	free(b.b);
	free(hb.b);
}

Test(h2_floods, empty_continuation_flood)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0}, hb = {0};
	app_init(&a, NULL);
	preface(&b);
	req_block(&hb, "GET", "/");
	headers(&b, 1, F_ES, &hb);
	for (int i = 0; i < 20; i++)
		frame(&b, T_CONT, 0, 1, NULL, 0);
	expect_calm(&a, &o, feed(&a, &b, 7, &o, NULL), "empty CONTINUATION");
	cr_assert_eq(a.nreq, 0);
	app_free(&a);
	free(b.b);
	free(hb.b);
}

Test(h2_floods, continuations_within_the_limit_are_fine)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0}, hb = {0};
	app_init(&a, NULL);
	preface(&b);
	req_block(&hb, "GET", "/");
	headers(&b, 1, F_ES, &hb);
	for (int i = 0; i < 8; i++) {
		hb.n = 0;
		lit(&hb, "x-a", "b");
		frame(&b, T_CONT, i == 7 ? F_EH : 0, 1, hb.b, hb.n);
	}
	cr_assert_eq(feed(&a, &b, 0, &o, NULL), 0);
	cr_assert_eq(o.goaways, 0);
	cr_assert_eq(a.nreq, 1);
	app_free(&a);
	free(b.b);
	free(hb.b);
}

/* HPACK bomb: one 4000-byte entry in the dynamic table, referenced by 1-byte indexes. */
Test(h2_floods, hpack_bomb)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0}, hb = {0};
	static char big[4001];
	memset(big, 'z', 4000);
	app_init(&a, NULL);
	preface(&b);
	req_block(&hb, "GET", "/");
	put8(&hb, 0x40); /* literal with incremental indexing, new name */
	put8(&hb, 5);
	put(&hb, "x-big", 5);
	put8(&hb, 0x7f); /* 4000 = 127 + 3873: 0x7f, then 3873 as 7-bit groups */
	put8(&hb, (uint8_t)(0x80 | (3873 & 0x7f)));
	put8(&hb, (uint8_t)(3873 >> 7));
	put(&hb, big, 4000);
	for (int i = 0; i < 100; i++)
		put8(&hb, 0xbe); /* index 62: the entry */
	headers(&b, 1, F_EH | F_ES, &hb);
	expect_calm(&a, &o, feed(&a, &b, 0, &o, NULL), "HPACK bomb");
	cr_assert_eq(a.nreq, 0);
	app_free(&a);
	free(b.b);
	free(hb.b);
}

Test(h2_floods, too_many_fields)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0}, hb = {0};
	app_init(&a, NULL);
	preface(&b);
	req_block(&hb, "GET", "/");
	for (int i = 0; i < 101; i++)
		lit(&hb, "x-a", "b");
	headers(&b, 1, F_EH | F_ES, &hb);
	expect_calm(&a, &o, feed(&a, &b, 0, &o, NULL), "fields");
	cr_assert_eq(a.nreq, 0);
	app_free(&a);
	free(b.b);
	free(hb.b);
}

typedef void (*cheap_fn)(buf_t *b, int i);

static void f_settings(buf_t *b, int i)
{
	settings(b, 0, NULL, NULL, 0);
}
static void f_ping(buf_t *b, int i)
{
	frame(b, T_PING, 0, 0, "12345678", 8);
}
static void f_priority(buf_t *b, int i)
{
	frame(b, T_PRIORITY, 0, 3, "\x00\x00\x00\x00\x10", 5);
}
static void f_empty_data(buf_t *b, int i)
{
	frame(b, T_DATA, 0, 1, NULL, 0);
}
static void f_empty_headers(buf_t *b, int i)
{
	frame(b, T_HEADERS, F_EH, (uint32_t)(2 * i + 3), NULL, 0);
}
static void f_unknown(buf_t *b, int i)
{
	frame(b, 0x42, 0, 0, NULL, 0);
}

static void cheap_flood(cheap_fn fn, int n, const char *what, bool expect)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	app_init(&a, NULL);
	a.respond = false;
	preface(&b);
	get(&b, 1, "POST", 0);
	for (int i = 0; i < n; i++)
		fn(&b, i);
	int rc = feed(&a, &b, 0, &o, NULL);
	if (expect) {
		expect_calm(&a, &o, rc, what);
		cr_assert(hb_h2_mem(a.e) < 1024 * 1024, "%s: %zu bytes", what, hb_h2_mem(a.e));
	} else {
		cr_assert_eq(o.goaways, 0, "%s under the budget", what);
	}
	app_free(&a);
	free(b.b);
}

/* Each flood of 2000 frames that cost the server work but no stream ends in ENHANCE_YOUR_CALM
 * with bounded memory; 500 PINGs stay under the budget. */
static const struct {
	cheap_fn fn;
	int n;
	const char *what;
	bool calm;
} cheap_floods[] = {
	{f_settings, 2000, "SETTINGS", true},
	{f_ping, 2000, "PING", true},
	{f_priority, 2000, "PRIORITY", true},
	{f_empty_data, 2000, "empty DATA", true},
	{f_empty_headers, 2000, "empty HEADERS", true},
	{f_unknown, 2000, "unknown frames", true},
	{f_ping, 500, "PING", false},
};

Test(h2_floods, cheap_frame_floods)
{
	for (size_t i = 0; i < sizeof cheap_floods / sizeof cheap_floods[0]; i++)
		cheap_flood(cheap_floods[i].fn, cheap_floods[i].n, cheap_floods[i].what,
			    cheap_floods[i].calm);
}

/* MadeYouReset (CVE-2025-8671): frames that make the server reset streams (here a malformed
 * request, a stream error) count like resets the client sent. */
Test(h2_floods, made_you_reset)
{
	app_t a;
	out_t o = {0};
	buf_t b = {0};
	app_init(&a, NULL);
	a.respond = false;
	int rc = 0;
	for (int i = 0; i < 300 && rc == 0; i++) {
		buf_t hb = {0};
		b.n = 0;
		if (i == 0)
			preface(&b);
		req_block(&hb, "POST", "/");
		lit(&hb, "X-Upper", "1");
		headers(&b, (uint32_t)(2 * i + 1), F_EH, &hb);
		free(hb.b);
		rc = feed(&a, &b, 0, &o, NULL);
	}
	expect_calm(&a, &o, rc, "MadeYouReset");
	cr_assert_geq(o.nrst, 100);
	app_free(&a);
	free(b.b);
}

/* The configured budgets are the ones applied. */
Test(h2_floods, budgets_follow_the_limits)
{
	app_t a;
	out_t o = {0};
	hb_h2_limits_t lim;
	hb_h2_limits_default(&lim);
	lim.max_resets = 5;
	app_init(&a, &lim);
	a.respond = false;
	int rc = rapid_reset(&a, &o, 6, 0);
	expect_calm(&a, &o, rc, "5 resets");
	app_free(&a);

	hb_h2_limits_default(&lim);
	lim.max_continuations = 1;
	app_init(&a, &lim);
	memset(&o, 0, sizeof o);
	buf_t b = {0}, hb = {0};
	preface(&b);
	lit(&hb, ":method", "GET");
	headers(&b, 1, F_ES, &hb);
	frame(&b, T_CONT, 0, 1, hb.b, hb.n);
	frame(&b, T_CONT, F_EH, 1, hb.b, hb.n);
	expect_calm(&a, &o, feed(&a, &b, 0, &o, NULL), "2 CONTINUATION");
	app_free(&a);
	free(b.b);
	free(hb.b);
}
