/* swim.h: cluster membership and failure detection, SWIM with Lifeguard's refinements, as a
 * deterministic state machine with no I/O and no clock.
 *
 * The caller passes time in (milliseconds on any monotonic clock) and feeds received messages;
 * the machine queues messages to send (each to a member's address; `reliable` ones are full
 * state syncs the caller should send over the member's TCP link, the others fit in one UDP
 * packet) and membership events. Randomness comes from a PRNG seeded by the caller, so a test
 * that fixes seeds and time replays exactly.
 *
 * Protocol (as HashiCorp memberlist, which the defaults follow; docs/cluster.md has the detail):
 * - every probe_interval, ping the next member of a shuffled round robin; no ack within
 *   probe_timeout: ask indirect_checks other members to ping it (ping-req), they answer with an
 *   ack or, at 80% of the timeout, a nack; no ack by the end of the interval: suspect it.
 * - a suspicion becomes dead after a timeout between min = suspicion_mult * max(1, log10(n)) *
 *   probe_interval and max = suspicion_max_mult * min, shrinking from max toward min as
 *   independent members confirm the suspicion (Lifeguard's dynamic suspicion).
 * - a member that hears itself suspected or declared dead refutes with a higher incarnation.
 * - local health (Lifeguard): a score raised by failed probes with missing nacks and by
 *   refutations, lowered by successful probes, stretches this node's probe interval and timeout
 *   (x score+1), so a slow node does not accuse healthy ones.
 * - state changes are gossiped piggybacked on every ping/ack and in gossip packets every
 *   gossip_interval, each retransmitted retransmit_mult * ceil(log10(n+1)) times; every
 *   push_pull_interval a full state exchange with a random member, and every
 *   reconnect_interval one with a random dead member, so partitions heal.
 * - leave: the node gossips "left" to every member at once; others mark it left, not dead.
 * - a restarted node (same name) learns its old state from the seed and refutes it, so it
 *   rejoins with a higher incarnation.
 *
 * An hb_swim_t belongs to one thread (the cluster thread). Errors: 0 / -errno.
 */
#ifndef HB_CLUSTER_SWIM_H
#define HB_CLUSTER_SWIM_H

#include <stddef.h>
#include <stdint.h>

#define HB_SWIM_MAX_NAME 255u
#define HB_SWIM_MAX_ADDR 255u

typedef struct hb_swim_config {
	const char *name;		/* this node's name, 1..HB_SWIM_MAX_NAME bytes */
	const char *addr;		/* where others reach it ("host:port") */
	uint64_t incarnation;		/* starting incarnation (0 is fine: refutation lifts it) */
	uint64_t seed;			/* PRNG seed */
	uint32_t probe_interval_ms;	/* 1000 */
	uint32_t probe_timeout_ms;	/* 500 */
	uint32_t indirect_checks;	/* 3 */
	uint32_t suspicion_mult;	/* 4 */
	uint32_t suspicion_max_mult;	/* 6 */
	uint32_t retransmit_mult;	/* 4 */
	uint32_t awareness_max;		/* 8 */
	uint32_t gossip_interval_ms;	/* 200 */
	uint32_t gossip_nodes;		/* 3 */
	uint32_t push_pull_interval_ms; /* 30000 */
	uint32_t reconnect_interval_ms; /* 10000 */
	uint32_t reap_ms;		/* forget dead and left members after; 3600000 */
	uint32_t max_packet;		/* bytes of one unreliable message; 1400 */
} hb_swim_config_t;

typedef enum hb_swim_state {
	HB_SWIM_ALIVE,
	HB_SWIM_SUSPECT,
	HB_SWIM_DEAD,
	HB_SWIM_LEFT,
} hb_swim_state_t;

typedef enum hb_swim_event_type {
	HB_SWIM_EV_JOIN,    /* a new member, or one back from dead/left */
	HB_SWIM_EV_SUSPECT, /* suspected of failure */
	HB_SWIM_EV_ALIVE,   /* a suspicion was refuted */
	HB_SWIM_EV_DEAD,    /* declared failed */
	HB_SWIM_EV_LEAVE,   /* left gracefully */
} hb_swim_event_type_t;

typedef struct hb_swim_event {
	hb_swim_event_type_t type;
	uint64_t incarnation;
	char name[HB_SWIM_MAX_NAME + 1];
	char addr[HB_SWIM_MAX_ADDR + 1];
} hb_swim_event_t;

/* A message to send. The caller frees it with free(). */
typedef struct hb_swim_out {
	int reliable;			 /* a full state sync: send over the TCP link */
	char addr[HB_SWIM_MAX_ADDR + 1]; /* destination */
	size_t len;
	uint8_t data[];
} hb_swim_out_t;

typedef struct hb_swim_stats {
	uint64_t probes, probe_acks, indirect_probes, indirect_acks, nacks_received;
	uint64_t suspects, refutes, deaths, push_pulls, bad_messages;
} hb_swim_stats_t;

/* Called by hb_swim_members for each known member (not this node). */
typedef void (*hb_swim_member_cb)(const char *name, const char *addr, hb_swim_state_t st,
				  uint64_t incarnation, void *ud);

typedef struct hb_swim hb_swim_t;

/* Fills zero fields of c with the defaults above. */
void hb_swim_config_defaults(hb_swim_config_t *c);
/* A node that knows no one yet (hb_swim_join contacts a seed). Copies what it needs from c (zero
 * fields take defaults). NULL on a bad name/address or ENOMEM. */
hb_swim_t *hb_swim_new(const hb_swim_config_t *c, int64_t now);
void hb_swim_free(hb_swim_t *s);

/* Queues a full state exchange with the node at addr (a seed). Returns 0, -EINVAL, -ENOMEM. */
int hb_swim_join(hb_swim_t *s, int64_t now, const char *addr);
/* Leaves: gossips "left" to every live member now. Later ticks send nothing. Returns 0/-ENOMEM. */
int hb_swim_leave(hb_swim_t *s, int64_t now);
/* Takes one received message. Returns 0, or -EBADMSG (counted; the message is ignored). */
int hb_swim_input(hb_swim_t *s, int64_t now, const void *data, size_t len);
/* Runs the timers that are due at now. */
void hb_swim_tick(hb_swim_t *s, int64_t now);
/* When hb_swim_tick must next run (absolute ms). */
int64_t hb_swim_next_deadline(const hb_swim_t *s);

/* The oldest queued message to send, or NULL. The caller owns it (free()). */
hb_swim_out_t *hb_swim_pop_out(hb_swim_t *s);
/* The oldest membership event: returns 1 with *ev filled, or 0. */
int hb_swim_pop_event(hb_swim_t *s, hb_swim_event_t *ev);

/* Calls cb for every known member (not this node), in no particular order. */
void hb_swim_members(const hb_swim_t *s, hb_swim_member_cb cb, void *ud);
/* Members in state st (this node not counted). */
uint32_t hb_swim_count(const hb_swim_t *s, hb_swim_state_t st);
/* A member's state and incarnation: 0, or -ENOENT. */
int hb_swim_member(const hb_swim_t *s, const char *name, hb_swim_state_t *st, uint64_t *inc);
uint64_t hb_swim_incarnation(const hb_swim_t *s);
/* The local health score (0 = healthy, up to awareness_max - 1). */
uint32_t hb_swim_health(const hb_swim_t *s);
const hb_swim_stats_t *hb_swim_stats(const hb_swim_t *s);

#endif
