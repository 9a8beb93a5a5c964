/* inflight.c: the in-flight request table (inflight.h). */
#include "core/inflight.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum { FREE = 0, BUSY, WRITING };

struct entry {
	_Atomic uint32_t state;
	uint8_t mlen, tlen;
	_Atomic uint64_t since; /* CLOCK_MONOTONIC ns */
	char method[HB_INFLIGHT_METHOD];
	char target[HB_INFLIGHT_TARGET];
};

struct hb_inflight {
	_Atomic int64_t lost; /* running, not recorded: the table was full */
	struct entry e[HB_INFLIGHT_SLOTS];
};

/* Set once per process before its threads start (inflight.h): the process's own table. */
static hb_inflight_t *process_table;

hb_inflight_t *hb_inflight_create(void)
{
	void *p = mmap(NULL, sizeof(hb_inflight_t), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p; /* anonymous memory is zeroed: every entry FREE */
}

void hb_inflight_destroy(hb_inflight_t *t)
{
	if (t)
		munmap(t, sizeof *t);
}

void hb_inflight_set_process(hb_inflight_t *t)
{
	process_table = t;
}

hb_inflight_t *hb_inflight_process(void)
{
	return process_table;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Copies at most cap bytes, printable ASCII only (a log line gets no control bytes). */
static uint8_t copy_printable(char *dst, size_t cap, const char *src, size_t n)
{
	if (n > cap)
		n = cap;
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] > 0x20 && src[i] < 0x7f ? src[i] : '?';
	return (uint8_t)n;
}

int hb_inflight_begin(hb_inflight_t *t, unsigned hint, const char *method, size_t mlen,
		      const char *target, size_t tlen)
{
	if (!t)
		return -1;
	for (unsigned k = 0; k < HB_INFLIGHT_SLOTS; k++) {
		int i = (int)((hint + k) % HB_INFLIGHT_SLOTS);
		struct entry *e = &t->e[i];
		uint32_t want = FREE;
		if (atomic_load_explicit(&e->state, memory_order_relaxed) != FREE ||
		    !atomic_compare_exchange_strong_explicit(
			    &e->state, &want, WRITING, memory_order_acquire, memory_order_relaxed))
			continue;
		e->mlen = copy_printable(e->method, sizeof e->method, method, method ? mlen : 0);
		e->tlen = copy_printable(e->target, sizeof e->target, target, target ? tlen : 0);
		atomic_store_explicit(&e->since, mono_ns(), memory_order_relaxed);
		atomic_store_explicit(&e->state, BUSY, memory_order_release);
		return i;
	}
	atomic_fetch_add_explicit(&t->lost, 1, memory_order_relaxed);
	return HB_INFLIGHT_LOST;
}

void hb_inflight_end(hb_inflight_t *t, int i)
{
	if (!t || i == -1)
		return;
	if (i == HB_INFLIGHT_LOST)
		atomic_fetch_sub_explicit(&t->lost, 1, memory_order_relaxed);
	else if (i >= 0 && i < HB_INFLIGHT_SLOTS)
		atomic_store_explicit(&t->e[i].state, FREE, memory_order_release);
}

typedef struct seen {
	uint64_t since;
	uint8_t mlen, tlen;
	char method[HB_INFLIGHT_METHOD];
	char target[HB_INFLIGHT_TARGET];
} seen_t;

static int older_first(const void *a, const void *b)
{
	uint64_t x = ((const seen_t *)a)->since, y = ((const seen_t *)b)->since;
	return x < y ? -1 : x > y;
}

/* A consistent copy of entry e, or 0 when it is not (or no longer) busy: a live process may end
 * and reuse it meanwhile, so the state and start time are checked again after the copy. */
static int snapshot(const struct entry *e, seen_t *s)
{
	if (atomic_load_explicit(&e->state, memory_order_acquire) != BUSY)
		return 0;
	s->since = atomic_load_explicit(&e->since, memory_order_relaxed);
	s->mlen = e->mlen < sizeof s->method ? e->mlen : sizeof s->method;
	s->tlen = e->tlen < sizeof s->target ? e->tlen : sizeof s->target;
	memcpy(s->method, e->method, sizeof s->method);
	memcpy(s->target, e->target, sizeof s->target);
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&e->state, memory_order_relaxed) == BUSY &&
	       atomic_load_explicit(&e->since, memory_order_relaxed) == s->since;
}

int hb_inflight_describe(const hb_inflight_t *t, uint64_t now, int max, char *buf, size_t len)
{
	seen_t *s = t ? malloc(HB_INFLIGHT_SLOTS * sizeof *s) : NULL;
	int n = 0, lost = 0;
	size_t at = 0;

	if (len)
		buf[0] = '\0';
	if (!s)
		return 0;
	for (int i = 0; i < HB_INFLIGHT_SLOTS; i++)
		n += snapshot(&t->e[i], &s[n]);
	int64_t l = atomic_load_explicit(&t->lost, memory_order_relaxed);
	lost = l > 0 ? (int)l : 0;
	if (n > 1)
		qsort(s, (size_t)n, sizeof *s, older_first);
	for (int i = 0; i < n && i < max && at < len; i++) {
		double secs = now > s[i].since ? (double)(now - s[i].since) / 1e9 : 0.0;
		int w = snprintf(buf + at, len - at, "%s%.*s %.*s (running %.1f s)", i ? ", " : "",
				 (int)s[i].mlen, s[i].method, (int)s[i].tlen, s[i].target, secs);
		at += w > 0 ? (size_t)w : 0;
	}
	int more = (n > max ? n - max : 0) + lost;
	if (more && at < len)
		snprintf(buf + at, len - at, "%sand %d more", n ? ", " : "", more);
	free(s);
	return n + lost;
}
