/* test_watchdog.c: the watchdog's reading of how long a request has run. It samples the clock,
 * then reads each worker thread's start time: a request that began in between (the watchdog
 * preempted on a loaded machine) must read as not running yet, never as an unsigned underflow
 * (584 years, past every worker_kill_timeout: a healthy process replaced). */
#include <criterion/criterion.h>

#include <stdint.h>

#include "python/watchdog.h"

Test(watchdog, elapsed_of_an_idle_thread_is_zero)
{
	cr_assert_eq(hb_watchdog_elapsed_ns(5000000000ull, 0), 0);
}

Test(watchdog, elapsed_counts_from_the_start)
{
	cr_assert_eq(hb_watchdog_elapsed_ns(5000000000ull, 2000000000ull), 3000000000ull);
}

Test(watchdog, a_request_begun_after_the_clock_was_read_has_not_run)
{
	cr_assert_eq(hb_watchdog_elapsed_ns(5000000000ull, 5000000001ull), 0);
	cr_assert_eq(hb_watchdog_elapsed_ns(5000000000ull, 5000000000ull), 0);
}
