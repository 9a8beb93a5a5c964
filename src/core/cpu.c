/* cpu.c: affinity mask, cgroup v2 quota, pinning. See cpu.h. */
#include "core/cpu.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Masks are allocated because a machine may have more CPUs than a static cpu_set_t holds
 * (CPU_SETSIZE is 1024); the kernel answers EINVAL while the mask is too small. */
enum { MASK_START = 1024, MASK_LIMIT = 1 << 20 };

int hb_cpu_allowed(int *cpus, int max)
{
	for (int ncpu = MASK_START; ncpu <= MASK_LIMIT; ncpu *= 2) {
		cpu_set_t *set = CPU_ALLOC(ncpu);
		size_t size = CPU_ALLOC_SIZE(ncpu);
		if (!set)
			return -ENOMEM;
		CPU_ZERO_S(size, set);
		if (sched_getaffinity(0, size, set) < 0) {
			int e = errno;
			CPU_FREE(set);
			if (e == EINVAL)
				continue;
			return -e;
		}
		int n = 0;
		for (int c = 0; c < ncpu; c++) {
			if (!CPU_ISSET_S(c, size, set))
				continue;
			if (n < max)
				cpus[n] = c;
			n++;
		}
		CPU_FREE(set);
		return n;
	}
	return -EINVAL;
}

int hb_cpu_quota_parse(const char *text)
{
	char *end;
	while (*text == ' ' || *text == '\t')
		text++;
	if (strncmp(text, "max", 3) == 0)
		return 0;
	errno = 0;
	long long quota = strtoll(text, &end, 10);
	if (errno || end == text || quota <= 0 || (*end != ' ' && *end != '\t'))
		return -EINVAL;
	long long period = strtoll(end, &end, 10);
	if (errno || period <= 0 || (*end && *end != '\n'))
		return -EINVAL;
	long long n = (quota + period - 1) / period;
	return n > INT_MAX ? INT_MAX : (int)n;
}

/* Quota from one cgroup directory's cpu.max; 0 when absent, unlimited or unreadable. */
static int quota_in(const char *dir)
{
	char file[PATH_MAX], text[128];
	if (snprintf(file, sizeof file, "%s/cpu.max", dir) >= (int)sizeof file)
		return 0;
	FILE *f = fopen(file, "re");
	if (!f)
		return 0;
	int n = fgets(text, sizeof text, f) ? hb_cpu_quota_parse(text) : 0;
	fclose(f);
	return n > 0 ? n : 0;
}

/* A limit on an ancestor caps every cgroup below it, so the smallest one along the path up to
 * the root is the one in force. */
int hb_cpu_quota_at(const char *cgroup_root, const char *cgroup_path)
{
	char dir[PATH_MAX];
	int best = 0;
	if (snprintf(dir, sizeof dir, "%s%s%s", cgroup_root, *cgroup_path == '/' ? "" : "/",
		     cgroup_path) >= (int)sizeof dir)
		return 0;
	size_t rootlen = strlen(cgroup_root);
	for (;;) {
		size_t len = strlen(dir);
		while (len > rootlen && dir[len - 1] == '/')
			dir[--len] = '\0';
		int n = quota_in(dir);
		if (n > 0 && (best == 0 || n < best))
			best = n;
		char *slash = strrchr(dir, '/');
		if (len <= rootlen || !slash || (size_t)(slash - dir) < rootlen)
			break;
		*slash = '\0';
	}
	return best;
}

/* The cgroup v2 path of this process: the "0::/path" line of /proc/self/cgroup. */
static int own_cgroup(char *path, size_t size)
{
	char line[PATH_MAX + 8];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int rc = -ENOENT;
	if (!f)
		return -errno;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		rc = snprintf(path, size, "%s", line + 3) < (int)size ? 0 : -ENAMETOOLONG;
		break;
	}
	fclose(f);
	return rc;
}

int hb_cpu_quota(const char *cgroup_root)
{
	char path[PATH_MAX];
	if (own_cgroup(path, sizeof path) < 0)
		return 0;
	return hb_cpu_quota_at(cgroup_root, path);
}

int hb_cpu_count(void)
{
	int n = hb_cpu_allowed(NULL, 0);
	int quota = hb_cpu_quota("/sys/fs/cgroup");
	if (n < 1)
		n = 1;
	if (quota > 0 && quota < n)
		n = quota;
	return n;
}

int hb_cpu_pin(int cpu)
{
	if (cpu < 0 || cpu >= MASK_LIMIT)
		return -EINVAL;
	cpu_set_t *set = CPU_ALLOC(cpu + 1);
	size_t size = CPU_ALLOC_SIZE(cpu + 1);
	if (!set)
		return -ENOMEM;
	CPU_ZERO_S(size, set);
	CPU_SET_S(cpu, size, set);
	int rc = pthread_setaffinity_np(pthread_self(), size, set);
	CPU_FREE(set);
	return -rc;
}

int hb_cpu_sched_batch(int on)
{
	struct sched_param sp = {.sched_priority = 0};

	/* pid 0: the calling thread, not the process (Linux schedules threads). */
	return sched_setscheduler(0, on ? SCHED_BATCH : SCHED_OTHER, &sp) == 0 ? 0 : -errno;
}
