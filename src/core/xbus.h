/* xbus.h: the process bus: pub/sub and registered functions across the worker processes of one
 * server (pubsub.h and funcs.h stay per process; this joins them).
 *
 * One MAP_SHARED|MAP_ANONYMOUS region, created by hb_xbus_create BEFORE the worker processes
 * are forked (the master does it; tests fork after it), holds:
 *  - a table of process slots (max_procs): state, pid, generation, and 256 acknowledgement
 *    cells per slot (see publish below);
 *  - the table of registered function names (max_names), each naming its owner (slot,
 *    generation), guarded by a robust process-shared mutex: a process that dies holding it does
 *    not wedge the others (the next locker gets EOWNERDEAD and makes it consistent; every entry
 *    is written so that a half-written one is harmless).
 * Each worker process attaches once (hb_xbus_attach, after fork): it claims a free slot (or one
 * whose process is gone), binds an abstract unix datagram socket named after the region's random
 * id, the slot and its generation, and starts one receiving thread (the "bus thread"). Messages
 * are datagrams carrying the sender's credentials (SO_PASSCRED): the bus thread drops any whose
 * sender is not this user's process in the slot it claims. Payloads over 48 KiB travel in a
 * sealed-by-convention memfd passed with SCM_RIGHTS, so messages have no size limit but the
 * callers' own (state_max_value_size).
 *
 * publish: the local registry first (pubsub.h), then one PUB datagram to every other live slot;
 * each bus thread queues it on its own subscribers (dropping oldest in full queues, counted
 * there) and adds its count to an acknowledgement cell in the PUBLISHER's slot (a 64-bit word:
 * token, peers still to answer, total; a process-shared futex wakes the publisher). publish
 * returns the total, waiting at most timeout_ms for the answers (a peer that does not answer in
 * time counts 0). Datagrams from one sending process to one receiver keep their order, and a
 * publish returns only after sending, so one thread's messages reach each subscriber in order.
 *
 * call/cast: the shared name table says which process owns a name. A job for another process
 * is sent as a JOB datagram; that process's bus thread posts it to the local inbox that owns the
 * name (funcs.h) with a completion hook; the worker that runs it sends the REPLY datagram
 * (result bytes, error text, or LOST) back, where the bus thread finishes the caller's own job
 * object, so the caller waits on it exactly as on a local job (hb_xbus_wait also notices a peer
 * that died: the job ends LOST). Bus threads never block on a send (the only send they make, a
 * LOST reply for a name that just went away, is non-blocking), so two processes cannot wedge
 * each other; a sending worker thread waits at most timeout_ms (SO_SNDTIMEO) for a peer's queue.
 * A JOB of kind HB_JOB_RPC/HB_JOB_RPC_CAST ("module:function": the cluster spreading calls from
 * other nodes over the processes with hb_xbus_pick) goes to that process's least busy pooled
 * worker (hb_funcs_post_any) instead of a name's owner.
 *
 * The cluster (xbus_hub.c): the process that runs the node (the hub: hb_xbus_set_hub with the
 * cluster's hb_remote_t) serves the others, whose hb_xbus_remote is a proxy hb_remote_t:
 *  - send: a T_RJOB datagram (node, job) to the hub, whose bus thread hands it to the cluster
 *    (which only queues it) with a done hook that sends the REPLY back without blocking; the
 *    caller's job is pending here like a call to another process, so a hub that dies ends it
 *    LOST (the bus thread checks pending calls every TICK_MS). Datagrams from one process to
 *    the hub keep their order and so do the cluster's queues: calls and publishes of one
 *    thread reach each node in order.
 *  - publish: the PUB datagram to the hub is marked PUB_VIA_HUB: the hub also publishes it to
 *    the other nodes and adds their subscriber count to its answer.
 *  - connected / nodes: the hub writes the live members into the region (hb_xbus_set_members);
 *    owner and stats: a T_QUERY answered by the hub's bus thread at once.
 *  - subscriptions: every TICK_MS each bus thread sends its process's topics (T_TOPICS) to the
 *    hub when they changed; hb_xbus_topics gives the cluster their sum to announce, so other
 *    nodes count (and send to) subscribers in every process. A publish from another node is
 *    queued to every process by hb_xbus_publish_nowait (never blocks the cluster thread).
 *
 * Threads: any thread of an attached process may call publish/register/unregister/owner/names/
 * post/wait; attach/detach from one thread (the process's main thread). hb_xbus_reap is for the
 * master (which never attaches) after it reaped a worker. Local state lives in the handle, so a
 * process that forks after attaching must not use the bus in the child (calls there act as if
 * not attached).
 * Ownership: the creator owns the handle; every process's copy refers to the same region.
 * Errors are 0 / -errno; nothing prints.
 */
#ifndef HB_CORE_XBUS_H
#define HB_CORE_XBUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/funcs.h"
#include "core/pubsub.h"
#include "core/remote.h"

#define HB_XBUS_MAX_PROCS 255u
#define HB_XBUS_DEFAULT_PROCS 64u
#define HB_XBUS_DEFAULT_NAMES 1024u
#define HB_XBUS_DEFAULT_TIMEOUT_MS 1000
#define HB_XBUS_INLINE_MAX (48u << 10)
#define HB_XBUS_DEFAULT_MEMBERS (64u << 10)
#define HB_XBUS_MAX_MEMBERS (64u << 20)
#define HB_XBUS_DEFAULT_FORWARD 10000u

typedef struct hb_xbus hb_xbus_t;

typedef struct hb_xbus_opts {
	uint32_t max_procs;	/* slots (worker processes alive at once); 0 = 64; at most 255 */
	uint32_t max_names;	/* registered names, all processes together; 0 = 1024 */
	int timeout_ms;		/* publish acknowledgements and sends to a full peer; 0 = 1000 */
	uint32_t members_bytes; /* the cluster's member names (NUL-terminated); 0 = 64 KiB; at
				 * most 64 MiB (config: cluster_member_names_size) */
	uint32_t forward_queue; /* the hub's queue of publishes to the others; 0 = 10000 */
} hb_xbus_opts_t;

/* Where a name lives: a slot and the generation of the process in it. */
typedef struct hb_xbus_peer {
	uint32_t slot, gen;
} hb_xbus_peer_t;

typedef struct hb_xbus_stats {
	uint64_t sent, received, rejected; /* datagrams; rejected: bad sender or header */
	uint64_t send_errors;		   /* peer gone, or its queue full past timeout_ms */
} hb_xbus_stats_t;

/* Called once per registered name by hb_xbus_names (with no lock held). */
typedef int (*hb_xbus_name_cb)(const char *name, size_t len, void *ud);

/* [before fork] Maps the region. NULL on bad options or no memory. */
hb_xbus_t *hb_xbus_create(const hb_xbus_opts_t *o);
/* Detaches if attached and unmaps this process's view. NULL is a no-op. */
void hb_xbus_destroy(hb_xbus_t *b);

/* [worker process, once] Claims a slot, binds the socket and starts the bus thread, which
 * delivers to ps and runs jobs through funcs (both must outlive the attachment). Returns 0,
 * -EBUSY (attached already), -ENOSPC (every slot is taken) or another -errno. */
int hb_xbus_attach(hb_xbus_t *b, hb_pubsub_t *ps, hb_funcs_t *funcs);
/* Stops the bus thread, drops this process's names, fails calls still waiting (LOST), frees
 * the slot. No-op when not attached. */
void hb_xbus_detach(hb_xbus_t *b);
/* This process's slot, or -1 when it is not attached. */
int hb_xbus_slot(const hb_xbus_t *b);
/* The next live process in round robin (this one included), to spread work over them: 1 with
 * *out = this process, 0 with *out another one, -ENOTCONN when not attached. */
int hb_xbus_pick(hb_xbus_t *b, hb_xbus_peer_t *out);
/* Changes whenever the set of live registered names may have changed (a register, an
 * unregister, a process's slot freed): the cluster re-announces its names when it moves. */
uint64_t hb_xbus_generation(hb_xbus_t *b);
/* Other processes attached now (racy). */
int hb_xbus_peers(hb_xbus_t *b);
/* [master, after waitpid] Frees the slot of a process that is gone, and its names. */
void hb_xbus_reap(hb_xbus_t *b, pid_t pid);

/* Queues data on every subscriber of topic in the OTHER attached processes; returns how many
 * (>= 0), or -EINVAL (bad topic). 0 when not attached. */
int hb_xbus_publish(hb_xbus_t *b, const void *topic, size_t tlen, const void *data, size_t len);

/* Makes this process the owner of name (replacing any owner). 0, -EINVAL, -ENOSPC, -ENOTCONN. */
int hb_xbus_register(hb_xbus_t *b, const void *name, size_t len);
/* Removes name whoever owns it. 0 or -ENOENT. */
int hb_xbus_unregister(hb_xbus_t *b, const void *name, size_t len);
/* Removes name if this process owns it. 0 or -ENOENT. */
int hb_xbus_unregister_mine(hb_xbus_t *b, const void *name, size_t len);
/* 1: this process owns name; 0: the live process *out owns it; -ENOENT: nobody (alive) does. */
int hb_xbus_owner(hb_xbus_t *b, const void *name, size_t len, hb_xbus_peer_t *out);
/* Calls cb for every name whose owner is alive; cb's non-zero return stops and is returned. */
int hb_xbus_names(hb_xbus_t *b, hb_xbus_name_cb cb, void *ud);

/* Sends a job (funcs.h) to the process `to`. For HB_JOB_CALL and HB_JOB_RPC ("module:function",
 * run by the least busy worker there) the bus keeps a reference until
 * the reply finishes the job (hb_funcs_job_wait / hb_xbus_wait). Returns 0, -ENOTCONN (not
 * attached), -ECONNREFUSED (the peer is gone), -ETIMEDOUT (its queue stayed full) or -ENOMEM. */
int hb_xbus_post(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j);
/* hb_xbus_post without waiting for a full peer queue: -EAGAIN then (nothing was sent), for a
 * thread that must not block (the cluster thread). */
int hb_xbus_try_post(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j);
/* For a poster that does not wait with hb_xbus_wait (the cluster thread, whose jobs finish
 * through their done hook): ends LOST every posted call whose process has left its slot (died
 * and was reaped or replaced). Returns how many. */
int hb_xbus_check_pending(hb_xbus_t *b);
/* Waits for a posted call like hb_funcs_job_wait, and ends it LOST when the peer dies
 * meanwhile. Returns 0 (the job finished) or -ETIMEDOUT (the bus forgot it: a late reply is
 * dropped). */
int hb_xbus_wait(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j, int timeout_ms);

void hb_xbus_stats(hb_xbus_t *b, hb_xbus_stats_t *st);

/* ---- the cluster across processes (xbus_hub.c) ---- */

/* [the process running the cluster, any thread] Makes this process the hub with r (the
 * cluster's, valid until hb_xbus_set_hub(b, NULL), which waits until the bus thread is out of
 * it and forgets the members). -ENOTCONN when not attached. */
int hb_xbus_set_hub(hb_xbus_t *b, const hb_remote_t *r);
/* The proxy to the hub when another live process is one, else NULL (no cluster, or this
 * process is the hub). Valid while attached. */
const hb_remote_t *hb_xbus_remote(hb_xbus_t *b);
/* [hub] The cluster's live members (what nodes() lists). -ENOSPC when they did not all fit in
 * members_bytes (those that fit are kept, and connected() then says yes to any name so that
 * the hub decides), -ENOTCONN when this process is not the hub. */
int hb_xbus_set_members(hb_xbus_t *b, char *const *names, int n);
/* Calls cb for every member the hub wrote (cb's non-zero return stops and is returned);
 * -ENOTCONN when there is no live hub. */
int hb_xbus_members(hb_xbus_t *b, hb_xbus_name_cb cb, void *ud);
/* [hub, never blocks] Queues data for every subscriber of topic in the other processes: the
 * hub's forwarder thread sends it (waiting for a full process like hb_xbus_publish, so a burst
 * is not lost to the sockets' small queues; one thread: in order). Past forward_queue queued
 * publishes the oldest is dropped. Returns how many were dropped (>= 0) or -EINVAL / -ENOMEM. */
int hb_xbus_publish_nowait(hb_xbus_t *b, const void *topic, size_t tlen, const void *data,
			   size_t len);
/* [hub] Calls cb for every topic subscribed in the other live processes, with their summed
 * subscribers (under the topics lock: cb must not call back into the bus). */
int hb_xbus_topics(hb_xbus_t *b, hb_pubsub_topic_cb cb, void *ud);
/* [hub] Moves whenever the other processes' topics may have changed. */
uint64_t hb_xbus_topics_generation(hb_xbus_t *b);

/* [tests] Takes the name-table lock and keeps it: a test kills the process holding it to show
 * the next locker recovers. */
void hb_xbus_debug_hold_lock(hb_xbus_t *b);

#endif
