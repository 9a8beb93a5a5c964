/* worker.h: one worker process: today's whole server (its io threads, its interpreters) on the
 * listeners the master bound.
 *
 * The master forks it and calls hb_worker_run in the child, which never returns. The child
 * starts its own CPython (the master has none), imports the app, then writes one byte on
 * ready_fd and waits for the master's answer (it listens on the process's sockets then: the
 * master counts it ready), then starts its io threads. Its main thread then only waits for signals,
 * all sent by the master: TERM, INT  graceful stop (stop accepting, finish in-flight requests
 * within graceful_timeout, close WebSockets with 1012), exit 0 QUIT       stop now HUP retire (a
 * newer generation serves): stop accepting, finish in-flight requests, leave WebSockets open on
 * this code until they close or reload_websocket_timeout USR1       reopen the access log Exit
 * status: 0 after a stop, 1 when the app or Python could not start, 2 for a configuration the
 * server refused (TLS files, listen), 23 for a leak report (ASan builds).
 */
#ifndef HB_SUPERVISOR_WORKER_H
#define HB_SUPERVISOR_WORKER_H

#include <signal.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/inflight.h"

/* Worker -> master: "replace me" (a request stuck past worker_kill_timeout, or max_worker_rss).
 * The master starts a successor in the same slot, then stops this process gracefully. */
#define HB_SIG_REPLACE (SIGRTMIN + 2)

typedef struct hb_worker_args {
	int slot; /* 0 .. processes-1: its share of the CPUs; slot 0 runs the cluster node */
	unsigned generation; /* 1 for the processes started first, +1 per reload */
	int nio;	     /* io threads: the listeners' sockets per bind */
	int **listen_fds;    /* [io][bind], bound by the master (inherited across fork) */
	int ready_fd;	     /* its end of the socketpair: "R" to the master, its answer back */
	pid_t master;
	hb_inflight_t *inflight; /* shared with the master: what the app runs (may be NULL) */
} hb_worker_args_t;

/* [forked child, single-threaded] Runs the server until told to stop; exits the process. */
_Noreturn void hb_worker_run(hb_config_t *cfg, const hb_worker_args_t *a);

#endif
