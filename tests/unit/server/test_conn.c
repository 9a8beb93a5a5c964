/* test_conn.c: the connection state machine driven through fake socket ops (no socket, no
 * ring): the test completes each submitted op itself, plays the worker through the real hub and
 * stream API, and reads what would have gone on the wire. Covers op accounting (freed only when
 * no op is in flight), the output queue with send_zc (partial sends, notifications before free)
 * and splice, the close handshake (shutdown after the output drains, then the linger), reading
 * paused by an unread body until RESUME, an HTTP/1.1 exchange, pipelining order, the WebSocket
 * upgrade swapping the handler, a transport without splice/send_zc getting every byte
 * through its write, and the io thread's caches (parsers, iovecs) that idle connections do not
 * hold. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/hub.h"
#include "server/conn.h"
#include "server/conn_h1.h"
#include "server/conn_ws.h"

#define NS 1000000000ull

#include "fake_sock.h"

static const char GET_A[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
static const char GET_B[] = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";

/* ---- tests -------------------------------------------------------------------------------- */

Test(conn, h1_request_response_through_worker_messages)
{
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, GET_A);
	cr_assert_eq(c->handler, &hb_h1_handler, "the first bytes chose HTTP/1.1");
	hb_stream_t *s = worker_takes();
	cr_assert_eq(s->req->target_len, 2);
	cr_assert_eq(memcmp(s->req->target, "/a", 2), 0);
	cr_assert_str_eq(s->req->scheme, "http");
	hb_exchange_t *x = s->exchange;
	cr_assert_eq(x->conn, c, "the stream finds its exchange and connection");
	worker_answers(s, 200, "hello", 5);
	pump();
	cr_assert_eq(F.sendmsgs, 1, "head and body in one sendmsg");
	cr_assert_eq(F.last_iovlen, 1, "the small body joined the head's segment: one iovec");
	send_everything(c);
	cr_assert(wire_has("HTTP/1.1 200 OK\r\n"), "%s", F.wire);
	cr_assert(wire_has("Content-Length: 5\r\n"), "%s", F.wire);
	cr_assert(wire_has("\r\n\r\nhello"), "%s", F.wire);
	cr_assert_null(c->exchanges, "the exchange is released once its response is sent");
	cr_assert_eq(atomic_load(&s->out_pending), 0);
	hb_stream_release(s);
	/* keep-alive: the same connection serves a chunked response next */
	client_sends(c, GET_B);
	s = worker_takes();
	worker_answers(s, 200, "hey", -1);
	pump();
	send_everything(c);
	cr_assert(wire_has("Transfer-Encoding: chunked\r\n\r\n3\r\nhey\r\n0\r\n\r\n"), "%s",
		  F.wire);
	hb_stream_release(s);
	hb_conn_recv_done(c, 0, 0, NULL); /* the client closes */
	cr_assert_eq(F.aborts, 1);
	cr_assert_eq(F.closes, 1, "nothing in flight: freed");
}

/* An idle keep-alive connection holds neither an HTTP/1.1 parser nor sendmsg iovecs: the parser
 * goes to the io thread's cache once the response is sent and the next request's bytes (on this
 * or another connection) take it back; the iovecs are the io's only while a sendmsg is in flight.
 */
Test(conn, idle_connection_returns_its_parser_and_iovecs_to_the_io_cache)
{
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, "GET /a HTTP/1.1\r\nHo");
	cr_assert_eq(io.h1_cached, 0, "a head in progress keeps its parser");
	client_sends(c, "st: x\r\n\r\n");
	hb_stream_t *s = worker_takes();
	worker_answers(s, 200, "hello", 5);
	pump();
	cr_assert_not_null(c->iov, "a sendmsg in flight has its iovecs");
	cr_assert_eq(io.iov_cached, 0);
	send_everything(c);
	hb_stream_release(s);
	cr_assert_null(c->iov, "no sendmsg in flight: the iovecs are back");
	cr_assert_eq(io.iov_cached, 1);
	cr_assert_eq(io.h1_cached, 1, "idle between requests: the parser is back");
	cr_assert_null(c->in, "and no input backlog buffer");

	/* another connection takes the cached parser and gives it back */
	hb_conn_t *c2 = hb_conn_new_with(&io, 98, &hb_transport_plain, &fake_ops);
	cr_assert_not_null(c2);
	client_sends(c2, GET_B);
	cr_assert_eq(io.h1_cached, 0);
	s = worker_takes();
	cr_assert_eq(memcmp(s->req->target, "/b", 2), 0);
	worker_answers(s, 200, "B", 1);
	pump();
	send_everything(c2);
	hb_stream_release(s);
	cr_assert_eq(io.h1_cached, 1);

	/* the first connection's next request parses from a clean parser */
	client_sends(c, GET_A);
	s = worker_takes();
	cr_assert_eq(memcmp(s->req->target, "/a", 2), 0);
	cr_assert_eq(s->req->nheaders, 1);
	worker_answers(s, 200, "again", 5);
	pump();
	send_everything(c);
	hb_stream_release(s);
	cr_assert(wire_has("\r\n\r\nagain"), "%s", F.wire);
	cr_assert_eq(io.h1_cached, 1);
	cr_assert_eq(io.iov_cached, 1, "one array served every send");
	hb_conn_recv_done(c, 0, 0, NULL);
	hb_conn_recv_done(c2, 0, 0, NULL);
	cr_assert_eq(F.closes, 2);
}

Test(conn, pipelined_requests_are_answered_in_order)
{
	char both[256];
	hb_conn_t *c = open_conn(NULL);

	snprintf(both, sizeof(both), "%s%s", GET_A, GET_B);
	client_sends(c, both);
	hb_stream_t *a = worker_takes();
	cr_assert_eq(memcmp(a->req->target, "/a", 2), 0);
	hb_stream_t *b = worker_takes(); /* handed on with /a: both were complete */
	cr_assert_eq(memcmp(b->req->target, "/b", 2), 0);
	worker_answers(b, 200, "B", 1); /* the second answers first: held */
	pump();
	cr_assert_eq(F.sendmsgs, 0, "nothing before /a's response");
	worker_answers(a, 200, "A", 1);
	pump();
	cr_assert_eq(F.sendmsgs, 1, "both responses in one send");
	/* A's head and body, then B's head, in one segment; B's body is B's stream's to account */
	cr_assert_eq(F.last_iovlen, 2);
	send_everything(c);
	F.wire[F.wire_len] = 0;
	char *ra = strstr(F.wire, "\r\n\r\nA"), *rb = strstr(F.wire, "\r\n\r\nB");
	cr_assert(ra && rb && ra < rb, "responses in request order: %s", F.wire);
	hb_stream_release(a);
	hb_stream_release(b);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, a_body_the_app_does_not_read_pauses_reading_until_resume)
{
	static char chunk[16384];
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n");
	hb_stream_t *s = worker_takes();
	memset(chunk, 'b', sizeof(chunk));
	int sent = 0;
	while (!c->recv_paused && sent < 64) {
		hb_conn_recv_done(c, (int)sizeof(chunk), 1, chunk);
		sent++;
	}
	cr_assert(c->recv_paused, "reading pauses");
	cr_assert_geq((uint64_t)sent * sizeof(chunk), HB_STREAM_BODY_HIGH,
		      "not before the watermark");
	cr_assert_eq(F.recv_cancels, 1, "the armed recv is cancelled");
	hb_conn_recv_done(c, -ECANCELED, 0, NULL);
	cr_assert_eq(F.recv_arms, 1, "and not armed again while paused");
	/* The app reads: below the low watermark it posts RESUME, and reading goes on. */
	char buf[65536];
	while (atomic_load(&s->body_queued) > HB_STREAM_BODY_LOW)
		cr_assert_gt(hb_stream_body_read(s, buf, sizeof(buf), 0), 0);
	cr_assert_gt(hb_stream_body_read(s, buf, sizeof(buf), 0), 0);
	pump();
	cr_assert_not(c->recv_paused);
	cr_assert_eq(F.recv_arms, 2, "reading again after RESUME");
	cr_assert_eq(hb_stream_end(s, 0), 0); /* the app returns without a head */
	pump();
	send_everything(c);
	cr_assert(wire_has("HTTP/1.1 500 "), "%s", F.wire);
	cr_assert_eq(F.shutdowns, 1, "the unread body is not waited for: close");
	hb_stream_release(s);
	hb_conn_shutdown_done(c, 0);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, freed_only_when_no_op_is_in_flight)
{
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, GET_A);
	hb_stream_t *s = worker_takes();
	worker_answers(s, 200, "hello", 5);
	pump();
	cr_assert_eq(c->ops, 2, "recv + sendmsg");
	/* The client resets: recv ends; the sendmsg is still in flight. */
	hb_conn_recv_done(c, -ECONNRESET, 0, NULL);
	cr_assert_eq(F.aborts, 1);
	cr_assert_eq(c->ops, 1);
	cr_assert_eq(F.closes, 0, "not freed while the sendmsg is in flight");
	cr_assert_null(c->exchanges, "the ended exchange is released at once");
	F.send_pending = 0;
	hb_conn_send_done(c, -EPIPE);
	cr_assert_eq(F.closes, 1, "freed with the last completion");
	hb_stream_release(s);
}

Test(conn, dead_connection_waits_for_the_app_to_end)
{
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, GET_A);
	hb_stream_t *s = worker_takes();
	hb_conn_recv_done(c, 0, 0, NULL); /* the client leaves mid-request */
	cr_assert(atomic_load(&s->state) & HB_ST_CLIENT_GONE, "the app hears it");
	cr_assert_eq(c->ops, 0);
	cr_assert_eq(F.closes, 0, "the exchange is live: the connection stays");
	hb_response_t *r = response(200, 4);
	cr_assert_eq(hb_stream_send_head(s, r), -ECONNRESET, "the worker API refuses");
	cr_assert_eq(hb_stream_end(s, HB_END_ABORT), 0);
	pump();
	cr_assert_eq(F.closes, 1, "END released the exchange and the connection");
	cr_assert_eq(F.sendmsgs, 0);
	hb_stream_release(s);
}

Test(conn, send_zc_partial_sends_and_notifications_before_free)
{
	static char body[8192 + 1];
	hb_conn_t *c = open_conn(NULL);

	cfg.zerocopy_threshold = 4096;
	memset(body, 'z', 8192);
	client_sends(c, GET_A);
	hb_stream_t *s = worker_takes();
	worker_answers(s, 200, body, 8192);
	pump();
	cr_assert_eq(F.sendmsgs, 1, "the small head goes with sendmsg");
	cr_assert_eq(F.zcs, 0);
	send_completes(c, F.offer_len);
	cr_assert_eq(F.zcs, 1, "the large owned body goes with send_zc");
	cr_assert_eq(F.offer_len, 8192);
	/* Partly sent, a notification to come: the rest must go zero-copy too. */
	F.zc_pending = 0;
	hb_conn_zc_done(c, 3000, 1);
	cr_assert_eq(F.zcs, 2);
	cr_assert_eq(F.offer_len, 8192 - 3000);
	cr_assert_neq(atomic_load(&s->out_pending), 0, "not counted as sent before it is");
	F.zc_pending = 0;
	hb_conn_zc_done(c, 8192 - 3000, 1);
	cr_assert_eq(atomic_load(&s->out_pending), 0, "sent: the app may produce more");
	cr_assert_null(c->exchanges);
	hb_stream_release(s);
	/* The client leaves: the memory still waits for two notifications. */
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.aborts, 1);
	cr_assert_eq(c->ops, 2, "one op per notification to come");
	hb_conn_zc_notified(c);
	hb_conn_maybe_free(c);
	cr_assert_eq(F.closes, 0, "a notification is still to come");
	hb_conn_zc_notified(c);
	hb_conn_maybe_free(c);
	cr_assert_eq(F.closes, 1);
}

/* A TCP connection over 127.0.0.1: (client fd, accepted fd). */
static void loopback_pair(int *cl, int *sv)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(l, 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
	*cl = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(*cl, (struct sockaddr *)&a, sizeof(a)), 0);
	*sv = accept(l, NULL, NULL);
	cr_assert_geq(*sv, 0);
	close(l);
}

Test(conn, no_send_zc_to_a_loopback_peer)
{
	static char body[8192 + 1];
	int cl, sv;

	loopback_pair(&cl, &sv);
	hb_conn_t *c = hb_conn_new_with(&io, sv, &hb_transport_plain, &fake_ops);
	cr_assert_not_null(c);
	cfg.zerocopy_threshold = 4096;
	memset(body, 'z', 8192);
	client_sends(c, GET_A);
	hb_stream_t *s = worker_takes();
	worker_answers(s, 200, body, 8192);
	pump();
	send_everything(c);
	cr_assert_eq(F.zcs, 0, "loopback copies anyway: no send_zc for 127.0.0.1");
	cr_assert_eq(F.sendmsgs, 1, "head and the large body in one plain sendmsg");
	cr_assert_eq(F.last_iovlen, 2, "a body over the head's room is not copied onto it");
	cr_assert_gt(F.wire_len, 8192);
	cr_assert(c->peer_local);
	cr_assert_str_eq(c->remote, "127.0.0.1");
	hb_stream_release(s);
	hb_conn_recv_done(c, 0, 0, NULL); /* the client closes: nothing in flight, freed */
	cr_assert_eq(F.closes, 1);
	close(sv);
	close(cl);
}

static int tmp_file(size_t len)
{
	char path[] = "/tmp/hb-test-conn-XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(write(fd, "f", 1), 1);
	return fd;
}

Test(conn, file_regions_go_by_splice_through_a_pipe)
{
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, GET_A);
	hb_stream_t *s = worker_takes();
	cr_assert_eq(hb_stream_send_head(s, response(200, 10000)), 0);
	cr_assert_eq(hb_stream_send_file(s, tmp_file(10000), 0, 10000), 0);
	cr_assert_eq(hb_stream_end(s, 0), 0);
	pump();
	send_completes(c, F.offer_len); /* the head */
	cr_assert_eq(F.splices[0], 1, "file -> pipe");
	cr_assert_eq(F.splice_len[0], 10000);
	cr_assert_eq(F.splice_off, 0);
	hb_conn_splice_done(c, 0, 4000); /* 4000 bytes reached the pipe */
	cr_assert_eq(F.splices[1], 1, "pipe -> socket");
	cr_assert_eq(F.splice_fd[1], c->pipefd[0]);
	cr_assert_eq(F.splice_len[1], 4000);
	hb_conn_splice_done(c, 1, 1500); /* the socket took part of it */
	cr_assert_eq(F.splices[1], 2);
	cr_assert_eq(F.splice_len[1], 2500, "the rest of the pipe first");
	hb_conn_splice_done(c, 1, 2500);
	cr_assert_eq(F.splices[0], 2, "then the next piece of the file");
	cr_assert_eq(F.splice_off, 4000);
	cr_assert_eq(F.splice_len[0], 6000);
	cr_assert_not_null(c->exchanges, "not done before the last byte");
	hb_conn_splice_done(c, 0, 6000);
	hb_conn_splice_done(c, 1, 6000);
	cr_assert_null(c->exchanges, "the response is complete");
	cr_assert_eq(c->ops, 1);
	hb_stream_release(s);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, close_handshake_shuts_down_after_the_output_then_lingers)
{
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, "BAD REQUEST\r\n\r\n");
	cr_assert_eq(c->state, HB_CONN_CLOSING);
	pump();
	cr_assert_eq(F.sendmsgs, 1, "the 400 is queued");
	cr_assert_eq(F.shutdowns, 0, "no shutdown before the answer is sent");
	send_completes(c, 5);
	cr_assert_eq(F.shutdowns, 0, "nor while part of it waits");
	send_everything(c);
	cr_assert(wire_has("HTTP/1.1 400 "), "%s", F.wire);
	cr_assert_eq(F.shutdowns, 1, "shutdown(SHUT_WR) once the output drained");
	cr_assert_eq(c->ops, 2, "recv + shutdown");
	hb_conn_shutdown_done(c, 0);
	/* Input keeps being read and discarded during the linger. */
	client_sends(c, GET_A);
	worker_has_request();
	cr_assert_eq(F.aborts, 0);
	hb_conn_tick(c, io.ring.now_ns + HB_CONN_LINGER_NS / 2);
	cr_assert_eq(F.aborts, 0, "still lingering");
	hb_conn_tick(c, io.ring.now_ns + HB_CONN_LINGER_NS + 1);
	cr_assert_eq(F.aborts, 1, "the linger is over");
	cr_assert_eq(F.closes, 0, "the recv is still armed");
	hb_conn_recv_done(c, -ECANCELED, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

/* A masked client frame (RFC 6455 5.3). */
static size_t client_frame(char *out, unsigned op, const char *p, size_t len)
{
	static const unsigned char mask[4] = {1, 2, 3, 4};

	out[0] = (char)(0x80 | op);
	out[1] = (char)(0x80 | len);
	memcpy(out + 2, mask, 4);
	for (size_t i = 0; i < len; i++)
		out[6 + i] = (char)(p[i] ^ mask[i % 4]);
	return 6 + len;
}

Test(conn, websocket_upgrade_swaps_the_handler)
{
	srv.app_class = HB_WORKER_ASGI;
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			"Sec-WebSocket-Version: 13\r\n\r\n");
	hb_stream_t *s = worker_takes();
	cr_assert(s->req->flags & HB_REQ_CHANNEL);
	cr_assert_eq(c->handler, &hb_h1_handler);
	cr_assert_eq(hb_stream_send_head(s, response(101, -1)), 0);
	pump();
	cr_assert_eq(c->handler, &hb_ws_handler, "the 101 swapped the handler");
	send_everything(c);
	cr_assert(wire_has("HTTP/1.1 101 Switching Protocols\r\n"), "%s", F.wire);
	cr_assert(wire_has("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "%s", F.wire);
	cr_assert(atomic_load(&s->state) & HB_ST_MSG_OPEN);
	/* A frame from the client reaches the app as a message... */
	char fr[64];
	size_t n = client_frame(fr, 0x1, "hi", 2);
	fr[n] = 0;
	hb_conn_recv_done(c, (int)n, 1, fr);
	hb_chunk_t *msg = NULL;
	uint32_t kind = 0;
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), 0);
	cr_assert_eq(kind, HB_MSGK_TEXT);
	cr_assert_eq(msg->len, 2);
	cr_assert_eq(memcmp(msg->data, "hi", 2), 0);
	free(msg);
	/* ... and the app's message goes out as a frame. */
	size_t before = F.wire_len;
	cr_assert_eq(hb_stream_msg_send(s, HB_MSGK_TEXT, "yo", 2, 1), 0);
	pump();
	send_everything(c);
	cr_assert_eq(F.wire_len - before, 4);
	cr_assert_eq(memcmp(F.wire + before, "\x81\x02yo", 4), 0);
	/* The app returns: close 1000, then the connection closes after the output. */
	cr_assert_eq(hb_stream_end(s, 0), 0);
	pump();
	send_everything(c);
	cr_assert_eq(memcmp(F.wire + before + 4, "\x88\x02\x03\xe8", 4), 0, "close 1000");
	cr_assert_null(c->exchanges);
	cr_assert_eq(c->state, HB_CONN_CLOSING);
	cr_assert_eq(F.shutdowns, 1);
	hb_stream_release(s);
	hb_conn_shutdown_done(c, 0);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, websocket_close_from_the_client_waits_for_the_app)
{
	srv.app_class = HB_WORKER_ASGI;
	hb_conn_t *c = open_conn(NULL);

	client_sends(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			"Sec-WebSocket-Version: 13\r\n\r\n");
	hb_stream_t *s = worker_takes();
	cr_assert_eq(hb_stream_send_head(s, response(101, -1)), 0);
	pump();
	send_everything(c);
	char fr[64];
	size_t n = client_frame(fr, 0x8, "\x03\xe8", 2); /* close 1000 */
	hb_conn_recv_done(c, (int)n, 1, fr);
	pump();
	send_everything(c);
	cr_assert_eq(c->state, HB_CONN_CLOSING);
	cr_assert_eq(memcmp(F.wire + F.wire_len - 4, "\x88\x02\x03\xe8", 4), 0, "close echoed");
	hb_chunk_t *msg = NULL;
	uint32_t kind = 0;
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), 0);
	cr_assert_eq(kind, HB_MSGK_CLOSE, "the app hears the close");
	free(msg);
	cr_assert_eq(F.shutdowns, 0, "no shutdown while the app still runs");
	cr_assert_eq(hb_stream_end(s, 0), 0);
	pump();
	cr_assert_eq(F.shutdowns, 1, "the app returned: shutdown");
	cr_assert_null(c->exchanges);
	hb_stream_release(s);
	hb_conn_shutdown_done(c, 0);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

/* ---- a transport that must see every byte (as TLS does) ---------------------------------- */

static int t_writes;

static int t_recv(hb_conn_t *c, char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)(p[i] ^ 0x80); /* "decrypt" */
	hb_conn_deliver(c, p, len);
	return 0;
}

static int t_write(hb_conn_t *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
		   uint64_t acct_len)
{
	char *rec = malloc(len + 1);

	t_writes++;
	rec[0] = '|'; /* a "record" marker per write */
	memcpy(rec + 1, p, len);
	free(owned);
	hb_conn_out_bytes(c, rec, len + 1, rec, acct, acct_len);
	return 0;
}

static const hb_transport_t test_transport = {
	.name = "test",
	.caps = 0,
	.secure = 1,
	.on_recv = t_recv,
	.write = t_write,
};

Test(conn, a_transport_without_caps_gets_every_byte_through_write)
{
	static char body[8192 + 1];
	char req[64];
	hb_conn_t *c = open_conn(&test_transport);

	cfg.zerocopy_threshold = 4096;
	memset(body, 'z', 8192);
	size_t n = strlen(GET_A);
	for (size_t i = 0; i < n; i++)
		req[i] = (char)(GET_A[i] ^ 0x80);
	req[n] = 0;
	client_sends(c, req);
	hb_stream_t *s = worker_takes();
	cr_assert_str_eq(s->req->scheme, "https");
	cr_assert_eq(hb_stream_send_head(s, response(200, 8192 + 5000)), 0);
	cr_assert_eq(hb_stream_send_body(s, body, 8192), 0);
	cr_assert_eq(hb_stream_send_file(s, tmp_file(5000), 0, 5000), 0);
	cr_assert_eq(hb_stream_end(s, 0), 0);
	t_writes = 0;
	pump();
	send_everything(c);
	cr_assert_eq(F.zcs, 0, "no send_zc without HB_TRANSPORT_SEND_ZC");
	cr_assert_eq(F.splices[0] + F.splices[1], 0, "no splice without HB_TRANSPORT_SPLICE");
	cr_assert_eq(t_writes, 1, "head, body, file: gathered into one transport write");
	cr_assert(wire_has("|HTTP/1.1 200 OK"), "%s", F.wire);
	cr_assert_eq(F.wire_len, (size_t)(strstr(F.wire, "\r\n\r\n") + 4 - F.wire) + 8192 + 5000,
		     "every byte once");
	cr_assert_eq(atomic_load(&s->out_pending), 0);
	cr_assert_null(c->exchanges);
	hb_stream_release(s);
	hb_conn_recv_done(c, 0, 0, NULL);
	cr_assert_eq(F.closes, 1);
}

Test(conn, gathered_bytes_of_a_forgotten_stream_are_not_charged_to_the_next_one)
{
	hb_conn_t *c = open_conn(&test_transport);
	static hb_stream_t gone; /* a stream released while its bytes were still gathered */
	char req[64];
	size_t n = strlen(GET_A);

	for (size_t i = 0; i < n; i++)
		req[i] = (char)(GET_A[i] ^ 0x80);
	req[n] = 0;
	client_sends(c, req);
	hb_stream_t *s = worker_takes();
	hb_conn_write(c, "ab", 2, NULL, &gone, 2);
	hb_conn_out_forget(c, &gone);
	atomic_fetch_add(&s->out_pending, 3);
	hb_conn_write(c, "cde", 3, NULL, s, 3);
	t_writes = 0;
	hb_conn_flush(c);
	send_everything(c);
	cr_assert_eq(t_writes, 1);
	cr_assert(wire_has("|abcde"), "%s", F.wire);
	cr_assert_eq(atomic_load(&s->out_pending), 0, "only s's 3 bytes were charged to s");
	hb_stream_release(s);
	hb_conn_recv_done(c, 0, 0, NULL);
}
