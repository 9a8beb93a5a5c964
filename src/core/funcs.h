/* funcs.h: registered functions and the cross-worker call jobs behind hornbeam_erlang.call.
 *
 * Every worker interpreter owns one inbox: a job queue plus a wake callback (the python layer
 * passes one that kicks the worker's hub slots, or its event loop). The registry maps a
 * function name to the inbox of the interpreter that registered it; registering a name again
 * (from anywhere) replaces the previous owner. A call is a job: the caller encodes the
 * arguments (codec bytes), posts the job to the owner's inbox, which wakes the owner; one of
 * the owner's threads takes it, runs the function and completes the job with codec bytes (or an
 * error text); the caller sleeps on the job's futex word with a timeout and may cancel it.
 *
 * Threads: any thread may call anything; an inbox may have several consumer threads (a WSGI
 * worker with threads = K). The registry is a mutex-guarded list (calls are not the request
 * path); an inbox has its own mutex and an atomic count for the consumers' cheap "anything to
 * do?" check. Like pubsub.h, this lives in process memory with process-private futexes; jobs
 * for another worker process travel over the process bus (xbus.h), which posts them here with a
 * completion hook (hb_funcs_job_set_done) that sends the result back.
 *
 * Ownership: inboxes and jobs are reference counted. The registry holds a reference to each
 * owner inbox; hb_funcs_lookup gives the caller one. A posted job is referenced by the poster
 * and by the queue (then by the consumer that took it). Errors are 0 / -errno.
 */
#ifndef HB_CORE_FUNCS_H
#define HB_CORE_FUNCS_H

#include <stddef.h>
#include <stdint.h>

#define HB_FUNCS_MAX_NAME 1024u

typedef struct hb_funcs hb_funcs_t;
typedef struct hb_inbox hb_inbox_t;
typedef struct hb_job hb_job_t;

/* Called from the posting thread after a job was queued, with the inbox's lock held (so that
 * after hb_funcs_inbox_set_wake(in, NULL, NULL) returns no call is in progress): it must be
 * quick and must not use the inbox. */
typedef void (*hb_inbox_wake_fn)(void *arg);
/* Called by hb_funcs_job_finish (and by an inbox close that fails the job) on the finishing
 * thread, after status and result are set: core/xbus sends the result of a job that came from
 * another process back to it. Must not release the job. */
typedef void (*hb_job_done_fn)(hb_job_t *j, void *arg);
/* Called once per registered name by hb_funcs_names; non-zero stops the walk. */
typedef int (*hb_funcs_name_cb)(const char *name, size_t len, void *ud);

typedef enum hb_job_kind {
	HB_JOB_CALL,	 /* run the registered function `name`, the caller waits for the result */
	HB_JOB_CAST,	 /* the same, nobody waits */
	HB_JOB_RPC,	 /* `name` is "module:function": import and call it; result as for CALL */
	HB_JOB_RPC_CAST, /* the same, nobody waits (rpc_cast) */
} hb_job_kind_t;

typedef enum hb_job_status {
	HB_JOB_PENDING = 0,
	HB_JOB_OK,    /* result: codec bytes of the return value */
	HB_JOB_ERROR, /* result: UTF-8 text (the remote traceback) */
	HB_JOB_LOST,  /* the owner went away (or the name was unregistered) before running it */
} hb_job_status_t;

hb_funcs_t *hb_funcs_new(void);
/* Frees the registry (dropping its inbox references). Inboxes may outlive it. */
void hb_funcs_free(hb_funcs_t *f);

/* ---- inboxes (one per worker interpreter) ---- */

/* A new open inbox (one reference, the creator's). wake may be NULL (set it later). */
hb_inbox_t *hb_funcs_inbox_new(hb_inbox_wake_fn wake, void *arg);
/* Replaces the wake callback (and calls it once if jobs are already queued). When it returns,
 * the previous callback is no longer running. */
void hb_funcs_inbox_set_wake(hb_inbox_t *in, hb_inbox_wake_fn wake, void *arg);
/* Closes the inbox: drops every registration that names it, fails queued jobs (HB_JOB_LOST),
 * refuses later posts. Idempotent; does not drop the creator's reference. */
void hb_funcs_inbox_close(hb_funcs_t *f, hb_inbox_t *in);
void hb_funcs_inbox_ref(hb_inbox_t *in);
/* Drops a reference; frees at zero. NULL is a no-op. */
void hb_funcs_inbox_release(hb_inbox_t *in);
/* Jobs queued and not yet taken (cheap, lock-free, racy). */
uint32_t hb_funcs_inbox_pending(hb_inbox_t *in);

/* ---- the registry ---- */

/* Makes in the owner of name[0..len), replacing any previous owner. Returns 0, -EINVAL (empty
 * or longer than HB_FUNCS_MAX_NAME) or -ENOMEM. */
int hb_funcs_register(hb_funcs_t *f, const void *name, size_t len, hb_inbox_t *in);
/* Removes the name. Returns 0 or -ENOENT. */
int hb_funcs_unregister(hb_funcs_t *f, const void *name, size_t len);
/* The owner of a name, with a reference for the caller; NULL when not registered. */
hb_inbox_t *hb_funcs_lookup(hb_funcs_t *f, const void *name, size_t len);
/* Calls cb for every registered name (under the registry mutex: cb must not call back). */
int hb_funcs_names(hb_funcs_t *f, hb_funcs_name_cb cb, void *ud);

/* Changes with every register, unregister and inbox close: a cheap "did the names change?"
 * (the cluster announces the names to other nodes when it moves). */
uint64_t hb_funcs_generation(hb_funcs_t *f);

/* ---- the pool of workers that run rpc jobs from other nodes ---- */

/* Adds an inbox to the pool (a reference is taken; hb_funcs_inbox_close removes it). Returns 0
 * or -ENOMEM. */
int hb_funcs_pool_add(hb_funcs_t *f, hb_inbox_t *in);
/* Posts j to the pooled inbox with the fewest queued jobs (ties: round robin). Returns 0 or
 * -ESHUTDOWN when no open inbox is pooled. */
int hb_funcs_post_any(hb_funcs_t *f, hb_job_t *j);

/* ---- jobs ---- */

/* A job (one reference, the creator's) with copies of name and args. NULL on ENOMEM. */
hb_job_t *hb_funcs_job_new(hb_job_kind_t kind, const void *name, size_t nlen, const void *args,
			   size_t alen);
/* Queues the job (the queue takes its own reference) and wakes the inbox's owner.
 * Returns 0 or -ESHUTDOWN (the inbox is closed; nothing was queued). */
int hb_funcs_post(hb_inbox_t *in, hb_job_t *j);
/* [consumer] Takes the oldest queued job (the queue's reference passes to the caller), or
 * returns NULL. */
hb_job_t *hb_funcs_take(hb_inbox_t *in);
/* [consumer] Claims a taken job before running it. Returns 1, or 0 when the caller already
 * gave up on it (cancelled): then just release it. */
int hb_funcs_job_start(hb_job_t *j);
/* [consumer] Completes a job: status HB_JOB_OK/ERROR/LOST and its result, a malloc'd buffer
 * whose ownership passes to the job (may be NULL). Wakes the waiter. */
void hb_funcs_job_finish(hb_job_t *j, hb_job_status_t status, void *result, size_t len);
/* [caller] Sleeps until the job finished, at most timeout_ms (-1: no limit). Returns 0 or
 * -ETIMEDOUT. */
int hb_funcs_job_wait(hb_job_t *j, int timeout_ms);
/* [caller] Gives up on a job. Returns 1 when it had not started (it never will), else 0 (it
 * runs or ran; its result is discarded when the last reference goes). */
int hb_funcs_job_cancel(hb_job_t *j);
void hb_funcs_job_release(hb_job_t *j);
void hb_funcs_job_ref(hb_job_t *j);
/* [creator, before posting] Calls done(j, arg) when the job finishes; reply_to and reply_id are
 * the creator's data, read back with hb_funcs_job_reply. */
void hb_funcs_job_set_done(hb_job_t *j, hb_job_done_fn done, void *arg, uint64_t reply_to,
			   uint64_t reply_id);
void hb_funcs_job_reply(const hb_job_t *j, uint64_t *reply_to, uint64_t *reply_id);

hb_job_kind_t hb_funcs_job_kind(const hb_job_t *j);
const char *hb_funcs_job_name(const hb_job_t *j, size_t *len); /* NUL-terminated too */
const uint8_t *hb_funcs_job_args(const hb_job_t *j, size_t *len);
/* After the job finished: its status, and the result bytes (owned by the job). */
hb_job_status_t hb_funcs_job_status(const hb_job_t *j);
const uint8_t *hb_funcs_job_result(const hb_job_t *j, size_t *len);

#endif
