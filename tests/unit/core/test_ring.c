/* test_ring.c: core/ring: the tick fires and re-arms, another thread wakes a sleeping loop,
 * completions reach the op's own callback with its owner and kind (cancel included), and
 * provided buffers given back are used again. Skipped where io_uring is unavailable. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/ring.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void init_or_skip(hb_ring_t *r, const hb_ring_config_t *cfg)
{
	int rc = hb_ring_init(r, cfg);

	if (rc == -ENOSYS || rc == -EPERM)
		cr_skip_test("io_uring unavailable: %s", strerror(-rc));
	cr_assert_eq(rc, 0, "hb_ring_init: %s", strerror(-rc));
}

/* ---- tick ------------------------------------------------------------------------------- */

static int ticks;

static void count_tick(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe)
{
	cr_assert_eq(op->owner, &ticks);
	cr_assert_eq(cqe->res, -ETIME);
	if (++ticks == 3)
		hb_ring_tick_stop(r);
}

Test(ring, tick_fires_repeatedly_until_stopped, .timeout = 10)
{
	hb_ring_t r;
	hb_ring_config_t cfg = {
		.tick_ms = 20, .on_tick = count_tick, .tick_owner = &ticks, .wake_fd = -1};

	ticks = 0;
	init_or_skip(&r, &cfg);
	uint64_t t0 = now_ms();
	while (ticks < 3 && now_ms() - t0 < 5000) {
		hb_ring_reap(&r);
		if (ticks < 3)
			hb_ring_wait(&r, 1);
	}
	cr_assert_eq(ticks, 3);
	cr_assert_geq(now_ms() - t0, 50, "three 20 ms ticks took %llu ms",
		      (unsigned long long)(now_ms() - t0));
	/* Stopped: no fourth tick within three periods. */
	t0 = now_ms();
	while (now_ms() - t0 < 80) {
		hb_ring_wait(&r, 0);
		hb_ring_reap(&r);
		usleep(5000);
	}
	cr_assert_eq(ticks, 3);
	hb_ring_exit(&r);
}

/* ---- wakeup ------------------------------------------------------------------------------ */

static int woken;

static void on_wake(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe)
{
	(void)r;
	cr_assert_eq(op->owner, &woken);
	cr_assert_eq(cqe->res, (int)sizeof(uint64_t));
	woken++;
}

static void *waker(void *arg)
{
	usleep(100 * 1000);
	hb_ring_wakeup(*(int *)arg);
	return NULL;
}

Test(ring, another_thread_wakes_a_sleeping_loop, .timeout = 10)
{
	hb_ring_t r;
	hb_ring_config_t cfg = {.on_wake = on_wake, .wake_owner = &woken, .wake_fd = -1};
	pthread_t th;

	woken = 0;
	init_or_skip(&r, &cfg);
	int fd = hb_ring_wake_fd(&r);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pthread_create(&th, NULL, waker, &fd), 0);
	uint64_t t0 = now_ms();
	hb_ring_wait(&r, 1); /* nothing else is armed: only the wakeup can end this */
	hb_ring_reap(&r);
	uint64_t took = now_ms() - t0;
	pthread_join(th, NULL);
	cr_assert_eq(woken, 1);
	cr_assert_geq(took, 50, "woke after %llu ms, before the other thread wrote",
		      (unsigned long long)took);
	/* The read is re-armed: a second wakeup is seen too. */
	hb_ring_wakeup(fd);
	hb_ring_wait(&r, 1);
	hb_ring_reap(&r);
	cr_assert_eq(woken, 2);
	hb_ring_exit(&r);
}

/* ---- op dispatch ------------------------------------------------------------------------- */

typedef struct {
	int calls, last_kind, last_res;
	hb_ring_op_t *last_op;
} seen_t;

static void record(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe)
{
	seen_t *s = op->owner;

	(void)r;
	s->calls++;
	s->last_kind = op->kind;
	s->last_res = cqe->res;
	s->last_op = op;
}

static void reap_until(hb_ring_t *r, const int *count, int want)
{
	uint64_t t0 = now_ms();

	while (*count < want && now_ms() - t0 < 5000) {
		hb_ring_wait(r, 1);
		hb_ring_reap(r);
	}
}

Test(ring, completions_reach_their_op_owner_and_kind, .timeout = 10)
{
	hb_ring_t r;
	hb_ring_config_t cfg = {.wake_fd = -1};
	seen_t a = {0}, b = {0};
	hb_ring_op_t opa = {.cb = record, .owner = &a, .kind = 7};
	hb_ring_op_t opb = {.cb = record, .owner = &b, .kind = 9};

	init_or_skip(&r, &cfg);
	io_uring_prep_nop(hb_ring_sqe_for(&r, &opa));
	reap_until(&r, &a.calls, 1);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.last_kind, 7);
	cr_assert_eq(a.last_op, &opa);
	cr_assert_eq(b.calls, 0);

	/* A long timeout, cancelled: its own callback sees -ECANCELED; the cancel request's
	 * completion is swallowed by the ring. */
	struct __kernel_timespec ts = {.tv_sec = 60};
	io_uring_prep_timeout(hb_ring_sqe_for(&r, &opb), &ts, 0, 0);
	hb_ring_wait(&r, 0);
	hb_ring_cancel(&r, &opb);
	reap_until(&r, &b.calls, 1);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.last_kind, 9);
	cr_assert_eq(b.last_res, -ECANCELED);
	cr_assert_eq(a.calls, 1);
	hb_ring_exit(&r);
}

/* ---- provided buffers -------------------------------------------------------------------- */

typedef struct {
	int got, ended;
	char data[64];
	unsigned bids_seen;
} rx_t;

static void on_recv(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe)
{
	rx_t *rx = op->owner;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		rx->ended = 1;
	cr_assert_gt(cqe->res, 0, "recv: %d (out of buffers: not recycled?)", cqe->res);
	cr_assert(cqe->flags & IORING_CQE_F_BUFFER);
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	memcpy(rx->data, hb_ring_buf(r, bid), (size_t)cqe->res);
	rx->data[cqe->res] = 0;
	rx->bids_seen |= 1u << bid;
	hb_ring_buf_return(r, bid);
	rx->got++;
}

static void arm_recv(hb_ring_t *r, hb_ring_op_t *op, int fd)
{
	struct io_uring_sqe *sqe = hb_ring_sqe_for(r, op);

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = HB_RING_BUF_GROUP;
}

Test(ring, provided_buffers_given_back_are_used_again, .timeout = 10)
{
	hb_ring_t r;
	hb_ring_config_t cfg = {.nbufs = 2, .buf_size = 32, .wake_fd = -1};
	rx_t rx = {0};
	hb_ring_op_t op = {.cb = on_recv, .owner = &rx};
	int sv[2];

	init_or_skip(&r, &cfg);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	arm_recv(&r, &op, sv[0]);
	/* Ten messages through two buffers: only works if each one comes back to the ring. */
	for (int i = 0; i < 10; i++) {
		char msg[16];
		int n = snprintf(msg, sizeof(msg), "msg %d", i);
		cr_assert_eq(write(sv[1], msg, (size_t)n), n);
		reap_until(&r, &rx.got, i + 1);
		cr_assert_eq(rx.got, i + 1);
		cr_assert_str_eq(rx.data, msg);
		if (rx.ended) { /* the kernel may end a multishot recv; the owner re-arms it */
			rx.ended = 0;
			arm_recv(&r, &op, sv[0]);
		}
	}
	cr_assert_eq(rx.bids_seen, 3u, "both buffers used");
	close(sv[0]);
	close(sv[1]);
	hb_ring_exit(&r);
}
