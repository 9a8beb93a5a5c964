/* test_shmap.c: shared map basics, limits, iteration, counters, concurrency, fork. */
#include "core/shmap.h"

#include "core/codec.h"

#include "../hb_test.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Sanitizers slow the concurrent loops down 5-50x: size them so each test stays short. */
#if defined(HB_TEST_TSAN)
#define STRESS_ITERS 4000
#define INCR_ITERS 4000
#elif defined(__SANITIZE_ADDRESS__)
#define STRESS_ITERS 10000
#define INCR_ITERS 5000
#else
#define STRESS_ITERS 20000
#define INCR_ITERS 20000
#endif

static hb_shmap_t *make(uint32_t shards, size_t max_bytes)
{
	hb_shmap_opts_t o = {
		.shards = shards, .max_key = 64, .max_value = 4096, .max_bytes = max_bytes};
	hb_shmap_t *m = hb_shmap_create(&o);
	cr_assert_not_null(m);
	return m;
}

static int get_str(hb_shmap_t *m, const char *k, char *out, size_t cap)
{
	size_t vl = 0;
	int rc = hb_shmap_get(m, k, strlen(k), out, cap - 1, &vl);
	if (rc == 0)
		out[vl] = 0;
	return rc;
}

static int set_str(hb_shmap_t *m, const char *k, const char *v)
{
	return hb_shmap_set(m, k, strlen(k), v, strlen(v));
}

Test(shmap, basics)
{
	hb_shmap_t *m = make(4, 1 << 20);
	char buf[256];
	size_t vl;
	cr_assert_eq(get_str(m, "a", buf, sizeof buf), -ENOENT);
	cr_assert_eq(set_str(m, "a", "one"), 0);
	cr_assert_eq(get_str(m, "a", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "one");
	cr_assert_eq(set_str(m, "a", "two"), 0); /* same class: in place */
	cr_assert_eq(get_str(m, "a", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "two");
	char big[200];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	cr_assert_eq(set_str(m, "a", big), 0); /* bigger class: new block */
	cr_assert_eq(hb_shmap_get(m, "a", 1, buf, 10, &vl), -ENOBUFS);
	cr_assert_eq(vl, 199);
	cr_assert_eq(get_str(m, "a", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, big);
	cr_assert_eq(hb_shmap_set(m, "", 0, "empty", 5), 0);
	cr_assert_eq(hb_shmap_get(m, "", 0, buf, sizeof buf, &vl), 0);
	cr_assert_eq(vl, 5);
	cr_assert_eq(hb_shmap_delete(m, "a", 1), 0);
	cr_assert_eq(hb_shmap_delete(m, "a", 1), -ENOENT);
	cr_assert_eq(get_str(m, "a", buf, sizeof buf), -ENOENT);
	hb_shmap_stats_t st;
	hb_shmap_stats(m, &st);
	cr_assert_eq(st.entries, 1);
	cr_assert_eq(st.shards, 4);
	cr_assert_geq(st.hits, 4);
	cr_assert_geq(st.misses, 2);
	hb_shmap_destroy(m);
}

Test(shmap, many_keys_grow_tables)
{
	hb_shmap_t *m = make(4, 8 << 20);
	char k[32], v[32], buf[64];
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof k, "key-%d", i);
		snprintf(v, sizeof v, "val-%d", i * 7);
		cr_assert_eq(set_str(m, k, v), 0, "set %d", i);
	}
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof k, "key-%d", i);
		snprintf(v, sizeof v, "val-%d", i * 7);
		cr_assert_eq(get_str(m, k, buf, sizeof buf), 0);
		cr_assert_str_eq(buf, v);
	}
	hb_shmap_stats_t st;
	hb_shmap_stats(m, &st);
	cr_assert_eq(st.entries, 20000);
	for (int i = 0; i < 20000; i += 2) {
		snprintf(k, sizeof k, "key-%d", i);
		cr_assert_eq(hb_shmap_delete(m, k, strlen(k)), 0);
	}
	hb_shmap_stats(m, &st);
	cr_assert_eq(st.entries, 10000);
	hb_shmap_destroy(m);
}

Test(shmap, limits)
{
	hb_shmap_opts_t bad = {.shards = 1u << 20};
	cr_assert_null(hb_shmap_create(&bad));
	hb_shmap_t *m = make(2, 64 << 10);
	char key[65] = {0}, val[4097] = {0}, buf[4096];
	size_t vl;
	memset(key, 'k', 64);
	cr_assert_eq(hb_shmap_set(m, key, 65, "v", 1), -E2BIG);
	cr_assert_eq(hb_shmap_get(m, key, 65, buf, sizeof buf, &vl), -E2BIG);
	cr_assert_eq(hb_shmap_set(m, "k", 1, val, 4097), -E2BIG);
	cr_assert_eq(hb_shmap_set(m, key, 64, val, 4096), 0); /* exactly the maximum */
	/* Fill the 64 KiB budget with 1 KiB values until it refuses. */
	int n = 0, rc;
	char k[16];
	memset(val, 'v', 1000);
	for (;; n++) {
		snprintf(k, sizeof k, "f%d", n);
		if ((rc = hb_shmap_set(m, k, strlen(k), val, 1000)) != 0)
			break;
	}
	cr_assert_eq(rc, -ENOSPC);
	cr_assert_gt(n, 40);
	hb_shmap_stats_t st;
	hb_shmap_stats(m, &st);
	cr_assert_leq(st.bytes_used, st.max_bytes);
	cr_assert_geq(st.enospc, 1);
	/* Nothing was lost, and an overwrite refused for space keeps the old value. */
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof k, "f%d", i);
		rc = hb_shmap_get(m, k, strlen(k), buf, sizeof buf, &vl);
		cr_assert_eq(rc, 0, "get %s of %d: %d", k, n, rc);
		cr_assert_eq(vl, 1000);
	}
	cr_assert_eq(hb_shmap_set(m, "f0", 2, val, 4000), -ENOSPC);
	cr_assert_eq(hb_shmap_get(m, "f0", 2, buf, sizeof buf, &vl), 0);
	cr_assert_eq(vl, 1000);
	/* Recovery: delete some, the space is reusable. */
	for (int i = 0; i < 4; i++) {
		snprintf(k, sizeof k, "f%d", i);
		cr_assert_eq(hb_shmap_delete(m, k, strlen(k)), 0);
	}
	cr_assert_eq(hb_shmap_set(m, "again", 5, val, 1000), 0);
	cr_assert_eq(hb_shmap_set(m, "again2", 6, val, 1000), 0);
	hb_shmap_destroy(m);
}

struct collect {
	int n;
	int stop_after;
	size_t prefix_len;
	const char *prefix;
};

static int count_key(const void *key, size_t klen, void *ud)
{
	struct collect *c = ud;
	cr_assert_geq(klen, c->prefix_len);
	cr_assert(memcmp(key, c->prefix, c->prefix_len) == 0);
	c->n++;
	return c->stop_after && c->n == c->stop_after ? 42 : 0;
}

Test(shmap, keys_with_prefix)
{
	hb_shmap_t *m = make(8, 1 << 20);
	char k[32];
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof k, "user:%d", i);
		cr_assert_eq(set_str(m, k, "u"), 0);
	}
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof k, "item:%d", i);
		cr_assert_eq(set_str(m, k, "i"), 0);
	}
	struct collect c = {.prefix = "user:", .prefix_len = 5};
	cr_assert_eq(hb_shmap_keys(m, "user:", 5, count_key, &c), 0);
	cr_assert_eq(c.n, 100);
	c = (struct collect){.prefix = ""};
	cr_assert_eq(hb_shmap_keys(m, NULL, 0, count_key, &c), 0);
	cr_assert_eq(c.n, 150);
	c = (struct collect){.prefix = "", .stop_after = 7};
	cr_assert_eq(hb_shmap_keys(m, NULL, 0, count_key, &c), 42);
	cr_assert_eq(c.n, 7);
	c = (struct collect){.prefix = "nope"};
	cr_assert_eq(hb_shmap_keys(m, "nope", 4, count_key, &c), 0);
	cr_assert_eq(c.n, 0);
	hb_shmap_destroy(m);
}

Test(shmap, incr_basics_and_overflow)
{
	hb_shmap_t *m = make(4, 1 << 20);
	int64_t r;
	uint8_t buf[32];
	size_t vl;
	cr_assert_eq(hb_shmap_incr(m, "c", 1, 5, &r), 0);
	cr_assert_eq(r, 5);
	cr_assert_eq(hb_shmap_incr(m, "c", 1, -7, &r), 0);
	cr_assert_eq(r, -2);
	cr_assert_eq(hb_shmap_get(m, "c", 1, buf, sizeof buf, &vl), 0);
	cr_assert_eq(hb_codec_int64_decode(buf, vl, &r), 0); /* a counter is a codec int */
	cr_assert_eq(r, -2);
	cr_assert_eq(hb_codec_validate(buf, vl, 0), 0);
	/* Values set through the codec are counters too. */
	hb_codec_int64_encode(buf, INT64_MAX - 1);
	cr_assert_eq(hb_shmap_set(m, "big", 3, buf, HB_CODEC_INT64_SIZE), 0);
	cr_assert_eq(hb_shmap_incr(m, "big", 3, 1, &r), 0);
	cr_assert_eq(r, INT64_MAX);
	cr_assert_eq(hb_shmap_incr(m, "big", 3, 1, &r), -EOVERFLOW);
	cr_assert_eq(hb_shmap_incr(m, "big", 3, INT64_MIN, &r), 0);
	cr_assert_eq(r, -1);
	hb_codec_int64_encode(buf, INT64_MIN);
	cr_assert_eq(hb_shmap_set(m, "min", 3, buf, HB_CODEC_INT64_SIZE), 0);
	cr_assert_eq(hb_shmap_incr(m, "min", 3, -1, NULL), -EOVERFLOW);
	cr_assert_eq(hb_shmap_get(m, "min", 3, buf, sizeof buf, &vl), 0);
	cr_assert_eq(hb_codec_int64_decode(buf, vl, &r), 0);
	cr_assert_eq(r, INT64_MIN); /* unchanged */
	cr_assert_eq(set_str(m, "s", "hello"), 0);
	cr_assert_eq(hb_shmap_incr(m, "s", 1, 1, &r), -EINVAL);
	cr_assert_eq(set_str(m, "t", "0123456789"), 0); /* right size, wrong bytes */
	cr_assert_eq(hb_shmap_incr(m, "t", 1, 1, &r), -EINVAL);
	cr_assert_eq(get_str(m, "t", (char *)buf, sizeof buf), 0);
	cr_assert_str_eq((char *)buf, "0123456789");
	hb_shmap_destroy(m);
}

/* ---- concurrency ---- */

struct incr_arg {
	hb_shmap_t *m;
	int iters;
	_Atomic int *stop;
	int bad; /* reader: values that were not a growing codec int */
};

static void *incr_worker(void *p)
{
	struct incr_arg *a = p;
	char k[16];
	for (int i = 0; i < a->iters; i++) {
		cr_assert_eq(hb_shmap_incr(a->m, "hits", 4, 1, NULL), 0);
		snprintf(k, sizeof k, "k%d", i % 16);
		cr_assert_eq(hb_shmap_incr(a->m, k, strlen(k), 2, NULL), 0);
	}
	return NULL;
}

static void *incr_reader(void *p)
{
	struct incr_arg *a = p;
	int64_t last = 0, v;
	uint8_t buf[16];
	size_t vl;
	while (!atomic_load(a->stop)) {
		int rc = hb_shmap_get(a->m, "hits", 4, buf, sizeof buf, &vl);
		if (rc == -ENOENT)
			continue;
		if (rc != 0 || hb_codec_int64_decode(buf, vl, &v) || v < last)
			a->bad++;
		else
			last = v;
	}
	return NULL;
}

Test(shmap, incr_is_atomic_across_threads)
{
	enum { N = 4 };
	hb_shmap_t *m = make(4, 1 << 20);
	_Atomic int stop = 0;
	pthread_t t[N + 1];
	struct incr_arg a = {.m = m, .iters = INCR_ITERS, .stop = &stop}, ra = a;
	pthread_create(&t[N], NULL, incr_reader, &ra);
	for (int i = 0; i < N; i++)
		pthread_create(&t[i], NULL, incr_worker, &a);
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop, 1);
	pthread_join(t[N], NULL);
	int64_t r;
	cr_assert_eq(hb_shmap_incr(m, "hits", 4, 0, &r), 0);
	cr_assert_eq(r, (int64_t)N * a.iters);
	int64_t sum = 0;
	for (int i = 0; i < 16; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		cr_assert_eq(hb_shmap_incr(m, k, strlen(k), 0, &r), 0);
		sum += r;
	}
	cr_assert_eq(sum, (int64_t)N * a.iters * 2);
	cr_assert_eq(ra.bad, 0);
	hb_shmap_destroy(m);
}

/* Self-checking values: [u32 len][u32 serial][pattern bytes][u32 checksum of all before]. */
static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static size_t make_value(uint8_t *v, uint32_t serial)
{
	/* Half the writes keep one size (overwritten in place), half vary (fresh blocks). */
	uint32_t len = serial & 1 ? 3000 + serial % 8 : 12 + (serial * 2654435761u >> 7) % 3500;
	memcpy(v, &len, 4);
	memcpy(v + 4, &serial, 4);
	for (uint32_t i = 8; i < len - 4; i++)
		v[i] = (uint8_t)(serial * 131 + i);
	uint32_t c = fnv(v, len - 4);
	memcpy(v + len - 4, &c, 4);
	return len;
}

static int value_ok(const uint8_t *v, size_t vl)
{
	uint32_t len, serial, c;
	if (vl < 12)
		return 0;
	memcpy(&len, v, 4);
	memcpy(&serial, v + 4, 4);
	memcpy(&c, v + vl - 4, 4);
	if (len != vl || c != fnv(v, vl - 4))
		return 0;
	for (uint32_t i = 8; i < len - 4; i++)
		if (v[i] != (uint8_t)(serial * 131 + i))
			return 0;
	return 1;
}

struct stress_arg {
	hb_shmap_t *m;
	int id, iters;
	_Atomic int *stop;
	long reads, bad;
};

static void *stress_writer(void *p)
{
	struct stress_arg *a = p;
	uint8_t v[4096];
	for (int i = 0; i < a->iters; i++) {
		uint32_t serial = (uint32_t)(a->id * 1000003 + i);
		char k[8] = {'s', (char)('0' + serial % 8), 0};
		if (serial % 16 == 5)
			hb_shmap_delete(a->m, k, 2);
		else
			cr_assert_eq(hb_shmap_set(a->m, k, 2, v, make_value(v, serial)), 0);
	}
	return NULL;
}

static void *stress_reader(void *p)
{
	struct stress_arg *a = p;
	uint8_t v[4096];
	size_t vl;
	for (unsigned i = 0; !atomic_load(a->stop); i++) {
		char k[8] = {'s', (char)('0' + i % 8), 0};
		int rc = hb_shmap_get(a->m, k, 2, v, sizeof v, &vl);
		if (rc == -ENOENT)
			continue;
		a->reads++;
		if (rc != 0 || !value_ok(v, vl))
			a->bad++;
	}
	return NULL;
}

Test(shmap, stress_readers_never_see_torn_values)
{
	enum { W = 2, R = 2 };
	hb_shmap_t *m = make(2, 8 << 20);
	_Atomic int stop = 0;
	pthread_t t[W + R];
	struct stress_arg a[W + R];
	for (int i = 0; i < W + R; i++) {
		a[i] = (struct stress_arg){.m = m, .id = i, .iters = STRESS_ITERS, .stop = &stop};
		pthread_create(&t[i], NULL, i < W ? stress_writer : stress_reader, &a[i]);
	}
	for (int i = 0; i < W; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop, 1);
	long reads = 0;
	for (int i = W; i < W + R; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(a[i].bad, 0, "reader %d saw %ld bad values", i, a[i].bad);
		reads += a[i].reads;
	}
	cr_assert_gt(reads, 0);
	hb_shmap_stats_t st;
	hb_shmap_stats(m, &st);
	cr_assert_leq(st.entries, 8);
	cr_log_info("stress: %ld reads, %llu retries, %llu lock reads\n", reads,
		    (unsigned long long)st.retries, (unsigned long long)st.lock_reads);
	hb_shmap_destroy(m);
}

Test(shmap, forked_child_shares_the_map)
{
	hb_shmap_t *m = make(4, 1 << 20);
	cr_assert_eq(set_str(m, "before", "fork"), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char buf[16];
		int ok = get_str(m, "before", buf, sizeof buf) == 0 && strcmp(buf, "fork") == 0;
		for (int i = 0; i < 2000; i++)
			ok &= hb_shmap_incr(m, "n", 1, 1, NULL) == 0;
		ok &= set_str(m, "child", "hello") == 0;
		_exit(ok ? 0 : 1);
	}
	for (int i = 0; i < 2000; i++)
		cr_assert_eq(hb_shmap_incr(m, "n", 1, 1, NULL), 0);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	int64_t r;
	cr_assert_eq(hb_shmap_incr(m, "n", 1, 0, &r), 0);
	cr_assert_eq(r, 4000);
	char buf[16];
	cr_assert_eq(get_str(m, "child", buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "hello");
	hb_shmap_destroy(m);
}

Test(shmap, forked_writer_parent_reader)
{
	hb_shmap_t *m = make(2, 4 << 20);
	uint8_t v[4096];
	size_t vl;
	cr_assert_eq(hb_shmap_set(m, "x", 1, v, make_value(v, 1)), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int ok = 1;
		for (uint32_t i = 2; i < (uint32_t)STRESS_ITERS; i++)
			ok &= hb_shmap_set(m, "x", 1, v, make_value(v, i)) == 0;
		_exit(ok ? 0 : 1);
	}
	long reads = 0, bad = 0;
	int status;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		int rc = hb_shmap_get(m, "x", 1, v, sizeof v, &vl);
		bad += rc != 0 || !value_ok(v, vl);
		reads++;
	}
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert_eq(bad, 0, "%ld of %ld reads were bad", bad, reads);
	cr_assert_eq(hb_shmap_get(m, "x", 1, v, sizeof v, &vl), 0);
	cr_assert(value_ok(v, vl));
	hb_shmap_destroy(m);
}
