/* test_fdlimit.c: the descriptor budget: reserve estimate, target soft limit, raising it. */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/resource.h>

#include "server/fdlimit.h"

Test(fdlimit, reserve_grows_with_threads_and_binds)
{
	hb_config_t cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.nbinds = 1;
	uint64_t one = hb_fdlimit_reserve(&cfg, 1, 1);
	cr_assert_eq(one, HB_FDLIMIT_BASE + 3 + 4);
	cr_assert_eq(hb_fdlimit_reserve(&cfg, 4, 4), HB_FDLIMIT_BASE + 4 * 3 + 4 * 4);
	cfg.nbinds = 3;
	cr_assert_eq(hb_fdlimit_reserve(&cfg, 2, 8), HB_FDLIMIT_BASE + 2 * 5 + 8 * 4);
}

Test(fdlimit, target_is_the_hard_limit)
{
	cr_assert_eq(hb_fdlimit_target(1024, 20000, 1048576), 20000);
	cr_assert_eq(hb_fdlimit_target(20000, 20000, 1048576), 20000);
	/* unlimited hard limit: the kernel's nr_open */
	cr_assert_eq(hb_fdlimit_target(1024, RLIM_INFINITY, 524288), 524288);
	/* never lowered */
	cr_assert_eq(hb_fdlimit_target(4096, 1024, 1048576), 4096);
	cr_assert_eq(hb_fdlimit_target(RLIM_INFINITY, RLIM_INFINITY, 1048576), RLIM_INFINITY);
}

Test(fdlimit, raise_sets_soft_to_hard)
{
	struct rlimit old, lim;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	if (old.rlim_max == RLIM_INFINITY || old.rlim_max < 128)
		cr_skip_test("hard RLIMIT_NOFILE is %llu", (unsigned long long)old.rlim_max);
	struct rlimit low = {.rlim_cur = 64, .rlim_max = old.rlim_max};
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	cr_assert_eq(hb_fdlimit_raise(&lim), 0);
	cr_assert_eq(lim.rlim_cur, old.rlim_max);
	cr_assert_eq(lim.rlim_max, old.rlim_max);
	struct rlimit now;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &now), 0);
	cr_assert_eq(now.rlim_cur, old.rlim_max);
	/* already at the hard limit: nothing to do */
	cr_assert_eq(hb_fdlimit_raise(&lim), 0);
	cr_assert_eq(lim.rlim_cur, old.rlim_max);
	setrlimit(RLIMIT_NOFILE, &old);
}
