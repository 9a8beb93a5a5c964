/* test_thread.c: hb_thread_start (src/core/thread.c): the new thread runs with every signal
 * blocked, the caller's mask is left as it was, and the argument arrives. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>

#include "core/thread.h"

typedef struct {
	void *arg;
	int term_blocked, usr1_blocked, hup_blocked;
} seen_t;

static void *probe(void *arg)
{
	seen_t *s = arg;
	sigset_t now;

	pthread_sigmask(SIG_SETMASK, NULL, &now);
	s->arg = arg;
	s->term_blocked = sigismember(&now, SIGTERM);
	s->usr1_blocked = sigismember(&now, SIGUSR1);
	s->hup_blocked = sigismember(&now, SIGHUP);
	return NULL;
}

Test(thread, new_thread_blocks_every_signal)
{
	seen_t s = {0};
	pthread_t tid;
	sigset_t before, after;

	pthread_sigmask(SIG_SETMASK, NULL, &before);
	cr_assert_not(sigismember(&before, SIGTERM), "the test starts with SIGTERM unblocked");
	cr_assert_eq(hb_thread_start(&tid, probe, &s), 0);
	cr_assert_eq(pthread_join(tid, NULL), 0);
	cr_assert_eq(s.arg, &s);
	cr_assert(s.term_blocked && s.usr1_blocked && s.hup_blocked);
	pthread_sigmask(SIG_SETMASK, NULL, &after);
	cr_assert_not(sigismember(&after, SIGTERM), "the caller's mask is restored");
	cr_assert_not(sigismember(&after, SIGUSR1));
}
