/* watchdog.c: WorkerTimeout for WSGI requests past `timeout`, and stuck ASGI loops (watchdog.h). */
#include "python/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "core/log.h"
#include "core/thread.h"
#include "python/module.h"
#include "python/pyworker.h"

#define TICK_MS 100

/* Set once before any watchdog starts, read-only afterwards. */
static void (*stuck_fn)(void *ud, int worker, uint64_t ms);
static void *stuck_ud;

void hb_watchdog_on_stuck(void (*fn)(void *ud, int worker, uint64_t ms), void *ud)
{
	stuck_fn = fn;
	stuck_ud = ud;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void hb_watchdog_busy(hb_pythread_t *t, hb_stream_t *s)
{
	t->ident = PyThread_get_thread_ident();
	t->cur = s;
	atomic_fetch_add_explicit(&t->seq, 1, memory_order_relaxed);
	atomic_store_explicit(&t->busy_since, mono_ns(), memory_order_release);
}

void hb_watchdog_idle(hb_pythread_t *t)
{
	atomic_store_explicit(&t->busy_since, 0, memory_order_release);
	t->cur = NULL;
	/* Set by the watchdog but not raised (the request ended in C code): not for the next. */
	if (t->fired_seq == atomic_load_explicit(&t->seq, memory_order_relaxed))
		PyThreadState_SetAsyncExc(t->ident, NULL);
}

void hb_watchdog_loop(hb_pythread_t *t, int busy)
{
	atomic_store_explicit(&t->loop_since, busy ? mono_ns() : 0, memory_order_relaxed);
}

/* [pi->wd_mu, the interpreter not ending] Raises WorkerTimeout in t if it still serves request
 * seq. Takes the interpreter's GIL on a thread state of its own. */
static void raise_in(hb_pyinterp_t *pi, hb_pythread_t *t, uint64_t seq, uint64_t ms)
{
	PyThreadState *ts = PyThreadState_New(pi->interp);
	hb_modstate_t *st;

	if (!ts)
		return;
	PyEval_RestoreThread(ts);
	/* Under the GIL the worker cannot start or end a request: the check holds. */
	/* Only once the io thread answered 504 and let the stream go: a response that started in
	 * time is not under `timeout`, however long it streams. (The stream stays referenced: the
	 * worker releases it only after marking itself idle, which needs this GIL.) */
	if (atomic_load(&t->seq) == seq && atomic_load(&t->busy_since) && t->cur &&
	    hb_stream_client_gone(t->cur) && (st = t->app.st) && st->WorkerTimeout &&
	    PyThreadState_SetAsyncExc(t->ident, st->WorkerTimeout) == 1) {
		if (t->fired_seq != seq) {
			hb_warn("worker %d: a request ran %llu ms, past timeout: raising "
				"WorkerTimeout "
				"in it",
				pi->id, (unsigned long long)ms);
		} else {
			hb_debug("worker %d: the request still runs after %llu ms: WorkerTimeout "
				 "again",
				 pi->id, (unsigned long long)ms);
		}
		t->fired_seq = seq;
	}
	PyThreadState_Clear(ts);
	PyThreadState_DeleteCurrent();
}

uint64_t hb_watchdog_elapsed_ns(uint64_t now, uint64_t since)
{
	/* A request that began after `now` was read (the watchdog was preempted in between, as
	 * on a loaded machine) has not run at all: unsigned, now - since would read as 584 years
	 * and replace a healthy process (CI saw it happen under load). */
	return since && since < now ? now - since : 0;
}

/* One look at every thread of pi. */
static void check(hb_pyinterp_t *pi, uint64_t timeout_ns, uint64_t kill_ns)
{
	uint64_t now = mono_ns();

	for (int i = 0; i < pi->nthreads; i++) {
		hb_pythread_t *t = &pi->threads[i];
		uint64_t since = atomic_load_explicit(&t->busy_since, memory_order_acquire);
		uint64_t seq = atomic_load_explicit(&t->seq, memory_order_relaxed);
		uint64_t loop = atomic_load_explicit(&t->loop_since, memory_order_relaxed);

		if (kill_ns && hb_watchdog_elapsed_ns(now, loop) >= timeout_ns + kill_ns &&
		    t->loop_stuck != loop) {
			t->loop_stuck = loop;
			hb_error("worker %d: its event loop has not returned to its selector for "
				 "%llu "
				 "ms (timeout + worker_kill_timeout: a handler blocks it): this "
				 "process asks to be replaced",
				 pi->id, (unsigned long long)((now - loop) / 1000000u));
			if (stuck_fn)
				stuck_fn(stuck_ud, pi->id, (now - loop) / 1000000u);
		}

		/* busy_since (acquire) is stored after pi->interp was set: reading it is safe. */
		if (hb_watchdog_elapsed_ns(now, since) < timeout_ns)
			continue;
		if (kill_ns && now - since >= timeout_ns + kill_ns && t->stuck_seq != seq) {
			t->stuck_seq = seq;
			hb_error("worker %d: a request still runs %llu ms after its WorkerTimeout "
				 "(worker_kill_timeout): this process asks to be replaced",
				 pi->id,
				 (unsigned long long)((now - since - timeout_ns) / 1000000u));
			if (stuck_fn)
				stuck_fn(stuck_ud, pi->id, (now - since) / 1000000u);
		}
		/* Once per request, then again every timeout while it still runs. */
		if (t->fired_seq == seq && now - t->fired_ns < timeout_ns)
			continue;
		t->fired_ns = now;
		if (!pi->wd_ending)
			raise_in(pi, t, seq, (now - since) / 1000000u);
	}
}

static void *watchdog_main(void *arg)
{
	hb_pyinterp_t *pi = arg;
	uint64_t timeout_ns = (uint64_t)pi->cfg->timeout_ms * 1000000ull;
	uint64_t kill_ns = (uint64_t)pi->cfg->worker_kill_timeout_s * 1000000000ull;

	pthread_mutex_lock(&pi->wd_mu);
	while (!pi->wd_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&pi->wd_cv, &pi->wd_mu, &ts);
		if (!pi->wd_stop && !pi->wd_ending)
			check(pi, timeout_ns, kill_ns);
	}
	pthread_mutex_unlock(&pi->wd_mu);
	return NULL;
}

int hb_watchdog_start(hb_pyinterp_t *pi)
{
	pthread_condattr_t ca;
	int rc;

	if (pi->cfg->timeout_ms <= 0 || pi->wd_started)
		return 0;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pi->wd_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&pi->wd_mu, NULL);
	rc = hb_thread_start(&pi->wd, watchdog_main, pi);
	if (rc < 0) {
		pthread_cond_destroy(&pi->wd_cv);
		pthread_mutex_destroy(&pi->wd_mu);
		return rc;
	}
	pi->wd_started = 1;
	return 0;
}

void hb_watchdog_ending(hb_pyinterp_t *pi)
{
	if (!pi->wd_started)
		return;
	pthread_mutex_lock(&pi->wd_mu); /* waits out a raise in progress */
	pi->wd_ending = 1;
	pthread_mutex_unlock(&pi->wd_mu);
}

void hb_watchdog_stop(hb_pyinterp_t *pi)
{
	if (!pi->wd_started)
		return;
	pthread_mutex_lock(&pi->wd_mu);
	pi->wd_stop = 1;
	pthread_cond_signal(&pi->wd_cv);
	pthread_mutex_unlock(&pi->wd_mu);
	pthread_join(pi->wd, NULL);
	pthread_cond_destroy(&pi->wd_cv);
	pthread_mutex_destroy(&pi->wd_mu);
	pi->wd_started = 0;
}
