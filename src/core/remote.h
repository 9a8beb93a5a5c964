/* remote.h: how the python layer reaches other nodes without knowing the cluster.
 *
 * The cluster (src/cluster/dataplane.c) fills an hb_remote_t; main hands it to the python layer
 * (hb_pyapi_set_remote), whose rpc_call/rpc_cast/call/cast/publish use it for anything that is
 * not on this node. Both sides depend only on this header and on core/funcs.h (a call is an
 * hb_job_t: the caller creates it, the cluster sends it and finishes it with the reply).
 *
 * Threads: every function may be called from any thread (Python workers, without their GIL);
 * ctx is the cluster's. Errors are 0 / -errno.
 */
#ifndef HB_CORE_REMOTE_H
#define HB_CORE_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "core/funcs.h"

typedef struct hb_remote_stats {
	uint64_t calls_sent;	   /* CALL frames sent (rpc_call, call) */
	uint64_t calls_served;	   /* CALL and CAST frames run here for other nodes */
	uint64_t publish_sent;	   /* PUBLISH messages queued to other nodes */
	uint64_t publish_received; /* PUBLISH messages delivered here from other nodes */
	uint64_t publish_dropped;  /* oldest PUBLISH messages dropped from full link queues */
	uint64_t calls_refused;	   /* CALLs refused by rpc_allow */
} hb_remote_stats_t;

typedef struct hb_remote {
	void *ctx;
	/* 1 when node is a live member of the cluster (what nodes() lists), else 0. */
	int (*connected)(void *ctx, const char *node);
	/* Sends job j (kind HB_JOB_RPC/HB_JOB_RPC_CAST "module:function", HB_JOB_CALL/HB_JOB_CAST
	 * a registered name) to node, as a call when `reply` and the kind is HB_JOB_RPC or
	 * HB_JOB_CALL, else as a cast. The cluster takes its own reference. A call is finished with
	 * the reply: HB_JOB_OK (codec bytes), HB_JOB_ERROR (the remote traceback text) or
	 * HB_JOB_LOST (text: why the node could not answer: it went down, left, or its link's queue
	 * was full), at the latest timeout_ms (+ a grace) after sending. A cast is finished
	 * HB_JOB_OK when sent. Returns 0 or -ENOMEM / -ESHUTDOWN (the cluster is stopping). */
	int (*send)(void *ctx, const char *node, hb_job_t *j, int reply, int timeout_ms);
	/* The node that registered the function name[0..len): copied NUL-terminated into
	 * node[0..cap). Returns 0 or -ENOENT. */
	int (*owner)(void *ctx, const char *name, size_t len, char *node, size_t cap);
	/* Sends data[0..len) (codec bytes) on topic to every other node with a subscriber to it
	 * (as their last announcement says). Returns how many subscribers that reaches (>= 0) or
	 * -ENOMEM. */
	int (*publish)(void *ctx, const void *topic, size_t tlen, const void *data, size_t len);
	void (*stats)(void *ctx, hb_remote_stats_t *out);
} hb_remote_t;

#endif
