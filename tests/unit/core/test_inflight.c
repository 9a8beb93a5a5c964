/* test_inflight.c: the in-flight request table: marks, ends, overflow, and a child's marks read
 * by its parent after the child died. */
#include "../hb_test.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/inflight.h"

#define S(x) x, strlen(x)

Test(inflight, names_running_requests_oldest_first)
{
	hb_inflight_t *t = hb_inflight_create();
	char buf[512];

	cr_assert_not_null(t);
	cr_assert_eq(hb_inflight_describe(t, 0, 8, buf, sizeof buf), 0);
	cr_assert_str_eq(buf, "");
	int a = hb_inflight_begin(t, 3, S("GET"), S("/first?x=1"));
	int b = hb_inflight_begin(t, 3, S("POST"), S("/second"));
	cr_assert(a >= 0 && b >= 0 && a != b);
	cr_assert_eq(hb_inflight_describe(t, UINT64_MAX / 2, 8, buf, sizeof buf), 2);
	cr_assert(strstr(buf, "GET /first?x=1 (running ") == buf, "%s", buf);
	cr_assert_not_null(strstr(buf, ", POST /second (running "), "%s", buf);
	hb_inflight_end(t, a);
	cr_assert_eq(hb_inflight_describe(t, UINT64_MAX / 2, 8, buf, sizeof buf), 1);
	cr_assert(strncmp(buf, "POST /second", 12) == 0, "%s", buf);
	hb_inflight_end(t, b);
	cr_assert_eq(hb_inflight_describe(t, 0, 8, buf, sizeof buf), 0);
	hb_inflight_destroy(t);
}

Test(inflight, cuts_long_targets_and_control_bytes)
{
	hb_inflight_t *t = hb_inflight_create();
	char target[300], buf[512];

	memset(target, 'a', sizeof target);
	target[1] = '\n';
	cr_assert_geq(hb_inflight_begin(t, 0, S("GET"), target, sizeof target), 0);
	hb_inflight_describe(t, 0, 8, buf, sizeof buf);
	cr_assert_null(strchr(buf, '\n'));
	cr_assert(strncmp(buf, "GET a?aaa", 9) == 0, "%s", buf);
	cr_assert_eq(strspn(buf + 4, "a?"), HB_INFLIGHT_TARGET, "%s", buf);
	hb_inflight_destroy(t);
}

Test(inflight, a_full_table_counts_the_rest)
{
	hb_inflight_t *t = hb_inflight_create();
	char buf[256];

	for (int i = 0; i < HB_INFLIGHT_SLOTS; i++)
		cr_assert_geq(hb_inflight_begin(t, (unsigned)i, S("GET"), S("/x")), 0);
	int lost = hb_inflight_begin(t, 0, S("GET"), S("/y"));
	cr_assert_eq(lost, HB_INFLIGHT_LOST);
	cr_assert_eq(hb_inflight_describe(t, 0, 2, buf, sizeof buf), HB_INFLIGHT_SLOTS + 1);
	cr_assert_not_null(strstr(buf, "and 255 more"), "%s", buf);
	hb_inflight_end(t, lost);
	cr_assert_eq(hb_inflight_describe(t, 0, 2, buf, sizeof buf), HB_INFLIGHT_SLOTS);
	hb_inflight_end(t, -1); /* no table entry: no-op */
	hb_inflight_end(NULL, 0);
	cr_assert_eq(hb_inflight_begin(NULL, 0, S("GET"), S("/")), -1);
	hb_inflight_destroy(t);
}

Test(inflight, a_dead_childs_requests_are_read_by_its_parent)
{
	hb_inflight_t *t = hb_inflight_create();
	char buf[256];
	int status;

	pid_t pid = fork();
	if (pid == 0) {
		hb_inflight_set_process(t);
		hb_inflight_t *mine = hb_inflight_process();
		int done = hb_inflight_begin(mine, 0, S("GET"), S("/done"));
		hb_inflight_begin(mine, 1, S("GET"), S("/segv"));
		hb_inflight_end(mine, done);
		_exit(7);
	}
	cr_assert_gt(pid, 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(hb_inflight_describe(t, UINT64_MAX / 2, 8, buf, sizeof buf), 1);
	cr_assert(strncmp(buf, "GET /segv (running ", 19) == 0, "%s", buf);
	cr_assert_null(hb_inflight_process()); /* the child's setting stayed in the child */
	hb_inflight_destroy(t);
}
