/* master.c: the master's process table and poll loop (master.h); setup (config, listeners,
 * pid file, privileges) is master_setup.c. */
#include "supervisor/master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fswatch.h"
#include "core/log.h"
#include "core/xbus.h"
#include "python/pyapi.h"
#include "supervisor/master_priv.h"
#include "supervisor/worker.h"

#define NS 1000000000ull
#define BACKOFF_FIRST_NS (100 * 1000000ull)
#define KILL_MARGIN_NS (10 * NS) /* past a worker's own deadline, before SIGKILL */
/* A process whose sockets were parked keeps accepting this long before it retires: what the
 * kernel queued there before the program changed, handshakes still completing included (a
 * round trip; a lost SYN-ACK is resent after 1 s). */
#define LEAVE_NS NS

uint64_t hb_master_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

#define mono_ns hb_master_now

/* ---- the process table ---- */

static int live(const proc_t *p)
{
	return p->state == P_BOOTING || p->state == P_READY;
}

static proc_t *proc_add(master_t *m)
{
	if (m->nprocs == m->cap) {
		int cap = m->cap ? m->cap * 2 : 8;
		proc_t *np = realloc(m->procs, (size_t)cap * sizeof *np);
		if (!np)
			return NULL;
		m->procs = np;
		m->cap = cap;
	}
	proc_t *p = &m->procs[m->nprocs++];
	memset(p, 0, sizeof *p);
	p->ready_fd = -1;
	return p;
}

static void proc_remove(master_t *m, proc_t *p)
{
	if (p->ready_fd >= 0)
		close(p->ready_fd);
	hb_inflight_destroy(p->inflight);
	*p = m->procs[--m->nprocs];
}

/* The child side of a fork: nothing of the master's loop may stay open in it. */
/* A reshaping reload's processes get its sockets (reshape.c); every other one the serving ones. */
static int **gen_fds(const master_t *m, unsigned gen, int slot, int *nio)
{
	int reshaped = gen == m->next_gen && m->next_nio > 0;

	*nio = reshaped ? m->next_nio : m->nio;
	return reshaped ? m->next_fds[slot] : m->slot_fds[slot];
}

/* In a child: the master's sockets but its own (fds) are closed. */
static void close_others(int **const *arrays, int nio, size_t nbinds, int **fds)
{
	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++)
		for (int io = 0; arrays[s] && arrays[s] != fds && io < nio; io++)
			for (size_t b = 0; b < nbinds; b++)
				close(arrays[s][io][b]);
}

static _Noreturn void child(master_t *m, hb_config_t *cfg, int slot, unsigned gen, int wfd,
			    hb_inflight_t *inflight)
{
	hb_worker_args_t a = {
		.inflight = inflight,
		.slot = slot,
		.generation = gen,
		.ready_fd = wfd,
		.master = m->pid,
	};

	a.listen_fds = gen_fds(m, gen, slot, &a.nio);
	close(m->sfd);
	hb_steer_close(&m->steer, 0); /* the master's own copies */
	close_others((int **const *)m->slot_fds, m->nio, m->cfg->nbinds, a.listen_fds);
	if (m->next_nio > 0)
		close_others((int **const *)m->next_fds, m->next_nio, m->next_cfg->nbinds,
			     a.listen_fds);
	for (int i = 0; i < m->nprocs; i++) {
		if (m->procs[i].ready_fd >= 0)
			close(m->procs[i].ready_fd);
		if (m->procs[i].inflight != inflight) /* the others' tables are theirs */
			hb_inflight_destroy(m->procs[i].inflight);
	}
	hb_worker_run(cfg, &a);
}

static int spawn(master_t *m, hb_config_t *cfg, int slot, unsigned gen)
{
	int fds[2];
	char err[512];

	int nio;
	if (!gen_fds(m, gen, slot, &nio) && hb_master_open_slot(m, slot, err, sizeof err) < 0) {
		hb_error("cannot start worker process %d: %s", slot, err);
		return -1;
	}
	proc_t *p = proc_add(m);
	/* Both ways: the process says it is ready, the master answers once it listens for it. */
	if (!p || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
		if (p)
			m->nprocs--;
		hb_error("cannot start worker process %d: %s", slot, strerror(p ? errno : ENOMEM));
		return -1;
	}
	/* Without it the process serves all the same; only its crash log names no request. */
	hb_inflight_t *inflight = hb_inflight_create();
	if (!inflight)
		hb_warn("worker process %d: no in-flight request table: %s", slot, strerror(errno));
	fflush(NULL); /* nothing buffered may be written twice */
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child(m, cfg, slot, gen, fds[1], inflight);
	}
	close(fds[1]);
	if (pid < 0) {
		hb_error("cannot fork worker process %d: %s", slot, strerror(errno));
		close(fds[0]);
		hb_inflight_destroy(inflight);
		m->nprocs--;
		return -1;
	}
	*p = (proc_t){.pid = pid,
		      .inflight = inflight,
		      .slot = slot,
		      .gen = gen,
		      .ready_fd = fds[0],
		      .state = P_BOOTING,
		      .started = mono_ns()};
	hb_info("Booting worker process %d with pid %d (generation %u)", slot, (int)pid, gen);
	return 0;
}

static void tell(master_t *m, proc_t *p, int sig, int state)
{
	if (kill(p->pid, sig) < 0 && errno != ESRCH)
		hb_warn("cannot signal worker process %d: %s", (int)p->pid, strerror(errno));
	if (state)
		p->state = state;
	(void)m;
}

/* ---- the lifecycle ---- */

/* A graceful stop (how = 1) or an immediate one (2). */
static void begin_stop(master_t *m, int how, const char *why)
{
	uint64_t now = mono_ns();

	if (m->stopping >= how)
		return;
	hb_info("Shutting down: %s (%s)", how == 1 ? "graceful" : "now", why);
	if (!m->stopping)
		hb_master_close_listeners(m); /* new connects are refused from now on */
	m->stopping = how;
	m->kill_at =
		now + (how == 1 ? (uint64_t)m->cfg->graceful_timeout_s * NS : 0) + KILL_MARGIN_NS;
	/* Retiring processes get TERM too: their WebSockets close now. */
	for (int i = 0; i < m->nprocs; i++)
		tell(m, &m->procs[i], how == 1 ? SIGTERM : SIGQUIT, P_STOPPING);
}

static uint64_t backoff(const master_t *m, int fails)
{
	uint64_t d = BACKOFF_FIRST_NS, max = (uint64_t)m->cfg->respawn_backoff_max_s * NS;

	for (int i = 1; i < fails && d < max; i++)
		d *= 2;
	return d < max ? d : max;
}

static void describe(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* What p's app was running, for its death's log line: " while running GET /a (running 1.2 s)",
 * " (no request was running)", or "" when p has no table. */
static void running(const proc_t *p, char *buf, size_t len)
{
	char list[1024];
	int n = hb_inflight_describe(p->inflight, mono_ns(), 8, list, sizeof list);

	if (!p->inflight)
		buf[0] = '\0';
	else if (n == 0)
		snprintf(buf, len, " (no request was running)");
	else
		snprintf(buf, len, " while running %s", list);
}

/* p no longer serves (its slot went, or its generation): with drain (its sockets were parked)
 * a ready process accepts what is queued for LEAVE_NS, then retires; else it retires (or, not
 * ready yet, stops) now. */
static void leave(master_t *m, proc_t *p, int drain)
{
	if (p->state == P_READY && drain) {
		p->state = P_LEAVING;
		p->retire_at = mono_ns() + LEAVE_NS;
		return;
	}
	tell(m, p, p->state == P_READY ? SIGHUP : SIGTERM, P_RETIRING);
}

static void abort_reload(master_t *m, const char *why)
{
	int parked = m->next_nio > 0 ? hb_reshape_abort(m, m->next_cfg) : 0;

	hb_error("reload failed: %s; generation %u keeps serving", why, m->gen);
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].gen == m->next_gen && live(&m->procs[i]))
			leave(m, &m->procs[i], parked > 0);
	hb_config_free(m->next_cfg);
	free(m->next_cfg);
	m->next_cfg = NULL;
	m->next_gen = 0;
}

/* A serving process died: log it and schedule its replacement (at once, or after a backoff
 * when it keeps dying before it is ready). */
static void crashed(master_t *m, const proc_t *p, const char *how)
{
	uint64_t now = mono_ns();

	if (p->state == P_BOOTING) {
		int n = ++m->fails[p->slot];
		uint64_t d = backoff(m, n);
		m->respawn_at[p->slot] = now + d;
		hb_error("worker process %d (pid %d) %s before it was ready (%d time%s in a row); "
			 "restarting it in %.1fs",
			 p->slot, (int)p->pid, how, n, n > 1 ? "s" : "", (double)d / NS);
	} else {
		char what[1100];
		running(p, what, sizeof what);
		m->fails[p->slot] = 0;
		m->respawn_at[p->slot] = now;
		hb_error("worker process %d (pid %d) %s%s; its requests in flight failed; "
			 "restarting it",
			 p->slot, (int)p->pid, how, what);
	}
}

/* Signals someone sent (kill, the OOM killer), not a failure of the app's own: a first
 * generation's process dying of one is restarted rather than failing the start. */
static int external(int sig)
{
	return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGQUIT;
}

static void reaped(master_t *m, proc_t *p, int status)
{
	char how[160], what[1100];

	describe(status, how, sizeof how);
	if (p->state == P_STOPPING || p->state == P_RETIRING || p->state == P_LEAVING) {
		/* A request left running by a forced stop (past graceful_timeout, a request stuck
		 * past worker_kill_timeout) is named. */
		int left = hb_inflight_describe(p->inflight, mono_ns(), 8, what, sizeof what);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !left)
			hb_info("worker process %d (pid %d, generation %u) exited", p->slot,
				(int)p->pid, p->gen);
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			hb_warn("worker process %d (pid %d, generation %u) exited, cutting %s",
				p->slot, (int)p->pid, p->gen, what);
		else
			hb_warn("worker process %d (pid %d, generation %u) %s%s%s", p->slot,
				(int)p->pid, p->gen, how, left ? " while running " : "", what);
		/* A stopping worker's own failure (a leak report) is the server's exit status;
		 * one the master killed past its deadline is not. */
		if (m->stopping && !p->killed && exit_code(status) != 0 && !m->status)
			m->status = exit_code(status);
	} else if (p->gen == m->next_gen) {
		char why[1400];
		running(p, what, sizeof what);
		snprintf(why, sizeof why, "worker process %d of generation %u (pid %d) %s%s",
			 p->slot, p->gen, (int)p->pid, how, what);
		abort_reload(m, why);
	} else if (!m->ready_once && !(WIFSIGNALED(status) && external(WTERMSIG(status)))) {
		hb_error("worker process %d (pid %d) %s while booting: stopping", p->slot,
			 (int)p->pid, how);
		m->status = exit_code(status) ? exit_code(status) : 1;
		begin_stop(m, 2, "a worker process failed to boot");
	} else {
		crashed(m, p, how);
	}
	proc_remove(m, p);
}

static void reap(master_t *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (hb_upgrade_reaped(m, pid, status))
			continue;
		hb_xbus_reap(hb_pyapi_bus(), pid); /* its bus slot and registered names */
		for (int i = 0; i < m->nprocs; i++)
			if (m->procs[i].pid == pid) {
				reaped(m, &m->procs[i], status);
				break;
			}
	}
}

/* Every slot of the serving generation has a live process, unless its restart waits. */
static void fill_slots(master_t *m)
{
	uint64_t now = mono_ns();

	if (m->stopping)
		return;
	for (int s = 0; s < m->target; s++) {
		int have = 0;
		for (int i = 0; i < m->nprocs && !have; i++)
			have = m->procs[i].gen == m->gen && m->procs[i].slot == s &&
			       live(&m->procs[i]) && !m->procs[i].doomed;
		if (!have && now >= m->respawn_at[s] && spawn(m, m->cfg, s, m->gen) < 0)
			m->respawn_at[s] = now + backoff(m, ++m->fails[s]);
	}
}

static int count(const master_t *m, unsigned gen, int state)
{
	int n = 0;
	for (int i = 0; i < m->nprocs; i++)
		n += m->procs[i].gen == gen && m->procs[i].state == state;
	return n;
}

/* LEAVING processes whose time is up retire. */
static void leave_due(master_t *m)
{
	uint64_t now = mono_ns();

	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].state == P_LEAVING && now >= m->procs[i].retire_at)
			tell(m, &m->procs[i], SIGHUP, P_RETIRING);
}

/* The new generation is ready: it serves, every older process retires (after LEAVE_NS when
 * sockets it served were parked: fewer processes or io threads). */
static void finish_reload(master_t *m)
{
	int reshaped = m->next_nio > 0, parked = 0;

	if (reshaped)
		parked = hb_reshape_commit(m, m->cfg);
	hb_config_free(m->cfg);
	free(m->cfg);
	m->cfg = m->next_cfg;
	m->next_cfg = NULL;
	hb_log_init((hb_log_level_t)m->cfg->log_level, NULL);
	hb_info("Reloaded: generation %u serves (%d processes), generation %u retires", m->next_gen,
		m->cfg->processes, m->gen);
	m->gen = m->next_gen;
	m->next_gen = 0;
	m->target = m->cfg->processes;
	int r = hb_master_park_slots(m, m->target); /* checked before the reload started */
	if (r < 0) {
		hb_error(
			"cannot park the sockets of worker processes %d and up (%s): shutting them "
			"down, the connections queued in them are reset",
			m->target, strerror(-r));
		hb_master_shut_slots(m, m->target);
	}
	parked += r > 0 ? r : 0;
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].gen != m->gen && live(&m->procs[i]))
			leave(m, &m->procs[i], parked > 0);
	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++)
		m->fails[s] = 0, m->respawn_at[s] = 0;
	if (reshaped)
		hb_master_log_ready(m);
}

static void reload(master_t *m)
{
	char err[1024] = "";

	if (m->stopping)
		return;
	if (m->next_gen) {
		hb_warn("SIGHUP: generation %u is still starting; ignored", m->next_gen);
		return;
	}
	hb_info("SIGHUP: reloading");
	hb_config_t *nc = hb_master_load_config(m, err, sizeof err);
	if (!nc) {
		hb_error("reload failed: %s; generation %u keeps serving", err, m->gen);
		return;
	}
	/* New workers or binds: the new generation gets sockets of its own shape (reshape.c). */
	if (hb_reshape_check_processes(m, nc->processes, err, sizeof err) < 0 ||
	    (hb_reshape_needed(m, nc) && (hb_reshape_check(m, nc, err, sizeof err) < 0 ||
					  hb_reshape_open(m, nc, err, sizeof err) < 0))) {
		hb_error("reload failed: %s; generation %u keeps serving", err, m->gen);
		hb_config_free(nc);
		free(nc);
		return;
	}
	m->next_cfg = nc;
	m->next_gen = ++m->last_gen;
	for (int s = 0; s < nc->processes && m->next_gen; s++)
		if (spawn(m, nc, s, m->next_gen) < 0)
			abort_reload(m, "cannot start its processes");
}

/* TTIN, TTOU. One fewer: the slot's TCP sockets are parked (steer.h), its process accepts what
 * was queued there for LEAVE_NS, then retires. */
static void resize(master_t *m, int delta)
{
	int n = m->target + delta, parked = 0;
	char why[1024] = "";

	if (n >= 1 && n <= HB_MASTER_MAX_SLOTS && !m->stopping && delta < 0 &&
	    hb_reshape_check_processes(m, n, why, sizeof why) == 0) {
		parked = hb_master_park_slots(m, n);
		if (parked == -EBUSY)
			snprintf(
				why, sizeof why,
				"none of the processes that stay listens yet (booting): try again");
		else if (parked < 0)
			snprintf(why, sizeof why,
				 "cannot park the sockets of worker process %d: %s", n,
				 strerror(-parked));
	}
	if (n < 1 || n > HB_MASTER_MAX_SLOTS || m->stopping || why[0]) {
		hb_warn("%s: keeping %d worker processes%s%s", delta > 0 ? "SIGTTIN" : "SIGTTOU",
			m->target, why[0] ? ": " : "", why);
		return;
	}
	m->target = n;
	hb_info("%s: %d worker processes%s", delta > 0 ? "SIGTTIN" : "SIGTTOU", n,
		parked > 0 ? " (the sockets of the one that goes are parked: it serves what was "
			     "queued there, then retires)"
			   : "");
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].slot >= n && live(&m->procs[i]))
			leave(m, &m->procs[i], parked > 0);
	m->fails[n - 1] = 0;
	m->respawn_at[n - 1] = 0;
}

static void on_signal(master_t *m, int sig)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		begin_stop(m, m->stopping ? 2 : 1, strsignal(sig));
		break;
	case SIGQUIT:
		begin_stop(m, 2, strsignal(sig));
		break;
	case SIGHUP:
		reload(m);
		break;
	case SIGUSR1:
		hb_info("SIGUSR1: worker processes reopen their log files");
		for (int i = 0; i < m->nprocs; i++)
			tell(m, &m->procs[i], SIGUSR1, 0);
		break;
	case SIGTTIN:
		resize(m, 1);
		break;
	case SIGTTOU:
		resize(m, -1);
		break;
	case SIGCHLD:
		break; /* reaped after every wakeup */
	default:
		hb_info("%s: ignored", strsignal(sig));
		break;
	}
}

/* HB_SIG_REPLACE from a worker process: one of its requests still runs worker_kill_timeout after
 * its WorkerTimeout. Like a process past max_worker_rss, it gets a successor (fill_slots) and
 * retires once that one is ready. */
static void stuck(master_t *m, pid_t pid)
{
	for (int i = 0; i < m->nprocs; i++) {
		proc_t *p = &m->procs[i];
		if (p->pid != pid || p->state != P_READY || p->doomed || p->gen != m->gen ||
		    m->stopping)
			continue;
		char what[1024];
		hb_inflight_describe(p->inflight, mono_ns(), 8, what, sizeof what);
		hb_warn("worker process %d (pid %d) has a request stuck past worker_kill_timeout "
			"(%s): replacing it",
			p->slot, (int)p->pid, what[0] ? what : "not recorded");
		p->doomed = 2;
	}
}

/* --reload: a watched file changed (debounced): reload as SIGHUP does. A change seen while a
 * reload is starting is kept and reloads once that one is done. */
static void watch_files(master_t *m)
{
	char path[512];

	if (!m->watch || m->stopping)
		return;
	if (hb_fswatch_wait(m->watch, 0, path, sizeof path) == 1) {
		hb_info("--reload: %s changed: reloading", path);
		m->reload_due = 1;
	}
	if (m->reload_due && !m->next_gen) {
		m->reload_due = 0;
		reload(m);
	}
}

static void read_signals(master_t *m)
{
	struct signalfd_siginfo si;

	while (read(m->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGWINCH && m->upgrade_pid > 0)
			hb_upgrade_handover(m, (pid_t)si.ssi_pid);
		else if (si.ssi_signo == SIGUSR2)
			hb_upgrade_start(m);
		else if ((int)si.ssi_signo == HB_SIG_REPLACE)
			stuck(m, (pid_t)si.ssi_pid);
		else
			on_signal(m, (int)si.ssi_signo);
	}
}

/* p is ready: a process of its slot and generation that passed max_worker_rss retires now,
 * one with a request stuck past worker_kill_timeout stops (gracefully). */
static void replaced(master_t *m, const proc_t *p)
{
	for (int i = 0; i < m->nprocs; i++) {
		proc_t *q = &m->procs[i];
		if (q != p && q->doomed && q->slot == p->slot && q->gen == p->gen && live(q)) {
			hb_info("worker process %d: pid %d replaced pid %d (%s)", p->slot,
				(int)p->pid, (int)q->pid,
				q->doomed == 2 ? "worker_kill_timeout" : "max_worker_rss");
			/* A stuck request never ends: a retiring process would wait for it (and
			 * keep its WebSockets) forever; a stop ends within graceful_timeout. */
			tell(m, q, q->doomed == 2 ? SIGTERM : SIGHUP, P_RETIRING);
		}
	}
}

static int64_t rss_bytes(pid_t pid)
{
	char path[64];
	long long size = 0, resident = 0;

	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%lld %lld", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

/* Once a second: a serving process past max_worker_rss gets a replacement (fill_slots starts
 * it); it retires when that one is ready, so no request fails. */
static void check_rss(master_t *m)
{
	uint64_t now = mono_ns();

	if (m->cfg->max_worker_rss <= 0 || m->stopping || now < m->rss_at)
		return;
	m->rss_at = now + NS;
	for (int i = 0; i < m->nprocs; i++) {
		proc_t *p = &m->procs[i];
		int64_t rss = p->state == P_READY && !p->doomed && p->gen == m->gen
				      ? rss_bytes(p->pid)
				      : 0;
		if (rss > m->cfg->max_worker_rss) {
			hb_warn("worker process %d (pid %d) uses %lld MiB, past max_worker_rss "
				"(%lld MiB): replacing it gracefully",
				p->slot, (int)p->pid, (long long)(rss >> 20),
				(long long)(m->cfg->max_worker_rss >> 20));
			p->doomed = 1;
		}
	}
}

/* p said it is ready: the master listens on its sockets (only the master does: it keeps the
 * SO_REUSEPORT groups' order, steer.h), then answers 'L'. 0, or -1 after a log line: p gets no
 * answer and exits. */
static int start_serving(master_t *m, proc_t *p)
{
	char err[512];
	int nio;
	int **fds = gen_fds(m, p->gen, p->slot, &nio);
	const hb_config_t *cfg = p->gen == m->next_gen && m->next_cfg ? m->next_cfg : m->cfg;

	if (!fds || hb_master_listen(m, cfg, fds, nio, err, sizeof err) < 0) {
		hb_error("worker process %d (pid %d): %s", p->slot, (int)p->pid,
			 fds ? err : "its sockets are gone");
		return -1;
	}
	if (send(p->ready_fd, "L", 1, MSG_NOSIGNAL) != 1)
		return -1; /* it died: reaped next */
	return 0;
}

static void read_ready(master_t *m, int fd)
{
	for (int i = 0; i < m->nprocs; i++) {
		proc_t *p = &m->procs[i];
		char c = 0;
		if (p->ready_fd != fd)
			continue;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			return;
		if (n == 1 && c == 'R' && p->state == P_BOOTING && !m->stopping) {
			if (start_serving(m, p) == 0) {
				p->state = P_READY;
				m->fails[p->slot] = p->gen == m->gen ? 0 : m->fails[p->slot];
				replaced(m, p);
			}
		} else if (n == 1) {
			/* told to stop already: it carries on to its TERM, not listening */
			send(fd, "S", 1, MSG_NOSIGNAL);
		}
		close(fd);
		p->ready_fd = -1;
		return;
	}
}

/* After every wakeup: readiness of the whole first generation, or of a reload's. */
static void check_ready(master_t *m)
{
	if (!m->ready_once && !m->stopping && count(m, m->gen, P_READY) >= m->target) {
		m->ready_once = 1;
		hb_master_log_ready(m);
		if (m->upgrade_from > 0) { /* a binary upgrade: the old master hands over now */
			hb_info("Binary upgrade: ready, telling the old master %d to retire",
				(int)m->upgrade_from);
			kill(m->upgrade_from, SIGWINCH);
			m->upgrade_from = 0;
		}
	}
	if (m->next_gen && m->next_cfg && count(m, m->next_gen, P_READY) >= m->next_cfg->processes)
		finish_reload(m);
}

static int poll_timeout(const master_t *m)
{
	uint64_t now = mono_ns(), next = now + NS;

	for (int s = 0; s < m->target && !m->stopping; s++)
		if (m->respawn_at[s] > now && m->respawn_at[s] < next)
			next = m->respawn_at[s];
	for (int i = 0; i < m->nprocs; i++)
		if (m->procs[i].state == P_LEAVING && m->procs[i].retire_at < next)
			next = m->procs[i].retire_at > now ? m->procs[i].retire_at : now;
	if (m->stopping && m->kill_at < next)
		next = m->kill_at > now ? m->kill_at : now;
	return (int)((next - now) / 1000000ull) + 1;
}

static void kill_late(master_t *m)
{
	if (!m->stopping || mono_ns() < m->kill_at)
		return;
	for (int i = 0; i < m->nprocs; i++) {
		if (m->procs[i].killed)
			continue;
		hb_warn("worker process %d (pid %d) did not stop in time: SIGKILL",
			m->procs[i].slot, (int)m->procs[i].pid);
		m->procs[i].killed = 1;
		kill(m->procs[i].pid, SIGKILL);
	}
}

int hb_master_loop(master_t *m)
{
	struct pollfd *pfd = NULL;
	int npfd = 0;

	for (int s = 0; s < m->target; s++)
		if (spawn(m, m->cfg, s, m->gen) < 0)
			return 1;
	while (!m->stopping || m->nprocs > 0) {
		if (npfd < m->nprocs + 2) {
			npfd = m->nprocs + 8;
			free(pfd);
			pfd = calloc((size_t)npfd, sizeof *pfd);
			if (!pfd)
				return 1;
		}
		int n = 0;
		pfd[n++] = (struct pollfd){.fd = m->sfd, .events = POLLIN};
		for (int i = 0; i < m->nprocs; i++)
			if (m->procs[i].ready_fd >= 0)
				pfd[n++] = (struct pollfd){.fd = m->procs[i].ready_fd,
							   .events = POLLIN};
		int nready = n, timeout = poll_timeout(m), due;
		if (m->watch) {
			pfd[n++] = (struct pollfd){.fd = hb_fswatch_fd(m->watch), .events = POLLIN};
			due = m->reload_due ? 100 : hb_fswatch_due_ms(m->watch);
			if (due >= 0 && due < timeout)
				timeout = due + 1;
		}
		int rc = poll(pfd, (nfds_t)n, timeout);
		for (int i = 1; rc > 0 && i < nready; i++)
			if (pfd[i].revents)
				read_ready(m, pfd[i].fd);
		read_signals(m);
		reap(m);
		check_ready(m);
		leave_due(m);
		kill_late(m);
		check_rss(m);
		fill_slots(m);
		watch_files(m);
	}
	free(pfd);
	return m->status;
}
