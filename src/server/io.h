/* io.h: an io thread: one io_uring, its listeners, its connections, its provided buffers.
 *
 * Everything in an hb_io_t belongs to its io thread; other threads reach it only through the
 * hub (worker -> io messages) and its wake eventfd. Every SQE's user_data points at an hb_op_t
 * whose `kind` the single dispatch switch in io.c turns into a named handler call; `owner` is
 * the connection (or NULL for the io thread's own ops). A connection counts its ops in flight
 * and is freed only when none remain (conn.h).
 */
#ifndef HB_SERVER_IO_H
#define HB_SERVER_IO_H

#include <liburing.h>
#include <stdint.h>
#include <time.h>

#include "server/server.h"

typedef enum {
	HB_OP_ACCEPT = 1,
	HB_OP_RECV,
	HB_OP_SEND,
	HB_OP_SEND_ZC,
	HB_OP_SPLICE_IN,  /* file -> pipe */
	HB_OP_SPLICE_OUT, /* pipe -> socket */
	HB_OP_SHUTDOWN,
	HB_OP_CANCEL, /* completion of a cancel request: nothing to do */
	HB_OP_TICK,
	HB_OP_WAKE,
} hb_op_kind_t;

typedef struct hb_op {
	hb_op_kind_t kind;
	int arg; /* HB_OP_ACCEPT: index of the bind */
	void *owner;
} hb_op_t;

struct hb_conn;

typedef struct hb_io {
	int idx;
	hb_server_t *srv;
	const hb_config_t *cfg;
	struct io_uring ring;
	unsigned ring_flags;
	/* provided-buffer ring for multishot recv */
	struct io_uring_buf_ring *br;
	char *bufs;
	unsigned nbufs, buf_size, buf_pending;
	hb_op_t *accept_ops; /* one per bind */
	int *accept_armed;
	hb_op_t tick_op, wake_op, cancel_op;
	struct __kernel_timespec tick_ts;
	int wake_armed;
	uint64_t wake_val;     /* the eventfd read's buffer */
	struct hb_conn *conns; /* every open connection: the tick scans it for deadlines */
	struct hb_conn *dirty; /* connections with output queued in this iteration */
	int64_t nconns;
	uint64_t now_ns;
	time_t date_sec;
	char date[40]; /* IMF-fixdate, refreshed each second */
	uint64_t next_id;
	int stopping; /* accepting stopped */
	int zc_off;   /* the kernel refused send_zc once: plain sends only */
} hb_io_t;

#define HB_TICK_MS 200

/* [main] Allocates an io thread's state (the ring is created by the thread itself, since
 * SINGLE_ISSUER binds it to its creator). Returns NULL on ENOMEM. */
hb_io_t *hb_io_new(hb_server_t *srv, int idx);
void hb_io_free(hb_io_t *io);
/* Thread entry: runs until the server drains and no connection is left. */
void *hb_io_main(void *io);

/* [io] Returns an SQE, submitting queued ones first when the SQ is full. Never NULL. */
struct io_uring_sqe *hb_io_sqe(hb_io_t *io);
/* [io] Gives a provided buffer back to the ring. */
void hb_io_buf_return(hb_io_t *io, unsigned bid);
/* [io] The buffer behind a buffer id. */
char *hb_io_buf(hb_io_t *io, unsigned bid);
/* [io] Monotonic nanoseconds, cached per loop iteration. */
uint64_t hb_io_now(hb_io_t *io);

#endif
