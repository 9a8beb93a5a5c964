/* bench_shmap.c: ops/s per thread of hb_shmap get/set/incr, 1 and 2 threads.
 *
 * Build and run (see docs/shmap.md):
 *   gcc -std=gnu11 -D_GNU_SOURCE -O2 -Isrc src/core/shmap.c src/core/codec.c \
 *       perf/micro/bench_shmap.c -lpthread -o /tmp/bench_shmap && /tmp/bench_shmap [seconds]
 * Each thread works on its own slice of 4096 keys ("spread") or all on one key ("hot").
 */
#include "core/shmap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NKEYS 4096
#define VLEN 64

enum op { OP_GET, OP_SET, OP_INCR };

struct job {
	hb_shmap_t *m;
	enum op op;
	int hot;
	int id, nthreads;
	double seconds;
	_Atomic int *go;
	uint64_t ops;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void key_of(char *k, int i)
{
	snprintf(k, 24, "bench:key:%06d", i);
}

static int one_op(struct job *j, const char *k, uint8_t *buf)
{
	size_t vl;
	switch (j->op) {
	case OP_GET:
		return hb_shmap_get(j->m, k, 17, buf, VLEN, &vl);
	case OP_SET:
		return hb_shmap_set(j->m, k, 17, buf, VLEN);
	case OP_INCR:
		return hb_shmap_incr(j->m, k, 17, 1, NULL);
	}
	return -1;
}

static void *run(void *p)
{
	struct job *j = p;
	char keys[256][24];
	uint8_t buf[VLEN] = {1};
	int slice = NKEYS / j->nthreads;
	for (int i = 0; i < 256; i++)
		key_of(keys[i], j->hot ? 0 : j->id * slice + (i * 37) % slice);
	while (!atomic_load(j->go))
		;
	double end = now() + j->seconds;
	uint64_t n = 0;
	while (now() < end) {
		for (int i = 0; i < 1024; i++)
			if (one_op(j, keys[i & 255], buf) != 0)
				abort();
		n += 1024;
	}
	j->ops = n;
	return NULL;
}

/* Fresh map with every key holding a counter (valid for get, set and incr). */
static hb_shmap_t *prepared(void)
{
	hb_shmap_opts_t o = {.shards = 64, .max_bytes = 64 << 20};
	hb_shmap_t *m = hb_shmap_create(&o);
	char k[24];
	for (int i = 0; m && i < NKEYS; i++) {
		key_of(k, i);
		hb_shmap_incr(m, k, 17, 1, NULL);
	}
	return m;
}

static double measure(enum op op, int hot, int nthreads, double seconds)
{
	hb_shmap_t *m = prepared();
	pthread_t t[2];
	struct job j[2];
	_Atomic int go = 0;
	if (!m)
		abort();
	for (int i = 0; i < nthreads; i++) {
		j[i] = (struct job){m, op, hot, i, nthreads, seconds, &go, 0};
		pthread_create(&t[i], NULL, run, &j[i]);
	}
	atomic_store(&go, 1);
	uint64_t total = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		total += j[i].ops;
	}
	hb_shmap_destroy(m);
	return (double)total / seconds / nthreads;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 0.5;
	static const char *const names[] = {"get", "set", "incr"};
	printf("%-6s %-7s %16s %16s\n", "op", "keys", "1 thread ops/s", "2 threads ops/s/thr");
	for (int hot = 0; hot < 2; hot++) {
		for (int op = OP_GET; op <= OP_INCR; op++) {
			double one = measure(op, hot, 1, seconds);
			double two = measure(op, hot, 2, seconds);
			printf("%-6s %-7s %16.0f %16.0f\n", names[op], hot ? "hot" : "spread", one,
			       two);
		}
	}
	return 0;
}
