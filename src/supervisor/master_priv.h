/* master_priv.h: the master's state, shared by master.c (process table, poll loop) and
 * master_setup.c (configuration, listeners, pid file, privileges). Master thread only: the
 * master has no other thread.
 */
#ifndef HB_SUPERVISOR_MASTER_PRIV_H
#define HB_SUPERVISOR_MASTER_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/inflight.h"
#include "supervisor/steer.h"

#define HB_MASTER_MAX_SLOTS 1024 /* the `processes` key's maximum */

enum proc_state {
	P_BOOTING = 1, /* importing the app: not yet counted as serving */
	P_READY,       /* serving */
	P_RETIRING,    /* a newer generation (or a lower process count) took over: draining */
	P_STOPPING,    /* told to stop (TERM/QUIT) */
	P_LEAVING,     /* its sockets were parked (steer.h): serving what is queued there, it
			* retires at retire_at */
};

typedef struct proc {
	pid_t pid;
	int slot;     /* 0 .. processes-1 */
	unsigned gen; /* its generation */
	int ready_fd; /* read end of its readiness pipe, -1 once read */
	int state;    /* enum proc_state */
	int killed;   /* SIGKILL sent */
	int doomed;   /* past max_worker_rss: retired once its replacement is ready */
	uint64_t started;
	int replace;		 /* asked to be replaced (worker_kill_timeout, max_worker_rss) */
	uint64_t kill_at;	 /* replaced: SIGKILL if still there after this (0: none) */
	uint64_t retire_at;	 /* P_LEAVING: HUP then */
	hb_inflight_t *inflight; /* the requests its app runs (inflight.h); NULL if none */
} proc_t;

typedef struct master {
	int argc;
	char **argv, **envp;
	pid_t pid;
	hb_config_t *cfg;      /* the serving generation's (malloc'd) */
	hb_config_t *next_cfg; /* a reload's, while its generation starts; NULL otherwise */
	int nio;	       /* sockets per bind and slot: cfg->workers at start */
	/* [slot][io][bind]: each slot (its processes of every generation) has its own
	 * SO_REUSEPORT sockets, so the kernel spreads connections over the processes; NULL for a
	 * slot never used. A unix bind is one socket that every slot shares (dup'd). */
	int **slot_fds[HB_MASTER_MAX_SLOTS];
	/* A reload that changes workers or the binds (reshape.c): the new generation's sockets,
	 * [slot][io][bind] of next_cfg with next_nio per bind, while it starts; else NULL, 0. */
	int **next_fds[HB_MASTER_MAX_SLOTS];
	int next_nio;
	hb_steer_t steer; /* the TCP binds' SO_REUSEPORT groups: only the master listens */
	int sfd;	  /* signalfd */
	proc_t *procs;
	int nprocs, cap;
	unsigned gen;			/* the serving generation */
	unsigned next_gen;		/* a reload's, while it starts; 0 otherwise */
	unsigned last_gen;		/* the newest generation number handed out */
	int target;			/* processes wanted in the serving generation */
	int ready_once;			/* the first generation was ready once */
	int stopping;			/* 1 graceful, 2 now */
	uint64_t kill_at;		/* stopping: SIGKILL what is left after this */
	uint64_t rss_at;		/* max_worker_rss: the next check */
	int status;			/* exit status */
	char exe[4096];			/* this binary's path, for a binary upgrade */
	pid_t upgrade_pid;		/* USR2: the new master, until it takes over or fails */
	pid_t upgrade_from;		/* started by USR2: the old master, told once ready */
	int handed_over;		/* the listeners belong to a new master: no shutdown */
	int fails[HB_MASTER_MAX_SLOTS]; /* per slot: deaths before ready, in a row */
	uint64_t respawn_at[HB_MASTER_MAX_SLOTS]; /* per slot: not restarted before this */
	struct hb_fswatch *watch;		  /* --reload (devreload.h); NULL when off */
	int reload_due; /* a watched file changed while a reload was starting */
} master_t;

/* master.c: spawns the first generation, then runs until every process is gone after a
 * stop. Returns the exit status. */
int hb_master_loop(master_t *m);

uint64_t hb_master_now(void); /* CLOCK_MONOTONIC, ns */

/* upgrade.c: USR2 binary upgrade (see there) */
void hb_upgrade_start(master_t *m);			   /* USR2 */
void hb_upgrade_handover(master_t *m, pid_t from);	   /* WINCH from the new master */
int hb_upgrade_reaped(master_t *m, pid_t pid, int status); /* 1: it was the new master */
/* In the new master: adopts the inherited listeners. 1 adopted, 0 none, -1 err set. */
int hb_upgrade_adopt(master_t *m, char *err, size_t errlen);

/* reshape.c: a reload that changes `workers` or the binds (see there) */
/* 1 when nc's listeners differ from the serving ones (workers, the bind list), else 0. */
int hb_reshape_needed(const master_t *m, const hb_config_t *nc);
/* 0, or -1 with err set for the part a reload cannot do (an fd:// bind added; fewer io
 * threads when the order of the SO_REUSEPORT groups is unknown, steer.h). */
int hb_reshape_check(const master_t *m, const hb_config_t *nc, char *err, size_t errlen);
/* 0, or -1 with err set when going from m->target processes to n cannot park the sockets of
 * the slots that go (the order of the SO_REUSEPORT groups is unknown, steer.h). */
int hb_reshape_check_processes(const master_t *m, int n, char *err, size_t errlen);
/* Builds m->next_fds for nc->processes slots (kept sockets dup'd, added ones bound, none
 * listening yet). 0, or -1 with err set and nothing left open. */
int hb_reshape_open(master_t *m, const hb_config_t *nc, char *err, size_t errlen);
/* The reshaped generation serves (m->next_cfg, before it replaces m->cfg = old): sockets it
 * dropped are parked (a bind it keeps) or shut down (a bind it removed), the old arrays closed;
 * m->slot_fds and m->nio are the new shape. Returns the count of sockets parked. */
int hb_reshape_commit(master_t *m, const hb_config_t *old);
/* The reshaping reload failed: sockets only nc had are parked (a bind the serving shape has)
 * or shut down, m->next_fds closed. Returns the count of sockets parked. */
int hb_reshape_abort(master_t *m, const hb_config_t *nc);
/* Stop (shut = 1) or upgrade handover (0): closes m->next_fds. */
void hb_reshape_close(master_t *m, int shut);

/* reshape.c, the slots' socket arrays (master_setup.c opens them between reloads, reshape.c
 * for a reload that changes their shape) */
/* An [io][bind] array of -1s, or NULL. */
int **hb_master_fds_alloc(int nio, size_t nbinds);
/* Closes every socket of an [io][bind] array (no shutdown) and frees it; NULL is a no-op. */
void hb_master_fds_free(int **fds, int nio, size_t nbinds);
/* Bind b's socket for a slot other than the group's first, whose socket for b is ref: a unix or
 * inherited bind is that one socket, dup'd (every slot shares it); a TCP bind is bound afresh
 * (SO_REUSEPORT), on ref's port when b asks for port 0, so that every slot's sockets form one
 * group, unless a parked member of ref's group can serve again (steer.h). Not listening yet. The
 * descriptor, or -errno with *why set. */
int hb_master_slot_socket(master_t *m, const hb_bind_t *b, int ref, const char **why);

/* master_setup.c */
/* Warns about settings that have no effect in this configuration (max_requests with the main
 * interpreter). At start and at each reload. */
void hb_master_warn_config(const hb_config_t *cfg);
/* Loads the configuration again (argv, environment, file) for a reload; NULL with err set
 * when it fails. */
hb_config_t *hb_master_load_config(master_t *m, char *err, size_t errlen);
/* Binds a slot's sockets (does not listen: its first process listens once ready). 0 or -1
 * with err set. */
int hb_master_open_slot(master_t *m, int slot, char *err, size_t errlen);
/* Parks the TCP sockets of the slots from n up (steer.h: no new connection goes there; a new
 * process in the slot serves them again). The count parked, or -errno (hb_steer_park). */
int hb_master_park_slots(master_t *m, int n);
/* When parking failed: shuts those TCP sockets down (they leave their groups, their queue is
 * reset; a new process in the slot listens again). */
void hb_master_shut_slots(master_t *m, int n);
/* The master listens on a ready process's sockets (fds, [io][bind] of cfg), keeping the
 * SO_REUSEPORT groups' order (steer.h). 0, or -1 with err set. */
int hb_master_listen(master_t *m, const hb_config_t *cfg, int **fds, int nio, char *err,
		     size_t errlen);
/* Shuts every listening socket down (every process shares them: connects are refused at
 * once) and closes the master's descriptors. */
void hb_master_close_listeners(master_t *m);
/* Closes the master's listening descriptors, no shutdown, no unlink (a binary upgrade hands
 * the sockets over). */
void hb_master_drop_fds(master_t *m);
/* Logs "Listening at" once the first generation is ready (the worker says what it serves). */
void hb_master_log_ready(const master_t *m);

#endif
