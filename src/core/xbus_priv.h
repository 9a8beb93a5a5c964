/* xbus_priv.h: what xbus.c (region, slots, sending, publish, the bus thread, attach),
 * xbus_call.c (the name table, calls and their replies) and xbus_hub.c (the cluster's process:
 * calls, publishes, members and topics for the others) share: the shared region's layout, the
 * datagram header and the process-local handle. See xbus.h for the design and the threads.
 */
#ifndef HB_CORE_XBUS_PRIV_H
#define HB_CORE_XBUS_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/xbus.h"

#define MAGIC 0x68627862u /* "hbxb" */
#define CELLS 256u
#define RECV_MAX (HB_XBUS_INLINE_MAX + HB_PUBSUB_MAX_TOPIC + 256u)

enum { SLOT_FREE = 0, SLOT_CLAIMED, SLOT_LIVE };
/* T_RJOB: a job for another node, to the hub; T_QUERY: a question to the hub (Q_*), answered
 * with a T_REPLY; T_TOPICS: a process's subscribed topics, to the hub */
enum { T_PUB = 1, T_JOB, T_REPLY, T_PING, T_STOP, T_RJOB, T_QUERY, T_TOPICS };
enum { Q_OWNER = 1, Q_STATS };
#define PUB_VIA_HUB 1 /* T_PUB's kind: the hub also sends it to the other nodes */
#define NO_CELL CELLS /* T_PUB's cell when nobody waits for the answers */
#define TICK_MS 50    /* the bus thread's housekeeping period (xbus_hub.c) */

struct cell {
	_Atomic uint64_t word;
	_Atomic uint32_t seq; /* futex: bumped after every answer */
	uint32_t pad;
};

struct slot {
	_Atomic uint32_t state;
	_Atomic int32_t pid;
	_Atomic uint32_t gen;
	uint32_t pad;
	_Atomic uint64_t used[CELLS / 64];
	struct cell cells[CELLS];
};

struct name {
	uint64_t hash;
	uint32_t used, slot, gen, len;
	char name[HB_FUNCS_MAX_NAME];
};

struct region {
	uint32_t magic, max_procs, max_names;
	int timeout_ms;
	uint64_t id;
	_Atomic uint32_t top;	    /* slots below this index were claimed at least once */
	_Atomic uint32_t nlive;	    /* slots LIVE now: publish skips the scan when it is 1 */
	_Atomic uint64_t names_gen; /* hb_xbus_generation: bumped when the live names change */
	pthread_mutex_t mu;	    /* robust, process-shared: the name table */
	size_t names_off;
	/* the cluster (xbus_hub.c): the process running it, (slot + 1) << 32 | gen, 0 = none;
	 * its live members, NUL-terminated names, written by it under mmu (robust) */
	_Atomic uint64_t hub;
	pthread_mutex_t mmu;
	size_t members_off;
	uint32_t members_cap, members_len, members_n, members_trunc;
	uint32_t fwd_cap; /* hb_xbus_opts_t.forward_queue */
	struct slot slots[];
};

struct msg {
	uint32_t magic;
	uint8_t type, kind, status, has_fd;
	uint32_t slot, gen; /* sender (T_JOB: where the reply goes) */
	uint32_t cell, token;
	int32_t tmo; /* T_RJOB: the caller's timeout_ms */
	uint32_t pad;
	uint64_t id;
	uint32_t nlen, plen; /* name or topic, then payload (inline unless has_fd) */
};

struct pending {
	struct pending *next;
	uint64_t id;
	hb_job_t *job;
	hb_xbus_peer_t to; /* for hb_xbus_check_pending */
};

struct hb_xbus {
	struct region *r;
	size_t maplen;
	/* process-local: valid while pid == getpid() */
	pid_t pid;
	uint32_t slot, gen;
	int rfd, sfd;
	pthread_t th;
	hb_pubsub_t *ps;
	hb_funcs_t *funcs;
	pthread_mutex_t pmu; /* pending calls */
	struct pending *pending;
	_Atomic uint64_t next_id;
	_Atomic uint32_t rr; /* hb_xbus_pick's round robin */
	_Atomic uint64_t sent, received, rejected, send_errors;
	/* xbus_hub.c. In the hub: the cluster's hb_remote_t (users: bus-thread calls into it),
	 * and the other processes' topics (tmu). In the others: the proxy, and (bus thread) what
	 * was last sent to the hub. */
	_Atomic(const hb_remote_t *) hub_r;
	_Atomic int hub_users;
	hb_remote_t proxy;
	pthread_mutex_t tmu;
	struct ptopics *ptop; /* [max_procs] */
	_Atomic uint64_t topics_gen;
	uint64_t topics_sent_ps, topics_sent_hub;
	int64_t next_tick;
	/* the hub's forwarder: datagrams the cluster and bus threads may not block on (fmu) */
	pthread_mutex_t fmu;
	pthread_cond_t fcv;
	struct fwd *fhead, *ftail;
	uint32_t fcap, fpubs;
	int frun, fstop;
	pthread_t fth;
};

struct fwd {
	struct fwd *next;
	uint32_t slot, gen; /* to that process, or to every other live one when all */
	int all;
	struct msg m;
	uint8_t data[]; /* m.nlen bytes of name, then m.plen of payload */
};

struct ptopics {
	uint32_t gen;
	size_t len;
	uint8_t *data; /* (u32 subscribers, u32 length, topic)* */
};

/* 1 on the bus thread (its sends never block). */
extern _Thread_local int hb_xbus_on_bus_thread;

uint64_t hb_xbus_fnv(const void *p, size_t n);
int64_t hb_xbus_now_ms(void);
struct name *hb_xbus_name_table(struct region *r);
/* This process is attached (and is the one that attached: not a forked child). */
int hb_xbus_attached(const hb_xbus_t *b);
/* Takes the robust name-table lock (recovering it from a dead owner). */
void hb_xbus_lock_names(struct region *r);
/* (slot, gen) is the process LIVE in that slot now. */
int hb_xbus_owner_live(struct region *r, uint32_t slot, uint32_t gen);
/* Sends one datagram to (slot, gen); the payload inline when fd < 0. 0 or -errno. */
int hb_xbus_send_msg(hb_xbus_t *b, uint32_t slot, uint32_t gen, struct msg *m, const void *name,
		     const void *payload, int fd, int dontwait);
/* Inline (fd -1) or a new memfd holding data[0..len). 0 or -errno. */
int hb_xbus_payload_prepare(size_t len, const void *data, int *fd);
/* 1 while the process in p still has its socket. */
int hb_xbus_peer_alive(hb_xbus_t *b, const hb_xbus_peer_t *p);

/* Posts job j to `to` as a datagram of type (T_JOB, T_RJOB with node, T_QUERY with kind q):
 * with a pending entry (the reply finishes j) when reply. 0 or -errno. */
int hb_xbus_post_ex(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j, int type, int q,
		    const char *node, int tmo, int reply, int dontwait);
/* [hub] Queues a datagram for the forwarder (a copy; all: a publish to every other process,
 * dropped oldest first past fcap), or sends it without waiting when no forwarder runs. Returns
 * how many publishes were dropped, or -ENOMEM. */
int hb_xbus_forward(hb_xbus_t *b, uint32_t slot, uint32_t gen, int all, const struct msg *m,
		    const void *name, const void *payload);
/* [detach] Sends what the forwarder still holds and stops it. */
void hb_xbus_forward_stop(hb_xbus_t *b);
/* A done hook that sends the job's result back to its poster without ever blocking. */
void hb_xbus_reply_nowait(hb_job_t *j, void *arg);
/* Sends a T_REPLY (status, data) for call id to (slot, gen), without blocking. */
void hb_xbus_send_reply(hb_xbus_t *b, uint32_t slot, uint32_t gen, uint64_t id, int status,
			const void *data, size_t len);
/* publish, with PUB_VIA_HUB on the message to the hub when via_hub. */
int hb_xbus_publish_ex(hb_xbus_t *b, const void *topic, size_t tlen, const void *data, size_t len,
		       int via_hub);

/* xbus_hub.c, from the bus thread: those datagrams, and the periodic housekeeping. */
void hb_xbus_on_rjob(hb_xbus_t *b, const struct msg *m, const char *name, const void *args);
void hb_xbus_on_query(hb_xbus_t *b, const struct msg *m, const char *name);
void hb_xbus_on_topics(hb_xbus_t *b, const struct msg *m, const void *data);
/* The hub's part of a PUB_VIA_HUB publish: how many subscribers on other nodes. */
int hb_xbus_hub_publish(hb_xbus_t *b, const void *topic, size_t tlen, const void *data, size_t len);
void hb_xbus_tick(hb_xbus_t *b);
/* create/destroy: the hub state and the proxy. */
int hb_xbus_hub_init(hb_xbus_t *b);
void hb_xbus_hub_free(hb_xbus_t *b);

/* xbus_call.c, from the bus thread: a JOB and a REPLY datagram. */
void hb_xbus_on_job(hb_xbus_t *b, const struct msg *m, const char *name, const void *args);
void hb_xbus_on_reply(hb_xbus_t *b, const struct msg *m, const void *res);
/* [detach, after the bus thread stopped] Ends every call still waiting: LOST. */
void hb_xbus_fail_pending(hb_xbus_t *b);

#endif
