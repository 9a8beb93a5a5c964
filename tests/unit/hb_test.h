/* hb_test.h: Criterion for the unit tests, or, under ThreadSanitizer, a minimal stand-in with
 * the same Test() and cr_assert*() spelling. Include it instead of <criterion/criterion.h> in
 * tests that run in CI's TSan step (the lock-free modules). */
#ifndef HB_TESTS_UNIT_HB_TEST_H
#define HB_TESTS_UNIT_HB_TEST_H

#if defined(__SANITIZE_THREAD__)
#define HB_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HB_TEST_TSAN 1
#endif
#endif

#ifndef HB_TEST_TSAN
#include <criterion/criterion.h>
#else
/* Criterion cannot start under TSan (Snaipe/Criterion#274: BoxFort's arena probe collides with
 * TSan's shadow mappings), so a TSan build gets this minimal runner instead: tests run in order
 * in one process, a failed assertion aborts, test options such as .timeout and Criterion's
 * flags (--jobs) are ignored. HB_TEST_FILTER=text runs only the tests whose title contains
 * text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
	const char *title;
	void (*fn)(void);
} tests[64];
static int ntests;

#define Test(suite, name, ...)                                                                     \
	static void suite##_##name(void);                                                          \
	__attribute__((constructor)) static void reg_##suite##_##name(void)                        \
	{                                                                                          \
		tests[ntests].title = #suite "::" #name;                                           \
		tests[ntests++].fn = suite##_##name;                                               \
	}                                                                                          \
	static void suite##_##name(void)
#define cr_assert(c, ...)                                                                          \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)
#define cr_assert_not(c, ...) cr_assert(!(c))
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b))
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b))
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b))
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b))
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b))
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b))
#define cr_assert_null(p, ...) cr_assert((p) == NULL)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL)
#define cr_assert_arr_eq(a, b, n, ...) cr_assert(memcmp((a), (b), (n)) == 0)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0)
#define cr_assert_fail(...) cr_assert(!"cr_assert_fail")
#define cr_log_info(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))

int main(void)
{
	const char *only = getenv("HB_TEST_FILTER");

	for (int i = 0; i < ntests; i++) {
		struct timespec t0, t1;
		if (only && !strstr(tests[i].title, only))
			continue;
		fprintf(stderr, "[RUN ] %s\n", tests[i].title);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		tests[i].fn();
		clock_gettime(CLOCK_MONOTONIC, &t1);
		fprintf(stderr, "[PASS] %s: (%.2fs)\n", tests[i].title,
			(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
	}
	fprintf(stderr, "[====] %d tests passed\n", ntests);
	return 0;
}
#endif

#endif
