/* master_setup.c: what the master does before and around its loop (master_priv.h): load the
 * configuration, bind the listeners, create the shared map, write the pid file, drop
 * privileges, and at the end close and remove what it made. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "python/pyapi.h"
#include "python/pyhost.h"
#include "python/venv.h"
#include "server/about.h"
#include "server/fdlimit.h"
#include "server/listener.h"
#include "supervisor/devreload.h"
#include "supervisor/master.h"
#include "supervisor/master_priv.h"
#include "supervisor/tomlproc.h"
#include "supervisor/worker.h"

static void block_signals(sigset_t *set)
{
	/* The last five would kill by default: read and logged as ignored instead. */
	static const int sigs[] = {SIGTERM, SIGINT,    SIGQUIT, SIGHUP,	 SIGUSR1,
				   SIGUSR2, SIGTTIN,   SIGTTOU, SIGCHLD, SIGWINCH,
				   SIGALRM, SIGVTALRM, SIGPROF, SIGIO,	 SIGPWR};

	sigemptyset(set);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(set, sigs[i]);
	sigaddset(set, HB_SIG_REPLACE); /* not a constant: glibc reserves the first RT signals */
	/* Blocked before any fork: the signalfd reads them; each worker unblocks its own. */
	sigprocmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Raises the soft descriptor limit to the hard one (the workers inherit it); says once, with
 * the numbers, when the configuration asks for more connections than the limit allows. */
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

/* --version: the embedded Python is described by a child that starts it (the master never
 * does), then the libraries. */
static void print_version(void)
{
	char libs[300];

	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		char python[600];
		if (hb_py_init() < 0)
			_exit(1);
		hb_py_describe(python, sizeof(python));
		printf("%s\n", python);
		fflush(NULL);
		_exit(0);
	}
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	hb_about_libs(libs, sizeof(libs));
	printf("%s\n", libs);
}

/* Loads argv + environment + file into a new config; NULL with err set. */
static hb_config_t *load(master_t *m, int *exit_now, char *err, size_t errlen)
{
	hb_config_t *cfg = malloc(sizeof *cfg);
	char site[4200];

	*exit_now = 0;
	if (!cfg)
		return snprintf(err, errlen, "out of memory"), NULL;
	int rc = hb_config_load(cfg, m->argc, m->argv, m->envp, hb_tomlproc_load, err, errlen);
	if (rc == HB_CONFIG_VERSION)
		print_version();
	if (rc == HB_CONFIG_OK && hb_venv_site_packages(cfg, site, sizeof(site), err, errlen) == 0)
		return cfg;
	if (rc == HB_CONFIG_OK)
		hb_config_free(cfg);
	*exit_now = rc == HB_CONFIG_EXIT || rc == HB_CONFIG_VERSION;
	free(cfg);
	return NULL;
}

void hb_master_warn_config(const hb_config_t *cfg)
{
	if (cfg->max_requests > 0 && cfg->interpreter == HB_INTERP_MAIN)
		hb_warn("max_requests = %lld has no effect: the app runs in the main interpreter "
			"(interpreter = \"main\"; the only one with Python 3.11, which has no "
			"per-interpreter GIL), and a worker's interpreter is replaced only when it "
			"is "
			"a sub-interpreter of its own (interpreter = \"isolated\", Python 3.12+)",
			(long long)cfg->max_requests);
}

hb_config_t *hb_master_load_config(master_t *m, char *err, size_t errlen)
{
	int exit_now;
	hb_config_t *cfg = load(m, &exit_now, err, errlen);

	if (cfg)
		hb_master_warn_config(cfg);
	return cfg;
}

int hb_master_open_slot(master_t *m, int slot, char *err, size_t errlen)
{
	const hb_config_t *cfg = m->cfg;
	int **fds = hb_master_fds_alloc(m->nio, cfg->nbinds);

	if (!fds)
		return snprintf(err, errlen, "out of memory"), -1;
	if (slot == 0) { /* the first: with the address-in-use probe and its message */
		if (hb_listener_open_all(cfg, m->nio, fds, err, errlen) < 0)
			goto fail;
		m->slot_fds[0] = fds;
		return 0;
	}
	for (size_t b = 0; b < cfg->nbinds; b++)
		for (int io = 0; io < m->nio; io++) {
			const char *why = "bind";
			int fd = hb_master_slot_socket(m, &cfg->binds[b], m->slot_fds[0][0][b],
						       &why);
			if (fd < 0) {
				snprintf(err, errlen, "bind: cannot %s %s: %s", why,
					 cfg->binds[b].spec, strerror(-fd));
				goto fail;
			}
			fds[io][b] = fd;
		}
	m->slot_fds[slot] = fds;
	return 0;
fail: /* nothing half-opened stays: a restart that fails retries with backoff */
	hb_master_fds_free(fds, m->nio, cfg->nbinds);
	return -1;
}

int hb_master_park_slots(master_t *m, int n)
{
	size_t count = 0, nb = m->cfg->nbinds;
	int *fds =
		malloc((size_t)HB_MASTER_MAX_SLOTS * (size_t)m->nio * (nb ? nb : 1) * sizeof *fds);

	if (!fds)
		return -ENOMEM;
	for (int s = n; s < HB_MASTER_MAX_SLOTS; s++)
		for (int io = 0; m->slot_fds[s] && io < m->nio; io++)
			for (size_t b = 0; b < nb; b++)
				fds[count++] = m->slot_fds[s][io][b]; /* unix ones: no members */
	int rc = hb_steer_park(&m->steer, fds, (int)count);
	free(fds);
	return rc;
}

void hb_master_shut_slots(master_t *m, int n)
{
	for (int s = n; s < HB_MASTER_MAX_SLOTS; s++)
		for (int io = 0; m->slot_fds[s] && io < m->nio; io++)
			for (size_t b = 0; b < m->cfg->nbinds; b++)
				if (m->cfg->binds[b].family != AF_UNIX &&
				    !m->cfg->binds[b].fd_bind) {
					hb_steer_forget(&m->steer, m->slot_fds[s][io][b]);
					shutdown(m->slot_fds[s][io][b], SHUT_RDWR);
				}
	int rc = hb_steer_apply(&m->steer);
	if (rc < 0)
		hb_warn("cannot update the SO_REUSEPORT program: %s", strerror(-rc));
}

int hb_master_listen(master_t *m, const hb_config_t *cfg, int **fds, int nio, char *err,
		     size_t errlen)
{
	for (size_t b = 0; b < cfg->nbinds; b++)
		for (int io = 0; io < nio; io++) {
			const hb_bind_t *bd = &cfg->binds[b];
			int rc = hb_steer_listen(&m->steer, fds[io][b], cfg->backlog,
						 bd->family != AF_UNIX && !bd->fd_bind);
			if (rc < 0)
				return snprintf(err, errlen, "bind: cannot listen on %s: %s",
						bd->spec, strerror(-rc)),
				       -1;
		}
	int rc = hb_steer_apply(&m->steer);
	if (rc < 0)
		hb_warn("cannot update the SO_REUSEPORT program: %s", strerror(-rc));
	return 0;
}

void hb_master_close_listeners(master_t *m)
{
	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++) {
		if (!m->slot_fds[s])
			continue;
		for (int io = 0; io < m->nio; io++)
			for (size_t b = 0; b < m->cfg->nbinds; b++)
				if (m->slot_fds[s][io][b] >= 0)
					shutdown(m->slot_fds[s][io][b], SHUT_RDWR);
		hb_listener_close_all(m->cfg, m->nio, m->slot_fds[s]);
	}
	hb_reshape_close(m, 1);
	hb_steer_close(&m->steer, 1);
}

void hb_master_log_ready(const master_t *m)
{
	const hb_config_t *cfg = m->cfg;

	for (size_t b = 0; b < cfg->nbinds; b++) {
		char addr[320];
		const hb_bind_t *bd = &cfg->binds[b];

		/* The address as bound: the port the kernel chose for :0, 8000 for a bare host. */
		if (hb_listener_address(m->slot_fds[0][0][b], addr, sizeof(addr)) < 0)
			snprintf(addr, sizeof(addr), "%s", bd->spec);
		hb_info("Listening at: %s%s%s%s%s (%d)",
			addr[0] == 'u' ? (bd->tls ? "tls+" : "")
			: bd->tls      ? "https://"
				       : "http://",
			addr, bd->fd_bind ? " (" : "", bd->fd_bind ? bd->spec : "",
			bd->fd_bind ? ")" : "", (int)m->pid);
	}
}

void hb_master_drop_fds(master_t *m)
{
	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++)
		for (int io = 0; m->slot_fds[s] && io < m->nio; io++)
			for (size_t b = 0; b < m->cfg->nbinds; b++)
				if (m->slot_fds[s][io][b] >= 0) {
					close(m->slot_fds[s][io][b]);
					m->slot_fds[s][io][b] = -1;
				}
	hb_reshape_close(m, 0);
	hb_steer_close(&m->steer, 0);
}

/* ---- pid file and privileges ---- */

static int write_pidfile(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "we");

	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
		int e = errno;
		snprintf(err, errlen, "pidfile: cannot write '%s': %s", path, strerror(e));
		return -e;
	}
	return 0;
}

static int lookup_ids(const hb_config_t *cfg, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	char *end;
	struct passwd *pw = getpwnam(cfg->user);
	unsigned long n = strtoul(cfg->user, &end, 10);

	if (!pw && *cfg->user && !*end)
		pw = getpwuid((uid_t)n);
	if (!pw)
		return snprintf(err, errlen, "user: no such user '%s'", cfg->user), -EINVAL;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (cfg->group) {
		struct group *gr = getgrnam(cfg->group);
		n = strtoul(cfg->group, &end, 10);
		if (!gr && *cfg->group && !*end)
			gr = getgrgid((gid_t)n);
		if (!gr)
			return snprintf(err, errlen, "group: no such group '%s'", cfg->group),
			       -EINVAL;
		*gid = gr->gr_gid;
	}
	return 0;
}

/* After binding (ports below 1024 need root) and the pid file: the workers run as `user`. */
static int drop_privileges(const hb_config_t *cfg, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;

	if (!cfg->user && !cfg->group)
		return 0;
	if (!cfg->user) {
		struct group *gr = getgrnam(cfg->group);
		if (!gr)
			return snprintf(err, errlen, "group: no such group '%s'", cfg->group),
			       -EINVAL;
		if (setgroups(0, NULL) < 0 || setgid(gr->gr_gid) < 0)
			goto fail;
		return 0;
	}
	if (lookup_ids(cfg, &uid, &gid, err, errlen) < 0)
		return -EINVAL;
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "user/group: cannot switch to %s/%s: %s", cfg->user ? cfg->user : "-",
		 cfg->group ? cfg->group : "-", strerror(errno));
	return -EPERM;
}

static int pidfile_is_ours(const char *path)
{
	FILE *f = fopen(path, "re");
	int pid = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid == (int)getpid();
}

/* ---- the whole run ---- */

static int setup(master_t *m, char *err, size_t errlen)
{
	hb_config_t *cfg = m->cfg;

	if (hb_upgrade_adopt(m, err, errlen) < 0)
		return -1;
	/* Inherited sockets of slots past `processes`: the old master's processes serve them
	 * until they retire; no new connection goes there. */
	int parked = hb_master_park_slots(m, m->target);
	if (parked < 0)
		hb_warn("cannot park the inherited sockets of worker processes %d and up: %s",
			m->target, strerror(-parked));
	for (int slot = 0; slot < m->target; slot++)
		if (!m->slot_fds[slot] && hb_master_open_slot(m, slot, err, errlen) < 0)
			return -1;
	/* Before fork: the worker processes (of every generation: a reload's overlap too) share
	 * the map and the process bus (publish and call() across them). */
	if (hb_pyapi_prepare(cfg) < 0 || hb_pyapi_prepare_bus(cfg) < 0) {
		snprintf(err, errlen,
			 "cannot create the shared state map (state_max_bytes = %lld) or the "
			 "process bus",
			 (long long)cfg->state_max_bytes);
		return -1;
	}
	if (cfg->pidfile && write_pidfile(cfg->pidfile, err, errlen) < 0)
		return -1;
	if (drop_privileges(cfg, err, errlen) < 0)
		return -1;
	sigset_t set;
	block_signals(&set);
	m->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->sfd < 0)
		return snprintf(err, errlen, "signalfd: %s", strerror(errno)), -1;
	return 0;
}

/* --chdir: the configuration is loaded again from there, so relative paths on the command
 * line mean the same to the checks and to the workers. */
static int change_dir(master_t *m, char *err, size_t errlen)
{
	int exit_now;

	if (!m->cfg->chdir)
		return 0;
	if (chdir(m->cfg->chdir) < 0)
		return snprintf(err, errlen, "chdir: cannot change to '%s': %s", m->cfg->chdir,
				strerror(errno)),
		       -1;
	hb_config_free(m->cfg);
	free(m->cfg);
	m->cfg = load(m, &exit_now, err, errlen);
	return m->cfg ? 0 : -1;
}

/* error_log: descriptor 2 becomes the file before anything is logged, so the master's lines
 * and, through fork, every worker's (Python's tracebacks included) land in it. */
static int error_log(const hb_config_t *cfg, char *err, size_t errlen)
{
	if (!cfg->error_log || strcmp(cfg->error_log, "-") == 0)
		return 0;
	int fd = open(cfg->error_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
		snprintf(err, errlen, "error_log: cannot open '%s': %s", cfg->error_log,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int hb_master_run(int argc, char **argv, char **envp)
{
	master_t *m = calloc(1, sizeof *m);
	char err[1024] = "";
	sigset_t set;
	int exit_now = 0, rc = 2;

	if (!m)
		return 1;
	block_signals(&set);
	*m = (master_t){.argc = argc, .argv = argv, .envp = envp, .pid = getpid(), .sfd = -1};
	ssize_t n = readlink("/proc/self/exe", m->exe, sizeof m->exe - 1);
	m->exe[n > 0 ? n : 0] = '\0'; /* read now: an upgrade installs over this path */
	m->cfg = load(m, &exit_now, err, sizeof err);
	if (exit_now) {
		free(m);
		return 0;
	}
	if (!m->cfg || change_dir(m, err, sizeof err) < 0 || error_log(m->cfg, err, sizeof err) < 0)
		goto out;
	hb_log_init((hb_log_level_t)m->cfg->log_level, NULL);
	hb_master_warn_config(m->cfg);
	m->nio = m->cfg->workers;
	m->target = m->cfg->processes;
	m->gen = m->last_gen = 1;
	check_fd_limit(m->cfg, m->nio);
	if (setup(m, err, sizeof err) < 0)
		goto out;
	hb_info("Starting hornbeam-uring %s (master pid %d)", HB_VERSION, (int)m->pid);
	err[0] = '\0';
	m->watch = hb_devreload_start(m->cfg);
	rc = hb_master_loop(m);
	hb_fswatch_free(m->watch);
	hb_master_close_listeners(m);
	if (m->cfg->pidfile && pidfile_is_ours(m->cfg->pidfile))
		unlink(m->cfg->pidfile); /* not after a binary upgrade: the new master's */
	hb_info("Shutdown complete");
out:
	if (err[0])
		fprintf(stderr, "hornbeam-uring: %s\n", err);
	fflush(NULL);
	return rc;
}
