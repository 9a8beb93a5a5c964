/* pyapi_funcs.c: register_function/unregister_function/call/cast, node/nodes/rpc_call/rpc_cast,
 * and running the jobs other interpreters post here.
 *
 * A call to a function registered in another interpreter is a job (core/funcs.h) carrying the
 * codec-encoded argument tuple; the caller sleeps with its GIL released until the owner ran it
 * or the timeout passed. A call to a function registered in the caller's own interpreter runs
 * at once, but its arguments and result still go through the codec and its exception still
 * becomes RuntimeError, so an app behaves the same whichever worker serves it.
 * Two single-threaded workers calling each other wait for each other: both get TimeoutError.
 * With worker processes (a process bus, core/xbus.h), the bus's shared table says which process
 * owns a name: another process's function is called over the bus (the same job, the same
 * errors); this process's goes through the local registry as before.
 */
#include "python/pyapi_priv.h"
#include "python/pycompat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/pyapi_codec.h"
#include "python/pyerr.h"

/* ---- helpers ---- */

/* Moves an encoded buffer to a malloc'd block the job can own. NULL on ENOMEM. */
static void *take_buffer(hb_cbuf_t *b, size_t *len)
{
	void *p;

	*len = b->len;
	if (b->owned) {
		p = b->data;
		b->data = NULL;
		b->owned = 0;
		b->len = b->cap = 0;
		return p;
	}
	p = malloc(b->len ? b->len : 1);
	if (p)
		memcpy(p, b->data, b->len);
	return p;
}

/* Round-trips o through the codec (what crossing an interpreter would do). New reference. */
static PyObject *through_codec(PyObject *o)
{
	uint8_t stack[512];
	hb_cbuf_t b;
	PyObject *v = NULL;

	hb_cbuf_init(&b, stack, sizeof(stack));
	if (hb_pyapi_encode(o, &b) == 0)
		v = hb_pyapi_decode(b.data, b.len);
	hb_cbuf_free(&b);
	return v;
}

/* Replaces the current exception by RuntimeError("<what> failed:\n<traceback>") whose cause
 * is the original exception. */
static void wrap_exception(const char *what, PyObject *name)
{
	PyObject *exc = PyErr_GetRaisedException(), *wrapped;
	char *tb;

	PyErr_SetRaisedException(Py_XNewRef(exc));
	tb = hb_pyerr_format();
	PyErr_Format(PyExc_RuntimeError, "%s %R failed:\n%s", what, name, tb ? tb : "");
	free(tb);
	wrapped = PyErr_GetRaisedException();
	if (wrapped && exc)
		PyException_SetCause(wrapped, Py_NewRef(exc));
	Py_XDECREF(exc);
	PyErr_SetRaisedException(wrapped);
}

/* Calls fn(*args) as a remote worker would: codec on the way in and out. */
static PyObject *call_local(PyObject *fn, PyObject *args, const char *what, PyObject *name)
{
	PyObject *a = through_codec(args), *r, *out;

	if (!a)
		return NULL;
	r = PyObject_Call(fn, a, NULL);
	Py_DECREF(a);
	if (!r) {
		wrap_exception(what, name);
		return NULL;
	}
	out = through_codec(r);
	Py_DECREF(r);
	if (!out)
		wrap_exception(what, name); /* as the owner's side reports a bad result */
	return out;
}

PyObject *hb_pyapi_import_target(const char *spec)
{
	const char *colon = strchr(spec, ':');
	PyObject *modname, *obj;

	if (!colon || colon == spec || !colon[1]) {
		PyErr_Format(PyExc_ValueError, "expected \"module:function\", got \"%s\"", spec);
		return NULL;
	}
	modname = PyUnicode_FromStringAndSize(spec, colon - spec);
	obj = modname ? PyImport_Import(modname) : NULL;
	Py_XDECREF(modname);
	for (const char *p = colon + 1; obj && *p;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		PyObject *attr = PyUnicode_FromStringAndSize(p, (Py_ssize_t)n);

		Py_SETREF(obj, attr ? PyObject_GetAttr(obj, attr) : NULL);
		Py_XDECREF(attr);
		p += n + (dot ? 1 : 0);
	}
	return obj;
}

/* ---- running jobs (the owner's side) ---- */

/* The callable a job names, or NULL with an exception. */
static PyObject *job_target(hb_pyapi_t *api, hb_job_t *j)
{
	size_t nlen;
	const char *name = hb_funcs_job_name(j, &nlen);
	PyObject *key, *fn;

	if (hb_funcs_job_kind(j) == HB_JOB_RPC || hb_funcs_job_kind(j) == HB_JOB_RPC_CAST)
		return hb_pyapi_import_target(name);
	key = PyUnicode_DecodeUTF8(name, (Py_ssize_t)nlen, "strict");
	fn = key ? PyDict_GetItemWithError(api->functions, key) : NULL;
	if (key && !fn && !PyErr_Occurred())
		PyErr_Format(api->FunctionNotRegistered,
			     "function %R is not registered in this worker any more", key);
	Py_XDECREF(key);
	return Py_XNewRef(fn);
}

/* Runs the job's callable; returns the encoded result in *b, or -1 with an exception. */
static int job_call(hb_pyapi_t *api, hb_job_t *j, hb_cbuf_t *b)
{
	size_t alen;
	const uint8_t *ab = hb_funcs_job_args(j, &alen);
	PyObject *fn = job_target(api, j), *args = NULL, *r = NULL;
	int rc = -1;

	if (fn)
		args = hb_pyapi_decode(ab, alen);
	if (args && !PyTuple_Check(args))
		PyErr_SetString(PyExc_TypeError, "call arguments are not a tuple");
	else if (args)
		r = PyObject_Call(fn, args, NULL);
	if (r)
		rc = hb_pyapi_encode(r, b);
	Py_XDECREF(r);
	Py_XDECREF(args);
	Py_XDECREF(fn);
	return rc;
}

void hb_pyapi_run_job(hb_pyapi_t *api, hb_job_t *j)
{
	uint8_t stack[512];
	hb_cbuf_t b;
	size_t len = 0, nlen;
	void *out;

	if (!hb_funcs_job_start(j)) { /* the caller gave up */
		hb_funcs_job_release(j);
		return;
	}
	hb_cbuf_init(&b, stack, sizeof(stack));
	if (job_call(api, j, &b) == 0 && (out = take_buffer(&b, &len))) {
		hb_funcs_job_finish(j, HB_JOB_OK, out, len);
	} else {
		if (!PyErr_Occurred())
			PyErr_NoMemory();
		if (hb_funcs_job_kind(j) == HB_JOB_CAST ||
		    hb_funcs_job_kind(j) == HB_JOB_RPC_CAST) {
			/* Nobody waits for a cast's or rpc_cast's result: log the error. */
			char what[HB_FUNCS_MAX_NAME + 64];

			snprintf(what, sizeof(what), "%s to '%s' failed:",
				 hb_funcs_job_kind(j) == HB_JOB_RPC_CAST ? "rpc_cast" : "cast",
				 hb_funcs_job_name(j, &nlen));
			hb_pyerr_log(HB_LOG_ERROR, what);
			hb_funcs_job_finish(j, HB_JOB_ERROR, NULL, 0);
		} else {
			char *tb = hb_pyerr_format();

			hb_funcs_job_finish(j, HB_JOB_ERROR, tb, tb ? strlen(tb) : 0);
		}
	}
	hb_cbuf_free(&b);
	hb_funcs_job_release(j);
}

/* ---- registering ---- */

int hb_pyapi_register(hb_pyapi_t *api, PyObject *name, PyObject *fn)
{
	Py_ssize_t n;
	const char *s;
	int rc;

	if (!hb_pyapi_need(api))
		return -1;
	if (!PyUnicode_Check(name)) {
		PyErr_Format(PyExc_TypeError, "function name must be str, not '%.200s'",
			     Py_TYPE(name)->tp_name);
		return -1;
	}
	if (!PyCallable_Check(fn)) {
		PyErr_Format(PyExc_TypeError, "'%.200s' object is not callable",
			     Py_TYPE(fn)->tp_name);
		return -1;
	}
	s = PyUnicode_AsUTF8AndSize(name, &n);
	if (!s || PyDict_SetItem(api->functions, name, fn) < 0)
		return -1;
	rc = hb_funcs_register(api->sh->funcs, s, (size_t)n, api->inbox);
	if (rc == 0 && api->sh->bus && (rc = hb_xbus_register(api->sh->bus, s, (size_t)n)) < 0)
		hb_funcs_unregister(api->sh->funcs, s, (size_t)n);
	if (rc == -ENOSPC) {
		PyDict_DelItem(api->functions, name);
		PyErr_Format(PyExc_RuntimeError,
			     "cannot register %R: the process bus holds %u names at most", name,
			     HB_XBUS_DEFAULT_NAMES);
		return -1;
	}
	if (rc < 0) {
		PyDict_DelItem(api->functions, name);
		if (rc == -EINVAL)
			PyErr_Format(PyExc_ValueError, "function names are 1 to %u bytes",
				     HB_FUNCS_MAX_NAME);
		else
			PyErr_NoMemory();
		return -1;
	}
	return 0;
}

static PyObject *register_function(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError, "register_function() takes 2 arguments (%zd given)",
			     nargs);
		return NULL;
	}
	if (hb_pyapi_register((hb_pyapi_t *)self, args[0], args[1]) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *unregister_function(PyObject *self, PyObject *name)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	Py_ssize_t n;
	const char *s;
	int rc;

	if (!hb_pyapi_need(api))
		return NULL;
	if (!PyUnicode_Check(name)) {
		PyErr_SetString(PyExc_TypeError, "function name must be str");
		return NULL;
	}
	s = PyUnicode_AsUTF8AndSize(name, &n);
	if (!s)
		return NULL;
	rc = hb_funcs_unregister(api->sh->funcs, s, (size_t)n);
	if (api->sh->bus && hb_xbus_unregister(api->sh->bus, s, (size_t)n) == 0)
		rc = 0;
	if (PyDict_DelItem(api->functions, name) < 0) {
		if (!PyErr_ExceptionMatches(PyExc_KeyError))
			return NULL;
		PyErr_Clear();
	}
	return PyBool_FromLong(rc == 0);
}

static int add_name(const char *name, size_t len, void *ud)
{
	PyObject *s = PyUnicode_DecodeUTF8(name, (Py_ssize_t)len, "replace");
	int rc = s ? PyList_Append(ud, s) : -1;

	Py_XDECREF(s);
	return rc;
}

static PyObject *registered_functions(PyObject *self, PyObject *unused)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	PyObject *out;

	if (!hb_pyapi_need(api) || !(out = PyList_New(0)))
		return NULL;
	if ((api->sh->bus ? hb_xbus_names(api->sh->bus, add_name, out)
			  : hb_funcs_names(api->sh->funcs, add_name, out)) != 0)
		Py_CLEAR(out);
	return out;
}

/* ---- calling ---- */

/* A job of kind for name with args encoded (the job holds its own copy); NULL with an exception
 * set. Every call path (another interpreter, another process, another node) starts here. */
static hb_job_t *job_new(hb_job_kind_t kind, PyObject *name, PyObject *args)
{
	uint8_t stack[512];
	hb_cbuf_t b;
	Py_ssize_t nlen;
	const char *n = PyUnicode_AsUTF8AndSize(name, &nlen);
	hb_job_t *j = NULL;

	hb_cbuf_init(&b, stack, sizeof(stack));
	if (n && hb_pyapi_encode(args, &b) == 0) {
		j = hb_funcs_job_new(kind, n, (size_t)nlen, b.data, b.len);
		if (!j)
			PyErr_NoMemory();
	}
	hb_cbuf_free(&b);
	return j;
}

/* Posts a job to another interpreter; for a call, waits and returns the decoded result. */
static PyObject *remote(hb_pyapi_t *api, hb_inbox_t *in, const hb_xbus_peer_t *peer,
			hb_job_kind_t kind, PyObject *name, PyObject *args, int timeout_ms,
			int wait)
{
	hb_job_t *j = job_new(kind, name, args);
	PyObject *out = NULL;
	size_t rlen;
	const uint8_t *res;
	int rc;

	if (!j)
		return NULL;
	if (peer) {
		Py_BEGIN_ALLOW_THREADS rc = hb_xbus_post(api->sh->bus, peer, j);
		Py_END_ALLOW_THREADS
	} else {
		rc = hb_funcs_post(in, j);
	}
	if (rc == -ETIMEDOUT) {
		PyErr_Format(PyExc_TimeoutError,
			     "%s to %R timed out: the worker process that registered it does not "
			     "take messages",
			     wait ? "call" : "cast", name);
		goto out;
	}
	if (rc < 0) {
		PyErr_Format(PyExc_RuntimeError, "function %R is gone: its worker %s", name,
			     peer ? "process exited" : "is exiting");
		goto out;
	}
	if (!wait) {
		out = Py_NewRef(Py_None);
		goto out;
	}
	Py_BEGIN_ALLOW_THREADS rc = peer ? hb_xbus_wait(api->sh->bus, peer, j, timeout_ms)
					 : hb_funcs_job_wait(j, timeout_ms);
	Py_END_ALLOW_THREADS if (rc == -ETIMEDOUT)
	{
		hb_funcs_job_cancel(j);
		PyErr_Format(PyExc_TimeoutError, "call to %R timed out after %d ms", name,
			     timeout_ms);
		goto out;
	}
	res = hb_funcs_job_result(j, &rlen);
	switch (hb_funcs_job_status(j)) {
	case HB_JOB_OK:
		out = hb_pyapi_decode(res, rlen);
		break;
	case HB_JOB_ERROR:
		PyErr_Format(PyExc_RuntimeError,
			     "call %R failed in the worker that registered it:\n%.*s", name,
			     (int)rlen, res ? (const char *)res : "");
		break;
	case HB_JOB_LOST:
	case HB_JOB_PENDING:
		PyErr_Format(PyExc_RuntimeError,
			     "call %R was lost: the worker that registered it "
			     "exited",
			     name);
		break;
	}
out:
	hb_funcs_job_release(j);
	return out;
}

/* call()/cast() of a function another worker process registered. */
static PyObject *call_peer(hb_pyapi_t *api, const hb_xbus_peer_t *peer, hb_job_kind_t kind,
			   PyObject *name, PyObject *const *args, Py_ssize_t nargs, int timeout_ms)
{
	PyObject *tuple = PyTuple_New(nargs - 1), *out;

	for (Py_ssize_t i = 1; tuple && i < nargs; i++)
		PyTuple_SET_ITEM(tuple, i - 1, Py_NewRef(args[i]));
	if (!tuple)
		return NULL;
	out = remote(api, NULL, peer, kind, name, tuple, timeout_ms, kind == HB_JOB_CALL);
	Py_DECREF(tuple);
	return out;
}

/* A job to another node through the cluster (core/remote.h): sends it and, for a call, waits
 * (GIL released) and maps the outcome: the result, RemoteError (the remote traceback), NodeDown
 * (the node went away or could not be reached), TimeoutError. */
static PyObject *node_call(hb_pyapi_t *api, const char *node, hb_job_kind_t kind, PyObject *name,
			   PyObject *args, int timeout_ms, int wait)
{
	const char *what = kind == HB_JOB_RPC	     ? "rpc_call"
			   : kind == HB_JOB_RPC_CAST ? "rpc_cast"
			   : wait		     ? "call"
						     : "cast";
	const hb_remote_t *r = NULL;
	hb_job_t *j = job_new(kind, name, args);
	PyObject *out = NULL;
	size_t rlen;
	const uint8_t *res;
	int rc;

	if (!j)
		return NULL;
	r = hb_pyapi_remote_get(api->sh);
	if (!r || !r->connected(r->ctx, node)) {
		PyErr_Format(api->NodeNotConnected,
			     "node '%s' is not connected (nodes() lists "
			     "the connected ones)",
			     node);
		goto out;
	}
	Py_BEGIN_ALLOW_THREADS rc = r->send(r->ctx, node, j, wait, timeout_ms);
	Py_END_ALLOW_THREADS if (rc < 0)
	{
		PyErr_Format(api->NodeDown, "%s %R to node '%s': this node's cluster is stopping",
			     what, name, node);
		goto out;
	}
	hb_pyapi_remote_put(api->sh);
	r = NULL;
	if (!wait) {
		out = Py_NewRef(Py_None);
		goto out;
	}
	Py_BEGIN_ALLOW_THREADS rc = hb_funcs_job_wait(j, timeout_ms);
	Py_END_ALLOW_THREADS if (rc == -ETIMEDOUT)
	{
		hb_funcs_job_cancel(j);
		PyErr_Format(PyExc_TimeoutError, "%s %R on node '%s' timed out after %d ms", what,
			     name, node, timeout_ms);
		goto out;
	}
	res = hb_funcs_job_result(j, &rlen);
	switch (hb_funcs_job_status(j)) {
	case HB_JOB_OK:
		out = hb_pyapi_decode(res, rlen);
		break;
	case HB_JOB_ERROR:
		PyErr_Format(api->RemoteError, "%s %R failed on node '%s':\n%.*s", what, name, node,
			     (int)rlen, res ? (const char *)res : "");
		break;
	case HB_JOB_LOST:
	case HB_JOB_PENDING:
		PyErr_Format(api->NodeDown, "%s %R: %.*s", what, name, (int)rlen,
			     res ? (const char *)res : "the node did not answer");
		break;
	}
out:
	if (r)
		hb_pyapi_remote_put(api->sh);
	hb_funcs_job_release(j);
	return out;
}

/* call() and cast(): name, then the function's positional arguments. */
static PyObject *call_or_cast(hb_pyapi_t *api, hb_job_kind_t kind, PyObject *const *args,
			      Py_ssize_t nargs, PyObject *kwnames)
{
	const char *fname = kind == HB_JOB_CAST ? "cast" : "call";
	int timeout_ms = HB_PYAPI_CALL_TIMEOUT_MS;
	PyObject *name, *tuple, *out = NULL;
	hb_inbox_t *in;
	Py_ssize_t n;
	const char *s;

	if (!hb_pyapi_need(api))
		return NULL;
	for (Py_ssize_t k = 0; kwnames && k < PyTuple_GET_SIZE(kwnames); k++) {
		long ms;

		if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), "timeout_ms")) {
			PyErr_Format(PyExc_TypeError,
				     "%s() takes only timeout_ms as a keyword "
				     "(the function gets positional arguments)",
				     fname);
			return NULL;
		}
		ms = PyLong_AsLong(args[nargs + k]);
		if (ms == -1 && PyErr_Occurred())
			return NULL;
		timeout_ms = ms < 0 ? -1 : ms > INT32_MAX ? INT32_MAX : (int)ms;
	}
	if (nargs < 1 || !PyUnicode_Check(args[0])) {
		PyErr_Format(PyExc_TypeError, "%s() needs a function name (str)", fname);
		return NULL;
	}
	name = args[0];
	s = PyUnicode_AsUTF8AndSize(name, &n);
	if (!s)
		return NULL;
	if (api->sh->bus) {
		hb_xbus_peer_t peer;
		int owner = hb_xbus_owner(api->sh->bus, s, (size_t)n, &peer);

		if (owner == 0)
			return call_peer(api, &peer, kind, name, args, nargs, timeout_ms);
		/* owner < 0: no process of this node has it; another node may (below) */
	}
	in = hb_funcs_lookup(api->sh->funcs, s, (size_t)n);
	tuple = PyTuple_New(nargs - 1);
	for (Py_ssize_t i = 1; tuple && i < nargs; i++)
		PyTuple_SET_ITEM(tuple, i - 1, Py_NewRef(args[i]));
	if (!tuple) {
		hb_funcs_inbox_release(in);
		return NULL;
	}
	if (!in) { /* not on this node: the node that registered it, as its tables say */
		const hb_remote_t *r = hb_pyapi_remote_get(api->sh);
		char owner[256];
		int found = 0;

		/* (another process's cluster answers over the bus: no GIL meanwhile) */
		Py_BEGIN_ALLOW_THREADS found =
			r && r->owner(r->ctx, s, (size_t)n, owner, sizeof(owner)) == 0;
		Py_END_ALLOW_THREADS

			if (r) hb_pyapi_remote_put(api->sh);
		if (found)
			out = node_call(api, owner, kind, name, tuple, timeout_ms,
					kind == HB_JOB_CALL);
		else
			PyErr_Format(api->FunctionNotRegistered, "no function registered as %R",
				     name);
		Py_DECREF(tuple);
		return out;
	}
	if (in == api->inbox && kind == HB_JOB_CALL) {
		PyObject *fn = PyDict_GetItemWithError(api->functions, name);

		if (fn)
			out = call_local(fn, tuple, "call", name);
		else if (!PyErr_Occurred())
			PyErr_Format(api->FunctionNotRegistered, "no function registered as %R",
				     name);
	} else {
		/* A cast to ourselves is queued too: it runs after the current request. */
		out = remote(api, in, NULL, kind, name, tuple, timeout_ms, kind == HB_JOB_CALL);
	}
	Py_DECREF(tuple);
	hb_funcs_inbox_release(in);
	return out;
}

static PyObject *call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)
{
	return call_or_cast((hb_pyapi_t *)self, HB_JOB_CALL, args, nargs, kw);
}

static PyObject *cast(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw)
{
	return call_or_cast((hb_pyapi_t *)self, HB_JOB_CAST, args, nargs, kw);
}

/* ---- nodes and rpc ---- */

static PyObject *node(PyObject *self, PyObject *unused)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;

	if (!hb_pyapi_need(api))
		return NULL;
	return PyUnicode_FromString(api->sh->node);
}

static int add_node(const char *name, size_t len, void *ud)
{
	PyObject *s = PyUnicode_DecodeUTF8(name, (Py_ssize_t)len, "replace");
	int rc = s ? PyList_Append(ud, s) : -1;

	Py_XDECREF(s);
	return rc < 0;
}

/* The members the process running the cluster wrote into the bus (core/xbus.h). */
static PyObject *bus_nodes(hb_xbus_t *bus)
{
	PyObject *l = PyList_New(0);

	if (l && hb_xbus_members(bus, add_node, l) > 0)
		Py_CLEAR(l);
	if (l && PyList_Sort(l) < 0)
		Py_CLEAR(l);
	return l;
}

/* The cluster's live members (join, not yet dead or left); [] without a cluster. */
static PyObject *nodes(PyObject *self, PyObject *unused)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	hb_pyapi_shared_t *sh = (hb_pyapi_shared_t *)api->sh;

	if (!sh)
		return PyList_New(0);
	if (sh->bus && hb_xbus_remote(sh->bus)) /* another worker process runs the cluster */
		return bus_nodes(sh->bus);
	pthread_mutex_lock(&sh->nodes_mu);
	PyObject *l = PyList_New((Py_ssize_t)sh->nnodes);
	for (size_t i = 0; l && i < sh->nnodes; i++) {
		PyObject *s = PyUnicode_DecodeUTF8(sh->nodes[i], (Py_ssize_t)strlen(sh->nodes[i]),
						   "replace");
		if (!s) {
			Py_CLEAR(l);
			break;
		}
		PyList_SET_ITEM(l, (Py_ssize_t)i, s);
	}
	pthread_mutex_unlock(&sh->nodes_mu);
	if (l && PyList_Sort(l) < 0)
		Py_CLEAR(l);
	return l;
}

/* Checks the arguments and builds "module:function"; *local is 1 for this node. Returns a new
 * str or NULL. */
static PyObject *rpc_target(hb_pyapi_t *api, PyObject *node_name, PyObject *mod, PyObject *fn,
			    int *local)
{
	if (!hb_pyapi_need(api))
		return NULL;
	if (!PyUnicode_Check(node_name) || !PyUnicode_Check(mod) || !PyUnicode_Check(fn)) {
		PyErr_SetString(PyExc_TypeError, "node, module and function must be str");
		return NULL;
	}
	*local = PyUnicode_CompareWithASCIIString(node_name, api->sh->node) == 0;
	if (!*local && !PyUnicode_AsUTF8(node_name))
		return NULL;
	return PyUnicode_FromFormat("%U:%U", mod, fn);
}

static PyObject *args_tuple(PyObject *a)
{
	return a && a != Py_None ? PySequence_Tuple(a) : PyTuple_New(0);
}

static PyObject *rpc_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			  PyObject *kwnames)
{
	static const char *const names[] = {"node", "module", "function", "args", "timeout_ms"};
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	PyObject *a[5], *spec, *fn, *tuple, *out = NULL;

	int local, timeout_ms = 5000;

	if (hb_pyapi_args("rpc_call", args, nargs, kwnames, names, 3, 5, a) < 0)
		return NULL;
	if (a[4] && a[4] != Py_None) {
		long ms = PyLong_AsLong(a[4]);

		if (ms == -1 && PyErr_Occurred())
			return NULL;
		timeout_ms = ms < 0 ? -1 : ms > INT32_MAX ? INT32_MAX : (int)ms;
	}
	spec = rpc_target(api, a[0], a[1], a[2], &local);
	if (!spec)
		return NULL;
	tuple = args_tuple(a[3]);
	if (!local) {
		out = tuple ? node_call(api, PyUnicode_AsUTF8(a[0]), HB_JOB_RPC, spec, tuple,
					timeout_ms, 1)
			    : NULL;
		Py_XDECREF(tuple);
		Py_DECREF(spec);
		return out;
	}
	fn = tuple ? hb_pyapi_import_target(PyUnicode_AsUTF8(spec)) : NULL;
	/* This node is the caller's own: the current worker runs it (timeout_ms cannot fire). */
	if (fn)
		out = call_local(fn, tuple, "rpc_call", spec);
	Py_XDECREF(fn);
	Py_XDECREF(tuple);
	Py_DECREF(spec);
	return out;
}

static PyObject *rpc_cast(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			  PyObject *kwnames)
{
	static const char *const names[] = {"node", "module", "function", "args"};
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	PyObject *a[4], *spec, *tuple, *out = NULL;

	int local;

	if (hb_pyapi_args("rpc_cast", args, nargs, kwnames, names, 3, 4, a) < 0)
		return NULL;
	spec = rpc_target(api, a[0], a[1], a[2], &local);
	if (!spec)
		return NULL;
	tuple = args_tuple(a[3]);
	if (tuple && !local) {
		out = node_call(api, PyUnicode_AsUTF8(a[0]), HB_JOB_RPC_CAST, spec, tuple, 0, 0);
	} else if (tuple) { /* Queued on this worker: it runs after the current request. */
		hb_funcs_inbox_ref(api->inbox);
		out = remote(api, api->inbox, NULL, HB_JOB_RPC_CAST, spec, tuple, 0, 0);
		hb_funcs_inbox_release(api->inbox);
	}
	Py_XDECREF(tuple);
	Py_DECREF(spec);
	if (out)
		Py_SETREF(out, Py_NewRef(Py_None));
	return out;
}

/* Counters of the cluster's data plane; {} without a cluster. */
static PyObject *cluster_stats(PyObject *self, PyObject *unused)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	const hb_remote_t *r;
	hb_remote_stats_t st;

	if (!hb_pyapi_need(api))
		return NULL;
	r = hb_pyapi_remote_get(api->sh);
	if (!r)
		return PyDict_New();
	Py_BEGIN_ALLOW_THREADS r->stats(r->ctx, &st);
	Py_END_ALLOW_THREADS hb_pyapi_remote_put(api->sh);
	return Py_BuildValue("{sKsKsKsKsKsK}", "calls_sent", (unsigned long long)st.calls_sent,
			     "calls_served", (unsigned long long)st.calls_served, "calls_refused",
			     (unsigned long long)st.calls_refused, "publish_sent",
			     (unsigned long long)st.publish_sent, "publish_received",
			     (unsigned long long)st.publish_received, "publish_dropped",
			     (unsigned long long)st.publish_dropped);
}

static PyObject *interpreter_id(PyObject *self, PyObject *unused)
{
	return PyLong_FromLongLong(PyInterpreterState_GetID(PyInterpreterState_Get()));
}

PyMethodDef hb_pyapi_funcs_methods[] = {
	{"register_function", (PyCFunction)(void (*)(void))register_function, METH_FASTCALL,
	 "register_function(name, fn): call(name, ...) from any worker runs fn here."},
	{"unregister_function", unregister_function, METH_O,
	 "unregister_function(name) -> bool: removes the name (wherever it was registered)."},
	{"registered_functions", registered_functions, METH_NOARGS,
	 "registered_functions() -> list of registered names."},
	{"call", (PyCFunction)(void (*)(void))call, METH_FASTCALL | METH_KEYWORDS,
	 "call(name, *args, timeout_ms=30000): runs the function in the worker that registered "
	 "it and returns its result."},
	{"cast", (PyCFunction)(void (*)(void))cast, METH_FASTCALL | METH_KEYWORDS,
	 "cast(name, *args): like call, without waiting (errors go to the error log)."},
	{"node", node, METH_NOARGS, "node() -> this node's name (config node_name)."},
	{"nodes", nodes, METH_NOARGS, "nodes() -> the cluster's live nodes, this one excluded."},
	{"rpc_call", (PyCFunction)(void (*)(void))rpc_call, METH_FASTCALL | METH_KEYWORDS,
	 "rpc_call(node, module, function, args, timeout_ms=5000): module.function(*args) on "
	 "node (this one or another node of the cluster)."},
	{"rpc_cast", (PyCFunction)(void (*)(void))rpc_cast, METH_FASTCALL | METH_KEYWORDS,
	 "rpc_cast(node, module, function, args): rpc_call without waiting."},
	{"cluster_stats", cluster_stats, METH_NOARGS,
	 "cluster_stats() -> dict of the cluster data plane's counters ({} without a cluster)."},
	{"interpreter_id", interpreter_id, METH_NOARGS,
	 "interpreter_id() -> the id of the calling interpreter (one per worker)."},
	{NULL, NULL, 0, NULL},
};
