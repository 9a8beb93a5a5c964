/* server.h: process-wide server state shared by the main thread and the io threads.
 *
 * Built by main.c before any thread starts; `cfg`, `hub` and the listener fds are read-only
 * afterwards. The atomics are the only fields that change: `draining` (main sets, io threads
 * read) asks io threads to stop accepting and finish (`retiring`: without cutting connections);
 * `nconns` counts open connections across io threads for max_connections; `reclaim_gen` (bumped by
 * an io thread out of descriptors) asks every io thread to close idle keep-alive connections,
 * `reclaimed` counts them for its log.
 */
#ifndef HB_SERVER_SERVER_H
#define HB_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/config.h"
#include "core/hub.h"
#include "server/tls_setup.h"

struct hb_metrics;
struct hb_access_fmt;

typedef struct hb_server {
	const hb_config_t *cfg;
	hb_hub_t *hub;
	int nio;
	int **listen_fds;     /* [io][bind]: each io thread its own SO_REUSEPORT socket */
	_Atomic int draining; /* 1: graceful stop; 2: stop now */
	/* with draining 1: a reload retires this process, gently: HTTP/1.1 connections end after
	 * their next response (Connection: close) or their keep-alive timeout, WebSockets stay
	 * open; HTTP/2 ones get GOAWAY */
	_Atomic int retiring;
	_Atomic int64_t nconns;
	_Atomic int io_running; /* io threads still running */
	_Atomic unsigned reclaim_gen;
	_Atomic uint64_t reclaimed;
	hb_tls_setup_t *tls;	     /* TLS context of the TLS listeners (tls->live NULL: none) */
	hb_worker_class_t app_class; /* WSGI or ASGI as served (auto resolved), set before
				      * the io threads start */
	struct hb_metrics *metrics;  /* counters (server/metrics.h); NULL: metrics_bind is off */
	const struct hb_access_fmt *access_fmt; /* compiled access_log_format; NULL: log off */
} hb_server_t;

#endif
