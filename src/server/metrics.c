/* metrics.c: the counters' aggregation and the Prometheus text format (version 0.0.4).
 *
 * A scrape sums every io thread's block; each family is written with its HELP and TYPE lines
 * once, then its samples. Nothing here is on the request path except hb_metrics_request().
 */
#include "server/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/hub.h"
#include "server/server.h"

struct hb_metrics {
	struct hb_server *srv;
	int nio;
	hb_metrics_io_t *io; /* nio blocks, cache-line aligned */
	uint64_t bounds_ns[HB_METRICS_MAX_BUCKETS];
	int nbounds;
	hb_metrics_sources_t src;
	_Atomic(void *) ud;
	_Atomic int ready;
};

static const char *const method_names[HB_M_METHODS] = {"GET",	 "HEAD",  "POST",    "PUT",
						       "DELETE", "PATCH", "OPTIONS", "other"};
static const char *const class_names[6] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
static const char *const proto_names[HB_MP_COUNT] = {"h1", "h2", "ws"};

hb_metrics_t *hb_metrics_new(struct hb_server *srv, const char *buckets,
			     const hb_metrics_sources_t *src)
{
	hb_metrics_t *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->srv = srv;
	m->nio = srv->nio;
	m->nbounds = hb_config_parse_buckets(buckets ? buckets : HB_METRICS_DEFAULT_BUCKETS,
					     m->bounds_ns, HB_METRICS_MAX_BUCKETS);
	size_t size = (size_t)m->nio * sizeof(hb_metrics_io_t);
	m->io = m->nbounds > 0 ? aligned_alloc(64, size) : NULL;
	if (!m->io) {
		free(m);
		return NULL;
	}
	memset(m->io, 0, size);
	for (int i = 0; i < m->nio; i++) {
		m->io[i].bounds_ns = m->bounds_ns;
		m->io[i].nbounds = m->nbounds;
	}
	if (src)
		m->src = *src;
	atomic_store(&m->ud, src ? src->ud : NULL);
	return m;
}

void hb_metrics_free(hb_metrics_t *m)
{
	if (!m)
		return;
	free(m->io);
	free(m);
}

hb_metrics_io_t *hb_metrics_io(hb_metrics_t *m, int io)
{
	return m ? &m->io[io] : NULL;
}

void hb_metrics_set_ready(hb_metrics_t *m, int ready)
{
	atomic_store(&m->ready, ready);
}

void hb_metrics_set_ud(hb_metrics_t *m, void *ud)
{
	atomic_store(&m->ud, ud);
}

int hb_metrics_ready(hb_metrics_t *m)
{
	if (!atomic_load(&m->ready) || atomic_load(&m->srv->draining))
		return 0;
	int max = hb_hub_max_workers(m->srv->hub);
	for (int w = 0; w < max; w++)
		if (atomic_load(&hb_hub_worker(m->srv->hub, w)->accepting))
			return 1;
	return 0;
}

static int method_index(const char *p, size_t n)
{
	for (int i = 0; i < HB_M_OTHER; i++)
		if (strlen(method_names[i]) == n && memcmp(method_names[i], p, n) == 0)
			return i;
	return HB_M_OTHER;
}

void hb_metrics_request(hb_metrics_io_t *mi, const char *method, size_t mlen, int status,
			uint64_t dur_ns)
{
	int cls = status >= 100 && status < 600 ? status / 100 - 1 : 5;
	int b = 0;

	hb_mcount_add(&mi->requests[method ? method_index(method, mlen) : HB_M_OTHER][cls], 1);
	while (b < mi->nbounds && dur_ns > mi->bounds_ns[b])
		b++;
	hb_mcount_add(&mi->duration[b], 1);
	hb_mcount_add(&mi->duration_sum_ns, dur_ns);
}

/* ---- rendering ---- */

typedef struct buf {
	char *p;
	size_t len, cap;
	int oom;
} buf_t;

static void bprintf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bprintf(buf_t *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0 || b->oom)
			return;
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 16384;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static void family(buf_t *b, const char *name, const char *type, const char *help)
{
	bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define SUM(field) sum_field(m, offsetof(hb_metrics_io_t, field))

static uint64_t sum_field(const hb_metrics_t *m, size_t off)
{
	uint64_t total = 0;

	for (int i = 0; i < m->nio; i++) {
		const char *blk = (const char *)&m->io[i];
		total += atomic_load_explicit((const hb_mcount_t *)(blk + off),
					      memory_order_relaxed);
	}
	return total;
}

static void render_requests(hb_metrics_t *m, buf_t *b)
{
	family(b, "hornbeam_requests_total", "counter",
	       "Requests answered, by method and status class (the server's own errors included).");
	for (int me = 0; me < HB_M_METHODS; me++)
		for (int c = 0; c < 6; c++) {
			uint64_t v = SUM(requests[me][c]);
			if (v)
				bprintf(b,
					"hornbeam_requests_total{method=\"%s\",status=\"%s\"} "
					"%llu\n",
					method_names[me], class_names[c], (unsigned long long)v);
		}
	family(b, "hornbeam_request_duration_seconds", "histogram",
	       "Time from the request head to the end of the response.");
	uint64_t cum = 0;
	for (int i = 0; i <= m->nbounds; i++) {
		cum += SUM(duration[i]);
		if (i < m->nbounds)
			bprintf(b, "hornbeam_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
				(double)m->bounds_ns[i] / 1e9, (unsigned long long)cum);
		else
			bprintf(b, "hornbeam_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
				(unsigned long long)cum);
	}
	bprintf(b, "hornbeam_request_duration_seconds_sum %.9f\n",
		(double)SUM(duration_sum_ns) / 1e9);
	bprintf(b, "hornbeam_request_duration_seconds_count %llu\n", (unsigned long long)cum);
}

static void render_io(hb_metrics_t *m, buf_t *b)
{
	family(b, "hornbeam_connections", "gauge", "Open client connections, by protocol.");
	for (int p = 0; p < HB_MP_COUNT; p++)
		bprintf(b, "hornbeam_connections{protocol=\"%s\"} %lld\n", proto_names[p],
			(long long)SUM(conns[p]));
	family(b, "hornbeam_connections_open", "gauge",
	       "Open client connections, a protocol chosen or not (max_connections counts these).");
	bprintf(b, "hornbeam_connections_open %lld\n", (long long)atomic_load(&m->srv->nconns));
	family(b, "hornbeam_streams", "gauge",
	       "Requests in flight (HTTP/2: streams; WebSocket: open sockets), by protocol.");
	for (int p = 0; p < HB_MP_COUNT; p++)
		bprintf(b, "hornbeam_streams{protocol=\"%s\"} %lld\n", proto_names[p],
			(long long)SUM(streams[p]));
	family(b, "hornbeam_received_bytes_total", "counter", "Bytes read from client sockets.");
	bprintf(b, "hornbeam_received_bytes_total %llu\n", (unsigned long long)SUM(bytes_in));
	family(b, "hornbeam_sent_bytes_total", "counter", "Bytes written to client sockets.");
	bprintf(b, "hornbeam_sent_bytes_total %llu\n", (unsigned long long)SUM(bytes_out));
	family(b, "hornbeam_websocket_connections_total", "counter",
	       "WebSocket handshakes accepted.");
	bprintf(b, "hornbeam_websocket_connections_total %llu\n",
		(unsigned long long)SUM(ws_opened));
	family(b, "hornbeam_websocket_messages_total", "counter",
	       "WebSocket messages, by direction (in: from clients).");
	bprintf(b, "hornbeam_websocket_messages_total{direction=\"in\"} %llu\n",
		(unsigned long long)SUM(ws_msgs_in));
	bprintf(b, "hornbeam_websocket_messages_total{direction=\"out\"} %llu\n",
		(unsigned long long)SUM(ws_msgs_out));
}

static void render_workers(hb_metrics_t *m, buf_t *b)
{
	hb_hub_t *hub = m->srv->hub;
	int max = hb_hub_max_workers(hub);
	static const struct {
		const char *name, *type, *help;
	} fams[] = {
		{"hornbeam_worker_queue_depth", "gauge",
		 "Requests queued for a worker, not taken."},
		{"hornbeam_worker_inflight", "gauge",
		 "Requests dispatched to a worker, not ended."},
		{"hornbeam_worker_queue_wait_seconds", "summary",
		 "Time requests waited from their head's arrival until a worker took them."},
	};

	for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
		family(b, fams[f].name, fams[f].type, fams[f].help);
		for (int w = 0; w < max; w++) {
			hb_worker_t *wk = hb_hub_worker(hub, w);
			if (!atomic_load(&wk->accepting) && !atomic_load(&wk->taken))
				continue; /* a slot never used */
			if (f == 0)
				bprintf(b, "%s{worker=\"%d\"} %llu\n", fams[f].name, w,
					(unsigned long long)hb_hub_worker_queued(hub, w));
			else if (f == 1)
				bprintf(b, "%s{worker=\"%d\"} %lld\n", fams[f].name, w,
					(long long)atomic_load(&wk->inflight));
			else
				bprintf(b,
					"%s_sum{worker=\"%d\"} %.9f\n%s_count{worker=\"%d\"} "
					"%llu\n",
					fams[f].name, w, (double)atomic_load(&wk->wait_ns) / 1e9,
					fams[f].name, w,
					(unsigned long long)atomic_load(&wk->taken));
		}
	}
	family(b, "hornbeam_worker_restarts_total", "counter",
	       "Worker interpreters replaced (crash, max_requests, timeout).");
	bprintf(b, "hornbeam_worker_restarts_total %llu\n",
		(unsigned long long)hb_hub_restarts(hub));
}

static void render_sources(hb_metrics_t *m, buf_t *b)
{
	hb_shmap_stats_t ms;
	hb_pubsub_stats_t ps;

	if (m->src.state && m->src.state(&ms, &ps) == 0) {
		family(b, "hornbeam_state_entries", "gauge", "Keys in the shared state map.");
		bprintf(b, "hornbeam_state_entries %llu\n", (unsigned long long)ms.entries);
		family(b, "hornbeam_state_bytes", "gauge",
		       "Bytes the shared state map uses (of state_max_bytes).");
		bprintf(b, "hornbeam_state_bytes %llu\n", (unsigned long long)ms.bytes_used);
		family(b, "hornbeam_state_max_bytes", "gauge", "The shared state map's budget.");
		bprintf(b, "hornbeam_state_max_bytes %llu\n", (unsigned long long)ms.max_bytes);
		family(b, "hornbeam_state_lookups_total", "counter",
		       "Shared state reads, by result.");
		bprintf(b, "hornbeam_state_lookups_total{result=\"hit\"} %llu\n",
			(unsigned long long)ms.hits);
		bprintf(b, "hornbeam_state_lookups_total{result=\"miss\"} %llu\n",
			(unsigned long long)ms.misses);
		family(b, "hornbeam_pubsub_subscribers", "gauge", "Open pub/sub subscribers.");
		bprintf(b, "hornbeam_pubsub_subscribers %llu\n",
			(unsigned long long)ps.subscribers);
		family(b, "hornbeam_pubsub_published_total", "counter", "Messages published.");
		bprintf(b, "hornbeam_pubsub_published_total %llu\n",
			(unsigned long long)ps.published);
		family(b, "hornbeam_pubsub_delivered_total", "counter",
		       "Messages queued on a subscriber.");
		bprintf(b, "hornbeam_pubsub_delivered_total %llu\n",
			(unsigned long long)ps.delivered);
		family(b, "hornbeam_pubsub_dropped_total", "counter",
		       "Messages dropped from full subscriber queues (pubsub_queue_size).");
		bprintf(b, "hornbeam_pubsub_dropped_total %llu\n", (unsigned long long)ps.dropped);
	}
	void *ud = atomic_load(&m->ud);
	int n = m->src.members && ud ? m->src.members(ud) : -1;
	if (n >= 0) {
		family(b, "hornbeam_cluster_members", "gauge",
		       "Live cluster members (alive or suspect), this node included.");
		bprintf(b, "hornbeam_cluster_members %d\n", n);
	}
}

long hb_metrics_render(hb_metrics_t *m, char **out)
{
	buf_t b = {0};

	render_requests(m, &b);
	render_io(m, &b);
	render_workers(m, &b);
	render_sources(m, &b);
	family(&b, "hornbeam_ready", "gauge", "1 when /readyz answers 200.");
	bprintf(&b, "hornbeam_ready %d\n", hb_metrics_ready(m));
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	return (long)b.len;
}
