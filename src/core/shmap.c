/* shmap.c: sharded seqlock hash map in one shared mapping (design: docs/shmap.md).
 *
 * Layout of the mapping: [struct hb_shmap | shard headers | heap]. The heap holds entries and
 * bucket arrays, carved by a size-class allocator (free lists + bump pointer). Every word a
 * lock-free reader may touch is an _Atomic accessed relaxed, and every writer store to such a
 * word is atomic too: that is what keeps seqlock reads free of data races (and TSan quiet).
 */
#include "core/shmap.h"

#include "core/codec.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x68625f73686d6170ull /* "hb_shmap" */
#define NCLASS 128		    /* size classes up to 2^37 bytes */
#define ENTRY_HDR 24
#define INIT_BUCKETS 16
#define MAX_BUCKETS (1ull << 28)
#define OPT_ATTEMPTS 16 /* optimistic read attempts before taking the shard lock */
#define SEQ_CHECK_STEPS 64
#define NSTRIPE 64

#define RLX memory_order_relaxed
#define LD(p) atomic_load_explicit((p), RLX)
#define ST(p, v) atomic_store_explicit((p), (v), RLX)
#define ADD(p, v) atomic_fetch_add_explicit((p), (v), RLX)

typedef _Atomic uint64_t a64;
typedef _Atomic uint32_t a32;

/* An entry; key words then value words follow, each zero-padded to 8 bytes. */
struct entry {
	a64 next; /* next entry in the bucket chain; the free-list link once freed */
	a32 hash; /* low 32 bits of the key's hash */
	a32 klen;
	a32 vlen;
	a32 cls; /* size class of this block */
};

struct shard {
	_Alignas(64) a32 lock; /* writers */
	a64 seq;	       /* odd while a writer is changing this shard */
	a64 nbuckets;
	a64 buckets; /* offset of the bucket array (nbuckets entry offsets) */
	a32 bcls;    /* size class of the bucket array */
	a64 count;
	a64 sets, deletes, incrs, enospc;
};

/* Reader counters, striped by CPU so that lock-free readers never write a shared line. */
struct stripe {
	_Alignas(64) a64 hits;
	a64 misses, retries, lock_reads;
};

struct hb_shmap {
	uint64_t magic;
	uint64_t map_bytes;
	uint64_t heap_off, heap_end;
	uint64_t max_bytes;
	uint64_t seed;
	uint32_t shards, max_key, max_value;
	_Alignas(64) a32 alloc_lock;
	a64 recovered; /* locks taken over from dead processes */
	a64 bump;
	a64 used;
	a64 free_head[NCLASS];
	struct stripe stripe[NSTRIPE];
	struct shard shard[];
};

_Static_assert(sizeof(struct entry) == ENTRY_HDR, "entry header size");

enum { TORN = 1 }; /* read_once: saw an inconsistent state, retry */

/* ---- small helpers ---- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* This process's pid, the lock words' owner mark; forgotten in a forked child. */
static _Atomic int self_pid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_pid(void)
{
	atomic_store_explicit(&self_pid, 0, RLX);
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, forget_pid);
}

static int my_pid(void)
{
	int p = atomic_load_explicit(&self_pid, RLX);

	if (!p) {
		pthread_once(&atfork_once, register_atfork);
		p = (int)getpid();
		atomic_store_explicit(&self_pid, p, RLX);
	}
	return p;
}

static int owner_dead(uint32_t pid)
{
	return pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* A lock word holds its owner's pid. A process that dies holding it (kill -9, a crash in the
 * app) would wedge every other process: a locker that has waited a while checks the owner,
 * and takes the lock over from a dead one (owner-aware recovery). Returns 1 then, else 0. */
static int spin_lock(a32 *l)
{
	uint32_t me = (uint32_t)my_pid();

	for (unsigned n = 0;; n++) {
		uint32_t cur = LD(l), free_ = 0;
		if (!cur && atomic_compare_exchange_strong_explicit(l, &free_, me,
								    memory_order_acquire, RLX))
			return 0;
		if (n < 100) {
			cpu_relax();
			continue;
		}
		sched_yield();
		if ((n & 255) == 0 && cur && owner_dead(cur) &&
		    atomic_compare_exchange_strong_explicit(l, &cur, me, memory_order_acquire, RLX))
			return 1;
	}
}

static void spin_unlock(a32 *l)
{
	atomic_store_explicit(l, 0, memory_order_release);
}

static inline uint64_t r8(uint64_t n)
{
	return (n + 7) & ~7ull;
}

static inline uint8_t *at(const hb_shmap_t *m, uint64_t off)
{
	return (uint8_t *)m + off;
}

static inline struct entry *entry_at(const hb_shmap_t *m, uint64_t off)
{
	return (struct entry *)at(m, off);
}

static inline a64 *key_words(struct entry *e)
{
	return (a64 *)((uint8_t *)e + ENTRY_HDR);
}

static inline a64 *val_words(struct entry *e, uint32_t klen)
{
	return (a64 *)((uint8_t *)e + ENTRY_HDR + r8(klen));
}

static inline uint64_t entry_size(uint64_t klen, uint64_t vlen)
{
	return ENTRY_HDR + r8(klen) + r8(vlen);
}

/* True if [off, off+len) lies inside the heap and off is word-aligned: the reader's guard. */
static inline int in_heap(const hb_shmap_t *m, uint64_t off, uint64_t len)
{
	return off >= m->heap_off && (off & 7) == 0 && off <= m->heap_end &&
	       len <= m->heap_end - off;
}

/* Racy-but-validated copies: word-sized relaxed atomics, last word zero-padded. */
static void store_words(a64 *dst, const void *src, size_t n)
{
	const uint8_t *s = src;
	size_t i = 0;
	for (; n - i >= 8; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		ST(dst + i / 8, w);
	}
	if (i < n) {
		uint64_t w = 0;
		memcpy(&w, s + i, n - i);
		ST(dst + i / 8, w);
	}
}

static void load_words(void *dst, a64 *src, size_t n)
{
	uint8_t *d = dst;
	size_t i = 0;
	for (; n - i >= 8; i += 8) {
		uint64_t w = LD(src + i / 8);
		memcpy(d + i, &w, 8);
	}
	if (i < n) {
		uint64_t w = LD(src + i / 8);
		memcpy(d + i, &w, n - i);
	}
}

static int words_equal(a64 *stored, const void *key, size_t n)
{
	const uint8_t *k = key;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = 0;
		memcpy(&w, k + i, n - i < 8 ? n - i : 8);
		if (LD(stored + i / 8) != w)
			return 0;
	}
	return 1;
}

/* ---- hashing (seeded, wyhash-style multiply-fold) ---- */

static inline uint64_t mum(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t hash_key(uint64_t seed, const void *key, size_t n)
{
	const uint8_t *p = key;
	uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
	size_t i = 0;
	for (; n - i >= 8; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = mum(h ^ w, 0xa0761d6478bd642full);
	}
	if (i < n) {
		uint64_t w = 0;
		memcpy(&w, p + i, n - i);
		h = mum(h ^ w, 0xe7037ed1a0b428dbull);
	}
	return mum(h ^ (h >> 29), seed ^ 0x8ebc6af09c88c6e3ull);
}

static struct stripe *my_stripe(hb_shmap_t *m)
{
	int cpu = sched_getcpu(); /* an rseq read with current glibc: a few ns */
	return &m->stripe[(unsigned)(cpu < 0 ? 0 : cpu) % NSTRIPE];
}

static inline struct shard *shard_of(hb_shmap_t *m, uint64_t h)
{
	return &m->shard[(h >> 40) & (m->shards - 1)];
}

/* ---- size classes: 16-byte steps to 128, then four per power of two ---- */

static uint32_t size_class(uint64_t n)
{
	if (n <= 128)
		return n <= 16 ? 0 : (uint32_t)((n - 1) / 16);
	uint64_t x = n - 1;
	uint32_t k = 63 - (uint32_t)__builtin_clzll(x);
	uint64_t j = ((x - (1ull << k)) >> (k - 2)) + 1;
	return 8 + (k - 7) * 4 + (uint32_t)(j - 1);
}

static uint64_t class_size(uint32_t c)
{
	if (c < 8)
		return (uint64_t)(c + 1) * 16;
	uint32_t k = 7 + (c - 8) / 4, j = (c - 8) % 4 + 1;
	return (1ull << k) + ((uint64_t)j << (k - 2));
}

/* ---- allocator (alloc_lock held for a few instructions) ---- */

/* Taken over from a dead process, the allocator may have lost the block it was moving. */
static void alloc_lock(hb_shmap_t *m)
{
	if (spin_lock(&m->alloc_lock))
		atomic_fetch_add_explicit(&m->recovered, 1, RLX);
}

static uint64_t pop_free(hb_shmap_t *m, uint32_t c)
{
	uint64_t off = LD(&m->free_head[c]);
	if (off)
		ST(&m->free_head[c], LD(&entry_at(m, off)->next));
	return off;
}

/* Exact class from its free list, else the bump pointer, else any larger free block. */
static uint64_t take_block(hb_shmap_t *m, uint32_t *cls)
{
	uint32_t c = *cls;
	uint64_t used = LD(&m->used), sz = class_size(c), off;
	if (used + sz > m->max_bytes)
		return 0;
	if ((off = pop_free(m, c)))
		return off;
	uint64_t bump = LD(&m->bump);
	if (sz <= m->heap_end - bump) {
		ST(&m->bump, bump + sz);
		return bump;
	}
	for (uint32_t k = c + 1; k < NCLASS && used + class_size(k) <= m->max_bytes; k++) {
		if ((off = pop_free(m, k))) {
			*cls = k;
			return off;
		}
	}
	return 0;
}

/* Returns a block of at least `need` bytes and its class, or 0 when the budget is spent. */
static uint64_t block_alloc(hb_shmap_t *m, uint64_t need, uint32_t *cls)
{
	*cls = size_class(need);
	if (*cls >= NCLASS)
		return 0;
	alloc_lock(m);
	uint64_t off = take_block(m, cls);
	if (off)
		ST(&m->used, LD(&m->used) + class_size(*cls));
	spin_unlock(&m->alloc_lock);
	return off;
}

/* The block may still be read by stale optimistic readers: they will fail validation. */
static void block_free(hb_shmap_t *m, uint64_t off, uint32_t c)
{
	alloc_lock(m);
	ST(&entry_at(m, off)->next, LD(&m->free_head[c]));
	ST(&m->free_head[c], off);
	ST(&m->used, LD(&m->used) - class_size(c));
	spin_unlock(&m->alloc_lock);
}

/* ---- seqlock ---- */

/* TSan does not model atomic_thread_fence (GCC warns -Wtsan), so TSan builds use the
 * read-modify-write forms from Boehm, "Can seqlocks get along with programming language memory
 * models?" (MSPC 2012): slower (readers write the seq line), but every ordering is visible. */
#if defined(__SANITIZE_THREAD__)
#define SEQ_RMW 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SEQ_RMW 1
#endif
#endif

/* Writer (shard lock held): seq becomes odd before any data store is visible. */
static void write_begin(struct shard *sh)
{
#ifdef SEQ_RMW
	atomic_fetch_add_explicit(&sh->seq, 1, memory_order_acq_rel);
#else
	ST(&sh->seq, LD(&sh->seq) + 1);
	atomic_thread_fence(memory_order_release);
#endif
}

/* Writer: seq becomes even again after every data store is visible. */
static void write_end(struct shard *sh)
{
	atomic_store_explicit(&sh->seq, LD(&sh->seq) + 1, memory_order_release);
}

/* A shard's writer lock. Taken over from a dead writer, the shard may hold its change as far
 * as it got (every reader bounds-checks what it follows); an odd seq is made even, or readers
 * would retry forever. */
static void shard_lock(hb_shmap_t *m, struct shard *sh)
{
	if (!spin_lock(&sh->lock))
		return;
	atomic_fetch_add_explicit(&m->recovered, 1, RLX);
	if (LD(&sh->seq) & 1)
		write_end(sh);
}

/* Reader: the sequence after its relaxed data loads, ordered after them. */
static uint64_t read_end(struct shard *sh)
{
#ifdef SEQ_RMW
	return atomic_fetch_add_explicit(&sh->seq, 0, memory_order_acq_rel);
#else
	atomic_thread_fence(memory_order_acquire);
	return LD(&sh->seq);
#endif
}

/* ---- create / destroy ---- */

static uint64_t make_seed(void)
{
	uint64_t s = 0;
	if (getrandom(&s, sizeof s, GRND_NONBLOCK) != sizeof s) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&ts;
	}
	return s | 1;
}

static int normalize(const hb_shmap_opts_t *o, hb_shmap_opts_t *n)
{
	*n = o ? *o : (hb_shmap_opts_t){0};
	n->shards = n->shards ? n->shards : 64;
	n->max_key = n->max_key ? n->max_key : 1024;
	n->max_value = n->max_value ? n->max_value : 1u << 20;
	n->max_bytes = n->max_bytes ? n->max_bytes : (size_t)64 << 20;
	if (n->shards > 65536 || n->max_key > (64u << 20) || n->max_value > (1u << 30))
		return -EINVAL;
	uint32_t s = 1;
	while (s < n->shards)
		s <<= 1;
	n->shards = s;
	uint64_t min = (uint64_t)s * class_size(size_class(INIT_BUCKETS * 8)) * 2;
	if (n->max_bytes < (64u << 10) || n->max_bytes < min || n->max_bytes > (1ull << 40))
		return -EINVAL;
	return 0;
}

static int shard_init(hb_shmap_t *m, struct shard *sh)
{
	uint32_t c;
	uint64_t off = block_alloc(m, INIT_BUCKETS * 8, &c);
	if (!off)
		return -ENOSPC;
	memset(at(m, off), 0, INIT_BUCKETS * 8);
	ST(&sh->buckets, off);
	ST(&sh->nbuckets, INIT_BUCKETS);
	ST(&sh->bcls, c);
	return 0;
}

/* The mapping's size for options o (normalised into *n) and its header's. -EINVAL on bad ones. */
static int map_size(const hb_shmap_opts_t *o, hb_shmap_opts_t *n, uint64_t *hdr, uint64_t *size)
{
	if (normalize(o, n))
		return -EINVAL;
	*hdr = r8(sizeof(struct hb_shmap) + (uint64_t)n->shards * sizeof(struct shard));
	*hdr = (*hdr + 63) & ~63ull;
	*size = *hdr + ((n->max_bytes + 63) & ~(uint64_t)63);
	return 0;
}

/* Initialises fresh zeroed memory p of size bytes as a map; NULL (p unmapped) on failure. */
static hb_shmap_t *init_map(void *p, uint64_t size, uint64_t hdr, const hb_shmap_opts_t *n)
{
	hb_shmap_t *m = p; /* fresh memory is zeroed: locks free, lists empty */
	m->magic = MAGIC;
	m->map_bytes = size;
	m->heap_off = hdr;
	m->heap_end = size;
	m->max_bytes = n->max_bytes;
	m->seed = make_seed();
	m->shards = n->shards;
	m->max_key = n->max_key;
	m->max_value = n->max_value;
	ST(&m->bump, hdr);
	for (uint32_t i = 0; i < n->shards; i++) {
		if (shard_init(m, &m->shard[i])) {
			munmap(p, size);
			return NULL;
		}
	}
	return m;
}

hb_shmap_t *hb_shmap_create(const hb_shmap_opts_t *o)
{
	hb_shmap_opts_t n;
	uint64_t hdr, size;

	if (map_size(o, &n, &hdr, &size) < 0)
		return NULL;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : init_map(p, size, hdr, &n);
}

hb_shmap_t *hb_shmap_create_shared(const hb_shmap_opts_t *o, int *fd)
{
	hb_shmap_opts_t n;
	uint64_t hdr, size;

	*fd = -1;
	if (map_size(o, &n, &hdr, &size) < 0)
		return NULL;
	int mfd = memfd_create("hornbeam-state", MFD_CLOEXEC);
	if (mfd < 0)
		return NULL;
	void *p = ftruncate(mfd, (off_t)size) < 0 ? MAP_FAILED
						  : mmap(NULL, size, PROT_READ | PROT_WRITE,
							 MAP_SHARED | MAP_NORESERVE, mfd, 0);
	hb_shmap_t *m = p == MAP_FAILED ? NULL : init_map(p, size, hdr, &n);
	if (!m) {
		close(mfd);
		return NULL;
	}
	*fd = mfd;
	return m;
}

hb_shmap_t *hb_shmap_attach(int fd)
{
	struct stat st;
	struct hb_shmap head;

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < sizeof head ||
	    pread(fd, &head, sizeof head, 0) != (ssize_t)sizeof head || head.magic != MAGIC ||
	    head.map_bytes != (uint64_t)st.st_size || head.heap_end != head.map_bytes ||
	    head.heap_off >= head.heap_end || head.shards == 0 ||
	    (head.shards & (head.shards - 1)) != 0 || head.shards > 65536)
		return NULL;
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

void hb_shmap_destroy(hb_shmap_t *m)
{
	if (m)
		munmap(m, m->map_bytes);
}

/* ---- lookups ---- */

/* Writer-side lookup (shard lock held): entry offset or 0, and the link that points to it. */
static uint64_t find_locked(hb_shmap_t *m, struct shard *sh, const void *key, uint32_t klen,
			    uint32_t h, a64 **link)
{
	a64 *slot = (a64 *)at(m, LD(&sh->buckets)) + (h & (LD(&sh->nbuckets) - 1));
	for (uint64_t off = LD(slot); off; off = LD(slot)) {
		struct entry *e = entry_at(m, off);
		if (LD(&e->hash) == h && LD(&e->klen) == klen &&
		    words_equal(key_words(e), key, klen)) {
			*link = slot;
			return off;
		}
		slot = &e->next;
	}
	*link = NULL;
	return 0;
}

/* Reader-side value copy: bounds-checks what it reads, never trusts it. */
static int copy_value(hb_shmap_t *m, uint64_t off, uint32_t klen, void *buf, size_t cap,
		      size_t *vlen)
{
	struct entry *e = entry_at(m, off);
	uint32_t vl = LD(&e->vlen);
	if (vl > m->max_value || !in_heap(m, off, entry_size(klen, vl)))
		return TORN;
	*vlen = vl;
	if (vl <= cap)
		load_words(buf, val_words(e, klen), vl);
	return 0;
}

/* One optimistic lookup under sequence s0. Returns 0 (found, *vlen set), -ENOENT or TORN. */
static int read_once(hb_shmap_t *m, struct shard *sh, uint64_t s0, const void *key, uint32_t klen,
		     uint32_t h, void *buf, size_t cap, size_t *vlen)
{
	uint64_t nb = LD(&sh->nbuckets), boff = LD(&sh->buckets);
	if (nb == 0 || nb > MAX_BUCKETS || (nb & (nb - 1)) || !in_heap(m, boff, nb * 8))
		return TORN;
	uint64_t off = LD((a64 *)at(m, boff) + (h & (nb - 1)));
	for (unsigned steps = 1; off; steps++) {
		if (!in_heap(m, off, entry_size(klen, 0)))
			return TORN;
		if (steps % SEQ_CHECK_STEPS == 0 && LD(&sh->seq) != s0)
			return TORN; /* a concurrent writer may have made a cycle */
		struct entry *e = entry_at(m, off);
		if (LD(&e->hash) == h && LD(&e->klen) == klen &&
		    words_equal(key_words(e), key, klen))
			return copy_value(m, off, klen, buf, cap, vlen);
		off = LD(&e->next);
	}
	return -ENOENT;
}

/* Optimistic attempts, then the shard lock. Returns 0, -ENOENT or -EIO (corruption). */
static int lookup(hb_shmap_t *m, struct shard *sh, const void *key, uint32_t klen, uint32_t h,
		  void *buf, size_t cap, size_t *vlen, struct stripe *st)
{
	for (int i = 0; i < OPT_ATTEMPTS; i++) {
		uint64_t s0 = atomic_load_explicit(&sh->seq, memory_order_acquire);
		if (!(s0 & 1)) {
			int rc = read_once(m, sh, s0, key, klen, h, buf, cap, vlen);
			if (read_end(sh) == s0 && rc != TORN)
				return rc;
		}
		ADD(&st->retries, 1);
		cpu_relax();
	}
	shard_lock(m, sh);
	int rc = read_once(m, sh, LD(&sh->seq), key, klen, h, buf, cap, vlen);
	spin_unlock(&sh->lock);
	ADD(&st->lock_reads, 1);
	return rc == TORN ? -EIO : rc;
}

int hb_shmap_get(hb_shmap_t *m, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen)
{
	if (klen > m->max_key)
		return -E2BIG;
	uint64_t h = hash_key(m->seed, key, klen);
	struct shard *sh = shard_of(m, h);
	struct stripe *st = my_stripe(m);
	size_t vl = 0;
	int rc = lookup(m, sh, key, (uint32_t)klen, (uint32_t)h, buf, cap, &vl, st);
	ADD(rc == 0 ? &st->hits : &st->misses, 1);
	if (rc == 0) {
		*vlen = vl;
		if (vl > cap)
			return -ENOBUFS;
	}
	return rc;
}

/* ---- writes (shard lock held) ---- */

/* Doubles the bucket array once the load passes 1. Skipped silently if the budget is spent. */
static void maybe_grow(hb_shmap_t *m, struct shard *sh)
{
	uint64_t nb = LD(&sh->nbuckets), old = LD(&sh->buckets);
	if (LD(&sh->count) <= nb || nb * 2 > MAX_BUCKETS)
		return;
	uint32_t c;
	uint64_t off = block_alloc(m, nb * 16, &c);
	if (!off)
		return;
	a64 *nw = (a64 *)at(m, off), *ow = (a64 *)at(m, old);
	for (uint64_t i = 0; i < nb * 2; i++)
		ST(&nw[i], 0);
	write_begin(sh);
	for (uint64_t i = 0; i < nb; i++) {
		for (uint64_t e = LD(&ow[i]), next; e; e = next) {
			struct entry *en = entry_at(m, e);
			a64 *slot = &nw[LD(&en->hash) & (nb * 2 - 1)];
			next = LD(&en->next);
			ST(&en->next, LD(slot));
			ST(slot, e);
		}
	}
	ST(&sh->buckets, off);
	ST(&sh->nbuckets, nb * 2);
	write_end(sh);
	uint32_t oc = LD(&sh->bcls);
	ST(&sh->bcls, c);
	block_free(m, old, oc);
}

/* Overwrites the value of an entry whose block is big enough. */
static void write_in_place(struct shard *sh, struct entry *e, uint32_t klen, const void *val,
			   size_t vlen)
{
	write_begin(sh);
	store_words(val_words(e, klen), val, vlen);
	ST(&e->vlen, (uint32_t)vlen);
	write_end(sh);
}

/* Fills a fresh block (still unreachable, but stale readers may peek: atomic stores). */
static void fill_entry(hb_shmap_t *m, uint64_t off, uint32_t cls, uint32_t h, const void *key,
		       uint32_t klen, const void *val, size_t vlen)
{
	struct entry *e = entry_at(m, off);
	ST(&e->hash, h);
	ST(&e->klen, klen);
	ST(&e->vlen, (uint32_t)vlen);
	ST(&e->cls, cls);
	store_words(key_words(e), key, klen);
	store_words(val_words(e, klen), val, vlen);
}

/* Publishes entry noff: replaces `old` (linked at *link) or pushes it on its bucket. */
static void link_entry(hb_shmap_t *m, struct shard *sh, uint64_t noff, uint64_t old, a64 *link)
{
	struct entry *ne = entry_at(m, noff);
	if (!old) {
		link = (a64 *)at(m, LD(&sh->buckets)) + (LD(&ne->hash) & (LD(&sh->nbuckets) - 1));
		ADD(&sh->count, 1);
	}
	ST(&ne->next, old ? LD(&entry_at(m, old)->next) : LD(link));
	write_begin(sh);
	ST(link, noff);
	write_end(sh);
}

static int set_locked(hb_shmap_t *m, struct shard *sh, const void *key, uint32_t klen, uint32_t h,
		      const void *val, size_t vlen)
{
	a64 *link;
	uint64_t old = find_locked(m, sh, key, klen, h, &link), need = entry_size(klen, vlen);
	struct entry *oe = old ? entry_at(m, old) : NULL;
	uint32_t ocls = oe ? LD(&oe->cls) : 0, c;
	if (oe && size_class(need) == ocls) {
		write_in_place(sh, oe, klen, val, vlen);
		return 0;
	}
	uint64_t noff = block_alloc(m, need, &c);
	if (!noff) {
		if (oe && need <= class_size(ocls)) { /* shrinking: keep the bigger block */
			write_in_place(sh, oe, klen, val, vlen);
			return 0;
		}
		ADD(&sh->enospc, 1);
		return -ENOSPC;
	}
	fill_entry(m, noff, c, h, key, klen, val, vlen);
	link_entry(m, sh, noff, old, link);
	if (old)
		block_free(m, old, ocls);
	else
		maybe_grow(m, sh);
	return 0;
}

int hb_shmap_set(hb_shmap_t *m, const void *key, size_t klen, const void *val, size_t vlen)
{
	if (klen > m->max_key || vlen > m->max_value)
		return -E2BIG;
	uint64_t h = hash_key(m->seed, key, klen);
	struct shard *sh = shard_of(m, h);
	shard_lock(m, sh);
	int rc = set_locked(m, sh, key, (uint32_t)klen, (uint32_t)h, val, vlen);
	ADD(&sh->sets, 1);
	spin_unlock(&sh->lock);
	return rc;
}

int hb_shmap_delete(hb_shmap_t *m, const void *key, size_t klen)
{
	if (klen > m->max_key)
		return -E2BIG;
	uint64_t h = hash_key(m->seed, key, klen);
	struct shard *sh = shard_of(m, h);
	a64 *link;
	shard_lock(m, sh);
	uint64_t off = find_locked(m, sh, key, (uint32_t)klen, (uint32_t)h, &link);
	uint32_t c = 0;
	if (off) {
		struct entry *e = entry_at(m, off);
		c = LD(&e->cls);
		write_begin(sh);
		ST(link, LD(&e->next));
		write_end(sh);
		ADD(&sh->count, (uint64_t)-1);
		ADD(&sh->deletes, 1);
	}
	spin_unlock(&sh->lock);
	if (!off)
		return -ENOENT;
	block_free(m, off, c); /* unlinked and invisible to new readers: no lock needed */
	return 0;
}

/* Adds delta to the counter in entry e. Returns 0, -EINVAL or -EOVERFLOW. */
static int incr_existing(struct shard *sh, struct entry *e, uint32_t klen, int64_t delta,
			 int64_t *out)
{
	uint8_t cur[HB_CODEC_INT64_SIZE];
	int64_t v;
	if (LD(&e->vlen) != HB_CODEC_INT64_SIZE)
		return -EINVAL;
	load_words(cur, val_words(e, klen), sizeof cur);
	if (hb_codec_int64_decode(cur, sizeof cur, &v))
		return -EINVAL;
	if (__builtin_add_overflow(v, delta, &v))
		return -EOVERFLOW;
	hb_codec_int64_encode(cur, v);
	write_begin(sh);
	store_words(val_words(e, klen), cur, sizeof cur);
	write_end(sh);
	*out = v;
	return 0;
}

int hb_shmap_incr(hb_shmap_t *m, const void *key, size_t klen, int64_t delta, int64_t *result)
{
	if (klen > m->max_key)
		return -E2BIG;
	uint64_t h = hash_key(m->seed, key, klen);
	struct shard *sh = shard_of(m, h);
	a64 *link;
	int64_t v = delta;
	int rc;
	shard_lock(m, sh);
	uint64_t off = find_locked(m, sh, key, (uint32_t)klen, (uint32_t)h, &link);
	if (off) {
		rc = incr_existing(sh, entry_at(m, off), (uint32_t)klen, delta, &v);
	} else {
		uint8_t enc[HB_CODEC_INT64_SIZE];
		hb_codec_int64_encode(enc, delta);
		rc = set_locked(m, sh, key, (uint32_t)klen, (uint32_t)h, enc, sizeof enc);
	}
	ADD(&sh->incrs, 1);
	spin_unlock(&sh->lock);
	if (rc == 0 && result)
		*result = v;
	return rc;
}

/* ---- iteration and stats ---- */

struct keybuf {
	uint8_t *p;
	size_t len, cap;
};

/* Appends [u32 klen][key] for each matching key of one shard (shard lock held). */
static int collect_shard(hb_shmap_t *m, struct shard *sh, const void *prefix, size_t plen,
			 struct keybuf *kb)
{
	uint64_t nb = LD(&sh->nbuckets);
	a64 *bw = (a64 *)at(m, LD(&sh->buckets));
	for (uint64_t i = 0; i < nb; i++) {
		for (uint64_t off = LD(&bw[i]); off; off = LD(&entry_at(m, off)->next)) {
			struct entry *e = entry_at(m, off);
			uint32_t kl = LD(&e->klen);
			if (kl < plen)
				continue;
			if (kb->cap - kb->len < 4 + (size_t)kl) {
				size_t cap = (kb->cap ? kb->cap * 2 : 4096) + 4 + kl;
				uint8_t *p = realloc(kb->p, cap);
				if (!p)
					return -ENOMEM;
				kb->p = p;
				kb->cap = cap;
			}
			load_words(kb->p + kb->len + 4, key_words(e), kl);
			if (plen && memcmp(kb->p + kb->len + 4, prefix, plen))
				continue;
			memcpy(kb->p + kb->len, &kl, 4);
			kb->len += 4 + kl;
		}
	}
	return 0;
}

static int emit_keys(const struct keybuf *kb, hb_shmap_key_cb cb, void *ud)
{
	for (size_t i = 0; i < kb->len;) {
		uint32_t kl;
		memcpy(&kl, kb->p + i, 4);
		int rc = cb(kb->p + i + 4, kl, ud);
		if (rc)
			return rc;
		i += 4 + (size_t)kl;
	}
	return 0;
}

int hb_shmap_keys(hb_shmap_t *m, const void *prefix, size_t plen, hb_shmap_key_cb cb, void *ud)
{
	struct keybuf kb = {0};
	int rc = 0;
	for (uint32_t i = 0; i < m->shards && rc == 0; i++) {
		struct shard *sh = &m->shard[i];
		kb.len = 0;
		shard_lock(m, sh);
		rc = collect_shard(m, sh, prefix, plen, &kb);
		spin_unlock(&sh->lock);
		if (rc == 0)
			rc = emit_keys(&kb, cb, ud);
	}
	free(kb.p);
	return rc;
}

void hb_shmap_stats(hb_shmap_t *m, hb_shmap_stats_t *s)
{
	memset(s, 0, sizeof *s);
	for (uint32_t i = 0; i < m->shards; i++) {
		struct shard *sh = &m->shard[i];
		s->entries += LD(&sh->count);
		s->sets += LD(&sh->sets);
		s->deletes += LD(&sh->deletes);
		s->incrs += LD(&sh->incrs);
		s->enospc += LD(&sh->enospc);
	}
	for (int i = 0; i < NSTRIPE; i++) {
		s->hits += LD(&m->stripe[i].hits);
		s->misses += LD(&m->stripe[i].misses);
		s->retries += LD(&m->stripe[i].retries);
		s->lock_reads += LD(&m->stripe[i].lock_reads);
	}
	s->gets = s->hits + s->misses;
	s->bytes_used = LD(&m->used);
	s->max_bytes = m->max_bytes;
	s->map_bytes = m->map_bytes;
	s->shards = m->shards;
	s->recovered = LD(&m->recovered);
}
