/* watchdog.h: stops WSGI requests that run past `timeout` by raising WorkerTimeout in them.
 *
 * The io thread answers 504 at `timeout` but cannot stop the app: its worker thread stays busy
 * and every request queued behind it waits. Each worker interpreter (pyworker.h) with a
 * `timeout` gets one watchdog thread. A worker thread marks the request it serves (start time
 * and a sequence number, written with its GIL held); every 100 ms the watchdog looks, and for a
 * request past `timeout` that the io thread answered with 504 (a response that started in time
 * is not under `timeout`, however long it streams) it takes that interpreter's GIL on a thread
 * state of its own and calls PyThreadState_SetAsyncExc(worker thread, WorkerTimeout) (then again
 * every `timeout` while the same request still runs, against apps that catch it; logged once). ASGI
 * workers never mark a request busy (their tasks are cancelled at `timeout` instead): their
 * watchdog watches the event loop (hb_watchdog_loop), which only a handler that blocks it keeps
 * from its selector. The exception is raised at the next bytecode the request runs, so a
 * pure-Python loop stops and the worker serves the next request. A blocking C call (time.sleep, a
 * socket read) runs to its end first; a C extension that never releases the GIL cannot be stopped
 * this way (the watchdog then waits for the GIL; only that interpreter is affected). After the
 * request the worker clears an exception that was set but not raised, so it never reaches the next
 * request.
 *
 * Threads: hb_watchdog_start/stop from the pool (pyworker.c, no GIL of the worker held);
 * hb_watchdog_busy/idle from the worker thread with its GIL held; hb_watchdog_ending from the
 * primary thread with its GIL released, before Py_EndInterpreter (after it the watchdog never
 * takes a thread state in that interpreter).
 */
#ifndef HB_PYTHON_WATCHDOG_H
#define HB_PYTHON_WATCHDOG_H

#include <stdint.h>

#include "core/stream.h"

typedef struct hb_pyinterp hb_pyinterp_t;
typedef struct hb_pythread hb_pythread_t;

/* Starts pi's watchdog when pi->cfg->timeout_ms > 0. Returns 0 or -errno. */
int hb_watchdog_start(hb_pyinterp_t *pi);
/* Stops and joins it (no-op when not started). */
void hb_watchdog_stop(hb_pyinterp_t *pi);
/* How long a request marked busy at `since` (0: idle) has run at `now`: 0 when idle or when it
 * began after `now` was read. Pure. */
uint64_t hb_watchdog_elapsed_ns(uint64_t now, uint64_t since);
/* [primary thread, GIL released] The interpreter is about to end. */
void hb_watchdog_ending(hb_pyinterp_t *pi);

/* [worker process, before its workers start] fn(ud, worker id, ms) is called on a watchdog thread
 * (no lock held, must be quick) once per request still running worker_kill_timeout seconds after
 * its WorkerTimeout: the exception could not stop it (a blocking C call, or an app that catches
 * it), so the process asks its master to replace it. NULL: nothing is called. */
void hb_watchdog_on_stuck(void (*fn)(void *ud, int worker, uint64_t ms), void *ud);

/* [ASGI worker thread, GIL held] Its event loop left (busy 1) or went back to (0) its
 * selector. A loop that stays away `timeout` + worker_kill_timeout (a handler that blocks it:
 * time.sleep, a CPU loop, a blocking C call) starves every request of that worker and cannot be
 * cancelled: the process asks to be replaced, as for a stuck WSGI request. */
void hb_watchdog_loop(hb_pythread_t *t, int busy);

/* [worker thread, GIL held] A request starts / ended. */
void hb_watchdog_busy(hb_pythread_t *t, hb_stream_t *s);
void hb_watchdog_idle(hb_pythread_t *t);

#endif
