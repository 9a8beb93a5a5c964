/* pyapi_pubsub.c: publish(), subscribe() and the _hornbeam.Subscription type.
 *
 * A Subscription owns one core subscriber (core/pubsub.h). Messages are codec bytes, decoded
 * in the subscriber's interpreter when taken. get() sleeps with the GIL released on the
 * subscriber's futex; fileno() is the level-triggered eventfd an event loop watches
 * (hornbeam_erlang.Subscription.__anext__ uses loop.add_reader on it). close() only closes;
 * the subscriber is freed when the object is, so a get() blocked in another thread of the
 * same interpreter wakes up (SubscriptionClosed) instead of touching freed memory.
 */
#include "python/pyapi_priv.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "python/pyapi_codec.h"

typedef struct {
	PyObject_HEAD hb_ps_sub_t *sub;
	hb_pyapi_t *api;
	PyObject *topic;
} sub_t;

/* ---- taking messages ---- */

/* Pops one message: 1 with *out set, 0 when empty, -1 with an exception (closed, decode). */
static int take(sub_t *s, PyObject **out)
{
	hb_ps_msg_t *m;
	int rc = hb_pubsub_pop(s->sub, &m);

	if (rc == -EAGAIN)
		return 0;
	if (rc == -EPIPE) {
		PyErr_Format(s->api->SubscriptionClosed, "subscription to %R is closed", s->topic);
		return -1;
	}
	*out = hb_pyapi_decode(m->data, m->len);
	hb_ps_msg_release(m);
	return *out ? 1 : -1;
}

/* Waits up to ms (-1: forever) with the GIL released. Returns 0 (ready) or -ETIMEDOUT. */
static int wait_ready(sub_t *s, int ms)
{
	int rc;

	Py_BEGIN_ALLOW_THREADS rc = hb_pubsub_wait(s->sub, ms);
	Py_END_ALLOW_THREADS return rc;
}

static PyObject *get_timeout(sub_t *s, int ms)
{
	PyObject *v = NULL;
	int rc;

	while ((rc = take(s, &v)) == 0) {
		if (ms == 0 || wait_ready(s, ms) == -ETIMEDOUT) {
			PyErr_Format(PyExc_TimeoutError, "no message on %R", s->topic);
			return NULL;
		}
		/* Ready: a message (or the close) is there; ms stays as asked for the rare
		 * case where another thread of this interpreter took it first. */
	}
	return rc < 0 ? NULL : v;
}

static PyObject *sub_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = {"timeout"};
	PyObject *a[1];
	int ms;

	if (hb_pyapi_args("get", args, nargs, kwnames, names, 0, 1, a) < 0 ||
	    hb_pyapi_timeout_ms(a[0], &ms) < 0)
		return NULL;
	return get_timeout((sub_t *)self, ms);
}

static PyObject *sub_get_nowait(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	sub_t *s = (sub_t *)self;
	PyObject *v = NULL;
	int rc;

	if (nargs > 1) {
		PyErr_SetString(PyExc_TypeError, "get_nowait() takes at most 1 argument");
		return NULL;
	}
	rc = take(s, &v);
	if (rc != 0)
		return rc < 0 ? NULL : v;
	if (nargs == 1)
		return Py_NewRef(args[0]);
	PyErr_Format(PyExc_TimeoutError, "no message on %R", s->topic);
	return NULL;
}

static PyObject *sub_wait(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			  PyObject *kwnames)
{
	static const char *const names[] = {"timeout"};
	PyObject *a[1];
	int ms;

	if (hb_pyapi_args("wait", args, nargs, kwnames, names, 0, 1, a) < 0 ||
	    hb_pyapi_timeout_ms(a[0], &ms) < 0)
		return NULL;
	return PyBool_FromLong(wait_ready((sub_t *)self, ms) == 0);
}

static PyObject *sub_fileno(PyObject *self, PyObject *unused)
{
	int fd = hb_pubsub_fd(((sub_t *)self)->sub);

	if (fd < 0) {
		errno = -fd;
		return PyErr_SetFromErrno(PyExc_OSError);
	}
	return PyLong_FromLong(fd);
}

static PyObject *sub_close(PyObject *self, PyObject *unused)
{
	hb_pubsub_close(((sub_t *)self)->sub);
	Py_RETURN_NONE;
}

static PyObject *sub_enter(PyObject *self, PyObject *unused)
{
	return Py_NewRef(self);
}

static PyObject *sub_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	hb_pubsub_close(((sub_t *)self)->sub);
	Py_RETURN_FALSE;
}

static PyObject *sub_next(PyObject *self)
{
	sub_t *s = (sub_t *)self;
	PyObject *v = get_timeout(s, -1);

	if (!v && PyErr_ExceptionMatches(s->api->SubscriptionClosed))
		PyErr_Clear(); /* StopIteration */
	return v;
}

/* ---- attributes ---- */

static PyObject *sub_topic(PyObject *self, void *c)
{
	return Py_NewRef(((sub_t *)self)->topic);
}

static PyObject *sub_dropped(PyObject *self, void *c)
{
	return PyLong_FromUnsignedLongLong(hb_pubsub_dropped(((sub_t *)self)->sub));
}

static PyObject *sub_pending(PyObject *self, void *c)
{
	return PyLong_FromUnsignedLong(hb_pubsub_pending(((sub_t *)self)->sub));
}

static PyObject *sub_queue_size(PyObject *self, void *c)
{
	return PyLong_FromUnsignedLong(hb_pubsub_cap(((sub_t *)self)->sub));
}

static PyObject *sub_closed(PyObject *self, void *c)
{
	return PyBool_FromLong(hb_pubsub_closed(((sub_t *)self)->sub));
}

static PyObject *sub_repr(PyObject *self)
{
	sub_t *s = (sub_t *)self;

	return PyUnicode_FromFormat("<Subscription %R pending=%u dropped=%llu%s>", s->topic,
				    hb_pubsub_pending(s->sub),
				    (unsigned long long)hb_pubsub_dropped(s->sub),
				    hb_pubsub_closed(s->sub) ? " closed" : "");
}

/* ---- life cycle ---- */

static int sub_traverse(PyObject *self, visitproc visit, void *arg)
{
	Py_VISIT(((sub_t *)self)->api);
	Py_VISIT(((sub_t *)self)->topic);
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static int sub_clear(PyObject *self)
{
	Py_CLEAR(((sub_t *)self)->topic);
	return 0;
}

static void sub_dealloc(PyObject *self)
{
	sub_t *s = (sub_t *)self;
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	hb_pubsub_sub_free(s->sub);
	s->sub = NULL;
	sub_clear(self);
	Py_CLEAR(s->api);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyMethodDef sub_methods[] = {
	{"get", (PyCFunction)(void (*)(void))sub_get, METH_FASTCALL | METH_KEYWORDS,
	 "get(timeout=None): the next message; waits (GIL released) up to timeout seconds. "
	 "TimeoutError when none came, SubscriptionClosed when closed and drained."},
	{"get_nowait", (PyCFunction)(void (*)(void))sub_get_nowait, METH_FASTCALL,
	 "get_nowait([default]): the next message, or default (TimeoutError without one)."},
	{"wait", (PyCFunction)(void (*)(void))sub_wait, METH_FASTCALL | METH_KEYWORDS,
	 "wait(timeout=None) -> bool: whether a message (or the close) is there."},
	{"fileno", sub_fileno, METH_NOARGS,
	 "An eventfd readable while messages are queued or the subscription is closed."},
	{"close", sub_close, METH_NOARGS, "Unsubscribe (queued messages can still be read)."},
	{"__enter__", sub_enter, METH_NOARGS, NULL},
	{"__exit__", (PyCFunction)(void (*)(void))sub_exit, METH_FASTCALL, NULL},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef sub_getset[] = {
	{"topic", sub_topic, NULL, "The topic (or pattern) subscribed to.", NULL},
	{"dropped", sub_dropped, NULL, "Oldest messages dropped because the queue was full.", NULL},
	{"pending", sub_pending, NULL, "Messages queued now.", NULL},
	{"queue_size", sub_queue_size, NULL, "The most messages kept queued.", NULL},
	{"closed", sub_closed, NULL, "Whether close() was called (or the server stops).", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot sub_slots[] = {
	{Py_tp_methods, sub_methods}, {Py_tp_getset, sub_getset},   {Py_tp_iter, PyObject_SelfIter},
	{Py_tp_iternext, sub_next},   {Py_tp_repr, sub_repr},	    {Py_tp_traverse, sub_traverse},
	{Py_tp_clear, sub_clear},     {Py_tp_dealloc, sub_dealloc}, {0, NULL},
};

static PyType_Spec sub_spec = {
	.name = "_hornbeam.Subscription",
	.basicsize = sizeof(sub_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = sub_slots,
};

PyTypeObject *hb_pyapi_sub_type_new(PyObject *module)
{
	return (PyTypeObject *)PyType_FromModuleAndSpec(module, &sub_spec, NULL);
}

/* ---- publish / subscribe ---- */

/* The UTF-8 bytes of a str topic (bytes are taken as they are). */
static const char *topic_bytes(PyObject *topic, Py_ssize_t *len)
{
	if (PyUnicode_Check(topic))
		return PyUnicode_AsUTF8AndSize(topic, len);
	if (PyBytes_Check(topic)) {
		*len = PyBytes_GET_SIZE(topic);
		return PyBytes_AS_STRING(topic);
	}
	PyErr_Format(PyExc_TypeError, "topic must be str, not '%.200s'", Py_TYPE(topic)->tp_name);
	return NULL;
}

static PyObject *bad_topic(PyObject *topic)
{
	PyErr_Format(PyExc_ValueError,
		     "invalid topic %R: 1 to %u bytes of UTF-8 without NUL characters", topic,
		     HB_PUBSUB_MAX_TOPIC);
	return NULL;
}

static PyObject *publish(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	uint8_t stack[512];
	const char *t;
	Py_ssize_t tlen;
	hb_cbuf_t b;
	int n;

	if (!hb_pyapi_need(api))
		return NULL;
	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError, "publish() takes 2 arguments (%zd given)", nargs);
		return NULL;
	}
	t = topic_bytes(args[0], &tlen);
	if (!t)
		return NULL;
	hb_cbuf_init(&b, stack, sizeof(stack));
	if (hb_pyapi_encode(args[1], &b) < 0) {
		hb_cbuf_free(&b);
		return NULL;
	}
	/* Queues are bounded in messages: bound the messages too. */
	if (b.len > api->sh->max_value) {
		PyErr_Format(api->StateLimitError,
			     "message of %zu bytes (encoded) is over state_max_value_size = %zu",
			     b.len, api->sh->max_value);
		hb_cbuf_free(&b);
		return NULL;
	}
	const hb_remote_t *r = hb_pyapi_remote_get(api->sh);
	int rn = 0;

	/* r is the bus's proxy when another worker process runs the cluster: its publish reaches
	 * the other processes and, through that one, the other nodes */
	int proxy = r && api->sh->bus && r == hb_xbus_remote(api->sh->bus);

	Py_BEGIN_ALLOW_THREADS n = hb_pubsub_publish(api->sh->ps, t, (size_t)tlen, b.data, b.len);
	/* Then the other worker processes (none without a process bus): their counts add up. */
	if (n >= 0 && api->sh->bus && !proxy) {
		int k = hb_xbus_publish(api->sh->bus, t, (size_t)tlen, b.data, b.len);

		n += k > 0 && k <= INT_MAX - n ? k : 0;
	}
	/* other nodes' subscribers, as their last announced tables count them */
	if (r && n >= 0)
		rn = r->publish(r->ctx, t, (size_t)tlen, b.data, b.len);
	Py_END_ALLOW_THREADS hb_cbuf_free(&b);
	if (r)
		hb_pyapi_remote_put(api->sh);
	if (n == -EINVAL)
		return bad_topic(args[0]);
	if (n < 0 || rn < 0)
		return PyErr_NoMemory();
	return PyLong_FromLong((long)n + rn);
}

static PyObject *subscribe(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			   PyObject *kwnames)
{
	static const char *const names[] = {"topic", "queue_size"};
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	PyObject *a[2];
	long cap = 0;
	const char *t;
	Py_ssize_t tlen;
	sub_t *s;
	int rc;

	if (!hb_pyapi_need(api) ||
	    hb_pyapi_args("subscribe", args, nargs, kwnames, names, 1, 2, a) < 0)
		return NULL;
	if (a[1] && a[1] != Py_None) {
		cap = PyLong_AsLong(a[1]);
		if (cap == -1 && PyErr_Occurred())
			return NULL;
		if (cap < 1 || cap > (long)UINT32_MAX) {
			PyErr_SetString(PyExc_ValueError, "queue_size must be at least 1");
			return NULL;
		}
	}
	t = topic_bytes(a[0], &tlen);
	if (!t)
		return NULL;
	s = PyObject_GC_New(sub_t, api->sub_type);
	if (!s)
		return NULL;
	s->sub = NULL;
	s->api = (hb_pyapi_t *)Py_NewRef(self);
	s->topic = Py_NewRef(a[0]);
	PyObject_GC_Track(s);
	rc = hb_pubsub_subscribe(api->sh->ps, t, (size_t)tlen, (uint32_t)cap, &s->sub);
	if (rc < 0) {
		Py_DECREF(s);
		if (rc == -EINVAL)
			return bad_topic(a[0]);
		if (rc == -ESHUTDOWN) {
			PyErr_SetString(api->SubscriptionClosed, "the server is shutting down");
			return NULL;
		}
		return PyErr_NoMemory();
	}
	return (PyObject *)s;
}

PyMethodDef hb_pyapi_pubsub_methods[] = {
	{"publish", (PyCFunction)(void (*)(void))publish, METH_FASTCALL,
	 "publish(topic, message) -> int: queues message for every subscriber of topic in every "
	 "worker; returns how many it reached."},
	{"subscribe", (PyCFunction)(void (*)(void))subscribe, METH_FASTCALL | METH_KEYWORDS,
	 "subscribe(topic, queue_size=None) -> Subscription. A topic with '*' is an fnmatch "
	 "pattern. The queue keeps the newest queue_size messages (config pubsub_queue_size)."},
	{NULL, NULL, 0, NULL},
};
