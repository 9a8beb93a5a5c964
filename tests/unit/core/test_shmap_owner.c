/* test_shmap_owner.c: a process killed while it holds one of the map's locks does not wedge the
 * others (owner-aware recovery, shmap.h). */
#include "core/shmap.h"

#include "../hb_test.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG (24u << 20) /* a set this large holds the shard lock for milliseconds */

static void sleep_ms(int ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

Test(shmap_owner, writers_killed_holding_a_lock_do_not_wedge_the_others, .timeout = 60)
{
	hb_shmap_opts_t o = {.shards = 1, .max_value = BIG, .max_bytes = (size_t)6 * BIG};
	hb_shmap_t *m = hb_shmap_create(&o);
	char *v = malloc(BIG), small[8];
	size_t n = 0;
	hb_shmap_stats_t st;

	cr_assert(m && v);
	memset(v, 'x', BIG);
	for (int round = 0; round < 20; round++) {
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) { /* one shard: every set takes the one lock, for a long copy */
			for (;;)
				hb_shmap_set(m, "big", 3, v, BIG);
		}
		sleep_ms(5 + round % 7);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		/* Must not hang (the test's timeout would fail it). */
		cr_assert_eq(hb_shmap_set(m, "k", 1, "v1", 2), 0);
		cr_assert_eq(hb_shmap_get(m, "k", 1, small, sizeof small, &n), 0);
		cr_assert(n == 2 && memcmp(small, "v1", 2) == 0);
	}
	hb_shmap_stats(m, &st);
	cr_assert_gt(st.recovered, 0,
		     "no kill hit a held lock in 20 rounds: the test proved nothing");
	free(v);
	hb_shmap_destroy(m);
}
