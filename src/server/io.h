/* io.h: an io thread: one io_uring, its listeners, its connections, its provided buffers.
 *
 * Everything in an hb_io_t belongs to its io thread; other threads reach it only through the
 * hub (worker -> io messages) and its wake eventfd. The ring itself (setup, provided buffers,
 * tick, wakeup, op dispatch) is core/ring.h; every SQE's user_data points at an hb_op_t (an
 * hb_ring_op_t) whose callback is the owner's: io.c's for accepts, the connection's for its ops
 * (which switches on `kind`). A connection counts its ops in flight and is freed only when none
 * remain (conn.h).
 */
#ifndef HB_SERVER_IO_H
#define HB_SERVER_IO_H

#include <stdint.h>
#include <time.h>

#include "core/cidr.h"
#include "core/ring.h"
#include "server/metrics.h"
#include "server/server.h"

/* The kinds of a connection's ops (hb_op_t.kind); the connection's callback dispatches on it. */
typedef enum {
	HB_OP_RECV = 1,
	HB_OP_SEND,
	HB_OP_SEND_ZC,
	HB_OP_SPLICE_IN,  /* file -> pipe */
	HB_OP_SPLICE_OUT, /* pipe -> socket */
	HB_OP_SHUTDOWN,
} hb_op_kind_t;

typedef hb_ring_op_t hb_op_t;

struct hb_conn;

typedef struct hb_io {
	int idx;
	hb_server_t *srv;
	const hb_config_t *cfg;
	hb_ring_t ring;	     /* core/ring: setup, provided buffers, tick, wakeup, dispatch */
	hb_op_t *accept_ops; /* one per bind */
	int *accept_armed;   /* 1: a multishot accept is armed; 2: and its cancel is on the way */
	unsigned char *accept_seen; /* a connection was accepted on it since the last tick */
	/* accept is held back (not re-armed) while out of descriptors, until the next tick, and
	 * while the process is at max_connections (connections then wait in the listen backlog) */
	int accept_backoff;
	uint64_t accept_errs;	/* failed accepts since the last log line */
	int accept_err;		/* the last one's errno */
	uint64_t accept_log_ns; /* when that line was logged (0: never) */
	unsigned reclaim_seen;	/* the srv->reclaim_gen this io thread last answered */
	struct hb_conn *conns;	/* every open connection: the tick scans it for deadlines */
	struct hb_conn *dirty;	/* connections with output queued in this iteration */
	int64_t nconns;
	time_t date_sec;
	char date[40]; /* IMF-fixdate, refreshed each second */
	uint64_t next_id;
	int stopping;		  /* accepting stopped */
	int zc_off;		  /* the kernel refused send_zc once: plain sends only */
	hb_cidr_set_t trusted;	  /* forwarded_allow_ips, parsed (read-only) */
	hb_metrics_io_t *metrics; /* this thread's counter block; NULL: metrics off */
	char *alog;		  /* access-log lines not yet written (HB_ACCESS_BUF_BYTES) */
	size_t alog_len;
	/* caches of what only busy connections need (conn.h, "per-io caches") */
	struct iovec *iov_cache; /* a list linked through iov[0].iov_base */
	unsigned iov_cached;
	struct hb_h1_parser **h1_cache; /* HB_IO_CACHE_MAX slots, allocated on first use */
	unsigned h1_cached;
	int pid;
	/* io_sched_batch: 1 while the thread is SCHED_BATCH; -1: the kernel refused it, not tried
	 * again (io.c, sched_update) */
	int sched_batch;
} hb_io_t;

#define HB_TICK_MS 200
/* Out of descriptors, an io thread closes up to this many idle keep-alive connections per
 * failed accept (oldest first, as nginx drains its reusable connections) and retries the accept
 * on its next tick; the failures are logged at most once a second, with their count. */
#define HB_ACCEPT_RECLAIM 32
#define HB_ACCEPT_LOG_NS 1000000000ull

/* [main] Allocates an io thread's state (the ring is created by the thread itself, since
 * SINGLE_ISSUER binds it to its creator). Returns NULL on ENOMEM. */
hb_io_t *hb_io_new(hb_server_t *srv, int idx);
void hb_io_free(hb_io_t *io);
/* Thread entry: runs until the server drains and no connection is left. */
void *hb_io_main(void *io);

/* [io] Returns an SQE, submitting queued ones first when the SQ is full. Never NULL. */
static inline struct io_uring_sqe *hb_io_sqe(hb_io_t *io)
{
	return hb_ring_sqe(&io->ring);
}
/* [io] Monotonic nanoseconds, cached per loop iteration. */
static inline uint64_t hb_io_now(const hb_io_t *io)
{
	return hb_ring_now(&io->ring);
}

#endif
