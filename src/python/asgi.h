/* asgi.h: serving an ASGI 3 application (HTTP, WebSocket, lifespan) on an asyncio loop.
 *
 * An ASGI worker thread runs one asyncio event loop (plain asyncio, new_event_loop) in its
 * interpreter. hb_asgi_run() owns that loop from lifespan startup to lifespan shutdown: the
 * hub's eventfd for the thread's slot is a loop reader; each request or websocket taken from
 * the hub becomes one task running the app; receive() and send() are C awaitables that finish
 * at once when they can and otherwise wait on a loop future that the eventfd callback resolves
 * when the io side puts the stream on the worker's ready list (hub.h, async workers).
 *
 * Behaviour worth knowing (the rest is the ASGI 3.0 spec, version 2.4):
 * - A task starts eagerly (asyncio.Task(eager_start=True)): a response that needs no waiting
 *   is sent before the next request is looked at, with no loop iteration in between.
 * - While the loop has nothing else to do (no ready callback, no fd but the eventfd and the
 *   loop's self-pipe), the eventfd callback waits for the next request itself, in poll(2) with
 *   the GIL released, until the loop's first timer is due, instead of returning to a loop turn
 *   that would only do that; the self-pipe (call_soon_threadsafe), a due timer or any scheduled
 *   work returns it to the loop (asgi_idle.c).
 * - The head of http.response.start is held until the first body message; a body sent in one
 *   message gets a Content-Length, a streamed one is chunked (HTTP/1.1).
 * - `timeout` (cfg->timeout_ms): a request that has not started its response, or a started
 *   response with no send() for that long, has its task cancelled: 504 when nothing was sent,
 *   else the connection is closed; the log shows the task's stack. Websockets are exempt
 *   once accepted (websocket_timeout is the io side's).
 * - send() after the client left raises _hornbeam.ClientDisconnected (an OSError), which is
 *   not logged as an error; receive() then returns http.disconnect / websocket.disconnect,
 *   as it does after the response is complete.
 * - Extensions: http.response.pathsend (the file goes out by splice) and
 *   websocket.http.response (denial responses). No early hints, trailers or zero-copy send.
 * - Lifespan (cfg->lifespan, lifespan_timeout) runs in every worker before it accepts, in
 *   Python (asgi_lifespan.c); scope["state"] is a shallow copy of the lifespan state.
 *
 * Threads: every function runs on the worker thread with its interpreter's GIL held (the
 * hb_stream_* calls used are the non-blocking ones). Ownership: the worker holds one reference
 * on each stream until the app's task finished and the stream was ended.
 */
#ifndef HB_PYTHON_ASGI_H
#define HB_PYTHON_ASGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "core/config.h"
#include "core/hub.h"

/* What the worker thread's owner (pyworker.c) hears from hb_asgi_run. */
typedef struct hb_asgi_hooks {
	/* Called once: error NULL when the worker accepts requests from now on (the callback
	 * marks the slot accepting), else a malloc'd message for stderr (ownership passes) and
	 * hb_asgi_run returns without serving. */
	void (*ready)(void *ud, char *error);
	/* Called after each request or websocket ended (max_requests accounting); may be NULL. */
	void (*served)(void *ud);
	/* Called at each wakeup of the loop (the slot's eventfd: hb_hub_worker_kick), before
	 * new requests are taken: runs work queued for this worker (calls); may be NULL. */
	void (*wake)(void *ud);
	/* While serving: the event loop left (busy 1) or went back to (0) its selector, so that a
	 * handler blocking the loop is seen (watchdog.h: hb_watchdog_loop); NULL: not watched. */
	void (*loop)(void *ud, int busy);
	void *ud;
} hb_asgi_hooks_t;

/* [GIL held] Adds the ASGI names (ClientDisconnected) to a `_hornbeam` module being executed.
 * Returns 0 or -1 with an exception set. */
int hb_asgi_module_exec(PyObject *module);

/* [GIL held] worker_class = auto: 1 if app looks like an ASGI callable (a coroutine function,
 * an object whose __call__ is one, or a callable of three required positional parameters),
 * 0 otherwise (WSGI); why gets the reason, for the startup log. Never leaves an exception set. */
int hb_asgi_detect(PyObject *app, char *why, size_t len);

/* [worker thread, GIL held] Creates the loop, runs lifespan startup, marks the hub slot async
 * and calls hooks->ready(ud, NULL), then serves until the slot is stopping and every task
 * finished, runs lifespan shutdown and closes the loop. On a startup failure calls
 * hooks->ready(ud, message) and returns. Never leaves a Python exception set. */
void hb_asgi_run(const hb_config_t *cfg, hb_hub_t *hub, int slot, PyObject *app,
		 const hb_asgi_hooks_t *hooks);

#endif
