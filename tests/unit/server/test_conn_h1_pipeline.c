/* test_conn_h1_pipeline.c: HTTP/1.1 pipelining in the connection layer (server/conn_h1.c),
 * driven through fake socket ops and the real hub (fake_sock.h): the requests a client sent
 * ahead go to the workers together and their responses leave in request order, in one send;
 * a request with a body or Connection: close waits for the ones before it and stops the reading
 * ahead; a bad request behind good ones is answered after their responses; pipeline_depth bounds
 * how many go at once; a response that closes the connection drops the rest unanswered; a head
 * split behind a pipelined request survives the pipeline emptying; a request refused by
 * limit_concurrency gets its 503 in its turn. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/hub.h"
#include "server/conn.h"
#include "server/conn_h1.h"

#define NS 1000000000ull

#include "fake_sock.h"

static const char GET_A[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
static const char GET_B[] = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
static const char GET_CLOSE[] = "GET /close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
static const char POST_BODY[] = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";

static hb_stream_t *takes(const char *target)
{
	hb_stream_t *s = worker_takes();
	cr_assert_eq(s->req->target_len, strlen(target));
	cr_assert_eq(memcmp(s->req->target, target, s->req->target_len), 0, "%.*s, not %s",
		     (int)s->req->target_len, s->req->target, target);
	return s;
}

/* Where needle is on the wire (an offset), or -1. */
static long wire_at(const char *needle)
{
	F.wire[F.wire_len] = 0;
	const char *p = strstr(F.wire, needle);
	return p ? p - F.wire : -1;
}

Test(conn, responses_of_a_burst_leave_in_order_whatever_order_the_app_answers)
{
	char burst[512];
	hb_conn_t *c = open_conn(NULL);

	snprintf(burst, sizeof(burst), "%s%s%s", GET_A, GET_B, GET_A);
	client_sends(c, burst);
	hb_stream_t *a = takes("/a"), *b = takes("/b"), *a2 = takes("/a");
	worker_answers(a2, 200, "third", 5);
	worker_answers(b, 200, "second", 6);
	pump();
	cr_assert_eq(F.sendmsgs, 0, "the first response is not there yet");
	/* the slow first one: head now, its body later */
	cr_assert_eq(hb_stream_send_head(a, response(200, 5)), 0);
	pump();
	send_everything(c);
	cr_assert(wire_at("second") < 0, "nothing of a later response before the first ends");
	cr_assert_eq(hb_stream_send_body(a, "first", 5), 0);
	cr_assert_eq(hb_stream_end(a, 0), 0);
	pump();
	send_everything(c);
	long p1 = wire_at("first"), p2 = wire_at("second"), p3 = wire_at("third");
	cr_assert(p1 >= 0 && p1 < p2 && p2 < p3, "in request order: %s", F.wire);
	cr_assert_eq(io.h1_cached, 1, "idle again: the parser went back to the cache");
	hb_stream_release(a);
	hb_stream_release(b);
	hb_stream_release(a2);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, a_head_split_behind_a_pipelined_request_is_kept)
{
	char burst[512];
	hb_conn_t *c = open_conn(NULL);

	snprintf(burst, sizeof(burst), "%sGET /b HTTP/1.1\r\nHo", GET_A);
	client_sends(c, burst); /* /a and the start of /b, read ahead into the parser */
	hb_stream_t *a = takes("/a");
	worker_answers(a, 200, "A", 1);
	pump();
	send_everything(c); /* /a is finished: the parser keeps the half head */
	cr_assert_eq(io.h1_cached, 0, "the parser holds /b's start");
	client_sends(c, "st: x\r\n\r\n");
	hb_stream_t *b = takes("/b");
	worker_answers(b, 200, "B", 1);
	pump();
	send_everything(c);
	cr_assert(wire_at("\r\n\r\nA") < wire_at("\r\n\r\nB"), "%s", F.wire);
	cr_assert(wire_at("400") < 0, "%s", F.wire);
	hb_stream_release(a);
	hb_stream_release(b);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, a_request_with_a_body_waits_for_the_ones_before_it)
{
	char burst[512];
	hb_conn_t *c = open_conn(NULL);

	snprintf(burst, sizeof(burst), "%s%s%s", GET_A, POST_BODY, GET_B);
	client_sends(c, burst);
	hb_stream_t *a = takes("/a");
	worker_has_request(); /* the POST waits, and nothing after it is read */
	worker_answers(a, 200, "A", 1);
	pump();
	worker_has_request(); /* still: /a's response is not sent yet */
	send_everything(c);
	hb_stream_t *up = takes("/up");
	worker_has_request(); /* /b waits for the POST */
	worker_answers(up, 201, "U", 1);
	pump();
	send_everything(c);
	hb_stream_t *b = takes("/b");
	worker_answers(b, 200, "B", 1);
	pump();
	send_everything(c);
	cr_assert(wire_at("\r\n\r\nA") < wire_at("201 Created") &&
			  wire_at("201 Created") < wire_at("\r\n\r\nB"),
		  "%s", F.wire);
	hb_stream_release(a);
	hb_stream_release(up);
	hb_stream_release(b);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, connection_close_in_the_middle_ends_the_pipeline_there)
{
	char burst[512];
	hb_conn_t *c = open_conn(NULL);

	snprintf(burst, sizeof(burst), "%s%s%s", GET_A, GET_CLOSE, GET_B);
	client_sends(c, burst);
	hb_stream_t *a = takes("/a");
	worker_has_request();
	worker_answers(a, 200, "A", 1);
	pump();
	send_everything(c);
	hb_stream_t *cl = takes("/close");
	worker_answers(cl, 200, "C", 1);
	pump();
	send_everything(c);
	worker_has_request(); /* /b is never served */
	cr_assert(wire_at("Connection: close") > wire_at("\r\n\r\nA"), "%s", F.wire);
	cr_assert(wire_at("/b") < 0 && wire_at("\r\n\r\nB") < 0);
	cr_assert_eq(F.shutdowns, 1, "the connection closes after the close request's response");
	hb_stream_release(a);
	hb_stream_release(cl);
	hb_conn_recv_done(c, 0, 0, NULL);
	hb_conn_shutdown_done(c, 0);
	cr_assert_eq(F.closes, 1);
}

Test(conn, a_bad_request_behind_good_ones_is_answered_after_them)
{
	char burst[512];
	hb_conn_t *c = open_conn(NULL);

	snprintf(burst, sizeof(burst), "%s%sGET /x HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n%s",
		 GET_A, GET_B, GET_A);
	client_sends(c, burst);
	hb_stream_t *a = takes("/a"), *b = takes("/b");
	worker_has_request(); /* nothing after the bad one */
	worker_answers(b, 200, "B", 1);
	pump();
	cr_assert_eq(F.sendmsgs, 0);
	worker_answers(a, 200, "A", 1);
	pump();
	send_everything(c);
	pump(); /* the io loop's next pass: the 400 that followed the sent responses */
	send_everything(c);
	long pa = wire_at("\r\n\r\nA"), pb = wire_at("\r\n\r\nB"), pe = wire_at("400 Bad Request");
	cr_assert(pa >= 0 && pa < pb && pb < pe, "the 400 after both responses: %s", F.wire);
	cr_assert_eq(F.shutdowns, 1, "and the connection closes");
	hb_stream_release(a);
	hb_stream_release(b);
	hb_conn_recv_done(c, 0, 0, NULL);
	hb_conn_shutdown_done(c, 0);
	cr_assert_eq(F.closes, 1);
}

Test(conn, pipeline_depth_bounds_the_requests_handed_on_at_once)
{
	char burst[512];

	cfg.pipeline_depth = 2;
	hb_conn_t *c = open_conn(NULL);
	snprintf(burst, sizeof(burst), "%s%s%s", GET_A, GET_B, GET_A);
	client_sends(c, burst);
	hb_stream_t *a = takes("/a"), *b = takes("/b");
	worker_has_request(); /* the third waits for room */
	worker_answers(a, 200, "A", 1);
	worker_answers(b, 200, "B", 1);
	pump();
	send_everything(c);
	hb_stream_t *a2 = takes("/a");
	worker_answers(a2, 200, "A2", 2);
	pump();
	send_everything(c);
	cr_assert(wire_at("\r\n\r\nB") < wire_at("\r\n\r\nA2"), "%s", F.wire);
	hb_stream_release(a);
	hb_stream_release(b);
	hb_stream_release(a2);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, a_response_that_closes_drops_the_requests_after_it)
{
	char burst[512];
	hb_conn_t *c = open_conn(NULL);

	snprintf(burst, sizeof(burst), "%s%s", GET_A, GET_B);
	client_sends(c, burst);
	hb_stream_t *a = takes("/a"), *b = takes("/b");
	worker_answers(b, 200, "B", 1); /* held */
	hb_response_t *r = response(200, 1);
	r->flags |= HB_RESP_CLOSE; /* the app asks for the close */
	cr_assert_eq(hb_stream_send_head(a, r), 0);
	cr_assert_eq(hb_stream_send_body(a, "A", 1), 0);
	cr_assert_eq(hb_stream_end(a, 0), 0);
	pump();
	send_everything(c);
	cr_assert(wire_at("\r\n\r\nA") >= 0 && wire_at("\r\n\r\nB") < 0, "%s", F.wire);
	cr_assert_eq(F.shutdowns, 1);
	hb_stream_release(a);
	hb_stream_release(b);
	hb_conn_recv_done(c, 0, 0, NULL);
	hb_conn_shutdown_done(c, 0);
	cr_assert_eq(F.closes, 1, "freed: the dropped exchange ended too");
}

Test(conn, a_request_refused_for_limit_concurrency_is_answered_in_its_turn)
{
	char burst[512];

	cfg.limit_concurrency = 1;
	hb_conn_t *c = open_conn(NULL);
	snprintf(burst, sizeof(burst), "%s%s", GET_A, GET_B);
	client_sends(c, burst);
	hb_stream_t *a = takes("/a");
	worker_has_request(); /* /b is over the limit: refused, not dispatched */
	pump();
	cr_assert_eq(F.sendmsgs, 0, "its 503 waits for /a's response");
	worker_answers(a, 200, "A", 1);
	pump();
	send_everything(c);
	cr_assert(wire_at("\r\n\r\nA") >= 0 && wire_at("\r\n\r\nA") < wire_at("503 "), "%s",
		  F.wire);
	client_sends(c, GET_B); /* the connection stays, and the limit has room again */
	hb_stream_t *b = takes("/b");
	worker_answers(b, 200, "B", 1);
	pump();
	send_everything(c);
	cr_assert(wire_at("503 ") < wire_at("\r\n\r\nB"), "%s", F.wire);
	hb_stream_release(a);
	hb_stream_release(b);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, a_timeout_of_the_first_closes_without_waiting_for_the_rest)
{
	char burst[512];

	cfg.timeout_ms = 1000;
	hb_conn_t *c = open_conn(NULL);
	snprintf(burst, sizeof(burst), "%s%s", GET_A, GET_B);
	client_sends(c, burst);
	hb_stream_t *a = takes("/a"), *b = takes("/b");
	io.ring.now_ns += 2 * NS;
	hb_conn_tick(c, io.ring.now_ns);
	pump();
	send_everything(c);
	cr_assert(wire_at("504 ") >= 0, "%s", F.wire);
	cr_assert_eq(F.shutdowns, 1, "no app is waited for: both are abandoned");
	hb_stream_end(a, 0);
	hb_stream_end(b, 0);
	pump();
	cr_assert(wire_at("\r\n\r\nA") < 0 && wire_at("\r\n\r\nB") < 0, "%s", F.wire);
	hb_stream_release(a);
	hb_stream_release(b);
	hb_conn_recv_done(c, 0, 0, NULL);
	hb_conn_shutdown_done(c, 0);
	cr_assert_eq(F.closes, 1);
}
