/* pyworker.h: one worker interpreter and its threads, from creation to Py_EndInterpreter.
 *
 * A worker (hb_pyinterp_t) is one interpreter serving `nthreads` hub slots, one thread per slot.
 * Isolated mode: its first thread (the primary) creates a sub-interpreter with its own GIL,
 * imports the app, starts the other threads and, at the end, waits for them to delete their
 * thread states and ends the interpreter. Main mode: every thread attaches a new thread state
 * to the main interpreter, whose app object the starter imported.
 *
 * Threads: hb_pyinterp_start/retire/join/free are called by the pool (interp.c: the main thread
 * or the replacement supervisor), never by the worker's own threads. The only thing a worker
 * thread does to the pool is call `on_limit` (without holding any lock) when max_requests is
 * reached. Fields under `mu` are shared between the starter and the worker threads.
 */
#ifndef HB_PYTHON_PYWORKER_H
#define HB_PYTHON_PYWORKER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/config.h"
#include "core/hub.h"
#include "python/pyapi.h"
#include "python/wsgi.h"

typedef struct hb_pyinterp hb_pyinterp_t;

/* Why a worker failed to start (hb_pyinterp_t.failed). */
enum {
	HB_PYW_OK = 0,
	HB_PYW_FAIL_IMPORT,    /* the app could not be imported: error holds the traceback */
	HB_PYW_FAIL_SUBINTERP, /* an extension refused sub-interpreters: bad_module names it */
	HB_PYW_FAIL_START,     /* interpreter or thread creation failed: error says why */
};

typedef struct hb_pythread {
	hb_pyinterp_t *pi;
	int index; /* 0: the primary thread */
	int slot;  /* hub worker slot this thread consumes */
	int started;
	pthread_t tid;
	PyThreadState *ts;
	hb_wsgi_app_t app;
	/* the stuck-request watchdog (watchdog.h) */
	_Atomic uint64_t busy_since; /* CLOCK_MONOTONIC ns the request began; 0: idle */
	_Atomic uint64_t seq;	     /* requests begun */
	unsigned long ident;	     /* PyThread_get_thread_ident of this thread */
	hb_stream_t *cur;	     /* [GIL] the request being served */
	uint64_t fired_seq;	     /* [GIL] the request WorkerTimeout was raised in */
	uint64_t fired_ns;	     /* [watchdog] when */
	uint64_t stuck_seq;	     /* [watchdog] the request reported past worker_kill_timeout */
	/* ASGI: CLOCK_MONOTONIC ns the event loop left its selector; 0: in it, or not watched */
	_Atomic uint64_t loop_since;
	uint64_t loop_stuck; /* [watchdog] the loop_since reported past worker_kill_timeout */
} hb_pythread_t;

struct hb_pyinterp {
	const hb_config_t *cfg;
	hb_hub_t *hub;
	int id;	       /* "worker N" in logs, never reused */
	int position;  /* 0..workers-1: the CPU it is pinned to, kept by its replacement */
	int main_mode; /* runs in the main interpreter */
	int nthreads;
	hb_pythread_t *threads;
	PyInterpreterState *interp;
	PyObject *app;	       /* the WSGI callable, a reference owned in `interp` */
	hb_pyapi_jobs_t *jobs; /* call/cast jobs posted to this interpreter (pyapi.h) */
	uint64_t limit;	       /* requests before replacement; 0: never */
	_Atomic uint64_t served;
	_Atomic int retiring; /* replacement asked for (set once) */
	void (*on_limit)(void *ud, hb_pyinterp_t *pi);
	void *on_limit_ud;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int nready;	     /* threads accepting requests */
	int peers_done;	     /* non-primary threads that deleted their thread state */
	int failed;	     /* HB_PYW_* */
	char *error;	     /* malloc'd text for stderr when failed */
	char *bad_module;    /* malloc'd module name for HB_PYW_FAIL_SUBINTERP */
	int asgi;	     /* the class its threads serve (worker_class auto: detected) */
	char class_why[200]; /* why that class; empty until a thread decided */
	/* the watchdog thread (watchdog.h); wd_stop and wd_ending under wd_mu */
	pthread_t wd;
	int wd_started, wd_stop, wd_ending;
	pthread_mutex_t wd_mu;
	pthread_cond_t wd_cv;
};

/* Allocates a worker over hub slots slots[0..nthreads). In main mode, app (a new reference is
 * taken, main GIL held by the caller) is the imported callable; NULL in isolated mode.
 * Returns NULL on ENOMEM. */
hb_pyinterp_t *hb_pyinterp_new(const hb_config_t *cfg, hb_hub_t *hub, int id, int position,
			       const int *slots, int nthreads, int main_mode, PyObject *app);

/* Starts its threads (blocking all signals in them). Returns 0 or -errno; then call
 * hb_pyinterp_wait_ready. */
int hb_pyinterp_spawn(hb_pyinterp_t *pi);
/* Waits until every thread accepts requests (returns HB_PYW_OK) or the start failed (returns
 * pi->failed; the threads are exiting: join them). */
int hb_pyinterp_wait_ready(hb_pyinterp_t *pi);

/* Stops routing requests to the worker and asks its threads to finish what is queued and exit. */
void hb_pyinterp_retire(hb_pyinterp_t *pi);
/* Joins its threads until deadline_ns (CLOCK_MONOTONIC; 0: no deadline). Returns 0 when all
 * exited, -ETIMEDOUT when some still run (then the worker must be leaked). */
int hb_pyinterp_join(hb_pyinterp_t *pi, uint64_t deadline_ns);
/* [GIL of pi's interpreter] Routes the interpreter's call/cast jobs to pi's hub slots
 * (hb_pyapi_worker_bind). Returns 0 or -1 with an exception set. */
int hb_pyinterp_bind_jobs(hb_pyinterp_t *pi);
/* Frees a joined worker. In main mode the caller holds the main GIL (drops pi->app). */
void hb_pyinterp_free(hb_pyinterp_t *pi);

/* Parses "module:attr.path" ("module" alone means module:application) and imports it in the
 * current interpreter. Returns a new reference or NULL with an exception set. */
PyObject *hb_pyinterp_import_app(const hb_config_t *cfg);

/* Inspects the current exception: if it (or its context) is the ImportError of an extension
 * module that refuses sub-interpreters, returns that module's name (malloc'd). Leaves the
 * exception set. */
char *hb_pyinterp_subinterp_refusal(void);

#endif
