/* cpu.h: which CPUs this process may use, and pinning threads to them.
 *
 * The usable set is the scheduler affinity mask (taskset, the Kubernetes static CPU manager,
 * cpuset cgroups) narrowed by the cgroup v2 CPU quota (`cpu.max`, the Kubernetes CPU limit).
 * Everything here is stateless and may be called from any thread; functions return a count or
 * 0, or -errno, and never print.
 */
#ifndef HB_CORE_CPU_H
#define HB_CORE_CPU_H

/* Fills cpus[0..max) with the ids of the CPUs in this thread's affinity mask, in ascending
 * order. Returns how many the mask holds (may exceed max; only max are written), or -errno. */
int hb_cpu_allowed(int *cpus, int max);

/* The cgroup v2 CPU quota of this process, in whole CPUs rounded up: reads /proc/self/cgroup
 * (`0::/path`), then <cgroup_root>/<path>/cpu.max and that of every ancestor, and keeps the
 * smallest limit. Returns the CPU count, or 0 when unlimited or unknown (cgroup v1, no file). */
int hb_cpu_quota(const char *cgroup_root);

/* The same for a given cgroup path (as /proc/self/cgroup writes it, "/a/b") under cgroup_root. */
int hb_cpu_quota_at(const char *cgroup_root, const char *cgroup_path);

/* Parses the text of one cpu.max file ("max 100000", "200000 100000"). Returns the quota in
 * whole CPUs rounded up, 0 when unlimited, or -EINVAL when the text is not cpu.max syntax. */
int hb_cpu_quota_parse(const char *text);

/* min(allowed CPUs, quota under /sys/fs/cgroup when set), and at least 1. */
int hb_cpu_count(void);

/* Pins the calling thread to one CPU. Returns 0 or -errno (-EINVAL: cpu not allowed). */
int hb_cpu_pin(int cpu);

/* on: moves the calling thread to SCHED_BATCH (its nice value kept): its wakeups no longer
 * preempt the thread running on its CPU; it runs when that thread's slice ends (at a scheduler
 * tick) or the CPU goes idle. Its share of a busy CPU is unchanged. off: back to SCHED_OTHER.
 * Needs no privilege. Returns 0 or -errno (-EPERM under a seccomp policy that forbids it). */
int hb_cpu_sched_batch(int on);

#endif
