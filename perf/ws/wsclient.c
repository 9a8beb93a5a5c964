/* wsclient.c: see wsclient.h. */
#define _GNU_SOURCE
#include "wsclient.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int ws_opt(ws_opts_t *o, int opt, const char *arg)
{
	switch (opt) {
	case 'h':
		o->host = arg;
		return 1;
	case 'P':
		o->path = arg;
		return 1;
	case 'p':
		o->port = atoi(arg);
		return 1;
	case 'c':
		o->nconn = atoi(arg);
		return 1;
	case 'd':
		o->secs = atoi(arg);
		return 1;
	case 's':
		o->size = atoi(arg);
		return 1;
	case 'W':
		o->window = atoi(arg);
		return 1;
	default:
		return 0;
	}
}

int ws_parse_opts(int argc, char **argv, const char *optstring, const char *usage, ws_opts_t *o)
{
	int opt;

	while ((opt = getopt(argc, argv, optstring)) != -1) {
		if (!ws_opt(o, opt, optarg)) {
			fprintf(stderr, "usage: %s\n", usage);
			return 0;
		}
	}
	return 1;
}

char *ws_payload(int size)
{
	char *p = malloc((size_t)size);

	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	memset(p, 'x', (size_t)size);
	return p;
}

uint64_t ws_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ws_connect(const char *host, int port, const char *path)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: "
			 "websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: "
			 "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
			 path, host, port);
	if (n < 0 || n >= (int)sizeof(req) || write(fd, req, (size_t)n) != n) {
		fprintf(stderr, "upgrade request not sent\n");
		exit(1);
	}
	return fd;
}

int ws_connect_epoll(int ep, const char *host, int port, const char *path, void *ptr)
{
	int fd = ws_connect(host, port, path);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ptr};

	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return fd;
}

int ws_read(int fd, char *buf, size_t cap, size_t *have, int *upgraded)
{
	ssize_t r = read(fd, buf + *have, cap - *have);

	if (r <= 0) {
		fprintf(stderr, "connection closed by server\n");
		exit(1);
	}
	*have += (size_t)r;
	if (*upgraded)
		return 1;
	if (!ws_upgrade_done(buf, have))
		return 0;
	*upgraded = 1;
	return 2;
}

int ws_upgrade_done(char *buf, size_t *have)
{
	char *e = memmem(buf, *have, "\r\n\r\n", 4);
	if (!e)
		return 0;
	if (strncmp(buf, "HTTP/1.1 101", 12) != 0) {
		fprintf(stderr, "upgrade refused: %.40s\n", buf);
		exit(1);
	}
	size_t used = (size_t)(e + 4 - buf);
	memmove(buf, buf + used, *have - used);
	*have -= used;
	return 1;
}

void ws_send_text(int fd, const char *payload, size_t n)
{
	unsigned char frame[70000];
	size_t h = 0;
	unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};

	frame[h++] = 0x81;
	if (n < 126) {
		frame[h++] = 0x80 | (unsigned char)n;
	} else {
		frame[h++] = 0x80 | 126;
		frame[h++] = (unsigned char)(n >> 8);
		frame[h++] = (unsigned char)n;
	}
	memcpy(frame + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < n; i++)
		frame[h + i] = (unsigned char)payload[i] ^ mask[i & 3];
	if (write(fd, frame, h + n) != (ssize_t)(h + n)) {
		perror("write");
		exit(1);
	}
}

size_t ws_frame_len(const unsigned char *b, size_t have, size_t *hdr)
{
	if (have < 2)
		return 0;
	size_t n = b[1] & 0x7f, h = 2;
	if (n == 126) {
		if (have < 4)
			return 0;
		n = (size_t)b[2] << 8 | b[3];
		h = 4;
	} else if (n == 127) {
		fprintf(stderr, "frame too large for this benchmark\n");
		exit(1);
	}
	*hdr = h;
	return have >= h + n ? h + n : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void ws_print_latency(uint64_t *lat, size_t n)
{
	if (n)
		qsort(lat, n, sizeof(uint64_t), cmp_u64);
	printf("p50_ms: %.3f\np99_ms: %.3f\n", n ? lat[n / 2] / 1e6 : 0.0,
	       n ? lat[n * 99 / 100] / 1e6 : 0.0);
}
