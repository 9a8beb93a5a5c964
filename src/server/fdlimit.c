#include "server/fdlimit.h"

#include <errno.h>
#include <stdio.h>

uint64_t hb_fdlimit_reserve(const hb_config_t *cfg, int nio, int nworkers)
{
	uint64_t per_io = 2 + (uint64_t)cfg->nbinds; /* ring, wake eventfd, listeners */
	uint64_t per_worker = 4;		     /* wake eventfd, epoll, self-pipe */

	return HB_FDLIMIT_BASE + (uint64_t)nio * per_io + (uint64_t)nworkers * per_worker;
}

rlim_t hb_fdlimit_target(rlim_t soft, rlim_t hard, rlim_t nr_open)
{
	if (soft == RLIM_INFINITY)
		return soft;
	rlim_t want = hard == RLIM_INFINITY ? nr_open : hard;
	return want > soft ? want : soft;
}

/* fs.nr_open: the most descriptors a process may have; 1048576 when it cannot be read. */
static rlim_t nr_open(void)
{
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");
	unsigned long long v = 0;

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v ? (rlim_t)v : (rlim_t)1048576;
}

int hb_fdlimit_raise(struct rlimit *lim)
{
	if (getrlimit(RLIMIT_NOFILE, lim) < 0)
		return -errno;
	rlim_t want = hb_fdlimit_target(lim->rlim_cur, lim->rlim_max, nr_open());
	if (want == lim->rlim_cur)
		return 0;
	struct rlimit next = {.rlim_cur = want, .rlim_max = lim->rlim_max};
	if (setrlimit(RLIMIT_NOFILE, &next) < 0)
		return -errno;
	*lim = next;
	return 0;
}
