/* thread.h: starting the process's helper threads (Python worker threads, the interpreter
 * supervisor, the watchdog, the metrics listener) so that they never take a signal.
 *
 * The main thread waits for SIGTERM/SIGINT/SIGHUP/SIGCHLD itself (signalfd or sigwait); a
 * signal delivered to any other thread would be lost or would run a handler there. So every
 * thread is created with all signals blocked, and inherits that mask. Callable from any thread;
 * the caller owns the pthread_t and joins it. Returns 0 or -errno, as core does.
 */
#ifndef HB_CORE_THREAD_H
#define HB_CORE_THREAD_H

#include <pthread.h>

/* pthread_create(tid, NULL, fn, arg) with every signal blocked in the new thread; the calling
 * thread's mask is left as it was. Returns 0 or -errno (EAGAIN, ...). */
int hb_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg);

#endif
