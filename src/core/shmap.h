/* shmap.h: the shared map behind hornbeam_erlang.state_* (every worker, every process).
 *
 * A sharded hash map of byte-string keys to byte-string values (values are codec-encoded,
 * see codec.h). The whole map is ONE contiguous MAP_SHARED region (anonymous, or a memfd's
 * for hb_shmap_create_shared) that hb_shmap_create maps: internal references are offsets, locks are
 * atomics in the region, so a forked child keeps using the same map (and sees the parent's writes,
 * and vice versa).
 *
 * Threads and processes: any thread of any process holding the mapping may call anything.
 * Reads take no lock: they copy out under a per-shard seqlock and retry if a writer ran (after a
 * few retries they fall back to the shard lock, so a read never starves). Writers to one shard
 * are serialised by a per-shard spinlock; an allocator spinlock is held for a few instructions
 * when a block is taken or returned. Memory is type-stable (never unmapped, only recycled) and
 * every offset and length a reader sees is bounds-checked, see docs/shmap.md for the argument.
 * A process that dies while holding a lock (kill -9, a crash) does not wedge the others: lock
 * words hold the owner's pid, and a writer that waited checks it and takes the lock over from a
 * dead owner (the dead writer's change stays as far as it got; its block may be lost).
 *
 * Ownership: the caller owns the map it created; hb_shmap_destroy unmaps this process's view.
 * Errors are 0 / -errno; nothing prints, nothing sets errno.
 */
#ifndef HB_CORE_SHMAP_H
#define HB_CORE_SHMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hb_shmap hb_shmap_t;

typedef struct hb_shmap_opts {
	uint32_t shards;    /* rounded up to a power of two; 0 = 64; at most 65536 */
	uint32_t max_key;   /* longest key in bytes; 0 = 1 KiB; at most 64 MiB */
	uint32_t max_value; /* longest value in bytes; 0 = 1 MiB; at most 1 GiB */
	size_t max_bytes;   /* budget for entries and hash tables; 0 = 64 MiB; at least 64 KiB */
} hb_shmap_opts_t;

typedef struct hb_shmap_stats {
	uint64_t entries;
	uint64_t bytes_used; /* live blocks (entries + bucket arrays), <= max_bytes */
	uint64_t max_bytes;
	uint64_t map_bytes; /* size of the shared mapping */
	uint64_t gets, hits, misses;
	uint64_t sets, deletes, incrs;
	uint64_t retries;    /* optimistic reads that had to start again */
	uint64_t lock_reads; /* reads that fell back to the shard lock */
	uint64_t enospc;     /* writes refused for lack of budget */
	uint32_t shards;
	uint64_t recovered; /* locks taken over from processes that died holding them */
} hb_shmap_stats_t;

/* Called once per key by hb_shmap_keys; `key` is valid only during the call. A non-zero return
 * stops the walk and is returned. */
typedef int (*hb_shmap_key_cb)(const void *key, size_t klen, void *ud);

/* Maps and initialises a map (opts may be NULL for defaults). NULL on bad options or no memory. */
hb_shmap_t *hb_shmap_create(const hb_shmap_opts_t *o);
/* Like hb_shmap_create, on a memfd: a process started by exec can map it too (a binary
 * upgrade hands the map to the new master). *fd is the memfd (close-on-exec), the caller's to
 * close; the map stays while a process maps it or holds the fd. NULL (*fd -1) on failure. */
hb_shmap_t *hb_shmap_create_shared(const hb_shmap_opts_t *o, int *fd);
/* Maps the map another process made with hb_shmap_create_shared, from its memfd (inherited);
 * its size and options are the map's own. NULL when fd is not such a map or mmap fails. */
hb_shmap_t *hb_shmap_attach(int fd);
/* Unmaps this process's view. Other processes sharing it are unaffected. NULL is a no-op. */
void hb_shmap_destroy(hb_shmap_t *m);

/* Copies the value of key into buf[0..cap) and sets *vlen. Returns 0, -ENOENT, -E2BIG (key too
 * long), or -ENOBUFS with *vlen set to the size needed (retry with a bigger buffer). */
int hb_shmap_get(hb_shmap_t *m, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen);
/* Inserts or replaces. Returns 0, -E2BIG (key or value too long) or -ENOSPC (budget); on error
 * the previous value, if any, is untouched. */
int hb_shmap_set(hb_shmap_t *m, const void *key, size_t klen, const void *val, size_t vlen);
/* Removes key. Returns 0, -ENOENT or -E2BIG. */
int hb_shmap_delete(hb_shmap_t *m, const void *key, size_t klen);
/* Atomically adds delta to the counter at key (a missing key counts as 0) and stores the new
 * value in *result (may be NULL). The value is the codec's int64 encoding, so hb_shmap_get of a
 * counter yields a valid codec int. Returns 0, -EOVERFLOW (value unchanged), -EINVAL (existing
 * value is not an int64-form codec int), -E2BIG or -ENOSPC. */
int hb_shmap_incr(hb_shmap_t *m, const void *key, size_t klen, int64_t delta, int64_t *result);
/* Calls cb for each key starting with prefix[0..plen) (plen 0: all keys). Each shard is copied
 * under its lock and cb runs with no lock held, so cb may use the map; keys changed meanwhile may
 * or may not be seen. Returns 0, cb's non-zero return, or -ENOMEM. */
int hb_shmap_keys(hb_shmap_t *m, const void *prefix, size_t plen, hb_shmap_key_cb cb, void *ud);
/* Fills *s with a (racy, monotone) snapshot of the counters. */
void hb_shmap_stats(hb_shmap_t *m, hb_shmap_stats_t *s);

#endif
