#include "server/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int resolve(const hb_bind_t *b, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = {.ai_family = b->family,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port[8];

	snprintf(port, sizeof(port), "%u", b->port);
	if (getaddrinfo(b->host[0] ? b->host : NULL, port, &hints, &res) != 0 || !res)
		return -EADDRNOTAVAIL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int open_unix(const hb_bind_t *b, const char **why)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return *why = "socket", -errno;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", b->path);
	/* A stale socket file from a previous run would make bind fail: remove only sockets. */
	if (stat(b->path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(b->path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		close(fd);
		return *why = "bind", -e;
	}
	return fd;
}

int hb_listener_open(const hb_bind_t *b, int shared_fd, const char **why)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	if (b->family == AF_UNIX)
		return shared_fd >= 0 ? fcntl(shared_fd, F_DUPFD_CLOEXEC, 0) : open_unix(b, why);
	if (resolve(b, &ss, &len) < 0)
		return *why = "resolve", -EADDRNOTAVAIL;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return *why = "socket", -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int e = errno;
		close(fd);
		return *why = "bind", -e;
	}
	return fd;
}

/* Binding a probe socket without SO_REUSEPORT first makes "address in use" detectable even
 * when another process holds the port with SO_REUSEPORT itself. */
static int probe_tcp(const hb_bind_t *b)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	if (b->family == AF_UNIX || resolve(b, &ss, &len) < 0)
		return 0;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	int rc = bind(fd, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int hb_listener_open_all(const hb_config_t *cfg, int nio, int **fds, char *msg, size_t len)
{
	for (size_t b = 0; b < cfg->nbinds; b++) {
		const char *why = "bind";
		int rc = probe_tcp(&cfg->binds[b]);
		for (int io = 0; rc >= 0 && io < nio; io++) {
			int shared = (io > 0 && cfg->binds[b].family == AF_UNIX) ? fds[0][b] : -1;
			rc = hb_listener_open(&cfg->binds[b], shared, &why);
			if (rc >= 0)
				fds[io][b] = rc;
		}
		if (rc < 0) {
			snprintf(msg, len, "bind: cannot %s %s: %s", why, cfg->binds[b].spec,
				 strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int hb_listener_listen_all(const hb_config_t *cfg, int nio, int **fds, char *msg, size_t len)
{
	for (size_t b = 0; b < cfg->nbinds; b++)
		for (int io = 0; io < nio; io++)
			if (listen(fds[io][b], cfg->backlog) < 0) {
				int e = errno;
				snprintf(msg, len, "bind: cannot listen on %s: %s",
					 cfg->binds[b].spec, strerror(e));
				return -e;
			}
	return 0;
}

void hb_listener_close_all(const hb_config_t *cfg, int nio, int **fds)
{
	for (int io = 0; io < nio; io++)
		for (size_t b = 0; b < cfg->nbinds; b++)
			if (fds[io][b] >= 0) {
				close(fds[io][b]);
				fds[io][b] = -1;
			}
}
