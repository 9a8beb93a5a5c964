/* test_pylocate.c: the package and Python home are found relative to the binary's directory
 * (an installed tree), with the source tree as the fallback for a build-directory binary. */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "python/pylocate.h"

static char root[PATH_MAX];

static void mkpath(const char *rel)
{
	char p[PATH_MAX * 2];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (char *s = p + strlen(root) + 1; *s; s++) {
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	}
	mkdir(p, 0755);
}

static void touch(const char *rel)
{
	char p[PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	cr_assert_not_null(f, "%s", p);
	fclose(f);
}

static void setup(void)
{
	snprintf(root, sizeof(root), "/tmp/hb-pylocate-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	cr_assert_not_null(realpath(root, root));
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(pylocate, .init = setup, .fini = teardown);

Test(pylocate, exe_dir_is_this_test_binarys)
{
	char dir[PATH_MAX], self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	cr_assert_gt(n, 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	cr_assert_eq(hb_pylocate_exe_dir(dir, sizeof(dir)), 0);
	cr_assert_str_eq(dir, self);
	cr_assert_eq(hb_pylocate_exe_dir(dir, 4), -ENAMETOOLONG);
}

Test(pylocate, installed_package_wins_over_the_source_tree)
{
	char bin[PATH_MAX + 8], out[PATH_MAX], want[PATH_MAX + 64];

	mkpath("prefix/bin");
	mkpath("prefix/share/hornbeam-uring/python");
	mkpath("src/python");
	touch("src/python/hornbeam_erlang.py");
	snprintf(bin, sizeof(bin), "%s/prefix/bin", root);

	/* No package under the prefix yet: the source tree. */
	cr_assert_eq(hb_pylocate_package(bin, root, out, sizeof(out)), -ENOENT);
	snprintf(want, sizeof(want), "%s/src", root);
	cr_assert_eq(hb_pylocate_package(bin, want, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/src/python", root);
	cr_assert_str_eq(out, want);

	touch("prefix/share/hornbeam-uring/python/hornbeam_erlang.py");
	cr_assert_eq(hb_pylocate_package(bin, NULL, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/prefix/share/hornbeam-uring/python", root);
	cr_assert_str_eq(out, want, "the path is canonical (no '..')");
	cr_assert_eq(hb_pylocate_package(bin, NULL, out, 8), -ENAMETOOLONG);
}

Test(pylocate, no_package_anywhere)
{
	char out[PATH_MAX];

	cr_assert_eq(hb_pylocate_package(root, root, out, sizeof(out)), -ENOENT);
	cr_assert_eq(hb_pylocate_package(NULL, NULL, out, sizeof(out)), -ENOENT);
}

Test(pylocate, home_needs_the_standard_library_of_this_version)
{
	char bin[PATH_MAX + 8], out[PATH_MAX], want[PATH_MAX + 64];

	mkpath("p/bin");
	mkpath("p/lib/hornbeam-uring/python/lib/python3.12");
	touch("p/lib/hornbeam-uring/python/lib/python3.12/os.py");
	snprintf(bin, sizeof(bin), "%s/p/bin", root);
	cr_assert_eq(hb_pylocate_home(bin, "3.13", out, sizeof(out)), -ENOENT,
		     "another version's library is not ours");
	mkpath("p/lib/hornbeam-uring/python/lib/python3.13/os.py"); /* a directory, not a file */
	cr_assert_eq(hb_pylocate_home(bin, "3.13", out, sizeof(out)), -ENOENT);
	cr_assert_eq(hb_pylocate_home(bin, "3.12", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/p/lib/hornbeam-uring/python", root);
	cr_assert_str_eq(out, want);
}
