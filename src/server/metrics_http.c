/* metrics_http.c: accept, read one request head, answer, close; on its own thread. */
#include "server/metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/thread.h"

struct hb_metrics_http {
	hb_metrics_t *m;
	int lfd;
	int stop_efd;
	pthread_t tid;
};

static const char ctype_text[] = "text/plain; charset=utf-8";
static const char ctype_prom[] = "text/plain; version=0.0.4; charset=utf-8";

static int listen_on(const hb_bind_t *b, char *err, size_t errlen)
{
	int fd = -1, one = 1;

	if (b->family == AF_UNIX) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", b->path);
		unlink(b->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
		    listen(fd, 64) == 0)
			return fd;
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
		struct addrinfo *ai = NULL;
		char port[8];
		snprintf(port, sizeof(port), "%u", b->port);
		int rc = getaddrinfo(b->host[0] ? b->host : NULL, port, &hints, &ai);
		if (rc != 0) {
			snprintf(err, errlen, "metrics_bind '%s': %s", b->spec, gai_strerror(rc));
			return -EINVAL;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* A reload's new generation binds it while the old one still serves it. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) {
			freeaddrinfo(ai);
			return fd;
		}
		freeaddrinfo(ai);
	}
	int e = errno;
	snprintf(err, errlen, "metrics_bind '%s': %s", b->spec, strerror(e));
	if (fd >= 0)
		close(fd);
	return -e;
}

int hb_metrics_http_answer(hb_metrics_t *m, const char *head, size_t len, const char **ctype,
			   char **body, long *blen, int *owned, int *head_only)
{
	const char *sp = memchr(head, ' ', len);
	const char *path = sp ? sp + 1 : NULL;
	const char *end = path ? memchr(path, ' ', len - (size_t)(path - head)) : NULL;
	size_t plen = end ? (size_t)(end - path) : 0;
	const char *q = path ? memchr(path, '?', plen) : NULL;

	*ctype = ctype_text;
	*owned = 0;
	if (q)
		plen = (size_t)(q - path);
	*head_only = sp && (size_t)(sp - head) == 4 && memcmp(head, "HEAD", 4) == 0;
	if (!end) {
		*body = "bad request\n";
		*blen = 12;
		return 400;
	}
	if (!*head_only && !((size_t)(sp - head) == 3 && memcmp(head, "GET", 3) == 0)) {
		*body = "method not allowed\n";
		*blen = 19;
		return 405;
	}
#define IS(p) (plen == sizeof(p) - 1 && memcmp(path, p, plen) == 0)
	if (IS("/healthz")) {
		*body = "ok\n";
		*blen = 3;
		return 200;
	}
	if (IS("/readyz")) {
		int ready = hb_metrics_ready(m);
		*body = ready ? "ready\n" : "not ready\n";
		*blen = ready ? 6 : 10;
		return ready ? 200 : 503;
	}
	if (IS("/metrics")) {
		long n = hb_metrics_render(m, body);
		if (n < 0) {
			*body = "out of memory\n";
			*blen = 14;
			return 500;
		}
		*blen = n;
		*owned = 1;
		*ctype = ctype_prom;
		return 200;
	}
#undef IS
	*body = "not found: /metrics, /healthz, /readyz\n";
	*blen = (long)strlen(*body);
	return 404;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits for fd (events) until deadline or stop; returns 1 ready, 0 otherwise. */
static int wait_fd(hb_metrics_http_t *h, int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = mono_ms();
		if (now >= deadline)
			return 0;
		struct pollfd p[2] = {{fd, events, 0}, {h->stop_efd, POLLIN, 0}};
		int rc = poll(p, 2, (int)(deadline - now));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0 || p[1].revents)
			return 0;
		return 1;
	}
}

static int send_all(hb_metrics_http_t *h, int fd, const char *p, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(h, fd, POLLOUT, deadline))
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void serve_one(hb_metrics_http_t *h, int fd)
{
	char head[4096];
	size_t len = 0;
	uint64_t deadline = mono_ms() + HB_METRICS_HTTP_TIMEOUT_MS;

	while (len < sizeof(head) - 1) {
		if (!wait_fd(h, fd, POLLIN, deadline))
			return;
		ssize_t n = recv(fd, head + len, sizeof(head) - 1 - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return;
		len += (size_t)n;
		head[len] = '\0';
		if (strstr(head, "\r\n\r\n") || strstr(head, "\n\n"))
			break;
	}
	const char *ctype;
	char *body;
	long blen;
	int owned, head_only;
	int status =
		hb_metrics_http_answer(h->m, head, len, &ctype, &body, &blen, &owned, &head_only);
	static const struct {
		int code;
		const char *reason;
	} reasons[] = {{200, "OK"},
		       {400, "Bad Request"},
		       {404, "Not Found"},
		       {405, "Method Not Allowed"},
		       {500, "Internal Server Error"},
		       {503, "Service Unavailable"}};
	const char *reason = "";
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		if (reasons[i].code == status)
			reason = reasons[i].reason;
	char hdr[256];
	int hn = snprintf(hdr, sizeof(hdr),
			  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %ld\r\n"
			  "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
			  status, reason, ctype, blen);
	if (send_all(h, fd, hdr, (size_t)hn, deadline) == 0 && !head_only)
		send_all(h, fd, body, (size_t)blen, deadline);
	if (owned)
		free(body);
}

static void *http_main(void *arg)
{
	hb_metrics_http_t *h = arg;

	pthread_setname_np(pthread_self(), "hb-metrics");
	for (;;) {
		struct pollfd p[2] = {{h->lfd, POLLIN, 0}, {h->stop_efd, POLLIN, 0}};
		int rc = poll(p, 2, -1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0 || p[1].revents)
			break;
		int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(h, fd);
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	return NULL;
}

int hb_metrics_http_start(const char *bind, hb_metrics_t *m, hb_metrics_http_t **out, char *err,
			  size_t errlen)
{
	hb_bind_t b;
	const char *why = NULL;
	hb_metrics_http_t *h;

	if (hb_config_parse_bind(bind, &b, &why) < 0) {
		snprintf(err, errlen, "metrics_bind '%s': %s", bind, why);
		return -EINVAL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "metrics: out of memory");
		return -ENOMEM;
	}
	h->m = m;
	h->lfd = listen_on(&b, err, errlen);
	if (h->lfd < 0) {
		int rc = h->lfd;
		free(h);
		return rc;
	}
	h->stop_efd = eventfd(0, EFD_CLOEXEC);
	int rc = h->stop_efd < 0 ? errno : -hb_thread_start(&h->tid, http_main, h);
	if (rc != 0) {
		snprintf(err, errlen, "metrics: cannot start its thread: %s", strerror(rc));
		if (h->stop_efd >= 0)
			close(h->stop_efd);
		close(h->lfd);
		free(h);
		return -rc;
	}
	*out = h;
	return 0;
}

void hb_metrics_http_stop(hb_metrics_http_t *h)
{
	uint64_t one = 1;

	if (!h)
		return;
	if (write(h->stop_efd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow: the thread is already told */
	}
	pthread_join(h->tid, NULL);
	close(h->stop_efd);
	close(h->lfd);
	free(h);
}
