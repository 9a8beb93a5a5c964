/* upgrade.c: binary upgrade in place, nginx-style (master_priv.h).
 *
 * SIGUSR2 to the master: it forks and execs its binary again (the path it was started from, so
 * a file installed over it runs), with the same arguments, every listening socket inherited and
 * named in HB_LISTEN_FDS ("NIO NBINDS;SLOT:FD,FD,...;...;M:FD,pFD,..." with io-major,
 * bind-minor fds per slot, then the SO_REUSEPORT groups' members in join order, parked ones
 * marked: steer.h) and HB_UPGRADE_FROM=<old master pid>. The new master adopts those sockets
 * instead of binding (so no connection is refused and none waits on a closed socket), starts its
 * worker processes, and once they are ready sends SIGWINCH to the old master, which then closes its
 * descriptors WITHOUT shutting the sockets down (they are the new master's now), retires its
 * worker processes as a reload does and exits. If the new master fails first, the old one logs
 * it and keeps serving. The shared map (a memfd, named in HB_STATE_FD) goes over with the
 * listeners, so state_* values survive the upgrade (the old processes, retiring, still share it);
 * the process bus is the new master's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "python/pyapi.h"
#include "server/listener.h"
#include "supervisor/master_priv.h"

#define ENV_FDS "HB_LISTEN_FDS"
#define ENV_FROM "HB_UPGRADE_FROM"
#define ENV_STATE "HB_STATE_FD" /* the shared map's memfd (hb_pyapi_state_fd) */

static void set_cloexec(master_t *m, int on)
{
	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++)
		for (int io = 0; m->slot_fds[s] && io < m->nio; io++)
			for (size_t b = 0; b < m->cfg->nbinds; b++)
				if (m->slot_fds[s][io][b] >= 0)
					fcntl(m->slot_fds[s][io][b], F_SETFD, on ? FD_CLOEXEC : 0);
	hb_steer_cloexec(&m->steer, on);
}

/* Appends to a malloc'd string; on failure frees it and leaves NULL. */
static void append(char **s, size_t *len, size_t *cap, const char *piece)
{
	size_t n = strlen(piece);

	if (*s && *len + n + 1 > *cap) {
		char *ns = realloc(*s, (*len + n + 1) * 2);
		if (!ns) {
			free(*s);
			*s = NULL;
		}
		*s = ns;
		*cap = (*len + n + 1) * 2;
	}
	if (!*s)
		return;
	memcpy(*s + *len, piece, n + 1);
	*len += n;
}

/* "NIO NBINDS;SLOT:FD,...;..." into a malloc'd string (NULL: out of memory). */
static char *fds_env(const master_t *m)
{
	size_t len = 0, cap = 64;
	char *s = malloc(cap), piece[32];

	if (s)
		s[0] = '\0';
	snprintf(piece, sizeof piece, "%d %zu", m->nio, m->cfg->nbinds);
	append(&s, &len, &cap, piece);
	for (int sl = 0; sl < HB_MASTER_MAX_SLOTS; sl++)
		for (int io = 0; m->slot_fds[sl] && io < m->nio; io++)
			for (size_t b = 0; b < m->cfg->nbinds; b++) {
				if (io == 0 && b == 0)
					snprintf(piece, sizeof piece, ";%d:%d", sl,
						 m->slot_fds[sl][io][b]);
				else
					snprintf(piece, sizeof piece, ",%d",
						 m->slot_fds[sl][io][b]);
				append(&s, &len, &cap, piece);
			}
	size_t mlen = (size_t)m->steer.n * 16 + 8;
	char *members = malloc(mlen);
	if (members && hb_steer_describe(&m->steer, members, mlen) >= 0) {
		append(&s, &len, &cap, ";M:");
		append(&s, &len, &cap, members);
	} else {
		free(s);
		s = NULL;
	}
	free(members);
	return s;
}

void hb_upgrade_start(master_t *m)
{
	if (m->upgrade_pid > 0 || m->stopping || !m->exe[0]) {
		hb_warn("SIGUSR2: %s", m->upgrade_pid > 0 ? "an upgrade is already running"
				       : m->stopping	  ? "stopping"
							  : "the binary's path is unknown");
		return;
	}
	char *fds = fds_env(m), from[16];
	if (!fds) {
		hb_error("SIGUSR2: out of memory");
		return;
	}
	snprintf(from, sizeof from, "%d", (int)m->pid);
	set_cloexec(m, 0);
	int state_fd = hb_pyapi_state_fd(); /* the shared map goes over too: state survives */
	if (state_fd >= 0)
		fcntl(state_fd, F_SETFD, 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		char state[16];
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setenv(ENV_FDS, fds, 1);
		setenv(ENV_FROM, from, 1);
		snprintf(state, sizeof state, "%d", state_fd);
		if (state_fd >= 0)
			setenv(ENV_STATE, state, 1);
		execv(m->exe, m->argv);
		fprintf(stderr, "hornbeam-uring: SIGUSR2: cannot exec %s: %s\n", m->exe,
			strerror(errno));
		_exit(127);
	}
	set_cloexec(m, 1);
	if (state_fd >= 0)
		fcntl(state_fd, F_SETFD, FD_CLOEXEC);
	free(fds);
	if (pid < 0) {
		hb_error("SIGUSR2: cannot fork: %s", strerror(errno));
		return;
	}
	m->upgrade_pid = pid;
	hb_info("SIGUSR2: binary upgrade: started %s as pid %d; this master hands over once it "
		"is ready",
		m->exe, (int)pid);
}

int hb_upgrade_reaped(master_t *m, pid_t pid, int status)
{
	if (pid != m->upgrade_pid || pid <= 0)
		return 0;
	m->upgrade_pid = 0;
	hb_error("binary upgrade failed: the new master (pid %d) %s %d; this one keeps serving",
		 (int)pid, WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
		 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	return 1;
}

void hb_upgrade_handover(master_t *m, pid_t from)
{
	if (from != m->upgrade_pid || m->upgrade_pid <= 0 || m->stopping) {
		hb_info("SIGWINCH: ignored");
		return;
	}
	hb_info("The new master (pid %d) is ready: handing the listeners over, retiring",
		(int)from);
	hb_master_drop_fds(m); /* closed, not shut down: they serve on in the new master */
	m->upgrade_pid = 0;    /* the new master is on its own (a child that outlives us) */
	m->stopping = 1;
	m->handed_over = 1;
	m->kill_at = hb_master_now() + (uint64_t)(m->cfg->reload_websocket_timeout_s +
						  2 * m->cfg->graceful_timeout_s + 10) *
					       1000000000ull;
	for (int i = 0; i < m->nprocs; i++) {
		proc_t *p = &m->procs[i];
		kill(p->pid, p->state == P_READY || p->state == P_LEAVING ? SIGHUP : SIGTERM);
		p->state = P_RETIRING;
	}
}

/* The old master's shared map, when it handed one over: state_* values carry on. Without it
 * (or if it is unusable) the new master makes its own, as before. */
static void adopt_state(const master_t *m)
{
	const char *env = getenv(ENV_STATE);
	char *end;

	if (!env)
		return;
	long fd = strtol(env, &end, 10);
	int rc = *end || fd < 0 || fd > INT32_MAX ? -EINVAL : hb_pyapi_adopt_state((int)fd);
	unsetenv(ENV_STATE);
	if (rc < 0)
		hb_warn("binary upgrade: the shared map of master %d is unusable (%s): starting "
			"with an empty one",
			(int)m->upgrade_from, strerror(-rc));
	else
		hb_info("Binary upgrade: adopted the shared map of master %d",
			(int)m->upgrade_from);
}

int hb_upgrade_adopt(master_t *m, char *err, size_t errlen)
{
	const char *env = getenv(ENV_FDS), *from = getenv(ENV_FROM);
	char *p, *end;

	if (!env)
		return 0;
	m->upgrade_from = from ? (pid_t)atoi(from) : 0;
	long nio = strtol(env, &p, 10), nbinds = strtol(p, &p, 10);
	if (nio != m->nio || nbinds != (long)m->cfg->nbinds) {
		snprintf(err, errlen,
			 "binary upgrade: the inherited listeners (%ld per bind, %ld binds) do not "
			 "match the configuration (%d, %zu): workers and binds must stay",
			 nio, nbinds, m->nio, m->cfg->nbinds);
		return -1;
	}
	while (*p == ';') {
		long slot = strtol(p + 1, &end, 10);
		if (*end != ':' || slot < 0 || slot >= HB_MASTER_MAX_SLOTS || m->slot_fds[slot])
			break;
		int **fds = calloc((size_t)nio, sizeof *fds);
		m->slot_fds[slot] = fds;
		p = end;
		for (int io = 0; fds && io < nio; io++) {
			fds[io] = malloc((size_t)(nbinds ? nbinds : 1) * sizeof(int));
			for (long b = 0; fds[io] && b < nbinds; b++) {
				fds[io][b] = (int)strtol(p + 1, &end, 10);
				fcntl(fds[io][b], F_SETFD, FD_CLOEXEC);
				p = end;
			}
		}
	}
	int members = 0;
	if (strncmp(p, ";M:", 3) == 0) {
		members = hb_steer_adopt(&m->steer, p + 3);
		p += strlen(p);
	} else {
		m->steer.unknown = 1; /* an older master: fewer processes are refused */
	}
	unsetenv(ENV_FDS);
	unsetenv(ENV_FROM);
	if (*p || members < 0) {
		snprintf(err, errlen, "binary upgrade: %s is malformed", ENV_FDS);
		return -1;
	}
	hb_info("Binary upgrade: adopted the listeners of master %d", (int)m->upgrade_from);
	adopt_state(m);
	return 1;
}
