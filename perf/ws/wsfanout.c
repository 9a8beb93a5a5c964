/* wsfanout: a WebSocket broadcast (pub/sub fan-out) load generator for perf/bench.py.
 *
 * Opens C connections to ws://HOST:PORT/PATH (perf/apps/broadcast_asgi.py). Each waits for the
 * server's "ready" text (sent once the connection's subscription exists). Then connection 0
 * publishes: it sends a masked text message of SIZE bytes that starts with its sequence
 * number; the server publishes it to every connection (connection 0 included), and a message
 * is delivered once all C connections have received it. W messages are kept in flight. Runs D
 * seconds and prints published messages/s, deliveries/s (messages x C) and p50/p99 of the time
 * from publishing a message to its last delivery. A lost or reordered message is an error.
 *   wsfanout -h 127.0.0.1 -p 8000 -P /ws -c 100 -d 5 -s 64 -W 8
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
#define RING 4096 /* > any window */

typedef struct conn {
	int fd;
	int upgraded, ready;
	uint64_t next; /* sequence number of the next message expected */
	size_t have;
	char buf[65536];
} conn_t;

int main(int argc, char **argv)
{
	ws_opts_t o = {.host = "127.0.0.1",
		       .path = "/ws",
		       .port = 8000,
		       .nconn = 100,
		       .secs = 5,
		       .size = 64,
		       .window = 8};
	if (!ws_parse_opts(argc, argv, "h:p:P:c:d:s:W:",
			   "wsfanout -h HOST -p PORT -P PATH -c CONNS -d SECS -s BYTES -W WINDOW",
			   &o))
		return 2;
	const char *host = o.host, *path = o.path;
	int port = o.port, nconn = o.nconn, secs = o.secs, size = o.size, window = o.window;
	if (size < 16 || size > 65535 || nconn < 1 || window < 1 || window >= RING)
		return 2;
	char *payload = ws_payload(size);
	uint64_t *lat = malloc(sizeof(uint64_t) * MAXLAT);
	static uint64_t sent_ns[RING];
	static int got[RING];
	size_t nlat = 0;
	uint64_t published = 0, delivered = 0;
	int ep = epoll_create1(0), nready = 0;
	conn_t *cs = calloc((size_t)nconn, sizeof(conn_t));
	for (int i = 0; i < nconn; i++)
		cs[i].fd = ws_connect_epoll(ep, host, port, path, &cs[i]);
	uint64_t start = 0, end = 0, t0 = ws_now_ns();
	struct epoll_event evs[256];
	for (;;) {
		uint64_t t = ws_now_ns();
		if (start && t >= end)
			break;
		if (!start && t - t0 > 30000000000ull) {
			fprintf(stderr, "only %d of %d connections ready after 30 s\n", nready,
				nconn);
			return 1;
		}
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			conn_t *c = evs[i].data.ptr;
			if (!ws_read(c->fd, c->buf, sizeof(c->buf), &c->have, &c->upgraded))
				continue;
			size_t fl, h;
			while ((fl = ws_frame_len((unsigned char *)c->buf, c->have, &h)) > 0) {
				const char *p = c->buf + h;
				if (!c->ready) {
					if (fl - h != 5 || memcmp(p, "ready", 5) != 0) {
						fprintf(stderr, "expected 'ready' first\n");
						return 1;
					}
					c->ready = 1;
					if (++nready ==
					    nconn) { /* all subscribed: start publishing */
						start = ws_now_ns();
						end = start + (uint64_t)secs * 1000000000ull;
						for (int w = 0; w < window; w++, published++) {
							snprintf(payload, 16, "%015llu",
								 (unsigned long long)published);
							payload[15] = ' ';
							sent_ns[published % RING] = ws_now_ns();
							got[published % RING] = 0;
							ws_send_text(cs[0].fd, payload,
								     (size_t)size);
						}
					}
				} else {
					uint64_t seq = strtoull(p, NULL, 10);
					if (fl - h != (size_t)size || seq != c->next) {
						fprintf(stderr,
							"message lost or reordered: got %llu, "
							"expected %llu\n",
							(unsigned long long)seq,
							(unsigned long long)c->next);
						return 1;
					}
					c->next++;
					if (++got[seq % RING] == nconn) { /* its last delivery */
						delivered++;
						if (nlat < MAXLAT)
							lat[nlat++] =
								ws_now_ns() - sent_ns[seq % RING];
						snprintf(payload, 16, "%015llu",
							 (unsigned long long)published);
						payload[15] = ' ';
						sent_ns[published % RING] = ws_now_ns();
						got[published % RING] = 0;
						published++;
						ws_send_text(cs[0].fd, payload, (size_t)size);
					}
				}
				memmove(c->buf, c->buf + fl, c->have - fl);
				c->have -= fl;
			}
		}
	}
	double el = (double)(ws_now_ns() - start) / 1e9;
	printf("messages/s: %.0f\n", (double)delivered / el);
	printf("deliveries/s: %.0f\n", (double)delivered * nconn / el);
	ws_print_latency(lat, nlat);
	return 0;
}
