/* ring.h: one io_uring with what every event loop of the process needs, and nothing of HTTP.
 *
 * A ring is set up with the newest flags the kernel accepts (SINGLE_ISSUER, DEFER_TASKRUN,
 * COOP_TASKRUN, falling back one flag at a time), optionally with a provided-buffer ring for
 * multishot recv, a repeating tick timer, and a wakeup eventfd that other threads write. The io
 * threads of src/server and the cluster thread each run their own loop on one.
 *
 * Op dispatch: every SQE's user_data points at an hb_ring_op_t, owned by whoever submitted it
 * and kept alive until its last completion (multishot ops complete several times; IORING_CQE_F_MORE
 * says another completion follows). hb_ring_reap() calls op->cb(ring, op, cqe) for each
 * completion; `owner` and `kind` are the submitter's (e.g. a connection and which of its ops),
 * so one callback can serve several ops of one owner. The ring itself never frees an op.
 *
 * Threads: everything here runs on the thread that called hb_ring_init() (SINGLE_ISSUER binds
 * the ring to it), except hb_ring_wakeup(), which any thread may call.
 *
 * A loop looks like:
 *     for (;;) { hb_ring_clock(r); busy = my_queues() + hb_ring_reap(r);
 *                if (!busy) hb_ring_wait(r, my_may_sleep()); }
 */
#ifndef HB_CORE_RING_H
#define HB_CORE_RING_H

#include <liburing.h>
#include <stdint.h>

struct hb_ring;
struct hb_ring_op;

/* Called for every completion of op; may submit new SQEs and may free op's owner once the
 * owner knows no other completion of its ops can come. */
typedef void (*hb_ring_cb)(struct hb_ring *r, struct hb_ring_op *op, struct io_uring_cqe *cqe);

typedef struct hb_ring_op {
	hb_ring_cb cb;
	void *owner; /* the submitter's object (a connection, the io thread, ...) */
	int kind;    /* the submitter's tag for which op this is */
	int arg;     /* the submitter's argument (e.g. a listener index) */
} hb_ring_op_t;

typedef struct hb_ring_config {
	unsigned entries;   /* SQ size (CQ is four times it) */
	unsigned nbufs;	    /* provided buffers (power of two); 0: no buffer ring */
	unsigned buf_size;  /* bytes per provided buffer */
	unsigned tick_ms;   /* tick period; 0: no tick */
	hb_ring_cb on_tick; /* called every tick_ms (re-armed by the ring unless stopped) */
	void *tick_owner;   /* op->owner for on_tick */
	int wake_fd; /* eventfd other threads write to wake the loop; -1: the ring makes one */
	hb_ring_cb on_wake; /* called after a wakeup (may be NULL); the read is re-armed lazily */
	void *wake_owner;   /* op->owner for on_wake */
} hb_ring_config_t;

#define HB_RING_BUF_GROUP 0

typedef struct hb_ring {
	struct io_uring uring;
	unsigned flags; /* IORING_SETUP_* the kernel accepted */
	/* provided-buffer ring (buffer group HB_RING_BUF_GROUP) */
	struct io_uring_buf_ring *br;
	char *bufs;
	unsigned nbufs, buf_size, buf_pending;
	/* tick */
	hb_ring_op_t tick_op, tick_user; /* the ring's op; the owner's callback */
	struct __kernel_timespec tick_ts;
	unsigned tick_armed : 1, tick_stopped : 1;
	/* wakeup */
	hb_ring_op_t wake_op, wake_user;
	int wake_fd, wake_fd_owned, wake_armed;
	uint64_t wake_val; /* the eventfd read's buffer */
	/* cancel requests complete here: nothing to do */
	hb_ring_op_t cancel_op;
	uint64_t now_ns; /* monotonic, refreshed by hb_ring_clock() */
	int inited;
} hb_ring_t;

/* Sets up the ring (and its buffer ring, tick, wakeup) per cfg. Returns 0, or -errno (ENOSYS
 * or EPERM where io_uring is unavailable); on failure nothing needs freeing. */
int hb_ring_init(hb_ring_t *r, const hb_ring_config_t *cfg);
/* Tears it down (closes the eventfd if the ring made it). Safe on a ring that failed init. */
void hb_ring_exit(hb_ring_t *r);

/* Returns an SQE, submitting queued ones first when the SQ is full. Never NULL. */
struct io_uring_sqe *hb_ring_sqe(hb_ring_t *r);
/* An SQE for op (user_data set; liburing's io_uring_prep_* leave user_data alone). */
static inline struct io_uring_sqe *hb_ring_sqe_for(hb_ring_t *r, hb_ring_op_t *op)
{
	struct io_uring_sqe *sqe = hb_ring_sqe(r);

	io_uring_sqe_set_data(sqe, op);
	return sqe;
}
/* Asks the kernel to cancel op; the cancel's own completion is swallowed, op's completion
 * (usually -ECANCELED) still reaches op->cb. */
void hb_ring_cancel(hb_ring_t *r, hb_ring_op_t *op);

/* The buffer behind a buffer id from a completion with IORING_CQE_F_BUFFER. */
static inline char *hb_ring_buf(hb_ring_t *r, unsigned bid)
{
	return r->bufs + (size_t)bid * r->buf_size;
}
/* Gives a provided buffer back; returned buffers are published in one batch by hb_ring_wait. */
void hb_ring_buf_return(hb_ring_t *r, unsigned bid);

/* Refreshes the cached monotonic clock; returns it (ns). */
uint64_t hb_ring_clock(hb_ring_t *r);
static inline uint64_t hb_ring_now(const hb_ring_t *r)
{
	return r->now_ns;
}

/* Stops re-arming the tick (the one armed still fires once). */
void hb_ring_tick_stop(hb_ring_t *r);

/* [any thread] Wakes a loop sleeping in hb_ring_wait on wake_fd. Returns 0 or -errno. */
int hb_ring_wakeup(int wake_fd);
static inline int hb_ring_wake_fd(const hb_ring_t *r)
{
	return r->wake_fd;
}

/* Dispatches every completion waiting; returns how many. */
int hb_ring_reap(hb_ring_t *r);
/* Publishes returned buffers, re-arms the tick and the wakeup read, submits; if may_sleep,
 * blocks until at least one completion. */
void hb_ring_wait(hb_ring_t *r, int may_sleep);

#endif
