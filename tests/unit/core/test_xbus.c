/* test_xbus.c: the process bus between forked processes: publish counts and order, a slow
 * subscriber's bound, payloads through a memfd, calls (result, error, timeout, unknown name), a
 * caller whose peer is killed, the slot freed by reap, the name lock of a killed process, and
 * "module:function" jobs spread round robin with a dead runner's job ended LOST. */
#include "core/xbus.h"

#include "fork_harness.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- publish ---- */

/* Child: subscribes to topic with queue cap, says ready, waits for `go`, then checks that it got
 * n messages 0..n-1 in order (or, when cap < n, that the oldest were dropped). */
static int subscriber(hb_xbus_t *b, int ready, int go, const char *topic, uint32_t cap, int n,
		      size_t size)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	hb_ps_sub_t *s;
	hb_ps_msg_t *m;
	int first = cap < (uint32_t)n ? n - (int)cap : 0;

	if (hb_xbus_attach(b, ps, f) < 0 || hb_pubsub_subscribe(ps, topic, strlen(topic), cap, &s))
		return 10;
	put(ready, 'r');
	get(go);
	for (int i = first; i < n; i++) {
		uint32_t v;

		if (hb_pubsub_wait(s, 10000) < 0 || hb_pubsub_pop(s, &m) < 0)
			return 11;
		if (m->len != size)
			return 12;
		memcpy(&v, m->data, sizeof(v));
		if (v != (uint32_t)i)
			return 13;
		for (size_t k = sizeof(v); k < size; k++)
			if (m->data[k] != (uint8_t)(k * 7))
				return 14;
		hb_ps_msg_release(m);
	}
	if (hb_pubsub_dropped(s) != (uint64_t)first || hb_pubsub_pending(s) != 0)
		return 15;
	hb_pubsub_sub_free(s);
	hb_xbus_detach(b);
	hb_funcs_free(f);
	hb_pubsub_free(ps);
	return 0;
}

static void publish_to_children(int nsub, uint32_t cap, int n, size_t size)
{
	hb_xbus_t *b = hb_xbus_create(NULL);
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	hb_ps_sub_t *local;
	int rp[2], gp[2];
	pid_t kids[4];
	uint8_t *buf = malloc(size);

	cr_assert_not_null(b);
	cr_assert_eq(pipe(rp), 0);
	cr_assert_eq(pipe(gp), 0);
	for (size_t k = 0; k < size; k++)
		buf[k] = (uint8_t)(k * 7);
	for (int i = 0; i < nsub; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			_exit(subscriber(b, rp[1], gp[0], "news", cap, n, size));
		cr_assert_eq(get(rp[0]), 'r');
	}
	cr_assert_eq(hb_xbus_attach(b, ps, f), 0);
	cr_assert_eq(hb_xbus_peers(b), nsub);
	cr_assert_eq(hb_pubsub_subscribe(ps, "n*", 2, (uint32_t)n, &local), 0);
	for (int i = 0; i < n; i++) {
		uint32_t v = (uint32_t)i;

		memcpy(buf, &v, sizeof(v));
		/* The caller adds the local count: the bus counts the other processes. */
		cr_assert_eq(hb_xbus_publish(b, "news", 4, buf, size), nsub, "publish %d", i);
		cr_assert_eq(hb_pubsub_publish(ps, "news", 4, buf, size), 1);
	}
	cr_assert_eq(hb_pubsub_pending(local), (uint32_t)n);
	cr_assert_eq(hb_xbus_publish(b, "nobody", 6, "x", 1), 0);
	for (int i = 0; i < nsub; i++)
		put(gp[1], 'g');
	for (int i = 0; i < nsub; i++) {
		cr_assert_eq(exit_code(kids[i]), 0);
		hb_xbus_reap(b, kids[i]);
	}
	cr_assert_eq(hb_xbus_peers(b), 0);
	hb_pubsub_sub_free(local);
	hb_xbus_destroy(b);
	hb_funcs_free(f);
	hb_pubsub_free(ps);
	free(buf);
}

Test(xbus, publish_reaches_every_process_in_order, .timeout = 60)
{
	publish_to_children(2, 2000, 1000, 16);
}

Test(xbus, slow_subscriber_drops_oldest, .timeout = 60)
{
	publish_to_children(1, 10, 100, 8);
}

Test(xbus, large_messages_travel_in_a_memfd, .timeout = 60)
{
	publish_to_children(1, 10, 4, (size_t)1 << 20);
}

Test(xbus, not_attached_is_process_local)
{
	hb_xbus_t *b = hb_xbus_create(NULL);
	hb_xbus_peer_t p;

	cr_assert_eq(hb_xbus_slot(b), -1);
	cr_assert_eq(hb_xbus_publish(b, "t", 1, "x", 1), 0);
	cr_assert_eq(hb_xbus_publish(b, "", 0, "x", 1), -EINVAL);
	cr_assert_eq(hb_xbus_register(b, "f", 1), -ENOTCONN);
	cr_assert_eq(hb_xbus_owner(b, "f", 1, &p), -ENOENT);
	hb_xbus_destroy(b);
	cr_assert_null(hb_xbus_create(&(hb_xbus_opts_t){.max_procs = 1000}));
}

/* ---- calls ---- */

/* Child: owns "double" (returns its args twice), "fail" (an error text), "hang" (never
 * answers) and runs the jobs of its inbox on its main thread; the inbox is pooled, so a
 * "module:function" job (any name but m:hang: doubled) runs there too. */
static int owner(hb_xbus_t *b, int ready)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	hb_inbox_t *in = hb_funcs_inbox_new(NULL, NULL);
	static const char *const fns[] = {"double", "fail", "hang"};

	if (hb_xbus_attach(b, ps, f) < 0)
		return 10;
	for (int i = 0; i < 3; i++)
		if (hb_funcs_register(f, fns[i], strlen(fns[i]), in) < 0 ||
		    hb_xbus_register(b, fns[i], strlen(fns[i])) < 0)
			return 11;
	if (hb_xbus_register(b, "ghost", 5) < 0) /* in the table, not in the process */
		return 12;
	if (hb_funcs_pool_add(f, in) < 0) /* runs "module:function" jobs too */
		return 13;
	put(ready, 'r');
	for (;;) {
		hb_job_t *j = hb_funcs_take(in);
		size_t nlen, alen;
		const char *name;
		const uint8_t *args;
		char *out;

		if (!j) {
			usleep(1000);
			continue;
		}
		name = hb_funcs_job_name(j, &nlen);
		args = hb_funcs_job_args(j, &alen);
		if (!hb_funcs_job_start(j)) {
			hb_funcs_job_release(j);
			continue;
		}
		if (strcmp(name, "hang") == 0 || strcmp(name, "m:hang") == 0)
			pause();
		if (strcmp(name, "fail") == 0) {
			hb_funcs_job_finish(j, HB_JOB_ERROR, strdup("boom"), 4);
		} else {
			out = malloc(alen * 2 + 1);
			memcpy(out, args, alen);
			memcpy(out + alen, args, alen);
			hb_funcs_job_finish(j, HB_JOB_OK, out, alen * 2);
		}
		hb_funcs_job_release(j);
	}
}

static int count_name(const char *name, size_t len, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

/* Calls name(args) in the owner; returns the job (finished, or not when rc says so). */
static hb_job_t *call(hb_xbus_t *b, const char *name, const void *args, size_t alen, int timeout_ms,
		      int *rc)
{
	hb_xbus_peer_t p;
	hb_job_t *j;

	cr_assert_eq(hb_xbus_owner(b, name, strlen(name), &p), 0);
	j = hb_funcs_job_new(HB_JOB_CALL, name, strlen(name), args, alen);
	cr_assert_eq(hb_xbus_post(b, &p, j), 0);
	*rc = hb_xbus_wait(b, &p, j, timeout_ms);
	return j;
}

Test(xbus, calls_across_processes, .timeout = 60)
{
	hb_xbus_t *b = hb_xbus_create(NULL);
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	size_t big = (size_t)200 << 10, len;
	char *args = malloc(big);
	const uint8_t *res;
	int rp[2], rc, n = 0;
	hb_xbus_peer_t p;
	hb_job_t *j;
	pid_t kid;

	cr_assert_eq(pipe(rp), 0);
	kid = fork();
	if (kid == 0)
		_exit(owner(b, rp[1]));
	cr_assert_eq(get(rp[0]), 'r');
	cr_assert_eq(hb_xbus_attach(b, ps, f), 0);
	hb_xbus_names(b, count_name, &n);
	cr_assert_eq(n, 4);
	cr_assert_eq(hb_xbus_owner(b, "nope", 4, &p), -ENOENT);

	j = call(b, "double", "ab", 2, 5000, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_OK);
	res = hb_funcs_job_result(j, &len);
	cr_assert_eq(len, 4);
	cr_assert_arr_eq(res, "abab", 4);
	hb_funcs_job_release(j);

	/* Arguments and result over the inline size go through memfds both ways. */
	for (size_t k = 0; k < big; k++)
		args[k] = (char)(k % 251);
	j = call(b, "double", args, big, 5000, &rc);
	cr_assert_eq(rc, 0);
	res = hb_funcs_job_result(j, &len);
	cr_assert_eq(len, big * 2);
	cr_assert_arr_eq(res + big, args, big);
	hb_funcs_job_release(j);

	j = call(b, "fail", "", 0, 5000, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_ERROR);
	res = hb_funcs_job_result(j, &len);
	cr_assert_arr_eq(res, "boom", 4);
	hb_funcs_job_release(j);

	/* A name the table gives a process that has no such function comes back LOST. */
	j = call(b, "ghost", "", 0, 5000, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_LOST);
	hb_funcs_job_release(j);

	cr_assert_eq(hb_xbus_register(b, "mine", 4), 0);
	cr_assert_eq(hb_xbus_owner(b, "mine", 4, &p), 1);
	cr_assert_eq(hb_xbus_unregister_mine(b, "mine", 4), 0);
	cr_assert_eq(hb_xbus_unregister(b, "mine", 4), -ENOENT);

	/* A call that does not answer in time; then its owner is killed during a call. */
	struct timespec t0, t1;
	j = call(b, "hang", "", 0, 200, &rc);
	cr_assert_eq(rc, -ETIMEDOUT);
	hb_funcs_job_cancel(j);
	hb_funcs_job_release(j);
	cr_assert_eq(hb_xbus_owner(b, "double", 6, &p), 0);
	j = hb_funcs_job_new(HB_JOB_CALL, "double", 6, "x", 1);
	cr_assert_eq(kill(kid, SIGKILL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (hb_xbus_post(b, &p, j) == 0)
		cr_assert_eq(hb_xbus_wait(b, &p, j, 20000), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 5, "a dead owner is noticed, not waited for");
	hb_funcs_job_release(j);
	cr_assert_eq(exit_code(kid), 128 + SIGKILL);
	/* Until the master reaps it the slot is taken; then its names are gone. */
	cr_assert_eq(hb_xbus_peers(b), 1);
	hb_xbus_reap(b, kid);
	cr_assert_eq(hb_xbus_peers(b), 0);
	cr_assert_eq(hb_xbus_owner(b, "double", 6, &p), -ENOENT);
	n = 0;
	hb_xbus_names(b, count_name, &n);
	cr_assert_eq(n, 0);

	hb_xbus_destroy(b);
	hb_funcs_free(f);
	hb_pubsub_free(ps);
	free(args);
}

Test(xbus, hang_up_owner_reports_lost, .timeout = 60)
{
	hb_xbus_t *b = hb_xbus_create(NULL);
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	int rp[2], rc;
	hb_job_t *j;
	pid_t kid;

	cr_assert_eq(pipe(rp), 0);
	kid = fork();
	if (kid == 0)
		_exit(owner(b, rp[1]));
	cr_assert_eq(get(rp[0]), 'r');
	cr_assert_eq(hb_xbus_attach(b, ps, f), 0);
	/* The call is running ("hang") when its owner dies: the caller sees LOST. */
	if (fork() == 0) {
		usleep(300 * 1000);
		kill(kid, SIGKILL);
		_exit(0);
	}
	j = call(b, "hang", "", 0, 20000, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_LOST);
	hb_funcs_job_release(j);
	cr_assert_eq(exit_code(kid), 128 + SIGKILL);
	while (wait(NULL) > 0)
		;
	hb_xbus_destroy(b);
	hb_funcs_free(f);
	hb_pubsub_free(ps);
}

/* ---- module:function jobs spread over processes (the cluster's calls from other nodes) ---- */

Test(xbus, rpc_jobs_round_robin_and_a_dead_process_ends_lost, .timeout = 60)
{
	hb_xbus_t *b = hb_xbus_create(NULL);
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	int rp[2], rc, self = 0, other = 0;
	hb_xbus_peer_t p, kidp = {0};
	const uint8_t *res;
	size_t len;
	uint64_t g0, g1;
	hb_job_t *j;
	pid_t kid;

	cr_assert_eq(hb_xbus_pick(b, &p), -ENOTCONN);
	cr_assert_eq(pipe(rp), 0);
	kid = fork();
	if (kid == 0)
		_exit(owner(b, rp[1]));
	cr_assert_eq(get(rp[0]), 'r');
	cr_assert_eq(hb_xbus_attach(b, ps, f), 0);

	/* The names' generation moves with every change (the cluster re-announces on it). */
	g0 = hb_xbus_generation(b);
	cr_assert_gt(g0, 0); /* the child registered its four */
	cr_assert_eq(hb_xbus_register(b, "mine", 4), 0);
	g1 = hb_xbus_generation(b);
	cr_assert_gt(g1, g0);
	cr_assert_eq(hb_xbus_unregister(b, "mine", 4), 0);
	cr_assert_gt(hb_xbus_generation(b), g1);
	cr_assert_eq(hb_xbus_unregister(b, "mine", 4), -ENOENT);

	/* Round robin over the two live processes, this one included. */
	for (int i = 0; i < 4; i++) {
		rc = hb_xbus_pick(b, &p);
		if (rc == 1) {
			self++;
			cr_assert_eq(p.slot, (uint32_t)hb_xbus_slot(b));
		} else {
			cr_assert_eq(rc, 0);
			kidp = p;
			other++;
		}
	}
	cr_assert_eq(self, 2);
	cr_assert_eq(other, 2);

	/* A "module:function" job runs in the other process's pooled worker, result back. */
	j = hb_funcs_job_new(HB_JOB_RPC, "m:double", 8, "ab", 2);
	cr_assert_eq(hb_xbus_try_post(b, &kidp, j), 0);
	cr_assert_eq(hb_xbus_wait(b, &kidp, j, 5000), 0);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_OK);
	res = hb_funcs_job_result(j, &len);
	cr_assert_eq(len, 4);
	cr_assert_arr_eq(res, "abab", 4);
	hb_funcs_job_release(j);

	/* A poster that does not wait (the cluster thread): the job ends LOST once the process
	 * that runs it is gone from its slot, not before. */
	j = hb_funcs_job_new(HB_JOB_RPC, "m:hang", 6, "", 0);
	cr_assert_eq(hb_xbus_try_post(b, &kidp, j), 0);
	cr_assert_eq(hb_xbus_check_pending(b), 0);
	cr_assert_eq(kill(kid, SIGKILL), 0);
	cr_assert_eq(exit_code(kid), 128 + SIGKILL);
	cr_assert_eq(hb_xbus_check_pending(b), 0); /* not reaped yet: its slot is still live */
	g1 = hb_xbus_generation(b);
	hb_xbus_reap(b, kid);
	cr_assert_gt(hb_xbus_generation(b), g1); /* its names went */
	/* this check, or the bus thread's own (every TICK_MS), ends it */
	cr_assert_leq(hb_xbus_check_pending(b), 1);
	for (int i = 0; i < 200 && hb_funcs_job_status(j) != HB_JOB_LOST; i++)
		usleep(10000);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_LOST);
	hb_funcs_job_release(j);
	/* alone now: every pick is this process */
	cr_assert_eq(hb_xbus_pick(b, &p), 1);
	cr_assert_eq(hb_xbus_pick(b, &p), 1);

	hb_xbus_destroy(b);
	hb_funcs_free(f);
	hb_pubsub_free(ps);
}

Test(xbus, dead_lock_holder_does_not_wedge, .timeout = 30)
{
	hb_xbus_t *b = hb_xbus_create(&(hb_xbus_opts_t){.max_procs = 2, .max_names = 4});
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	int rp[2], n = 0;
	hb_xbus_peer_t p;
	pid_t kid;

	cr_assert_eq(pipe(rp), 0);
	kid = fork();
	if (kid == 0) {
		if (hb_xbus_attach(b, ps, f) < 0 || hb_xbus_register(b, "theirs", 6) < 0)
			_exit(10);
		hb_xbus_debug_hold_lock(b);
		put(rp[1], 'r');
		pause();
		_exit(0);
	}
	cr_assert_eq(get(rp[0]), 'r');
	cr_assert_eq(kill(kid, SIGKILL), 0);
	cr_assert_eq(exit_code(kid), 128 + SIGKILL);
	/* The lock is recovered from the dead holder; its slot (its process is gone) is taken
	 * over and its names with it. */
	cr_assert_eq(hb_xbus_attach(b, ps, f), 0);
	cr_assert_eq(hb_xbus_register(b, "mine", 4), 0);
	cr_assert_eq(hb_xbus_owner(b, "theirs", 6, &p), -ENOENT);
	hb_xbus_names(b, count_name, &n);
	cr_assert_eq(n, 1);
	/* Four names at most. */
	cr_assert_eq(hb_xbus_register(b, "c", 1), 0);
	cr_assert_eq(hb_xbus_register(b, "d", 1), 0);
	cr_assert_eq(hb_xbus_register(b, "e", 1), 0);
	cr_assert_eq(hb_xbus_register(b, "f", 1), -ENOSPC);
	cr_assert_eq(hb_xbus_register(b, "mine", 4), 0, "registering again takes no room");
	cr_assert_eq(hb_xbus_unregister(b, "c", 1), 0);
	cr_assert_eq(hb_xbus_register(b, "f", 1), 0);
	hb_xbus_destroy(b);
	hb_funcs_free(f);
	hb_pubsub_free(ps);
}
