/* metrics.h: the server's counters, and their Prometheus text exposition.
 *
 * Hot-path counters live in one cache-line-aligned block per io thread (hb_metrics_io_t), written
 * only by that io thread with relaxed loads and stores (no locked instruction, no line shared
 * with another writer) and read by the scrape, which sums the blocks. Per-worker figures come
 * from the hub's worker slots (core/hub.h: in flight, served, queue wait), process-wide ones
 * from the server (open connections, draining), the shared map and pub/sub (through the
 * `state` source) and the cluster (through the `members` source).
 *
 * hb_metrics_new() runs on the main thread before the io threads start; the blocks and the
 * bucket bounds never move afterwards. hb_metrics_render() may run on any thread (the metrics
 * HTTP thread, server/metrics_http.h) at any time; the sources it calls must be thread-safe.
 * Metrics are collected only when metrics_bind is set: without it, io->metrics is NULL and the
 * hot path pays one predictable branch.
 */
#ifndef HB_SERVER_METRICS_H
#define HB_SERVER_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/pubsub.h"
#include "core/shmap.h"

struct hb_server;

/* Request methods counted by name; the others count as "other". */
enum {
	HB_M_GET,
	HB_M_HEAD,
	HB_M_POST,
	HB_M_PUT,
	HB_M_DELETE,
	HB_M_PATCH,
	HB_M_OPTIONS,
	HB_M_OTHER,
	HB_M_METHODS
};
/* Protocols a connection or stream is counted under. */
typedef enum { HB_MP_H1 = 0, HB_MP_H2, HB_MP_WS, HB_MP_COUNT } hb_metrics_proto_t;

#define HB_METRICS_MAX_BUCKETS HB_CONFIG_MAX_BUCKETS
#define HB_METRICS_DEFAULT_BUCKETS HB_CONFIG_DEFAULT_BUCKETS

typedef _Atomic uint64_t hb_mcount_t;
typedef _Atomic int64_t hb_mgauge_t;

/* One io thread's counters. Single writer (its io thread); the scrape reads. */
typedef struct hb_metrics_io {
	_Alignas(64) hb_mcount_t requests[HB_M_METHODS][6]; /* [method][1xx..5xx, other] */
	hb_mcount_t duration[HB_METRICS_MAX_BUCKETS + 1];   /* per bucket (not cumulative); +Inf */
	hb_mcount_t duration_sum_ns;
	hb_mgauge_t conns[HB_MP_COUNT];	  /* open connections by protocol */
	hb_mgauge_t streams[HB_MP_COUNT]; /* requests/streams in flight by protocol */
	hb_mcount_t bytes_in, bytes_out;  /* on the sockets (TLS: ciphertext) */
	hb_mcount_t ws_opened, ws_msgs_in, ws_msgs_out;
	const uint64_t *bounds_ns; /* the bucket bounds (shared, read-only) */
	int nbounds;
} hb_metrics_io_t;

/* Where the scrape finds the figures that are not counters of this module. Each may be NULL. */
typedef struct hb_metrics_sources {
	/* Fills the shared map's and pub/sub's stats; returns 0, or -1 when they do not exist. */
	int (*state)(hb_shmap_stats_t *map, hb_pubsub_stats_t *ps);
	/* Live cluster members (this node included), or -1 when the cluster is off. */
	int (*members)(void *ud);
	void *ud;
} hb_metrics_sources_t;

typedef struct hb_metrics hb_metrics_t;

/* [main] Counters for srv's io threads with the bucket bounds of `buckets` (seconds,
 * comma-separated, increasing; config metrics_buckets). Returns NULL on ENOMEM or a bad list. */
hb_metrics_t *hb_metrics_new(struct hb_server *srv, const char *buckets,
			     const hb_metrics_sources_t *src);
void hb_metrics_free(hb_metrics_t *m);
hb_metrics_io_t *hb_metrics_io(hb_metrics_t *m, int io);
/* [main] 1 once every worker is up and the ASGI lifespan startup is done. */
void hb_metrics_set_ready(hb_metrics_t *m, int ready);
/* [any] /readyz: ready, some worker accepting, not draining. */
int hb_metrics_ready(hb_metrics_t *m);
/* [main] The sources' ud (the cluster, started after the metrics): set before, cleared after
 * it exists; the members source is called only while it is non-NULL. */
void hb_metrics_set_ud(hb_metrics_t *m, void *ud);

/* [any] Writes the exposition (text format 0.0.4) into a malloc'd buffer; returns its length
 * and sets *out, or -ENOMEM. */
long hb_metrics_render(hb_metrics_t *m, char **out);

/* ---- io-thread side: single writer, relaxed, no locked instructions ---- */
static inline void hb_mcount_add(hb_mcount_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}
static inline void hb_mgauge_add(hb_mgauge_t *g, int64_t n)
{
	atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + n,
			      memory_order_relaxed);
}
/* [io] A finished request: its method, status (0: none was sent) and duration. */
void hb_metrics_request(hb_metrics_io_t *mi, const char *method, size_t mlen, int status,
			uint64_t dur_ns);

#endif
