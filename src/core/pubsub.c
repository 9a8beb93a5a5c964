/* pubsub.c: topic registry and bounded per-subscriber queues (pubsub.h).
 *
 * Exact topics sit in a chained hash table, patterns in a list; both hold arrays of subscriber
 * pointers. The registry rwlock is what makes freeing safe: a subscriber is removed from its
 * topic under the exclusive lock, and publishers only touch subscribers while holding it shared,
 * so once close returns no publisher can still reach the subscriber.
 */
#include "core/pubsub.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/futex.h"

#define INIT_BUCKETS 64u
#define INIT_RING 16u

struct topic {
	struct topic *next;
	uint64_t hash;
	hb_ps_sub_t **subs;
	uint32_t nsubs, scap;
	int pattern;
	size_t tlen;
	char name[]; /* NUL-terminated (topics hold no NUL byte) */
};

struct hb_pubsub {
	pthread_rwlock_t lock;
	struct topic **buckets;
	size_t nbuckets, ntopics, npatterns;
	struct topic *patterns;
	uint32_t default_cap;
	int shutdown;
	_Atomic uint64_t nsubs, published, delivered, dropped;
	_Atomic uint64_t gen;
};

struct hb_ps_sub {
	hb_pubsub_t *ps;
	struct topic *topic; /* NULL once closed; guarded by ps->lock */
	pthread_mutex_t mu;  /* guards the ring, closed, efd */
	hb_ps_msg_t **ring;
	uint32_t rcap, head, count, cap;
	int closed;
	int efd;
	_Atomic uint32_t seq;	  /* futex word: bumped on every push and on close */
	_Atomic uint32_t waiters; /* threads in hb_pubsub_wait */
	_Atomic uint64_t dropped;
	size_t tlen;
	char tname[];
};

/* ---- helpers ---- */

static uint64_t hash_topic(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static int topic_ok(const void *topic, size_t tlen)
{
	return tlen > 0 && tlen <= HB_PUBSUB_MAX_TOPIC && !memchr(topic, '\0', tlen);
}

static void efd_set(int fd)
{
	uint64_t one = 1;

	if (fd >= 0)
		(void)!write(fd, &one, sizeof(one));
}

static void efd_clear(int fd)
{
	uint64_t v;

	if (fd >= 0)
		(void)!read(fd, &v, sizeof(v));
}

void hb_ps_msg_release(hb_ps_msg_t *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

/* ---- registry ---- */

hb_pubsub_t *hb_pubsub_new(uint32_t default_cap)
{
	hb_pubsub_t *ps = calloc(1, sizeof(*ps));

	if (!ps)
		return NULL;
	ps->nbuckets = INIT_BUCKETS;
	ps->buckets = calloc(ps->nbuckets, sizeof(*ps->buckets));
	if (!ps->buckets || pthread_rwlock_init(&ps->lock, NULL) != 0) {
		free(ps->buckets);
		free(ps);
		return NULL;
	}
	ps->default_cap = default_cap ? default_cap : HB_PUBSUB_DEFAULT_QUEUE;
	return ps;
}

static void free_chain(struct topic *t)
{
	while (t) {
		struct topic *next = t->next;

		free(t->subs);
		free(t);
		t = next;
	}
}

void hb_pubsub_free(hb_pubsub_t *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->nbuckets; i++)
		free_chain(ps->buckets[i]);
	free_chain(ps->patterns);
	pthread_rwlock_destroy(&ps->lock);
	free(ps->buckets);
	free(ps);
}

/* [lock held] The exact topic, or NULL. */
static struct topic *find_exact(hb_pubsub_t *ps, const void *name, size_t n, uint64_t h)
{
	for (struct topic *t = ps->buckets[h & (ps->nbuckets - 1)]; t; t = t->next)
		if (t->hash == h && t->tlen == n && memcmp(t->name, name, n) == 0)
			return t;
	return NULL;
}

/* [exclusive] Doubles the bucket array; on ENOMEM the chains just get longer. */
static void grow_buckets(hb_pubsub_t *ps)
{
	size_t n = ps->nbuckets * 2;
	struct topic **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < ps->nbuckets; i++) {
		for (struct topic *t = ps->buckets[i], *next; t; t = next) {
			next = t->next;
			t->next = b[t->hash & (n - 1)];
			b[t->hash & (n - 1)] = t;
		}
	}
	free(ps->buckets);
	ps->buckets = b;
	ps->nbuckets = n;
}

/* [exclusive] Finds or creates the topic (exact or pattern). */
static struct topic *get_topic(hb_pubsub_t *ps, const char *name, size_t n)
{
	int pattern = memchr(name, '*', n) != NULL;
	uint64_t h = hash_topic(name, n);
	struct topic *t;

	if (!pattern && (t = find_exact(ps, name, n, h)))
		return t;
	for (t = pattern ? ps->patterns : NULL; t; t = t->next)
		if (t->tlen == n && memcmp(t->name, name, n) == 0)
			return t;
	t = calloc(1, sizeof(*t) + n + 1);
	if (!t)
		return NULL;
	memcpy(t->name, name, n);
	t->tlen = n;
	t->hash = h;
	t->pattern = pattern;
	if (pattern) {
		t->next = ps->patterns;
		ps->patterns = t;
		ps->npatterns++;
		return t;
	}
	if (ps->ntopics >= ps->nbuckets)
		grow_buckets(ps);
	t->next = ps->buckets[h & (ps->nbuckets - 1)];
	ps->buckets[h & (ps->nbuckets - 1)] = t;
	ps->ntopics++;
	return t;
}

/* [exclusive] Unlinks and frees a topic without subscribers. */
static void drop_topic(hb_pubsub_t *ps, struct topic *t)
{
	struct topic **pp = t->pattern ? &ps->patterns : &ps->buckets[t->hash & (ps->nbuckets - 1)];

	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp)
		*pp = t->next;
	if (t->pattern)
		ps->npatterns--;
	else
		ps->ntopics--;
	free(t->subs);
	free(t);
}

static int topic_add(struct topic *t, hb_ps_sub_t *s)
{
	if (t->nsubs == t->scap) {
		uint32_t n = t->scap ? t->scap * 2 : 4;
		hb_ps_sub_t **a = realloc(t->subs, n * sizeof(*a));

		if (!a)
			return -ENOMEM;
		t->subs = a;
		t->scap = n;
	}
	t->subs[t->nsubs++] = s;
	return 0;
}

static hb_ps_sub_t *sub_alloc(hb_pubsub_t *ps, const void *topic, size_t tlen, uint32_t cap)
{
	hb_ps_sub_t *s = calloc(1, sizeof(*s) + tlen);

	if (!s)
		return NULL;
	s->cap = cap ? cap : ps->default_cap;
	s->rcap = s->cap < INIT_RING ? s->cap : INIT_RING;
	s->ring = malloc(s->rcap * sizeof(*s->ring));
	if (!s->ring || pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s->ring);
		free(s);
		return NULL;
	}
	s->ps = ps;
	s->efd = -1;
	s->tlen = tlen;
	memcpy(s->tname, topic, tlen);
	return s;
}

static void sub_dealloc(hb_ps_sub_t *s)
{
	pthread_mutex_destroy(&s->mu);
	free(s->ring);
	free(s);
}

int hb_pubsub_subscribe(hb_pubsub_t *ps, const void *topic, size_t tlen, uint32_t cap,
			hb_ps_sub_t **out)
{
	hb_ps_sub_t *s;
	struct topic *t;

	*out = NULL;
	if (!topic_ok(topic, tlen))
		return -EINVAL;
	s = sub_alloc(ps, topic, tlen, cap);
	if (!s)
		return -ENOMEM;
	pthread_rwlock_wrlock(&ps->lock);
	if (ps->shutdown) {
		pthread_rwlock_unlock(&ps->lock);
		sub_dealloc(s);
		return -ESHUTDOWN;
	}
	t = get_topic(ps, topic, tlen);
	if (!t || topic_add(t, s) < 0) {
		if (t && t->nsubs == 0)
			drop_topic(ps, t);
		pthread_rwlock_unlock(&ps->lock);
		sub_dealloc(s);
		return -ENOMEM;
	}
	s->topic = t;
	atomic_fetch_add(&ps->gen, 1);
	pthread_rwlock_unlock(&ps->lock);
	atomic_fetch_add_explicit(&ps->nsubs, 1, memory_order_relaxed);
	*out = s;
	return 0;
}

/* ---- delivery ---- */

/* [s->mu] Makes room for one more message below cap. Returns 0 or -ENOMEM. */
static int ring_grow(hb_ps_sub_t *s)
{
	uint32_t n = s->rcap * 2 > s->cap ? s->cap : s->rcap * 2;
	hb_ps_msg_t **r = malloc(n * sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->count; i++)
		r[i] = s->ring[(s->head + i) % s->rcap];
	free(s->ring);
	s->ring = r;
	s->rcap = n;
	s->head = 0;
	return 0;
}

/* Queues m on s, dropping the oldest message when full. Returns 1 if queued, 0 if closed. */
static int push(hb_ps_sub_t *s, hb_ps_msg_t *m)
{
	hb_ps_msg_t *old = NULL;

	pthread_mutex_lock(&s->mu);
	if (s->closed) {
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	if (s->count == s->rcap && (s->rcap == s->cap || ring_grow(s) < 0)) {
		old = s->ring[s->head];
		s->head = (s->head + 1) % s->rcap;
		s->count--;
	}
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	s->ring[(s->head + s->count) % s->rcap] = m;
	if (++s->count == 1)
		efd_set(s->efd);
	atomic_fetch_add(&s->seq, 1);
	pthread_mutex_unlock(&s->mu);
	if (old) {
		hb_ps_msg_release(old);
		atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->ps->dropped, 1, memory_order_relaxed);
	}
	if (atomic_load(&s->waiters))
		hb_futex_wake(&s->seq, INT_MAX);
	return 1;
}

static int push_all(struct topic *t, hb_ps_msg_t *m)
{
	int n = 0;

	for (uint32_t i = 0; t && i < t->nsubs; i++)
		n += push(t->subs[i], m);
	return n;
}

/* [shared] Delivers to every pattern that matches name (NUL-terminated). */
static int push_patterns(hb_pubsub_t *ps, const char *name, hb_ps_msg_t *m)
{
	int n = 0;

	for (struct topic *t = ps->patterns; t; t = t->next)
		if (fnmatch(t->name, name, 0) == 0)
			n += push_all(t, m);
	return n;
}

int hb_pubsub_publish(hb_pubsub_t *ps, const void *topic, size_t tlen, const void *data, size_t len)
{
	char name[HB_PUBSUB_MAX_TOPIC + 1];
	hb_ps_msg_t *m;
	struct topic *t;
	int n = 0;

	if (!topic_ok(topic, tlen) || len > UINT32_MAX)
		return -EINVAL;
	atomic_fetch_add_explicit(&ps->published, 1, memory_order_relaxed);
	pthread_rwlock_rdlock(&ps->lock);
	t = find_exact(ps, topic, tlen, hash_topic(topic, tlen));
	if (!t && !ps->patterns) {
		pthread_rwlock_unlock(&ps->lock);
		return 0;
	}
	m = malloc(sizeof(*m) + len);
	if (!m) {
		pthread_rwlock_unlock(&ps->lock);
		return -ENOMEM;
	}
	atomic_init(&m->refs, 1);
	m->len = (uint32_t)len;
	memcpy(m->data, data, len);
	n = push_all(t, m);
	if (ps->patterns) {
		memcpy(name, topic, tlen);
		name[tlen] = '\0';
		n += push_patterns(ps, name, m);
	}
	pthread_rwlock_unlock(&ps->lock);
	hb_ps_msg_release(m);
	atomic_fetch_add_explicit(&ps->delivered, (uint64_t)n, memory_order_relaxed);
	return n;
}

/* ---- the subscriber's side ---- */

int hb_pubsub_pop(hb_ps_sub_t *s, hb_ps_msg_t **out)
{
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (s->count == 0) {
		rc = s->closed ? -EPIPE : -EAGAIN;
	} else {
		*out = s->ring[s->head];
		s->head = (s->head + 1) % s->rcap;
		if (--s->count == 0 && !s->closed)
			efd_clear(s->efd);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int ready(hb_ps_sub_t *s)
{
	int r;

	pthread_mutex_lock(&s->mu);
	r = s->count > 0 || s->closed;
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hb_pubsub_wait(hb_ps_sub_t *s, int timeout_ms)
{
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;

	for (;;) {
		/* Load the word before checking: a push after the check changes it, so the futex
		 * wait below returns at once instead of missing the message. */
		uint32_t seen = atomic_load(&s->seq);
		int left = -1;

		if (ready(s))
			return 0;
		if (deadline >= 0) {
			int64_t d = deadline - now_ms();

			if (d <= 0)
				return -ETIMEDOUT;
			left = d > INT_MAX ? INT_MAX : (int)d;
		}
		atomic_fetch_add(&s->waiters, 1);
		hb_futex_wait(&s->seq, seen, left);
		atomic_fetch_sub(&s->waiters, 1);
	}
}

int hb_pubsub_fd(hb_ps_sub_t *s)
{
	int fd;

	pthread_mutex_lock(&s->mu);
	if (s->efd < 0) {
		s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (s->efd >= 0 && (s->count > 0 || s->closed))
			efd_set(s->efd);
	}
	fd = s->efd >= 0 ? s->efd : -errno;
	pthread_mutex_unlock(&s->mu);
	return fd;
}

/* Removes s from its topic (freeing the topic when it was the last). */
static void leave_topic(hb_ps_sub_t *s)
{
	hb_pubsub_t *ps = s->ps;
	struct topic *t;

	pthread_rwlock_wrlock(&ps->lock);
	t = s->topic;
	s->topic = NULL;
	for (uint32_t i = 0; t && i < t->nsubs; i++) {
		if (t->subs[i] == s) {
			t->subs[i] = t->subs[--t->nsubs];
			break;
		}
	}
	if (t && t->nsubs == 0)
		drop_topic(ps, t);
	atomic_fetch_add(&ps->gen, 1);
	pthread_rwlock_unlock(&ps->lock);
	if (t)
		atomic_fetch_sub_explicit(&ps->nsubs, 1, memory_order_relaxed);
}

/* Marks s closed and wakes whoever waits on it. */
static void mark_closed(hb_ps_sub_t *s)
{
	pthread_mutex_lock(&s->mu);
	if (!s->closed) {
		s->closed = 1;
		if (s->count == 0)
			efd_set(s->efd);
	}
	atomic_fetch_add(&s->seq, 1);
	pthread_mutex_unlock(&s->mu);
	if (atomic_load(&s->waiters))
		hb_futex_wake(&s->seq, INT_MAX);
}

void hb_pubsub_close(hb_ps_sub_t *s)
{
	leave_topic(s);
	mark_closed(s);
}

/* [exclusive] Closes every subscriber of a chain of topics and frees the topics. */
static void shut_chain(hb_pubsub_t *ps, struct topic *t)
{
	while (t) {
		struct topic *next = t->next;

		for (uint32_t i = 0; i < t->nsubs; i++) {
			t->subs[i]->topic = NULL;
			mark_closed(t->subs[i]);
			atomic_fetch_sub_explicit(&ps->nsubs, 1, memory_order_relaxed);
		}
		free(t->subs);
		free(t);
		t = next;
	}
}

void hb_pubsub_shutdown(hb_pubsub_t *ps)
{
	pthread_rwlock_wrlock(&ps->lock);
	ps->shutdown = 1;
	for (size_t i = 0; i < ps->nbuckets; i++) {
		shut_chain(ps, ps->buckets[i]);
		ps->buckets[i] = NULL;
	}
	shut_chain(ps, ps->patterns);
	ps->patterns = NULL;
	ps->ntopics = ps->npatterns = 0;
	atomic_fetch_add(&ps->gen, 1);
	pthread_rwlock_unlock(&ps->lock);
}

void hb_pubsub_sub_free(hb_ps_sub_t *s)
{
	hb_ps_msg_t *m;

	if (!s)
		return;
	hb_pubsub_close(s);
	while (hb_pubsub_pop(s, &m) == 0)
		hb_ps_msg_release(m);
	if (s->efd >= 0)
		close(s->efd);
	sub_dealloc(s);
}

uint64_t hb_pubsub_dropped(hb_ps_sub_t *s)
{
	return atomic_load_explicit(&s->dropped, memory_order_relaxed);
}

uint32_t hb_pubsub_pending(hb_ps_sub_t *s)
{
	uint32_t n;

	pthread_mutex_lock(&s->mu);
	n = s->count;
	pthread_mutex_unlock(&s->mu);
	return n;
}

uint32_t hb_pubsub_cap(const hb_ps_sub_t *s)
{
	return s->cap;
}

int hb_pubsub_closed(hb_ps_sub_t *s)
{
	int c;

	pthread_mutex_lock(&s->mu);
	c = s->closed;
	pthread_mutex_unlock(&s->mu);
	return c;
}

const char *hb_pubsub_topic(const hb_ps_sub_t *s, size_t *len)
{
	*len = s->tlen;
	return s->tname;
}

void hb_pubsub_stats(hb_pubsub_t *ps, hb_pubsub_stats_t *st)
{
	pthread_rwlock_rdlock(&ps->lock);
	st->topics = ps->ntopics + ps->npatterns;
	pthread_rwlock_unlock(&ps->lock);
	st->subscribers = atomic_load_explicit(&ps->nsubs, memory_order_relaxed);
	st->published = atomic_load_explicit(&ps->published, memory_order_relaxed);
	st->delivered = atomic_load_explicit(&ps->delivered, memory_order_relaxed);
	st->dropped = atomic_load_explicit(&ps->dropped, memory_order_relaxed);
}

uint64_t hb_pubsub_generation(hb_pubsub_t *ps)
{
	return atomic_load(&ps->gen);
}

int hb_pubsub_topics(hb_pubsub_t *ps, hb_pubsub_topic_cb cb, void *ud)
{
	int rc = 0;

	pthread_rwlock_rdlock(&ps->lock);
	for (size_t i = 0; rc == 0 && i < ps->nbuckets; i++)
		for (struct topic *t = ps->buckets[i]; rc == 0 && t; t = t->next)
			rc = cb(t->name, t->tlen, t->nsubs, ud);
	for (struct topic *t = ps->patterns; rc == 0 && t; t = t->next)
		rc = cb(t->name, t->tlen, t->nsubs, ud);
	pthread_rwlock_unlock(&ps->lock);
	return rc;
}
