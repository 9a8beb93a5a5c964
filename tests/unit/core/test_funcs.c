/* test_funcs.c: the function registry, inboxes, jobs across threads, cancel, close. */
#include "core/funcs.h"

#include "../hb_test.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void count_wake(void *arg)
{
	atomic_fetch_add((_Atomic int *)arg, 1);
}

static int count_name(const char *name, size_t len, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

Test(funcs, register_replace_unregister)
{
	hb_funcs_t *f = hb_funcs_new();
	hb_inbox_t *a = hb_funcs_inbox_new(NULL, NULL), *b = hb_funcs_inbox_new(NULL, NULL), *got;
	int n = 0;

	cr_assert_null(hb_funcs_lookup(f, "model", 5));
	cr_assert_eq(hb_funcs_register(f, "", 0, a), -EINVAL);
	cr_assert_eq(hb_funcs_register(f, "model", 5, a), 0);
	cr_assert_eq(hb_funcs_register(f, "other", 5, a), 0);
	got = hb_funcs_lookup(f, "model", 5);
	cr_assert_eq(got, a);
	hb_funcs_inbox_release(got);
	cr_assert_eq(hb_funcs_register(f, "model", 5, b), 0, "registering again replaces");
	got = hb_funcs_lookup(f, "model", 5);
	cr_assert_eq(got, b);
	hb_funcs_inbox_release(got);
	hb_funcs_names(f, count_name, &n);
	cr_assert_eq(n, 2);
	cr_assert_eq(hb_funcs_unregister(f, "model", 5), 0);
	cr_assert_eq(hb_funcs_unregister(f, "model", 5), -ENOENT);
	cr_assert_null(hb_funcs_lookup(f, "model", 5));
	/* Closing a drops what it still owns. */
	hb_funcs_inbox_close(f, a);
	cr_assert_null(hb_funcs_lookup(f, "other", 5));
	hb_funcs_inbox_release(a);
	hb_funcs_inbox_release(b);
	hb_funcs_free(f);
}

Test(funcs, post_take_finish_same_thread)
{
	_Atomic int wakes = 0;
	hb_inbox_t *in = hb_funcs_inbox_new(count_wake, (void *)&wakes);
	hb_job_t *j = hb_funcs_job_new(HB_JOB_CALL, "fn", 2, "ARGS", 4), *t;
	size_t len;

	cr_assert_null(hb_funcs_take(in));
	cr_assert_eq(hb_funcs_post(in, j), 0);
	cr_assert_eq(wakes, 1);
	cr_assert_eq(hb_funcs_inbox_pending(in), 1);
	t = hb_funcs_take(in);
	cr_assert_eq(t, j);
	cr_assert_str_eq(hb_funcs_job_name(t, &len), "fn");
	cr_assert(memcmp(hb_funcs_job_args(t, &len), "ARGS", 4) == 0 && len == 4);
	cr_assert_eq(hb_funcs_job_kind(t), HB_JOB_CALL);
	cr_assert(hb_funcs_job_start(t));
	cr_assert_eq(hb_funcs_job_cancel(j), 0, "too late to cancel a running job");
	hb_funcs_job_finish(t, HB_JOB_OK, strdup("result"), 6);
	hb_funcs_job_release(t);
	cr_assert_eq(hb_funcs_job_wait(j, 0), 0);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_OK);
	cr_assert(memcmp(hb_funcs_job_result(j, &len), "result", 6) == 0 && len == 6);
	hb_funcs_job_release(j);
	hb_funcs_inbox_release(in);
}

Test(funcs, wait_times_out_and_cancel_skips)
{
	hb_inbox_t *in = hb_funcs_inbox_new(NULL, NULL);
	hb_job_t *j = hb_funcs_job_new(HB_JOB_CALL, "slow", 4, "", 0), *t;

	hb_funcs_post(in, j);
	cr_assert_eq(hb_funcs_job_wait(j, 30), -ETIMEDOUT);
	cr_assert_eq(hb_funcs_job_cancel(j), 1);
	hb_funcs_job_release(j);
	t = hb_funcs_take(in);
	cr_assert_not_null(t);
	cr_assert_eq(hb_funcs_job_start(t), 0, "a cancelled job does not start");
	hb_funcs_job_release(t);
	hb_funcs_inbox_release(in);
}

Test(funcs, close_fails_queued_and_refuses_posts)
{
	hb_funcs_t *f = hb_funcs_new();
	hb_inbox_t *in = hb_funcs_inbox_new(NULL, NULL);
	hb_job_t *j = hb_funcs_job_new(HB_JOB_CALL, "x", 1, "", 0);

	hb_funcs_register(f, "x", 1, in);
	hb_funcs_post(in, j);
	hb_funcs_inbox_close(f, in);
	cr_assert_eq(hb_funcs_job_wait(j, 1000), 0);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_LOST);
	cr_assert_eq(hb_funcs_post(in, j), -ESHUTDOWN);
	cr_assert_null(hb_funcs_take(in));
	hb_funcs_job_release(j);
	hb_funcs_inbox_close(f, in); /* idempotent */
	hb_funcs_inbox_release(in);
	hb_funcs_free(f);
}

Test(funcs, set_wake_fires_for_queued_jobs)
{
	_Atomic int wakes = 0;
	hb_inbox_t *in = hb_funcs_inbox_new(NULL, NULL);
	hb_job_t *j = hb_funcs_job_new(HB_JOB_CAST, "x", 1, "", 0);

	hb_funcs_post(in, j);
	hb_funcs_inbox_set_wake(in, count_wake, (void *)&wakes);
	cr_assert_eq(wakes, 1);
	hb_funcs_job_release(j);
	hb_funcs_inbox_close(NULL, in);
	hb_funcs_inbox_release(in);
}

/* ---- threads: N callers, K consumers of one inbox, like a WSGI worker with K threads ---- */

#define NCALLERS 4
#define NCONSUMERS 2
#define CALLS 5000

struct server {
	hb_inbox_t *in;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	_Atomic int served;
};

static void server_wake(void *arg)
{
	struct server *s = arg;

	pthread_mutex_lock(&s->mu);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void *consumer(void *arg)
{
	struct server *s = arg;

	for (;;) {
		hb_job_t *j = hb_funcs_take(s->in);
		size_t len;

		if (!j) {
			pthread_mutex_lock(&s->mu);
			while (!s->stop && hb_funcs_inbox_pending(s->in) == 0)
				pthread_cond_wait(&s->cv, &s->mu);
			int stop = s->stop && hb_funcs_inbox_pending(s->in) == 0;
			pthread_mutex_unlock(&s->mu);
			if (stop)
				return NULL;
			continue;
		}
		if (hb_funcs_job_start(j)) {
			const uint8_t *a = hb_funcs_job_args(j, &len);
			uint32_t v;

			memcpy(&v, a, sizeof(v));
			v *= 2;
			uint8_t *r = malloc(sizeof(v));
			memcpy(r, &v, sizeof(v));
			hb_funcs_job_finish(j, HB_JOB_OK, r, sizeof(v));
			atomic_fetch_add(&s->served, 1);
		}
		hb_funcs_job_release(j);
	}
}

struct caller {
	hb_funcs_t *f;
	int id;
	int ok;
};

static void *caller(void *arg)
{
	struct caller *c = arg;

	for (uint32_t i = 0; i < CALLS; i++) {
		uint32_t v = (uint32_t)c->id * 100000 + i, r;
		hb_inbox_t *in = hb_funcs_lookup(c->f, "double", 6);
		hb_job_t *j = hb_funcs_job_new(HB_JOB_CALL, "double", 6, &v, sizeof(v));
		size_t len;

		if (!in || hb_funcs_post(in, j) < 0 || hb_funcs_job_wait(j, 10000) < 0 ||
		    hb_funcs_job_status(j) != HB_JOB_OK) {
			c->ok = 0;
		} else {
			memcpy(&r, hb_funcs_job_result(j, &len), sizeof(r));
			if (r != v * 2 || len != sizeof(r))
				c->ok = 0;
		}
		hb_funcs_job_release(j);
		hb_funcs_inbox_release(in);
	}
	return NULL;
}

Test(funcs, threads_many_callers_many_consumers)
{
	hb_funcs_t *f = hb_funcs_new();
	struct server s = {.stop = 0};
	pthread_t ct[NCONSUMERS], kt[NCALLERS];
	struct caller c[NCALLERS];

	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	s.in = hb_funcs_inbox_new(server_wake, &s);
	hb_funcs_register(f, "double", 6, s.in);
	for (int i = 0; i < NCONSUMERS; i++)
		pthread_create(&ct[i], NULL, consumer, &s);
	for (int i = 0; i < NCALLERS; i++) {
		c[i] = (struct caller){.f = f, .id = i, .ok = 1};
		pthread_create(&kt[i], NULL, caller, &c[i]);
	}
	for (int i = 0; i < NCALLERS; i++) {
		pthread_join(kt[i], NULL);
		cr_assert(c[i].ok, "caller %d got a wrong or missing result", i);
	}
	pthread_mutex_lock(&s.mu);
	s.stop = 1;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.mu);
	for (int i = 0; i < NCONSUMERS; i++)
		pthread_join(ct[i], NULL);
	cr_assert_eq(s.served, NCALLERS * CALLS);
	hb_funcs_inbox_close(f, s.in);
	hb_funcs_inbox_release(s.in);
	hb_funcs_free(f);
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.mu);
}

static void note_done(hb_job_t *j, void *arg)
{
	/* runs after the status is set, before waiters wake */
	*(int *)arg = (int)hb_funcs_job_status(j);
}

Test(funcs, on_done_runs_once_with_the_status)
{
	hb_job_t *j = hb_funcs_job_new(HB_JOB_CALL, "x", 1, "", 0);
	int seen = -1;

	hb_funcs_job_set_done(j, note_done, &seen, 0, 0);
	cr_assert(hb_funcs_job_start(j));
	hb_funcs_job_finish(j, HB_JOB_ERROR, NULL, 0);
	cr_assert_eq(seen, HB_JOB_ERROR);
	cr_assert_eq(hb_funcs_job_wait(j, 0), 0);
	hb_funcs_job_release(j);
}

Test(funcs, pool_posts_to_the_least_busy_and_forgets_closed)
{
	hb_funcs_t *f = hb_funcs_new();
	hb_inbox_t *a = hb_funcs_inbox_new(NULL, NULL), *b = hb_funcs_inbox_new(NULL, NULL);
	hb_job_t *j[4];

	for (int i = 0; i < 4; i++)
		j[i] = hb_funcs_job_new(HB_JOB_RPC, "m:f", 3, "", 0);
	cr_assert_eq(hb_funcs_post_any(f, j[0]), -ESHUTDOWN); /* no worker pooled */
	cr_assert_eq(hb_funcs_pool_add(f, a), 0);
	cr_assert_eq(hb_funcs_pool_add(f, b), 0);
	cr_assert_eq(hb_funcs_post_any(f, j[0]), 0);
	cr_assert_eq(hb_funcs_post_any(f, j[1]), 0);
	cr_assert_eq(hb_funcs_inbox_pending(a), 1); /* one each: the least busy wins */
	cr_assert_eq(hb_funcs_inbox_pending(b), 1);
	uint64_t gen = hb_funcs_generation(f);
	hb_funcs_inbox_close(f, a); /* its queued job is lost, it leaves the pool */
	cr_assert_eq(hb_funcs_job_status(j[0]) == HB_JOB_LOST ||
			     hb_funcs_job_status(j[1]) == HB_JOB_LOST,
		     1);
	cr_assert_neq(hb_funcs_generation(f), gen);
	cr_assert_eq(hb_funcs_post_any(f, j[2]), 0);
	cr_assert_eq(hb_funcs_post_any(f, j[3]), 0);
	cr_assert_eq(hb_funcs_inbox_pending(b), 3);
	for (hb_job_t *t; (t = hb_funcs_take(b));)
		hb_funcs_job_release(t);
	hb_funcs_inbox_close(f, b);
	for (int i = 0; i < 4; i++)
		hb_funcs_job_release(j[i]);
	hb_funcs_inbox_release(a);
	hb_funcs_inbox_release(b);
	hb_funcs_free(f);
}

Test(funcs, generation_moves_with_the_names)
{
	hb_funcs_t *f = hb_funcs_new();
	hb_inbox_t *in = hb_funcs_inbox_new(NULL, NULL);
	uint64_t g0 = hb_funcs_generation(f);

	cr_assert_eq(hb_funcs_register(f, "a", 1, in), 0);
	uint64_t g1 = hb_funcs_generation(f);
	cr_assert_neq(g1, g0);
	cr_assert_eq(hb_funcs_unregister(f, "a", 1), 0);
	cr_assert_neq(hb_funcs_generation(f), g1);
	hb_funcs_inbox_close(f, in);
	hb_funcs_inbox_release(in);
	hb_funcs_free(f);
}
