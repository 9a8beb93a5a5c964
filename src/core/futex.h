/* futex.h: the futex calls that park a thread on a 32-bit word: process-private ones (the
 * stream, pubsub, funcs) and process-shared ones for words in a MAP_SHARED region that other
 * processes wake (core/xbus). Any thread may call them; they never allocate. */
#ifndef HB_CORE_FUTEX_H
#define HB_CORE_FUTEX_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* FUTEX_WAIT(_PRIVATE) op on word with timeout_ms (-1: none); the two waits below. */
static inline void hb_futex_wait_op(_Atomic uint32_t *word, uint32_t seen, int timeout_ms, int op)
{
	struct timespec ts, *tp = NULL;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tp = &ts;
	}
	syscall(SYS_futex, (uint32_t *)word, op, seen, tp, NULL, 0);
}

/* Sleeps while *word == seen (or until timeout_ms elapses; -1 waits forever). Returns at once
 * if the word already changed. Spurious returns are possible: callers re-check. */
static inline void hb_futex_wait(_Atomic uint32_t *word, uint32_t seen, int timeout_ms)
{
	hb_futex_wait_op(word, seen, timeout_ms, FUTEX_WAIT_PRIVATE);
}

/* Wakes up to n threads sleeping on word. */
static inline void hb_futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* The same on a word in shared memory, woken from any process mapping it. */
static inline void hb_futex_wait_shared(_Atomic uint32_t *word, uint32_t seen, int timeout_ms)
{
	hb_futex_wait_op(word, seen, timeout_ms, FUTEX_WAIT);
}

static inline void hb_futex_wake_shared(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}

#endif
