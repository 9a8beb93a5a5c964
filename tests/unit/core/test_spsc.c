/* test_spsc.c: the bounded SPSC queue: order, full/empty, wraparound, a two-thread stress, and
 * batches (push_n) that the consumer sees whole or not at all. */
#include "../hb_test.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include <unistd.h>

#include "core/spsc.h"

static hb_msg_t msg_of(uint64_t n)
{
	/* Every field derives from n so that a torn or stale slot shows up as a
	 * mismatch. */
	return (hb_msg_t){
		.type = (uint32_t)n,
		.aux = (uint32_t)(n >> 32) ^ 0xa5a5a5a5u,
		.stream = (void *)(uintptr_t)(n * 3 + 1),
		.ptr = (void *)(uintptr_t)(n * 7 + 5),
		.len = n,
	};
}

static void assert_msg(const hb_msg_t *m, uint64_t n)
{
	hb_msg_t want = msg_of(n);

	cr_assert_eq(m->len, n, "got message %llu, want %llu", (unsigned long long)m->len,
		     (unsigned long long)n);
	cr_assert_eq(m->type, want.type);
	cr_assert_eq(m->aux, want.aux);
	cr_assert_eq(m->stream, want.stream);
	cr_assert_eq(m->ptr, want.ptr);
}

Test(spsc, push_pop_keeps_order)
{
	hb_spsc_t q;
	hb_msg_t m;

	cr_assert_eq(hb_spsc_init(&q, 16), 0);
	cr_assert(hb_spsc_empty(&q));
	for (uint64_t i = 0; i < 10; i++) {
		hb_msg_t in = msg_of(i);
		cr_assert_eq(hb_spsc_push(&q, &in), 0);
	}
	for (uint64_t i = 0; i < 10; i++) {
		cr_assert_eq(hb_spsc_pop(&q, &m), 0);
		assert_msg(&m, i);
	}
	cr_assert_eq(hb_spsc_pop(&q, &m), -EAGAIN);
	hb_spsc_destroy(&q);
}

Test(spsc, empty_pop_is_eagain)
{
	hb_spsc_t q;
	hb_msg_t m = msg_of(42);

	cr_assert_eq(hb_spsc_init(&q, 4), 0);
	cr_assert_eq(hb_spsc_pop(&q, &m), -EAGAIN);
	assert_msg(&m, 42); /* untouched on failure */
	cr_assert(hb_spsc_empty(&q));
	cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){.len = 1}), 0);
	cr_assert_not(hb_spsc_empty(&q));
	cr_assert_eq(hb_spsc_pop(&q, &m), 0);
	cr_assert(hb_spsc_empty(&q));
	cr_assert_eq(hb_spsc_pop(&q, &m), -EAGAIN);
	hb_spsc_destroy(&q);
	cr_assert_null(q.slots);
}

Test(spsc, full_at_capacity)
{
	hb_spsc_t q;
	hb_msg_t m;

	cr_assert_eq(hb_spsc_init(&q, 1000), 0); /* rounds up to 1024 */
	for (uint64_t i = 0; i < 1024; i++)
		cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){.len = i}), 0, "push %llu",
			     (unsigned long long)i);
	cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){.len = 9999}), -EAGAIN);
	cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){.len = 9999}), -EAGAIN);
	/* One pop makes room for exactly one push. */
	cr_assert_eq(hb_spsc_pop(&q, &m), 0);
	cr_assert_eq(m.len, 0);
	cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){.len = 1024}), 0);
	cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){.len = 9999}), -EAGAIN);
	for (uint64_t i = 1; i <= 1024; i++) {
		cr_assert_eq(hb_spsc_pop(&q, &m), 0);
		cr_assert_eq(m.len, i);
	}
	cr_assert_eq(hb_spsc_pop(&q, &m), -EAGAIN);
	hb_spsc_destroy(&q);
}

Test(spsc, capacity_power_of_two_kept)
{
	hb_spsc_t q;

	cr_assert_eq(hb_spsc_init(&q, 8), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){0}), 0);
	cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){0}), -EAGAIN);
	hb_spsc_destroy(&q);

	cr_assert_eq(hb_spsc_init(&q, 1), 0); /* smallest queue still holds one */
	cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){0}), 0);
	hb_spsc_destroy(&q);
}

Test(spsc, wraparound_many_times)
{
	hb_spsc_t q;
	hb_msg_t m;
	uint64_t next_in = 0, next_out = 0;

	cr_assert_eq(hb_spsc_init(&q, 4), 0);
	/* Varying batch sizes move the indices across the ring edge in every phase.
	 */
	for (int round = 0; round < 20000; round++) {
		int k = 1 + round % 4;
		for (int i = 0; i < k; i++) {
			hb_msg_t in = msg_of(next_in++);
			cr_assert_eq(hb_spsc_push(&q, &in), 0);
		}
		if (k == 4)
			cr_assert_eq(hb_spsc_push(&q, &(hb_msg_t){0}), -EAGAIN);
		for (int i = 0; i < k; i++) {
			cr_assert_eq(hb_spsc_pop(&q, &m), 0);
			assert_msg(&m, next_out++);
		}
		cr_assert_eq(hb_spsc_pop(&q, &m), -EAGAIN);
	}
	cr_assert_eq(next_in, next_out);
	cr_assert_gt(next_in, 1000 * 4);
	hb_spsc_destroy(&q);
}

/* TSan makes every queue operation 10-50x slower and serializes the two threads: a quarter of
 * the items keeps the test within a few seconds on two cores, still ~2000 laps of the ring. */
#ifdef HB_TEST_TSAN
#define STRESS_N 500000u
#else
#define STRESS_N 2000000u
#endif

/* Waiting for the other side: spin a little, then yield, then sleep briefly. With more threads
 * than cores (ctest -j2, TSan) a side that only spins or yields starves the one it waits for. */
static void backoff(unsigned *misses)
{
	unsigned n = ++*misses;

	if (n < 64)
		return;
	if (n < 256)
		sched_yield();
	else
		usleep(20);
}

static void *stress_producer(void *arg)
{
	hb_spsc_t *q = arg;
	unsigned misses = 0;

	for (uint64_t i = 0; i < STRESS_N; i++) {
		hb_msg_t m = msg_of(i);
		while (hb_spsc_push(q, &m) == -EAGAIN)
			backoff(&misses);
		misses = 0;
	}
	return NULL;
}

Test(spsc, two_thread_stress_exact_order, .timeout = 60)
{
	hb_spsc_t q;
	pthread_t th;
	hb_msg_t m;
	uint64_t bad = 0, empties = 0;
	unsigned misses = 0;

	/* A ring far smaller than the run, so both the full and the empty paths are hit often, yet
	 * big enough that a side descheduled for a time slice does not stall the other at once. */
	cr_assert_eq(hb_spsc_init(&q, 1024), 0);
	cr_assert_eq(pthread_create(&th, NULL, stress_producer, &q), 0);
	for (uint64_t i = 0; i < STRESS_N; i++) {
		while (hb_spsc_pop(&q, &m) == -EAGAIN) {
			empties++;
			backoff(&misses);
		}
		misses = 0;
		hb_msg_t want = msg_of(i);
		/* One cheap comparison per item; the assertion only runs on a mismatch. */
		bad += m.len != i || m.type != want.type || m.aux != want.aux ||
		       m.stream != want.stream || m.ptr != want.ptr;
		if (bad)
			cr_assert_fail("message %llu: got len %llu", (unsigned long long)i,
				       (unsigned long long)m.len);
	}
	pthread_join(th, NULL);
	cr_assert_eq(hb_spsc_pop(&q, &m), -EAGAIN);
	cr_assert(hb_spsc_empty(&q));
	cr_log_info("spsc stress: %llu empty polls", (unsigned long long)empties);
	hb_spsc_destroy(&q);
}

Test(spsc, push_n_all_or_nothing_across_the_edge)
{
	hb_spsc_t q;
	hb_msg_t m, in[3];
	uint64_t next_in = 0, next_out = 0;

	cr_assert_eq(hb_spsc_init(&q, 8), 0);
	for (int round = 0; round < 1000;
	     round++) { /* batches of 3 cross the edge in every phase */
		for (int i = 0; i < 3; i++)
			in[i] = msg_of(next_in + (uint64_t)i);
		cr_assert_eq(hb_spsc_push_n(&q, in, 3), 0);
		next_in += 3;
		while (next_in - next_out > 5) {
			cr_assert_eq(hb_spsc_pop(&q, &m), 0);
			assert_msg(&m, next_out++);
		}
	}
	/* 5 or fewer queued: 3 more fit, then a batch that does not fit pushes nothing */
	while (next_in - next_out < 6) {
		hb_msg_t one = msg_of(next_in++);
		cr_assert_eq(hb_spsc_push(&q, &one), 0);
	}
	for (int i = 0; i < 3; i++)
		in[i] = msg_of(next_in + (uint64_t)i);
	cr_assert_eq(hb_spsc_push_n(&q, in, 3), -EAGAIN, "2 free slots, 3 wanted");
	cr_assert_eq(hb_spsc_size(&q), 6, "nothing of the refused batch was pushed");
	cr_assert_eq(hb_spsc_pop(&q, &m), 0);
	assert_msg(&m, next_out++);
	cr_assert_eq(hb_spsc_push_n(&q, in, 3), 0, "room for exactly 3 now");
	next_in += 3;
	cr_assert_eq(hb_spsc_push_n(&q, in, 1), -EAGAIN);
	while (next_out < next_in) {
		cr_assert_eq(hb_spsc_pop(&q, &m), 0);
		assert_msg(&m, next_out++);
	}
	cr_assert_eq(hb_spsc_pop(&q, &m), -EAGAIN);
	hb_spsc_destroy(&q);
}

/* The consumer never sees part of a batch: every pop that finds a batch's first message finds
 * the rest right behind it. */
static void *batch_producer(void *arg)
{
	hb_spsc_t *q = arg;
	unsigned misses = 0;

	for (uint64_t i = 0; i < STRESS_N / 4; i += 3) {
		hb_msg_t m[3] = {msg_of(i), msg_of(i + 1), msg_of(i + 2)};
		while (hb_spsc_push_n(q, m, 3) == -EAGAIN)
			backoff(&misses);
		misses = 0;
	}
	return NULL;
}

Test(spsc, push_n_batch_is_seen_whole_by_a_racing_consumer, .timeout = 60)
{
	hb_spsc_t q;
	pthread_t th;
	hb_msg_t m;
	unsigned misses = 0;
	uint64_t n = (STRESS_N / 4 + 2) / 3 * 3;

	cr_assert_eq(hb_spsc_init(&q, 64), 0);
	cr_assert_eq(pthread_create(&th, NULL, batch_producer, &q), 0);
	for (uint64_t i = 0; i < n; i++) {
		int rc;
		while ((rc = hb_spsc_pop(&q, &m)) == -EAGAIN) {
			if (i % 3)
				cr_assert_fail("message %llu of a batch missing after its first",
					       (unsigned long long)i);
			backoff(&misses);
		}
		misses = 0;
		if (m.len != i)
			cr_assert_fail("message %llu: got %llu", (unsigned long long)i,
				       (unsigned long long)m.len);
	}
	pthread_join(th, NULL);
	cr_assert_eq(hb_spsc_pop(&q, &m), -EAGAIN);
	hb_spsc_destroy(&q);
}
