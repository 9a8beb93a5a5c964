/* listener.h: listening sockets for the configured binds.
 *
 * TCP binds get one SO_REUSEPORT socket per io thread, so the kernel spreads connections and a
 * connection never leaves the io thread that accepted it. A unix socket is shared by all io
 * threads. Called from the main thread only, before io threads start.
 */
#ifndef HB_SERVER_LISTENER_H
#define HB_SERVER_LISTENER_H

#include <stddef.h>

#include "core/config.h"

/* Opens, binds and listens. Returns a nonblocking fd, or -errno with `why` naming the failed
 * step ("bind", "listen", ...). `shared_fd`: for unix binds, the fd to reuse (dup) when >= 0. */
int hb_listener_open(const hb_bind_t *b, int backlog, int shared_fd, const char **why);

/* Fills fds[io][bind] for nio io threads. Returns 0 or -errno with msg set ("cannot bind ..."). */
int hb_listener_open_all(const hb_config_t *cfg, int nio, int **fds, char *msg, size_t len);
void hb_listener_close_all(const hb_config_t *cfg, int nio, int **fds);

#endif
