/* test_hub.c: dispatch choice, worker blocking and wakeups, shutdown, io sleep/wake, a stress
 * with 2 io threads and 3 workers that counts every request and reply, and the event-loop
 * worker side (prepare_sleep, poll, the ready list, with its own stress). */
#include "../hb_test.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/hub.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_accepting(hb_hub_t *hub, int w, int on)
{
	atomic_store(&hb_hub_worker(hub, w)->accepting, on);
}

static int64_t inflight(hb_hub_t *hub, int w)
{
	return atomic_load(&hb_hub_worker(hub, w)->inflight);
}

/* Readiness of an eventfd without consuming it. */
static int efd_ready(int efd)
{
	struct pollfd p = {.fd = efd, .events = POLLIN};

	return poll(&p, 1, 0);
}

Test(hub, shape)
{
	hb_hub_t *hub = hb_hub_new(2, 3);

	cr_assert_not_null(hub);
	cr_assert_eq(hb_hub_nio(hub), 2);
	cr_assert_eq(hb_hub_max_workers(hub), 3);
	for (int w = 0; w < 3; w++) {
		hb_worker_t *wk = hb_hub_worker(hub, w);
		cr_assert_eq(wk->idx, w);
		cr_assert_eq(wk->hub, hub);
		cr_assert_geq(wk->efd, 0);
		cr_assert_eq(atomic_load(&wk->accepting), 0);
		cr_assert_eq(inflight(hub, w), 0);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_geq(hb_hub_io_wake(hub, i)->efd, 0);
	hb_hub_free(hub);
	hb_hub_free(NULL);
}

Test(hub, dispatch_needs_an_accepting_worker)
{
	hb_hub_t *hub = hb_hub_new(1, 3);
	hb_stream_t st = {0}, *got = NULL;

	cr_assert_eq(hb_hub_dispatch(hub, 0, &st), -ESRCH);
	set_accepting(hub, 1, 1);
	for (int i = 0; i < 5; i++) {
		st.worker_idx = -1;
		cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
		cr_assert_eq(st.worker_idx, 1, "dispatched to non-accepting worker %d",
			     st.worker_idx);
	}
	cr_assert_eq(inflight(hub, 1), 5);
	cr_assert_eq(inflight(hub, 0), 0);
	cr_assert_eq(inflight(hub, 2), 0);
	/* Nothing reached the others. */
	cr_assert_eq(hb_hub_worker_next(hub, 0, &got, 0), -ETIMEDOUT);
	cr_assert_eq(hb_hub_worker_next(hub, 2, &got, 0), -ETIMEDOUT);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(hb_hub_worker_next(hub, 1, &got, 0), 0);
		cr_assert_eq(got, &st);
	}
	set_accepting(hub, 1, 0);
	cr_assert_eq(hb_hub_dispatch(hub, 0, &st), -ESRCH);
	hb_hub_free(hub);
}

Test(hub, dispatch_picks_least_inflight)
{
	hb_hub_t *hub = hb_hub_new(1, 3);
	hb_stream_t st = {0};

	for (int w = 0; w < 3; w++)
		set_accepting(hub, w, 1);
	atomic_store(&hb_hub_worker(hub, 0)->inflight, 5);
	atomic_store(&hb_hub_worker(hub, 1)->inflight, 2);
	atomic_store(&hb_hub_worker(hub, 2)->inflight, 7);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
		cr_assert_eq(st.worker_idx, 1);
	}
	cr_assert_eq(inflight(hub, 1), 5);
	/* 1 and 0 now tie at 5: the next two go one to each, never to 2. */
	int seen[3] = {0};
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
		seen[st.worker_idx]++;
	}
	cr_assert_eq(seen[0], 1);
	cr_assert_eq(seen[1], 1);
	cr_assert_eq(seen[2], 0);
	hb_hub_free(hub);
}

Test(hub, workers_backlogged_needs_every_accepting_worker_awake_with_two)
{
	hb_hub_t *hub = hb_hub_new(1, 3);

	cr_assert_eq(hb_hub_workers_backlogged(hub), 0, "no worker accepts");
	set_accepting(hub, 0, 1);
	set_accepting(hub, 1, 1);
	atomic_store(&hb_hub_worker(hub, 0)->inflight, 2);
	atomic_store(&hb_hub_worker(hub, 1)->inflight, 1);
	cr_assert_eq(hb_hub_workers_backlogged(hub), 0, "worker 1 runs its only request");
	atomic_store(&hb_hub_worker(hub, 1)->inflight, 3);
	atomic_store(&hb_hub_worker(hub, 2)->inflight, 0);
	cr_assert_eq(hb_hub_workers_backlogged(hub), 1, "worker 2 does not accept: not counted");
	atomic_store(&hb_hub_worker(hub, 0)->sleeping, 1);
	cr_assert_eq(hb_hub_workers_backlogged(hub), 0, "worker 0 sleeps: it would take one now");
	hb_hub_free(hub);
}

Test(hub, dispatch_ties_rotate)
{
	hb_hub_t *hub = hb_hub_new(1, 3);
	hb_stream_t st = {0};
	int seen[3] = {0};

	for (int w = 0; w < 3; w++)
		set_accepting(hub, w, 1);
	for (int i = 0; i < 30; i++) {
		for (int w = 0; w < 3; w++) /* keep every load equal */
			atomic_store(&hb_hub_worker(hub, w)->inflight, 0);
		cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
		seen[st.worker_idx]++;
	}
	cr_assert_eq(seen[0], 10);
	cr_assert_eq(seen[1], 10);
	cr_assert_eq(seen[2], 10);
	hb_hub_free(hub);
}

Test(hub, dispatch_full_queue_falls_back_then_eagain)
{
	hb_hub_t *hub = hb_hub_new(1, 2);
	hb_stream_t st = {0};

	set_accepting(hub, 0, 1);
	for (unsigned i = 0; i < HB_HUB_QUEUE_CAP; i++)
		cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
	cr_assert_eq(hb_hub_dispatch(hub, 0, &st), -EAGAIN);
	cr_assert_eq(inflight(hub, 0), HB_HUB_QUEUE_CAP);
	/* Worker 0 looks idlest but its queue is full: the stream goes to worker 1.
	 */
	set_accepting(hub, 1, 1);
	atomic_store(&hb_hub_worker(hub, 0)->inflight, 0);
	atomic_store(&hb_hub_worker(hub, 1)->inflight, 100);
	cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
	cr_assert_eq(st.worker_idx, 1);
	cr_assert_eq(inflight(hub, 0), 0);
	cr_assert_eq(inflight(hub, 1), 101);
	hb_hub_free(hub);
}

Test(hub, worker_next_times_out)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *got = NULL;

	uint64_t t0 = now_ms();
	cr_assert_eq(hb_hub_worker_next(hub, 0, &got, 50), -ETIMEDOUT);
	uint64_t dt = now_ms() - t0;
	cr_assert_geq(dt, 40);
	cr_assert_lt(dt, 1000);
	cr_assert_null(got);
	cr_assert_eq(atomic_load(&hb_hub_worker(hub, 0)->sleeping), 0);
	hb_hub_free(hub);
}

Test(hub, kick_returns_eintr)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *got = NULL;

	hb_hub_worker_kick(hub, 0);
	cr_assert_eq(hb_hub_worker_next(hub, 0, &got, 1000), -EINTR);
	cr_assert_eq(hb_hub_worker_next(hub, 0, &got, 0), -ETIMEDOUT);
	hb_hub_free(hub);
}

typedef struct waiter {
	hb_hub_t *hub;
	int w;
	int timeout_ms;
	_Atomic int rc;
	_Atomic uint64_t done_ms;
	hb_stream_t *got;
} waiter_t;

static void *waiter_main(void *arg)
{
	waiter_t *wt = arg;
	int rc;

	do
		rc = hb_hub_worker_next(wt->hub, wt->w, &wt->got, wt->timeout_ms);
	while (rc == -EINTR);
	atomic_store(&wt->done_ms, now_ms());
	atomic_store(&wt->rc, rc);
	return NULL;
}

/* Waits until worker w has announced that it sleeps, then a little more so it
 * is in poll. */
static void wait_worker_asleep(hb_hub_t *hub, int w)
{
	while (!atomic_load(&hb_hub_worker(hub, w)->sleeping))
		sched_yield();
	usleep(20 * 1000);
}

Test(hub, blocked_worker_woken_by_dispatch_promptly)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t st = {0};
	waiter_t wt = {.hub = hub, .w = 0, .timeout_ms = 5000, .rc = 1};
	pthread_t th;

	set_accepting(hub, 0, 1);
	cr_assert_eq(pthread_create(&th, NULL, waiter_main, &wt), 0);
	wait_worker_asleep(hub, 0);
	uint64_t t0 = now_ms();
	cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
	pthread_join(th, NULL);
	cr_assert_eq(atomic_load(&wt.rc), 0);
	cr_assert_eq(wt.got, &st);
	uint64_t lat = atomic_load(&wt.done_ms) - t0;
	cr_assert_lt(lat, 500, "worker woke %llu ms after dispatch", (unsigned long long)lat);
	hb_hub_free(hub);
}

/* Many handoffs with no pause: a lost wakeup shows as a worker stuck until its
 * timeout. */
Test(hub, worker_wakeups_are_never_lost)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t st[300];
	pthread_t th;

	set_accepting(hub, 0, 1);
	for (int i = 0; i < 300; i++) {
		waiter_t wt = {.hub = hub, .w = 0, .timeout_ms = 2000, .rc = 1};
		cr_assert_eq(pthread_create(&th, NULL, waiter_main, &wt), 0);
		if (i % 3 == 1)
			sched_yield();
		else if (i % 3 == 2)
			usleep(200);
		uint64_t t0 = now_ms();
		cr_assert_eq(hb_hub_dispatch(hub, 0, &st[i]), 0);
		pthread_join(th, NULL);
		cr_assert_eq(atomic_load(&wt.rc), 0, "round %d: rc %d", i, atomic_load(&wt.rc));
		cr_assert_eq(wt.got, &st[i]);
		cr_assert_lt(atomic_load(&wt.done_ms) - t0, 1000, "round %d: wakeup lost", i);
	}
	hb_hub_free(hub);
}

Test(hub, stop_delivers_queued_then_eshutdown)
{
	hb_hub_t *hub = hb_hub_new(2, 1);
	hb_stream_t a = {0}, b = {0}, c = {0}, *got = NULL;
	int seen = 0;

	set_accepting(hub, 0, 1);
	cr_assert_eq(hb_hub_dispatch(hub, 0, &a), 0);
	cr_assert_eq(hb_hub_dispatch(hub, 1, &b), 0);
	cr_assert_eq(hb_hub_dispatch(hub, 0, &c), 0);
	hb_hub_worker_stop(hub, 0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(hb_hub_worker_next(hub, 0, &got, 1000), 0);
		seen |= (got == &a) << 0 | (got == &b) << 1 | (got == &c) << 2;
	}
	cr_assert_eq(seen, 7);
	/* Until the io side has seen the three END messages, the requests still count
	 * as in flight: the worker must not leave yet. */
	cr_assert_eq(hb_hub_worker_next(hub, 0, &got, 1000), -EINTR);
	atomic_fetch_sub(&hb_hub_worker(hub, 0)->inflight, 3);
	cr_assert_eq(hb_hub_worker_next(hub, 0, &got, 1000), -ESHUTDOWN);
	cr_assert_eq(hb_hub_worker_next(hub, 0, &got, -1), -ESHUTDOWN);
	hb_hub_free(hub);
}

Test(hub, stop_wakes_blocked_worker, .timeout = 20)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	/* Not -1: a missing wakeup must fail the test, not hang it. */
	waiter_t wt = {.hub = hub, .w = 0, .timeout_ms = 3000, .rc = 1};
	pthread_t th;

	cr_assert_eq(pthread_create(&th, NULL, waiter_main, &wt), 0);
	wait_worker_asleep(hub, 0);
	uint64_t t0 = now_ms();
	hb_hub_worker_stop(hub, 0);
	pthread_join(th, NULL);
	cr_assert_eq(atomic_load(&wt.rc), -ESHUTDOWN);
	cr_assert_lt(atomic_load(&wt.done_ms) - t0, 500);
	hb_hub_free(hub);
}

Test(hub, io_sleep_and_worker_push)
{
	hb_hub_t *hub = hb_hub_new(2, 2);
	hb_io_wake_t *io0 = hb_hub_io_wake(hub, 0), *io1 = hb_hub_io_wake(hub, 1);
	hb_msg_t m;
	int dummy;

	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	/* Awake io thread: the push is queued but the eventfd stays quiet. */
	hb_msg_t end = {.type = HB_MSG_END, .aux = 7, .stream = &dummy};
	cr_assert_eq(hb_hub_worker_push(hub, 1, 0, &end), 0);
	cr_assert_eq(efd_ready(io0->efd), 0);
	cr_assert_eq(hb_hub_io_prepare_sleep(hub, 0), 0, "a message is waiting");
	cr_assert_eq(atomic_load(&io0->sleeping), 0);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_END);
	cr_assert_eq(m.aux, 7);
	cr_assert_eq(m.stream, &dummy);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(hb_hub_io_pop(hub, 1, &m), -EAGAIN);

	/* Sleeping io thread: the push writes its eventfd, and only its own. */
	cr_assert_eq(hb_hub_io_prepare_sleep(hub, 0), 1);
	cr_assert_eq(atomic_load(&io0->sleeping), 1);
	cr_assert_eq(hb_hub_worker_push(hub, 0, 0, &end), 0);
	cr_assert_eq(efd_ready(io0->efd), 1);
	cr_assert_eq(efd_ready(io1->efd), 0);
	hb_hub_io_awake(hub, 0);
	cr_assert_eq(atomic_load(&io0->sleeping), 0);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(hb_hub_io_prepare_sleep(hub, 0), 1);
	hb_hub_io_awake(hub, 0);
	hb_hub_free(hub);
}

Test(hub, io_pop_takes_from_every_worker)
{
	hb_hub_t *hub = hb_hub_new(1, 3);
	hb_msg_t m;
	int count[3] = {0};

	for (int w = 0; w < 3; w++)
		for (int k = 0; k < 4; k++) {
			hb_msg_t in = {.type = HB_MSG_BODY, .aux = (uint32_t)w, .len = (uint64_t)k};
			cr_assert_eq(hb_hub_worker_push(hub, w, 0, &in), 0);
		}
	int last[3] = {-1, -1, -1};
	for (int i = 0; i < 12; i++) {
		cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
		cr_assert_lt(m.aux, 3);
		cr_assert_eq((int)m.len, last[m.aux] + 1, "per-worker order kept");
		last[m.aux] = (int)m.len;
		count[m.aux]++;
	}
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	for (int w = 0; w < 3; w++)
		cr_assert_eq(count[w], 4);
	hb_hub_free(hub);
}

/* ---- stress: 2 io threads, 3 workers
 * ---------------------------------------------------- */

#define ST_NIO 2
#define ST_NW 3
#define ST_PER_IO 20000
#define ST_WINDOW 24

typedef struct stress {
	hb_hub_t *hub;
	hb_stream_t *streams[ST_NIO];	   /* ST_PER_IO each */
	_Atomic uint32_t *replies[ST_NIO]; /* END messages seen per stream */
	_Atomic uint64_t served[ST_NW];
	_Atomic int lost_wakeups;
	_Atomic int errors;
	_Atomic int running_io;
} stress_t;

typedef struct stress_arg {
	stress_t *st;
	int idx;
} stress_arg_t;

static void io_take_reply(stress_t *st, int io, const hb_msg_t *m)
{
	hb_stream_t *s = m->stream;
	size_t k = (size_t)(s - st->streams[io]);

	if (m->type != HB_MSG_END || s->io_idx != io || k >= ST_PER_IO) {
		atomic_fetch_add(&st->errors, 1);
		return;
	}
	atomic_fetch_add(&st->replies[io][k], 1);
	/* What the connection layer does on END. */
	atomic_fetch_sub(&hb_hub_worker(st->hub, s->worker_idx)->inflight, 1);
}

/* Sleeps like an io ring would: prepare, poll the eventfd, drain it, awake. */
static void io_sleep(stress_t *st, int io)
{
	hb_io_wake_t *wk = hb_hub_io_wake(st->hub, io);

	if (!hb_hub_io_prepare_sleep(st->hub, io))
		return;
	struct pollfd p = {.fd = wk->efd, .events = POLLIN};
	int r = poll(&p, 1, 1000);
	if (r == 0)
		atomic_fetch_add(&st->lost_wakeups, 1); /* replies were outstanding */
	uint64_t v;
	if (r > 0)
		(void)!read(wk->efd, &v, sizeof(v));
	hb_hub_io_awake(st->hub, io);
}

static void *stress_io(void *arg)
{
	stress_arg_t *a = arg;
	stress_t *st = a->st;
	int io = a->idx;
	size_t sent = 0, got = 0;
	hb_msg_t m;

	while (got < ST_PER_IO) {
		int progress = 0;
		while (sent < ST_PER_IO && sent - got < ST_WINDOW) {
			int rc = hb_hub_dispatch(st->hub, io, &st->streams[io][sent]);
			if (rc == -EAGAIN)
				break;
			if (rc < 0) {
				atomic_fetch_add(&st->errors, 1);
				return NULL;
			}
			sent++;
			progress = 1;
		}
		while (hb_hub_io_pop(st->hub, io, &m) == 0) {
			io_take_reply(st, io, &m);
			got++;
			progress = 1;
		}
		if (!progress)
			io_sleep(st, io);
	}
	atomic_fetch_sub(&st->running_io, 1);
	return NULL;
}

static void *stress_worker(void *arg)
{
	stress_arg_t *a = arg;
	stress_t *st = a->st;
	int w = a->idx;
	hb_stream_t *s;

	for (;;) {
		int rc = hb_hub_worker_next(st->hub, w, &s, 1000);
		if (rc == -ESHUTDOWN)
			return NULL;
		if (rc == -EINTR)
			continue;
		if (rc == -ETIMEDOUT) {
			if (atomic_load(&st->running_io) > 0)
				atomic_fetch_add(&st->lost_wakeups, 1);
			continue;
		}
		if (rc < 0 || s->worker_idx != w) {
			atomic_fetch_add(&st->errors, 1);
			continue;
		}
		hb_msg_t end = {.type = HB_MSG_END, .stream = s};
		hb_hub_worker_push(st->hub, w, s->io_idx, &end);
		atomic_fetch_add(&st->served[w], 1);
	}
}

Test(hub, stress_two_io_three_workers, .timeout = 60)
{
	stress_t st = {.running_io = ST_NIO};
	stress_arg_t ioa[ST_NIO], wa[ST_NW];
	pthread_t iot[ST_NIO], wt[ST_NW];

	st.hub = hb_hub_new(ST_NIO, ST_NW);
	cr_assert_not_null(st.hub);
	for (int i = 0; i < ST_NIO; i++) {
		st.streams[i] = calloc(ST_PER_IO, sizeof(hb_stream_t));
		st.replies[i] = calloc(ST_PER_IO, sizeof(*st.replies[i]));
		cr_assert(st.streams[i] && st.replies[i]);
		for (int k = 0; k < ST_PER_IO; k++)
			st.streams[i][k].io_idx = i;
	}
	for (int w = 0; w < ST_NW; w++) {
		set_accepting(st.hub, w, 1);
		wa[w] = (stress_arg_t){&st, w};
		cr_assert_eq(pthread_create(&wt[w], NULL, stress_worker, &wa[w]), 0);
	}
	for (int i = 0; i < ST_NIO; i++) {
		ioa[i] = (stress_arg_t){&st, i};
		cr_assert_eq(pthread_create(&iot[i], NULL, stress_io, &ioa[i]), 0);
	}
	for (int i = 0; i < ST_NIO; i++)
		pthread_join(iot[i], NULL);
	for (int w = 0; w < ST_NW; w++)
		hb_hub_worker_stop(st.hub, w);
	for (int w = 0; w < ST_NW; w++)
		pthread_join(wt[w], NULL);

	cr_assert_eq(atomic_load(&st.errors), 0);
	cr_assert_eq(atomic_load(&st.lost_wakeups), 0);
	uint64_t total = 0;
	for (int w = 0; w < ST_NW; w++) {
		total += atomic_load(&st.served[w]);
		cr_assert_gt(atomic_load(&st.served[w]), 0, "worker %d got nothing", w);
		cr_assert_eq(inflight(st.hub, w), 0);
	}
	cr_assert_eq(total, (uint64_t)ST_NIO * ST_PER_IO);
	for (int i = 0; i < ST_NIO; i++) {
		for (int k = 0; k < ST_PER_IO; k++)
			cr_assert_eq(atomic_load(&st.replies[i][k]), 1, "io %d stream %d", i, k);
		free(st.streams[i]);
		free((void *)st.replies[i]);
	}
	hb_hub_free(st.hub);
}

/* ---- event-loop (async) workers: prepare_sleep, poll, the ready list
 * -------------------- */

static hb_stream_t *ready_stream(hb_hub_t *hub, int io, int w)
{
	hb_request_t *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	hb_stream_t *s = hb_stream_new(hub, io, r);
	cr_assert_not_null(s);
	s->worker_idx = w;
	s->async = 1;
	return s;
}

static void release_pair(hb_stream_t *s)
{
	hb_stream_release(s);
	hb_stream_release(s);
}

Test(hub, async_worker_prepare_sleep_and_poll)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_worker_t *wk = hb_hub_worker(hub, 0);
	hb_stream_t st = {0}, *got = NULL;

	set_accepting(hub, 0, 1);
	cr_assert_eq(hb_hub_worker_poll(hub, 0, &got), -EAGAIN);
	cr_assert_eq(hb_hub_worker_prepare_sleep(hub, 0), 1);
	cr_assert_eq(efd_ready(wk->efd), 0);
	cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
	cr_assert_eq(efd_ready(wk->efd), 1, "dispatch to a sleeping worker writes its eventfd");
	hb_hub_worker_awake(hub, 0);
	cr_assert_eq(atomic_load(&wk->sleeping), 0);
	cr_assert_eq(efd_ready(wk->efd), 0, "awake drains the eventfd");
	cr_assert_eq(hb_hub_worker_prepare_sleep(hub, 0), 0, "a request is waiting");
	cr_assert_eq(atomic_load(&wk->sleeping), 0);
	cr_assert_eq(hb_hub_worker_poll(hub, 0, &got), 0);
	cr_assert_eq(got, &st);
	cr_assert_eq(hb_hub_worker_poll(hub, 0, &got), -EAGAIN);
	/* Awake worker: no eventfd write. */
	cr_assert_eq(hb_hub_dispatch(hub, 0, &st), 0);
	cr_assert_eq(efd_ready(wk->efd), 0);
	cr_assert_eq(hb_hub_worker_poll(hub, 0, &got), 0);
	cr_assert_eq(hb_hub_worker_prepare_sleep(hub, 0), 1);
	hb_hub_worker_awake(hub, 0);
	hb_hub_worker_stop(hub, 0);
	cr_assert_eq(hb_hub_worker_prepare_sleep(hub, 0), 0, "stopping: do not sleep");
	hb_hub_free(hub);
}

/* A batch of requests to sleeping workers writes no eventfd until the io thread flushes (or is
 * about to sleep), then one write per worker owed. */
Test(hub, batched_dispatch_wakes_once_at_flush)
{
	hb_hub_t *hub = hb_hub_new(1, 2);
	hb_worker_t *w0 = hb_hub_worker(hub, 0), *w1 = hb_hub_worker(hub, 1);
	hb_stream_t st[3] = {{0}}, *got = NULL;
	uint64_t v = 0;

	set_accepting(hub, 0, 1);
	set_accepting(hub, 1, 1);
	cr_assert_eq(hb_hub_worker_prepare_sleep(hub, 0), 1);
	cr_assert_eq(hb_hub_worker_prepare_sleep(hub, 1), 1);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(hb_hub_dispatch_batched(hub, 0, &st[i]), 0);
	cr_assert_eq(efd_ready(w0->efd) + efd_ready(w1->efd), 0, "no wake before the flush");
	hb_hub_io_flush(hub, 0);
	cr_assert_eq(efd_ready(w0->efd), 1);
	cr_assert_eq(efd_ready(w1->efd), 1);
	cr_assert_eq(read(w0->efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	cr_assert_eq(v, 1, "one write for the worker's requests of the batch");
	hb_hub_worker_awake(hub, 1);
	hb_hub_io_flush(hub, 0);
	cr_assert_eq(efd_ready(w0->efd) + efd_ready(w1->efd), 0, "nothing owed after a flush");
	/* The io thread's prepare_sleep pays what is owed before it may sleep. */
	set_accepting(hub, 1, 0);
	atomic_store(&w0->sleeping, 1);
	cr_assert_eq(hb_hub_dispatch_batched(hub, 0, &st[0]), 0);
	cr_assert_eq(hb_hub_dispatch_batched(hub, 0, &st[1]), 0);
	cr_assert_eq(efd_ready(w0->efd), 0);
	cr_assert_eq(hb_hub_io_prepare_sleep(hub, 0), 1);
	cr_assert_eq(efd_ready(w0->efd), 1, "prepare_sleep flushed the owed wake");
	hb_hub_io_awake(hub, 0);
	hb_hub_worker_awake(hub, 0);
	int n = 0;
	for (int w = 0; w < 2; w++)
		while (hb_hub_worker_poll(hub, w, &got) == 0)
			n++;
	cr_assert_eq(n, 5);
	hb_hub_free(hub);
}

Test(hub, stream_ready_once_until_cleared)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_worker_t *wk = hb_hub_worker(hub, 0);
	hb_stream_t *a = ready_stream(hub, 0, 0), *b = ready_stream(hub, 0, 0);

	cr_assert_null(hb_hub_worker_take_ready(hub, 0));
	cr_assert_eq(hb_hub_worker_prepare_sleep(hub, 0), 1);
	hb_hub_stream_ready(hub, a);
	cr_assert_eq(efd_ready(wk->efd), 0, "the wake is owed until the io thread's flush");
	hb_hub_io_flush(hub, 0);
	cr_assert_eq(efd_ready(wk->efd), 1, "ready stream wakes a sleeping worker");
	hb_hub_worker_awake(hub, 0);
	hb_hub_stream_ready(hub, a); /* already pending: no second entry, no second reference */
	cr_assert_eq(atomic_load(&a->refs), 3);
	cr_assert_eq(hb_hub_worker_prepare_sleep(hub, 0), 0, "ready list not empty");
	hb_hub_stream_ready(hub, b);
	hb_stream_t *l = hb_hub_worker_take_ready(hub, 0);
	cr_assert_eq(l, b, "newest first");
	cr_assert_eq(l->ready_next, a);
	cr_assert_null(a->ready_next);
	cr_assert_null(hb_hub_worker_take_ready(hub, 0));
	/* As documented: clear wake_pending, then release the list's reference. */
	for (hb_stream_t *s = l, *next; s; s = next) {
		next = s->ready_next;
		atomic_store(&s->wake_pending, 0);
		hb_stream_release(s);
	}
	cr_assert_eq(atomic_load(&a->refs), 2);
	cr_assert_eq(atomic_load(&b->refs), 2);
	hb_hub_stream_ready(hub, a); /* cleared: may be queued again */
	cr_assert_eq(hb_hub_worker_take_ready(hub, 0), a);
	atomic_store(&a->wake_pending, 0);
	hb_stream_release(a);
	release_pair(a);
	release_pair(b);
	hb_hub_free(hub);
}

/* The end of a bodyless request is recorded without putting the stream on the ready list
 * (nothing waits for it); a request with a body gets its wakeup. */
Test(hub, body_eof_wakes_only_a_body_reader)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *get = ready_stream(hub, 0, 0), *post = ready_stream(hub, 0, 0);

	post->req->flags |= HB_REQ_HAS_BODY;
	hb_stream_body_eof(get);
	cr_assert(atomic_load(&get->state) & HB_ST_BODY_EOF);
	cr_assert_null(hb_hub_worker_take_ready(hub, 0), "no wakeup for a bodyless request");
	hb_stream_body_eof(post);
	cr_assert(atomic_load(&post->state) & HB_ST_BODY_EOF);
	cr_assert_eq(hb_hub_worker_take_ready(hub, 0), post);
	atomic_store(&post->wake_pending, 0);
	hb_stream_release(post);
	release_pair(get);
	release_pair(post);
	hb_hub_free(hub);
}

/* Two io threads keep posting news on their streams; one event-loop worker
 * takes the ready list, clears wake_pending, then reads the news, and sleeps
 * through prepare_sleep + poll. Every piece of news must be seen, every list
 * reference dropped, no wakeup lost. */
#define RS_NIO 2
#define RS_PER_IO 6
#define RS_ROUNDS 20000

typedef struct ready_stress {
	hb_hub_t *hub;
	hb_stream_t *s[RS_NIO][RS_PER_IO];
	_Atomic uint64_t posted[RS_NIO][RS_PER_IO];
	uint64_t seen[RS_NIO][RS_PER_IO]; /* worker only */
	_Atomic int running_io;
	_Atomic int lost_wakeups;
} ready_stress_t;

typedef struct rs_arg {
	ready_stress_t *rs;
	int io;
} rs_arg_t;

static void *rs_io(void *arg)
{
	rs_arg_t *a = arg;
	ready_stress_t *rs = a->rs;

	for (int n = 0; n < RS_ROUNDS; n++) {
		int k = n % RS_PER_IO;
		atomic_fetch_add(&rs->posted[a->io][k], 1);
		hb_hub_stream_ready(rs->hub, rs->s[a->io][k]);
		if (n % 4 == 3 || n == RS_ROUNDS - 1) /* the end of an io loop turn */
			hb_hub_io_flush(rs->hub, a->io);
		if (n % 64 == 0)
			sched_yield();
	}
	atomic_fetch_sub(&rs->running_io, 1);
	hb_hub_worker_kick(rs->hub, 0); /* so the worker notices the end without waiting */
	return NULL;
}

static int rs_all_seen(ready_stress_t *rs)
{
	for (int i = 0; i < RS_NIO; i++)
		for (int k = 0; k < RS_PER_IO; k++)
			if (rs->seen[i][k] != atomic_load(&rs->posted[i][k]))
				return 0;
	return 1;
}

static void *rs_worker(void *arg)
{
	ready_stress_t *rs = arg;
	hb_worker_t *wk = hb_hub_worker(rs->hub, 0);

	for (;;) {
		hb_stream_t *l = hb_hub_worker_take_ready(rs->hub, 0);
		for (hb_stream_t *s = l, *next; s; s = next) {
			next = s->ready_next; /* before clearing: an io thread may re-link s at
						 once */
			atomic_store(&s->wake_pending, 0);
			int io = s->io_idx;
			int k = (int)(uintptr_t)s->exchange;
			rs->seen[io][k] = atomic_load(&rs->posted[io][k]);
			hb_stream_release(s);
		}
		if (l)
			continue;
		if (atomic_load(&rs->running_io) == 0 && rs_all_seen(rs))
			return NULL;
		if (!hb_hub_worker_prepare_sleep(rs->hub, 0))
			continue;
		struct pollfd p = {.fd = wk->efd, .events = POLLIN};
		if (poll(&p, 1, 1000) == 0 && !rs_all_seen(rs))
			atomic_fetch_add(&rs->lost_wakeups, 1); /* news was waiting */
		hb_hub_worker_awake(rs->hub, 0);
	}
}

Test(hub, ready_list_stress, .timeout = 60)
{
	ready_stress_t rs = {.running_io = RS_NIO};
	rs_arg_t args[RS_NIO];
	pthread_t iot[RS_NIO], wt;

	rs.hub = hb_hub_new(RS_NIO, 1);
	for (int i = 0; i < RS_NIO; i++)
		for (int k = 0; k < RS_PER_IO; k++) {
			rs.s[i][k] = ready_stream(rs.hub, i, 0);
			rs.s[i][k]->exchange = (void *)(uintptr_t)k;
		}
	cr_assert_eq(pthread_create(&wt, NULL, rs_worker, &rs), 0);
	for (int i = 0; i < RS_NIO; i++) {
		args[i] = (rs_arg_t){&rs, i};
		cr_assert_eq(pthread_create(&iot[i], NULL, rs_io, &args[i]), 0);
	}
	for (int i = 0; i < RS_NIO; i++)
		pthread_join(iot[i], NULL);
	pthread_join(wt, NULL);
	cr_assert_eq(atomic_load(&rs.lost_wakeups), 0);
	cr_assert(rs_all_seen(&rs));
	for (int i = 0; i < RS_NIO; i++)
		for (int k = 0; k < RS_PER_IO; k++) {
			cr_assert_eq(atomic_load(&rs.s[i][k]->refs), 2, "list reference leaked");
			cr_assert_eq(atomic_load(&rs.s[i][k]->wake_pending), 0);
			release_pair(rs.s[i][k]);
		}
	cr_assert_null(hb_hub_worker_take_ready(rs.hub, 0));
	hb_hub_free(rs.hub);
}
