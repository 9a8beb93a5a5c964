/* asgi.c: the ASGI worker: its event loop, the eventfd callback, one task per request, and the
 * receive()/send() awaitables. */
#include "python/asgi.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/inflight.h"
#include "core/log.h"
#include "python/asgi_priv.h"
#include "python/module.h"
#include "python/pycompat.h"
#include "python/pyerr.h"
#include "python/wsgi_response.h"

/* New requests started per eventfd callback before the loop gets to run tasks again. */
#define DRAIN_BATCH 256
/* How long a stopping worker waits for requests still being dispatched to it. */
#define LINGER_NS (1000u * 1000u * 1000u)

/* clang-format off */
static const char *const str_text[HB_AS_COUNT] = {
#define HB_ASGI_STR_TEXT(id, text) text,
	HB_ASGI_STR_LIST(HB_ASGI_STR_TEXT)
#undef HB_ASGI_STR_TEXT
};
/* clang-format on */

uint64_t hb_asgi_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

PyObject *hb_asgi_msg(hb_asgi_worker_t *w, PyObject *type, int n, ...)
{
	PyObject *d = PyDict_New();
	int ok = d && PyDict_SetItem(d, HB_ASGI_S(w, type), type) == 0;
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		PyObject *k = va_arg(ap, PyObject *), *v = va_arg(ap, PyObject *);

		if (ok && (!v || PyDict_SetItem(d, k, v) < 0))
			ok = 0;
		Py_XDECREF(v);
	}
	va_end(ap);
	if (!ok)
		Py_CLEAR(d);
	return d;
}

int hb_asgi_raise_gone(hb_asgi_req_t *r)
{
	PyErr_SetString(r->w->disconnected, "client disconnected");
	return HB_ASGI_ERR;
}

int hb_asgi_post_plain(hb_stream_t *s, int status)
{
	const char *text = status == 403   ? "Forbidden\n"
			   : status == 504 ? "Gateway Timeout\n"
					   : "Internal Server Error\n";
	hb_response_t *resp = hb_wsgi_response_plain(status, text);

	if (!resp || hb_stream_send_head(s, resp) < 0)
		return -1;
	return hb_stream_send_body_nb(s, text, strlen(text)) < 0 ? -1 : 0;
}

void hb_asgi_req_end(hb_asgi_req_t *r, uint32_t flags)
{
	if (r->ended || !r->s)
		return;
	r->ended = 1;
	hb_stream_end(r->s, flags);
}

/* ---- futures ---- */

/* fut.done() as 0/1, -1 on error. */
static int fut_done(hb_asgi_worker_t *w, PyObject *fut)
{
	PyObject *d = PyObject_CallMethodNoArgs(fut, HB_ASGI_S(w, done));
	int rc = d ? PyObject_IsTrue(d) : -1;

	Py_XDECREF(d);
	return rc;
}

static void resolve(hb_asgi_worker_t *w, PyObject **slot)
{
	PyObject *f = *slot, *res;

	if (!f)
		return;
	*slot = NULL;
	if (fut_done(w, f) == 0) {
		res = PyObject_CallMethodOneArg(f, HB_ASGI_S(w, set_result), Py_None);
		Py_XDECREF(res);
	}
	if (PyErr_Occurred())
		hb_pyerr_log(HB_LOG_ERROR, "asgi: cannot wake a waiting receive/send");
	Py_DECREF(f);
}

void hb_asgi_req_wake(hb_asgi_req_t *r)
{
	resolve(r->w, &r->recv_waiter);
	resolve(r->w, &r->send_waiter);
}

/* The future an awaitable yields to the task while it waits: shared by everyone waiting in the
 * same direction, resolved by hb_asgi_req_wake. */
static PyObject *wait_on(hb_asgi_req_t *r, PyObject **slot)
{
	hb_asgi_worker_t *w = r->w;

	if (*slot) {
		int done = fut_done(w, *slot);

		if (done < 0)
			return NULL;
		if (done)
			Py_CLEAR(*slot);
	}
	if (!*slot && !(*slot = PyObject_CallMethodNoArgs(w->loop, HB_ASGI_S(w, create_future))))
		return NULL;
	/* What Future.__await__ does before yielding itself: the task checks it. */
	if (PyObject_SetAttr(*slot, HB_ASGI_S(w, future_blocking), Py_True) < 0)
		return NULL;
	return Py_NewRef(*slot);
}

/* ---- the awaitable returned by receive() and send(msg) ---- */

typedef struct {
	PyObject ob_base; /* PyObject_HEAD */
	hb_asgi_req_t *req;
	PyObject *msg; /* NULL for receive() */
} op_t;

/* send(msg): the message's "type", then the scope's step for it. */
static int send_step(hb_asgi_req_t *r, PyObject *msg)
{
	PyObject *type = PyDict_GetItemWithError(msg, HB_ASGI_S(r->w, type));

	if (!type) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_KeyError, "ASGI message without 'type'");
		return HB_ASGI_ERR;
	}
	return r->websocket ? hb_asgi_ws_send(r, msg, type) : hb_asgi_http_send(r, msg, type);
}

/* One attempt; on WAIT the task waits on a future, then resumes us and we try again. */
static PyObject *op_next(PyObject *self)
{
	op_t *op = (op_t *)self;
	hb_asgi_req_t *r = op->req;
	PyObject *out = NULL;
	int rc;

	if (!op->msg)
		rc = r->websocket ? hb_asgi_ws_receive(r, &out) : hb_asgi_http_receive(r, &out);
	else
		rc = send_step(r, op->msg);
	switch (rc) {
	case HB_ASGI_DONE:
		if (out) {
			PyErr_SetObject(PyExc_StopIteration, out);
			Py_DECREF(out);
		}
		return NULL;
	case HB_ASGI_WAIT_RECV:
		return wait_on(r, &r->recv_waiter);
	case HB_ASGI_WAIT_SEND:
		return wait_on(r, &r->send_waiter);
	default:
		return NULL;
	}
}

static PyObject *op_await(PyObject *self)
{
	return Py_NewRef(self);
}

static int op_traverse(PyObject *self, visitproc visit, void *arg)
{
	Py_VISIT(((op_t *)self)->req);
	Py_VISIT(((op_t *)self)->msg);
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static int op_clear(PyObject *self)
{
	Py_CLEAR(((op_t *)self)->req);
	Py_CLEAR(((op_t *)self)->msg);
	return 0;
}

static void op_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	op_clear(self);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyType_Slot op_slots[] = {
	{Py_am_await, op_await},
	{Py_tp_iter, PyObject_SelfIter},
	{Py_tp_iternext, op_next},
	{Py_tp_traverse, op_traverse},
	{Py_tp_clear, op_clear},
	{Py_tp_dealloc, op_dealloc},
	{0, NULL},
};

static PyType_Spec op_spec = {
	.name = "_hornbeam.ASGIOperation",
	.basicsize = sizeof(op_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = op_slots,
};

/* The awaitable of one receive() (msg NULL) or send(msg). The request's previous one is
 * reused when nothing but the request holds it any more (awaited and dropped: nobody can
 * tell), so that a response sent in two messages allocates one. */
static PyObject *op_new(hb_asgi_req_t *r, PyObject *msg)
{
	op_t *op = (op_t *)r->op;

	if (op && Py_REFCNT(op) == 1) {
		Py_XSETREF(op->msg, Py_XNewRef(msg));
		return Py_NewRef((PyObject *)op);
	}
	if (!(op = (op_t *)PyType_GenericAlloc(r->w->op_type, 0)))
		return NULL;
	op->req = (hb_asgi_req_t *)Py_NewRef((PyObject *)r);
	op->msg = Py_XNewRef(msg);
	if (r->s) /* a cycle (op->req) that req_finish breaks */
		Py_XSETREF(r->op, Py_NewRef((PyObject *)op));
	return (PyObject *)op;
}

/* ---- the request object ---- */

/* The request is the app's receive callable: receive() is one call, no bound method. */
static PyObject *req_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
	if (PyTuple_GET_SIZE(args) != 0 || (kwargs && PyDict_GET_SIZE(kwargs) != 0)) {
		PyErr_SetString(PyExc_TypeError, "receive() takes no arguments");
		return NULL;
	}
	return op_new((hb_asgi_req_t *)self, NULL);
}

static PyObject *req_send(PyObject *self, PyObject *msg)
{
	if (!PyDict_Check(msg)) {
		PyErr_Format(PyExc_TypeError, "ASGI message must be a dict, not %.100s",
			     Py_TYPE(msg)->tp_name);
		return NULL;
	}
	return op_new((hb_asgi_req_t *)self, msg);
}

static PyObject *req_done(PyObject *self, PyObject *task);
static PyObject *req_timeout(PyObject *self, PyObject *unused);

static PyMethodDef send_def = {"send", req_send, METH_O, "send(message): awaitable."};
static PyMethodDef done_def = {"_done", req_done, METH_O, "task done callback"};
static PyMethodDef timeout_def = {"_timeout", req_timeout, METH_NOARGS, "timeout callback"};

static int req_traverse(PyObject *self, visitproc visit, void *arg)
{
	hb_asgi_req_t *r = (hb_asgi_req_t *)self;

	Py_VISIT(r->w);
	Py_VISIT(r->task);
	Py_VISIT(r->timer);
	Py_VISIT(r->recv_waiter);
	Py_VISIT(r->send_waiter);
	Py_VISIT(r->trailer_list);
	Py_VISIT(r->op);
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static int req_clear(PyObject *self)
{
	hb_asgi_req_t *r = (hb_asgi_req_t *)self;

	Py_CLEAR(r->task);
	Py_CLEAR(r->timer);
	Py_CLEAR(r->recv_waiter);
	Py_CLEAR(r->send_waiter);
	Py_CLEAR(r->trailer_list);
	Py_CLEAR(r->op);
	Py_CLEAR(r->w);
	return 0;
}

static void req_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	hb_asgi_req_t *r = (hb_asgi_req_t *)self;

	PyObject_GC_UnTrack(self);
	free(r->resp);
	r->resp = NULL;
	free(r->held);
	r->held = NULL;
	req_clear(self);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyType_Slot req_slots[] = {
	{Py_tp_call, req_call},
	{Py_tp_traverse, req_traverse},
	{Py_tp_clear, req_clear},
	{Py_tp_dealloc, req_dealloc},
	{0, NULL},
};

static PyType_Spec req_spec = {
	.name = "_hornbeam.ASGIRequest",
	.basicsize = sizeof(hb_asgi_req_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = req_slots,
};

static hb_asgi_req_t *req_new(hb_asgi_worker_t *w, hb_stream_t *s)
{
	hb_asgi_req_t *r = (hb_asgi_req_t *)PyType_GenericAlloc(w->req_type, 0);

	if (!r)
		return NULL;
	r->w = (hb_asgi_worker_t *)Py_NewRef((PyObject *)w);
	r->s = s;
	r->declared_len = -1;
	r->last_ns = hb_asgi_now_ns();
	r->websocket = (s->req->flags & HB_REQ_CHANNEL) != 0;
	r->is_head = (s->req->flags & HB_REQ_HEAD) != 0;
	r->inflight = hb_inflight_begin(hb_inflight_process(), (unsigned)w->slot, s->req->method,
					s->req->method_len, s->req->target, s->req->target_len);
	return r;
}

/* ---- request lifecycle ---- */

static void worker_poke(hb_asgi_worker_t *w);

static void cancel_timer(hb_asgi_req_t *r)
{
	PyObject *res;

	if (!r->timer)
		return;
	res = PyObject_CallMethodNoArgs(r->timer, HB_ASGI_S(r->w, cancel));
	Py_XDECREF(res);
	if (!res)
		PyErr_Clear();
	Py_CLEAR(r->timer);
}

/* The app finished (or never started): answer what is missing, end and drop the stream. */
static void req_finish(hb_asgi_req_t *r, int failed)
{
	hb_asgi_worker_t *w = r->w;
	hb_stream_t *s = r->s;

	if (!s)
		return;
	cancel_timer(r);
	if (r->websocket)
		hb_asgi_ws_finish(r, failed);
	else
		hb_asgi_http_finish(r, failed);
	hb_asgi_req_end(r, HB_END_ABORT); /* no-op unless the finish above missed it */
	r->s = NULL;
	s->py = NULL;
	hb_inflight_end(hb_inflight_process(), r->inflight);
	r->inflight = -1;
	Py_CLEAR(r->task);
	Py_CLEAR(r->op);
	hb_asgi_req_wake(r); /* receive()/send() still pending in other tasks see the end */
	hb_stream_release(s);
	w->nactive--;
	if (w->hooks->served)
		w->hooks->served(w->hooks->ud);
	if (atomic_load(&hb_hub_worker(w->hub, w->slot)->stopping))
		worker_poke(w);
	Py_DECREF(r); /* the reference s->py held; r may be gone now */
}

/* "GET /path" for logs, into buf. */
static const char *req_name(hb_asgi_req_t *r, char *buf, size_t len)
{
	const hb_request_t *q = r->s ? r->s->req : NULL;

	if (!q)
		return "request";
	snprintf(buf, len, "%.*s %.*s", (int)q->method_len, q->method,
		 (int)(q->target_len > 200 ? 200 : q->target_len), q->target);
	return buf;
}

/* How the task ended: 0 ok, 1 failed (logged unless the client had left), 2 timed out. */
static int task_outcome(hb_asgi_req_t *r, PyObject *task)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *c = PyObject_CallMethodNoArgs(task, HB_ASGI_S(w, result)), *exc;
	char name[256], what[320];
	int cancelled;

	if (c) { /* the common case in one call; else the same questions as always */
		Py_DECREF(c);
		return 0;
	}
	PyErr_Clear();
	c = PyObject_CallMethodNoArgs(task, HB_ASGI_S(w, cancelled));
	cancelled = c ? PyObject_IsTrue(c) : -1;
	Py_XDECREF(c);
	if (cancelled)
		return cancelled < 0 ? 1 : (r->timed_out ? 2 : 1);
	exc = PyObject_CallMethodNoArgs(task, HB_ASGI_S(w, exception));
	if (exc == Py_None) {
		Py_DECREF(exc);
		return 0;
	}
	if (exc && (r->gone || PyObject_IsInstance(exc, w->disconnected) == 1)) {
		Py_DECREF(exc);
		hb_debug("asgi: %s: client went away", req_name(r, name, sizeof(name)));
		return 1;
	}
	if (exc)
		PyErr_SetRaisedException(exc);
	snprintf(what, sizeof(what), "asgi: exception in ASGI application (%s)",
		 req_name(r, name, sizeof(name)));
	hb_pyerr_log(HB_LOG_ERROR, what);
	return 1;
}

static PyObject *req_done(PyObject *self, PyObject *task)
{
	hb_asgi_req_t *r = (hb_asgi_req_t *)self;

	if (r->s)
		req_finish(r, task_outcome(r, task));
	Py_RETURN_NONE;
}

static int arm_timer(hb_asgi_req_t *r, double delay)
{
	hb_asgi_worker_t *w = r->w;
	PyObject *cb = PyCFunction_NewEx(&timeout_def, (PyObject *)r, NULL), *d, *h = NULL;

	d = cb ? PyFloat_FromDouble(delay) : NULL;
	if (d)
		h = PyObject_CallMethodObjArgs(w->loop, HB_ASGI_S(w, call_later), d, cb, NULL);
	Py_XDECREF(d);
	Py_XDECREF(cb);
	Py_XSETREF(r->timer, h);
	return h ? 0 : -1;
}

/* No progress for `timeout`: cancel the task (504 or abort) and say where it was stuck. */
static PyObject *req_timeout(PyObject *self, PyObject *unused)
{
	hb_asgi_req_t *r = (hb_asgi_req_t *)self;
	hb_asgi_worker_t *w = r->w;
	uint64_t limit = (uint64_t)(w->timeout_s * 1e9), idle = hb_asgi_now_ns() - r->last_ns;
	char name[256], what[400];
	PyObject *res;

	Py_CLEAR(r->timer);
	if (!r->s || !r->task || r->accepted || r->complete)
		Py_RETURN_NONE;
	if (idle < limit) {
		if (arm_timer(r, (double)(limit - idle) / 1e9) < 0)
			hb_pyerr_log(HB_LOG_ERROR, "asgi: cannot re-arm the request timeout");
		Py_RETURN_NONE;
	}
	snprintf(what, sizeof(what),
		 "asgi: %s: no response progress for %.0f ms (timeout): cancelling the task, "
		 "which was waiting at:",
		 req_name(r, name, sizeof(name)), w->timeout_s * 1000);
	hb_asgi_log_stack(w, r->task, what);
	r->timed_out = 1;
	res = PyObject_CallMethodNoArgs(r->task, HB_ASGI_S(w, cancel));
	Py_XDECREF(res);
	if (!res)
		hb_pyerr_log(HB_LOG_ERROR, "asgi: cannot cancel a timed-out task");
	Py_RETURN_NONE;
}

/* asyncio.Task(coro, loop=loop, eager_start=True): the app runs at once, up to its first await
 * that has to wait; a response that needs no waiting is complete before this returns. */
static PyObject *new_task(hb_asgi_worker_t *w, PyObject *coro)
{
	/* A type without vectorcall: keyword names would be turned into a dict at each call,
	 * so the dict is made once (type_call hands it to __init__, which only reads it). */
	PyObject *args = PyTuple_Pack(1, coro), *t;

	if (!args)
		return NULL;
	t = PyObject_Call(w->task_type, args, w->task_kwargs);
	Py_DECREF(args);
	return t;
}

/* Calls the app and schedules its task. Returns 0, or -1 with an exception set. */
static int launch(hb_asgi_worker_t *w, hb_asgi_req_t *r)
{
	PyObject *args[3] = {NULL, NULL, NULL}, *coro = NULL, *cb = NULL, *res = NULL;
	int rc = -1, done = -1;

	args[0] = hb_asgi_scope_new(w, r->s->req, r->websocket);
	args[1] = args[0] ? Py_NewRef((PyObject *)r) : NULL; /* receive (req_call) */
	args[2] = args[1] ? PyCFunction_NewEx(&send_def, (PyObject *)r, NULL) : NULL;
	if (args[2])
		coro = PyObject_Vectorcall(w->app, args, 3, NULL);
	if (coro)
		r->task = new_task(w, coro);
	if (r->task && (done = fut_done(w, r->task)) == 1) {
		/* Finished in its eager first step (no await that had to wait): no callback. */
		req_finish(r, task_outcome(r, r->task));
		rc = 0;
	} else if (r->task && done == 0) {
		cb = PyCFunction_NewEx(&done_def, (PyObject *)r, NULL);
	}
	if (cb)
		res = PyObject_CallMethodOneArg(r->task, HB_ASGI_S(w, add_done_callback), cb);
	if (res && (w->timeout_s <= 0 || arm_timer(r, w->timeout_s) == 0))
		rc = 0;
	Py_XDECREF(res);
	Py_XDECREF(cb);
	Py_XDECREF(coro);
	for (int i = 0; i < 3; i++)
		Py_XDECREF(args[i]);
	return rc;
}

static void start_request(hb_asgi_worker_t *w, hb_stream_t *s)
{
	hb_asgi_req_t *r = req_new(w, s);
	char name[256], what[320];

	if (!r) {
		hb_pyerr_log(HB_LOG_ERROR, "asgi: cannot start a request");
		hb_stream_end(s, hb_asgi_post_plain(s, 500) < 0 ? HB_END_ABORT : 0);
		hb_stream_release(s);
		return;
	}
	s->py = Py_NewRef((PyObject *)r);
	w->nactive++;
	if (launch(w, r) < 0) {
		snprintf(what, sizeof(what), "asgi: exception calling the ASGI application (%s)",
			 req_name(r, name, sizeof(name)));
		hb_pyerr_log(HB_LOG_ERROR, what);
		req_finish(r, 1);
	}
	Py_DECREF(r);
}

/* ---- the worker's wakeups ---- */

/* New requests (at most *budget) and streams with news. Returns how many were handled. */
static int drain(hb_asgi_worker_t *w, int *budget)
{
	hb_stream_t *s, *next;
	int n = 0;

	while (*budget > 0 && hb_hub_worker_poll(w->hub, w->slot, &s) == 0) {
		start_request(w, s);
		(*budget)--;
		n++;
	}
	for (s = hb_hub_worker_take_ready(w->hub, w->slot); s; s = next, n++) {
		next = s->ready_next;
		atomic_store(&s->wake_pending, 0);
		if (s->py)
			hb_asgi_req_wake((hb_asgi_req_t *)s->py);
		hb_stream_release(s);
	}
	return n;
}

static void worker_stop_loop(hb_asgi_worker_t *w)
{
	PyObject *res;

	if (w->stopped)
		return;
	w->stopped = 1;
	res = PyObject_CallMethodNoArgs(w->loop, HB_ASGI_S(w, stop));
	Py_XDECREF(res);
	if (!res)
		hb_pyerr_log(HB_LOG_ERROR, "asgi: cannot stop the event loop");
}

/* Schedules _wake after `delay` seconds. */
static void worker_poke_later(hb_asgi_worker_t *w, double delay)
{
	PyObject *d = PyFloat_FromDouble(delay), *res = NULL;

	if (d)
		res = PyObject_CallMethodObjArgs(w->loop, HB_ASGI_S(w, call_later), d, w->wake,
						 NULL);
	Py_XDECREF(d);
	Py_XDECREF(res);
	if (!res)
		hb_pyerr_log(HB_LOG_ERROR, "asgi: cannot schedule the worker wakeup");
}

/* Stopping and idle. A dispatch that read `accepting` just before it was cleared may still
 * push a request here: while the io side counts requests in flight for this slot (it does
 * until it has seen their end), look again for up to LINGER_NS, then stop the loop. */
static void worker_maybe_stop(hb_asgi_worker_t *w, hb_worker_t *wk)
{
	uint64_t now = hb_asgi_now_ns();

	if (!w->linger_until_ns)
		w->linger_until_ns = now + LINGER_NS;
	if (atomic_load(&wk->inflight) > 0 && now < w->linger_until_ns)
		worker_poke_later(w, 0.002);
	else
		worker_stop_loop(w);
}

/* Schedules _wake soon (more work than one batch, or a stop to check). */
static void worker_poke(hb_asgi_worker_t *w)
{
	PyObject *res = PyObject_CallMethodOneArg(w->loop, HB_ASGI_S(w, call_soon), w->wake);

	Py_XDECREF(res);
	if (!res)
		hb_pyerr_log(HB_LOG_ERROR, "asgi: cannot schedule the worker wakeup");
}

/* Takes everything. Returns 1 when the worker said it sleeps (the eventfd will be written),
 * 0 when the loop must run first (a full batch, or stopping). */
static int take_all(hb_asgi_worker_t *w, hb_worker_t *wk)
{
	int budget = DRAIN_BATCH;

	for (;;) {
		drain(w, &budget);
		if (budget <= 0) {
			worker_poke(w); /* let the tasks run; we come back right after */
			return 0;
		}
		if (!atomic_load(&wk->stopping)) {
			if (hb_hub_worker_prepare_sleep(w->hub, w->slot))
				return 1;
			continue;
		}
		/* prepare_sleep never lets a stopping worker sleep, but streams in flight still
		 * need their wakeups: say we sleep, then look once more (same Dekker order). */
		atomic_store(&wk->sleeping, 1);
		atomic_thread_fence(memory_order_seq_cst);
		if (drain(w, &budget) == 0)
			return 0;
	}
}

/* The eventfd reader: take everything, then tell the hub we go idle (always: the eventfd is
 * only written while we say we sleep); while the loop is idle, wait here for the next
 * (asgi_idle.c). */
static PyObject *worker_wake(PyObject *self, PyObject *unused)
{
	hb_asgi_worker_t *w = (hb_asgi_worker_t *)self;
	hb_worker_t *wk = hb_hub_worker(w->hub, w->slot);
	int64_t us;

	for (;;) {
		hb_hub_worker_awake(w->hub, w->slot);
		if (w->hooks->wake)
			w->hooks->wake(w->hooks->ud);
		if (!take_all(w, wk) || (us = hb_asgi_idle_us(w)) == -2 ||
		    !hb_asgi_idle_wait(w, wk->efd, us))
			break;
	}
	if (atomic_load(&wk->stopping) && w->nactive == 0)
		worker_maybe_stop(w, wk);
	Py_RETURN_NONE;
}

/* _log(level, message): for the Python helpers. */
static PyObject *worker_log(PyObject *self, PyObject *args)
{
	int level;
	const char *msg;
	Py_ssize_t len;

	if (!PyArg_ParseTuple(args, "is#:_log", &level, &msg, &len))
		return NULL;
	hb_log_block((hb_log_level_t)level, msg, (size_t)len);
	Py_RETURN_NONE;
}

/* The selector wrapper's mark (asgi_lifespan.c: watch_selector): the loop leaves (True) or
 * goes back to (False) its selector. */
static PyObject *worker_loop_mark(PyObject *self, PyObject *busy)
{
	hb_asgi_worker_t *w = (hb_asgi_worker_t *)self;

	if (w->hooks && w->hooks->loop)
		w->hooks->loop(w->hooks->ud, PyObject_IsTrue(busy) == 1);
	Py_RETURN_NONE;
}

static PyMethodDef worker_methods[] = {
	{"_loop_mark", worker_loop_mark, METH_O,
	 "the event loop left (True) or is in its selector"},
	{"_wake", worker_wake, METH_NOARGS, "eventfd callback: take new requests and wakeups"},
	{"_log", worker_log, METH_VARARGS, "_log(level, message): write to the server log"},
	{NULL, NULL, 0, NULL},
};

/* ---- the worker object ---- */

/* clang-format off */
#define WORKER_OBJECTS(X)                                                                          \
	X(app) X(module) X(loop) X(task_type) X(task_kwargs) X(helpers) X(lifespan)               \
	X(disconnected) X(req_type) X(op_type) X(state) X(asgi_info) X(ext_http) X(ext_ws)         \
	X(root_path) X(wake) X(loop_ready) X(loop_fds) X(scope_http) X(method) X(client)         \
	X(client_host) X(server) X(path) X(raw_path)
/* clang-format on */

static int worker_traverse(PyObject *self, visitproc visit, void *arg)
{
	hb_asgi_worker_t *w = (hb_asgi_worker_t *)self;

#define VISIT(f) Py_VISIT(w->f);
	WORKER_OBJECTS(VISIT)
#undef VISIT
	for (size_t i = 0; i < sizeof(w->hdr_cache) / sizeof(w->hdr_cache[0]); i++)
		Py_VISIT(w->hdr_cache[i]);
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static int worker_clear(PyObject *self)
{
	hb_asgi_worker_t *w = (hb_asgi_worker_t *)self;

#define CLEAR(f) Py_CLEAR(w->f);
	WORKER_OBJECTS(CLEAR)
#undef CLEAR
	for (size_t i = 0; i < sizeof(w->hdr_cache) / sizeof(w->hdr_cache[0]); i++)
		Py_CLEAR(w->hdr_cache[i]);
	for (int i = 0; i < HB_AS_COUNT; i++)
		Py_CLEAR(w->str[i]);
	return 0;
}

static void worker_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	worker_clear(self);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyType_Slot worker_slots[] = {
	{Py_tp_methods, worker_methods},
	{Py_tp_traverse, worker_traverse},
	{Py_tp_clear, worker_clear},
	{Py_tp_dealloc, worker_dealloc},
	{0, NULL},
};

static PyType_Spec worker_spec = {
	.name = "_hornbeam.ASGIWorker",
	.basicsize = sizeof(hb_asgi_worker_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = worker_slots,
};

/* ClientDisconnected(OSError): send() after the client left. */
static PyObject *disconnected_type(PyObject *module)
{
	PyObject *t = PyObject_GetAttrString(module, "ClientDisconnected");

	if (t || !PyErr_ExceptionMatches(PyExc_AttributeError))
		return t;
	PyErr_Clear();
	if (hb_asgi_module_exec(module) < 0)
		return NULL;
	return PyObject_GetAttrString(module, "ClientDisconnected");
}

int hb_asgi_module_exec(PyObject *module)
{
	PyObject *t = PyErr_NewExceptionWithDoc(
		"_hornbeam.ClientDisconnected",
		"Raised by an ASGI send() after the client went away (not logged as an error).",
		PyExc_OSError, NULL);

	if (!t)
		return -1;
	return PyModule_Add(module, "ClientDisconnected", t);
}

static int worker_init_strings(hb_asgi_worker_t *w)
{
	for (int i = 0; i < HB_AS_COUNT; i++)
		if (!(w->str[i] = PyUnicode_InternFromString(str_text[i])))
			return -1;
	return 0;
}

/* The constant parts of every scope. */
static int worker_init_scope_parts(hb_asgi_worker_t *w)
{
	const char *root = w->cfg->root_path ? w->cfg->root_path : "";

	w->state = PyDict_New();
	w->asgi_info = Py_BuildValue("{s:s,s:s}", "version", "3.0", "spec_version", "2.4");
	w->ext_http = Py_BuildValue("{s:{},s:{},s:{}}", "http.response.pathsend",
				    "http.response.trailers", "http.response.early_hint");
	w->ext_ws = Py_BuildValue("{s:{}}", "websocket.http.response");
	w->root_path = PyUnicode_DecodeUTF8(root, (Py_ssize_t)strlen(root), "surrogateescape");
	if (!w->state || !w->asgi_info || !w->ext_http || !w->ext_ws || !w->root_path)
		return -1;
	return hb_asgi_scope_init(w);
}

/* asyncio.Task and the names of the keyword arguments new_task() gives it. */
static int task_parts(hb_asgi_worker_t *w)
{
	PyObject *asyncio = PyImport_ImportModule("asyncio");

	w->task_type = asyncio ? PyObject_GetAttrString(asyncio, "Task") : NULL;
	Py_XDECREF(asyncio);
#if PY_VERSION_HEX >= 0x030C0000
	w->task_kwargs = Py_BuildValue("{s:O,s:O}", "loop", w->loop, "eager_start", Py_True);
#else /* no eager tasks before 3.12: the app's first step runs on the next loop turn */
	w->task_kwargs = Py_BuildValue("{s:O}", "loop", w->loop);
#endif
	return w->task_type && w->task_kwargs ? 0 : -1;
}

/* asyncio.new_event_loop(), installed as this thread's loop. */
static PyObject *new_loop(void)
{
	PyObject *asyncio = PyImport_ImportModule("asyncio"), *loop = NULL, *res = NULL;

	if (asyncio)
		loop = PyObject_CallMethod(asyncio, "new_event_loop", NULL);
	if (loop)
		res = PyObject_CallMethod(asyncio, "set_event_loop", "O", loop);
	if (!res)
		Py_CLEAR(loop);
	Py_XDECREF(res);
	Py_XDECREF(asyncio);
	return loop;
}

static hb_asgi_worker_t *worker_new(const hb_config_t *cfg, hb_hub_t *hub, int slot, PyObject *app)
{
	PyObject *module = hb_module_import(), *tp;
	hb_asgi_worker_t *w;

	if (!module)
		return NULL;
	tp = PyType_FromModuleAndSpec(module, &worker_spec, NULL);
	w = tp ? (hb_asgi_worker_t *)PyType_GenericAlloc((PyTypeObject *)tp, 0) : NULL;
	Py_XDECREF(tp);
	if (!w) {
		Py_DECREF(module);
		return NULL;
	}
	w->module = module;
	w->cfg = cfg;
	w->hub = hub;
	w->slot = slot;
	w->self_pipe = -1;
	w->timeout_s = cfg->timeout_ms > 0 ? (double)cfg->timeout_ms / 1000.0 : 0;
	w->app = Py_NewRef(app);
	w->req_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &req_spec, NULL);
	w->op_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &op_spec, NULL);
	if (!w->req_type || !w->op_type || worker_init_strings(w) < 0 ||
	    worker_init_scope_parts(w) < 0 || !(w->disconnected = disconnected_type(module)) ||
	    !(w->helpers = hb_asgi_helpers_new()) || !(w->loop = new_loop()) || task_parts(w) < 0 ||
	    !(w->wake = PyObject_GetAttrString((PyObject *)w, "_wake"))) {
		Py_DECREF(w);
		return NULL;
	}
	return w;
}

/* Cancels what is left, closes the loop and drops the worker. */
static void worker_close(hb_asgi_worker_t *w)
{
	PyObject *close = w->helpers ? PyDict_GetItemString(w->helpers, "close_loop") : NULL;
	PyObject *res = close && w->loop ? PyObject_CallOneArg(close, w->loop) : NULL;

	if (!res && PyErr_Occurred())
		hb_pyerr_log(HB_LOG_WARNING, "asgi: closing the event loop failed");
	Py_XDECREF(res);
	worker_clear((PyObject *)w); /* breaks the cycle through w->wake */
	Py_DECREF(w);
}

/* helpers' watch_selector (on 1) or unwatch_selector (0) on w's loop, when the hooks watch it. */
static void watch_loop(hb_asgi_worker_t *w, int on)
{
	PyObject *fn, *mark, *res = NULL;

	if (!w->hooks->loop)
		return;
	fn = PyDict_GetItemString(w->helpers, on ? "watch_selector" : "unwatch_selector");
	mark = fn ? PyObject_GetAttrString((PyObject *)w, "_loop_mark") : NULL;
	if (mark)
		res = PyObject_CallFunctionObjArgs(fn, w->loop, mark, NULL);
	if (!res)
		hb_pyerr_log(HB_LOG_WARNING, "asgi: cannot watch the event loop's selector");
	Py_XDECREF(res);
	Py_XDECREF(mark);
	w->hooks->loop(w->hooks->ud, 0);
}

/* Serves until the slot is stopping and every task finished. Returns 0 or -1 (exception). */
static int serve(hb_asgi_worker_t *w)
{
	hb_worker_t *wk = hb_hub_worker(w->hub, w->slot);
	PyObject *res;

	wk->async = 1; /* before accepting: dispatch copies it into each stream */
	res = PyObject_CallMethod(w->loop, "add_reader", "iO", wk->efd, w->wake);
	if (!res) {
		w->hooks->ready(w->hooks->ud, hb_pyerr_format());
		return 0;
	}
	Py_DECREF(res);
	hb_asgi_idle_init(w);
	w->hooks->ready(w->hooks->ud, NULL);
	worker_poke(w);
	watch_loop(w, 1);
	res = PyObject_CallMethod(w->loop, "run_forever", NULL);
	Py_XDECREF(res);
	if (!res)
		hb_pyerr_log(HB_LOG_ERROR, "asgi: the event loop failed");
	watch_loop(w, 0);
	res = PyObject_CallMethod(w->loop, "remove_reader", "i", wk->efd);
	Py_XDECREF(res);
	return res ? 0 : -1;
}

void hb_asgi_run(const hb_config_t *cfg, hb_hub_t *hub, int slot, PyObject *app,
		 const hb_asgi_hooks_t *hooks)
{
	hb_asgi_worker_t *w = worker_new(cfg, hub, slot, app);
	char *err;

	if (!w) {
		hooks->ready(hooks->ud, hb_pyerr_format());
		return;
	}
	w->hooks = hooks;
	err = hb_asgi_lifespan_startup(w);
	if (err) {
		hooks->ready(hooks->ud, err);
		worker_close(w);
		return;
	}
	if (serve(w) < 0)
		hb_pyerr_log(HB_LOG_WARNING, "asgi: cannot remove the eventfd reader");
	hb_asgi_lifespan_shutdown(w);
	worker_close(w);
}
