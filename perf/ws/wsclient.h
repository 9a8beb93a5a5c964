/* wsclient: the WebSocket client pieces that perf/ws/wsload.c and perf/ws/wsfanout.c share:
 * opening a connection and sending the RFC 6455 upgrade request, reading the 101 answer,
 * masked text frames out, unmasked server frames in, and the latency report. Single-threaded
 * load generators for loopback; every failure prints a message and exits the process (a
 * benchmark client has nothing to recover), so nothing here returns an error. */
#ifndef HB_PERF_WS_WSCLIENT_H
#define HB_PERF_WS_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

/* The command line both take: -h HOST -p PORT -P PATH -c CONNS -d SECS -s BYTES, and
 * wsfanout's -W WINDOW. Set the defaults, then hand each getopt() result to ws_opt. */
typedef struct ws_opts {
	const char *host, *path;
	int port, nconn, secs, size, window;
} ws_opts_t;

/* Stores option opt's argument in o: 1, or 0 for an option it does not know. */
int ws_opt(ws_opts_t *o, int opt, const char *arg);

/* The whole command line (getopt's optstring) into o: 1, or 0 after printing usage. */
int ws_parse_opts(int argc, char **argv, const char *optstring, const char *usage, ws_opts_t *o);

/* A message of size bytes of 'x', for free() (never freed: the process ends). */
char *ws_payload(int size);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t ws_now_ns(void);

/* Connects to host:port (IPv4, TCP_NODELAY) and writes the upgrade request for path; returns
 * the socket. */
int ws_connect(const char *host, int port, const char *path);

/* ws_connect, with the socket added to the epoll set ep for reading, ptr its event data. */
int ws_connect_epoll(int ep, const char *host, int port, const char *path, void *ptr);

/* Reads what fd has into buf[*have..cap) (exits when the server closed it) and, until
 * *upgraded, looks for the server's 101 (ws_upgrade_done). Returns 0 while the upgrade answer
 * is partial, 2 when it has just completed, 1 once frames may follow. */
int ws_read(int fd, char *buf, size_t cap, size_t *have, int *upgraded);

/* Looks for the end of the server's upgrade answer in buf[0..*have): 0 while it is partial; 1
 * once it is a 101, with the answer removed from buf (frames that followed it stay). Exits on
 * any other status. */
int ws_upgrade_done(char *buf, size_t *have);

/* Writes one masked text frame carrying payload[0..n) (n <= 65535) to fd. */
void ws_send_text(int fd, const char *payload, size_t n);

/* Length of one complete server frame at the front of b (header + payload), 0 if partial;
 * *hdr gets the header's length. Exits on a 64-bit length (larger than any message here). */
size_t ws_frame_len(const unsigned char *b, size_t have, size_t *hdr);

/* Sorts lat[0..n) and prints "p50_ms: X\np99_ms: Y\n" (0 when n is 0). */
void ws_print_latency(uint64_t *lat, size_t n);

#endif
