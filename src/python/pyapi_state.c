/* pyapi_state.c: state_get/set/delete/incr/decr/get_multi/keys/stats over the shared map.
 *
 * Values are codec bytes (pyapi_codec.h); keys are tagged str/bytes. A read copies the value
 * out of the map into a stack buffer (or a heap one sized from -ENOBUFS) and decodes it there,
 * so no Python object ever points into the map.
 */
#include "python/pyapi_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "python/pyapi_codec.h"

#define GET_STACK 4096

/* ---- errors ---- */

/* Raises the exception for a failed map operation on key k. Returns NULL. */
static PyObject *map_error(hb_pyapi_t *api, int rc, PyObject *key, size_t vlen)
{
	const hb_pyapi_shared_t *sh = api->sh;

	switch (rc) {
	case -E2BIG:
		PyErr_Format(api->StateLimitError,
			     "value of %zu bytes (encoded) is over state_max_value_size = %zu",
			     vlen, sh->max_value);
		break;
	case -ENOSPC:
		PyErr_Format(api->StateFullError,
			     "the shared state is full (state_max_bytes): cannot store %R", key);
		break;
	case -EOVERFLOW:
		PyErr_Format(PyExc_OverflowError, "counter %R would overflow a signed 64-bit int",
			     key);
		break;
	case -EINVAL:
		PyErr_Format(PyExc_TypeError, "the value of %R is not an int counter (64-bit)",
			     key);
		break;
	case -ENOMEM:
		PyErr_NoMemory();
		break;
	default:
		PyErr_Format(PyExc_RuntimeError, "shared state error %d on %R", -rc, key);
		break;
	}
	return NULL;
}

/* Builds the tagged key and checks its size. Returns 0 or -1. */
static int make_key(hb_pyapi_t *api, PyObject *key, hb_pykey_t *k)
{
	if (hb_pyapi_key(key, k) < 0)
		return -1;
	if (k->len - 1 > api->sh->max_key) {
		PyErr_Format(api->StateLimitError,
			     "key of %zu bytes is over state_max_key_size = %zu", k->len - 1,
			     api->sh->max_key);
		hb_pyapi_key_free(k);
		return -1;
	}
	return 0;
}

/* ---- reads ---- */

/* The decoded value of a tagged key; *found says whether it exists (NULL, no exception, when
 * not found). */
static PyObject *get_value(hb_pyapi_t *api, const hb_pykey_t *k, PyObject *key, int *found)
{
	uint8_t stack[GET_STACK];
	uint8_t *buf = stack;
	size_t cap = sizeof(stack), vlen = 0;
	PyObject *v = NULL;
	int rc;

	*found = 0;
	while ((rc = hb_shmap_get(api->sh->map, k->data, k->len, buf, cap, &vlen)) == -ENOBUFS) {
		/* The value grew since the last attempt: retry with its size (and some room). */
		if (buf != stack)
			PyMem_Free(buf);
		cap = vlen + vlen / 8 + 64;
		buf = PyMem_Malloc(cap);
		if (!buf)
			return PyErr_NoMemory();
	}
	if (rc == 0) {
		*found = 1;
		v = hb_pyapi_decode(buf, vlen);
	} else if (rc != -ENOENT) {
		map_error(api, rc, key, 0);
	}
	if (buf != stack)
		PyMem_Free(buf);
	return v;
}

static PyObject *state_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			   PyObject *kwnames)
{
	static const char *const names[] = {"key", "default"};
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	PyObject *a[2], *v;
	hb_pykey_t k;
	int found;

	if (!hb_pyapi_need(api) ||
	    hb_pyapi_args("state_get", args, nargs, kwnames, names, 1, 2, a) < 0)
		return NULL;
	if (make_key(api, a[0], &k) < 0)
		return NULL;
	v = get_value(api, &k, a[0], &found);
	hb_pyapi_key_free(&k);
	if (!found && !PyErr_Occurred())
		return Py_NewRef(a[1] ? a[1] : Py_None);
	return v;
}

static PyObject *state_get_multi(PyObject *self, PyObject *keys)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	PyObject *it, *key, *out;

	if (!hb_pyapi_need(api))
		return NULL;
	it = PyObject_GetIter(keys);
	out = it ? PyDict_New() : NULL;
	while (out && (key = PyIter_Next(it))) {
		hb_pykey_t k;
		int found = 0;
		PyObject *v = NULL;

		if (make_key(api, key, &k) == 0) {
			v = get_value(api, &k, key, &found);
			hb_pyapi_key_free(&k);
		}
		if (PyErr_Occurred() || (v && PyDict_SetItem(out, key, v) < 0))
			Py_CLEAR(out);
		Py_XDECREF(v);
		Py_DECREF(key);
	}
	Py_XDECREF(it);
	if (out && PyErr_Occurred())
		Py_CLEAR(out);
	return out;
}

/* ---- writes ---- */

static PyObject *state_set(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	uint8_t stack[512];
	hb_cbuf_t b;
	hb_pykey_t k;
	int rc;

	if (!hb_pyapi_need(api))
		return NULL;
	if (nargs != 2) {
		PyErr_Format(PyExc_TypeError, "state_set() takes 2 arguments (%zd given)", nargs);
		return NULL;
	}
	if (make_key(api, args[0], &k) < 0)
		return NULL;
	hb_cbuf_init(&b, stack, sizeof(stack));
	rc = hb_pyapi_encode(args[1], &b);
	if (rc == 0 && b.len > api->sh->max_value)
		rc = -E2BIG;
	else if (rc == 0)
		rc = hb_shmap_set(api->sh->map, k.data, k.len, b.data, b.len);
	if (rc < -1)
		map_error(api, rc, args[0], b.len);
	hb_cbuf_free(&b);
	hb_pyapi_key_free(&k);
	if (rc < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *state_delete(PyObject *self, PyObject *key)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	hb_pykey_t k;
	int rc;

	if (!hb_pyapi_need(api) || make_key(api, key, &k) < 0)
		return NULL;
	rc = hb_shmap_delete(api->sh->map, k.data, k.len);
	hb_pyapi_key_free(&k);
	if (rc < 0 && rc != -ENOENT)
		return map_error(api, rc, key, 0);
	return PyBool_FromLong(rc == 0);
}

static PyObject *add(hb_pyapi_t *api, const char *fname, PyObject *const *args, Py_ssize_t nargs,
		     PyObject *kwnames, int sign)
{
	static const char *const names[] = {"key", "delta"};
	PyObject *a[2];
	long long delta = 1;
	int64_t result = 0;
	hb_pykey_t k;
	int rc;

	if (!hb_pyapi_need(api) || hb_pyapi_args(fname, args, nargs, kwnames, names, 1, 2, a) < 0)
		return NULL;
	if (a[1]) {
		if (!PyLong_Check(a[1])) {
			PyErr_Format(PyExc_TypeError, "%s() delta must be an int, not '%.200s'",
				     fname, Py_TYPE(a[1])->tp_name);
			return NULL;
		}
		delta = PyLong_AsLongLong(a[1]);
		if (delta == -1 && PyErr_Occurred())
			return NULL;
	}
	if (sign < 0) {
		if (delta == INT64_MIN) {
			PyErr_Format(PyExc_OverflowError, "%s() delta out of range", fname);
			return NULL;
		}
		delta = -delta;
	}
	if (make_key(api, a[0], &k) < 0)
		return NULL;
	rc = hb_shmap_incr(api->sh->map, k.data, k.len, delta, &result);
	hb_pyapi_key_free(&k);
	if (rc < 0)
		return map_error(api, rc, a[0], 0);
	return PyLong_FromLongLong(result);
}

static PyObject *state_incr(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			    PyObject *kwnames)
{
	return add((hb_pyapi_t *)self, "state_incr", args, nargs, kwnames, 1);
}

static PyObject *state_decr(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			    PyObject *kwnames)
{
	return add((hb_pyapi_t *)self, "state_decr", args, nargs, kwnames, -1);
}

/* ---- keys and stats ---- */

static int collect_key(const void *key, size_t klen, void *ud)
{
	PyObject *k = hb_pyapi_key_decode(key, klen);
	int rc;

	if (!k) {
		PyErr_Clear(); /* not written by us: skip it */
		return 0;
	}
	rc = PyList_Append(ud, k);
	Py_DECREF(k);
	return rc < 0 ? -1 : 0;
}

static PyObject *state_keys(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
			    PyObject *kwnames)
{
	static const char *const names[] = {"prefix"};
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	PyObject *a[1], *out;
	hb_pykey_t k = {.data = NULL, .len = 0, .heap = NULL};
	int rc;

	if (!hb_pyapi_need(api) ||
	    hb_pyapi_args("state_keys", args, nargs, kwnames, names, 0, 1, a) < 0)
		return NULL;
	if (a[0] && a[0] != Py_None && hb_pyapi_key(a[0], &k) < 0)
		return NULL;
	out = PyList_New(0);
	if (!out) {
		hb_pyapi_key_free(&k);
		return NULL;
	}
	/* No prefix: every key. A str prefix matches str keys only, bytes bytes keys. */
	rc = hb_shmap_keys(api->sh->map, k.data, k.len, collect_key, out);
	hb_pyapi_key_free(&k);
	if (rc < 0) {
		Py_DECREF(out);
		return PyErr_Occurred() ? NULL : map_error(api, rc, Py_None, 0);
	}
	return out;
}

static int put_u64(PyObject *d, const char *name, uint64_t v)
{
	PyObject *o = PyLong_FromUnsignedLongLong(v);
	int rc = o ? PyDict_SetItemString(d, name, o) : -1;

	Py_XDECREF(o);
	return rc;
}

static PyObject *state_stats(PyObject *self, PyObject *unused)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	hb_shmap_stats_t s;
	hb_pubsub_stats_t p;
	PyObject *d;

	if (!hb_pyapi_need(api))
		return NULL;
	hb_shmap_stats(api->sh->map, &s);
	hb_pubsub_stats(api->sh->ps, &p);
	d = PyDict_New();
	if (!d || put_u64(d, "entries", s.entries) < 0 ||
	    put_u64(d, "bytes_used", s.bytes_used) < 0 ||
	    put_u64(d, "max_bytes", s.max_bytes) < 0 || put_u64(d, "map_bytes", s.map_bytes) < 0 ||
	    put_u64(d, "gets", s.gets) < 0 || put_u64(d, "hits", s.hits) < 0 ||
	    put_u64(d, "misses", s.misses) < 0 || put_u64(d, "sets", s.sets) < 0 ||
	    put_u64(d, "deletes", s.deletes) < 0 || put_u64(d, "incrs", s.incrs) < 0 ||
	    put_u64(d, "read_retries", s.retries) < 0 ||
	    put_u64(d, "lock_reads", s.lock_reads) < 0 || put_u64(d, "enospc", s.enospc) < 0 ||
	    put_u64(d, "max_key_size", api->sh->max_key) < 0 ||
	    put_u64(d, "max_value_size", api->sh->max_value) < 0 ||
	    put_u64(d, "pubsub_topics", p.topics) < 0 ||
	    put_u64(d, "pubsub_subscribers", p.subscribers) < 0 ||
	    put_u64(d, "pubsub_published", p.published) < 0 ||
	    put_u64(d, "pubsub_delivered", p.delivered) < 0 ||
	    put_u64(d, "pubsub_dropped", p.dropped) < 0)
		Py_CLEAR(d);
	return d;
}

PyMethodDef hb_pyapi_state_methods[] = {
	{"state_get", (PyCFunction)(void (*)(void))state_get, METH_FASTCALL | METH_KEYWORDS,
	 "state_get(key, default=None): the value stored at key, or default."},
	{"state_set", (PyCFunction)(void (*)(void))state_set, METH_FASTCALL,
	 "state_set(key, value): stores value (None, bool, int, float, str, bytes, list, tuple, "
	 "dict) for every worker."},
	{"state_delete", state_delete, METH_O,
	 "state_delete(key) -> bool: removes key; True if it existed."},
	{"state_incr", (PyCFunction)(void (*)(void))state_incr, METH_FASTCALL | METH_KEYWORDS,
	 "state_incr(key, delta=1) -> int: atomic add across all workers (missing key = 0)."},
	{"state_decr", (PyCFunction)(void (*)(void))state_decr, METH_FASTCALL | METH_KEYWORDS,
	 "state_decr(key, delta=1) -> int: atomic subtract across all workers."},
	{"state_get_multi", state_get_multi, METH_O,
	 "state_get_multi(keys) -> dict: the keys that exist, with their values."},
	{"state_keys", (PyCFunction)(void (*)(void))state_keys, METH_FASTCALL | METH_KEYWORDS,
	 "state_keys(prefix=None) -> list: keys (a str prefix matches str keys, bytes bytes)."},
	{"state_stats", state_stats, METH_NOARGS,
	 "state_stats() -> dict: shared map and pub/sub counters and sizes (for metrics)."},
	{NULL, NULL, 0, NULL},
};
