/* inflight.h: a worker process's table of the requests its app is running, readable by the master
 * after the process died (so the crash log names what it was serving, as gunicorn's WORKER
 * TIMEOUT traceback does).
 *
 * The master maps one table per worker process (MAP_SHARED | MAP_ANONYMOUS) before it forks it;
 * the child publishes it with hb_inflight_set_process once, before its threads start, and its
 * Python worker threads mark each request the app starts (hb_inflight_begin: one CAS and a few
 * stores, no system call, no lock) and ends (hb_inflight_end: one store). The master reads the
 * table with hb_inflight_describe: after the process died (nothing writes it any more: what is
 * marked is what was running), or while it runs (a racy but bounded snapshot, for a process that
 * asks to be replaced). A full table loses entries, counted (the log says how many).
 *
 * Threads and processes: begin/end from any thread of the process the table was made for;
 * describe from any process holding the mapping. Ownership: the master creates and destroys a
 * table (its child's view goes with the child). Errors: NULL / -1, nothing prints.
 */
#ifndef HB_CORE_INFLIGHT_H
#define HB_CORE_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

/* Entries per table: the requests of one process recorded at once (the rest are counted). */
#define HB_INFLIGHT_SLOTS 256
/* Bytes kept of a request's method and target (longer ones are cut). */
#define HB_INFLIGHT_METHOD 16
#define HB_INFLIGHT_TARGET 96

typedef struct hb_inflight hb_inflight_t;

/* Maps a zeroed table shared with the children forked after. NULL when mmap fails. */
hb_inflight_t *hb_inflight_create(void);
/* Unmaps this process's view; NULL is a no-op. */
void hb_inflight_destroy(hb_inflight_t *t);

/* [worker process, before its threads start] The table begin/end record into (NULL: none). */
void hb_inflight_set_process(hb_inflight_t *t);
hb_inflight_t *hb_inflight_process(void);

/* Marks a request running since now (CLOCK_MONOTONIC). hint spreads threads over the table
 * (a worker's slot number). Returns the entry for hb_inflight_end: an index, HB_INFLIGHT_LOST
 * when the table is full (counted, not named), or -1 when t is NULL. */
#define HB_INFLIGHT_LOST (-2)
int hb_inflight_begin(hb_inflight_t *t, unsigned hint, const char *method, size_t mlen,
		      const char *target, size_t tlen);
/* The request of entry i (what begin returned) ended. */
void hb_inflight_end(hb_inflight_t *t, int i);

/* Writes "GET /a (running 1.2 s), POST /b (running 0.0 s)" (oldest first, at most `max`
 * requests, then "and N more") into buf, now being CLOCK_MONOTONIC in ns. Returns how many
 * requests were marked running (lost ones included); buf is "" when none. */
int hb_inflight_describe(const hb_inflight_t *t, uint64_t now, int max, char *buf, size_t len);

#endif
