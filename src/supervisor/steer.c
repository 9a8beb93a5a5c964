/* steer.c: the SO_REUSEPORT groups' members and their programs (steer.h). */
#include "supervisor/steer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

/* The program is 3 + 2 * k instructions long for k serving members (BPF_MAXINSNS is 4096):
 * past this many, connections go to the first ones only (still none to a parked member). */
#define MAX_STEERED 2000

typedef struct hb_steer_member {
	int fd; /* the table's own dup */
	dev_t dev;
	ino_t ino; /* the socket's identity: a dup is the same socket */
	struct sockaddr_storage addr;
	socklen_t alen; /* the bound address: the members of a group share it */
	int parked;
	int taken;   /* parked, handed out by hb_steer_take for a new process */
	int program; /* a program is attached to its group (set on every member of it) */
} member_t;

static int find(const hb_steer_t *st, int fd)
{
	struct stat s;

	if (fd < 0 || fstat(fd, &s) < 0)
		return -1;
	for (int i = 0; i < st->n; i++)
		if (st->v[i].dev == s.st_dev && st->v[i].ino == s.st_ino)
			return i;
	return -1;
}

static int same_group(const member_t *a, const member_t *b)
{
	return a->alen == b->alen && memcmp(&a->addr, &b->addr, a->alen) == 0;
}

/* Records fd's socket at the end (its group's end: a group is the members of one address). */
static int add(hb_steer_t *st, int fd, int parked)
{
	member_t m = {.fd = fd, .parked = parked, .alen = sizeof m.addr};
	struct stat s;

	if (fstat(fd, &s) < 0 || getsockname(fd, (struct sockaddr *)&m.addr, &m.alen) < 0)
		return -errno;
	if (st->n == st->cap) {
		int cap = st->cap ? st->cap * 2 : 16;
		member_t *v = realloc(st->v, (size_t)cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		st->v = v;
		st->cap = cap;
	}
	m.dev = s.st_dev;
	m.ino = s.st_ino;
	st->v[st->n++] = m;
	return 0;
}

int hb_steer_listen(hb_steer_t *st, int fd, int backlog, int join)
{
	if (listen(fd, backlog) < 0)
		return -errno;
	if (!join)
		return 0;
	int i = find(st, fd);
	if (i >= 0) { /* listening already: its place in the group is unchanged */
		st->v[i].parked = st->v[i].taken = 0;
		return 0;
	}
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (d < 0)
		return -errno;
	int rc = add(st, d, 0);
	if (rc < 0)
		close(d);
	return rc;
}

int hb_steer_member(const hb_steer_t *st, int fd)
{
	return find(st, fd) >= 0;
}

/* The kernel's index of each serving member of v[first]'s group, in idx (k of them); the
 * count of members in the group, parked ones included. */
static int group_order(const hb_steer_t *st, int first, uint32_t *idx, int *k)
{
	int n = 0;

	*k = 0;
	for (int i = first; i < st->n; i++) {
		if (!same_group(&st->v[i], &st->v[first]))
			continue;
		if (!st->v[i].parked && *k < MAX_STEERED)
			idx[(*k)++] = (uint32_t)n;
		n++;
	}
	return n;
}

/* A = random() % k, then the k-th serving member's index ("ret A" when they are the first k). */
static int attach(int fd, const uint32_t *idx, int k)
{
	struct sock_filter *f = malloc((size_t)(3 + 2 * k) * sizeof *f);
	int n = 0, identity = 1;

	if (!f)
		return -ENOMEM;
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM));
	f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (uint32_t)k);
	for (int r = 0; r < k; r++)
		identity &= idx[r] == (uint32_t)r;
	if (identity) {
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_A, 0);
	} else {
		for (int r = 0; r < k - 1; r++) {
			f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
							      (uint32_t)r, 0, 1);
			f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, idx[r]);
		}
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, idx[k - 1]);
	}
	struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
	int rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0
			 ? -errno
			 : 0;
	free(f);
	return rc;
}

/* Back to the kernel's hash: detached, or where the kernel predates SO_DETACH_REUSEPORT_BPF
 * (5.8), a program whose index is always out of range (the kernel then hashes). */
static int detach(int fd)
{
	int zero = 0;

	if (setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof zero) == 0 ||
	    errno == ENOENT)
		return 0;
	struct sock_filter f = BPF_STMT(BPF_RET | BPF_K, UINT32_MAX);
	struct sock_fprog prog = {.len = 1, .filter = &f};
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0 ? -errno
											    : 0;
}

static void mark_program(hb_steer_t *st, int first, int on)
{
	for (int i = first; i < st->n; i++)
		if (same_group(&st->v[i], &st->v[first]))
			st->v[i].program = on;
}

/* v[first]'s group: a program while a member is parked (and one serves), none otherwise. */
static int apply_group(hb_steer_t *st, int first, uint32_t *idx)
{
	int k, n = group_order(st, first, idx, &k);

	if (k > 0 && k < n) {
		int rc = attach(st->v[first].fd, idx, k);
		if (rc == 0)
			mark_program(st, first, 1);
		return rc;
	}
	if (!st->v[first].program)
		return 0;
	int rc = detach(st->v[first].fd);
	if (rc == 0)
		mark_program(st, first, 0);
	return rc;
}

int hb_steer_apply(hb_steer_t *st)
{
	uint32_t *idx = malloc((size_t)(st->n ? st->n : 1) * sizeof *idx);
	int rc = 0;

	if (!idx)
		return -ENOMEM;
	for (int i = 0; i < st->n; i++) {
		int first = 1;
		for (int j = 0; j < i && first; j++)
			first = !same_group(&st->v[j], &st->v[i]);
		int r = first ? apply_group(st, i, idx) : 0;
		if (r < 0 && rc == 0)
			rc = r;
	}
	free(idx);
	return rc;
}

/* Every group with a parked member keeps one that serves. */
static int serving_everywhere(const hb_steer_t *st)
{
	for (int i = 0; i < st->n; i++) {
		int serves = 0;
		for (int j = 0; j < st->n && !serves; j++)
			serves = same_group(&st->v[i], &st->v[j]) && !st->v[j].parked;
		if (!serves)
			return 0;
	}
	return 1;
}

int hb_steer_park(hb_steer_t *st, const int *fds, int n)
{
	char *was = calloc((size_t)(st->n ? st->n : 1), 1);
	int count = 0, rc = 0;

	if (!was)
		return -ENOMEM;
	for (int i = 0; i < st->n; i++)
		was[i] = (char)st->v[i].parked;
	for (int i = 0; i < n; i++) {
		int m = find(st, fds[i]);
		if (m >= 0)
			st->v[m].taken = 0; /* whoever took it let it go */
		if (m >= 0 && !st->v[m].parked) {
			st->v[m].parked = 1;
			count++;
		}
	}
	if (count && st->unknown)
		rc = -ENOTRECOVERABLE;
	else if (count && !serving_everywhere(st))
		rc = -EBUSY;
	else if (count)
		rc = hb_steer_apply(st);
	if (rc < 0) { /* as it was */
		for (int i = 0; i < st->n; i++)
			st->v[i].parked = was[i];
		hb_steer_apply(st);
	}
	free(was);
	return rc < 0 ? rc : count;
}

int hb_steer_take(hb_steer_t *st, int ref)
{
	int g = find(st, ref);

	for (int i = 0; g >= 0 && i < st->n; i++) {
		member_t *m = &st->v[i];
		if (!m->parked || m->taken || !same_group(m, &st->v[g]))
			continue;
		int d = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
		if (d >= 0)
			m->taken = 1;
		return d;
	}
	return -1;
}

/* As the kernel does (reuseport_detach_sock): the group's last member takes v[i]'s place. */
static void remove_at(hb_steer_t *st, int i)
{
	int last = i;

	for (int j = i + 1; j < st->n; j++)
		if (same_group(&st->v[j], &st->v[i]))
			last = j;
	shutdown(st->v[i].fd, SHUT_RDWR);
	close(st->v[i].fd);
	st->v[i] = st->v[last];
	memmove(&st->v[last], &st->v[last + 1], (size_t)(st->n - last - 1) * sizeof *st->v);
	st->n--;
}

void hb_steer_forget(hb_steer_t *st, int fd)
{
	int i = find(st, fd);

	if (i >= 0)
		remove_at(st, i);
}

void hb_steer_forget_group(hb_steer_t *st, int fd)
{
	int g = find(st, fd);

	if (g < 0)
		return;
	member_t group = st->v[g];
	for (int i = st->n - 1; i >= 0; i--)
		if (same_group(&st->v[i], &group))
			remove_at(st, i);
}

void hb_steer_close(hb_steer_t *st, int shut)
{
	for (int i = 0; i < st->n; i++) {
		if (shut)
			shutdown(st->v[i].fd, SHUT_RDWR);
		close(st->v[i].fd);
	}
	free(st->v);
	st->v = NULL;
	st->n = st->cap = 0;
}

int hb_steer_describe(const hb_steer_t *st, char *buf, size_t len)
{
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	for (int i = 0; i < st->n; i++) {
		int w = snprintf(buf + off, len - off, "%s%s%d", i ? "," : "",
				 st->v[i].parked ? "p" : "", st->v[i].fd);
		if (w < 0 || (size_t)w >= len - off)
			return -ENOSPC;
		off += (size_t)w;
	}
	return (int)off;
}

int hb_steer_adopt(hb_steer_t *st, const char *desc)
{
	const char *p = desc;

	while (*p) {
		int parked = *p == 'p';
		char *end;
		long fd = strtol(p + parked, &end, 10);
		if (end == p + parked || fd < 0 || fd > INT32_MAX || (*end && *end != ','))
			return -EINVAL;
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		if (add(st, (int)fd, parked) < 0)
			return -EINVAL;
		st->v[st->n - 1].program = 1; /* the old master's may be attached: replaced */
		p = *end ? end + 1 : end;
	}
	return 0;
}

void hb_steer_cloexec(const hb_steer_t *st, int on)
{
	for (int i = 0; i < st->n; i++)
		fcntl(st->v[i].fd, F_SETFD, on ? FD_CLOEXEC : 0);
}
