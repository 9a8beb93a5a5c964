/* test_pubsub.c: topics, bounded queues (drop oldest), order, patterns, wakeups, threads. */
#include "core/pubsub.h"

#include "../hb_test.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int pub_str(hb_pubsub_t *ps, const char *topic, const char *msg)
{
	return hb_pubsub_publish(ps, topic, strlen(topic), msg, strlen(msg));
}

static hb_ps_sub_t *sub(hb_pubsub_t *ps, const char *topic, uint32_t cap)
{
	hb_ps_sub_t *s = NULL;

	cr_assert_eq(hb_pubsub_subscribe(ps, topic, strlen(topic), cap, &s), 0);
	return s;
}

/* Pops one message and compares it with want (NULL: expect an empty queue). */
static void expect(hb_ps_sub_t *s, const char *want)
{
	hb_ps_msg_t *m = NULL;
	int rc = hb_pubsub_pop(s, &m);

	if (!want) {
		cr_assert(rc == -EAGAIN || rc == -EPIPE, "queue not empty (rc %d)", rc);
		return;
	}
	cr_assert_eq(rc, 0, "no message, wanted %s", want);
	cr_assert_eq(m->len, strlen(want));
	cr_assert(memcmp(m->data, want, m->len) == 0, "got %.*s, wanted %s", (int)m->len,
		  (const char *)m->data, want);
	hb_ps_msg_release(m);
}

Test(pubsub, exact_topic_fanout_and_count)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *a = sub(ps, "news", 0), *b = sub(ps, "news", 0), *c = sub(ps, "other", 0);

	cr_assert_eq(pub_str(ps, "news", "m1"), 2);
	cr_assert_eq(pub_str(ps, "nobody", "x"), 0);
	expect(a, "m1");
	expect(b, "m1");
	expect(a, NULL);
	expect(c, NULL);
	cr_assert_eq(hb_pubsub_cap(a), HB_PUBSUB_DEFAULT_QUEUE);
	hb_pubsub_sub_free(a);
	cr_assert_eq(pub_str(ps, "news", "m2"), 1);
	expect(b, "m2");
	hb_pubsub_sub_free(b);
	hb_pubsub_sub_free(c);
	hb_pubsub_stats_t st;
	hb_pubsub_stats(ps, &st);
	cr_assert_eq(st.subscribers, 0);
	cr_assert_eq(st.topics, 0);
	cr_assert_eq(st.delivered, 3);
	hb_pubsub_free(ps);
}

Test(pubsub, bad_topics)
{
	hb_pubsub_t *ps = hb_pubsub_new(4);
	hb_ps_sub_t *s;
	static char big[HB_PUBSUB_MAX_TOPIC + 1];

	memset(big, 'a', sizeof(big));
	cr_assert_eq(hb_pubsub_subscribe(ps, "", 0, 0, &s), -EINVAL);
	cr_assert_eq(hb_pubsub_subscribe(ps, "a\0b", 3, 0, &s), -EINVAL);
	cr_assert_eq(hb_pubsub_subscribe(ps, big, sizeof(big), 0, &s), -EINVAL);
	cr_assert_eq(hb_pubsub_publish(ps, big, sizeof(big), "x", 1), -EINVAL);
	cr_assert_eq(hb_pubsub_subscribe(ps, big, sizeof(big) - 1, 0, &s), 0);
	cr_assert_eq(hb_pubsub_publish(ps, big, sizeof(big) - 1, "x", 1), 1);
	hb_pubsub_sub_free(s);
	hb_pubsub_free(ps);
}

Test(pubsub, full_queue_drops_oldest)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *s = sub(ps, "t", 40);
	char buf[16];

	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		cr_assert_eq(pub_str(ps, "t", buf), 1);
	}
	cr_assert_eq(hb_pubsub_pending(s), 40);
	cr_assert_eq(hb_pubsub_dropped(s), 60);
	for (int i = 60; i < 100; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		expect(s, buf);
	}
	expect(s, NULL);
	/* Refill after draining: the ring wraps around. */
	for (int i = 0; i < 45; i++) {
		snprintf(buf, sizeof(buf), "r%d", i);
		pub_str(ps, "t", buf);
	}
	cr_assert_eq(hb_pubsub_dropped(s), 65);
	expect(s, "r5");
	hb_pubsub_stats_t st;
	hb_pubsub_stats(ps, &st);
	cr_assert_eq(st.dropped, 65);
	hb_pubsub_sub_free(s); /* frees the 39 still queued */
	hb_pubsub_free(ps);
}

Test(pubsub, queue_of_one)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *s = sub(ps, "t", 1);

	pub_str(ps, "t", "a");
	pub_str(ps, "t", "b");
	expect(s, "b");
	cr_assert_eq(hb_pubsub_dropped(s), 1);
	hb_pubsub_sub_free(s);
	hb_pubsub_free(ps);
}

Test(pubsub, patterns)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *all = sub(ps, "chat:*", 0), *one = sub(ps, "chat:1", 0),
		    *star = sub(ps, "*", 0);

	cr_assert_eq(pub_str(ps, "chat:1", "a"), 3);
	cr_assert_eq(pub_str(ps, "chat:2", "b"), 2);
	cr_assert_eq(pub_str(ps, "news", "c"), 1);
	expect(all, "a");
	expect(all, "b");
	expect(all, NULL);
	expect(one, "a");
	expect(one, NULL);
	expect(star, "a");
	expect(star, "b");
	expect(star, "c");
	hb_pubsub_sub_free(all);
	hb_pubsub_sub_free(star);
	cr_assert_eq(pub_str(ps, "chat:1", "d"), 1);
	hb_pubsub_sub_free(one);
	hb_pubsub_free(ps);
}

Test(pubsub, close_wakes_and_keeps_queued)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *s = sub(ps, "t", 0);
	hb_ps_msg_t *m;

	pub_str(ps, "t", "last");
	hb_pubsub_close(s);
	hb_pubsub_close(s); /* idempotent */
	cr_assert(hb_pubsub_closed(s));
	cr_assert_eq(pub_str(ps, "t", "after"), 0);
	cr_assert_eq(hb_pubsub_wait(s, 1000), 0);
	expect(s, "last");
	cr_assert_eq(hb_pubsub_pop(s, &m), -EPIPE);
	hb_pubsub_sub_free(s);
	hb_pubsub_free(ps);
}

Test(pubsub, eventfd_is_level_triggered)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *s = sub(ps, "t", 0);
	int fd;
	struct pollfd p;

	pub_str(ps, "t", "early"); /* queued before the fd exists */
	fd = hb_pubsub_fd(s);
	cr_assert_geq(fd, 0);
	cr_assert_eq(hb_pubsub_fd(s), fd);
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 0), 1);
	pub_str(ps, "t", "second");
	expect(s, "early");
	cr_assert_eq(poll(&p, 1, 0), 1, "still one queued");
	expect(s, "second");
	cr_assert_eq(poll(&p, 1, 0), 0, "empty: not readable");
	pub_str(ps, "t", "third");
	cr_assert_eq(poll(&p, 1, 0), 1);
	expect(s, "third");
	hb_pubsub_close(s);
	cr_assert_eq(poll(&p, 1, 0), 1, "closed: readable");
	hb_pubsub_sub_free(s);
	hb_pubsub_free(ps);
}

Test(pubsub, wait_times_out)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *s = sub(ps, "t", 0);
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_eq(hb_pubsub_wait(s, 50), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	cr_assert_geq((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 45);
	cr_assert_eq(hb_pubsub_wait(s, 0), -ETIMEDOUT);
	hb_pubsub_sub_free(s);
	hb_pubsub_free(ps);
}

/* ---- threads ---- */

#define NPUB 4
#define NSUB 4
#define PER_PUB 20000

struct ctx {
	hb_pubsub_t *ps;
	int id;
	int ok;
	uint64_t got;
	hb_ps_sub_t *s;
	pthread_barrier_t *bar;
};

static void *publisher(void *arg)
{
	struct ctx *c = arg;
	uint32_t msg[2] = {(uint32_t)c->id, 0};

	pthread_barrier_wait(c->bar);
	for (uint32_t i = 0; i < PER_PUB; i++) {
		msg[1] = i;
		if (hb_pubsub_publish(c->ps, "load", 4, msg, sizeof(msg)) != NSUB)
			c->ok = 0;
	}
	return NULL;
}

/* Blocks in wait; checks that each publisher's sequence numbers only go up. */
static void *subscriber(void *arg)
{
	struct ctx *c = arg;
	int64_t last[NPUB];
	hb_ps_msg_t *m;

	for (int i = 0; i < NPUB; i++)
		last[i] = -1;
	pthread_barrier_wait(c->bar);
	for (;;) {
		int rc = hb_pubsub_pop(c->s, &m);

		if (rc == -EPIPE)
			break;
		if (rc == -EAGAIN) {
			hb_pubsub_wait(c->s, 1000);
			continue;
		}
		uint32_t v[2];
		memcpy(v, m->data, sizeof(v));
		if (v[0] >= NPUB || (int64_t)v[1] <= last[v[0]])
			c->ok = 0;
		else
			last[v[0]] = v[1];
		c->got++;
		hb_ps_msg_release(m);
	}
	return NULL;
}

static void run_threads(uint32_t cap, int expect_all)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	pthread_barrier_t bar;
	struct ctx pubs[NPUB], subs[NSUB];
	pthread_t pt[NPUB], st[NSUB];

	pthread_barrier_init(&bar, NULL, NPUB + NSUB);
	for (int i = 0; i < NSUB; i++) {
		subs[i] = (struct ctx){.ps = ps, .id = i, .ok = 1, .bar = &bar};
		cr_assert_eq(hb_pubsub_subscribe(ps, "load", 4, cap, &subs[i].s), 0);
		pthread_create(&st[i], NULL, subscriber, &subs[i]);
	}
	for (int i = 0; i < NPUB; i++) {
		pubs[i] = (struct ctx){.ps = ps, .id = i, .ok = 1, .bar = &bar};
		pthread_create(&pt[i], NULL, publisher, &pubs[i]);
	}
	for (int i = 0; i < NPUB; i++) {
		pthread_join(pt[i], NULL);
		cr_assert(pubs[i].ok, "publisher %d did not reach every subscriber", i);
	}
	for (int i = 0; i < NSUB; i++)
		hb_pubsub_close(subs[i].s);
	for (int i = 0; i < NSUB; i++) {
		pthread_join(st[i], NULL);
		cr_assert(subs[i].ok, "subscriber %d saw a publisher's messages out of order", i);
		uint64_t total = subs[i].got + hb_pubsub_dropped(subs[i].s);
		cr_assert_eq(total, (uint64_t)NPUB * PER_PUB, "received + dropped = %llu",
			     (unsigned long long)total);
		if (expect_all)
			cr_assert_eq(hb_pubsub_dropped(subs[i].s), 0);
		cr_assert_leq(hb_pubsub_pending(subs[i].s), cap);
		hb_pubsub_sub_free(subs[i].s);
	}
	pthread_barrier_destroy(&bar);
	hb_pubsub_free(ps);
}

Test(pubsub, threads_big_queues_lose_nothing)
{
	run_threads(NPUB * PER_PUB, 1);
}

Test(pubsub, threads_small_queues_stay_bounded_and_ordered)
{
	run_threads(64, 0);
}

static void *churn(void *arg)
{
	struct ctx *c = arg;

	pthread_barrier_wait(c->bar);
	for (int i = 0; i < 2000; i++) {
		char topic[16];
		hb_ps_sub_t *s;

		snprintf(topic, sizeof(topic), i % 3 ? "c%d" : "c*", i % 7);
		if (hb_pubsub_subscribe(c->ps, topic, strlen(topic), 8, &s) == 0) {
			hb_pubsub_publish(c->ps, topic, strlen(topic), "x", 1);
			hb_pubsub_sub_free(s);
		} else {
			c->ok = 0;
		}
	}
	return NULL;
}

Test(pubsub, subscribe_unsubscribe_while_publishing)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	pthread_barrier_t bar;
	struct ctx c[4];
	pthread_t t[4];

	pthread_barrier_init(&bar, NULL, 4);
	for (int i = 0; i < 4; i++) {
		c[i] = (struct ctx){.ps = ps, .id = i, .ok = 1, .bar = &bar};
		pthread_create(&t[i], NULL, churn, &c[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert(c[i].ok);
	}
	hb_pubsub_stats_t st;
	hb_pubsub_stats(ps, &st);
	cr_assert_eq(st.subscribers, 0);
	cr_assert_eq(st.topics, 0);
	pthread_barrier_destroy(&bar);
	hb_pubsub_free(ps);
}

Test(pubsub, shutdown_closes_everyone)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *a = sub(ps, "t", 0), *b = sub(ps, "p*", 0), *c;
	hb_ps_msg_t *m;

	pub_str(ps, "t", "queued");
	hb_pubsub_shutdown(ps);
	cr_assert(hb_pubsub_closed(a) && hb_pubsub_closed(b));
	cr_assert_eq(hb_pubsub_wait(b, -1), 0, "a closed subscriber does not block");
	cr_assert_eq(hb_pubsub_subscribe(ps, "t", 1, 0, &c), -ESHUTDOWN);
	cr_assert_eq(pub_str(ps, "t", "late"), 0);
	expect(a, "queued");
	cr_assert_eq(hb_pubsub_pop(a, &m), -EPIPE);
	hb_pubsub_sub_free(a);
	hb_pubsub_sub_free(b);
	hb_pubsub_stats_t st;
	hb_pubsub_stats(ps, &st);
	cr_assert_eq(st.subscribers, 0);
	hb_pubsub_free(ps);
}

static int sum_topics(const char *name, size_t len, uint32_t nsubs, void *ud)
{
	char *out = ud;
	char one[64];

	snprintf(one, sizeof one, "%.*s=%u;", (int)len, name, nsubs);
	strcat(out, one);
	return 0;
}

Test(pubsub, topics_walk_and_generation)
{
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_ps_sub_t *a, *b, *p;
	char seen[256] = "";
	uint64_t g0 = hb_pubsub_generation(ps);

	cr_assert_eq(hb_pubsub_subscribe(ps, "t", 1, 0, &a), 0);
	cr_assert_eq(hb_pubsub_subscribe(ps, "t", 1, 0, &b), 0);
	cr_assert_eq(hb_pubsub_subscribe(ps, "x*", 2, 0, &p), 0);
	uint64_t g1 = hb_pubsub_generation(ps);
	cr_assert_neq(g1, g0);
	cr_assert_eq(hb_pubsub_topics(ps, sum_topics, seen), 0);
	cr_assert_str_eq(seen, "t=2;x*=1;");
	hb_pubsub_close(a);
	cr_assert_neq(hb_pubsub_generation(ps), g1);
	seen[0] = 0;
	hb_pubsub_topics(ps, sum_topics, seen);
	cr_assert_str_eq(seen, "t=1;x*=1;");
	hb_pubsub_sub_free(a);
	hb_pubsub_sub_free(b);
	hb_pubsub_sub_free(p);
	seen[0] = 0;
	hb_pubsub_topics(ps, sum_topics, seen);
	cr_assert_str_eq(seen, "");
	hb_pubsub_free(ps);
}
