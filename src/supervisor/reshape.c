/* reshape.c: a reload (HUP) that changes `workers` (sockets per bind and process) or the binds
 * (master_priv.h, docs/production.md "Reload").
 *
 * The new generation gets sockets of its own shape, built beside the serving ones before it
 * starts: a socket the new configuration keeps (same bind spec, an io thread both shapes have,
 * a slot that exists) is the same socket, dup'd, so the kernel's SO_REUSEPORT group and the
 * connections queued in it are untouched and the two generations hand over as a plain reload
 * does; a socket for something added (a bind, io threads past the old count, a slot never used)
 * is bound fresh and listens once its process is ready. When the new generation serves, the
 * sockets the new shape dropped are shut down (connects refused) and the master's old arrays are
 * closed; the retiring processes close their copies as they leave.
 *
 * A TCP socket the new shape drops from a bind it keeps (fewer `workers`, fewer `processes`) is
 * not shut down, which would reset the connections queued in it: it is parked (steer.h), and
 * the retiring processes keep accepting for a moment before they retire (master.c). A fresh
 * socket for a group reuses a parked one first. A bind removed on purpose is shut down (its
 * clients are refused from then on, as at a stop). An fd:// bind cannot be added: its
 * descriptor is inherited at start only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "server/listener.h"
#include "supervisor/master_priv.h"

static int one_socket(const hb_bind_t *b)
{
	return b->family == AF_UNIX || b->fd_bind;
}

/* The serving configuration's index of a bind with nc's bind b's spec, or -1. */
static int old_index(const hb_config_t *old, const hb_bind_t *b)
{
	for (size_t i = 0; i < old->nbinds; i++)
		if (strcmp(old->binds[i].spec, b->spec) == 0)
			return (int)i;
	return -1;
}

int hb_reshape_needed(const master_t *m, const hb_config_t *nc)
{
	if (nc->workers != m->nio || nc->nbinds != m->cfg->nbinds)
		return 1;
	for (size_t b = 0; b < nc->nbinds; b++)
		if (strcmp(nc->binds[b].spec, m->cfg->binds[b].spec) != 0)
			return 1;
	return 0;
}

/* Parking needs the order of the groups, unknown after a binary upgrade from a master that
 * did not hand it over (steer.h). */
static const char unknown_order[] =
	"the order of the inherited sockets in their SO_REUSEPORT groups is unknown (a binary "
	"upgrade from an older release), so those that go cannot be parked; restart";

int hb_reshape_check(const master_t *m, const hb_config_t *nc, char *err, size_t errlen)
{
	for (size_t b = 0; b < nc->nbinds; b++) {
		const hb_bind_t *bd = &nc->binds[b];
		int ob = old_index(m->cfg, bd);
		if (ob < 0 && bd->fd_bind)
			return snprintf(err, errlen,
					"bind %s added: an inherited descriptor is only taken at "
					"start, that needs a restart",
					bd->spec),
			       -1;
		if (ob >= 0 && !one_socket(bd) && nc->workers < m->nio && m->steer.unknown)
			return snprintf(err, errlen,
					"workers decreased (%d -> %d) with bind %s kept: %s",
					m->nio, nc->workers, bd->spec, unknown_order),
			       -1;
	}
	return 0;
}

int hb_reshape_check_processes(const master_t *m, int n, char *err, size_t errlen)
{
	if (n >= m->target || !m->steer.unknown)
		return 0;
	return snprintf(err, errlen, "processes decreased (%d -> %d): %s", m->target, n,
			unknown_order),
	       -1;
}

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port) : 0;
}

int **hb_master_fds_alloc(int nio, size_t nbinds)
{
	int **fds = calloc((size_t)nio, sizeof(int *));
	for (int i = 0; fds && i < nio; i++) {
		fds[i] = malloc((nbinds ? nbinds : 1) * sizeof(int));
		if (!fds[i]) {
			while (i-- > 0)
				free(fds[i]);
			free(fds);
			return NULL;
		}
		for (size_t b = 0; b < nbinds; b++)
			fds[i][b] = -1;
	}
	return fds;
}

int hb_master_slot_socket(master_t *m, const hb_bind_t *b, int ref, const char **why)
{
	hb_bind_t bind = *b;

	if (one_socket(b)) {
		int d = fcntl(ref, F_DUPFD_CLOEXEC, 0);
		return d < 0 ? (*why = "dup", -errno) : d;
	}
	int parked = hb_steer_take(&m->steer, ref); /* the group does not grow */
	if (parked >= 0)
		return parked;
	if (bind.port == 0)
		bind.port = port_of(ref);
	return hb_listener_open(&bind, -1, why);
}

/* Slot 0's sockets for bind b added by nc: bound as at start (the address-in-use probe, one
 * port for a port-0 group), through the listener's own open_all on a one-bind view of nc. */
static int open_added(const hb_config_t *nc, size_t b, int **dst, char *err, size_t errlen)
{
	hb_config_t one = *nc;
	int **view = hb_master_fds_alloc(nc->workers, 1);

	if (!view)
		return snprintf(err, errlen, "out of memory"), -1;
	one.binds = &nc->binds[b];
	one.nbinds = 1;
	int rc = hb_listener_open_all(&one, nc->workers, view, err, errlen);
	for (int io = 0; io < nc->workers; io++) {
		dst[io][b] = view[io][0];
		free(view[io]);
	}
	free(view);
	return rc < 0 ? -1 : 0;
}

/* The socket of (slot, io) for nc's bind b. Slot 0 of an added bind is open_added's. */
static int socket_for(master_t *m, const hb_config_t *nc, int slot, int io, size_t b,
		      const char **why)
{
	const hb_bind_t *bind = &nc->binds[b];
	int ob = old_index(m->cfg, bind);
	int **old = m->slot_fds[slot];

	if (ob >= 0 && old && io < m->nio && !one_socket(bind)) {
		/* kept: the same socket, its queue untouched */
		int d = fcntl(old[io][ob], F_DUPFD_CLOEXEC, 0);
		return d < 0 ? (*why = "dup", -errno) : d;
	}
	/* A unix or inherited bind (the one socket every slot shares), an added bind past slot 0,
	 * or a kept one new here (an io thread or a slot the serving shape lacks): as a slot
	 * opened between reloads, from the group's first socket. */
	return hb_master_slot_socket(m, bind,
				     ob >= 0 ? m->slot_fds[0][0][ob] : m->next_fds[0][0][b], why);
}

int hb_reshape_open(master_t *m, const hb_config_t *nc, char *err, size_t errlen)
{
	m->next_nio = nc->workers;
	for (int s = 0; s < nc->processes; s++) {
		int **fds = hb_master_fds_alloc(nc->workers, nc->nbinds);
		if (!fds)
			goto oom;
		m->next_fds[s] = fds;
		for (size_t b = 0; b < nc->nbinds; b++) {
			if (s == 0 && old_index(m->cfg, &nc->binds[b]) < 0) {
				if (open_added(nc, b, fds, err, errlen) < 0)
					goto fail;
				continue;
			}
			for (int io = 0; io < nc->workers; io++) {
				const char *why = "bind";
				int fd = socket_for(m, nc, s, io, b, &why);
				if (fd < 0) {
					snprintf(err, errlen, "bind: cannot %s %s: %s", why,
						 nc->binds[b].spec, strerror(-fd));
					goto fail;
				}
				fds[io][b] = fd;
			}
		}
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	hb_reshape_abort(m, nc);
	return -1;
}

/* The identities (device, inode) of the sockets in arrays[0..HB_MASTER_MAX_SLOTS): a dup'd
 * socket is the same socket. malloc'd into *out (NULL when none), returns the count. */
static size_t identities(int **const *arrays, int nio, size_t nbinds, struct stat **out)
{
	size_t n = 0, cap = 0;
	struct stat *v = NULL;

	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++)
		for (int io = 0; arrays[s] && io < nio; io++)
			for (size_t b = 0; b < nbinds; b++) {
				struct stat st;
				if (arrays[s][io][b] < 0 || fstat(arrays[s][io][b], &st) < 0)
					continue;
				if (n == cap) {
					cap = cap ? cap * 2 : 16;
					struct stat *nv = realloc(v, cap * sizeof *nv);
					if (!nv)
						break;
					v = nv;
				}
				v[n++] = st;
			}
	*out = v;
	return n;
}

static int kept(int fd, const struct stat *keep, size_t nkeep)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return 0;
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i].st_dev == st.st_dev && keep[i].st_ino == st.st_ino)
			return 1;
	return 0;
}

/* Closes a [io][bind] array; with shut, a socket that is not among keep nor a group member
 * (release() parked those) is shut down first (connects to it are refused). */
static void free_fds(const master_t *m, int **fds, int nio, size_t nbinds, int shut,
		     const struct stat *keep, size_t nkeep)
{
	for (int io = 0; fds && io < nio; io++) {
		for (size_t b = 0; b < nbinds; b++)
			if (fds[io][b] >= 0) {
				if (shut && !kept(fds[io][b], keep, nkeep) &&
				    !(m && hb_steer_member(&m->steer, fds[io][b])))
					shutdown(fds[io][b], SHUT_RDWR);
				close(fds[io][b]);
			}
		free(fds[io]);
	}
	free(fds);
}

void hb_master_fds_free(int **fds, int nio, size_t nbinds)
{
	free_fds(NULL, fds, nio, nbinds, 0, NULL, 0);
}

/* The group members among arrays (of shape nio x cfg's binds) that keep does not hold: parked
 * when `stays` has their bind, their group shut down when it has not. The count parked; when
 * parking fails they are shut down (their queue is reset) after a log line. */
static int release(master_t *m, int **const *arrays, int nio, const hb_config_t *cfg,
		   const hb_config_t *stays, const struct stat *keep, size_t nkeep)
{
	int *park = NULL, n = 0, cap = 0, rc = 0;

	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++)
		for (int io = 0; arrays[s] && io < nio; io++)
			for (size_t b = 0; b < cfg->nbinds; b++) {
				int fd = arrays[s][io][b];
				if (fd < 0 || kept(fd, keep, nkeep) ||
				    !hb_steer_member(&m->steer, fd))
					continue;
				if (old_index(stays, &cfg->binds[b]) < 0) {
					hb_steer_forget_group(&m->steer, fd);
					continue;
				}
				if (n == cap) {
					cap = cap ? cap * 2 : 16;
					int *np = realloc(park, (size_t)cap * sizeof *np);
					if (!np) {
						rc = -ENOMEM;
						break;
					}
					park = np;
				}
				park[n++] = fd;
			}
	if (rc == 0 && n > 0)
		rc = hb_steer_park(&m->steer, park, n);
	if (rc < 0) {
		hb_error("cannot park the listening sockets that go (%s): shutting them down, "
			 "the connections queued in them are reset",
			 strerror(-rc));
		for (int i = 0; i < n; i++)
			hb_steer_forget(&m->steer, park[i]);
		hb_steer_apply(&m->steer);
		rc = 0;
	}
	free(park);
	return rc;
}

/* A unix bind's socket file goes with its bind (as at a stop), unless the other shape keeps
 * the same path. */
static void unlink_dropped(const hb_config_t *from, const hb_config_t *to)
{
	for (size_t b = 0; b < from->nbinds; b++) {
		const hb_bind_t *bd = &from->binds[b];
		if (bd->family != AF_UNIX || bd->fd_bind || old_index(to, bd) >= 0)
			continue;
		unlink(bd->path);
	}
}

int hb_reshape_abort(master_t *m, const hb_config_t *nc)
{
	struct stat *keep;
	size_t nkeep = identities((int **const *)m->slot_fds, m->nio, m->cfg->nbinds, &keep);
	int parked = release(m, (int **const *)m->next_fds, m->next_nio, nc, m->cfg, keep, nkeep);

	unlink_dropped(nc, m->cfg);
	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++) {
		free_fds(m, m->next_fds[s], m->next_nio, nc->nbinds, 1, keep, nkeep);
		m->next_fds[s] = NULL;
	}
	free(keep);
	m->next_nio = 0;
	return parked;
}

int hb_reshape_commit(master_t *m, const hb_config_t *old)
{
	struct stat *keep;
	size_t nkeep =
		identities((int **const *)m->next_fds, m->next_nio, m->next_cfg->nbinds, &keep);
	int parked = release(m, (int **const *)m->slot_fds, m->nio, old, m->next_cfg, keep, nkeep);

	unlink_dropped(old, m->next_cfg);
	for (int s = 0; s < HB_MASTER_MAX_SLOTS; s++) {
		free_fds(m, m->slot_fds[s], m->nio, old->nbinds, 1, keep, nkeep);
		m->slot_fds[s] = m->next_fds[s];
		m->next_fds[s] = NULL;
	}
	free(keep);
	hb_info("Listeners reshaped: %d socket%s per bind and process (was %d), %zu bind%s (was "
		"%zu)",
		m->next_nio, m->next_nio > 1 ? "s" : "", m->nio, m->next_cfg->nbinds,
		m->next_cfg->nbinds > 1 ? "s" : "", old->nbinds);
	m->nio = m->next_nio;
	m->next_nio = 0;
	return parked;
}

void hb_reshape_close(master_t *m, int shut)
{
	for (int s = 0; m->next_cfg && s < HB_MASTER_MAX_SLOTS; s++) {
		free_fds(NULL, m->next_fds[s], m->next_nio, m->next_cfg->nbinds, shut, NULL, 0);
		m->next_fds[s] = NULL;
	}
}
