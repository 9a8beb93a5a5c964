/* pyworker.c: worker interpreter threads: create, import, serve, end. */
#include "python/pyworker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/inflight.h"
#include "core/log.h"
#include "core/thread.h"
#include "python/asgi.h"
#include "python/pycompat.h"
#include "python/pyerr.h"
#include "python/venv.h"
#include "python/watchdog.h"

/* ---- the app ---- */

/* The venv's site-packages (and what its .pth files add) go first, before the embedded
 * Python's own site-packages, as in the venv's own interpreter. */
static int add_venv(const hb_config_t *cfg)
{
	static const char src[] = "import site, sys\n"
				  "n = len(sys.path)\n"
				  "site.addsitedir(DIR)\n"
				  "new = sys.path[n:]\n"
				  "del sys.path[n:]\n"
				  "sys.path[0:0] = new\n";
	char dir[4200], err[1024];
	PyObject *ns, *d, *res = NULL;

	if (hb_venv_site_packages(cfg, dir, sizeof(dir), err, sizeof(err)) < 0) {
		PyErr_SetString(PyExc_RuntimeError, err); /* main checked it: changed since */
		return -1;
	}
	if (!dir[0])
		return 0;
	ns = PyDict_New();
	d = PyUnicode_DecodeFSDefault(dir);
	if (ns && d && PyDict_SetItemString(ns, "DIR", d) == 0 &&
	    PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0)
		res = PyRun_String(src, Py_file_input, ns, ns);
	Py_XDECREF(d);
	Py_XDECREF(ns);
	Py_XDECREF(res);
	return res ? 0 : -1;
}

/* sys.path = pythonpath + [cwd] + venv + sys.path, as gunicorn does (it chdirs first). */
static int setup_sys_path(const hb_config_t *cfg)
{
	PyObject *path = PySys_GetObject("path"); /* borrowed */
	char cwd[4096];

	if (!path || !PyList_Check(path)) {
		PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
		return -1;
	}
	if (add_venv(cfg) < 0)
		return -1;
	if (getcwd(cwd, sizeof(cwd))) {
		PyObject *p = PyUnicode_DecodeFSDefault(cwd);

		if (!p || PyList_Insert(path, 0, p) < 0) {
			Py_XDECREF(p);
			return -1;
		}
		Py_DECREF(p);
	}
	for (size_t i = cfg->npythonpath; i-- > 0;) {
		PyObject *p = PyUnicode_DecodeFSDefault(cfg->pythonpath[i]);

		if (!p || PyList_Insert(path, 0, p) < 0) {
			Py_XDECREF(p);
			return -1;
		}
		Py_DECREF(p);
	}
	return 0;
}

/* MODULE:EXPR, resolved in the module as gunicorn does: EXPR is a dotted name, or a call of
 * one with literal arguments ("create_app()", "create_app('prod', debug=False)"), which is made
 * (a factory). With --factory (uvicorn) the named attribute is called with no arguments. Errors
 * name the module and the attribute. */
static const char resolve_src[] =
	"import ast\n"
	"def resolve(mod, modname, expr, factory):\n"
	"    where = '%s:%s' % (modname, expr)\n"
	"    try:\n"
	"        node = ast.parse(expr.strip(), mode='eval').body\n"
	"    except SyntaxError:\n"
	"        raise ValueError('app %s: %r is not an attribute name or a call of one'\n"
	"                         % (where, expr)) from None\n"
	"    call, args, kwargs = False, [], {}\n"
	"    if isinstance(node, ast.Call):\n"
	"        call = True\n"
	"        try:\n"
	"            args = [ast.literal_eval(a) for a in node.args]\n"
	"            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}\n"
	"        except ValueError:\n"
	"            raise ValueError('app %s: the factory arguments must be literals (strings, '\n"
	"                             'numbers, tuples, lists, dicts, True/False/None)'\n"
	"                             % where) from None\n"
	"        if None in kwargs:\n"
	"            raise ValueError('app %s: **kwargs is not a literal argument' % where)\n"
	"        node = node.func\n"
	"    names = []\n"
	"    while isinstance(node, ast.Attribute):\n"
	"        names.insert(0, node.attr)\n"
	"        node = node.value\n"
	"    if not isinstance(node, ast.Name):\n"
	"        raise ValueError('app %s: %r is not an attribute name or a call of one'\n"
	"                         % (where, expr))\n"
	"    names.insert(0, node.id)\n"
	"    obj = mod\n"
	"    for i, n in enumerate(names):\n"
	"        try:\n"
	"            obj = getattr(obj, n)\n"
	"        except AttributeError:\n"
	"            raise AttributeError(\"app %s: module '%s' has no attribute '%s'\"\n"
	"                                 % (where, modname, '.'.join(names[:i + 1]))) from None\n"
	"    attr = '.'.join(names)\n"
	"    if call or factory:\n"
	"        if not callable(obj):\n"
	"            raise TypeError(\"app %s: '%s' in module '%s' is not callable, so not a "
	"factory\"\n"
	"                            % (where, attr, modname))\n"
	"        made = obj(*args, **kwargs)\n"
	"        if not callable(made):\n"
	"            raise TypeError(\"app %s: the factory '%s' of module '%s' returned %s, not a "
	"\"\n"
	"                            'callable app' % (where, attr, modname, "
	"type(made).__name__))\n"
	"        return made\n"
	"    if not callable(obj):\n"
	"        raise TypeError(\"app %s: '%s' in module '%s' is a %s, not callable\"\n"
	"                        % (where, attr, modname, type(obj).__name__))\n"
	"    return obj\n";

/* log_config, applied in each interpreter before the app is imported. */
static const char log_config_src[] =
	"def apply(spec):\n"
	"    import json, logging, logging.config\n"
	"    s = spec.strip()\n"
	"    if s.startswith('{'):\n"
	"        logging.config.dictConfig(json.loads(s))\n"
	"    elif '%(' in s:\n"
	"        logging.basicConfig(format=s, level=logging.INFO, force=True)\n"
	"    elif s.endswith('.json'):\n"
	"        with open(s) as f:\n"
	"            logging.config.dictConfig(json.load(f))\n"
	"    else:\n"
	"        logging.config.fileConfig(s, disable_existing_loggers=False)\n";

/* Sets up Python's logging from cfg->log_config: inline JSON or a .json file for
 * logging.config.dictConfig, a format string (one with %(...)) for logging.basicConfig, or an
 * ini file for logging.config.fileConfig. Returns 0, or -1 with an exception set. */
static int apply_log_config(const hb_config_t *cfg)
{
	if (!cfg->log_config)
		return 0;
	PyObject *ns = PyDict_New();
	PyObject *r = ns ? PyRun_String(log_config_src, Py_file_input, ns, ns) : NULL;
	PyObject *fn = r ? PyDict_GetItemString(ns, "apply") : NULL; /* borrowed */
	PyObject *res = fn ? PyObject_CallFunction(fn, "s", cfg->log_config) : NULL;

	Py_XDECREF(r);
	Py_XDECREF(ns);
	if (!res) {
		PyObject *exc = PyErr_GetRaisedException();
		PyErr_Format(PyExc_RuntimeError, "log_config '%s': %S", cfg->log_config,
			     exc ? exc : Py_None);
		Py_XDECREF(exc);
		return -1;
	}
	Py_DECREF(res);
	return 0;
}

/* [GIL held] resolve(mod, modname, expr, factory) of resolve_src. New reference or NULL. */
static PyObject *resolve_app(PyObject *mod, PyObject *modname, const char *expr, int factory)
{
	PyObject *ns = PyDict_New(), *code = NULL, *res = NULL, *fn, *app = NULL;

	if (!ns || PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0)
		goto out;
	code = Py_CompileString(resolve_src, "<hornbeam app>", Py_file_input);
	if (!code || !(res = PyEval_EvalCode(code, ns, ns)))
		goto out;
	fn = PyDict_GetItemString(ns, "resolve"); /* borrowed */
	if (fn)
		app = PyObject_CallFunction(fn, "OOsO", mod, modname, expr,
					    factory ? Py_True : Py_False);
out:
	Py_XDECREF(res);
	Py_XDECREF(code);
	Py_XDECREF(ns);
	return app;
}

PyObject *hb_pyinterp_import_app(const hb_config_t *cfg)
{
	const char *spec = cfg->app ? cfg->app : "";
	const char *colon = strchr(spec, ':');
	const char *attr = colon ? colon + 1 : "application";
	PyObject *modname, *mod, *app;

	if (setup_sys_path(cfg) < 0 || hb_pyapi_sys_path() < 0 || apply_log_config(cfg) < 0)
		return NULL;
	modname =
		PyUnicode_FromStringAndSize(spec, colon ? colon - spec : (Py_ssize_t)strlen(spec));
	if (!modname)
		return NULL;
	mod = PyImport_Import(modname);
	app = mod ? resolve_app(mod, modname, attr, cfg->factory) : NULL;
	Py_DECREF(modname);
	Py_XDECREF(mod);
	return app;
}

/* The module named by the ImportError: its `name`, else the word after "module " in the
 * message ("module X does not support loading in subinterpreters"). */
static char *refusing_module(PyObject *exc, const char *msg)
{
	PyObject *n = PyObject_GetAttrString(exc, "name");
	const char *s = n && PyUnicode_Check(n) ? PyUnicode_AsUTF8(n) : NULL;
	char *out;

	if (s) {
		out = strdup(s);
	} else {
		const char *p = strstr(msg, "module ");

		p = p ? p + 7 : msg;
		out = strndup(p, strcspn(p, " "));
	}
	Py_XDECREF(n);
	PyErr_Clear();
	return out;
}

char *hb_pyinterp_subinterp_refusal(void)
{
	PyObject *exc = PyErr_GetRaisedException(), *cur = exc;
	char *name = NULL;

	for (int depth = 0; cur && !name && depth < 16; depth++) {
		if (PyErr_GivenExceptionMatches(cur, PyExc_ImportError)) {
			PyObject *msg = PyObject_Str(cur);
			const char *m = msg ? PyUnicode_AsUTF8(msg) : NULL;

			if (m && strstr(m, "does not support loading in subinterpreters"))
				name = refusing_module(cur, m);
			Py_XDECREF(msg);
			PyErr_Clear();
		}
		cur = PyException_GetContext(cur); /* new ref or NULL */
		if (cur)
			Py_DECREF(cur); /* still owned by the chain that exc holds */
	}
	PyErr_SetRaisedException(exc);
	return name;
}

/* ---- readiness ---- */

static void report(hb_pyinterp_t *pi, int failed, char *error, char *bad_module)
{
	pthread_mutex_lock(&pi->mu);
	if (failed && !pi->failed) {
		pi->failed = failed;
		pi->error = error;
		pi->bad_module = bad_module;
		error = bad_module = NULL;
	} else if (!failed) {
		pi->nready++;
	}
	pthread_cond_broadcast(&pi->cv);
	pthread_mutex_unlock(&pi->mu);
	free(error);
	free(bad_module);
}

/* Turns the current exception into a failure report (traceback for stderr). */
static void report_import_error(hb_pyinterp_t *pi)
{
	char *bad = pi->main_mode ? NULL : hb_pyinterp_subinterp_refusal();
	char *tb = hb_pyerr_format();

	report(pi, bad ? HB_PYW_FAIL_SUBINTERP : HB_PYW_FAIL_IMPORT, tb, bad);
}

/* ---- serving ---- */

static void served_one(hb_pythread_t *t)
{
	hb_pyinterp_t *pi = t->pi;
	uint64_t n = atomic_fetch_add_explicit(&pi->served, 1, memory_order_relaxed) + 1;
	int expected = 0;

	if (pi->limit && n >= pi->limit && pi->on_limit &&
	    atomic_compare_exchange_strong(&pi->retiring, &expected, 1))
		pi->on_limit(pi->on_limit_ud, pi);
}

/* After -ESHUTDOWN: a dispatch that read `accepting` just before it was cleared may still
 * push to this slot. While the slot has requests in flight (the io side counts them until
 * it sees their end), look again for up to LINGER_MS so that none is stranded. */
#define LINGER_MS 1000

static int next_request(hb_hub_t *hub, int slot, hb_stream_t **s)
{
	int rc = hb_hub_worker_next(hub, slot, s, -1);

	for (int ms = 0; rc == -ESHUTDOWN && ms < LINGER_MS; ms++) {
		if (atomic_load(&hb_hub_worker(hub, slot)->inflight) <= 0)
			break;
		usleep(1000);
		rc = hb_hub_worker_next(hub, slot, s, 0);
	}
	return rc;
}

/* The request loop. The GIL is held only while Python runs; the stream of the previous
 * request is released in the same GIL-free window as the wait for the next. */
static void serve(hb_pythread_t *t)
{
	hb_hub_t *hub = t->pi->hub;
	hb_stream_t *done = NULL, *s = NULL;
	int rc;

	for (;;) {
		Py_BEGIN_ALLOW_THREADS if (done) hb_stream_release(done);
		done = NULL;
		rc = next_request(hub, t->slot, &s);
		Py_END_ALLOW_THREADS
			/* Jobs kick the slot (-EINTR) and may arrive while requests keep it busy.
			 */
			if (t->pi->jobs && hb_pyapi_jobs_pending(t->pi->jobs))
				hb_pyapi_run_jobs(t->pi->jobs);
		if (rc == -ESHUTDOWN)
			break;
		if (rc < 0)
			continue;
		/* Marked for the master: the crash log of this process names it (inflight.h). */
		int mark =
			hb_inflight_begin(hb_inflight_process(), (unsigned)t->slot, s->req->method,
					  s->req->method_len, s->req->target, s->req->target_len);
		hb_watchdog_busy(t, s);
		hb_wsgi_serve(&t->app, s);
		hb_watchdog_idle(t);
		hb_inflight_end(hb_inflight_process(), mark);
		done = s;
		served_one(t);
	}
}

static void mark_accepting(hb_pythread_t *t)
{
	hb_worker_t *w = hb_hub_worker(t->pi->hub, t->slot);

	/* A worker whose start failed was stopped: it must not start accepting afterwards. */
	if (!atomic_load(&w->stopping))
		atomic_store(&w->accepting, 1);
	report(t->pi, HB_PYW_OK, NULL, NULL);
}

static void stop_slots(hb_pyinterp_t *pi)
{
	for (int i = 0; i < pi->nthreads; i++) {
		atomic_store(&hb_hub_worker(pi->hub, pi->threads[i].slot)->accepting, 0);
		hb_hub_worker_stop(pi->hub, pi->threads[i].slot);
	}
}

/* ---- ASGI or WSGI ---- */

/* hb_asgi_run's ready callback: the loop runs and lifespan startup went well, or not. */
static void asgi_ready(void *ud, char *error)
{
	hb_pythread_t *t = ud;

	if (error)
		report(t->pi, HB_PYW_FAIL_START, error, NULL);
	else
		mark_accepting(t);
}

static void asgi_served(void *ud)
{
	served_one(ud);
}

/* A kick of the slot (hb_hub_worker_kick): run the calls queued for this worker. */
/* The event loop left or went back to its selector: the watchdog's view of it. */
static void asgi_loop(void *ud, int busy)
{
	hb_watchdog_loop(ud, busy);
}

static void asgi_wake(void *ud)
{
	hb_pythread_t *t = ud;

	if (t->pi->jobs && hb_pyapi_jobs_pending(t->pi->jobs))
		hb_pyapi_run_jobs(t->pi->jobs);
}

/* The class this worker serves; the first thread to decide records it with the reason, for
 * the startup log and the io threads (hb_py_app_class). */
static int use_asgi(hb_pyinterp_t *pi)
{
	char why[200];
	int asgi;

	if (pi->cfg->worker_class == HB_WORKER_AUTO) {
		asgi = hb_asgi_detect(pi->app, why, sizeof(why));
	} else {
		asgi = pi->cfg->worker_class == HB_WORKER_ASGI;
		snprintf(why, sizeof(why), "configured");
	}
	pthread_mutex_lock(&pi->mu);
	if (!pi->class_why[0]) {
		pi->asgi = asgi;
		snprintf(pi->class_why, sizeof(pi->class_why), "%s", why);
	}
	pthread_mutex_unlock(&pi->mu);
	return asgi;
}

/* [GIL held] Serves the imported app until stopped: ASGI on its event loop (asgi.h), WSGI
 * here. Returns 0, or -1 after reporting a failure to start. */
static int run_app(hb_pythread_t *t)
{
	hb_pyinterp_t *pi = t->pi;

	if (use_asgi(pi)) {
		hb_asgi_hooks_t hooks = {
			.ready = asgi_ready, .served = asgi_served, .wake = asgi_wake, .ud = t};
		/* Watched where the watchdog would act on it (watchdog.h). */
		if (pi->cfg->timeout_ms > 0 && pi->cfg->worker_kill_timeout_s > 0)
			hooks.loop = asgi_loop;

		hb_asgi_run(pi->cfg, pi->hub, t->slot, pi->app, &hooks);
		return 0;
	}
	if (hb_wsgi_app_init(&t->app, pi->app, pi->cfg, pi->nthreads > 1) < 0) {
		report(pi, HB_PYW_FAIL_START, hb_pyerr_format(), NULL);
		return -1;
	}
	mark_accepting(t);
	serve(t);
	return 0;
}

/* ---- threads ---- */

static void *thread_main(void *arg);

static int spawn_thread(hb_pythread_t *t)
{
	/* Worker threads never take signals: the main thread waits for them. */
	int rc = hb_thread_start(&t->tid, thread_main, t);

	if (rc == 0)
		t->started = 1;
	return rc;
}

/* Non-primary thread (and every thread in main mode): a new thread state in pi->interp. */
static void run_peer(hb_pythread_t *t)
{
	hb_pyinterp_t *pi = t->pi;

	t->ts = PyThreadState_New(pi->interp);
	if (!t->ts) {
		report(pi, HB_PYW_FAIL_START, strdup("cannot create a thread state\n"), NULL);
		return;
	}
	PyEval_RestoreThread(t->ts);
	run_app(t);
	hb_wsgi_app_clear(&t->app);
	PyThreadState_Clear(t->ts);
	PyThreadState_DeleteCurrent();
	t->ts = NULL;
	pthread_mutex_lock(&pi->mu);
	pi->peers_done++;
	pthread_cond_broadcast(&pi->cv);
	pthread_mutex_unlock(&pi->mu);
}

/* A sub-interpreter with its own GIL, current on this thread. NULL with *why set. */
static PyThreadState *new_subinterpreter(const char **why)
{
#if !HB_PY_SUBINTERPRETERS
	*why = "this build embeds Python " PY_VERSION ", which has no per-interpreter GIL "
	       "(3.12+): use interpreter = \"main\"";
	return NULL;
#else
	PyInterpreterConfig config = {
		.use_main_obmalloc = 0,
		.allow_fork = 0,
		.allow_exec = 0,
		.allow_threads = 1,
		.allow_daemon_threads = 0,
		.check_multi_interp_extensions = 1,
		.gil = PyInterpreterConfig_OWN_GIL,
	};
	PyThreadState *ts = NULL;
	PyStatus st = Py_NewInterpreterFromConfig(&ts, &config);

	if (PyStatus_Exception(st)) {
		*why = st.err_msg ? st.err_msg : "unknown error";
		return NULL;
	}
	return ts;
#endif
}

/* Imports the app and starts the other threads. Returns 0, or -1 after reporting. */
static int primary_setup(hb_pythread_t *t)
{
	hb_pyinterp_t *pi = t->pi;

	pi->app = hb_pyinterp_import_app(pi->cfg);
	if (!pi->app) {
		report_import_error(pi);
		return -1;
	}
	if (hb_pyinterp_bind_jobs(pi) < 0) {
		report(pi, HB_PYW_FAIL_START, hb_pyerr_format(), NULL);
		return -1;
	}
	for (int i = 1; i < pi->nthreads; i++) {
		if (spawn_thread(&pi->threads[i]) < 0) {
			report(pi, HB_PYW_FAIL_START, strdup("cannot start a worker thread\n"),
			       NULL);
			return -1;
		}
	}
	return 0;
}

/* Waits (GIL released) until every other thread deleted its thread state. */
static void wait_peers(hb_pyinterp_t *pi)
{
	int started = 0;

	for (int i = 1; i < pi->nthreads; i++)
		started += pi->threads[i].started;
	Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&pi->mu);
	while (pi->peers_done < started)
		pthread_cond_wait(&pi->cv, &pi->mu);
	pthread_mutex_unlock(&pi->mu);
	Py_END_ALLOW_THREADS
}

/* The primary thread of an isolated worker: the interpreter lives and dies here. */
static void run_primary(hb_pythread_t *t)
{
	hb_pyinterp_t *pi = t->pi;
	const char *why = NULL;
	char msg[256];

	t->ts = new_subinterpreter(&why);
	if (!t->ts) {
		snprintf(msg, sizeof(msg), "cannot create a sub-interpreter: %s\n", why);
		report(pi, HB_PYW_FAIL_START, strdup(msg), NULL);
		return;
	}
	pi->interp = PyThreadState_GetInterpreter(t->ts);
	/* The app runs on a second thread state of this thread, cleared while the interpreter is
	 * whole. Its thread-local data (threading.local, and the _DummyThread that
	 * threading.current_thread() makes for a thread `threading` did not start: logging asks
	 * for one per record) is released by PyThreadState_Clear, as a peer's is. Left on the
	 * state Py_EndInterpreter ends, it would be released after the modules are torn down,
	 * where _DeleteDummyThreadOnDel.__del__ fails ("Exception ignored in: ..."). */
	PyThreadState *work = PyThreadState_New(pi->interp);
	if (!work) {
		report(pi, HB_PYW_FAIL_START, strdup("cannot create a thread state\n"), NULL);
		Py_EndInterpreter(t->ts);
		t->ts = NULL;
		return;
	}
	PyThreadState_Swap(work);
	if (primary_setup(t) < 0 || run_app(t) < 0)
		stop_slots(pi); /* peers already started see -ESHUTDOWN */
	wait_peers(pi);
	Py_BEGIN_ALLOW_THREADS hb_watchdog_ending(pi);
	Py_END_ALLOW_THREADS hb_wsgi_app_clear(&t->app);
	Py_CLEAR(pi->app);
	PyThreadState_Swap(t->ts);
	PyThreadState_Clear(work);
	PyThreadState_Delete(work);
	Py_EndInterpreter(t->ts);
	t->ts = NULL;
}

static void *thread_main(void *arg)
{
	hb_pythread_t *t = arg;
	hb_pyinterp_t *pi = t->pi;
	const hb_config_t *cfg = pi->cfg;
	char name[16];

	snprintf(name, sizeof(name), "hb-py%d.%d", pi->id, t->index);
	pthread_setname_np(pthread_self(), name);
	if (cfg->cpu_affinity && cfg->ncpus > 0 && cfg->cpus)
		(void)hb_cpu_pin(cfg->cpus[pi->position % cfg->ncpus]);
	if (t->index == 0 && !pi->main_mode)
		run_primary(t);
	else
		run_peer(t);
	return NULL;
}

/* ---- the pool's side ---- */

hb_pyinterp_t *hb_pyinterp_new(const hb_config_t *cfg, hb_hub_t *hub, int id, int position,
			       const int *slots, int nthreads, int main_mode, PyObject *app)
{
	hb_pyinterp_t *pi = calloc(1, sizeof(*pi));

	if (!pi || !(pi->threads = calloc((size_t)nthreads, sizeof(*pi->threads)))) {
		free(pi);
		return NULL;
	}
	pi->cfg = cfg;
	pi->hub = hub;
	pi->id = id;
	pi->position = position;
	pi->main_mode = main_mode;
	pi->nthreads = nthreads;
	pthread_mutex_init(&pi->mu, NULL);
	pthread_cond_init(&pi->cv, NULL);
	if (main_mode) {
		pi->interp = PyInterpreterState_Main();
		pi->app = Py_NewRef(app);
	}
	for (int i = 0; i < nthreads; i++) {
		pi->threads[i].pi = pi;
		pi->threads[i].index = i;
		pi->threads[i].slot = slots[i];
		/* A recycled slot was stopped by its previous owner. */
		atomic_store(&hb_hub_worker(hub, slots[i])->stopping, 0);
	}
	return pi;
}

int hb_pyinterp_bind_jobs(hb_pyinterp_t *pi)
{
	int *slots = PyMem_Calloc((size_t)pi->nthreads, sizeof(int));

	if (!slots) {
		PyErr_NoMemory();
		return -1;
	}
	for (int i = 0; i < pi->nthreads; i++)
		slots[i] = pi->threads[i].slot;
	pi->jobs = hb_pyapi_worker_bind(pi->cfg, pi->hub, slots, pi->nthreads, pi->position);
	PyMem_Free(slots);
	return pi->jobs ? 0 : -1;
}

int hb_pyinterp_spawn(hb_pyinterp_t *pi)
{
	int n = pi->main_mode ? pi->nthreads : 1; /* the primary starts the others */

	for (int i = 0; i < n; i++) {
		int rc = spawn_thread(&pi->threads[i]);

		if (rc < 0) {
			report(pi, HB_PYW_FAIL_START, strdup("cannot start a worker thread\n"),
			       NULL);
			stop_slots(pi);
			return rc;
		}
	}
	if (hb_watchdog_start(pi) < 0)
		hb_warn("worker %d: cannot start its timeout watchdog: requests past timeout get "
			"504 but are not stopped",
			pi->id);
	return 0;
}

int hb_pyinterp_wait_ready(hb_pyinterp_t *pi)
{
	int failed;

	pthread_mutex_lock(&pi->mu);
	while (!pi->failed && pi->nready < pi->nthreads)
		pthread_cond_wait(&pi->cv, &pi->mu);
	failed = pi->failed;
	pthread_mutex_unlock(&pi->mu);
	if (failed)
		stop_slots(pi);
	return failed;
}

void hb_pyinterp_retire(hb_pyinterp_t *pi)
{
	stop_slots(pi);
}

int hb_pyinterp_join(hb_pyinterp_t *pi, uint64_t deadline_ns)
{
	for (int i = 0; i < pi->nthreads; i++) {
		hb_pythread_t *t = &pi->threads[i];
		struct timespec ts = {(time_t)(deadline_ns / 1000000000u),
				      (long)(deadline_ns % 1000000000u)};
		int rc;

		if (!t->started)
			continue;
		rc = deadline_ns ? pthread_clockjoin_np(t->tid, NULL, CLOCK_MONOTONIC, &ts)
				 : pthread_join(t->tid, NULL);
		if (rc)
			return -ETIMEDOUT; /* the watchdog keeps watching what still runs */
		t->started = 0;
	}
	hb_watchdog_stop(pi);
	return 0;
}

void hb_pyinterp_free(hb_pyinterp_t *pi)
{
	if (!pi)
		return;
	if (pi->main_mode)
		Py_CLEAR(pi->app);
	pthread_mutex_destroy(&pi->mu);
	pthread_cond_destroy(&pi->cv);
	free(pi->error);
	free(pi->bad_module);
	free(pi->threads);
	free(pi);
}
