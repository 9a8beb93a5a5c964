/* fork_harness.h: what the tests that fork processes (test_xbus.c, test_xbus_hub.c) share: one
 * byte over a pipe (the child says it is ready, the parent says go) and a child's exit code
 * (128 + the signal for one killed). The test thread of either process calls them.
 * Header-only (static inline) for those test files. */
#ifndef HB_TESTS_UNIT_CORE_FORK_HARNESS_H
#define HB_TESTS_UNIT_CORE_FORK_HARNESS_H

#include "../hb_test.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void put(int fd, char c)
{
	cr_assert_eq(write(fd, &c, 1), 1);
}

static inline char get(int fd)
{
	char c = 0;

	cr_assert_eq(read(fd, &c, 1), 1);
	return c;
}

static inline int exit_code(pid_t pid)
{
	int st = 0;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#endif
