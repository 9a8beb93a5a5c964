/* fdlimit.h: the process's descriptor budget (RLIMIT_NOFILE).
 *
 * Main thread only, at startup, before other threads start. Every connection holds a socket, so
 * max_connections needs as many descriptors, plus a share for the listeners, the rings and wake
 * eventfds of the io threads, the workers' event loops and what the apps open. As nginx does, the
 * soft limit is raised to the hard one, and the caller says once, with the numbers, when even
 * the hard limit is below what the configuration asks for. Nothing here is kept: no state.
 */
#ifndef HB_SERVER_FDLIMIT_H
#define HB_SERVER_FDLIMIT_H

#include <stdint.h>
#include <sys/resource.h>

#include "core/config.h"

/* Descriptors kept aside from connections: stdio, logs, the interpreter and app imports. */
#define HB_FDLIMIT_BASE 64

/* [pure] Descriptors the server itself needs beside its connections, for nio io threads (ring,
 * wake eventfd, one listener per bind) and nworkers worker threads (wake eventfd, an event
 * loop's epoll and self-pipe): an estimate, on the generous side. */
uint64_t hb_fdlimit_reserve(const hb_config_t *cfg, int nio, int nworkers);

/* [pure] The soft limit to ask for: the hard limit, or nr_open when the hard limit is
 * RLIM_INFINITY (the kernel refuses more than fs.nr_open); never below the current soft one. */
rlim_t hb_fdlimit_target(rlim_t soft, rlim_t hard, rlim_t nr_open);

/* Raises the soft RLIMIT_NOFILE to hb_fdlimit_target(). *lim receives the limits in force
 * afterwards. Returns 0, or -errno when getrlimit/setrlimit failed (*lim: what is in force). */
int hb_fdlimit_raise(struct rlimit *lim);

#endif
