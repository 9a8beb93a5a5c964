/* funcs.c: function registry, inboxes and call jobs (funcs.h).
 *
 * A job's `state` word is both its life cycle and the futex its caller sleeps on:
 * QUEUED -> RUNNING -> DONE, or QUEUED -> CANCELLED when the caller gives up first (then the
 * consumer skips it) or QUEUED -> DONE when the inbox closes under it. The transitions out of
 * QUEUED are compare-and-swaps, so exactly one of "run it" and "cancel it" wins.
 */
#include "core/funcs.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/futex.h"

enum { ST_QUEUED = 0, ST_RUNNING, ST_DONE, ST_CANCELLED };

struct hb_job {
	_Atomic uint32_t refs;
	_Atomic uint32_t state; /* ST_*: also the futex word */
	hb_job_kind_t kind;
	hb_job_status_t status;
	hb_job_t *next;
	uint8_t *args;
	size_t alen;
	uint8_t *result;
	size_t rlen;
	hb_job_done_fn done;
	void *done_arg;
	uint64_t reply_to, reply_id;
	size_t nlen;
	char name[];
};

struct hb_inbox {
	_Atomic uint32_t refs;
	_Atomic uint32_t pending;
	pthread_mutex_t mu;
	hb_job_t *head, *tail;
	int closed;
	hb_inbox_wake_fn wake;
	void *wake_arg;
};

struct entry {
	struct entry *next;
	hb_inbox_t *owner;
	size_t len;
	char name[];
};

struct hb_funcs {
	pthread_mutex_t mu;
	struct entry *list;
	_Atomic uint64_t gen;
	hb_inbox_t **pool; /* rpc workers (referenced) */
	size_t npool, cappool, rr;
};

static int name_ok(size_t len)
{
	return len > 0 && len <= HB_FUNCS_MAX_NAME;
}

/* ---- jobs ---- */

hb_job_t *hb_funcs_job_new(hb_job_kind_t kind, const void *name, size_t nlen, const void *args,
			   size_t alen)
{
	hb_job_t *j = calloc(1, sizeof(*j) + nlen + 1);

	if (!j)
		return NULL;
	j->args = malloc(alen ? alen : 1);
	if (!j->args) {
		free(j);
		return NULL;
	}
	memcpy(j->args, args, alen);
	j->alen = alen;
	memcpy(j->name, name, nlen);
	j->nlen = nlen;
	j->kind = kind;
	atomic_init(&j->refs, 1);
	return j;
}

void hb_funcs_job_ref(hb_job_t *j)
{
	atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
}

void hb_funcs_job_release(hb_job_t *j)
{
	if (!j || atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(j->args);
	free(j->result);
	free(j);
}

int hb_funcs_job_start(hb_job_t *j)
{
	uint32_t exp = ST_QUEUED;

	return atomic_compare_exchange_strong(&j->state, &exp, ST_RUNNING);
}

static void finish(hb_job_t *j, hb_job_status_t status, void *result, size_t len)
{
	j->status = status;
	j->result = result;
	j->rlen = len;
	if (j->done)
		j->done(j, j->done_arg);
	atomic_store(&j->state, ST_DONE); /* release: publishes status and result */
	hb_futex_wake(&j->state, INT_MAX);
}

void hb_funcs_job_finish(hb_job_t *j, hb_job_status_t status, void *result, size_t len)
{
	finish(j, status, result, len);
}

void hb_funcs_job_set_done(hb_job_t *j, hb_job_done_fn done, void *arg, uint64_t reply_to,
			   uint64_t reply_id)
{
	j->done = done;
	j->done_arg = arg;
	j->reply_to = reply_to;
	j->reply_id = reply_id;
}

void hb_funcs_job_reply(const hb_job_t *j, uint64_t *reply_to, uint64_t *reply_id)
{
	*reply_to = j->reply_to;
	*reply_id = j->reply_id;
}

int hb_funcs_job_cancel(hb_job_t *j)
{
	uint32_t exp = ST_QUEUED;

	return atomic_compare_exchange_strong(&j->state, &exp, ST_CANCELLED);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hb_funcs_job_wait(hb_job_t *j, int timeout_ms)
{
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
	uint32_t s;

	while ((s = atomic_load(&j->state)) == ST_QUEUED || s == ST_RUNNING) {
		int left = -1;

		if (deadline >= 0) {
			int64_t d = deadline - now_ms();

			if (d <= 0)
				return -ETIMEDOUT;
			left = d > INT_MAX ? INT_MAX : (int)d;
		}
		hb_futex_wait(&j->state, s, left);
	}
	return 0;
}

hb_job_kind_t hb_funcs_job_kind(const hb_job_t *j)
{
	return j->kind;
}

const char *hb_funcs_job_name(const hb_job_t *j, size_t *len)
{
	*len = j->nlen;
	return j->name;
}

const uint8_t *hb_funcs_job_args(const hb_job_t *j, size_t *len)
{
	*len = j->alen;
	return j->args;
}

hb_job_status_t hb_funcs_job_status(const hb_job_t *j)
{
	return j->status;
}

const uint8_t *hb_funcs_job_result(const hb_job_t *j, size_t *len)
{
	*len = j->rlen;
	return j->result;
}

/* ---- inboxes ---- */

hb_inbox_t *hb_funcs_inbox_new(hb_inbox_wake_fn wake, void *arg)
{
	hb_inbox_t *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	if (pthread_mutex_init(&in->mu, NULL) != 0) {
		free(in);
		return NULL;
	}
	atomic_init(&in->refs, 1);
	in->wake = wake;
	in->wake_arg = arg;
	return in;
}

void hb_funcs_inbox_ref(hb_inbox_t *in)
{
	atomic_fetch_add_explicit(&in->refs, 1, memory_order_relaxed);
}

void hb_funcs_inbox_release(hb_inbox_t *in)
{
	if (!in || atomic_fetch_sub_explicit(&in->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* No job can be queued here: close emptied it, and an open inbox with queued jobs is
	 * still referenced by its owner. Release any left over anyway. */
	for (hb_job_t *j = in->head, *next; j; j = next) {
		next = j->next;
		hb_funcs_job_release(j);
	}
	pthread_mutex_destroy(&in->mu);
	free(in);
}

void hb_funcs_inbox_set_wake(hb_inbox_t *in, hb_inbox_wake_fn wake, void *arg)
{
	pthread_mutex_lock(&in->mu);
	in->wake = wake;
	in->wake_arg = arg;
	if (in->head && wake)
		wake(arg);
	pthread_mutex_unlock(&in->mu);
}

uint32_t hb_funcs_inbox_pending(hb_inbox_t *in)
{
	return atomic_load_explicit(&in->pending, memory_order_acquire);
}

int hb_funcs_post(hb_inbox_t *in, hb_job_t *j)
{
	pthread_mutex_lock(&in->mu);
	if (in->closed) {
		pthread_mutex_unlock(&in->mu);
		return -ESHUTDOWN;
	}
	atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
	j->next = NULL;
	if (in->tail)
		in->tail->next = j;
	else
		in->head = j;
	in->tail = j;
	atomic_fetch_add_explicit(&in->pending, 1, memory_order_release);
	/* Under the lock: once set_wake(NULL) returns, no wake is running, so the owner may
	 * free what wake_arg points to. */
	if (in->wake)
		in->wake(in->wake_arg);
	pthread_mutex_unlock(&in->mu);
	return 0;
}

hb_job_t *hb_funcs_take(hb_inbox_t *in)
{
	hb_job_t *j;

	if (atomic_load_explicit(&in->pending, memory_order_acquire) == 0)
		return NULL;
	pthread_mutex_lock(&in->mu);
	j = in->head;
	if (j) {
		in->head = j->next;
		if (!in->head)
			in->tail = NULL;
		j->next = NULL;
		atomic_fetch_sub_explicit(&in->pending, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&in->mu);
	return j;
}

/* ---- the registry ---- */

hb_funcs_t *hb_funcs_new(void)
{
	hb_funcs_t *f = calloc(1, sizeof(*f));

	if (f && pthread_mutex_init(&f->mu, NULL) != 0) {
		free(f);
		return NULL;
	}
	return f;
}

void hb_funcs_free(hb_funcs_t *f)
{
	if (!f)
		return;
	for (struct entry *e = f->list, *next; e; e = next) {
		next = e->next;
		hb_funcs_inbox_release(e->owner);
		free(e);
	}
	for (size_t i = 0; i < f->npool; i++)
		hb_funcs_inbox_release(f->pool[i]);
	free(f->pool);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* [f->mu] The link pointing at name's entry (*link is NULL when absent). */
static struct entry **find(hb_funcs_t *f, const void *name, size_t len)
{
	struct entry **pp = &f->list;

	while (*pp && !((*pp)->len == len && memcmp((*pp)->name, name, len) == 0))
		pp = &(*pp)->next;
	return pp;
}

int hb_funcs_register(hb_funcs_t *f, const void *name, size_t len, hb_inbox_t *in)
{
	struct entry **pp, *e;
	hb_inbox_t *old = NULL;

	if (!name_ok(len))
		return -EINVAL;
	pthread_mutex_lock(&f->mu);
	pp = find(f, name, len);
	if (*pp) {
		old = (*pp)->owner;
		(*pp)->owner = in;
	} else if ((e = malloc(sizeof(*e) + len))) {
		e->next = NULL;
		e->owner = in;
		e->len = len;
		memcpy(e->name, name, len);
		*pp = e;
	} else {
		pthread_mutex_unlock(&f->mu);
		return -ENOMEM;
	}
	hb_funcs_inbox_ref(in);
	atomic_fetch_add(&f->gen, 1);
	pthread_mutex_unlock(&f->mu);
	hb_funcs_inbox_release(old);
	return 0;
}

int hb_funcs_unregister(hb_funcs_t *f, const void *name, size_t len)
{
	struct entry **pp, *e;

	pthread_mutex_lock(&f->mu);
	pp = find(f, name, len);
	e = *pp;
	if (e) {
		*pp = e->next;
		atomic_fetch_add(&f->gen, 1);
	}
	pthread_mutex_unlock(&f->mu);
	if (!e)
		return -ENOENT;
	hb_funcs_inbox_release(e->owner);
	free(e);
	return 0;
}

hb_inbox_t *hb_funcs_lookup(hb_funcs_t *f, const void *name, size_t len)
{
	struct entry **pp;
	hb_inbox_t *in = NULL;

	pthread_mutex_lock(&f->mu);
	pp = find(f, name, len);
	if (*pp) {
		in = (*pp)->owner;
		hb_funcs_inbox_ref(in);
	}
	pthread_mutex_unlock(&f->mu);
	return in;
}

int hb_funcs_names(hb_funcs_t *f, hb_funcs_name_cb cb, void *ud)
{
	int rc = 0;

	pthread_mutex_lock(&f->mu);
	for (struct entry *e = f->list; e && rc == 0; e = e->next)
		rc = cb(e->name, e->len, ud);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

/* Drops every registration owned by in. */
static void drop_owned(hb_funcs_t *f, hb_inbox_t *in)
{
	struct entry *gone = NULL;

	pthread_mutex_lock(&f->mu);
	for (struct entry **pp = &f->list; *pp;) {
		struct entry *e = *pp;

		if (e->owner == in) {
			*pp = e->next;
			e->next = gone;
			gone = e;
		} else {
			pp = &e->next;
		}
	}
	for (size_t i = 0; i < f->npool; i++) {
		if (f->pool[i] == in) {
			f->pool[i] = f->pool[--f->npool];
			hb_funcs_inbox_release(
				in); /* not the last reference: the closer holds one */
			break;
		}
	}
	atomic_fetch_add(&f->gen, 1);
	pthread_mutex_unlock(&f->mu);
	while (gone) {
		struct entry *next = gone->next;

		hb_funcs_inbox_release(gone->owner);
		free(gone);
		gone = next;
	}
}

void hb_funcs_inbox_close(hb_funcs_t *f, hb_inbox_t *in)
{
	hb_job_t *jobs;

	if (f)
		drop_owned(f, in);
	pthread_mutex_lock(&in->mu);
	in->closed = 1;
	jobs = in->head;
	in->head = in->tail = NULL;
	atomic_store(&in->pending, 0);
	pthread_mutex_unlock(&in->mu);
	while (jobs) {
		hb_job_t *next = jobs->next;

		if (hb_funcs_job_start(jobs))
			finish(jobs, HB_JOB_LOST, NULL, 0);
		hb_funcs_job_release(jobs);
		jobs = next;
	}
}

uint64_t hb_funcs_generation(hb_funcs_t *f)
{
	return atomic_load(&f->gen);
}

int hb_funcs_pool_add(hb_funcs_t *f, hb_inbox_t *in)
{
	pthread_mutex_lock(&f->mu);
	if (f->npool == f->cappool) {
		size_t cap = f->cappool ? f->cappool * 2 : 8;
		hb_inbox_t **p = realloc(f->pool, cap * sizeof(*p));

		if (!p) {
			pthread_mutex_unlock(&f->mu);
			return -ENOMEM;
		}
		f->pool = p;
		f->cappool = cap;
	}
	hb_funcs_inbox_ref(in);
	f->pool[f->npool++] = in;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

int hb_funcs_post_any(hb_funcs_t *f, hb_job_t *j)
{
	for (;;) {
		hb_inbox_t *best = NULL;
		uint32_t least = UINT32_MAX;

		pthread_mutex_lock(&f->mu);
		for (size_t k = 0; k < f->npool; k++) {
			hb_inbox_t *in = f->pool[(f->rr + k) % f->npool];
			uint32_t n = hb_funcs_inbox_pending(in);

			if (n < least) {
				least = n;
				best = in;
			}
		}
		f->rr++;
		if (best)
			hb_funcs_inbox_ref(best);
		pthread_mutex_unlock(&f->mu);
		if (!best)
			return -ESHUTDOWN;
		int rc = hb_funcs_post(best, j);

		if (rc == 0) {
			hb_funcs_inbox_release(best);
			return 0;
		}
		/* closing under us: inbox_close drops it from the pool, then we try again */
		pthread_mutex_lock(&f->mu);
		for (size_t k = 0; k < f->npool; k++) {
			if (f->pool[k] == best) {
				f->pool[k] = f->pool[--f->npool];
				hb_funcs_inbox_release(best);
				break;
			}
		}
		pthread_mutex_unlock(&f->mu);
		hb_funcs_inbox_release(best);
	}
}
