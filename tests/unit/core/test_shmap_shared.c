/* test_shmap_shared.c: a map on a memfd (hb_shmap_create_shared) seen through a second mapping
 * of its descriptor (hb_shmap_attach, as a binary upgrade's new master maps it), and attach
 * refusing what is not a map. */
#include "../hb_test.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/shmap.h"

Test(shmap_shared, a_second_mapping_sees_the_same_map)
{
	hb_shmap_opts_t o = {.shards = 4, .max_bytes = 1 << 20};
	int fd;
	hb_shmap_t *a = hb_shmap_create_shared(&o, &fd);
	char buf[16];
	size_t n;
	int64_t v;

	cr_assert_not_null(a);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	cr_assert_eq(hb_shmap_set(a, "k", 1, "v1", 2), 0);
	hb_shmap_t *b = hb_shmap_attach(fd);
	cr_assert_not_null(b);
	cr_assert_eq(hb_shmap_get(b, "k", 1, buf, sizeof buf, &n), 0);
	cr_assert(n == 2 && memcmp(buf, "v1", 2) == 0);
	pid_t pid = fork();
	if (pid == 0) /* another process, through the attached view */
		_exit(hb_shmap_incr(b, "n", 1, 41, NULL) == 0 ? 0 : 1);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert_eq(hb_shmap_incr(a, "n", 1, 1, &v), 0);
	cr_assert_eq(v, 42);
	hb_shmap_stats_t sa, sb;
	hb_shmap_stats(a, &sa);
	hb_shmap_stats(b, &sb);
	cr_assert_eq(sa.map_bytes, sb.map_bytes);
	cr_assert_eq(sb.entries, 2);
	hb_shmap_destroy(a);
	close(fd); /* b's mapping keeps the map */
	cr_assert_eq(hb_shmap_get(b, "k", 1, buf, sizeof buf, &n), 0);
	hb_shmap_destroy(b);
}

Test(shmap_shared, attach_refuses_what_is_not_a_map)
{
	int fd = memfd_create("not-a-map", MFD_CLOEXEC);
	char zeros[4096] = {0};

	cr_assert_geq(fd, 0);
	cr_assert_null(hb_shmap_attach(fd)); /* empty */
	cr_assert_eq(write(fd, zeros, sizeof zeros), (ssize_t)sizeof zeros);
	cr_assert_null(hb_shmap_attach(fd)); /* no magic */
	close(fd);
	cr_assert_null(hb_shmap_attach(-1));
	int bad;
	hb_shmap_opts_t o = {.shards = 3 << 20};
	cr_assert_null(hb_shmap_create_shared(&o, &bad));
	cr_assert_eq(bad, -1);
}
