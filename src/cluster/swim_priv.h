/* swim_priv.h: what the two halves of the SWIM state machine share (private to swim.c,
 * swim_gossip.c; see swim.h for the protocol).
 *
 *  - swim.c owns the member table's shape and failure detection: probing (direct, indirect,
 *    the relays that answer other members' ping-reqs), suspicion timeouts (Lifeguard's dynamic
 *    ones), local health, the reaper, hb_swim_input's dispatch of PING/ACK/PING_REQ/NACK, the
 *    timers (hb_swim_tick, hb_swim_next_deadline), lifecycle and queries.
 *  - swim_gossip.c owns dissemination: the broadcast queue (news retransmitted ~log(n) times,
 *    piggybacked on every message), building outgoing messages, the merge rules that turn a
 *    received item into a state change (memberlist's aliveNode/suspectNode/deadNode, refutation,
 *    push-pull's "dead only makes us suspect"), the gossip and push-pull timers, join/leave, and
 *    the outgoing-message and event FIFOs the caller pops.
 *
 * Everything here runs on the thread that owns the hb_swim_t (swim.h): no locks, no I/O, no
 * clock (time comes in as `now`). The functions declared here are not API: only the two files
 * call them.
 */
#ifndef HB_CLUSTER_SWIM_PRIV_H
#define HB_CLUSTER_SWIM_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cluster/swim.h"
#include "cluster/swim_msg.h"

#define MAX_CONFIRM 16u

typedef struct member {
	char name[HB_SWIM_MAX_NAME + 1];
	char addr[HB_SWIM_MAX_ADDR + 1];
	uint64_t inc;
	hb_swim_state_t state;
	int64_t since;	    /* when it entered its state */
	int64_t susp_start; /* SUSPECT: when we started suspecting it */
	uint32_t susp_k;    /* confirmations that bring the timeout down to min */
	uint32_t susp_n;    /* confirmations received */
	uint32_t nfrom;
	uint64_t from[MAX_CONFIRM]; /* hashes of who accused it (each counts once) */
	int probe_soon;		    /* newly suspected: probe it next, out of turn */
	int64_t heard;		    /* when a message from it last reached us (0: never) */
} member_t;

/* A piece of news being gossiped, one per member name. */
typedef struct bcast {
	int state;
	uint64_t inc;
	uint32_t transmits;
	char name[HB_SWIM_MAX_NAME + 1];
	char addr[HB_SWIM_MAX_ADDR + 1];
	char from[HB_SWIM_MAX_NAME + 1];
} bcast_t;

/* A ping we send on behalf of another member's ping-req. */
typedef struct relay {
	uint32_t seq, orig_seq;
	int64_t nack_at, expire;
	int nacked;
	char to[HB_SWIM_MAX_ADDR + 1];
} relay_t;

typedef struct probe {
	int active, indirect;
	uint32_t seq, expected_nacks, nacks;
	int64_t timeout_at, deadline;
	char target[HB_SWIM_MAX_NAME + 1];
} probe_t;

/* A growable array of pointers used as a FIFO. */
typedef struct fifo {
	void **v;
	uint32_t head, len, cap;
} fifo_t;

struct hb_swim {
	hb_swim_config_t c;
	char name[HB_SWIM_MAX_NAME + 1];
	char addr[HB_SWIM_MAX_ADDR + 1];
	uint64_t name_hash;
	uint64_t inc;
	int leaving;
	uint64_t rng;
	member_t **m;
	uint32_t nm, cap_m, probe_idx;
	bcast_t **bc;
	uint32_t nbc, cap_bc;
	relay_t *relays;
	uint32_t nrelays, cap_relays;
	probe_t probe;
	uint32_t seq, awareness;
	int64_t next_probe, next_gossip, next_push_pull, next_reconnect, next_reap;
	fifo_t out, events;
	hb_swim_stats_t stats;
};

static inline uint64_t rnd(hb_swim_t *s)
{
	uint64_t x = s->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->rng = x;
	return x * 2685821657736338717ull;
}

static inline uint64_t hash_str(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
	return h;
}

static inline void copy_str(char *dst, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, p, n);
	dst[n] = 0;
}

static inline int str_is(hb_swim_str_t s, const char *z)
{
	return strlen(z) == s.n && !memcmp(z, s.p, s.n);
}

static inline hb_swim_str_t zstr(const char *z)
{
	return (hb_swim_str_t){z, strlen(z)};
}

/* ---- swim.c: the member table and failure detection ---- */

/* Live members (alive or suspect) plus ourselves: the n of every log(n) in the protocol. */
uint32_t hb_swim_live_count(const hb_swim_t *s);
/* The member named p[0..n), or NULL. */
member_t *hb_swim_find(const hb_swim_t *s, const char *p, size_t n);
/* Up to k distinct random members in a state <= max_state (ALIVE, or SUSPECT to include
 * suspects), never `skip`; returns how many it put in out. */
uint32_t hb_swim_pick(hb_swim_t *s, uint32_t k, hb_swim_state_t max_state, const member_t *skip,
		      member_t **out);
/* Moves the local health score by delta, within 0..awareness_max - 1. */
void hb_swim_health_add(hb_swim_t *s, int delta);
/* m just became suspect on the word of the member whose name hashes to from_hash. */
/* Lifeguard's minimum suspicion timeout for the current member count (ms). */
int64_t hb_swim_suspicion_min(const hb_swim_t *s);
void hb_swim_suspicion_start(hb_swim_t *s, int64_t now, member_t *m, uint64_t from_hash);
/* Counts an independent confirmation of m's suspicion; 1 when it was new. */
int hb_swim_suspicion_confirm(member_t *m, uint64_t from_hash);

/* ---- swim_gossip.c: messages out, news in ---- */

/* Queues an unreliable message of `type` to addr with as much pending gossip as fits (see the
 * definition for `buddy` and `with_self`). */
void hb_swim_send_msg(hb_swim_t *s, const char *addr, int type, uint32_t seq, const member_t *buddy,
		      const char *target_addr, int with_self);
/* Queues our whole member list (ourselves included) as a PUSH_PULL or its reply (reliable). */
void hb_swim_send_state(hb_swim_t *s, const char *addr, int type);
/* Applies one received item (from_sync: it came in a push-pull). */
void hb_swim_apply_item(hb_swim_t *s, int64_t now, const hb_swim_item_t *it, int from_sync);
/* The merge rules for a suspicion, and for a death or a leave (st DEAD or LEFT). */
void hb_swim_on_suspect(hb_swim_t *s, int64_t now, const hb_swim_item_t *it);
void hb_swim_on_dead(hb_swim_t *s, int64_t now, const hb_swim_item_t *it, hb_swim_state_t st);
/* The gossip timer (due: now >= next_gossip) and the push-pull/reconnect timers (check their
 * own deadlines). */
void hb_swim_gossip_tick(hb_swim_t *s, int64_t now);
void hb_swim_sync_tick(hb_swim_t *s, int64_t now);
/* Frees the broadcast queue and both FIFOs (with what they still hold). */
void hb_swim_gossip_free(hb_swim_t *s);

#endif
