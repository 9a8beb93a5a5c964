/* pyapi.c: the process-wide registries, the per-interpreter _Api object, worker binding and
 * the job hook (pyapi.h). The API functions themselves: pyapi_state.c, pyapi_pubsub.c,
 * pyapi_funcs.c.
 */
#include "python/pyapi_priv.h"
#include "python/pycompat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/codec.h"
#include "core/log.h"
#include "python/pylocate.h"

/* The one process-wide pointer: written on the main thread while no worker runs (start and
 * stop), read-only in between. */
static const hb_pyapi_shared_t *shared;
/* Made by hb_pyapi_prepare_bus in the master before fork; read-only afterwards. */
static hb_xbus_t *bus;

/* ---- process-wide ---- */

static void node_default(char *out, size_t len)
{
	char host[200];

	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(out, len, "hornbeam@%s", host);
}

static size_t clamp(int64_t v, size_t dflt, size_t max)
{
	if (v <= 0)
		return dflt;
	return (uint64_t)v > max ? max : (size_t)v;
}

int hb_pyapi_prepare_bus(const hb_config_t *cfg)
{
	hb_xbus_opts_t o = {0};

	o.timeout_ms = (int)clamp(cfg->process_bus_timeout_ms, HB_XBUS_DEFAULT_TIMEOUT_MS, INT_MAX);
	o.max_procs = HB_XBUS_MAX_PROCS; /* processes may grow (TTIN) and double during a reload */
	/* publishes from other nodes queued to the other processes: bounded like a subscriber */
	o.forward_queue = (uint32_t)clamp(cfg->pubsub_queue_size, 1000, UINT32_MAX);
	/* the cluster's live member names, as the hub writes them for the other processes */
	o.members_bytes = (uint32_t)clamp(cfg->cluster_member_names_size, HB_XBUS_DEFAULT_MEMBERS,
					  HB_XBUS_MAX_MEMBERS);
	if (!bus)
		bus = hb_xbus_create(&o);
	return bus ? 0 : -ENOMEM;
}

hb_xbus_t *hb_pyapi_bus(void)
{
	return bus;
}

/* Joins the process bus (when there is one). Returns 0 or -1 after printing why. */
static int join_bus(hb_pyapi_shared_t *sh)
{
	int rc;

	if (!bus)
		return 0;
	rc = hb_xbus_attach(bus, sh->ps, sh->funcs);
	if (rc == -ENOSPC) {
		hb_error("more than %u worker processes: this one is not on the process bus (its "
			 "publish and call() reach only its own workers)",
			 HB_XBUS_MAX_PROCS);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "hornbeam-uring: cannot join the process bus: %s\n", strerror(-rc));
		return -1;
	}
	sh->bus = bus;
	return 0;
}

/* A map made by hb_pyapi_prepare in the master process, before the worker processes were
 * forked: every process (and every generation) shares it. prepared_fd is its memfd, which a
 * binary upgrade hands to the new master (hb_pyapi_adopt_state). */
static hb_shmap_t *prepared;
static int prepared_fd = -1;

static void map_opts(const hb_config_t *cfg, hb_shmap_opts_t *o, size_t *max_key, size_t *max_value)
{
	*max_key = clamp(cfg->state_max_key_size, 1024, (64u << 20) - 1);
	*max_value = clamp(cfg->state_max_value_size, 64u << 20, 1u << 30);
	o->max_key = (uint32_t)*max_key + 1; /* + the str/bytes tag byte */
	o->max_value = (uint32_t)*max_value;
	o->max_bytes = clamp(cfg->state_max_bytes, (size_t)256 << 20, SIZE_MAX);
	if (o->max_bytes < (64u << 10))
		o->max_bytes = 64u << 10;
}

int hb_pyapi_prepare(const hb_config_t *cfg)
{
	hb_shmap_opts_t o = {0};
	size_t k, v;

	map_opts(cfg, &o, &k, &v);
	if (!prepared)
		prepared = hb_shmap_create_shared(&o, &prepared_fd);
	return prepared ? 0 : -ENOMEM;
}

int hb_pyapi_state_fd(void)
{
	return prepared_fd;
}

int hb_pyapi_adopt_state(int fd)
{
	if (prepared)
		return -EEXIST;
	prepared = hb_shmap_attach(fd);
	if (!prepared)
		return -EINVAL;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	prepared_fd = fd;
	return 0;
}

int hb_pyapi_start(const hb_config_t *cfg, hb_hub_t *hub)
{
	hb_pyapi_shared_t *sh = calloc(1, sizeof(*sh));
	hb_shmap_opts_t o = {0};

	if (!sh)
		goto oom;
	map_opts(cfg, &o, &sh->max_key, &sh->max_value);
	/* The map every process shares when the master made one; else this process's own. */
	sh->map = prepared ? prepared : hb_shmap_create(&o);
	prepared = NULL;
	if (!sh->map) {
		fprintf(stderr,
			"hornbeam-uring: cannot create the shared state map "
			"(state_max_bytes = %zu)\n",
			o.max_bytes);
		free(sh);
		return -1;
	}
	sh->ps = hb_pubsub_new((uint32_t)clamp(cfg->pubsub_queue_size, 1000, UINT32_MAX));
	sh->funcs = hb_funcs_new();
	if (!sh->ps || !sh->funcs)
		goto oom;
	if (join_bus(sh) < 0) {
		hb_shmap_destroy(sh->map);
		hb_pubsub_free(sh->ps);
		hb_funcs_free(sh->funcs);
		free(sh);
		return -1;
	}
	sh->hub = hub;
	sh->cfg = cfg;
	pthread_mutex_init(&sh->nodes_mu, NULL);
	if (cfg->node_name && cfg->node_name[0])
		snprintf(sh->node, sizeof(sh->node), "%s", cfg->node_name);
	else
		node_default(sh->node, sizeof(sh->node));
	shared = sh;
	return 0;
oom:
	if (sh) {
		hb_shmap_destroy(sh->map);
		hb_pubsub_free(sh->ps);
		hb_funcs_free(sh->funcs);
		free(sh);
	}
	fprintf(stderr, "hornbeam-uring: out of memory creating the shared state\n");
	return -1;
}

int hb_pyapi_stats(hb_shmap_stats_t *map, hb_pubsub_stats_t *ps)
{
	if (!shared)
		return -1;
	hb_shmap_stats(shared->map, map);
	hb_pubsub_stats(shared->ps, ps);
	return 0;
}

void hb_pyapi_shutdown(void)
{
	if (shared)
		hb_pubsub_shutdown(shared->ps);
}

void hb_pyapi_stop(void)
{
	hb_pyapi_shared_t *sh = (hb_pyapi_shared_t *)shared;

	if (!sh)
		return;
	shared = NULL;
	/* This process leaves the bus first: its names go, the bus thread stops using ps/funcs. */
	hb_xbus_detach(sh->bus);
	/* A worker that did not end before the stop deadline may still use the registries: the
	 * process is exiting, so leave them to it rather than free them under its feet. */
	if (atomic_load_explicit(&sh->live, memory_order_acquire) > 0)
		return;
	hb_funcs_free(sh->funcs);
	hb_pubsub_free(sh->ps);
	hb_shmap_destroy(sh->map);
	for (size_t i = 0; i < sh->nnodes; i++)
		free(sh->nodes[i]);
	free(sh->nodes);
	pthread_mutex_destroy(&sh->nodes_mu);
	free(sh);
}

/* Adds or removes a name in the live list (under nodes_mu). */
static void nodes_update(hb_pyapi_shared_t *sh, const char *node, int add)
{
	size_t i = 0;
	while (i < sh->nnodes && strcmp(sh->nodes[i], node) != 0)
		i++;
	if (!add && i < sh->nnodes) {
		free(sh->nodes[i]);
		sh->nodes[i] = sh->nodes[--sh->nnodes];
	} else if (add && i == sh->nnodes) {
		if (sh->nnodes == sh->cap_nodes) {
			size_t cap = sh->cap_nodes ? sh->cap_nodes * 2 : 8;
			char **v = realloc(sh->nodes, cap * sizeof(*v));
			if (!v)
				return;
			sh->nodes = v;
			sh->cap_nodes = cap;
		}
		if ((sh->nodes[sh->nnodes] = strdup(node)))
			sh->nnodes++;
	}
}

void hb_pyapi_node_event(const char *event, const char *node)
{
	hb_pyapi_shared_t *sh = (hb_pyapi_shared_t *)shared;
	uint8_t stack[512];
	hb_cbuf_t b;
	static const char topic[] = "hornbeam:nodes";

	if (!sh)
		return;
	pthread_mutex_lock(&sh->nodes_mu);
	nodes_update(sh, node, strcmp(event, "join") == 0);
	pthread_mutex_unlock(&sh->nodes_mu);
	hb_cbuf_init(&b, stack, sizeof(stack));
	hb_codec_begin(&b);
	hb_codec_put_dict_begin(&b, 2);
	hb_codec_put_str(&b, "event", 5);
	hb_codec_put_str(&b, event, strlen(event));
	hb_codec_put_str(&b, "node", 4);
	hb_codec_put_str(&b, node, strlen(node));
	if (!b.err) {
		hb_pubsub_publish(sh->ps, topic, sizeof(topic) - 1, b.data, b.len);
		/* and the other worker processes' subscribers (never blocks the cluster thread) */
		if (sh->bus)
			hb_xbus_publish_nowait(sh->bus, topic, sizeof(topic) - 1, b.data, b.len);
	}
	hb_cbuf_free(&b);
}

void hb_pyapi_registries(hb_funcs_t **funcs, hb_pubsub_t **ps)
{
	*funcs = shared ? shared->funcs : NULL;
	*ps = shared ? shared->ps : NULL;
}

void hb_pyapi_set_remote(const hb_remote_t *r)
{
	hb_pyapi_shared_t *sh = (hb_pyapi_shared_t *)shared;

	if (!sh)
		return;
	atomic_store(&sh->remote, r);
	if (r)
		return;
	while (atomic_load(&sh->remote_users) > 0) /* a worker inside a call: microseconds */
		usleep(1000);
}

const hb_remote_t *hb_pyapi_remote_get(const hb_pyapi_shared_t *sh)
{
	hb_pyapi_shared_t *s = (hb_pyapi_shared_t *)sh;
	const hb_remote_t *r;

	if (!s)
		return NULL;
	atomic_fetch_add(&s->remote_users, 1);
	r = atomic_load(&s->remote);
	/* another worker process runs the cluster: the bus's proxy to it (core/xbus.h) */
	if (!r && s->bus)
		r = hb_xbus_remote(s->bus);
	if (!r)
		atomic_fetch_sub(&s->remote_users, 1);
	return r;
}

void hb_pyapi_remote_put(const hb_pyapi_shared_t *sh)
{
	atomic_fetch_sub(&((hb_pyapi_shared_t *)sh)->remote_users, 1);
}

const hb_pyapi_shared_t *hb_pyapi_need(hb_pyapi_t *api)
{
	if (!api->sh)
		PyErr_SetString(PyExc_RuntimeError,
				"hornbeam shared state is only available inside hornbeam-uring "
				"(import hornbeam_erlang for the in-process fallback)");
	return api->sh;
}

/* ---- waking a worker ---- */

static void wake_slots(void *arg)
{
	hb_pyapi_wake_t *w = arg;
	int n = atomic_load_explicit(&w->n, memory_order_acquire);

	for (int i = 0; i < n; i++)
		hb_hub_worker_kick(w->hub, w->slots[i]);
}

/* ---- the _Api object ---- */

static int api_traverse(PyObject *self, visitproc visit, void *arg)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;

	Py_VISIT(api->functions);
	Py_VISIT(api->sub_type);
	Py_VISIT(api->StateLimitError);
	Py_VISIT(api->StateFullError);
	Py_VISIT(api->NodeNotConnected);
	Py_VISIT(api->SubscriptionClosed);
	Py_VISIT(api->FunctionNotRegistered);
	Py_VISIT(api->RemoteError);
	Py_VISIT(api->NodeDown);
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static int api_clear(PyObject *self)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;

	Py_CLEAR(api->functions);
	Py_CLEAR(api->sub_type);
	Py_CLEAR(api->StateLimitError);
	Py_CLEAR(api->StateFullError);
	Py_CLEAR(api->NodeNotConnected);
	Py_CLEAR(api->SubscriptionClosed);
	Py_CLEAR(api->FunctionNotRegistered);
	Py_CLEAR(api->RemoteError);
	Py_CLEAR(api->NodeDown);
	return 0;
}

/* The process bus forgets the names this interpreter registered, unless another interpreter
 * of this process owns them now. */
static void unregister_bus_names(hb_pyapi_shared_t *sh, PyObject *functions)
{
	PyObject *key, *value;
	Py_ssize_t pos = 0, n;

	while (PyDict_Next(functions, &pos, &key, &value)) {
		const char *s = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &n) : NULL;
		hb_inbox_t *in;

		if (!s) {
			PyErr_Clear();
			continue;
		}
		in = hb_funcs_lookup(sh->funcs, s, (size_t)n);
		if (!in)
			hb_xbus_unregister_mine(sh->bus, s, (size_t)n);
		hb_funcs_inbox_release(in);
	}
}

static void api_dealloc(PyObject *self)
{
	hb_pyapi_t *api = (hb_pyapi_t *)self;
	hb_pyapi_shared_t *sh = (hb_pyapi_shared_t *)api->sh;
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	if (api->inbox) {
		/* The interpreter is ending: its registrations go, queued calls fail (LOST). */
		hb_funcs_inbox_close(api->sh ? api->sh->funcs : NULL, api->inbox);
		if (sh && sh->bus && api->functions)
			unregister_bus_names(sh, api->functions);
		hb_funcs_inbox_set_wake(api->inbox, NULL, NULL);
		hb_funcs_inbox_release(api->inbox);
	}
	free(api->wake);
	api_clear(self);
	tp->tp_free(self);
	Py_DECREF(tp);
	if (sh) /* last: after this, hb_pyapi_stop may free what sh points to */
		atomic_fetch_sub_explicit(&sh->live, 1, memory_order_release);
}

static PyType_Slot api_slots[] = {
	{Py_tp_traverse, api_traverse},
	{Py_tp_clear, api_clear},
	{Py_tp_dealloc, api_dealloc},
	{0, NULL},
};

static PyType_Spec api_spec = {
	.name = "_hornbeam._Api",
	.basicsize = sizeof(hb_pyapi_t),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = api_slots,
};

/* Creates an exception class _hornbeam.<name>(base) and adds it to the module. */
static int add_exc(PyObject *m, PyObject **slot, const char *name, PyObject *base, const char *doc)
{
	char full[128];

	/* Named after the public module that re-exports them (tracebacks show that name). */
	snprintf(full, sizeof(full), "hornbeam_erlang.%s", name);
	*slot = PyErr_NewExceptionWithDoc(full, doc, base, NULL);
	if (!*slot)
		return -1;
	return PyModule_AddObjectRef(m, name, *slot);
}

static int add_excs(PyObject *m, hb_pyapi_t *api)
{
	if (add_exc(m, &api->StateLimitError, "StateLimitError", PyExc_ValueError,
		    "A key or value is larger than state_max_key_size / state_max_value_size.") <
		    0 ||
	    add_exc(m, &api->StateFullError, "StateFullError", PyExc_MemoryError,
		    "The shared state reached state_max_bytes.") < 0 ||
	    add_exc(m, &api->NodeNotConnected, "NodeNotConnected", PyExc_ConnectionError,
		    "rpc_call/rpc_cast to a node that is not connected.") < 0 ||
	    add_exc(m, &api->SubscriptionClosed, "SubscriptionClosed", PyExc_EOFError,
		    "get() on a subscription that is closed and has no message left.") < 0 ||
	    add_exc(m, &api->FunctionNotRegistered, "FunctionNotRegistered", PyExc_LookupError,
		    "call()/cast() of a name no worker registered.") < 0 ||
	    add_exc(m, &api->RemoteError, "RemoteError", PyExc_RuntimeError,
		    "The function called on another node raised: the message holds its "
		    "traceback.") < 0 ||
	    add_exc(m, &api->NodeDown, "NodeDown", api->NodeNotConnected,
		    "The node went down (died, left, or its link closed) before it replied.") < 0)
		return -1;
	return 0;
}

static int add_methods(PyObject *m, PyObject *self, PyMethodDef *defs)
{
	PyObject *modname = PyModule_GetNameObject(m);

	if (!modname)
		return -1;
	for (PyMethodDef *d = defs; d->ml_name; d++) {
		PyObject *f = PyCFunction_NewEx(d, self, modname);

		if (!f || PyModule_Add(m, d->ml_name, f) < 0) {
			Py_DECREF(modname);
			return -1;
		}
	}
	Py_DECREF(modname);
	return 0;
}

static hb_pyapi_t *api_new(PyObject *m)
{
	PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(m, &api_spec, NULL);
	hb_pyapi_t *api;

	if (!tp)
		return NULL;
	api = (hb_pyapi_t *)PyType_GenericAlloc(tp, 0);
	Py_DECREF(tp); /* the instance holds the type */
	if (!api)
		return NULL;
	api->sh = shared;
	if (api->sh)
		atomic_fetch_add(&((hb_pyapi_shared_t *)api->sh)->live, 1);
	api->functions = PyDict_New();
	api->sub_type = hb_pyapi_sub_type_new(m);
	if (!api->functions || !api->sub_type) {
		Py_DECREF(api);
		return NULL;
	}
	api->inbox = hb_funcs_inbox_new(NULL, NULL);
	if (!api->inbox) {
		Py_DECREF(api);
		PyErr_NoMemory();
		return NULL;
	}
	return api;
}

int hb_pyapi_add(PyObject *m)
{
	hb_pyapi_t *api = api_new(m);
	int rc = -1;

	if (!api)
		return -1;
	if (add_excs(m, api) < 0 || PyModule_AddType(m, api->sub_type) < 0 ||
	    add_methods(m, (PyObject *)api, hb_pyapi_state_methods) < 0 ||
	    add_methods(m, (PyObject *)api, hb_pyapi_pubsub_methods) < 0 ||
	    add_methods(m, (PyObject *)api, hb_pyapi_funcs_methods) < 0 ||
	    PyModule_AddObjectRef(m, "_api", (PyObject *)api) < 0 ||
	    PyModule_AddIntConstant(m, "in_server", api->sh != NULL) < 0)
		goto out;
	rc = 0;
out:
	Py_DECREF(api);
	return rc;
}

/* ---- sys.path ---- */

int hb_pyapi_sys_path(void)
{
	const char *env = getenv("HORNBEAM_PYTHON_LIB");
	char dir[4096];
	struct stat st;
	PyObject *path = PySys_GetObject("path"), *p; /* borrowed */
	int has;

	char exe[4096];

	/* HORNBEAM_PYTHON_LIB, else the package installed next to the binary, else (a binary
	 * in a build directory) the source tree's. */
	if (env && *env)
		snprintf(dir, sizeof(dir), "%s", env);
	else if (hb_pylocate_package(hb_pylocate_exe_dir(exe, sizeof(exe)) == 0 ? exe : NULL,
				     HB_SOURCE_DIR, dir, sizeof(dir)) < 0)
		return 0;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || !path || !PyList_Check(path))
		return 0;
	p = PyUnicode_DecodeFSDefault(dir);
	if (!p)
		return -1;
	has = PySequence_Contains(path, p);
	if (has == 0)
		has = PyList_Append(path, p) < 0 ? -1 : 0;
	Py_DECREF(p);
	return has < 0 ? -1 : 0;
}

/* ---- workers ---- */

static hb_pyapi_t *current_api(void)
{
	PyObject *m = PyImport_ImportModule("_hornbeam"), *a;

	if (!m)
		return NULL;
	a = PyObject_GetAttrString(m, "_api");
	Py_DECREF(m);
	if (a && Py_TYPE(a)->tp_dealloc != api_dealloc) {
		PyErr_SetString(PyExc_RuntimeError, "_hornbeam._api was replaced");
		Py_CLEAR(a);
	}
	/* The module keeps it alive for the interpreter's lifetime. */
	Py_XDECREF(a);
	return (hb_pyapi_t *)a;
}

/* Registers the config's [functions] (name = "module:function"). Returns 0, or -1 with a
 * RuntimeError naming the entry, caused by the import or lookup error. */
static int register_config_functions(hb_pyapi_t *api, const hb_config_t *cfg)
{
	for (size_t i = 0; i < cfg->nfunctions; i++) {
		const hb_config_function_t *f = &cfg->functions[i];
		PyObject *fn = hb_pyapi_import_target(f->target), *name, *cause, *exc;
		int rc;

		name = fn ? PyUnicode_FromString(f->name) : NULL;
		rc = name ? hb_pyapi_register(api, name, fn) : -1;
		Py_XDECREF(name);
		Py_XDECREF(fn);
		if (rc == 0)
			continue;
		cause = PyErr_GetRaisedException();
		PyErr_Format(PyExc_RuntimeError, "[functions] %s = \"%s\": cannot register it",
			     f->name, f->target);
		exc = PyErr_GetRaisedException();
		PyException_SetCause(exc, cause); /* steals cause */
		PyErr_SetRaisedException(exc);
		return -1;
	}
	return 0;
}

static int add_wake_slots(hb_pyapi_t *api, hb_hub_t *hub, const int *slots, int n)
{
	hb_pyapi_wake_t *w = api->wake;
	int have;

	if (!w) {
		int cap = hb_hub_max_workers(hub);

		w = calloc(1, sizeof(*w) + (size_t)cap * sizeof(int));
		if (!w) {
			PyErr_NoMemory();
			return -1;
		}
		w->hub = hub;
		w->cap = cap;
		api->wake = w;
	}
	have = atomic_load(&w->n);
	for (int i = 0; i < n && have < w->cap; i++)
		w->slots[have++] = slots[i];
	atomic_store_explicit(&w->n, have, memory_order_release);
	hb_funcs_inbox_set_wake(api->inbox, wake_slots, w);
	return 0;
}

hb_pyapi_jobs_t *hb_pyapi_worker_bind(const hb_config_t *cfg, hb_hub_t *hub, const int *slots,
				      int n, int position)
{
	hb_pyapi_t *api = current_api();

	if (!api)
		return NULL;
	if (add_wake_slots(api, hub, slots, n) < 0)
		return NULL;
	if (position == 0 && api->sh && register_config_functions(api, cfg) < 0)
		return NULL;
	/* this interpreter runs rpc calls from other nodes too (once, however many workers) */
	if (position == 0 && api->sh && hb_funcs_pool_add(api->sh->funcs, api->inbox) < 0) {
		PyErr_NoMemory();
		return NULL;
	}
	return api;
}

int hb_pyapi_jobs_pending(hb_pyapi_jobs_t *api)
{
	return api && api->inbox && hb_funcs_inbox_pending(api->inbox) > 0;
}

int hb_pyapi_run_jobs(hb_pyapi_jobs_t *api)
{
	hb_job_t *j;
	int n = 0;

	if (!api || !api->inbox || hb_funcs_inbox_pending(api->inbox) == 0)
		return 0;
	/* Jobs queued while one runs wait for the next call: a function that keeps casting to
	 * its own interpreter cannot starve the request loop. */
	for (uint32_t left = hb_funcs_inbox_pending(api->inbox); left > 0; left--) {
		j = hb_funcs_take(api->inbox);
		if (!j)
			break;
		hb_pyapi_run_job(api, j);
		n++;
	}
	return n;
}

/* ---- argument helpers ---- */

int hb_pyapi_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
		  const char *const *names, int nreq, int nmax, PyObject **out)
{
	Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

	if (nargs > nmax) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fname,
			     nmax, nargs);
		return -1;
	}
	for (int i = 0; i < nmax; i++)
		out[i] = i < nargs ? args[i] : NULL;
	for (Py_ssize_t k = 0; k < nkw; k++) {
		PyObject *kw = PyTuple_GET_ITEM(kwnames, k);
		int i = 0;

		while (i < nmax && PyUnicode_CompareWithASCIIString(kw, names[i]) != 0)
			i++;
		if (i == nmax) {
			PyErr_Format(PyExc_TypeError,
				     "%s() got an unexpected keyword argument '%U'", fname, kw);
			return -1;
		}
		if (out[i]) {
			PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
				     fname, names[i]);
			return -1;
		}
		out[i] = args[nargs + k];
	}
	for (int i = 0; i < nreq; i++) {
		if (!out[i]) {
			PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname,
				     names[i]);
			return -1;
		}
	}
	return 0;
}

int hb_pyapi_timeout_ms(PyObject *o, int *ms)
{
	double s;

	*ms = -1;
	if (!o || o == Py_None)
		return 0;
	s = PyFloat_AsDouble(o);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (s != s || s < 0) {
		PyErr_SetString(PyExc_ValueError, "timeout must be a non-negative number or None");
		return -1;
	}
	*ms = s * 1000.0 >= (double)INT32_MAX ? -1 : (int)(s * 1000.0 + 0.5);
	return 0;
}
