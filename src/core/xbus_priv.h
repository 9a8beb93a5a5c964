/* xbus_priv.h: what xbus.c (region, slots, sending, publish, the bus thread, attach) and
 * xbus_call.c (the name table, calls and their replies) share: the shared region's layout, the
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
enum { T_PUB = 1, T_JOB, T_REPLY, T_PING, T_STOP };

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
	struct slot slots[];
};

struct msg {
	uint32_t magic;
	uint8_t type, kind, status, has_fd;
	uint32_t slot, gen; /* sender (T_JOB: where the reply goes) */
	uint32_t cell, token;
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

/* xbus_call.c, from the bus thread: a JOB and a REPLY datagram. */
void hb_xbus_on_job(hb_xbus_t *b, const struct msg *m, const char *name, const void *args);
void hb_xbus_on_reply(hb_xbus_t *b, const struct msg *m, const void *res);
/* [detach, after the bus thread stopped] Ends every call still waiting: LOST. */
void hb_xbus_fail_pending(hb_xbus_t *b);

#endif
