/* hub.h: the registry of io threads and python worker threads, and the SPSC queues between them.
 *
 * For every (io thread i, worker thread w) pair there is one queue i->w (requests) and one queue
 * w->i (response messages), so every queue has exactly one producer and one consumer. A worker
 * thread here is one consuming thread: a WSGI interpreter with `threads = K` owns K of them.
 * The hub is created by the main thread before any io or worker thread starts; its shape
 * (nio, max_workers) never changes, so threads index it without locks.
 *
 * Wakeups: each side has an eventfd and a `sleeping` flag. A producer writes the eventfd only
 * when the consumer says it is asleep (Dekker-style: flag store, fence, queue check).
 */
#ifndef HB_CORE_HUB_H
#define HB_CORE_HUB_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/overload.h"
#include "core/spsc.h"
#include "core/stream.h"

/* Slots per queue: 1024, fewer for big matrices so that nio x max_workers x 2 queues stay
 * small (64 io threads x 512 worker slots: 32 slots, 67 MiB in all). */
#define HB_HUB_QUEUE_CAP 1024u
#define HB_HUB_QUEUE_BUDGET 16384u /* slots per io thread, summed over its worker queues */
#define HB_HUB_QUEUE_MIN 32u
#define HB_HUB_DEFER_MAX 32

typedef struct hb_hub hb_hub_t;

typedef struct hb_worker {
	_Alignas(64) int idx;	      /* cache-line aligned: io threads touch inflight */
	int efd;		      /* eventfd the worker blocks on */
	_Atomic int sleeping;	      /* worker is (about to be) blocked on efd */
	_Atomic int accepting;	      /* dispatch may choose this worker */
	_Atomic int stopping;	      /* asked to finish queued work and exit */
	_Atomic int64_t inflight;     /* dispatched and not yet ended */
	_Atomic uint64_t served;      /* requests ended */
	_Atomic uint64_t taken;	      /* [worker writes] requests taken from the queues */
	_Atomic uint64_t wait_ns;     /* [worker writes] their summed queue wait (timed hubs) */
	int async;		      /* event-loop worker (ASGI): streams wake it via `ready` */
	int defer_n;		      /* [worker] messages pushed with their io wake deferred */
	uint8_t *defer_io;	      /* [worker] per io thread: a wake is owed */
	_Atomic(hb_stream_t *) ready; /* streams with news (lock-free stack, io threads push) */
	hb_hub_t *hub;
	void *owner; /* the python layer's per-thread state */
} hb_worker_t;

typedef struct hb_io_wake {
	_Alignas(64) int efd; /* eventfd the io ring reads */
	_Atomic int sleeping; /* io thread is (about to be) blocked in io_uring_wait */
} hb_io_wake_t;

/* Returns NULL on ENOMEM/EMFILE. max_workers is the most worker threads that may exist at once
 * (active ones plus replacements being started). */
hb_hub_t *hb_hub_new(int nio, int max_workers);
void hb_hub_free(hb_hub_t *hub);
int hb_hub_nio(const hb_hub_t *hub);
int hb_hub_max_workers(const hb_hub_t *hub);
hb_worker_t *hb_hub_worker(hb_hub_t *hub, int w);
hb_io_wake_t *hb_hub_io_wake(hb_hub_t *hub, int io);

/* [io i] Chooses an accepting worker (fewest in flight, ties rotate), pushes the stream and wakes
 * the worker if it sleeps. Returns 0, -EAGAIN when every queue is full, -ESRCH when no worker
 * accepts (not ready yet or shutting down). */
int hb_hub_dispatch(hb_hub_t *hub, int io, hb_stream_t *s);
/* [io i] hb_hub_dispatch without the wake: it is owed until hb_hub_io_flush() (or
 * hb_hub_io_prepare_sleep(), which flushes). An io thread dispatching the requests of a batch of
 * completions wakes each worker once after the batch: woken at the first request, a worker on
 * the same CPU would preempt the io thread and serve the batch one request at a time. */
int hb_hub_dispatch_batched(hb_hub_t *hub, int io, hb_stream_t *s);
/* [io i] Pays the wakes hb_hub_dispatch_batched owes. */
void hb_hub_io_flush(hb_hub_t *hub, int io);

/* [io i] Pops the next message from any worker (round-robin). Returns 0 or -EAGAIN. */
int hb_hub_io_pop(hb_hub_t *hub, int io, hb_msg_t *m);
/* [io i] Pays the owed worker wakes (hb_hub_io_flush), marks the io thread asleep; returns 1 if it
 * may sleep (no message waiting), else clears the flag and returns 0. Call hb_hub_io_awake() after
 * waking. */
int hb_hub_io_prepare_sleep(hb_hub_t *hub, int io);
void hb_hub_io_awake(hb_hub_t *hub, int io);

/* [worker w] Pushes a message to io thread `io`, waking it if it sleeps. Spins (yielding) while
 * the queue is full; returns 0. While more requests wait in the worker's queues (a sync worker
 * mid-batch), the wake is deferred, so a batch of responses costs one io wakeup; deferred wakes
 * are paid by hb_hub_worker_flush(), before the worker sleeps or blocks, and every
 * HB_HUB_DEFER_MAX messages. */
int hb_hub_worker_push(hb_hub_t *hub, int w, int io, const hb_msg_t *m);
/* [worker w] hb_hub_worker_push for n messages (n <= 4) that the io thread pops in one go (one
 * wake, never the first without the rest): a response head with its body and end. */
int hb_hub_worker_push_n(hb_hub_t *hub, int w, int io, const hb_msg_t *m, size_t n);
/* [worker w] Wakes every io thread owed a deferred wake. Call before running code that may
 * block for long (a streaming app's next chunk). */
void hb_hub_worker_flush(hb_hub_t *hub, int w);

/* [worker w] Takes the next request (a request that waited past max_queue_wait is answered 503
 * here, through its stream, and the next one taken: overload.h). Blocks up to timeout_ms (-1:
 * forever) without needing the GIL. Returns 0 with *out set, -ETIMEDOUT, or -ESHUTDOWN when the
 * worker is stopping, its queues are empty and nothing dispatched to it is still unfinished
 * (inflight == 0). A wake with nothing queued (hb_hub_worker_kick) returns -EINTR. */
int hb_hub_worker_next(hb_hub_t *hub, int w, hb_stream_t **out, int timeout_ms);
/* [worker w] Non-blocking: takes the next request. Returns 0 or -EAGAIN. */
int hb_hub_worker_poll(hb_hub_t *hub, int w, hb_stream_t **out);
/* [worker w] Takes every stream put on the ready list (linked by ready_next, newest first).
 * For each: read its ready_next FIRST (an io thread may re-link the stream as soon as
 * wake_pending is clear), then clear wake_pending (atomic_store 0) BEFORE looking at its
 * state, then hb_stream_release() it (the list holds a reference). */
hb_stream_t *hb_hub_worker_take_ready(hb_hub_t *hub, int w);
/* [worker w] Event-loop workers: says the worker is going idle. Returns 1 if it may sleep (then
 * the eventfd will be written when work arrives), else 0 (work is waiting: process it).
 * hb_hub_worker_awake() after waking. */
int hb_hub_worker_prepare_sleep(hb_hub_t *hub, int w);
void hb_hub_worker_awake(hb_hub_t *hub, int w);
/* [io s->io_idx] Puts an async stream on its worker's ready list (once until the worker clears
 * wake_pending); the worker's wake is owed until hb_hub_io_flush(), as with
 * hb_hub_dispatch_batched. */
void hb_hub_stream_ready(hb_hub_t *hub, hb_stream_t *s);

/* [any] The process's backpressure settings and counters (overload.h). The main thread sets
 * the settings before io and worker threads start. */
hb_overload_t *hb_hub_overload(hb_hub_t *hub);
/* [any] Requests (and WebSockets) in flight in the process: the sum of the workers' inflight
 * (relaxed loads: a snapshot, exact enough for limit_concurrency). */
int64_t hb_hub_inflight(hb_hub_t *hub);
/* [main, before workers start] Workers measure each request's queue wait (from the head's
 * arrival, s->t_start_ns, to their taking it) into `taken`/`wait_ns`: one clock read per
 * request, paid only when metrics are on. */
void hb_hub_time_waits(hb_hub_t *hub);
/* [any] 1 when every accepting worker is awake and has a request waiting behind the one it runs
 * (inflight >= 2): a request dispatched now would only queue. 0 otherwise, and when no worker
 * accepts. Relaxed loads: a snapshot. */
int hb_hub_workers_backlogged(hb_hub_t *hub);
/* [any] Requests queued for worker w and not yet taken (approximate). */
uint64_t hb_hub_worker_queued(hb_hub_t *hub, int w);
/* [any] A worker interpreter was replaced (crash, max_requests, timeout): counted for the
 * metrics (hornbeam_worker_restarts_total). */
void hb_hub_worker_restarted(hb_hub_t *hub);
uint64_t hb_hub_restarts(hb_hub_t *hub);

/* [any] Wakes worker w so that a blocked hb_hub_worker_next returns (-EINTR or -ESHUTDOWN). */
void hb_hub_worker_kick(hb_hub_t *hub, int w);
/* [any] Marks a worker stopping and wakes it. */
void hb_hub_worker_stop(hb_hub_t *hub, int w);

#endif
