/* pyapi_priv.h: what the pyapi*.c files share: the process-wide registries and the
 * per-interpreter `_Api` object every API function receives as `self` (see pyapi.h).
 * Everything here runs with the calling interpreter's GIL held.
 */
#ifndef HB_PYTHON_PYAPI_PRIV_H
#define HB_PYTHON_PYAPI_PRIV_H

#include "python/pyapi.h"

#include <stdatomic.h>

#include "core/funcs.h"
#include "core/pubsub.h"
#include "core/remote.h"
#include "core/shmap.h"
#include "core/xbus.h"

#define HB_PYAPI_CALL_TIMEOUT_MS 30000 /* call(name, ...) without timeout_ms */

/* Process-wide and read-only while workers run (see pyapi.h), except `live`. */
typedef struct hb_pyapi_shared {
	_Atomic int live; /* _Api objects not yet deallocated: their interpreters use us */
	hb_shmap_t *map;
	hb_pubsub_t *ps;
	hb_funcs_t *funcs;
	hb_xbus_t *bus; /* NULL unless worker processes share one (hb_pyapi_prepare_bus) */
	hb_hub_t *hub;
	const hb_config_t *cfg;
	size_t max_key; /* user-visible key limit (the map's limit minus the tag byte) */
	size_t max_value;
	char node[256];
	/* the cluster's live members (hb_pyapi_node_event), for nodes(); guarded by nodes_mu */
	pthread_mutex_t nodes_mu;
	char **nodes;
	size_t nnodes, cap_nodes;
	/* the cluster's side (hb_pyapi_set_remote): read with hb_pyapi_remote_get/put */
	_Atomic(const hb_remote_t *) remote;
	_Atomic int remote_users;
} hb_pyapi_shared_t;

/* Where a job posted to this interpreter's inbox rings: its hub slots. Written only by
 * hb_pyapi_worker_bind (slots first, then n with release), read by any posting thread. */
typedef struct hb_pyapi_wake {
	hb_hub_t *hub;
	_Atomic int n;
	int cap;
	int slots[];
} hb_pyapi_wake_t;

/* The per-interpreter `_hornbeam._Api` object (hb_pyapi_jobs_t in pyapi.h). */
struct hb_pyapi_jobs {
	PyObject_HEAD const hb_pyapi_shared_t *sh; /* NULL outside the server */
	hb_inbox_t *inbox;
	hb_pyapi_wake_t *wake;
	PyObject *functions;		 /* name (str) -> callable registered in this interpreter */
	PyTypeObject *sub_type;		 /* _hornbeam.Subscription */
	PyObject *StateLimitError;	 /* ValueError: key or value over the size limits */
	PyObject *StateFullError;	 /* MemoryError: state_max_bytes reached */
	PyObject *NodeNotConnected;	 /* ConnectionError: rpc to a node that is not connected */
	PyObject *SubscriptionClosed;	 /* EOFError: get() on a closed, drained subscription */
	PyObject *FunctionNotRegistered; /* LookupError: call() of an unknown name */
	PyObject *RemoteError;		 /* RuntimeError: the remote function raised */
	PyObject *NodeDown;		 /* NodeNotConnected: the node went away mid-call */
	int running_jobs;
};

typedef struct hb_pyapi_jobs hb_pyapi_t;

/* The registries, or NULL (and RuntimeError) outside the server. */
const hb_pyapi_shared_t *hb_pyapi_need(hb_pyapi_t *api);

/* Function tables bound to the _Api object by hb_pyapi_add. */
extern PyMethodDef hb_pyapi_state_methods[];
extern PyMethodDef hb_pyapi_pubsub_methods[];
extern PyMethodDef hb_pyapi_funcs_methods[];

/* The cluster (core/remote.h) while one runs, else NULL; every non-NULL get is paired with a
 * put (hb_pyapi_set_remote(NULL) waits for them). */
const hb_remote_t *hb_pyapi_remote_get(const hb_pyapi_shared_t *sh);
void hb_pyapi_remote_put(const hb_pyapi_shared_t *sh);

/* pyapi_pubsub.c: the Subscription heap type of this module. */
PyTypeObject *hb_pyapi_sub_type_new(PyObject *module);

/* pyapi_funcs.c: runs one job taken from this interpreter's inbox. */
void hb_pyapi_run_job(hb_pyapi_t *api, hb_job_t *job);
/* pyapi_funcs.c: the object named by "module:attr.path" (imports module). New reference, or
 * NULL with an exception (ValueError for a spec without a colon). */
PyObject *hb_pyapi_import_target(const char *spec);
/* pyapi_funcs.c: registers name -> fn in this interpreter. Returns 0 or -1. */
int hb_pyapi_register(hb_pyapi_t *api, PyObject *name, PyObject *fn);

/* METH_FASTCALL|METH_KEYWORDS argument binding: fills out[0..nmax) (NULL when absent) from
 * positional args and keywords named names[]; the first nreq are required. Returns 0 or -1
 * with TypeError (as CPython words it, with fname). */
int hb_pyapi_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
		  const char *const *names, int nreq, int nmax, PyObject **out);

/* Parses the optional timeout argument (None or seconds, int or float) into milliseconds
 * (-1: none). Returns 0 or -1 with an exception. */
int hb_pyapi_timeout_ms(PyObject *o, int *ms);

#endif
