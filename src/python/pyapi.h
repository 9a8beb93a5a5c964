/* pyapi.h: the Python API of _hornbeam (hornbeam_erlang's native half): shared state, pub/sub,
 * registered functions, node/rpc. Implemented in pyapi*.c.
 *
 * Process-wide part (created by the main thread in hb_pyapi_start, before any worker starts,
 * freed by hb_pyapi_stop after every worker ended): the shared map (core/shmap.h), the pub/sub
 * registry (core/pubsub.h) and the function registry (core/funcs.h), plus the node name. They
 * are reached through ONE process-wide pointer that is written only by hb_pyapi_start/stop on
 * the main thread while no worker runs, and read-only in between (like the config); the
 * objects it points to are thread-safe by themselves.
 *
 * Per-interpreter part: hb_pyapi_add() (from _hornbeam's exec slot) creates an `_Api` object
 * holding the interpreter's inbox (its queue of call jobs), its registered callables and its
 * heap types and exceptions, and binds the API functions to it (their `self`), so no function
 * looks anything up per call and nothing is static. A `_hornbeam` imported outside the server
 * (no hb_pyapi_start) still imports: its API functions raise RuntimeError.
 *
 * Worker threads: after importing the app, a worker calls hb_pyapi_worker_bind() so that a job
 * posted to its inbox kicks its hub slots (hb_hub_worker_kick: a WSGI thread blocked in
 * hb_hub_worker_next returns -EINTR; an event loop worker wakes through the same eventfd);
 * then, with the GIL, hb_pyapi_run_jobs() runs what is queued. It is cheap when nothing is
 * (one atomic load), so the serve loop may call it after every wakeup and every request.
 */
#ifndef HB_PYTHON_PYAPI_H
#define HB_PYTHON_PYAPI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "core/config.h"
#include "core/funcs.h"
#include "core/hub.h"
#include "core/pubsub.h"
#include "core/remote.h"
#include "core/shmap.h"

typedef struct hb_pyapi_jobs hb_pyapi_jobs_t;

/* [master process, before it forks the worker processes] Creates the process bus
 * (core/xbus.h; process_bus_timeout): hb_pyapi_start in each forked process attaches to it, so
 * that publish and call()/cast() span every worker process. Without it (one process) they are
 * process-local. Needs no interpreter. Returns 0 or -ENOMEM. */
int hb_pyapi_prepare_bus(const hb_config_t *cfg);
/* [master] That bus (NULL before): hb_xbus_reap(bus, pid) for every worker process reaped. */
struct hb_xbus *hb_pyapi_bus(void);

/* [master process, before it forks the worker processes] Creates the shared map from the
 * config (state_max_*), for hb_pyapi_start in each forked process to use: every worker process
 * and every generation then shares one map. Needs no interpreter. Returns 0 or -ENOMEM. */
int hb_pyapi_prepare(const hb_config_t *cfg);
/* [master] The prepared map's memfd (its state survives a binary upgrade through it), or -1. */
int hb_pyapi_state_fd(void);
/* [master, before hb_pyapi_prepare] Takes the map of the master this one upgrades from (its
 * memfd, inherited across exec; made close-on-exec here): hb_pyapi_prepare then keeps it, so
 * state_* values carry over. Returns 0, -EINVAL (not a map) or -EEXIST (one prepared). */
int hb_pyapi_adopt_state(int fd);
/* [main thread, before workers] Creates the shared map, pub/sub and function registries from
 * the config (state_max_*, pubsub_queue_size, node_name), and joins the process bus if the
 * master made one. Returns 0 or -1 after printing why. */
int hb_pyapi_start(const hb_config_t *cfg, hb_hub_t *hub);
/* [main thread, after every worker ended] Frees them; if some interpreter still holds the API
 * (a worker that outlived the stop deadline) they are left to the exiting process instead.
 * Safe without a start. */
void hb_pyapi_stop(void);
/* [any thread, between hb_pyapi_start and hb_pyapi_stop] The shared map's and pub/sub's
 * statistics (the metrics). Returns 0, or -1 without a start. */
int hb_pyapi_stats(hb_shmap_stats_t *map, hb_pubsub_stats_t *ps);
/* [main thread, shutdown begins] Closes every subscription so that blocked get() calls and
 * async iterators return; later subscribes fail. */
void hb_pyapi_shutdown(void);

/* [any thread, between hb_pyapi_start and hb_pyapi_stop] A cluster membership change: `event`
 * is "join", "leave" or "dead". Keeps the list nodes() returns and publishes
 * {"event": event, "node": node} on the topic "hornbeam:nodes". No-op without a start. */
void hb_pyapi_node_event(const char *event, const char *node);

/* [main thread, after hb_pyapi_start] The registries the cluster serves other nodes from. */
void hb_pyapi_registries(hb_funcs_t **funcs, hb_pubsub_t **ps);
/* [main thread] Routes rpc_call/call/publish for other nodes through r (core/remote.h), or stops
 * doing so (NULL): then it waits until no worker is still inside r's functions, so the cluster
 * may be stopped. No-op without a start. */
void hb_pyapi_set_remote(const hb_remote_t *r);

/* [GIL] Adds the API functions, types and exceptions to a `_hornbeam` module being executed.
 * Returns 0 or -1 with an exception set. */
int hb_pyapi_add(PyObject *module);

/* [GIL] Appends the directory holding hornbeam_erlang.py/hornbeam_ml.py to sys.path (the
 * first of: $HORNBEAM_PYTHON_LIB, the installed BIN/../share/hornbeam-uring/python, the source
 * tree's python/ (python/pylocate.h)). Returns 0 or -1. */
int hb_pyapi_sys_path(void);

/* [worker thread, GIL, after the app was imported] Routes this interpreter's jobs to hub slots
 * slots[0..n) (called once per worker; in main mode once per worker sharing the interpreter).
 * The worker at position 0 also registers the config's [functions]. Returns the interpreter's
 * job handle (borrowed: valid while the interpreter lives), or NULL with an exception set. */
hb_pyapi_jobs_t *hb_pyapi_worker_bind(const hb_config_t *cfg, hb_hub_t *hub, const int *slots,
				      int n, int position);
/* [worker thread, GIL] Runs the queued call/cast/rpc jobs of this interpreter. Returns how
 * many ran. Never raises (a job's exception goes back to its caller, or to the error log). */
int hb_pyapi_run_jobs(hb_pyapi_jobs_t *jobs);
/* [any thread, no GIL needed] 1 when jobs are queued. */
int hb_pyapi_jobs_pending(hb_pyapi_jobs_t *jobs);

#endif
