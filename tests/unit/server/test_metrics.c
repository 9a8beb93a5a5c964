/* test_metrics.c: bucket parsing, request counting into the histogram, the exposition and the
 * metrics bind's answers (server/metrics.h, server/metrics_http.h). */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/hub.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/server.h"

Test(metrics, buckets_parse)
{
	uint64_t b[HB_CONFIG_MAX_BUCKETS];

	cr_assert_eq(hb_config_parse_buckets("0.005, 0.1,1", b, HB_CONFIG_MAX_BUCKETS), 3);
	cr_assert_eq(b[0], 5000000ull);
	cr_assert_eq(b[1], 100000000ull);
	cr_assert_eq(b[2], 1000000000ull);
	cr_assert_eq(hb_config_parse_buckets("0.1,0.1", b, 32), -EINVAL); /* not increasing */
	cr_assert_eq(hb_config_parse_buckets("-1,2", b, 32), -EINVAL);	  /* not positive */
	cr_assert_eq(hb_config_parse_buckets("1,x", b, 32), -EINVAL);	  /* not a number */
	cr_assert_eq(hb_config_parse_buckets("", b, 32), -EINVAL);	  /* empty */
	cr_assert_eq(hb_config_parse_buckets("1,2,3", b, 2), -EINVAL);	  /* too many */
}

static hb_server_t *fake_server(hb_config_t *cfg)
{
	hb_server_t *srv = calloc(1, sizeof(*srv));
	memset(cfg, 0, sizeof(*cfg));
	srv->cfg = cfg;
	srv->nio = 2;
	srv->hub = hb_hub_new(2, 2);
	cr_assert_not_null(srv->hub);
	return srv;
}

Test(metrics, requests_land_in_their_bucket_and_render)
{
	hb_config_t cfg;
	hb_server_t *srv = fake_server(&cfg);
	hb_metrics_t *m = hb_metrics_new(srv, "0.01,0.1", NULL);
	cr_assert_not_null(m);
	hb_metrics_io_t *a = hb_metrics_io(m, 0), *b = hb_metrics_io(m, 1);

	cr_assert_eq((uintptr_t)a % 64, 0);
	cr_assert_eq((uintptr_t)b % 64, 0);
	hb_metrics_request(a, "GET", 3, 200, 5000000);	   /* 5 ms: le 0.01 */
	hb_metrics_request(b, "GET", 3, 404, 50000000);	   /* 50 ms: le 0.1 */
	hb_metrics_request(b, "BREW", 4, 503, 2000000000); /* 2 s: +Inf, method other */
	hb_metrics_request(a, NULL, 0, 400, 0);
	hb_mgauge_add(&a->conns[HB_MP_H2], 2);
	hb_mgauge_add(&b->conns[HB_MP_H2], -1);
	char *text = NULL;
	long n = hb_metrics_render(m, &text);
	cr_assert_gt(n, 0);
	cr_assert_not_null(
		strstr(text, "hornbeam_requests_total{method=\"GET\",status=\"2xx\"} 1\n"));
	cr_assert_not_null(
		strstr(text, "hornbeam_requests_total{method=\"GET\",status=\"4xx\"} 1\n"));
	cr_assert_not_null(
		strstr(text, "hornbeam_requests_total{method=\"other\",status=\"5xx\"} 1\n"));
	cr_assert_not_null(
		strstr(text, "hornbeam_requests_total{method=\"other\",status=\"4xx\"} 1\n"));
	cr_assert_not_null(strstr(text, "_bucket{le=\"0.01\"} 2\n"));
	cr_assert_not_null(strstr(text, "_bucket{le=\"0.1\"} 3\n"));
	cr_assert_not_null(strstr(text, "_bucket{le=\"+Inf\"} 4\n"));
	cr_assert_not_null(strstr(text, "hornbeam_request_duration_seconds_sum 2.055000000\n"));
	cr_assert_not_null(strstr(text, "hornbeam_connections{protocol=\"h2\"} 1\n"));
	cr_assert_not_null(strstr(text, "hornbeam_ready 0\n"));
	cr_assert_null(strstr(text, "hornbeam_state_entries")); /* no state source */
	free(text);
	hb_metrics_free(m);
	hb_hub_free(srv->hub);
	free(srv);
}

Test(metrics, http_answers)
{
	hb_config_t cfg;
	hb_server_t *srv = fake_server(&cfg);
	hb_metrics_t *m = hb_metrics_new(srv, NULL, NULL);
	const char *ctype;
	char *body;
	long blen;
	int owned, head_only;
#define ASK(h) hb_metrics_http_answer(m, h, strlen(h), &ctype, &body, &blen, &owned, &head_only)

	cr_assert_eq(ASK("GET /healthz HTTP/1.1\r\n\r\n"), 200);
	cr_assert_eq(ASK("GET /readyz HTTP/1.1\r\n\r\n"), 503); /* not marked ready */
	hb_metrics_set_ready(m, 1);
	cr_assert_eq(ASK("GET /readyz HTTP/1.1\r\n\r\n"), 503); /* no worker accepting */
	atomic_store(&hb_hub_worker(srv->hub, 1)->accepting, 1);
	cr_assert_eq(ASK("GET /readyz?verbose HTTP/1.1\r\n\r\n"), 200);
	atomic_store(&srv->draining, 1);
	cr_assert_eq(ASK("GET /readyz HTTP/1.1\r\n\r\n"), 503);
	cr_assert_eq(ASK("HEAD /metrics HTTP/1.1\r\n\r\n"), 200);
	cr_assert(head_only && owned);
	cr_assert_not_null(strstr(ctype, "version=0.0.4"));
	free(body);
	cr_assert_eq(ASK("DELETE /metrics HTTP/1.1\r\n\r\n"), 405);
	cr_assert_eq(ASK("GET /other HTTP/1.1\r\n\r\n"), 404);
	cr_assert_eq(ASK("GET\r\n\r\n"), 400);
	hb_metrics_free(m);
	hb_hub_free(srv->hub);
	free(srv);
}
