/* listener.h: listening sockets for the configured binds.
 *
 * TCP binds get one SO_REUSEPORT socket per io thread, so the kernel spreads connections and a
 * connection never leaves the io thread that accepted it; port 0 is one port the kernel picks,
 * shared by the group. A unix socket, and an inherited one (fd://N), is shared by all io
 * threads. Called from the main thread only, before io threads start, in two steps: the sockets
 * are bound early (an address in use fails the start at once), but listen only once the workers
 * are ready (app imported, ASGI lifespan started): until then a connect is refused, so a load
 * balancer or a client sends nothing to a server that cannot answer yet.
 */
#ifndef HB_SERVER_LISTENER_H
#define HB_SERVER_LISTENER_H

#include <stddef.h>

#include "core/config.h"

/* Opens and binds (does not listen). Returns a nonblocking fd, or -errno with `why` naming the
 * failed step ("socket", "bind", ...). `shared_fd`: for unix binds, the fd to reuse (dup). */
int hb_listener_open(const hb_bind_t *b, int shared_fd, const char **why);

/* Fills fds[io][bind] for nio io threads with bound sockets. Returns 0 or -errno with msg set
 * ("cannot bind ..."). */
int hb_listener_open_all(const hb_config_t *cfg, int nio, int **fds, char *msg, size_t len);
/* Starts listening on every socket of fds, with cfg->backlog. Returns 0 or -errno, msg set. */
int hb_listener_listen_all(const hb_config_t *cfg, int nio, int **fds, char *msg, size_t len);
/* Writes the address fd is bound to, as the log shows it: "127.0.0.1:8000", "[::1]:8000",
 * "unix:/run/hb.sock" (with the real port when the bind asked for port 0 or none). Returns 0 or
 * -errno. */
int hb_listener_address(int fd, char *out, size_t len);
void hb_listener_close_all(const hb_config_t *cfg, int nio, int **fds);

#endif
