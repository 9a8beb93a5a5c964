#include "server/io.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/log.h"
#include "server/access_log.h"
#include "server/conn.h"
#include "server/conn_h2.h"
#include "server/transport_tls.h"

#define RING_ENTRIES 1024
#define BUF_COUNT 512 /* power of two */
#define BUF_SIZE (16u * 1024u)

hb_io_t *hb_io_new(hb_server_t *srv, int idx)
{
	hb_io_t *io = calloc(1, sizeof(*io));

	if (!io)
		return NULL;
	io->idx = idx;
	io->srv = srv;
	io->cfg = srv->cfg;
	io->pid = (int)getpid();
	io->metrics = srv->metrics ? hb_metrics_io(srv->metrics, idx) : NULL;
	io->accept_ops = calloc(srv->cfg->nbinds, sizeof(hb_op_t));
	io->accept_armed = calloc(srv->cfg->nbinds, sizeof(int));
	io->accept_seen = calloc(srv->cfg->nbinds, 1);
	const char *why = NULL;
	if (!io->accept_ops || !io->accept_armed || !io->accept_seen ||
	    (srv->cfg->forwarded_allow_ips &&
	     hb_cidr_set_parse(srv->cfg->forwarded_allow_ips, &io->trusted, &why) < 0)) {
		hb_io_free(io);
		return NULL;
	}
	return io;
}

void hb_io_free(hb_io_t *io)
{
	if (!io)
		return;
	free(io->alog);
	hb_conn_caches_free(io);
	free(io->accept_ops);
	free(io->accept_armed);
	free(io->accept_seen);
	hb_cidr_set_free(&io->trusted);
	free(io);
}

static void clock_update(hb_io_t *io)
{
	hb_ring_clock(&io->ring);
	time_t now = time(NULL);
	if (now != io->date_sec) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(io->date, sizeof(io->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		io->date_sec = now;
	}
}

static void on_accept(hb_ring_t *r, hb_op_t *op, struct io_uring_cqe *cqe);

/* A unix or inherited (fd://) socket is one socket for every io thread of every process. An
 * io_uring accept waits on it as an EPOLLEXCLUSIVE waiter, and the kernel wakes the oldest
 * waiter only: a multishot accept, which never leaves the queue, took every connection in one
 * io thread of one process while the others idled. There each accept is single-shot: the
 * next one is armed when the loop is idle again, at the back of the queue, so connections go
 * round the io threads and processes, and a busy one leaves them to the others (as blocking
 * accept() spreads gunicorn's workers). TCP binds have a SO_REUSEPORT socket per io thread
 * and process: multishot. */
static int shared_listener(const hb_io_t *io, size_t b)
{
	const hb_bind_t *bd = &io->cfg->binds[b];

	return (bd->family == AF_UNIX || bd->fd_bind) &&
	       (io->cfg->processes > 1 || io->srv->nio > 1);
}

static void arm_accept(hb_io_t *io, int b)
{
	hb_op_t *op = &io->accept_ops[b];
	struct io_uring_sqe *sqe = hb_io_sqe(io);

	*op = (hb_op_t){.cb = on_accept, .owner = io, .arg = b};
	if (shared_listener(io, b))
		io_uring_prep_accept(sqe, io->srv->listen_fds[io->idx][b], NULL, NULL,
				     SOCK_CLOEXEC);
	else
		io_uring_prep_multishot_accept(sqe, io->srv->listen_fds[io->idx][b], NULL, NULL,
					       SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, op);
	io->accept_armed[b] = 1;
}

/* Cancels bind b's armed accept (a lost wakeup, below); cancel_accepts cancels every bind's
 * (stopping, or at max_connections). */
static void cancel_accept(hb_io_t *io, size_t b)
{
	if (io->accept_armed[b] != 1)
		return;
	hb_ring_cancel(&io->ring, &io->accept_ops[b]);
	io->accept_armed[b] = 2;
}

static void cancel_accepts(hb_io_t *io)
{
	for (size_t b = 0; b < io->cfg->nbinds; b++)
		cancel_accept(io, b);
}

/* Lost wakeups. io_uring waits for a listener's connections as an EPOLLEXCLUSIVE waiter: the
 * kernel wakes the oldest waiter only. When processes share a listener (a slot's retiring and
 * new generation across a reload or a binary upgrade; every process on a unix socket), the
 * wakeup can reach a waiter that will not accept: its cancel is on the way, its process is
 * exiting, stopped or killed. The connection then waits in the backlog, unseen, until another
 * one arrives: CI saw four clients wait 10 s across a binary upgrade. So each tick, a listener
 * on which nothing was accepted since the last tick is polled; a connection waiting there
 * means a lost wakeup, and the accept is cancelled and armed again (a new accept tries at
 * once, before it waits). No poll() while connections flow, at most one per bind per tick. */
static void accept_watch(hb_io_t *io)
{
	for (size_t b = 0; b < io->cfg->nbinds; b++) {
		int seen = io->accept_seen[b];

		io->accept_seen[b] = 0;
		if (seen || io->accept_armed[b] != 1)
			continue;
		struct pollfd p = {.fd = io->srv->listen_fds[io->idx][b], .events = POLLIN};
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
			hb_debug("io %d: a connection waits on %s with no accept woken: accepting "
				 "again",
				 io->idx, io->cfg->binds[b].spec);
			cancel_accept(io, b);
		}
	}
}

static unsigned reclaim_idle(hb_io_t *io, unsigned max);

/* Before each sleep: answers another io thread's call to make room (it ran out of descriptors,
 * and this thread's idle connections hold some); at max_connections no accept stays armed (a
 * connection past it waits in the listen backlog, as --help says, until one closes); below it,
 * accepts are armed again unless the io thread is stopping or backing off after a failure. */
static void update_accepting(hb_io_t *io)
{
	unsigned gen = atomic_load(&io->srv->reclaim_gen);

	if (gen != io->reclaim_seen) {
		io->reclaim_seen = gen;
		atomic_fetch_add(&io->srv->reclaimed, reclaim_idle(io, HB_ACCEPT_RECLAIM));
	}
	if (io->stopping)
		return;
	if (atomic_load(&io->srv->nconns) >= io->cfg->max_connections) {
		cancel_accepts(io);
		return;
	}
	for (size_t b = 0; b < io->cfg->nbinds && !io->accept_backoff; b++)
		if (!io->accept_armed[b])
			arm_accept(io, (int)b);
}

/* Wakes the other io threads that sleep, so they run update_accepting() now. */
static void wake_others(hb_io_t *io)
{
	for (int i = 0; i < io->srv->nio; i++) {
		hb_io_wake_t *w = hb_hub_io_wake(io->srv->hub, i);
		if (i != io->idx && atomic_load(&w->sleeping))
			hb_ring_wakeup(w->efd);
	}
}

/* Kept alive after a response, waiting for the next request: open, at least one request
 * served, no exchange, no unparsed input, no output. */
static int idle_keepalive(const hb_conn_t *c)
{
	return c->state == HB_CONN_OPEN && c->requests > 0 && !c->exchanges &&
	       c->in_len == c->in_off && hb_conn_out_idle(c);
}

/* Closes up to `max` idle keep-alive connections (served, waiting for the next request), the
 * oldest first: the list is newest first, so walk it from the tail. Returns how many. */
static unsigned reclaim_idle(hb_io_t *io, unsigned max)
{
	hb_conn_t *c = io->conns;
	unsigned n = 0;

	while (c && c->next)
		c = c->next;
	for (hb_conn_t *p; c && n < max; c = p) {
		p = c->prev;
		if (!idle_keepalive(c))
			continue;
		hb_conn_abort(c); /* the socket is closed once its recv completes */
		hb_conn_maybe_free(c);
		n++;
	}
	return n;
}

static void accept_log(hb_io_t *io)
{
	if (!io->accept_errs)
		return;
	hb_warn("io %d: accept: %s (%llu times since the last report); retrying every %d ms, "
		"%llu idle keep-alive connections closed to make room",
		io->idx, strerror(io->accept_err), (unsigned long long)io->accept_errs, HB_TICK_MS,
		(unsigned long long)atomic_exchange(&io->srv->reclaimed, 0));
	io->accept_errs = 0;
	io->accept_log_ns = hb_io_now(io);
}

/* A failed accept ends the multishot accept. Re-arming at once would fail again at once (out
 * of descriptors the connection stays queued): that spun both io threads and logged ~300k
 * lines a second. Back off until the next tick, make room (here, and in the other io threads:
 * descriptors are the process's), and log at most once a second. */
static void accept_failed(hb_io_t *io, int err)
{
	io->accept_backoff = 1;
	io->accept_errs++;
	io->accept_err = err;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		io->reclaim_seen = atomic_fetch_add(&io->srv->reclaim_gen, 1) + 1;
		atomic_fetch_add(&io->srv->reclaimed, reclaim_idle(io, HB_ACCEPT_RECLAIM));
		wake_others(io);
	}
	if (!io->accept_log_ns || hb_io_now(io) - io->accept_log_ns >= HB_ACCEPT_LOG_NS)
		accept_log(io);
}

static void on_accept(hb_ring_t *r, hb_op_t *op, struct io_uring_cqe *cqe)
{
	hb_io_t *io = op->owner;

	(void)r;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		io->accept_armed[op->arg] = 0;
	if (cqe->res < 0) {
		/* EINVAL: the listener no longer listens (the master shut it down at SIGTERM, this
		 * process is about to drain): nothing to report, re-armed (and failing) quietly at
		 * most once a tick until the drain cancels it. */
		if (cqe->res == -EINVAL)
			io->accept_backoff = 1;
		else if (cqe->res != -ECANCELED)
			accept_failed(io, -cqe->res);
		return;
	}
	int fd = cqe->res;
	io->accept_seen[op->arg] = 1;
	/* Accepted before the cancel took effect: a retiring process (a reload) still serves it
	 * (its client would otherwise see a close it cannot tell from a failure); a stopping one
	 * closes it. */
	if (io->stopping && !atomic_load(&io->srv->retiring)) {
		close(fd);
		return;
	}
	/* Accepts already completing when the cap is reached are kept: the cap may be passed by
	 * the few the kernel accepted before the cancel, never dropped. */
	int64_t n = atomic_fetch_add(&io->srv->nconns, 1) + 1;
	const hb_transport_t *t =
		io->cfg->binds[op->arg].tls ? &hb_transport_tls : &hb_transport_plain;
	hb_conn_t *c = hb_conn_new(io, fd, t);
	if (!c) {
		atomic_fetch_sub(&io->srv->nconns, 1);
		return;
	}
	c->proxy_pending = io->cfg->binds[op->arg].proxy; /* before any byte is read */
	if (n >= io->cfg->max_connections) {
		cancel_accepts(io);
		if (n == io->cfg->max_connections)
			wake_others(io); /* they cancel theirs now, not at their next tick */
	}
}

static void stop_accepting(hb_io_t *io)
{
	io->stopping = 1;
	cancel_accepts(io);
}

static void on_tick(hb_ring_t *r, hb_op_t *op, struct io_uring_cqe *cqe)
{
	hb_io_t *io = op->owner;
	int draining = atomic_load(&io->srv->draining);
	int gentle = draining == 1 && atomic_load(&io->srv->retiring);

	(void)cqe;
	if (draining && !io->stopping)
		stop_accepting(io);
	if (!io->stopping)
		accept_watch(io);
	io->accept_backoff = 0; /* the accept is retried on this loop iteration */
	if (io->accept_errs && hb_ring_now(r) - io->accept_log_ns >= HB_ACCEPT_LOG_NS)
		accept_log(io);
	for (hb_conn_t *c = io->conns, *n; c; c = n) {
		n = c->next;
		if (draining && !(gentle && c->handler != &hb_h2_handler))
			hb_conn_drain(c, draining > 1);
		else
			hb_conn_tick(c, hb_ring_now(r));
	}
	if (io->stopping && !io->conns)
		hb_ring_tick_stop(r);
	hb_access_flush(io); /* lines wait at most a tick under constant load */
}

/* Worker messages carry the stream; the stream knows its exchange, the exchange its connection. */
static int drain_hub(hb_io_t *io)
{
	hb_msg_t m;
	int n = 0;

	while (n < 4096 && hb_hub_io_pop(io->srv->hub, io->idx, &m) == 0) {
		hb_conn_on_msg(&m);
		n++;
	}
	/* One send per connection for everything the batch queued (head + body + end). */
	while (io->dirty) {
		hb_conn_t *c = io->dirty;
		io->dirty = c->dirty_next;
		hb_conn_flush_dirty(c);
	}
	return n;
}

static int io_setup(hb_io_t *io)
{
	hb_ring_config_t rc_cfg = {
		.entries = RING_ENTRIES,
		.nbufs = BUF_COUNT,
		.buf_size = BUF_SIZE,
		.tick_ms = HB_TICK_MS,
		.on_tick = on_tick,
		.tick_owner = io,
		.wake_fd = hb_hub_io_wake(io->srv->hub, io->idx)->efd,
	};
	int rc = hb_ring_init(&io->ring, &rc_cfg);

	if (rc < 0) {
		hb_error("io %d: io_uring setup: %s", io->idx, strerror(-rc));
		return rc;
	}
	if (io->cfg->cpu_affinity && io->cfg->ncpus > 0)
		hb_cpu_pin(io->cfg->cpus[io->idx % io->cfg->ncpus]);
	clock_update(io); /* accepts are armed by the loop */
	hb_debug("io %d: ring flags 0x%x", io->idx, io->ring.flags);
	return 0;
}

/* io_sched_batch. With a slow app (Flask, ~80 us a request) the packet of each request woke
 * this thread while the worker on its CPU ran the app, preempted it, and went back to sleep:
 * two context switches and a cold-cache pass through the kernel per request, 40 us of io
 * thread and ~25 us of the worker's (perf/results/2026-12-03-slow-app.md). While every worker
 * has a request queued behind the one it runs, a new one could only queue too: the thread
 * then sleeps as SCHED_BATCH, so its wakeups wait for the running thread's slice to end (or for
 * it to sleep) and it takes what came in meanwhile in one pass. Otherwise it is SCHED_OTHER,
 * so an idle worker is served at once even on a CPU that another program keeps busy. The
 * policy is set when it changes, before sleeping: it matters for the next wakeup only. */
static void sched_update(hb_io_t *io)
{
	if (!io->cfg->io_sched_batch || io->sched_batch < 0)
		return;
	int want = hb_hub_workers_backlogged(io->srv->hub);
	if (want == io->sched_batch)
		return;
	int rc = hb_cpu_sched_batch(want);
	if (rc < 0) {
		hb_debug("io %d: SCHED_BATCH: %s", io->idx, strerror(-rc));
		io->sched_batch = -1;
		return;
	}
	io->sched_batch = want;
}

static void io_loop(hb_io_t *io)
{
	for (;;) {
		clock_update(io);
		int busy = drain_hub(io);
		busy += hb_ring_reap(&io->ring);
		/* The workers given requests in this batch are woken once, now (hub.h) */
		hb_hub_io_flush(io->srv->hub, io->idx);
		if (busy)
			continue;
		/* Graceful: leave when the last connection is gone. Forced: connections were shut
		 * down; their streams may wait on app code that will not return, so do not wait. */
		hb_access_flush(io); /* idle now: the batch goes out before sleeping */
		if (io->stopping && (!io->conns || atomic_load(&io->srv->draining) > 1))
			break;
		update_accepting(io);
		int sleep = hb_hub_io_prepare_sleep(io->srv->hub, io->idx);
		if (sleep)
			sched_update(io);
		hb_ring_wait(&io->ring, sleep);
		if (sleep)
			hb_hub_io_awake(io->srv->hub, io->idx);
	}
}

void *hb_io_main(void *arg)
{
	hb_io_t *io = arg;
	char name[16];

	snprintf(name, sizeof(name), "hb-io%d", io->idx);
	pthread_setname_np(pthread_self(), name);
	if (io_setup(io) == 0)
		io_loop(io);
	else
		atomic_store(&io->srv->draining, 2);
	hb_hub_io_flush(io->srv->hub, io->idx); /* wakes owed by the last turn (hub.h) */
	hb_access_flush(io);
	hb_ring_exit(&io->ring);
	hb_tls_thread_cleanup(); /* this thread's wolfSSL caches */
	atomic_fetch_sub(&io->srv->io_running, 1);
	return NULL;
}
