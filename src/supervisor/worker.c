/* worker.c: a worker process (worker.h): start Python and the app, serve, wait for the
 * master's signals, drain, exit. */
#include "supervisor/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "cluster/node.h"
#include "core/hub.h"
#include "core/log.h"
#include "core/ring.h"
#include "python/pyapi.h"
#include "python/pyhost.h"
#include "python/venv.h"
#include "python/watchdog.h"
#include "server/about.h"
#include "server/access_log.h"
#include "server/io.h"
#include "server/listener.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/server.h"
#include "server/tls_setup.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#define NS 1000000000ull
#define CLUSTER_RETRY_NS (10 * NS) /* a new generation's node waits for the old one to leave */

typedef struct worker {
	hb_config_t *cfg;
	const hb_worker_args_t *a;
	hb_server_t srv;
	hb_tls_setup_t tls;
	hb_cluster_t *cluster;
	struct hb_tls_ctx *cluster_tls; /* node links' (cluster_tls), built before ready */
	hb_metrics_http_t *metrics_http;
	hb_access_fmt_t *access_fmt;
	int cluster_left_busy;	      /* a served call outlived the stop: the node was not freed */
	uint64_t cluster_retry_until; /* 0: no retry */
	uint64_t deadline;	      /* graceful stop: force after this (0: none yet) */
	uint64_t ws_deadline;	      /* retiring: connections cut after this */
	char python[600];	      /* the embedded Python, described while its GIL is ours */
} worker_t;

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void node_event(const hb_swim_event_t *ev, void *ud)
{
	(void)ud;
	if (ev->type == HB_SWIM_EV_JOIN || ev->type == HB_SWIM_EV_DEAD ||
	    ev->type == HB_SWIM_EV_LEAVE)
		hb_pyapi_node_event(ev->type == HB_SWIM_EV_JOIN	  ? "join"
				    : ev->type == HB_SWIM_EV_DEAD ? "dead"
								  : "leave",
				    ev->name);
}

/* The metrics' cluster source: live members, this node and the others nodes() lists. The
 * metrics thread calls it while the main thread may stop the node (a reload, a stop): the
 * mutex keeps the node alive for the count. */
static pthread_mutex_t members_mu = PTHREAD_MUTEX_INITIALIZER;
static hb_cluster_t *members_cl; /* under members_mu */

static int cluster_members(void *ud)
{
	char **names = NULL;
	int n = -1;

	(void)ud;
	pthread_mutex_lock(&members_mu);
	if (members_cl)
		n = hb_cluster_nodes(members_cl, &names);
	pthread_mutex_unlock(&members_mu);
	if (n >= 0)
		hb_cluster_names_free(names, n);
	return n >= 0 ? n + 1 : n;
}

static void set_members(hb_cluster_t *cl)
{
	pthread_mutex_lock(&members_mu);
	members_cl = cl;
	pthread_mutex_unlock(&members_mu);
}

/* metrics_bind: the counters and their HTTP thread, up before the app is imported so that
 * /healthz answers and /readyz says 503 while it starts. Only the first process of a
 * generation serves it (its counters are that process's); the socket is SO_REUSEPORT so that a
 * reload's new generation can bind it beside the old. Returns 0 or -1 after logging. */
static int start_metrics(worker_t *w)
{
	const hb_config_t *cfg = w->cfg;
	char err[512] = "";
	hb_metrics_sources_t src = {.state = hb_pyapi_stats, .members = cluster_members};

	if (!cfg->metrics_bind || w->a->slot != 0)
		return 0;
	w->srv.metrics = hb_metrics_new(&w->srv, cfg->metrics_buckets, &src);
	if (!w->srv.metrics) {
		hb_error("metrics: out of memory");
		return -1;
	}
	hb_hub_time_waits(w->srv.hub);
	if (hb_metrics_http_start(cfg->metrics_bind, w->srv.metrics, &w->metrics_http, err,
				  sizeof(err)) < 0) {
		hb_error("%s", err);
		return -1;
	}
	hb_info("Metrics at: http://%s/metrics (also /healthz, /readyz)", cfg->metrics_bind);
	return 0;
}

/* error_log: descriptor 2 becomes the file, so the error log, Python's stderr (tracebacks,
 * the logging module's default handler) and anything else written there land in it. */
static int point_stderr(const char *path)
{
	if (!path || strcmp(path, "-") == 0)
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = dup2(fd, STDERR_FILENO) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static void ignore(int sig)
{
	(void)sig;
}

/* The master's mask blocks every signal it handles; here only the ones this main thread waits
 * for stay blocked (every thread inherits that). The others get an empty handler, not SIG_IGN:
 * a handler is reset by exec, so the app's subprocesses get the default dispositions back. */
static void worker_signals(sigset_t *set)
{
	sigset_t unblock;
	struct sigaction sa = {.sa_handler = ignore};
	static const int others[] = {SIGCHLD, SIGUSR2,	 SIGTTIN, SIGTTOU, SIGWINCH,
				     SIGALRM, SIGVTALRM, SIGPROF, SIGIO,   SIGPWR};

	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGQUIT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	sigemptyset(&unblock);
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		if (others[i] != SIGCHLD)
			sigaction(others[i], &sa, NULL);
		sigaddset(&unblock, others[i]);
	}
	signal(SIGCHLD, SIG_DFL);
	pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
}

/* This process's share of the CPUs: slot k takes the workers after the first k * workers. */
static void cpu_share(hb_config_t *cfg, int slot)
{
	if (slot <= 0 || cfg->ncpus <= 1)
		return;
	int *rot = malloc((size_t)cfg->ncpus * sizeof *rot);
	if (!rot)
		return;
	for (int i = 0; i < cfg->ncpus; i++)
		rot[i] = cfg->cpus[((size_t)slot * (size_t)cfg->workers + (size_t)i) %
				   (size_t)cfg->ncpus];
	free(cfg->cpus);
	cfg->cpus = rot;
}

static void wake_io(hb_server_t *srv)
{
	for (int i = 0; i < srv->nio; i++)
		hb_ring_wakeup(hb_hub_io_wake(srv->hub, i)->efd);
}

static int start_io(hb_server_t *srv, hb_io_t **ios, pthread_t *th)
{
	atomic_store(&srv->io_running, srv->nio);
	for (int i = 0; i < srv->nio; i++) {
		ios[i] = hb_io_new(srv, i);
		if (!ios[i] || pthread_create(&th[i], NULL, hb_io_main, ios[i]) != 0) {
			hb_error("cannot start io thread %d", i);
			return -1;
		}
	}
	return 0;
}

static void try_cluster(worker_t *w)
{
	hb_funcs_t *funcs;
	hb_pubsub_t *ps;

	hb_pyapi_registries(&funcs, &ps);
	int rc = hb_cluster_start_config(w->cfg, w->cluster_tls, node_event, NULL, funcs, ps,
					 hb_pyapi_bus(), &w->cluster);
	if (rc == 0) {
		w->cluster_retry_until = 0;
		hb_pyapi_set_remote(hb_cluster_remote(w->cluster));
		set_members(w->cluster);
		return;
	}
	w->cluster = NULL;
	if (w->cluster_retry_until && mono_ns() < w->cluster_retry_until && rc == -EADDRINUSE)
		return; /* the retiring generation's node still holds the address */
	hb_error("cluster: cannot start on %s: %s", w->cfg->cluster_bind, strerror(-rc));
	if (!w->cluster_retry_until) {
		fflush(NULL);
		_exit(1); /* workers are running: do not run exit handlers under them */
	}
	w->cluster_retry_until = 0;
}

static void stop_cluster(worker_t *w)
{
	if (!w->cluster)
		return;
	hb_pyapi_set_remote(NULL); /* waits for workers inside a cluster call */
	set_members(NULL);
	w->cluster_left_busy |= hb_cluster_stop(w->cluster, 1);
	w->cluster = NULL;
}

/* TERM/INT: stop accepting, finish what is in flight within graceful_timeout. A retiring
 * process told to stop closes its WebSockets too. */
static void graceful(worker_t *w, int sig)
{
	int draining = atomic_load(&w->srv.draining);

	if (draining == 0 || atomic_load(&w->srv.retiring)) {
		hb_info("Shutting down: graceful (%s), up to %llds", strsignal(sig),
			(long long)w->cfg->graceful_timeout_s);
		w->deadline = mono_ns() + (uint64_t)w->cfg->graceful_timeout_s * NS;
		atomic_store(&w->srv.retiring, 0);
		atomic_store(&w->srv.draining, 1);
		/* Subscribers blocked in get() or async iteration end now, so requests and sockets
		 * waiting on them can finish within the drain. */
		hb_pyapi_shutdown();
	} else {
		hb_info("Shutting down: now (second signal)");
		atomic_store(&w->srv.draining, 2);
	}
}

/* HUP from the master: a new generation serves; this one stops accepting and finishes, but
 * cuts no connection: its WebSockets stay on this code until they close or
 * reload_websocket_timeout passes, HTTP/1.1 ones end with their next response (a client
 * racing a close of an idle keep-alive connection would see an error). */
static void retire(worker_t *w)
{
	uint64_t now = mono_ns();

	if (atomic_load(&w->srv.draining))
		return;
	hb_info("Retiring (generation %u): finishing requests in flight, WebSockets kept up to "
		"%llds",
		w->a->generation, (long long)w->cfg->reload_websocket_timeout_s);
	w->deadline = now + (uint64_t)w->cfg->graceful_timeout_s * NS;
	w->ws_deadline = now + (uint64_t)w->cfg->reload_websocket_timeout_s * NS;
	atomic_store(&w->srv.retiring, 1);
	atomic_store(&w->srv.draining, 1);
	stop_cluster(w); /* the new generation's node takes the address */
}

static void on_signal(worker_t *w, int sig)
{
	if (sig == SIGHUP) {
		retire(w);
	} else if (sig == SIGTERM || sig == SIGINT) {
		graceful(w, sig);
	} else if (sig == SIGQUIT) {
		hb_info("Shutting down: now (SIGQUIT)");
		atomic_store(&w->srv.draining, 2);
	} else if (sig == SIGUSR1) {
		int rc = hb_log_reopen(w->cfg->access_log);
		if (rc < 0)
			hb_error("SIGUSR1: cannot reopen the access log '%s': %s",
				 w->cfg->access_log, strerror(-rc));
	}
	if (sig > 0 && sig != SIGUSR1)
		wake_io(&w->srv);
}

/* Waits for signals; returns once every io thread has finished draining (or was forced). */
static void supervise(worker_t *w, const sigset_t *set)
{
	struct timespec tick = {0, 100 * 1000000L};

	while (atomic_load(&w->srv.io_running) > 0) {
		on_signal(w, sigtimedwait(set, NULL, &tick));
		uint64_t now = mono_ns();
		if (w->cluster_retry_until && !w->cluster && !atomic_load(&w->srv.draining))
			try_cluster(w);
		if (atomic_load(&w->srv.retiring) && now > w->ws_deadline) {
			hb_info("reload_websocket_timeout: closing the WebSockets left on this "
				"code");
			atomic_store(&w->srv.retiring, 0);
			hb_pyapi_shutdown();
			if (w->deadline < now + (uint64_t)w->cfg->graceful_timeout_s * NS)
				w->deadline = now + (uint64_t)w->cfg->graceful_timeout_s * NS;
			wake_io(&w->srv);
		}
		if (w->deadline && now > w->deadline && atomic_load(&w->srv.draining) == 1 &&
		    !atomic_load(&w->srv.retiring)) {
			hb_warn("graceful timeout: closing remaining connections");
			atomic_store(&w->srv.draining, 2);
			wake_io(&w->srv);
		}
	}
}

/* The first process of a generation says what it serves (the master said where). */
static void log_start(const worker_t *w, const char *class_why)
{
	const hb_config_t *cfg = w->cfg;
	char libs[300], site[4200] = "", err[512];

	hb_info("Using worker: %s (%s%s), %d processes x %d workers x %d threads, %d io threads "
		"each (generation %u)",
		w->srv.app_class == HB_WORKER_ASGI ? "asgi" : "wsgi",
		cfg->worker_class == HB_WORKER_AUTO ? "worker_class = auto: " : "", class_why,
		cfg->processes, cfg->workers, cfg->threads, w->srv.nio, w->a->generation);
	hb_about_libs(libs, sizeof(libs));
	if (hb_venv_site_packages(cfg, site, sizeof(site), err, sizeof(err)) < 0)
		site[0] = '\0';
	hb_info("Embedded %s; %s%s%s", w->python, libs, site[0] ? "; venv site-packages " : "",
		site);
	if (cfg->timeout_ms > 0 && cfg->timeout_ms < 1000)
		hb_warn("timeout is %lld ms, below 1 s: a request whose response has not started "
			"by then gets 504 (a bare --timeout is seconds; 30000 ms is \"30000ms\")",
			(long long)cfg->timeout_ms);
}

static _Noreturn void fail(int status, const char *what, const char *err)
{
	hb_error("%s%s", what, err);
	fflush(NULL);
	_exit(status);
}

/* A watchdog thread: a request still runs worker_kill_timeout after its WorkerTimeout. The master
 * starts a successor for this slot, then retires this process (as for max_worker_rss). */
static void ask_replace(void *ud, int worker, uint64_t ms)
{
	const hb_worker_args_t *a = ud;

	(void)worker;
	(void)ms;
	if (kill(a->master, HB_SIG_REPLACE) < 0)
		hb_error("cannot ask the master to replace this process: %s", strerror(errno));
}

/* Ready: tells the master, which listens on this process's sockets (only it does: it keeps
 * the order of the SO_REUSEPORT groups, steer.h) and answers; only now may clients connect (a
 * load balancer probing the port sees a refusal while the app imports). 'S' instead: a stop
 * is on its way and nothing listened (the master closed the listeners). No answer: the master
 * could not listen (it logged why). */
static void await_listen(worker_t *w)
{
	char c = 0;
	ssize_t n;

	if (write(w->a->ready_fd, "R", 1) != 1)
		fail(2, "cannot tell the master this process is ready: ", strerror(errno));
	do
		n = read(w->a->ready_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	close(w->a->ready_fd);
	if (n != 1)
		fail(2, "the master did not listen for this process (its log says why)", "");
}

/* Starts Python, the app and the io threads. Exits the process on failure. */
static void start(worker_t *w, hb_pyhost_t **host, hb_io_t ***ios, pthread_t **th)
{
	hb_config_t *cfg = w->cfg;
	char err[1024] = "";

	if (hb_log_init((hb_log_level_t)cfg->log_level, cfg->access_log) < 0) {
		snprintf(err, sizeof err, "access_log: cannot open '%s': %s", cfg->access_log,
			 strerror(errno));
		fail(2, "", err);
	}
	int rc = point_stderr(cfg->error_log);
	if (rc < 0) {
		snprintf(err, sizeof err, "error_log: cannot open '%s': %s", cfg->error_log,
			 strerror(-rc));
		fail(2, "", err);
	}
	if (hb_py_init() < 0)
		_exit(1);
	hb_py_describe(w->python, sizeof(w->python));
	if (hb_tls_setup_init(&w->tls, cfg, hb_tls_setup_served(cfg), err, sizeof(err)) < 0)
		fail(2, "", err);
	/* The node's certificates are read now, before this process is ready: a bad file stops
	 * the start, and fails a reload (SIGHUP) while the old generation's node keeps its links
	 * and its pair. The node itself starts once listening (try_cluster). */
	if (cfg->cluster_enabled && w->a->slot == 0 &&
	    hb_cluster_tls_new(cfg, &w->cluster_tls, err, sizeof(err)) < 0)
		fail(2, "cluster: ", err);
	w->access_fmt = cfg->access_log ? hb_access_compile(cfg->access_log_format) : NULL;
	if (cfg->access_log && !w->access_fmt)
		fail(1, "out of memory", "");
	w->srv = (hb_server_t){
		.cfg = cfg, .nio = w->a->nio, .tls = &w->tls, .access_fmt = w->access_fmt};
	w->srv.listen_fds = w->a->listen_fds;
	w->srv.hub = hb_hub_new(w->srv.nio, hb_py_max_workers(cfg));
	if (!w->srv.hub)
		fail(1, "cannot create the worker hub", "");
	hb_overload_t *ov = hb_hub_overload(w->srv.hub); /* backpressure, per process */
	ov->limit_concurrency = cfg->limit_concurrency;
	ov->max_queue_wait_ns = (uint64_t)cfg->max_queue_wait_ms * 1000000ull;
	ov->retry_after_s = cfg->retry_after_s;
	hb_watchdog_on_stuck(ask_replace, (void *)w->a);
	if (hb_pyapi_start(cfg, w->srv.hub) < 0 || start_metrics(w) < 0 ||
	    hb_py_start(cfg, w->srv.hub, host) < 0) {
		fflush(NULL);
		_exit(1);
	}
	/* The io threads route WebSocket upgrades by the class the workers serve. */
	char class_why[200];
	w->srv.app_class = hb_py_app_class(*host, class_why, sizeof(class_why));
	if (w->a->slot == 0)
		log_start(w, class_why);
	await_listen(w);
	if (cfg->cluster_enabled && w->a->slot == 0) {
		w->cluster_retry_until = w->a->generation > 1 ? mono_ns() + CLUSTER_RETRY_NS : 0;
		try_cluster(w);
	}
	if (w->srv.metrics) {
		hb_metrics_set_ud(w->srv.metrics, &w->srv); /* members: members_cl */
		hb_metrics_set_ready(w->srv.metrics, 1);
	}
	*ios = calloc((size_t)w->srv.nio, sizeof(**ios));
	*th = calloc((size_t)w->srv.nio, sizeof(**th));
	if (!*ios || !*th || start_io(&w->srv, *ios, *th) < 0) {
		fflush(NULL);
		_exit(1);
	}
}

_Noreturn void hb_worker_run(hb_config_t *cfg, const hb_worker_args_t *a)
{
	worker_t w = {.cfg = cfg, .a = a};
	hb_pyhost_t *host = NULL;
	hb_io_t **ios = NULL;
	pthread_t *th = NULL;
	sigset_t set;

	worker_signals(&set);
	/* The master killed (kill -9, the OOM killer): the server is gone, this process with it,
	 * as a single process was (a stop is the master's TERM, which drains). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != a->master)
		_exit(0);
	hb_inflight_set_process(a->inflight); /* before any thread: the app's requests go there */
	cpu_share(cfg, a->slot);
	start(&w, &host, &ios, &th);
	supervise(&w, &set);
	stop_cluster(&w); /* leave first: the others mark this node left, not dead */
	int forced = atomic_load(&w.srv.draining) == 2;
	for (int i = 0; i < w.srv.nio; i++) {
		pthread_join(th[i], NULL);
		hb_io_free(ios[i]);
	}
	free(ios);
	free(th);
	/* Closed, not hb_listener_close_all: a unix socket's file belongs to the master (the
	 * other processes, and the next generation, still serve on it). */
	for (int i = 0; i < w.srv.nio; i++)
		for (size_t b = 0; b < cfg->nbinds; b++)
			close(w.srv.listen_fds[i][b]);
	hb_tls_setup_free(&w.tls);
	hb_tls_ctx_unref(w.cluster_tls);      /* the node took its own reference */
	hb_metrics_http_stop(w.metrics_http); /* before the cluster and the shared state go */
	uint64_t stop_by = mono_ns() + (forced ? 1 : 5) * NS;
	hb_pyapi_shutdown(); /* again: idempotent, and the first signal may have been SIGQUIT */
	hb_py_stop(host, stop_by);
	/* Objects of the main interpreter (interpreter = "main") still point at the registries
	 * until it is finalized. After a forced stop workers may still run: leave both to exit. */
	if (!forced) {
		hb_py_finalize();
		hb_pyapi_stop();
	}
	hb_metrics_free(w.srv.metrics);
	hb_access_fmt_free(w.access_fmt);
	fflush(NULL);
#ifdef __SANITIZE_ADDRESS__
	/* forced: workers may still run Python, holding what they hold; a node left busy is
	 * deliberately not freed (a worker still ran a call for another node). */
	if (!forced && !w.cluster_left_busy)
		__lsan_do_leak_check(); /* reports (exit 23) or returns */
#endif
	_exit(0);
}
