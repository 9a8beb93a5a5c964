/* test_xbus_hub.c: the cluster across processes on the process bus (core/xbus_hub.c), with a
 * fake cluster (an hb_remote_t) in the hub process: the proxy's calls and casts reach it in
 * order and their replies come back, owner/stats/publish go through it, the members it writes
 * answer connected() (and a truncated list lets every name through), a hub killed mid-call ends
 * the call LOST at once; the other processes' topics reach the hub, and its forwarder delivers a
 * burst of publishes to them in order, dropping the oldest past forward_queue. */
#include "core/xbus.h"

#include "fork_harness.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a fake cluster in the hub process ---- */

static uint32_t casts_seen, casts_bad;
static hb_job_t *held; /* a call to node "down": never answered */

static int f_connected(void *ctx, const char *node)
{
	(void)ctx;
	(void)node;
	return 1;
}

/* Casts carry their sequence number; a call's reply says what came before it, in order. */
static int f_send(void *ctx, const char *node, hb_job_t *j, int reply, int timeout_ms)
{
	size_t nlen, alen;
	const char *name = hb_funcs_job_name(j, &nlen);
	const uint8_t *args = hb_funcs_job_args(j, &alen);
	char buf[256];
	int n;

	(void)ctx;
	if (!reply) {
		uint32_t seq = 0;

		if (alen == 4)
			memcpy(&seq, args, 4);
		casts_bad += alen != 4 || seq != casts_seen;
		casts_seen++;
		return 0;
	}
	if (!strcmp(node, "down")) {
		hb_funcs_job_ref(j);
		held = j;
		return 0;
	}
	n = snprintf(buf, sizeof(buf), "%s|%.*s|%u|%u|%d", node, (int)nlen, name, casts_seen,
		     casts_bad, timeout_ms);
	if (hb_funcs_job_start(j))
		hb_funcs_job_finish(j, HB_JOB_OK, strdup(buf), (size_t)n);
	return 0;
}

static int f_owner(void *ctx, const char *name, size_t len, char *node, size_t cap)
{
	(void)ctx;
	if (len != 1 || name[0] != 'f')
		return -ENOENT;
	snprintf(node, cap, "n2");
	return 0;
}

static int f_publish(void *ctx, const void *topic, size_t tlen, const void *data, size_t len)
{
	(void)ctx;
	(void)topic;
	(void)tlen;
	(void)data;
	(void)len;
	return 5; /* subscribers on other nodes */
}

static void f_stats(void *ctx, hb_remote_stats_t *o)
{
	(void)ctx;
	memset(o, 0, sizeof(*o));
	o->calls_sent = 42;
}

static const hb_remote_t fake = {.connected = f_connected,
				 .send = f_send,
				 .owner = f_owner,
				 .publish = f_publish,
				 .stats = f_stats};

/* Child: the hub, with one subscriber to "t". Commands on `cmd`: 'm' writes a list of members
 * too long for the region, 'q' quits. */
static int hub(hb_xbus_t *b, int ready, int cmd)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	char *members[] = {"n1", "n2"};
	char *many[] = {"n1", "n2", "a-name-too-long-for-the-rest"};
	hb_ps_sub_t *s;

	if (hb_xbus_attach(b, ps, f) < 0 || hb_pubsub_subscribe(ps, "t", 1, 100, &s) < 0)
		return 10;
	if (hb_xbus_remote(b) != NULL || hb_xbus_set_hub(b, &fake) < 0 ||
	    hb_xbus_remote(b) != NULL || hb_xbus_set_members(b, members, 2) < 0)
		return 11;
	put(ready, 'r');
	for (;;) {
		char c = get(cmd);

		if (c == 'm')
			put(ready, hb_xbus_set_members(b, many, 3) == -ENOSPC ? 'k' : 'x');
		else
			break;
	}
	hb_xbus_set_hub(b, NULL);
	hb_xbus_destroy(b);
	return 0;
}

static int count_member(const char *name, size_t len, void *ud)
{
	(void)name;
	(void)len;
	(*(int *)ud)++;
	return 0;
}

Test(xbus_hub, proxy_calls_in_order_queries_members_and_a_dead_hub, .timeout = 60)
{
	hb_xbus_opts_t o = {.members_bytes = 16};
	hb_xbus_t *b = hb_xbus_create(&o);
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	int rp[2], cp[2], n = 0;
	const hb_remote_t *r;
	hb_remote_stats_t st;
	const uint8_t *res;
	char node[64], want[128];
	size_t len;
	hb_job_t *j;
	int64_t t0;
	pid_t kid;

	cr_assert_eq(pipe(rp), 0);
	cr_assert_eq(pipe(cp), 0);
	kid = fork();
	if (kid == 0)
		_exit(hub(b, rp[1], cp[0]));
	cr_assert_eq(get(rp[0]), 'r');
	cr_assert_eq(hb_xbus_attach(b, ps, f), 0);
	r = hb_xbus_remote(b);
	cr_assert_not_null(r);

	/* members: what the hub wrote */
	cr_assert_eq(hb_xbus_members(b, count_member, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(r->connected(r->ctx, "n1"), 1);
	cr_assert_eq(r->connected(r->ctx, "n2"), 1);
	cr_assert_eq(r->connected(r->ctx, "n3"), 0);

	/* 50 casts then a call: the hub saw the casts, all, in order, before the call */
	for (uint32_t i = 0; i < 50; i++) {
		j = hb_funcs_job_new(HB_JOB_RPC_CAST, "m:c", 3, &i, 4);
		cr_assert_eq(r->send(r->ctx, "n1", j, 0, 0), 0);
		hb_funcs_job_release(j);
	}
	j = hb_funcs_job_new(HB_JOB_RPC, "m:g", 3, "", 0);
	cr_assert_eq(r->send(r->ctx, "n1", j, 1, 1234), 0);
	cr_assert_eq(hb_funcs_job_wait(j, 5000), 0);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_OK);
	res = hb_funcs_job_result(j, &len);
	snprintf(want, sizeof(want), "n1|m:g|50|0|1234");
	cr_assert_eq(len, strlen(want));
	cr_assert_arr_eq(res, want, len);
	hb_funcs_job_release(j);

	/* owner and stats: questions the hub answers */
	cr_assert_eq(r->owner(r->ctx, "f", 1, node, sizeof(node)), 0);
	cr_assert_str_eq(node, "n2");
	cr_assert_eq(r->owner(r->ctx, "g", 1, node, sizeof(node)), -ENOENT);
	r->stats(r->ctx, &st);
	cr_assert_eq(st.calls_sent, 42);

	/* publish: the hub's subscriber and the other nodes' 5 */
	cr_assert_eq(r->publish(r->ctx, "t", 1, "x", 1), 6);
	cr_assert_eq(r->publish(r->ctx, "nobody", 6, "x", 1), 5);

	/* a members list that does not fit: connected() lets the hub decide */
	put(cp[1], 'm');
	cr_assert_eq(get(rp[0]), 'k');
	n = 0;
	cr_assert_eq(hb_xbus_members(b, count_member, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(r->connected(r->ctx, "n3"), 1);

	/* the hub dies with a call in flight: LOST as soon as its slot is freed */
	j = hb_funcs_job_new(HB_JOB_RPC, "m:hang", 6, "", 0);
	cr_assert_eq(r->send(r->ctx, "down", j, 1, 30000), 0);
	usleep(100 * 1000); /* it reached the hub (or not: LOST either way) */
	cr_assert_eq(kill(kid, SIGKILL), 0);
	cr_assert_eq(exit_code(kid), 128 + SIGKILL);
	hb_xbus_reap(b, kid);
	t0 = now_ms();
	cr_assert_eq(hb_funcs_job_wait(j, 5000), 0);
	cr_assert_lt(now_ms() - t0, 2000);
	cr_assert_eq(hb_funcs_job_status(j), HB_JOB_LOST);
	hb_funcs_job_release(j);
	/* no hub now: no proxy, and the old one refuses */
	cr_assert_null(hb_xbus_remote(b));
	cr_assert_eq(r->connected(r->ctx, "n1"), 0);
	j = hb_funcs_job_new(HB_JOB_RPC, "m:g", 3, "", 0);
	cr_assert_eq(r->send(r->ctx, "n1", j, 1, 1000), -ESHUTDOWN);
	hb_funcs_job_release(j);

	hb_xbus_destroy(b);
	hb_funcs_free(f);
	hb_pubsub_free(ps);
}

/* ---- topics and the forwarder ---- */

/* Child: subscribes to "t" twice and "u" once (cap), says ready; after `go` checks that "t"
 * brings n messages, the last one n - 1, in order, and none lost unless cap < n. When stop,
 * it stops itself (SIGSTOP) first, so that the hub's forwarder queue fills. */
static int other(hb_xbus_t *b, int ready, int go, uint32_t cap, uint32_t n, int stop)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	hb_ps_sub_t *s, *s2, *s3;
	hb_ps_msg_t *m;
	uint32_t got = 0, last = 0;

	if (hb_xbus_attach(b, ps, f) < 0 || hb_pubsub_subscribe(ps, "t", 1, cap, &s) < 0 ||
	    hb_pubsub_subscribe(ps, "t", 1, cap, &s2) < 0 ||
	    hb_pubsub_subscribe(ps, "u", 1, cap, &s3) < 0)
		return 10;
	put(ready, 'r');
	get(go);
	if (stop)
		raise(SIGSTOP);
	for (;;) {
		uint32_t v;

		if (hb_pubsub_wait(s, 3000) < 0 || hb_pubsub_pop(s, &m) < 0)
			break;
		memcpy(&v, m->data, 4);
		hb_ps_msg_release(m);
		if (got && v <= last)
			return 11; /* out of order */
		last = v;
		got++;
		if (v == n - 1)
			break;
	}
	if (last != n - 1)
		return 12;
	if (!stop && got != n)
		return 13;
	if (stop && got == n)
		return 14; /* a stopped process and a queue of 8: some were dropped */
	hb_xbus_destroy(b);
	return 0;
}

typedef struct tsum {
	uint32_t t, u;
} tsum_t;

static int sum_topic(const char *name, size_t len, uint32_t nsubs, void *ud)
{
	tsum_t *s = ud;

	if (len == 1 && name[0] == 't')
		s->t += nsubs;
	if (len == 1 && name[0] == 'u')
		s->u += nsubs;
	return 0;
}

static void forward_to_other(uint32_t queue, uint32_t n, int stop)
{
	hb_xbus_opts_t o = {.forward_queue = queue};
	hb_xbus_t *b = hb_xbus_create(&o);
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_funcs_t *f = hb_funcs_new();
	int rp[2], gp[2], dropped = 0;
	uint64_t g0;
	tsum_t sum = {0};
	pid_t kid;

	cr_assert_eq(pipe(rp), 0);
	cr_assert_eq(pipe(gp), 0);
	kid = fork(); /* before this process has threads (the bus's, the forwarder) */
	if (kid == 0)
		_exit(other(b, rp[1], gp[0], 1000, n, stop));
	cr_assert_eq(get(rp[0]), 'r');
	cr_assert_eq(hb_xbus_attach(b, ps, f), 0);
	g0 = hb_xbus_topics_generation(b);
	cr_assert_eq(hb_xbus_set_hub(b, &fake), 0); /* the other one tells it its topics now */
	/* its topics reach the hub within a few ticks */
	for (int i = 0; i < 200 && (sum.t != 2 || sum.u != 1); i++) {
		usleep(10000);
		sum = (tsum_t){0};
		hb_xbus_topics(b, sum_topic, &sum);
	}
	cr_assert_eq(sum.t, 2);
	cr_assert_eq(sum.u, 1);
	cr_assert_gt(hb_xbus_topics_generation(b), g0);
	put(gp[1], 'g');
	if (stop) { /* wait until it stopped itself */
		int st;

		cr_assert_eq(waitpid(kid, &st, WUNTRACED), kid);
		cr_assert(WIFSTOPPED(st));
	}
	for (uint32_t i = 0; i < n; i++) {
		int k = hb_xbus_publish_nowait(b, "t", 1, &i, 4);

		cr_assert_geq(k, 0);
		dropped += k;
	}
	if (stop) {
		cr_assert_gt(dropped, 0);
		cr_assert_eq(kill(kid, SIGCONT), 0);
	} else {
		cr_assert_eq(dropped, 0);
	}
	cr_assert_eq(exit_code(kid), 0);
	hb_xbus_reap(b, kid);
	/* a dead process's topics are not announced */
	sum = (tsum_t){0};
	hb_xbus_topics(b, sum_topic, &sum);
	cr_assert_eq(sum.t, 0);
	hb_xbus_set_hub(b, NULL);
	hb_xbus_destroy(b);
	hb_funcs_free(f);
	hb_pubsub_free(ps);
}

Test(xbus_hub, topics_reach_the_hub_and_a_burst_is_forwarded_in_order, .timeout = 60)
{
	forward_to_other(0, 500, 0); /* 500: far over the sockets' queue of datagrams */
}

Test(xbus_hub, a_stopped_process_loses_the_oldest_past_forward_queue, .timeout = 60)
{
	forward_to_other(8, 300, 1);
}
