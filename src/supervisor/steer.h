/* steer.h: the TCP listeners' SO_REUSEPORT groups as the kernel orders them, and the classic
 * BPF program that keeps new connections off the members no process serves any more
 * (docs/architecture.md "Fewer processes").
 *
 * A TCP bind has a socket per process slot and io thread, all in one SO_REUSEPORT group: the
 * kernel gives each new connection to one member (by a hash of the 4-tuple, or by the index a
 * program attached to the group returns) and queues it there until that member's process
 * accepts it. Closing a member resets what is queued in it (net.ipv4.tcp_migrate_req aside), so
 * a member whose process leaves (fewer processes or io threads) is not closed but parked: it
 * stays in the group, listening, while a program (SKF_AD_RANDOM modulo the serving members,
 * mapped to their indices) sends every new connection to the others; the leaving process
 * accepts what was already queued for it, then retires. A parked member serves again when a
 * process takes its place (TTIN, a reload), so parking does not grow the group.
 *
 * The program's indices are the kernel's: members in the order they joined (listen()), one
 * that leaves replaced by the last. So only the master listens (hb_steer_listen, when a process
 * is ready) and takes members out (hb_steer_forget_group, a bind removed; hb_steer_close, a
 * stop), and records both here.
 *
 * Master thread only. The table owns a descriptor (a dup) of every member: a parked member
 * lives on that alone. Functions return 0 (or a count) or -errno and never log.
 */
#ifndef HB_SUPERVISOR_STEER_H
#define HB_SUPERVISOR_STEER_H

#include <stddef.h>

struct hb_steer_member;

typedef struct hb_steer {
	struct hb_steer_member *v; /* members of every group, in join order */
	int n, cap;
	/* The order is not known (a binary upgrade from a master that did not hand it over):
	 * nothing can be parked. */
	int unknown;
} hb_steer_t;

/* listen(fd, backlog). With join (a TCP bind's own socket), a socket new to its group is
 * recorded at the group's end and a parked one serves again; hb_steer_apply then updates the
 * programs. 0 or -errno. */
int hb_steer_listen(hb_steer_t *st, int fd, int backlog, int join);

/* Parks the members among fds[0..n) (others are ignored; one parked already may be taken
 * again) and updates the programs. The count newly parked; -ENOTRECOVERABLE when the order is
 * unknown, -EBUSY when a group would keep no serving member, or the -errno of attaching a program:
 * then nothing changed. */
int hb_steer_park(hb_steer_t *st, const int *fds, int n);

/* A parked member of ref's group that no one took yet, dup'd (a new socket for that group
 * reuses it rather than growing the group), or -1. It serves again once listened. */
int hb_steer_take(hb_steer_t *st, int ref);

/* Shuts fd's socket down and forgets it; the kernel moves its group's last member into its
 * place (call hb_steer_apply next). For a park that failed: what was queued there is reset. */
void hb_steer_forget(hb_steer_t *st, int fd);

/* 1 when fd's socket is a recorded member, else 0. */
int hb_steer_member(const hb_steer_t *st, int fd);

/* Shuts down every member of fd's group (its bind is removed: connects are refused) and
 * forgets them. */
void hb_steer_forget_group(hb_steer_t *st, int fd);

/* Attaches each group's program (or detaches it once nothing there is parked). 0, or the
 * -errno of the first group that failed. */
int hb_steer_apply(hb_steer_t *st);

/* Closes every held descriptor, shut down first with shut (a stop), not without (a binary
 * upgrade: the new master holds them), and empties the table. */
void hb_steer_close(hb_steer_t *st, int shut);

/* Binary upgrade. hb_steer_describe writes "FD,FD,..." (a parked member's FD prefixed 'p') in
 * join order into buf; the length, or -ENOSPC. hb_steer_adopt reads it back in the new master
 * (the descriptors are inherited): 0 or -EINVAL. */
int hb_steer_describe(const hb_steer_t *st, char *buf, size_t len);
int hb_steer_adopt(hb_steer_t *st, const char *desc);
/* Inherited descriptors: clears (on = 0) or sets FD_CLOEXEC on every held one. */
void hb_steer_cloexec(const hb_steer_t *st, int on);

#endif
