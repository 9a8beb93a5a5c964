/* main.c: the hornbeam-uring process. The main thread loads the configuration, binds the
 * listeners, starts the python workers, listens once every worker is ready (app imported, ASGI
 * lifespan started: until then a connect is refused), starts the io threads, then only waits for
 * signals and runs the shutdown sequence: stop accepting, drain within graceful_timeout, stop
 * workers. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/node.h"
#include "core/config.h"
#include "core/hub.h"
#include "core/log.h"
#include "core/ring.h"
#include "python/pyapi.h"
#include "python/pyhost.h"
#include "python/venv.h"
#include "server/about.h"
#include "server/access_log.h"
#include "server/fdlimit.h"
#include "server/io.h"
#include "server/listener.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/server.h"
#include "server/tls_setup.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
/* CPython is still up on the early exits, its pymalloc arenas hiding live references from LSan:
 * the leak check runs once Python is finalized (end of main), not at every exit. */
const char *__lsan_default_options(void)
{
	return "leak_check_at_exit=0";
}
#endif

extern char **environ;

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Cluster membership (cluster thread) -> nodes() and the "hornbeam:nodes" topic. */
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

/* The metrics' cluster source: live members, this node and the others nodes() lists. */
static int cluster_members(void *ud)
{
	char **names = NULL;
	int n = hb_cluster_nodes(ud, &names);

	if (n >= 0)
		hb_cluster_names_free(names, n);
	return n >= 0 ? n + 1 : n;
}

/* metrics_bind: the counters and their HTTP thread, up before the app is imported so that
 * /healthz answers and /readyz says 503 while it starts. Returns 0 or -1 after printing. */
static int start_metrics(hb_server_t *srv, hb_metrics_http_t **http)
{
	const hb_config_t *cfg = srv->cfg;
	char err[512] = "";
	hb_metrics_sources_t src = {.state = hb_pyapi_stats, .members = cluster_members};

	if (!cfg->metrics_bind)
		return 0;
	srv->metrics = hb_metrics_new(srv, cfg->metrics_buckets, &src);
	if (!srv->metrics) {
		fprintf(stderr, "hornbeam-uring: metrics: out of memory\n");
		return -1;
	}
	hb_hub_time_waits(srv->hub);
	if (hb_metrics_http_start(cfg->metrics_bind, srv->metrics, http, err, sizeof(err)) < 0) {
		fprintf(stderr, "hornbeam-uring: %s\n", err);
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

static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGQUIT);
	sigaddset(set, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits the mask and only the main
	 * thread receives them, through sigtimedwait. */
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int **alloc_fds(int nio, size_t nbinds)
{
	int **fds = calloc((size_t)nio, sizeof(int *));
	for (int i = 0; fds && i < nio; i++) {
		fds[i] = malloc(nbinds * sizeof(int));
		if (!fds[i])
			return NULL;
		for (size_t b = 0; b < nbinds; b++)
			fds[i][b] = -1;
	}
	return fds;
}

static void wake_io(hb_server_t *srv)
{
	for (int i = 0; i < srv->nio; i++)
		hb_ring_wakeup(hb_hub_io_wake(srv->hub, i)->efd);
}

static void log_listening(const hb_server_t *srv, const char *class_why)
{
	const hb_config_t *cfg = srv->cfg;
	hb_worker_class_t cls = srv->app_class;
	int nio = srv->nio;

	hb_info("Starting hornbeam-uring %s", HB_VERSION);
	for (size_t b = 0; b < cfg->nbinds; b++) {
		char addr[320];
		const hb_bind_t *bd = &cfg->binds[b];

		/* The address as bound: the port the kernel chose for :0, 8000 for a bare host. */
		if (hb_listener_address(srv->listen_fds[0][b], addr, sizeof(addr)) < 0)
			snprintf(addr, sizeof(addr), "%s", bd->spec);
		hb_info("Listening at: %s%s%s%s%s (%d)",
			addr[0] == 'u' ? (bd->tls ? "tls+" : "")
			: bd->tls      ? "https://"
				       : "http://",
			addr, bd->fd_bind ? " (" : "", bd->fd_bind ? bd->spec : "",
			bd->fd_bind ? ")" : "", (int)getpid());
	}
	hb_info("Using worker: %s (%s%s), %d workers x %d threads, %d io threads",
		cls == HB_WORKER_ASGI ? "asgi" : "wsgi",
		cfg->worker_class == HB_WORKER_AUTO ? "worker_class = auto: " : "", class_why,
		cfg->workers, cfg->threads, nio);
	if (cfg->timeout_ms > 0 && cfg->timeout_ms < 1000)
		hb_warn("timeout is %lld ms, below 1 s: a request whose response has not started "
			"by then gets 504 (a bare --timeout is seconds; 30000 ms is \"30000ms\")",
			(long long)cfg->timeout_ms);
}

/* SIGHUP: the certificates and keys are read again; new connections get them, open ones keep
 * theirs, a bad file leaves the current ones serving. (Issue 9 makes HUP a full reload.) */
static void reload(hb_server_t *srv)
{
	char err[1024] = "";
	if (!srv->tls || !srv->tls->live) {
		hb_info("SIGHUP: nothing to reload (TLS is off)");
		return;
	}
	if (hb_tls_setup_reload(srv->tls, srv->cfg, hb_tls_setup_served(srv->cfg), err,
				sizeof(err)) < 0)
		hb_error("SIGHUP: TLS reload failed, the current certificates stay: %s", err);
	else
		hb_info("SIGHUP: TLS certificates and keys reloaded");
}

/* Waits for the signals; returns once every io thread has finished draining (or was forced). */
static void supervise(hb_server_t *srv, const sigset_t *set)
{
	uint64_t deadline = 0;
	struct timespec tick = {0, 100 * 1000000L};

	while (atomic_load(&srv->io_running) > 0) {
		int sig = sigtimedwait(set, NULL, &tick);
		int draining = atomic_load(&srv->draining);
		if (sig == SIGHUP) {
			reload(srv);
		} else if (sig == SIGTERM || sig == SIGINT) {
			if (draining == 0) {
				hb_info("Shutting down: graceful (%s), up to %llds", strsignal(sig),
					(long long)srv->cfg->graceful_timeout_s);
				deadline = mono_ns() +
					   (uint64_t)srv->cfg->graceful_timeout_s * 1000000000ull;
				atomic_store(&srv->draining, 1);
				/* Subscribers blocked in get() or async iteration end now, so
				 * requests and sockets waiting on them can finish within the drain.
				 */
				hb_pyapi_shutdown();
			} else {
				hb_info("Shutting down: now (second signal)");
				atomic_store(&srv->draining, 2);
			}
			wake_io(srv);
		} else if (sig == SIGQUIT) {
			hb_info("Shutting down: now (SIGQUIT)");
			atomic_store(&srv->draining, 2);
			wake_io(srv);
		}
		if (deadline && mono_ns() > deadline && atomic_load(&srv->draining) == 1) {
			hb_warn("graceful timeout: closing remaining connections");
			atomic_store(&srv->draining, 2);
			wake_io(srv);
		}
	}
}

/* Raises the soft descriptor limit to the hard one; says once, with the numbers, when the
 * configuration asks for more connections than the limit allows (as nginx does). */
static void check_fd_limit(const hb_config_t *cfg, int nio)
{
	struct rlimit lim;
	int rc = hb_fdlimit_raise(&lim);

	if (rc < 0)
		hb_warn("RLIMIT_NOFILE: cannot raise the soft limit %llu to the hard limit %llu: "
			"%s",
			(unsigned long long)lim.rlim_cur, (unsigned long long)lim.rlim_max,
			strerror(-rc));
	uint64_t reserve = hb_fdlimit_reserve(cfg, nio, cfg->workers * cfg->threads);
	uint64_t need = (uint64_t)cfg->max_connections + reserve;
	if (lim.rlim_cur == RLIM_INFINITY || need <= (uint64_t)lim.rlim_cur)
		return;
	hb_warn("max_connections = %lld needs about %llu descriptors (%lld + %llu for listeners, "
		"rings, workers and the app) but RLIMIT_NOFILE is %llu (hard limit %llu): past "
		"about "
		"%llu connections accepts fail with EMFILE; raise the hard limit (ulimit -Hn, "
		"systemd LimitNOFILE=) or lower max_connections",
		(long long)cfg->max_connections, (unsigned long long)need,
		(long long)cfg->max_connections, (unsigned long long)reserve,
		(unsigned long long)lim.rlim_cur, (unsigned long long)lim.rlim_max,
		(unsigned long long)(lim.rlim_cur > reserve ? lim.rlim_cur - reserve : 0));
}

static int start_io(hb_server_t *srv, hb_io_t **ios, pthread_t *th)
{
	atomic_store(&srv->io_running, srv->nio);
	for (int i = 0; i < srv->nio; i++) {
		ios[i] = hb_io_new(srv, i);
		if (!ios[i] || pthread_create(&th[i], NULL, hb_io_main, ios[i]) != 0) {
			fprintf(stderr, "hornbeam-uring: cannot start io thread %d\n", i);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	hb_config_t cfg;
	char err[1024] = "";
	sigset_t set;
	hb_pyhost_t *host = NULL;

	block_signals(&set);
	if (hb_py_init() < 0)
		return 1;
	int rc = hb_config_load(&cfg, argc, argv, environ, hb_py_toml_load, err, sizeof(err));
	char python[600], libs[300], site[4200];
	hb_py_describe(python, sizeof(python));
	hb_about_libs(libs, sizeof(libs));
	if (rc == HB_CONFIG_VERSION)
		printf("%s\n%s\n", python, libs);
	if (rc == HB_CONFIG_EXIT || rc == HB_CONFIG_VERSION)
		return 0;
	if (rc == 0 && hb_venv_site_packages(&cfg, site, sizeof(site), err, sizeof(err)) < 0)
		rc = -EINVAL;
	if (rc < 0) {
		fprintf(stderr, "hornbeam-uring: %s\n", err);
		return 2;
	}
	if (hb_log_init((hb_log_level_t)cfg.log_level, cfg.access_log) < 0) {
		fprintf(stderr, "hornbeam-uring: access_log: cannot open '%s': %s\n",
			cfg.access_log, strerror(errno));
		return 2;
	}
	if ((rc = point_stderr(cfg.error_log)) < 0) {
		fprintf(stderr, "hornbeam-uring: error_log: cannot open '%s': %s\n", cfg.error_log,
			strerror(-rc));
		return 2;
	}
	hb_tls_setup_t tls;
	if (hb_tls_setup_init(&tls, &cfg, hb_tls_setup_served(&cfg), err, sizeof(err)) < 0) {
		fprintf(stderr, "hornbeam-uring: %s\n", err);
		return 2;
	}
	hb_access_fmt_t *access_fmt =
		cfg.access_log ? hb_access_compile(cfg.access_log_format) : NULL;
	if (cfg.access_log && !access_fmt) {
		fprintf(stderr, "hornbeam-uring: out of memory\n");
		return 1;
	}
	hb_server_t srv = {.cfg = &cfg, .nio = cfg.workers, .tls = &tls, .access_fmt = access_fmt};
	check_fd_limit(&cfg, srv.nio);
	srv.listen_fds = alloc_fds(srv.nio, cfg.nbinds);
	if (!srv.listen_fds ||
	    hb_listener_open_all(&cfg, srv.nio, srv.listen_fds, err, sizeof(err)) < 0) {
		fprintf(stderr, "hornbeam-uring: %s\n", err[0] ? err : "out of memory");
		return 2;
	}
	srv.hub = hb_hub_new(srv.nio, hb_py_max_workers(&cfg));
	if (!srv.hub) {
		fprintf(stderr, "hornbeam-uring: cannot create the worker hub\n");
		return 1;
	}
	hb_metrics_http_t *metrics_http = NULL;
	if (hb_pyapi_start(&cfg, srv.hub) < 0 || start_metrics(&srv, &metrics_http) < 0 ||
	    hb_py_start(&cfg, srv.hub, &host) < 0)
		return 1;
	/* The io threads route WebSocket upgrades by the class the workers serve. */
	char class_why[200];
	srv.app_class = hb_py_app_class(host, class_why, sizeof(class_why));
	/* Ready: only now may clients connect (a load balancer probing the port sees a refusal
	 * while the app imports, not a connection that hangs). */
	if (hb_listener_listen_all(&cfg, srv.nio, srv.listen_fds, err, sizeof(err)) < 0) {
		fprintf(stderr, "hornbeam-uring: %s\n", err);
		fflush(NULL);
		_exit(2); /* workers are running: do not run exit handlers under them */
	}
	hb_cluster_t *cluster = NULL;
	hb_funcs_t *funcs;
	hb_pubsub_t *ps;
	hb_pyapi_registries(&funcs, &ps);
	if (cfg.cluster_enabled &&
	    (rc = hb_cluster_start_config(&cfg, node_event, NULL, funcs, ps, &cluster)) < 0) {
		fprintf(stderr, "hornbeam-uring: cluster: cannot start on %s: %s\n",
			cfg.cluster_bind, strerror(-rc));
		fflush(NULL);
		_exit(1); /* workers are running: do not run exit handlers under them */
	}
	if (cluster)
		hb_pyapi_set_remote(hb_cluster_remote(cluster));
	if (srv.metrics) {
		hb_metrics_set_ud(srv.metrics, cluster);
		hb_metrics_set_ready(srv.metrics, 1);
	}
	hb_io_t **ios = calloc((size_t)srv.nio, sizeof(*ios));
	pthread_t *th = calloc((size_t)srv.nio, sizeof(*th));
	if (!ios || !th || start_io(&srv, ios, th) < 0)
		return 1;
	log_listening(&srv, class_why);
	hb_info("Embedded %s; %s%s%s", python, libs, site[0] ? "; venv site-packages " : "", site);
	supervise(&srv, &set);
	hb_pyapi_set_remote(NULL);	    /* waits for workers inside a cluster call */
	hb_metrics_http_stop(metrics_http); /* before the cluster and the shared state go */
	hb_cluster_stop(cluster, 1); /* leave first: the others mark this node left, not dead */
	int forced = atomic_load(&srv.draining) == 2;
	for (int i = 0; i < srv.nio; i++) {
		pthread_join(th[i], NULL);
		hb_io_free(ios[i]);
	}
	hb_listener_close_all(&cfg, srv.nio, srv.listen_fds);
	hb_tls_setup_free(&tls);
	uint64_t stop_by = mono_ns() + (forced ? 1 : 5) * 1000000000ull;
	hb_pyapi_shutdown(); /* again: idempotent, and the first signal may have been SIGQUIT */
	hb_py_stop(host, stop_by);
	/* Objects of the main interpreter (interpreter = "main") still point at the registries
	 * until it is finalized. After a forced stop workers may still run: leave both to exit. */
	if (!forced) {
		hb_py_finalize();
		hb_pyapi_stop();
	}
	hb_metrics_free(srv.metrics);
	hb_access_fmt_free(access_fmt);
	hb_info("Shutdown complete");
	fflush(NULL);
#ifdef __SANITIZE_ADDRESS__
	if (!forced) /* forced: workers may still run Python, holding what they hold */
		__lsan_do_leak_check(); /* reports (exit 23) or returns */
#endif
	_exit(0);
}
