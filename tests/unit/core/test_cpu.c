/* test_cpu.c: affinity mask, cgroup v2 cpu.max parsing on fake trees, pinning. */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cpu.h"

static char root[PATH_MAX];

static void make_root(void)
{
	snprintf(root, sizeof root, "/tmp/hb_cpu_XXXXXX");
	cr_assert_not_null(mkdtemp(root));
}

static void remove_root(void)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

/* Creates <root><dir>/cpu.max holding text (dir "" is the root itself). */
static void write_cpu_max(const char *dir, const char *text)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "mkdir -p '%s%s'", root, dir);
	cr_assert_eq(system(path), 0);
	snprintf(path, sizeof path, "%s%s/cpu.max", root, dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(cpu_quota, parse)
{
	cr_assert_eq(hb_cpu_quota_parse("max 100000\n"), 0);
	cr_assert_eq(hb_cpu_quota_parse("max\n"), 0);
	cr_assert_eq(hb_cpu_quota_parse("200000 100000\n"), 2);
	cr_assert_eq(hb_cpu_quota_parse("150000 100000\n"), 2, "rounds up");
	cr_assert_eq(hb_cpu_quota_parse("50000 100000"), 1);
	cr_assert_eq(hb_cpu_quota_parse("100000 100000"), 1);
	cr_assert_eq(hb_cpu_quota_parse("1600000 100000\n"), 16);
	cr_assert_eq(hb_cpu_quota_parse(""), -EINVAL);
	cr_assert_eq(hb_cpu_quota_parse("abc 100000"), -EINVAL);
	cr_assert_eq(hb_cpu_quota_parse("200000"), -EINVAL);
	cr_assert_eq(hb_cpu_quota_parse("200000 0"), -EINVAL);
	cr_assert_eq(hb_cpu_quota_parse("200000 100000 x"), -EINVAL);
}

Test(cpu_quota, files_and_ancestors, .init = make_root, .fini = remove_root)
{
	cr_assert_eq(hb_cpu_quota_at(root, "/kubepods/pod1/ctr"), 0, "no files: unknown");
	write_cpu_max("/kubepods/pod1/ctr", "max 100000\n");
	cr_assert_eq(hb_cpu_quota_at(root, "/kubepods/pod1/ctr"), 0, "unlimited");
	write_cpu_max("/kubepods/pod1", "300000 100000\n");
	cr_assert_eq(hb_cpu_quota_at(root, "/kubepods/pod1/ctr"), 3, "limit on the parent");
	write_cpu_max("/kubepods/pod1/ctr", "250000 100000\n");
	cr_assert_eq(hb_cpu_quota_at(root, "/kubepods/pod1/ctr"), 3, "ceil(2.5)");
	write_cpu_max("/kubepods", "100000 100000\n");
	cr_assert_eq(hb_cpu_quota_at(root, "/kubepods/pod1/ctr"), 1, "the smallest wins");
	write_cpu_max("", "garbage\n");
	cr_assert_eq(hb_cpu_quota_at(root, "/kubepods/pod1/ctr"), 1, "bad file ignored");
}

Test(cpu_quota, namespace_root, .init = make_root, .fini = remove_root)
{
	/* In a container with a cgroup namespace /proc/self/cgroup reads "0::/" and the limit
	 * sits at the mount root. */
	write_cpu_max("", "400000 100000\n");
	cr_assert_eq(hb_cpu_quota_at(root, "/"), 4);
}

Test(cpu_quota, own_cgroup, .init = make_root, .fini = remove_root)
{
	/* Mirror this process's own cgroup path under the fake root. */
	char line[PATH_MAX], path[PATH_MAX] = "";
	FILE *f = fopen("/proc/self/cgroup", "r");
	if (!f)
		cr_skip_test("no /proc/self/cgroup");
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(path, sizeof path, "%s", line + 3);
		}
	fclose(f);
	if (!*path)
		cr_skip_test("no cgroup v2 entry in /proc/self/cgroup");
	cr_assert_eq(hb_cpu_quota(root), 0);
	write_cpu_max(strcmp(path, "/") == 0 ? "" : path, "700000 100000\n");
	cr_assert_eq(hb_cpu_quota(root), 7);
}

Test(cpu, allowed_matches_sched)
{
	cpu_set_t set;
	cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
	int cpus[CPU_SETSIZE];
	int n = hb_cpu_allowed(cpus, CPU_SETSIZE);
	cr_assert_eq(n, CPU_COUNT(&set));
	for (int i = 0; i < n; i++) {
		cr_assert(CPU_ISSET(cpus[i], &set));
		if (i)
			cr_assert_gt(cpus[i], cpus[i - 1]);
	}
	cr_assert_eq(hb_cpu_allowed(NULL, 0), n, "counts without writing");
	cr_assert_geq(hb_cpu_count(), 1);
	cr_assert_leq(hb_cpu_count(), n);
}

Test(cpu, pin)
{
	int cpus[CPU_SETSIZE];
	int n = hb_cpu_allowed(cpus, CPU_SETSIZE);
	cr_assert_gt(n, 0);
	int last = cpus[(n < CPU_SETSIZE ? n : CPU_SETSIZE) - 1];
	cr_assert_eq(hb_cpu_pin(last), 0);
	cr_assert_eq(hb_cpu_allowed(cpus, CPU_SETSIZE), 1);
	cr_assert_eq(cpus[0], last);
	cr_assert_eq(sched_getcpu(), last);
	cr_assert_eq(hb_cpu_pin(-1), -EINVAL);
	cr_assert_eq(hb_cpu_pin(1 << 19), -EINVAL, "a CPU that does not exist");
}

static void *batch_thread(void *arg)
{
	int *out = arg;

	out[0] = hb_cpu_sched_batch(1);
	out[1] = sched_getscheduler(0);
	out[2] = hb_cpu_sched_batch(0);
	out[3] = sched_getscheduler(0);
	return NULL;
}

Test(cpu, sched_batch_is_the_calling_thread_s)
{
	int out[4] = {-1, -1, -1, -1};
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, batch_thread, out), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(out[0], 0);
	cr_assert_eq(out[1], SCHED_BATCH);
	cr_assert_eq(out[2], 0);
	cr_assert_eq(out[3], SCHED_OTHER, "and back");
	cr_assert_eq(sched_getscheduler(0), SCHED_OTHER, "the process's other threads keep theirs");
}
