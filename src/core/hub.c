#include "core/hub.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Per io thread, written only by that io thread. */
typedef struct io_slot {
	_Alignas(64) unsigned dispatch_rr;
	unsigned pop_rr;
	int nowed;	  /* workers owed a wake by hb_hub_dispatch_batched */
	int *owed;	  /* [maxw] their indices */
	uint8_t *is_owed; /* [maxw] */
} io_slot_t;

struct hb_hub {
	int nio;
	int maxw;
	hb_worker_t *workers; /* maxw */
	hb_io_wake_t *io;     /* nio */
	io_slot_t *slots;     /* nio */
	hb_spsc_t *to_worker; /* [io * maxw + w] */
	hb_spsc_t *to_io;     /* [w * nio + io] */
	hb_overload_t ov;     /* limit_concurrency, max_queue_wait and their counters */
	int time_waits;	      /* set before workers start, read-only after */
	_Atomic uint64_t restarts;
};

static hb_spsc_t *q_to_worker(hb_hub_t *h, int io, int w)
{
	return &h->to_worker[(size_t)io * (size_t)h->maxw + (size_t)w];
}

static hb_spsc_t *q_to_io(hb_hub_t *h, int w, int io)
{
	return &h->to_io[(size_t)w * (size_t)h->nio + (size_t)io];
}

static void efd_signal(int efd)
{
	uint64_t one = 1;
	ssize_t r = write(efd, &one, sizeof(one));
	(void)r; /* EAGAIN means the counter is already non-zero: the sleeper will wake */
}

static size_t queue_cap(const hb_hub_t *h)
{
	size_t cap = HB_HUB_QUEUE_BUDGET / (size_t)h->maxw;

	return cap > HB_HUB_QUEUE_CAP	? HB_HUB_QUEUE_CAP
	       : cap < HB_HUB_QUEUE_MIN ? HB_HUB_QUEUE_MIN
					: cap;
}

static int alloc_queues(hb_hub_t *h)
{
	size_t n = (size_t)h->nio * (size_t)h->maxw, cap = queue_cap(h);

	h->to_worker = calloc(n, sizeof(hb_spsc_t));
	h->to_io = calloc(n, sizeof(hb_spsc_t));
	if (!h->to_worker || !h->to_io)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (hb_spsc_init(&h->to_worker[i], cap) < 0 || hb_spsc_init(&h->to_io[i], cap) < 0)
			return -ENOMEM;
	return 0;
}

static int init_wakes(hb_hub_t *h)
{
	for (int w = 0; w < h->maxw; w++) {
		hb_worker_t *wk = &h->workers[w];
		wk->idx = w;
		wk->hub = h;
		wk->defer_io = calloc((size_t)h->nio, 1);
		if (!wk->defer_io)
			return -ENOMEM;
		wk->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (wk->efd < 0)
			return -errno;
	}
	for (int i = 0; i < h->nio; i++) {
		h->slots[i].owed = calloc((size_t)h->maxw, sizeof(int));
		h->slots[i].is_owed = calloc((size_t)h->maxw, 1);
		if (!h->slots[i].owed || !h->slots[i].is_owed)
			return -ENOMEM;
		/* Blocking: the io ring reads it with IORING_OP_READ (a read on a nonblocking file
		 * would complete at once with -EAGAIN); writers never block on an eventfd. */
		h->io[i].efd = eventfd(0, EFD_CLOEXEC);
		if (h->io[i].efd < 0)
			return -errno;
	}
	return 0;
}

hb_hub_t *hb_hub_new(int nio, int max_workers)
{
	hb_hub_t *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->nio = nio;
	h->maxw = max_workers;
	h->workers = aligned_alloc(64, sizeof(hb_worker_t) * (size_t)max_workers);
	h->io = aligned_alloc(64, sizeof(hb_io_wake_t) * (size_t)nio);
	h->slots = aligned_alloc(64, sizeof(io_slot_t) * (size_t)nio);
	if (!h->workers || !h->io || !h->slots)
		goto fail;
	for (int w = 0; w < max_workers; w++)
		h->workers[w] = (hb_worker_t){.efd = -1};
	for (int i = 0; i < nio; i++) {
		h->io[i] = (hb_io_wake_t){.efd = -1};
		h->slots[i] = (io_slot_t){0};
	}
	if (init_wakes(h) < 0 || alloc_queues(h) < 0)
		goto fail;
	return h;
fail:
	hb_hub_free(h);
	return NULL;
}

void hb_hub_free(hb_hub_t *h)
{
	if (!h)
		return;
	size_t n = (size_t)h->nio * (size_t)h->maxw;
	for (size_t i = 0; i < n; i++) {
		if (h->to_worker)
			hb_spsc_destroy(&h->to_worker[i]);
		if (h->to_io)
			hb_spsc_destroy(&h->to_io[i]);
	}
	for (int w = 0; h->workers && w < h->maxw; w++) {
		if (h->workers[w].efd >= 0)
			close(h->workers[w].efd);
		free(h->workers[w].defer_io);
	}
	for (int i = 0; h->io && i < h->nio; i++)
		if (h->io[i].efd >= 0)
			close(h->io[i].efd);
	for (int i = 0; h->slots && i < h->nio; i++) {
		free(h->slots[i].owed);
		free(h->slots[i].is_owed);
	}
	free(h->to_worker);
	free(h->to_io);
	free(h->workers);
	free(h->io);
	free(h->slots);
	free(h);
}

int hb_hub_nio(const hb_hub_t *h)
{
	return h->nio;
}

int hb_hub_max_workers(const hb_hub_t *h)
{
	return h->maxw;
}

hb_worker_t *hb_hub_worker(hb_hub_t *h, int w)
{
	return &h->workers[w];
}

hb_io_wake_t *hb_hub_io_wake(hb_hub_t *h, int io)
{
	return &h->io[io];
}

hb_overload_t *hb_hub_overload(hb_hub_t *h)
{
	return &h->ov;
}

int64_t hb_hub_inflight(hb_hub_t *h)
{
	int64_t n = 0;

	for (int w = 0; w < h->maxw; w++)
		n += atomic_load_explicit(&h->workers[w].inflight, memory_order_relaxed);
	return n;
}

int hb_hub_workers_backlogged(hb_hub_t *h)
{
	int any = 0;

	for (int w = 0; w < h->maxw; w++) {
		hb_worker_t *wk = &h->workers[w];
		if (!atomic_load_explicit(&wk->accepting, memory_order_relaxed))
			continue;
		if (atomic_load_explicit(&wk->sleeping, memory_order_relaxed) ||
		    atomic_load_explicit(&wk->inflight, memory_order_relaxed) < 2)
			return 0;
		any = 1;
	}
	return any;
}

/* The accepting worker with the fewest requests in flight; ties rotate. -1 if none. */
static int pick_worker(hb_hub_t *h, int io, int skip)
{
	unsigned start = h->slots[io].dispatch_rr++;
	int best = -1;
	int64_t best_load = 0;

	for (int k = 0; k < h->maxw; k++) {
		int w = (int)((start + (unsigned)k) % (unsigned)h->maxw);
		hb_worker_t *wk = &h->workers[w];
		if (w == skip || !atomic_load_explicit(&wk->accepting, memory_order_relaxed))
			continue;
		int64_t load = atomic_load_explicit(&wk->inflight, memory_order_relaxed);
		if (best < 0 || load < best_load) {
			best = w;
			best_load = load;
		}
	}
	return best;
}

/* Only the first producer to find the sleeper asleep writes its eventfd: clearing the flag
 * here turns a burst of pushes into one wakeup. The sleeper re-checks its queues after setting
 * the flag, so a push that saw the flag clear is never missed. */
static void wake_sleeper(_Atomic int *sleeping, int efd)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(sleeping, memory_order_relaxed) && atomic_exchange(sleeping, 0))
		efd_signal(efd);
}

static void wake_worker(hb_worker_t *wk)
{
	wake_sleeper(&wk->sleeping, wk->efd);
}

/* Claims worker w for one more request. Dekker with a stopping worker: it clears `accepting`
 * and then reads `inflight`; we raise `inflight` and then read `accepting`. Either we see it
 * stopping and back off, or it sees our request coming and waits for it. */
static int claim(hb_hub_t *h, int w)
{
	hb_worker_t *wk = &h->workers[w];

	atomic_fetch_add(&wk->inflight, 1);
	if (atomic_load(&wk->accepting))
		return 0;
	atomic_fetch_sub(&wk->inflight, 1);
	return -1;
}

static int push_to(hb_hub_t *h, int io, int w, hb_stream_t *s)
{
	hb_msg_t m = {.type = HB_MSG_REQUEST, .stream = s};

	if (claim(h, w) < 0)
		return -1;
	s->worker_idx = w;
	s->async = h->workers[w].async;
	if (hb_spsc_push(q_to_worker(h, io, w), &m) < 0) {
		atomic_fetch_sub(&h->workers[w].inflight, 1);
		return -1;
	}
	return 0;
}

/* Pushes s to the least loaded accepting worker; returns its index, or -ESRCH/-EAGAIN. */
static int dispatch(hb_hub_t *h, int io, hb_stream_t *s)
{
	int w = pick_worker(h, io, -1);

	if (w < 0)
		return -ESRCH;
	if (push_to(h, io, w, s) < 0) {
		/* The least loaded one is full (or just stopped): any other accepting worker will
		 * do. */
		int first = w;
		for (int k = 1; k <= h->maxw; k++) {
			w = (first + k) % h->maxw;
			if (w == first)
				return -EAGAIN;
			if (atomic_load_explicit(&h->workers[w].accepting, memory_order_relaxed) &&
			    push_to(h, io, w, s) == 0)
				break;
		}
	}
	return w;
}

int hb_hub_dispatch(hb_hub_t *h, int io, hb_stream_t *s)
{
	int w = dispatch(h, io, s);

	if (w < 0)
		return w;
	wake_worker(&h->workers[w]);
	return 0;
}

/* Worker w is owed a wake by io thread `io`, paid by hb_hub_io_flush. */
static void owe_wake(hb_hub_t *h, int io, int w)
{
	io_slot_t *sl = &h->slots[io];

	if (!sl->is_owed[w]) {
		sl->is_owed[w] = 1;
		sl->owed[sl->nowed++] = w;
	}
}

int hb_hub_dispatch_batched(hb_hub_t *h, int io, hb_stream_t *s)
{
	int w = dispatch(h, io, s);

	if (w < 0)
		return w;
	owe_wake(h, io, w);
	return 0;
}

void hb_hub_io_flush(hb_hub_t *h, int io)
{
	io_slot_t *sl = &h->slots[io];

	for (int i = 0; i < sl->nowed; i++) {
		sl->is_owed[sl->owed[i]] = 0;
		wake_worker(&h->workers[sl->owed[i]]);
	}
	sl->nowed = 0;
}

int hb_hub_io_pop(hb_hub_t *h, int io, hb_msg_t *m)
{
	io_slot_t *sl = &h->slots[io];

	for (int k = 0; k < h->maxw; k++) {
		int w = (int)((sl->pop_rr + (unsigned)k) % (unsigned)h->maxw);
		if (hb_spsc_pop(q_to_io(h, w, io), m) == 0) {
			sl->pop_rr =
				(unsigned)w + 1; /* next time start after it: no worker starves */
			return 0;
		}
	}
	return -EAGAIN;
}

static int io_has_work(hb_hub_t *h, int io)
{
	for (int w = 0; w < h->maxw; w++)
		if (!hb_spsc_empty(q_to_io(h, w, io)))
			return 1;
	return 0;
}

int hb_hub_io_prepare_sleep(hb_hub_t *h, int io)
{
	hb_hub_io_flush(h, io);
	atomic_store(&h->io[io].sleeping, 1);
	if (io_has_work(h, io)) {
		atomic_store(&h->io[io].sleeping, 0);
		return 0;
	}
	return 1;
}

void hb_hub_io_awake(hb_hub_t *h, int io)
{
	atomic_store(&h->io[io].sleeping, 0);
}

static int worker_has_queued(hb_hub_t *h, int w)
{
	for (int io = 0; io < h->nio; io++)
		if (!hb_spsc_empty(q_to_worker(h, io, w)))
			return 1;
	return 0;
}

void hb_hub_worker_flush(hb_hub_t *h, int w)
{
	hb_worker_t *wk = &h->workers[w];

	if (!wk->defer_n)
		return;
	for (int io = 0; io < h->nio; io++)
		if (wk->defer_io[io]) {
			wk->defer_io[io] = 0;
			wake_sleeper(&h->io[io].sleeping, h->io[io].efd);
		}
	wk->defer_n = 0;
}

int hb_hub_worker_push(hb_hub_t *h, int w, int io, const hb_msg_t *m)
{
	return hb_hub_worker_push_n(h, w, io, m, 1);
}

int hb_hub_worker_push_n(hb_hub_t *h, int w, int io, const hb_msg_t *m, size_t n)
{
	hb_spsc_t *q = q_to_io(h, w, io);
	hb_worker_t *wk = &h->workers[w];

	while ((n == 1 ? hb_spsc_push(q, m) : hb_spsc_push_n(q, m, n)) < 0) {
		efd_signal(h->io[io].efd); /* full: make sure the io thread drains it */
		sched_yield();
	}
	if (!wk->async && wk->defer_n < HB_HUB_DEFER_MAX && worker_has_queued(h, w)) {
		wk->defer_io[io] = 1;
		wk->defer_n++;
		return 0;
	}
	hb_hub_worker_flush(h, w);
	wake_sleeper(&h->io[io].sleeping, h->io[io].efd);
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Single writer (the worker): relaxed load and store, no locked instruction. */
static void bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* A request that waited for this worker past max_queue_wait is answered 503 here, on the
 * worker's thread through its stream (so the io thread sends and logs it as any response), and
 * the next one is taken: a backlog drains at the speed of a 503, not of the app. */
static int worker_pop(hb_hub_t *h, int w, hb_stream_t **out)
{
	hb_msg_t m;
	uint64_t now = 0;

	for (int io = 0; io < h->nio; io++)
		while (hb_spsc_pop(q_to_worker(h, io, w), &m) == 0) {
			if (h->ov.max_queue_wait_ns) {
				now = now ? now : mono_ns();
				if (hb_overload_reject_late(&h->ov, m.stream, now)) {
					hb_stream_release(m.stream);
					continue;
				}
			}
			*out = m.stream;
			if (h->time_waits) {
				uint64_t t1 = mono_ns(), t0 = (*out)->t_start_ns;
				bump(&h->workers[w].wait_ns, t1 > t0 ? t1 - t0 : 0);
				bump(&h->workers[w].taken, 1);
			}
			return 0;
		}
	return -EAGAIN;
}

void hb_hub_time_waits(hb_hub_t *h)
{
	h->time_waits = 1;
}

uint64_t hb_hub_worker_queued(hb_hub_t *h, int w)
{
	uint64_t n = 0;

	for (int io = 0; io < h->nio; io++)
		n += hb_spsc_size(q_to_worker(h, io, w));
	return n;
}

void hb_hub_worker_restarted(hb_hub_t *h)
{
	atomic_fetch_add_explicit(&h->restarts, 1, memory_order_relaxed);
}

uint64_t hb_hub_restarts(hb_hub_t *h)
{
	return atomic_load_explicit(&h->restarts, memory_order_relaxed);
}

int hb_hub_worker_next(hb_hub_t *h, int w, hb_stream_t **out, int timeout_ms)
{
	hb_worker_t *wk = &h->workers[w];

	/* No spinning before sleeping: measured on 2 busy cores, yielding or pausing here cost
	 * 30% of throughput (perf/: each yield is a context switch the io thread pays for). */
	if (worker_pop(h, w, out) == 0)
		return 0;
	hb_hub_worker_flush(h, w); /* about to sleep: pay the deferred wakes */
	atomic_store(&wk->sleeping, 1);
	if (worker_pop(h, w, out) == 0) {
		atomic_store(&wk->sleeping, 0);
		return 0;
	}
	/* Stopping: leave only when nothing is queued and no dispatch is on its way (claim()). */
	int stopping = atomic_load(&wk->stopping);
	if (stopping && atomic_load(&wk->inflight) == 0) {
		atomic_store(&wk->sleeping, 0);
		return -ESHUTDOWN;
	}
	struct pollfd pfd = {.fd = wk->efd, .events = POLLIN};
	int r = poll(&pfd, 1, stopping ? 10 : timeout_ms);
	uint64_t v;
	if (r > 0)
		(void)!read(wk->efd, &v, sizeof(v));
	atomic_store(&wk->sleeping, 0);
	if (worker_pop(h, w, out) == 0)
		return 0;
	if (stopping)
		return atomic_load(&wk->inflight) == 0 ? -ESHUTDOWN : -EINTR;
	return r == 0 ? -ETIMEDOUT : -EINTR;
}

void hb_hub_worker_kick(hb_hub_t *h, int w)
{
	efd_signal(h->workers[w].efd);
}

void hb_hub_worker_stop(hb_hub_t *h, int w)
{
	atomic_store(&h->workers[w].stopping, 1);
	efd_signal(h->workers[w].efd);
}

int hb_hub_worker_poll(hb_hub_t *h, int w, hb_stream_t **out)
{
	return worker_pop(h, w, out);
}

hb_stream_t *hb_hub_worker_take_ready(hb_hub_t *h, int w)
{
	return atomic_exchange(&h->workers[w].ready, NULL);
}

static int worker_has_work(hb_hub_t *h, int w)
{
	if (atomic_load(&h->workers[w].ready))
		return 1;
	for (int io = 0; io < h->nio; io++)
		if (!hb_spsc_empty(q_to_worker(h, io, w)))
			return 1;
	return 0;
}

int hb_hub_worker_prepare_sleep(hb_hub_t *h, int w)
{
	hb_hub_worker_flush(h, w);
	atomic_store(&h->workers[w].sleeping, 1);
	if (worker_has_work(h, w) || atomic_load(&h->workers[w].stopping)) {
		atomic_store(&h->workers[w].sleeping, 0);
		return 0;
	}
	return 1;
}

void hb_hub_worker_awake(hb_hub_t *h, int w)
{
	uint64_t v;

	atomic_store(&h->workers[w].sleeping, 0);
	(void)!read(h->workers[w].efd, &v, sizeof(v));
}

void hb_hub_stream_ready(hb_hub_t *h, hb_stream_t *s)
{
	hb_worker_t *wk = &h->workers[s->worker_idx];

	if (atomic_exchange(&s->wake_pending, 1))
		return;
	atomic_fetch_add(&s->refs, 1); /* the list's reference; the worker releases it */
	hb_stream_t *head = atomic_load(&wk->ready);
	do {
		s->ready_next = head;
	} while (!atomic_compare_exchange_weak(&wk->ready, &head, s));
	/* Owed, as a dispatch's wake is: a GET's end (on_complete) comes in the same completion
	 * batch as its head, and an immediate wake let the worker preempt this thread at every
	 * request of the batch (0.3 context switches per request, hello ASGI). */
	owe_wake(h, s->io_idx, s->worker_idx);
}
