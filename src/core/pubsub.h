/* pubsub.h: the process-wide topic registry behind hornbeam_erlang.publish/subscribe.
 *
 * A publisher hands over one encoded message (codec bytes, see codec.h); it is copied once into
 * a reference-counted hb_ps_msg_t and a reference is queued on every subscriber of the topic.
 * Each subscriber has a bounded queue (`cap` messages): when it is full the OLDEST queued
 * message is dropped and counted (hb_pubsub_dropped), so a slow subscriber costs at most cap
 * messages of memory and never slows the publisher. Messages from one publishing thread reach
 * every subscriber in publish order (a publish enqueues on each subscriber before it returns).
 *
 * Topics are exact byte strings; a subscription whose topic contains '*' is a pattern matched
 * with fnmatch(3) (flags 0: '*' also matches '/' and '.') against every published topic.
 *
 * Threads: any thread may call anything. The registry is guarded by a rwlock (publish takes it
 * shared, subscribe/close exclusive); each subscriber's queue by its own mutex. A subscriber is
 * used by one owner (a Python Subscription object) that alone calls pop/wait/close/free; other
 * threads only publish. Waking a subscriber: a process-private futex word (hb_pubsub_wait) and,
 * once hb_pubsub_fd was called, an eventfd that is readable exactly while the queue is not empty
 * or the subscriber is closed (level-triggered, so an event loop can watch it with add_reader).
 * The registry lives in ordinary process memory: worker processes are joined by the process
 * bus (xbus.h), whose bus thread publishes here what another process published.
 *
 * Ownership: the creator owns the registry and frees it after every subscriber was freed.
 * Errors are 0 / -errno; nothing prints, nothing sets errno.
 */
#ifndef HB_CORE_PUBSUB_H
#define HB_CORE_PUBSUB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HB_PUBSUB_MAX_TOPIC 4096u
#define HB_PUBSUB_DEFAULT_QUEUE 1000u

typedef struct hb_pubsub hb_pubsub_t;
typedef struct hb_ps_sub hb_ps_sub_t;

/* One published message, shared by every queue that holds it. Read-only once published. */
typedef struct hb_ps_msg {
	_Atomic uint32_t refs;
	uint32_t len;
	uint8_t data[];
} hb_ps_msg_t;

typedef struct hb_pubsub_stats {
	uint64_t topics;      /* exact topics and patterns with at least one subscriber */
	uint64_t subscribers; /* open subscribers */
	uint64_t published;   /* hb_pubsub_publish calls */
	uint64_t delivered;   /* messages queued on a subscriber */
	uint64_t dropped;     /* oldest messages dropped from full queues */
} hb_pubsub_stats_t;

/* Creates a registry; default_cap is the queue size of subscribers that ask for 0
 * (0: HB_PUBSUB_DEFAULT_QUEUE). NULL when out of memory. */
hb_pubsub_t *hb_pubsub_new(uint32_t default_cap);
/* Frees the registry. Every subscriber must have been freed first. NULL is a no-op. */
void hb_pubsub_free(hb_pubsub_t *ps);

/* Closes every subscriber (as hb_pubsub_close) and makes later subscribes fail with
 * -ESHUTDOWN: server shutdown, so that blocked waits and event loops see the end. */
void hb_pubsub_shutdown(hb_pubsub_t *ps);

/* Subscribes to topic[0..tlen) with a queue of cap messages (0: the registry's default).
 * Returns 0 with *out set, -EINVAL (empty, holds a NUL byte or is longer than
 * HB_PUBSUB_MAX_TOPIC), -ESHUTDOWN or -ENOMEM. */
int hb_pubsub_subscribe(hb_pubsub_t *ps, const void *topic, size_t tlen, uint32_t cap,
			hb_ps_sub_t **out);
/* Queues a copy of data[0..len) on every subscriber of topic. Returns the number of subscribers
 * reached (>= 0), -EINVAL (bad topic, or len >= 4 GiB) or -ENOMEM (nothing was queued). */
int hb_pubsub_publish(hb_pubsub_t *ps, const void *topic, size_t tlen, const void *data,
		      size_t len);

/* [owner] Takes the oldest queued message (the caller owns the reference: release it).
 * Returns 0, -EAGAIN when the queue is empty, -EPIPE when it is empty and closed. */
int hb_pubsub_pop(hb_ps_sub_t *s, hb_ps_msg_t **out);
/* [owner] Sleeps until the queue is not empty or the subscriber is closed, at most timeout_ms
 * (-1: no limit). Returns 0 (then pop) or -ETIMEDOUT. */
int hb_pubsub_wait(hb_ps_sub_t *s, int timeout_ms);
/* [owner] An eventfd (non-blocking, close-on-exec, owned by the subscriber) that is readable
 * while messages are queued or the subscriber is closed. Created on first call; -errno. */
int hb_pubsub_fd(hb_ps_sub_t *s);
/* [any] Leaves the topic: later publishes skip it, waiters wake, queued messages stay poppable.
 * Idempotent. */
void hb_pubsub_close(hb_ps_sub_t *s);
/* [owner] Closes (if needed) and frees the subscriber and its queued messages. NULL: no-op. */
void hb_pubsub_sub_free(hb_ps_sub_t *s);

/* Counters of one subscriber (racy snapshots). */
uint64_t hb_pubsub_dropped(hb_ps_sub_t *s);
uint32_t hb_pubsub_pending(hb_ps_sub_t *s);
uint32_t hb_pubsub_cap(const hb_ps_sub_t *s);
int hb_pubsub_closed(hb_ps_sub_t *s);
/* The subscriber's topic (not NUL-terminated) and its length. */
const char *hb_pubsub_topic(const hb_ps_sub_t *s, size_t *len);

/* Changes with every subscribe, close and shutdown (the cluster announces this node's topics to
 * the others when it moves). */
uint64_t hb_pubsub_generation(hb_pubsub_t *ps);
/* Called by hb_pubsub_topics for each exact topic and pattern with its subscriber count
 * (name NUL-terminated). Non-zero stops the walk. */
typedef int (*hb_pubsub_topic_cb)(const char *name, size_t len, uint32_t nsubs, void *ud);
/* Walks the topics under the registry's read lock (cb must not call back). Returns cb's
 * non-zero value or 0. */
int hb_pubsub_topics(hb_pubsub_t *ps, hb_pubsub_topic_cb cb, void *ud);

/* Drops one reference to a message, freeing it at zero. NULL is a no-op. */
void hb_ps_msg_release(hb_ps_msg_t *m);

/* Fills *st with a (racy) snapshot of the registry's counters. */
void hb_pubsub_stats(hb_pubsub_t *ps, hb_pubsub_stats_t *st);

#endif
