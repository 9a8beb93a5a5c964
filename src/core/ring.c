#include "core/ring.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Under valgrind (perf/cgbench.py counts instructions with callgrind) a thread blocked in
 * io_uring_enter keeps valgrind's big lock (3.19 does not mark that syscall as blocking), so
 * no other thread of the process runs and a request handed to a worker never completes. There
 * the loop sleeps in poll(2) on the ring fd instead, which valgrind releases the lock for, and
 * the ring is set up without DEFER_TASKRUN/COOP_TASKRUN so that poll sees every completion.
 * Outside valgrind RUNNING_ON_VALGRIND is a few no-op instructions and nothing changes. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HB_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef HB_ON_VALGRIND
#define HB_ON_VALGRIND() 0
#endif

/* Newest kernels first: fall back one flag at a time where the kernel refuses one. */
static int setup(hb_ring_t *r, unsigned entries)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;
	size_t first = HB_ON_VALGRIND() ? sizeof(tries) / sizeof(tries[0]) - 1 : 0;

	for (size_t i = first; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = {.flags = tries[i] | IORING_SETUP_SUBMIT_ALL};
		p.flags |= IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		rc = io_uring_queue_init_params(entries, &r->uring, &p);
		if (rc == 0) {
			r->flags = p.flags;
			return 0;
		}
		if (rc != -EINVAL)
			return rc;
	}
	return rc;
}

static int bufring_init(hb_ring_t *r, unsigned nbufs, unsigned size)
{
	size_t ringsz = nbufs * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg = {.ring_entries = nbufs, .bgid = HB_RING_BUF_GROUP};

	r->br = mmap(NULL, ringsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (r->br == MAP_FAILED)
		return r->br = NULL, -ENOMEM;
	r->nbufs = nbufs;
	r->buf_size = size;
	r->bufs = malloc((size_t)nbufs * size);
	if (!r->bufs)
		return -ENOMEM;
	reg.ring_addr = (unsigned long)r->br;
	int rc = io_uring_register_buf_ring(&r->uring, &reg, 0);
	if (rc < 0)
		return rc;
	io_uring_buf_ring_init(r->br);
	for (unsigned i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(r->br, hb_ring_buf(r, i), size, (unsigned short)i,
				      io_uring_buf_ring_mask(nbufs), (int)i);
	io_uring_buf_ring_advance(r->br, (int)nbufs);
	return 0;
}

void hb_ring_buf_return(hb_ring_t *r, unsigned bid)
{
	io_uring_buf_ring_add(r->br, hb_ring_buf(r, bid), r->buf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(r->nbufs), (int)r->buf_pending);
	r->buf_pending++;
}

static void bufs_publish(hb_ring_t *r)
{
	if (r->buf_pending) {
		io_uring_buf_ring_advance(r->br, (int)r->buf_pending);
		r->buf_pending = 0;
	}
}

struct io_uring_sqe *hb_ring_sqe(hb_ring_t *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);

	while (!sqe) {
		io_uring_submit(&r->uring);
		sqe = io_uring_get_sqe(&r->uring);
	}
	return sqe;
}

void hb_ring_cancel(hb_ring_t *r, hb_ring_op_t *op)
{
	struct io_uring_sqe *sqe = hb_ring_sqe_for(r, &r->cancel_op);

	io_uring_prep_cancel(sqe, op, 0);
}

uint64_t hb_ring_clock(hb_ring_t *r)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	r->now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return r->now_ns;
}

/* ---- tick and wakeup: internal ops whose callbacks call the owner's ---------------------- */

static void arm_tick(hb_ring_t *r)
{
	struct io_uring_sqe *sqe = hb_ring_sqe_for(r, &r->tick_op);

	io_uring_prep_timeout(sqe, &r->tick_ts, 0, 0);
	r->tick_armed = 1;
}

static void arm_wake(hb_ring_t *r)
{
	struct io_uring_sqe *sqe = hb_ring_sqe_for(r, &r->wake_op);

	io_uring_prep_read(sqe, r->wake_fd, &r->wake_val, sizeof(r->wake_val), 0);
	r->wake_armed = 1;
}

void hb_ring_tick_stop(hb_ring_t *r)
{
	r->tick_stopped = 1;
}

int hb_ring_wakeup(int wake_fd)
{
	uint64_t one = 1;

	return write(wake_fd, &one, sizeof(one)) == (ssize_t)sizeof(one) ? 0 : -errno;
}

/* The tick fired (-ETIME): call the owner's callback, then arm the next one. */
static void tick_fired(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe)
{
	(void)op;
	r->tick_armed = 0;
	r->tick_user.cb(r, &r->tick_user, cqe);
	if (!r->tick_stopped)
		arm_tick(r);
}

/* The eventfd read completed (its counter is reset); re-armed before the loop sleeps. */
static void wake_fired(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe)
{
	(void)op;
	r->wake_armed = 0;
	if (r->wake_user.cb)
		r->wake_user.cb(r, &r->wake_user, cqe);
}

int hb_ring_init(hb_ring_t *r, const hb_ring_config_t *cfg)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->wake_fd = -1;
	rc = setup(r, cfg->entries ? cfg->entries : 256);
	if (rc < 0)
		return rc;
	r->inited = 1;
	if (cfg->nbufs && (rc = bufring_init(r, cfg->nbufs, cfg->buf_size)) < 0)
		goto fail;
	r->wake_fd = cfg->wake_fd;
	if (r->wake_fd < 0) {
		r->wake_fd = eventfd(0, EFD_CLOEXEC);
		if (r->wake_fd < 0) {
			rc = -errno;
			goto fail;
		}
		r->wake_fd_owned = 1;
	}
	r->cancel_op.cb = NULL;
	r->wake_op.cb = wake_fired;
	r->wake_user = (hb_ring_op_t){.cb = cfg->on_wake, .owner = cfg->wake_owner};
	arm_wake(r);
	if (cfg->tick_ms && cfg->on_tick) {
		r->tick_op.cb = tick_fired;
		r->tick_user = (hb_ring_op_t){.cb = cfg->on_tick, .owner = cfg->tick_owner};
		r->tick_ts.tv_sec = cfg->tick_ms / 1000;
		r->tick_ts.tv_nsec = (long long)(cfg->tick_ms % 1000) * 1000000LL;
		arm_tick(r);
	}
	hb_ring_clock(r);
	return 0;
fail:
	hb_ring_exit(r);
	return rc;
}

void hb_ring_exit(hb_ring_t *r)
{
	if (r->br)
		munmap(r->br, r->nbufs * sizeof(struct io_uring_buf));
	r->br = NULL;
	free(r->bufs);
	r->bufs = NULL;
	if (r->inited)
		io_uring_queue_exit(&r->uring);
	r->inited = 0;
	if (r->wake_fd_owned && r->wake_fd >= 0)
		close(r->wake_fd);
	r->wake_fd = -1;
	r->wake_fd_owned = 0;
}

int hb_ring_reap(hb_ring_t *r)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&r->uring, head, cqe)
	{
		hb_ring_op_t *op = io_uring_cqe_get_data(cqe);
		if (op->cb)
			op->cb(r, op, cqe);
		n++;
	}
	io_uring_cq_advance(&r->uring, n);
	return (int)n;
}

void hb_ring_wait(hb_ring_t *r, int may_sleep)
{
	if (r->wake_fd >= 0 && !r->wake_armed)
		arm_wake(r);
	bufs_publish(r);
	if (may_sleep && HB_ON_VALGRIND()) {
		struct pollfd pfd = {.fd = r->uring.ring_fd, .events = POLLIN};
		io_uring_submit(&r->uring);
		if (!io_uring_cq_ready(&r->uring))
			(void)poll(&pfd, 1, -1);
		io_uring_submit_and_get_events(&r->uring);
	} else if (may_sleep)
		io_uring_submit_and_wait(&r->uring, 1);
	else
		io_uring_submit_and_get_events(&r->uring);
}
