/* test_access_log.c: the compiled access-log format: atoms, headers both ways, the environment,
 * JSON escaping, and lines for requests the server could not parse (server/access_log.h). */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "server/access_log.h"

static hb_header_t req_headers[] = {
	{"User-Agent", "ua \"q\"\\", 10, 7},
	{"Authorization", "Basic YWxpY2U6c2VjcmV0", 13, 24}, /* alice:secret */
	{"X-Req", "rv", 5, 2},
};

static hb_request_t *request(void)
{
	hb_request_t *r = calloc(1, sizeof(*r));
	r->method = "POST";
	r->method_len = 4;
	r->target = "/p?a=1";
	r->target_len = 6;
	r->path = "/p";
	r->path_len = 2;
	r->query = "a=1";
	r->query_len = 3;
	r->http_major = 1;
	r->http_minor = 1;
	r->headers = req_headers;
	r->nheaders = 3;
	return r;
}

static char line[1024];

static const char *fmt_line(const char *fmt, const hb_access_rec_t *rec)
{
	hb_access_fmt_t *f = hb_access_compile(fmt);
	cr_assert_not_null(f);
	size_t n = hb_access_format(f, line, sizeof(line) - 1, rec, 0);
	line[n] = '\0';
	hb_access_fmt_free(f);
	return line;
}

Test(access_log, atoms)
{
	hb_request_t *r = request();
	hb_header_t rh[] = {{"Content-Type", "text/x", 12, 6}};
	hb_response_t resp = {.status = 201, .headers = rh, .nheaders = 1};
	hb_access_fmt_t *f = hb_access_compile("%({content-type}o)s %({x-none}o)s");
	char **vals = hb_access_keep(f, &resp);
	cr_assert_not_null(vals);
	hb_access_rec_t rec = {.req = r,
			       .remote = "10.0.0.1",
			       .status = 201,
			       .bytes = 0,
			       .dur_ns = 1234567890,
			       .resp_vals = vals,
			       .pid = 42};
	size_t n = hb_access_format(f, line, sizeof(line) - 1, &rec, 0);
	line[n] = '\0';
	cr_assert_str_eq(line, "text/x -");
	hb_access_fmt_free(f);
	free(vals);
	rec.resp_vals = NULL;
	setenv("HB_UNIT_ENV", "ev", 1);
	cr_assert_str_eq(
		fmt_line("%(h)s %(l)s %(u)s \"%(r)s\" %(s)s %(b)s %(B)s %(m)s %(U)s %(q)s "
			 "%(H)s %(T)s %(M)s %(D)s %(L)s %(p)s %({x-req}i)s %({HB_UNIT_ENV}e)s "
			 "%({HB_UNSET_ENV}e)s %(zz)s %(f)s",
			 &rec),
		"10.0.0.1 - alice \"POST /p?a=1 HTTP/1.1\" 201 - 0 POST /p a=1 HTTP/1.1 1 "
		"1234 1234567 1.234567 <42> rv ev - - -");
	cr_assert_str_eq(fmt_line("[%(t)s]", &rec), "[[01/Jan/1970:00:00:00 +0000]]");
	r->http_major = 2;
	r->http_minor = 0;
	cr_assert_str_eq(fmt_line("%(H)s", &rec), "HTTP/2");
	free(r);
}

Test(access_log, unparsed_request)
{
	hb_access_rec_t rec = {.remote = "::1", .status = 400, .pid = 7};
	cr_assert_str_eq(fmt_line("%(h)s \"%(r)s\" %(s)s %(b)s %(a)s %(u)s %(m)s", &rec),
			 "::1 \"-\" 400 - - - -");
	cr_assert_str_eq(
		fmt_line("json", &rec),
		"{\"time\":\"1970-01-01T00:00:00Z\",\"remote_addr\":\"::1\",\"method\":null,"
		"\"path\":null,\"query\":null,\"protocol\":null,\"status\":400,\"bytes\":0,"
		"\"duration\":0.000000,\"referer\":null,\"user_agent\":null,\"user\":null,"
		"\"pid\":7}");
}

Test(access_log, json_escapes)
{
	hb_request_t *r = request();
	hb_access_rec_t rec = {.req = r, .remote = "h", .status = 200, .bytes = 5, .pid = 1};
	const char *l = fmt_line("json", &rec);
	cr_assert_not_null(strstr(l, "\"user_agent\":\"ua \\\"q\\\"\\\\\""), "%s", l);
	cr_assert_not_null(strstr(l, "\"user\":\"alice\""), "%s", l);
	cr_assert_not_null(strstr(l, "\"method\":\"POST\",\"path\":\"/p\",\"query\":\"a=1\""), "%s",
			   l);
	free(r);
}
