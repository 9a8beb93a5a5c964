/* interp.c: the pool of worker interpreters (pyhost.h): start, max_requests replacement, stop.
 *
 * The main thread starts the pool and stops it. A supervisor thread (only when max_requests is
 * set) replaces a worker that reached its limit: it starts the new worker in free hub slots,
 * and only when that one accepts requests retires the old one, which drains what is queued.
 * `mu` guards the slot table, the worker table and the replacement queue; the request path
 * never takes it.
 */
#include "python/pyhost.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/log.h"
#include "core/thread.h"
#include "python/module.h"
#include "python/pycompat.h"
#include "python/pyerr.h"
#include "python/pylocate.h"
#include "python/pyworker.h"

struct hb_pyhost {
	const hb_config_t *cfg;
	hb_hub_t *hub;
	int nslots;
	int main_mode;
	int nthreads;		/* per worker */
	PyThreadState *main_ts; /* the main thread's, detached while the pool runs */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	hb_pyinterp_t **owner;	 /* per hub slot: the worker using it, NULL when free */
	hb_pyinterp_t **workers; /* per position: the worker serving it now */
	int nworkers;
	hb_pyinterp_t **retire_q; /* workers that reached max_requests */
	int nretire;
	int next_id;
	int stopping;
	int supervisor_started;
	pthread_t supervisor;
};

/* ---- pyhost.h: init ---- */

/* An installed binary that carries its own Python runtime (lib/hornbeam-uring/python next to
 * bin/) uses it as PYTHONHOME: the build machine's Python may be absent or unreadable there
 * (pyenv under /root). $PYTHONHOME still wins; a build-directory binary has no bundled home
 * and keeps the compiled-in prefix. */
static PyStatus set_home(PyConfig *config)
{
	char exe[4096], home[4096], ver[16];
	const char *env = getenv("PYTHONHOME");

	snprintf(ver, sizeof(ver), "%d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION);
	if ((env && *env) || hb_pylocate_exe_dir(exe, sizeof(exe)) < 0 ||
	    hb_pylocate_home(exe, ver, home, sizeof(home)) < 0)
		return PyStatus_Ok();
	return PyConfig_SetBytesString(config, &config->home, home);
}

int hb_py_init(void)
{
	PyConfig config;
	PyStatus st;

	if (PyImport_AppendInittab("_hornbeam", hb_module_init) < 0) {
		fprintf(stderr, "hornbeam-uring: cannot register the _hornbeam module\n");
		return -1;
	}
	PyConfig_InitPythonConfig(&config);
	config.install_signal_handlers = 0; /* signals belong to the server's main thread */
	config.parse_argv = 0;
	st = set_home(&config);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		fprintf(stderr, "hornbeam-uring: cannot initialize Python: %s\n",
			st.err_msg ? st.err_msg : "unknown error");
		return -1;
	}
	/* CPython 3.13.0 crashes when two sub-interpreters that imported _datetime end at the
	 * same time (gh-136423: the last one out frees its static types). Held by the main
	 * interpreter, the module is never the last one out. */
	Py_XDECREF(PyImport_ImportModule("_datetime"));
	PyErr_Clear();
	return 0;
}

void hb_py_describe(char *out, size_t len)
{
	PyObject *prefix = PySys_GetObject("prefix"); /* borrowed */
	const char *p = prefix && PyUnicode_Check(prefix) ? PyUnicode_AsUTF8(prefix) : NULL;
	const char *v = Py_GetVersion();

	if (!p)
		PyErr_Clear();
	snprintf(out, len, "Python %.*s (prefix %s)", (int)strcspn(v, " "), v, p ? p : "?");
}

int hb_py_max_workers(const hb_config_t *cfg)
{
	int w = cfg->workers > 0 ? cfg->workers : 1, t = cfg->threads > 0 ? cfg->threads : 1;

	return 2 * w * t;
}

/* ---- workers ---- */

static uint64_t pick_limit(const hb_config_t *cfg)
{
	uint64_t r = 0;

	if (cfg->max_requests <= 0)
		return 0;
	if (cfg->max_requests_jitter > 0 && getrandom(&r, sizeof(r), 0) == (ssize_t)sizeof(r))
		r %= (uint64_t)cfg->max_requests_jitter + 1;
	else
		r = 0;
	return (uint64_t)cfg->max_requests + r;
}

static void on_limit(void *ud, hb_pyinterp_t *pi)
{
	hb_pyhost_t *h = ud;

	pthread_mutex_lock(&h->mu);
	if (!h->stopping && h->nretire < h->nworkers) {
		h->retire_q[h->nretire++] = pi;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
}

/* Claims nthreads free slots and creates a worker on them. NULL when none are free. */
static hb_pyinterp_t *new_worker(hb_pyhost_t *h, int position, PyObject *main_app)
{
	int *sl = calloc((size_t)h->nthreads, sizeof(int)), n = 0;
	hb_pyinterp_t *pi = NULL;

	if (!sl)
		return NULL;
	pthread_mutex_lock(&h->mu);
	for (int s = 0; s < h->nslots && n < h->nthreads; s++)
		if (!h->owner[s])
			sl[n++] = s;
	if (n == h->nthreads)
		pi = hb_pyinterp_new(h->cfg, h->hub, h->next_id, position, sl, n, h->main_mode,
				     main_app);
	if (pi) {
		h->next_id++;
		for (int i = 0; i < n; i++)
			h->owner[sl[i]] = pi;
		pi->limit = h->main_mode ? 0 : pick_limit(h->cfg);
		pi->on_limit = on_limit;
		pi->on_limit_ud = h;
	}
	pthread_mutex_unlock(&h->mu);
	free(sl);
	return pi;
}

/* Gives a joined worker's slots back and frees it. */
static void drop_worker(hb_pyhost_t *h, hb_pyinterp_t *pi)
{
	pthread_mutex_lock(&h->mu);
	for (int i = 0; i < pi->nthreads; i++)
		h->owner[pi->threads[i].slot] = NULL;
	pthread_mutex_unlock(&h->mu);
	hb_pyinterp_free(pi);
}

static void print_failure(const hb_pyhost_t *h, const hb_pyinterp_t *pi)
{
	if (pi->failed == HB_PYW_FAIL_START)
		fprintf(stderr, "hornbeam-uring: cannot start a python worker: %s",
			pi->error ? pi->error : "unknown error\n");
	else
		fprintf(stderr, "hornbeam-uring: cannot import app '%s'\n%s", h->cfg->app,
			pi->error ? pi->error : "");
}

/* Creates the workers of positions [first, last); main_app in main mode (main GIL held). */
static int create_workers(hb_pyhost_t *h, int first, int last, PyObject *main_app)
{
	for (int p = first; p < last; p++) {
		h->workers[p] = new_worker(h, p, main_app);
		if (!h->workers[p]) {
			fprintf(stderr, "hornbeam-uring: cannot create python worker %d\n", p);
			return -1;
		}
	}
	return 0;
}

/* Starts the workers of positions [first, last) and waits until they accept requests.
 * Returns HB_PYW_OK or why one failed (printed, except a sub-interpreter refusal). */
static int spawn_and_wait(hb_pyhost_t *h, int first, int last)
{
	int failed = HB_PYW_OK;

	for (int p = first; p < last; p++) {
		if (hb_pyinterp_spawn(h->workers[p]) < 0) {
			print_failure(h, h->workers[p]);
			last = p;
			failed = HB_PYW_FAIL_START;
			break;
		}
	}
	for (int p = first; p < last; p++) {
		int f = hb_pyinterp_wait_ready(h->workers[p]);

		if (f && !failed) {
			failed = f;
			if (f != HB_PYW_FAIL_SUBINTERP || h->main_mode)
				print_failure(h, h->workers[p]);
		}
	}
	return failed;
}

/* Retires and joins every worker. Returns 0, or -1 when some did not end before deadline_ns. */
static int stop_all(hb_pyhost_t *h, uint64_t deadline_ns)
{
	int rc = 0;

	for (int p = 0; p < h->nworkers; p++)
		if (h->workers[p])
			hb_pyinterp_retire(h->workers[p]);
	for (int p = 0; p < h->nworkers; p++)
		if (h->workers[p] && hb_pyinterp_join(h->workers[p], deadline_ns) < 0)
			rc = -1;
	return rc;
}

/* Frees every (joined) worker; in main mode with the main GIL held. */
static void drop_all(hb_pyhost_t *h)
{
	for (int p = 0; p < h->nworkers; p++) {
		if (h->workers[p])
			drop_worker(h, h->workers[p]);
		h->workers[p] = NULL;
	}
}

/* [main GIL released] Main mode: import once in the main interpreter, then start the threads. */
static int start_main(hb_pyhost_t *h)
{
	PyObject *app;
	int rc = -1;

	h->main_mode = 1;
	PyEval_RestoreThread(h->main_ts);
	app = hb_pyinterp_import_app(h->cfg);
	if (!app) {
		char *tb = hb_pyerr_format();

		fprintf(stderr, "hornbeam-uring: cannot import app '%s'\n%s", h->cfg->app,
			tb ? tb : "");
		free(tb);
	} else {
		rc = create_workers(h, 0, h->nworkers, app);
		Py_DECREF(app);
		for (int p = 0; rc == 0 && p < h->nworkers; p++)
			rc = hb_pyinterp_bind_jobs(h->workers[p]);
		if (rc < 0 && PyErr_Occurred())
			hb_pyerr_log(HB_LOG_ERROR, "cannot route call/cast jobs to the workers");
	}
	h->main_ts = PyEval_SaveThread();
	if (rc < 0)
		return -1;
	return spawn_and_wait(h, 0, h->nworkers) ? -1 : 0;
}

/* Isolated mode: worker 0 first, to learn whether the app can run in a sub-interpreter. */
static int start_isolated(hb_pyhost_t *h)
{
	int failed;

	if (create_workers(h, 0, 1, NULL) < 0)
		return -1;
	failed = spawn_and_wait(h, 0, 1);
	if (failed == HB_PYW_FAIL_SUBINTERP) {
		hb_warn("extension module '%s' does not support sub-interpreters: running the app "
			"in the main interpreter (interpreter = \"main\"; one GIL per process)",
			h->workers[0]->bad_module);
		if (stop_all(h, 0) < 0)
			return -1;
		drop_all(h);
		return start_main(h);
	}
	if (failed)
		return -1;
	if (create_workers(h, 1, h->nworkers, NULL) < 0)
		return -1;
	return spawn_and_wait(h, 1, h->nworkers) ? -1 : 0;
}

/* ---- max_requests replacement ---- */

/* Starts a successor for `old`, then retires old. On failure old keeps serving. */
static void replace(hb_pyhost_t *h, hb_pyinterp_t *old)
{
	hb_pyinterp_t *nw = new_worker(h, old->position, NULL);

	if (!nw || hb_pyinterp_spawn(nw) < 0 || hb_pyinterp_wait_ready(nw) != HB_PYW_OK) {
		hb_error("worker %d: max_requests reached, but its replacement failed: %s", old->id,
			 nw && nw->error ? nw->error : "no free worker slot");
		if (nw) {
			hb_pyinterp_retire(nw);
			hb_pyinterp_join(nw, 0);
			drop_worker(h, nw);
		}
		atomic_store(&old->served, 0);
		atomic_store(&old->retiring, 0);
		return;
	}
	pthread_mutex_lock(&h->mu);
	h->workers[old->position] = nw;
	pthread_mutex_unlock(&h->mu);
	hb_pyinterp_retire(old);
	hb_info("worker %d: max_requests reached, replaced by worker %d", old->id, nw->id);
	hb_pyinterp_join(old, 0);
	drop_worker(h, old);
}

static void *supervise(void *arg)
{
	hb_pyhost_t *h = arg;

	pthread_mutex_lock(&h->mu);
	for (;;) {
		hb_pyinterp_t *old;

		while (!h->stopping && h->nretire == 0)
			pthread_cond_wait(&h->cv, &h->mu);
		if (h->stopping)
			break;
		old = h->retire_q[--h->nretire];
		pthread_mutex_unlock(&h->mu);
		replace(h, old);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

static int start_supervisor(hb_pyhost_t *h)
{
	int rc = hb_thread_start(&h->supervisor, supervise, h);

	h->supervisor_started = rc == 0;
	return rc;
}

/* ---- pyhost.h: start and stop ---- */

static hb_pyhost_t *host_new(const hb_config_t *cfg, hb_hub_t *hub)
{
	hb_pyhost_t *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->cfg = cfg;
	h->hub = hub;
	h->nslots = hb_hub_max_workers(hub);
	h->nworkers = cfg->workers > 0 ? cfg->workers : 1;
	h->nthreads = cfg->threads > 0 ? cfg->threads : 1;
	h->owner = calloc((size_t)h->nslots, sizeof(*h->owner));
	h->workers = calloc((size_t)h->nworkers, sizeof(*h->workers));
	h->retire_q = calloc((size_t)h->nworkers, sizeof(*h->retire_q));
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (!h->owner || !h->workers || !h->retire_q) {
		free(h->owner);
		free(h->workers);
		free(h->retire_q);
		free(h);
		return NULL;
	}
	return h;
}

static void host_free(hb_pyhost_t *h)
{
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h->owner);
	free(h->workers);
	free(h->retire_q);
	free(h);
}

int hb_py_start(const hb_config_t *cfg, hb_hub_t *hub, hb_pyhost_t **out)
{
	hb_pyhost_t *h = host_new(cfg, hub);
	int rc;

	*out = NULL;
	if (!h) {
		fprintf(stderr, "hornbeam-uring: out of memory starting python workers\n");
		return -1;
	}
	if (h->nslots < h->nworkers * h->nthreads) {
		fprintf(stderr, "hornbeam-uring: the hub has %d worker slots, %d needed\n",
			h->nslots, h->nworkers * h->nthreads);
		host_free(h);
		return -1;
	}
	/* Sub-interpreters have their own GIL; the main one is only needed in main mode. */
	h->main_ts = PyEval_SaveThread();
	rc = cfg->interpreter == HB_INTERP_MAIN ? start_main(h) : start_isolated(h);
	if (rc == 0 && cfg->max_requests > 0 && !h->main_mode && start_supervisor(h) < 0)
		hb_warn("cannot start the max_requests supervisor: workers will not be replaced");
	/* interpreter = "main" was said at start by the master (hb_master_warn_config); here the
	 * fall-back to it (an extension refused sub-interpreters). */
	if (rc == 0 && cfg->max_requests > 0 && h->main_mode && cfg->interpreter != HB_INTERP_MAIN)
		hb_warn("max_requests = %lld has no effect: the app fell back to the main "
			"interpreter, which cannot be replaced while its process serves",
			(long long)cfg->max_requests);
	if (rc < 0) {
		int clean = stop_all(h, 0);

		PyEval_RestoreThread(h->main_ts);
		if (clean == 0) {
			drop_all(h);
			host_free(h);
		}
		return -1;
	}
	*out = h;
	return 0;
}

hb_worker_class_t hb_py_app_class(const hb_pyhost_t *h, char *why, size_t len)
{
	hb_pyinterp_t *pi = h->workers[0];
	hb_worker_class_t cls;

	pthread_mutex_lock(&pi->mu);
	cls = pi->asgi ? HB_WORKER_ASGI : HB_WORKER_WSGI;
	snprintf(why, len, "%s", pi->class_why);
	pthread_mutex_unlock(&pi->mu);
	return cls;
}

void hb_py_stop(hb_pyhost_t *h, uint64_t deadline_ns)
{
	int clean = 0;

	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->supervisor_started) {
		struct timespec ts = {(time_t)(deadline_ns / 1000000000u),
				      (long)(deadline_ns % 1000000000u)};

		if (pthread_clockjoin_np(h->supervisor, NULL, CLOCK_MONOTONIC, &ts) != 0)
			clean = -1;
		else
			h->supervisor_started =
				0; /* joined: a second stop must not join it again */
	}
	if (stop_all(h, deadline_ns) < 0)
		clean = -1;
	if (clean < 0) {
		/* Threads still run Python: leave them, the process is exiting. Not taking the
		 * main thread state back tells hb_py_finalize to skip finalization. */
		hb_warn("python workers did not stop before the deadline: skipping finalization");
		return;
	}
	PyEval_RestoreThread(h->main_ts);
	drop_all(h);
	host_free(h);
}

void hb_py_finalize(void)
{
	if (!Py_IsInitialized())
		return;
	/* No thread state: hb_py_stop left workers running, and finalizing would crash them. */
	if (!PyThreadState_GetUnchecked())
		return;
	if (Py_FinalizeEx() < 0)
		hb_warn("python finalization reported an error (flushing stdout/stderr)");
}
