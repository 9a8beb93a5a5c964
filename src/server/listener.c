#include "server/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
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

/* fd://N: the socket must be a stream socket; it is made nonblocking and close-on-exec (the
 * io threads own it from now on). */
static int adopt_fd(int fd, const char **why)
{
	int type = 0;
	socklen_t tl = sizeof(type);
	struct stat st;

	if (fstat(fd, &st) < 0)
		return *why = "use inherited descriptor", -errno;
	if (!S_ISSOCK(st.st_mode))
		return *why = "use inherited descriptor (not a socket)", -ENOTSOCK;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
		return *why = "use inherited descriptor (not a stream socket)", -EPROTOTYPE;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return *why = "use inherited descriptor", -errno;
	return fd;
}

/* A TCP bind to port 0: the kernel picks a port for the first io thread's socket; the others
 * join that port's SO_REUSEPORT group. */
static uint16_t bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

int hb_listener_open(const hb_bind_t *b, int shared_fd, const char **why)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	if (b->fd_bind)
		return shared_fd >= 0 ? fcntl(shared_fd, F_DUPFD_CLOEXEC, 0) : adopt_fd(b->fd, why);
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

	if (b->family == AF_UNIX || b->fd_bind || b->port == 0 || resolve(b, &ss, &len) < 0)
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
		hb_bind_t bind = cfg->binds[b];
		int rc = probe_tcp(&bind);
		for (int io = 0; rc >= 0 && io < nio; io++) {
			int one_socket = bind.family == AF_UNIX || bind.fd_bind;
			int shared = (io > 0 && one_socket) ? fds[0][b] : -1;
			rc = hb_listener_open(&bind, shared, &why);
			if (rc >= 0)
				fds[io][b] = rc;
			if (rc >= 0 && io == 0 && !one_socket && bind.port == 0)
				bind.port = bound_port(rc);
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

int hb_listener_address(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
		size_t n = sl > offsetof(struct sockaddr_un, sun_path)
				   ? sl - offsetof(struct sockaddr_un, sun_path)
				   : 0;

		snprintf(out, len, "unix:%.*s", (int)strnlen(sun->sun_path, n), sun->sun_path);
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, bound_port(fd));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, bound_port(fd));
	}
	return 0;
}

void hb_listener_close_all(const hb_config_t *cfg, int nio, int **fds)
{
	/* The socket file goes with the server, as gunicorn's does (not an inherited one's). */
	for (size_t b = 0; b < cfg->nbinds; b++)
		if (cfg->binds[b].family == AF_UNIX && !cfg->binds[b].fd_bind && nio > 0 &&
		    fds[0][b] >= 0)
			unlink(cfg->binds[b].path);
	for (int io = 0; io < nio; io++)
		for (size_t b = 0; b < cfg->nbinds; b++)
			if (fds[io][b] >= 0) {
				close(fds[io][b]);
				fds[io][b] = -1;
			}
}
