/* wsload: a WebSocket echo load generator for perf/ (wrk does not speak WebSocket).
 *
 * Opens C connections to ws://HOST:PORT/PATH, each upgrades, then sends a masked text message of
 * SIZE bytes and waits for its echo, again and again, for D seconds (one message in flight per
 * connection, like a chat client). Prints messages/s and p50/p99 round-trip latency.
 *   wsload -h 127.0.0.1 -p 8000 -P /ws -c 64 -d 5 -s 32
 * Single-threaded epoll client; loopback only. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "wsclient.h"

#define MAXLAT (1 << 22)

typedef struct conn {
	int fd;
	int upgraded;
	size_t have;
	uint64_t sent_ns;
	char buf[70000];
} conn_t;

static void send_msg(conn_t *c, const char *payload, size_t n)
{
	c->sent_ns = ws_now_ns();
	ws_send_text(c->fd, payload, n);
}

int main(int argc, char **argv)
{
	ws_opts_t o = {.host = "127.0.0.1",
		       .path = "/ws",
		       .port = 8000,
		       .nconn = 64,
		       .secs = 5,
		       .size = 32};
	if (!ws_parse_opts(argc, argv, "h:p:P:c:d:s:",
			   "wsload -h HOST -p PORT -P PATH -c CONNS -d SECS -s BYTES", &o))
		return 2;
	const char *host = o.host, *path = o.path;
	int port = o.port, nconn = o.nconn, secs = o.secs, size = o.size;
	if (size < 1 || size > 65535)
		return 2;
	char *payload = ws_payload(size);
	uint64_t *lat = malloc(sizeof(uint64_t) * MAXLAT);
	size_t nlat = 0, msgs = 0;
	int ep = epoll_create1(0);
	conn_t *cs = calloc((size_t)nconn, sizeof(conn_t));
	for (int i = 0; i < nconn; i++)
		cs[i].fd = ws_connect_epoll(ep, host, port, path, &cs[i]);
	uint64_t start = 0, end = 0, t0 = ws_now_ns();
	struct epoll_event evs[256];
	for (;;) {
		uint64_t t = ws_now_ns();
		if (start && t >= end)
			break;
		if (!start && t - t0 > 10000000000ull) {
			fprintf(stderr, "upgrade timed out\n");
			return 1;
		}
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			conn_t *c = evs[i].data.ptr;
			int st = ws_read(c->fd, c->buf, sizeof(c->buf), &c->have, &c->upgraded);
			if (st == 0)
				continue;
			if (st == 2) { /* upgraded: the first message */
				if (!start) {
					start = ws_now_ns();
					end = start + (uint64_t)secs * 1000000000ull;
				}
				send_msg(c, payload, (size_t)size);
				continue;
			}
			size_t fl, h;
			while ((fl = ws_frame_len((unsigned char *)c->buf, c->have, &h)) > 0) {
				memmove(c->buf, c->buf + fl, c->have - fl);
				c->have -= fl;
				msgs++;
				if (nlat < MAXLAT)
					lat[nlat++] = ws_now_ns() - c->sent_ns;
				send_msg(c, payload, (size_t)size);
			}
		}
	}
	double el = (double)(ws_now_ns() - start) / 1e9;
	printf("messages/s: %.0f\n", (double)msgs / el);
	ws_print_latency(lat, nlat);
	return 0;
}
