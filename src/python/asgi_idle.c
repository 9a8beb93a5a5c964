/* asgi_idle.c: the ASGI worker's wait for the next request in C while its loop is idle.
 *
 * With one request at a time, each request costs a turn of asyncio's loop (its Python
 * _run_once, the selector, the handle) only to learn that our eventfd fired. When the loop has
 * nothing else to do (no ready callback, no fd but our eventfd and its self-pipe, not
 * stopping), that turn is all it would do: worker_wake (asgi.c) then waits for the eventfd
 * itself, in poll(2) with the GIL released, for as long as the loop would (until its first
 * timer is due; a cancelled one at the head, which the loop drops, sends us back to it), and
 * goes on taking requests. The self-pipe (call_soon_threadsafe from another thread) sends it
 * back to the loop, and so does anything the requests scheduled. Only with asyncio's selector
 * loop, not in debug mode (whose slow-callback report would count the wait). Runs on the
 * worker thread with its GIL held (released only inside poll); the loop objects it reads are
 * the worker's (loop_ready, loop_fds: references it holds). */
#include "python/asgi_priv.h"

#include <poll.h>
#include <time.h>

#include "core/log.h"
#include "python/asgi.h"

void hb_asgi_idle_init(hb_asgi_worker_t *w)
{
	PyObject *dbg = PyObject_CallMethod(w->loop, "get_debug", NULL);
	PyObject *sel = NULL, *ssock = NULL, *fd = NULL;
	long v = -1;

	w->self_pipe = -1;
	if (dbg && PyObject_IsTrue(dbg) == 0) {
		sel = PyObject_GetAttrString(w->loop, "_selector");
		w->loop_fds = sel ? PyObject_GetAttrString(sel, "_fd_to_key") : NULL;
		w->loop_ready = w->loop_fds ? PyObject_GetAttrString(w->loop, "_ready") : NULL;
		ssock = w->loop_ready ? PyObject_GetAttrString(w->loop, "_ssock") : NULL;
		fd = ssock ? PyObject_CallMethod(ssock, "fileno", NULL) : NULL;
		v = fd ? PyLong_AsLong(fd) : -1;
	}
	if (v >= 0 && PyDict_Check(w->loop_fds) && PySequence_Check(w->loop_ready))
		w->self_pipe = (int)v;
	else
		hb_debug("asgi: not asyncio's selector loop, or debug mode: no idle wait in C");
	PyErr_Clear();
	Py_XDECREF(dbg);
	Py_XDECREF(sel);
	Py_XDECREF(ssock);
	Py_XDECREF(fd);
	if (w->self_pipe < 0) {
		Py_CLEAR(w->loop_fds);
		Py_CLEAR(w->loop_ready);
	}
}

/* How long the loop would wait for its first timer, in us (-1: no timer), or -2 when it must
 * run now (the first timer is due, or cancelled: the loop drops those from the head). In
 * microseconds, not the ms of epoll/poll: rounding a 10 ms asyncio.sleep up to the next ms made
 * each one last ~0.5 ms longer on average (perf asgi-sleep: p50 12.8 ms against uvicorn's 11.6). */
static int64_t timer_wait_us(hb_asgi_worker_t *w, PyObject *sched)
{
	PyObject *h, *cancelled, *when, *now = NULL;
	double d = -1;

	if (PyList_GET_SIZE(sched) == 0)
		return -1;
	h = PyList_GET_ITEM(sched, 0);
	cancelled = PyObject_GetAttr(h, HB_ASGI_S(w, l_cancelled));
	when = cancelled == Py_False ? PyObject_GetAttr(h, HB_ASGI_S(w, l_when)) : NULL;
	now = when ? PyObject_CallMethodNoArgs(w->loop, HB_ASGI_S(w, time)) : NULL;
	if (now && PyFloat_Check(when) && PyFloat_Check(now))
		d = PyFloat_AS_DOUBLE(when) - PyFloat_AS_DOUBLE(now);
	Py_XDECREF(cancelled);
	Py_XDECREF(when);
	Py_XDECREF(now);
	if (d <= 0)
		return -2;
	return d >= 3600 ? (int64_t)3600 * 1000000 : (int64_t)(d * 1e6) + 1; /* never early */
}

/* When the loop would only wait for our eventfd (see above), or for it and a timer: how long,
 * in us (-1: no limit); -2 when the loop must run. */
int64_t hb_asgi_idle_us(hb_asgi_worker_t *w)
{
	PyObject *sched, *stopping;
	int64_t us = -2;

	if (w->self_pipe < 0 || PyDict_GET_SIZE(w->loop_fds) != 2 ||
	    PyObject_Length(w->loop_ready) != 0) {
		PyErr_Clear();
		return -2;
	}
	sched = PyObject_GetAttr(w->loop, HB_ASGI_S(w, l_scheduled));
	stopping = sched ? PyObject_GetAttr(w->loop, HB_ASGI_S(w, l_stopping)) : NULL;
	if (sched && PyList_Check(sched) && stopping == Py_False)
		us = timer_wait_us(w, sched);
	Py_XDECREF(sched);
	Py_XDECREF(stopping);
	PyErr_Clear();
	return us;
}

/* Waits up to us for the eventfd or the self-pipe (ppoll: its timeout has ns resolution). 1:
 * the eventfd alone fired (take the requests); 0: the loop must run (a timer is due, or it sees
 * the same fds readable). */
int hb_asgi_idle_wait(hb_asgi_worker_t *w, int efd, int64_t us)
{
	struct pollfd p[2] = {{.fd = efd, .events = POLLIN},
			      {.fd = w->self_pipe, .events = POLLIN}};
	struct timespec ts_limit = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
	PyThreadState *ts;
	int n;

	if (w->hooks->loop) /* the watchdog's view: waiting here is the loop in its selector */
		w->hooks->loop(w->hooks->ud, 0);
	ts = PyEval_SaveThread();
	n = ppoll(p, 2, us < 0 ? NULL : &ts_limit, NULL);
	PyEval_RestoreThread(ts);
	if (w->hooks->loop)
		w->hooks->loop(w->hooks->ud, 1);
	return n > 0 && (p[0].revents & POLLIN) && !p[1].revents;
}
